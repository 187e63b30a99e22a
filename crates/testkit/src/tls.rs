//! A throwaway PKI for TLS tests: a test CA, and server certificates it signs (for given names,
//! already expired, or for the wrong host), written as PEM files into a temporary directory.
//!
//! Owns: generating and writing those files. Must not: be used outside tests and benchmarks
//! (the keys are written unprotected).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// Why the test PKI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a PEM file failed.
    #[error("writing {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// A test CA in a directory; `ca.pem` is its certificate.
pub struct TestCa {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The chain (leaf only).
    pub cert: PathBuf,
    /// The private key (PKCS#8).
    pub key: PathBuf,
}

/// Validity of a server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Valid from 2020 to 2090.
    Current,
    /// Valid only in 2020.
    Expired,
}

impl TestCa {
    /// A new CA whose certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> Result<TestCa, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "wormhole test CA");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = TestCa {
            dir: dir.to_owned(),
            cert,
            key,
        };
        write(&ca.ca_file(), ca.cert.pem().as_bytes())?;
        Ok(ca)
    }

    /// The CA certificate file (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `names` (host names or IP addresses), written as
    /// `dir/<label>.pem` and `dir/<label>.key`.
    pub fn server(&self, label: &str, names: &[&str], validity: Validity) -> Result<ServerCert, PkiError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = match validity {
            Validity::Current => rcgen::date_time_ymd(2090, 1, 1),
            Validity::Expired => rcgen::date_time_ymd(2020, 12, 31),
        };
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let out = ServerCert {
            cert: self.dir.join(format!("{label}.pem")),
            key: self.dir.join(format!("{label}.key")),
        };
        write(&out.cert, cert.pem().as_bytes())?;
        write(&out.key, key.serialize_pem().as_bytes())?;
        Ok(out)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, bytes).map_err(|e| PkiError::Write(path.to_owned(), e))
}
