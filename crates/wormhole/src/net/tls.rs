//! The TLS client configuration: the platform's trust store (which honours `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`), plus an optional PEM file of extra CAs, with the `ring` provider.
//!
//! Owns: building the rustls `ClientConfig` and describing certificate errors. Must not: open
//! sockets.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use super::ConnectError;

/// The platform's CA certificates, loaded once per process.
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("platform trust store: {e}");
        }
        found.certs
    })
}

/// A client configuration trusting the platform's CAs and those in `extra` (a PEM file).
pub(crate) fn client_config(extra: Option<&Path>) -> Result<Arc<ClientConfig>, ConnectError> {
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(path) = extra {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ConnectError::Trust(format!("{}: {e}", path.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConnectError::Trust(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConnectError::Trust(format!("{}: no PEM certificate in it", path.display())));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| ConnectError::Trust(format!("{}: {e}", path.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(ConnectError::Trust(
            "no CA certificates found (install ca-certificates, or set SSL_CERT_FILE)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Trust(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// If `e` (from the TLS handshake) is a refused certificate, say what is wrong with it.
pub(crate) fn certificate_problem(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let rustls::Error::InvalidCertificate(c) = inner else { return None };
    Some(match c {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("it is not valid for this host name ({c:?})")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("it has expired ({c:?})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("it is not valid yet ({c:?})")
        }
        CertificateError::UnknownIssuer => "it was issued by an authority we do not trust (the platform's \
             store and SSL_CERT_FILE are searched)"
            .to_owned(),
        CertificateError::Revoked => "it was revoked".to_owned(),
        other => format!("{other:?}"),
    })
}
