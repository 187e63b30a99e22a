//! Connection racing (PROTOCOL.md §4.4): our listener, one dial per peer direct hint (all at
//! once), relays (ours ∪ the peer's) by priority group after a delay when direct hints exist,
//! each connection negotiated independently; the Sender takes the first to finish and writes
//! `go\n` (`nevermind\n` to the others), the Receiver takes the one that gets `go\n`.
//!
//! Works with wormhole-william's fixed roles (its sender only listens and uses a relay; its
//! receiver only dials and sends no hints) and with wormhole-rs (no `nevermind`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wormhole_proto::transit::handshake::{GO, NEVERMIND, RELAY_OK};
use wormhole_proto::transit::{
    DEFAULT_MAX_RECORD, DirectHint, Expect, ExpectProgress, Hint, RelayHint, Role, TransitKeys, TransitMsg,
};

use super::TransitError;
use super::addrs::{bind_listener, local_direct_hints};
use super::conn::{ConnectionKind, TransitConnection};

/// Transit settings.
#[derive(Debug, Clone)]
pub struct TransitConfig {
    /// Our relays (from `--transit-helper`); offered to the peer and dialled.
    pub relays: Vec<DirectHint>,
    /// Listen for direct connections and advertise direct hints (`--no-listen` clears it).
    pub listen: bool,
    /// Dial the peer's direct hints (cleared to force the relay in tests).
    pub dial_direct: bool,
    /// Delay before the first relay group when direct hints exist (2 s), and between groups.
    pub relay_delay: Duration,
    /// Per-connection negotiation limit (60 s).
    pub handshake_timeout: Duration,
    /// Whole `connect` limit (120 s).
    pub connect_timeout: Duration,
    /// Largest record plaintext accepted.
    pub max_record: usize,
    /// At most this many peer direct hints are dialled.
    pub max_direct_dials: usize,
    /// Replace the advertised direct hints (tests); `None` = every local address.
    pub advertise: Option<Vec<String>>,
}

impl Default for TransitConfig {
    fn default() -> Self {
        TransitConfig {
            relays: Vec::new(),
            listen: true,
            dial_direct: true,
            relay_delay: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(120),
            max_record: DEFAULT_MAX_RECORD,
            max_direct_dials: 50,
            advertise: None,
        }
    }
}

/// One side of a transit exchange before it is connected.
pub struct Transit {
    role: Role,
    config: TransitConfig,
    listener: Option<TcpListener>,
    hints: Vec<Hint>,
    side: String,
}

struct Candidate {
    stream: TcpStream,
    pending: Vec<u8>,
    kind: ConnectionKind,
    peer: String,
}

