//! The byte stream under the mailbox WebSocket: plain TCP or TLS over TCP.
//!
//! Owns: dispatching the tokio I/O traits to whichever it is. Must not: open connections.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connected mailbox socket.
#[derive(Debug)]
pub(crate) enum MailboxStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://` (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MailboxStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailboxStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MailboxStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailboxStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MailboxStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MailboxStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailboxStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MailboxStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailboxStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MailboxStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
