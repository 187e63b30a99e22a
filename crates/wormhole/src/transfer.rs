//! The file-transfer protocol v1 (docs/protocol.md §5): text, file and directory offers over a
//! [`MessagePipe`] (the wormhole's encrypted messages) with the data over [`crate::transit`].
//!
//! - [`send`]: `send_text`, `send_item` (a file, or a directory streamed as a zip).
//! - [`receive`](mod@receive): `receive_with` (the whole receiver loop, asking its caller about
//!   the offer through an async callback), `receive` (the same with a synchronous decision) and
//!   `receive_offer` (after the caller saw the offer and chose a destination).
//! - [`events`]: what the flows report as they run (connected, data sent) and the Python CLI's
//!   description of the connection.
//! - [`safety`]: the safe-receive rules (base names, destinations, free space, escaping).
//! - [`zip_out`] / [`zip_in`]: the streamed STORED zip we send; checked extraction of what we get.
//!
//! - [`dilated`]: the Dilated File-Transfer protocol (transfer-v2), used when both peers speak it.
//!
//! The flows depend only on [`MessagePipe`], never on the client's internals.

pub mod dilated;
mod error;
pub mod events;
mod pipe;
pub mod receive;
pub mod safety;
pub mod send;
mod space;
pub mod zip_in;
pub mod zip_out;
mod zip_scan;

pub use error::TransferError;
pub use events::{ConnectionInfo, EventHandler, TransferEvent};
#[doc(hidden)]
pub use pipe::{MemoryPipe, memory_pair};
pub use pipe::{MessagePipe, PipeError};
pub use receive::{
    Decision, OfferInfo, Offered, ReceiveOptions, Received, inspect_offer, receive, receive_offer,
    receive_with, reject,
};
pub use safety::{Destination, escape_control, plan_destination, python_repr_text, safe_basename};
pub use send::{SendItem, SendOptions, SendReport, send_item, send_text};
// The message and transit types a program needs to drive or inspect a transfer, so it can
// depend on this crate alone.
pub use wormhole_proto::transfer::{Answer, AppMsg, DirectoryOffer, Offer, TransferMsgError};
pub use wormhole_proto::transit::hints::{parse_relay_endpoints, parse_relay_url};
pub use wormhole_proto::transit::{TransitMsg, TransitPurpose};
