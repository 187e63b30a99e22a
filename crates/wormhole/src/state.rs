//! What the driver has learned so far, shared with the [`crate::Wormhole`] handle through a
//! `watch` channel so any number of `get_*` calls can wait for their piece.

use wormhole_proto::machine::{Mood, Welcome, WormholeError};

/// A snapshot of the wormhole's progress.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub welcome: Option<Welcome>,
    pub code: Option<String>,
    pub key: Option<[u8; 32]>,
    pub verifier: Option<[u8; 32]>,
    pub versions: Option<serde_json::Value>,
    /// Latest nameplate list and how many lists arrived so far.
    pub nameplates: Vec<String>,
    pub nameplates_generation: u64,
    pub wordlist_ready: bool,
    pub closed: Option<Result<Mood, WormholeError>>,
}

impl Snapshot {
    /// The error a waiter gets when the wormhole closed before its value arrived.
    pub fn closed_error(&self) -> Option<WormholeError> {
        match &self.closed {
            Some(Err(e)) => Some(e.clone()),
            Some(Ok(_)) => Some(WormholeError::Closed),
            None => None,
        }
    }
}
