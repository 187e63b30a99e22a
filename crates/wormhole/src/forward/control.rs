//! The `fowl-commands` subchannels: the peer's requests to listen for its services, and ours.
//!
//! Owns: the listeners opened for the peer (closed when the subchannel their request came on
//! closes, as fowl does) and the retries of a request that met fowl's start-up race. Must not:
//! pump connection bytes (that is `stream`'s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use wormhole_proto::forward::{
    ControlMsg, ListenDecision, ListenerResponse, RequestListener, SUBPROTOCOL_COMMANDS, ServiceSpec, frame,
};

use super::{ForwardEvent, Shared, stream};
use crate::dilation::{Subchannel, SubchannelListener};

/// fowl registers the services it allows only once it is dilated, so a request that arrives
/// first is refused with "No service permitted". Such a refusal, within this long after our
/// first request, is retried.
const RACE_WINDOW: Duration = Duration::from_secs(10);
const RACE_RETRY: Duration = Duration::from_millis(250);

pub(super) async fn serve_commands(shared: Arc<Shared>, mut listener: SubchannelListener) {
    while let Some(sub) = listener.accept().await {
        let _ = shared.spawn(handle_commands(shared.clone(), sub));
    }
}

/// One control subchannel the peer opened: answer each request on it.
async fn handle_commands(shared: Arc<Shared>, mut sub: Subchannel) {
    let mut listeners: Vec<AbortHandle> = Vec::new();
    loop {
        let record = match sub.recv_record().await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        match ControlMsg::decode(&record) {
            Ok(ControlMsg::RequestListener(req)) => {
                let answer = listen_for(&shared, &req, &mut listeners).await;
                if let Ok(bytes) = frame::encode(&answer)
                    && sub.send_record(bytes).await.is_err()
                {
                    break;
                }
            }
            Ok(ControlMsg::ListenerResponse(r)) => shared.emit(ForwardEvent::Error {
                message: format!(
                    "the peer sent an unasked listener-response for {:?}",
                    r.unique_name
                ),
            }),
            Ok(ControlMsg::Unknown(kind)) => shared.emit(ForwardEvent::Error {
                message: format!("Unknown control command: {kind}"),
            }),
            Err(e) => shared.emit(ForwardEvent::Error {
                message: format!("control message: {e}"),
            }),
        }
    }
    for l in listeners {
        l.abort();
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut sub).await;
}

/// Decide, bind, and say so.
async fn listen_for(
    shared: &Arc<Shared>,
    req: &RequestListener,
    listeners: &mut Vec<AbortHandle>,
) -> ListenerResponse {
    let decision = shared.policy().on_request_listener(req);
    let (name, bind, port, desired) = match decision {
        ListenDecision::Refuse(r) => {
            shared.emit(ForwardEvent::ListeningFailed {
                name: req.unique_name.clone(),
                reason: r.reason.clone().unwrap_or_default(),
            });
            return r;
        }
        ListenDecision::Listen {
            name,
            bind,
            port,
            desired_port,
        } => (name, bind, port, desired_port),
    };
    let bound = match TcpListener::bind((bind.as_str(), port.unwrap_or(0))).await {
        Ok(l) => l.local_addr().map(|a| (l, a.port())),
        Err(e) => Err(e),
    };
    match bound {
        Ok((listener, local)) => {
            shared.policy().listening(&name, local);
            shared.emit(ForwardEvent::Listening {
                name: name.clone(),
                port: local,
            });
            listeners.push(shared.spawn(stream::accept_local(shared.clone(), listener, name.clone())));
            ListenerResponse::listening(&name, desired)
        }
        Err(e) => {
            let reason = format!("cannot listen on {bind}:{}: {e}", port.unwrap_or(0));
            shared.emit(ForwardEvent::ListeningFailed {
                name: name.clone(),
                reason: reason.clone(),
            });
            ListenerResponse::refused(&name, &reason)
        }
    }
}

/// Ask the peer to listen for our service `spec`; keep the subchannel open afterwards.
pub(super) async fn request(shared: Arc<Shared>, spec: ServiceSpec) {
    let failed = |reason: String| ForwardEvent::ListeningFailed {
        name: spec.name.clone(),
        reason,
    };
    let mut sub = match shared.dilated.open(SUBPROTOCOL_COMMANDS).await {
        Ok(s) => s,
        Err(e) => return shared.emit(failed(format!("cannot open a control subchannel: {e}"))),
    };
    let started = Instant::now();
    let race_refusal = format!("No service permitted for name: {}", spec.name);
    let response = loop {
        let Ok(req) = frame::encode(&RequestListener::new(&spec.name, spec.remote_listen_port)) else {
            return shared.emit(failed("the service name is too long".into()));
        };
        if let Err(e) = sub.send_record(req).await {
            return shared.emit(failed(format!("cannot send the request: {e}")));
        }
        let resp = match sub.recv_record().await {
            Ok(Some(r)) => ControlMsg::decode(&r),
            Ok(None) => return shared.emit(failed("the peer closed the control subchannel".into())),
            Err(e) => return shared.emit(failed(e.to_string())),
        };
        match resp {
            Ok(ControlMsg::ListenerResponse(r)) => {
                let raced = !r.listening && r.reason.as_deref() == Some(race_refusal.as_str());
                if raced && started.elapsed() < RACE_WINDOW {
                    tracing::info!(service = %spec.name, "peer had not allowed the service yet (fowl start-up race); asking again");
                    tokio::time::sleep(RACE_RETRY).await;
                    continue;
                }
                break r;
            }
            Ok(other) => return shared.emit(failed(format!("unexpected answer {other:?}"))),
            Err(e) => return shared.emit(failed(format!("malformed answer: {e}"))),
        }
    };
    let port = shared.policy().on_listener_response(&spec.name, &response);
    let port = match port {
        Ok(Some(p)) => p,
        Ok(None) => match free_port().await {
            Ok(p) => p,
            Err(e) => return shared.emit(failed(format!("cannot pick a local port: {e}"))),
        },
        Err(why) => return shared.emit(failed(why)),
    };
    shared.policy().service_at(&spec.name, port);
    shared.emit(ForwardEvent::AwaitingConnect {
        name: spec.name.clone(),
        port,
    });
    shared.keep_request(sub);
}

/// A port nothing listens on right now (for a `--service NAME` without a port, as fowl does).
async fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(l.local_addr()?.port())
}
