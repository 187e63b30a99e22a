//! Dilation's connector: our listener (every interface, IPv4 and IPv6, unless `no_listen`), the
//! hints we publish (one `direct-tcp-v1` per address, plus our relays), and the dials. Each
//! round of dials the endpoint asks for (our relays at the start of a generation, the peer's
//! hints, each re-dial) is one sans-IO [`Race`] of the transit code: direct hints at once,
//! relays by priority after the relay delay when there were direct hints, a handshake timeout
//! for each attempt. The endpoint decides which connection wins (the first whose KCM arrives);
//! that connection then completes its race (`go` = the Leader's KCM) and every race ends.
//!
//! Owns: the listening socket, the races, the dialling tasks. Must not: look at the bytes of
//! a connection (the endpoint's L2 machines do) or choose the winner.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use wormhole_proto::dilation::Role;
use wormhole_proto::dilation::endpoint::ConnectionId;
use wormhole_proto::transit::race::{Action, ConnEvent, ConnId, Plan, Race, RaceConfig, RaceRole, Route};
use wormhole_proto::transit::{DirectHint, Hint, RelayHint, TransitMsg, WebSocketHint};

use crate::net::Dialer;
use crate::transit::addrs::{bind_listener, local_direct_hints};
use crate::transit::stream::{TransitStream, dial_websocket};

/// At most this many of the peer's direct hints are dialled per round.
const MAX_DIRECT_DIALS: usize = 32;

/// What the connector's tasks report.
#[derive(Debug)]
pub(crate) enum NetEvent {
    Dialed {
        race: u64,
        id: ConnId,
        result: Result<TransitStream, String>,
    },
    Accepted(tokio::net::TcpStream, SocketAddr),
}

/// What the driver must do for the connector.
#[derive(Debug)]
pub(crate) enum ToDriver {
    /// A stream is up: give it to the endpoint (writing the relay line first for a relay), and
    /// report its [`ConnectionId`] with [`Connector::bind`] when it came from a race.
    NewConnection {
        stream: TransitStream,
        relay: bool,
        owner: Option<(u64, ConnId)>,
    },
    /// A race gave up on this connection (handshake timeout): drop it.
    Drop(ConnectionId),
}

#[derive(Default)]
struct Slot {
    race: Option<Race>,
    dials: HashMap<ConnId, AbortHandle>,
    routes: HashMap<ConnId, Route>,
    streams: HashMap<ConnId, (TransitStream, Route)>,
    conns: HashMap<ConnId, ConnectionId>,
}

/// The connector of one Dilation (it lives across generations; `start` and `stop` bracket one).
pub(crate) struct Connector {
    relays: RelayHint,
    listen: bool,
    dialer: Arc<Dialer>,
    advertise: Option<Vec<String>>,
    relay_delay: Duration,
    handshake_timeout: Duration,
    role: Option<Role>,
    listener: Option<AbortHandle>,
    races: BTreeMap<u64, Slot>,
    owners: HashMap<ConnectionId, (u64, ConnId)>,
    next_race: u64,
    events: mpsc::Sender<NetEvent>,
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Connector {
    pub(crate) fn new(
        relays: RelayHint,
        listen: bool,
        dialer: Dialer,
        advertise: Option<Vec<String>>,
        relay_delay: Duration,
        handshake_timeout: Duration,
        events: mpsc::Sender<NetEvent>,
    ) -> Connector {
        Connector {
            relays,
            listen,
            dialer: Arc::new(dialer),
            advertise,
            relay_delay,
            handshake_timeout,
            role: None,
            listener: None,
            races: BTreeMap::new(),
            owners: HashMap::new(),
            next_race: 0,
            events,
        }
    }

    /// Whether a generation is running.
    pub(crate) fn is_running(&self) -> bool {
        self.role.is_some()
    }

    /// Starts a generation as `role`: listens, dials our relays; returns the hints to publish.
    pub(crate) fn start(&mut self, role: Role, now: Instant) -> Vec<Value> {
        self.stop();
        self.role = Some(role);
        let mut hints = Vec::new();
        if self.listen {
            match bind_listener() {
                Ok(l) => {
                    let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                    match &self.advertise {
                        Some(hosts) => hints.extend(hosts.iter().map(|h| {
                            Hint::DirectTcp(DirectHint {
                                hostname: h.clone(),
                                port,
                                priority: 0.0,
                            })
                        })),
                        None => hints.extend(local_direct_hints(port)),
                    }
                    self.listener = Some(tokio::spawn(accept_loop(l, self.events.clone())).abort_handle());
                }
                Err(e) => tracing::warn!("Dilation: cannot listen for direct connections: {e}"),
            }
        }
        if !self.relays.tcp.is_empty() || !self.relays.websocket.is_empty() {
            hints.push(Hint::Relay(self.relays.clone()));
            let plan = Plan {
                relays: self.relays.tcp.clone(),
                relay_websockets: self.relays.websocket.clone(),
                ..Plan::default()
            };
            self.new_race(plan, now);
        }
        match TransitMsg::new(hints).to_value().get("hints-v1") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        }
    }

