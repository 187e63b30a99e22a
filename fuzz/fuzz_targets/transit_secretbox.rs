//! Fuzz target: every secretbox engine of `wormhole-transit-crypto` (RustCrypto and each
//! hand-written Salsa20 × Poly1305 combination this CPU runs, picked by the first byte) against
//! the `crypto_secretbox` crate on arbitrary keys, nonces and plaintexts: the same ciphertext and
//! tag, it opens, and a flipped bit anywhere is refused. The same input also drives each Salsa20
//! backend from an arbitrary block counter (biased to just below 2^32 and 2^64, so the carry into
//! the high word is reached) against the `salsa20` crate, each Poly1305 backend against the
//! `poly1305` crate, and the record codec (counter nonces) of the engine the process chose.
#![no_main]
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use libfuzzer_sys::fuzz_target;
use poly1305::Poly1305;
use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use wormhole_proto::transit::{RECORD_HEADER, RecordOpener, RecordSealer};
use wormhole_transit_crypto::{Engine, Poly1305Backend, Salsa20Backend};

/// Bytes before the plaintext: selector, key, nonce, block counter, counter mode.
const HEAD: usize = 1 + 32 + 24 + 8 + 1;

fn engines() -> &'static [Engine] {
    static ALL: std::sync::OnceLock<Vec<Engine>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Engine::all().into_iter().filter_map(|(_, e)| e.ok()).collect())
}

fn block_counter(raw: u64, mode: u8) -> u64 {
    match mode % 4 {
        0 => (1u64 << 32).wrapping_sub(raw % 64),
        1 => u64::MAX - raw % 64,
        2 => raw % 1024,
        _ => raw,
    }
}

fn check_engine(engine: Engine, key: &[u8; 32], nonce: &[u8; 24], plain: &[u8], flip: usize) {
    let mut theirs = plain.to_vec();
    let rtag = XSalsa20Poly1305::new(key.into())
        .encrypt_in_place_detached(Nonce::from_slice(nonce), b"", &mut theirs)
        .unwrap_or_default();
    let mut ours = plain.to_vec();
    let tag = engine.seal(key, nonce, &mut ours);
    assert_eq!(ours, theirs, "{engine:?}");
    assert_eq!(&tag[..], &rtag[..], "{engine:?}");
    let mut bad_tag = tag;
    bad_tag[flip % 16] ^= 1 << (flip % 8);
    assert!(!engine.open(key, nonce, &mut ours, &bad_tag));
    if !plain.is_empty() {
        let mut bad = ours.clone();
        bad[flip % plain.len()] ^= 1 << (flip % 8);
        assert!(!engine.open(key, nonce, &mut bad, &tag));
    }
    assert!(engine.open(key, nonce, &mut ours, &tag));
    assert_eq!(ours, plain);
}

fn check_salsa(key: &[u8; 32], nonce8: &[u8; 8], block: u64, plain: &[u8]) {
    // The reference cannot run past the end of the 2^64-block keystream: stay below it.
    let len = plain.len().min(((u64::MAX - block) as usize).saturating_mul(64));
    let mut want = plain[..len].to_vec();
    let mut cipher = salsa20::Salsa20::new(key.into(), nonce8.into());
    if cipher.try_seek(block as u128 * 64).is_err() || cipher.try_apply_keystream(&mut want).is_err() {
        return;
    }
    for b in Salsa20Backend::ALL {
        let mut got = plain[..len].to_vec();
        if b.xor_keystream(key, nonce8, block, &mut got).is_ok() {
            assert_eq!(got, want, "{b:?} at block {block:#x}");
        }
    }
}

fn check_poly(key: &[u8; 32], msg: &[u8]) {
    use poly1305::universal_hash::KeyInit;
    let want: [u8; 16] = Poly1305::new(key.into()).compute_unpadded(msg).into();
    for b in Poly1305Backend::ALL {
        if let Ok(got) = b.tag(key, msg) {
            assert_eq!(got, want, "{b:?}");
        }
    }
}

/// Records with counter nonces: skip `skip` records, then seal `plain`; same bytes as the
/// reference with that nonce, and it opens after the same number of records.
fn check_records(key: &[u8; 32], skip: u64, plain: &[u8]) {
    let mut sealer = RecordSealer::new(key);
    let mut opener = RecordOpener::new(key, plain.len());
    for _ in 0..skip {
        if let Ok(mut r) = sealer.seal(b"") {
            assert!(opener.open_record(&mut r).is_ok());
        }
    }
    let Ok(mut record) = sealer.seal(plain) else { return };
    let mut nonce = [0u8; 24];
    nonce[16..].copy_from_slice(&skip.to_be_bytes());
    let mut theirs = plain.to_vec();
    let tag = XSalsa20Poly1305::new(key.into())
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut theirs)
        .unwrap_or_default();
    let body = &record[RECORD_HEADER..];
    assert_eq!(&body[..24], &nonce);
    assert_eq!(&body[24..40], &tag[..]);
    assert_eq!(&body[40..], &theirs[..]);
    assert_eq!(opener.open_record(&mut record).map(|p| p.to_vec()), Ok(plain.to_vec()));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEAD {
        return;
    }
    let engines = engines();
    let engine = engines[data[0] as usize % engines.len()];
    let key: [u8; 32] = data[1..33].try_into().unwrap_or([0; 32]);
    let nonce: [u8; 24] = data[33..57].try_into().unwrap_or([0; 24]);
    let raw = u64::from_le_bytes(data[57..65].try_into().unwrap_or([0; 8]));
    let mode = data[65];
    let plain = &data[HEAD..];
    let flip = raw as usize;

    check_engine(engine, &key, &nonce, plain, flip);
    let nonce8: [u8; 8] = nonce[16..].try_into().unwrap_or([0; 8]);
    check_salsa(&key, &nonce8, block_counter(raw, mode), plain);
    check_poly(&key, plain);
    check_records(&key, u64::from(mode) % 4, plain);
});
