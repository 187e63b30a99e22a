//! Fuzz target: our hand-written transit secretbox (AVX-512 Salsa20 and IFMA Poly1305 when the
//! CPU has them) against the `crypto_secretbox` crate, on arbitrary keys, record numbers and
//! plaintexts: the same record bytes, and a flipped bit anywhere is refused.
#![no_main]
use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use libfuzzer_sys::fuzz_target;
use wormhole_proto::transit::{RECORD_HEADER, RecordOpener, RecordSealer};

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let key: [u8; 32] = data[..32].try_into().unwrap_or([0; 32]);
    // How many records to skip first (the nonce counter), then the plaintext.
    let skip = data[32] as u64 % 4;
    let plain = &data[33..];
    let mut sealer = RecordSealer::new(&key);
    for _ in 0..skip {
        let _ = sealer.seal(b"");
    }
    let Ok(record) = sealer.seal(plain) else { return };

    let mut nonce = [0u8; 24];
    nonce[16..].copy_from_slice(&skip.to_be_bytes());
    let mut theirs = plain.to_vec();
    let tag = XSalsa20Poly1305::new(&key.into())
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut theirs)
        .unwrap_or_default();
    let body = &record[RECORD_HEADER..];
    assert_eq!(&body[..24], &nonce);
    assert_eq!(&body[24..40], &tag[..]);
    assert_eq!(&body[40..], &theirs[..]);

    // It opens after the same number of records, and any flipped bit is refused.
    let open = |rec: &mut Vec<u8>| {
        // An opener that has already opened `skip` (empty) records.
        let mut o = RecordOpener::new(&key, plain.len());
        let mut earlier = RecordSealer::new(&key);
        for _ in 0..skip {
            if let Ok(mut r) = earlier.seal(b"") {
                let _ = o.open_record(&mut r);
            }
        }
        o.open_record(rec).map(|p| p.to_vec())
    };
    assert_eq!(open(&mut record.clone()), Ok(plain.to_vec()));
    if !plain.is_empty() {
        let mut bad = record.clone();
        let bit = (data[0] as usize * 8 + data[1] as usize) % ((bad.len() - RECORD_HEADER) * 8);
        bad[RECORD_HEADER + bit / 8] ^= 1 << (bit % 8);
        assert!(open(&mut bad).is_err());
    }
});
