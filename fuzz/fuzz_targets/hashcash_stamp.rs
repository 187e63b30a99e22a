//! Fuzz target: a hashcash stamp from an untrusted client (`submit-permissions`), parsed and
//! checked by the mailbox server. The first byte picks the required bits; the rest is the stamp.
//! Parsing must never panic, and a stamp that checks must also parse to the same resource.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::hashcash;

fuzz_target!(|data: &[u8]| {
    let Some((&bits, rest)) = data.split_first() else {
        return;
    };
    let Ok(stamp) = std::str::from_utf8(rest) else {
        return;
    };
    let bits = u32::from(bits % 25);
    let parsed = hashcash::parse(stamp);
    if hashcash::check(stamp, "fuzz-resource", bits).is_ok() {
        let p = parsed.expect("a stamp that checks parses");
        assert_eq!(p.resource, "fuzz-resource");
        assert!(p.bits >= bits);
    }
});
