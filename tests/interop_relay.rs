//! Issue 5, Show 2: the real CLIs transfer a file through OUR transit relay (`wormhole-relay`, run
//! in-process here) with direct connections impossible, checked by sha256, and the relay's usage
//! database holds the `happy` row of that pair.
//!
//! - Python 0.24: `--no-listen` on both sides (no direct hints at all), `--transit-helper` = our relay.
//! - wormhole-rs: `--force-relay` on both sides, `--relay-server tcp://127.0.0.1:PORT`.
//! - wormhole-william: it always uses `transit.magic-wormhole.io:4001` (→ 127.0.0.1 in
//!   `scripts/netns-run`), so our relay listens on 127.0.0.1:4001 under the port-4001 lock; and while
//!   that lock is held the namespace's only non-127 address (198.18.0.1, the one Go would advertise) is
//!   removed, so Go has no direct hint to offer: only the relay is reachable.
//!
//! `same_bytes_as_the_python_relay` replays scripted TCP clients (pairing, legacy, same side, bad lines,
//! CRLF, 1024/1025-byte lines, pipelined data) against both relays and compares every byte and close;
//! `same_websocket_behaviour_as_the_python_relay` does the same over WebSocket (paired with TCP, bad
//! request, impatient).
//!
//! The mailbox is the Python server (the relay is what is under test), except in
//! `python_through_wormhole_server_serve`, which runs our `wormhole-server serve` (mailbox + relay in one
//! process; needs `cargo build --workspace` first). Runs inside `scripts/netns-run`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wormhole_interop::*;

