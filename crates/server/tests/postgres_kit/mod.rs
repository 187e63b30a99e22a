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
            let port = free_port();
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
