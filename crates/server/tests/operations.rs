//! The operator's view: `/metrics` (parsed by a Prometheus text parser), `/health`, `/ready`
//! with the storage gone, and every abuse limit (the limited client gets the error, the others
//! keep being served, the metric counts it). See docs/operations.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, WAIT, args};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use wormhole_relay::metrics::Reason as RelayReason;
use wormhole_server::MailboxArgs;
use wormhole_server::metrics::{MailboxMetrics, Reason};
use wormhole_server::ops::{self, Ops};

const APP: &str = "ops-app";

/// A server with its metrics and operator endpoint; aborted on drop.
struct Served {
    url: String,
    ops: SocketAddr,
    metrics: MailboxMetrics,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn served(a: MailboxArgs) -> Served {
    let metrics = MailboxMetrics::default();
    let server = wormhole_server::MailboxServer::start_with_metrics(&a, metrics.clone()).unwrap();
    let mut o = Ops::default();
    metrics.register(&mut o.registry);
    o.probes.push(server.probe());
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1", listener.local_addr().unwrap());
    let tasks = vec![
        tokio::spawn(ops::serve(ops_listener, Arc::new(o))),
        tokio::spawn(async move {
            let _ = server.serve(listener).await;
        }),
    ];
    Served {
        url,
        ops: ops_addr,
        metrics,
        tasks,
    }
}

/// `GET path` on the operator endpoint: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("operator endpoint answers")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

/// Samples of `/metrics` as parsed by `prometheus-parse`: name{labels} → value.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count).unwrap_or(0.0),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    out
}

/// Next frame of any kind, or `None` once the connection is closed.
async fn next_frame(c: &mut Client) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, c.ws.next()).await.expect("hang guard") {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// Read until the server closes; the close reason (empty if none).
async fn close_reason(c: &mut Client) -> String {
    loop {
        match next_frame(c).await {
            Some(Message::Close(Some(f))) => return f.reason.to_string(),
            Some(Message::Close(None)) | None => return String::new(),
            Some(_) => continue,
        }
    }
}

#[tokio::test]
async fn metrics_health_and_ready_with_the_storage_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("channel.sqlite");
    let mut a = args();
    a.channel_db = db.to_str().unwrap().to_owned();
    let srv = served(a).await;
    // One complete pair: two sides claim, open, add, close happy.
    let mut x = Client::bound(&srv.url, APP, "x").await;
    let mut y = Client::bound(&srv.url, APP, "y").await;
    let mb = x.claim("4").await;
    assert_eq!(y.claim("4").await, mb);
    x.open(&mb).await;
    y.open(&mb).await;
    x.add("pake", "aabb", "m1").await;
    y.expect("message").await;
    y.add("pake", "ccdd", "m2").await;
    x.expect("message").await;
    let before_close = scrape(srv.ops).await;
    assert_eq!(before_close["wormhole_mailbox_connections{}"], 2.0);
    assert_eq!(before_close["wormhole_mailbox_mailboxes{}"], 1.0);
    assert_eq!(before_close["wormhole_mailbox_nameplates{}"], 1.0);
    assert_eq!(before_close["wormhole_mailbox_apps{}"], 1.0);
    for c in [&mut x, &mut y] {
        c.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "cl")
            .await;
        c.expect("closed").await;
    }
    let m = scrape(srv.ops).await;
    assert_eq!(m["wormhole_mailbox_messages_total{}"], 2.0);
    assert_eq!(m["wormhole_mailbox_message_bytes_total{}"], 8.0);
    assert_eq!(m["wormhole_mailbox_pairs_total{mood=happy}"], 1.0);
    assert_eq!(m["wormhole_mailbox_mailboxes{}"], 0.0);
    assert!(m["wormhole_mailbox_commit_seconds_count{}"] >= 1.0, "{m:?}");
    assert!(m["wormhole_mailbox_commands_total{}"] >= 10.0, "{m:?}");

    assert_eq!(get(srv.ops, "/health").await, (200, "ok\n".to_owned()));
    assert_eq!(get(srv.ops, "/ready").await.0, 200);
    assert_eq!(get(srv.ops, "/nope").await.0, 404);
    std::fs::remove_file(&db).unwrap();
    let (code, body) = get(srv.ops, "/ready").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("not ready: storage is not reachable"), "{body}");
    assert_eq!(get(srv.ops, "/health").await.0, 200, "alive all the same");
}