/// Our relay running on its own thread and runtime, with a usage database. Dropping it stops it.
struct OurRelay {
    addr: SocketAddr,
    db: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl OurRelay {
    fn start(addr: SocketAddr) -> OurRelay {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relay-usage.sqlite");
        let usage = wormhole_relay::usage_sink::open_usage_db(&db).unwrap();
        let config = wormhole_relay::RelayConfig {
            usage: wormhole_relay::UsageSink::start(Some(usage), None).unwrap(),
            ..Default::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = wormhole_relay::bind(addr).unwrap();
                bound_tx.send(listener.local_addr().unwrap()).unwrap();
                tokio::select! {
                    r = wormhole_relay::serve(config, listener, None) => r.unwrap(),
                    _ = stopped => {}
                }
            });
        });
        let addr = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("relay did not bind");
        OurRelay {
            addr,
            db,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Usage rows `(result, total_bytes)`.
    fn rows(&self) -> Vec<(String, i64)> {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        let mut st = conn
            .prepare("SELECT result, total_bytes FROM usage ORDER BY rowid")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Wait (bounded) for exactly one `happy` row that carried at least `min_bytes`; every other row
    /// may only be a spare connection (`lonely`/`redundant`). Returns all rows.
    fn expect_one_happy_pair(&self, min_bytes: u64, context: &str) -> Vec<(String, i64)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let rows = self.rows();
            let happy: Vec<_> = rows.iter().filter(|r| r.0 == "happy").collect();
            if happy.len() == 1 || Instant::now() > deadline {
                assert_eq!(
                    happy.len(),
                    1,
                    "one happy pair expected; rows {rows:?}\n{context}"
                );
                assert!(
                    happy[0].1 as u64 >= min_bytes,
                    "relay carried too little: {rows:?}\n{context}"
                );
                for r in &rows {
                    assert!(
                        matches!(r.0.as_str(), "happy" | "lonely" | "redundant"),
                        "unexpected mood in {rows:?}\n{context}"
                    );
                }
                return rows;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OurRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// While alive, the namespace has no 198.18.0.1: wormhole-william (which never advertises 127.x) then
/// offers no direct hint. Restores the address on drop. Only inside `scripts/netns-run`.
struct NoDirectAddress {
    removed: bool,
}

const TEST_ADDR: &str = "198.18.0.1/32";

impl NoDirectAddress {
    fn take() -> NoDirectAddress {
        require_netns();
        let out = Command::new("ip")
            .args(["addr", "del", TEST_ADDR, "dev", "lo"])
            .output()
            .unwrap();
        let removed = out.status.success();
        let listed = Command::new("ip")
            .args(["-4", "addr", "show", "dev", "lo"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&listed.stdout).contains("198.18.0.1"),
            "cannot remove {TEST_ADDR} from lo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        NoDirectAddress { removed }
    }
}

impl Drop for NoDirectAddress {
    fn drop(&mut self) {
        if self.removed {
            let _ = Command::new("ip")
                .args(["addr", "add", TEST_ADDR, "dev", "lo"])
                .status();
        }
    }
}

/// A 3 MiB (+ 5 bytes) deterministic file in a fresh directory, with its sha256.
fn test_file(seed: u64) -> (tempfile::TempDir, PathBuf, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("relay-payload-{seed}.bin"));
    let size = (3 << 20) + 5;
    let sha = write_test_file(&path, size, seed);
    (dir, path, sha, size as u64)
}

/// Extra flags that take direct connections away from a peer.
fn relay_only(kind: PeerKind, cmd: PeerCommand) -> PeerCommand {
    match kind {
        PeerKind::Python => cmd.arg("--no-listen"),
        PeerKind::Rust => cmd.arg("--force-relay"),
        // Go has no such flag; `NoDirectAddress` does it for the whole namespace.
        PeerKind::Go => cmd,
    }
}

struct Outcome {
    sender: PeerOutput,
    receiver: PeerOutput,
    received: PathBuf,
    _out: tempfile::TempDir,
}

fn attempt(mailbox: &MailboxServer, relay: &OurRelay, from: PeerKind, to: PeerKind, path: &Path) -> Outcome {
    let peers = Peers::locate();
    let ep = Endpoints::new(mailbox.url(), Some(relay.addr));
    let code = unique_code();
    let out = tempfile::tempdir().unwrap();
    let sender = relay_only(from, peers.send_path(from, &ep, &code, path)).spawn();
    let receiver = relay_only(to, peers.receive(to, &ep, &code, out.path())).run();
    let sender = sender.wait();
    let received = out.path().join(path.file_name().unwrap());
    Outcome {
        sender,
        receiver,
        received,
        _out: out,
    }
}

/// `from` sends a file to `to` through our relay only; checks the content and the relay's usage rows.
fn relay_transfer(from: PeerKind, to: PeerKind, seed: u64) {
    require_netns();
    let with_go = from == PeerKind::Go || to == PeerKind::Go;
    let _lock = with_go.then(lock_port_4001);
    let _no_direct = with_go.then(NoDirectAddress::take);
    let addr: SocketAddr = if with_go { "127.0.0.1:4001" } else { "127.0.0.1:0" }
        .parse()
        .unwrap();
    let mailbox = start_python_mailbox(&[]);
    let (_dir, path, sha, size) = test_file(seed);
    // Every proven peer bug (`KnownPeerBugs`, exact and logged) gets another attempt, each with a
    // fresh relay: Go's SPAKE2 key bug and relay race (a Go sender to Python; measured 2 of 15 runs
    // through our relay, 3 of 15 through Python's) and Python's transit port race.
    let mut known_bugs = KnownPeerBugs::new(from, to);
    for n in 1.. {
        let relay = OurRelay::start(addr);
        let o = attempt(&mailbox, &relay, from, to, &path);
        if known_bugs.should_retry(&o.sender, &o.receiver) {
            continue;
        }
        let context = format!(
            "{} -> {} through our relay (attempt {n})\n{}\n{}\nrelay rows: {:?}\n--- mailbox log:\n{}",
            from.name(),
            to.name(),
            o.sender,
            o.receiver,
            relay.rows(),
            mailbox.logs()
        );
        assert!(
            o.sender.success() && o.receiver.success(),
            "transfer failed: {context}"
        );
        assert!(o.received.is_file(), "nothing received: {context}");
        assert_eq!(sha256_file(&o.received), sha, "content differs: {context}");
        let rows = relay.expect_one_happy_pair(size, &context);
        eprintln!("{} -> {}: relay rows {rows:?}", from.name(), to.name());
        return;
    }
}

#[test]
fn python_to_python_no_listen_through_our_relay() {
    relay_transfer(PeerKind::Python, PeerKind::Python, 51);
}

#[test]
fn rust_to_rust_force_relay_through_our_relay() {
    relay_transfer(PeerKind::Rust, PeerKind::Rust, 52);
}

#[test]
fn python_to_rust_through_our_relay() {
    relay_transfer(PeerKind::Python, PeerKind::Rust, 53);
}

#[test]
fn go_to_go_only_relay_reachable() {
    relay_transfer(PeerKind::Go, PeerKind::Go, 54);
}

#[test]
fn go_to_python_only_relay_reachable() {
    relay_transfer(PeerKind::Go, PeerKind::Python, 55);
}

#[test]
fn python_to_go_only_relay_reachable() {
    relay_transfer(PeerKind::Python, PeerKind::Go, 56);
}

#[test]
fn rust_to_go_only_relay_reachable() {
    relay_transfer(PeerKind::Rust, PeerKind::Go, 57);
}

/// `wormhole-server serve` (our mailbox and our relay in one process) on free ports: two Python
/// clients with `--no-listen` transfer a file through it; the relay's usage database has the pair.
#[test]
fn python_through_wormhole_server_serve() {
    use std::io::{BufRead, BufReader};
    require_netns();
    let dir = tempfile::tempdir().unwrap();
    let relay_db = dir.path().join("relay-usage.sqlite");
    let mut cmd = clean_command(our_bin("wormhole-server"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--relay-listen",
        "127.0.0.1:0",
        "--channel-db",
    ])
    .arg(dir.path().join("channel.sqlite"))
    .arg("--relay-usage-db")
    .arg(&relay_db)
    .current_dir(dir.path())
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let mut server = ChildGuard::spawn(cmd, "wormhole-server serve");
    let stderr = server.child_mut().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut mailbox, mut relay) = (None::<SocketAddr>, None::<SocketAddr>);
    let deadline = Instant::now() + Duration::from_secs(30);
    while mailbox.is_none() || relay.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("serve did not announce both listeners");
        let addr = |p: &str| line.split(p).nth(1).and_then(|a| a.trim().parse().ok());
        if line.contains("transit relay listening on") {
            relay = addr("transit relay listening on");
        } else if line.contains("listening on") {
            mailbox = addr("listening on");
        }
    }
    let (mailbox, relay) = (mailbox.unwrap(), relay.unwrap());
    let peers = Peers::locate();
    let ep = Endpoints::new(&format!("ws://{mailbox}/v1"), Some(relay));
    let (_src, path, sha, size) = test_file(58);
    let code = unique_code();
    let out = tempfile::tempdir().unwrap();
    let sender = relay_only(
        PeerKind::Python,
        peers.send_path(PeerKind::Python, &ep, &code, &path),
    )
    .spawn();
    let receiver = relay_only(
        PeerKind::Python,
        peers.receive(PeerKind::Python, &ep, &code, out.path()),
    )
    .run();
    let sender = sender.wait();
    assert!(
        sender.success() && receiver.success(),
        "transfer failed:\n{sender}\n{receiver}"
    );
    assert_eq!(sha256_file(out.path().join(path.file_name().unwrap())), sha);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let conn = rusqlite::Connection::open(&relay_db).unwrap();
        let happy: Vec<i64> = conn
            .prepare("SELECT total_bytes FROM usage WHERE result = 'happy'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if let [bytes] = happy[..] {
            assert!(bytes as u64 >= size, "relay carried {bytes} of {size}");
            break;
        }
        assert!(Instant::now() < deadline, "no happy relay row: {happy:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one client saw: every byte until the relay closed (`closed`) or went quiet for a while.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    bytes: Vec<u8>,
    closed: bool,
}

/// The quiet period of the transcripts (see [`observe`]).
const QUIET: Duration = Duration::from_millis(1200);

fn observe(s: &mut std::net::TcpStream, quiet: Duration) -> Seen {
    use std::io::Read;
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Seen { bytes, closed: true },
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Seen { bytes, closed: false };
            }
            Err(_) => return Seen { bytes, closed: true },
        }
    }
}

