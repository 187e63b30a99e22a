//! Fuzz target: the client state machine (`wormhole_proto::machine::Boss`) fed arbitrary server
//! frames and driver events. It must never panic, whatever the sequence.
//!
//! Byte 0 picks how the code is obtained (set, allocate, interactive input, none). The rest is
//! one step per line:
//! - `!` connection lost (reconnects are answered at once), `@` the timer fires, `~` close,
//! - `+TEXT` send an app message, `^TEXT` send a dilation message,
//! - `?` refresh nameplates, `=NP` choose a nameplate, `:WORDS` choose the words,
//! - `>N` echo our N-th `add` back as a server `message` (even N: our side, odd: a stranger's),
//! - `&` deliver everything a real peer machine (same code, honest) has sent so far, and feed it
//!   our `add`s, so fuzzed frames can interleave with a correct PAKE/version exchange,
//! - anything else is a server frame, delivered as received.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use wormhole_proto::machine::{Action, Boss, Config};

const APPID: &str = "example.com/fuzz";
const CODE: &str = "4-purple-sausages";

fn boss(side: &str, seed: u64) -> Boss {
    let cfg = Config {
        appid: APPID.into(),
        side: side.into(),
        versions: json!({}),
        client_version: Some(("fuzz".into(), "0".into())),
    };
    Boss::new(cfg, Box::new(StdRng::seed_from_u64(seed)))
}

fn message(side: &str, add: &Value) -> String {
    json!({"type": "message", "side": side, "phase": add["phase"], "body": add["body"],
           "id": null, "server_rx": 1.0, "server_tx": 1.0})
    .to_string()
}

/// Perform `b`'s actions: reconnect at once, collect the `add` commands it sends.
fn pump(b: &mut Boss, now: Instant, adds: &mut Vec<Value>) {
    for _ in 0..1000 {
        let Some(a) = b.poll_action() else { return };
        match a {
            Action::Connect => b.connected(now),
            Action::SendFrame(text) => {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if v["type"] == "add" {
                    adds.push(v);
                }
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut me = boss("0123456789", 1);
    let mut my_adds = Vec::new();
    me.start();
    match mode % 4 {
        0 => drop(me.set_code(CODE)),
        1 => drop(me.allocate_code(2)),
        2 => drop(me.input_code()),
        _ => {}
    }
    pump(&mut me, now, &mut my_adds);

    // An honest peer on the same code, talking to its own (perfect) view of the mailbox.
    let mut peer = boss("abcdefabcd", 2);
    let mut peer_adds = Vec::new();
    peer.start();
    drop(peer.set_code(CODE));
    pump(&mut peer, now, &mut peer_adds);
    for f in [
        r#"{"type":"welcome","welcome":{}}"#,
        r#"{"type":"claimed","mailbox":"mb1"}"#,
    ] {
        let _ = peer.frame_received(f, now);
    }
    pump(&mut peer, now, &mut peer_adds);
    let (mut peer_sent, mut my_sent) = (0, 0);

    for line in rest.split(|&b| b == b'\n').take(128) {
        now += Duration::from_millis(250);
        let text = String::from_utf8_lossy(line.get(1..).unwrap_or(&[]));
        match line.first() {
            Some(b'!') => me.connection_lost(now, 0.5, "fuzz"),
            Some(b'@') => me.timer_fired(now + Duration::from_secs(3600)),
            Some(b'~') => me.close(),
            Some(b'+') => drop(me.send_message(text.as_bytes().to_vec())),
            Some(b'^') => drop(me.send_dilation_message(text.as_bytes())),
            Some(b'?') => drop(me.input_refresh_nameplates()),
            Some(b'=') => drop(me.input_choose_nameplate(&text)),
            Some(b':') => drop(me.input_choose_words(&text)),
            Some(b'>') => {
                let n = line.get(1).copied().unwrap_or(0) as usize;
                if let Some(add) = my_adds.get(n / 2 % my_adds.len().max(1)) {
                    let side = if n % 2 == 0 { "0123456789" } else { "fedcba9876" };
                    let _ = me.frame_received(&message(side, add), now);
                }
            }
            Some(b'&') => {
                for add in &my_adds[my_sent..] {
                    let _ = peer.frame_received(&message("0123456789", add), now);
                }
                my_sent = my_adds.len();
                pump(&mut peer, now, &mut peer_adds);
                for add in &peer_adds[peer_sent..] {
                    let frame = message("abcdefabcd", add);
                    let _ = peer.frame_received(&frame, now);
                    let _ = me.frame_received(&frame, now);
                }
                peer_sent = peer_adds.len();
                pump(&mut peer, now, &mut peer_adds);
            }
            _ => {
                let _ = me.frame_received(&String::from_utf8_lossy(line), now);
            }
        }
        pump(&mut me, now, &mut my_adds);
        let _ = (
            me.code(),
            me.key(),
            me.verifier(),
            me.peer_versions(),
            me.is_closed(),
        );
        let _ = me.unechoed_outbound();
    }
});