#[tokio::test]
async fn connections_per_ip() {
    let mut a = args();
    a.max_connections_per_ip = 2;
    let srv = served(a).await;
    let mut first = Client::bound(&srv.url, APP, "1").await;
    let _second = Client::bound(&srv.url, APP, "2").await;
    let (mut third, welcome) = Client::connect(&srv.url).await;
    let text = welcome["welcome"]["error"].as_str().unwrap();
    assert!(
        text.starts_with("too many connections from your address (at most 2)"),
        "{text}"
    );
    assert!(close_reason(&mut third).await.starts_with("too many connections"));
    first.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::ConnectionsPerIp), 1);
    let m = scrape(srv.ops).await;
    assert_eq!(
        m["wormhole_mailbox_rejected_total{reason=connections_per_ip}"],
        1.0
    );
}

#[tokio::test]
async fn connection_rate_per_ip() {
    let mut a = args();
    // A burst of 64 new connections per address, then practically no refill.
    a.connections_per_second_per_ip = 0.0001;
    let srv = served(a).await;
    const CHURNER: &str = "127.0.0.4";
    for _ in 0..64 {
        let (c, w) = connect_from(&srv.url, CHURNER).await;
        assert!(w["welcome"].get("error").is_none(), "{w}");
        drop(c);
    }
    let (mut refused, w) = connect_from(&srv.url, CHURNER).await;
    let text = w["welcome"]["error"].as_str().unwrap();
    assert!(
        text.starts_with("too many new connections from your address (at most 0.0001 per second)"),
        "{text}"
    );
    assert!(
        close_reason(&mut refused)
            .await
            .starts_with("too many new connections")
    );
    // Another address is not affected.
    let mut other = Client::bound(&srv.url, APP, "other").await;
    other.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::ConnectionRate), 1);
    let m = scrape(srv.ops).await;
    assert_eq!(m["wormhole_mailbox_rejected_total{reason=connection_rate}"], 1.0);
}

/// Over the connection rate, `--held-refusals-per-ip` connections of an address are held back and
/// refused in the welcome; the next one at the same time gets a plain `429` before the upgrade.
#[tokio::test]
async fn over_rate_connections_are_held_up_to_their_cap_then_answered_429() {
    let mut a = args();
    a.connections_per_second_per_ip = 0.0001;
    a.held_refusals_per_ip = 2;
    let srv = served(a).await;
    const CHURNER: &str = "127.0.0.6";
    for _ in 0..64 {
        drop(connect_from(&srv.url, CHURNER).await);
    }
    // Two held: each waits for its welcome, which refuses it.
    let url = srv.url.clone();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { connect_from(&url, CHURNER).await })
        })
        .collect();
    // Both are held once the server counted two refusals.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while srv.metrics.rejected_count(Reason::ConnectionRate) < 2 {
        assert!(std::time::Instant::now() < deadline, "the two were never refused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A third while both are held: 429 before the upgrade.
    let tcp = tcp_from(&srv.url, CHURNER).await;
    match tokio_tungstenite::client_async(&srv.url, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("expected a 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    for h in held {
        let (_, w) = h.await.unwrap();
        let text = w["welcome"]["error"].as_str().unwrap();
        assert!(text.starts_with("too many new connections"), "{text}");
    }
    assert_eq!(srv.metrics.rejected_count(Reason::ConnectionRate), 3);
}

#[tokio::test]
async fn command_rate_refuses_then_closes_the_flooder() {
    let mut a = args();
    // Practically no refill: the burst is all a connection gets during the test.
    a.commands_per_second = 0.0001;
    a.command_burst = 3;
    let srv = served(a).await;
    let mut other = Client::bound(&srv.url, APP, "other").await; // bind: 1 of its 3
    let (mut flood, _) = Client::connect(&srv.url).await;
    for i in 0..3 {
        flood.sync(i).await;
    }
    flood.send(json!({"type": "ping", "ping": 9})).await;
    let e = flood.expect("error").await;
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("too many commands: at most 0.0001 per second (burst 3)"),
        "{e}"
    );
    assert_eq!(e["orig"]["ping"], 9);
    for _ in 0..3 {
        flood.send(json!({"type": "ping", "ping": 9})).await;
    }
    // Refused 4 times in a row (more than the burst): closed.
    let reason = close_reason(&mut flood).await;
    assert!(reason.starts_with("too many commands"), "{reason}");
    other.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::CommandRate), 4);
}

