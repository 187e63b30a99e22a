//! Bulk data over an established transit connection, pipelined over three stages so both cores of
//! a small machine stay busy whichever side is the bottleneck:
//!
//! - sending: a reader thread reads the source straight into record slots and hashes it, a sealer
//!   thread encrypts the records in place, the async side writes whole buffers to the socket;
//! - receiving: the async side reads the socket into large buffers (checking every length prefix
//!   with a [`RecordWalker`] before it is buffered, and never reading past the declared end), an
//!   opener thread decrypts records where they landed, a writer thread hashes the plaintext and
//!   writes it out with one `writev` per buffer.
//!
//! Buffers are recycled (no per-record allocation), so memory stays flat (a few MiB) whatever the
//! size of the transfer. Sending uses 16 KiB plaintext records (what every peer sends); receiving
//! accepts any record size up to the connection's cap.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

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
const BATCH_RECORDS: usize = 32;
/// Buffers in flight per direction (one per stage, plus one queued between each).
const BUFFERS: usize = 6;
/// Socket read buffer size on receive.
const READ_BUF: usize = 512 << 10;
/// After a read, keep filling the same buffer with what is already waiting up to this much, so the
/// threads behind get large batches instead of one per TCP segment burst.
const READ_FILL: usize = READ_BUF / 2;
/// Header + nonce + tag in front of each record's plaintext.
const REC: usize = RECORD_HEADER + RECORD_OVERHEAD;
/// Bytes of one full record in a send buffer.
const SLOT: usize = REC + SEND_CHUNK;

fn worker_err(e: tokio::task::JoinError) -> TransitError {
    TransitError::Worker(e.to_string())
}

/// A send buffer: `used` bytes of records carrying `plain` plaintext bytes.
struct Filled {
    buf: Vec<u8>,
    used: usize,
    plain: u64,
}

/// Seal the records the reader laid out in `buf[..used]`: one per [`SLOT`], the last one possibly
/// shorter.
fn seal_buffer(sealer: &mut RecordSealer, f: &mut Filled) -> Result<(), TransitError> {
    let Some(records) = f.buf.get_mut(..f.used) else {
        return Err(TransitError::Worker("send buffer layout".into()));
    };
    for record in records.chunks_mut(SLOT) {
        sealer.seal_in_place(record)?;
    }
    Ok(())
}

