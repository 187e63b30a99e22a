//! Fuzz target: the sans-IO Dilation endpoint opposite a hand-driven peer that completes a real
//! handshake and then sends whatever the input says: arbitrary `dilate-N` bodies and templated
//! L1 messages, arbitrary record plaintexts (encrypted properly, so they reach L3/L4),
//! structured OPEN/DATA/CLOSE/ACK/PING records, raw garbage bytes, connection losses and
//! reconnections, time jumps, and local application calls. It must never panic, and the
//! endpoint's memory bounds (receive buffers, unacked queue, held OPENs, connections) must hold
//! while the driver honours PauseReading.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::endpoint::{Action, Config, ConnectionId, Dilation};
use wormhole_proto::dilation::frame::{FOLLOWER_PREFIX, FrameDecoder, LEADER_PREFIX, encode_frame};
use wormhole_proto::dilation::l3::Record;
use wormhole_proto::dilation::manager::L1Message;
use wormhole_proto::dilation::noise::{LeaderHandshake, NoiseTransport, respond};

const PSK: [u8; 32] = [5; 32];
const HI: &str = "ffffffffffffff00";
const LO: &str = "0000000000000001";

struct Peer {
    noise: Option<NoiseTransport>,
    conn: ConnectionId,
    next_conn: u64,
    paused: bool,
    phase: u64,
    now: Instant,
}

fn drain(ep: &mut Dilation, peer: &mut Peer) -> Vec<Vec<u8>> {
    let mut writes = Vec::new();
    while let Some(a) = ep.poll_action() {
        match a {
            Action::Write { conn, bytes } if conn == peer.conn => writes.push(bytes),
            Action::PauseReading { conn } if conn == peer.conn => peer.paused = true,
            Action::ResumeReading { conn } if conn == peer.conn => peer.paused = false,
            Action::Abort { conn } | Action::Close { conn } if conn == peer.conn => {
                peer.noise = None;
            }
            _ => {}
        }
    }
    writes
}

/// Runs a real handshake on a fresh connection; leaves `peer.noise` set if it worked.
fn connect(ep: &mut Dilation, peer: &mut Peer, our_role: Role) {
    peer.next_conn += 1;
    peer.conn = ConnectionId(peer.next_conn);
    peer.paused = false;
    peer.noise = None;
    ep.connection_new(peer.conn, None, peer.now);
    if drain(ep, peer).is_empty() {
        return; // refused
    }
    let now = peer.now;
    match our_role {
        Role::Leader => {
            ep.connection_data(peer.conn, FOLLOWER_PREFIX, now);
            let w = drain(ep, peer).concat();
            let Some(frame1) = w.get(4..) else { return };
            let Ok((frame2, mut noise)) = respond(&PSK, frame1) else {
                return;
            };
            let mut wire = encode_frame(&frame2).unwrap_or_default();
            wire.extend(
                encode_frame(&noise.encrypt(&Record::Kcm.encode()).unwrap_or_default()).unwrap_or_default(),
            );
            ep.connection_data(peer.conn, &wire, now);
            peer.noise = Some(noise);
            drain(ep, peer);
        }
        Role::Follower => {
            let Ok((hs, frame1)) = LeaderHandshake::start(&PSK) else {
                return;
            };
            let mut wire = LEADER_PREFIX.to_vec();
            wire.extend(encode_frame(&frame1).unwrap_or_default());
            ep.connection_data(peer.conn, &wire, now);
            let w = drain(ep, peer).concat();
            let mut frames = Vec::new();
            if FrameDecoder::new(1 << 20).feed(&w, &mut frames).is_err() || frames.is_empty() {
                return;
            }
            let Ok(mut noise) = hs.finish(&frames[0]) else {
                return;
            };
            let kcm =
                encode_frame(&noise.encrypt(&Record::Kcm.encode()).unwrap_or_default()).unwrap_or_default();
            peer.noise = Some(noise);
            ep.connection_data(peer.conn, &kcm, now);
            drain(ep, peer);
        }
    }
}

fn send_record(ep: &mut Dilation, peer: &mut Peer, plaintext: &[u8]) {
    if peer.paused {
        // The driver honours PauseReading: the peer's bytes wait in the network.
        return;
    }
    let Some(noise) = peer.noise.as_mut() else { return };
    let Ok(ct) = noise.encrypt(plaintext) else { return };
    let Ok(frame) = encode_frame(&ct) else { return };
    ep.connection_data(peer.conn, &frame, peer.now);
}