#[tokio::test]
async fn message_size_is_refused_with_an_error_and_counted() {
    let mut a = args();
    a.max_message_size = 1024;
    let srv = served(a).await;
    let mut other = Client::bound(&srv.url, APP, "other").await;
    let (mut big, _) = Client::connect(&srv.url).await;
    big.send_raw(Message::text("x".repeat(2000))).await;
    let e = big.expect("error").await;
    assert!(e["error"].as_str().unwrap().starts_with("message too big"), "{e}");
    assert!(close_reason(&mut big).await.starts_with("message too big"));
    other.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::MessageSize), 1);
}

#[tokio::test]
async fn mailbox_messages_and_nameplates_per_connection_are_counted() {
    let mut a = args();
    a.max_mailbox_messages = 1;
    let srv = served(a).await;
    let mut c = Client::bound(&srv.url, APP, "s").await;
    c.open("mb").await;
    c.add("p", "00", "m1").await;
    c.cmd(json!({"type": "add", "phase": "q", "body": "00"}), "m2")
        .await;
    assert!(
        c.expect("error").await["error"]
            .as_str()
            .unwrap()
            .starts_with("mailbox is full")
    );
    // Another client's mailbox is not full.
    let mut other = Client::bound(&srv.url, APP, "o").await;
    other.open("mb2").await;
    other.add("p", "00", "o1").await;
    c.claim("7").await;
    c.cmd(json!({"type": "claim", "nameplate": "8"}), "c2").await;
    c.expect_error("only one claim per connection").await;
    c.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::MailboxFull), 1);
    assert_eq!(srv.metrics.rejected_count(Reason::NameplatesPerConnection), 1);
}

#[tokio::test]
async fn nameplates_per_ip() {
    let mut a = args();
    a.max_nameplates_per_ip = 1;
    let srv = served(a).await;
    let mut holder = Client::bound(&srv.url, APP, "h").await;
    holder.claim("1").await;
    let mut greedy = Client::bound(&srv.url, APP, "g").await;
    greedy.send(json!({"type": "allocate", "id": "a"})).await;
    let e = greedy.expect("error").await;
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("too many nameplates in use from your address (at most 1)"),
        "{e}"
    );
    // The holder is still served; the refused client still works for everything else.
    holder.open("mb").await;
    holder.add("p", "00", "m").await;
    greedy.sync(1).await;
    assert_eq!(srv.metrics.rejected_count(Reason::NameplatesPerIp), 1);
    // Once the holder is gone its nameplate slot is free again (the server sees the close
    // asynchronously: poll, with a hang guard).
    drop(holder);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = Client::bound(&srv.url, APP, "later").await;
        c.send(json!({"type": "claim", "nameplate": "2", "id": "c"}))
            .await;
        c.ack("c").await;
        if c.recv().await["type"] == "claimed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_and_lifetime_limits_close_with_a_reason() {
    let mut a = args();
    a.idle_timeout = 0.5;
    a.ping_interval = 0.2;
    a.max_connection_lifetime = 3.0;
    let srv = served(a).await;
    // Upgrades by hand, then never answers the pings: idle. (A WebSocket library would answer
    // them as soon as it reads; raw bytes show the close frame's reason.)
    let addr = srv
        .url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1")
        .to_owned();
    let mut raw = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
    let upgrade = "GET /v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    raw.write_all(upgrade.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut bytes))
        .await
        .expect("closed within the hang guard")
        .unwrap();
    let seen = String::from_utf8_lossy(&bytes);
    assert!(seen.contains("idle timeout"), "{seen}");
    // Reads (answers pings) but lives past the lifetime limit.
    let mut busy = Client::bound(&srv.url, APP, "busy").await;
    let reason = close_reason(&mut busy).await;
    assert!(
        reason.starts_with("connection lifetime limit reached (3 s)"),
        "{reason}"
    );
    assert_eq!(srv.metrics.rejected_count(Reason::Idle), 1);
    assert_eq!(srv.metrics.rejected_count(Reason::Lifetime), 1);
    // The limits closed those two only: a new client is served as usual.
    let mut later = Client::bound(&srv.url, APP, "later").await;
    later.claim("5").await;
    let m = scrape(srv.ops).await;
    assert_eq!(m["wormhole_mailbox_rejected_total{reason=idle}"], 1.0);
    assert_eq!(m["wormhole_mailbox_rejected_total{reason=lifetime}"], 1.0);
}

