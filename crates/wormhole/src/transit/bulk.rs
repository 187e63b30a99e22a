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

/// Buffers between the socket reader and the opener: (buffer, bytes filled).
type Full = (Vec<u8>, usize);

impl TransitConnection {
    /// Send exactly `len` bytes read from `reader` as 16 KiB records. Returns the SHA-256 of the
    /// bytes sent. Fails if `reader` ends early. Any failure poisons the connection (the sealer
    /// lent to the sealing thread is not handed back), so no later record can reuse a nonce.
    pub async fn send_from<R: Read + Send + 'static>(
        &mut self,
        reader: R,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<[u8; 32], TransitError> {
        let sealer = self.take_sealer()?;
        let r = self.send_stages(sealer, reader, len, progress).await;
        self.settle(r)
    }

    async fn send_stages<R: Read + Send + 'static>(
        &mut self,
        sealer: RecordSealer,
        reader: R,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<[u8; 32], TransitError> {
        let (full_tx, mut full_rx) = mpsc::channel::<Filled>(2);
        let (plain_tx, plain_rx) = std_mpsc::sync_channel::<Filled>(2);
        let (free_tx, free_rx) = std_mpsc::channel::<Vec<u8>>();
        let reader_task = tokio::task::spawn_blocking(move || read_stage(reader, len, free_rx, plain_tx));
        let sealer_task = tokio::task::spawn_blocking(move || seal_stage(sealer, plain_rx, full_tx));
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
        self.give_back_sealer(sealer);
        Ok(hash)
    }

    /// Receive exactly `len` plaintext bytes into `writer`. Returns their SHA-256 and the writer
    /// (flushed). Any record beyond `len` (or a length prefix announcing more) is an error. Any
    /// failure poisons the connection.
    pub async fn receive_into<W: Write + Send + 'static>(
        &mut self,
        writer: W,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<([u8; 32], W), TransitError> {
        let opener = self.take_opener()?;
        let r = self.receive_stages(opener, writer, len, progress).await;
        self.settle(r)
    }

