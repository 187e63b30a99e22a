//! Dilation (docs/protocol.md §6), the tokio side: [`crate::Wormhole::dilate`] turns an open
//! wormhole into a [`Dilated`] connection that carries any number of [`Subchannel`]s, each a
//! record pipe with half-close, over one encrypted TCP connection that is replaced whenever it
//! breaks. Python magic-wormhole 0.24 (`dilation=True`) and fowl speak the same protocol.
//!
//! Every protocol decision is the sans-IO [`wormhole_proto::dilation::endpoint::Dilation`]'s;
//! the scheduling of dials is the transit race machine's ([`wormhole_proto::transit::race`]).
//! The modules here only move bytes:
//! - `driver`: the task that owns the endpoint, its timers and every connection;
//! - `connector`: our listener, our hints, and one race per round of dials;
//! - `link`: one TCP connection's reader and writer tasks;
//! - `subchannel`: the application's handles ([`Subchannel`], [`SubchannelListener`]);
//! - `port`: the wormhole driver's side (mailbox messages to and from the endpoint).
//!
//! # Shape (Python 0.24's `DilatedWormhole`)
//! ```no_run
//! # async fn demo(w: wormhole::Wormhole) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use wormhole::dilation::DilationOptions;
//! let dilated = w.dilate(DilationOptions::default()).await?;
//! let mut listener = dilated.listen("echo").await?;       // listener_for("echo")
//! let mut ch = dilated.open("chat").await?;               // connector_for("chat").connect()
//! ch.write_all(b"hello").await?;                          // one write = one DATA record
//! ch.shutdown().await?;                                   // CLOSE; reading goes on
//! let mut reply = Vec::new();
//! ch.read_to_end(&mut reply).await?;                      // until the peer's CLOSE
//! let role = dilated.when_dilated().await?;               // when_dilated()
//! # let _ = (role, listener.accept().await); Ok(()) }
//! ```

pub(crate) mod connector;
pub(crate) mod driver;
pub(crate) mod link;
pub(crate) mod port;
mod subchannel;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
pub use wormhole_proto::dilation::Role;
pub use wormhole_proto::dilation::endpoint::Config as EndpointConfig;
use wormhole_proto::machine::WormholeError;
use wormhole_proto::transit::RelayHint;

pub use subchannel::{Subchannel, SubchannelListener};

/// Everything that can go wrong with a dilated wormhole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DilationError {
    /// The wormhole was created without [`crate::WormholeOptions::dilation`].
    #[error("Dilation was not enabled when this wormhole was created (WormholeOptions::dilation)")]
    NotEnabled,
    /// [`crate::Wormhole::dilate`] may be called once.
    #[error("this wormhole was already dilated (dilate may be called once)")]
    AlreadyDilated,
    /// The peer's version message offers no Dilation version we speak (Go, wormhole-rs, or a
    /// Python peer created without `dilation=True`).
    #[error("the peer cannot dilate: it offers no Dilation version we speak")]
    PeerCannotDilate,
    /// Both Dilation sides are equal (our own messages reflected back?).
    #[error("the peer's Dilation side equals ours; start a new wormhole")]
    EqualSides,
    /// A relay in [`DilationOptions::relays`] could not be understood.
    #[error("transit relay {0:?} is not tcp:HOST:PORT")]
    BadRelay(String),
    /// [`DilationOptions::side`] must be 16 lowercase hex characters.
    #[error("Dilation side {0:?} is not 16 lowercase hex characters")]
    BadSide(String),
    /// The wormhole ended before Dilation could start.
    #[error("the wormhole closed before Dilation started: {0}")]
    Wormhole(WormholeError),
    /// A write longer than the record limit ([`EndpointConfig::max_write_len`]).
    #[error("write of {len} bytes exceeds the record limit of {max}")]
    RecordTooLarge {
        /// The write's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A subchannel misuse (written after shutdown, …).
    #[error("subchannel {scid}: {reason}")]
    Subchannel {
        /// The subchannel.
        scid: u32,
        /// What went wrong.
        reason: String,
    },
    /// [`Dilated::listen`] was called twice for one subprotocol.
    #[error("already listening for subprotocol {0:?}")]
    AlreadyListening(String),
    /// Dilation stopped ([`Dilated::close`]) or its task is gone.
    #[error("Dilation has ended")]
    Ended,
    /// [`Dilated::ping`] while no connection is in use (Dilation is reconnecting).
    #[error("no Dilation connection right now")]
    NotConnected,
    /// [`Dilated::ping`] while this many earlier PINGs still wait for their answer.
    #[error("{max} PINGs are still unanswered")]
    TooManyPings {
        /// The limit.
        max: usize,
    },
}

