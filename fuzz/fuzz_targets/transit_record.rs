//! Fuzz target: a stream of transit records (length-prefixed secretbox) through the opener.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::transit::{RecordOpener, RecordSealer};

/// The §7.2 sender record key, so the seed record opens and mutants exercise the checks.
const KEY: [u8; 32] = [
    0xcd, 0xc2, 0xb2, 0xaa, 0x4c, 0x6b, 0x3c, 0xdc, 0x0e, 0xf1, 0x4e, 0x81, 0xcf, 0x46, 0x2a, 0xbb, 0xce,
    0x26, 0x1d, 0xe9, 0xe6, 0xcf, 0x36, 0xbb, 0xb1, 0x02, 0x1d, 0xbb, 0x03, 0x4d, 0xd5, 0xd9,
];

fuzz_target!(|data: &[u8]| {
    let key = KEY;
    // Split the input into records the way a reader of a TCP stream would.
    let mut opener = RecordOpener::new(&key, 64 * 1024);
    let mut buf = data.to_vec();
    while let Ok(Some(n)) = opener.complete_record(&buf) {
        let mut rec: Vec<u8> = buf.drain(..n).collect();
        if opener.open_record(&mut rec).is_err() {
            break;
        }
    }
    // A record we seal ourselves always opens to the same bytes.
    let mut sealer = RecordSealer::new(&key);
    let mut opener = RecordOpener::new(&key, data.len());
    if let Ok(mut rec) = sealer.seal(data) {
        assert_eq!(
            opener.open_record(&mut rec).map(|p| p.to_vec()),
            Ok(data.to_vec())
        );
    }
});
