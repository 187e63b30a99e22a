//! One L2 connection's I/O: a reader task and a writer task around a TCP stream (or a WebSocket to
//! a relay's WebSocket port, split into halves). The reader
//! hands what it reads to the Dilation task through a bounded channel (so a slow Dilation task
//! slows the reader, not our memory) and stops reading while paused; the writer writes what
//! the endpoint produced, closes gracefully (after what is queued) or aborts (RST, nothing
//! flushed). Written frame buffers go back to the endpoint's pool.
//!
//! Owns: the socket. Must not: look at the bytes.

use std::collections::VecDeque;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use wormhole_proto::dilation::endpoint::ConnectionId;
use wormhole_proto::dilation::frame_pool::FramePool;

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

impl<T: AsyncRead + AsyncWrite + Send + 'static> Abortable for tokio::io::WriteHalf<T> {
    fn abort_now(self) {}
}

/// Read buffer size.
const READ_CHUNK: usize = 256 << 10;
/// Least room left in the read buffer before it is renewed.
const READ_ROOM_MIN: usize = READ_CHUNK / 4;
/// Used-up read buffers kept for reuse once everything split off them was dropped.
const READ_SPARES: usize = 8;
/// Most bytes of queued frames joined into one write.
const WRITE_BATCH: usize = 1 << 20;

/// What a link reports to the Dilation task.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// What one read gave: split off the reader's buffer (frames and payloads stay in it).
    Data(ConnectionId, BytesMut),
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
    paused: watch::Sender<bool>,
    reader: AbortHandle,
}

impl Link {
    /// Starts the tasks of `stream` as connection `id`.
    /// Written buffers go back to `frames`.
    pub(crate) fn spawn(
        id: ConnectionId,
        stream: TransitStream,
        events: mpsc::Sender<LinkEvent>,
        frames: FramePool,
    ) -> Link {
        match stream {
            TransitStream::Tcp(tcp) => {
                let _ = tcp.set_nodelay(true);
                let (r, w) = tcp.into_split();
                Link::spawn_halves(id, r, w, events, frames)
            }
            ws @ TransitStream::WebSocket(_) => {
                let (r, w) = tokio::io::split(ws);
                Link::spawn_halves(id, r, w, events, frames)
            }
        }
    }

