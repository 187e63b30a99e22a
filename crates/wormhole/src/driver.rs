//! The driver task: owns the WebSocket and the reconnect timer, feeds the sans-IO
//! [`Boss`](wormhole_proto::machine::Boss) and performs its actions. It holds no protocol logic:
//! every decision is the machine's.
//!
//! In journal mode ([`crate::journal`]) it also serializes the machine after each input and holds
//! frames, events and API replies until the application's checkpoint of that state returned.
//!
//! One limit is enforced here rather than in the machine: the WebSocket message size
//! ([`MAX_FRAME_BYTES`](wormhole_proto::machine::MAX_FRAME_BYTES)). A larger message ends the session with
//! [`WormholeError::MailboxMessageTooLarge`] instead of a reconnect (the mailbox would only send
//! it again).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Interval, Sleep};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wormhole_proto::machine::{
    Action, Boss, Event as MEvent, SerializedWormholeWithKeys, StateError, WormholeError,
};

use crate::dilation::port::{DilationPort, Inbound};
use crate::events::Event;
use crate::journal::{Checkpoint, JournalState};
use crate::net::{NetworkOptions, Ws};
use crate::state::Snapshot;
use crate::timing::Timing;

/// Keepalive: a WebSocket ping this often (Python's client: 30 s)...
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// ...and the connection counts as lost after this long without any frame (Python: 60 s after
/// an unanswered ping).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// When every handle was dropped, the background close gets this long before the task ends.
const ABANDON_AFTER: Duration = Duration::from_secs(30);

type Reply = oneshot::Sender<Result<(), WormholeError>>;

/// A request from the handle to the driver.
#[derive(Debug)]
pub(crate) enum Request {
    AllocateCode(usize, Reply),
    SetCode(String, Reply),
    InputCode(Reply),
    RefreshNameplates(Reply),
    ChooseNameplate(String, Reply),
    ChooseWords(String, Reply),
    Send(Vec<u8>, Reply),
    /// `dilate()`: attach the Dilation task (`None`: it was attached before).
    Dilate(oneshot::Sender<Option<mpsc::UnboundedReceiver<Inbound>>>),
    /// One Dilation body to send as the next `dilate-N`.
    SendDilation(Vec<u8>),
    /// `serialize()`: the machine's state now.
    Serialize(oneshot::Sender<Result<SerializedWormholeWithKeys, StateError>>),
    /// `suspend()`: the state now, then stop without a word to the server.
    Suspend(oneshot::Sender<Result<SerializedWormholeWithKeys, StateError>>),
    Close,
}

/// Where the driver sends what it learns.
pub(crate) struct Outputs {
    pub state: watch::Sender<Snapshot>,
    /// Application messages for `get_message` (non-delegated mode).
    pub messages: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Every event (delegated mode).
    pub events: Option<mpsc::UnboundedSender<Event>>,
    pub timing: Option<Timing>,
    /// Journal mode: the checkpoint callback and what waits for it.
    pub journal: Option<JournalState>,
}

async fn connect(url: String, net: Arc<NetworkOptions>) -> Result<Ws, String> {
    crate::net::connect(&url, &net).await.map_err(|e| e.to_string())
}

/// Run the wormhole until it is closed.
pub(crate) async fn run(
    boss: Boss,
    url: String,
    net: NetworkOptions,
    requests: mpsc::UnboundedReceiver<Request>,
    out: Outputs,
) {
    Driver::new(boss, url, net, requests, out).run().await;
}

type Timer = Option<Pin<Box<Sleep>>>;
type Connecting = Option<JoinHandle<Result<Ws, String>>>;

