//! The tokio driver of the relay: accept loops, one task per connection, and the hand-over that glues a
//! pair together (docs/protocol.md §4.6).
//!
//! Owns: connection limits (total and per IP, enforced at accept), the handshake timeout, reading the
//! request over TCP or WebSocket, waiting for a partner (data → `impatient`, close → lonely, our wait
//! limit → lonely), handing the newcomer's stream to the waiting task, running the pair, and emitting
//! exactly the usage records Python would.
//! Must not: parse the request itself (`handshake`), decide pairing (`registry`), or copy bytes
//! (`splice`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Limits;
use crate::handshake::{self, LineScan, MAX_LINE, Request};
use crate::metrics::{Reason, RelayMetrics};
use crate::registry::{ConnId, Registered, Registry};
use crate::splice::{self, Carried, End};
use crate::stream::{RelayStream, WsBytes, tune_tcp, ws_config};
use crate::usage::{CurrentRow, Half, Mood, UsageRecord};
use crate::usage_sink::UsageSink;
use crate::zero_copy;
use crate::{RelayConfig, RelayError};

/// How often the `current` row is rewritten.
const STATS_INTERVAL: Duration = Duration::from_secs(300);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const OK: &[u8] = b"ok\n";
const BAD_HANDSHAKE: &[u8] = b"bad handshake\n";
const IMPATIENT: &[u8] = b"impatient\n";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What a waiting connection is woken with.
enum Handoff {
    /// Its partner arrived: here is the partner's connection.
    Partner(Box<Arrival>),
    /// Another connection on its token was paired: close as redundant.
    Redundant,
}

/// The second half of a pair, handed to the task of the first.
struct Arrival {
    stream: RelayStream,
    /// Bytes the newcomer sent right after its request line (pipelined); relayed after `ok`.
    leftover: Vec<u8>,
    started: f64,
    _slot: Slot,
}

/// A connection's claim on the limits; released when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.metrics.connections.dec();
        let mut per_ip = lock(&self.shared.per_ip);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

struct Shared {
    registry: Mutex<Registry<oneshot::Sender<Handoff>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    limits: Limits,
    usage: UsageSink,
    blur: Option<u64>,
    next_id: AtomicU64,
    /// Connections currently relaying (two per pair).
    relaying: AtomicU64,
    /// Bytes carried so far by pairs still relaying.
    live_bytes: AtomicU64,
    rebooted: i64,
    metrics: RelayMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn record(&self, me: Half, buddy: Option<Half>, mood: Mood) {
        self.metrics.ended(mood);
        if self.usage.is_enabled() {
            self.usage
                .record(UsageRecord::new(me, buddy, now(), mood, self.blur));
        }
    }

    fn current_row(&self) -> CurrentRow {
        CurrentRow {
            rebooted: self.rebooted,
            updated: now() as i64,
            connected: self.relaying.load(Ordering::Relaxed),
            waiting: lock(&self.registry).waiting_tokens() as u64,
            incomplete_bytes: self.live_bytes.load(Ordering::Relaxed),
        }
    }

    /// Claim a connection slot, or `None` when a limit is reached (counted in the metrics).
    fn admit(self: &Arc<Self>, sem: &Arc<Semaphore>, peer: SocketAddr) -> Option<Slot> {
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            self.metrics.reject(Reason::Connections);
            return None;
        };
        let ip = peer.ip();
        let mut per_ip = lock(&self.per_ip);
        let n = per_ip.entry(ip).or_insert(0);
        if self.limits.max_connections_per_ip > 0 && *n >= self.limits.max_connections_per_ip {
            self.metrics.reject(Reason::ConnectionsPerIp);
            return None;
        }
        *n += 1;
        self.metrics.connections.inc();
        Some(Slot {
            _permit: permit,
            ip,
            shared: self.clone(),
        })
    }
}

