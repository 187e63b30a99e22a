//! A WebSocket connection seen as a byte stream, as the transit relay protocol uses it: BINARY
//! messages in and out, and after the first one (the relay request) message boundaries carry no
//! meaning. Used on both ends: by the relay for its WebSocket clients, and by the client library to
//! reach a relay through its WebSocket port.
//!
//! Owns: the adapter ([`WsBytes`]: a TEXT message is an error; Ping, Pong and raw frames are
//! skipped; a Close or the end of the stream is end of file; outgoing payloads are staged in one
//! reused buffer and cut at [`WS_MAX_OUT_MESSAGE`]), read-readiness without a buffer (so idle relay
//! pairs allocate nothing), and driving queued output from the read side too, so a writer that
//! wrote and then only reads never leaves bytes stranded in the WebSocket layer. Split into a
//! reader task and a writer task it stays live: a write or flush waiting for the layer to drain
//! is woken by the read side's polls, which otherwise take the layer's one write waker.
//! Must not: open connections, choose limits for incoming messages (the caller's
//! `WebSocketConfig` does), or know anything of tokens, pairing or transit handshakes.

#![forbid(unsafe_code)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// Largest WebSocket message we send: a longer write is sent in pieces (a partial write), which
/// keeps the WebSocket layer's output buffer well under its limit.
pub const WS_MAX_OUT_MESSAGE: usize = 64 * 1024;

/// A WebSocket connection seen as a byte stream (see the crate doc).
#[derive(Debug)]
pub struct WsBytes<S> {
    inner: WebSocketStream<S>,
    /// Unread rest of the last binary message.
    pending: Bytes,
    /// Staging for outgoing payloads; the WebSocket layer takes each payload (a `Bytes`) and
    /// drops it, so this allocation is reclaimed by the next `reserve` instead of a new one per chunk.
    out: BytesMut,
    eof: bool,
    /// The task whose write or flush is waiting for the WebSocket layer to drain. The layer keeps
    /// one write waker, that of whoever polled it last; when the stream is split, that can be the
    /// reader, so the reader wakes this task after each of its own pushes (see `poll_read_ready`).
    write_waiter: Option<Waker>,
}

/// The I/O error for a WebSocket error: I/O errors as they are, a closed connection as
/// `NotConnected`, anything else (a protocol violation, a too-large message) as `InvalidData`.
pub fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, "websocket closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Wrap an open WebSocket (accepted or dialled).
    pub fn new(inner: WebSocketStream<S>) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            out: BytesMut::new(),
            eof: false,
            write_waiter: None,
        }
    }

    /// Wait for the next BINARY message; used for the relay request (the first message).
    /// Returns `Ok(None)` at the end of the stream, `Err` for a TEXT message or a protocol error.
    pub fn poll_next_binary(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                None => self.eof = true,
                Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                    self.eof = true
                }
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Some(Ok(Message::Binary(b))) => return Poll::Ready(Ok(Some(b))),
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "relay connections carry BINARY websocket messages only",
                    )));
                }
                Some(Ok(Message::Close(_))) => self.eof = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// Ready when a read would not block (data is pending, or the stream ended).
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.drive_output(cx)?;
        // That poll made us the WebSocket layer's write waker: a writer waiting on the other half
        // of a split stream would never be woken. It polls again (and takes the waker back).
        if let Some(writer) = self.write_waiter.take() {
            writer.wake();
        }
        while self.pending.is_empty() && !self.eof {
            match ready!(self.poll_next_binary(cx))? {
                Some(b) => self.pending = b,
                None => break,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Copy already received bytes into `buf` without waiting: `WouldBlock` when none are here.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            return match self.eof {
                true => Ok(0),
                false => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        Ok(n)
    }

    /// Push out whatever the WebSocket layer still holds, as far as the socket takes it now; the
    /// waker is registered if it cannot take all of it. Errors other than a closed connection are
    /// reported (a closed one shows up as the end of the stream on the read side).
    fn drive_output(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                Ok(())
            }
            Poll::Ready(Err(e)) => Err(ws_error(e)),
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }
}

