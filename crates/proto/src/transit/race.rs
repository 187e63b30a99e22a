//! Connection racing, sans-IO (docs/protocol.md §4.4): which connections to open and when, which
//! one wins, and when the race is lost. Events in, [`Action`]s out, time passed in — the shape of
//! quinn-proto's connection: feed events, then drain [`Race::poll_action`], sleep until
//! [`Race::poll_timeout`] and call [`Race::handle_timeout`].
//!
//! Owns the policy: every peer direct hint is dialled at once; relays (ours ∪ the peer's,
//! deduplicated) are dialled by priority group, the first group after `relay_delay` when there
//! are direct hints (else at once), each further group `relay_delay` later; relays' WebSocket
//! endpoints come last, `relay_delay` after the last TCP group, or at once when every TCP relay
//! attempt has failed (a network that lets only HTTPS through refuses or drops the rest); each connection gets
//! `handshake_timeout` from its dial (or accept) to its end; the [`RaceRole::Decider`] takes the
//! first connection whose handshake completes, sends `go` on it and `nevermind` on the others
//! that completed; the [`RaceRole::Follower`] takes the one on which `go` arrives. Once a
//! handshake proved that the peer derived another key, the race fails with
//! [`RaceError::KeyMismatch`] as soon as no dial of ours can still win, or `key_mismatch_grace`
//! after the proof, whichever is first. Without a listener, the race fails once every attempt
//! has failed; with one, only the overall timeout ends it (the peer may still dial us).
//!
//! Must not: touch sockets, read a clock, or know the bytes of any handshake. "Handshake" is
//! whatever the protocol on top negotiates on a fresh connection; the driver runs it and reports
//! the outcome. This is what lets Dilation's connector reuse the machine unchanged:
//!
//! | here | transit (v1) | Dilation |
//! |---|---|---|
//! | [`RaceRole::Decider`] | Sender | Leader |
//! | [`Action::Handshake`] | relay line and `ok`, then both `transit … ready` lines (the Sender's first) | relay line and `ok`, prefixes, Noise, the Follower's KCM |
//! | [`Action::SendGo`] | `go\n` | the Leader's KCM |
//! | [`Action::AwaitGo`] | read `go\n` or `nevermind\n` | wait for the Leader's KCM |
//! | [`Action::SendNevermind`] | `nevermind\n` | none ([`RaceConfig::send_nevermind`] off) |
//!
//! A connection that the driver reports as failed or mismatched is gone on both sides; the
//! machine emits [`Action::Close`] only for connections it drops itself (timed out, lost the
//! race, declined by the peer).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::hints::{DirectHint, Hint, TransitMsg, WebSocketHint};
use super::keys::Role;

/// One connection attempt, unique within a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// Who picks the winning connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaceRole {
    /// We pick: the first completed handshake wins and we tell the peer (`go`).
    Decider,
    /// The peer picks: the connection on which its `go` arrives wins.
    Follower,
}

impl From<Role> for RaceRole {
    /// The transit Sender decides; the Receiver follows.
    fn from(r: Role) -> Self {
        match r {
            Role::Sender => RaceRole::Decider,
            Role::Receiver => RaceRole::Follower,
        }
    }
}

/// How a connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// We dial one of the peer's direct hints.
    Direct,
    /// We dial a transit relay (the driver writes the relay line first).
    Relay,
    /// The peer dialled our listener.
    Inbound,
}

/// The race's settings.
#[derive(Debug, Clone)]
pub struct RaceConfig {
    /// Whether we pick the winner or the peer does.
    pub role: RaceRole,
    /// Whether a listener may still bring in connections (keeps the race open until the timeout).
    pub listening: bool,
    /// Delay before the first relay group when there are direct hints, and between groups.
    pub relay_delay: Duration,
    /// Limit for one connection, from its dial or accept until it wins.
    pub handshake_timeout: Duration,
    /// Limit for the whole race (`None`: no limit).
    pub overall_timeout: Option<Duration>,
    /// How long attempts may go on after a handshake proved that the keys differ.
    pub key_mismatch_grace: Duration,
    /// At most this many inbound connections negotiate at once; more are refused.
    pub max_inbound: usize,
    /// Whether the Decider writes `nevermind` on completed connections that lost.
    pub send_nevermind: bool,
}

/// What to dial.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The peer's direct hints, all dialled at once.
    pub direct: Vec<DirectHint>,
    /// Relay endpoints, dialled by priority group after the delay (duplicates are dropped).
    pub relays: Vec<DirectHint>,
    /// Relays' WebSocket endpoints, dialled after every TCP relay (duplicates are dropped).
    pub relay_websockets: Vec<WebSocketHint>,
}

