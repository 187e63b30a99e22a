//! `wormhole-proto`: the sans-IO core of magic-wormhole.
//!
//! Nothing in this crate opens a socket, reads a clock or spawns a task. Time is passed in as an
//! argument; randomness comes from a caller-supplied RNG where tests need determinism. The async
//! `wormhole` crate and the `wormhole-server` crate drive these types.
//!
//! Module map:
//! - [`server_msg`]: the client ⇄ mailbox-server wire messages (JSON, serde).
//! - [`hashcash`]: proof-of-work stamps of the mailbox's `permission-required` scheme.
//! - [`code`], [`wordlist`]: wormhole codes, the PGP word list and completion.
//! - [`key`]: SPAKE2, HKDF purposes, secretbox.
//! - [`machine`]: the client state machines (Boss and friends), events in, actions out.
//! - [`dilation`]: Dilation (durable connections over the wormhole): manager, L2/L3/L4 framing,
//!   Noise; fed by the Boss's `dilate-N` seam.
//! - [`transit`]: transit hints, handshakes and encrypted records.
//! - [`transfer`]: the file-transfer (v1) application messages.
//! - [`forward`]: port forwarding over Dilation on fowl's wire: messages, arguments, policy.
//! - [`dilated_transfer`]: the Dilated File-Transfer protocol (transfer-v2): negotiation,
//!   msgpack records, the checker of an offering peer's records.

#![forbid(unsafe_code)]

pub mod code;
pub mod dilated_transfer;
pub mod dilation;
pub mod forward;
pub mod hashcash;
pub mod key;
pub mod machine;
pub mod server_msg;
pub mod socks5;
pub mod transfer;
pub mod transit;
pub mod wordlist;
