//! The vocabulary of the Dilation endpoint ([`super::endpoint::Dilation`]): its limits and
//! timers ([`Config`]), the one error type ([`enum@Error`]), the actions it asks of its driver
//! ([`Action`]) and the driver's connection numbers ([`ConnectionId`]).
//!
//! Owns: the names and documentation of every input limit and every output. Must not: hold
//! state or logic (that is [`super::endpoint`]).

use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use super::Role;
use super::connection::ConnectionError;
use super::l4::L4Error;

/// A connection, numbered by the driver (unique for the endpoint's lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// Limits and timers. Every size is a bound on memory the peer can make us hold.
#[derive(Debug, Clone)]
pub struct Config {
    /// Leader: PING this often (Python's default is 30 s).
    pub ping_interval: Duration,
    /// Leader: abort the connection after this long without inbound bytes.
    pub leader_timeout: Duration,
    /// Follower: abort after this long without inbound bytes (the Leader PINGs, so silence
    /// means a dead path; longer than the Leader's, as Python may skip a PING).
    pub follower_timeout: Duration,
    /// First re-dial / reconnect delay.
    pub backoff_base: Duration,
    /// Largest re-dial / reconnect delay.
    pub backoff_max: Duration,
    /// A connection that lived this long resets the reconnect backoff.
    pub stable_after: Duration,
    /// Receive buffer per subchannel, in bytes delivered but not yet consumed.
    pub recv_window: usize,
    /// Unacked outbound bytes above which writes get [`Error::WouldBlock`].
    pub max_unacked_bytes: usize,
    /// While our writes wait for the peer's ACKs, reading goes on past a full receive window
    /// until this many bytes are buffered over all subchannels: the ACKs may sit behind the
    /// peer's data, and an application that writes back what it reads (an echo, a forwarder)
    /// would otherwise stall both sides. Covers what TCP buffers hold between the two.
    pub blocked_read_allowance: usize,
    /// Largest single write (one DATA record).
    pub max_write_len: usize,
    /// Largest inbound frame (passed to each L2 machine); each connection may buffer one, so
    /// `max_frame_len · max_connections` bounds what unauthenticated candidates can cost. Python
    /// sends one DATA record per application write, so this also caps the peer's write size.
    pub max_frame_len: usize,
    /// How long an OPEN for a subprotocol nobody listens for is held before it is CLOSEd.
    pub open_hold: Duration,
    /// How many such OPENs are held at once; more are CLOSEd at once.
    pub max_pending_opens: usize,
    /// How many subchannels (either side's, until both CLOSEs crossed and their data was
    /// consumed) at once; a peer OPEN beyond it is CLOSEd at once ([`Action::OpenRefused`]).
    pub max_subchannels: usize,
    /// How many connections (candidates and the one in use) at once; more are aborted.
    pub max_connections: usize,
    /// How many peer hints are kept for re-dialling.
    pub max_hints: usize,
    /// ACKs are cumulative, so one may stand for several records: an ACK is sent once this
    /// many records are owed one (each costs a frame and a wake-up on both sides)...
    pub ack_every: usize,
    /// ...or this long after the first record owed one arrived (0: after each read).
    pub ack_delay: Duration,
    /// Seed of the endpoint's randomness (PING ids, jitter).
    pub rng_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        let ping = Duration::from_secs(30);
        Config {
            ping_interval: ping,
            leader_timeout: 2 * ping,
            follower_timeout: 4 * ping,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            stable_after: Duration::from_secs(10),
            recv_window: 1 << 20,
            max_unacked_bytes: 4 << 20,
            blocked_read_allowance: 16 << 20,
            max_write_len: 1 << 20,
            max_frame_len: 4 << 20,
            open_hold: Duration::from_secs(30),
            max_pending_opens: 64,
            max_subchannels: 1024,
            max_connections: 8,
            max_hints: 64,
            ack_every: 16,
            ack_delay: Duration::from_millis(2),
            rng_seed: 0,
        }
    }
}