impl Plan {
    /// The transit plan: up to `max_direct` of the peer's direct hints (none unless
    /// `dial_direct`), and our relays followed by the peer's.
    pub fn transit(ours: &[DirectHint], peer: &TransitMsg, dial_direct: bool, max_direct: usize) -> Plan {
        let direct = match dial_direct {
            true => peer.direct_hints().take(max_direct).cloned().collect(),
            false => Vec::new(),
        };
        let theirs = peer.relay_hints().flat_map(|r| r.tcp.iter().cloned());
        Plan {
            direct,
            relays: ours.iter().cloned().chain(theirs).collect(),
            relay_websockets: Vec::new(),
        }
    }

    /// This plan with our relays' WebSocket endpoints and then the peer's appended.
    pub fn with_websockets(mut self, ours: &[WebSocketHint], peer: &TransitMsg) -> Plan {
        let theirs = peer.relay_hints().flat_map(|r| r.websocket.iter().cloned());
        self.relay_websockets.extend(ours.iter().cloned().chain(theirs));
        self
    }

    /// The plan when every connection goes through Tor: the peer's `tor-tcp-v1` (onion) hints
    /// first, then its direct hints (all dialled through the proxy, up to `max_direct` in all),
    /// and our relays followed by each of the peer's relays' Tor and TCP endpoints.
    pub fn transit_via_tor(ours: &[DirectHint], peer: &TransitMsg, max_direct: usize) -> Plan {
        let onion = peer.hints.iter().filter_map(|h| match h {
            Hint::TorTcp(d) => Some(d),
            _ => None,
        });
        let direct = onion
            .chain(peer.direct_hints())
            .take(max_direct)
            .cloned()
            .collect();
        let theirs = peer
            .relay_hints()
            .flat_map(|r| r.tor.iter().chain(r.tcp.iter()).cloned());
        Plan {
            direct,
            relays: ours.iter().cloned().chain(theirs).collect(),
            relay_websockets: Vec::new(),
        }
    }
}

/// What happened on one connection (reported by the driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The dial succeeded; the handshake may start.
    Dialed,
    /// The connection failed (dial refused, closed, not a peer of ours…); the driver dropped it.
    Failed(String),
    /// The handshake finished (for the Follower: our side of it is written too).
    HandshakeCompleted,
    /// The peer's handshake proved that it derived another key; the driver dropped it.
    HandshakeMismatched,
    /// Our `go` is written.
    GoSent,
    /// The peer's `go` arrived.
    GoReceived,
    /// The peer's `nevermind` arrived.
    NevermindReceived,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a connection to `target`; report [`ConnEvent::Dialed`] or [`ConnEvent::Failed`].
    Dial {
        /// The new connection.
        id: ConnId,
        /// Direct or relay.
        route: Route,
        /// Where to.
        target: DirectHint,
    },
    /// Open a WebSocket to a relay ([`Route::Relay`]): the relay line, `ok` and the handshakes then
    /// travel as binary messages. Report [`ConnEvent::Dialed`] or [`ConnEvent::Failed`].
    DialWebSocket {
        /// The new connection.
        id: ConnId,
        /// The relay's WebSocket URL.
        target: WebSocketHint,
    },
    /// Run the handshake; report completed, mismatched or failed.
    Handshake(ConnId),
    /// (Follower) Read the peer's decision; report `go`, `nevermind` or failed.
    AwaitGo(ConnId),
    /// (Decider) Write `go`; report [`ConnEvent::GoSent`] or failed.
    SendGo(ConnId),
    /// (Decider) Write `nevermind`, best effort; a [`Action::Close`] follows.
    SendNevermind(ConnId),
    /// Drop the connection (abandon whatever runs on it).
    Close(ConnId),
    /// The race is won: hand this connection to the application. Always the last action.
    Winner(ConnId),
    /// The race is lost. Always the last action.
    Fail(RaceError),
}

/// Why a race failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaceError {
    /// Every attempt failed (the details say how, at most eight; empty: there was nothing to try).
    #[error("no connection could be made ({})", .0.join("; "))]
    NoConnection(Vec<String>),
    /// Handshakes proved that the peer derived another key; the connections that showed it.
    #[error("the peer's handshake was made with another key (on {})", .0.join(", "))]
    KeyMismatch(Vec<String>),
    /// The overall timeout passed.
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Dialing,
    Handshaking,
    /// Follower: handshake done, waiting for the peer's decision.
    AwaitingGo,
    /// Decider: handshake done, not chosen (yet).
    Ready,
    /// Decider: chosen, `go` being written.
    SendingGo,
}

