//! Transit (v1), the sans-IO half: hint and ability wire types, the transit-key purpose rule and
//! the keys derived from it, the byte-exact handshakes with an incremental checker, and the
//! encrypted record codec with counting nonces (docs/protocol.md §4), and the connection race
//! (`race`: which dial wins, relay delay, mismatch grace, nevermind) that Dilation will reuse.
//! The record cipher itself lives in the `wormhole-transit-crypto` crate, the only crate with
//! `unsafe`.
//!
//! This module never opens a socket or reads a clock; `wormhole::transit` drives it over TCP.

pub mod handshake;
pub mod hints;
pub mod keys;
pub mod race;
pub mod record;

pub use handshake::{Expect, ExpectError, ExpectProgress};
pub use hints::{Ability, DirectHint, Hint, RelayHint, TransitMsg, WebSocketHint};
pub use keys::{DEFAULT_APPID, Role, TransitKeys, TransitPurpose, transit_key_purpose};
pub use record::{
    DEFAULT_MAX_RECORD, RECORD_HEADER, RECORD_OVERHEAD, RecordError, RecordOpener, RecordSealer,
    RecordWalker, SEND_CHUNK, WalkError,
};
