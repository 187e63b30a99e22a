//! Issue 2, Show 2 (text): the real Python and Go CLIs exchange a text message through OUR mailbox
//! server (`wormhole-server mailbox`), in both directions; the same case against the Python mailbox
//! server is the control that separates server bugs from test bugs.
//!
//! Runs inside `scripts/netns-run` (peers must only ever see loopback). Requires the peers
//! (`scripts/install-peers`) and `cargo build --workspace` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use wormhole_interop::*;

/// Sender and receiver exchange `text` with a fresh code through `server`; asserts the receiver
/// printed it. A Go ⇄ Python exchange that fails with exactly wormhole-william's SPAKE2 key-bug
/// signature is run again (with a fresh code), at most `GO_KEY_BUG_RETRIES` times, each logged.
fn text_exchange(server: &MailboxServer, from: PeerKind, to: PeerKind) {
    let mut retries = KnownPeerBugs::new(from, to);
    loop {
        let (sender, receiver, text) = text_attempt(server, from, to);
        if retries.should_retry(&sender, &receiver) {
            continue;
        }
        let ok = sender.success() && receiver.success() && receiver.stdout.contains(&text);
        assert!(
            ok,
            "text {} -> {} through {:?} server failed (expected `{text}` on the receiver's stdout)\n{sender}\n{receiver}\n--- server log:\n{}",
            from.name(),
            to.name(),
            server.kind,
            server.logs()
        );
        return;
    }
}

/// One attempt: both outputs and the text sent.
fn text_attempt(server: &MailboxServer, from: PeerKind, to: PeerKind) -> (PeerOutput, PeerOutput, String) {
    let peers = Peers::locate();
    let ep = Endpoints::new(server.url(), None);
    let code = unique_code();
    let text = format!(
        "hello from {} to {} via {:?} server",
        from.name(),
        to.name(),
        server.kind
    );
    let out_dir = tempfile::tempdir().unwrap();
    let sender = peers.send_text(from, &ep, &code, &text).spawn();
    let receiver = peers.receive(to, &ep, &code, out_dir.path()).run();
    (sender.wait(), receiver, text)
}

#[test]
fn text_python_to_go_through_our_server() {
    require_netns();
    let server = start_our_mailbox(&[]);
    text_exchange(&server, PeerKind::Python, PeerKind::Go);
}

#[test]
fn text_go_to_python_through_our_server() {
    require_netns();
    let server = start_our_mailbox(&[]);
    text_exchange(&server, PeerKind::Go, PeerKind::Python);
}

#[test]
fn text_python_to_python_through_our_server() {
    require_netns();
    let server = start_our_mailbox(&[]);
    text_exchange(&server, PeerKind::Python, PeerKind::Python);
}

#[test]
fn text_go_to_go_through_our_server() {
    require_netns();
    let server = start_our_mailbox(&[]);
    text_exchange(&server, PeerKind::Go, PeerKind::Go);
}

/// Control: the same cases against the Python mailbox server. If these fail too, the test (or the
/// peers' installation) is at fault, not our server.
#[test]
fn control_text_python_to_go_through_python_server() {
    require_netns();
    let server = start_python_mailbox(&[]);
    text_exchange(&server, PeerKind::Python, PeerKind::Go);
}

#[test]
fn control_text_go_to_python_through_python_server() {
    require_netns();
    let server = start_python_mailbox(&[]);
    text_exchange(&server, PeerKind::Go, PeerKind::Python);
}
