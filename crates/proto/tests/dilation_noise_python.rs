//! Interop of the Dilation L2 layers (prefixes, frames, Noise handshake and transport, L3
//! records, and the per-connection `Connection` machine) with Python magic-wormhole 0.24.0's
//! own connection code, driven through `tests/drivers/py_noise.py` over stdin/stdout (hex
//! lines). Both roles, a wrong key, and records larger than one Noise message (Python's
//! 65519-byte splitting) in both directions.
//!
//! Needs the Python peer venv (`scripts/install-peers`, `$WORMHOLE_PEERS` or
//! `~/.cache/wormhole-peers`); without it each test prints why and passes without running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::connection::{ConnEvent, Connection};
use wormhole_proto::dilation::frame::{
    ConnectionReader, DEFAULT_MAX_FRAME_LEN, FOLLOWER_PREFIX, Inbound, LEADER_PREFIX, encode_frame,
};
use wormhole_proto::dilation::l3::Record;
use wormhole_proto::dilation::noise::{
    HANDSHAKE_MSG_LEN, LeaderHandshake, NOISE_MAX_PAYLOAD, NoiseTransport, dilation_psk, respond,
};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Debug, PartialEq)]
enum Line {
    Out(Vec<u8>),
    Rec(Vec<u8>),
    Handshake,
}

/// The Python driver process; killed and reaped on drop.
struct Py {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<PathBuf> {
    let dir = match std::env::var_os("WORMHOLE_PEERS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?)
            .join(".cache")
            .join("wormhole-peers"),
    };
    let py = dir.join("venv").join("bin").join("python");
    py.exists().then_some(py)
}

impl Py {
    /// Starts the driver as `role` with `key`, or `None` (after saying why) without the venv.
    fn start(role: &str, key: &[u8]) -> Option<(Py, Vec<Line>)> {
        let Some(py) = python() else {
            eprintln!("SKIP: Python peer venv not found (run scripts/install-peers or set WORMHOLE_PEERS)");
            return None;
        };
        let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/drivers/py_noise.py");
        let mut cmd = Command::new(py);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WORMHOLE_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg(driver)
            .arg(role)
            .arg(hex::encode(key))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn py_noise.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut py = Py {
            child,
            stdin,
            lines: rx,
        };
        let first = py.answer().expect("driver start-up");
        Some((py, first))
    }

    /// Reads lines up to `ok`; `Err` carries the driver's `err` line.
    fn answer(&mut self) -> Result<Vec<Line>, String> {
        let mut out = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("py_noise.py did not answer within 30 s (or exited)");
            let (kind, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match kind {
                "ok" => return Ok(out),
                "err" => return Err(line),
                "hs" => out.push(Line::Handshake),
                "out" => out.push(Line::Out(hex::decode(arg).unwrap())),
                "rec" => out.push(Line::Rec(hex::decode(arg).unwrap())),
                other => panic!("unexpected driver line kind {other:?}"),
            }
        }
    }