    fn spawn_halves<R, W>(
        id: ConnectionId,
        r: R,
        w: W,
        events: mpsc::Sender<LinkEvent>,
        frames: FramePool,
    ) -> Link
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: Abortable,
    {
        let (paused, paused_rx) = watch::channel(false);
        let reader = tokio::spawn(read_loop(id, r, paused_rx, events.clone())).abort_handle();
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(id, w, rx, reader.clone(), events, frames));
        Link {
            writes,
            paused,
            reader,
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

/// The reader's buffer, and the used-up ones it may reuse.
///
/// Every read lands in the current buffer and is split off it, so the frames in it, and the
/// DATA payloads decrypted in place, are never copied. A used-up buffer is reused once
/// everything split off it was dropped (the application wrote it out): reusing memory rather
/// than asking the allocator for more spares the kernel handing out (and zeroing) fresh pages.
struct ReadBuffers {
    current: BytesMut,
    spares: VecDeque<BytesMut>,
}

impl ReadBuffers {
    fn new() -> ReadBuffers {
        ReadBuffers {
            current: BytesMut::with_capacity(READ_CHUNK),
            spares: VecDeque::with_capacity(READ_SPARES),
        }
    }

    /// The buffer to read into, with room for at least [`READ_ROOM_MIN`] bytes.
    fn room(&mut self) -> &mut BytesMut {
        if self.current.capacity() - self.current.len() >= READ_ROOM_MIN
            || self.current.try_reclaim(READ_CHUNK)
        {
            return &mut self.current;
        }
        // The most recently used one that is free again: the likeliest to be still in cache.
        let next = match self.spares.iter_mut().rposition(|b| b.try_reclaim(READ_CHUNK)) {
            Some(i) => self.spares.remove(i),
            None => None,
        };
        let next = next.unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK));
        let used = std::mem::replace(&mut self.current, next);
        if self.spares.len() == READ_SPARES {
            self.spares.pop_front();
        }
        self.spares.push_back(used);
        &mut self.current
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    id: ConnectionId,
    mut r: R,
    mut paused: watch::Receiver<bool>,
    events: mpsc::Sender<LinkEvent>,
) {
    let mut bufs = ReadBuffers::new();
    let why = loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let buf = bufs.room();
        match r.read_buf(buf).await {
            Ok(0) => break "closed by the peer".to_owned(),
            Ok(_) => {
                if events.send(LinkEvent::Data(id, buf.split())).await.is_err() {
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
    frames: FramePool,
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
                // The flush matters for a WebSocket: what its layer could not hand to the socket
                // yet is only pushed on by a later poll, and our reader (the other half) is not
                // woken for that. TCP's flush is a no-op.
                let written = match write_all_vectored(&mut w, &batch).await {
                    Ok(()) => w.flush().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    reader.abort();
                    let _ = events.send(LinkEvent::Lost(id, e.to_string())).await;
                    return;
                }
                for b in batch {
                    frames.put(b);
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::{Message, protocol::Role};
    use wormhole_ws_bytes::WsBytes;

    /// Our writes over a WebSocket (configured as for a relay) through a pipe far smaller than
    /// them, so the WebSocket layer holds what the pipe refused. With `paused`, our reader never
    /// polls (the link's reading is paused), so only the writer's own flush pushes that on; with
    /// `answer`, the peer answers every message, so our reader keeps polling while the writer
    /// waits. Every byte must arrive either way.
    async fn websocket_link_delivers(sizes: &[usize], paused: bool, answer: bool) -> FramePool {
        let (ours, theirs) = tokio::io::duplex(4096);
        let config = crate::transit::stream::relay_ws_config();
        let ws = WebSocketStream::from_raw_socket(ours, Role::Client, Some(config)).await;
        let (r, w) = tokio::io::split(WsBytes::new(ws));
        let (events, mut events_rx) = mpsc::channel(4);
        let frames = FramePool::new();
        let link = Link::spawn_halves(ConnectionId(0), r, w, events, frames.clone());
        link.pause(paused);
        let mut sent = Vec::new();
        for (n, size) in sizes.iter().enumerate() {
            let write: Vec<u8> = (0..*size).map(|i| (i % 251 + n) as u8).collect();
            sent.extend_from_slice(&write);
            link.write(write);
        }
        // What our reader hands over is consumed, as the Dilation task would.
        let drain = tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let mut peer = WebSocketStream::from_raw_socket(theirs, Role::Server, None).await;
        let mut got = Vec::new();
        let read_all = async {
            while got.len() < sent.len() {
                match peer.next().await {
                    Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
                    other => panic!("unexpected {other:?}"),
                }
                if answer {
                    peer.send(Message::Binary(vec![1u8; 25].into())).await.unwrap();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read_all)
            .await
            .unwrap_or_else(|_| panic!("stalled after {} of {} bytes", got.len(), sent.len()));
        assert!(got == sent, "the bytes differ");
        drain.abort();
        frames
    }

    #[tokio::test]
    async fn a_websocket_link_with_reading_paused_delivers_a_write_the_socket_takes_in_pieces() {
        websocket_link_delivers(&[10_000], true, false).await;
    }

    #[tokio::test]
    async fn a_websocket_link_delivers_many_writes_while_its_reader_takes_answers() {
        let frames = websocket_link_delivers(&[300_000, 1_900_000, 70_000, 1, 5_000], false, true).await;
        // Once written, the one frame-sized buffer went back to the pool (the others are too
        // large or too small to keep).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while frames.kept() == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(frames.kept(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_websocket_link_delivers_many_writes_while_its_reader_takes_answers_on_two_threads() {
        websocket_link_delivers(&[300_000, 1_900_000, 70_000, 1, 5_000], false, true).await;
    }

    #[test]
    fn a_read_buffer_is_reused_once_its_reads_are_dropped() {
        let mut bufs = ReadBuffers::new();
        let first = bufs.room().as_ptr();
        let mut held = Vec::new();
        // Fill the first buffer with reads that are still held: a second one is needed.
        while bufs.current.capacity() >= READ_ROOM_MIN {
            let b = bufs.room();
            b.extend_from_slice(&[7; READ_ROOM_MIN]);
            held.push(b.split());
        }
        let second = bufs.room().as_ptr();
        assert_ne!(first, second);
        assert_eq!(held.iter().map(|h| h.len()).sum::<usize>(), READ_CHUNK);
        // Once they are dropped, the first buffer comes back when the second is used up.
        drop(held);
        let b = bufs.room();
        b.extend_from_slice(&vec![1; READ_CHUNK]);
        let keep = b.split();
        assert_eq!(bufs.room().as_ptr(), first);
        drop(keep);
        assert!(bufs.spares.len() <= READ_SPARES);
    }
}
