//! Forwarded connections: one `fowl` subchannel per TCP connection, opened by the side whose
//! listener the local client reached, with fowl's handshake (the opener names the service and
//! waits for `connected` before sending data) and then the bytes both ways, with half-close.
//!
//! Owns: the handshake, the pumps and their byte counts. Must not: decide which services are
//! reachable (the policy does) or let one connection's failure reach any other.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wormhole_proto::forward::{OpenReply, OpenRequest, SUBPROTOCOL_STREAM, frame};

use super::{ForwardEvent, Shared};
use crate::dilation::{Subchannel, SubchannelListener};

/// How long the opening message or its reply may take.
const HANDSHAKE: Duration = Duration::from_secs(60);
/// How long a connection to a local service may take.
const CONNECT: Duration = Duration::from_secs(10);
/// The most bytes read from a local socket into one record.
const CHUNK: usize = 64 * 1024;

/// Accept local clients on a listener for the peer's service `name`.
pub(super) async fn accept_local(shared: Arc<Shared>, listener: TcpListener, name: String) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors and the like: report, wait, go on.
                shared.emit(ForwardEvent::Error {
                    message: format!("accepting on the listener for {name}: {e}"),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let id = shared.next_id();
        shared.emit(ForwardEvent::OutgoingConnection {
            name: name.clone(),
            id,
        });
        let _ = shared.spawn(outgoing(shared.clone(), tcp, name.clone(), id));
    }
}

