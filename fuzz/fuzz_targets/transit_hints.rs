//! Fuzz target: the peer's `transit` message (abilities and hints) and relay URL strings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::transit::TransitMsg;
use wormhole_proto::transit::hints::parse_relay_url;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(m) = TransitMsg::from_value(&v) {
            let _ = m.to_value();
            let _ = m.direct_hints().count() + m.relay_hints().count();
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_relay_url(s);
    }
});
