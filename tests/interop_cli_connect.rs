//! The `wormhole` CLI's connection line: once transit is connected and before any data, the
//! sender prints `Sending (DESC)..` and the receiver `Receiving (DESC)..` on stderr, as the Python
//! CLI does (even with `--hide-progress`), where DESC is `->tcp:HOST:PORT` (we dialled the peer),
//! `<-HOST:PORT` (the peer dialled us) or `->relay:tcp:HOST:PORT`. Checked ours ⇄ ours (direct
//! and `--no-listen` through a relay, a file and a directory) and against Python 0.24, whose lines must have the same form.
//!
//! Also: a peer whose transit key differs makes us fail within seconds with a clear error instead
//! of waiting for a timeout: our library sending with another key purpose to our CLI, and our
//! library with a custom AppID (`{appid}/transit-key`, as Go and Rust derive it) against Python
//! 0.24 with the same `--appid` (which always derives the default AppID's transit key).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use wormhole::transfer::{
    Decision, ReceiveOptions, SendItem, SendOptions, TransferError, receive, send_item,
};
use wormhole::transit::{TransitConfig, TransitError};
use wormhole::{DEFAULT_APPID, Wormhole, WormholeOptions};
use wormhole_interop::*;
use wormhole_proto::transit::TransitPurpose;

const FILE: &str = "payload.bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Python,
}

struct Setup {
    server: MailboxServer,
    relay: TransitRelay,
    src: tempfile::TempDir,
    dst: tempfile::TempDir,
    sha: String,
}

fn setup(size: usize, seed: u64) -> Setup {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let sha = write_test_file(src.path().join(FILE), size, seed);
    Setup {
        server: start_our_mailbox(&[]),
        relay: start_python_relay(ANY_PORT),
        src,
        dst,
        sha,
    }
}

fn bin(side: Side) -> std::path::PathBuf {
    match side {
        Side::Ours => our_bin("wormhole"),
        Side::Python => Peers::locate().python_wormhole,
    }
}

/// Send `FILE` from `from` to `to`; `no_listen` forces the relay. Returns (sender, receiver).
fn transfer(s: &Setup, from: Side, to: Side, no_listen: bool) -> (PeerOutput, PeerOutput) {
    transfer_what(s, from, to, no_listen, FILE)
}

/// Send `what` (a name in `src`) and check it arrived whole in `dst`. A run in which a Python side
/// hit Python's own transit port race (exact, logged, `KnownPeerBugs`) is run again.
fn transfer_what(s: &Setup, from: Side, to: Side, no_listen: bool, what: &str) -> (PeerOutput, PeerOutput) {
    let mut race = PythonListenRace::new(format!("{from:?} -> {to:?}"));
    loop {
        let (sender, receiver) = attempt(s, from, to, no_listen, what);
        let pythons: Vec<&PeerOutput> = [(from, &sender), (to, &receiver)]
            .into_iter()
            .filter(|(side, _)| *side == Side::Python)
            .map(|(_, o)| o)
            .collect();
        if !(sender.success() && receiver.success()) && race.should_retry(&pythons, &[&sender, &receiver]) {
            continue;
        }
        return check(s, what, sender, receiver);
    }
}

/// One run of `from` sending `what` to `to`.
fn attempt(s: &Setup, from: Side, to: Side, no_listen: bool, what: &str) -> (PeerOutput, PeerOutput) {
    let code = unique_code();
    let global = Peers::python_global_args(s.server.url(), Some(&s.relay.python_hint()));
    let mut send = PeerCommand::new(bin(from))
        .name(&format!("{from:?} sender"))
        .args(&global)
        .args(["send", "--code", &code, "--hide-progress", "--no-qr"])
        .current_dir(s.src.path())
        .timeout(Duration::from_secs(60));
    let mut receive = PeerCommand::new(bin(to))
        .name(&format!("{to:?} receiver"))
        .args(&global)
        .args(["receive", "--accept-file", "--hide-progress"])
        .current_dir(s.dst.path())
        .timeout(Duration::from_secs(60));
    if no_listen {
        send = send.arg("--no-listen");
        receive = receive.arg("--no-listen");
    }
    if from == Side::Ours && to == Side::Ours {
        // Two of ours would use the Dilated File-Transfer protocol; these lines are transit's.
        send = send.arg("--classic");
    }
    let sender = send.arg(what).spawn();
    let receiver = receive.arg(&code).run();
    (sender.wait(), receiver)
}

