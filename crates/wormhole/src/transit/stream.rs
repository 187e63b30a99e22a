//! The byte stream under one transit connection: TCP (direct, or to a relay's TCP port) or a
//! WebSocket to a relay's WebSocket port, seen as bytes (`wormhole-ws-bytes`).
//!
//! Owns: dialling a relay's WebSocket URL (TCP, TLS for `wss://`, the WebSocket handshake, through
//! the configured [`Dialer`]) and dispatching the tokio I/O traits. Must not: know any transit
//! bytes (relay line, handshakes, records) or decide which endpoint to dial.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wormhole_ws_bytes::WsBytes;

use crate::net::{ConnectError, Dialer, MailboxStream, NetworkOptions};

/// Largest WebSocket message accepted from a relay (ours sends at most 64 KiB at a time).
pub const RELAY_WS_MAX_MESSAGE: usize = 4 << 20;

/// A transit socket.
#[derive(Debug)]
pub(crate) enum TransitStream {
    /// TCP.
    Tcp(TcpStream),
    /// A relay's WebSocket port (boxed: the WebSocket state is large).
    WebSocket(Box<WsBytes<MailboxStream>>),
}

impl TransitStream {
    /// Read what is already here without waiting (`WouldBlock` when nothing is).
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TransitStream::Tcp(s) => s.try_read(buf),
            TransitStream::WebSocket(s) => s.try_read(buf),
        }
    }
}

pub(crate) fn relay_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(RELAY_WS_MAX_MESSAGE))
        .max_frame_size(Some(RELAY_WS_MAX_MESSAGE))
}

/// Open a WebSocket to a relay at `url` (`ws://` or `wss://`).
pub(crate) async fn dial_websocket(
    url: &str,
    dialer: &Dialer,
    extra_ca_file: Option<PathBuf>,
) -> Result<TransitStream, ConnectError> {
    let net = NetworkOptions {
        extra_ca_file,
        dialer: dialer.clone(),
    };
    let ws = crate::net::connect_with(url, &net, relay_ws_config()).await?;
    Ok(TransitStream::WebSocket(Box::new(WsBytes::new(ws))))
}

impl AsyncRead for TransitStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransitStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            TransitStream::WebSocket(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TransitStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TransitStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            TransitStream::WebSocket(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransitStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            TransitStream::WebSocket(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransitStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            TransitStream::WebSocket(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