/// Run the TCP scenarios against a relay at `addr`; returns one transcript per scenario.
fn tcp_transcripts(addr: SocketAddr) -> Vec<(&'static str, Vec<Seen>)> {
    use std::io::Write;
    // How long "nothing more happens" is watched for. Generous: on a loaded 2-core machine either
    // relay (Python's above all) may take hundreds of milliseconds to answer.
    let quiet = QUIET;
    let connect = |hello: &[u8]| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(hello).unwrap();
        s
    };
    let tok = |n: u8| format!("{n:02x}{}", "e".repeat(62));
    let sided = |n: u8, side: &str| format!("please relay {} for side {side}\n", tok(n)).into_bytes();
    let mut out = Vec::new();

    let mut a = connect(&sided(1, "0000000000000001"));
    std::thread::sleep(Duration::from_millis(200));
    let mut b = connect(&sided(1, "0000000000000002"));
    let (sa, sb) = (observe(&mut a, quiet), observe(&mut b, quiet));
    a.write_all(b"payload").unwrap();
    let relayed = observe(&mut b, quiet);
    drop(a);
    out.push((
        "sided pair, data, close",
        vec![sa, sb, relayed, observe(&mut b, quiet)],
    ));

    let mut a = connect(format!("please relay {}\n", tok(2)).as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    let mut b = connect(format!("please relay {}\n", tok(2)).as_bytes());
    out.push((
        "legacy pair",
        vec![observe(&mut a, quiet), observe(&mut b, quiet)],
    ));

    let mut a = connect(&sided(3, "0000000000000001"));
    std::thread::sleep(Duration::from_millis(200));
    let mut b = connect(&sided(3, "0000000000000001"));
    out.push((
        "same side does not pair",
        vec![observe(&mut a, quiet), observe(&mut b, quiet)],
    ));

    for (name, hello) in [
        ("garbage line", b"hello relay\n".to_vec()),
        (
            "crlf",
            format!("please relay {} for side 0000000000000001\r\n", tok(4)).into_bytes(),
        ),
        (
            "short token",
            b"please relay abc for side 0000000000000001\n".to_vec(),
        ),
        ("1024-byte line", [vec![b'x'; 1024], b"\n".to_vec()].concat()),
        ("1025 bytes, no newline", vec![b'x'; 1025]),
        (
            "pipelined data",
            [sided(5, "0000000000000001"), b"early".to_vec()].concat(),
        ),
    ] {
        let mut s = connect(&hello);
        out.push((name, vec![observe(&mut s, quiet)]));
    }
    out
}

