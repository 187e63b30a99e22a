//! Fuzz target: a peer's `pake` body (JSON `{"pake_v1": hex}`) through parsing and SPAKE2 finish.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::key::{Pake, parse_pake_body};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_pake_body(data);
    let (pake, _) = Pake::start("4-purple-sausages", "fuzz");
    let finished = pake.finish(data);
    // finish fails whenever parsing does.
    assert!(parsed.is_ok() || finished.is_err());
});