/// Both sides succeeded and `what` arrived whole.
fn check(s: &Setup, what: &str, sender: PeerOutput, receiver: PeerOutput) -> (PeerOutput, PeerOutput) {
    let context = format!("{sender}\n{receiver}\n--- relay log:\n{}", s.relay.logs());
    assert!(
        sender.success() && receiver.success(),
        "transfer failed:\n{context}"
    );
    let (got, want) = if what == FILE {
        (sha256_file(s.dst.path().join(FILE)), s.sha.clone())
    } else {
        (
            sha256_dir(s.dst.path().join(what)),
            sha256_dir(s.src.path().join(what)),
        )
    };
    assert_eq!(got, want, "content differs:\n{context}");
    (sender, receiver)
}

/// The DESC of the one `VERB (DESC)..` line in `stderr`.
fn description(stderr: &str, verb: &str) -> String {
    let prefix = format!("{verb} (");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.ends_with(").."))
        .collect();
    assert_eq!(lines.len(), 1, "want one `{verb} (…)..` line in:\n{stderr}");
    lines[0][prefix.len()..lines[0].len() - 3].to_owned()
}

/// `HOST:PORT` with HOST an IP address (IPv6 unbracketed, as Python prints it).
fn host_port(s: &str) -> Option<(IpAddr, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    Some((host.parse().ok()?, port.parse().ok()?))
}

#[derive(Debug, PartialEq, Eq)]
enum Desc {
    Dialled(IpAddr, u16),
    Accepted(IpAddr, u16),
    Relay(IpAddr, u16),
}

fn parse_desc(d: &str) -> Desc {
    let parsed = if let Some(rest) = d.strip_prefix("->relay:tcp:") {
        host_port(rest).map(|(h, p)| Desc::Relay(h, p))
    } else if let Some(rest) = d.strip_prefix("->tcp:") {
        host_port(rest).map(|(h, p)| Desc::Dialled(h, p))
    } else if let Some(rest) = d.strip_prefix("<-") {
        host_port(rest).map(|(h, p)| Desc::Accepted(h, p))
    } else {
        None
    };
    parsed.unwrap_or_else(|| panic!("not a Python-style connection description: {d:?}"))
}

/// `first` is printed before `then` in `stderr`.
fn assert_before(stderr: &str, first: &str, then: &str) {
    let a = stderr
        .find(first)
        .unwrap_or_else(|| panic!("no {first:?} in:\n{stderr}"));
    let b = stderr
        .find(then)
        .unwrap_or_else(|| panic!("no {then:?} in:\n{stderr}"));
    assert!(a < b, "{first:?} must come before {then:?}:\n{stderr}");
}

/// One side dialled, the other accepted: the forms must be complementary.
fn assert_direct_pair(sending: &Desc, receiving: &Desc) {
    match (sending, receiving) {
        (Desc::Dialled(..), Desc::Accepted(..)) | (Desc::Accepted(..), Desc::Dialled(..)) => {}
        other => panic!("not one direct connection seen from both ends: {other:?}"),
    }
}

#[test]
fn ours_to_ours_direct() {
    let s = setup(300_000, 41);
    let (sender, receiver) = transfer(&s, Side::Ours, Side::Ours, false);
    let sd = description(&sender.stderr, "Sending");
    let rd = description(&receiver.stderr, "Receiving");
    assert_direct_pair(&parse_desc(&sd), &parse_desc(&rd));
    // Python's order: the connection line, the data, then the ack.
    assert_before(
        &sender.stderr,
        "Sending (",
        "File sent.. waiting for confirmation",
    );
    assert_before(
        &sender.stderr,
        "File sent.. waiting for confirmation",
        "Confirmation received. Transfer complete.",
    );
    assert_before(&receiver.stderr, "Receiving (", "Received file written to");
}

