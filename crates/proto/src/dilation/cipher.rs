//! The transport cipher of one direction of a Dilation connection: Noise's `CipherState` for
//! `ChaChaPoly` (ChaCha20-Poly1305 with the 96-bit nonce `0u32 ‖ n as u64 little-endian` and an
//! empty associated data), applied in place on the caller's buffer.
//!
//! `snow` does the handshake; after the split this module takes its two keys so that a frame is
//! sealed where the record was encoded and opened where the frame was read, with no copy of the
//! payload (`snow`'s transport copies every message once each way). The AEAD is our vector
//! ChaCha20-Poly1305 (`wormhole_transit_crypto::chacha`) where the CPU runs it, else ring's.
//!
//! Owns: the key, the nonce counter and the splitting rule of Python's Dilation (plaintext cut
//! into pieces of at most [`NOISE_MAX_PAYLOAD`] bytes, each sealed with its own nonce; an
//! inbound frame cut into pieces of [`NOISE_MAX_CIPHERTEXT`] bytes). Must not: frame, parse
//! records, or know which side it serves.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::noise::{NOISE_MAX_CIPHERTEXT, NOISE_MAX_PAYLOAD, NOISE_TAG_LEN, NoiseError, encrypted_len};

/// One direction's key and nonce counter.
pub(super) struct CipherState {
    key: Aead,
    nonce: u64,
}

enum Aead {
    /// `wormhole_transit_crypto::chacha`, on AVX-512F and IFMA.
    #[cfg(feature = "simd")]
    Vector(zeroize::Zeroizing<[u8; 32]>),
    Ring(Box<LessSafeKey>),
}

impl Aead {
    fn new(key: &[u8; 32]) -> Result<Aead, NoiseError> {
        #[cfg(feature = "simd")]
        if wormhole_transit_crypto::chacha::available() {
            return Ok(Aead::Vector(zeroize::Zeroizing::new(*key)));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| NoiseError::Key)?;
        Ok(Aead::Ring(Box::new(LessSafeKey::new(key))))
    }

    /// Encrypts `buf` in place; the tag.
    fn seal(&self, nonce: [u8; 12], buf: &mut [u8]) -> Result<[u8; NOISE_TAG_LEN], NoiseError> {
        match self {
            #[cfg(feature = "simd")]
            Aead::Vector(k) => Ok(wormhole_transit_crypto::chacha::seal(k, &nonce, buf)),
            Aead::Ring(k) => {
                let tag = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), buf)
                    .map_err(|_| NoiseError::Key)?;
                tag.as_ref().try_into().map_err(|_| NoiseError::Key)
            }
        }
    }

    /// Checks the tag at the end of `piece` and decrypts the rest in place; its length.
    fn open(&self, nonce: [u8; 12], piece: &mut [u8]) -> Option<usize> {
        match self {
            #[cfg(feature = "simd")]
            Aead::Vector(k) => {
                let len = piece.len().checked_sub(NOISE_TAG_LEN)?;
                let (data, tag) = piece.split_at_mut(len);
                let tag: &[u8; NOISE_TAG_LEN] = (&*tag).try_into().ok()?;
                wormhole_transit_crypto::chacha::open(k, &nonce, data, tag).then_some(len)
            }
            Aead::Ring(k) => k
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), piece)
                .ok()
                .map(|p| p.len()),
        }
    }
}

impl std::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherState")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl CipherState {
    /// A cipher starting at nonce 0 under `key` (a key of Noise's split).
    pub(super) fn new(key: &[u8; 32]) -> Result<CipherState, NoiseError> {
        Ok(CipherState {
            key: Aead::new(key)?,
            nonce: 0,
        })
    }

    /// Messages sealed or opened so far (the next nonce).
    pub(super) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The current nonce, not yet used; Noise reserves 2^64 - 1, so the counter stops before it.
    fn peek_nonce(&self) -> Option<[u8; 12]> {
        let n = self.nonce;
        if n == u64::MAX {
            return None;
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        Some(bytes)
    }

    /// The next nonce, used up.
    fn next_nonce(&mut self) -> Option<[u8; 12]> {
        let bytes = self.peek_nonce()?;
        self.nonce += 1;
        Some(bytes)
    }

    /// Encrypts `buf[start..]` in place into the pieces of one frame payload (each piece's
    /// ciphertext followed by its tag). An empty plaintext gives one 16-byte message.
    pub(super) fn seal_in_place(&mut self, buf: &mut Vec<u8>, start: usize) -> Result<(), NoiseError> {
        let plain_len = buf.len().saturating_sub(start);
        let pieces = plain_len.div_ceil(NOISE_MAX_PAYLOAD).max(1);
        buf.resize(start + encrypted_len(plain_len), 0);
        // Spread the pieces out from the last one, leaving a tag's room after each.
        for i in (1..pieces).rev() {
            let from = start + i * NOISE_MAX_PAYLOAD;
            let len = (plain_len - i * NOISE_MAX_PAYLOAD).min(NOISE_MAX_PAYLOAD);
            buf.copy_within(from..from + len, start + i * NOISE_MAX_CIPHERTEXT);
        }
        for i in 0..pieces {
            let at = start + i * NOISE_MAX_CIPHERTEXT;
            let len = plain_len
                .saturating_sub(i * NOISE_MAX_PAYLOAD)
                .min(NOISE_MAX_PAYLOAD);
            let nonce = self.next_nonce().ok_or(NoiseError::NonceExhausted)?;
            let piece = buf.get_mut(at..at + len + NOISE_TAG_LEN).ok_or(NoiseError::Key)?;
            let (plain, tag_room) = piece.split_at_mut(len);
            let tag = self.key.seal(nonce, plain)?;
            tag_room.copy_from_slice(&tag);
        }
        Ok(())
    }

    /// Decrypts one frame payload in place; the plaintext (the pieces joined) is the first
    /// returned number of bytes of `frame`. Any failure means the connection must be dropped:
    /// pieces before the failing one used their nonces (a piece that fails to authenticate
    /// does not, as in Noise).
    pub(super) fn open_in_place(&mut self, frame: &mut [u8]) -> Result<usize, NoiseError> {
        let total = frame.len();
        let pieces = total.div_ceil(NOISE_MAX_CIPHERTEXT).max(1);
        let mut out_len = 0;
        for i in 0..pieces {
            let at = i * NOISE_MAX_CIPHERTEXT;
            let end = (at + NOISE_MAX_CIPHERTEXT).min(total);
            if end - at < NOISE_TAG_LEN {
                return Err(NoiseError::Decrypt { piece: i });
            }
            // As Noise's DecryptWithAd: a piece that does not authenticate leaves the nonce.
            let nonce = self.peek_nonce().ok_or(NoiseError::NonceExhausted)?;
            let piece = frame.get_mut(at..end).ok_or(NoiseError::Decrypt { piece: i })?;
            let plain_len = self
                .key
                .open(nonce, piece)
                .ok_or(NoiseError::Decrypt { piece: i })?;
            self.nonce += 1;
            if i > 0 {
                frame.copy_within(at..at + plain_len, out_len);
            }
            out_len += plain_len;
        }
        Ok(out_len)
    }
}