/// Serve relay clients on `tcp` (and WebSocket clients on `websocket`) until the returned future is
/// dropped; dropping it also ends every connection. Prints `transit relay listening on ADDR` (and
/// `transit relay websocket listening on ADDR`) to stderr first.
pub async fn serve(
    config: RelayConfig,
    tcp: TcpListener,
    websocket: Option<TcpListener>,
) -> Result<(), RelayError> {
    let addr = tcp.local_addr().map_err(RelayError::Accept)?;
    eprintln!("transit relay listening on {addr}");
    if let Some(ws) = &websocket {
        let addr = ws.local_addr().map_err(RelayError::Accept)?;
        eprintln!("transit relay websocket listening on {addr}");
    }
    let sem = Arc::new(Semaphore::new(config.limits.max_connections));
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry::new()),
        per_ip: Mutex::new(HashMap::new()),
        limits: config.limits,
        usage: config.usage,
        blur: config.blur_usage,
        next_id: AtomicU64::new(1),
        relaying: AtomicU64::new(0),
        live_bytes: AtomicU64::new(0),
        rebooted: now() as i64,
        metrics: config.metrics,
    });
    let mut tasks = JoinSet::new();
    let mut stats = tokio::time::interval(STATS_INTERVAL);
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            r = tcp.accept() => match r {
                Ok((stream, peer)) => match shared.admit(&sem, peer) {
                    Some(slot) => {
                        tasks.spawn(tcp_connection(shared.clone(), stream, slot));
                    }
                    None => refuse(&mut refused, stream),
                },
                Err(e) => accept_failed(e).await,
            },
            r = accept_opt(websocket.as_ref()) => match r {
                Ok((stream, peer)) => match shared.admit(&sem, peer) {
                    Some(slot) => {
                        tasks.spawn(ws_connection(shared.clone(), stream, slot));
                    }
                    None => refuse(&mut refused, stream),
                },
                Err(e) => accept_failed(e).await,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("relay connection task panicked: {e}");
                }
            }
            _ = stats.tick(), if shared.usage.is_enabled() => shared.usage.current(shared.current_row()),
        }
    }
}

async fn accept_opt(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn refuse(refused: &mut u64, stream: TcpStream) {
    *refused += 1;
    if refused.is_power_of_two() {
        tracing::warn!("connection limit reached; refused {refused} connections so far");
    }
    drop(stream);
}

async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// How reading the request ended.
enum Hello {
    Request(Request, Vec<u8>),
    Bad,
    /// Closed, failed, timed out, or sent an over-long line: close without a word.
    Gone,
}

async fn read_tcp_request(stream: &mut TcpStream) -> Hello {
    let mut buf = [0u8; MAX_LINE + 1];
    let mut filled = 0;
    loop {
        let Some(space) = buf.get_mut(filled..) else {
            return Hello::Gone;
        };
        match stream.read(space).await {
            Ok(0) | Err(_) => return Hello::Gone,
            Ok(n) => filled += n,
        }
        let seen = buf.get(..filled).unwrap_or_default();
        match handshake::scan_line(seen) {
            LineScan::Incomplete => {}
            LineScan::TooLong => return Hello::Gone,
            LineScan::Line { line_len, consumed } => {
                let line = seen.get(..line_len).unwrap_or_default();
                let leftover = seen.get(consumed..).unwrap_or_default().to_vec();
                return match handshake::parse_line(line) {
                    Some(req) => Hello::Request(req, leftover),
                    None => Hello::Bad,
                };
            }
        }
    }
}

async fn tcp_connection(shared: Arc<Shared>, mut stream: TcpStream, slot: Slot) {
    let started = now();
    tune_tcp(&stream);
    let hello = tokio::time::timeout(shared.limits.handshake_timeout, read_tcp_request(&mut stream))
        .await
        .unwrap_or(Hello::Gone);
    after_hello(shared, RelayStream::Tcp(stream), hello, started, slot).await;
}

async fn ws_connection(shared: Arc<Shared>, stream: TcpStream, slot: Slot) {
    let started = now();
    tune_tcp(&stream);
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    let upgraded = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())),
    )
    .await;
    let ws = match upgraded {
        Ok(Ok(ws)) => ws,
        // Python records nothing for a connection that never became a WebSocket.
        Ok(Err(e)) => return tracing::debug!("websocket upgrade failed: {e}"),
        Err(_) => return tracing::debug!("websocket upgrade timed out"),
    };
    let mut ws = Box::new(WsBytes::new(ws));
    let first = tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| ws.poll_next_binary(cx))).await;
    let hello = match first {
        Ok(Ok(Some(payload))) => match handshake::parse_message(&payload) {
            Some(req) => Hello::Request(req, Vec::new()),
            None => Hello::Bad,
        },
        _ => Hello::Gone,
    };
    after_hello(shared, RelayStream::Ws(ws), hello, started, slot).await;
}