async fn recv_first(sub: &mut Subchannel) -> Result<bytes::Bytes, String> {
    match tokio::time::timeout(HANDSHAKE, sub.recv_record()).await {
        Err(_) => Err(format!("no handshake within {} s", HANDSHAKE.as_secs())),
        Ok(Ok(Some(r))) => Ok(r),
        Ok(Ok(None)) => Err("the peer closed the subchannel before the handshake".into()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// A local client reached our listener: open a subchannel, name the service, wait for the
/// peer's `connected`, then forward.
async fn outgoing(shared: Arc<Shared>, tcp: TcpStream, name: String, id: u64) {
    let closed = |bytes_in, bytes_out, error| ForwardEvent::Closed {
        id,
        name: name.clone(),
        incoming: false,
        bytes_in,
        bytes_out,
        error,
    };
    let mut sub = match shared.dilated.open(SUBPROTOCOL_STREAM).await {
        Ok(s) => s,
        Err(e) => return shared.emit(closed(0, 0, Some(e.to_string()))),
    };
    let opened = async {
        let req = frame::encode(&OpenRequest::new(&name)).map_err(|e| e.to_string())?;
        sub.send_record(req).await.map_err(|e| e.to_string())?;
        let reply = OpenReply::decode(&recv_first(&mut sub).await?).map_err(|e| e.to_string())?;
        Ok::<_, String>(reply)
    }
    .await;
    match opened {
        Ok(r) if r.connected => {
            let (i, o, err) = pump(&shared, sub, tcp, id).await;
            shared.emit(closed(i, o, err));
        }
        Ok(r) => {
            let reason = r.reason.unwrap_or_else(|| "Unknown".into());
            shared.emit(ForwardEvent::RemoteConnectFailed {
                id,
                reason: reason.clone(),
            });
            let _ = sub.shutdown().await;
            shared.emit(closed(0, 0, Some(reason)));
        }
        Err(e) => {
            let _ = sub.shutdown().await;
            shared.emit(closed(0, 0, Some(e)));
        }
    }
}

pub(super) async fn serve_streams(shared: Arc<Shared>, mut listener: SubchannelListener) {
    while let Some(sub) = listener.accept().await {
        let _ = shared.spawn(incoming(shared.clone(), sub));
    }
}

/// The peer opened a subchannel for one of our services: check, connect, answer, forward.
async fn incoming(shared: Arc<Shared>, mut sub: Subchannel) {
    let id = shared.next_id();
    let first = recv_first(&mut sub)
        .await
        .and_then(|r| OpenRequest::decode(&r).map_err(|e| e.to_string()));
    let req = match first {
        Ok(r) => r,
        Err(e) => {
            shared.emit(ForwardEvent::Error {
                message: format!("a forwarded connection from the peer without a valid opening: {e}"),
            });
            return refuse(sub, &e).await;
        }
    };
    let name = req.unique_name.clone().unwrap_or_default();
    shared.emit(ForwardEvent::IncomingConnection {
        name: name.clone(),
        id,
    });
    let closed = |bytes_in, bytes_out, error| ForwardEvent::Closed {
        id,
        name: name.clone(),
        incoming: true,
        bytes_in,
        bytes_out,
        error,
    };
    let target = shared.policy().on_open(&req);
    let (host, port) = match target {
        Ok(t) => t,
        Err(why) => {
            shared.emit(closed(0, 0, Some(format!("refused: {why}"))));
            return refuse(sub, &why).await;
        }
    };
    let tcp = match tokio::time::timeout(CONNECT, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let why = format!("cannot connect to {host}:{port} for service {name}: {e}");
            shared.emit(closed(0, 0, Some(why.clone())));
            return refuse(sub, &why).await;
        }
        Err(_) => {
            let why = format!(
                "no connection to {host}:{port} for service {name} within {} s",
                CONNECT.as_secs()
            );
            shared.emit(closed(0, 0, Some(why.clone())));
            return refuse(sub, &why).await;
        }
    };
    let _ = tcp.set_nodelay(true);
    let ok = match frame::encode(&OpenReply::connected()) {
        Ok(b) => sub.send_record(b).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = ok {
        return shared.emit(closed(0, 0, Some(e)));
    }
    let (i, o, err) = pump(&shared, sub, tcp, id).await;
    shared.emit(closed(i, o, err));
}

async fn refuse(mut sub: Subchannel, why: &str) {
    if let Ok(b) = frame::encode(&OpenReply::refused(why)) {
        let _ = sub.send_record(b).await;
    }
    let _ = sub.shutdown().await;
}

/// Forward both ways until both are closed or one fails. With a peer that passes half-closes
/// on, each end's close is passed on as a half-close; with fowl, the peer's CLOSE ends both
/// directions (its side reads no more): what the local service still sends is dropped and our
/// CLOSE goes back at once. Returns bytes read from the local socket, bytes written to it, and
/// the failure.
async fn pump(shared: &Arc<Shared>, sub: Subchannel, tcp: TcpStream, id: u64) -> (u64, u64, Option<String>) {
    let _ = tcp.set_nodelay(true);
    let (mut tr, mut tw) = tcp.into_split();
    let (mut sr, mut sw) = tokio::io::split(sub);
    let report = |from_local: bool, n: usize| {
        if shared.options.byte_events {
            shared.emit(ForwardEvent::Bytes {
                id,
                from_local,
                n: n as u64,
            });
        }
    };
    let mut sent = 0u64;
    let mut received = 0u64;
    let up = copy_half(&mut tr, &mut sw, &mut sent, |n| report(true, n));
    let down = copy_half(&mut sr, &mut tw, &mut received, |n| report(false, n));
    let r = if shared.options.peer_half_close {
        tokio::try_join!(up, down).map(|_| ())
    } else {
        let mut up = Box::pin(up);
        let mut down = Box::pin(down);
        tokio::select! {
            r = &mut up => match r {
                // Our CLOSE is sent: fowl answers with its own.
                Ok(()) => down.await,
                Err(e) => Err(e),
            },
            r = &mut down => match r {
                Ok(()) => {
                    drop(up);
                    sw.shutdown().await
                }
                Err(e) => Err(e),
            },
        }
    };
    (sent, received, r.err().map(|e| e.to_string()))
}

/// Copy `from` to `to` until end of file, then shut `to` down (the half-close).
async fn copy_half<R, W>(
    from: &mut R,
    to: &mut W,
    count: &mut u64,
    report: impl Fn(usize),
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        *count += n as u64;
        report(n);
    }
}
