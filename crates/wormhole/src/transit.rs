//! Transit over TCP (tokio driver for `wormhole_proto::transit`): a listener on all interfaces
//! with direct hints for every non-loopback IPv4 and IPv6 address, dialling every peer hint at
//! once, relays after a delay, the Sender's `go`/`nevermind` choice, and fast pipelined encrypted
//! record I/O for bulk data.
//!
//! Protocol decisions (handshake bytes, record framing, nonces) live in `wormhole_proto`; this
//! module only moves bytes and keeps time.

pub(crate) mod addrs;
mod bulk;
mod conn;
mod connect;
mod error;
pub(crate) mod stream;

pub use addrs::local_direct_hints;
pub use bulk::Progress;
pub(crate) use bulk::write_all_vectored;
pub use conn::{ConnectionKind, TransitConnection};
pub use connect::{Transit, TransitConfig};
pub use error::TransitError;
pub use wormhole_proto::transit::{
    DirectHint, Hint, RelayHint, Role, TransitKeys, TransitMsg, WebSocketHint,
};
