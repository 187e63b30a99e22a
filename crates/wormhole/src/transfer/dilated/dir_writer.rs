//! The files of one accepted directory offer, as [`Inbound`](wormhole_proto::dilated_transfer::Inbound)'s
//! events say: where each file goes in the partial directory, its data hashed, and at its end
//! our ack compared with the sender's. The file-system steps (make the directory, create the
//! file never over an existing one, append, close) are collected as [`FsOp`]s for the caller to
//! hand to [`super::fs_thread::FsThread`].
//!
//! Owns: the file being received (its path and hashes), the steps not yet taken by the caller,
//! the free-space estimate, the counts. Must not: do file-system I/O beyond the free-space
//! reading, read or write the subchannel, or move the directory into place (the caller's).

use std::path::{Path, PathBuf};

use wormhole_proto::dilated_transfer::{DirectoryOffer, Features, FileAck, InboundError, InboundEvent};

use super::fs_thread::FsOp;
use super::partial::{Hashes, acks_differ};
use super::{SessionEvent, SessionEvents, emit};
use crate::transfer::{TransferError, space};

/// Checks our ack against the sender's: a mismatch names the file.
pub(super) fn compare(ours: &FileAck, theirs: &FileAck, what: &Path) -> Result<(), TransferError> {
    if acks_differ(ours, theirs) {
        let show = |a: &FileAck| hex::encode(a.sha256.unwrap_or(a.hash).0);
        return Err(TransferError::HashMismatch {
            got: format!("{}: {}", what.display(), show(ours)),
            sent: show(theirs),
        });
    }
    Ok(())
}

/// Free space for the files of a directory offer, checked before each file without a `statfs`
/// per file: the figure last read, less what was written since, is re-read when it falls short
/// of the next file or is older than [`SpaceEstimate::MAX_FILES`] files or
/// [`SpaceEstimate::MAX_BYTES`] bytes (other writers may use the disk meanwhile).
#[derive(Default)]
struct SpaceEstimate {
    /// Free bytes at the last reading, less what the files since then declared.
    left: u64,
    files: u32,
    bytes: u64,
    read: bool,
}

impl SpaceEstimate {
    const MAX_FILES: u32 = 256;
    const MAX_BYTES: u64 = 64 << 20;

    fn check(&mut self, dir: &Path, need: u64) -> Result<(), TransferError> {
        let stale = !self.read || self.files >= Self::MAX_FILES || self.bytes >= Self::MAX_BYTES;
        if stale || self.left < need {
            // As the offer's own check: a file system that cannot say is not refused.
            let free = space::available(dir).unwrap_or(u64::MAX);
            if free < need {
                return Err(TransferError::NoSpace {
                    path: dir.to_owned(),
                    need,
                    free,
                });
            }
            (self.left, self.files, self.bytes, self.read) = (free, 0, 0, true);
        }
        self.left = self.left.saturating_sub(need);
        self.files += 1;
        self.bytes = self.bytes.saturating_add(need);
        Ok(())
    }
}

/// The file being received: where, and its hashes so far.
struct Current {
    hashes: Hashes,
    path: PathBuf,
}

/// Writes the files of `offer` below `root` (the partial directory, already holding the
/// offer's empty directories).
pub(super) struct DirWriter<'a> {
    offer: &'a DirectoryOffer,
    root: PathBuf,
    features: Features,
    events: &'a Option<SessionEvents>,
    current: Option<Current>,
    /// The directory the last file was created in (files of one directory arrive together).
    dir: Option<PathBuf>,
    /// File-system steps not yet taken by the caller.
    ops: Vec<FsOp>,
    space: SpaceEstimate,
    /// Data bytes received (handed to the file thread), files completed.
    pub done: u64,
    pub files: u64,
}

impl<'a> DirWriter<'a> {
    pub fn new(
        offer: &'a DirectoryOffer,
        root: PathBuf,
        features: Features,
        events: &'a Option<SessionEvents>,
    ) -> Self {
        DirWriter {
            offer,
            root,
            features,
            events,
            current: None,
            dir: None,
            ops: Vec::new(),
            space: SpaceEstimate::default(),
            done: 0,
            files: 0,
        }
    }

    /// The file-system steps of the events so far, in order, for the caller to take.
    pub fn take_ops(&mut self) -> Vec<FsOp> {
        std::mem::take(&mut self.ops)
    }

    /// Acts on one event of the offer's files; at a file's end, our ack (to send the peer).
    pub fn on_event(&mut self, ev: InboundEvent) -> Result<Option<FileAck>, TransferError> {
        match ev {
            InboundEvent::FileStart { index, bytes, .. } => {
                let segs = &self.offer.files[index];
                let (name, parents) = segs.split_last().ok_or(InboundError::Truncated)?;
                let mut dir = self.root.clone();
                dir.extend(parents);
                let path = dir.join(name);
                // The partial directory's file system holds every directory made below it.
                self.space.check(&self.root, bytes.unwrap_or(0))?;
                if self.dir.as_ref() != Some(&dir) {
                    self.ops.push(FsOp::Dir(dir.clone()));
                    self.dir = Some(dir);
                }
                self.ops.push(FsOp::Create {
                    name: name.clone(),
                    path: path.clone(),
                });
                self.current = Some(Current {
                    hashes: Hashes::for_features(self.features),
                    path,
                });
                Ok(None)
            }
            InboundEvent::Data(data) => {
                self.done += data.len() as u64;
                if let Some(c) = self.current.as_mut() {
                    c.hashes.update(&data);
                    self.ops.push(FsOp::Write(data));
                }
                emit(
                    self.events,
                    SessionEvent::Progress {
                        done: self.done,
                        total: self.offer.size,
                    },
                );
                Ok(None)
            }
            InboundEvent::FileEnd { ack, .. } => {
                let c = self.current.take().ok_or(InboundError::Truncated)?;
                self.ops.push(FsOp::Close);
                let (hash, sha) = c.hashes.finish();
                let ours = FileAck {
                    bytes: ack.bytes,
                    hash,
                    sha256: self.features.sha256.then_some(sha),
                };
                compare(&ours, &ack, &c.path)?;
                self.files += 1;
                Ok(Some(ours))
            }
            InboundEvent::Offer(_) | InboundEvent::Bundle(_) => Err(InboundError::Truncated.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_estimate_rereads_and_refuses() {
        let dir = std::env::temp_dir();
        let free = space::available(&dir).unwrap();
        let mut s = SpaceEstimate::default();
        // Small files pass on the estimate; after MAX_FILES of them the figure is re-read.
        for _ in 0..SpaceEstimate::MAX_FILES {
            s.check(&dir, 1).unwrap();
        }
        assert_eq!(s.files, SpaceEstimate::MAX_FILES);
        s.check(&dir, 1).unwrap();
        assert_eq!(s.files, 1);
        // A file larger than the estimate forces a reading, which refuses it by name.
        match s.check(&dir, free.saturating_mul(4).max(1 << 62)) {
            Err(TransferError::NoSpace { path, .. }) => assert_eq!(path, dir),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        // The estimate counts what was declared: it runs out before the disk does.
        let mut s = SpaceEstimate::default();
        s.check(&dir, 1).unwrap();
        s.left = 10;
        s.check(&dir, 8).unwrap();
        assert_eq!(s.left, 2);
        s.check(&dir, 8).unwrap();
        assert!(s.left >= free / 2, "re-read after the estimate fell short");
    }
}
