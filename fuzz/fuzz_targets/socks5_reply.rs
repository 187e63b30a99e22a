//! The SOCKS5 proxy's answers (method choice and CONNECT reply) never panic, and a complete
//! reply's length never exceeds the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wormhole_proto::socks5::{parse_connect_reply, parse_method_reply};

fuzz_target!(|data: &[u8]| {
    let _ = parse_method_reply(data);
    if let Ok(Some(n)) = parse_connect_reply(data) {
        assert!(n <= data.len());
    }
});
