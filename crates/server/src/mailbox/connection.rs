//! One task per TCP connection: HTTP front, then the WebSocket loop.
//!
//! The task parses each inbound frame (TEXT or BINARY) as JSON and forwards it to the engine,
//! writes the engine's replies as TEXT frames, sends WebSocket pings for keepalive, and closes
//! the connection with a reason on oversized frames, idle timeout, or when the engine drops
//! its queue (slow client or shutdown). It holds no protocol state and no big buffers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;

use super::stream::ClientStream;
use super::tls::TlsTerminator;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};
use wormhole_proto::server_msg::{ServerMessage, Welcome, YourAddress};

use super::core::Frame;
use super::engine::{EngineInput, encode, now_secs};
use super::http::{self, Route};
use super::limits::{PerIp, PerIpSlot, RatePerIp, TokenBucket, client_ip};
use super::outbox::Outbox;
use crate::metrics::{MailboxMetrics, Reason};

/// A TLS client must finish its handshake within this long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that accepts none of our data for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest frame text echoed back as `orig` when it is not JSON.
const MAX_ORIG_ECHO: usize = 1000;

/// Settings and counters shared by all connection tasks.
#[derive(Debug)]
pub struct Shared {
    /// The engine's input queue.
    pub engine: tokio::sync::mpsc::Sender<EngineInput>,
    /// Next connection id.
    pub next_id: AtomicU64,
    /// Open connections (HTTP and WebSocket).
    pub open: AtomicUsize,
    /// Most open connections.
    pub max_connections: usize,
    /// Largest accepted message.
    pub max_message_size: usize,
    /// Capacity of each connection's outgoing queue.
    pub out_queue: usize,
    /// Interval between pings.
    pub ping_interval: Duration,
    /// Close after this long without any inbound frame.
    pub idle_timeout: Duration,
    /// Whether the storage is reachable (new WebSockets are refused while it is not).
    pub health: Arc<crate::storage::StorageHealth>,
    /// Close after this long in all (`None`: no limit).
    pub max_lifetime: Option<Duration>,
    /// Commands per second per connection (0: no limit) and the burst allowed.
    pub command_rate: f64,
    /// Commands a connection may send at once before the rate applies.
    pub command_burst: u32,
    /// Open connections per client address.
    pub conns_per_ip: Arc<PerIp>,
    /// New connections per second per client address.
    pub conn_rate_per_ip: RatePerIp,
    /// The origin of the times given to `conn_rate_per_ip`.
    pub started: Instant,
    /// Refusals over the connection rate held back at once, per client address.
    pub held_refusals: Arc<PerIp>,
    /// Count clients under the front end's `X-Real-IP` (`--trust-x-real-ip`).
    pub trust_real_ip: bool,
    /// Connections holding a nameplate (claimed or allocated) per client address.
    pub nameplates_per_ip: Arc<PerIp>,
    /// The metrics.
    pub metrics: MailboxMetrics,
    /// TLS termination (`--tls-cert`/`--tls-key`); `None`: plain `ws://`.
    pub tls: Option<Arc<TlsTerminator>>,
}

/// Decrements the connections gauge when dropped.
struct GaugeGuard<'a>(&'a MailboxMetrics);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

/// Answer a refused WebSocket with a welcome whose `error` every client shows, then close.
async fn refuse_in_welcome(ws: &mut WebSocketStream<ClientStream>, text: String) {
    let welcome = ServerMessage::Welcome {
        welcome: Welcome {
            error: Some(text.clone()),
            ..Welcome::default()
        },
        server_tx: None,
    };
    if let Some(frame) = encode(&welcome, now_secs()) {
        // Queued only: the close below writes both at once.
        let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.feed(Message::text(frame))).await;
    }
    close(ws, CloseCode::Policy, &text).await;
}

/// How long a connection over `--connections-per-second-per-ip` waits for its refusal.
const RATE_REFUSAL_HOLD: Duration = Duration::from_secs(1);

/// The refusal's text for a connection over `--connections-per-second-per-ip`.
fn over_rate_text(shared: &Shared) -> String {
    format!(
        "too many new connections from your address (at most {} per second); wait a little and try again",
        shared.conn_rate_per_ip.rate()
    )
}

