//! The one seam between the transfer flows and a wormhole: send and receive whole application
//! messages and derive keys. [`crate::Wormhole`] implements it; tests implement it in memory.

use std::future::Future;

use wormhole_proto::machine::WormholeError;

use crate::Wormhole;

/// Why the message pipe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The wormhole failed; the typed error says how (a wrong code, the peer or the server gone,
    /// the mailbox connection lost, the key not known yet). See [`WormholeError`] for what to do.
    #[error(transparent)]
    Wormhole(#[from] WormholeError),
    /// Another implementation of [`MessagePipe`] failed; the text says why.
    #[error("{0}")]
    Other(String),
}

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
        Ok(self.send_message(msg).await?)
    }

    async fn recv(&self) -> Result<Vec<u8>, PipeError> {
        Ok(self.get_message().await?)
    }

    fn derive_key(&self, purpose: &str, len: usize) -> Result<Vec<u8>, PipeError> {
        Ok(Wormhole::derive_key(self, purpose, len)?)
    }

    fn appid(&self) -> &str {
        Wormhole::appid(self)
    }
}
