//! Fuzz target: the incremental transit handshake checker fed arbitrary bytes in two chunks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::transit::{Expect, TransitKeys};

fuzz_target!(|data: &[u8]| {
    let keys = TransitKeys::new(b"123");
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut expect = Expect::new("receiver handshake", keys.receiver_handshake());
    if expect.feed(a).is_ok() {
        let _ = expect.feed(b);
    }
    let _ = expect.remaining();
});