async fn after_hello(shared: Arc<Shared>, stream: RelayStream, hello: Hello, started: f64, slot: Slot) {
    let me = Half {
        started,
        bytes_sent: 0,
    };
    match hello {
        Hello::Gone => end_alone(&shared, stream, None, me, Mood::Empty).await,
        Hello::Bad => end_alone(&shared, stream, Some(BAD_HANDSHAKE), me, Mood::Errory).await,
        Hello::Request(req, leftover) => {
            let arrival = Arrival {
                stream,
                leftover,
                started,
                _slot: slot,
            };
            register(shared, req, arrival).await;
        }
    }
}

/// End a connection that is not (or no longer) paired: send `last_words` if given, close (each
/// step bounded by `close_timeout`), and record its usage row with `mood`.
async fn end_alone(
    shared: &Shared,
    mut stream: RelayStream,
    last_words: Option<&[u8]>,
    me: Half,
    mood: Mood,
) {
    if let Some(bytes) = last_words {
        let _ = tokio::time::timeout(
            shared.limits.close_timeout,
            splice::write_reply(&mut stream, bytes),
        )
        .await;
    }
    splice::close(stream, shared.limits.close_timeout).await;
    shared.record(me, None, mood);
}

/// Register a connection that sent a valid request: pair it with a waiter, or wait.
async fn register(shared: Arc<Shared>, req: Request, arrival: Arrival) {
    let id: ConnId = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    let outcome = lock(&shared.registry).register(&req, id, tx);
    match outcome {
        Registered::Paired { partner, redundant } => {
            for r in redundant {
                let _ = r.send(Handoff::Redundant);
            }
            if let Err(Handoff::Partner(a)) = partner.send(Handoff::Partner(Box::new(arrival))) {
                // The waiter's task is gone (only when the relay is shutting down).
                let me = Half {
                    started: a.started,
                    bytes_sent: 0,
                };
                end_alone(&shared, a.stream, None, me, Mood::Lonely).await;
            }
        }
        Registered::Waiting => wait_for_partner(shared, req, id, rx, arrival).await,
    }
}