/// The driver task's state: the machine, the socket (or the attempt to open one), the timers.
struct Driver {
    boss: Boss,
    url: String,
    net: Arc<NetworkOptions>,
    side: String,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Cleared once every handle was dropped.
    requests_open: bool,
    out: Outputs,
    ws: Option<Ws>,
    connecting: Connecting,
    /// The machine's timer ([`Action::SetTimer`]).
    timer: Timer,
    /// Set once every handle was dropped: how long the background close may take.
    abandon: Timer,
    keepalive: Interval,
    last_rx: Instant,
    /// Frames were fed to the socket and not flushed yet.
    unflushed: bool,
    /// Dilation's mailbox end.
    dilation: DilationPort,
    /// `dilate()` was called: serializing is refused from then on.
    dilated: bool,
    /// Journal mode (taken out of [`Outputs`]).
    journal: Option<JournalState>,
    /// Journal mode: the machine asked to drop the connection; done after the checkpoint.
    close_after_commit: bool,
}

/// What woke the driver up.
enum Wake {
    Request(Option<Request>),
    /// The socket is boxed: it is far larger than the other variants.
    Connected(Result<Result<Box<Ws>, String>, JoinError>),
    Keepalive,
    Frame(Option<Result<Message, WsError>>),
    Abandoned,
    Timer,
}

