//! The one seam between the transfer flows and a wormhole: send and receive whole application
//! messages and derive keys. [`crate::Wormhole`] implements it; tests implement it in memory.

use std::future::Future;

use crate::Wormhole;

/// An error from the message pipe (the mailbox connection), as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PipeError(pub String);

/// What the transfer flows need from a wormhole.
pub trait MessagePipe: Send + Sync {
    /// Queue one application message for the peer.
    fn send(&self, msg: Vec<u8>) -> impl Future<Output = Result<(), PipeError>> + Send;
    /// The next application message from the peer.
    fn recv(&self) -> impl Future<Output = Result<Vec<u8>, PipeError>> + Send;
    /// HKDF of the shared key for `purpose`, `len` bytes (available once the key is known).
    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError>;
    /// The AppID of this wormhole.
    fn appid(&self) -> &str;
}

impl MessagePipe for Wormhole {
    async fn send(&self, msg: Vec<u8>) -> Result<(), PipeError> {
        self.send_message(msg).await.map_err(|e| PipeError(e.to_string()))
    }

    async fn recv(&self) -> Result<Vec<u8>, PipeError> {
        self.get_message().await.map_err(|e| PipeError(e.to_string()))
    }

    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError> {
        Wormhole::derive_key(self, purpose, len).map_err(|e| PipeError(e.to_string()))
    }

    fn appid(&self) -> &str {
        Wormhole::appid(self)
    }
}
