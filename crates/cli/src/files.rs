//! File and directory transfers for the CLI (PROTOCOL.md §5.2–5.4): offers, transit, progress
//! and the receiver's destination rules, on top of `wormhole::transfer`.
//!
//! WORK IN PROGRESS: waiting for `wormhole::transfer`; until it lands these return an error.

use std::path::Path;

use anyhow::{Result, bail};
use wormhole::Wormhole;
use wormhole_proto::transfer::Offer;
use wormhole_proto::transit::TransitMsg;

use crate::args::{GlobalOptions, ReceiveOptions, SendOptions};

/// A file or directory ready to offer.
pub struct Prepared;

/// Inspect the path to send.
pub fn prepare_send(path: &Path, _opts: &SendOptions) -> Result<Prepared> {
    if !path.exists() {
        bail!(crate::report::TransferError(format!(
            "Cannot send: no file/directory named '{}'",
            path.display()
        )));
    }
    bail!("file transfer is not available yet")
}

/// Send the prepared file or directory.
pub async fn run_send(
    _w: &mut Wormhole,
    _opts: &SendOptions,
    _global: &GlobalOptions,
    _p: Prepared,
) -> Result<()> {
    bail!("file transfer is not available yet")
}

/// Receive an offered file or directory.
pub async fn run_receive(
    _w: &mut Wormhole,
    _opts: &ReceiveOptions,
    _global: &GlobalOptions,
    _transit: Option<TransitMsg>,
    _offer: Offer,
) -> Result<()> {
    bail!("file transfer is not available yet")
}
