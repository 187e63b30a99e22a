//! Journal mode (docs/journal.md): the application's checkpoint callback, and what the driver
//! holds back until it returns.
//!
//! Owns: [`Journal`] (a sync or async callback), [`Checkpoint`] (what it is given) and the
//! driver's hold queue ([`Held`]). Must not: write files (the application saves the state), or
//! log a state (it holds keys).
//!
//! The rule the driver keeps: nothing leaves the process (no frame to the mailbox server, no
//! event to the application, no reply to an API call) while the machine's state differs from the
//! last state a checkpoint returned for. After each input the driver serializes the machine; if
//! the JSON changed, or events are waiting, it calls the callback with the new state and the
//! events that input produced, awaits it, and only then releases what it held.

use std::future::Future;
use std::pin::Pin;

use wormhole_proto::machine::{SerializedWormholeWithKeys, WormholeError};

use crate::events::Event;

/// What a checkpoint callback's error may be (its text ends the wormhole with
/// [`WormholeError::Checkpoint`]).
pub type CheckpointError = Box<dyn std::error::Error + Send + Sync>;

type CheckpointFuture = Pin<Box<dyn Future<Output = Result<(), CheckpointError>> + Send>>;

/// One checkpoint: the state to save and the events it accounts for. Save both atomically
/// (e.g. write a temporary file, fsync, rename) before returning: after a crash the application
/// restores from the last saved state, and the events saved with it are the ones it has seen.
pub struct Checkpoint {
    /// The wormhole's state after the events (keys included; never log it). `None` once the
    /// wormhole has closed: nothing is left to restore, the saved state may be deleted.
    pub state: Option<SerializedWormholeWithKeys>,
    /// The events produced since the previous checkpoint, in order. They are delivered on the
    /// event stream too, after this checkpoint returned.
    pub events: Vec<Event>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state's Debug is redacted; events may carry the key, so only their number shows.
        f.debug_struct("Checkpoint")
            .field("state", &self.state)
            .field("events", &self.events.len())
            .finish()
    }
}

/// The checkpoint callback of journal mode.
pub struct Journal {
    callback: Box<dyn FnMut(Checkpoint) -> CheckpointFuture + Send>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// A synchronous callback. It runs on the driver's task: keep it short (one file write).
    pub fn new_sync(
        mut f: impl FnMut(Checkpoint) -> Result<(), CheckpointError> + Send + 'static,
    ) -> Journal {
        Journal {
            callback: Box::new(move |c| {
                let r = f(c);
                Box::pin(async move { r })
            }),
        }
    }

    /// An asynchronous callback: the driver awaits the future it returns.
    pub fn new_async<F, Fut>(mut f: F) -> Journal
    where
        F: FnMut(Checkpoint) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), CheckpointError>> + Send + 'static,
    {
        Journal {
            callback: Box::new(move |c| Box::pin(f(c))),
        }
    }

    pub(crate) async fn call(&mut self, c: Checkpoint) -> Result<(), WormholeError> {
        (self.callback)(c)
            .await
            .map_err(|e| WormholeError::Checkpoint(e.to_string()))
    }
}

/// A reply to an API call and its value, held until the checkpoint.
pub(crate) type HeldReply = (
    tokio::sync::oneshot::Sender<Result<(), WormholeError>>,
    Result<(), WormholeError>,
);

/// What the driver holds while a checkpoint is due.
#[derive(Default)]
pub(crate) struct Held {
    /// Frames for the current connection, in order.
    pub frames: Vec<String>,
    /// Machine events, in order.
    pub events: Vec<wormhole_proto::machine::Event>,
    /// Replies to API calls.
    pub replies: Vec<HeldReply>,
}

/// The journal's state in the driver.
pub(crate) struct JournalState {
    pub journal: Journal,
    /// The JSON of the last state a checkpoint returned for.
    pub last: Option<String>,
    pub held: Held,
    /// A checkpoint failed: nothing more may leave.
    pub failed: bool,
}

impl JournalState {
    pub fn new(journal: Journal, last: Option<String>) -> JournalState {
        JournalState {
            journal,
            last,
            held: Held::default(),
            failed: false,
        }
    }
}
