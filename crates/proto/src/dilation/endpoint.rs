//! The sans-IO Dilation endpoint (docs/protocol.md §6): one object per dilated wormhole that
//! ties the manager (L1), the per-connection machines (L2), L4 reliability, the keepalive, the
//! reconnection backoff and subchannel flow control together, quinn-proto style.
//!
//! Inputs: the peer's `can-dilate` list and its `dilate-N` bodies from the mailbox; connection
//! events (a new L2 connection with a driver-chosen [`ConnectionId`], its bytes, its loss); the
//! application's calls (open, listen, write one record, half-close, consume received bytes,
//! stop); and [`Dilation::handle_timeout`]. Outputs: [`Dilation::poll_action`] and
//! [`Dilation::poll_timeout`]. Time comes in as `now`, randomness as a seed in [`Config`].
//!
//! Owns: choosing the connection (the first whose KCM arrives; the others are closed), the
//! keepalive (the Leader PINGs every interval, a side that paused reading PINGs too; a
//! connection silent for the timeout is *aborted*, not closed gracefully, and a replacement is
//! sought; the silence clock stands still while we ourselves do not read), re-dialling the peer's
//! hints with bounded exponential backoff while no connection is up (on both sides; Python
//! dials once), backoff between connector generations (Python has none), a bounded receive
//! buffer per subchannel (the connection stops being read while one is full — Python ignores
//! backpressure, so only not reading bounds our memory), a bounded unacked send queue (writes
//! beyond it get [`Error::WouldBlock`]), held OPENs for subprotocols nobody listens for (CLOSEd
//! after [`Config::open_hold`]).
//!
//! Must not: open sockets, listen, resolve or parse hints, race connections, read clocks or
//! spawn tasks. Connection racing stays outside: whatever dials or accepts (a driver today, the
//! transit race machine later) hands each stream in with [`Dilation::connection_new`] (the
//! endpoint builds the L2 machine) or [`Dilation::connection_established`] (a machine that
//! already did the relay line or more); from there on the endpoint only sees bytes.
//!
//! Subchannels are record pipes: one [`Dilation::write`] is exactly one DATA record, and each
//! DATA record arrives as one [`Action::Data`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::Role;
pub use super::actions::{Action, Config, ConnectionId, Error};
use super::connection::{ConnEvent, Connection, sealed_len};
use super::frame_pool::FramePool;
use super::keepalive::{Backoff, Keepalive};
use super::l3::{Record, SUBCHANNEL_HEADER_LEN};
use super::l4::{Action as L4Action, Delivery, Ignored, Reliability};
use super::manager::{Action as MAction, Manager, ManagerError, State};
use super::subchannel::{Held, OpenOutcome, Route, Subchannels};

/// How many `dilate-N` bodies that arrived early (out of order) are held.
pub const MAX_EARLY_MAILBOX: usize = 64;
/// How many [`Dilation::ping`] PINGs are remembered while unanswered.
const MAX_APP_PINGS: usize = 64;

struct InUse {
    id: ConnectionId,
    keepalive: Keepalive,
    since: Instant,
}

/// Consecutive writes to one connection are joined while they stay this small.
const COALESCE_MAX: usize = 16 << 10;

/// One side of a dilated wormhole.
pub struct Dilation {
    config: Config,
    psk: [u8; 32],
    manager: Manager,
    l4: Option<Reliability>,
    conns: BTreeMap<ConnectionId, Connection>,
    in_use: Option<InUse>,
    connector_running: bool,
    pending_start: Option<(Instant, u64)>,
    start_backoff: Backoff,
    peer_hints: Vec<Value>,
    redial: Option<Instant>,
    dial_backoff: Backoff,
    subs: Subchannels,
    mailbox_next: u64,
    mailbox_early: BTreeMap<u64, Vec<u8>>,
    actions: VecDeque<Action>,
    rng: StdRng,
    ended: bool,
    write_blocked: bool,
    /// Ids of PINGs sent by [`Dilation::ping`] and not answered yet (oldest first).
    app_pings: VecDeque<[u8; 4]>,
    /// The highest ACK owed, for how many records, and when it is due: sent once
    /// [`Config::ack_every`] records are owed or [`Config::ack_delay`] after the first (ACKs are
    /// cumulative: one stands for them all).
    owed_ack: Option<u32>,
    owed_records: usize,
    ack_due: Option<Instant>,
    paused: bool,
    now: Option<Instant>,
    /// Buffers for sealed frames, handed back by the driver once written.
    frames: FramePool,
}

