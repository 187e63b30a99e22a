//! TLS termination by the mailbox server itself (`--tls-cert`, `--tls-key`), so that a self-hoster
//! can serve `wss://` without a proxy in front.
//!
//! Owns: loading the certificate chain and key (PEM), the acceptor in force, and replacing it on
//! `SIGHUP` (a failed reload is logged and the old certificate stays). Must not: read or write
//! client data (the connection does, after [`TlsTerminator::acceptor`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("--tls-cert {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("--tls-key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused the pair.
    #[error("--tls-cert/--tls-key: {0}")]
    Pair(String),
}

/// The server's TLS acceptor and where it was loaded from.
pub struct TlsTerminator {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl TlsTerminator {
    /// Load `cert` (PEM chain, leaf first) and `key` (PEM private key).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<TlsTerminator>, TlsConfigError> {
        let acceptor = acceptor(cert, key)?;
        Ok(Arc::new(TlsTerminator {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(acceptor),
        }))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Load the files again; on success new connections get the new certificate.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let fresh = acceptor(&self.cert, &self.key)?;
        match self.current.write() {
            Ok(mut a) => *a = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Reload on every `SIGHUP` for as long as the returned task runs.
    pub fn reload_on_sighup(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch SIGHUP, the TLS certificate will not be reloaded: {e}");
                return None;
            }
        };
        let me = self.clone();
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match me.reload() {
                    Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate {}", me.cert.display()),
                    Err(e) => tracing::error!("SIGHUP: kept the old TLS certificate: {e}"),
                }
            }
        }))
    }
}

impl std::fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTerminator")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsConfigError> {
    let cert_err = |reason: String| TlsConfigError::Certificate {
        path: cert.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsConfigError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsConfigError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
