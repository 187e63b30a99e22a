//! The client state machines (docs/protocol.md §2.6–2.8), sans-IO: events in, actions out.
//!
//! # Shape
//! Python wires twelve automata that call each other. Here the [`Boss`] owns one small struct per
//! concern and calls them in sequence; each returns the wire commands it wants sent and a value
//! saying what happened, so there are no callbacks and no re-entrancy:
//!
//! - [`rendezvous`]: command frames out, server frames in (bounded parsing), backoff.
//! - `nameplate`: claim / re-claim / release. `mailbox`: open, resend unechoed adds, dedup, close.
//! - `order`: the peer's `pake` before anything else. `key`: SPAKE2 from code + pake.
//! - `key_choice`: which key when SPAKE2's K has a zero top byte (wormhole-william's key bug).
//! - `receive`: decrypt, confirm the key, get scared. `send`: number and hold app messages.
//! - [`reorder`]: deliver the peer's app messages in strict numeric order (bounded buffer).
//! - `code`: allocate / set / input (+ the allocator, input and lister).
//! - `terminator`: close completes when nameplate and mailbox are both done.
//! - [`permission`]: the welcome's `permission-required` (hashcash), answered before `bind`.
//! - [`boss`]: moods, results, the dilate-N rule, reconnection.
//! - [`snapshot`]: the whole state as versioned JSON (keys included), and restoring it.
//!
//! # Driving it
//! Create a [`Boss`], call [`Boss::start`], then loop: perform every [`Action`] from
//! [`Boss::poll_action`] (connect, send a frame, set a timer, deliver an [`Event`]) and feed back
//! what happens (`connected`, `frame_received`, `connection_lost`, `timer_fired`) together with
//! the current time. The async `wormhole` crate is such a driver; the tests in
//! `crates/proto/tests/` drive two machines against a simulated mailbox.

pub mod boss;
mod code;
pub mod error;
pub mod events;
mod key;
mod key_choice;
mod mailbox;
mod nameplate;
mod order;
pub mod permission;
mod receive;
pub mod rendezvous;
pub mod reorder;
mod send;
pub mod snapshot;
mod terminator;

pub use boss::{Boss, Config};
pub use error::WormholeError;
pub use events::{Action, Event, Mood, Welcome};
pub use key_choice::BRIEF_WAIT;
pub use rendezvous::{FrameError, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, backoff_delay};
pub use snapshot::{
    MAX_STATE_BYTES, MachineStateWithKeys, STATE_FORMAT, STATE_VERSION, SerializedWormholeWithKeys,
    StateError,
};
