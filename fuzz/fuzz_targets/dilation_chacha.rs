//! Fuzz target: our vector ChaCha20-Poly1305 (`wormhole_transit_crypto::chacha`, Dilation's
//! Noise transport cipher) against ring's on arbitrary keys, nonces and plaintexts: the same
//! ciphertext and tag, it opens, a flipped bit anywhere is refused and leaves the buffer as it
//! was, and arbitrary bytes offered as a sealed message never open. Does nothing on a CPU
//! without AVX-512F and IFMA, where the cipher is not offered.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use wormhole_transit_crypto::chacha;

/// Bytes before the plaintext: key, nonce, flip position.
const HEAD: usize = 32 + 12 + 2;

fuzz_target!(|data: &[u8]| {
    if !chacha::available() || data.len() < HEAD {
        return;
    }
    let key: [u8; 32] = data[..32].try_into().unwrap_or_default();
    let nonce: [u8; 12] = data[32..44].try_into().unwrap_or_default();
    let flip = usize::from(u16::from_le_bytes([data[44], data[45]]));
    let plain = &data[HEAD..];
    let Ok(unbound) = UnboundKey::new(&CHACHA20_POLY1305, &key) else {
        return;
    };
    let ring_key = LessSafeKey::new(unbound);
    let mut theirs = plain.to_vec();
    let Ok(rtag) =
        ring_key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut theirs)
    else {
        return;
    };
    let mut ours = plain.to_vec();
    let tag = chacha::seal(&key, &nonce, &mut ours);
    assert_eq!(ours, theirs);
    assert_eq!(&tag[..], rtag.as_ref());
    let mut bad_tag = tag;
    bad_tag[flip % 16] ^= 1 << (flip % 8);
    assert!(!chacha::open(&key, &nonce, &mut ours, &bad_tag));
    assert_eq!(ours, theirs);
    if !plain.is_empty() {
        let mut bad = ours.clone();
        bad[flip % plain.len()] ^= 1 << (flip % 8);
        assert!(!chacha::open(&key, &nonce, &mut bad, &tag));
    }
    // The fuzzer's bytes as a ciphertext with a tag of its choosing: refused (a forgery).
    let mut forged = plain.to_vec();
    let forged_tag: [u8; 16] = data[28..44].try_into().unwrap_or_default();
    if forged_tag != tag {
        assert!(!chacha::open(&key, &nonce, &mut forged, &forged_tag));
    }
    assert!(chacha::open(&key, &nonce, &mut ours, &tag));
    assert_eq!(ours, plain);
});
