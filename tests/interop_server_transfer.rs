//! Issue 2, Show 2 (files and directories): the real CLIs (Python 0.24, wormhole-william, wormhole-rs)
//! transfer a file through OUR mailbox server for every pair that supports it, in both directions, and a
//! directory between Python and Go in both directions; content is checked by sha256. The Python transit
//! relay runs on loopback (on 127.0.0.1:4001 whenever a Go peer takes part: Go always offers
//! `transit.magic-wormhole.io:4001`, which `scripts/netns-run` maps to 127.0.0.1). One control case
//! runs the same file transfer through the Python mailbox server. Two more cases force Python ⇄ wormhole-rs
//! onto the relay (no direct connections) and check the Python side reports it.
//!
//! Runs inside `scripts/netns-run`. Requires the peers (`scripts/install-peers`) and
//! `cargo build --workspace` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use wormhole_interop::*;

/// The relay for a pair: on port 4001 (under the lock) if Go takes part, else on a free port.
fn relay_for(from: PeerKind, to: PeerKind) -> (Option<Port4001Lock>, TransitRelay) {
    if from == PeerKind::Go || to == PeerKind::Go {
        let lock = lock_port_4001();
        (Some(lock), start_python_relay(4001))
    } else {
        (None, start_python_relay(ANY_PORT))
    }
}

/// One attempt: `from` sends `path`, `to` receives into a fresh directory. Returns both outputs and
/// the receive directory.
fn attempt(
    server: &MailboxServer,
    relay: &TransitRelay,
    from: PeerKind,
    to: PeerKind,
    path: &Path,
) -> (PeerOutput, PeerOutput, tempfile::TempDir) {
    let peers = Peers::locate();
    let ep = Endpoints::new(server.url(), Some(relay.addr));
    let code = unique_code();
    let out_dir = tempfile::tempdir().unwrap();
    let sender = peers.send_path(from, &ep, &code, path).spawn();
    let receiver = peers.receive(to, &ep, &code, out_dir.path()).run();
    let sender = sender.wait();
    (sender, receiver, out_dir)
}

/// Transfer `path` (a file or directory) from `from` to `to` through `server`, then check that the
/// receiver wrote exactly the same content. Returns nothing; panics with all outputs on failure.
///
/// The proven peer failures of `KnownPeerBugs`, each matched exactly and logged, get another attempt:
/// wormhole-william's SPAKE2 key bug (any pair of Go with Python or wormhole-rs) and relay race (a Go
/// sender to Python or wormhole-rs), and Python's transit port race.
fn transfer(server: &MailboxServer, from: PeerKind, to: PeerKind, path: &Path) {
    let (_lock, relay) = relay_for(from, to);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut known_bugs = KnownPeerBugs::new(from, to);
    for n in 1.. {
        let (sender, receiver, out_dir) = attempt(server, &relay, from, to, path);
        if known_bugs.should_retry(&sender, &receiver) {
            continue;
        }
        // Every receiver writes the offered name into its output directory.
        let got = out_dir.path().join(&name);
        let context = || {
            format!(
                "{} -> {} of {name} through {:?} server (attempt {n})\n{sender}\n{receiver}\n--- server log:\n{}\n--- relay log:\n{}",
                from.name(),
                to.name(),
                server.kind,
                server.logs(),
                relay.logs()
            )
        };
        assert!(
            sender.success() && receiver.success(),
            "transfer failed: {}",
            context()
        );
        if path.is_dir() {
            assert!(got.is_dir(), "no directory at {}: {}", got.display(), context());
            assert_eq!(dir_tree(&got), dir_tree(path), "directory differs: {}", context());
        } else {
            assert!(got.is_file(), "no file at {}: {}", got.display(), context());
            assert_eq!(
                sha256_file(&got),
                sha256_file(path),
                "content differs: {}",
                context()
            );
        }
        return;
    }
}

