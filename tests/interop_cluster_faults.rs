//! Issue 13, Show 3 (nodes): a mailbox node SIGKILLed under its clients, in a two-node cluster
//! (`scripts/cluster-up`: PostgreSQL 15, two of our nodes, HAProxy). The sender talks to node 1
//! through the HAProxy frontend pinned to it (node 2 is that frontend's backup); node 1 is
//! killed; every client that connects or reconnects through HAProxy afterwards lands on node 2,
//! which has everything node 1 acknowledged (it is in PostgreSQL).
//!
//! What each client does when its WebSocket is lost (seen with these versions): Python 0.24 and
//! our client reconnect (with backoff), bind the same side, re-claim, re-open and re-send; so
//! they are the senders whose node dies mid-handshake. wormhole-william has no reconnection (its
//! sender just waits forever) and wormhole-rs ends with an error, by design; for them the test
//! shows what is possible: connecting after the failure through the same URL reaches the
//! surviving node and completes with the peer that reconnected. Mid-transfer (file bytes
//! flowing over transit) all three implementations and ours finish, because after the key
//! exchange the mailbox is needed only for the last close.
//!
//! Runs inside `scripts/netns-run`. Requires the peers, PostgreSQL 15 and HAProxy
//! (`scripts/install-peers`) and `cargo build --workspace` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wormhole_interop::*;

const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";
/// Hang guard for waits on the cluster (never a timing assumption).
const WAIT: Duration = Duration::from_secs(60);

