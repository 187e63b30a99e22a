//! `wormhole`: the async (tokio) magic-wormhole client library.
//!
//! It drives the sans-IO machines of `wormhole-proto` over a WebSocket to the mailbox server, and
//! adds transit (direct and relayed TCP) and the file-transfer protocol on top.

pub mod transfer;
pub mod transit;
