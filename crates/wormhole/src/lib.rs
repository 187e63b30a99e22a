//! `wormhole`: the async (tokio) magic-wormhole client library.
//!
//! It drives the sans-IO client machine of `wormhole-proto` (codes, SPAKE2, encrypted ordered
//! messages, reconnection) over a WebSocket to a mailbox server, and adds transit (direct and
//! relayed TCP) and the file-transfer protocol on top ([`transit`], [`transfer`]).
//!
//! # Awaiting mode
//! ```no_run
//! # async fn demo() -> Result<(), wormhole::WormholeError> {
//! use wormhole::{Wormhole, WormholeOptions};
//! let w = Wormhole::create("example.com/chat", "ws://127.0.0.1:4000/v1", WormholeOptions::default());
//! w.allocate_code(2).await?;
//! println!("code: {}", w.get_code().await?);          // tell the peer
//! let verifier = w.get_verifier().await?;              // the peer joined with the same code
//! println!("verifier {}", hex::encode(verifier));
//! w.send_message(b"hello".to_vec()).await?;
//! let reply = w.get_message().await?;
//! println!("peer said {}", String::from_utf8_lossy(&reply));
//! let mood = w.close().await?;                         // Ok(Mood::Happy)
//! # let _ = mood; Ok(()) }
//! ```
//! The other side calls `set_code(&code)` (or `input_code()` for interactive entry with
//! completion) instead of `allocate_code`. See `examples/awaiting.rs`.
//!
//! # Delegated mode
//! ```no_run
//! # async fn demo() -> Result<(), wormhole::WormholeError> {
//! use wormhole::{Event, Wormhole, WormholeOptions};
//! let (w, mut events) = Wormhole::create_delegated(
//!     "example.com/chat", "ws://127.0.0.1:4000/v1", WormholeOptions::default());
//! w.set_code("4-purple-sausages").await?;
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         Event::Verifier(_) => w.send_message(b"hi".to_vec()).await?,
//!         Event::Message(m) => { println!("{m:?}"); w.close().await.ok(); }
//!         Event::Closed(result) => { println!("closed: {result:?}"); break; }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//! See `examples/delegated.rs`.
//!
//! # Reliability
//! After the first successful connection, a lost WebSocket is re-opened with backoff
//! (1 s × 1.5ⁿ, capped at 60 s, plus jitter) and the protocol resumes where it was; the peer
//! never sees duplicates. A failed *first* connection is [`WormholeError::ServerConnection`].
//!
//! # Saving and restoring
//! A delegated wormhole can be saved ([`Wormhole::serialize`], JSON with the keys in it) and
//! restored after a restart ([`Wormhole::from_serialized`]); in journal mode
//! ([`Wormhole::create_journaled`]) a checkpoint callback sees every state change before
//! anything caused by it leaves the process. See docs/journal.md and `examples/resume.rs`.
//!
//! # Timing
//! Pass a [`Timing`] in [`WormholeOptions::timing`] to record every frame; [`Timing::write`]
//! produces Python's `--dump-timing` JSON.
#![forbid(unsafe_code)]

mod driver;

pub mod dilation;
mod events;
pub mod forward;
mod input;
mod journal;
pub mod net;
mod state;
mod timing;
mod wormhole;

pub mod transfer;
pub mod transit;

/// Wormhole codes (`<nameplate>-<words>`) and `wormhole-transfer:` URIs.
pub mod code {
    pub use wormhole_proto::code::*;
}

pub use events::{Event, Events};
pub use input::CodeInputHelper;
pub use journal::{Checkpoint, CheckpointError, Journal};
pub use timing::{Timing, TimingEvent};
pub use wormhole::{DEFAULT_APPID, DEFAULT_MAILBOX_URL, Wormhole, WormholeOptions};
pub use wormhole_proto::machine::{
    MachineStateWithKeys, Mood, STATE_VERSION, SerializedWormholeWithKeys, StateError, Welcome, WormholeError,
};