impl Transit {
    /// Create our side: binds the listener (unless `config.listen` is off) and builds our hints.
    pub fn new(role: Role, config: TransitConfig) -> Result<Transit, TransitError> {
        let mut side = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut side);
        let mut hints = Vec::new();
        let listener = if config.listen {
            let l = bind_listener()?;
            let port = l.local_addr()?.port();
            match &config.advertise {
                Some(hosts) => hints.extend(hosts.iter().map(|h| {
                    Hint::DirectTcp(DirectHint {
                        hostname: h.clone(),
                        port,
                        priority: 0.0,
                    })
                })),
                None => hints.extend(local_direct_hints(port)),
            }
            Some(l)
        } else {
            None
        };
        for r in &config.relays {
            hints.push(Hint::Relay(RelayHint {
                tcp: vec![r.clone()],
                tor: vec![],
                name: None,
            }));
        }
        Ok(Transit {
            role,
            config,
            listener,
            hints,
            side: hex::encode(side),
        })
    }

    /// Our hints (direct ones first, then relays).
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// Our `transit` message body (both abilities and our hints).
    pub fn message(&self) -> TransitMsg {
        TransitMsg::new(self.hints.clone())
    }

    /// The port we listen on, if any.
    pub fn listen_port(&self) -> Option<u16> {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Race every way of reaching the peer and return the winning connection.
    pub async fn connect(
        self,
        transit_key: &[u8],
        peer: &TransitMsg,
    ) -> Result<TransitConnection, TransitError> {
        let keys = Arc::new(TransitKeys::new(transit_key));
        let limit = self.config.connect_timeout;
        match tokio::time::timeout(limit, self.race(keys, peer)).await {
            Ok(r) => r,
            Err(_) => Err(TransitError::ConnectTimeout(limit.as_secs())),
        }
    }

    async fn race(
        self,
        keys: Arc<TransitKeys>,
        peer: &TransitMsg,
    ) -> Result<TransitConnection, TransitError> {
        let role = self.role;
        let cfg = self.config.clone();
        let (tx, mut rx) = mpsc::channel::<Candidate>(16);
        let mut tasks: JoinSet<Result<(), String>> = JoinSet::new();

        if let Some(listener) = self.listener {
            let (tx, keys) = (tx.clone(), keys.clone());
            let t = cfg.handshake_timeout;
            tasks.spawn(async move {
                let mut inbound = JoinSet::new();
                loop {
                    tokio::select! {
                        acc = listener.accept() => {
                            let Ok((stream, addr)) = acc else { continue };
                            if inbound.len() >= 32 { continue; }
                            let (tx, keys) = (tx.clone(), keys.clone());
                            inbound.spawn(async move {
                                let fut = negotiate(stream, role, &keys, None);
                                if let Ok(Ok(pending)) = tokio::time::timeout(t, fut).await {
                                    let _ = tx.send(pending.into_candidate(ConnectionKind::DirectInbound, addr.to_string())).await;
                                }
                            });
                        }
                        Some(_) = inbound.join_next(), if !inbound.is_empty() => {}
                    }
                }
            });
        }

        let direct: Vec<&DirectHint> = if cfg.dial_direct {
            peer.direct_hints().take(cfg.max_direct_dials).collect()
        } else {
            Vec::new()
        };
        for h in &direct {
            let (tx, keys) = (tx.clone(), keys.clone());
            let (host, port, t) = (h.hostname.clone(), h.port, cfg.handshake_timeout);
            tasks.spawn(async move {
                let addr = format!("{host}:{port}");
                let fut = async {
                    let stream = TcpStream::connect((host.as_str(), port))
                        .await
                        .map_err(|e| e.to_string())?;
                    let _ = stream.set_nodelay(true);
                    negotiate(stream, role, &keys, None).await
                };
                let done = tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| format!("{addr}: timed out"))?;
                let n = done.map_err(|e| format!("{addr}: {e}"))?;
                let _ = tx
                    .send(n.into_candidate(ConnectionKind::DirectOutbound, addr))
                    .await;
                Ok(())
            });
        }

        for (r, delay) in relay_schedule(&cfg.relays, peer, !direct.is_empty(), cfg.relay_delay) {
            let (tx, keys) = (tx.clone(), keys.clone());
            let request = keys.relay_request(&self.side);
            let t = cfg.handshake_timeout;
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let addr = format!("{}:{}", r.hostname, r.port);
                let fut = async {
                    let stream = TcpStream::connect((r.hostname.as_str(), r.port))
                        .await
                        .map_err(|e| e.to_string())?;
                    let _ = stream.set_nodelay(true);
                    negotiate(stream, role, &keys, Some(&request)).await
                };
                let done = tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| format!("relay {addr}: timed out"))?;
                let n = done.map_err(|e| format!("relay {addr}: {e}"))?;
                let _ = tx.send(n.into_candidate(ConnectionKind::Relay, addr)).await;
                Ok(())
            });
        }
        drop(tx);

        let mut errors = Vec::new();
        let winner = loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(mut c) => {
                        if role == Role::Sender && c.stream.write_all(GO).await.is_err() {
                            errors.push(format!("{}: closed before go", c.peer));
                            continue;
                        }
                        break c;
                    }
                    None => {
                        while let Some(j) = tasks.join_next().await {
                            if let Ok(Err(e)) = j { errors.push(e); }
                        }
                        return Err(no_connection(&errors));
                    }
                },
                Some(j) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(Err(e)) = j { errors.push(e); }
                }
            }
        };
        if role == Role::Sender {
            // Tell connections that already finished their handshake that they lost.
            while let Ok(mut c) = rx.try_recv() {
                let _ = tokio::time::timeout(Duration::from_millis(200), c.stream.write_all(NEVERMIND)).await;
            }
        }
        tasks.abort_all();
        let Candidate {
            stream,
            pending,
            kind,
            peer,
        } = winner;
        Ok(TransitConnection::new(
            stream,
            pending,
            role,
            &keys,
            cfg.max_record,
            kind,
            peer,
        ))
    }
}

/// When to dial each relay endpoint: ours ∪ the peer's, deduplicated, grouped by priority (high
/// first); the first group after `delay` when the peer gave usable direct hints (else at once),
/// each further group `delay` later.
fn relay_schedule(
    ours: &[DirectHint],
    peer: &TransitMsg,
    have_direct: bool,
    delay: Duration,
) -> Vec<(DirectHint, Duration)> {
    let mut seen = HashSet::new();
    let mut relays: Vec<DirectHint> = Vec::new();
    for r in ours
        .iter()
        .cloned()
        .chain(peer.relay_hints().flat_map(|r| r.tcp.iter().cloned()))
    {
        if seen.insert((r.hostname.clone(), r.port)) {
            relays.push(r);
        }
    }
    relays.sort_by(|a, b| b.priority.total_cmp(&a.priority));
    let base = if have_direct { delay } else { Duration::ZERO };
    let mut group = 0u32;
    let mut last: Option<f64> = None;
    relays
        .into_iter()
        .map(|r| {
            if last.is_some_and(|p| p != r.priority) {
                group += 1;
            }
            last = Some(r.priority);
            (r, base + delay * group)
        })
        .collect()
}