/// Refuse a WebSocket over its address's connection rate in the welcome, after holding it for
/// [`RATE_REFUSAL_HOLD`] (`held` counts it among its address's held refusals): a client that
/// reconnects as soon as it is refused then costs the server one connection per second per held
/// slot. Past those slots, `handshake` answers `429` before the upgrade.
async fn refuse_over_rate(mut ws: WebSocketStream<ClientStream>, held: PerIpSlot, shared: &Shared) {
    tokio::time::sleep(RATE_REFUSAL_HOLD).await;
    drop(held);
    refuse_in_welcome(&mut ws, over_rate_text(shared)).await;
}

/// An `error` frame answering `orig`.
fn error_frame(text: &str, orig: serde_json::Value) -> Option<String> {
    let msg = ServerMessage::Error {
        error: text.to_owned(),
        orig,
        server_tx: None,
    };
    encode(&msg, now_secs())
}

/// The `type` of a JSON command, if it has one.
fn command_type(frame: &Frame) -> Option<&str> {
    match frame {
        Frame::Json(v) => v.get("type").and_then(|t| t.as_str()),
        Frame::Invalid { .. } => None,
    }
}

fn frame_value(frame: &Frame) -> serde_json::Value {
    match frame {
        Frame::Json(v) => v.clone(),
        Frame::Invalid { orig, .. } => serde_json::Value::String(orig.clone()),
    }
}

/// Decrements the open-connection count when dropped.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn ws_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(4096)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The address to report in the welcome: `X-Real-IP`/`X-Real-Port` if a front end set them,
/// else the socket peer with IPv4-mapped IPv6 folded to IPv4.
pub fn your_address(peer: SocketAddr, real_ip: Option<&str>, real_port: Option<&str>) -> YourAddress {
    if let Some(host) = real_ip {
        let port = real_port.and_then(|p| p.parse().ok()).unwrap_or(peer.port());
        let host = host.chars().take(64).collect::<String>();
        return if host.contains(':') {
            YourAddress {
                port,
                ipv4: None,
                ipv6: Some(host),
            }
        } else {
            YourAddress {
                port,
                ipv4: Some(host),
                ipv6: None,
            }
        };
    }
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => YourAddress {
            port: peer.port(),
            ipv4: Some(v4.to_string()),
            ipv6: None,
        },
        IpAddr::V6(v6) => YourAddress {
            port: peer.port(),
            ipv4: None,
            ipv6: Some(v6.to_string()),
        },
    }
}

/// Parse an inbound data frame.
fn parse_frame(bytes: &[u8]) -> Frame {
    match serde_json::from_slice(bytes) {
        Ok(v) => Frame::Json(v),
        Err(e) => Frame::Invalid {
            error: e.to_string(),
            orig: String::from_utf8_lossy(bytes)
                .chars()
                .take(MAX_ORIG_ECHO)
                .collect(),
        },
    }
}

/// Serve one accepted TCP connection to the end.
pub async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _guard = OpenGuard(shared.clone());
    // The HTTP phase is boxed so its buffers and futures are freed once the WebSocket is up,
    // keeping the long-lived part of this task small.
    let Some(Upgraded {
        mut ws,
        address,
        ip,
        over_rate,
    }) = Box::pin(handshake(stream, peer, &shared)).await
    else {
        return;
    };
    if let Some(held) = over_rate {
        // Boxed: the held refusal's timer must not grow every connection's task.
        Box::pin(refuse_over_rate(ws, held, &shared)).await;
        return;
    }
    let Some(_ip_slot) = shared.conns_per_ip.acquire(ip) else {
        shared.metrics.reject(Reason::ConnectionsPerIp);
        let text = format!(
            "too many connections from your address (at most {}); close some and try again",
            shared.conns_per_ip.limit()
        );
        refuse_in_welcome(&mut ws, text).await;
        return;
    };
    shared.metrics.connections.inc();
    shared.metrics.connections_opened.inc();
    let _gauge = GaugeGuard(&shared.metrics);
    let conn = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let outbox = Arc::new(Outbox::new(shared.out_queue));
    let connected = EngineInput::Connected {
        conn,
        address,
        out: outbox.clone(),
    };
    if shared.engine.send(connected).await.is_err() {
        return;
    }
    websocket_loop(ws, conn, ip, &outbox, &shared).await;
    let _ = shared.engine.send(EngineInput::Disconnected { conn }).await;
}

/// A connection upgraded to a WebSocket.
struct Upgraded {
    ws: WebSocketStream<ClientStream>,
    /// The welcome's `your-address`.
    address: YourAddress,
    /// The address the per-address limits count it under.
    ip: IpAddr,
    /// Over `--connections-per-second-per-ip`: to be refused in the welcome after the hold
    /// (this slot counts the refusals held for its address).
    over_rate: Option<PerIpSlot>,
}

