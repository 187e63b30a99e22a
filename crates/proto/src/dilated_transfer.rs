//! The Dilated File-Transfer protocol ("transfer-v2", docs/dilated-transfer.md): the
//! `app_versions` negotiation, the msgpack records of an offer subchannel, and the sans-IO
//! checker of what an offering peer sends us.
//!
//! Owns: the wire form of every record (kind byte + msgpack map), the limits on what we decode,
//! the feature names we negotiate, and the order rules of an offer's records. Must not: touch
//! files or paths (the safe-receive rules are `wormhole::transfer::safety`'s) or do I/O.
//!
//! - [`versions`]: our `transfer-v2` entry, and choosing the version and features with a peer.
//! - [`msg`]: [`Record`] and its encoding, bounded decoding.
//! - [`inbound`]: [`Inbound`], which checks an offering peer's records in order (declared sizes,
//!   names, resume offsets, nothing after the end) and says what to do with each.

pub mod inbound;
pub mod msg;
pub mod versions;

pub use inbound::{Inbound, InboundError, InboundEvent};
pub use msg::{
    DataStart, DirectoryOffer, FileAck, FileOffer, MsgError, OfferAccept, OfferReject, Record, ResumeClaim,
};
pub use versions::{Features, Mode, PeerTransfer, choose, our_versions};

/// The largest record of file data (kind byte included), as the spec sets it.
pub const MAX_DATA_RECORD: usize = 65536;
/// The payload bytes we put in one data record (the spec's suggested 16 KiB would cost more
/// records; 64 KiB - 1 is the most it allows).
pub const DATA_CHUNK: usize = MAX_DATA_RECORD - 1;
/// The largest control record (offers, answers, acks) we accept: the spec does not bound them;
/// this is Dilation's write limit, so anything larger could not be sent as one record anyway.
pub const MAX_CONTROL_RECORD: usize = 1 << 20;
/// Most files in one directory offer we accept.
pub const MAX_DIR_FILES: usize = 200_000;
/// Most path segments of one file in a directory offer.
pub const MAX_DEPTH: usize = 64;
/// Longest name segment (bytes).
pub const MAX_SEGMENT: usize = 255;
/// The Dilation subprotocol our offer subchannels are opened for.
pub const SUBPROTOCOL_OFFER: &str = "transfer-v2/offer";
/// The Dilation subprotocol of each side's session channel (closed when it has nothing more to
/// offer).
pub const SUBPROTOCOL_CONTROL: &str = "transfer-v2/control";
