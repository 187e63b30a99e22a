//! Fuzz target: mailbox-server frames and client commands (JSON) through the shared wire types.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wormhole_proto::server_msg::{ClientCommand, ServerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<ServerMessage>(data) {
        let _ = m.server_tx();
        let _ = serde_json::to_vec(&m);
    }
    if let Ok(c) = serde_json::from_slice::<ClientCommand>(data) {
        let _ = c.id();
        let _ = serde_json::to_vec(&c);
    }
});
