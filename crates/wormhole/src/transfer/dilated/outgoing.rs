//! One offer of ours on its own subchannel: the offer, the peer's answer, the data of each
//! file with its ack, and the peer's acks checked against ours.
//!
//! Owns: reading what we promised (and failing if it changed since the offer), the resume
//! check of the peer's prefix. Must not: open or close the session.

use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use wormhole_proto::dilated_transfer::msg::data_record;
use wormhole_proto::dilated_transfer::msg::kind::DATA as DATA_KIND;
use wormhole_proto::dilated_transfer::{
    DATA_CHUNK, DataStart, DirectoryOffer, Features, FileAck, FileOffer, InboundError, MsgError, Record,
};

use super::items::PromisedFile;
use super::partial::{Hashes, acks_differ, hash_prefix};
use super::record_pool::RecordPool;
use super::{OfferItem, SessionEvent, SessionEvents, emit};
use crate::dilation::Subchannel;
use crate::transfer::TransferError;

/// How our offer ended.
pub enum Outcome {
    /// Sent and confirmed; data bytes written.
    Sent(u64),
    /// Refused by the peer, with its reason.
    Rejected(String),
}

pub(super) fn protocol(kind: u8, expected: &'static str) -> TransferError {
    TransferError::PeerProtocol(InboundError::Unexpected { kind, expected })
}

pub(super) async fn next(sub: &mut Subchannel) -> Result<Option<Record>, TransferError> {
    match sub.recv_record().await? {
        None => Ok(None),
        Some(r) => Ok(Some(
            Record::decode(&r).map_err(|e: MsgError| TransferError::PeerProtocol(e.into()))?,
        )),
    }
}

pub(super) async fn send(sub: &mut Subchannel, r: &Record) -> Result<(), TransferError> {
    write_record(sub, r.encode()).await
}

/// Writes one encoded record without waiting for Dilation to take it (the next write, a
/// shutdown or a flush waits for that), as the data records of a file do.
pub(super) async fn write_record(sub: &mut Subchannel, rec: Vec<u8>) -> Result<(), TransferError> {
    Ok(sub.write_record(rec).await?)
}

pub(super) struct Ctx<'a> {
    events: &'a Option<SessionEvents>,
    done: u64,
    total: u64,
    /// Data bytes written to the subchannel.
    pub sent: u64,
    /// The buffers file data is read into.
    records: RecordPool,
}

impl Ctx<'_> {
    pub(super) fn progress(&mut self, n: u64) {
        self.done += n;
        emit(
            self.events,
            SessionEvent::Progress {
                done: self.done,
                total: self.total,
            },
        );
    }
}

pub(super) fn changed(f: &PromisedFile, what: String) -> TransferError {
    TransferError::Unsendable {
        path: f.source.clone(),
        reason: format!("{what} since the offer (the offer must match what is sent)"),
    }
}

/// Appends `n` bytes of `file` to `buf` with as few reads as it takes (`read_to_end` starts
/// with small reads and grows them: four reads for a 64 KiB record); the count read, short only
/// at the end of the file. When `buf` has room for `n` bytes they are read straight into it (no
/// zeroing first); a file that grew may then give more than `n` where the room allows, which
/// the caller sees as a changed file. Otherwise the room is zeroed first.
pub(super) fn read_up_to(file: &mut std::fs::File, buf: &mut Vec<u8>, n: usize) -> std::io::Result<usize> {
    let start = buf.len();
    if n > 0 && buf.capacity() - start >= n {
        while buf.len() < start + n {
            match rustix::io::read(&*file, rustix::buffer::spare_capacity(buf)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    buf.truncate(start);
                    return Err(e.into());
                }
            }
        }
        return Ok(buf.len() - start);
    }
    buf.resize(start + n, 0);
    let mut have = 0;
    while have < n {
        match file.read(&mut buf[start + have..]) {
            Ok(0) => break,
            Ok(k) => have += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    buf.truncate(start + have);
    Ok(have)
}

/// Opens a promised file, failing if its size or mtime is not the offer's.
pub(super) fn open_promised(f: &PromisedFile) -> Result<std::fs::File, TransferError> {
    let file = std::fs::File::open(&f.source).map_err(TransferError::file(&f.source))?;
    let meta = file.metadata().map_err(TransferError::file(&f.source))?;
    if meta.len() != f.size || meta.mtime() != f.mtime {
        return Err(changed(f, "its size or modification time changed".into()));
    }
    Ok(file)
}

/// Streams one promised file from `offset` (the hashes already hold the bytes before it);
/// returns its ack.
pub(super) async fn stream_file(
    sub: &mut Subchannel,
    f: &PromisedFile,
    offset: u64,
    mut hashes: Hashes,
    features: Features,
    ctx: &mut Ctx<'_>,
) -> Result<FileAck, TransferError> {
    let mut file = open_promised(f)?;
    if offset > 0 {
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(offset))
            .map_err(TransferError::file(&f.source))?;
    }
    let mut left = f.size - offset;
    while left > 0 {
        let want = left.min(DATA_CHUNK as u64);
        // Each record is read into its own buffer behind the kind byte and handed to Dilation
        // as it is: no copy between the file and the frame. The buffer is the pool's, and goes
        // back to it once the peer acknowledged the record.
        let mut buf = ctx.records.take(DATA_CHUNK + 1);
        buf.push(DATA_KIND);
        let n = read_up_to(&mut file, &mut buf, want as usize).map_err(TransferError::file(&f.source))?;
        if n == 0 {
            return Err(changed(f, "it became shorter".into()));
        }
        if n as u64 > want {
            return Err(changed(f, "it became longer".into()));
        }
        hashes.update(&buf[1..]);
        sub.write_record(ctx.records.share(buf)).await?;
        left -= n as u64;
        ctx.sent += n as u64;
        ctx.progress(n as u64);
    }
    let (hash, sha) = hashes.finish();
    Ok(FileAck {
        bytes: f.size,
        hash,
        sha256: features.sha256.then_some(sha),
    })
}

