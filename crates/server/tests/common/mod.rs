//! Test helpers: an in-process mailbox server on 127.0.0.1:0, a spawned `wormhole-server`
//! process (killed on drop; `wormhole-testkit` starts it), and a raw WebSocket client that speaks
//! JSON frames.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use wormhole_server::MailboxArgs;
use wormhole_testkit::{ChannelDb, MailboxServer, ServerSpec, StartOptions};

/// How long to wait for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// Default test args: in-memory DB, loopback.
pub fn args() -> MailboxArgs {
    let mut a = MailboxArgs::defaults();
    a.listen = "127.0.0.1:0".into();
    a.channel_db = ":memory:".into();
    a
}

/// An in-process server; aborted on drop.
pub struct InProcess {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    pub async fn start(args: MailboxArgs) -> Self {
        let server = wormhole_server::MailboxServer::start(&args).expect("start server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = server.serve(listener).await;
        });
        InProcess { addr, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A spawned `wormhole-server mailbox` process, started by the workspace's one spawner
/// (`wormhole-testkit`); SIGKILLed and reaped on drop.
pub type Spawned = MailboxServer;

/// Start the binary with `extra` flags (which name the channel DB) on 127.0.0.1:0.
pub fn spawn(extra: &[&str]) -> Spawned {
    spawn_on("127.0.0.1:0", extra)
}

/// Start the binary listening on `listen`.
pub fn spawn_on(listen: &str, extra: &[&str]) -> Spawned {
    let spec = ServerSpec::Ours {
        bin: env!("CARGO_BIN_EXE_wormhole-server").into(),
        args: extra.iter().map(|a| (*a).to_owned()).collect(),
    };
    let opts = StartOptions {
        listen: Some(listen.to_owned()),
        channel_db: ChannelDb::InArgs,
    };
    MailboxServer::start_with(&spec, &opts).expect("start wormhole-server")
}

/// A raw JSON-over-WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    /// Connect and consume the welcome, which is returned.
    pub async fn connect(url: &str) -> (Self, Value) {
        let (ws, _) = connect_async(url).await.expect("connect");
        let mut c = Client { ws };
        let w = c.recv().await;
        assert_eq!(w["type"], "welcome", "first frame must be welcome: {w}");
        (c, w)
    }

    /// Connect and bind.
    pub async fn bound(url: &str, appid: &str, side: &str) -> Self {
        let (mut c, _) = Self::connect(url).await;
        c.send(json!({"type": "bind", "appid": appid, "side": side, "id": "b000"}))
            .await;
        c.ack("b000").await;
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// Next data frame as JSON (panics on timeout, close, or a non-text frame).
    pub async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("websocket error");
            match m {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert!(
                        v["server_tx"].is_f64(),
                        "every server message has a float server_tx: {v}"
                    );
                    if v["type"] != "message" {
                        assert!(v.get("server_rx").is_none(), "only message has server_rx: {v}");
                    }
                    return v;
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Expect the next frame to be an ack with this id.
    pub async fn ack(&mut self, id: &str) {
        let v = self.recv().await;
        assert_eq!(v["type"], "ack", "expected ack {id}, got {v}");
        assert_eq!(v["id"], id, "ack id: {v}");
    }

    /// Send a command with an id and expect its ack.
    pub async fn cmd(&mut self, mut v: Value, id: &str) {
        v["id"] = json!(id);
        self.send(v).await;
        self.ack(id).await;
    }

    /// Expect a frame of this type.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }

    /// Expect an error with this text whose `orig` has this type.
    pub async fn expect_error(&mut self, text: &str) -> Value {
        let v = self.expect("error").await;
        assert_eq!(v["error"], text, "{v}");
        assert!(v.get("orig").is_some(), "error has orig: {v}");
        v
    }

    /// Round-trip a ping: everything sent before it has been answered.
    pub async fn sync(&mut self, n: i64) {
        self.send(json!({"type": "ping", "ping": n, "id": "sync"})).await;
        self.ack("sync").await;
        let p = self.expect("pong").await;
        assert_eq!(p["pong"], n);
    }

    /// Assert no data frame arrives within `d` (reading, so pings are answered meanwhile).
    pub async fn quiet(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(next) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Claim a nameplate; returns the mailbox id.
    pub async fn claim(&mut self, nameplate: &str) -> String {
        self.cmd(json!({"type": "claim", "nameplate": nameplate}), "c000")
            .await;
        let v = self.expect("claimed").await;
        v["mailbox"].as_str().unwrap().to_owned()
    }

    /// `list`: the `nameplates` value of the answer.
    pub async fn list(&mut self) -> Value {
        self.cmd(json!({"type": "list"}), "l").await;
        self.expect("nameplates").await["nameplates"].clone()
    }

    /// Open a mailbox (no reply expected beyond the ack).
    pub async fn open(&mut self, mailbox: &str) {
        self.cmd(json!({"type": "open", "mailbox": mailbox}), "o000")
            .await;
    }

    /// Add a message; expects the ack and our own echo.
    pub async fn add(&mut self, phase: &str, body: &str, id: &str) -> Value {
        self.cmd(json!({"type": "add", "phase": phase, "body": body}), id)
            .await;
        let echo = self.expect("message").await;
        assert_eq!(echo["phase"], phase);
        assert_eq!(echo["id"], id);
        echo
    }
}