impl From<DilationError> for std::io::Error {
    fn from(e: DilationError) -> Self {
        let kind = match e {
            DilationError::Ended => std::io::ErrorKind::BrokenPipe,
            DilationError::RecordTooLarge { .. } => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Options for [`crate::Wormhole::dilate`] (Python's `dilate(transit_relay_location, no_listen,
/// ping_interval)` plus our limits).
#[derive(Debug, Clone)]
pub struct DilationOptions {
    /// Transit relays (`tcp:HOST:PORT`; also a relay's WebSocket port, `ws://…` or `wss://…`, or
    /// both separated by a comma), published to the peer and dialled; WebSocket endpoints only
    /// after the TCP ones failed. Python has no default relay, and neither have we.
    pub relays: Vec<String>,
    /// Do not listen for direct connections (and publish no direct hints).
    pub no_listen: bool,
    /// The Leader's keepalive PING interval (default 30 s). A connection silent for two
    /// intervals (Leader) or four (Follower) is aborted and replaced.
    pub ping_interval: Option<Duration>,
    /// Our Dilation side (16 lowercase hex); random by default. The greater side leads, so
    /// tests force a role with `"ffffffffffffffff"` or `"0000000000000000"`.
    pub side: Option<String>,
    /// Delay before relays are dialled when direct hints were dialled too (2 s).
    pub relay_delay: Duration,
    /// How long one connection may take from its dial (or accept) to being chosen (30 s).
    pub handshake_timeout: Duration,
    /// Replace the addresses of our direct hints (tests on loopback); `None`: every
    /// non-loopback address of this host.
    pub advertise: Option<Vec<String>>,
    /// How long [`Dilated::close`] waits for the peer to acknowledge everything written
    /// (10 s); after that what is unacknowledged is given up.
    pub close_linger: Duration,
    /// The endpoint's limits and timers (receive window, unacked queue, backoff, …).
    pub config: EndpointConfig,
    /// How connections are dialled; `None`: the wormhole's (`WormholeOptions::network`).
    /// Through a proxy (Tor) we neither listen nor publish direct hints, and onion hints are
    /// dialled.
    pub dialer: Option<crate::net::Dialer>,
}

impl Default for DilationOptions {
    fn default() -> Self {
        DilationOptions {
            relays: Vec::new(),
            no_listen: false,
            ping_interval: None,
            side: None,
            relay_delay: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(30),
            advertise: None,
            close_linger: Duration::from_secs(10),
            config: EndpointConfig::default(),
            dialer: None,
        }
    }
}

impl DilationOptions {
    /// The endpoints of our relays, all in one: each entry of [`DilationOptions::relays`] is
    /// `tcp:HOST:PORT`, a `ws://`/`wss://` URL of a relay's WebSocket port, or several of them
    /// separated by commas.
    pub(crate) fn relay_hints(&self) -> Result<RelayHint, DilationError> {
        let mut all = RelayHint::default();
        for r in &self.relays {
            let relay = wormhole_proto::transit::hints::parse_relay_endpoints(r)
                .ok_or_else(|| DilationError::BadRelay(r.clone()))?;
            all.tcp.extend(relay.tcp);
            all.websocket.extend(relay.websocket);
        }
        Ok(all)
    }

    pub(crate) fn endpoint_config(&self, rng_seed: u64) -> EndpointConfig {
        let mut c = self.config.clone();
        if let Some(p) = self.ping_interval {
            c.ping_interval = p;
            c.leader_timeout = 2 * p;
            c.follower_timeout = 4 * p;
        }
        c.rng_seed = rng_seed;
        c
    }
}

/// Where a dilated wormhole stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DilationStatus {
    /// Our role, once the peer's `please` arrived.
    pub role: Option<Role>,
    /// Whether a connection is in use right now.
    pub connected: bool,
    /// How many L2 connections have been in use so far (1 without any reconnect).
    pub connections: u64,
    /// Set once Dilation ended: `Ok` after [`Dilated::close`], or why it failed.
    pub ended: Option<Result<(), DilationError>>,
}

/// A request from a handle to the Dilation task.
#[derive(Debug)]
pub(crate) enum AppRequest {
    Open(String, oneshot::Sender<Result<Subchannel, DilationError>>),
    Listen(String, oneshot::Sender<Result<SubchannelListener, DilationError>>),
    Write {
        scid: u32,
        data: bytes::Bytes,
        reply: oneshot::Sender<Result<(), DilationError>>,
    },
    Shutdown {
        scid: u32,
        reply: oneshot::Sender<Result<(), DilationError>>,
    },
    Consumed {
        scid: u32,
        n: usize,
    },
    Ping(oneshot::Sender<Result<std::time::Duration, DilationError>>),
    /// The handle was dropped: half-close it if the application did not, and consume what
    /// arrives for it from now on (`unread` bytes were still buffered in the handle).
    Dropped {
        scid: u32,
        shut: bool,
        unread: usize,
    },
    Stop,
}

/// A dilated wormhole: open and accept subchannels. Cheap to share by reference; every
/// method takes `&self`. Dropping it does not stop Dilation while subchannels are open; call
/// [`Dilated::close`] to end it.
#[derive(Debug)]
pub struct Dilated {
    pub(crate) requests: mpsc::UnboundedSender<AppRequest>,
    pub(crate) status: watch::Receiver<DilationStatus>,
}

impl Dilated {
    /// Waits until the first connection is up (Python's `when_dilated`); our role.
    pub async fn when_dilated(&self) -> Result<Role, DilationError> {
        let mut rx = self.status.clone();
        let s = rx
            .wait_for(|s| s.connections > 0 || s.ended.is_some())
            .await
            .map_err(|_| DilationError::Ended)?;
        match (&s.ended, s.role) {
            (Some(Err(e)), _) => Err(e.clone()),
            (_, Some(role)) if s.connections > 0 => Ok(role),
            _ => Err(DilationError::Ended),
        }
    }

    /// The current status.
    pub fn status(&self) -> DilationStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change (for progress displays).
    pub fn watch_status(&self) -> watch::Receiver<DilationStatus> {
        self.status.clone()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DilationError>>) -> AppRequest,
    ) -> Result<T, DilationError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).map_err(|_| self.end_error())?;
        rx.await.map_err(|_| self.end_error())?
    }

