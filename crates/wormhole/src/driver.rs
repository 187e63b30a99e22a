//! The driver task: owns the WebSocket and the reconnect timer, feeds the sans-IO
//! [`Boss`](wormhole_proto::machine::Boss) and performs its actions. It holds no protocol logic:
//! every decision is the machine's.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wormhole_proto::machine::{Action, Boss, Event as MEvent, MAX_FRAME_BYTES, WormholeError};

use crate::events::Event;
use crate::state::Snapshot;
use crate::timing::Timing;

/// A connection attempt (TCP + WebSocket handshake) that takes longer fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Keepalive: a WebSocket ping this often (Python's client: 30 s)...
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// ...and the connection counts as lost after this long without any frame (Python: 60 s after
/// an unanswered ping).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// When every handle was dropped, the background close gets this long before the task ends.
const ABANDON_AFTER: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
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
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

async fn connect(url: String) -> Result<Ws, String> {
    let attempt = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok((ws, _resp))) => Ok(ws),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Err(_) => Err(format!(
            "{url}: no WebSocket handshake within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// Run the wormhole until it is closed.
pub(crate) async fn run(
    mut boss: Boss,
    url: String,
    mut requests: mpsc::UnboundedReceiver<Request>,
    out: Outputs,
) {
    let side = boss.side().to_owned();
    let mut ws: Option<Ws> = None;
    let mut connecting: Option<tokio::task::JoinHandle<Result<Ws, String>>> = None;
    let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut requests_open = true;
    let mut unflushed = false;
    let mut last_rx = Instant::now();
    let mut abandon: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    let mut keepalive = tokio::time::interval(PING_INTERVAL);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    boss.start();
    loop {
        // Perform every pending action.
        while let Some(action) = boss.poll_action() {
            match action {
                Action::Connect => {
                    if let Some(h) = connecting.take() {
                        h.abort();
                    }
                    connecting = Some(tokio::spawn(connect(url.clone())));
                }
                Action::SendFrame(text) => {
                    let Some(sock) = ws.as_mut() else { continue };
                    if let Some(t) = &out.timing {
                        t.ws_send(&side, &text);
                    }
                    // Queue now, flush once after this batch: pipelined commands share a write.
                    unflushed = true;
                    if let Err(e) = sock.feed(Message::text(text)).await {
                        tracing::debug!("websocket send failed: {e}");
                        ws = None;
                        connection_lost(&mut boss, &e.to_string());
                    }
                }
                Action::CloseConnection => {
                    if let Some(h) = connecting.take() {
                        h.abort();
                    }
                    if let Some(mut sock) = ws.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), sock.close(None)).await;
                    }
                }
                Action::SetTimer(at) => {
                    timer = Some(Box::pin(tokio::time::sleep_until(at.into())));
                }
                Action::CancelTimer => timer = None,
                Action::Deliver(ev) => publish(&out, ev),
                other => tracing::debug!("ignoring unknown action {other:?}"),
            }
        }
        if std::mem::take(&mut unflushed)
            && let Some(sock) = ws.as_mut()
            && let Err(e) = sock.flush().await
        {
            tracing::debug!("websocket flush failed: {e}");
            ws = None;
            connection_lost(&mut boss, &e.to_string());
            continue;
        }
        if boss.is_closed() {
            break;
        }
        tokio::select! {
            req = requests.recv(), if requests_open => match req {
                Some(r) => handle_request(&mut boss, r),
                None => {
                    // Every handle was dropped: close politely.
                    requests_open = false;
                    boss.close();
                    abandon = Some(Box::pin(tokio::time::sleep(ABANDON_AFTER)));
                }
            },
            res = join_connect(&mut connecting) => {
                connecting = None;
                match res {
                    Ok(Ok(sock)) => {
                        ws = Some(sock);
                        last_rx = Instant::now();
                        boss.connected(Instant::now());
                    }
                    Ok(Err(e)) => connection_lost(&mut boss, &e),
                    Err(e) => connection_lost(&mut boss, &e.to_string()),
                }
            }
            _ = keepalive.tick() => {
                if let Some(sock) = ws.as_mut() {
                    let idle = last_rx.elapsed() > IDLE_TIMEOUT;
                    if idle || sock.send(Message::Ping(Default::default())).await.is_err() {
                        ws = None;
                        let why = if idle { "no answer from the server" } else { "ping failed" };
                        connection_lost(&mut boss, why);
                    }
                }
            }
            msg = next_frame(&mut ws) => match msg {
                Some(Ok(Message::Text(text))) => {
                    last_rx = Instant::now();
                    if let Some(t) = &out.timing {
                        t.ws_receive(&side, text.as_str());
                    }
                    if let Err(e) = boss.frame_received(text.as_str(), Instant::now()) {
                        tracing::warn!("ignoring server frame: {e}");
                    }
                }
                Some(Ok(Message::Binary(_))) => tracing::warn!("ignoring binary frame from the mailbox server"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    last_rx = Instant::now();
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let reason = match msg {
                        Some(Err(e)) => e.to_string(),
                        _ => "connection closed by the server".to_owned(),
                    };
                    ws = None;
                    connection_lost(&mut boss, &reason);
                }
            },
            () = wait_timer(&mut abandon) => {
                tracing::debug!("no handle left and the close did not finish; giving up");
                publish(&out, MEvent::Closed(Err(WormholeError::Closed)));
                break;
            }
            () = wait_timer(&mut timer) => {
                timer = None;
                boss.timer_fired(Instant::now());
            }
        }
    }
    if let Some(h) = connecting.take() {
        h.abort();
    }
}

/// Tell the machine the connection is gone, with the time and the reconnect jitter it needs.
fn connection_lost(boss: &mut Boss, why: &str) {
    boss.connection_lost(Instant::now(), rand::random::<f64>(), why);
}

async fn join_connect(
    h: &mut Option<tokio::task::JoinHandle<Result<Ws, String>>>,
) -> Result<Result<Ws, String>, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(ws: &mut Option<Ws>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn wait_timer(t: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match t {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}

fn handle_request(boss: &mut Boss, req: Request) {
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
            return;
        }
    };
    let _ = reply.send(res);
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