impl std::fmt::Debug for Dilation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dilation")
            .field("state", &self.manager.state())
            .field("role", &self.manager.role())
            .field("connections", &self.conns.len())
            .field("in_use", &self.in_use.as_ref().map(|u| u.id))
            .finish_non_exhaustive()
    }
}

impl Dilation {
    /// An endpoint for dilation side `side` (see [`super::manager::new_side`]) keyed by the
    /// Dilation PSK (see [`super::noise::dilation_psk`]).
    pub fn new(config: Config, side: String, psk: [u8; 32]) -> Self {
        let subs = Subchannels::new(config.recv_window, config.max_pending_opens);
        Dilation {
            start_backoff: Backoff::new(config.backoff_base, config.backoff_max),
            dial_backoff: Backoff::new(config.backoff_base, config.backoff_max),
            rng: StdRng::seed_from_u64(config.rng_seed),
            config,
            psk,
            manager: Manager::new(side),
            l4: None,
            conns: BTreeMap::new(),
            in_use: None,
            connector_running: false,
            pending_start: None,
            peer_hints: Vec::new(),
            redial: None,
            subs,
            mailbox_next: 0,
            mailbox_early: BTreeMap::new(),
            actions: VecDeque::new(),
            ended: false,
            write_blocked: false,
            app_pings: VecDeque::new(),
            owed_ack: None,
            owed_records: 0,
            ack_due: None,
            paused: false,
            now: None,
            frames: FramePool::new(),
        }
    }

    /// The pool this endpoint takes the buffers of its sealed frames from: a driver hands each
    /// [`Action::Write`]'s bytes back with [`FramePool::put`] once they are written, so large
    /// frames reuse memory instead of asking the kernel for fresh pages. Optional: a driver that
    /// drops them instead loses nothing but that.
    pub fn frame_pool(&self) -> FramePool {
        self.frames.clone()
    }

    // ----- observers ---------------------------------------------------------------------

    /// Our role, once known.
    pub fn role(&self) -> Option<Role> {
        self.manager.role()
    }

    /// The manager's state.
    pub fn state(&self) -> State {
        self.manager.state()
    }

    /// The connection in use.
    pub fn connection_in_use(&self) -> Option<ConnectionId> {
        self.in_use.as_ref().map(|u| u.id)
    }

