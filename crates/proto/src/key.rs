//! Key agreement and encryption: SPAKE2 (Ed25519, symmetric), the HKDF-SHA256 purposes and NaCl
//! secretbox of PROTOCOL.md §2.3–2.4.
//!
//! INTERFACE STUB: the signatures below are fixed (other modules are written against them); the
//! bodies are being written.

/// Errors from key agreement and decryption.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The peer's pake message was not valid JSON with a `pake_v1` hex field of the right size.
    #[error("malformed PAKE message from peer")]
    BadPakeMessage,
    /// SPAKE2 refused the peer's message (wrong side byte, not on the curve, or a reflection).
    #[error("SPAKE2 failed: {0}")]
    Spake2(String),
    /// A secretbox failed to open: wrong key (usually a wrong code) or corrupted data.
    #[error("decryption failed (wrong code or corrupted message)")]
    DecryptFailed,
    /// The encrypted blob is shorter than nonce + tag.
    #[error("encrypted message too short")]
    TooShort,
}

/// A started SPAKE2 exchange.
pub struct Pake {
    _private: (),
}

impl Pake {
    /// Start SPAKE2 for `code` within `appid`. Returns the machine and the body bytes to send in
    /// phase `pake` (the UTF-8 JSON `{"pake_v1": "<hex>"}`, exactly Python's 81 bytes).
    pub fn start(_code: &str, _appid: &str) -> (Pake, Vec<u8>) {
        unimplemented!("stub")
    }

    /// Finish with the peer's `pake` body bytes; returns the 32-byte shared key.
    pub fn finish(self, _peer_body: &[u8]) -> Result<[u8; 32], KeyError> {
        unimplemented!("stub")
    }
}

/// HKDF-SHA256 (empty salt) of `key` with info `purpose`, `len` bytes.
pub fn derive_key(_key: &[u8], _purpose: &[u8], _len: usize) -> Vec<u8> {
    unimplemented!("stub")
}

/// The secretbox key for a message in `phase` sent by `side`.
pub fn derive_phase_key(_key: &[u8], _side: &str, _phase: &str) -> [u8; 32] {
    unimplemented!("stub")
}

/// The verifier, HKDF(key, "wormhole:verifier").
pub fn derive_verifier(_key: &[u8]) -> [u8; 32] {
    unimplemented!("stub")
}

/// secretbox with a fresh random nonce; returns nonce ‖ tag ‖ ciphertext.
pub fn encrypt_data(_key: &[u8; 32], _plaintext: &[u8]) -> Vec<u8> {
    unimplemented!("stub")
}

/// secretbox with a given nonce (for tests and known-answer vectors).
pub fn encrypt_data_with_nonce(_key: &[u8; 32], _nonce: &[u8; 24], _plaintext: &[u8]) -> Vec<u8> {
    unimplemented!("stub")
}

/// Open nonce ‖ tag ‖ ciphertext.
pub fn decrypt_data(_key: &[u8; 32], _data: &[u8]) -> Result<Vec<u8>, KeyError> {
    unimplemented!("stub")
}
