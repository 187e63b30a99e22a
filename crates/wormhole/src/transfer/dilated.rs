//! File transfer over Dilation (the Dilated File-Transfer protocol, "transfer-v2";
//! docs/dilated-transfer.md): several offers per session, either side may offer, resume of a
//! partial file, streams of unknown length, per-file SHA-256 confirmation.
//!
//! [`peer_transfer`] says whether a peer speaks it (from its `app_versions`); [`run_session`]
//! runs a whole session over a [`crate::Wormhole`] opened with [`wormhole_options`]: our offers
//! go out one subchannel each, the peer's are answered through the caller's decision callback.
//! A peer that does not list `transfer-v2` (Python, Go, wormhole-rs) gets the classic flows of
//! `transfer::send` / `transfer::receive` instead; choosing is the caller's (see `pick`).
//!
//! - `items`: what we offer ([`OfferItem`]: a file, a directory tree, a stream).
//! - `outgoing`: one offer of ours on its subchannel.
//! - `incoming`: one offer of the peer's, checked by [`wormhole_proto::dilated_transfer::Inbound`]
//!   and written under the safe-receive rules ([`super::safety`]).
//! - `partial`: partial files (names, resume claims, finishing without overwriting).
//! - `session`: the control subchannels, both directions, the end of the session.
//!
//! Owns: the subchannel I/O and the files of this protocol. Must not: print, ask the user
//! (decisions come from the callback), or speak the classic protocol.

mod dir_writer;
mod fs_thread;
mod incoming;
mod items;
mod outgoing;
mod partial;
mod read_ahead;
mod record_pool;
mod send_dir;
mod session;
mod write_batch;

use std::path::PathBuf;
use std::sync::Arc;

pub use items::OfferItem;
pub use session::run_session;
pub use wormhole_proto::dilated_transfer::{Features, Mode, PeerTransfer};

use crate::dilation::DilationOptions;

/// Settings of a session.
#[derive(Clone)]
pub struct SessionOptions {
    /// Our mode (as declared in our versions).
    pub mode: Mode,
    /// The features we offered (the session uses those the peer listed too).
    pub features: Features,
    /// Dilation settings (relays, `no_listen`…).
    pub dilation: DilationOptions,
    /// Where received offers go (the working directory).
    pub cwd: PathBuf,
    /// `-o`: the destination of a received offer (a single offer, or an existing directory).
    pub output: Option<PathBuf>,
    /// Told what happens (offers, progress, files written).
    pub events: Option<SessionEvents>,
    /// Give up when Dilation has had no connection to the peer for this long (it keeps
    /// re-dialling meanwhile); `None`: wait for ever.
    pub peer_gone_after: Option<std::time::Duration>,
}

/// The event callback.
pub type SessionEvents = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

/// An offer of the peer's, for the caller to decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The file's or directory's name.
    pub name: String,
    /// A directory offer.
    pub is_directory: bool,
    /// Declared bytes (0 for a stream).
    pub bytes: u64,
    /// A stream of unknown length.
    pub stream: bool,
    /// Files in a directory offer (1 for a file).
    pub files: u64,
    /// Where it will be written.
    pub destination: PathBuf,
    /// Bytes of a partial file already here (resumable).
    pub partial: u64,
}

/// What happens during a session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// Dilation is up (our role is known).
    Connected,
    /// We offered `name` (`bytes` in `files` files).
    Offered {
        /// Name offered.
        name: String,
        /// Declared bytes (0 for a stream).
        bytes: u64,
        /// Files (1 for a file).
        files: u64,
    },
    /// The peer accepted our offer; data starts at `offset` (non-zero: resumed).
    Accepted {
        /// Name offered.
        name: String,
        /// Where the data starts.
        offset: u64,
    },
    /// The peer holds a prefix of our file that differs from it: sending from the start.
    PrefixMismatch {
        /// Name offered.
        name: String,
        /// The length the peer claimed.
        claimed: u64,
    },
    /// The peer refused our offer.
    Rejected {
        /// Name offered.
        name: String,
        /// The peer's reason.
        reason: String,
    },
    /// Data of the current offer: `done` of `total` bytes (`total` 0 for a stream), counting
    /// a resumed prefix.
    Progress {
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Our offer is complete and confirmed: `sent` bytes of data went over the wire.
    Sent {
        /// Name offered.
        name: String,
        /// Data bytes written to the subchannel for this offer.
        sent: u64,
    },
    /// The peer offered something; the caller is asked next.
    IncomingOffer(Incoming),
    /// A received file is complete, confirmed and in place.
    FileWritten {
        /// Its path.
        path: PathBuf,
        /// Its length.
        bytes: u64,
        /// Its SHA-256.
        sha256: [u8; 32],
        /// Bytes that were already here (resumed).
        resumed: u64,
    },
    /// A received directory is complete and in place.
    DirectoryWritten {
        /// Its path.
        path: PathBuf,
        /// Files written.
        files: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// One of the peer's offers failed (refused by our rules, or broken); the session goes on.
    IncomingFailed {
        /// The offered name, if known.
        name: String,
        /// Why.
        reason: String,
    },
}

/// How a session ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Data bytes we wrote to subchannels (file data only; a resumed prefix is not sent).
    pub bytes_sent: u64,
    /// Data bytes we received.
    pub bytes_received: u64,
    /// Our offers the peer refused: (name, reason).
    pub rejected: Vec<(String, String)>,
    /// Paths written.
    pub written: Vec<PathBuf>,
    /// The peer's offers we refused or that failed: (name, reason).
    pub failed: Vec<(String, String)>,
    /// The peer's offers we declined.
    pub declined: u64,
}

/// The transfer-v2 parameters to use with a peer whose `app_versions` are `peer_versions`, or
/// `None` (a classic peer).
pub fn peer_transfer(peer_versions: &serde_json::Value, ours: Features) -> Option<PeerTransfer> {
    wormhole_proto::dilated_transfer::choose(peer_versions, ours)
}

/// Wormhole options for a program that offers transfer-v2 in `mode` (and classic to everyone
/// else): Dilation enabled, our `transfer-v2` entry in `app_versions`.
pub fn wormhole_options(mode: Mode, features: Features) -> crate::WormholeOptions {
    let versions = wormhole_proto::dilated_transfer::our_versions(mode, features);
    crate::WormholeOptions {
        versions: serde_json::Value::Object(versions),
        dilation: true,
        ..crate::WormholeOptions::default()
    }
}

pub(crate) fn emit(events: &Option<SessionEvents>, e: SessionEvent) {
    if let Some(f) = events {
        f(&e);
    }
}