    /// Ends the generation: the listener closes and every pending dial is cancelled.
    pub(crate) fn stop(&mut self) {
        self.role = None;
        if let Some(l) = self.listener.take() {
            l.abort();
        }
        self.end_races();
    }

    fn end_races(&mut self) {
        for slot in std::mem::take(&mut self.races).into_values() {
            slot.dials.values().for_each(AbortHandle::abort);
        }
        self.owners.clear();
    }

    /// Dials the peer's hints (hint dicts as it sent them) as one race.
    pub(crate) fn dial(&mut self, hints: Vec<Value>, now: Instant) {
        let Some(msg) = TransitMsg::from_value(&json!({ "hints-v1": hints })) else {
            return;
        };
        let plan = match self.dialer.is_proxied() {
            true => Plan::transit_via_tor(&[], &msg, MAX_DIRECT_DIALS),
            false => Plan::transit(&[], &msg, true, MAX_DIRECT_DIALS),
        }
        .with_websockets(&[], &msg);
        if plan.direct.is_empty() && plan.relays.is_empty() && plan.relay_websockets.is_empty() {
            return;
        }
        self.new_race(plan, now);
    }

    fn new_race(&mut self, plan: Plan, now: Instant) {
        let Some(role) = self.role else { return };
        let cfg = RaceConfig {
            role: match role {
                Role::Leader => RaceRole::Decider,
                Role::Follower => RaceRole::Follower,
            },
            listening: false,
            relay_delay: self.relay_delay,
            handshake_timeout: self.handshake_timeout,
            overall_timeout: None,
            key_mismatch_grace: Duration::from_secs(10),
            max_inbound: 0,
            send_nevermind: false,
        };
        let n = self.next_race;
        self.next_race += 1;
        self.races.insert(
            n,
            Slot {
                race: Some(Race::new(cfg, plan, now)),
                ..Slot::default()
            },
        );
    }

    /// A dial finished.
    pub(crate) fn dialed(
        &mut self,
        race: u64,
        id: ConnId,
        result: Result<TransitStream, String>,
        now: Instant,
    ) {
        let Some(slot) = self.races.get_mut(&race) else {
            return;
        };
        slot.dials.remove(&id);
        let Some(r) = slot.race.as_mut() else { return };
        match result {
            Ok(stream) => {
                let route = slot.routes.get(&id).copied().unwrap_or(Route::Direct);
                slot.streams.insert(id, (stream, route));
                r.handle(now, id, ConnEvent::Dialed);
            }
            Err(why) => r.handle(now, id, ConnEvent::Failed(why)),
        }
    }

    /// The driver numbered a stream a race produced.
    pub(crate) fn bind(&mut self, owner: (u64, ConnId), conn: ConnectionId) {
        if let Some(slot) = self.races.get_mut(&owner.0) {
            slot.conns.insert(owner.1, conn);
            self.owners.insert(conn, owner);
        }
    }

    /// A connection is gone (the endpoint closed or aborted it, or it broke).
    pub(crate) fn ended(&mut self, conn: ConnectionId, why: &str, now: Instant) {
        let Some((race, id)) = self.owners.remove(&conn) else {
            return;
        };
        if let Some(r) = self.races.get_mut(&race).and_then(|s| s.race.as_mut()) {
            r.handle(now, id, ConnEvent::Failed(why.to_owned()));
        }
    }

    /// The endpoint chose `conn`: its race completes; every race ends.
    pub(crate) fn won(&mut self, conn: ConnectionId, now: Instant) {
        if let Some((race, id)) = self.owners.get(&conn).copied()
            && let Some(r) = self.races.get_mut(&race).and_then(|s| s.race.as_mut())
        {
            r.handle(now, id, ConnEvent::HandshakeCompleted);
            while let Some(a) = r.poll_action() {
                match a {
                    Action::SendGo(i) if i == id => r.handle(now, id, ConnEvent::GoSent),
                    Action::AwaitGo(i) if i == id => r.handle(now, id, ConnEvent::GoReceived),
                    Action::Winner(_) => break,
                    _ => {}
                }
            }
        }
        self.end_races();
    }