    /// The three receive stages: socket → opener thread → writer thread, then their results.
    async fn receive_stages<W: Write + Send + 'static>(
        &mut self,
        opener: RecordOpener,
        writer: W,
        len: u64,
        progress: Option<Progress>,
    ) -> Result<([u8; 32], W), TransitError> {
        let (full_tx, full_rx) = mpsc::channel::<Full>(2);
        let (open_tx, open_rx) = std_mpsc::sync_channel::<Opened>(2);
        let (free_tx, free_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let opener_task = tokio::task::spawn_blocking(move || open_stage(opener, full_rx, open_tx));
        let writer_task =
            tokio::task::spawn_blocking(move || write_stage(writer, open_rx, free_tx, len, progress));
        let read_res = self.socket_stage(len, full_tx, free_rx).await;
        let opened = opener_task.await.map_err(worker_err)?;
        let written = writer_task.await.map_err(worker_err)?;
        read_res?;
        let opener = opened?;
        let (hash, w) = written?;
        self.give_back_opener(opener);
        Ok((hash, w))
    }

    /// Read the socket into buffers for the opener until the walker has seen `len` plaintext
    /// bytes (bytes left over from the handshake first). Stops quietly if a later stage stopped
    /// (its result says why).
    async fn socket_stage(
        &mut self,
        len: u64,
        full_tx: mpsc::Sender<Full>,
        mut free_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    ) -> Result<(), TransitError> {
        let mut walker = RecordWalker::new(self.max_record, len);
        let first = std::mem::take(&mut self.pending);
        if !first.is_empty() {
            let n = first.len();
            walker.feed(&first)?;
            let _ = full_tx.send((first, n)).await;
        }
        let mut made = 0;
        while !walker.is_done() {
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if made < BUFFERS => {
                    made += 1;
                    vec![0u8; READ_BUF]
                }
                Err(_) => match free_rx.recv().await {
                    Some(b) => b,
                    None => return Ok(()), // a later stage stopped; its result says why
                },
            };
            if buf.len() < READ_BUF {
                buf.resize(READ_BUF, 0);
            }
            let n = self.read_batch(&mut buf, &mut walker).await?;
            if full_tx.send((buf, n)).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One awaited read into `buf`, topped up with whatever is already waiting (no blocking) up
    /// to [`READ_FILL`], every byte checked by the walker. Never reads past the declared end:
    /// once the walker knows the remaining record bytes, a well-behaved peer sends nothing more
    /// until our ack.
    async fn read_batch(&mut self, buf: &mut [u8], walker: &mut RecordWalker) -> Result<usize, TransitError> {
        let idle = self.idle_timeout;
        let mut n = match tokio::time::timeout(idle, self.stream.read(buf)).await {
            Ok(Ok(0)) => return Err(TransitError::Closed("before all data arrived".into())),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(TransitError::Closed(e.to_string())),
            Err(_) => return Err(TransitError::Stalled(idle.as_secs())),
        };
        walker.feed(&buf[..n])?;
        while n < READ_FILL && !walker.is_done() {
            match self.stream.try_read(&mut buf[n..]) {
                Ok(0) | Err(_) => break, // EOF and errors surface on the next awaited read
                Ok(m) => {
                    walker.feed(&buf[n..n + m])?;
                    n += m;
                }
            }
        }
        Ok(n)
    }
}

/// The reader thread of a send: fill free buffers from `reader` until `len` bytes are read, pass
/// them to the sealer; returns the SHA-256 of the bytes read.
fn read_stage<R: Read>(
    mut reader: R,
    len: u64,
    free_rx: std_mpsc::Receiver<Vec<u8>>,
    plain_tx: std_mpsc::SyncSender<Filled>,
) -> Result<[u8; 32], TransitError> {
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
}

/// The sealer thread of a send: seal each filled buffer in place and pass it to the socket
/// writer; hands the sealer back only when nothing failed.
fn seal_stage(
    mut sealer: RecordSealer,
    plain_rx: std_mpsc::Receiver<Filled>,
    full_tx: mpsc::Sender<Filled>,
) -> Result<RecordSealer, TransitError> {
    while let Ok(mut f) = plain_rx.recv() {
        seal_buffer(&mut sealer, &mut f)?;
        if full_tx.blocking_send(f).is_err() {
            break;
        }
    }
    Ok(sealer)
}

/// The opener thread of a receive: decrypt each buffer's records where they lie (a record cut by
/// the buffer's end is carried into the next one); hands the opener back when nothing failed.
fn open_stage(
    mut opener: RecordOpener,
    mut full_rx: mpsc::Receiver<Full>,
    open_tx: std_mpsc::SyncSender<Opened>,
) -> Result<RecordOpener, TransitError> {
    let mut carry: Vec<u8> = Vec::new();
    while let Some((mut buf, n)) = full_rx.blocking_recv() {
        let (ranges, head) = open_buffer(&mut opener, &mut carry, &mut buf[..n])?;
        if open_tx.send(Opened { buf, ranges, head }).is_err() {
            return Ok(opener); // the writer stopped; its result says why
        }
    }
    if !carry.is_empty() {
        return Err(TransitError::Closed("in the middle of a record".into()));
    }
    Ok(opener)
}

/// Plaintext ranges of one received buffer.
type OpenedParts = (Vec<Range<usize>>, Option<(Vec<u8>, Range<usize>)>);

/// Decrypt the records of `data` in place: first the one completed from `carry`, then every
/// whole record; the bytes of an incomplete last record go to `carry`.
fn open_buffer(
    opener: &mut RecordOpener,
    carry: &mut Vec<u8>,
    data: &mut [u8],
) -> Result<OpenedParts, TransitError> {
    let mut pos = 0;
    let mut head = None;
    if !carry.is_empty() && complete_carry(carry, data, &mut pos, opener)? {
        let pt_len = opener.open_record(carry)?.len();
        let total = carry.len();
        head = Some((std::mem::take(carry), total - pt_len..total));
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
    Ok((ranges, head))
}

/// The writer thread of a receive: hash and write each buffer's plaintext with one `writev`,
/// recycle the buffer; checks the total and flushes at the end.
fn write_stage<W: Write>(
    mut out: W,
    open_rx: std_mpsc::Receiver<Opened>,
    free_tx: mpsc::UnboundedSender<Vec<u8>>,
    len: u64,
    progress: Option<Progress>,
) -> Result<([u8; 32], W), TransitError> {
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
    Ok((hasher.finalize().into(), out))
}

/// `write_all` for a list of slices: one `writev` per call instead of one `write` per record.
pub(crate) fn write_all_vectored<W: Write>(w: &mut W, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    //! Poisoning over a real loopback socket pair: after any failure a connection refuses every
    //! later send and receive, so no record can reuse a nonce; a clean transfer leaves it usable.
    #![allow(clippy::unwrap_used)]

    use std::io::Cursor;

    use tokio::net::{TcpListener, TcpStream};
    use wormhole_proto::transit::{DEFAULT_MAX_RECORD, RecordError, Role, TransitKeys};

    use super::*;
    use crate::transit::ConnectionKind;

    async fn pair() -> (TransitConnection, TransitConnection) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        let keys = TransitKeys::new(b"poison test");
        let conn = |s, role, kind| {
            TransitConnection::new(
                crate::transit::stream::TransitStream::Tcp(s),
                Vec::new(),
                role,
                &keys,
                DEFAULT_MAX_RECORD,
                kind,
                "test".into(),
            )
        };
        (
            conn(a.unwrap(), Role::Sender, ConnectionKind::DirectOutbound),
            conn(b.unwrap().0, Role::Receiver, ConnectionKind::DirectInbound),
        )
    }

    #[tokio::test]
    async fn a_send_after_a_failed_send_from_is_refused() {
        let (mut s, mut r) = pair().await;
        s.send_record(b"one").await.unwrap();
        // The source ends 90 bytes early: the bulk send fails with its own error …
        let err = s
            .send_from(Cursor::new(vec![1u8; 10]), 100, None)
            .await
            .unwrap_err();
        assert!(matches!(err, TransitError::Io(_)), "{err:?}");
        assert!(s.is_poisoned());
        // … and everything after it is refused instead of sealing with a reused nonce.
        assert!(matches!(s.send_record(b"two").await, Err(TransitError::Poisoned)));
        let again = s.send_from(Cursor::new(vec![0u8; 5]), 5, None).await;
        assert!(matches!(again, Err(TransitError::Poisoned)));
        assert!(matches!(s.receive_record().await, Err(TransitError::Poisoned)));
        assert_eq!(r.receive_record().await.unwrap(), b"one");
    }

    #[tokio::test]
    async fn a_receive_after_a_bad_record_is_refused() {
        let (mut s, mut r) = pair().await;
        let forged = RecordSealer::new(&[9u8; 32]).seal(b"x").unwrap();
        s.stream.write_all(&forged).await.unwrap();
        let err = r.receive_record().await.unwrap_err();
        assert!(
            matches!(err, TransitError::Record(RecordError::DecryptFailed)),
            "{err:?}"
        );
        assert!(matches!(r.receive_record().await, Err(TransitError::Poisoned)));
        assert!(matches!(r.send_record(b"ack").await, Err(TransitError::Poisoned)));
        let bulk = r.receive_into(Vec::new(), 1, None).await;
        assert!(matches!(bulk, Err(TransitError::Poisoned)));
    }

    #[tokio::test]
    async fn a_failed_receive_into_poisons() {
        let (mut s, mut r) = pair().await;
        s.send_record(b"short").await.unwrap();
        s.close().await;
        let err = r.receive_into(Vec::new(), 100, None).await.unwrap_err();
        assert!(matches!(err, TransitError::Closed(_)), "{err:?}");
        assert!(matches!(r.receive_record().await, Err(TransitError::Poisoned)));
        assert!(matches!(r.send_record(b"ack").await, Err(TransitError::Poisoned)));
    }

    #[tokio::test]
    async fn a_clean_transfer_leaves_the_connection_usable() {
        let (mut s, mut r) = pair().await;
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let len = data.len() as u64;
        let (sent, got) = tokio::join!(
            s.send_from(Cursor::new(data.clone()), len, None),
            r.receive_into(Vec::new(), len, None)
        );
        let (hash, out) = got.unwrap();
        assert_eq!(sent.unwrap(), hash);
        assert_eq!(out, data);
        r.send_record(b"ack").await.unwrap();
        assert_eq!(s.receive_record().await.unwrap(), b"ack");
        s.send_record(b"more").await.unwrap();
        assert_eq!(r.receive_record().await.unwrap(), b"more");
        assert!(!s.is_poisoned() && !r.is_poisoned());
    }
}
