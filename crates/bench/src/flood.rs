//! A flooding client for `mailbox-load --flood`: from one source address, keep `parallel`
//! connections going, each opened as soon as the previous one ends, and on each send `bind`
//! and then `ping` after `ping` as fast as the socket takes them, never waiting for answers.
//! What the server does about it (welcome errors, `error` replies, closes and their reasons)
//! is counted and reported as a [`FloodReport`].
//!
//! It runs on a thread of its own with a single-threaded runtime, so it uses at most one core
//! whatever the rest of the generator does, and it stops at its deadline (or when told), with a
//! bound on the connections it opens. Owns: the flood and its counters. Must not: judge the
//! figures (the caller prints them) or speak more of the protocol than `bind` and `ping`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::mailbox_client::APPID;
use crate::ws_connect::{Ws, connect_from};

/// What to flood and for how long.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The server's `ws://IP:PORT/v1`.
    pub url: String,
    /// The flooder's source address (its own, apart from the well-behaved clients').
    pub source: Option<IpAddr>,
    /// Connections kept going at once.
    pub parallel: usize,
    /// Stop after this long at the latest.
    pub max_time: Duration,
    /// Stop after opening this many connections.
    pub max_connections: u64,
}

/// What the flooder saw.
#[derive(Debug, Default, Clone)]
pub struct FloodReport {
    /// Connections attempted.
    pub attempts: u64,
    /// Attempts refused with an HTTP status instead of the upgrade (e.g. `429`).
    pub http_refused: u64,
    /// Attempts that did not reach a WebSocket otherwise (refused, reset, timed out).
    pub connect_failed: u64,
    /// Connections whose welcome carried an `error` (refused by the server).
    pub welcome_errors: u64,
    /// Commands written.
    pub commands_sent: u64,
    /// `ack`s and `pong`s received (commands the server served).
    pub served: u64,
    /// `error` replies received (commands the server refused).
    pub error_replies: u64,
    /// Connections the server closed (with a close frame, or by dropping the socket).
    pub closed_by_server: u64,
    /// Texts of welcome errors, `error` replies and close reasons, cut at the first `(` or `:`,
    /// with how often each came.
    pub reasons: BTreeMap<String, u64>,
    /// How long the flood ran.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    http_refused: AtomicU64,
    connect_failed: AtomicU64,
    welcome_errors: AtomicU64,
    commands_sent: AtomicU64,
    served: AtomicU64,
    error_replies: AtomicU64,
    closed_by_server: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn reason(&self, text: &str) {
        let cut = text.find(['(', ':']).map(|i| &text[..i]).unwrap_or(text);
        let key: String = cut.trim().chars().take(60).collect();
        if let Ok(mut r) = self.reasons.lock() {
            *r.entry(key).or_default() += 1;
        }
    }
}

/// A running flood; [`Flood::stop`] ends it and returns the report.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<FloodReport>,
}

impl Flood {
    /// Start flooding on a new thread.
    pub fn start(cfg: FloodConfig) -> std::io::Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("flood".into())
            .spawn(move || rt.block_on(run(cfg, s)))?;
        Ok(Flood { stop, thread })
    }

    /// Stop the flood (it ends within a second or so) and return what it saw.
    pub fn stop(self) -> FloodReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

async fn run(cfg: FloodConfig, stop: Arc<AtomicBool>) -> FloodReport {
    let started = Instant::now();
    let deadline = started + cfg.max_time;
    let c = Arc::new(Counters::default());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cfg.parallel.clamp(1, 10_000) {
        let (cfg, c, stop) = (cfg.clone(), c.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if c.attempts.fetch_add(1, Ordering::Relaxed) >= cfg.max_connections {
                    break;
                }
                one_connection(&cfg, &c, &stop, deadline).await;
            }
        });
    }
    // Check the stop flag now and then; end every connection at the deadline or on stop.
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    // Give the writers a moment to see the flag, then cut the rest.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
    }
    let reasons = c.reasons.lock().map(|r| r.clone()).unwrap_or_default();
    let attempts = c.attempts.load(Ordering::Relaxed).min(cfg.max_connections);
    FloodReport {
        attempts,
        http_refused: c.http_refused.load(Ordering::Relaxed),
        connect_failed: c.connect_failed.load(Ordering::Relaxed),
        welcome_errors: c.welcome_errors.load(Ordering::Relaxed),
        commands_sent: c.commands_sent.load(Ordering::Relaxed),
        served: c.served.load(Ordering::Relaxed),
        error_replies: c.error_replies.load(Ordering::Relaxed),
        closed_by_server: c.closed_by_server.load(Ordering::Relaxed),
        reasons,
        elapsed: started.elapsed(),
    }
}

