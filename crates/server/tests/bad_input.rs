//! Hostile and malformed input: every case gets a clear error (or a close with a reason), never
//! a panic, and never disturbs another client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, InProcess, args};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const APP: &str = "app";

#[tokio::test]
async fn non_json_and_non_objects_get_errors_without_ack() {
    let srv = InProcess::start(args()).await;
    let (mut c, _) = Client::connect(&srv.url()).await;
    c.send_raw(Message::text("this is not json")).await;
    let e = c.expect("error").await;
    assert!(
        e["error"].as_str().unwrap().starts_with("message is not JSON"),
        "{e}"
    );
    assert_eq!(e["orig"], "this is not json");
    c.send_raw(Message::text("[1,2]")).await;
    let e = c.expect("error").await;
    assert_eq!(e["error"], "message must be a JSON object, not a list");
    assert_eq!(e["orig"], json!([1, 2]));
    c.send_raw(Message::text("\"str\"")).await;
    c.expect("error").await;
    // Deep nesting is a parse error, not a stack overflow.
    let deep = "[".repeat(100_000);
    c.send_raw(Message::text(deep)).await;
    let e = c.expect("error").await;
    assert!(e["orig"].as_str().unwrap().len() <= 1000, "orig is truncated");
    // Binary frames carrying JSON are accepted.
    c.send_raw(Message::binary(
        br#"{"type":"ping","ping":3,"id":"bin"}"#.to_vec(),
    ))
    .await;
    c.ack("bin").await;
    assert_eq!(c.expect("pong").await["pong"], 3);
}

#[tokio::test]
async fn wrong_types_get_clear_errors() {
    let srv = InProcess::start(args()).await;
    let (mut c, _) = Client::connect(&srv.url()).await;
    c.cmd(json!({"type": "bind", "appid": 5, "side": "s"}), "b1")
        .await;
    c.expect_error("'appid' must be a string, not a number").await;
    c.cmd(
        json!({"type": "bind", "appid": APP, "side": "s", "client_version": "x"}),
        "b2",
    )
    .await;
    c.expect_error("bind 'client_version' must be a list [implementation, version]")
        .await;
    c.cmd(json!({"type": "ping", "ping": "x"}), "p").await;
    c.expect_error("'ping' must be an integer, not a string").await;
    // The failed binds did not bind: a correct one still works.
    c.cmd(json!({"type": "bind", "appid": APP, "side": "s"}), "b3")
        .await;
    for bad in [
        json!(7),
        json!("7a"),
        json!("7\n"),
        json!(""),
        json!("1".repeat(41)),
        json!(null),
    ] {
        c.cmd(json!({"type": "claim", "nameplate": bad}), "c").await;
        let e = c.expect("error").await;
        assert!(
            e["error"].as_str().unwrap().starts_with("invalid nameplate"),
            "{e}"
        );
    }
    // An invalid nameplate does not use up the connection's one claim.
    c.claim("7").await;
    c.cmd(json!({"type": "open", "mailbox": 5}), "o").await;
    c.expect_error("'mailbox' must be a string, not a number").await;
    c.cmd(json!({"type": "open", "mailbox": "x".repeat(5000)}), "o")
        .await;
    let e = c.expect("error").await;
    assert!(e["error"].as_str().unwrap().contains("too long"));
    c.open("mb").await;
    c.cmd(json!({"type": "add", "phase": 1, "body": "00"}), "a").await;
    c.expect_error("'phase' must be a string, not a number").await;
    c.cmd(json!({"type": "add", "phase": "p", "body": [1]}), "a")
        .await;
    c.expect_error("'body' must be a string, not a list").await;
    c.cmd(json!({"type": "close", "mood": 3}), "x").await;
    c.expect_error("'mood' must be a string, not a number").await;
    c.cmd(json!({"type": "release", "nameplate": 7}), "r").await;
    c.expect_error("release and claim must use same nameplate").await;
    c.sync(1).await;
}

