//! Fuzz target: opening an untrusted secretbox blob (nonce ‖ tag ‖ ciphertext).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::key::{decrypt_data, encrypt_data_with_nonce};

/// The §7.2 phase key for (aaaaaaaaaa, version), so the seed opens and mutants exercise the MAC.
const KEY: [u8; 32] = [
    0x4f, 0xa4, 0x23, 0x75, 0x1a, 0xad, 0xa2, 0xc2, 0x08, 0x96, 0x85, 0x36, 0xe9, 0x13, 0xb1, 0x13, 0x9b,
    0x9e, 0xf9, 0x14, 0xac, 0xc9, 0x0e, 0x49, 0x2b, 0x08, 0x82, 0x6e, 0x25, 0x69, 0x0b, 0x3c,
];

fuzz_target!(|data: &[u8]| {
    let key = KEY;
    let _ = decrypt_data(&key, data);
    // Anything sealed with the key opens again unchanged.
    let sealed = encrypt_data_with_nonce(&key, &[7u8; 24], data);
    assert_eq!(decrypt_data(&key, &sealed).as_deref(), Ok(data));
});