    /// How many connections the endpoint tracks (candidates and the one in use).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Bytes sent and not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.l4.as_ref().map_or(0, Reliability::unacked_bytes)
    }

    /// Bytes delivered on `scid` and not yet consumed.
    pub fn buffered(&self, scid: u32) -> usize {
        self.subs.buffered(scid)
    }

    /// The largest receive buffer over all subchannels.
    pub fn max_buffered(&self) -> usize {
        self.subs.max_buffered()
    }

    /// True while the endpoint asks not to read the connection.
    pub fn is_reading_paused(&self) -> bool {
        self.paused
    }

    /// How many OPENs wait for a listener.
    pub fn pending_opens(&self) -> usize {
        self.subs.pending_len()
    }

    /// How many actions wait in the queue.
    pub fn queued_actions(&self) -> usize {
        self.actions.len()
    }

    /// True once stopped or failed.
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    // ----- outputs -----------------------------------------------------------------------

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Dilation::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        // While we do not read, only the PING schedule runs (the silence clock stands still).
        let keepalive = self.in_use.as_ref().and_then(|u| {
            if self.paused {
                u.keepalive.next_ping()
            } else {
                Some(u.keepalive.next_timeout())
            }
        });
        let redial = self.redial.filter(|_| self.wants_redial());
        [
            keepalive,
            redial,
            self.pending_start.map(|(t, _)| t),
            self.subs.next_deadline(),
            self.ack_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn push(&mut self, a: Action) {
        // Coalesce consecutive small writes to one connection into one buffer (ACKs, PINGs,
        // control records). A large one stays its own: appending it would copy it, and a
        // growing buffer is copied again each time it is reallocated; the driver's writer
        // joins separate buffers into one system call anyway.
        if let Action::Write { conn, bytes } = &a
            && let Some(Action::Write { conn: c, bytes: b }) = self.actions.back_mut()
            && c == conn
            && b.len() + bytes.len() <= COALESCE_MAX
        {
            b.extend_from_slice(bytes);
            return;
        }
        self.actions.push_back(a);
    }

    fn jitter(&mut self) -> f64 {
        self.rng.gen_range(0.5..=1.0)
    }

    // ----- mailbox -----------------------------------------------------------------------

    /// The peer's version message arrived; `can_dilate` is its `can-dilate` list (see
    /// [`super::manager::peer_can_dilate`]).
    pub fn peer_versions(&mut self, can_dilate: &[String], now: Instant) {
        self.now = Some(now);
        let acts = self.manager.got_peer_versions(can_dilate);
        self.manager_actions(acts, now);
    }

    /// A decrypted `dilate-N` body from the peer. Phases may arrive out of order or twice;
    /// they are handed on in order, each once (at most [`MAX_EARLY_MAILBOX`] held early).
    pub fn mailbox_received(&mut self, phase: &str, body: &[u8], now: Instant) -> Result<(), Error> {
        self.now = Some(now);
        let n: u64 = phase
            .strip_prefix("dilate-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::BadPhase(phase.chars().take(64).collect()))?;
        if n < self.mailbox_next || self.mailbox_early.contains_key(&n) {
            self.push(Action::Ignored(format!("duplicate {phase}")));
            return Ok(());
        }
        if n > self.mailbox_next {
            if self.mailbox_early.len() >= MAX_EARLY_MAILBOX {
                self.push(Action::Ignored(format!("too many early phases; {phase} dropped")));
            } else {
                self.mailbox_early.insert(n, body.to_vec());
            }
            return Ok(());
        }
        self.mailbox_next += 1;
        let acts = self.manager.received(body);
        self.manager_actions(acts, now);
        while let Some(body) = self.mailbox_early.remove(&self.mailbox_next) {
            self.mailbox_next += 1;
            let acts = self.manager.received(&body);
            self.manager_actions(acts, now);
        }
        Ok(())
    }

    /// Our connector's hints (listener addresses, relay): sent to the peer.
    pub fn local_hints(&mut self, hints: Vec<Value>, now: Instant) {
        let acts = self.manager.send_hints(hints);
        self.manager_actions(acts, now);
    }

    fn manager_actions(&mut self, acts: Vec<MAction>, now: Instant) {
        for a in acts {
            match a {
                MAction::Send { message } => self.push(Action::SendMailbox {
                    body: message.to_bytes(),
                }),
                MAction::StartConnecting { role, generation } => {
                    self.l4.get_or_insert_with(|| Reliability::new(role));
                    self.schedule_start(generation, now);
                }
                MAction::StopConnecting => self.stop_connector(),
                MAction::UseHints(hints) => self.use_hints(hints, now),
                MAction::AbandonConnection => {
                    if let Some(u) = self.in_use.take() {
                        self.conns.remove(&u.id);
                        // Stopping flushes what is queued; abandoning a dead path does not.
                        self.push(if self.manager.state() == State::Stopping {
                            Action::Close { conn: u.id }
                        } else {
                            Action::Abort { conn: u.id }
                        });
                        self.lost_in_use(u, now);
                    }
                }
                MAction::Stopped => {
                    self.end();
                    self.push(Action::Stopped);
                }
                MAction::Failed(e) => {
                    self.end();
                    self.push(Action::Failed(match e {
                        ManagerError::EqualSides => Error::EqualSides,
                        _ => Error::PeerCannotDilate,
                    }));
                }
                MAction::Ignored(why) => self.push(Action::Ignored(why)),
            }
        }
    }

    fn end(&mut self) {
        self.ended = true;
        self.pending_start = None;
        self.redial = None;
        if self.connector_running {
            self.connector_running = false;
            self.push(Action::StopConnector);
        }
        for id in std::mem::take(&mut self.conns).into_keys() {
            self.push(Action::Abort { conn: id });
        }
        self.in_use = None;
    }

    fn schedule_start(&mut self, generation: u64, now: Instant) {
        // Candidates of an earlier generation are stale now.
        for id in std::mem::take(&mut self.conns).into_keys() {
            self.push(Action::Abort { conn: id });
        }
        self.peer_hints.clear();
        self.redial = None;
        self.dial_backoff.reset();
        let at = if generation <= 1 {
            now
        } else {
            let j = self.jitter();
            now + self.start_backoff.next_delay(j)
        };
        self.pending_start = Some((at, generation));
        if at <= now {
            self.fire_start(now);
        }
    }

    fn fire_start(&mut self, now: Instant) {
        let Some((_, generation)) = self.pending_start.take() else {
            return;
        };
        let Some(role) = self.manager.role() else {
            return;
        };
        self.connector_running = true;
        self.push(Action::StartConnector { role, generation });
        if !self.peer_hints.is_empty() {
            self.dial_all(now);
        }
    }

    fn stop_connector(&mut self) {
        self.pending_start = None;
        self.redial = None;
        if self.connector_running {
            self.connector_running = false;
            self.push(Action::StopConnector);
        }
    }

    fn use_hints(&mut self, hints: Vec<Value>, now: Instant) {
        let room = self.config.max_hints.saturating_sub(self.peer_hints.len());
        if hints.len() > room {
            self.push(Action::Ignored(format!(
                "{} peer hints over the limit",
                hints.len() - room
            )));
        }
        let fresh: Vec<Value> = hints.into_iter().take(room).collect();
        self.peer_hints.extend(fresh.iter().cloned());
        if self.connector_running && !fresh.is_empty() {
            self.push(Action::Dial { hints: fresh });
            self.schedule_redial(now);
        }
    }

    fn dial_all(&mut self, now: Instant) {
        self.push(Action::Dial {
            hints: self.peer_hints.clone(),
        });
        self.schedule_redial(now);
    }

    fn schedule_redial(&mut self, now: Instant) {
        let j = self.jitter();
        self.redial = Some(now + self.dial_backoff.next_delay(j));
    }

    fn wants_redial(&self) -> bool {
        self.connector_running && self.in_use.is_none() && !self.peer_hints.is_empty()
    }

    // ----- connections -------------------------------------------------------------------

    /// A new stream (dialled or accepted) is up: the endpoint builds its L2 machine in our role
    /// and asks to write the first bytes. `relay_line` is the relay handshake line
    /// ([`super::connection::relay_handshake`]) for a stream to a transit relay.
    pub fn connection_new(&mut self, id: ConnectionId, relay_line: Option<Vec<u8>>, now: Instant) {
        let Some(role) = self.accepts_connection(id) else {
            return;
        };
        let (machine, first) = Connection::new(role, self.psk, relay_line, self.config.max_frame_len);
        self.conns.insert(id, machine);
        self.push(Action::Write {
            conn: id,
            bytes: first,
        });
        let _ = now;
    }

    /// A stream whose L2 machine was built (and possibly advanced) elsewhere, e.g. by a race
    /// that already did the relay handshake. Its bytes come through
    /// [`Dilation::connection_data`] from now on.
    pub fn connection_established(&mut self, id: ConnectionId, machine: Connection, now: Instant) {
        if self.accepts_connection(id).is_some() {
            self.conns.insert(id, machine);
        }
        let _ = now;
    }

    fn accepts_connection(&mut self, id: ConnectionId) -> Option<Role> {
        let why = if self.ended {
            "ended"
        } else if self.in_use.is_some() || !self.connector_running {
            "not connecting"
        } else if self.conns.len() >= self.config.max_connections {
            "too many connections"
        } else if self.conns.contains_key(&id) {
            "duplicate connection id"
        } else {
            return self.manager.role();
        };
        self.push(Action::Ignored(format!("connection {id:?} refused: {why}")));
        if !self.conns.contains_key(&id) {
            self.push(Action::Abort { conn: id });
        }
        None
    }

    /// Bytes read from connection `id` (copied; see [`Dilation::connection_data_buf`]).
    pub fn connection_data(&mut self, id: ConnectionId, bytes: &[u8], now: Instant) {
        self.connection_data_buf(id, BytesMut::from(bytes), now);
    }

    /// Bytes read from connection `id`, in a buffer we own: frames are decrypted where they
    /// lie in it and DATA payloads reach the subchannels as slices of it (a reader that reads
    /// into one `BytesMut` and splits each read off it copies nothing on the way).
    pub fn connection_data_buf(&mut self, id: ConnectionId, bytes: BytesMut, now: Instant) {
        self.now = Some(now);
        let Some(machine) = self.conns.get_mut(&id) else {
            return;
        };
        let out = machine.receive_buf(bytes);
        if let Some(u) = self.in_use.as_mut().filter(|u| u.id == id) {
            u.keepalive.received(now);
        }
        match out {
            Ok(out) => {
                if !out.send.is_empty() {
                    self.push(Action::Write {
                        conn: id,
                        bytes: out.send,
                    });
                }
                for event in out.events {
                    if !self.conns.contains_key(&id) {
                        break;
                    }
                    match event {
                        ConnEvent::KcmReceived => self.kcm(id, now),
                        ConnEvent::Record(r) if self.connection_in_use() == Some(id) => self.record(r, now),
                        ConnEvent::Record(_) => {}
                    }
                }
                self.settle_ack(now);
            }
            Err(source) => {
                self.push(Action::Warning(Error::Connection { conn: id, source }));
                self.drop_connection(id, true, now);
            }
        }
        self.update_pause();
    }

    /// Connection `id` closed or failed on its own (the driver need not report connections
    /// the endpoint itself closed or aborted).
    pub fn connection_lost(&mut self, id: ConnectionId, now: Instant) {
        self.drop_connection(id, false, now);
    }

    fn drop_connection(&mut self, id: ConnectionId, abort: bool, now: Instant) {
        if self.conns.remove(&id).is_none() {
            return;
        }
        if abort {
            self.push(Action::Abort { conn: id });
        }
        if let Some(u) = self.in_use.take_if(|u| u.id == id) {
            self.lost_in_use(u, now);
        }
    }

    fn lost_in_use(&mut self, u: InUse, now: Instant) {
        if now.saturating_duration_since(u.since) >= self.config.stable_after {
            self.start_backoff.reset();
        }
        if let Some(l4) = self.l4.as_mut() {
            l4.connection_lost();
        }
        let acts = self.manager.connection_lost();
        self.manager_actions(acts, now);
    }

    fn kcm(&mut self, id: ConnectionId, now: Instant) {
        let Some(role) = self.manager.role() else {
            return;
        };
        if self.in_use.is_some() || self.manager.state() != State::Connecting {
            self.conns.remove(&id);
            self.push(Action::Close { conn: id });
            return;
        }
        if role == Role::Leader && !self.send_on(id, &Record::Kcm, now) {
            return;
        }
        // The Follower PINGs too, but only while it does not read (see `keepalive`).
        let interval = Some(self.config.ping_interval);
        let timeout = match role {
            Role::Leader => self.config.leader_timeout,
            Role::Follower => self.config.follower_timeout,
        };
        self.in_use = Some(InUse {
            id,
            keepalive: Keepalive::new(now, interval, timeout),
            since: now,
        });
        for other in self
            .conns
            .keys()
            .copied()
            .filter(|c| *c != id)
            .collect::<Vec<_>>()
        {
            self.conns.remove(&other);
            self.push(Action::Close { conn: other });
        }
        self.stop_connector();
        self.dial_backoff.reset();
        let acts = self.manager.connection_made();
        self.manager_actions(acts, now);
        self.push(Action::Connected { conn: id, role });
        if self.paused {
            self.push(Action::PauseReading { conn: id });
        }
        let resend = self
            .l4
            .as_mut()
            .map(Reliability::connection_made)
            .unwrap_or_default();
        for r in resend {
            if !self.send_on(id, &r, now) {
                break;
            }
        }
    }

    /// Encrypts and queues `record` on `id`; false (and the connection dropped) on failure.
    fn send_on(&mut self, id: ConnectionId, record: &Record, now: Instant) -> bool {
        let Some(machine) = self.conns.get_mut(&id) else {
            return false;
        };
        match machine.send_record_in(record, self.frames.take(sealed_len(record))) {
            Ok(bytes) => {
                self.push(Action::Write { conn: id, bytes });
                true
            }
            Err(source) => {
                self.push(Action::Warning(Error::Connection { conn: id, source }));
                self.drop_connection(id, true, now);
                false
            }
        }
    }

    /// After a read: the owed ACK goes now if enough records are owed (or ACKs are not
    /// delayed), else it becomes due [`Config::ack_delay`] after the first.
    fn settle_ack(&mut self, now: Instant) {
        if self.owed_ack.is_none() {
            return;
        }
        if self.owed_records >= self.config.ack_every || self.config.ack_delay.is_zero() {
            self.flush_ack(now);
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now + self.config.ack_delay);
        }
    }

    /// Sends the owed ACK, if any.
    fn flush_ack(&mut self, now: Instant) {
        self.ack_due = None;
        self.owed_records = 0;
        if let Some(resp_seqnum) = self.owed_ack.take() {
            self.send_in_use(Some(Record::Ack { resp_seqnum }), now);
        }
    }

    fn send_in_use(&mut self, record: Option<Record>, now: Instant) {
        if let (Some(r), Some(id)) = (record, self.connection_in_use()) {
            self.send_on(id, &r, now);
        }
    }

    fn record(&mut self, r: Record, now: Instant) {
        let Some(l4) = self.l4.as_mut() else {
            return;
        };
        let acked = matches!(r, Record::Ack { .. });
        for a in l4.receive(r) {
            match a {
                L4Action::Send(Record::Ack { resp_seqnum }) => {
                    self.owed_ack = Some(self.owed_ack.map_or(resp_seqnum, |a| a.max(resp_seqnum)));
                    self.owed_records += 1;
                }
                L4Action::Send(r) => self.send_in_use(Some(r), now),
                L4Action::Deliver(d) => self.deliver(d, now),
                L4Action::PongReceived(ping_id) => {
                    if let Some(i) = self.app_pings.iter().position(|p| *p == ping_id) {
                        self.app_pings.remove(i);
                        self.push(Action::Pong { ping_id });
                    }
                }
                L4Action::Ignored(Ignored::Old { .. }) => {}
                L4Action::Ignored(i) => self.push(Action::Ignored(format!("{i:?}"))),
            }
        }
        if acked && self.write_blocked && self.unacked_bytes() <= self.config.max_unacked_bytes / 2 {
            self.write_blocked = false;
            self.push(Action::Writable);
        }
    }

    fn deliver(&mut self, d: Delivery, now: Instant) {
        match d {
            Delivery::Open { scid, subprotocol } => {
                if self.subs.tracked() >= self.config.max_subchannels {
                    self.refuse(scid, subprotocol, now);
                    return;
                }
                let deadline = now + self.config.open_hold;
                match self.subs.peer_open(scid, &subprotocol, deadline) {
                    OpenOutcome::Accepted => self.push(Action::Accepted { scid, subprotocol }),
                    OpenOutcome::Held => {}
                    OpenOutcome::Refused => self.refuse(scid, subprotocol, now),
                }
            }
            Delivery::Data { scid, mut data } => match self.subs.peer_data(scid, &mut data) {
                Route::Deliver => self.push(Action::Data { scid, data }),
                Route::Held | Route::Drop => {}
            },
            Delivery::Close { scid } => match self.subs.peer_close(scid) {
                Route::Deliver => self.push(Action::PeerClosed { scid }),
                Route::Held | Route::Drop => {}
            },
        }
    }

    fn refuse(&mut self, scid: u32, subprotocol: String, now: Instant) {
        let close = self.l4.as_mut().map(|l4| l4.send_close(scid));
        match close {
            Some(Ok(r)) => self.send_in_use(r, now),
            Some(Err(e)) => self.push(Action::Ignored(format!("refusing {scid}: {e}"))),
            None => {}
        }
        self.push(Action::OpenRefused { scid, subprotocol });
    }

    fn update_pause(&mut self) {
        // Our writes waiting for ACKs that may sit behind the peer's data: read on, within
        // the allowance (Config::blocked_read_allowance).
        let reading_for_acks =
            self.write_blocked && self.subs.total_buffered() < self.config.blocked_read_allowance;
        let want = self.subs.should_pause() && !reading_for_acks;
        if want == self.paused {
            return;
        }
        self.paused = want;
        if let Some(id) = self.connection_in_use() {
            if want {
                self.push(Action::PauseReading { conn: id });
            } else {
                let now = self.now;
                if let (Some(u), Some(now)) = (self.in_use.as_mut(), now) {
                    // Nothing could arrive while we did not read: restart the silence clock.
                    u.keepalive.received(now);
                }
                self.push(Action::ResumeReading { conn: id });
            }
        }
    }

    // ----- timers ------------------------------------------------------------------------

    /// Time passed; call at (or after) [`Dilation::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        if self.ended {
            return;
        }
        if self.pending_start.is_some_and(|(t, _)| t <= now) {
            self.fire_start(now);
        }
        if self.ack_due.is_some_and(|t| t <= now) {
            self.flush_ack(now);
        }
        if self.wants_redial() && self.redial.is_some_and(|t| t <= now) {
            self.dial_all(now);
        }
        self.keepalive(now);
        for (scid, p) in self.subs.expire(now) {
            let closed_by_peer = p.held.contains(&Held::Close);
            if !closed_by_peer || self.l4.as_ref().is_some_and(|l| l.is_open(scid)) {
                self.refuse(scid, p.subprotocol, now);
            } else {
                self.push(Action::OpenRefused {
                    scid,
                    subprotocol: p.subprotocol,
                });
            }
        }
        self.update_pause();
    }

    fn keepalive(&mut self, now: Instant) {
        let paused = self.paused;
        let Some(u) = self.in_use.as_mut() else {
            return;
        };
        if !paused && u.keepalive.is_dead(now) {
            let id = u.id;
            let silent = match self.manager.role() {
                Some(Role::Leader) => self.config.leader_timeout,
                _ => self.config.follower_timeout,
            };
            self.push(Action::Warning(Error::KeepaliveTimeout { conn: id, silent }));
            self.drop_connection(id, true, now);
        } else if u.keepalive.ping_due(now) && (paused || self.manager.role() == Some(Role::Leader)) {
            // A side that stopped reading sends nothing else, so it PINGs to show the peer's
            // keepalive that it is alive (Python answers any PING with a PONG).
            let ping_id: [u8; 4] = self.rng.r#gen();
            let ping = self.l4.as_ref().and_then(|l| l.send_ping(ping_id));
            self.send_in_use(ping, now);
        }
    }

    // ----- application -------------------------------------------------------------------

    fn live(&self) -> Result<(), Error> {
        if self.ended { Err(Error::Ended) } else { Ok(()) }
    }

    /// Listens for `subprotocol`: OPENs for it (held ones included) come as
    /// [`Action::Accepted`], followed by whatever arrived behind them.
    pub fn listen(&mut self, subprotocol: &str) -> Result<(), Error> {
        self.live()?;
        for (scid, p) in self.subs.listen(subprotocol) {
            self.push(Action::Accepted {
                scid,
                subprotocol: p.subprotocol,
            });
            for h in p.held {
                self.push(match h {
                    Held::Data(data) => Action::Data { scid, data },
                    Held::Close => Action::PeerClosed { scid },
                });
            }
        }
        Ok(())
    }

    /// Opens a subchannel for `subprotocol`; DATA may follow at once.
    pub fn open(&mut self, subprotocol: &str, now: Instant) -> Result<u32, Error> {
        self.live()?;
        let l4 = self.l4.as_mut().ok_or(Error::NotYet)?;
        let scid = l4.allocate_scid()?;
        let r = l4.send_open(scid, subprotocol)?;
        self.subs.opened_locally(scid);
        self.send_in_use(r, now);
        Ok(scid)
    }

    /// Whether a write of `len` bytes would be accepted by the unacked queue now. When it
    /// would not, [`Action::Writable`] follows once the queue drained (as after
    /// [`Error::WouldBlock`]), so a driver can hold the data instead of losing it to the error.
    pub fn has_room(&mut self, len: usize) -> bool {
        let unacked = self.unacked_bytes();
        let room = unacked == 0 || unacked + SUBCHANNEL_HEADER_LEN + len <= self.config.max_unacked_bytes;
        if !room {
            self.write_blocked = true;
            self.update_pause();
        }
        room
    }

    /// Writes one DATA record on `scid`.
    pub fn write(&mut self, scid: u32, data: impl Into<Bytes>, now: Instant) -> Result<(), Error> {
        self.live()?;
        let data: Bytes = data.into();
        if data.len() > self.config.max_write_len {
            return Err(Error::RecordTooLarge {
                len: data.len(),
                max: self.config.max_write_len,
            });
        }
        let limit = self.config.max_unacked_bytes;
        let l4 = self.l4.as_mut().ok_or(Error::NotYet)?;
        let unacked = l4.unacked_bytes();
        if unacked > 0 && unacked + SUBCHANNEL_HEADER_LEN + data.len() > limit {
            self.write_blocked = true;
            self.update_pause();
            return Err(Error::WouldBlock { unacked, limit });
        }
        let r = l4.send_data(scid, data)?;
        self.send_in_use(r, now);
        Ok(())
    }

    /// Half-closes `scid`: sends CLOSE; reading goes on until [`Action::PeerClosed`].
    pub fn close(&mut self, scid: u32, now: Instant) -> Result<(), Error> {
        self.live()?;
        let l4 = self.l4.as_mut().ok_or(Error::NotYet)?;
        let r = l4.send_close(scid)?;
        self.subs.we_closed(scid);
        self.send_in_use(r, now);
        Ok(())
    }

    /// The application read `n` bytes of `scid`: grants that much receive credit again.
    pub fn consumed(&mut self, scid: u32, n: usize, now: Instant) {
        self.now = Some(now);
        self.subs.consumed(scid, n);
        self.update_pause();
    }

    /// Sends a PING with `ping_id` on the connection in use ([`Action::Pong`] follows when the
    /// peer answers; a PING lost with its connection is never answered).
    pub fn ping(&mut self, ping_id: [u8; 4], now: Instant) -> Result<(), Error> {
        self.live()?;
        let l4 = self.l4.as_ref().ok_or(Error::NotYet)?;
        let r = l4.send_ping(ping_id).ok_or(Error::NotConnected)?;
        let id = self.connection_in_use().ok_or(Error::NotConnected)?;
        if self.app_pings.len() >= MAX_APP_PINGS {
            // The oldest was surely lost with an earlier connection.
            self.app_pings.pop_front();
        }
        self.app_pings.push_back(ping_id);
        self.send_on(id, &r, now);
        Ok(())
    }

    /// Ends Dilation (connections are closed).
    pub fn stop(&mut self, now: Instant) {
        // What arrived is acknowledged before the end, so the peer does not wait for it.
        self.flush_ack(now);
        let acts = self.manager.stop();
        self.manager_actions(acts, now);
    }
}