#[derive(Debug)]
struct Conn {
    route: Route,
    /// A relay reached over WebSocket.
    websocket: bool,
    /// `HOST:PORT` (the relay's for relays, the peer's address for inbound).
    addr: String,
    stage: Stage,
    deadline: Instant,
}

impl Conn {
    /// How failures on it are named (`to …`, `via relay …`, `from …`).
    fn context(&self) -> String {
        match self.route {
            Route::Direct => format!("to {}", self.addr),
            Route::Relay => format!("via relay {}", self.addr),
            Route::Inbound => format!("from {}", self.addr),
        }
    }

    /// Whether it could still win after a key mismatch was proven (inbound ones count only once
    /// their handshake is done: a stranger on our port proves nothing).
    fn can_still_win(&self) -> bool {
        self.route != Route::Inbound || !matches!(self.stage, Stage::Dialing | Stage::Handshaking)
    }

    /// Whether its deadline still applies (the Decider's completed ones are decided at once).
    fn timed(&self) -> bool {
        !matches!(self.stage, Stage::Ready | Stage::SendingGo)
    }
}

/// A timer, in the order ties are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Overall,
    GiveUp,
    Relay,
    Conn(ConnId),
}

/// At most this many failure details are kept (a peer may advertise many hints).
const MAX_DETAILS: usize = 8;

/// The race of one connect (see the module doc).
#[derive(Debug)]
pub struct Race {
    cfg: RaceConfig,
    next_id: u64,
    conns: BTreeMap<ConnId, Conn>,
    /// Relay dials not started yet, earliest first (every TCP one before every WebSocket one).
    scheduled: VecDeque<(Instant, RelayTarget)>,
    actions: VecDeque<Action>,
    errors: Vec<String>,
    mismatches: Vec<String>,
    give_up_at: Option<Instant>,
    overall_at: Option<Instant>,
    done: bool,
}

