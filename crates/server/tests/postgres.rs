//! The mailbox server on PostgreSQL (`--database postgres://…`), one node: the conformance
//! cases that exercise storage (exchange with replay, crowding and reclaiming, pruning, usage
//! rows), durability under SIGKILL of the server, a PostgreSQL crash-restart under load (no
//! acknowledged message lost, none duplicated), the versioned migrations, and `/ready` with
//! PostgreSQL stopped and started again.
//!
//! Each test starts its own throwaway PostgreSQL 15 (`postgres_kit::Cluster`, as
//! scripts/pg-throwaway does) or a database of its own in a cluster shared by this binary.
//! When PostgreSQL is not installed every test says SKIPPED loudly and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_kit;

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use postgres_kit::{
    Client, Cluster, Spawned, WAIT, check_numbered, connect, installed, numbered_listener, numbered_sender,
    stored_ids,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wormhole_server::storage::StorageError;
use wormhole_server::{MailboxArgs, MailboxServer, ServerError};

const APP: &str = "lothar.com/wormhole/text-or-file-xfer";

/// The cluster shared by the tests that need only a database of their own.
fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// A fresh database in the shared cluster, or `None` (after a SKIP line) without PostgreSQL.
async fn database(test: &str) -> Option<String> {
    if !installed(test) {
        return None;
    }
    let cluster = tokio::task::spawn_blocking(shared).await.unwrap();
    Some(cluster.new_database(test).await)
}

fn pg_args(url: &str) -> MailboxArgs {
    let mut a = MailboxArgs::defaults();
    a.listen = "127.0.0.1:0".into();
    a.database = Some(url.into());
    // The fault tests stream thousands of adds on one connection.
    a.commands_per_second = 0.0;
    a
}

/// An in-process server on 127.0.0.1:0; aborted on drop.
struct InProcess {
    url: String,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl InProcess {
    async fn start(args: MailboxArgs) -> Self {
        let server = MailboxServer::start(&args).expect("start server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1", listener.local_addr().unwrap());
        let task = tokio::spawn(server.serve(listener));
        InProcess { url, task }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn full_exchange_with_echo_replay_and_deletion() {
    let Some(db) = database("exchange").await else {
        return;
    };
    let srv = InProcess::start(pg_args(&db)).await;
    let mut a = Client::bound(&srv.url, APP, "side-a").await;
    a.cmd(json!({"type": "allocate"}), "al").await;
    let np = a.expect("allocated").await["nameplate"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(np.len(), 1, "a nameplate of the shortest free length: {np}");
    let mb = a.claim(&np).await;
    a.open(&mb).await;
    let echo = a.add("pake", "00aa", "m1").await;

    let mut b = Client::bound(&srv.url, APP, "side-b").await;
    assert_eq!(b.claim(&np).await, mb);
    b.open(&mb).await;
    let replay = b.expect("message").await;
    assert_eq!(
        (&replay["side"], &replay["body"]),
        (&json!("side-a"), &json!("00aa"))
    );
    assert_eq!(replay["server_rx"], echo["server_rx"]);
    b.add("pake", "00bb", "m2").await;
    assert_eq!(a.expect("message").await["body"], "00bb");

    a.cmd(json!({"type": "release", "nameplate": np}), "r1").await;
    a.expect("released").await;
    b.cmd(json!({"type": "release"}), "r2").await;
    b.expect("released").await;
    assert_eq!(b.list().await, json!([]));
    a.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "x1")
        .await;
    a.expect("closed").await;
    b.cmd(json!({"type": "close", "mood": "happy"}), "x2").await;
    b.expect("closed").await;

    // Deleted in the database, not only in memory.
    let pg = connect(&db).await;
    for table in [
        "nameplates",
        "nameplate_sides",
        "mailboxes",
        "mailbox_sides",
        "messages",
    ] {
        let n: i64 = pg
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} is empty after both sides closed");
    }
}

#[tokio::test]
async fn crowded_and_reclaimed_survive_a_restart() {
    let Some(db) = database("crowded").await else {
        return;
    };
    let mut server = Spawned::start(&["--database", &db]);
    let mut a = Client::bound(&server.url(), APP, "a").await;
    let mut b = Client::bound(&server.url(), APP, "b").await;
    let mut c = Client::bound(&server.url(), APP, "c").await;
    let mb = a.claim("77").await;
    assert_eq!(b.claim("77").await, mb);
    c.cmd(json!({"type": "claim", "nameplate": "77"}), "c3").await;
    c.expect_error("crowded").await;
    a.cmd(json!({"type": "release"}), "r").await;
    a.expect("released").await;
    drop((a, b, c));
    server.kill();

    let server = Spawned::start(&["--database", &db]);
    let mut a2 = Client::bound(&server.url(), APP, "a").await;
    a2.cmd(json!({"type": "claim", "nameplate": "77"}), "c5").await;
    a2.expect_error("reclaimed").await;
    // C's crowded attempt was recorded (as in server 0.8.0), so the nameplate stays crowded,
    // for B as well.
    let mut b2 = Client::bound(&server.url(), APP, "b").await;
    b2.cmd(json!({"type": "claim", "nameplate": "77"}), "c6").await;
    b2.expect_error("crowded").await;
    let mut d = Client::bound(&server.url(), APP, "d").await;
    assert_eq!(d.list().await, json!([{"id": "77"}]));
}

#[tokio::test]
async fn idle_channels_are_pruned_and_usage_is_recorded() {
    let Some(db) = database("prune").await else {
        return;
    };
    let mut args = pg_args(&db);
    args.database_usage = true;
    args.prune_interval = 0.3;
    args.channel_expiration = 1.0;
    let srv = InProcess::start(args).await;

    // A happy exchange, and an abandoned channel.
    let mut a = Client::bound(&srv.url, APP, "a").await;
    let mut b = Client::bound(&srv.url, APP, "b").await;
    let mb = a.claim("3").await;
    b.claim("3").await;
    for c in [&mut a, &mut b] {
        c.open(&mb).await;
        c.cmd(json!({"type": "release"}), "r").await;
        c.expect("released").await;
    }
    for c in [&mut a, &mut b] {
        c.cmd(json!({"type": "close", "mood": "happy"}), "x").await;
        c.expect("closed").await;
    }
    let mut gone = Client::bound(&srv.url, APP, "gone").await;
    let gone_mb = gone.claim("4").await;
    gone.open(&gone_mb).await;
    gone.add("pake", "00", "m").await;
    drop(gone);

    let mut obs = Client::bound(&srv.url, APP, "observer").await;
    let start = Instant::now();
    while obs.list().await != json!([]) {
        assert!(start.elapsed() < Duration::from_secs(30), "not pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pg = connect(&db).await;
    let results = |table: &'static str| {
        let pg = &pg;
        async move {
            let rows = pg
                .query(
                    &format!("SELECT result FROM {table} ORDER BY started, result"),
                    &[],
                )
                .await
                .unwrap();
            let mut v: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            v.sort();
            v
        }
    };
    assert_eq!(results("usage_nameplates").await, ["happy", "pruney"]);
    assert_eq!(results("usage_mailboxes").await, ["happy", "pruney"]);
    let versions: i64 = pg
        .query_one("SELECT COUNT(*) FROM usage_client_versions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(versions >= 4, "a row per bind ({versions})");
    let messages: i64 = pg
        .query_one("SELECT COUNT(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(messages, 0, "the pruned mailbox's messages are deleted");
}

/// Stream `n` pipelined adds from `client` (opened on a mailbox); call `fault` once `at`
/// acks have arrived; return the acknowledged ids, stopping at the first read failure.
async fn stream_adds(client: Client, n: usize, at: usize, fault: impl FnOnce()) -> (Vec<String>, bool) {
    let (mut tx, mut rx) = client.ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            let m = json!({"type": "add", "phase": i.to_string(), "body": format!("{i:08x}"),
                           "id": format!("m{i}")});
            if tx.send(Message::text(m.to_string())).await.is_err() {
                return;
            }
        }
    });
    let mut acked = Vec::new();
    let mut fault = Some(fault);
    let mut echoes = 0;
    while acked.len() < n || echoes < n {
        let next = tokio::time::timeout(Duration::from_secs(60), rx.next()).await;
        let Ok(Some(Ok(Message::Text(t)))) = next else {
            break;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str() {
            Some("ack") => acked.push(v["id"].as_str().unwrap().to_owned()),
            Some("message") => echoes += 1,
            _ => panic!("unexpected {v}"),
        }
        if acked.len() >= at
            && let Some(f) = fault.take()
        {
            f();
        }
    }
    sender.abort();
    (acked, fault.is_none())
}

/// Open `mailbox` as a new side and return the replayed message ids, in order.
async fn replayed_ids(url: &str, nameplate: &str, mailbox: &str) -> Vec<String> {
    let mut b = Client::bound(url, APP, "side-b").await;
    assert_eq!(b.claim(nameplate).await, mailbox);
    b.open(mailbox).await;
    b.drain_until_pong(7)
        .await
        .iter()
        .map(|m| {
            assert_eq!(m["type"], "message", "{m}");
            m["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn acknowledged_state_survives_sigkill_of_the_server() {
    let Some(db) = database("sigkill").await else {
        return;
    };
    let flags = [
        "--database",
        &db,
        "--max-mailbox-messages",
        "100000",
        "--commands-per-second",
        "0",
    ];
    let mut server = Spawned::start(&flags);
    let mut a = Client::bound(&server.url(), APP, "side-a").await;
    let mb = a.claim("31").await;
    a.open(&mb).await;
    let (acked, killed) = stream_adds(a, 5000, 300, || server.kill()).await;
    assert!(killed && acked.len() >= 300, "{} acks", acked.len());

    let server = Spawned::start(&flags);
    let ids = replayed_ids(&server.url(), "31", &mb).await;
    let got: HashSet<&String> = ids.iter().collect();
    for id in &acked {
        assert!(got.contains(id), "acknowledged {id} lost after SIGKILL");
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id, &format!("m{i}"), "replay order, no duplicates");
    }
}

#[tokio::test]
async fn postgres_crash_restart_under_load_loses_and_duplicates_nothing() {
    if !installed("postgres_restart") {
        return;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let db = cluster.new_database("restart").await;
    let mut args = pg_args(&db);
    args.max_mailbox_messages = 100_000;
    let srv = InProcess::start(args).await;
    let urls = vec![srv.url.clone()];
    let n = 3000;
    let listener = tokio::spawn(numbered_listener(urls.clone(), APP.into(), "8".into(), n));
    let run = numbered_sender(&urls, APP, "8", n, 200, || cluster.restart_immediate()).await;
    assert!(run.faulted);
    let deliveries = listener.await.unwrap();
    let stored = stored_ids(&srv.url, APP, "8").await;
    eprintln!(
        "restart: {} acks, {} reconnects of the sender, {} listener connections",
        run.acked.len(),
        run.reconnects,
        deliveries.len()
    );
    check_numbered(&run, &stored, &deliveries, n);
}

#[tokio::test]
async fn schema_is_migrated_once_and_a_newer_one_is_refused() {
    let Some(db) = database("migrate").await else {
        return;
    };
    drop(MailboxServer::start(&pg_args(&db)).expect("first start creates the schema"));
    drop(MailboxServer::start(&pg_args(&db)).expect("second start finds it current"));
    let pg = connect(&db).await;
    let versions: Vec<i32> = pg
        .query("SELECT version FROM wormhole_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
    pg.execute("INSERT INTO wormhole_migrations VALUES (99, 0)", &[])
        .await
        .unwrap();
    match MailboxServer::start(&pg_args(&db)) {
        Err(ServerError::Storage(StorageError::Version {
            db: "postgres",
            version: 99,
            expected: 2,
        })) => {}
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[tokio::test]
async fn unusable_urls_fail_at_start_with_an_open_error() {
    // Nothing listens on this port (a just-freed one), so no PostgreSQL is needed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("postgres://postgres@127.0.0.1:{port}/db");
    for url in ["not a url at all=", &unreachable] {
        let mut args = pg_args(url);
        args.database_wait = 1;
        match MailboxServer::start(&args) {
            Err(ServerError::Storage(StorageError::Open { what, .. })) => {
                assert!(!what.contains("postgres://"), "{what}");
            }
            other => panic!("{url}: expected an open error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn two_nodes_never_allocate_the_same_nameplate_and_messages_cross() {
    let Some(db) = database("two_nodes").await else {
        return;
    };
    let a = InProcess::start(pg_args(&db)).await;
    let b = InProcess::start(pg_args(&db)).await;
    // 40 clients allocate at once, alternating nodes: 40 distinct names, the shortest free.
    let mut clients = Vec::new();
    for i in 0..40 {
        let url = if i % 2 == 0 { &a.url } else { &b.url };
        clients.push(Client::bound(url, APP, &format!("s{i}")).await);
    }
    for c in clients.iter_mut() {
        c.send(json!({"type": "allocate", "id": "al"})).await;
    }
    let mut names = HashSet::new();
    for c in clients.iter_mut() {
        c.expect("ack").await;
        let np = c.expect("allocated").await["nameplate"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(names.insert(np.clone()), "nameplate {np} handed out twice");
    }
    let expected: HashSet<String> = (1..=40).map(|n: u32| n.to_string()).collect::<HashSet<_>>();
    let one_digit = names.iter().filter(|n| n.len() == 1).count();
    assert_eq!(one_digit, 9, "all of 1-9 used first: {names:?}");
    assert_eq!(names.len(), expected.len());
    // A message added on node A reaches the listener on node B, and back.
    let mut x = Client::bound(&a.url, APP, "x").await;
    let mut y = Client::bound(&b.url, APP, "y").await;
    let mb = x.claim("4321").await;
    assert_eq!(y.claim("4321").await, mb);
    x.open(&mb).await;
    y.open(&mb).await;
    x.add("pake", "0a", "m1").await;
    assert_eq!(y.expect("message").await["body"], "0a");
    y.add("pake", "0b", "m2").await;
    assert_eq!(x.expect("message").await["body"], "0b");
    // Crowding counts the sides both nodes recorded.
    let mut z = Client::bound(&a.url, APP, "z").await;
    z.cmd(json!({"type": "claim", "nameplate": "4321"}), "cz").await;
    z.expect_error("crowded").await;
    // Both nodes list the same nameplates.
    let la = x.list().await;
    assert_eq!(la, y.list().await);
}

/// `/ready` follows PostgreSQL: 200 while it answers, 503 naming the storage once it is stopped
/// (`/health` stays 200: the process is alive), 200 again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_postgres_down_and_back() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wormhole_server::metrics::MailboxMetrics;
    use wormhole_server::ops::{self, Ops};
    if !installed("ready_pg") {
        return;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let db = cluster.new_database("ready").await;
    let mut args = pg_args(&db);
    args.database_wait = 2;
    let metrics = MailboxMetrics::default();
    let server = MailboxServer::start_with_metrics(&args, metrics.clone()).expect("start server");
    let mut o = Ops::default();
    metrics.register(&mut o.registry);
    o.probes.push(server.probe());
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tasks = [
        tokio::spawn(ops::serve(ops_listener, Arc::new(o))),
        tokio::spawn(async move {
            let _ = server.serve(listener).await;
        }),
    ];
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(ops_addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut out))
            .await
            .expect("operator endpoint answers")
            .unwrap();
        out
    };
    assert!(get("/ready").await.starts_with("HTTP/1.1 200"));
    let stopper = &cluster;
    tokio::task::block_in_place(|| stopper.stop());
    let down = get("/ready").await;
    assert!(down.starts_with("HTTP/1.1 503"), "{down}");
    assert!(down.contains("not ready: storage is not reachable"), "{down}");
    assert!(get("/health").await.starts_with("HTTP/1.1 200"));
    tokio::task::block_in_place(|| stopper.restart_immediate());
    // The pool reconnects on the next query; bounded wait for it.
    let deadline = Instant::now() + WAIT;
    loop {
        let r = get("/ready").await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "not ready after the restart: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for t in tasks {
        t.abort();
    }
}
