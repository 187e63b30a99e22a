//! The Dilation task: owns the sans-IO endpoint, feeds it the mailbox (through the wormhole
//! driver's port), the connections' bytes, the application's requests and the time, and
//! performs its actions. Every decision is the endpoint's (or, for dial scheduling, the
//! connector's races).
//!
//! Owns: the connections ([`Link`]s), the subchannel pipes, the listeners by subprotocol, the
//! writes held while the unacked queue is full (in order, shutdowns included), the status.
//! Must not: parse or produce protocol bytes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use wormhole_proto::dilation::connection::relay_handshake;
use wormhole_proto::dilation::endpoint::{Action, ConnectionId, Dilation, Error as EpError};
use wormhole_proto::dilation::noise::dilation_psk;
use wormhole_proto::machine::WormholeError;
use wormhole_proto::transit::RelayHint;

use super::connector::{Connector, NetEvent, ToDriver};
use super::link::{Link, LinkEvent};
use super::port::Inbound;
use super::subchannel::SubEvent;
use super::{
    AppRequest, Dilated, DilationError, DilationOptions, DilationStatus, Subchannel, SubchannelListener,
};
use crate::driver::Request;
use crate::transit::stream::TransitStream;

/// Reads in flight from all connections to this task (each up to 256 KiB).
const LINK_QUEUE: usize = 8;
/// Most queued events handled after a wake-up before the next `perform`.
const READY_BATCH: usize = 64;

/// Checks `options` before anything is attached: our relays and our Dilation side.
pub(crate) fn validate(options: &DilationOptions) -> Result<(RelayHint, String), DilationError> {
    let relays = options.relay_hints()?;
    let side = match &options.side {
        Some(s)
            if s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            s.clone()
        }
        Some(s) => return Err(DilationError::BadSide(s.clone())),
        None => wormhole_proto::dilation::manager::new_side(&mut rand::thread_rng()),
    };
    Ok((relays, side))
}

/// Starts the Dilation task of a wormhole.
pub(crate) fn start(
    options: DilationOptions,
    (relays, side): (RelayHint, String),
    inbound: mpsc::UnboundedReceiver<Inbound>,
    wormhole: mpsc::UnboundedSender<Request>,
) -> Dilated {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(DilationStatus::default());
    let (link_tx, link_rx) = mpsc::channel(LINK_QUEUE);
    let (net_tx, net_rx) = mpsc::channel(16);
    let dialer = options.dialer.clone().unwrap_or_default();
    let connector = Connector::new(
        relays,
        !options.no_listen && !dialer.is_proxied(),
        dialer,
        options.advertise.clone(),
        options.relay_delay,
        options.handshake_timeout,
        net_tx,
    );
    let task = Task {
        side,
        ep: None,
        psk: None,
        pre: Pre::default(),
        phase: 0,
        inbound: Some(inbound),
        wormhole,
        requests: req_rx,
        handles: req_tx.downgrade(),
        link_tx,
        link_rx,
        net_rx,
        links: HashMap::new(),
        candidates: HashMap::new(),
        next_conn: 0,
        in_use: None,
        connector,
        subs: HashMap::new(),
        listeners: HashMap::new(),
        parked_opens: Vec::new(),
        held: VecDeque::new(),
        pings: HashMap::new(),
        next_ping: u32::MAX,
        closing: None,
        status: status_tx,
        options,
    };
    tokio::spawn(task.run());
    Dilated {
        requests: req_tx,
        status: status_rx,
    }
}

/// What arrived before the endpoint could be built (it needs the key and the peer's versions).
#[derive(Default)]
struct Pre {
    key: Option<[u8; 32]>,
    can_dilate: Option<Vec<String>>,
    early: Vec<Vec<u8>>,
}

/// A write or shutdown held while the unacked queue is full.
enum Held {
    Write(u32, bytes::Bytes, oneshot::Sender<Result<(), DilationError>>),
    Shutdown(u32, oneshot::Sender<Result<(), DilationError>>),
}

