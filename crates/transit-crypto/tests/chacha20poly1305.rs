//! Our ChaCha20-Poly1305 against ring's: every length 0..=2300, windows around the 1 KiB vector
//! chunks, the 128-byte IFMA groups and Noise's largest message (65,519 bytes of plaintext),
//! random keys and nonces (counters in the top nonce words included), tampered tags and
//! ciphertexts. Skipped, saying so, on a CPU without AVX-512F and IFMA (where it is not offered).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use wormhole_transit_crypto::chacha;

fn ring_seal(key: &[u8; 32], nonce: &[u8; 12], pt: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let k = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).unwrap());
    let mut ct = pt.to_vec();
    let tag = k
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::empty(), &mut ct)
        .unwrap();
    (ct, tag.as_ref().try_into().unwrap())
}

fn check(key: &[u8; 32], nonce: &[u8; 12], pt: &[u8]) {
    let len = pt.len();
    let (want_ct, want_tag) = ring_seal(key, nonce, pt);
    let mut buf = pt.to_vec();
    let tag = chacha::seal(key, nonce, &mut buf);
    assert!(buf == want_ct, "ciphertext differs at {len} bytes");
    assert_eq!(tag, want_tag, "tag differs at {len} bytes");
    let mut bad = tag;
    bad[len % 16] ^= 1 << (len % 8);
    assert!(
        !chacha::open(key, nonce, &mut buf, &bad),
        "bad tag accepted at {len}"
    );
    assert!(buf == want_ct, "a refused open changed the buffer at {len}");
    if len > 0 {
        buf[len / 2] ^= 0x40;
        assert!(
            !chacha::open(key, nonce, &mut buf, &tag),
            "changed ciphertext accepted at {len}"
        );
        buf[len / 2] ^= 0x40;
    }
    assert!(chacha::open(key, nonce, &mut buf, &tag), "open failed at {len}");
    assert!(buf == pt, "open gave other plaintext at {len}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + len) as u8).collect()
}

fn skip() -> bool {
    if !chacha::available() {
        eprintln!("skipped: this CPU lacks AVX-512F or AVX-512 IFMA, so chacha is not offered");
        return true;
    }
    false
}

#[test]
fn every_length_up_to_2300() {
    if skip() {
        return;
    }
    let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let nonce: [u8; 12] = core::array::from_fn(|i| (i * 13 + 1) as u8);
    for len in 0..=2300 {
        check(&key, &nonce, &pattern(len));
    }
}

#[test]
fn around_chunk_group_and_noise_limits() {
    if skip() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(8439);
    for centre in [1024usize, 2048, 4096, 16 * 1024, 65_519, 65_535, 65_536] {
        for len in centre - 20..=centre + 20 {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 12];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            let mut pt = vec![0u8; len];
            rng.fill_bytes(&mut pt);
            check(&key, &nonce, &pt);
        }
    }
}

#[test]
fn noise_style_nonces() {
    if skip() {
        return;
    }
    // Noise's ChaChaPoly nonce: four zero bytes, then the 64-bit message counter little-endian.
    let key = [0x42u8; 32];
    for n in [0u64, 1, 255, 256, 1 << 32, u64::MAX - 1] {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_le_bytes());
        check(&key, &nonce, &pattern(65_519));
        check(&key, &nonce, &pattern(17));
    }
}
