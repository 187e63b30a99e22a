//! Helpers of the PostgreSQL tests: a throwaway PostgreSQL 15 cluster (as scripts/pg-throwaway
//! starts one), a spawned `wormhole-server` process, and a raw JSON-over-WebSocket client.
//!
//! Kept apart from `tests/common` on purpose: these tests own their helpers.
//!
//! A cluster lives in a temporary directory, runs as the `postgres` user when the tests run as
//! root (PostgreSQL refuses root), listens on 127.0.0.1 on a free port, and is stopped with
//! `pg_ctl -m immediate stop` on drop. A small janitor process stops it too if the test process
//! dies without dropping it (SIGKILL, abort), so no postmaster outlives the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Where Debian's PostgreSQL 15 programs live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long to wait for an expected frame (a hang guard, not a timing assumption).
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether PostgreSQL 15 is installed; prints a loud SKIP line when it is not.
pub fn installed(test: &str) -> bool {
    let ok = Path::new(PG_BIN).join("initdb").exists() && Path::new(PG_BIN).join("pg_ctl").exists();
    if !ok {
        eprintln!(
            "\n!!!!! SKIPPED {test}: PostgreSQL 15 is not installed ({PG_BIN}/initdb missing); \
             `scripts/install-peers postgres` installs it !!!!!\n"
        );
    }
    ok
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A PostgreSQL program, run as `postgres` when we are root.
fn pg_command(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

/// A running throwaway cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
    janitor: Option<Child>,
    next_db: AtomicUsize,
}

impl Cluster {
    /// initdb + start; panics with the server log on failure.
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new().prefix("pg-test.").tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        if is_root() {
            let st = Command::new("chown").args(["postgres", &path]).status().unwrap();
            assert!(st.success(), "chown postgres {path}");
        }
        let out = pg_command("initdb")
            .args(["-D", &format!("{path}/data"), "-A", "trust", "-U", "postgres"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cluster = Cluster {
            dir,
            port: 0,
            janitor: None,
            next_db: AtomicUsize::new(0),
        };
        for _ in 0..5 {
            let port = wormhole_testkit::free_port();
            if cluster.pg_ctl_start(port) {
                cluster.port = port;
                cluster.janitor = Some(cluster.spawn_janitor());
                return cluster;
            }
        }
        let log = std::fs::read_to_string(cluster.dir.path().join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn pg_ctl_start(&self, port: u16) -> bool {
        let d = self.dir.path().display().to_string();
        pg_command("pg_ctl")
            .args(["-D", &self.data(), "-l", &format!("{d}/log"), "-w", "-t", "120"])
            .args(["-o", &format!("-p {port} -k {d} -c listen_addresses=127.0.0.1")])
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `pg_ctl -m immediate stop` then start again on the same port (crash recovery).
    pub fn restart_immediate(&self) {
        self.stop();
        assert!(self.pg_ctl_start(self.port), "PostgreSQL did not restart");
    }

    /// `pg_ctl -m immediate stop`.
    pub fn stop(&self) {
        let _ = pg_command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Stops the cluster once this test process is gone, whichever way it went.
    fn spawn_janitor(&self) -> Child {
        let me = std::process::id();
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {PG_BIN}/pg_ctl -D {} -m immediate stop",
                self.data()
            )
        } else {
            format!("{PG_BIN}/pg_ctl -D {} -m immediate stop", self.data())
        };
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
            self.dir.path().display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn janitor")
    }

    /// URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new empty database; returns its URL.
    pub async fn new_database(&self, name: &str) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let db = format!("{name}_{n}");
        let c = connect(&self.url("postgres")).await;
        c.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        self.url(&db)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut j) = self.janitor.take() {
            let _ = j.kill();
            let _ = j.wait();
        }
    }
}

/// A plain tokio-postgres connection for inspecting the tables.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A spawned `wormhole-server mailbox` process; SIGKILLed and reaped on drop.
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Spawned {
    /// Start the binary with `extra` flags on 127.0.0.1:0 and read the port from stderr.
    pub fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wormhole-server"))
            .args(["mailbox", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wormhole-server");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before printing its address")
                .unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                break rest.trim().parse().unwrap();
            }
            eprintln!("server: {line}");
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("server: {line}");
            }
        });
        Spawned { child, addr }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw JSON-over-WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connect and bind as `side` of `appid`.
    pub async fn bound(url: &str, appid: &str, side: &str) -> Self {
        let (ws, _) = connect_async(url).await.expect("connect");
        let mut c = Client { ws };
        c.expect("welcome").await;
        c.cmd(json!({"type": "bind", "appid": appid, "side": side}), "b")
            .await;
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Next data frame as JSON.
    pub async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("websocket error");
            match m {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }

    pub async fn expect_error(&mut self, text: &str) {
        let v = self.expect("error").await;
        assert_eq!(v["error"], text, "{v}");
    }

    /// Send a command with an id and expect its ack.
    pub async fn cmd(&mut self, mut v: Value, id: &str) {
        v["id"] = json!(id);
        self.send(v).await;
        let a = self.expect("ack").await;
        assert_eq!(a["id"], id, "{a}");
    }

    /// Claim; returns the mailbox id.
    pub async fn claim(&mut self, nameplate: &str) -> String {
        self.cmd(json!({"type": "claim", "nameplate": nameplate}), "c")
            .await;
        self.expect("claimed").await["mailbox"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn open(&mut self, mailbox: &str) {
        self.cmd(json!({"type": "open", "mailbox": mailbox}), "o").await;
    }

    /// Add; expects the ack and the echo.
    pub async fn add(&mut self, phase: &str, body: &str, id: &str) -> Value {
        self.cmd(json!({"type": "add", "phase": phase, "body": body}), id)
            .await;
        let echo = self.expect("message").await;
        assert_eq!(echo["id"], id);
        echo
    }

    pub async fn list(&mut self) -> Value {
        self.cmd(json!({"type": "list"}), "l").await;
        self.expect("nameplates").await["nameplates"].clone()
    }

    /// Ping round trip: everything before it has been answered. Returns the frames that
    /// arrived before the pong (other than its ack).
    pub async fn drain_until_pong(&mut self, n: i64) -> Vec<Value> {
        self.send(json!({"type": "ping", "ping": n, "id": "sync"})).await;
        let mut got = Vec::new();
        loop {
            let v = self.recv().await;
            if v["type"] == "pong" && v["pong"] == n {
                return got;
            }
            if !(v["type"] == "ack" && v["id"] == "sync") {
                got.push(v);
            }
        }
    }
}

/// What a [`numbered_sender`] run saw.
#[derive(Debug, Default)]
pub struct NumberedRun {
    /// Numbers whose `add` was acknowledged.
    pub acked: Vec<usize>,
    /// How many times the sender had to connect again.
    pub reconnects: usize,
    /// Whether the fault was triggered.
    pub faulted: bool,
}

/// Connect and bind, retrying (a node without its database answers 503, a dead node does
/// not answer) for up to [`WAIT`] * 2.
pub async fn bound_retrying(urls: &[String], turn: usize, appid: &str, side: &str) -> Client {
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    let mut turn = turn;
    loop {
        let url = &urls[turn % urls.len()];
        if let Ok(Ok((ws, _))) = tokio::time::timeout(WAIT, connect_async(url.as_str())).await {
            let mut c = Client { ws };
            if c.try_bind(appid, side).await.is_some() {
                return c;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no node accepted a client"
        );
        turn += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Client {
    /// Read the welcome and bind; `None` if the connection fails.
    async fn try_bind(&mut self, appid: &str, side: &str) -> Option<()> {
        let w = self.try_recv().await?;
        (w["type"] == "welcome").then_some(())?;
        let bind = json!({"type": "bind", "appid": appid, "side": side, "id": "b"});
        self.ws.send(Message::text(bind.to_string())).await.ok()?;
        let a = self.try_recv().await?;
        (a["type"] == "ack").then_some(())
    }

    /// Next data frame, or `None` when the connection ends (or nothing comes for [`WAIT`]).
    pub async fn try_recv(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next()).await.ok()??.ok()?;
            match m {
                Message::Text(t) => return serde_json::from_str(&t).ok(),
                Message::Ping(_) | Message::Pong(_) => continue,
                _ => return None,
            }
        }
    }

    /// Claim and open; the message ids replayed (in order), or `None` if the connection fails.
    async fn try_claim_open(&mut self, nameplate: &str) -> Option<(String, Vec<String>)> {
        let claim = json!({"type": "claim", "nameplate": nameplate, "id": "c"});
        self.ws.send(Message::text(claim.to_string())).await.ok()?;
        let mut mailbox = None;
        while mailbox.is_none() {
            let v = self.try_recv().await?;
            match v["type"].as_str() {
                Some("ack") => {}
                Some("claimed") => mailbox = v["mailbox"].as_str().map(str::to_owned),
                _ => panic!("unexpected answer to claim: {v}"),
            }
        }
        let mailbox = mailbox?;
        let open = json!({"type": "open", "mailbox": mailbox, "id": "o"});
        self.ws.send(Message::text(open.to_string())).await.ok()?;
        let ping = json!({"type": "ping", "ping": 1, "id": "p"});
        self.ws.send(Message::text(ping.to_string())).await.ok()?;
        let mut ids = Vec::new();
        loop {
            let v = self.try_recv().await?;
            match v["type"].as_str() {
                Some("ack") => {}
                Some("pong") => return Some((mailbox, ids)),
                Some("message") => ids.push(v["id"].as_str()?.to_owned()),
                _ => panic!("unexpected answer to open: {v}"),
            }
        }
    }
}

/// A client that numbers its messages: adds `n0`…`n{count-1}` (pipelined) as side
/// `numbered` to the mailbox of `nameplate`, connecting to `urls` in turn. Whenever its
/// connection drops it connects again, learns from the replay which of its messages are
/// stored, and sends only the others, in order. `fault` runs once `at` adds were acknowledged.
pub async fn numbered_sender(
    urls: &[String],
    appid: &str,
    nameplate: &str,
    count: usize,
    at: usize,
    fault: impl FnOnce(),
) -> NumberedRun {
    let mut run = NumberedRun::default();
    let mut fault = Some(fault);
    let mut stored: HashSet<usize> = HashSet::new();
    for turn in 0.. {
        assert!(turn < 50, "gave up after {turn} connections");
        let mut c = bound_retrying(urls, turn, appid, "numbered").await;
        let Some((_, replayed)) = c.try_claim_open(nameplate).await else {
            run.reconnects += 1;
            continue;
        };
        let mine: Vec<usize> = replayed
            .iter()
            .filter_map(|id| id.strip_prefix('n')?.parse().ok())
            .collect();
        let mut seen = HashSet::new();
        for i in &mine {
            assert!(seen.insert(*i), "message n{i} stored twice: {mine:?}");
        }
        stored.extend(mine);
        let todo: Vec<usize> = (0..count).filter(|i| !stored.contains(i)).collect();
        if todo.is_empty() {
            return run;
        }
        let (mut tx, mut rx) = c.ws.split();
        let sender = tokio::spawn(async move {
            for i in todo {
                let m = json!({"type": "add", "phase": format!("p{i}"), "body": format!("{i:08x}"),
                               "id": format!("n{i}")});
                if tx.send(Message::text(m.to_string())).await.is_err() {
                    return;
                }
            }
        });
        loop {
            let next = tokio::time::timeout(WAIT, rx.next()).await;
            let Ok(Some(Ok(Message::Text(t)))) = next else {
                break;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ack"
                && let Some(i) = v["id"].as_str().and_then(|id| id.strip_prefix('n')?.parse().ok())
            {
                run.acked.push(i);
                stored.insert(i);
                if run.acked.len() >= at
                    && let Some(f) = fault.take()
                {
                    run.faulted = true;
                    f();
                }
                if stored.len() == count {
                    break;
                }
            }
        }
        sender.abort();
        if stored.len() == count {
            return run;
        }
        run.reconnects += 1;
    }
    unreachable!()
}

/// Every connection of a listener: the message ids it was sent, in order.
pub type Deliveries = Vec<Vec<String>>;

/// Listen as side `listener` on the mailbox of `nameplate` until `count` numbered messages
/// were seen (reconnecting through `urls` when dropped); returns what each connection got.
pub async fn numbered_listener(
    urls: Vec<String>,
    appid: String,
    nameplate: String,
    count: usize,
) -> Deliveries {
    let mut all: Deliveries = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for turn in 0..50 {
        let mut c = bound_retrying(&urls, turn + 1, &appid, "listener").await;
        let Some((_, replayed)) = c.try_claim_open(&nameplate).await else {
            continue;
        };
        let mut got = replayed;
        seen.extend(got.iter().cloned());
        while seen.len() < count {
            let Some(v) = c.try_recv().await else {
                break;
            };
            if v["type"] == "message"
                && let Some(id) = v["id"].as_str()
            {
                got.push(id.to_owned());
                seen.insert(id.to_owned());
            }
        }
        all.push(got);
        if seen.len() >= count {
            return all;
        }
    }
    panic!("listener gave up: {} of {count} seen", seen.len());
}

/// Check a numbered run: every acknowledged number stored, the stored messages exactly
/// `n0..n{count-1}` in order, and no listener connection sent a message twice.
pub fn check_numbered(run: &NumberedRun, stored: &[String], deliveries: &Deliveries, count: usize) {
    let expected: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
    let have: HashSet<&String> = stored.iter().collect();
    for i in &run.acked {
        assert!(have.contains(&format!("n{i}")), "acknowledged n{i} lost");
    }
    assert_eq!(
        stored,
        expected.as_slice(),
        "each message stored exactly once, in order"
    );
    for (k, got) in deliveries.iter().enumerate() {
        let mut once = HashSet::new();
        for id in got {
            assert!(once.insert(id), "listener connection {k} was sent {id} twice");
        }
    }
}

/// The message ids stored in the mailbox of `nameplate`, as a fresh side sees them replayed.
pub async fn stored_ids(url: &str, appid: &str, nameplate: &str) -> Vec<String> {
    // The sender's own side: a third side would make the nameplate crowded.
    let mut c = bound_retrying(&[url.to_owned()], 0, appid, "numbered").await;
    let (_, ids) = c
        .try_claim_open(nameplate)
        .await
        .expect("audit connection failed");
    ids.into_iter().filter(|id| id.starts_with('n')).collect()
}