/// A 1 MiB (+ 3 bytes, not a multiple of any record size) deterministic file in a fresh directory.
fn test_file(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("payload-{seed}.bin"));
    write_test_file(&path, (1 << 20) + 3, seed);
    (dir, path)
}

fn file_case(from: PeerKind, to: PeerKind, seed: u64) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_dir, path) = test_file(seed);
    transfer(&server, from, to, &path);
}

fn dir_case(from: PeerKind, to: PeerKind) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join(format!("tree-{}-{}", from.name(), to.name()));
    make_test_tree(&path);
    transfer(&server, from, to, &path);
}

#[test]
fn file_python_to_go() {
    file_case(PeerKind::Python, PeerKind::Go, 1);
}

#[test]
fn file_go_to_python() {
    file_case(PeerKind::Go, PeerKind::Python, 2);
}

#[test]
fn file_python_to_rust() {
    file_case(PeerKind::Python, PeerKind::Rust, 3);
}

#[test]
fn file_rust_to_python() {
    file_case(PeerKind::Rust, PeerKind::Python, 4);
}

#[test]
fn file_go_to_rust() {
    file_case(PeerKind::Go, PeerKind::Rust, 5);
}

#[test]
fn file_rust_to_go() {
    file_case(PeerKind::Rust, PeerKind::Go, 6);
}

#[test]
fn directory_python_to_go() {
    dir_case(PeerKind::Python, PeerKind::Go);
}

#[test]
fn directory_go_to_python() {
    dir_case(PeerKind::Go, PeerKind::Python);
}

/// Control: one file transfer through the Python mailbox server, same helper.
#[test]
fn control_file_python_to_go_through_python_server() {
    require_netns();
    let server = start_python_mailbox(&[]);
    let (_dir, path) = test_file(9);
    transfer(&server, PeerKind::Python, PeerKind::Go, &path);
}

/// Python ⇄ wormhole-rs with both sides refusing direct connections (`--no-listen` / `--force-relay`),
/// so the file must cross the loopback transit relay; the Python side must report it (`->relay:tcp:…`).
fn forced_relay_case(from: PeerKind, to: PeerKind, seed: u64) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let relay = start_python_relay(ANY_PORT);
    let (_dir, path) = test_file(seed);
    let peers = Peers::locate();
    let ep = Endpoints::new(server.url(), Some(relay.addr));
    let code = unique_code();
    let out_dir = tempfile::tempdir().unwrap();
    let force = |kind: PeerKind, cmd: PeerCommand| match kind {
        PeerKind::Python => cmd.arg("--no-listen"),
        PeerKind::Rust => cmd.arg("--force-relay"),
        PeerKind::Go => panic!("wormhole-william cannot be forced onto the relay by a flag"),
    };
    let sender = force(from, peers.send_path(from, &ep, &code, &path)).spawn();
    let receiver = force(to, peers.receive(to, &ep, &code, out_dir.path())).run();
    let sender = sender.wait();
    let context = format!(
        "{sender}\n{receiver}\n--- server log:\n{}\n--- relay log:\n{}",
        server.logs(),
        relay.logs()
    );
    assert!(
        sender.success() && receiver.success(),
        "forced-relay transfer failed:\n{context}"
    );
    let python_side = if from == PeerKind::Python {
        &sender
    } else {
        &receiver
    };
    assert!(
        python_side.all_output().contains("->relay:"),
        "the Python side did not report a relay connection:\n{context}"
    );
    let got = out_dir.path().join(path.file_name().unwrap());
    assert_eq!(
        sha256_file(&got),
        sha256_file(&path),
        "content differs:\n{context}"
    );
}

#[test]
fn file_python_to_rust_forced_relay() {
    forced_relay_case(PeerKind::Python, PeerKind::Rust, 10);
}

#[test]
fn file_rust_to_python_forced_relay() {
    forced_relay_case(PeerKind::Rust, PeerKind::Python, 11);
}
