//! The conformance cases of the mailbox server with server 0.8.0 (docs/protocol.md §1), driven
//! by a raw WebSocket client: every message type, every error string, ack ordering, echo,
//! replay, crowding, re-claiming, reconnect idempotence, `list`, and the welcome flags.
//!
//! One set of cases, run by three test binaries that each bring their own `crate::common`
//! (`InProcess`, `args`, `Client`): `conformance` (SQLite in memory), `conformance_pg` (one
//! PostgreSQL node) and `conformance_pg2` (two PostgreSQL nodes on one database, where
//! consecutive `InProcess::url()` calls alternate nodes, so the two clients of every pair
//! are on different nodes).

use std::time::Duration;

use crate::common::{Client, InProcess, args};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "lothar.com/wormhole/text-or-file-xfer";

#[tokio::test]
async fn welcome_has_address_and_flags() {
    let srv = InProcess::start(args()).await;
    let (_c, w) = Client::connect(&srv.url()).await;
    let addr = &w["welcome"]["your-address"];
    assert_eq!(addr["ipv4"], "127.0.0.1");
    assert!(addr["port"].as_u64().unwrap() > 0);
    assert!(w["welcome"].get("motd").is_none());
    assert!(w["welcome"].get("error").is_none());

    let mut a = args();
    a.motd = Some("hello motd".into());
    a.advertise_version = Some("0.24.0".into());
    a.signal_error = Some("go away".into());
    let srv = InProcess::start(a).await;
    let (mut c, w) = Client::connect(&srv.url()).await;
    assert_eq!(w["welcome"]["motd"], "hello motd");
    assert_eq!(w["welcome"]["current_cli_version"], "0.24.0");
    assert_eq!(w["welcome"]["error"], "go away");
    // The server keeps serving regardless of the signalled error.
    c.sync(1).await;
}