/// The address the per-address limits count a client under: the socket peer, or with
/// `--trust-x-real-ip` the front end's `X-Real-IP` when it parses as an address.
pub fn limit_ip(peer: SocketAddr, real_ip: Option<&str>, trust_real_ip: bool) -> IpAddr {
    let header = real_ip
        .filter(|_| trust_real_ip)
        .and_then(|h| h.trim().parse::<IpAddr>().ok());
    client_ip(header.unwrap_or(peer.ip()))
}

/// Read the request; answer plain HTTP requests; upgrade `/v1` to a WebSocket. A connection over
/// its address's connection rate is upgraded only while [`Shared::held_refusals`] has room (to
/// be refused in the welcome); beyond that it gets a plain `429` at once, the cheapest refusal.
async fn handshake(tcp: TcpStream, peer: SocketAddr, shared: &Shared) -> Option<Upgraded> {
    let over_limit = shared.open.fetch_add(1, Ordering::Relaxed) >= shared.max_connections;
    let _ = tcp.set_nodelay(true);
    let mut stream = match &shared.tls {
        None => ClientStream::Plain(tcp),
        // Over the limit, a TLS client is not worth a handshake: it is just closed.
        Some(_) if over_limit => return None,
        Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(tcp)).await {
            Ok(Ok(s)) => ClientStream::Tls(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake with {peer} failed: {e}");
                return None;
            }
            Err(_) => return None,
        },
    };
    if over_limit {
        http::respond(
            &mut stream,
            "503 Service Unavailable",
            "too many connections\n",
            false,
        )
        .await;
        return None;
    }
    let Ok((head, rest)) = http::read_head(&mut stream).await else {
        http::respond(&mut stream, "400 Bad Request", "bad request\n", false).await;
        return None;
    };
    let Some(req) = http::parse_head(&head) else {
        http::respond(&mut stream, "400 Bad Request", "bad request\n", false).await;
        return None;
    };
    let accept = match http::route(&req) {
        // The root page doubles as the load balancer's health check: 503 without a database.
        Route::Root if !shared.health.ready() => {
            let body = "Wormhole Relay: database unavailable\n";
            http::respond(&mut stream, "503 Service Unavailable", body, req.method == "HEAD").await;
            return None;
        }
        Route::Root => {
            http::respond(&mut stream, "200 OK", "Wormhole Relay\n", req.method == "HEAD").await;
            return None;
        }
        Route::Refuse(status, body) => {
            http::respond(&mut stream, status, body, false).await;
            return None;
        }
        Route::Upgrade(_) if !shared.health.ready() => {
            tracing::warn!("refusing a client: the database is unreachable");
            let body = "mailbox database unavailable, try another server or later\n";
            http::respond(&mut stream, "503 Service Unavailable", body, false).await;
            return None;
        }
        Route::Upgrade(accept) => accept,
    };
    let address = your_address(peer, req.header("x-real-ip"), req.header("x-real-port"));
    let ip = limit_ip(peer, req.header("x-real-ip"), shared.trust_real_ip);
    let mut over_rate = None;
    if !shared.conn_rate_per_ip.take(ip, shared.started.elapsed()) {
        shared.metrics.reject(Reason::ConnectionRate);
        match shared.held_refusals.acquire(ip) {
            Some(slot) => over_rate = Some(slot),
            None => {
                let body = format!("{}\n", over_rate_text(shared));
                http::respond(&mut stream, "429 Too Many Requests", &body, false).await;
                return None;
            }
        }
    }
    http::accept_upgrade(&mut stream, &accept).await.ok()?;
    let ws = WebSocketStream::from_partially_read(
        stream,
        rest,
        Role::Server,
        Some(ws_config(shared.max_message_size)),
    )
    .await;
    Some(Upgraded {
        ws,
        address,
        ip,
        over_rate,
    })
}

async fn close(ws: &mut WebSocketStream<ClientStream>, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // A peer that does not read cannot make us wait for long.
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
}

/// What the limits say about one inbound command.
enum Verdict {
    /// Hand it to the engine.
    Pass,
    /// Refused with this `error` text; the connection stays.
    Refuse(Reason, String),
    /// Refused too often in a row: close with this reason.
    Close(String),
}

/// A connection refused more than this many commands in a row (or more than its burst, if
/// smaller) is closed: a client that keeps sending after that is not listening.
const MAX_REFUSED_IN_ROW: u32 = 10;