/// Byte-compatibility: the same scripted TCP clients see exactly the same bytes and closes from our
/// relay as from magic-wormhole-transit-relay 0.5.
#[test]
fn same_bytes_as_the_python_relay() {
    require_netns();
    let python = start_python_relay(ANY_PORT);
    let ours = OurRelay::start("127.0.0.1:0".parse().unwrap());
    let theirs = tcp_transcripts(python.addr);
    let mine = tcp_transcripts(ours.addr);
    for ((name, t), (_, m)) in theirs.iter().zip(&mine) {
        assert_eq!(m, t, "scenario {name:?}: ours (left) differs from Python (right)");
    }
    assert_eq!(theirs.len(), mine.len());
    // And the transcripts say what docs/protocol.md §4.6 says (so this cannot pass on two silent relays).
    let seen = |bytes: &[u8], closed| Seen {
        bytes: bytes.to_vec(),
        closed,
    };
    assert_eq!(
        mine[0].1,
        [
            seen(b"ok\n", false),
            seen(b"ok\n", false),
            seen(b"payload", false),
            seen(b"", true)
        ]
    );
    let by_name = |n: &str| &mine.iter().find(|(name, _)| *name == n).unwrap().1;
    assert_eq!(by_name("crlf"), &[seen(b"bad handshake\n", true)]);
    assert_eq!(by_name("1025 bytes, no newline"), &[seen(b"", true)]);
    assert_eq!(by_name("pipelined data"), &[seen(b"impatient\n", true)]);
    assert_eq!(
        by_name("same side does not pair"),
        &[seen(b"", false), seen(b"", false)]
    );
}

/// WebSocket transcript: binary payloads concatenated (boundaries carry no meaning), whether any
/// TEXT arrived, and whether the relay closed within the quiet period.
#[derive(Debug, PartialEq, Eq)]
struct WsSeen {
    bytes: Vec<u8>,
    text: bool,
    closed: bool,
}

