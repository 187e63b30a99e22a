//! The audited path: RustCrypto's `crypto_secretbox` (XSalsa20-Poly1305), detached and in
//! place. Used when `WORMHOLE_TRANSIT_CRYPTO=rustcrypto`, when the crate is built without the
//! `simd` feature, when the hand-written engine fails its self-test, and as the reference the
//! tests compare every other engine with. No `unsafe`, no state.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use poly1305::Poly1305;
use poly1305::universal_hash::UniversalHash;

/// Encrypt `buf` in place; returns the tag.
pub(crate) fn seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
    let cipher = XSalsa20Poly1305::new(key.into());
    let mut out = [0u8; 16];
    // Detached encryption without associated data fails only for buffers over 2^38 bytes
    // (Salsa20's keystream length); records are capped far below that.
    if let Ok(tag) = cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), b"", buf) {
        out.copy_from_slice(&tag);
    }
    out
}

/// Check `tag` (constant time, inside the crate) and decrypt `buf` in place.
pub(crate) fn open(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    let cipher = XSalsa20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(nonce), b"", buf, Tag::from_slice(tag))
        .is_ok()
}

/// The Poly1305 tag of `msg` under the one-time key `pk` with the `poly1305` crate: whole
/// blocks through its parallel (AVX2 when present) path, the tail NaCl-style.
pub(crate) fn poly1305(pk: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let mut poly = Poly1305::new(pk.into());
    let full = msg.len() / 16 * 16;
    poly.update_padded(&msg[..full]);
    poly.compute_unpadded(&msg[full..]).into()
}
