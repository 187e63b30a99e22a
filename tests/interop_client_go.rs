//! Our client library at the API level against wormhole-william's CLI (Go), which speaks the
//! file-transfer protocol's text offer over this API: `{"offer":{"message":…}}` answered by
//! `{"answer":{"message_ack":"ok"}}` (docs/protocol.md §5.1). Both directions, on our mailbox server
//! and on Python's. Mailbox traffic only (no transit for text).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wormhole::{DEFAULT_APPID, Mood, Wormhole, WormholeOptions};
use wormhole_interop::{
    Endpoints, MailboxServer, PeerKind, Peers, start_our_mailbox, start_python_mailbox, unique_code,
};

const T: Duration = Duration::from_secs(60);

async fn go_sends_text(server: &MailboxServer) {
    let peers = Peers::locate();
    let code = unique_code();
    let ep = Endpoints::new(server.url(), None);
    let go = peers.send_text(PeerKind::Go, &ep, &code, "hello from go").spawn();
    let w = Wormhole::create(DEFAULT_APPID, server.url(), WormholeOptions::default());
    w.set_code(&code).await.unwrap();
    tokio::time::timeout(T, w.get_verifier()).await.unwrap().unwrap();
    let offer: Value =
        serde_json::from_slice(&tokio::time::timeout(T, w.get_message()).await.unwrap().unwrap()).unwrap();
    assert_eq!(offer, json!({"offer": {"message": "hello from go"}}));
    w.send_message(json!({"answer": {"message_ack": "ok"}}).to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(tokio::time::timeout(T, w.close()).await.unwrap(), Ok(Mood::Happy));
    let out = tokio::task::spawn_blocking(move || go.wait()).await.unwrap();
    out.assert_success();
}

async fn go_receives_text(server: &MailboxServer) {
    let peers = Peers::locate();
    let ep = Endpoints::new(server.url(), None);
    let w = Wormhole::create(DEFAULT_APPID, server.url(), WormholeOptions::default());
    w.allocate_code(2).await.unwrap();
    let code = w.get_code().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = peers.receive(PeerKind::Go, &ep, &code, dir.path()).spawn();
    tokio::time::timeout(T, w.get_verifier()).await.unwrap().unwrap();
    w.send_message(
        json!({"offer": {"message": "hello from rust"}})
            .to_string()
            .into_bytes(),
    )
    .await
    .unwrap();
    let answer: Value =
        serde_json::from_slice(&tokio::time::timeout(T, w.get_message()).await.unwrap().unwrap()).unwrap();
    assert_eq!(answer, json!({"answer": {"message_ack": "ok"}}));
    assert_eq!(tokio::time::timeout(T, w.close()).await.unwrap(), Ok(Mood::Happy));
    let out = tokio::task::spawn_blocking(move || go.wait()).await.unwrap();
    out.assert_success();
    assert!(out.stdout.contains("hello from rust"), "{}", out.all_output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sends_text_our_server() {
    go_sends_text(&start_our_mailbox(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_receives_text_our_server() {
    go_receives_text(&start_our_mailbox(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sends_text_python_server() {
    go_sends_text(&start_python_mailbox(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_receives_text_python_server() {
    go_receives_text(&start_python_mailbox(&[])).await;
}
