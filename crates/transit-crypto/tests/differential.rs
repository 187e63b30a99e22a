//! Every engine (RustCrypto and each hand-written Salsa20 × Poly1305 combination this CPU runs;
//! the skipped ones are printed) against `crypto_secretbox` directly: every length 0..=2300,
//! windows around each 64-, 512- and 1024-byte boundary of the plaintext and of the keystream
//! (which runs 32 bytes ahead: the Poly1305 key comes first), random keys and nonces, tampered
//! tags. The Salsa20 backends alone against the `salsa20` crate at block counters across 2^32.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use wormhole_transit_crypto::{Engine, Salsa20Backend};

fn reference(key: &[u8; 32], nonce: &[u8; 24], pt: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let mut ct = pt.to_vec();
    let tag = XSalsa20Poly1305::new(key.into())
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", &mut ct)
        .unwrap();
    (ct, tag.into())
}

/// Seal with `engine` and compare with the reference; open it again; refuse a flipped tag bit
/// without touching the buffer.
fn check(engine: Engine, key: &[u8; 32], nonce: &[u8; 24], pt: &[u8]) {
    let (want_ct, want_tag) = reference(key, nonce, pt);
    let mut buf = pt.to_vec();
    let tag = engine.seal(key, nonce, &mut buf);
    let len = pt.len();
    assert!(buf == want_ct, "{engine:?}: ciphertext differs at {len} bytes");
    assert_eq!(tag, want_tag, "{engine:?}: tag differs at {len} bytes");
    let mut bad = tag;
    bad[len % 16] ^= 1 << (len % 8);
    assert!(
        !engine.open(key, nonce, &mut buf, &bad),
        "{engine:?}: bad tag accepted at {len}"
    );
    assert!(
        buf == want_ct,
        "{engine:?}: refused open changed the buffer at {len}"
    );
    assert!(
        engine.open(key, nonce, &mut buf, &tag),
        "{engine:?}: open failed at {len}"
    );
    assert!(buf == pt, "{engine:?}: open gave other plaintext at {len}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + len) as u8).collect()
}

#[test]
fn every_length_up_to_2300() {
    let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let nonce: [u8; 24] = core::array::from_fn(|i| (i * 13 + 1) as u8);
    for engine in Engine::runnable() {
        for len in 0..=2300 {
            check(engine, &key, &nonce, &pattern(len));
        }
    }
}

/// Lengths within a few bytes of each multiple of 64 (up to 8 KiB) and of 512 and 1024 (up to
/// 40 KiB), measured both in plaintext and in keystream bytes.
fn boundary_lengths() -> Vec<usize> {
    let mut v = Vec::new();
    let mut around = |m: usize| {
        for d in -3i64..=3 {
            for shift in [0i64, -32] {
                let l = m as i64 + d + shift;
                if l > 2300 {
                    v.push(l as usize);
                }
            }
        }
    };
    (64..=8192).step_by(64).for_each(&mut around);
    (512..=40960).step_by(512).for_each(&mut around);
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn windows_around_block_boundaries() {
    let key: [u8; 32] = core::array::from_fn(|i| (i * 11 + 5) as u8);
    let nonce: [u8; 24] = core::array::from_fn(|i| (i * 3 + 7) as u8);
    let lens = boundary_lengths();
    for engine in Engine::runnable() {
        for &len in &lens {
            check(engine, &key, &nonce, &pattern(len));
        }
    }
}

#[test]
fn random_keys_nonces_and_lengths() {
    let mut rng = StdRng::seed_from_u64(0x5eed_b0c5);
    for engine in Engine::runnable() {
        for _ in 0..150 {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 24];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            let len = if rng.gen_bool(0.8) {
                rng.gen_range(0..3000)
            } else {
                rng.gen_range(3000..40000)
            };
            let mut pt = vec![0u8; len];
            rng.fill_bytes(&mut pt);
            check(engine, &key, &nonce, &pt);
        }
    }
}

/// The plain Salsa20 keystream from a given block on, against the `salsa20` crate: counters just
/// below, at and above 2^32 (the carry into the high word) and 2^33, with lengths that go
/// through the sixteen-block, eight-block and one-block paths.
#[test]
fn block_counters_across_2_pow_32() {
    let key: [u8; 32] = core::array::from_fn(|i| (i * 5 + 1) as u8);
    let nonce = [7u8, 1, 2, 3, 4, 5, 6, 0xff];
    let starts = [
        0u64,
        5,
        (1 << 32) - 17,
        (1 << 32) - 16,
        (1 << 32) - 9,
        (1 << 32) - 8,
        (1 << 32) - 1,
        1 << 32,
        (1 << 33) - 3,
        (1 << 40) - 5,
    ];
    let lens = [
        1usize,
        41,
        64,
        100,
        129,
        1024,
        1024 + 100,
        2048 + 128,
        3000,
        16 * 1024 + 7,
    ];
    for backend in Salsa20Backend::ALL {
        if let Err(why) = backend.check() {
            eprintln!("skipped Salsa20 backend {backend:?}: {why}");
            continue;
        }
        for &start in &starts {
            for &len in &lens {
                let mut want = pattern(len);
                let mut cipher = salsa20::Salsa20::new(&key.into(), &nonce.into());
                cipher.seek(start * 64);
                cipher.apply_keystream(&mut want);
                let mut got = pattern(len);
                backend.xor_keystream(&key, &nonce, start, &mut got).unwrap();
                assert!(got == want, "{backend:?}: block {start:#x}, {len} bytes");
            }
        }
    }
}