#[tokio::test]
async fn x_real_ip_is_reported() {
    let srv = InProcess::start(args()).await;
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(srv.url()).unwrap();
    req.headers_mut()
        .insert("X-Real-IP", "2001:db8::7".parse().unwrap());
    req.headers_mut().insert("X-Real-Port", "4444".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut c = Client { ws };
    let w = c.recv().await;
    assert_eq!(w["welcome"]["your-address"]["ipv6"], "2001:db8::7");
    assert_eq!(w["welcome"]["your-address"]["port"], 4444);
}

#[tokio::test]
async fn root_page_and_other_paths() {
    let srv = InProcess::start(args()).await;
    let get = |path: &'static str| {
        let addr = srv.addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    let root = get("/").await;
    assert!(root.starts_with("HTTP/1.1 200 OK\r\n"), "{root}");
    assert!(root.contains("Content-Type: text/plain\r\n"));
    assert!(root.ends_with("\r\n\r\nWormhole Relay\n"));
    assert!(get("/nothing").await.starts_with("HTTP/1.1 404"));
    assert!(get("/v1").await.starts_with("HTTP/1.1 426"));
}

#[tokio::test]
async fn acks_echo_ids_in_order_before_replies() {
    let srv = InProcess::start(args()).await;
    let (mut c, _) = Client::connect(&srv.url()).await;
    // Pipeline everything without waiting, like the Python client.
    c.send(json!({"type": "ping", "ping": 5, "id": "p1"})).await;
    c.send(json!({"type": "bind", "appid": APP, "side": "aaaa", "id": "b1"}))
        .await;
    c.send(json!({"type": "allocate", "id": "a1"})).await;
    c.send(json!({"type": "list"})).await; // no id: ack id is null
    c.send(json!({"type": "claim", "nameplate": "12345", "id": "c1"}))
        .await;
    c.ack("p1").await;
    assert_eq!(c.expect("pong").await["pong"], 5);
    c.ack("b1").await;
    c.ack("a1").await;
    let allocated = c.expect("allocated").await;
    let nameplate = allocated["nameplate"].as_str().unwrap().to_owned();
    assert_eq!(nameplate.len(), 1, "shortest free nameplate: {allocated}");
    let ack = c.expect("ack").await;
    assert!(ack["id"].is_null() && ack.get("id").is_some(), "{ack}");
    let list = c.expect("nameplates").await;
    assert_eq!(list["nameplates"], json!([{"id": nameplate}]));
    c.ack("c1").await;
    let claimed = c.expect("claimed").await;
    assert_eq!(claimed["mailbox"].as_str().unwrap().len(), 13);
    // Direct responses carry neither id nor server_rx (checked in recv for server_rx).
    assert!(claimed.get("id").is_none());
}

#[tokio::test]
async fn full_exchange_with_echo_and_replay() {
    let srv = InProcess::start(args()).await;
    let mut a = Client::bound(&srv.url(), APP, "side-a").await;
    a.cmd(json!({"type": "allocate"}), "al").await;
    let np = a.expect("allocated").await["nameplate"]
        .as_str()
        .unwrap()
        .to_owned();
    let mb = a.claim(&np).await;
    a.open(&mb).await;
    let echo = a.add("pake", "00aa", "m1").await;
    assert_eq!(echo["side"], "side-a");
    assert_eq!(echo["body"], "00aa");
    assert!(echo["server_rx"].is_f64());

    // B claims the same nameplate: same mailbox; open replays A's message.
    let mut b = Client::bound(&srv.url(), APP, "side-b").await;
    assert_eq!(b.claim(&np).await, mb);
    b.open(&mb).await;
    let replay = b.expect("message").await;
    assert_eq!(
        (&replay["side"], &replay["phase"], &replay["body"], &replay["id"]),
        (&json!("side-a"), &json!("pake"), &json!("00aa"), &json!("m1"))
    );
    assert_eq!(replay["server_rx"], echo["server_rx"]);

    // B adds: both subscribers get it, including the sender.
    b.add("pake", "00bb", "m2").await;
    let got = a.expect("message").await;
    assert_eq!((&got["side"], &got["body"]), (&json!("side-b"), &json!("00bb")));

    // Releases, then closes.
    a.cmd(json!({"type": "release", "nameplate": np}), "r1").await;
    a.expect("released").await;
    b.cmd(json!({"type": "release"}), "r2").await;
    b.expect("released").await;
    // The nameplate is free again.
    b.cmd(json!({"type": "list"}), "l1").await;
    assert_eq!(b.expect("nameplates").await["nameplates"], json!([]));
    a.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "x1")
        .await;
    a.expect("closed").await;
    b.cmd(json!({"type": "close", "mood": "happy"}), "x2").await;
    b.expect("closed").await;

    // A fresh side opening the same mailbox id finds it empty (deleted).
    let mut c = Client::bound(&srv.url(), APP, "side-c").await;
    c.open(&mb).await;
    c.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn replay_is_in_arrival_order() {
    let srv = InProcess::start(args()).await;
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    a.open("mbox-replay").await;
    for i in 0..20 {
        a.add(&i.to_string(), &format!("{i:02x}"), &format!("i{i}")).await;
    }
    let mut b = Client::bound(&srv.url(), APP, "b").await;
    b.open("mbox-replay").await;
    for i in 0..20 {
        let m = b.expect("message").await;
        assert_eq!(m["phase"], i.to_string());
    }
}

#[tokio::test]
async fn binding_errors() {
    let srv = InProcess::start(args()).await;
    let (mut c, _) = Client::connect(&srv.url()).await;
    for ty in [
        "list", "allocate", "claim", "release", "open", "add", "close", "bogus",
    ] {
        c.cmd(json!({"type": ty}), ty).await;
        let e = c.expect_error("must bind first").await;
        assert_eq!(e["orig"]["type"], ty);
        assert_eq!(e["orig"]["id"], ty, "orig is the full command");
    }
    // Missing type: error, and no ack.
    c.send(json!({"id": "nt", "nameplate": "1"})).await;
    let e = c.expect_error("missing 'type'").await;
    assert_eq!(e["orig"], json!({"id": "nt", "nameplate": "1"}));
    c.cmd(json!({"type": "ping"}), "pp").await;
    c.expect_error("ping requires 'ping'").await;
    c.cmd(json!({"type": "bind", "side": "s"}), "b1").await;
    c.expect_error("bind requires 'appid'").await;
    c.cmd(json!({"type": "bind", "appid": APP}), "b2").await;
    c.expect_error("bind requires 'side'").await;
    c.cmd(json!({"type": "bind", "appid": APP, "side": "s"}), "b3")
        .await;
    c.cmd(json!({"type": "bind", "appid": APP, "side": "s"}), "b4")
        .await;
    c.expect_error("already bound").await;
    c.cmd(json!({"type": "bogus"}), "u1").await;
    c.expect_error("unknown type").await;
    c.sync(9).await;
}

#[tokio::test]
async fn nameplate_errors() {
    let srv = InProcess::start(args()).await;
    let mut c = Client::bound(&srv.url(), APP, "s1").await;
    c.cmd(json!({"type": "claim"}), "c0").await;
    c.expect_error("claim requires 'nameplate'").await;
    c.cmd(json!({"type": "release"}), "r0").await;
    c.expect_error("release without nameplate must follow claim")
        .await;
    c.claim("41").await;
    c.cmd(json!({"type": "claim", "nameplate": "42"}), "c2").await;
    c.expect_error("only one claim per connection").await;
    c.cmd(json!({"type": "release", "nameplate": "42"}), "r1").await;
    c.expect_error("release and claim must use same nameplate").await;
    c.cmd(json!({"type": "release", "nameplate": "41"}), "r2").await;
    c.expect("released").await;
    c.cmd(json!({"type": "release", "nameplate": "41"}), "r3").await;
    c.expect_error("only one release per connection").await;
    c.cmd(json!({"type": "allocate"}), "a1").await;
    c.expect("allocated").await;
    c.cmd(json!({"type": "allocate"}), "a2").await;
    c.expect_error("you already allocated one, don't be greedy").await;

    // Release of something never claimed is a silent success on a fresh connection.
    let mut d = Client::bound(&srv.url(), APP, "s2").await;
    d.cmd(json!({"type": "release", "nameplate": "999999"}), "r4")
        .await;
    d.expect("released").await;
}

#[tokio::test]
async fn mailbox_errors() {
    let srv = InProcess::start(args()).await;
    let mut c = Client::bound(&srv.url(), APP, "s1").await;
    c.cmd(json!({"type": "add", "phase": "x", "body": ""}), "a0")
        .await;
    c.expect_error("must open mailbox before adding").await;
    c.cmd(json!({"type": "close"}), "x0").await;
    c.expect_error("close without mailbox must follow open").await;
    c.cmd(json!({"type": "open"}), "o0").await;
    c.expect_error("open requires 'mailbox'").await;
    c.open("mb1").await;
    c.cmd(json!({"type": "open", "mailbox": "mb1"}), "o2").await;
    c.expect_error("only one open per connection").await;
    c.cmd(json!({"type": "add", "body": "00"}), "a1").await;
    c.expect_error("missing 'phase'").await;
    c.cmd(json!({"type": "add", "phase": "p"}), "a2").await;
    c.expect_error("missing 'body'").await;
    c.cmd(json!({"type": "close", "mailbox": "other"}), "x1").await;
    c.expect_error("open and close must use same mailbox").await;
    c.cmd(json!({"type": "close", "mailbox": "mb1", "mood": "lonely"}), "x2")
        .await;
    c.expect("closed").await;
    c.cmd(json!({"type": "close", "mailbox": "mb1"}), "x3").await;
    c.expect_error("only one close per connection").await;
    // After close, a further open is accepted (server 0.8.0 behaviour).
    c.open("mb2").await;
    c.sync(1).await;
}

#[tokio::test]
async fn crowded_and_reclaimed() {
    let srv = InProcess::start(args()).await;
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    let mut b = Client::bound(&srv.url(), APP, "b").await;
    let mut c = Client::bound(&srv.url(), APP, "c").await;
    let mb = a.claim("77").await;
    b.claim("77").await;
    c.cmd(json!({"type": "claim", "nameplate": "77"}), "c3").await;
    let e = c.expect_error("crowded").await;
    assert_eq!(e["orig"]["nameplate"], "77");
    // A third side opening the mailbox directly is crowded too.
    let mut d = Client::bound(&srv.url(), APP, "d").await;
    d.cmd(json!({"type": "open", "mailbox": mb}), "o4").await;
    d.expect_error("crowded").await;
    // ... and may try again after the crowded failure (still crowded).
    d.cmd(json!({"type": "open", "mailbox": mb}), "o5").await;
    d.expect_error("crowded").await;

    // Reclaim after release is refused, on a new connection.
    a.cmd(json!({"type": "release"}), "r").await;
    a.expect("released").await;
    let mut a2 = Client::bound(&srv.url(), APP, "a").await;
    a2.cmd(json!({"type": "claim", "nameplate": "77"}), "c5").await;
    a2.expect_error("reclaimed").await;
}

#[tokio::test]
async fn reconnect_resends_are_idempotent() {
    let srv = InProcess::start(args()).await;
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    let mb = a.claim("5").await;
    a.open(&mb).await;
    a.add("pake", "01", "p1").await;
    drop(a);

    // Same side, new connection: claim again gives the same mailbox, open replays.
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    assert_eq!(a.claim("5").await, mb);
    a.open(&mb).await;
    assert_eq!(a.expect("message").await["id"], "p1");
    a.cmd(json!({"type": "release", "nameplate": "5"}), "r1").await;
    a.expect("released").await;
    a.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "x1")
        .await;
    a.expect("closed").await;
    drop(a);

    // Re-sending release and close after another reconnect still succeeds.
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    a.cmd(json!({"type": "release", "nameplate": "5"}), "r2").await;
    a.expect("released").await;
    a.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "x2")
        .await;
    a.expect("closed").await;
}

