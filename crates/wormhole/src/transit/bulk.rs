//! Bulk data over an established transit connection, pipelined: a blocking worker thread does the
//! file I/O, SHA-256 and record encryption/decryption while the async side moves large buffers
//! through the socket. Buffers are recycled (no per-record allocation), so memory stays flat
//! (a few MiB) whatever the size of the transfer.
//!
//! Sending uses 16 KiB plaintext records (what every peer sends). Receiving accepts any record
//! size up to the connection's cap; a [`RecordWalker`] on the socket side checks each length
//! prefix before its record is buffered and stops reading exactly at the declared size.

use std::io::{IoSlice, Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wormhole_proto::transit::{
    RECORD_HEADER, RECORD_OVERHEAD, RecordOpener, RecordSealer, RecordWalker, SEND_CHUNK,
};

use super::{TransitConnection, TransitError};

/// Progress callback: (bytes done, bytes total).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Records per send buffer (~1 MiB).
const BATCH_RECORDS: usize = 64;
/// Buffers in flight per direction.
const BUFFERS: usize = 4;
/// Socket read size on receive.
const READ_BUF: usize = 1 << 20;

fn worker_err(e: tokio::task::JoinError) -> TransitError {
    TransitError::Worker(e.to_string())
}

impl TransitConnection {
    /// Send exactly `len` bytes read from `reader` as 16 KiB records. Returns the SHA-256 of the
    /// bytes sent. Fails if `reader` ends early.
    pub async fn send_from<R: Read + Send + 'static>(
        &mut self,
        reader: R,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<[u8; 32], TransitError> {
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize, u64)>(BUFFERS - 1);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut sealer = self.sealer.clone();
        let worker =
            tokio::task::spawn_blocking(move || -> Result<([u8; 32], RecordSealer), TransitError> {
                let mut reader = reader;
                let mut hasher = Sha256::new();
                let mut left = len;
                let mut made = 0;
                let rec = RECORD_HEADER + RECORD_OVERHEAD;
                while left > 0 {
                    let mut buf = match free_rx.try_recv() {
                        Ok(b) => b,
                        Err(_) if made < BUFFERS => {
                            made += 1;
                            vec![0u8; BATCH_RECORDS * (rec + SEND_CHUNK)]
                        }
                        Err(_) => match free_rx.recv() {
                            Ok(b) => b,
                            Err(_) => break, // the socket side stopped; it reports why
                        },
                    };
                    let mut used = 0;
                    let mut pt = 0u64;
                    for _ in 0..BATCH_RECORDS {
                        if left == 0 {
                            break;
                        }
                        let n = left.min(SEND_CHUNK as u64) as usize;
                        let record = &mut buf[used..used + rec + n];
                        reader.read_exact(&mut record[rec..]).map_err(|e| {
                            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                std::io::Error::other(format!(
                                    "source ended {left} bytes early (file shrank?)"
                                ))
                            } else {
                                e
                            }
                        })?;
                        hasher.update(&record[rec..]);
                        sealer.seal_in_place(record)?;
                        used += rec + n;
                        left -= n as u64;
                        pt += n as u64;
                    }
                    if full_tx.blocking_send((buf, used, pt)).is_err() {
                        break;
                    }
                }
                Ok((hasher.finalize().into(), sealer))
            });
        let idle = self.idle_timeout;
        let mut done = 0u64;
        let mut write_err = None;
        while let Some((buf, used, n)) = full_rx.recv().await {
            match tokio::time::timeout(idle, self.stream.write_all(&buf[..used])).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    write_err = Some(TransitError::Closed(e.to_string()));
                    break;
                }
                Err(_) => {
                    write_err = Some(TransitError::Stalled(idle.as_secs()));
                    break;
                }
            }
            done += n;
            if let Some(p) = &progress {
                p(done, len);
            }
            let _ = free_tx.send(buf);
        }
        drop(full_rx);
        drop(free_tx);
        let result = worker.await.map_err(worker_err)?;
        if let Some(e) = write_err {
            return Err(e);
        }
        let (hash, sealer) = result?;
        if done != len {
            return Err(TransitError::Worker(format!("sent {done} of {len} bytes")));
        }
        self.sealer = sealer;
        Ok(hash)
    }

    /// Receive exactly `len` plaintext bytes into `writer`. Returns their SHA-256 and the writer
    /// (flushed). Any record beyond `len` (or a length prefix announcing more) is an error.
    pub async fn receive_into<W: Write + Send + 'static>(
        &mut self,
        writer: W,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<([u8; 32], W), TransitError> {
        let mut walker = RecordWalker::new(self.max_record, len);
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS - 1);
        let (free_tx, mut free_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let opener = self.opener.clone();
        let worker = tokio::task::spawn_blocking(move || {
            let mut opener = opener;
            let mut out = writer;
            let mut hasher = Sha256::new();
            let mut carry: Vec<u8> = Vec::new();
            let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(128);
            let mut done = 0u64;
            while let Some((mut chunk, n)) = full_rx.blocking_recv() {
                let data = &mut chunk[..n];
                let mut pos = 0;
                if !carry.is_empty() && complete_carry(&mut carry, data, &mut pos, &opener)? {
                    let pt = opener.open_record(&mut carry)?;
                    hasher.update(pt);
                    out.write_all(pt)?;
                    done += pt.len() as u64;
                    carry.clear();
                }
                if carry.is_empty() {
                    ranges.clear();
                    while let Some(total) = opener.complete_record(&data[pos..])? {
                        let pt = opener.open_record(&mut data[pos..pos + total])?;
                        hasher.update(pt);
                        done += pt.len() as u64;
                        if total > RECORD_HEADER + RECORD_OVERHEAD {
                            ranges.push(pos + RECORD_HEADER + RECORD_OVERHEAD..pos + total);
                        }
                        pos += total;
                    }
                    let data = &data[..];
                    let mut slices: Vec<IoSlice<'_>> =
                        ranges.iter().map(|r| IoSlice::new(&data[r.clone()])).collect();
                    write_all_vectored(&mut out, &mut slices)?;
                    carry.extend_from_slice(&data[pos..]);
                }
                let _ = free_tx.send(chunk);
                if let Some(p) = &progress {
                    p(done, len);
                }
            }
            if !carry.is_empty() || done != len {
                return Err(TransitError::Closed(format!("received {done} of {len} bytes")));
            }
            out.flush()?;
            let w = out;
            let hash: [u8; 32] = hasher.finalize().into();
            Ok::<_, TransitError>((hash, w, opener))
        });

        let idle = self.idle_timeout;
        let mut made = 0;
        let mut read_err = None;
        let first = std::mem::take(&mut self.pending);
        if !first.is_empty() {
            let n = first.len();
            match walker.feed(&first) {
                Ok(()) => {
                    let _ = full_tx.send((first, n)).await;
                }
                Err(e) => read_err = Some(e.into()),
            }
        }
        while read_err.is_none() && !walker.is_done() {
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if made < BUFFERS => {
                    made += 1;
                    vec![0u8; READ_BUF]
                }
                Err(_) => match free_rx.recv().await {
                    Some(b) => b,
                    None => break, // worker stopped; its result says why
                },
            };
            if buf.len() < READ_BUF {
                buf.resize(READ_BUF, 0);
            }
            // Never read past the declared end: once the walker knows the remaining record bytes,
            // a well-behaved peer sends nothing more until our ack.
            let n = match tokio::time::timeout(idle, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) => {
                    read_err = Some(TransitError::Closed("before all data arrived".into()));
                    break;
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    read_err = Some(TransitError::Closed(e.to_string()));
                    break;
                }
                Err(_) => {
                    read_err = Some(TransitError::Stalled(idle.as_secs()));
                    break;
                }
            };
            if let Err(e) = walker.feed(&buf[..n]) {
                read_err = Some(e.into());
                break;
            }
            if full_tx.send((buf, n)).await.is_err() {
                break;
            }
        }
        drop(full_tx);
        let result = worker.await.map_err(worker_err)?;
        if let Some(e) = read_err {
            return Err(e);
        }
        let (hash, w, opener) = result?;
        self.opener = opener;
        Ok((hash, w))
    }
}

/// `write_all` for a list of slices: one `writev` per call instead of one `write` per record.
fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Move bytes from `data[pos..]` into the partial record in `carry`; true once it is complete.
fn complete_carry(
    carry: &mut Vec<u8>,
    data: &[u8],
    pos: &mut usize,
    opener: &RecordOpener,
) -> Result<bool, TransitError> {
    loop {
        let target = if carry.len() < RECORD_HEADER {
            RECORD_HEADER
        } else {
            RECORD_HEADER + opener.body_len([carry[0], carry[1], carry[2], carry[3]])?
        };
        if carry.len() > RECORD_HEADER && carry.len() == target {
            return Ok(true);
        }
        let take = (target - carry.len()).min(data.len() - *pos);
        if take == 0 {
            return Ok(false);
        }
        carry.extend_from_slice(&data[*pos..*pos + take]);
        *pos += take;
    }
}