fn mailbox(ep: &mut Dilation, peer: &mut Peer, m: &L1Message) {
    let _ = ep.mailbox_received(&format!("dilate-{}", peer.phase), &m.to_bytes(), peer.now);
    peer.phase += 1;
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut input)) = data.split_first() else {
        return;
    };
    let our_role = if ctl & 1 == 0 {
        Role::Leader
    } else {
        Role::Follower
    };
    let (mine, theirs) = match our_role {
        Role::Leader => (HI, LO),
        Role::Follower => (LO, HI),
    };
    let config = Config {
        ping_interval: Duration::from_secs(1),
        leader_timeout: Duration::from_secs(2),
        follower_timeout: Duration::from_secs(4),
        recv_window: 4096,
        max_unacked_bytes: 8192,
        blocked_read_allowance: 16384,
        max_write_len: 2048,
        max_frame_len: 1 << 16,
        max_pending_opens: 8,
        max_connections: 4,
        max_hints: 8,
        rng_seed: u64::from(ctl),
        ..Config::default()
    };
    // A blocked writer reads on past a full window, up to the allowance.
    let window = config.recv_window.max(config.blocked_read_allowance);
    let mut ep = Dilation::new(config.clone(), mine.into(), PSK);
    let mut peer = Peer {
        noise: None,
        conn: ConnectionId(0),
        next_conn: 0,
        paused: false,
        phase: 0,
        now: Instant::now(),
    };
    ep.peer_versions(&["ged".into()], peer.now);
    mailbox(
        &mut ep,
        &mut peer,
        &L1Message::Please {
            side: theirs.into(),
            use_version: Some("ged".into()),
        },
    );
    drain(&mut ep, &mut peer);
    if ctl & 2 == 0 {
        connect(&mut ep, &mut peer, our_role);
    }
    let mut seq = 0u32;
    let mut scids: Vec<u32> = Vec::new();
    while let Some((&op, rest)) = input.split_first() {
        let n = rest.first().map_or(0, |&b| usize::from(b));
        let body = rest
            .get(1..1 + n.min(rest.len().saturating_sub(1)))
            .unwrap_or_default();
        input = rest.get(1 + body.len()..).unwrap_or_default();
        let b0 = body.first().copied().unwrap_or(0);
        match op % 12 {
            0 => {
                let _ = ep.mailbox_received(&format!("dilate-{}", b0 % 8 + peer.phase as u8), body, peer.now);
            }
            1 => send_record(&mut ep, &mut peer, body),
            2 => {
                if !peer.paused {
                    ep.connection_data(peer.conn, body, peer.now);
                }
            }
            3 => {
                peer.now += Duration::from_millis(u64::from(b0) * 50);
                ep.handle_timeout(peer.now);
            }
            4 => {
                let scid = u32::from(b0 % 8);
                let r = match body.get(1).copied().unwrap_or(0) % 6 {
                    0 => Record::Open {
                        scid,
                        seqnum: seq,
                        subprotocol: if b0 & 0x80 != 0 { "p".into() } else { "q".into() },
                    },
                    1 => Record::Data {
                        scid,
                        seqnum: seq,
                        data: body.get(2..).unwrap_or_default().repeat(usize::from(b0 >> 4) + 1).into(),
                    },
                    2 => Record::Close { scid, seqnum: seq },
                    3 => Record::Ack {
                        resp_seqnum: u32::from(b0),
                    },
                    4 => Record::Ping { ping_id: [b0; 4] },
                    _ => Record::Pong { ping_id: [b0; 4] },
                };
                if b0 & 0x40 == 0 {
                    seq = seq.wrapping_add(1);
                }
                send_record(&mut ep, &mut peer, &r.encode());
            }
            5 => {
                ep.connection_lost(peer.conn, peer.now);
                peer.noise = None;
                let m = match our_role {
                    Role::Leader => L1Message::Reconnecting,
                    Role::Follower => L1Message::Reconnect,
                };
                mailbox(&mut ep, &mut peer, &m);
                drain(&mut ep, &mut peer);
                peer.now += Duration::from_secs(20);
                ep.handle_timeout(peer.now);
                drain(&mut ep, &mut peer);
                connect(&mut ep, &mut peer, our_role);
            }
            6 => {
                let m = match b0 % 4 {
                    0 => L1Message::Reconnect,
                    1 => L1Message::Reconnecting,
                    2 => L1Message::ConnectionHints {
                        hints: vec![serde_json::json!({"type": "direct-tcp-v1"}); usize::from(b0 >> 2)],
                    },
                    _ => L1Message::Please {
                        side: theirs.into(),
                        use_version: None,
                    },
                };
                mailbox(&mut ep, &mut peer, &m);
            }
            7 => {
                let _ = ep.listen(if b0 & 1 == 0 { "p" } else { "q" });
            }
            8 => {
                if let Ok(s) = ep.open("p", peer.now) {
                    scids.push(s);
                }
            }
            9 => {
                if let Some(&s) = scids.get(usize::from(b0) % scids.len().max(1)) {
                    let _ = ep.write(s, body.to_vec(), peer.now);
                }
            }
            10 => {
                let s = scids
                    .get(usize::from(b0) % scids.len().max(1))
                    .copied()
                    .unwrap_or(u32::from(b0));
                let _ = ep.close(s, peer.now);
            }
            _ => {
                let s = u32::from(b0 % 8);
                let b = ep.buffered(s);
                ep.consumed(s, b.min(usize::from(b0) * 64), peer.now);
            }
        }
        drain(&mut ep, &mut peer);
        assert!(
            ep.max_buffered() <= window + (1 << 16) + 1024,
            "receive buffer over its bound"
        );
        assert!(ep.unacked_bytes() <= config.max_unacked_bytes + config.max_write_len + 64 * 1024);
        assert!(ep.pending_opens() <= config.max_pending_opens);
        assert!(ep.connection_count() <= config.max_connections);
    }
});
