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
            return Err(ConnectError::Trust(format!(
                "{}: no PEM certificate in it",
                path.display()
            )));
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
    let rustls::Error::InvalidCertificate(c) = inner else {
        return None;
    };
    Some(match c {
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "it is for {}, not for {}",
            presented
                .iter()
                .map(|p| presented_name(p))
                .collect::<Vec<_>>()
                .join(", "),
            server_name(expected)
        ),
        CertificateError::NotValidForName => "it is not valid for this host name".to_owned(),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("it expired on {} (UTC)", date(not_after.as_secs()))
        }
        CertificateError::Expired => "it has expired".to_owned(),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("it is not valid before {} (UTC)", date(not_before.as_secs()))
        }
        CertificateError::NotValidYet => "it is not valid yet".to_owned(),
        CertificateError::UnknownIssuer => "it was issued by an authority we do not trust (the platform's \
             store and SSL_CERT_FILE are searched)"
            .to_owned(),
        CertificateError::Revoked => "it was revoked".to_owned(),
        other => format!("{other:?}"),
    })
}

/// rustls describes the certificate's names as `DnsName("x")` / `IpAddress(..)`: keep the name.
fn presented_name(p: &str) -> &str {
    p.strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .unwrap_or(p)
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(a) => std::net::IpAddr::from(*a).to_string(),
        other => format!("{other:?}"),
    }
}

/// `YYYY-MM-DD` of a Unix time.
fn date(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = wormhole_proto::hashcash::civil_date(days);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates_of_unix_times() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_609_372_800), "2020-12-31");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(4_102_444_800), "2100-01-01");
    }
}
