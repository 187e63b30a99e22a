//! Connection racing (docs/protocol.md §4.4), the tokio driver of
//! [`wormhole_proto::transit::race::Race`]: our listener, the dials, and the steps that run on
//! each socket ([`steps`]). Every decision — what to dial and when, which connection wins, when
//! to give up (including the fast [`TransitError::KeyMismatch`]) — is the machine's; this module
//! performs its actions, reports what happened and sleeps until its next timer.
//!
//! Must not: decide anything about the race itself. The handshake bytes (and telling a key
//! mismatch from noise) live in [`steps`].
//!
//! Works with wormhole-william's fixed roles (its sender only listens and uses a relay; its
//! receiver only dials and sends no hints) and with wormhole-rs (no `nevermind`).

mod steps;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use wormhole_proto::transit::race::{Action, ConnEvent, ConnId, Plan, Race, RaceConfig, RaceError, Route};
use wormhole_proto::transit::{
    DEFAULT_MAX_RECORD, DirectHint, Hint, RelayHint, Role, TransitKeys, TransitMsg, WebSocketHint,
};

use super::TransitError;
use super::addrs::{bind_listener, local_direct_hints};
use super::conn::{ConnectionKind, TransitConnection};
use super::stream::TransitStream;
use crate::net::Dialer;
use steps::{Link, Step};

/// Transit settings.
#[derive(Debug, Clone)]
pub struct TransitConfig {
    /// Our relays (from `--transit-helper`); offered to the peer and dialled.
    pub relays: Vec<DirectHint>,
    /// WebSocket endpoints (`ws://`, `wss://`) of our relay, offered inside the first relay hint
    /// (or one of their own when there is no TCP relay) and dialled only after every TCP relay
    /// attempt failed or one relay group later (docs/network.md).
    pub relay_websockets: Vec<WebSocketHint>,
    /// More trusted certificates (PEM) for `wss://` relay endpoints, besides the platform's.
    pub extra_ca_file: Option<std::path::PathBuf>,
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
    /// How connections are dialled. Through a proxy (Tor), we neither listen nor advertise
    /// direct hints, whatever `listen` says, and the peer's onion hints are dialled too.
    pub dialer: Dialer,
    /// Once a handshake proved that the peer derived another transit key, how long the attempts
    /// still running (relays waiting to be paired, slow dials) may go on before
    /// [`TransitError::KeyMismatch`] is returned (10 s). Without such proof nothing changes.
    pub key_mismatch_grace: Duration,
}

