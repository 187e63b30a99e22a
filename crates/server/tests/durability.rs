//! Durability: acknowledged state survives SIGKILL. The test spawns the real `wormhole-server`
//! binary on a file DB, streams `add`s while recording every `ack`, SIGKILLs the server in the
//! middle of the stream, restarts it on the same DB, and checks that every acknowledged
//! message is replayed on `open` (in order) and that every claim and release is intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::Client;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const APP: &str = "durable-app";

#[tokio::test]
async fn acknowledged_state_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("channel.sqlite");
    let db = db.to_str().unwrap().to_owned();
    // One connection streams 20,000 adds: no command-rate limit for this test.
    let flags = [
        "--channel-db",
        &db,
        "--max-mailbox-messages",
        "100000",
        "--commands-per-second",
        "0",
    ];
    let mut server = common::spawn(&flags);

    // Claims: A and B on 31 (full), D released 32 while E keeps it.
    let mut a = Client::bound(server.url(), APP, "side-a").await;
    let mb = a.claim("31").await;
    let mut b = Client::bound(server.url(), APP, "side-b").await;
    assert_eq!(b.claim("31").await, mb);
    let mut e = Client::bound(server.url(), APP, "side-e").await;
    e.claim("32").await;
    let mut d = Client::bound(server.url(), APP, "side-d").await;
    d.claim("32").await;
    d.cmd(json!({"type": "release"}), "r").await;
    d.expect("released").await;

    // Stream adds from A; count acks; kill the server mid-stream.
    a.open(&mb).await;
    let (mut tx, mut rx) = a.ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..20_000 {
            let m = json!({"type": "add", "phase": i.to_string(), "body": format!("{i:08x}"),
                           "id": format!("m{i}")});
            if tx.send(Message::text(m.to_string())).await.is_err() {
                return;
            }
        }
    });
    let mut acked: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = next else {
            break; // connection died (after the kill)
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "ack" {
            acked.push(v["id"].as_str().unwrap().to_owned());
        }
        if !killed && acked.len() >= 300 {
            server.kill(); // SIGKILL
            killed = true;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "stream too slow");
    }
    assert!(killed, "server was killed mid-stream ({} acks)", acked.len());
    sender.abort();
    let acked_set: HashSet<String> = acked.iter().cloned().collect();
    assert!(acked_set.len() >= 300);

    // Restart on the same database.
    let server = common::spawn(&flags);

    // B re-opens: every acknowledged message is replayed, in send order.
    let mut b = Client::bound(server.url(), APP, "side-b").await;
    assert_eq!(b.claim("31").await, mb, "claim is intact and idempotent");
    b.open(&mb).await;
    b.send(json!({"type": "ping", "ping": 7, "id": "after-replay"}))
        .await;
    let mut replayed = Vec::new();
    loop {
        let v = b.recv().await;
        match v["type"].as_str() {
            Some("message") => replayed.push(v),
            Some("ack") => assert_eq!(v["id"], "after-replay"),
            Some("pong") => break,
            _ => panic!("unexpected {v}"),
        }
    }
    let ids: Vec<String> = replayed
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let replayed_set: HashSet<&String> = ids.iter().collect();
    for id in &acked_set {
        assert!(replayed_set.contains(id), "acknowledged {id} lost after SIGKILL");
    }
    // Order: m0, m1, ... with no gaps (adds were processed in order).
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id, &format!("m{i}"), "replay order");
    }
    for w in replayed.windows(2) {
        assert!(w[0]["server_rx"].as_f64() <= w[1]["server_rx"].as_f64());
    }

    // A's claim is intact too.
    let mut a = Client::bound(server.url(), APP, "side-a").await;
    assert_eq!(a.claim("31").await, mb);
    // Nameplate 31 has two claims: a third side is crowded (and, as in server 0.8.0, its
    // attempt is recorded, so the channel stays crowded from now on).
    let mut c = Client::bound(server.url(), APP, "side-c").await;
    c.cmd(json!({"type": "claim", "nameplate": "31"}), "c").await;
    c.expect_error("crowded").await;
    // D released 32 before the crash: re-claiming is still refused.
    let mut d = Client::bound(server.url(), APP, "side-d").await;
    d.cmd(json!({"type": "claim", "nameplate": "32"}), "c").await;
    d.expect_error("reclaimed").await;
}
