//! How the client reaches the servers: the mailbox WebSocket over plain TCP (`ws://`) or TLS
//! (`wss://`), the trust store TLS checks certificates against, and the [`Dialer`] every
//! outgoing connection uses (direct, or through Tor's SOCKS port).
//!
//! Owns: turning a mailbox URL into an open WebSocket (name resolution, TCP, TLS, the WebSocket
//! handshake) and the errors of each step. Must not: know the server protocol (the driver and the
//! machine do), or retry (the machine decides when to reconnect).

mod dialer;
mod mailbox;
mod stream;
mod tls;

pub use dialer::{DialError, Dialer};
pub(crate) use mailbox::{Ws, connect, connect_with};
pub(crate) use stream::MailboxStream;

use std::path::PathBuf;

/// Network options of a wormhole: where TLS trust comes from, and whether everything goes
/// through Tor.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// Extra trust anchors for `wss://` servers: a PEM file of CA certificates, trusted in
    /// addition to the platform's store (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    pub extra_ca_file: Option<PathBuf>,
    /// How connections are made. [`Dialer::Socks5`] (Tor's SOCKS port) sends the mailbox
    /// connection through the proxy; give the same dialer to transit and Dilation, which then
    /// neither listen nor advertise our addresses.
    pub dialer: Dialer,
}

/// Why the mailbox connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("{url}: not a ws:// or wss:// URL with a host name")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// Resolving the host name or the TCP connection (direct or through the proxy) failed.
    #[error("{url}: cannot connect: {source}")]
    Tcp {
        /// The URL given.
        url: String,
        /// What failed.
        source: DialError,
    },
    /// The server's certificate was refused (wrong host, expired, unknown issuer, ...).
    #[error("{url}: TLS certificate refused: {reason}")]
    Certificate {
        /// The URL given.
        url: String,
        /// What is wrong with it, in rustls' words.
        reason: String,
    },
    /// Another TLS failure (no common protocol version, the connection dropped, ...).
    #[error("{url}: TLS handshake failed: {source}")]
    Tls {
        /// The URL given.
        url: String,
        /// The error.
        source: std::io::Error,
    },
    /// Loading the trust store failed.
    #[error("TLS trust store: {0}")]
    Trust(String),
    /// The WebSocket handshake failed (not a mailbox server, a proxy in the way, ...).
    #[error("{url}: WebSocket handshake failed: {reason}")]
    WebSocket {
        /// The URL given.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The whole attempt took longer than the limit.
    #[error("{url}: no connection within {limit:?}")]
    Timeout {
        /// The URL given.
        url: String,
        /// The limit.
        limit: std::time::Duration,
    },
}

impl ConnectError {
    /// Whether retrying cannot help: the certificate or the URL is wrong, not the network.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::BadUrl { .. } | ConnectError::Certificate { .. } | ConnectError::Trust(_)
        )
    }
}