    fn command(&mut self, cmd: &str, bytes: &[u8]) -> Result<Vec<Line>, String> {
        writeln!(self.stdin, "{cmd} {}", hex::encode(bytes)).unwrap();
        self.stdin.flush().unwrap();
        self.answer()
    }
}

/// Concatenates every `out` line and feeds it to our reader.
fn feed_out(reader: &mut ConnectionReader, lines: &[Line]) -> Vec<Inbound> {
    let mut events = Vec::new();
    for l in lines {
        if let Line::Out(b) = l {
            events.extend(reader.feed(b).unwrap());
        }
    }
    events
}

fn frames(events: Vec<Inbound>) -> Vec<Vec<u8>> {
    events
        .into_iter()
        .map(|e| match e {
            Inbound::Frame(f) => f.to_vec(),
            other => panic!("expected a frame, got {other:?}"),
        })
        .collect()
}

fn sample_records(scid: u32) -> Vec<Record> {
    vec![
        Record::Open {
            scid,
            seqnum: 0,
            subprotocol: "interop-test".into(),
        },
        Record::Data {
            scid,
            seqnum: 1,
            data: b"small".to_vec().into(),
        },
        // 9 + 65510 = exactly one full Noise message.
        Record::Data {
            scid,
            seqnum: 2,
            data: vec![0x5a; NOISE_MAX_PAYLOAD - 9].into(),
        },
        // Spans four Noise messages.
        Record::Data {
            scid,
            seqnum: 3,
            data: (0..200_000u32).map(|i| (i % 253) as u8).collect(),
        },
        Record::Ping {
            ping_id: [9, 8, 7, 6],
        },
        Record::Pong {
            ping_id: [1, 2, 3, 4],
        },
        Record::Close { scid, seqnum: 4 },
        Record::Ack { resp_seqnum: 3 },
    ]
}

/// Records both ways over an established connection.
fn exchange_records(py: &mut Py, reader: &mut ConnectionReader, noise: &mut NoiseTransport) {
    // Rust → Python, one frame per command, and also several frames in one write.
    let recs = sample_records(1);
    for r in &recs[..4] {
        let frame = encode_frame(&noise.encrypt(&r.encode()).unwrap()).unwrap();
        let ans = py.command("in", &frame).unwrap();
        assert_eq!(ans, vec![Line::Rec(r.encode())]);
    }
    let mut batch = Vec::new();
    for r in &recs[4..] {
        batch.extend(encode_frame(&noise.encrypt(&r.encode()).unwrap()).unwrap());
    }
    let ans = py.command("in", &batch).unwrap();
    let want: Vec<Line> = recs[4..].iter().map(|r| Line::Rec(r.encode())).collect();
    assert_eq!(ans, want);

    // Python → Rust.
    for r in sample_records(2) {
        let ans = py.command("send", &r.encode()).unwrap();
        let got = frames(feed_out(reader, &ans));
        assert_eq!(got.len(), 1);
        let plain = noise.decrypt(&got[0]).unwrap();
        assert_eq!(Record::parse(&plain).unwrap(), r);
    }
}

#[test]
fn rust_leader_python_follower() {
    let Some((mut py, first)) = Py::start("follower", KEY) else {
        return;
    };
    let mut reader = ConnectionReader::new(Role::Leader, DEFAULT_MAX_FRAME_LEN);
    assert_eq!(first, vec![Line::Out(FOLLOWER_PREFIX.to_vec())]);
    assert_eq!(feed_out(&mut reader, &first), vec![Inbound::PrefixReceived]);

    let psk = dilation_psk(KEY).unwrap();
    let (hs, frame1) = LeaderHandshake::start(&psk).unwrap();
    let mut wire = LEADER_PREFIX.to_vec();
    wire.extend(encode_frame(&frame1).unwrap());
    // An awkward split: part of the prefix, then the rest with the frame.
    assert_eq!(py.command("in", &wire[..20]).unwrap(), vec![]);
    let ans = py.command("in", &wire[20..]).unwrap();
    assert_eq!(ans.first(), Some(&Line::Handshake));
    let got = frames(feed_out(&mut reader, &ans));
    assert_eq!(got.len(), 2, "frame 2 then KCM");
    assert_eq!(got[0].len(), HANDSHAKE_MSG_LEN);
    let mut noise = hs.finish(&got[0]).unwrap();
    assert_eq!(got[1].len(), 17);
    assert_eq!(
        Record::parse(&noise.decrypt(&got[1]).unwrap()).unwrap(),
        Record::Kcm
    );

    // Our KCM.
    let kcm = encode_frame(&noise.encrypt(&Record::Kcm.encode()).unwrap()).unwrap();
    assert_eq!(py.command("in", &kcm).unwrap(), vec![Line::Rec(vec![0])]);

    exchange_records(&mut py, &mut reader, &mut noise);
}

#[test]
fn rust_follower_python_leader() {
    let Some((mut py, first)) = Py::start("leader", KEY) else {
        return;
    };
    let mut reader = ConnectionReader::new(Role::Follower, DEFAULT_MAX_FRAME_LEN);
    assert_eq!(first, vec![Line::Out(LEADER_PREFIX.to_vec())]);
    assert_eq!(feed_out(&mut reader, &first), vec![Inbound::PrefixReceived]);

    // Our prefix makes Python send frame 1.
    let ans = py.command("in", FOLLOWER_PREFIX).unwrap();
    let got = frames(feed_out(&mut reader, &ans));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), HANDSHAKE_MSG_LEN);
    let psk = dilation_psk(KEY).unwrap();
    let (frame2, mut noise) = respond(&psk, &got[0]).unwrap();
    let mut wire = encode_frame(&frame2).unwrap();
    wire.extend(encode_frame(&noise.encrypt(&Record::Kcm.encode()).unwrap()).unwrap());
    let ans = py.command("in", &wire).unwrap();
    assert_eq!(ans, vec![Line::Handshake, Line::Rec(vec![0])]);

    // The Leader's KCM.
    let ans = py.command("send", &Record::Kcm.encode()).unwrap();
    let got = frames(feed_out(&mut reader, &ans));
    assert_eq!(got.len(), 1);
    assert_eq!(
        Record::parse(&noise.decrypt(&got[0]).unwrap()).unwrap(),
        Record::Kcm
    );

    exchange_records(&mut py, &mut reader, &mut noise);
}

