//! The file-system side of a received directory offer, on a thread of its own: directories made
//! and opened, files created (never over anything already there), their data appended, closed.
//! Meanwhile the session's task decodes, hashes and acknowledges the next records, so a tree of
//! many small files keeps two cores busy where it kept one (creating a file costs more than
//! everything else done for it).
//!
//! What is handed over is done in order; the first failure stops the thread and is the answer
//! of the next [`FsThread::send`] or of [`FsThread::finish`]. A file's ack may therefore reach
//! the peer before the file is closed: the session fails, and the partial directory is removed,
//! if a write fails later, and the offer only counts as received once `finish` succeeded.
//!
//! Owns: the thread, the directory and file it has open, the queue between the two (at most
//! [`FsThread::QUEUE`] batches, each the operations of one received record). Must not: choose or
//! check names, hash or judge data, touch the subchannel (all `dir_writer`'s and `incoming`'s).

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use rustix::fs::{Mode, OFlags};
use tokio::sync::{mpsc, oneshot};

use crate::transfer::TransferError;

/// One step, done in the order given.
#[derive(Debug)]
pub(super) enum FsOp {
    /// Makes (with its parents) and opens the directory the next files are created in.
    Dir(PathBuf),
    /// Creates `name` in the open directory; `path` names it in messages.
    Create { name: String, path: PathBuf },
    /// Appends to the file created last.
    Write(Bytes),
    /// Closes the file created last.
    Close,
}

/// The thread, and the way to it.
pub(super) struct FsThread {
    tx: Option<mpsc::Sender<Vec<FsOp>>>,
    done: Option<oneshot::Receiver<Result<(), TransferError>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Named in the error if the thread cannot start or ends without an answer.
    root: PathBuf,
}

impl FsThread {
    /// Batches queued before [`FsThread::send`] waits.
    pub const QUEUE: usize = 8;

    /// Starts the thread for the files below `root`.
    pub fn start(root: &Path) -> Result<FsThread, TransferError> {
        let (tx, rx) = mpsc::channel(Self::QUEUE);
        let (done_tx, done) = oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wormhole-files".into())
            .spawn(move || {
                let _ = done_tx.send(run(rx, &flag));
            })
            .map_err(TransferError::file(root))?;
        Ok(FsThread {
            tx: Some(tx),
            done: Some(done),
            stop,
            thread: Some(thread),
            root: root.to_owned(),
        })
    }

    /// Hands `ops` over, waiting while the thread is [`FsThread::QUEUE`] batches behind. Fails
    /// with the thread's error if it stopped.
    pub async fn send(&mut self, ops: Vec<FsOp>) -> Result<(), TransferError> {
        if ops.is_empty() {
            return Ok(());
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(ops).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(match self.finish().await {
            Err(e) => e,
            Ok(()) => self.gone(),
        })
    }

    /// Waits until everything handed over is written and closed.
    pub async fn finish(&mut self) -> Result<(), TransferError> {
        self.tx = None;
        let answer = match self.done.take() {
            Some(rx) => rx.await.unwrap_or_else(|_| Err(self.gone())),
            None => Err(self.gone()),
        };
        if let Some(t) = self.thread.take() {
            // It has sent its answer: what is left of it is returning.
            let _ = t.join();
        }
        answer
    }

    fn gone(&self) -> TransferError {
        TransferError::file(&self.root)(std::io::Error::other("the file writer thread stopped"))
    }
}

impl Drop for FsThread {
    /// Ends the thread without doing what is still queued (the caller is giving up), and waits
    /// for it: the partial directory must not be removed while it still writes there.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: batches in order until the queue closes, a step fails or `stop` is set.
fn run(mut rx: mpsc::Receiver<Vec<FsOp>>, stop: &AtomicBool) -> Result<(), TransferError> {
    let mut open = Open::default();
    while let Some(batch) = rx.blocking_recv() {
        for op in batch {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            open.apply(op)?;
        }
    }
    Ok(())
}

/// The directory files are created in, and the file being written.
#[derive(Default)]
struct Open {
    dir: Option<(PathBuf, OwnedFd)>,
    file: Option<(File, PathBuf)>,
}

impl Open {
    fn apply(&mut self, op: FsOp) -> Result<(), TransferError> {
        match op {
            FsOp::Dir(dir) => {
                if self.dir.as_ref().is_none_or(|(p, _)| *p != dir) {
                    std::fs::create_dir_all(&dir).map_err(TransferError::file(&dir))?;
                    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
                    let fd = rustix::fs::open(&dir, flags, Mode::empty())
                        .map_err(|e| TransferError::file(&dir)(e.into()))?;
                    self.dir = Some((dir, fd));
                }
            }
            FsOp::Create { name, path } => {
                let Some((_, fd)) = &self.dir else {
                    return Err(TransferError::file(&path)(std::io::Error::other(
                        "no directory open",
                    )));
                };
                // Never over anything already there (O_EXCL also refuses a link).
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
                let file = rustix::fs::openat(fd, name.as_str(), flags, Mode::from_raw_mode(0o666))
                    .map_err(|e| TransferError::file(&path)(e.into()))?;
                self.file = Some((File::from(file), path));
            }
            FsOp::Write(data) => {
                if let Some((f, path)) = self.file.as_mut() {
                    f.write_all(&data).map_err(TransferError::file(&*path))?;
                }
            }
            FsOp::Close => self.file = None,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn create(dir: &Path, name: &str) -> Vec<FsOp> {
        vec![
            FsOp::Dir(dir.to_owned()),
            FsOp::Create {
                name: name.into(),
                path: dir.join(name),
            },
        ]
    }

    #[tokio::test]
    async fn writes_in_order_and_waits_for_the_end() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        let mut t = FsThread::start(d.path()).unwrap();
        for i in 0..50 {
            let mut ops = create(&sub, &format!("f{i}"));
            ops.extend([
                FsOp::Write(Bytes::from(format!("{i}:"))),
                FsOp::Write(Bytes::from("x")),
            ]);
            ops.push(FsOp::Close);
            t.send(ops).await.unwrap();
        }
        t.finish().await.unwrap();
        for i in 0..50 {
            assert_eq!(
                std::fs::read_to_string(sub.join(format!("f{i}"))).unwrap(),
                format!("{i}:x")
            );
        }
    }

    #[tokio::test]
    async fn an_existing_file_stops_it_with_the_path() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("taken"), b"mine").unwrap();
        let mut t = FsThread::start(d.path()).unwrap();
        t.send(create(d.path(), "taken")).await.unwrap();
        // Later batches are refused with the first error (or the error comes at the end).
        let mut first = None;
        for _ in 0..(FsThread::QUEUE * 4) {
            if let Err(e) = t.send(vec![FsOp::Write(Bytes::from("x"))]).await {
                first = Some(e);
                break;
            }
        }
        let e = match first {
            Some(e) => e,
            None => t.finish().await.unwrap_err(),
        };
        match e {
            TransferError::File { path, source } => {
                assert_eq!(path, d.path().join("taken"));
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
            }
            other => panic!("expected a File error, got {other:?}"),
        }
        assert_eq!(std::fs::read(d.path().join("taken")).unwrap(), b"mine");
    }

    #[tokio::test]
    async fn dropping_it_stops_the_thread_before_the_caller_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let mut t = FsThread::start(d.path()).unwrap();
        t.send(create(d.path(), "f")).await.unwrap();
        drop(t);
        // The thread has ended: removing the directory cannot race with it.
        std::fs::remove_dir_all(d.path()).unwrap();
        assert!(!d.path().exists());
    }
}