#[test]
fn ours_to_ours_directory() {
    let s = setup(1, 46);
    make_test_tree(s.src.path().join("tree"));
    let (sender, receiver) = transfer_what(&s, Side::Ours, Side::Ours, false, "tree");
    let sd = description(&sender.stderr, "Sending");
    let rd = description(&receiver.stderr, "Receiving");
    assert_direct_pair(&parse_desc(&sd), &parse_desc(&rd));
    assert_before(
        &sender.stderr,
        "Sending (",
        "File sent.. waiting for confirmation",
    );
    // Python's receiver order for a directory.
    assert_before(&receiver.stderr, "Receiving (", "Unpacking zipfile..");
    assert_before(
        &receiver.stderr,
        "Unpacking zipfile..",
        "Received files written to",
    );
}

#[test]
fn ours_to_ours_no_listen_goes_through_the_relay() {
    let s = setup(200_000, 42);
    let (sender, receiver) = transfer(&s, Side::Ours, Side::Ours, true);
    let want = format!("->relay:tcp:127.0.0.1:{}", s.relay.port());
    assert_eq!(description(&sender.stderr, "Sending"), want, "{sender}");
    assert_eq!(description(&receiver.stderr, "Receiving"), want, "{receiver}");
    assert!(
        sender.stderr.contains(&format!("Sending ({want})..\n")),
        "{sender}"
    );
}

#[test]
fn ours_and_python_print_the_same_relay_line() {
    let s = setup(100_000, 43);
    let want = format!("->relay:tcp:127.0.0.1:{}", s.relay.port());
    let (sender, receiver) = transfer(&s, Side::Ours, Side::Python, true);
    assert_eq!(
        description(&receiver.stderr, "Receiving"),
        want,
        "Python: {receiver}"
    );
    assert_eq!(description(&sender.stderr, "Sending"), want, "ours: {sender}");
}

#[test]
fn ours_and_python_direct_lines_are_complementary() {
    let s = setup(100_000, 44);
    let (sender, receiver) = transfer(&s, Side::Python, Side::Ours, false);
    let python = parse_desc(&description(&sender.stderr, "Sending"));
    let ours = parse_desc(&description(&receiver.stderr, "Receiving"));
    assert_direct_pair(&python, &ours);
    std::fs::remove_file(s.dst.path().join(FILE)).unwrap();
    let (sender, receiver) = transfer(&s, Side::Ours, Side::Python, false);
    let ours = parse_desc(&description(&sender.stderr, "Sending"));
    let python = parse_desc(&description(&receiver.stderr, "Receiving"));
    assert_direct_pair(&ours, &python);
}

#[test]
fn a_peer_with_another_transit_key_fails_fast_with_a_clear_error() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join(FILE);
    write_test_file(&path, 50_000, 45);
    // Nothing listens there (the port is held, never listening): the relay attempt is refused at
    // once, so only the direct connections (which prove the wrong key) are left.
    let (_held, port) = refusing_port().unwrap();
    let no_relay = format!("tcp:127.0.0.1:{port}");
    let code = unique_code();
    let receiver = PeerCommand::new(our_bin("wormhole"))
        .name("ours receiver")
        .args(["--relay-url", server.url(), "--transit-helper", &no_relay])
        .args(["receive", "--accept-file", "--hide-progress", &code])
        .current_dir(dst.path())
        .timeout(Duration::from_secs(60))
        .spawn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sent = rt.block_on(async {
        let w = Wormhole::create(DEFAULT_APPID, server.url(), WormholeOptions::default());
        w.set_code(&code).await.unwrap();
        w.get_verifier().await.unwrap();
        let item = SendItem::prepare(&path, false).unwrap();
        let opts = SendOptions {
            // Not the key the CLI derives: every handshake will differ in its key part.
            purpose: TransitPurpose::Custom("someone-else/transit-key".into()),
            transit: TransitConfig::default(),
            ..SendOptions::default()
        };
        let r = tokio::time::timeout(Duration::from_secs(30), send_item(&w, &item, opts)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), w.close()).await;
        r
    });
    let out = receiver.wait();
    println!("receiver after {:?}:\n{}", out.elapsed, out.stderr);
    assert!(!out.timed_out && !out.success(), "the receiver must fail:\n{out}");
    assert!(
        out.stderr.contains("transit handshake did not match"),
        "no clear error:\n{out}"
    );
    assert!(out.stderr.contains("different transit keys"), "{out}");
    // Half the 60 s handshake timeout (room for a loaded machine), so not the timeout.
    assert!(
        out.elapsed < Duration::from_secs(30),
        "took {:?} (the handshake timeout is 60 s):\n{out}",
        out.elapsed
    );
    assert!(!dst.path().join(FILE).exists(), "nothing may be written");
    match sent {
        Ok(Err(TransferError::Transit(TransitError::KeyMismatch(_)))) => {}
        other => panic!("the library sender must fail with KeyMismatch, got {other:?}\n{out}"),
    }
}

