//! One relay client connection as a plain byte stream, whether it came in over TCP or WebSocket.
//!
//! Owns: the WebSocket adapter (BINARY messages in and out; message boundaries carry no meaning after
//! the request; a TEXT frame is an error; outgoing payloads staged in one reused buffer), read-readiness without a buffer (so idle pairs allocate
//! nothing), and socket options (TCP keepalive, no Nagle).
//! Must not: know about tokens, pairing or usage.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// Largest WebSocket message or frame accepted from a client; bounds per-connection memory.
pub const WS_MAX_MESSAGE: usize = 1 << 20;

/// Largest WebSocket message we send: a longer write is sent in pieces (a partial write), which keeps
/// the WebSocket layer's output buffer well under its limit.
pub const WS_MAX_OUT_MESSAGE: usize = 64 * 1024;

/// WebSocket settings for relay clients: small eager buffers, bounded messages.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
}

/// Turn on TCP keepalive (so dead peers are noticed) and turn off Nagle (handshakes are small).
pub fn tune_tcp(stream: &TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(120))
        .with_interval(Duration::from_secs(30))
        .with_retries(4);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!("cannot enable TCP keepalive: {e}");
    }
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
}

/// A WebSocket connection seen as a byte stream.
#[derive(Debug)]
pub struct WsBytes {
    inner: WebSocketStream<TcpStream>,
    /// Unread rest of the last binary message.
    pending: Bytes,
    /// Staging for outgoing payloads: the WebSocket layer copies each message into its own buffer and
    /// drops it, so this allocation is reclaimed by the next `reserve` instead of a new one per chunk.
    out: BytesMut,
    eof: bool,
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, "websocket closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl WsBytes {
    /// Wrap an accepted WebSocket.
    pub fn new(inner: WebSocketStream<TcpStream>) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            out: BytesMut::new(),
            eof: false,
        }
    }

    /// Wait for the next message of any kind; used for the request (the first message).
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
                        "relay clients must send BINARY websocket messages",
                    )));
                }
                Some(Ok(Message::Close(_))) => self.eof = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// Ready when a read would not block (data is pending, or the stream ended).
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending.is_empty() && !self.eof {
            match ready!(self.poll_next_binary(cx))? {
                Some(b) => self.pending = b,
                None => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for WsBytes {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_read_ready(cx))?;
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WsBytes {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_ready(cx)).map_err(ws_error)?;
        let buf = buf.get(..buf.len().min(WS_MAX_OUT_MESSAGE)).unwrap_or(buf);
        this.out.reserve(buf.len());
        this.out.extend_from_slice(buf);
        let payload = this.out.split().freeze();
        Pin::new(&mut this.inner)
            .start_send(Message::Binary(payload))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().inner).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

/// A relay client connection.
#[derive(Debug)]
pub enum RelayStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// WebSocket (boxed: it is much larger than a TCP stream).
    Ws(Box<WsBytes>),
}

impl RelayStream {
    /// Ready when a read would not block, without needing a buffer.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            RelayStream::Tcp(s) => s.poll_read_ready(cx),
            RelayStream::Ws(s) => s.poll_read_ready(cx),
        }
    }

    /// Short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RelayStream::Tcp(_) => "tcp",
            RelayStream::Ws(_) => "websocket",
        }
    }
}

impl AsyncRead for RelayStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RelayStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            RelayStream::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            RelayStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            RelayStream::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RelayStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            RelayStream::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RelayStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            RelayStream::Ws(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