enum Waited {
    Woken(Result<Handoff, oneshot::error::RecvError>),
    Data,
    Closed,
    TimedOut,
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn wait_for_partner(
    shared: Arc<Shared>,
    req: Request,
    id: ConnId,
    mut rx: oneshot::Receiver<Handoff>,
    me: Arrival,
) {
    let Arrival {
        mut stream,
        leftover: mut early,
        started,
        _slot: slot,
    } = me;
    let waited = if !early.is_empty() {
        Waited::Data
    } else {
        let mut probe = [0u8; 1024];
        tokio::select! {
            biased;
            h = &mut rx => Waited::Woken(h),
            r = tokio::io::AsyncReadExt::read(&mut stream, &mut probe) => match r {
                Ok(n) if n > 0 => {
                    early.extend_from_slice(probe.get(..n).unwrap_or_default());
                    Waited::Data
                }
                _ => Waited::Closed,
            },
            () = sleep_opt(shared.limits.max_wait) => Waited::TimedOut,
        }
    };
    let me = Half {
        started,
        bytes_sent: 0,
    };
    let handoff = match waited {
        Waited::Woken(h) => h,
        other => {
            let still_waiting = lock(&shared.registry).unregister(&req.token, id).is_some();
            if still_waiting {
                if let Waited::Data = other {
                    end_alone(&shared, stream, Some(IMPATIENT), me, Mood::Impatient).await;
                } else {
                    end_alone(&shared, stream, None, me, Mood::Lonely).await;
                }
                return;
            }
            // Paired (or made redundant) at the same moment: the hand-off is on its way.
            rx.await
        }
    };
    match handoff {
        Ok(Handoff::Partner(b)) => relay_pair(&shared, stream, started, early, *b).await,
        Ok(Handoff::Redundant) => end_alone(&shared, stream, None, me, Mood::Redundant).await,
        Err(_) => end_alone(&shared, stream, None, me, Mood::Lonely).await,
    }
    drop(slot);
}

/// Relay between the first-registered connection `a` and its partner `b` until one side ends.
async fn relay_pair(shared: &Shared, mut a: RelayStream, a_started: f64, a_early: Vec<u8>, b: Arrival) {
    let Arrival {
        stream: mut b_stream,
        leftover: b_early,
        started: b_started,
        _slot: b_slot,
    } = b;
    shared.relaying.fetch_add(2, Ordering::Relaxed);
    shared.metrics.pairs_active.inc();
    let mut carried = Carried::default();
    let greet = async {
        splice::write_reply(&mut a, OK).await?;
        splice::write_reply(&mut b_stream, OK).await?;
        if !b_early.is_empty() {
            splice::write_reply(&mut a, &b_early).await?;
        }
        if !a_early.is_empty() {
            splice::write_reply(&mut b_stream, &a_early).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let greeted = tokio::time::timeout(shared.limits.handshake_timeout, greet).await;
    carried.a_to_b = a_early.len() as u64;
    carried.b_to_a = b_early.len() as u64;
    let end = match greeted {
        Ok(Ok(())) => {
            let mut body = Carried::default();
            let limits = &shared.limits;
            let run = async {
                match (&mut a, &mut b_stream) {
                    // Two TCP legs: the kernel moves the bytes (`zero_copy`).
                    (RelayStream::Tcp(ta), RelayStream::Tcp(tb)) if limits.zero_copy => {
                        zero_copy::splice_tcp(
                            ta,
                            tb,
                            limits.max_bytes,
                            limits.buffer_size,
                            &shared.live_bytes,
                            &mut body,
                        )
                        .await
                    }
                    (a, b) => {
                        splice::splice(
                            a,
                            b,
                            limits.max_bytes,
                            limits.buffer_size,
                            &shared.live_bytes,
                            &mut body,
                        )
                        .await
                    }
                }
            };
            let end = match limits.max_time {
                Some(t) => tokio::time::timeout(t, run).await.ok(),
                None => Some(run.await),
            };
            carried.a_to_b += body.a_to_b;
            carried.b_to_a += body.b_to_a;
            shared
                .live_bytes
                .fetch_sub(body.a_to_b + body.b_to_a, Ordering::Relaxed);
            end
        }
        Ok(Err(e)) => Some(End::Error(e)),
        Err(_) => Some(End::Error(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "sending ok timed out",
        ))),
    };
    match end {
        Some(End::Error(e)) => tracing::debug!("relay pair ended: {e}"),
        Some(End::ByteCap) => {
            shared.metrics.reject(Reason::Bytes);
            tracing::info!("relay pair closed at the byte limit");
        }
        None => {
            shared.metrics.reject(Reason::Time);
            tracing::info!("relay pair closed at the time limit");
        }
        Some(End::ClosedA | End::ClosedB) => {}
    }
    let limit = shared.limits.close_timeout;
    tokio::join!(splice::close(a, limit), splice::close(b_stream, limit));
    shared.relaying.fetch_sub(2, Ordering::Relaxed);
    shared.metrics.pairs_active.dec();
    shared.metrics.bytes.inc_by(carried.a_to_b + carried.b_to_a);
    drop(b_slot);
    shared.record(
        Half {
            started: a_started,
            bytes_sent: carried.a_to_b,
        },
        Some(Half {
            started: b_started,
            bytes_sent: carried.b_to_a,
        }),
        Mood::Happy,
    );
}