struct Task {
    options: DilationOptions,
    /// `close()` was asked for: stop once nothing is unacknowledged, or at this deadline.
    closing: Option<Instant>,
    side: String,
    ep: Option<Dilation>,
    psk: Option<[u8; 32]>,
    pre: Pre,
    /// The next inbound `dilate-N` (the Boss hands them over in order).
    phase: u64,
    inbound: Option<mpsc::UnboundedReceiver<Inbound>>,
    wormhole: mpsc::UnboundedSender<Request>,
    requests: mpsc::UnboundedReceiver<AppRequest>,
    /// Upgraded for each new handle; the task stops once every handle is gone.
    handles: mpsc::WeakUnboundedSender<AppRequest>,
    link_tx: mpsc::Sender<LinkEvent>,
    link_rx: mpsc::Receiver<LinkEvent>,
    net_rx: mpsc::Receiver<NetEvent>,
    links: HashMap<ConnectionId, Link>,
    /// Inbound connections that must win before this deadline.
    candidates: HashMap<ConnectionId, Instant>,
    next_conn: u64,
    in_use: Option<ConnectionId>,
    connector: Connector,
    /// `None`: the handle was dropped; what arrives is consumed here.
    subs: HashMap<u32, Option<mpsc::UnboundedSender<SubEvent>>>,
    listeners: HashMap<String, mpsc::UnboundedSender<Subchannel>>,
    parked_opens: Vec<(String, oneshot::Sender<Result<Subchannel, DilationError>>)>,
    held: VecDeque<Held>,
    status: watch::Sender<DilationStatus>,
    /// The application's PINGs waiting for their PONG, and when each was sent.
    pings: HashMap<[u8; 4], PendingPing>,
    next_ping: u32,
}

type PendingPing = (Instant, oneshot::Sender<Result<Duration, DilationError>>);

/// At most this many application PINGs wait for an answer at once.
const MAX_PINGS: usize = 64;

enum Wake {
    Inbound(Option<Inbound>),
    Request(Option<AppRequest>),
    Link(Option<LinkEvent>),
    Net(Option<NetEvent>),
    Timer,
}

fn map_error(e: EpError, scid: u32) -> DilationError {
    match e {
        EpError::PeerCannotDilate => DilationError::PeerCannotDilate,
        EpError::EqualSides => DilationError::EqualSides,
        EpError::RecordTooLarge { len, max } => DilationError::RecordTooLarge { len, max },
        EpError::Ended => DilationError::Ended,
        other => DilationError::Subchannel {
            scid,
            reason: other.to_string(),
        },
    }
}

impl Task {
    async fn run(mut self) {
        loop {
            let now = Instant::now();
            self.linger_done(now);
            self.perform(now);
            if self.status.borrow().ended.is_some() {
                break;
            }
            let wake = self.wait().await;
            let now = Instant::now();
            match wake {
                Wake::Inbound(m) => self.on_inbound(m, now),
                Wake::Request(Some(r)) => self.on_request(r, now),
                Wake::Request(None) => self.stop(now),
                Wake::Link(Some(ev)) => self.on_link(ev, now),
                Wake::Net(Some(ev)) => self.on_net(ev, now),
                Wake::Link(None) | Wake::Net(None) => {}
                Wake::Timer => self.on_timer(now),
            }
            self.take_ready(now);
        }
    }

