//! The files of our accepted directory offer: each file's header, data and ack in the listed
//! order, then the receiver's acks checked against ours. With the `bundle` feature, small files
//! travel whole (header, data, ack) several to a record, packed ahead on a thread of their own
//! (`read_ahead`), and the receiver's acks come back bundled too; larger files, and every file
//! without the feature, go record by record from here.
//!
//! Owns: the receiver's acks not yet checked. Must not: send the offer or close the subchannel
//! (the caller's, in `outgoing`).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use wormhole_proto::dilated_transfer::msg::kind::BUNDLE;
use wormhole_proto::dilated_transfer::{Features, FileAck, InboundError, MsgError, Record};

use super::items::PromisedFile;
use super::outgoing::{Ctx, check_ack, next, protocol, send, stream_file, write_record};
use super::partial::Hashes;
use super::read_ahead::{Ahead, ReadAhead, header};
use crate::dilation::Subchannel;
use crate::transfer::TransferError;

/// The receiver's acks, one record at a time (a bundle's parts in order).
struct Acks {
    bundles: bool,
    parts: VecDeque<Bytes>,
}

impl Acks {
    async fn next(&mut self, sub: &mut Subchannel) -> Result<Option<Record>, TransferError> {
        loop {
            if let Some(p) = self.parts.pop_front() {
                return match Record::decode(&p)
                    .map_err(|e: MsgError| TransferError::PeerProtocol(e.into()))?
                {
                    Record::Bundle(_) => Err(protocol(BUNDLE, "a file ack (bundles do not nest)")),
                    r => Ok(Some(r)),
                };
            }
            match next(sub).await? {
                Some(Record::Bundle(parts)) if self.bundles => self.parts.extend(parts),
                other => return Ok(other),
            }
        }
    }

    async fn check(
        &mut self,
        sub: &mut Subchannel,
        ours: &FileAck,
        f: &PromisedFile,
    ) -> Result<(), TransferError> {
        match self.next(sub).await? {
            Some(Record::FileAck(theirs)) => check_ack(ours, &theirs, &f.segments.join("/")),
            Some(other) => Err(protocol(other.kind(), "the receiver's file ack")),
            None => Err(TransferError::PeerProtocol(InboundError::Truncated)),
        }
    }
}

/// Sends the files of an accepted directory offer and checks the receiver's acks.
pub(super) async fn send_files(
    sub: &mut Subchannel,
    files: Arc<Vec<PromisedFile>>,
    features: Features,
    ctx: &mut Ctx<'_>,
) -> Result<(), TransferError> {
    // The acks that already arrived are checked after each record (so they never pile up in
    // our receive window), the rest after the last one.
    let mut ours = Vec::with_capacity(files.len());
    let mut checked = 0;
    let mut acks = Acks {
        bundles: features.bundle,
        parts: VecDeque::new(),
    };
    let mut ahead = ReadAhead::start(files.clone(), features)?;
    while let Some(item) = ahead.next().await? {
        match item {
            Ahead::Bundle { record, acks, bytes } => {
                write_record(sub, record).await?;
                ours.extend(acks);
                ctx.sent += bytes;
                ctx.progress(bytes);
            }
            Ahead::Single(i) => {
                let f = &files[i];
                send(sub, &header(f)).await?;
                let ack = stream_file(sub, f, 0, Hashes::for_features(features), features, ctx).await?;
                send(sub, &Record::FileAck(ack)).await?;
                ours.push(ack);
            }
        }
        while checked < ours.len() {
            let Some(r) =
                futures_util::FutureExt::now_or_never(acks.check(sub, &ours[checked], &files[checked]))
            else {
                break;
            };
            r?;
            checked += 1;
        }
    }
    while checked < ours.len() {
        acks.check(sub, &ours[checked], &files[checked]).await?;
        checked += 1;
    }
    Ok(())
}