/// Everything that can go wrong, for the application and in [`Action`]s.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer lists no Dilation version we speak. Use the plain wormhole.
    #[error("the peer cannot dilate: no common Dilation version")]
    PeerCannotDilate,
    /// Both dilation sides are equal (our messages reflected back?). Start a new wormhole.
    #[error("the peer's dilation side equals ours")]
    EqualSides,
    /// The unacked send queue is full. Wait for [`Action::Writable`], then write again.
    #[error("would block: {unacked} unacked bytes, limit {limit}")]
    WouldBlock {
        /// Bytes sent and not yet acknowledged.
        unacked: usize,
        /// [`Config::max_unacked_bytes`].
        limit: usize,
    },
    /// A write larger than [`Config::max_write_len`]. Split it (each write is one record).
    #[error("write of {len} bytes exceeds the record limit of {max}")]
    RecordTooLarge {
        /// The write's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The roles are not known yet (the peer's `please` has not arrived). Wait for
    /// [`Action::Connected`] or retry after more mailbox input.
    #[error("Dilation roles are not known yet")]
    NotYet,
    /// No connection is in use right now (Dilation is reconnecting): a PING cannot be sent.
    #[error("no Dilation connection right now")]
    NotConnected,
    /// A subchannel-level misuse (not open, already closed, ids or seqnums exhausted).
    #[error(transparent)]
    Subchannel(#[from] L4Error),
    /// A connection failed (bad prefix, wrong key, unknown L3 record, …); it was aborted and,
    /// if it was in use, a replacement is being sought.
    #[error("connection {conn:?} failed: {source}")]
    Connection {
        /// Which one.
        conn: ConnectionId,
        /// Why.
        source: ConnectionError,
    },
    /// The connection in use was silent for the keepalive timeout; it was aborted.
    #[error("connection {conn:?} silent for {silent:?}; aborted")]
    KeepaliveTimeout {
        /// Which one.
        conn: ConnectionId,
        /// The timeout that passed.
        silent: Duration,
    },
    /// A `dilate-N` mailbox phase name that is not `dilate-<number>`.
    #[error("bad Dilation mailbox phase {0:?}")]
    BadPhase(String),
    /// The endpoint stopped or failed; nothing more can be done with it.
    #[error("Dilation has ended")]
    Ended,
}

/// What the driver must do, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Seal `body` as mailbox phase `phase` (`dilate-N`) and send it.
    SendMailbox {
        /// The JSON body. The client machine (`Boss::send_dilation_message`) owns the one
        /// `dilate-N` counter and numbers it; the endpoint never does.
        body: Vec<u8>,
    },
    /// Start connector generation `generation` as `role`: listen (unless configured not to) and
    /// report our hints with [`Dilation::local_hints`](super::endpoint::Dilation::local_hints).
    StartConnector {
        /// Our role.
        role: Role,
        /// Counts from 1.
        generation: u64,
    },
    /// Stop the connector: close the listener, cancel pending dials.
    StopConnector,
    /// Dial these peer hints (again, on a re-dial) and report each stream that comes up.
    Dial {
        /// Hint dicts as the peer sent them.
        hints: Vec<Value>,
    },
    /// Write these bytes to the connection.
    Write {
        /// Which one.
        conn: ConnectionId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the connection after writing what is queued.
    Close {
        /// Which one.
        conn: ConnectionId,
    },
    /// Drop the connection now, discarding anything unwritten (reset if possible).
    Abort {
        /// Which one.
        conn: ConnectionId,
    },
    /// Stop reading this connection (a subchannel's receive buffer is full).
    PauseReading {
        /// Which one.
        conn: ConnectionId,
    },
    /// Read this connection again.
    ResumeReading {
        /// Which one.
        conn: ConnectionId,
    },
    /// This connection is now in use (the first time: the wormhole is dilated).
    Connected {
        /// Which one.
        conn: ConnectionId,
        /// Our role.
        role: Role,
    },
    /// The peer opened subchannel `scid` for a subprotocol we listen for.
    Accepted {
        /// Subchannel id.
        scid: u32,
        /// Its subprotocol.
        subprotocol: String,
    },
    /// One DATA record on `scid`; report its length with [`Dilation::consumed`](super::endpoint::Dilation::consumed) once read.
    Data {
        /// Subchannel id.
        scid: u32,
        /// The record's bytes.
        data: bytes::Bytes,
    },
    /// The peer sends nothing more on `scid` (reading ends; we may still write).
    PeerClosed {
        /// Subchannel id.
        scid: u32,
    },
    /// An OPEN nobody listened for within [`Config::open_hold`] (or beyond
    /// [`Config::max_pending_opens`] or [`Config::max_subchannels`]) was answered with CLOSE.
    OpenRefused {
        /// Subchannel id.
        scid: u32,
        /// Its subprotocol.
        subprotocol: String,
    },
    /// The unacked queue drained after an [`Error::WouldBlock`]: writes may resume.
    Writable,
    /// The peer answered a PING sent by [`Dilation::ping`](super::endpoint::Dilation::ping).
    Pong {
        /// The PING's id.
        ping_id: [u8; 4],
    },
    /// Something went wrong that the endpoint handled (a connection failed or timed out).
    Warning(Error),
    /// An input that changed nothing; worth a debug line.
    Ignored(String),
    /// Dilation failed for good ([`Error::PeerCannotDilate`], [`Error::EqualSides`]).
    Failed(Error),
    /// Dilation stopped after [`Dilation::stop`](super::endpoint::Dilation::stop).
    Stopped,
}
