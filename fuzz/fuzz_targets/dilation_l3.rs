//! Fuzz target: Dilation L3 record parsing (the plaintext of every decrypted frame).
//! Parsing never panics, and whatever parses re-encodes to exactly the input (the codec is
//! canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::l3::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::parse(data) {
        assert_eq!(record.encode(), data);
        assert_eq!(record.encoded_len(), data.len());
    }
});