fn no_connection(errors: &[String]) -> TransitError {
    let detail = if errors.is_empty() {
        "no usable hints".to_owned()
    } else {
        errors.join("; ")
    };
    TransitError::NoConnection(detail)
}

struct Negotiated {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Negotiated {
    fn into_candidate(self, kind: ConnectionKind, peer: String) -> Candidate {
        Candidate {
            stream: self.stream,
            pending: self.pending,
            kind,
            peer,
        }
    }
}

/// Read until `expect` is satisfied, starting with bytes already in `pending`; leaves any extra
/// bytes in `pending`.
async fn expect(stream: &mut TcpStream, pending: &mut Vec<u8>, mut e: Expect) -> Result<(), String> {
    loop {
        if !pending.is_empty() {
            match e.feed(pending).map_err(|err| err.to_string())? {
                ExpectProgress::Done { consumed } => {
                    pending.drain(..consumed);
                    return Ok(());
                }
                ExpectProgress::NeedMore => pending.clear(),
            }
        }
        let mut buf = [0u8; 256];
        let want = e.remaining().min(buf.len());
        // Read no more than the expected bytes, so nothing of the next stage is swallowed early.
        let n = stream
            .read(&mut buf[..want])
            .await
            .map_err(|err| err.to_string())?;
        if n == 0 {
            return Err("connection closed during handshake".into());
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Negotiate one connection: relay request and `ok` (relays only), both handshakes (the Sender's
/// first), and for the Receiver the `go`.
async fn negotiate(
    mut stream: TcpStream,
    role: Role,
    keys: &TransitKeys,
    relay_request: Option<&[u8]>,
) -> Result<Negotiated, String> {
    let mut pending = Vec::new();
    if let Some(req) = relay_request {
        stream.write_all(req).await.map_err(|e| e.to_string())?;
        expect(&mut stream, &mut pending, Expect::new("relay ok", RELAY_OK)).await?;
    }
    let peer_hs = || Expect::new("peer handshake", keys.peer_handshake(role));
    match role {
        // The Sender writes its handshake at once (receivers such as Go's wait for it first).
        Role::Sender => {
            stream
                .write_all(keys.our_handshake(role))
                .await
                .map_err(|e| e.to_string())?;
            expect(&mut stream, &mut pending, peer_hs()).await?;
        }
        // The Receiver answers only after the Sender's handshake arrived, as Go's receiver does.
        // Senders never wait for the receiver, so this cannot deadlock; and it keeps our reply
        // from being already buffered when wormhole-william's sender reads it, which otherwise
        // triggers a race in that sender that closes its own relay connection.
        Role::Receiver => {
            expect(&mut stream, &mut pending, peer_hs()).await?;
            stream
                .write_all(keys.our_handshake(role))
                .await
                .map_err(|e| e.to_string())?;
            expect(&mut stream, &mut pending, Expect::new("go", GO)).await?;
        }
    }
    Ok(Negotiated { stream, pending })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(host: &str, port: u16, priority: f64) -> DirectHint {
        DirectHint {
            hostname: host.into(),
            port,
            priority,
        }
    }

    #[test]
    fn relay_groups_and_delays() {
        let d = Duration::from_secs(2);
        let peer = TransitMsg::new(vec![
            Hint::Relay(RelayHint {
                tcp: vec![h("go-relay", 4001, 2.0), h("mine", 1, 0.0)],
                tor: vec![],
                name: None,
            }),
            Hint::Relay(RelayHint {
                tcp: vec![h("low", 9, -1.0)],
                tor: vec![],
                name: Some("x".into()),
            }),
        ]);
        let s = relay_schedule(&[h("mine", 1, 0.0)], &peer, true, d);
        let got: Vec<(&str, u64)> = s
            .iter()
            .map(|(r, t)| (r.hostname.as_str(), t.as_secs()))
            .collect();
        assert_eq!(got, [("go-relay", 2), ("mine", 4), ("low", 6)]);
        let s = relay_schedule(&[h("mine", 1, 0.0)], &TransitMsg::default(), false, d);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].1, Duration::ZERO, "no direct hints: relay at once");
    }
}
