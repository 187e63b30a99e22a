//! One relay client connection as a plain byte stream, whether it came in over TCP or WebSocket.
//!
//! Owns: which stream a client came in on, the WebSocket settings for relay clients (the adapter
//! itself, BINARY messages as a byte stream, is `wormhole-ws-bytes`), read-readiness without a
//! buffer (so idle pairs allocate nothing), and socket options (TCP keepalive, no Nagle).
//! Must not: know about tokens, pairing or usage.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Largest WebSocket message or frame accepted from a client; bounds per-connection memory.
pub const WS_MAX_MESSAGE: usize = 1 << 20;

pub use wormhole_ws_bytes::WS_MAX_OUT_MESSAGE;

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

/// A relay client's WebSocket seen as a byte stream (the adapter shared with the client library).
pub type WsBytes = wormhole_ws_bytes::WsBytes<TcpStream>;

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