#[test]
fn flags_parse_into_the_limits() {
    // The flags exist with the documented defaults (docs/operations.md).
    let d = MailboxArgs::defaults();
    assert_eq!(d.max_connections_per_ip, 64);
    assert_eq!(d.connections_per_second_per_ip, 20.0);
    assert_eq!(d.held_refusals_per_ip, 256);
    assert_eq!(d.commands_per_second, 20.0);
    assert_eq!(d.command_burst, 100);
    assert_eq!(d.max_nameplates_per_ip, 32);
    assert_eq!(d.max_connection_lifetime, 86_400.0);
    assert!(d.metrics.is_none());
}

/// A client whose TCP connection comes from `source` (another loopback address: the server
/// counts it as another client).
async fn connect_from(url: &str, source: &str) -> (Client, serde_json::Value) {
    let tcp = tcp_from(url, source).await;
    let (ws, _) = tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    let mut c = Client { ws };
    let welcome = c.recv().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (c, welcome)
}

/// A TCP connection from the local address `source` to the server at `url` (`ws://ADDR/v1`).
async fn tcp_from(url: &str, source: &str) -> tokio::net::TcpStream {
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1")
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.parse().unwrap(), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The flood of `mailbox-load --flood` (crates/bench/src/flood.rs), in small: one address opens
/// more connections than it may and pipelines commands without waiting; it is refused and cut,
/// counted by reason, while a normal pair from another address goes through the whole exchange.
#[tokio::test]
async fn a_flooder_is_limited_while_a_normal_pair_completes() {
    let mut a = args();
    a.max_connections_per_ip = 4;
    a.commands_per_second = 0.0001;
    a.command_burst = 20;
    let srv = served(a).await;
    const FLOODER: &str = "127.0.0.2";
    // The flooder's first four connections are admitted, the next four refused in the welcome.
    let mut admitted = Vec::new();
    for _ in 0..4 {
        let (c, w) = connect_from(&srv.url, FLOODER).await;
        assert!(w["welcome"].get("error").is_none(), "{w}");
        admitted.push(c);
    }
    for _ in 0..4 {
        let (mut c, w) = connect_from(&srv.url, FLOODER).await;
        let text = w["welcome"]["error"].as_str().unwrap();
        assert!(
            text.starts_with("too many connections from your address"),
            "{text}"
        );
        assert!(close_reason(&mut c).await.starts_with("too many connections"));
    }
    // Each admitted connection pipelines 100 pings at once: 20 served, then 10 refused in a
    // row, and the 11th refusal cuts it.
    let flooders: Vec<_> = admitted
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let side = format!("flood{i}");
                c.send(json!({"type": "bind", "appid": APP, "side": side})).await;
                for n in 0..100 {
                    // The server may cut the connection while we still write.
                    if c.ws
                        .send(Message::text(json!({"type": "ping", "ping": n}).to_string()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let mut errors = 0;
                let reason = loop {
                    match next_frame(&mut c).await {
                        Some(Message::Text(t)) if t.contains("\"error\"") => errors += 1,
                        Some(Message::Close(f)) => break f.map(|f| f.reason.to_string()).unwrap_or_default(),
                        None => break String::new(),
                        Some(_) => {}
                    }
                };
                (errors, reason)
            })
        })
        .collect();
    // Meanwhile a normal pair, from 127.0.0.1, goes through the whole exchange.
    let mut x = Client::bound(&srv.url, APP, "x").await;
    let mut y = Client::bound(&srv.url, APP, "y").await;
    x.send(json!({"type": "allocate", "id": "al"})).await;
    x.ack("al").await;
    let nameplate = x.expect("allocated").await["nameplate"]
        .as_str()
        .unwrap()
        .to_owned();
    let mb = x.claim(&nameplate).await;
    assert_eq!(y.claim(&nameplate).await, mb);
    x.open(&mb).await;
    y.open(&mb).await;
    x.add("pake", "aa", "x1").await;
    assert_eq!(y.expect("message").await["side"], "x");
    y.add("pake", "bb", "y1").await;
    assert_eq!(x.expect("message").await["side"], "y");
    for c in [&mut x, &mut y] {
        c.cmd(json!({"type": "release", "nameplate": nameplate}), "rl")
            .await;
        c.expect("released").await;
        c.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "cl")
            .await;
        c.expect("closed").await;
    }
    // Every flooding connection was cut (its reader ends within the hang guard). What it read
    // before the cut varies: the server closes with the flood's frames unread, so the kernel may
    // reset the connection and drop the last `error`s and the close frame on the way. The server's
    // own counters below are exact.
    let mut seen = Vec::new();
    for f in flooders {
        let (errors, reason) = f.await.unwrap();
        assert!(errors <= 11, "cut after 10 refusals in a row: {errors}");
        assert!(
            reason.is_empty() || reason.starts_with("too many commands"),
            "{reason}"
        );
        seen.push((errors, reason));
    }
    eprintln!("flooders saw (errors, close reason): {seen:?}");
    let m = scrape(srv.ops).await;
    assert_eq!(
        m["wormhole_mailbox_rejected_total{reason=connections_per_ip}"],
        4.0
    );
    assert!(
        m["wormhole_mailbox_rejected_total{reason=command_rate}"] >= 4.0 * 11.0,
        "{m:?}"
    );
    assert_eq!(m["wormhole_mailbox_pairs_total{mood=happy}"], 1.0);
}

