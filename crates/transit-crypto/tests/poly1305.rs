//! Poly1305 backends (RustCrypto, our radix 2^44 scalar code, AVX-512 IFMA) against fixed
//! answers: RFC 8439 appendix A.3, and vectors whose accumulator ends at or next to the modulus
//! or 2^128 (`poly1305_near_p.txt`, made with Python's big integers), at lengths that put the
//! crafted block in IFMA's vector part, its last group and its scalar tail. Every test runs every
//! backend this CPU has and prints the ones it skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use wormhole_transit_crypto::Poly1305Backend;

fn backends() -> Vec<Poly1305Backend> {
    Poly1305Backend::ALL
        .into_iter()
        .filter(|b| match b.check() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("skipped Poly1305 backend {b:?}: {why}");
                false
            }
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn key32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

fn check_all(key: &[u8; 32], msg: &[u8], want: &str, what: &str) {
    for b in backends() {
        let got = b.tag(key, msg).unwrap();
        assert_eq!(
            hex::encode(got),
            want,
            "{what}, backend {b:?}, {} bytes",
            msg.len()
        );
    }
}

const IETF: &[u8] =
    b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF \
Internet-Draft or RFC and any statement made within the context of an IETF activity is considered \
an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as \
written and electronic communications made at any time or place, which are addressed to";

const JABBERWOCKY: &[u8] = b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n\
All mimsy were the borogoves,\nAnd the mome raths outgrabe.";

/// RFC 8439 A.3, test vectors #1 to #11 (key, message, tag).
#[test]
fn rfc8439_a3() {
    let z = "00".repeat(16);
    let r1 = format!("01{}", "00".repeat(31));
    let r2 = format!("02{}", "00".repeat(31));
    let r10 = format!("01000000000000000400000000000000{z}");
    let m10 =
        "e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000";
    let vectors: Vec<(String, Vec<u8>, &str)> = vec![
        ("00".repeat(32), vec![0; 64], "00000000000000000000000000000000"),
        (
            format!("{z}36e5f6b5c5e06070f0efca96227a863e"),
            IETF.to_vec(),
            "36e5f6b5c5e06070f0efca96227a863e",
        ),
        (
            format!("36e5f6b5c5e06070f0efca96227a863e{z}"),
            IETF.to_vec(),
            "f3477e7cd95417af89a6b8794c310cf0",
        ),
        (
            "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0".into(),
            JABBERWOCKY.to_vec(),
            "4541669a7eaaee61e708dc7cbcc5eb62",
        ),
        (
            r2.clone(),
            unhex(&"ff".repeat(16)),
            "03000000000000000000000000000000",
        ),
        (
            format!("02{}{}", "00".repeat(15), "ff".repeat(16)),
            unhex(&format!("02{}", "00".repeat(15))),
            "03000000000000000000000000000000",
        ),
        (
            r1.clone(),
            unhex(&format!(
                "{}f0{}11{}",
                "ff".repeat(16),
                "ff".repeat(15),
                "00".repeat(15)
            )),
            "05000000000000000000000000000000",
        ),
        (
            r1.clone(),
            unhex(&format!(
                "{}fb{}{}",
                "ff".repeat(16),
                "fe".repeat(15),
                "01".repeat(16)
            )),
            "00000000000000000000000000000000",
        ),
        (
            r2,
            unhex(&format!("fd{}", "ff".repeat(15))),
            "faffffffffffffffffffffffffffffff",
        ),
        (
            r10.clone(),
            unhex(&format!("{m10}01{}", "00".repeat(15))),
            "14000000000000005500000000000000",
        ),
        (r10, unhex(m10), "13000000000000000000000000000000"),
    ];
    for (i, (k, m, t)) in vectors.iter().enumerate() {
        check_all(&key32(k), m, t, &format!("RFC 8439 A.3 #{}", i + 1));
    }
}

/// The near-modulus vectors: a missing or wrong final reduction, or a carry lost when adding s,
/// changes these tags.
#[test]
fn accumulator_next_to_the_modulus() {
    let text = include_str!("poly1305_near_p.txt");
    let mut n = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (key, len, seed, j) = (
            key32(f[0]),
            f[1].parse::<usize>().unwrap(),
            f[2].parse::<usize>().unwrap(),
            f[3].parse::<usize>().unwrap(),
        );
        let mut msg: Vec<u8> = (0..len).map(|i| (i * 31 + seed) as u8).collect();
        msg[16 * j..16 * j + 16].copy_from_slice(&unhex(f[4]));
        check_all(&key, &msg, f[5], &format!("near-p vector {n}"));
        n += 1;
    }
    assert!(n > 150, "{n} vectors");
}

fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    Poly1305::new(key.into()).compute_unpadded(msg).into()
}

/// Random keys and messages of every length up to 1100 and around the IFMA group sizes.
#[test]
fn matches_the_poly1305_crate() {
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut lens: Vec<usize> = (0..1100).collect();
    lens.extend([2047, 2048, 2049, 4096, 16383, 16384, 16385, 16400, 70001]);
    let backends = backends();
    for len in lens {
        let key: [u8; 32] = core::array::from_fn(|_| next() as u8);
        let msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let want = reference(&key, &msg);
        for b in &backends {
            assert_eq!(b.tag(&key, &msg).unwrap(), want, "{b:?}, {len} bytes");
        }
    }
}

/// Wycheproof-style extremes: r at its clamped maximum, s all ones or zero, messages all ones
/// or zeros, so every limb carries at its largest.
#[test]
fn extreme_values() {
    let mut keys = vec![[0xffu8; 32], [0u8; 32]];
    let mut k = [0xffu8; 32];
    k[16..].fill(0);
    keys.push(k);
    let mut k = [0u8; 32];
    k[16..].fill(0xff);
    keys.push(k);
    for len in [
        0usize, 15, 16, 17, 127, 128, 129, 255, 256, 257, 383, 384, 1024, 16384, 16399,
    ] {
        for key in &keys {
            for fill in [0xffu8, 0, 0xfe] {
                let msg = vec![fill; len];
                let want = reference(key, &msg);
                for b in backends() {
                    assert_eq!(b.tag(key, &msg).unwrap(), want, "{b:?}, {len} x {fill:#x}");
                }
            }
        }
    }
}
