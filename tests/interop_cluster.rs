//! Issue 13, Show 2: the real CLIs (Python 0.24, wormhole-william, wormhole-rs) complete text and
//! file transfers through a two-node mailbox cluster (`scripts/cluster-up`: PostgreSQL 15, two of
//! our nodes, HAProxy), with the sender on node 1 and the receiver on node 2. Both sides go
//! through HAProxy: the sender through the frontend pinned to node 1, the receiver through the
//! one pinned to node 2 (see scripts/cluster-up), so every message crosses nodes by
//! PostgreSQL `NOTIFY`. One cluster serves all cases, one after another.
//!
//! Runs inside `scripts/netns-run`. Requires the peers, PostgreSQL 15 and HAProxy
//! (`scripts/install-peers`) and `cargo build --workspace` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use wormhole_interop::*;

/// `from` sends `text` on node 1, `to` receives on node 2; retried only on a proven peer bug
/// (exact signature, logged by `KnownPeerBugs`).
fn text_across(cluster: &Cluster, from: PeerKind, to: PeerKind) {
    let peers = Peers::locate();
    let mut retries = KnownPeerBugs::new(from, to);
    loop {
        let code = unique_code();
        let text = format!("across nodes from {} to {}", from.name(), to.name());
        let out_dir = tempfile::tempdir().unwrap();
        let a = Endpoints::new(cluster.pinned_url(1), None);
        let b = Endpoints::new(cluster.pinned_url(2), None);
        let sender = peers.send_text(from, &a, &code, &text).spawn();
        let receiver = peers.receive(to, &b, &code, out_dir.path()).run();
        let sender = sender.wait();
        if retries.should_retry(&sender, &receiver) {
            continue;
        }
        assert!(
            sender.success() && receiver.success() && receiver.stdout.contains(&text),
            "text {} -> {} across nodes failed\n{sender}\n{receiver}\n--- node 1:\n{}\n--- node 2:\n{}",
            from.name(),
            to.name(),
            cluster.node_log(1),
            cluster.node_log(2)
        );
        return;
    }
}

/// `from` sends the file `path` on node 1, `to` receives it on node 2; content checked by sha256.
/// A Go sender's relay race is one of the `KnownPeerBugs` (tests/harness/go_relay_race.rs).
fn file_across(cluster: &Cluster, relay: &TransitRelay, from: PeerKind, to: PeerKind, path: &Path) {
    let peers = Peers::locate();
    let mut retries = KnownPeerBugs::new(from, to);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    loop {
        let code = unique_code();
        let out_dir = tempfile::tempdir().unwrap();
        let a = Endpoints::new(cluster.pinned_url(1), Some(relay.addr));
        let b = Endpoints::new(cluster.pinned_url(2), Some(relay.addr));
        let sender = peers.send_path(from, &a, &code, path).spawn();
        let receiver = peers.receive(to, &b, &code, out_dir.path()).run();
        let sender = sender.wait();
        if retries.should_retry(&sender, &receiver) {
            continue;
        }
        let got = out_dir.path().join(&name);
        assert!(
            sender.success() && receiver.success() && got.is_file(),
            "file {} -> {} across nodes failed\n{sender}\n{receiver}\n--- node 1:\n{}\n--- node 2:\n{}",
            from.name(),
            to.name(),
            cluster.node_log(1),
            cluster.node_log(2)
        );
        assert_eq!(sha256_file(&got), sha256_file(path), "content differs");
        return;
    }
}

#[test]
fn python_go_and_rs_transfer_text_and_files_across_two_nodes() {
    require_netns();
    if !cluster_available("interop_cluster") {
        return;
    }
    // wormhole-william always offers the relay on port 4001 (netns-run maps its host there).
    let _lock = lock_port_4001();
    let relay = start_python_relay(4001);
    let cluster = Cluster::start(2);
    text_across(&cluster, PeerKind::Python, PeerKind::Go);
    text_across(&cluster, PeerKind::Go, PeerKind::Python);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("across.bin");
    write_test_file(&path, (1 << 20) + 3, 13);
    for (from, to) in [
        (PeerKind::Python, PeerKind::Go),
        (PeerKind::Go, PeerKind::Rust),
        (PeerKind::Rust, PeerKind::Python),
    ] {
        file_across(&cluster, &relay, from, to, &path);
    }
}
