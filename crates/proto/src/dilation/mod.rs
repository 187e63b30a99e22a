//! Dilation (docs/protocol.md §6): the sans-IO layers of a dilated wormhole.
//!
//! Dilation turns a wormhole into a durable, encrypted, multiplexed connection between the two
//! peers. It is spoken only by Python magic-wormhole 0.24.0 (experimental there); the layers here
//! follow the bytes that Python actually sends, which differ from its docs in places.
//!
//! Layers, bottom up:
//! - [`frame`] (L2): the per-connection role prefixes (`… Leader\n\n` / `… Follower\n\n`) and
//!   `u32 BE length ‖ payload` frames with a size cap.
//! - [`noise`] (L2, crypto): `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` keyed by the `dilation-v1`
//!   PSK; the Leader initiates; frame payloads are encrypted with Python's 65519-byte splitting.
//! - [`connection`] (L2, per connection): relay line and `ok\n`, prefixes, Noise handshake,
//!   KCM exchange, then encrypted records — bytes in, bytes and events out.
//! - [`l3`] (L3): the record codec inside each decrypted frame (KCM, PING, PONG, OPEN, DATA,
//!   CLOSE, ACK).
//! - [`l4`] (L4): per-direction seqnums, the unacked queue re-sent on each new connection,
//!   inbound de-duplication, ACKs, subchannel ids and open/half-closed subchannels.
//! - [`manager`] (L1): the `please` / `connection-hints` / `reconnect` / `reconnecting`
//!   mailbox messages, the Leader choice and the manager state machine that starts and
//!   restarts connector generations.
//!
//! Everything here is plain data: bytes in, bytes or actions out, time passed in. Nothing opens
//! a socket, reads a clock or spawns a task.
//!
//! How a driver wires them: the [`manager::Manager`] consumes `dilate-N` bodies and says when
//! to start a connector generation; each socket gets a [`connection::Connection`] (relay line
//! or prefix first); the first connection to report a KCM wins (the Leader then sends its own
//! KCM on it and drops the rest); [`l4::Reliability::connection_made`] yields the records to
//! re-send on it; every record the connection decrypts goes to [`l4::Reliability::receive`],
//! whose actions are sent back through the same connection or handed to the application.
//!
//! [`endpoint::Dilation`] does all of that wiring as one sans-IO object (plus the keepalive in
//! [`keepalive`], reconnection backoff, and subchannel flow control in [`subchannel`]); a
//! driver only moves bytes, mailbox bodies and timers. It takes connections from whatever
//! dials or accepts them, so the transit race machine can be plugged in by the driver.
//!
//! The tokio driver (listening, publishing and dialling hints, racing connections through the
//! transit race machine, the 2 s relay delay) and the public subchannel API are the `wormhole`
//! crate's `dilation` module (docs/dilation.md).

pub mod actions;
mod cipher;
pub mod connection;
pub mod endpoint;
pub mod frame;
pub mod frame_pool;
pub mod keepalive;
pub mod l3;
pub mod l4;
pub mod manager;
pub mod noise;
pub mod subchannel;

/// Which end of the Dilation a side plays (docs/protocol.md §6.2): the side whose dilation side
/// string is greater leads. The Leader is the Noise initiator, allocates odd subchannel ids and
/// runs the keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side with the greater dilation side string.
    Leader,
    /// The other side.
    Follower,
}

impl Role {
    /// The role the peer plays.
    pub fn peer(self) -> Role {
        match self {
            Role::Leader => Role::Follower,
            Role::Follower => Role::Leader,
        }
    }
}