#[tokio::test]
async fn apps_are_isolated_and_list_can_be_disallowed() {
    let srv = InProcess::start(args()).await;
    let mut a = Client::bound(&srv.url(), "app-one", "a").await;
    let mut b = Client::bound(&srv.url(), "app-two", "b").await;
    let mb_a = a.claim("3").await;
    let mb_b = b.claim("3").await;
    assert_ne!(mb_a, mb_b, "same nameplate in two apps are two channels");
    assert_listed(&mut a, &["3"]).await;
    // A mailbox id of another app cannot be opened.
    let mut c = Client::bound(&srv.url(), "app-two", "c").await;
    c.cmd(json!({"type": "open", "mailbox": mb_a}), "o").await;
    c.expect_error("mailbox id is in use by another application")
        .await;

    let mut args = args();
    args.disallow_list = true;
    let srv = InProcess::start(args).await;
    let mut a = Client::bound(&srv.url(), APP, "a").await;
    a.claim("8").await;
    assert_listed(&mut a, &[]).await;
}

/// `list` answers exactly these nameplates, in this order.
async fn assert_listed(c: &mut Client, expected: &[&str]) {
    let want: Vec<_> = expected.iter().map(|n| json!({"id": n})).collect();
    assert_eq!(c.list().await, json!(want));
}

#[tokio::test]
async fn list_is_sorted_as_strings() {
    let srv = InProcess::start(args()).await;
    for (i, n) in ["9", "10", "100", "2"].iter().enumerate() {
        let mut c = Client::bound(&srv.url(), APP, &format!("s{i}")).await;
        c.claim(n).await;
    }
    let mut c = Client::bound(&srv.url(), APP, "lister").await;
    assert_listed(&mut c, &["10", "100", "2", "9"]).await;
}