/// Wait until `nameplate` is listed by the node at `url` (asked directly, not through HAProxy).
fn wait_for_nameplate(url: &str, nameplate: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let bind = json!({"type": "bind", "appid": APPID, "side": "observer"});
        ws.send(Message::text(bind.to_string())).await.unwrap();
        let start = Instant::now();
        loop {
            assert!(start.elapsed() < WAIT, "nameplate {nameplate} never appeared");
            ws.send(Message::text(json!({"type": "list"}).to_string()))
                .await
                .unwrap();
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("observer connection lost");
                };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "nameplates" {
                    if v["nameplates"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|n| n["id"] == nameplate)
                    {
                        return;
                    }
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn nameplate_of(code: &str) -> &str {
    code.split('-').next().unwrap()
}

/// Our CLI with Python's flags.
fn ours(url: &str, relay: Option<&TransitRelay>) -> PeerCommand {
    let cmd = PeerCommand::new(our_bin("wormhole"))
        .name("ours")
        .args(["--relay-url", url]);
    match relay {
        Some(r) => cmd.args(["--transit-helper".to_owned(), r.python_hint()]),
        None => cmd,
    }
}

fn logs(cluster: &Cluster) -> String {
    format!(
        "--- node 1:\n{}\n--- node 2:\n{}",
        cluster.node_log(1),
        cluster.node_log(2)
    )
}

/// Python sends text on node 1; node 1 dies after the sender claimed; Python reconnects
/// through HAProxy to node 2, and wormhole-william, connecting through the same frontend after
/// the failure, receives it there.
#[test]
fn node_killed_mid_handshake_python_sender_reconnects_go_receives() {
    require_netns();
    if !cluster_available("node_killed_mid_handshake (python)") {
        return;
    }
    let cluster = Cluster::start(2);
    let peers = Peers::locate();
    let ep = Endpoints::new(cluster.pinned_url(1), None);
    let mut retries = KnownPeerBugs::new(PeerKind::Python, PeerKind::Go);
    let mut killed = false;
    loop {
        let code = unique_code();
        let text = "sent before the node died";
        let sender = peers.send_text(PeerKind::Python, &ep, &code, text).spawn();
        wait_for_nameplate(cluster.node_url(2), nameplate_of(&code));
        // (A retry after Go's key bug runs on node 2 alone.)
        if !killed {
            cluster.kill_node(1);
            killed = true;
        }
        let out_dir = tempfile::tempdir().unwrap();
        let receiver = peers.receive(PeerKind::Go, &ep, &code, out_dir.path()).run();
        let sender = sender.wait();
        if retries.should_retry(&sender, &receiver) {
            continue;
        }
        assert!(
            sender.success() && receiver.success() && receiver.stdout.contains(text),
            "after the node died\n{sender}\n{receiver}\n{}",
            logs(&cluster)
        );
        return;
    }
}

/// Our client sends a file on node 1; node 1 dies after the sender claimed; ours reconnects
/// through HAProxy to node 2, and wormhole-rs, connecting through the same frontend after the
/// failure, receives the file there.
#[test]
fn node_killed_mid_handshake_our_sender_reconnects_rs_receives() {
    require_netns();
    if !cluster_available("node_killed_mid_handshake (ours)") {
        return;
    }
    let relay = start_python_relay(ANY_PORT);
    let cluster = Cluster::start(2);
    let peers = Peers::locate();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handshake.bin");
    write_test_file(&path, 200_000, 31);
    let code = unique_code();
    let sender = ours(cluster.pinned_url(1), Some(&relay))
        .current_dir(dir.path())
        .args(["send", "--code", &code, "--hide-progress", "handshake.bin"])
        .spawn();
    wait_for_nameplate(cluster.node_url(2), nameplate_of(&code));
    cluster.kill_node(1);
    let out_dir = tempfile::tempdir().unwrap();
    let ep = Endpoints::new(cluster.pinned_url(1), Some(relay.addr));
    let receiver = peers.receive(PeerKind::Rust, &ep, &code, out_dir.path()).run();
    let sender = sender.wait();
    let got = out_dir.path().join("handshake.bin");
    assert!(
        sender.success() && receiver.success() && got.is_file(),
        "after the node died\n{sender}\n{receiver}\n{}",
        logs(&cluster)
    );
    assert_eq!(sha256_file(&got), sha256_file(&path));
}

/// Whether process `pid` is still running (not gone, not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Bytes under `dir`.
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `from` sends a big file on node 1 to a Python receiver on node 2; node 1 is killed once
/// the receiver has written a megabyte; both finish and the file is intact.
fn killed_mid_transfer(from: PeerKind, relay: &TransitRelay, path: &Path) {
    let cluster = Cluster::start(2);
    let peers = Peers::locate();
    let mut retries = KnownPeerBugs::new(from, PeerKind::Python);
    let mut killed = false;
    loop {
        let code = unique_code();
        let a = Endpoints::new(cluster.pinned_url(1), Some(relay.addr));
        let b = Endpoints::new(cluster.pinned_url(2), Some(relay.addr));
        let out_dir = tempfile::tempdir().unwrap();
        let sender = peers.send_path(from, &a, &code, path).spawn();
        let receiver = peers.receive(PeerKind::Python, &b, &code, out_dir.path()).spawn();
        let start = Instant::now();
        while bytes_in(out_dir.path()) < 1 << 20 && running(receiver.pid()) {
            assert!(start.elapsed() < WAIT, "the transfer never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        if !killed {
            assert!(
                running(receiver.pid()),
                "the transfer ended before the node was killed"
            );
            cluster.kill_node(1);
            killed = true;
        }
        let receiver = receiver.wait();
        let sender = sender.wait();
        // Includes wormhole-william's relay race (tests/harness/go_relay_race.rs).
        if retries.should_retry(&sender, &receiver) {
            continue;
        }
        let got = out_dir.path().join(path.file_name().unwrap());
        assert!(
            sender.success() && receiver.success() && got.is_file(),
            "{} sender, node killed mid-transfer\n{sender}\n{receiver}\n{}",
            from.name(),
            logs(&cluster)
        );
        assert_eq!(sha256_file(&got), sha256_file(path), "content differs");
        return;
    }
}

#[test]
fn node_killed_mid_transfer_python_go_and_rs_senders_finish() {
    require_netns();
    if !cluster_available("node_killed_mid_transfer") {
        return;
    }
    let _lock = lock_port_4001();
    let relay = start_python_relay(4001);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    write_test_file(&path, 128 << 20, 77);
    for from in [PeerKind::Python, PeerKind::Go, PeerKind::Rust] {
        killed_mid_transfer(from, &relay, &path);
    }
}