/// The limits of one connection (see `limits.rs`).
struct ConnLimits {
    started: Instant,
    bucket: TokenBucket,
    refused_in_row: u32,
    ip: std::net::IpAddr,
    nameplate: Option<PerIpSlot>,
}

impl ConnLimits {
    fn new(shared: &Shared, ip: std::net::IpAddr) -> Self {
        ConnLimits {
            started: Instant::now(),
            bucket: TokenBucket::new(shared.command_rate, shared.command_burst),
            refused_in_row: 0,
            ip,
            nameplate: None,
        }
    }

    fn judge(&mut self, frame: &Frame, shared: &Shared) -> Verdict {
        if !self.bucket.take(self.started.elapsed()) {
            self.refused_in_row += 1;
            if self.refused_in_row > shared.command_burst.min(MAX_REFUSED_IN_ROW) {
                return Verdict::Close(format!(
                    "too many commands: more than {} per second, refused {} in a row",
                    shared.command_rate, self.refused_in_row
                ));
            }
            let text = format!(
                "too many commands: at most {} per second (burst {}); this one was dropped",
                shared.command_rate, shared.command_burst
            );
            return Verdict::Refuse(Reason::CommandRate, text);
        }
        self.refused_in_row = 0;
        if matches!(command_type(frame), Some("claim" | "allocate")) && self.nameplate.is_none() {
            match shared.nameplates_per_ip.acquire(self.ip) {
                Some(slot) => self.nameplate = Some(slot),
                None => {
                    let text = format!(
                        "too many nameplates in use from your address (at most {}); \
                         finish or close other wormholes first",
                        shared.nameplates_per_ip.limit()
                    );
                    return Verdict::Refuse(Reason::NameplatesPerIp, text);
                }
            }
        }
        Verdict::Pass
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn websocket_loop(
    mut ws: WebSocketStream<ClientStream>,
    conn: u64,
    ip: std::net::IpAddr,
    outbox: &Outbox,
    shared: &Shared,
) {
    let mut last_rx = Instant::now();
    let mut limits = ConnLimits::new(shared, ip);
    // One timer for the connection's lifetime, re-armed after each ping.
    let ping_timer = tokio::time::sleep_until(last_rx + shared.ping_interval);
    tokio::pin!(ping_timer);
    let end_of_life = sleep_opt(shared.max_lifetime.map(|d| last_rx + d));
    tokio::pin!(end_of_life);
    loop {
        tokio::select! {
            out = outbox.take() => {
                let Some(frames) = out else {
                    close(&mut ws, CloseCode::Policy,
                        "server closed the connection (client too slow, or shutting down)").await;
                    return;
                };
                let write = async {
                    for text in frames {
                        ws.feed(Message::Text(text)).await?;
                    }
                    ws.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::debug!("connection {conn}: not reading, dropped");
                        return;
                    }
                }
            }
            inbound = ws.next() => {
                last_rx = Instant::now();
                let frame = match inbound {
                    None => {
                        tracing::trace!("connection {conn}: closed by peer");
                        return;
                    }
                    Some(Ok(Message::Text(t))) => parse_frame(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => parse_frame(&b),
                    Some(Ok(Message::Ping(_))) => {
                        // The pong is queued by tungstenite; push it out now.
                        if ws.flush().await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Close(_))) => continue, // the reply close is automatic
                    Some(Err(WsError::Capacity(e))) => {
                        let reason = match e {
                            CapacityError::MessageTooLong { size, max_size } =>
                                format!("message too big: {size} bytes, at most {max_size}"),
                            other => other.to_string(),
                        };
                        tracing::debug!("connection {conn}: {reason}");
                        shared.metrics.reject(Reason::MessageSize);
                        if let Some(text) = error_frame(&reason, serde_json::Value::Null) {
                            let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.send(Message::text(text))).await;
                        }
                        close(&mut ws, CloseCode::Size, &reason).await;
                        return;
                    }
                    Some(Err(WsError::Protocol(e))) => {
                        close(&mut ws, CloseCode::Protocol, &e.to_string()).await;
                        return;
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        close(&mut ws, CloseCode::Invalid, "text frame is not UTF-8").await;
                        return;
                    }
                    Some(Err(e)) => {
                        tracing::trace!("connection {conn}: read error {e}");
                        return;
                    }
                };
                tracing::trace!("connection {conn}: in {frame:?}");
                match limits.judge(&frame, shared) {
                    Verdict::Pass => {}
                    Verdict::Refuse(reason, text) => {
                        shared.metrics.reject(reason);
                        let Some(reply) = error_frame(&text, frame_value(&frame)) else { continue };
                        let send = ws.send(Message::text(reply));
                        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, send).await, Ok(Ok(()))) {
                            return;
                        }
                        continue;
                    }
                    Verdict::Close(text) => {
                        shared.metrics.reject(Reason::CommandRate);
                        close(&mut ws, CloseCode::Policy, &text).await;
                        return;
                    }
                }
                shared.metrics.commands.inc();
                if shared.engine.send(EngineInput::Frame { conn, frame }).await.is_err() {
                    close(&mut ws, CloseCode::Away, "server shutting down").await;
                    return;
                }
            }
            () = &mut end_of_life => {
                shared.metrics.reject(Reason::Lifetime);
                let secs = shared.max_lifetime.map(|d| d.as_secs()).unwrap_or(0);
                let text = format!("connection lifetime limit reached ({secs} s); reconnect to go on");
                close(&mut ws, CloseCode::Away, &text).await;
                return;
            }
            () = &mut ping_timer => {
                if last_rx.elapsed() >= shared.idle_timeout {
                    shared.metrics.reject(Reason::Idle);
                    close(&mut ws, CloseCode::Away, "idle timeout").await;
                    return;
                }
                ping_timer.as_mut().reset(Instant::now() + shared.ping_interval);
                let ping = ws.send(Message::Ping(Default::default()));
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, ping).await, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = your_address(
            "[::ffff:127.0.0.1]:5".parse().unwrap_or_else(|_| unreachable!()),
            None,
            None,
        );
        assert_eq!(a.ipv4.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.port, 5);
        let a = your_address("[::1]:6".parse().unwrap_or_else(|_| unreachable!()), None, None);
        assert_eq!(a.ipv6.as_deref(), Some("::1"));
        let a = your_address(
            "127.0.0.1:7".parse().unwrap_or_else(|_| unreachable!()),
            Some("2600::1"),
            Some("99"),
        );
        assert_eq!((a.ipv6.as_deref(), a.port), (Some("2600::1"), 99));
    }

    #[test]
    fn limit_ip_trusts_the_header_only_when_told() {
        let peer: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(limit_ip(peer, Some("192.0.2.7"), false), v4);
        assert_eq!(limit_ip(peer, None, true), v4);
        assert_eq!(limit_ip(peer, Some("not an ip"), true), v4);
        assert_eq!(
            limit_ip(peer, Some(" 192.0.2.7 "), true),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limit_ip(peer, Some("::ffff:192.0.2.8"), true),
            "192.0.2.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn frames() {
        assert!(matches!(parse_frame(b"{\"type\":\"ping\"}"), Frame::Json(_)));
        assert!(matches!(parse_frame(b"nope"), Frame::Invalid { .. }));
        assert!(matches!(parse_frame(&[0xff; 3]), Frame::Invalid { .. }));
    }
}

