//! One offer of the peer's: checked record by record by
//! [`wormhole_proto::dilated_transfer::Inbound`], answered through the caller's decision, and
//! written under the classic receiver's rules (a plain base name, never overwriting, free
//! space checked for the whole offer and for each file) into a partial file or directory that
//! is moved into place only once complete and confirmed.
//!
//! Owns: the files of one received offer. Must not: print or ask (the callback decides).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use wormhole_proto::dilated_transfer::inbound::Offer;
use wormhole_proto::dilated_transfer::msg::BundleBuilder;
use wormhole_proto::dilated_transfer::{
    Features, FileAck, FileOffer, Inbound, InboundError, InboundEvent, OfferAccept, OfferReject, Record,
    ResumeClaim,
};

use super::dir_writer::{DirWriter, compare};
use super::fs_thread::FsThread;
use super::outgoing::write_record;
use super::partial::{
    DirGuard, Hashes, existing_partial, finish, hash_prefix, partial_dir, partial_path, remove_partial,
};
use super::write_batch::WriteBatch;
use super::{Incoming, SessionEvent, SessionEvents, emit};
use crate::dilation::Subchannel;
use crate::transfer::safety::plan_destination;
use crate::transfer::{TransferError, space};

/// Where and how the peer's offers are received.
pub struct Ctx<'a> {
    pub features: Features,
    pub cwd: &'a Path,
    pub output: Option<&'a Path>,
    pub events: &'a Option<SessionEvents>,
}

/// How one of the peer's offers ended.
pub enum Outcome {
    /// Written: where, data bytes received.
    Written(PathBuf, u64),
    /// We (the user) declined it.
    Declined,
    /// Refused by our rules: the offered name and why.
    Refused(String, String),
}

async fn send(sub: &mut Subchannel, r: Record) -> Result<(), TransferError> {
    write_record(sub, r.encode()).await
}

/// Refuse the offer with `reason` and end the subchannel.
async fn refuse(sub: &mut Subchannel, reason: &str) -> Result<(), TransferError> {
    send(
        sub,
        Record::Reject(OfferReject {
            reason: reason.to_owned(),
        }),
    )
    .await?;
    let _ = sub.shutdown().await;
    // Whatever the peer still sends is discarded until its CLOSE.
    while sub.recv_record().await?.is_some() {}
    Ok(())
}

fn free_space_ok(dir: &Path, need: u64) -> Result<(), TransferError> {
    match space::available(dir) {
        Ok(free) if free < need => Err(TransferError::NoSpace {
            path: dir.to_owned(),
            need,
            free,
        }),
        _ => Ok(()),
    }
}