#[tokio::test]
async fn huge_frame_closes_with_reason_and_others_continue() {
    let mut a = args();
    a.max_message_size = 4096;
    let srv = InProcess::start(a).await;
    let mut other = Client::bound(&srv.url(), APP, "other").await;
    let (mut c, _) = Client::connect(&srv.url()).await;
    let big = json!({"type": "ping", "ping": 1, "pad": "x".repeat(10_000)});
    let _ = c.ws.send(Message::text(big.to_string())).await;
    let mut reason = None;
    while let Ok(Some(m)) = tokio::time::timeout(common::WAIT, c.ws.next()).await {
        match m {
            Ok(Message::Close(Some(f))) => {
                reason = Some((f.code, f.reason.to_string()));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    let (code, text) = reason.expect("close frame with a reason");
    assert_eq!(code, CloseCode::Size);
    assert!(text.contains("too big"), "{text}");
    other.sync(2).await;
}

#[tokio::test]
async fn mailbox_message_limit() {
    let mut a = args();
    a.max_mailbox_messages = 3;
    let srv = InProcess::start(a).await;
    let mut c = Client::bound(&srv.url(), APP, "s").await;
    c.open("mb").await;
    for i in 0..3 {
        c.add("p", "00", &format!("m{i}")).await;
    }
    c.cmd(json!({"type": "add", "phase": "p", "body": "00"}), "m4")
        .await;
    let e = c.expect("error").await;
    assert!(e["error"].as_str().unwrap().starts_with("mailbox is full"));
}

/// While a flooder holds unread replies, a well-behaved client still gets every answer (each within
/// the generous per-frame hang guard `common::WAIT`; no speed is asserted: that is the benches' job).
#[tokio::test]
async fn flood_does_not_starve_others() {
    let srv = InProcess::start(args()).await;
    let mut quiet = Client::bound(&srv.url(), APP, "quiet").await;
    // A flooder that never reads its replies: it is eventually dropped as too slow.
    let (mut flood, _) = Client::connect(&srv.url()).await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let flooder = tokio::spawn(async move {
        let ping = Message::text(json!({"type": "ping", "ping": 1}).to_string());
        for _ in 0..20_000 {
            if flood.ws.feed(ping.clone()).await.is_err() {
                return;
            }
        }
        let _ = flood.ws.flush().await;
        // Keep the socket open without reading until the quiet client is done (hang guard 60 s).
        let _ = tokio::time::timeout(Duration::from_secs(60), done_rx).await;
    });
    // Meanwhile the well-behaved client still gets its answers.
    let start = Instant::now();
    for i in 0..20 {
        quiet.sync(i).await;
    }
    eprintln!("20 round trips beside the flooder: {:?}", start.elapsed());
    let _ = done_tx.send(());
    flooder.await.unwrap();
    quiet.sync(99).await;
}

#[tokio::test]
async fn vanished_clients_are_cleaned_up() {
    let srv = InProcess::start(args()).await;
    for i in 0..50 {
        let mut c = Client::bound(&srv.url(), APP, &format!("v{i}")).await;
        c.open(&format!("mb-{i}")).await;
        c.add("p", "00", "x").await;
        // Drop without closing the WebSocket.
    }
    // A fresh client still works, and can join a mailbox a vanished client left behind.
    let mut c = Client::bound(&srv.url(), APP, "late").await;
    c.open("mb-7").await;
    assert_eq!(c.expect("message").await["side"], "v7");
    c.sync(1).await;
}

#[tokio::test]
async fn silent_clients_time_out_but_ponging_ones_stay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Margins for a loaded machine: the live client answers a ping within 1.75 s at the latest.
    let mut a = args();
    a.ping_interval = 0.25;
    a.idle_timeout = 2.0;
    let srv = InProcess::start(a).await;
    // A raw TCP client that completes the upgrade and then never answers pings.
    let mut raw = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    raw.write_all(
        b"GET /v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    // The tungstenite client answers pings by itself while it reads.
    let mut alive = Client::bound(&srv.url(), APP, "alive").await;
    let start = Instant::now();
    let silent = async {
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), raw.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => panic!("silent client was not closed"),
            }
        }
        (start.elapsed(), seen)
    };
    // Meanwhile the other client keeps reading (and so answering pings) for longer.
    let ((elapsed, seen), ()) = tokio::join!(silent, alive.quiet(Duration::from_millis(4000)));
    // The server's idle clock started before `start`: allow that much.
    assert!(
        elapsed >= Duration::from_millis(1500),
        "closed too early: {elapsed:?}"
    );
    // A close frame carrying the reason came before EOF.
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("idle timeout"), "{text}");
    alive.sync(1).await;
}

#[tokio::test]
async fn connection_limit_answers_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut a = args();
    a.max_connections = 2;
    let srv = InProcess::start(a).await;
    let mut c1 = Client::bound(&srv.url(), APP, "1").await;
    let _c2 = Client::bound(&srv.url(), APP, "2").await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    c1.sync(1).await;
}