/// Read up to [`BATCH_RECORDS`] records' worth of plaintext from `reader` straight into the record
/// slots of `buf` (one `readv` for all of them where the reader supports it), then hash it.
/// Records lie one per [`SLOT`]: [`REC`] header bytes, then the plaintext. Returns (bytes used,
/// plaintext bytes).
fn fill_buffer<R: Read>(
    reader: &mut R,
    hasher: &mut Sha256,
    buf: &mut [u8],
    left: &mut u64,
) -> Result<(usize, u64), TransitError> {
    let plain = (*left).min((BATCH_RECORDS * SEND_CHUNK) as u64);
    let used = plain as usize + plain.div_ceil(SEND_CHUNK as u64) as usize * REC;
    let Some(records) = buf.get_mut(..used) else {
        return Err(TransitError::Worker("send buffer layout".into()));
    };
    let mut iov: Vec<IoSliceMut<'_>> = records
        .chunks_mut(SLOT)
        .map(|r| IoSliceMut::new(&mut r[REC..]))
        .collect();
    let mut iov = &mut iov[..];
    let mut got = 0u64;
    while !iov.is_empty() {
        match reader.read_vectored(iov) {
            Ok(0) => {
                return Err(std::io::Error::other(format!(
                    "source ended {} bytes early (file shrank?)",
                    *left - got
                ))
                .into());
            }
            Ok(n) => {
                got += n as u64;
                IoSliceMut::advance_slices(&mut iov, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    for r in buf[..used].chunks(SLOT) {
        hasher.update(&r[REC..]);
    }
    *left -= plain;
    Ok((used, plain))
}

/// A receive buffer after decryption: plaintext `ranges` of `buf`, preceded by the plaintext of a
/// record that straddled the previous buffer (`head`, at `head_range`).
struct Opened {
    buf: Vec<u8>,
    ranges: Vec<Range<usize>>,
    head: Option<(Vec<u8>, Range<usize>)>,
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
        let (full_tx, mut full_rx) = mpsc::channel::<Filled>(2);
        let (plain_tx, plain_rx) = std_mpsc::sync_channel::<Filled>(2);
        let (free_tx, free_rx) = std_mpsc::channel::<Vec<u8>>();
        let reader_task = tokio::task::spawn_blocking(move || -> Result<[u8; 32], TransitError> {
            let mut reader = reader;
            let mut hasher = Sha256::new();
            let mut left = len;
            let mut made = 0;
            while left > 0 {
                let mut buf = match free_rx.try_recv() {
                    Ok(b) => b,
                    Err(_) if made < BUFFERS => {
                        made += 1;
                        vec![0u8; BATCH_RECORDS * SLOT]
                    }
                    Err(_) => match free_rx.recv() {
                        Ok(b) => b,
                        Err(_) => break, // a later stage stopped; it reports why
                    },
                };
                let (used, plain) = fill_buffer(&mut reader, &mut hasher, &mut buf, &mut left)?;
                if plain_tx.send(Filled { buf, used, plain }).is_err() {
                    break;
                }
            }
            Ok(hasher.finalize().into())
        });
        let mut sealer = self.sealer.clone();
        let sealer_task = tokio::task::spawn_blocking(move || -> Result<RecordSealer, TransitError> {
            while let Ok(mut f) = plain_rx.recv() {
                seal_buffer(&mut sealer, &mut f)?;
                if full_tx.blocking_send(f).is_err() {
                    break;
                }
            }
            Ok(sealer)
        });
        let idle = self.idle_timeout;
        let mut done = 0u64;
        let mut write_err = None;
        while let Some(f) = full_rx.recv().await {
            match tokio::time::timeout(idle, self.stream.write_all(&f.buf[..f.used])).await {
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
            done += f.plain;
            if let Some(p) = &progress {
                p(done, len);
            }
            let _ = free_tx.send(f.buf);
        }
        drop(full_rx);
        drop(free_tx);
        let hashed = reader_task.await.map_err(worker_err)?;
        let sealed = sealer_task.await.map_err(worker_err)?;
        if let Some(e) = write_err {
            return Err(e);
        }
        let hash = hashed?;
        let sealer = sealed?;
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
        let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(2);
        let (open_tx, open_rx) = std_mpsc::sync_channel::<Opened>(2);
        let (free_tx, mut free_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let opener = self.opener.clone();
        let opener_task = tokio::task::spawn_blocking(move || {
            let mut opener = opener;
            let mut carry: Vec<u8> = Vec::new();
            while let Some((mut buf, n)) = full_rx.blocking_recv() {
                let data = &mut buf[..n];
                let mut pos = 0;
                let mut head = None;
                if !carry.is_empty() && complete_carry(&mut carry, data, &mut pos, &opener)? {
                    let pt_len = opener.open_record(&mut carry)?.len();
                    let total = carry.len();
                    head = Some((std::mem::take(&mut carry), total - pt_len..total));
                }
                let mut ranges = Vec::new();
                if carry.is_empty() {
                    while let Some(total) = opener.complete_record(&data[pos..])? {
                        opener.open_record(&mut data[pos..pos + total])?;
                        if total > REC {
                            ranges.push(pos + REC..pos + total);
                        }
                        pos += total;
                    }
                    carry.extend_from_slice(&data[pos..]);
                }
                if open_tx.send(Opened { buf, ranges, head }).is_err() {
                    return Ok(opener); // the writer stopped; its result says why
                }
            }
            if !carry.is_empty() {
                return Err(TransitError::Closed("in the middle of a record".into()));
            }
            Ok::<_, TransitError>(opener)
        });
        let writer_task = tokio::task::spawn_blocking(move || {
            let mut out = writer;
            let mut hasher = Sha256::new();
            let mut done = 0u64;
            while let Ok(o) = open_rx.recv() {
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(o.ranges.len() + 1);
                if let Some((h, r)) = &o.head {
                    slices.push(IoSlice::new(&h[r.clone()]));
                }
                slices.extend(o.ranges.iter().map(|r| IoSlice::new(&o.buf[r.clone()])));
                for s in &slices {
                    hasher.update(&s[..]);
                    done += s.len() as u64;
                }
                write_all_vectored(&mut out, &mut slices)?;
                drop(slices);
                let _ = free_tx.send(o.buf);
                if let Some(p) = &progress {
                    p(done, len);
                }
            }
            if done != len {
                return Err(TransitError::Closed(format!("received {done} of {len} bytes")));
            }
            out.flush()?;
            let hash: [u8; 32] = hasher.finalize().into();
            Ok::<_, TransitError>((hash, out))
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
                    None => break, // a later stage stopped; its result says why
                },
            };
            if buf.len() < READ_BUF {
                buf.resize(READ_BUF, 0);
            }
            // Never read past the declared end: once the walker knows the remaining record bytes,
            // a well-behaved peer sends nothing more until our ack.
            let mut n = match tokio::time::timeout(idle, self.stream.read(&mut buf)).await {
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
            // Top the buffer up with whatever is already waiting (no blocking).
            while n < READ_FILL && !walker.is_done() {
                match self.stream.try_read(&mut buf[n..]) {
                    Ok(0) | Err(_) => break, // EOF and errors surface on the next awaited read
                    Ok(m) => {
                        if let Err(e) = walker.feed(&buf[n..n + m]) {
                            read_err = Some(e.into());
                            break;
                        }
                        n += m;
                    }
                }
            }
            if read_err.is_some() || full_tx.send((buf, n)).await.is_err() {
                break;
            }
        }
        drop(full_tx);
        let opened = opener_task.await.map_err(worker_err)?;
        let written = writer_task.await.map_err(worker_err)?;
        if let Some(e) = read_err {
            return Err(e);
        }
        let opener = opened?;
        let (hash, w) = written?;
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