/// Whether the driver goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Driver {
    fn new(
        boss: Boss,
        url: String,
        net: NetworkOptions,
        requests: mpsc::UnboundedReceiver<Request>,
        mut out: Outputs,
    ) -> Driver {
        let journal = out.journal.take();
        let mut keepalive = tokio::time::interval(PING_INTERVAL);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Driver {
            side: boss.side().to_owned(),
            boss,
            url,
            net: Arc::new(net),
            requests,
            requests_open: true,
            out,
            ws: None,
            connecting: None,
            timer: None,
            abandon: None,
            keepalive,
            last_rx: Instant::now(),
            unflushed: false,
            dilation: DilationPort::default(),
            dilated: false,
            journal,
            close_after_commit: false,
        }
    }

    async fn run(mut self) {
        self.boss.start();
        loop {
            self.perform_actions().await;
            if self.commit().await == Flow::Stop {
                break;
            }
            if !self.flush().await {
                continue;
            }
            if std::mem::take(&mut self.close_after_commit) {
                self.close_connection().await;
            }
            if self.boss.is_closed() {
                break;
            }
            let wake = self.wait().await;
            if self.on_wake(wake).await == Flow::Stop {
                break;
            }
        }
        self.stop_connecting();
    }

    /// Perform every pending action of the machine.
    async fn perform_actions(&mut self) {
        while let Some(action) = self.boss.poll_action() {
            match action {
                Action::Connect => {
                    self.stop_connecting();
                    self.connecting = Some(tokio::spawn(connect(self.url.clone(), self.net.clone())));
                }
                Action::SendFrame(text) => match &mut self.journal {
                    Some(j) => j.held.frames.push(text),
                    None => self.send_frame(text).await,
                },
                // Journal mode: what was held goes out (once saved) before the socket closes.
                Action::CloseConnection if self.journal.is_some() => self.close_after_commit = true,
                Action::CloseConnection => self.close_connection().await,
                Action::SetTimer(at) => self.timer = Some(Box::pin(tokio::time::sleep_until(at.into()))),
                Action::CancelTimer => self.timer = None,
                Action::Deliver(MEvent::Dilation(body)) => self.dilation.mailbox(body),
                Action::Deliver(ev) if self.journal.is_some() => {
                    if let Some(j) = &mut self.journal {
                        j.held.events.push(ev);
                    }
                }
                Action::Deliver(ev) => {
                    match &ev {
                        MEvent::UnverifiedKey(k) => self.dilation.key(*k),
                        MEvent::Versions(_) => self.dilation.versions(&self.boss),
                        MEvent::Closed(r) => self.dilation.closed(r.clone().err()),
                        _ => {}
                    }
                    publish(&self.out, ev)
                }
                other => tracing::debug!("ignoring unknown action {other:?}"),
            }
        }
    }

    fn serialize(&self) -> Result<SerializedWormholeWithKeys, StateError> {
        if self.dilated {
            return Err(StateError::Dilated);
        }
        self.boss
            .snapshot()
            .map(|m| SerializedWormholeWithKeys::new(&self.url, m))
    }

    /// Journal mode: checkpoint if the state changed or events wait, then release what was
    /// held (frames, events, replies). `Stop` if the checkpoint failed: the wormhole ends with
    /// [`WormholeError::Checkpoint`] and nothing held leaves.
    async fn commit(&mut self) -> Flow {
        let Some(mut j) = self.journal.take() else {
            return Flow::Continue;
        };
        if j.failed {
            self.journal = Some(j);
            return Flow::Stop;
        }
        let state = match self.boss.snapshot() {
            Ok(m) => Some(SerializedWormholeWithKeys::new(&self.url, m)),
            Err(StateError::Closed) => None,
            Err(e) => {
                // Refused up front (dilation, code input): cannot happen in journal mode.
                tracing::warn!("journal: cannot serialize the wormhole: {e}");
                None
            }
        };
        let json = state.as_ref().map(SerializedWormholeWithKeys::to_json);
        let held = std::mem::take(&mut j.held);
        let changed = json != j.last || !held.events.is_empty();
        if changed {
            let events = held.events.iter().filter_map(public_event).collect();
            if let Err(e) = j.journal.call(Checkpoint { state, events }).await {
                tracing::warn!("{e}");
                for (reply, _) in held.replies {
                    let _ = reply.send(Err(e.clone()));
                }
                publish(&self.out, MEvent::Closed(Err(e)));
                j.failed = true;
                self.journal = Some(j);
                return Flow::Stop;
            }
            j.last = json;
        }
        for text in held.frames {
            self.send_frame(text).await;
        }
        for ev in held.events {
            publish(&self.out, ev);
        }
        for (reply, res) in held.replies {
            let _ = reply.send(res);
        }
        self.journal = Some(j);
        Flow::Continue
    }

    async fn close_connection(&mut self) {
        self.stop_connecting();
        if let Some(mut sock) = self.ws.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), sock.close(None)).await;
        }
    }

    /// Queue a frame; [`Driver::flush`] sends the batch, so pipelined commands share a write.
    async fn send_frame(&mut self, text: String) {
        let Some(sock) = self.ws.as_mut() else { return };
        if let Some(t) = &self.out.timing {
            t.ws_send(&self.side, &text);
        }
        self.unflushed = true;
        if let Err(e) = sock.feed(Message::text(text)).await {
            tracing::debug!("websocket send failed: {e}");
            self.lost(&e.to_string());
        }
    }

    /// Flush what [`Driver::send_frame`] queued; false if that lost the connection.
    async fn flush(&mut self) -> bool {
        if !std::mem::take(&mut self.unflushed) {
            return true;
        }
        let Some(sock) = self.ws.as_mut() else { return true };
        match sock.flush().await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("websocket flush failed: {e}");
                self.lost(&e.to_string());
                false
            }
        }
    }

    async fn wait(&mut self) -> Wake {
        tokio::select! {
            req = self.requests.recv(), if self.requests_open => Wake::Request(req),
            res = join_connect(&mut self.connecting) => Wake::Connected(res.map(|r| r.map(Box::new))),
            _ = self.keepalive.tick() => Wake::Keepalive,
            msg = next_frame(&mut self.ws) => Wake::Frame(msg),
            () = wait_timer(&mut self.abandon) => Wake::Abandoned,
            () = wait_timer(&mut self.timer) => Wake::Timer,
        }
    }

    async fn on_wake(&mut self, wake: Wake) -> Flow {
        match wake {
            Wake::Request(Some(Request::Dilate(reply))) => {
                self.dilated = true;
                let _ = reply.send(self.dilation.attach(&self.boss));
            }
            Wake::Request(Some(Request::Serialize(reply))) => {
                let _ = reply.send(self.serialize());
            }
            Wake::Request(Some(Request::Suspend(reply))) => {
                let res = self.serialize();
                let ok = res.is_ok();
                let _ = reply.send(res);
                if ok {
                    // No `close`: the mailbox stays open for the restored wormhole.
                    self.stop_connecting();
                    self.ws = None;
                    return Flow::Stop;
                }
            }
            Wake::Request(Some(Request::InputCode(reply))) if self.journal.is_some() => {
                let _ = reply.send(Err(WormholeError::Checkpoint(
                    "interactive code input is not available in journal mode".into(),
                )));
            }
            Wake::Request(Some(Request::SendDilation(body))) => {
                if let Err(e) = self.boss.send_dilation_message(&body) {
                    tracing::debug!("Dilation message not sent: {e}");
                }
            }
            Wake::Request(Some(r)) => {
                if let Some((reply, res)) = handle_request(&mut self.boss, r) {
                    match &mut self.journal {
                        Some(j) => j.held.replies.push((reply, res)),
                        None => {
                            let _ = reply.send(res);
                        }
                    }
                }
            }
            Wake::Request(None) => {
                // Every handle was dropped: close politely.
                self.requests_open = false;
                self.boss.close();
                self.abandon = Some(Box::pin(tokio::time::sleep(ABANDON_AFTER)));
            }
            Wake::Connected(res) => self.on_connected(res),
            Wake::Keepalive => self.on_keepalive().await,
            Wake::Frame(msg) => return self.on_frame(msg),
            Wake::Abandoned => {
                tracing::debug!("no handle left and the close did not finish; giving up");
                publish(&self.out, MEvent::Closed(Err(WormholeError::Closed)));
                return Flow::Stop;
            }
            Wake::Timer => {
                self.timer = None;
                self.boss.timer_fired(Instant::now());
            }
        }
        Flow::Continue
    }

    fn on_connected(&mut self, res: Result<Result<Box<Ws>, String>, JoinError>) {
        self.connecting = None;
        match res {
            Ok(Ok(sock)) => {
                self.ws = Some(*sock);
                self.last_rx = Instant::now();
                self.boss.connected(Instant::now());
            }
            Ok(Err(e)) => self.lost(&e),
            Err(e) => self.lost(&e.to_string()),
        }
    }

    /// Ping, and count the connection as lost when nothing arrived for too long.
    async fn on_keepalive(&mut self) {
        let Some(sock) = self.ws.as_mut() else { return };
        let idle = self.last_rx.elapsed() > IDLE_TIMEOUT;
        if idle || sock.send(Message::Ping(Default::default())).await.is_err() {
            self.lost(if idle {
                "no answer from the server"
            } else {
                "ping failed"
            });
        }
    }

    fn on_frame(&mut self, msg: Option<Result<Message, WsError>>) -> Flow {
        match msg {
            Some(Ok(Message::Text(text))) => {
                self.last_rx = Instant::now();
                if let Some(t) = &self.out.timing {
                    t.ws_receive(&self.side, text.as_str());
                }
                if let Err(e) = self.boss.frame_received(text.as_str(), Instant::now()) {
                    tracing::warn!("ignoring server frame: {e}");
                }
            }
            Some(Ok(Message::Binary(_))) => tracing::warn!("ignoring binary frame from the mailbox server"),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                self.last_rx = Instant::now()
            }
            // Reconnecting would only fetch the same message again: end the session, naming the limit.
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                let e = WormholeError::MailboxMessageTooLarge {
                    size,
                    limit: max_size,
                };
                tracing::warn!("{e}");
                publish(&self.out, MEvent::Closed(Err(e)));
                return Flow::Stop;
            }
            Some(Err(e)) => self.lost(&e.to_string()),
            Some(Ok(Message::Close(_))) | None => self.lost("connection closed by the server"),
        }
        Flow::Continue
    }

    /// Drop the socket and tell the machine, with the time and the reconnect jitter it needs.
    fn lost(&mut self, why: &str) {
        self.ws = None;
        self.boss
            .connection_lost(Instant::now(), rand::random::<f64>(), why);
    }

    fn stop_connecting(&mut self) {
        if let Some(h) = self.connecting.take() {
            h.abort();
        }
    }
}

