//! Key agreement and encryption: SPAKE2 (Ed25519, symmetric), the HKDF-SHA256 purposes and NaCl
//! secretbox of docs/protocol.md §2.3–2.4.
//!
//! Submodules:
//! - [`pake`]: the SPAKE2 exchange and the `{"pake_v1": "<hex>"}` body of phase `pake`;
//! - `spake2`: symmetric SPAKE2 over Ed25519 on `curve25519-dalek` (so the shared point K is visible);
//! - [`go_compat`]: the key wormhole-william derives when K's top byte is zero, and why trying it
//!   on the peer's `version` message does not weaken the PAKE;
//! - [`derive`](mod@derive): HKDF-SHA256 and the wormhole purposes (phase keys, verifier, application keys);
//! - [`secretbox`]: XSalsa20-Poly1305 with the wire layout nonce ‖ tag ‖ ciphertext.
//!
//! This module does no I/O and keeps no state beyond one [`Pake`]. It does not know about
//! mailboxes, phases ordering or transit; callers decide which key to use for which message.

pub mod derive;
pub mod go_compat;
pub mod pake;
pub mod secretbox;
mod spake2;

#[cfg(test)]
mod test_prg;
#[cfg(test)]
mod vectors_e2e_tests;

pub use derive::{
    DILATION_PURPOSE, HKDF_MAX_LEN, VERIFIER_PURPOSE, derive_key, derive_key_for_purpose, derive_phase_key,
    derive_verifier, hkdf_sha256, phase_key_purpose, try_derive_key,
};
pub use pake::{PAKE_BODY_MAX, PAKE_MSG_LEN, Pake, PakeKeys, format_pake_body, parse_pake_body};
pub use secretbox::{
    NONCE_LEN, OVERHEAD, TAG_LEN, decrypt_data, encrypt_data, encrypt_data_with_nonce, encrypt_data_with_rng,
};

/// Errors from key agreement and decryption.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The peer's pake message was not valid JSON with a `pake_v1` hex field of the right size.
    /// The peer is not speaking this protocol (or the data was corrupted); close the wormhole.
    #[error("malformed PAKE message from peer")]
    BadPakeMessage,
    /// SPAKE2 refused the peer's message (wrong side byte, not on the curve, not in the
    /// prime-order subgroup, or a reflection of our own message). Treat it like a wrong code.
    #[error("SPAKE2 failed: {0}")]
    Spake2(String),
    /// A secretbox failed to open: wrong key (usually a wrong code) or corrupted data. Ask the
    /// user to check the code and try again.
    #[error("decryption failed (wrong code or corrupted message)")]
    DecryptFailed,
    /// The encrypted blob is shorter than nonce + tag (40 bytes); the peer sent garbage.
    #[error("encrypted message too short")]
    TooShort,
    /// An HKDF output longer than 255 × 32 bytes was requested; ask for a shorter key.
    #[error("requested key length {0} exceeds the HKDF-SHA256 maximum of 8160 bytes")]
    LengthTooLarge(usize),
}
