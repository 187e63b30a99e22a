//! A minimal mailbox-protocol client for load generation: one WebSocket connection that sends commands
//! as plain JSON and tracks what the server answered (acks, `allocated`, `claimed`, `released`,
//! `closed`, the peer's messages), plus [`run_pair`], the full life of one client pair.
//!
//! A pair does what two real clients do (docs/protocol.md §1.10): side A binds, allocates, claims, opens and
//! adds `pake`; side B gets the nameplate from A (out of band, like a typed code), binds, claims, opens
//! and adds `pake`; each side, on the peer's `pake`, releases the nameplate and adds `version`; on the
//! peer's `version` it adds one message (phase `0`); on the peer's `0` it closes with mood `happy`, waits
//! for `released` and `closed`, checks that every command was acked, and disconnects. Commands are
//! pipelined like the Python client: a side waits only for what it needs next.
//!
//! Every wait is bounded by the pair's deadline. Server input is parsed defensively (unknown keys and
//! types ignored, an `error` message fails the pair). This module must not record statistics.

use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// The application id the load uses (the file-transfer appid real clients use).
pub const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

/// Body sizes in bytes (before hex), close to what real clients send.
const PAKE_BYTES: usize = 81;
const VERSION_BYTES: usize = 92;
const MESSAGE_BYTES: usize = 120;
/// Frames larger than this from the server are a protocol error (real replies are tiny).
const MAX_FRAME: usize = 1 << 20;

/// Why a pair (or a connection) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairError {
    /// The WebSocket connection could not be made (server down or out of file descriptors).
    Connect(String),
    /// The server closed the connection while we waited for `.0`.
    Closed(&'static str),
    /// The pair's deadline passed while we waited for `.0`.
    Timeout(&'static str),
    /// The server sent an `error` message (its text).
    Server(String),
    /// The server sent something a real client could not accept.
    Protocol(String),
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PairError::Connect(e) => write!(f, "connect failed: {e}"),
            PairError::Closed(what) => write!(f, "connection closed while waiting for {what}"),
            PairError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            PairError::Server(e) => write!(f, "server error: {e}"),
            PairError::Protocol(e) => write!(f, "protocol violation: {e}"),
        }
    }
}

impl std::error::Error for PairError {}

impl PairError {
    /// A short category name for error tallies.
    pub fn kind(&self) -> &'static str {
        match self {
            PairError::Connect(_) => "connect",
            PairError::Closed(_) => "closed",
            PairError::Timeout(_) => "timeout",
            PairError::Server(_) => "server-error",
            PairError::Protocol(_) => "protocol",
        }
    }
}

/// The fields of a server message this client looks at; everything else is ignored.
#[derive(Debug, Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    side: Option<String>,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    mailbox: Option<String>,
    #[serde(default)]
    nameplate: Option<String>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What the server has told this connection so far.
#[derive(Debug, Default)]
struct Seen {
    acks: u64,
    pongs: u64,
    allocated: Option<String>,
    claimed: Option<String>,
    released: bool,
    closed: bool,
    peer_phases: Vec<String>,
}

use crate::ws_connect::Ws;

