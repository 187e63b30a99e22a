//! ChaCha20-Poly1305 speed, ours against ring's, sealing 64 KiB messages (one core).
//! `cargo run --release -p wormhole-transit-crypto --example chacha_speed [MiB]`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use wormhole_transit_crypto::chacha;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let key = [7u8; 32];
    let ring_key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
    let mut buf = vec![1u8; 65_519];
    let n = mib * (1 << 20) / buf.len();
    println!("vector ChaCha20-Poly1305 available: {}", chacha::available());
    for round in 0..3 {
        let t = Instant::now();
        for i in 0..n {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
            std::hint::black_box(chacha::seal(&key, &nonce, &mut buf));
        }
        let ours = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..n {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
            let nonce = Nonce::assume_unique_for_key(nonce);
            let tag = ring_key
                .seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf)
                .unwrap();
            let _ = std::hint::black_box(tag);
        }
        let ring = t.elapsed().as_secs_f64();
        let mb = (n * buf.len()) as f64 / 1e6;
        println!(
            "round {round}: ours {:.0} MB/s, ring {:.0} MB/s ({mb:.0} MB each)",
            mb / ours,
            mb / ring
        );
    }
}
