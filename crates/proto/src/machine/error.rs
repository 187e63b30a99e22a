//! The client's error type: every way a wormhole can fail or an API call can be refused
//! (docs/protocol.md §2.8). Shared by the sans-IO machine and the async `wormhole` crate.

use crate::code::KeyFormatError;

/// Why a wormhole failed, or why an API call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WormholeError {
    /// The wormhole was closed before the peer was verified. Ask the peer to run its side
    /// (with the same code) and try again.
    #[error("wormhole closed before the peer connected (lonely)")]
    Lonely,
    /// A peer message failed to decrypt: the code was mistyped, or someone tried to guess it.
    /// Start again with a new code.
    #[error("key confirmation failed: wrong code, or someone guessed at it")]
    WrongPassword,
    /// The mailbox server reported an error (e.g. `crowded`: a third party used the code).
    /// Start again with a new code.
    #[error("server error: {0}")]
    Server(String),
    /// The server said `crowded`: two other sides already use this code (someone may have
    /// intercepted or mistyped it). Start again with a new code.
    #[error("server error: crowded")]
    Crowded,
    /// The server refuses service (welcome `error`); the message says why (often: upgrade).
    #[error("server refused service: {0}")]
    Welcome(String),
    /// The first connection to the mailbox server failed. Check the URL and the network.
    #[error("cannot connect to the mailbox server: {0}")]
    ServerConnection(String),
    /// The code was malformed: it must be `<digits>-<words>` without spaces.
    #[error("invalid wormhole code: {0}")]
    KeyFormat(#[from] KeyFormatError),
    /// A key-dependent call was made before the key was known. Wait for the key (or verifier).
    #[error("the key is not known yet")]
    NoKey,
    /// Only one of allocate_code / set_code / input_code may be used per wormhole.
    #[error("a code was already allocated, set or input for this wormhole")]
    OnlyOneCode,
    /// choose_nameplate (or nameplate completion) after a nameplate was already chosen.
    #[error("the nameplate was already chosen")]
    AlreadyChoseNameplate,
    /// choose_words (or word completion) before choose_nameplate.
    #[error("choose the nameplate first")]
    MustChooseNameplateFirst,
    /// choose_words was called twice.
    #[error("the words were already chosen")]
    AlreadyChoseWords,
    /// The code-input helper was used without `input_code()`.
    #[error("input_code() was not called")]
    NotInputting,
    /// The peer broke the protocol (e.g. a version message that is not a JSON object, or too
    /// many out-of-order messages). Nothing to retry with this peer.
    #[error("protocol error from peer: {0}")]
    Protocol(String),
    /// `send_message` was given more than the allowed size; send large data over transit.
    #[error("message of {size} bytes is larger than the {max}-byte limit")]
    MessageTooLarge {
        /// Size given.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The mailbox server sent a message larger than our WebSocket message limit (a peer put an
    /// oversized message into the mailbox). The session is ended: every reconnection would
    /// fetch the same message again. Ask the peer to send large data as a file (over transit).
    #[error("a message from the mailbox was larger than our limit of {limit} bytes ({size} bytes)")]
    MailboxMessageTooLarge {
        /// Size of the message (as far as it was read).
        size: usize,
        /// Our limit.
        limit: usize,
    },
    /// Dilation messages may only go to a peer whose versions advertise `can-dilate`.
    #[error("the peer cannot dilate")]
    OldPeerCannotDilate,
    /// The wormhole is already closed; the call cannot take effect.
    #[error("the wormhole is closed")]
    Closed,
    /// A restored wormhole found evidence in the mailbox that its saved state was restored
    /// before (or is older than what was sent from it): a message under our side that the state
    /// does not record, or our earlier messages gone because the mailbox was closed. Carrying on
    /// would repeat or lose messages; restore the newest state, once.
    #[error("this saved wormhole state was restored twice, or is stale: {0}")]
    StateReused(String),
    /// Journal mode: the application's checkpoint callback failed; nothing more was sent.
    #[error("checkpoint failed: {0}")]
    Checkpoint(String),
}