pub(super) fn check_ack(ours: &FileAck, theirs: &FileAck, name: &str) -> Result<(), TransferError> {
    if acks_differ(ours, theirs) {
        let show = |a: &FileAck| format!("{} bytes {}", a.bytes, hex::encode(a.sha256.unwrap_or(a.hash).0));
        return Err(TransferError::HashMismatch {
            got: format!("{name}: {}", show(theirs)),
            sent: show(ours),
        });
    }
    Ok(())
}

/// Waits for the peer's answer: `Ok(None)` accepted (with its resume claim inside), or the
/// rejection reason.
async fn answer(sub: &mut Subchannel) -> Result<Result<Record, String>, TransferError> {
    match next(sub).await? {
        Some(Record::Reject(r)) => Ok(Err(r.reason)),
        Some(r @ Record::Accept(_)) => Ok(Ok(r)),
        Some(other) => Err(protocol(other.kind(), "an answer to our offer")),
        None => Err(TransferError::PeerProtocol(InboundError::Truncated)),
    }
}

/// Ends our half and reads the peer's until its CLOSE.
async fn close(sub: &mut Subchannel) -> Result<(), TransferError> {
    use tokio::io::AsyncWriteExt;
    sub.shutdown()
        .await
        .map_err(|e| TransferError::Pipe(e.to_string()))?;
    if let Some(r) = sub.recv_record().await? {
        let k = r.first().copied().unwrap_or(0);
        return Err(TransferError::PeerProtocol(InboundError::AfterEnd { kind: k }));
    }
    Ok(())
}