/// The relay's side of the operator endpoint: its metrics parse, count a relayed pair and every
/// relay limit (connections per address, bytes per pair, time per pair), while other pairs are
/// served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_metrics_and_limits() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        relay: wormhole_relay::RelayArgs,
    }
    let start = |extra: &[&str]| {
        let mut argv = vec!["relay"];
        argv.extend_from_slice(extra);
        let config = Cli::parse_from(argv).relay.config().unwrap();
        let metrics = config.metrics.clone();
        let tcp = wormhole_relay::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = tcp.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = wormhole_relay::serve(config, tcp, None).await;
        });
        (addr, metrics, task)
    };
    let (relay, metrics, relay_task) = start(&[
        "--max-connections-per-ip",
        "3",
        "--max-bytes",
        "1000",
        "--max-time",
        "5",
    ]);
    let mut o = Ops::default();
    metrics.register(&mut o.registry);
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let ops_task = tokio::spawn(ops::serve(ops_listener, Arc::new(o)));

    let token = |n: u8| format!("{n:02x}{}", "ab".repeat(31));
    async fn side(relay: SocketAddr, source: &str, token: &str, side: &str) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source.parse().unwrap(), 0)).unwrap();
        let mut s = socket.connect(relay).await.unwrap();
        s.write_all(format!("please relay {token} for side {side}\n").as_bytes())
            .await
            .unwrap();
        s
    }
    async fn ok(s: &mut tokio::net::TcpStream) {
        let mut b = [0u8; 3];
        tokio::time::timeout(WAIT, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"ok\n");
    }
    async fn closed(s: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
            .await
            .unwrap();
        rest
    }
    // Bytes per pair: 600 bytes go through, the next 600 cross the 1000-byte cap and the pair
    // is closed.
    let mut a = side(relay, "127.0.0.1", &token(1), "aaaaaaaaaaaaaaaa").await;
    let mut b = side(relay, "127.0.0.1", &token(1), "bbbbbbbbbbbbbbbb").await;
    ok(&mut a).await;
    ok(&mut b).await;
    a.write_all(&[7u8; 600]).await.unwrap();
    let mut got = vec![0u8; 600];
    tokio::time::timeout(WAIT, b.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    let _ = a.write_all(&[8u8; 600]).await;
    assert_eq!(closed(&mut b).await, b"", "nothing past the cap");
    drop((a, b));
    let settled = |n: i64| {
        let metrics = metrics.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while metrics.connections.get() != n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "relay never saw {n} connections"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    settled(0).await;
    // Connections per address: three from 127.0.0.3 are held, the fourth is closed at once.
    let mut held = Vec::new();
    for n in 0..3 {
        held.push(side(relay, "127.0.0.3", &token(10 + n), "cccccccccccccccc").await);
    }
    // The relay counts a connection once it has accepted it; wait until all three are in.
    settled(3).await;
    let mut fourth = side(relay, "127.0.0.3", &token(20), "dddddddddddddddd").await;
    assert_eq!(closed(&mut fourth).await, b"", "refused without a byte");
    // Time per pair, and others served meanwhile: a pair from 127.0.0.1 relays, then is cut at
    // 5 s (a margin for a loaded machine to deliver the hello first).
    let mut c = side(relay, "127.0.0.1", &token(2), "aaaaaaaaaaaaaaaa").await;
    let mut d = side(relay, "127.0.0.1", &token(2), "bbbbbbbbbbbbbbbb").await;
    ok(&mut c).await;
    ok(&mut d).await;
    c.write_all(b"hello").await.unwrap();
    let mut hello = [0u8; 5];
    tokio::time::timeout(WAIT, d.read_exact(&mut hello))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&hello, b"hello");
    assert_eq!(closed(&mut d).await, b"", "cut at --max-time");
    drop(held);
    assert_eq!(metrics.rejected_count(RelayReason::Bytes), 1);
    assert_eq!(metrics.rejected_count(RelayReason::ConnectionsPerIp), 1);
    assert_eq!(metrics.rejected_count(RelayReason::Time), 1);
    let m = scrape(ops_addr).await;
    assert_eq!(m["wormhole_relay_rejected_total{reason=max_bytes}"], 1.0);
    assert_eq!(m["wormhole_relay_rejected_total{reason=connections_per_ip}"], 1.0);
    assert_eq!(m["wormhole_relay_rejected_total{reason=max_time}"], 1.0);
    assert!(m.contains_key("wormhole_relay_connections{}"), "{m:?}");
    assert!(m.contains_key("wormhole_relay_bytes_total{}"), "{m:?}");
    relay_task.abort();
    ops_task.abort();
}