const CUSTOM_APPID: &str = "example.com/interop-connect-custom";

/// Python 0.24 with `--appid CUSTOM_APPID` on our mailbox, no reachable relay (a port that
/// refuses: keep the returned socket while the command runs).
fn python_custom(server: &MailboxServer, dir: &Path) -> (PeerCommand, impl Sized) {
    let (held, port) = refusing_port().unwrap();
    let no_relay = format!("tcp:127.0.0.1:{port}");
    let cmd = PeerCommand::new(Peers::locate().python_wormhole)
        .args(["--relay-url", server.url(), "--transit-helper", &no_relay])
        .args(["--appid", CUSTOM_APPID])
        .current_dir(dir)
        .timeout(Duration::from_secs(60));
    (cmd, held)
}

/// Our library on `CUSTOM_APPID` with `code`, once the peer is verified.
async fn library_side(server: &MailboxServer, code: &str) -> Wormhole {
    let w = Wormhole::create(CUSTOM_APPID, server.url(), WormholeOptions::default());
    w.set_code(code).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), w.get_verifier())
        .await
        .expect("no peer within 30 s")
        .unwrap();
    w
}

fn assert_fast_key_mismatch<T: std::fmt::Debug>(r: Result<T, TransferError>, took: Duration, peer: &str) {
    match r {
        Err(TransferError::Transit(TransitError::KeyMismatch(ref seen))) => {
            assert!(!seen.is_empty(), "no connection named");
        }
        other => panic!("expected KeyMismatch against {peer}, got {other:?}"),
    }
    // Half the 60 s handshake timeout: proves the mismatch ended it, not the timeout (with room
    // for a loaded machine).
    assert!(took < Duration::from_secs(30), "took {took:?} against {peer}");
}

#[test]
fn python_sender_with_another_transit_key_purpose_fails_fast() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join(FILE), 20_000, 47);
    let code = unique_code();
    let (python, _held) = python_custom(&server, src.path());
    let python = python
        .name("Python sender")
        .args(["send", "--code", &code, "--hide-progress", FILE])
        .spawn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (r, took) = rt.block_on(async {
        let w = library_side(&server, &code).await;
        let opts = ReceiveOptions {
            cwd: dst.path().to_owned(),
            ..ReceiveOptions::default()
        };
        let t0 = std::time::Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(40), receive(&w, opts, |_| Decision::Accept))
            .await
            .expect("receive hung");
        let took = t0.elapsed();
        let _ = tokio::time::timeout(Duration::from_secs(5), w.close()).await;
        (r, took)
    });
    drop(python); // still waiting for a transit connection: killed
    assert_fast_key_mismatch(r, took, "a Python sender");
    assert!(!dst.path().join(FILE).exists(), "nothing may be written");
}

#[test]
fn python_receiver_with_another_transit_key_purpose_fails_fast() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join(FILE);
    write_test_file(&path, 20_000, 48);
    let code = unique_code();
    let (python, _held) = python_custom(&server, dst.path());
    let python = python
        .name("Python receiver")
        .args(["receive", "--accept-file", "--hide-progress", &code])
        .spawn();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (r, took) = rt.block_on(async {
        let w = library_side(&server, &code).await;
        let item = SendItem::prepare(&path, false).unwrap();
        let t0 = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(40),
            send_item(&w, &item, SendOptions::default()),
        )
        .await
        .expect("send hung");
        // Includes the offer and Python's acceptance, well under a second here.
        let took = t0.elapsed();
        let _ = tokio::time::timeout(Duration::from_secs(5), w.close()).await;
        (r, took)
    });
    drop(python);
    assert_fast_key_mismatch(r, took, "a Python receiver");
}
