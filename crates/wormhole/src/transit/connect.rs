//! Connection racing (docs/protocol.md §4.4): our listener, one dial per peer direct hint (all at
//! once), relays (ours ∪ the peer's) by priority group after a delay when direct hints exist,
//! each connection negotiated independently; the Sender takes the first to finish and writes
//! `go\n` (`nevermind\n` to the others), the Receiver takes the one that gets `go\n`.
//!
//! Fails fast when the keys differ: a peer handshake that differs only in its key-derived part
//! proves the peer derived another transit key, and once every dial has failed and such proof
//! exists (or a short grace period after it has passed), nothing left can succeed, so
//! [`TransitError::KeyMismatch`] is returned instead of waiting on the listener until the
//! overall timeout. The Receiver still writes its handshake after seeing a mismatched one, so
//! the Sender sees the mismatch too.
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
    DEFAULT_MAX_RECORD, DirectHint, Expect, ExpectError, ExpectProgress, Hint, RelayHint, Role, TransitKeys,
    TransitMsg,
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
    /// Once a handshake proved that the peer derived another transit key, how long the attempts
    /// still running (relays waiting to be paired, slow dials) may go on before
    /// [`TransitError::KeyMismatch`] is returned (10 s). Without such proof nothing changes.
    pub key_mismatch_grace: Duration,
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
            key_mismatch_grace: Duration::from_secs(10),
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
        let (tx, mut rx) = mpsc::channel::<Report>(16);
        // Our dials (direct hints and relays): each ends with its failure, or Ok once its
        // negotiated connection is on the channel.
        let mut outbound: JoinSet<Result<(), Failure>> = JoinSet::new();
        let mut listening: Option<AbortOnDrop> = None;

        if let Some(listener) = self.listener {
            let (tx, keys) = (tx.clone(), keys.clone());
            let t = cfg.handshake_timeout;
            listening = Some(AbortOnDrop(tokio::spawn(async move {
                let mut inbound = JoinSet::new();
                loop {
                    tokio::select! {
                        acc = listener.accept() => {
                            let Ok((stream, addr)) = acc else { continue };
                            if inbound.len() >= 32 { continue; }
                            let (tx, keys) = (tx.clone(), keys.clone());
                            inbound.spawn(async move {
                                let fut = negotiate(stream, role, &keys, None);
                                let report = match tokio::time::timeout(t, fut).await {
                                    Ok(Ok(n)) => Report::Connected(n.into_candidate(ConnectionKind::DirectInbound, addr.to_string())),
                                    // Only a wrong key is worth reporting: anything else that
                                    // dials our port (scanners, stale peers) is noise.
                                    Ok(Err(Failure::KeyMismatch(_))) => Report::Mismatch(format!("from {}:{}", addr.ip().to_canonical(), addr.port())),
                                    _ => return,
                                };
                                let _ = tx.send(report).await;
                            });
                        }
                        Some(_) = inbound.join_next(), if !inbound.is_empty() => {}
                    }
                }
            })));
        }

        let direct: Vec<&DirectHint> = if cfg.dial_direct {
            peer.direct_hints().take(cfg.max_direct_dials).collect()
        } else {
            Vec::new()
        };
        for h in &direct {
            let (tx, keys) = (tx.clone(), keys.clone());
            let (host, port, t) = (h.hostname.clone(), h.port, cfg.handshake_timeout);
            outbound.spawn(async move {
                let addr = format!("{host}:{port}");
                let fut = async {
                    let stream = TcpStream::connect((host.as_str(), port))
                        .await
                        .map_err(|e| Failure::Other(e.to_string()))?;
                    let _ = stream.set_nodelay(true);
                    negotiate(stream, role, &keys, None).await
                };
                let done = tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| Failure::Other(format!("{addr}: timed out")))?;
                let n = done.map_err(|f| f.context(&format!("to {addr}")))?;
                let _ = tx
                    .send(Report::Connected(
                        n.into_candidate(ConnectionKind::DirectOutbound, addr),
                    ))
                    .await;
                Ok(())
            });
        }

        for (r, delay) in relay_schedule(&cfg.relays, peer, !direct.is_empty(), cfg.relay_delay) {
            let (tx, keys) = (tx.clone(), keys.clone());
            let request = keys.relay_request(&self.side);
            let t = cfg.handshake_timeout;
            outbound.spawn(async move {
                tokio::time::sleep(delay).await;
                let addr = format!("{}:{}", r.hostname, r.port);
                let fut = async {
                    let stream = TcpStream::connect((r.hostname.as_str(), r.port))
                        .await
                        .map_err(|e| Failure::Other(e.to_string()))?;
                    let _ = stream.set_nodelay(true);
                    negotiate(stream, role, &keys, Some(&request)).await
                };
                let done = tokio::time::timeout(t, fut)
                    .await
                    .map_err(|_| Failure::Other(format!("relay {addr}: timed out")))?;
                let n = done.map_err(|f| f.context(&format!("via relay {addr}")))?;
                let _ = tx
                    .send(Report::Connected(n.into_candidate(ConnectionKind::Relay, addr)))
                    .await;
                Ok(())
            });
        }
        drop(tx);

        let mut errors: Vec<String> = Vec::new();
        let mut mismatches: Vec<String> = Vec::new();
        // Set by the first proof of a different key: the remaining candidates get this long.
        let mut give_up_at: Option<tokio::time::Instant> = None;
        let winner = loop {
            let report = if !mismatches.is_empty() && outbound.is_empty() {
                // Every dial has failed and a handshake proved the keys differ, so no inbound
                // connection can succeed either; only one that already finished still wins.
                match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => return Err(key_mismatch(&mismatches)),
                }
            } else {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => r,
                        None => {
                            while let Some(j) = outbound.join_next().await {
                                note(j, &mut errors, &mut mismatches);
                            }
                            if mismatches.is_empty() {
                                return Err(no_connection(&errors));
                            }
                            return Err(key_mismatch(&mismatches));
                        }
                    },
                    Some(j) = outbound.join_next(), if !outbound.is_empty() => {
                        note(j, &mut errors, &mut mismatches);
                        if !mismatches.is_empty() && give_up_at.is_none() {
                            give_up_at = Some(tokio::time::Instant::now() + cfg.key_mismatch_grace);
                        }
                        continue;
                    }
                    () = sleep_until_opt(give_up_at) => return Err(key_mismatch(&mismatches)),
                }
            };
            match report {
                Report::Connected(mut c) => {
                    if role == Role::Sender && c.stream.write_all(GO).await.is_err() {
                        errors.push(format!("{}: closed before go", c.peer));
                        continue;
                    }
                    break c;
                }
                Report::Mismatch(m) => {
                    push_bounded(&mut mismatches, m);
                    if give_up_at.is_none() {
                        give_up_at = Some(tokio::time::Instant::now() + cfg.key_mismatch_grace);
                    }
                }
            }
        };
        if role == Role::Sender {
            // Tell connections that already finished their handshake that they lost.
            while let Ok(r) = rx.try_recv() {
                if let Report::Connected(mut c) = r {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), c.stream.write_all(NEVERMIND)).await;
                }
            }
        }
        outbound.abort_all();
        drop(listening);
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