impl Race {
    /// Start a race at `now`: direct dials at once, relays scheduled.
    pub fn new(cfg: RaceConfig, plan: Plan, now: Instant) -> Race {
        let schedule = relay_schedule(
            plan.relays,
            plan.relay_websockets,
            !plan.direct.is_empty(),
            cfg.relay_delay,
        );
        let mut race = Race {
            overall_at: cfg.overall_timeout.map(|t| now + t),
            cfg,
            next_id: 0,
            conns: BTreeMap::new(),
            scheduled: schedule.into_iter().map(|(r, d)| (now + d, r)).collect(),
            actions: VecDeque::new(),
            errors: Vec::new(),
            mismatches: Vec::new(),
            give_up_at: None,
            done: false,
        };
        for h in plan.direct {
            race.dial(now, Route::Direct, h);
        }
        race.handle_timeout(now);
        race.check_lost();
        race
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Race::handle_timeout`] must be called next (`None`: no timer, or the race is over).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    /// Whether the race has ended (a [`Action::Winner`] or [`Action::Fail`] was queued).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handle every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, timer)) = self.next_timer().filter(|(at, _)| *at <= now) {
            match timer {
                Timer::Overall => {
                    let t = self.cfg.overall_timeout.unwrap_or_default();
                    self.fail(RaceError::TimedOut(t));
                }
                Timer::GiveUp => self.fail(RaceError::KeyMismatch(self.mismatches.clone())),
                Timer::Relay => match self.scheduled.pop_front() {
                    Some((at, RelayTarget::Tcp(r))) => self.dial(at, Route::Relay, r),
                    Some((at, RelayTarget::WebSocket(w))) => self.dial_websocket(at, w),
                    None => {}
                },
                Timer::Conn(id) => self.timed_out(now, id),
            }
        }
    }

    /// The listener accepted a connection from `peer` (`IP:PORT`): its id, or `None` when the
    /// driver must drop it (too many negotiating, not listening, race over).
    pub fn accepted(&mut self, now: Instant, peer: String) -> Option<ConnId> {
        let inbound = self.conns.values().filter(|c| c.route == Route::Inbound).count();
        if self.done || !self.cfg.listening || inbound >= self.cfg.max_inbound {
            return None;
        }
        let id = self.insert(now, Route::Inbound, peer, Stage::Handshaking);
        self.actions.push_back(Action::Handshake(id));
        Some(id)
    }

    /// Something happened on connection `id` (ignored for unknown or closed ones).
    pub fn handle(&mut self, now: Instant, id: ConnId, ev: ConnEvent) {
        if self.done || !self.conns.contains_key(&id) {
            return;
        }
        match ev {
            ConnEvent::Dialed => self.advance(id, Stage::Dialing, Stage::Handshaking, Action::Handshake(id)),
            ConnEvent::Failed(why) => self.failed(now, id, why),
            ConnEvent::HandshakeCompleted => self.completed(id),
            ConnEvent::HandshakeMismatched => self.mismatched(now, id),
            ConnEvent::GoSent if self.stage(id) == Some(Stage::SendingGo) => self.win(id),
            ConnEvent::GoReceived if self.stage(id) == Some(Stage::AwaitingGo) => self.win(id),
            ConnEvent::NevermindReceived => self.declined(id),
            ConnEvent::GoSent | ConnEvent::GoReceived => {}
        }
        self.check_lost();
    }

    fn stage(&self, id: ConnId) -> Option<Stage> {
        self.conns.get(&id).map(|c| c.stage)
    }

    fn insert(&mut self, at: Instant, route: Route, addr: String, stage: Stage) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let deadline = at + self.cfg.handshake_timeout;
        self.conns.insert(
            id,
            Conn {
                route,
                websocket: false,
                addr,
                stage,
                deadline,
            },
        );
        id
    }

    fn dial(&mut self, at: Instant, route: Route, target: DirectHint) {
        let addr = format!("{}:{}", target.hostname, target.port);
        let id = self.insert(at, route, addr, Stage::Dialing);
        self.actions.push_back(Action::Dial { id, route, target });
    }

    fn dial_websocket(&mut self, at: Instant, target: WebSocketHint) {
        let id = self.insert(at, Route::Relay, target.url.clone(), Stage::Dialing);
        if let Some(c) = self.conns.get_mut(&id) {
            c.websocket = true;
        }
        self.actions.push_back(Action::DialWebSocket { id, target });
    }

    /// Once no TCP relay attempt is running or still to come, the WebSocket ones start now.
    fn after_relay_loss(&mut self, now: Instant, lost: &Conn) {
        let tcp_relay = |c: &Conn| c.route == Route::Relay && !c.websocket;
        if !tcp_relay(lost)
            || self.conns.values().any(tcp_relay)
            || self
                .scheduled
                .iter()
                .any(|(_, t)| matches!(t, RelayTarget::Tcp(_)))
        {
            return;
        }
        for (at, _) in self.scheduled.iter_mut() {
            *at = (*at).min(now);
        }
    }

    fn advance(&mut self, id: ConnId, from: Stage, to: Stage, then: Action) {
        if let Some(c) = self.conns.get_mut(&id)
            && c.stage == from
        {
            c.stage = to;
            self.actions.push_back(then);
        }
    }

    fn completed(&mut self, id: ConnId) {
        match self.cfg.role {
            RaceRole::Follower => {
                self.advance(id, Stage::Handshaking, Stage::AwaitingGo, Action::AwaitGo(id))
            }
            RaceRole::Decider => {
                if let Some(c) = self.conns.get_mut(&id)
                    && c.stage == Stage::Handshaking
                {
                    c.stage = Stage::Ready;
                }
                self.choose();
            }
        }
    }

    /// Decider: send `go` on the first completed connection unless one is already chosen.
    fn choose(&mut self) {
        if self.conns.values().any(|c| c.stage == Stage::SendingGo) {
            return;
        }
        if let Some((&id, c)) = self.conns.iter_mut().find(|(_, c)| c.stage == Stage::Ready) {
            c.stage = Stage::SendingGo;
            self.actions.push_back(Action::SendGo(id));
        }
    }

    fn failed(&mut self, now: Instant, id: ConnId, why: String) {
        let Some(c) = self.conns.remove(&id) else { return };
        self.after_relay_loss(now, &c);
        if c.stage == Stage::SendingGo {
            push_bounded(&mut self.errors, format!("{}: closed before go", c.addr));
            self.choose();
        } else {
            self.note_error(&c, &why);
        }
    }

    /// The peer said `nevermind`: it chose another connection.
    fn declined(&mut self, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else { return };
        self.actions.push_back(Action::Close(id));
        self.note_error(&c, "the peer chose another connection (nevermind)");
    }

    fn mismatched(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else { return };
        push_bounded(&mut self.mismatches, c.context());
        self.give_up_at.get_or_insert(now + self.cfg.key_mismatch_grace);
    }

    fn timed_out(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else { return };
        self.after_relay_loss(now, &c);
        self.actions.push_back(Action::Close(id));
        let what = match c.route {
            Route::Relay => format!("relay {}: timed out", c.addr),
            _ => format!("{}: timed out", c.addr),
        };
        if c.route != Route::Inbound {
            push_bounded(&mut self.errors, what);
        }
        self.check_lost();
    }

    /// Record why an attempt failed; inbound failures are noise (scanners, stale peers).
    fn note_error(&mut self, c: &Conn, why: &str) {
        if c.route != Route::Inbound {
            push_bounded(&mut self.errors, format!("{}: {why}", c.context()));
        }
    }

    fn win(&mut self, winner: ConnId) {
        let decline = self.cfg.role == RaceRole::Decider && self.cfg.send_nevermind;
        for (&id, c) in self.conns.iter().filter(|(id, _)| **id != winner) {
            if decline && c.stage == Stage::Ready {
                self.actions.push_back(Action::SendNevermind(id));
            }
            self.actions.push_back(Action::Close(id));
        }
        self.actions.push_back(Action::Winner(winner));
        self.end();
    }

    fn fail(&mut self, e: RaceError) {
        for &id in self.conns.keys() {
            self.actions.push_back(Action::Close(id));
        }
        self.actions.push_back(Action::Fail(e));
        self.end();
    }

    fn end(&mut self) {
        self.conns.clear();
        self.scheduled.clear();
        self.done = true;
    }

    /// Fail when nothing left can succeed.
    fn check_lost(&mut self) {
        if self.done {
            return;
        }
        let pending = !self.scheduled.is_empty();
        if !self.mismatches.is_empty() && !pending && !self.conns.values().any(Conn::can_still_win) {
            return self.fail(RaceError::KeyMismatch(self.mismatches.clone()));
        }
        if !self.cfg.listening && !pending && self.conns.is_empty() {
            self.fail(RaceError::NoConnection(self.errors.clone()));
        }
    }

    fn next_timer(&self) -> Option<(Instant, Timer)> {
        if self.done {
            return None;
        }
        let conns = self
            .conns
            .iter()
            .filter(|(_, c)| c.timed())
            .map(|(id, c)| (c.deadline, Timer::Conn(*id)));
        let fixed = [
            self.overall_at.map(|t| (t, Timer::Overall)),
            self.give_up_at.map(|t| (t, Timer::GiveUp)),
            self.scheduled.front().map(|(t, _)| (*t, Timer::Relay)),
        ];
        fixed.into_iter().flatten().chain(conns).min()
    }
}

fn push_bounded(v: &mut Vec<String>, m: String) {
    if v.len() < MAX_DETAILS {
        v.push(m);
    }
}

/// A relay dial still to come.
#[derive(Debug)]
enum RelayTarget {
    Tcp(DirectHint),
    WebSocket(WebSocketHint),
}

/// Relay endpoints deduplicated, sorted by priority (high first), each with its delay from the
/// start: the first group after `delay` when there are direct hints (else at once), each further
/// group `delay` later; then the WebSocket endpoints (deduplicated, in order) as one more group.
fn relay_schedule(
    relays: Vec<DirectHint>,
    websockets: Vec<WebSocketHint>,
    have_direct: bool,
    delay: Duration,
) -> Vec<(RelayTarget, Duration)> {
    let mut schedule: Vec<(RelayTarget, Duration)> = tcp_schedule(relays, have_direct, delay)
        .into_iter()
        .map(|(r, d)| (RelayTarget::Tcp(r), d))
        .collect();
    let base = if have_direct { delay } else { Duration::ZERO };
    let ws_at = schedule.last().map_or(base, |(_, d)| *d + delay);
    let mut seen = HashSet::new();
    schedule.extend(
        websockets
            .into_iter()
            .filter(|w| seen.insert(w.url.clone()))
            .map(|w| (RelayTarget::WebSocket(w), ws_at)),
    );
    schedule
}

fn tcp_schedule(relays: Vec<DirectHint>, have_direct: bool, delay: Duration) -> Vec<(DirectHint, Duration)> {
    let mut seen = HashSet::new();
    let mut relays: Vec<DirectHint> = relays
        .into_iter()
        .filter(|r| seen.insert((r.hostname.clone(), r.port)))
        .collect();
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

#[cfg(test)]
#[path = "race_tests.rs"]
mod tests;