/// With `--trust-x-real-ip` (behind a front end) the per-address limits count the header's
/// address; without it, the socket's.
#[tokio::test]
async fn per_address_limits_follow_x_real_ip_only_when_trusted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    async fn via_proxy(url: &str, real_ip: &str) -> serde_json::Value {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("X-Real-IP", real_ip.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut c = Client { ws };
        let welcome = c.recv().await;
        // Keep the connection open for the rest of the test.
        std::mem::forget(c);
        welcome
    }
    for trusted in [true, false] {
        let mut a = args();
        a.max_connections_per_ip = 1;
        a.trust_x_real_ip = trusted;
        let srv = served(a).await;
        let first = via_proxy(&srv.url, "192.0.2.1").await;
        assert!(first["welcome"].get("error").is_none(), "{first}");
        let other = via_proxy(&srv.url, "192.0.2.2").await;
        let same = via_proxy(&srv.url, "192.0.2.1").await;
        if trusted {
            assert!(other["welcome"].get("error").is_none(), "{other}");
            assert_eq!(other["welcome"]["your-address"]["ipv4"], "192.0.2.2");
        } else {
            assert!(
                other["welcome"]["error"].is_string(),
                "one socket address: {other}"
            );
        }
        assert!(same["welcome"]["error"].is_string(), "{same}");
        assert_eq!(
            srv.metrics.rejected_count(Reason::ConnectionsPerIp),
            if trusted { 1 } else { 2 }
        );
    }
}

/// `--require-hashcash`: `bind` without a stamp is refused with an error and counted; after a
/// valid stamp the same connection binds and is served.
#[tokio::test]
async fn bind_without_proof_of_work_is_refused_and_counted() {
    let mut a = args();
    a.require_hashcash = Some(8);
    let srv = served(a).await;
    let (mut c, welcome) = Client::connect(&srv.url).await;
    let asked = &welcome["welcome"]["permission-required"]["hashcash"];
    assert_eq!(asked["bits"], 8, "{welcome}");
    let resource = asked["resource"].as_str().unwrap().to_owned();
    c.send(json!({"type": "bind", "appid": APP, "side": "s", "id": "b"}))
        .await;
    c.ack("b").await;
    let e = c.expect("error").await;
    assert!(
        e["error"].as_str().unwrap().starts_with("permission denied"),
        "{e}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let date = wormhole_proto::hashcash::date_yymmdd(now);
    let stamp = wormhole_proto::hashcash::mint(&resource, 8, &date, "0a1b").unwrap();
    c.cmd(
        json!({"type": "submit-permissions", "method": "hashcash", "stamp": stamp}),
        "p",
    )
    .await;
    c.cmd(json!({"type": "bind", "appid": APP, "side": "s"}), "b2")
        .await;
    c.claim("3").await;
    assert_eq!(srv.metrics.rejected_count(Reason::Permission), 1);
    let m = scrape(srv.ops).await;
    assert_eq!(m["wormhole_mailbox_rejected_total{reason=permission}"], 1.0);
}
