//! The files of our accepted directory offer: each file's header, data and ack in the listed
//! order, then the receiver's acks checked against ours. With the `bundle` feature, small files
//! travel whole (header, data, ack) several to a record, and the receiver's acks come back
//! bundled too; larger files, and every file without the feature, go record by record.
//!
//! Owns: the bundle being filled, the receiver's acks not yet checked. Must not: send the offer
//! or close the subchannel (the caller's, in `outgoing`).

use std::collections::VecDeque;

use bytes::Bytes;
use wormhole_proto::dilated_transfer::msg::kind::{BUNDLE, DATA as DATA_KIND};
use wormhole_proto::dilated_transfer::msg::{BundleBuilder, FILE_ACK_MAX};
use wormhole_proto::dilated_transfer::{Features, FileAck, FileOffer, InboundError, MsgError, Record};

use super::items::PromisedFile;
use super::outgoing::{
    Ctx, changed, check_ack, next, open_promised, protocol, read_up_to, send, stream_file, write_record,
};
use super::partial::Hashes;
use crate::dilation::Subchannel;
use crate::transfer::TransferError;

fn header(f: &PromisedFile) -> Record {
    Record::FileOffer(FileOffer {
        filename: f.segments.last().cloned().unwrap_or_default(),
        timestamp: f.mtime,
        bytes: f.size,
        stream: false,
    })
}

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

/// The record sizes of `f` sent whole in a bundle: header, data (with its kind byte; none for
/// an empty file), and room for the ack.
fn bundled_sizes(f: &PromisedFile, header: &[u8]) -> [usize; 3] {
    let data = usize::try_from(f.size).unwrap_or(usize::MAX).saturating_add(1);
    [header.len(), data, FILE_ACK_MAX]
}

/// Appends `f` whole to `bundle`; its ack.
fn bundle_file(
    bundle: &mut BundleBuilder,
    f: &PromisedFile,
    header: &[u8],
    features: Features,
) -> Result<FileAck, TransferError> {
    let mut file = open_promised(f)?;
    let mut hashes = Hashes::for_features(features);
    bundle.push(header);
    if f.size > 0 {
        bundle.try_push_with(|buf| {
            buf.push(DATA_KIND);
            let start = buf.len();
            let n = read_up_to(&mut file, buf, f.size as usize).map_err(TransferError::file(&f.source))?;
            if n as u64 != f.size {
                return Err(changed(
                    f,
                    format!("its length changed ({} bytes offered, {n} read)", f.size),
                ));
            }
            hashes.update(&buf[start..]);
            Ok(())
        })?;
    }
    let (hash, sha) = hashes.finish();
    let ack = FileAck {
        bytes: f.size,
        hash,
        sha256: features.sha256.then_some(sha),
    };
    bundle.push(&Record::FileAck(ack).encode());
    Ok(ack)
}

/// Sends the files of an accepted directory offer and checks the receiver's acks.
pub(super) async fn send_files(
    sub: &mut Subchannel,
    files: &[PromisedFile],
    features: Features,
    ctx: &mut Ctx<'_>,
) -> Result<(), TransferError> {
    // The acks that already arrived are checked after each file (so they never pile up in our
    // receive window), the rest after the last one.
    let mut ours = Vec::with_capacity(files.len());
    let mut checked = 0;
    let mut acks = Acks {
        bundles: features.bundle,
        parts: VecDeque::new(),
    };
    let mut bundle = BundleBuilder::new();
    for f in files {
        let head = header(f);
        let head_bytes = head.encode();
        let sizes = bundled_sizes(f, &head_bytes);
        if features.bundle && BundleBuilder::fits_empty(&sizes) {
            if !bundle.fits(&sizes) {
                write_record(sub, std::mem::take(&mut bundle).into_record()).await?;
            }
            ours.push(bundle_file(&mut bundle, f, &head_bytes, features)?);
            ctx.sent += f.size;
            ctx.progress(f.size);
        } else {
            if !bundle.is_empty() {
                write_record(sub, std::mem::take(&mut bundle).into_record()).await?;
            }
            send(sub, &head).await?;
            let ack = stream_file(sub, f, 0, Hashes::for_features(features), features, ctx).await?;
            send(sub, &Record::FileAck(ack)).await?;
            ours.push(ack);
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
    if !bundle.is_empty() {
        write_record(sub, bundle.into_record()).await?;
    }
    while checked < ours.len() {
        acks.check(sub, &ours[checked], &files[checked]).await?;
        checked += 1;
    }
    Ok(())
}
