//! The transfer error type. Failures of the wormhole itself stay typed ([`WormholeError`]) so
//! callers can tell a wrong code from a lost server or a peer that went away.

use std::path::PathBuf;

use wormhole_proto::machine::WormholeError;
use wormhole_proto::transfer::TransferMsgError;

use super::PipeError;
use crate::transit::TransitError;

/// Errors of the file-transfer flows. Each says what the user can do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The wormhole failed during the transfer; the typed error says how and what to do:
    /// [`WormholeError::WrongPassword`] (a mistyped code: start again with a new code),
    /// [`WormholeError::Lonely`] / [`WormholeError::Closed`] (the wormhole closed),
    /// [`WormholeError::Server`] (e.g. `crowded`), [`WormholeError::ServerConnection`]…
    #[error(transparent)]
    Wormhole(WormholeError),
    /// A message pipe other than [`crate::Wormhole`] failed or closed. Retry with a new code.
    #[error("message pipe failed: {0}")]
    Pipe(String),
    /// The peer sent `{"error": …}`: it gave up (for example it rejected the transfer).
    #[error("peer reported an error: {0}")]
    Peer(String),
    /// The peer sent something this protocol does not allow here. It is broken or hostile.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A peer message could not be parsed.
    #[error(transparent)]
    Message(#[from] TransferMsgError),
    /// Transit failed (no connection, broken records, peer closed early…).
    #[error(transparent)]
    Transit(#[from] TransitError),
    /// The offered name is not a plain file name (a path such as `../x`, control characters, empty,
    /// `.`/`..`, too long): a broken or hostile sender. Nothing was written.
    #[error("refusing offered name '{0}': not a usable file name (a path, control characters, or empty)")]
    BadName(String),
    /// The destination exists and overwriting was not explicitly allowed (name it with `-o`).
    #[error("refusing to overwrite existing {}", .0.display())]
    WouldOverwrite(PathBuf),
    /// Not enough free space at the destination.
    #[error("not enough free space at {}: need {need} bytes, {free} available", path.display())]
    NoSpace {
        /// Directory checked.
        path: PathBuf,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        free: u64,
    },
    /// The received zip is unsafe or inconsistent with the offer; nothing was extracted.
    #[error("refusing received directory: {0}")]
    BadZip(String),
    /// The receiver's hash of the data differs from ours: the data was corrupted or the receiver
    /// is broken. Send again.
    #[error("transfer hash mismatch: receiver got sha256 {got}, we sent {sent}")]
    HashMismatch {
        /// Receiver's hash.
        got: String,
        /// Our hash.
        sent: String,
    },
    /// The receiver did not acknowledge with `ok`.
    #[error("receiver did not acknowledge the transfer: {0}")]
    BadAck(String),
    /// The receiver answered a text offer with something other than `message_ack: ok`.
    #[error("error sending text: {0}")]
    TextNotAcknowledged(String),
    /// We declined the offer (the caller's decision).
    #[error("transfer rejected")]
    Rejected,
    /// The offer is not a file or directory offer.
    #[error("unsupported offer: {0}")]
    Unsupported(String),
    /// The sender offered something other than text, a file or a directory (the offer's key).
    #[error("unsupported offer: offer type {0:?}")]
    UnknownOffer(String),
    /// A directory offer in a mode other than `zipfile/deflated` (the mode offered).
    #[error("unsupported offer: directory mode {0:?}")]
    UnknownDirectoryMode(String),
    /// We accept only text (`accept_files: false`) and the sender offered a file or directory.
    #[error("transfer rejected")]
    FilesRefused,
    /// A file could not be read (sender) or written (receiver).
    #[error("{}: {source}", path.display())]
    File {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something in the directory to send cannot be sent (unreadable, special file). Use
    /// `--ignore-unsendable-files` to skip such entries.
    #[error("cannot send {}: {reason}", path.display())]
    Unsendable {
        /// The entry.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Dilation failed or ended during a transfer-v2 session.
    #[error("Dilation: {0}")]
    Dilation(#[from] crate::dilation::DilationError),
    /// The peer broke the Dilated File-Transfer protocol (a hostile or broken peer); what it
    /// sent of that offer was not kept.
    #[error("the peer broke the transfer protocol: {0}")]
    PeerProtocol(#[from] wormhole_proto::dilated_transfer::InboundError),
    /// A transfer-v2 session had no Dilation connection to the peer for this long: the peer
    /// is gone (killed, or its network lost). Partial files are kept for a later resume.
    #[error("no connection to the peer for {} s: it is gone (a partial file is kept for a resume)", .0.as_secs())]
    PeerGone(std::time::Duration),
}

impl From<PipeError> for TransferError {
    fn from(e: PipeError) -> Self {
        match e {
            PipeError::Wormhole(w) => TransferError::Wormhole(w),
            PipeError::Other(m) => TransferError::Pipe(m),
        }
    }
}

impl TransferError {
    /// The wormhole's own error, when the wormhole is what failed.
    pub fn wormhole_error(&self) -> Option<&WormholeError> {
        match self {
            TransferError::Wormhole(w) => Some(w),
            _ => None,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TransferError {
        let path = path.into();
        move |source| TransferError::File { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wormhole_errors_stay_typed() {
        let e = TransferError::from(PipeError::from(WormholeError::WrongPassword));
        assert!(matches!(e, TransferError::Wormhole(WormholeError::WrongPassword)));
        assert_eq!(e.wormhole_error(), Some(&WormholeError::WrongPassword));
        assert_eq!(e.to_string(), WormholeError::WrongPassword.to_string());
        let e = TransferError::from(PipeError::Other("gone".into()));
        assert!(matches!(e, TransferError::Pipe(ref m) if m == "gone"));
        assert_eq!(e.wormhole_error(), None);
        assert_eq!(e.to_string(), "message pipe failed: gone");
    }
}