    fn end_error(&self) -> DilationError {
        match &self.status.borrow().ended {
            Some(Err(e)) => e.clone(),
            _ => DilationError::Ended,
        }
    }

    /// Opens a subchannel for `subprotocol` (Python's `connector_for(name).connect()`). Data may
    /// be written at once; it flows once the peer listens for the name.
    pub async fn open(&self, subprotocol: &str) -> Result<Subchannel, DilationError> {
        let name = subprotocol.to_owned();
        self.ask(|r| AppRequest::Open(name, r)).await
    }

    /// Listens for subchannels the peer opens for `subprotocol` (Python's `listener_for`).
    /// OPENs that arrived before are delivered first.
    pub async fn listen(&self, subprotocol: &str) -> Result<SubchannelListener, DilationError> {
        let name = subprotocol.to_owned();
        self.ask(|r| AppRequest::Listen(name, r)).await
    }

    /// Sends a Dilation PING to the peer and waits for its PONG: the round trip over the
    /// connection in use. [`DilationError::NotConnected`] while there is none (reconnecting);
    /// a PING lost with its connection is never answered, so bound the wait with a timeout.
    pub async fn ping(&self) -> Result<std::time::Duration, DilationError> {
        self.ask(AppRequest::Ping).await
    }

    /// Ends Dilation once the peer has acknowledged everything written (or after
    /// [`DilationOptions::close_linger`]); then the connection is closed.
    pub async fn close(&self) -> Result<(), DilationError> {
        let _ = self.requests.send(AppRequest::Stop);
        let mut rx = self.status.clone();
        let s = rx.wait_for(|s| s.ended.is_some()).await;
        match s.as_deref().map(|s| s.ended.clone()) {
            Ok(Some(Err(e))) => Err(e),
            _ => Ok(()),
        }
    }
}