/// One client connection to the mailbox server.
pub struct Conn {
    ws: Ws,
    side: String,
    commands: u64,
    seen: Seen,
    deadline: Instant,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("side", &self.side)
            .field("commands", &self.commands)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

fn random_hex(n_bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    let bytes: Vec<u8> = (0..n_bytes).map(|_| rng.r#gen()).collect();
    hex::encode(bytes)
}

fn command_id() -> String {
    format!("{:04x}", rand::thread_rng().gen_range(0..=0xffffu32))
}

impl Conn {
    /// Connect to `url` (`ws://HOST:PORT/v1`) and wait for the `welcome`, all before `deadline`.
    pub async fn connect(url: &str, deadline: Instant) -> Result<Conn, PairError> {
        let ws = match crate::ws_connect::connect(url, deadline).await {
            Err(_) if Instant::now() >= deadline => {
                return Err(PairError::Timeout("the WebSocket handshake"));
            }
            Err(e) => return Err(PairError::Connect(e)),
            Ok(ws) => ws,
        };
        let mut conn = Conn {
            ws,
            side: random_hex(5),
            commands: 0,
            seen: Seen::default(),
            deadline,
        };
        let first = conn.recv("welcome").await?;
        if first.ty != "welcome" {
            return Err(PairError::Protocol(format!(
                "first message is `{}`, not `welcome`",
                first.ty
            )));
        }
        Ok(conn)
    }

    /// This connection's side id.
    pub fn side(&self) -> &str {
        &self.side
    }

    async fn send(&mut self, json: String) -> Result<(), PairError> {
        self.commands += 1;
        match timeout_at(self.deadline, self.ws.send(Message::Text(json.into()))).await {
            Err(_) => Err(PairError::Timeout("sending a command")),
            Ok(Err(_)) => Err(PairError::Closed("sending a command")),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Receive the next server message (skipping WebSocket control frames).
    async fn recv(&mut self, what: &'static str) -> Result<Incoming, PairError> {
        loop {
            let frame = match timeout_at(self.deadline, self.ws.next()).await {
                Err(_) => return Err(PairError::Timeout(what)),
                Ok(None) | Ok(Some(Err(_))) => return Err(PairError::Closed(what)),
                Ok(Some(Ok(frame))) => frame,
            };
            let text = match &frame {
                Message::Text(t) => t.as_str(),
                Message::Binary(_) => {
                    return Err(PairError::Protocol("binary frame from server".into()));
                }
                Message::Close(_) => return Err(PairError::Closed(what)),
                _ => continue,
            };
            if text.len() > MAX_FRAME {
                return Err(PairError::Protocol(format!("{}-byte frame", text.len())));
            }
            return serde_json::from_str(text)
                .map_err(|e| PairError::Protocol(format!("unparsable frame ({e}): {text:.200}")));
        }
    }

    /// Fold one server message into what we have seen; an `error` fails.
    fn absorb(&mut self, m: Incoming) -> Result<(), PairError> {
        match m.ty.as_str() {
            "ack" => self.seen.acks += 1,
            "pong" => self.seen.pongs += 1,
            "allocated" => self.seen.allocated = m.nameplate,
            "claimed" => self.seen.claimed = m.mailbox,
            "released" => self.seen.released = true,
            "closed" => self.seen.closed = true,
            "message" => {
                if m.side.as_deref() != Some(self.side.as_str())
                    && let Some(phase) = m.phase
                {
                    self.seen.peer_phases.push(phase);
                }
            }
            "error" => {
                let text = m.error.map(|e| e.to_string()).unwrap_or_default();
                return Err(PairError::Server(text));
            }
            _ => {}
        }
        Ok(())
    }

    /// Read messages until `done` holds for what we have seen.
    async fn wait_until(
        &mut self,
        what: &'static str,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<(), PairError> {
        while !done(&self.seen) {
            let m = self.recv(what).await?;
            self.absorb(m)?;
        }
        Ok(())
    }

    /// Send `bind` for this side (with a `client_version`, as Python and Go do).
    pub async fn bind(&mut self) -> Result<(), PairError> {
        let json = format!(
            r#"{{"type":"bind","appid":"{APPID}","side":"{}","client_version":["bench","0"],"id":"{}"}}"#,
            self.side,
            command_id()
        );
        self.send(json).await
    }

    /// Wait until `n` acks in total have arrived.
    pub async fn wait_acks(&mut self, n: u64) -> Result<(), PairError> {
        self.wait_until("ack", |s| s.acks >= n).await
    }

    /// Send `ping` and wait for its `pong`.
    pub async fn ping(&mut self) -> Result<(), PairError> {
        let before = self.seen.pongs;
        let json = format!(r#"{{"type":"ping","ping":7,"id":"{}"}}"#, command_id());
        self.send(json).await?;
        self.wait_until("pong", |s| s.pongs > before).await
    }

    /// Send `allocate` and wait for the nameplate.
    async fn allocate(&mut self) -> Result<String, PairError> {
        let json = format!(r#"{{"type":"allocate","id":"{}"}}"#, command_id());
        self.send(json).await?;
        self.wait_until("allocated", |s| s.allocated.is_some()).await?;
        self.seen
            .allocated
            .clone()
            .ok_or(PairError::Protocol("allocated without nameplate".into()))
    }

    /// Send `claim` and wait for the mailbox id.
    async fn claim(&mut self, nameplate: &str) -> Result<String, PairError> {
        if !nameplate.bytes().all(|b| b.is_ascii_digit()) || nameplate.is_empty() {
            return Err(PairError::Protocol(format!("bad nameplate {nameplate:.50}")));
        }
        let json = format!(
            r#"{{"type":"claim","nameplate":"{nameplate}","id":"{}"}}"#,
            command_id()
        );
        self.send(json).await?;
        self.wait_until("claimed", |s| s.claimed.is_some()).await?;
        let mailbox = self
            .seen
            .claimed
            .clone()
            .ok_or(PairError::Protocol("claimed without mailbox".into()))?;
        if mailbox.is_empty() || mailbox.len() > 64 || !mailbox.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PairError::Protocol(format!("odd mailbox id {mailbox:.70}")));
        }
        Ok(mailbox)
    }

    async fn add(&mut self, phase: &str, body_bytes: usize) -> Result<(), PairError> {
        let json = format!(
            r#"{{"type":"add","phase":"{phase}","body":"{}","id":"{}"}}"#,
            random_hex(body_bytes),
            command_id()
        );
        self.send(json).await
    }

    async fn wait_peer(&mut self, phase: &'static str) -> Result<(), PairError> {
        self.wait_until(phase, |s| s.peer_phases.iter().any(|p| p == phase))
            .await
    }

    /// The part of a pair common to both sides, from `open` to disconnect. `probe` times
    /// side A's last message (phase `0`) from its `add` to side B seeing it.
    async fn converse(mut self, nameplate: &str, mailbox: &str, probe: Probe<'_>) -> Result<(), PairError> {
        let json = format!(
            r#"{{"type":"open","mailbox":"{mailbox}","id":"{}"}}"#,
            command_id()
        );
        self.send(json).await?;
        self.add("pake", PAKE_BYTES).await?;
        self.wait_peer("pake").await?;
        let json = format!(
            r#"{{"type":"release","nameplate":"{nameplate}","id":"{}"}}"#,
            command_id()
        );
        self.send(json).await?;
        self.add("version", VERSION_BYTES).await?;
        self.wait_peer("version").await?;
        if let Probe::Sender(cell) = probe
            && let Ok(mut c) = cell.lock()
        {
            *c = Some(Instant::now());
        }
        self.add("0", MESSAGE_BYTES).await?;
        self.wait_peer("0").await?;
        if let Probe::Receiver(cell, out) = probe
            && let Ok(c) = cell.lock()
        {
            *out = c.map(|t| t.elapsed());
        }
        let json = format!(
            r#"{{"type":"close","mailbox":"{mailbox}","mood":"happy","id":"{}"}}"#,
            command_id()
        );
        self.send(json).await?;
        self.wait_until("released and closed", |s| s.released && s.closed)
            .await?;
        // The server acks every command before replying to it, so all acks are in by now.
        if self.seen.acks != self.commands {
            return Err(PairError::Protocol(format!(
                "{} acks for {} commands",
                self.seen.acks, self.commands
            )));
        }
        let _ = timeout_at(self.deadline, self.ws.close(None)).await;
        Ok(())
    }
}

/// When side A added its last message (set by A, read by B).
type SentAt = Arc<Mutex<Option<Instant>>>;

/// A side's part in timing the A-to-B delivery of the last message.
enum Probe<'a> {
    /// Side A: note the time of its `add`.
    Sender(&'a SentAt),
    /// Side B: on seeing it, store the elapsed time.
    Receiver(&'a SentAt, &'a mut Option<Duration>),
}

/// Side A: bind, allocate, claim, hand the nameplate to side B, then converse.
async fn allocating_side(
    url: &str,
    deadline: Instant,
    nameplate_tx: oneshot::Sender<String>,
    sent: &SentAt,
) -> Result<(), PairError> {
    let mut conn = Conn::connect(url, deadline).await?;
    conn.bind().await?;
    let nameplate = conn.allocate().await?;
    let mailbox = conn.claim(&nameplate).await?;
    let _ = nameplate_tx.send(nameplate.clone());
    conn.converse(&nameplate, &mailbox, Probe::Sender(sent)).await
}

/// Side B: connect and bind at once, wait for the nameplate ("the code"), claim, then converse.
async fn claiming_side(
    url: &str,
    deadline: Instant,
    nameplate_rx: oneshot::Receiver<String>,
    sent: &SentAt,
    delivery: &mut Option<Duration>,
) -> Result<(), PairError> {
    let mut conn = Conn::connect(url, deadline).await?;
    conn.bind().await?;
    let nameplate = match timeout_at(deadline, nameplate_rx).await {
        Err(_) => return Err(PairError::Timeout("the nameplate from side A")),
        // Side A failed; its own error is the one reported.
        Ok(Err(_)) => return Err(PairError::Closed("the nameplate from side A")),
        Ok(Ok(n)) => n,
    };
    let mailbox = conn.claim(&nameplate).await?;
    conn.converse(&nameplate, &mailbox, Probe::Receiver(sent, delivery))
        .await
}

/// Run one complete client pair against `url`, failing if it takes longer than `timeout`.
pub async fn run_pair(url: &str, timeout: Duration) -> Result<(), PairError> {
    run_pair_split(url, url, timeout).await.map(|_| ())
}

/// Run one complete client pair, side A against `url_a` and side B against `url_b` (two
/// nodes of a cluster), failing if it takes longer than `timeout`. Returns how long side A's
/// last message took from its `add` to side B (the delivery latency from one node to the other).
pub async fn run_pair_split(url_a: &str, url_b: &str, timeout: Duration) -> Result<Duration, PairError> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = oneshot::channel();
    let sent = SentAt::default();
    let mut delivery = None;
    let a = allocating_side(url_a, deadline, tx, &sent);
    let b = claiming_side(url_b, deadline, rx, &sent, &mut delivery);
    let (ra, rb) = tokio::join!(a, b);
    // Prefer A's error: B's is often just the consequence.
    ra.and(rb)?;
    delivery.ok_or(PairError::Protocol(
        "side B saw the last message before side A sent it".into(),
    ))
}

/// Open a connection, `bind` it and wait for the bind's ack: an idle bound client.
pub async fn idle_bound(url: &str, deadline: Instant) -> Result<Conn, PairError> {
    let mut conn = Conn::connect(url, deadline).await?;
    conn.bind().await?;
    conn.wait_acks(1).await?;
    Ok(conn)
}

impl Conn {
    /// Extend this connection's deadline (for long-held idle connections).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}