async fn join_connect(h: &mut Connecting) -> Result<Result<Ws, String>, JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(ws: &mut Option<Ws>) -> Option<Result<Message, WsError>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn wait_timer(t: &mut Timer) {
    match t {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Apply an API request; the reply to send and its value (sent at once, or after the
/// checkpoint in journal mode).
fn handle_request(boss: &mut Boss, req: Request) -> Option<(Reply, Result<(), WormholeError>)> {
    let (res, reply) = match req {
        Request::AllocateCode(n, r) => (boss.allocate_code(n), r),
        Request::SetCode(c, r) => (boss.set_code(&c), r),
        Request::InputCode(r) => (boss.input_code(), r),
        Request::RefreshNameplates(r) => (boss.input_refresh_nameplates(), r),
        Request::ChooseNameplate(n, r) => (boss.input_choose_nameplate(&n), r),
        Request::ChooseWords(w, r) => (boss.input_choose_words(&w), r),
        Request::Send(m, r) => (boss.send_message(m), r),
        Request::Close => {
            boss.close();
            return None;
        }
        Request::Dilate(_) | Request::SendDilation(_) | Request::Serialize(_) | Request::Suspend(_) => {
            return None;
        }
    };
    Some((reply, res))
}

/// The public form of a machine event, if it has one on the event stream.
fn public_event(ev: &MEvent) -> Option<Event> {
    Some(match ev {
        MEvent::Welcome(w) => Event::Welcome(w.clone()),
        MEvent::Code(c) => Event::Code(c.clone()),
        MEvent::UnverifiedKey(k) => Event::Key(*k),
        MEvent::Verifier(v) => Event::Verifier(*v),
        MEvent::Versions(v) => Event::Versions(v.clone()),
        MEvent::Message(m) => Event::Message(m.clone()),
        MEvent::Closed(r) => Event::Closed(r.clone()),
        _ => return None,
    })
}

fn publish(out: &Outputs, ev: MEvent) {
    let forward = |e: Event| {
        if let Some(tx) = &out.events {
            let _ = tx.send(e);
        }
    };
    match ev {
        MEvent::Welcome(w) => {
            out.state.send_modify(|s| s.welcome = Some(w.clone()));
            forward(Event::Welcome(w));
        }
        MEvent::Code(c) => {
            out.state.send_modify(|s| s.code = Some(c.clone()));
            forward(Event::Code(c));
        }
        MEvent::UnverifiedKey(k) => {
            out.state.send_modify(|s| s.key = Some(k));
            forward(Event::Key(k));
        }
        MEvent::Verifier(v) => {
            out.state.send_modify(|s| s.verifier = Some(v));
            forward(Event::Verifier(v));
        }
        MEvent::Versions(v) => {
            out.state.send_modify(|s| s.versions = Some(v.clone()));
            forward(Event::Versions(v));
        }
        MEvent::Message(m) => {
            if let Some(tx) = &out.messages {
                let _ = tx.send(m.clone());
            }
            forward(Event::Message(m));
        }
        MEvent::Nameplates(n) => out.state.send_modify(|s| {
            s.nameplates = n;
            s.nameplates_generation += 1;
        }),
        MEvent::WordlistReady => out.state.send_modify(|s| s.wordlist_ready = true),
        MEvent::Closed(r) => {
            out.state.send_modify(|s| s.closed = Some(r.clone()));
            forward(Event::Closed(r));
        }
        other => tracing::debug!("ignoring machine event {other:?}"),
    }
}