    /// When [`Connector::handle_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.races
            .values()
            .filter_map(|s| s.race.as_ref().and_then(Race::poll_timeout))
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for slot in self.races.values_mut() {
            if let Some(r) = slot.race.as_mut() {
                r.handle_timeout(now);
            }
        }
    }

    /// Performs the races' actions; what the driver must do.
    pub(crate) fn poll(&mut self) -> Vec<ToDriver> {
        let mut out = Vec::new();
        let mut finished = Vec::new();
        for (&n, slot) in self.races.iter_mut() {
            let Some(r) = slot.race.as_mut() else { continue };
            while let Some(a) = r.poll_action() {
                match a {
                    Action::Dial { id, route, target } => {
                        let dial = (n, id, Target::Tcp(target));
                        let h = tokio::spawn(dial_task(
                            dial,
                            self.dialer.clone(),
                            self.handshake_timeout,
                            self.events.clone(),
                        ));
                        slot.dials.insert(id, h.abort_handle());
                        slot.routes.insert(id, route);
                    }
                    Action::DialWebSocket { id, target } => {
                        let dial = (n, id, Target::WebSocket(target));
                        let h = tokio::spawn(dial_task(
                            dial,
                            self.dialer.clone(),
                            self.handshake_timeout,
                            self.events.clone(),
                        ));
                        slot.dials.insert(id, h.abort_handle());
                        slot.routes.insert(id, Route::Relay);
                    }
                    Action::Handshake(id) => {
                        if let Some((stream, route)) = slot.streams.remove(&id) {
                            out.push(ToDriver::NewConnection {
                                stream,
                                relay: route == Route::Relay,
                                owner: Some((n, id)),
                            });
                        }
                    }
                    Action::Close(id) => {
                        if let Some(h) = slot.dials.remove(&id) {
                            h.abort();
                        }
                        slot.streams.remove(&id);
                        if let Some(c) = slot.conns.remove(&id) {
                            self.owners.remove(&c);
                            out.push(ToDriver::Drop(c));
                        }
                    }
                    Action::Fail(e) => {
                        tracing::debug!("Dilation: dial round {n} ended: {e}");
                        finished.push(n);
                    }
                    Action::Winner(_) => finished.push(n),
                    Action::AwaitGo(_) | Action::SendGo(_) | Action::SendNevermind(_) => {}
                }
            }
        }
        for n in finished {
            if let Some(slot) = self.races.remove(&n) {
                slot.dials.values().for_each(AbortHandle::abort);
                for c in slot.conns.values() {
                    self.owners.remove(c);
                }
            }
        }
        out
    }
}

/// Where one dial goes: a TCP endpoint, or a relay's WebSocket port (the relay line then goes as
/// its first message).
enum Target {
    Tcp(DirectHint),
    WebSocket(WebSocketHint),
}

/// Dial `target` for connection `id` of race `race`, within `limit`, and report the result.
async fn dial_task(
    (race, id, target): (u64, ConnId, Target),
    dialer: Arc<Dialer>,
    limit: Duration,
    events: mpsc::Sender<NetEvent>,
) {
    let attempt = async {
        match &target {
            Target::Tcp(t) => dialer
                .connect(&t.hostname, t.port)
                .await
                .map(TransitStream::Tcp)
                .map_err(|e| e.to_string()),
            Target::WebSocket(w) => dial_websocket(&w.url, &dialer, None)
                .await
                .map_err(|e| e.to_string()),
        }
    };
    let result = match tokio::time::timeout(limit, attempt).await {
        Ok(r) => r,
        Err(_) => Err(match &target {
            Target::Tcp(t) => format!("{}:{}: no answer within {limit:?}", t.hostname, t.port),
            Target::WebSocket(w) => format!("{}: no answer within {limit:?}", w.url),
        }),
    };
    let _ = events.send(NetEvent::Dialed { race, id, result }).await;
}

async fn accept_loop(listener: TcpListener, events: mpsc::Sender<NetEvent>) {
    loop {
        match listener.accept().await {
            Ok((s, peer)) => {
                if events.send(NetEvent::Accepted(s, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("Dilation listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
