//! The transit error type: what went wrong connecting or moving records, and what to do about it.

use wormhole_proto::transit::{RecordError, WalkError};

/// Errors from transit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransitError {
    /// A local socket operation failed (binding the listener, reading a file being sent…).
    #[error("transit I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No connection could be made. Check that a transit relay is reachable (`--transit-helper`)
    /// or that the peers can reach each other directly.
    #[error("could not establish a transit connection ({0})")]
    NoConnection(String),
    /// The peer's transit handshake did not match ours: the two sides derived different transit
    /// keys, so no connection (direct or relayed) can ever succeed. One side uses another AppID
    /// for the transit key (a wrong `--appid`, or a client that derives it differently) or is an
    /// incompatible client. Use the same AppID on both sides, or another client.
    #[error(
        "the peer's transit handshake did not match ours: the two sides derived different transit \
         keys (a different AppID, or an incompatible client); seen on the connections {0}"
    )]
    KeyMismatch(
        /// The connections whose handshake proved it (`to HOST:PORT`, `from HOST:PORT`).
        String,
    ),
    /// Connecting took longer than the overall limit.
    #[error("timed out establishing a transit connection after {0} s")]
    ConnectTimeout(u64),
    /// The peer stopped sending or receiving for too long during the transfer.
    #[error("transit connection stalled for {0} s")]
    Stalled(u64),
    /// The peer closed the connection before the transfer was complete.
    #[error("peer closed the transit connection early ({0})")]
    Closed(String),
    /// A record was malformed, out of order, too large or failed to decrypt: the peer is broken or
    /// hostile; the transfer is abandoned.
    #[error("bad transit record: {0}")]
    Record(#[from] RecordError),
    /// The peer sent more data than it declared.
    #[error("{0}")]
    Walk(#[from] WalkError),
    /// An earlier operation on this connection failed (or was abandoned mid-way), so its record
    /// counters no longer match the peer's; it refuses every later send and receive rather than
    /// risk reusing a nonce. Close it and start a new transfer.
    #[error("transit connection unusable after an earlier error")]
    Poisoned,
    /// An internal worker thread failed.
    #[error("transit worker failed: {0}")]
    Worker(String),
}