/// Offers `item` on `sub` and runs it to its end.
pub async fn offer(
    sub: &mut Subchannel,
    item: &mut OfferItem,
    features: Features,
    events: &Option<SessionEvents>,
) -> Result<Outcome, TransferError> {
    let name = item.name().to_owned();
    let total = item.bytes();
    emit(
        events,
        SessionEvent::Offered {
            name: name.clone(),
            bytes: total,
            files: item.files(),
        },
    );
    let mut ctx = Ctx {
        events,
        done: 0,
        total,
        sent: 0,
        records: RecordPool::default(),
    };
    match item {
        OfferItem::File(f) => {
            send(
                sub,
                &Record::FileOffer(FileOffer {
                    filename: name.clone(),
                    timestamp: f.mtime,
                    bytes: f.size,
                    stream: false,
                }),
            )
            .await?;
            let claim = match answer(sub).await? {
                Err(reason) => {
                    close(sub).await?;
                    return Ok(Outcome::Rejected(reason));
                }
                Ok(Record::Accept(a)) => a.resume,
                Ok(_) => None,
            };
            let mut offset = 0;
            let mut hashes = Hashes::for_features(features);
            if let Some(c) = claim.filter(|_| features.resume) {
                let mut ok = false;
                if c.bytes <= f.size {
                    let (h, n) = hash_prefix(&f.source, c.bytes, Hashes::for_features(features))
                        .map_err(TransferError::file(&f.source))?;
                    if n == c.bytes && h.sha_so_far() == c.sha256 {
                        ok = true;
                        hashes = h;
                    }
                }
                if ok {
                    offset = c.bytes;
                } else {
                    emit(
                        events,
                        SessionEvent::PrefixMismatch {
                            name: name.clone(),
                            claimed: c.bytes,
                        },
                    );
                }
                send(sub, &Record::DataStart(DataStart { offset })).await?;
            }
            emit(
                events,
                SessionEvent::Accepted {
                    name: name.clone(),
                    offset,
                },
            );
            ctx.done = offset;
            let ours = stream_file(sub, f, offset, hashes, features, &mut ctx).await?;
            send(sub, &Record::FileAck(ours)).await?;
            match next(sub).await? {
                Some(Record::FileAck(theirs)) => check_ack(&ours, &theirs, &name)?,
                Some(other) => return Err(protocol(other.kind(), "the receiver's file ack")),
                None => return Err(TransferError::PeerProtocol(InboundError::Truncated)),
            }
        }
        OfferItem::Directory {
            name: base,
            files,
            empty_dirs,
        } => {
            let offer = DirectoryOffer {
                base: base.clone(),
                size: total,
                files: files.iter().map(|f| f.segments.clone()).collect(),
                directories: if features.empty_dirs {
                    empty_dirs.clone()
                } else {
                    Vec::new()
                },
            };
            let rec = Record::DirectoryOffer(offer).encode();
            let max = sub.max_record();
            if rec.len() > max {
                return Err(TransferError::Unsendable {
                    path: base.clone().into(),
                    reason: format!(
                        "its directory offer ({} files) is {} bytes, over the record limit of {max}; \
                         send its subdirectories separately",
                        files.len(),
                        rec.len()
                    ),
                });
            }
            write_record(sub, rec).await?;
            if let Err(reason) = answer(sub).await? {
                close(sub).await?;
                return Ok(Outcome::Rejected(reason));
            }
            emit(
                events,
                SessionEvent::Accepted {
                    name: name.clone(),
                    offset: 0,
                },
            );
            // The read-ahead thread shares the list; it is ours again once the thread ended.
            let shared = Arc::new(std::mem::take(files));
            let sent = super::send_dir::send_files(sub, shared.clone(), features, &mut ctx).await;
            *files = Arc::try_unwrap(shared).unwrap_or_else(|a| a.as_ref().clone());
            sent?;
        }
        OfferItem::Stream { reader, .. } => {
            if !features.stream {
                return Err(TransferError::Unsupported(
                    "the peer does not take streams of unknown length".into(),
                ));
            }
            send(
                sub,
                &Record::FileOffer(FileOffer {
                    filename: name.clone(),
                    timestamp: 0,
                    bytes: 0,
                    stream: true,
                }),
            )
            .await?;
            if let Err(reason) = answer(sub).await? {
                close(sub).await?;
                return Ok(Outcome::Rejected(reason));
            }
            emit(
                events,
                SessionEvent::Accepted {
                    name: name.clone(),
                    offset: 0,
                },
            );
            let mut hashes = Hashes::for_features(features);
            let mut buf = vec![0u8; DATA_CHUNK];
            let mut n_total = 0u64;
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(TransferError::file("standard input"))?;
                if n == 0 {
                    break;
                }
                hashes.update(&buf[..n]);
                write_record(sub, data_record(&buf[..n])).await?;
                n_total += n as u64;
                ctx.sent += n as u64;
                ctx.progress(n as u64);
            }
            let (hash, sha) = hashes.finish();
            let ours = FileAck {
                bytes: n_total,
                hash,
                sha256: features.sha256.then_some(sha),
            };
            send(sub, &Record::FileAck(ours)).await?;
            match next(sub).await? {
                Some(Record::FileAck(theirs)) => check_ack(&ours, &theirs, &name)?,
                Some(other) => return Err(protocol(other.kind(), "the receiver's file ack")),
                None => return Err(TransferError::PeerProtocol(InboundError::Truncated)),
            }
        }
    }
    close(sub).await?;
    emit(events, SessionEvent::Sent { name, sent: ctx.sent });
    Ok(Outcome::Sent(ctx.sent))
}

#[cfg(test)]
mod read_tests {
    use super::read_up_to;
    use std::io::Write;

    #[test]
    fn reads_up_to_n_either_way() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&(0..200u8).collect::<Vec<_>>()).unwrap();
        for room in [151, 10] {
            use std::io::Seek;
            f.rewind().unwrap();
            let mut buf = Vec::with_capacity(room);
            buf.push(5);
            assert_eq!(read_up_to(&mut f, &mut buf, 150).unwrap(), 150);
            assert_eq!(buf.len(), 151);
            assert_eq!(&buf[1..], &(0..150u8).collect::<Vec<_>>()[..]);
            // The rest of the file, short of what was asked.
            let mut rest = Vec::with_capacity(room - 1);
            assert_eq!(read_up_to(&mut f, &mut rest, 100).unwrap(), 50);
            assert_eq!(rest, (150..200u8).collect::<Vec<_>>());
        }
        // More room than asked: a file longer than expected shows as more.
        use std::io::Seek;
        f.rewind().unwrap();
        let mut big = Vec::with_capacity(4096);
        assert_eq!(read_up_to(&mut f, &mut big, 150).unwrap(), 200);
    }
}