/// Receives the offer that opened `sub`.
pub async fn receive<D>(mut sub: Subchannel, ctx: &Ctx<'_>, decide: &mut D) -> Result<Outcome, TransferError>
where
    D: AsyncFnMut(&Incoming) -> bool,
{
    let mut inbound = Inbound::new(ctx.features);
    let Some(first) = sub.recv_record().await? else {
        return Err(InboundError::Truncated.into());
    };
    let offer = match inbound.handle_bytes(&first) {
        Ok(InboundEvent::Offer(o)) => o,
        Ok(_) => return Err(InboundError::Truncated.into()),
        Err(e) => {
            // Tell the peer why, but do not wait for a broken peer's CLOSE.
            let reject = Record::Reject(OfferReject {
                reason: e.to_string(),
            });
            let _ = sub.send_record(reject.encode()).await;
            let _ = sub.shutdown().await;
            return Err(e.into());
        }
    };
    let r = match offer {
        Offer::File(f) => receive_file(&mut sub, inbound, f, ctx, decide).await,
        Offer::Directory(_) => receive_dir(&mut sub, inbound, ctx, decide).await,
    };
    if r.is_err() {
        let _ = sub.shutdown().await;
    }
    r
}

/// Reads until the peer's CLOSE: anything but the CLOSE is refused.
async fn until_close(sub: &mut Subchannel, inbound: &mut Inbound) -> Result<(), TransferError> {
    while let Some(r) = sub.recv_record().await? {
        inbound.handle_bytes(&r)?;
    }
    Ok(inbound.peer_closed()?)
}

async fn receive_file<D>(
    sub: &mut Subchannel,
    mut inbound: Inbound,
    f: FileOffer,
    ctx: &Ctx<'_>,
    decide: &mut D,
) -> Result<Outcome, TransferError>
where
    D: AsyncFnMut(&Incoming) -> bool,
{
    let dest = match plan_destination(&f.filename, ctx.output, ctx.cwd) {
        Ok(d) => d,
        Err(e) => {
            refuse(sub, &e.to_string()).await?;
            return Ok(Outcome::Refused(f.filename, e.to_string()));
        }
    };
    let dir = dest.path.parent().unwrap_or(ctx.cwd).to_owned();
    let partial = partial_path(&dest.path);
    let resumable = ctx.features.resume && !f.stream;
    let held = if resumable {
        existing_partial(&partial, f.bytes).unwrap_or(0)
    } else {
        0
    };
    if let Err(e) = free_space_ok(&dir, f.bytes - held) {
        refuse(sub, &e.to_string()).await?;
        return Ok(Outcome::Refused(f.filename, e.to_string()));
    }
    let info = Incoming {
        name: f.filename.clone(),
        is_directory: false,
        bytes: f.bytes,
        stream: f.stream,
        files: 1,
        destination: dest.path.clone(),
        partial: held,
    };
    emit(ctx.events, SessionEvent::IncomingOffer(info.clone()));
    if !decide(&info).await {
        remove_partial(&partial);
        inbound.reject();
        refuse(sub, "transfer rejected").await?;
        return Ok(Outcome::Declined);
    }
    let mut prefix = None;
    if held > 0 {
        let (h, n) = hash_prefix(&partial, held, Hashes::for_features(ctx.features))
            .map_err(TransferError::file(&partial))?;
        prefix = Some((h, n));
    }
    let claim = prefix.as_ref().map(|(h, n)| ResumeClaim {
        bytes: *n,
        sha256: h.sha_so_far(),
    });
    send(sub, Record::Accept(OfferAccept { resume: claim })).await?;
    let start = match inbound.accept(claim.map(|c| c.bytes)) {
        Some(s) => s,
        None => {
            let Some(r) = sub.recv_record().await? else {
                return Err(InboundError::Truncated.into());
            };
            inbound.handle_bytes(&r)?
        }
    };
    let InboundEvent::FileStart { offset, .. } = start else {
        return Err(InboundError::Truncated.into());
    };
    let (mut hashes, mut out) = if offset > 0 {
        let (h, _) = prefix.unwrap_or_default();
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(TransferError::file(&partial))?;
        (h, out)
    } else {
        remove_partial(&partial);
        let out = File::create_new(&partial).map_err(TransferError::file(&partial))?;
        (Hashes::for_features(ctx.features), out)
    };
    let total = f.bytes;
    let mut done = offset;
    let mut received = 0u64;
    // Data is written when no further record is at hand (or a batch is full): the partial file
    // holds everything but what arrived in the last moment.
    let mut batch = WriteBatch::default();
    loop {
        let r = match futures_util::FutureExt::now_or_never(sub.recv_record()) {
            Some(r) => r,
            None => {
                batch.flush(&mut out).map_err(TransferError::file(&partial))?;
                sub.recv_record().await
            }
        };
        let r = match r {
            Ok(Some(r)) => r,
            end => {
                // Interrupted: the partial file keeps all that arrived, for a later resume.
                batch.flush(&mut out).map_err(TransferError::file(&partial))?;
                end?;
                return Err(InboundError::Truncated.into());
            }
        };
        match inbound.handle_bytes(&r) {
            Ok(InboundEvent::Data(d)) => {
                hashes.update(&d);
                done += d.len() as u64;
                received += d.len() as u64;
                batch.push(d, &mut out).map_err(TransferError::file(&partial))?;
                emit(ctx.events, SessionEvent::Progress { done, total });
            }
            Ok(InboundEvent::FileEnd { ack, .. }) => {
                batch.flush(&mut out).map_err(TransferError::file(&partial))?;
                out.flush().map_err(TransferError::file(&partial))?;
                drop(out);
                let (hash, sha) = hashes.finish();
                let ours = FileAck {
                    bytes: done,
                    hash,
                    sha256: ctx.features.sha256.then_some(sha),
                };
                if let Err(e) = compare(&ours, &ack, &dest.path) {
                    remove_partial(&partial);
                    return Err(e);
                }
                send(sub, Record::FileAck(ours)).await?;
                if let Err(e) = until_close(sub, &mut inbound).await {
                    remove_partial(&partial);
                    return Err(e);
                }
                finish(&partial, &dest.path, dest.overwrite, false)?;
                let _ = sub.shutdown().await;
                emit(
                    ctx.events,
                    SessionEvent::FileWritten {
                        path: dest.path.clone(),
                        bytes: done,
                        sha256: sha.0,
                        resumed: offset,
                    },
                );
                return Ok(Outcome::Written(dest.path, received));
            }
            Ok(_) => return Err(InboundError::Truncated.into()),
            Err(e) => {
                // A broken or hostile peer: what it sent is not kept.
                remove_partial(&partial);
                return Err(e.into());
            }
        }
    }
}

async fn receive_dir<D>(
    sub: &mut Subchannel,
    mut inbound: Inbound,
    ctx: &Ctx<'_>,
    decide: &mut D,
) -> Result<Outcome, TransferError>
where
    D: AsyncFnMut(&Incoming) -> bool,
{
    let Some(Offer::Directory(d)) = inbound.offer().cloned() else {
        return Err(InboundError::Truncated.into());
    };
    let dest = match plan_destination(&d.base, ctx.output, ctx.cwd) {
        Ok(dest) if !dest.overwrite => dest,
        Ok(dest) => {
            let e = TransferError::WouldOverwrite(dest.path);
            refuse(sub, &e.to_string()).await?;
            return Ok(Outcome::Refused(d.base, e.to_string()));
        }
        Err(e) => {
            refuse(sub, &e.to_string()).await?;
            return Ok(Outcome::Refused(d.base, e.to_string()));
        }
    };
    let parent = dest.path.parent().unwrap_or(ctx.cwd).to_owned();
    if let Err(e) = free_space_ok(&parent, d.size) {
        refuse(sub, &e.to_string()).await?;
        return Ok(Outcome::Refused(d.base, e.to_string()));
    }
    let info = Incoming {
        name: d.base.clone(),
        is_directory: true,
        bytes: d.size,
        stream: false,
        files: d.files.len() as u64,
        destination: dest.path.clone(),
        partial: 0,
    };
    emit(ctx.events, SessionEvent::IncomingOffer(info.clone()));
    if !decide(&info).await {
        inbound.reject();
        refuse(sub, "transfer rejected").await?;
        return Ok(Outcome::Declined);
    }
    let pdir = partial_dir(&dest.path);
    if std::fs::symlink_metadata(&pdir).is_ok() {
        let _ = std::fs::remove_dir_all(&pdir);
        let _ = std::fs::remove_file(&pdir);
    }
    std::fs::create_dir(&pdir).map_err(TransferError::file(&pdir))?;
    let mut guard = DirGuard(Some(pdir.clone()));
    let join = |segs: &[String]| -> PathBuf {
        let mut p = pdir.clone();
        p.extend(segs);
        p
    };
    for segs in &d.directories {
        let p = join(segs);
        std::fs::create_dir_all(&p).map_err(TransferError::file(&p))?;
    }
    send(sub, Record::Accept(OfferAccept::default())).await?;
    inbound.accept(None);
    let mut w = DirWriter::new(&d, pdir.clone(), ctx.features, ctx.events);
    // Declared after `guard`, so dropped (its thread ended) before the guard removes `pdir`.
    let mut fs = FsThread::start(&pdir)?;
    while let Some(r) = sub.recv_record().await? {
        match inbound.handle_bytes(&r)? {
            InboundEvent::Bundle(parts) => {
                // Our acks of a bundle's files go back as bundles too.
                let mut acks = BundleBuilder::with_capacity(parts.len() * 96 + 1);
                let mut acks_due = Vec::new();
                for p in &parts {
                    if let Some(ack) = w.on_event(inbound.handle_part(p)?)? {
                        acks_due.push(ack);
                    }
                }
                // The thread starts on this record's files while the acks go out.
                fs.send(w.take_ops()).await?;
                for ack in acks_due {
                    let rec = Record::FileAck(ack).encode();
                    if !acks.fits(&[rec.len()]) {
                        write_record(sub, std::mem::take(&mut acks).into_record()).await?;
                    }
                    acks.push(&rec);
                }
                if !acks.is_empty() {
                    write_record(sub, acks.into_record()).await?;
                }
            }
            ev => {
                let ack = w.on_event(ev)?;
                fs.send(w.take_ops()).await?;
                if let Some(ack) = ack {
                    send(sub, Record::FileAck(ack)).await?;
                }
            }
        }
    }
    let (done, files) = (w.done, w.files);
    inbound.peer_closed()?;
    // Every file written and closed before the directory counts as received.
    fs.finish().await?;
    finish(&pdir, &dest.path, false, true)?;
    guard.0 = None;
    let _ = sub.shutdown().await;
    emit(
        ctx.events,
        SessionEvent::DirectoryWritten {
            path: dest.path.clone(),
            files,
            bytes: done,
        },
    );
    Ok(Outcome::Written(dest.path, done))
}
