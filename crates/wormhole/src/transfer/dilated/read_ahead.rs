//! The files of our accepted directory offer read ahead on a thread of their own: small files
//! (header, data, ack, with the `bundle` feature) packed whole into bundle records, each larger
//! file left to the caller, who streams it record by record. The caller's task meanwhile hands
//! the previous records to Dilation and checks the receiver's acks, so a tree of many small
//! files keeps two cores busy where it kept one (opening and reading a file costs more than
//! everything else done for it).
//!
//! Owns: the thread, the bundle being packed, the queue to the caller (at most
//! [`ReadAhead::QUEUE`] items, each at most one record). Must not: touch the subchannel,
//! check acks or report progress (the caller's, in `send_dir`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use wormhole_proto::dilated_transfer::msg::BundleBuilder;
use wormhole_proto::dilated_transfer::msg::kind::DATA as DATA_KIND;
use wormhole_proto::dilated_transfer::{Features, FileAck, FileOffer, Record};

use super::items::PromisedFile;
use super::outgoing::{changed, open_promised, read_up_to};
use super::partial::Hashes;
use crate::transfer::TransferError;

/// What comes next, in the order of the offer's files.
#[derive(Debug)]
pub(super) enum Ahead {
    /// A bundle record to send whole: the acks of its files in order, their data bytes.
    Bundle {
        record: Vec<u8>,
        acks: Vec<FileAck>,
        bytes: u64,
    },
    /// The file at this index is not bundled: the caller sends it record by record.
    Single(usize),
}

/// The header record of `f`.
pub(super) fn header(f: &PromisedFile) -> Record {
    Record::FileOffer(FileOffer {
        filename: f.segments.last().cloned().unwrap_or_default(),
        timestamp: f.mtime,
        bytes: f.size,
        stream: false,
    })
}

/// The thread, and the queue from it.
pub(super) struct ReadAhead {
    rx: mpsc::Receiver<Result<Ahead, TransferError>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Items the thread may be ahead of the caller.
    pub const QUEUE: usize = 4;

    /// Starts reading `files` ahead.
    pub fn start(files: Arc<Vec<PromisedFile>>, features: Features) -> Result<ReadAhead, TransferError> {
        let (tx, rx) = mpsc::channel(Self::QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let first = files.first().map(|f| f.source.clone()).unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name("wormhole-read".into())
            .spawn(move || {
                if let Err(e) = pack(&files, features, &tx, &flag) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .map_err(TransferError::file(first))?;
        Ok(ReadAhead {
            rx,
            stop,
            thread: Some(thread),
        })
    }

    /// The next item; `None` after the last file.
    pub async fn next(&mut self) -> Result<Option<Ahead>, TransferError> {
        self.rx.recv().await.transpose()
    }
}

impl Drop for ReadAhead {
    /// Stops the thread (the caller is done or giving up) and waits for it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.rx.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The record sizes of `f` sent whole in a bundle: header, data (with its kind byte; none for
/// an empty file), and room for the ack.
fn bundled_sizes(f: &PromisedFile, header: &[u8]) -> [usize; 3] {
    let data = usize::try_from(f.size).unwrap_or(usize::MAX).saturating_add(1);
    [
        header.len(),
        data,
        wormhole_proto::dilated_transfer::msg::FILE_ACK_MAX,
    ]
}

/// The thread's work: every file in order, as bundles or as [`Ahead::Single`]. Returns early,
/// without an error, once the caller has gone.
fn pack(
    files: &[PromisedFile],
    features: Features,
    tx: &mpsc::Sender<Result<Ahead, TransferError>>,
    stop: &AtomicBool,
) -> Result<(), TransferError> {
    let mut bundle = BundleBuilder::new();
    let mut acks = Vec::new();
    let mut bytes = 0;
    let flush = |bundle: &mut BundleBuilder, acks: &mut Vec<FileAck>, bytes: &mut u64| {
        if bundle.is_empty() {
            return true;
        }
        let item = Ahead::Bundle {
            record: std::mem::take(bundle).into_record(),
            acks: std::mem::take(acks),
            bytes: std::mem::take(bytes),
        };
        tx.blocking_send(Ok(item)).is_ok()
    };
    for (i, f) in files.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let head = header(f).encode();
        let sizes = bundled_sizes(f, &head);
        if features.bundle && BundleBuilder::fits_empty(&sizes) {
            if !bundle.fits(&sizes) && !flush(&mut bundle, &mut acks, &mut bytes) {
                return Ok(());
            }
            acks.push(bundle_file(&mut bundle, f, &head, features)?);
            bytes += f.size;
        } else if !flush(&mut bundle, &mut acks, &mut bytes)
            || tx.blocking_send(Ok(Ahead::Single(i))).is_err()
        {
            return Ok(());
        }
    }
    flush(&mut bundle, &mut acks, &mut bytes);
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn promised(dir: &std::path::Path, name: &str, len: usize) -> PromisedFile {
        let source = dir.join(name);
        std::fs::write(&source, vec![b'x'; len]).unwrap();
        let meta = std::fs::metadata(&source).unwrap();
        PromisedFile {
            source,
            segments: vec![name.into()],
            size: len as u64,
            mtime: std::os::unix::fs::MetadataExt::mtime(&meta),
        }
    }

    fn all_features() -> Features {
        Features {
            bundle: true,
            sha256: true,
            ..Features::default()
        }
    }

    #[tokio::test]
    async fn small_files_are_bundled_in_order_and_large_ones_left_to_the_caller() {
        let d = tempfile::tempdir().unwrap();
        let mut files: Vec<_> = (0..40)
            .map(|i| promised(d.path(), &format!("s{i}"), 4000))
            .collect();
        files.insert(20, promised(d.path(), "big", 200_000));
        let mut ahead = ReadAhead::start(Arc::new(files), all_features()).unwrap();
        let (mut acks, mut bytes, mut bundles, mut singles) = (0, 0, 0, Vec::new());
        while let Some(item) = ahead.next().await.unwrap() {
            match item {
                Ahead::Bundle {
                    record,
                    acks: a,
                    bytes: b,
                } => {
                    assert!(record.len() <= wormhole_proto::dilated_transfer::MAX_DATA_RECORD);
                    acks += a.len();
                    bytes += b;
                    bundles += 1;
                    assert!(a.iter().all(|a| a.sha256.is_some() && a.bytes == 4000));
                }
                Ahead::Single(i) => {
                    assert_eq!(acks, 20, "the large file comes after the 20 before it");
                    singles.push(i);
                }
            }
        }
        assert_eq!((acks, bytes, singles), (40, 160_000, vec![20]));
        assert!(
            bundles >= 4,
            "bundles split at the record limit and at the large file"
        );
    }

    #[tokio::test]
    async fn a_changed_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let mut f = promised(d.path(), "a", 10);
        f.size = 11;
        let mut ahead = ReadAhead::start(Arc::new(vec![f]), all_features()).unwrap();
        match ahead.next().await {
            Err(TransferError::Unsendable { path, .. }) => assert_eq!(path, d.path().join("a")),
            other => panic!("expected Unsendable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn dropping_it_stops_the_thread() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<_> = (0..200)
            .map(|i| promised(d.path(), &format!("f{i}"), 30_000))
            .collect();
        let mut ahead = ReadAhead::start(Arc::new(files), all_features()).unwrap();
        assert!(ahead.next().await.unwrap().is_some());
        drop(ahead);
    }
}