#[test]
fn wrong_key_is_refused_by_both() {
    // Python follower with another key refuses our frame 1.
    let Some((mut py, _)) = Py::start("follower", b"another key") else {
        return;
    };
    let (_, frame1) = LeaderHandshake::start(&dilation_psk(KEY).unwrap()).unwrap();
    let mut wire = LEADER_PREFIX.to_vec();
    wire.extend(encode_frame(&frame1).unwrap());
    let err = py.command("in", &wire).unwrap_err();
    assert!(err.starts_with("err "), "{err}");

    // Our follower refuses a Python leader's frame 1 made with another key.
    let Some((mut py, _)) = Py::start("leader", b"another key") else {
        return;
    };
    let mut reader = ConnectionReader::new(Role::Follower, DEFAULT_MAX_FRAME_LEN);
    reader.feed(LEADER_PREFIX).unwrap();
    let ans = py.command("in", FOLLOWER_PREFIX).unwrap();
    let got = frames(feed_out(&mut reader, &ans));
    assert!(respond(&dilation_psk(KEY).unwrap(), &got[0]).is_err());
}

/// Feeds every `out` line of a driver answer to our `Connection`; returns what it wants sent
/// and the events.
fn to_connection(conn: &mut Connection, lines: &[Line]) -> (Vec<u8>, Vec<ConnEvent>) {
    let mut send = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        if let Line::Out(b) = l {
            let o = conn.receive(b).unwrap();
            send.extend(o.send);
            events.extend(o.events);
        }
    }
    (send, events)
}

/// The whole per-connection machine (`Connection`) against Python, in both roles: prefixes,
/// handshake, KCM exchange, then records each way.
#[test]
fn connection_machine_both_roles() {
    for (ours, theirs) in [(Role::Leader, "follower"), (Role::Follower, "leader")] {
        let Some((mut py, first)) = Py::start(theirs, KEY) else {
            return;
        };
        let psk = dilation_psk(KEY).unwrap();
        let (mut conn, hello) = Connection::new(ours, psk, None, DEFAULT_MAX_FRAME_LEN);
        let (mut send, mut events) = to_connection(&mut conn, &first);
        let mut wire = hello;
        wire.append(&mut send);
        // Ping-pong bytes until both sides are quiet.
        let mut py_records = Vec::new();
        for _ in 0..10 {
            if wire.is_empty() {
                break;
            }
            let ans = py.command("in", &std::mem::take(&mut wire)).unwrap();
            py_records.extend(ans.iter().filter_map(|l| match l {
                Line::Rec(r) => Some(r.clone()),
                _ => None,
            }));
            let (s, e) = to_connection(&mut conn, &ans);
            wire = s;
            events.extend(e);
        }
        if ours == Role::Follower {
            // Python led; it got our KCM and now sends its own.
            assert_eq!(py_records, vec![vec![0u8]], "{ours:?}");
            assert!(events.is_empty());
            let ans = py.command("send", &Record::Kcm.encode()).unwrap();
            let (_, e) = to_connection(&mut conn, &ans);
            events.extend(e);
            assert_eq!(events, vec![ConnEvent::KcmReceived]);
        } else {
            // Python followed and sent KCM; we choose the connection and send ours.
            assert_eq!(events, vec![ConnEvent::KcmReceived]);
            let kcm = conn.send_record(&Record::Kcm).unwrap();
            assert_eq!(py.command("in", &kcm).unwrap(), vec![Line::Rec(vec![0])]);
        }
        assert!(conn.is_open());
        for r in sample_records(7) {
            let ans = py.command("in", &conn.send_record(&r).unwrap()).unwrap();
            assert_eq!(ans, vec![Line::Rec(r.encode())]);
            let ans = py.command("send", &r.encode()).unwrap();
            let (_, e) = to_connection(&mut conn, &ans);
            assert_eq!(e, vec![ConnEvent::Record(r)]);
        }
    }
}