impl<S> WsBytes<S> {
    /// Passes on the result of a write-side poll of the WebSocket layer; when it is pending,
    /// remembers the task so the read side can wake it.
    fn note_waiter<T>(&mut self, cx: &Context<'_>, polled: Poll<T>) -> Poll<T> {
        if polled.is_pending() {
            self.write_waiter = Some(cx.waker().clone());
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_read_ready(cx))?;
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_ready(cx);
        ready!(this.note_waiter(cx, polled)).map_err(ws_error)?;
        let buf = buf.get(..buf.len().min(WS_MAX_OUT_MESSAGE)).unwrap_or(buf);
        this.out.reserve(buf.len());
        this.out.extend_from_slice(buf);
        let payload = this.out.split().freeze();
        Pin::new(&mut this.inner)
            .start_send(Message::Binary(payload))
            .map_err(ws_error)?;
        this.drive_output(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.note_waiter(cx, polled).map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_close(cx);
        match ready!(this.note_waiter(cx, polled)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

    /// Two ends of an in-memory WebSocket: ours as a byte stream, the other raw.
    async fn pair(
        buffer: usize,
    ) -> (
        WsBytes<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(buffer);
        let a = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let b = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        (WsBytes::new(a), b)
    }

    #[tokio::test]
    async fn writes_become_binary_messages_and_messages_become_bytes() {
        let (mut ours, mut raw) = pair(1 << 16).await;
        ours.write_all(b"please relay abc\n").await.unwrap();
        let m = raw.next().await.unwrap().unwrap();
        assert_eq!(m, Message::Binary(Bytes::from_static(b"please relay abc\n")));
        raw.send(Message::Binary(Bytes::from_static(b"o"))).await.unwrap();
        raw.send(Message::Ping(Bytes::new())).await.unwrap();
        raw.send(Message::Binary(Bytes::from_static(b"k\n")))
            .await
            .unwrap();
        let mut got = [0u8; 3];
        ours.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok\n");
        assert_eq!(
            ours.try_read(&mut got).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        raw.close(None).await.unwrap();
        assert_eq!(ours.read(&mut got).await.unwrap(), 0, "close is end of file");
    }

    #[tokio::test]
    async fn a_text_message_is_an_error() {
        let (mut ours, mut raw) = pair(1 << 16).await;
        raw.send(Message::text("hello")).await.unwrap();
        let e = ours.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn long_writes_are_cut_and_output_left_queued_is_pushed_by_reads() {
        // A tiny pipe: the big write cannot go out at once.
        let (mut ours, mut raw) = pair(1024).await;
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let writer = async {
            ours.write_all(&data).await.unwrap();
            // Only read from now on: whatever is still queued must go out anyway.
            let mut b = [0u8; 2];
            ours.read_exact(&mut b).await.unwrap();
            b
        };
        let reader = async {
            let mut got = Vec::new();
            while got.len() < data.len() {
                match raw.next().await.unwrap().unwrap() {
                    Message::Binary(b) => {
                        assert!(b.len() <= WS_MAX_OUT_MESSAGE);
                        got.extend_from_slice(&b);
                    }
                    other => panic!("{other:?}"),
                }
            }
            raw.send(Message::Binary(Bytes::from_static(b"ok")))
                .await
                .unwrap();
            got
        };
        let (ack, got) = tokio::join!(writer, reader);
        assert_eq!(&ack, b"ok");
        assert_eq!(got, data);
    }

    /// Split into a reader task and a writer task (as a Dilation link uses it), with the peer
    /// answering every message it gets: the reader's polls must not leave the writer asleep while
    /// the WebSocket layer is full (its one write waker is whoever polled last).
    #[tokio::test]
    async fn a_split_writer_is_woken_while_the_reader_takes_answers() {
        split_writer_and_answering_peer().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_split_writer_is_woken_while_the_reader_takes_answers_on_two_threads() {
        split_writer_and_answering_peer().await;
    }

    async fn split_writer_and_answering_peer() {
        let (a, b) = tokio::io::duplex(8 * 1024);
        let config = WebSocketConfig::default()
            .write_buffer_size(0)
            .max_write_buffer_size(256 * 1024);
        let a = WebSocketStream::from_raw_socket(a, Role::Client, Some(config)).await;
        let mut raw = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        let (mut r, mut w) = tokio::io::split(WsBytes::new(a));
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.flush().await.unwrap();
            w
        });
        let answers = tokio::spawn(async move {
            let mut n = 0usize;
            let mut b = [0u8; 64];
            loop {
                match r.read(&mut b).await {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        let peer = async {
            let mut got = Vec::new();
            while got.len() < data.len() {
                match raw.next().await.unwrap().unwrap() {
                    Message::Binary(b) => got.extend_from_slice(&b),
                    other => panic!("{other:?}"),
                }
                raw.send(Message::Binary(Bytes::from_static(b"a"))).await.unwrap();
            }
            got
        };
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), peer)
            .await
            .expect("the split writer stalled");
        assert!(got == data, "the bytes differ");
        tokio::time::timeout(std::time::Duration::from_secs(20), writer)
            .await
            .expect("the writer did not finish")
            .unwrap();
        answers.abort();
    }
}
