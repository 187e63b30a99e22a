//! NaCl secretbox (XSalsa20-Poly1305) with the wormhole wire layout nonce(24) ‖ tag(16) ‖
//! ciphertext (docs/protocol.md §2.4).
//!
//! Owns: sealing and opening one blob. Must not: derive keys or pick which key a phase uses.
//! Input to [`decrypt_data`] is untrusted: any length and content gives a typed error, never a
//! panic.

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use rand::RngCore;

use super::KeyError;

/// Length of the random nonce prefix.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Bytes added to a plaintext by [`encrypt_data`].
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// secretbox with a fresh random nonce; returns nonce ‖ tag ‖ ciphertext.
pub fn encrypt_data(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    encrypt_data_with_rng(key, plaintext, &mut rand::rngs::OsRng)
}

/// secretbox with a nonce drawn from `rng` (for deterministic tests).
pub fn encrypt_data_with_rng<R: RngCore + ?Sized>(key: &[u8; 32], plaintext: &[u8], rng: &mut R) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    encrypt_data_with_nonce(key, &nonce, plaintext)
}

/// secretbox with a given nonce (for tests and known-answer vectors).
pub fn encrypt_data_with_nonce(key: &[u8; 32], nonce: &[u8; 24], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XSalsa20Poly1305::new(key.into());
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(nonce);
    // Encryption with the in-memory buffer API fails only for plaintexts beyond the cipher's
    // 256 GiB limit, which a Vec cannot reach here; the (impossible) error yields an empty body
    // that the peer will reject, rather than a panic.
    match cipher.encrypt(Nonce::from_slice(nonce), plaintext) {
        Ok(sealed) => out.extend_from_slice(&sealed),
        Err(_) => out.clear(),
    }
    out
}

/// Open nonce ‖ tag ‖ ciphertext.
pub fn decrypt_data(key: &[u8; 32], data: &[u8]) -> Result<Vec<u8>, KeyError> {
    if data.len() < OVERHEAD {
        return Err(KeyError::TooShort);
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let cipher = XSalsa20Poly1305::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| KeyError::DecryptFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// docs/protocol.md §7.1 secretbox vector.
    #[test]
    fn secretbox_vector() {
        let key: [u8; 32] = arr("ddc543ef8e4629a603d39dd0307a51bb1e7adb9cb259f6b085c91d0842a18679");
        let nonce: [u8; 24] = arr("2d5e43eb465aa42e750f991e425bee485f06abad7e04af80");
        let plaintext = hex::decode("edc089a518219ec1cee184e89d2d37af").unwrap();
        let expected = "2d5e43eb465aa42e750f991e425bee485f06abad7e04af80fe318e39d0e4ce932d2b54b300c56d2cda55ee5f0488d63eb1d5f76f7919a49a";
        let wire = encrypt_data_with_nonce(&key, &nonce, &plaintext);
        assert_eq!(hex::encode(&wire), expected);
        assert_eq!(decrypt_data(&key, &wire).unwrap(), plaintext);
    }

    #[test]
    fn round_trip_random_nonce() {
        let key = [7u8; 32];
        let a = encrypt_data(&key, b"hello");
        let b = encrypt_data(&key, b"hello");
        assert_eq!(a.len(), 5 + OVERHEAD);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "nonces must be fresh");
        assert_eq!(decrypt_data(&key, &a).unwrap(), b"hello");
        assert_eq!(decrypt_data(&key, &encrypt_data(&key, b"")).unwrap(), b"");
    }

    #[test]
    fn rejects_short_wrong_key_and_tampering() {
        let key = [7u8; 32];
        for n in 0..OVERHEAD {
            assert_eq!(decrypt_data(&key, &vec![0u8; n]), Err(KeyError::TooShort));
        }
        let wire = encrypt_data(&key, b"some data");
        assert_eq!(decrypt_data(&[8u8; 32], &wire), Err(KeyError::DecryptFailed));
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 1;
            assert_eq!(decrypt_data(&key, &bad), Err(KeyError::DecryptFailed), "byte {i}");
        }
        assert_eq!(
            decrypt_data(&key, &wire[..wire.len() - 1]),
            Err(KeyError::DecryptFailed)
        );
    }
}