/// The `type` and `error` text of a server message (anything else is ignored).
fn kind_of(text: &str) -> (String, Option<String>, Option<String>) {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let ty = v["type"].as_str().unwrap_or("").to_owned();
    let err = v["error"].as_str().map(str::to_owned);
    let welcome_err = v["welcome"]["error"].as_str().map(str::to_owned);
    (ty, err, welcome_err)
}

/// One flooding connection, from connect to its end.
async fn one_connection(cfg: &FloodConfig, c: &Counters, stop: &AtomicBool, deadline: Instant) {
    let connect_by = (Instant::now() + Duration::from_secs(10)).min(deadline);
    let ws: Ws = match connect_from(&cfg.url, cfg.source, connect_by).await {
        Ok(ws) => ws,
        Err(e) if e.contains("HTTP error") => {
            // Refused before the upgrade (tungstenite's "HTTP error: 429 …"): try again at once.
            c.http_refused.fetch_add(1, Ordering::Relaxed);
            c.reason(&e);
            return;
        }
        Err(_) => {
            c.connect_failed.fetch_add(1, Ordering::Relaxed);
            // Out of ports or refused at the TCP level: do not spin on it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            return;
        }
    };
    let (mut tx, mut rx) = ws.split();
    // The welcome first: a refused connection gets its error there.
    match timeout_at(connect_by, rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            let (_, _, welcome_err) = kind_of(t.as_str());
            if let Some(e) = welcome_err {
                c.welcome_errors.fetch_add(1, Ordering::Relaxed);
                c.reason(&e);
                return;
            }
        }
        _ => {
            c.closed_by_server.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let reader = async {
        while let Some(frame) = rx.next().await {
            match frame {
                Ok(Message::Text(t)) => {
                    let (ty, err, _) = kind_of(t.as_str());
                    match ty.as_str() {
                        "ack" | "pong" => {
                            c.served.fetch_add(1, Ordering::Relaxed);
                        }
                        "error" => {
                            c.error_replies.fetch_add(1, Ordering::Relaxed);
                            c.reason(err.as_deref().unwrap_or(""));
                        }
                        _ => {}
                    }
                }
                Ok(Message::Close(f)) => {
                    c.reason(&f.map(|f| f.reason.to_string()).unwrap_or_default());
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        c.closed_by_server.fetch_add(1, Ordering::Relaxed);
    };
    let writer = async {
        let side = format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
        let bind =
            format!(r#"{{"type":"bind","appid":"{APPID}","side":"{side}","client_version":["flood","0"]}}"#);
        if tx.send(Message::text(bind)).await.is_err() {
            return;
        }
        c.commands_sent.fetch_add(1, Ordering::Relaxed);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            // 16 frames per flush: as fast as the socket takes them.
            for _ in 0..16 {
                i += 1;
                let ping = format!(r#"{{"type":"ping","ping":{i}}}"#);
                if tx.feed(Message::text(ping)).await.is_err() {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
            c.commands_sent.fetch_add(16, Ordering::Relaxed);
        }
        let _ = tx.close().await;
    };
    // The connection ends when the server closes it (the reader ends) or at stop.
    tokio::select! {
        () = reader => {}
        () = async { writer.await; std::future::pending::<()>().await } => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
}

impl FloodReport {
    /// Print the report (indented, like the other `mailbox-load` lines) and return `key=value`
    /// pairs for the RESULT line.
    pub fn print(&self) -> Vec<(String, String)> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  flooder: {} connections tried in {:.1} s ({:.0}/s): {} refused in the welcome, {} refused with an HTTP status, {} failed to connect, {} closed by the server",
            self.attempts,
            secs,
            self.attempts as f64 / secs,
            self.welcome_errors,
            self.http_refused,
            self.connect_failed,
            self.closed_by_server
        );
        println!(
            "  flooder: {} commands sent ({:.0}/s): {} served (ack/pong), {} refused with an error",
            self.commands_sent,
            self.commands_sent as f64 / secs,
            self.served,
            self.error_replies
        );
        for (reason, n) in &self.reasons {
            println!("    {n:>9} × {reason:?}");
        }
        vec![
            ("flood_attempts".into(), self.attempts.to_string()),
            ("flood_welcome_errors".into(), self.welcome_errors.to_string()),
            ("flood_http_refused".into(), self.http_refused.to_string()),
            ("flood_connect_failed".into(), self.connect_failed.to_string()),
            ("flood_closed".into(), self.closed_by_server.to_string()),
            ("flood_commands".into(), self.commands_sent.to_string()),
            ("flood_served".into(), self.served.to_string()),
            ("flood_refused".into(), self.error_replies.to_string()),
        ]
    }
}
