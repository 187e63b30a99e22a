//! Fuzz target: the mailbox server's HTTP request-head parser and router (before the WebSocket
//! upgrade).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_server::mailbox::http::{parse_head, route};

fuzz_target!(|data: &[u8]| {
    if let Some(req) = parse_head(data) {
        let _ = req.header("upgrade");
        let _ = route(&req);
    }
});