type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_observe(ws: &mut WsClient, quiet: Duration) -> WsSeen {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut seen = WsSeen {
        bytes: Vec::new(),
        text: false,
        closed: false,
    };
    loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Err(_) => return seen,
            Ok(Some(Ok(Message::Binary(b)))) => seen.bytes.extend_from_slice(&b),
            Ok(Some(Ok(Message::Text(_)))) => seen.text = true,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                seen.closed = true;
                return seen;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn ws_transcripts(tcp: SocketAddr, ws: SocketAddr) -> Vec<(&'static str, Vec<WsSeen>, Vec<Seen>)> {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    // How long "nothing more happens" is watched for. Generous: on a loaded 2-core machine either
    // relay (Python's above all) may take hundreds of milliseconds to answer.
    let quiet = QUIET;
    let url = format!("ws://{ws}/");
    let tok = |n: u8| format!("{n:02x}{}", "d".repeat(62));
    let bin = |b: &[u8]| Message::Binary(b.to_vec().into());
    let mut out = Vec::new();

    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    a.send(bin(format!(
        "please relay {} for side 0000000000000001\n",
        tok(1)
    )
    .as_bytes()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = std::net::TcpStream::connect(tcp).unwrap();
    std::io::Write::write_all(
        &mut b,
        format!("please relay {} for side 0000000000000002\n", tok(1)).as_bytes(),
    )
    .unwrap();
    let ok_a = ws_observe(&mut a, quiet).await;
    let ok_b = tokio::task::block_in_place(|| observe(&mut b, quiet));
    std::io::Write::write_all(&mut b, b"from tcp").unwrap();
    let data_a = ws_observe(&mut a, quiet).await;
    a.send(bin(b"from websocket")).await.unwrap();
    let data_b = tokio::task::block_in_place(|| observe(&mut b, quiet));
    a.close(None).await.unwrap();
    let closed_b = tokio::task::block_in_place(|| observe(&mut b, quiet));
    out.push((
        "websocket + tcp pair",
        vec![ok_a, data_a],
        vec![ok_b, data_b, closed_b],
    ));

    let (mut bad, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    bad.send(bin(b"please relay nonsense")).await.unwrap();
    out.push((
        "websocket bad handshake",
        vec![ws_observe(&mut bad, quiet).await],
        vec![],
    ));

    let (mut imp, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    imp.send(bin(
        format!("please relay {} for side 0000000000000001", tok(2)).as_bytes()
    ))
    .await
    .unwrap();
    imp.send(bin(b"too early")).await.unwrap();
    out.push((
        "websocket impatient",
        vec![ws_observe(&mut imp, quiet).await],
        vec![],
    ));
    out
}

/// Byte-compatibility over WebSocket: a WebSocket client paired with a TCP client, a bad request and an
/// impatient client see the same bytes (as BINARY messages) and closes from ours as from Python's.
#[test]
fn same_websocket_behaviour_as_the_python_relay() {
    require_netns();
    let peers = Peers::locate();
    let (tcp_port, ws_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = clean_command(&peers.twist);
    cmd.args([
        "transitrelay",
        "--port",
        &format!("tcp:{tcp_port}:interface=127.0.0.1"),
    ])
    .args(["--websocket", &format!("tcp:{ws_port}:interface=127.0.0.1")])
    .current_dir(dir.path())
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    let _python = ChildGuard::spawn(cmd, "twist transitrelay --websocket");
    let py_tcp: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let py_ws: SocketAddr = ([127, 0, 0, 1], ws_port).into();
    assert!(
        wait_until_accepting(py_tcp, Duration::from_secs(30))
            && wait_until_accepting(py_ws, Duration::from_secs(30))
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tcp_l, ws_l) = rt.block_on(async {
        let bind = || wormhole_relay::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        (bind(), bind())
    });
    let (o_tcp, o_ws) = (tcp_l.local_addr().unwrap(), ws_l.local_addr().unwrap());
    let server = rt.spawn(wormhole_relay::serve(
        wormhole_relay::RelayConfig::default(),
        tcp_l,
        Some(ws_l),
    ));

    let theirs = rt.block_on(ws_transcripts(py_tcp, py_ws));
    let mine = rt.block_on(ws_transcripts(o_tcp, o_ws));
    server.abort();
    for ((name, tw, tt), (_, mw, mt)) in theirs.iter().zip(&mine) {
        assert_eq!(
            (mw, mt),
            (tw, tt),
            "scenario {name:?}: ours (left) differs from Python (right)"
        );
    }
    let seen = |bytes: &[u8], closed| WsSeen {
        bytes: bytes.to_vec(),
        text: false,
        closed,
    };
    assert_eq!(mine[0].1, [seen(b"ok\n", false), seen(b"from tcp", false)]);
    assert_eq!(
        mine[0].2[1],
        Seen {
            bytes: b"from websocket".to_vec(),
            closed: false
        }
    );
    assert!(mine[0].2[2].closed, "websocket close closes the tcp side");
    assert_eq!(mine[1].1, [seen(b"bad handshake\n", true)]);
    assert_eq!(mine[2].1, [seen(b"impatient\n", true)]);
}
