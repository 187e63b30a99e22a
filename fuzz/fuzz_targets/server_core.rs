//! Fuzz target: the mailbox server's sans-IO core fed a sequence of untrusted frames from two
//! connections (one frame per input line; a line starting with `#` goes to the second
//! connection, `!` triggers a prune tick). Replies must never panic the server.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use wormhole_proto::server_msg::{Welcome, YourAddress};
use wormhole_server::mailbox::core::{Core, CoreConfig, Effects, Frame, Input};
use wormhole_server::mailbox::state::UsageSettings;
use wormhole_server::storage::Snapshot;

fuzz_target!(|data: &[u8]| {
    let config = CoreConfig {
        welcome: Welcome::default(),
        allow_list: true,
        usage: UsageSettings {
            enabled: true,
            blur: None,
        },
        max_mailbox_messages: 16,
        channel_expiration: 100.0,
        hashcash: None,
    };
    let mut core = Core::new(Snapshot::default(), config, rand::rngs::StdRng::seed_from_u64(1));
    let mut fx = Effects::default();
    let mut now = 1.0;
    for conn in [1, 2] {
        let address = YourAddress {
            port: 1,
            ipv4: Some("127.0.0.1".into()),
            ipv6: None,
        };
        core.handle(Input::Connected { conn, address }, now, &mut fx);
    }
    for line in data.split(|&b| b == b'\n').take(64) {
        now += 1.0;
        let (conn, line) = match line.first() {
            Some(b'#') => (2, &line[1..]),
            Some(b'!') => {
                core.handle(Input::Prune, now + 200.0, &mut fx);
                continue;
            }
            _ => (1, line),
        };
        let frame = match serde_json::from_slice(line) {
            Ok(v) => Frame::Json(v),
            Err(e) => Frame::Invalid {
                error: e.to_string(),
                orig: String::from_utf8_lossy(line).chars().take(100).collect(),
            },
        };
        core.handle(Input::Frame { conn, frame }, now, &mut fx);
    }
    core.handle(Input::Disconnected { conn: 1 }, now, &mut fx);
    core.handle(Input::Disconnected { conn: 2 }, now, &mut fx);
    core.handle(Input::Prune, now + 1000.0, &mut fx);
});
