//! One L2 connection's I/O: a reader task and a writer task around a TCP stream (or a WebSocket to
//! a relay's WebSocket port, split into halves). The reader
//! hands what it reads to the Dilation task through a bounded channel (so a slow Dilation task
//! slows the reader, not our memory) and stops reading while paused; the writer writes what
//! the endpoint produced, closes gracefully (after what is queued) or aborts (RST, nothing
//! flushed).
//!
//! Owns: the socket. Must not: look at the bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use wormhole_proto::dilation::endpoint::ConnectionId;

use crate::transit::stream::TransitStream;

/// How a writer drops its connection at once.
trait Abortable: AsyncWrite + Unpin + Send + 'static {
    /// Drop the connection now: RST for TCP (no FIN first); a WebSocket is simply dropped.
    fn abort_now(self);
}

impl Abortable for OwnedWriteHalf {
    fn abort_now(self) {
        let _ = socket2::SockRef::from(self.as_ref()).set_linger(Some(std::time::Duration::ZERO));
        // No FIN first: the socket closes (with RST) once the reader is gone too.
        self.forget();
    }
}

impl Abortable for tokio::io::WriteHalf<TransitStream> {
    fn abort_now(self) {}
}

/// Read buffer size.
const READ_CHUNK: usize = 256 << 10;
/// Most bytes of queued frames joined into one write.
const WRITE_BATCH: usize = 1 << 20;

/// What a link reports to the Dilation task.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Data(ConnectionId, Vec<u8>),
    Lost(ConnectionId, String),
}

enum WriteCmd {
    Bytes(Vec<u8>),
    Close,
    Abort,
}

/// The Dilation task's handle on one connection.
pub(crate) struct Link {
    writes: mpsc::UnboundedSender<WriteCmd>,
    /// Read buffers the Dilation task is done with, back to the reader for reuse (a fresh 256 KiB
    /// buffer per read costs page faults: the allocator maps and unmaps them).
    spare: mpsc::UnboundedSender<Vec<u8>>,
    paused: watch::Sender<bool>,
    reader: AbortHandle,
}

impl Link {
    /// Starts the tasks of `stream` as connection `id`.
    pub(crate) fn spawn(id: ConnectionId, stream: TransitStream, events: mpsc::Sender<LinkEvent>) -> Link {
        match stream {
            TransitStream::Tcp(tcp) => {
                let _ = tcp.set_nodelay(true);
                let (r, w) = tcp.into_split();
                Link::spawn_halves(id, r, w, events)
            }
            ws @ TransitStream::WebSocket(_) => {
                let (r, w) = tokio::io::split(ws);
                Link::spawn_halves(id, r, w, events)
            }
        }
    }

    fn spawn_halves<R, W>(id: ConnectionId, r: R, w: W, events: mpsc::Sender<LinkEvent>) -> Link
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: Abortable,
    {
        let (paused, paused_rx) = watch::channel(false);
        let (spare, spare_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(id, r, paused_rx, spare_rx, events.clone())).abort_handle();
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(id, w, rx, reader.clone(), events));
        Link {
            writes,
            spare,
            paused,
            reader,
        }
    }

    /// Hands a buffer of a [`LinkEvent::Data`] back once its bytes were consumed.
    pub(crate) fn recycle(&self, mut buf: Vec<u8>) {
        if buf.capacity() >= READ_CHUNK {
            buf.clear();
            let _ = self.spare.send(buf);
        }
    }

    pub(crate) fn write(&self, bytes: Vec<u8>) {
        let _ = self.writes.send(WriteCmd::Bytes(bytes));
    }

    /// Writes what is queued, then closes.
    pub(crate) fn close(self) {
        let _ = self.writes.send(WriteCmd::Close);
    }

    /// Drops the connection now (RST).
    pub(crate) fn abort(self) {
        self.reader.abort();
        let _ = self.writes.send(WriteCmd::Abort);
    }

    pub(crate) fn pause(&self, paused: bool) {
        let _ = self.paused.send(paused);
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    id: ConnectionId,
    mut r: R,
    mut paused: watch::Receiver<bool>,
    mut spare: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut fresh = move || {
        spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(READ_CHUNK))
    };
    let mut buf = fresh();
    let why = loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        match r.read_buf(&mut buf).await {
            Ok(0) => break "closed by the peer".to_owned(),
            Ok(n) => {
                // A large read hands its buffer over (no copy); a small one is copied out so
                // the queue never holds a mostly empty 256 KiB buffer per event.
                let data = if n >= READ_CHUNK / 4 {
                    std::mem::replace(&mut buf, fresh())
                } else {
                    let d = buf.clone();
                    buf.clear();
                    d
                };
                if events.send(LinkEvent::Data(id, data)).await.is_err() {
                    return;
                }
            }
            Err(e) => break e.to_string(),
        }
    };
    let _ = events.send(LinkEvent::Lost(id, why)).await;
}

async fn write_loop<W: Abortable>(
    id: ConnectionId,
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<WriteCmd>,
    reader: AbortHandle,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut next = None;
    loop {
        let cmd = match next.take() {
            Some(cmd) => cmd,
            None => match rx.recv().await {
                Some(cmd) => cmd,
                // The Link was dropped without a word: treat it as an abort.
                None => break,
            },
        };
        match cmd {
            WriteCmd::Bytes(b) => {
                // Whatever else is already queued goes out in the same write (one syscall
                // for many frames), up to a bound.
                let mut size = b.len();
                let mut batch = vec![b];
                while size < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(WriteCmd::Bytes(b)) => {
                            size += b.len();
                            batch.push(b);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = write_all_vectored(&mut w, &batch).await {
                    reader.abort();
                    let _ = events.send(LinkEvent::Lost(id, e.to_string())).await;
                    return;
                }
            }
            WriteCmd::Close => {
                let _ = w.shutdown().await;
                reader.abort();
                return;
            }
            WriteCmd::Abort => {
                w.abort_now();
                reader.abort();
                return;
            }
        }
    }
    reader.abort();
}

/// Writes every buffer of `batch`, in order, with as few vectored writes as the socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, batch: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = batch.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