    /// Handles the requests and link events that are already queued (a bounded number), so one
    /// `perform` and one wait serve a batch instead of each record.
    fn take_ready(&mut self, now: Instant) {
        for _ in 0..READY_BATCH {
            if self.status.borrow().ended.is_some() {
                return;
            }
            if let Ok(r) = self.requests.try_recv() {
                self.on_request(r, now);
            } else if let Ok(ev) = self.link_rx.try_recv() {
                self.on_link(ev, now);
            } else {
                return;
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let ep = self.ep.as_ref().and_then(Dilation::poll_timeout);
        let cand = self.candidates.values().min().copied();
        [ep, self.connector.poll_timeout(), cand, self.closing]
            .into_iter()
            .flatten()
            .min()
    }

    async fn wait(&mut self) -> Wake {
        let deadline = self.deadline();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let inbound = async {
            match self.inbound.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = inbound => Wake::Inbound(m),
            r = self.requests.recv() => Wake::Request(r),
            ev = self.link_rx.recv() => Wake::Link(ev),
            ev = self.net_rx.recv() => Wake::Net(ev),
            () = sleep => Wake::Timer,
        }
    }

    // ----- mailbox -----------------------------------------------------------------------

    fn on_inbound(&mut self, m: Option<Inbound>, now: Instant) {
        match m {
            Some(Inbound::Key(k)) => self.pre.key = Some(k),
            Some(Inbound::PeerCanDilate(list)) => self.pre.can_dilate = Some(list),
            Some(Inbound::Mailbox(body)) => match self.ep.as_mut() {
                Some(ep) => {
                    let phase = format!("dilate-{}", self.phase);
                    self.phase += 1;
                    if let Err(e) = ep.mailbox_received(&phase, &body, now) {
                        tracing::warn!("Dilation: {e}");
                    }
                }
                None => self.pre.early.push(body),
            },
            Some(Inbound::Overflow) => {
                let why = "too many Dilation messages before dilate() was called";
                self.end(Err(DilationError::Wormhole(WormholeError::Protocol(why.into()))));
                return;
            }
            Some(Inbound::Closed(e)) => {
                self.mailbox_closed(e);
                return;
            }
            None => {
                self.mailbox_closed(None);
                return;
            }
        }
        self.try_build(now);
    }

    fn mailbox_closed(&mut self, e: Option<WormholeError>) {
        {
            {
                self.inbound = None;
                if self.ep.is_none() {
                    self.end(Err(DilationError::Wormhole(e.unwrap_or(WormholeError::Closed))));
                } else {
                    tracing::debug!("Dilation: the wormhole closed; no more reconnection messages");
                }
            }
        }
    }

    fn try_build(&mut self, now: Instant) {
        if self.ep.is_some() {
            return;
        }
        let (Some(key), Some(can)) = (self.pre.key, self.pre.can_dilate.clone()) else {
            return;
        };
        let Ok(psk) = dilation_psk(&key) else {
            self.end(Err(DilationError::Ended));
            return;
        };
        let config = self.options.endpoint_config(rand::random());
        let mut ep = Dilation::new(config, self.side.clone(), psk);
        ep.peer_versions(&can, now);
        for name in self.listeners.keys() {
            let _ = ep.listen(name);
        }
        for body in std::mem::take(&mut self.pre.early) {
            let phase = format!("dilate-{}", self.phase);
            self.phase += 1;
            if let Err(e) = ep.mailbox_received(&phase, &body, now) {
                tracing::warn!("Dilation: {e}");
            }
        }
        self.psk = Some(psk);
        self.ep = Some(ep);
    }

    // ----- application -------------------------------------------------------------------

    fn on_request(&mut self, r: AppRequest, now: Instant) {
        match r {
            AppRequest::Open(name, reply) => self.open(name, reply, now),
            AppRequest::Listen(name, reply) => {
                let _ = reply.send(self.listen(name));
            }
            AppRequest::Write { scid, data, reply } => {
                self.held.push_back(Held::Write(scid, data, reply));
                self.drain_held(now);
            }
            AppRequest::Shutdown { scid, reply } => {
                self.held.push_back(Held::Shutdown(scid, reply));
                self.drain_held(now);
            }
            AppRequest::Consumed { scid, n } => {
                if let Some(ep) = self.ep.as_mut() {
                    ep.consumed(scid, n, now);
                }
            }
            AppRequest::Dropped { scid, shut, unread } => {
                if let Some(slot) = self.subs.get_mut(&scid) {
                    *slot = None;
                }
                if let Some(ep) = self.ep.as_mut() {
                    if !shut {
                        let _ = ep.close(scid, now);
                    }
                    ep.consumed(scid, unread, now);
                }
            }
            AppRequest::Stop => self.close(now),
            AppRequest::Ping(reply) => self.ping(reply, now),
        }
    }

    /// A PING of the application's: ids count down from `u32::MAX` (keepalive PINGs are random;
    /// an answer to an id not pending is ignored).
    fn ping(&mut self, reply: oneshot::Sender<Result<Duration, DilationError>>, now: Instant) {
        self.pings.retain(|_, (_, r)| !r.is_closed());
        if self.pings.len() >= MAX_PINGS {
            let _ = reply.send(Err(DilationError::TooManyPings { max: MAX_PINGS }));
            return;
        }
        let Some(ep) = self.ep.as_mut() else {
            let _ = reply.send(Err(DilationError::NotConnected));
            return;
        };
        self.next_ping = self.next_ping.wrapping_sub(1);
        let id = self.next_ping.to_be_bytes();
        match ep.ping(id, now) {
            Ok(()) => {
                self.pings.insert(id, (now, reply));
            }
            // Before the first connection (no roles yet) or while reconnecting.
            Err(EpError::NotYet | EpError::NotConnected) => {
                let _ = reply.send(Err(DilationError::NotConnected));
            }
            Err(e) => {
                let _ = reply.send(Err(map_error(e, 0)));
            }
        }
    }

    /// `close()`: linger until the peer acknowledged what we wrote (see [`Task::linger_done`]).
    fn close(&mut self, now: Instant) {
        if self.closing.is_none() {
            self.closing = Some(now + self.options.close_linger);
        }
        self.linger_done(now);
    }

    /// Stops once a lingering close has nothing left to deliver, or its time is up.
    fn linger_done(&mut self, now: Instant) {
        let Some(deadline) = self.closing else {
            return;
        };
        let flushed = self.held.is_empty() && self.ep.as_ref().is_none_or(|ep| ep.unacked_bytes() == 0);
        if flushed || now >= deadline {
            if !flushed {
                tracing::info!("Dilation: closing with data the peer never acknowledged");
            }
            self.closing = None;
            self.stop(now);
        }
    }

    fn stop(&mut self, now: Instant) {
        match self.ep.as_mut() {
            Some(ep) if !ep.has_ended() => ep.stop(now),
            Some(_) => {}
            None => self.end(Ok(())),
        }
    }

    fn open(
        &mut self,
        name: String,
        reply: oneshot::Sender<Result<Subchannel, DilationError>>,
        now: Instant,
    ) {
        let Some(ep) = self.ep.as_mut() else {
            self.parked_opens.push((name, reply));
            return;
        };
        match ep.open(&name, now) {
            Ok(scid) => {
                let sub = self.pipe(scid, name);
                let _ = reply.send(sub.ok_or(DilationError::Ended));
            }
            Err(EpError::NotYet) => self.parked_opens.push((name, reply)),
            Err(e) => {
                let _ = reply.send(Err(map_error(e, 0)));
            }
        }
    }

    fn retry_opens(&mut self, now: Instant) {
        for (name, reply) in std::mem::take(&mut self.parked_opens) {
            self.open(name, reply, now);
        }
    }

    fn listen(&mut self, name: String) -> Result<SubchannelListener, DilationError> {
        if self.listeners.get(&name).is_some_and(|tx| !tx.is_closed()) {
            return Err(DilationError::AlreadyListening(name));
        }
        let keep = self.handles.upgrade().ok_or(DilationError::Ended)?;
        if let Some(ep) = self.ep.as_mut() {
            ep.listen(&name).map_err(|e| map_error(e, 0))?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.listeners.insert(name.clone(), tx);
        Ok(SubchannelListener::new(name, rx, keep))
    }

    /// A new subchannel handle for `scid`.
    fn pipe(&mut self, scid: u32, subprotocol: String) -> Option<Subchannel> {
        let requests = self.handles.upgrade()?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.subs.insert(scid, Some(tx));
        let max = (self.options.config.max_write_len, self.options.config.recv_window);
        Some(Subchannel::new(scid, subprotocol, max, requests, rx))
    }

    /// Performs held writes and shutdowns in order while the unacked queue has room.
    fn drain_held(&mut self, now: Instant) {
        let Some(ep) = self.ep.as_mut() else {
            for h in self.held.drain(..) {
                let reply = match h {
                    Held::Write(_, _, r) | Held::Shutdown(_, r) => r,
                };
                let _ = reply.send(Err(DilationError::Ended));
            }
            return;
        };
        while let Some(h) = self.held.pop_front() {
            match h {
                Held::Write(scid, data, reply) => {
                    if !ep.has_room(data.len()) {
                        self.held.push_front(Held::Write(scid, data, reply));
                        return;
                    }
                    let _ = reply.send(ep.write(scid, data, now).map_err(|e| map_error(e, scid)));
                }
                Held::Shutdown(scid, reply) => {
                    let _ = reply.send(ep.close(scid, now).map_err(|e| map_error(e, scid)));
                }
            }
        }
    }

    // ----- connections -------------------------------------------------------------------

    fn on_link(&mut self, ev: LinkEvent, now: Instant) {
        match ev {
            LinkEvent::Data(id, bytes) => {
                if self.links.contains_key(&id)
                    && let Some(ep) = self.ep.as_mut()
                {
                    ep.connection_data_buf(id, bytes, now);
                }
            }
            LinkEvent::Lost(id, why) => {
                if self.links.remove(&id).is_some() {
                    tracing::debug!("Dilation: connection {id:?} lost: {why}");
                    self.forget(id, &why, now);
                    if let Some(ep) = self.ep.as_mut() {
                        ep.connection_lost(id, now);
                    }
                }
            }
        }
    }

    /// Bookkeeping for a connection that is gone.
    fn forget(&mut self, id: ConnectionId, why: &str, now: Instant) {
        self.candidates.remove(&id);
        self.connector.ended(id, why, now);
        if self.in_use == Some(id) {
            self.in_use = None;
            self.status.send_modify(|s| s.connected = false);
        }
    }

    fn on_net(&mut self, ev: NetEvent, now: Instant) {
        match ev {
            NetEvent::Dialed { race, id, result } => self.connector.dialed(race, id, result, now),
            NetEvent::Accepted(stream, peer) => {
                tracing::debug!("Dilation: inbound connection from {peer}");
                if self.connector.is_running() {
                    let id = self.add_link(TransitStream::Tcp(stream), false, now);
                    self.candidates.insert(id, now + self.options.handshake_timeout);
                }
            }
        }
    }

    fn add_link(&mut self, stream: TransitStream, relay: bool, now: Instant) -> ConnectionId {
        let id = ConnectionId(self.next_conn);
        self.next_conn += 1;
        let frames = self.ep.as_ref().map(|ep| ep.frame_pool()).unwrap_or_default();
        self.links
            .insert(id, Link::spawn(id, stream, self.link_tx.clone(), frames));
        let line = match (relay, self.psk) {
            (true, Some(psk)) => relay_handshake(&psk, &self.side).ok(),
            _ => None,
        };
        if let Some(ep) = self.ep.as_mut() {
            ep.connection_new(id, line, now);
        }
        id
    }

    fn on_timer(&mut self, now: Instant) {
        if let Some(ep) = self.ep.as_mut() {
            ep.handle_timeout(now);
        }
        self.connector.handle_timeout(now);
        let expired: Vec<ConnectionId> = self
            .candidates
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.candidates.remove(&id);
            if let Some(l) = self.links.remove(&id) {
                l.abort();
                self.forget(id, "handshake timeout", now);
                if let Some(ep) = self.ep.as_mut() {
                    ep.connection_lost(id, now);
                }
            }
        }
    }

    // ----- actions -----------------------------------------------------------------------

    fn perform(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            while let Some(a) = self.ep.as_mut().and_then(Dilation::poll_action) {
                busy = true;
                self.action(a, now);
            }
            for t in self.connector.poll() {
                busy = true;
                match t {
                    ToDriver::NewConnection { stream, relay, owner } => {
                        let id = self.add_link(stream, relay, now);
                        if let Some(o) = owner {
                            self.connector.bind(o, id);
                        }
                    }
                    ToDriver::Drop(id) => {
                        if let Some(l) = self.links.remove(&id) {
                            l.abort();
                            self.forget(id, "handshake timeout", now);
                            if let Some(ep) = self.ep.as_mut() {
                                ep.connection_lost(id, now);
                            }
                        }
                    }
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn action(&mut self, a: Action, now: Instant) {
        match a {
            Action::SendMailbox { body } => {
                let _ = self.wormhole.send(Request::SendDilation(body));
            }
            Action::StartConnector { role, generation } => {
                tracing::debug!("Dilation: connector generation {generation} as {role:?}");
                self.status.send_modify(|s| s.role = Some(role));
                let hints = self.connector.start(role, now);
                if let Some(ep) = self.ep.as_mut() {
                    ep.local_hints(hints, now);
                }
                self.retry_opens(now);
            }
            Action::StopConnector => self.connector.stop(),
            Action::Dial { hints } => self.connector.dial(hints, now),
            Action::Write { conn, bytes } => {
                if let Some(l) = self.links.get(&conn) {
                    l.write(bytes);
                }
            }
            Action::Close { conn } => {
                if let Some(l) = self.links.remove(&conn) {
                    l.close();
                }
                self.forget(conn, "closed", now);
            }
            Action::Abort { conn } => {
                if let Some(l) = self.links.remove(&conn) {
                    l.abort();
                }
                self.forget(conn, "aborted", now);
            }
            Action::PauseReading { conn } => self.links.get(&conn).into_iter().for_each(|l| l.pause(true)),
            Action::ResumeReading { conn } => self.links.get(&conn).into_iter().for_each(|l| l.pause(false)),
            Action::Connected { conn, role } => {
                tracing::debug!("Dilation: connection {conn:?} in use as {role:?}");
                self.connector.won(conn, now);
                self.candidates.clear();
                self.in_use = Some(conn);
                self.status.send_modify(|s| {
                    s.role = Some(role);
                    s.connected = true;
                    s.connections += 1;
                });
                self.retry_opens(now);
            }
            Action::Accepted { scid, subprotocol } => {
                let sub = self.pipe(scid, subprotocol.clone());
                match (sub, self.listeners.get(&subprotocol)) {
                    (Some(sub), Some(tx)) => {
                        let _ = tx.send(sub);
                    }
                    _ => tracing::debug!("Dilation: subchannel {scid} ({subprotocol}) has no listener"),
                }
            }
            Action::Data { scid, data } => self.deliver(scid, SubEvent::Data(data), now),
            Action::PeerClosed { scid } => self.deliver(scid, SubEvent::PeerClosed, now),
            Action::OpenRefused { scid, subprotocol } => {
                tracing::info!(
                    "Dilation: refused subchannel {scid} for {subprotocol:?}: nobody listens for it"
                )
            }
            Action::Writable => self.drain_held(now),
            Action::Pong { ping_id } => {
                if let Some((sent, reply)) = self.pings.remove(&ping_id) {
                    let _ = reply.send(Ok(now.saturating_duration_since(sent)));
                }
            }
            Action::Warning(e) => tracing::info!("Dilation: {e}"),
            Action::Ignored(why) => tracing::debug!("Dilation: ignored: {why}"),
            Action::Failed(e) => self.end(Err(map_error(e, 0))),
            Action::Stopped => self.end(Ok(())),
            other => tracing::debug!("Dilation: unknown action {other:?}"),
        }
    }

    fn deliver(&mut self, scid: u32, ev: SubEvent, now: Instant) {
        let len = match &ev {
            SubEvent::Data(d) => d.len(),
            _ => 0,
        };
        let sent = match self.subs.get(&scid) {
            Some(Some(tx)) => tx.send(ev).is_ok(),
            _ => false,
        };
        if !sent
            && len > 0
            && let Some(ep) = self.ep.as_mut()
        {
            ep.consumed(scid, len, now);
        }
    }

    /// Dilation is over: every handle learns it.
    fn end(&mut self, result: Result<(), DilationError>) {
        let err = result.clone().err().unwrap_or(DilationError::Ended);
        for tx in self.subs.drain().filter_map(|(_, tx)| tx) {
            let _ = tx.send(SubEvent::Ended(err.clone()));
        }
        self.listeners.clear();
        for (_, reply) in self.parked_opens.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        for h in self.held.drain(..) {
            let reply = match h {
                Held::Write(_, _, r) | Held::Shutdown(_, r) => r,
            };
            let _ = reply.send(Err(err.clone()));
        }
        self.connector.stop();
        // Let the endpoint's last Close actions reach the links before the task ends.
        if let Some(ep) = self.ep.as_mut() {
            while let Some(a) = ep.poll_action() {
                match a {
                    Action::Close { conn } => {
                        if let Some(l) = self.links.remove(&conn) {
                            l.close();
                        }
                    }
                    Action::Write { conn, bytes } => {
                        if let Some(l) = self.links.get(&conn) {
                            l.write(bytes);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (_, l) in self.links.drain() {
            l.close();
        }
        self.status.send_modify(|s| {
            s.connected = false;
            s.ended = Some(result);
        });
    }
}