/// What a connection attempt tells the racing loop.
enum Report {
    /// A connection finished its handshake (and, for the Receiver, got `go`).
    Connected(Candidate),
    /// An inbound connection sent a handshake made with another transit key.
    Mismatch(String),
}

/// Why one connection attempt failed.
#[derive(Debug)]
enum Failure {
    /// The peer's handshake matched ours up to the key-derived part and differed there: it was
    /// made with another transit key. Says on which connection (`to …`, `from …`).
    KeyMismatch(String),
    /// Anything else (refused, closed, timed out, not a transit peer).
    Other(String),
}

impl Failure {
    /// Name the connection (`to HOST:PORT`, `via relay HOST:PORT`).
    fn context(self, what: &str) -> Failure {
        match self {
            Failure::KeyMismatch(_) => Failure::KeyMismatch(what.to_owned()),
            Failure::Other(m) => Failure::Other(format!("{what}: {m}")),
        }
    }
}

/// Stops the listener task when the race ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keep at most a few failure details (a peer may advertise many hints).
fn push_bounded(v: &mut Vec<String>, m: String) {
    if v.len() < 8 {
        v.push(m);
    }
}

fn note(
    j: Result<Result<(), Failure>, tokio::task::JoinError>,
    errors: &mut Vec<String>,
    mismatches: &mut Vec<String>,
) {
    match j {
        Ok(Err(Failure::KeyMismatch(m))) => push_bounded(mismatches, m),
        Ok(Err(Failure::Other(e))) => push_bounded(errors, e),
        Ok(Ok(())) | Err(_) => {}
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn key_mismatch(details: &[String]) -> TransitError {
    TransitError::KeyMismatch(details.join(", "))
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

/// Why [`expect`] stopped.
enum ExpectFail {
    /// A byte differed from the expected string.
    Mismatch(ExpectError),
    /// The connection failed or closed first.
    Io(String),
}

/// Read until `expect` is satisfied, starting with bytes already in `pending`; leaves any extra
/// bytes in `pending`.
async fn expect(stream: &mut TcpStream, pending: &mut Vec<u8>, mut e: Expect) -> Result<(), ExpectFail> {
    loop {
        if !pending.is_empty() {
            match e.feed(pending).map_err(ExpectFail::Mismatch)? {
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
            .map_err(|err| ExpectFail::Io(err.to_string()))?;
        if n == 0 {
            return Err(ExpectFail::Io("connection closed during handshake".into()));
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Length of the key-derived hex in a handshake (`transit sender <64 hex> ready\n\n`).
const HANDSHAKE_KEY_HEX: usize = 64;
/// What follows the key-derived hex in a handshake.
const HANDSHAKE_TAIL: &[u8] = b" ready\n\n";

/// Classify a failed `expect` of the peer's handshake `expected`: a first wrong byte inside the
/// key-derived hex (everything before it matched) means the peer derived another transit key.
fn classify_handshake(f: ExpectFail, expected: &[u8]) -> Failure {
    match f {
        ExpectFail::Mismatch(e) => {
            let key_start = expected
                .len()
                .saturating_sub(HANDSHAKE_KEY_HEX + HANDSHAKE_TAIL.len());
            if key_start > 0 && (key_start..key_start + HANDSHAKE_KEY_HEX).contains(&e.offset) {
                Failure::KeyMismatch(String::new())
            } else {
                Failure::Other(format!(
                    "{}: unexpected byte at offset {} (not a transit peer of this role)",
                    e.what, e.offset
                ))
            }
        }
        ExpectFail::Io(m) => Failure::Other(m),
    }
}

fn plain(f: ExpectFail) -> Failure {
    match f {
        ExpectFail::Mismatch(e) => {
            Failure::Other(format!("{}: unexpected byte at offset {}", e.what, e.offset))
        }
        ExpectFail::Io(m) => Failure::Other(m),
    }
}

/// Negotiate one connection: relay request and `ok` (relays only), both handshakes (the Sender's
/// first), and for the Receiver the `go`.
async fn negotiate(
    mut stream: TcpStream,
    role: Role,
    keys: &TransitKeys,
    relay_request: Option<&[u8]>,
) -> Result<Negotiated, Failure> {
    let io = |e: std::io::Error| Failure::Other(e.to_string());
    let mut pending = Vec::new();
    if let Some(req) = relay_request {
        stream.write_all(req).await.map_err(io)?;
        expect(&mut stream, &mut pending, Expect::new("relay ok", RELAY_OK))
            .await
            .map_err(plain)?;
    }
    let theirs = keys.peer_handshake(role);
    let peer_hs = || Expect::new("peer handshake", theirs);
    match role {
        // The Sender writes its handshake at once (receivers such as Go's wait for it first).
        Role::Sender => {
            stream.write_all(keys.our_handshake(role)).await.map_err(io)?;
            expect(&mut stream, &mut pending, peer_hs())
                .await
                .map_err(|f| classify_handshake(f, theirs))?;
        }
        // The Receiver answers only after the Sender's handshake arrived, as Go's receiver does.
        // Senders never wait for the receiver, so this cannot deadlock; and it keeps our reply
        // from being already buffered when wormhole-william's sender reads it, which otherwise
        // triggers a race in that sender that closes its own relay connection.
        Role::Receiver => {
            if let Err(f) = expect(&mut stream, &mut pending, peer_hs()).await {
                let f = classify_handshake(f, theirs);
                if matches!(f, Failure::KeyMismatch(_)) {
                    // Still show ours (as Python's receiver always does), so the Sender sees the
                    // mismatch too and can stop waiting instead of timing out.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        stream.write_all(keys.our_handshake(role)),
                    )
                    .await;
                }
                return Err(f);
            }
            stream.write_all(keys.our_handshake(role)).await.map_err(io)?;
            expect(&mut stream, &mut pending, Expect::new("go", GO))
                .await
                .map_err(plain)?;
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
    fn only_a_difference_in_the_key_part_proves_another_key() {
        let ours = TransitKeys::new(b"one");
        let theirs = TransitKeys::new(b"two");
        let expected = ours.peer_handshake(Role::Receiver);
        let feed = |got: &[u8]| {
            let mut e = Expect::new("peer handshake", expected);
            match e.feed(got) {
                Err(err) => classify_handshake(ExpectFail::Mismatch(err), expected),
                Ok(p) => panic!("no mismatch: {p:?}"),
            }
        };
        assert!(matches!(
            feed(theirs.our_handshake(Role::Sender)),
            Failure::KeyMismatch(_)
        ));
        // Another role's handshake, or something that is not transit at all, proves nothing.
        assert!(matches!(
            feed(theirs.our_handshake(Role::Receiver)),
            Failure::Other(_)
        ));
        assert!(matches!(feed(b"GET / HTTP/1.1\r\n"), Failure::Other(_)));
        assert!(matches!(
            classify_handshake(ExpectFail::Io("closed".into()), expected),
            Failure::Other(_)
        ));
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