#[cfg(test)]
mod size_budget {
    /// Idle connections must stay within ~4 kB of server memory each; the task future is the
    /// biggest part, so guard its size (debug builds are larger than release ones).
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn connection_task_stays_small() {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let shared = std::sync::Arc::new(super::Shared {
            engine: tx,
            next_id: Default::default(),
            open: Default::default(),
            max_connections: 1,
            max_message_size: 1,
            out_queue: 1,
            ping_interval: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            health: Default::default(),
            max_lifetime: None,
            command_rate: 1.0,
            command_burst: 1,
            conns_per_ip: super::PerIp::new(1),
            conn_rate_per_ip: super::RatePerIp::new(1.0, 1),
            started: tokio::time::Instant::now(),
            held_refusals: super::PerIp::new(1),
            trust_real_ip: false,
            nameplates_per_ip: super::PerIp::new(1),
            metrics: Default::default(),
            tls: None,
        });
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        s.set_nonblocking(true).unwrap();
        let s = tokio::net::TcpStream::from_std(s).unwrap();
        let peer = l.local_addr().unwrap();
        let fut = super::serve(s, peer, shared);
        eprintln!("serve future: {} bytes", std::mem::size_of_val(&fut));
        eprintln!(
            "ws stream: {} bytes",
            std::mem::size_of::<tokio_tungstenite::WebSocketStream<super::ClientStream>>()
        );
    }
}