impl Default for TransitConfig {
    fn default() -> Self {
        TransitConfig {
            relays: Vec::new(),
            relay_websockets: Vec::new(),
            extra_ca_file: None,
            listen: true,
            dial_direct: true,
            relay_delay: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(120),
            max_record: DEFAULT_MAX_RECORD,
            max_direct_dials: 50,
            advertise: None,
            key_mismatch_grace: Duration::from_secs(10),
            dialer: Dialer::Direct,
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

impl Transit {
    /// Create our side: binds the listener (unless `config.listen` is off) and builds our hints.
    pub fn new(role: Role, config: TransitConfig) -> Result<Transit, TransitError> {
        let mut side = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut side);
        let mut hints = Vec::new();
        let listener = if config.listen && !config.dialer.is_proxied() {
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
        let first_relay = hints.len();
        for r in &config.relays {
            hints.push(Hint::Relay(RelayHint {
                tcp: vec![r.clone()],
                ..RelayHint::default()
            }));
        }
        if !config.relay_websockets.is_empty() {
            match hints.get_mut(first_relay) {
                Some(Hint::Relay(r)) => r.websocket = config.relay_websockets.clone(),
                _ => hints.push(Hint::Relay(RelayHint {
                    websocket: config.relay_websockets.clone(),
                    ..RelayHint::default()
                })),
            }
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
        let cfg = &self.config;
        let race_cfg = RaceConfig {
            role: self.role.into(),
            listening: self.listener.is_some(),
            relay_delay: cfg.relay_delay,
            handshake_timeout: cfg.handshake_timeout,
            overall_timeout: Some(cfg.connect_timeout),
            key_mismatch_grace: cfg.key_mismatch_grace,
            max_inbound: MAX_INBOUND,
            send_nevermind: true,
        };
        let plan = match cfg.dialer.is_proxied() {
            true => Plan::transit_via_tor(&cfg.relays, peer, cfg.max_direct_dials),
            false => Plan::transit(&cfg.relays, peer, cfg.dial_direct, cfg.max_direct_dials),
        }
        .with_websockets(&cfg.relay_websockets, peer);
        let keys = Arc::new(TransitKeys::new(transit_key));
        let racer = Racer {
            race: Race::new(race_cfg, plan, now()),
            role: self.role,
            relay_request: Arc::new(keys.relay_request(&self.side)),
            keys,
            dialer: Arc::new(cfg.dialer.clone()),
            extra_ca_file: cfg.extra_ca_file.clone(),
            max_record: cfg.max_record,
            steps: JoinSet::new(),
            running: HashMap::new(),
            parked: HashMap::new(),
            meta: HashMap::new(),
        };
        racer.run(self.listener).await
    }
}

/// At most this many inbound connections negotiate at once.
const MAX_INBOUND: usize = 32;

/// The machine's clock, read from tokio's (so paused test time works too).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The tokio side of one race: the machine, the steps running on sockets, and the sockets
/// parked between steps.
struct Racer {
    race: Race,
    role: Role,
    keys: Arc<TransitKeys>,
    relay_request: Arc<Vec<u8>>,
    dialer: Arc<Dialer>,
    extra_ca_file: Option<std::path::PathBuf>,
    max_record: usize,
    steps: JoinSet<(ConnId, Step)>,
    /// The step running on each connection (aborted when the machine closes it).
    running: HashMap<ConnId, AbortHandle>,
    /// Connections between two steps.
    parked: HashMap<ConnId, Link>,
    /// How each connection was made and to whom (for the winner).
    meta: HashMap<ConnId, (ConnectionKind, String)>,
}

type Outcome = Result<TransitConnection, TransitError>;

impl Racer {
    async fn run(mut self, listener: Option<TcpListener>) -> Outcome {
        loop {
            while let Some(action) = self.race.poll_action() {
                if let Some(outcome) = self.perform(action) {
                    return outcome;
                }
            }
            let timer = self.race.poll_timeout();
            tokio::select! {
                acc = accept(listener.as_ref()) => {
                    if let Ok((stream, addr)) = acc {
                        self.accepted(stream, addr);
                    }
                }
                Some(done) = self.steps.join_next(), if !self.steps.is_empty() => {
                    if let Ok((id, step)) = done {
                        self.step_done(id, step);
                    }
                }
                () = sleep_until(timer) => self.race.handle_timeout(now()),
            }
        }
    }

    /// Do what the machine says; the race's result once it is decided.
    fn perform(&mut self, action: Action) -> Option<Outcome> {
        match action {
            Action::Dial { id, route, target } => self.dial(id, route, target),
            Action::DialWebSocket { id, target } => {
                self.meta.insert(id, (ConnectionKind::Relay, target.url.clone()));
                let step =
                    steps::dial_relay_websocket(target, self.dialer.clone(), self.extra_ca_file.clone());
                self.spawn(id, step);
            }
            Action::Handshake(id) => {
                let (role, keys) = (self.role, self.keys.clone());
                let relay = (self.meta.get(&id).map(|m| m.0) == Some(ConnectionKind::Relay))
                    .then(|| self.relay_request.clone());
                self.next_step(id, move |link| steps::handshake(link, role, keys, relay));
            }
            Action::AwaitGo(id) => self.next_step(id, steps::await_go),
            Action::SendGo(id) => self.next_step(id, steps::send_go),
            Action::SendNevermind(id) => {
                if let Some(link) = self.parked.remove(&id) {
                    tokio::spawn(steps::send_nevermind(link));
                }
            }
            Action::Close(id) => {
                if let Some(h) = self.running.remove(&id) {
                    h.abort();
                }
                self.parked.remove(&id);
                self.meta.remove(&id);
            }
            Action::Winner(id) => return Some(self.winner(id)),
            Action::Fail(e) => return Some(Err(race_error(e))),
        }
        None
    }

    fn dial(&mut self, id: ConnId, route: Route, target: DirectHint) {
        let kind = match route {
            Route::Relay => ConnectionKind::Relay,
            _ => ConnectionKind::DirectOutbound,
        };
        let addr = format!("{}:{}", target.hostname, target.port);
        self.meta.insert(id, (kind, addr));
        self.spawn(id, steps::dial(target, self.dialer.clone()));
    }

    fn accepted(&mut self, stream: TcpStream, addr: SocketAddr) {
        let label = format!("{}:{}", addr.ip().to_canonical(), addr.port());
        if let Some(id) = self.race.accepted(now(), label) {
            self.meta
                .insert(id, (ConnectionKind::DirectInbound, addr.to_string()));
            self.parked.insert(id, Link::new(TransitStream::Tcp(stream)));
        }
    }

    /// Run the next step on a parked connection.
    fn next_step<F, Fut>(&mut self, id: ConnId, step: F)
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = Step> + Send + 'static,
    {
        match self.parked.remove(&id) {
            Some(link) => self.spawn(id, step(link)),
            None => self
                .race
                .handle(now(), id, ConnEvent::Failed("connection lost".into())),
        }
    }

    fn spawn(&mut self, id: ConnId, step: impl Future<Output = Step> + Send + 'static) {
        let h = self.steps.spawn(async move { (id, step.await) });
        self.running.insert(id, h);
    }

    /// A step ended: park the connection if it lives on, and tell the machine.
    fn step_done(&mut self, id: ConnId, step: Step) {
        if self.running.remove(&id).is_none() {
            return; // closed meanwhile
        }
        let (event, link) = step.into_event();
        if let Some(link) = link {
            self.parked.insert(id, link);
        }
        self.race.handle(now(), id, event);
    }

    fn winner(&mut self, id: ConnId) -> Outcome {
        let (Some(link), Some((kind, peer))) = (self.parked.remove(&id), self.meta.remove(&id)) else {
            return Err(TransitError::NoConnection(
                "the winning connection was lost".into(),
            ));
        };
        Ok(TransitConnection::new(
            link.stream,
            link.pending,
            self.role,
            &self.keys,
            self.max_record,
            kind,
            peer,
        ))
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn race_error(e: RaceError) -> TransitError {
    match e {
        RaceError::KeyMismatch(on) => TransitError::KeyMismatch(on.join(", ")),
        RaceError::TimedOut(after) => TransitError::ConnectTimeout(after.as_secs()),
        RaceError::NoConnection(why) if why.is_empty() => {
            TransitError::NoConnection("no usable hints".into())
        }
        RaceError::NoConnection(why) => TransitError::NoConnection(why.join("; ")),
        other => TransitError::NoConnection(other.to_string()),
    }
}
