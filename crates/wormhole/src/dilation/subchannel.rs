//! The application's handles: a [`Subchannel`] (a record pipe that is also a tokio
//! `AsyncRead + AsyncWrite` with half-close) and a [`SubchannelListener`].
//!
//! Owns: the read position in the current record, the writes in flight (handed to the Dilation
//! task but not yet taken by it: at most [`IN_FLIGHT_BYTES`] beyond one record, so a sender's
//! records pipeline without a round trip each), and reporting what was read (receive credit)
//! back to the Dilation task: in batches of up to a quarter of the receive window, and always
//! before waiting for the next record (so a full window is never waited on by both sides). Must not: buffer more than one record
//! (the endpoint's receive window is the bound) or split a write of the record API.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::{AppRequest, DilationError};

/// What the Dilation task delivers to a subchannel.
#[derive(Debug)]
pub(crate) enum SubEvent {
    /// One DATA record (sharing the buffer the frame was decrypted in).
    Data(Bytes),
    /// The peer's CLOSE: nothing more will arrive.
    PeerClosed,
    /// Dilation ended.
    Ended(DilationError),
}

#[derive(Debug, PartialEq, Eq)]
enum Shut {
    Open,
    Sending,
    Done,
}

type Pending = oneshot::Receiver<Result<(), DilationError>>;

/// Bytes of writes one subchannel may have handed to the Dilation task before it waits for the
/// task to take the oldest (the task holds them while the unacked queue is full).
pub const IN_FLIGHT_BYTES: usize = 512 << 10;

/// Most bytes read before they are reported to the Dilation task (one message, and often a
/// wake-up of that task, per report instead of per record).
pub const REPORT_EVERY: usize = 256 << 10;

/// One subchannel. Each `poll_write` (at most [`super::EndpointConfig::max_write_len`] bytes)
/// and each [`Subchannel::send_record`] is exactly one DATA record; [`Subchannel::recv_record`]
/// returns one record as it arrived. `shutdown` sends CLOSE and reading goes on until the
/// peer's CLOSE (then reads return end of file).
#[derive(Debug)]
pub struct Subchannel {
    scid: u32,
    subprotocol: String,
    max_write: usize,
    requests: mpsc::UnboundedSender<AppRequest>,
    events: mpsc::UnboundedReceiver<SubEvent>,
    record: Bytes,
    pos: usize,
    eof: bool,
    read_error: Option<DilationError>,
    /// Writes (and a shutdown) not yet taken, oldest first, with their sizes.
    pending: VecDeque<(Pending, usize)>,
    in_flight: usize,
    shut: Shut,
    /// Bytes read but not yet reported to the Dilation task, and the most held so.
    unreported: usize,
    report_every: usize,
}

impl Subchannel {
    /// `recv_window`: the endpoint's receive window (what was read is reported in batches of a
    /// quarter of it, at most [`REPORT_EVERY`]).
    pub(crate) fn new(
        scid: u32,
        subprotocol: String,
        (max_write, recv_window): (usize, usize),
        requests: mpsc::UnboundedSender<AppRequest>,
        events: mpsc::UnboundedReceiver<SubEvent>,
    ) -> Subchannel {
        Subchannel {
            scid,
            subprotocol,
            max_write,
            requests,
            events,
            record: Bytes::new(),
            pos: 0,
            eof: false,
            read_error: None,
            pending: VecDeque::new(),
            in_flight: 0,
            shut: Shut::Open,
            unreported: 0,
            report_every: (recv_window / 4).min(REPORT_EVERY),
        }
    }

    /// The subchannel id (odd: the Leader opened it; even: the Follower).
    pub fn id(&self) -> u32 {
        self.scid
    }

    /// The subprotocol it was opened for.
    pub fn subprotocol(&self) -> &str {
        &self.subprotocol
    }

    /// The largest record one write may carry.
    pub fn max_record(&self) -> usize {
        self.max_write
    }

    /// Waits until every write handed over was taken (or one failed: its error).
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DilationError>> {
        self.poll_room(cx, 0)
    }

    /// Waits until `next` more bytes may be handed over: nothing is in flight, or the bytes in
    /// flight and `next` stay within [`IN_FLIGHT_BYTES`] (`next` 0: until nothing is).
    fn poll_room(&mut self, cx: &mut Context<'_>, next: usize) -> Poll<Result<(), DilationError>> {
        while let Some((rx, len)) = self.pending.front_mut() {
            if next > 0 && self.in_flight + next <= IN_FLIGHT_BYTES {
                break;
            }
            let res = ready!(Pin::new(rx).poll(cx));
            self.in_flight -= *len;
            self.pending.pop_front();
            res.unwrap_or(Err(DilationError::Ended))?;
        }
        Poll::Ready(Ok(()))
    }

    fn submit(&mut self, data: Bytes) -> Result<(), DilationError> {
        if self.shut != Shut::Open {
            return Err(DilationError::Subchannel {
                scid: self.scid,
                reason: "written after shutdown".into(),
            });
        }
        let (reply, rx) = oneshot::channel();
        let len = data.len();
        self.requests
            .send(AppRequest::Write {
                scid: self.scid,
                data,
                reply,
            })
            .map_err(|_| DilationError::Ended)?;
        self.pending.push_back((rx, len));
        self.in_flight += len;
        Ok(())
    }

    /// Sends `data` as one DATA record (waits while the unacked queue is full).
    pub async fn send_record(&mut self, data: impl Into<Bytes>) -> Result<(), DilationError> {
        let data: Bytes = data.into();
        if data.len() > self.max_write {
            return Err(DilationError::RecordTooLarge {
                len: data.len(),
                max: self.max_write,
            });
        }
        poll_fn(|cx| self.poll_pending(cx)).await?;
        self.submit(data)?;
        poll_fn(|cx| self.poll_pending(cx)).await
    }

    /// Sends `data` as one DATA record without waiting for Dilation to take it (the next write,
    /// a flush or a shutdown waits for that), so a sender's records pipeline as with
    /// `AsyncWrite::write`, but the buffer is handed over instead of copied.
    pub async fn write_record(&mut self, data: impl Into<Bytes>) -> Result<(), DilationError> {
        let data: Bytes = data.into();
        if data.len() > self.max_write {
            return Err(DilationError::RecordTooLarge {
                len: data.len(),
                max: self.max_write,
            });
        }
        let len = data.len().max(1);
        poll_fn(|cx| self.poll_room(cx, len)).await?;
        self.submit(data)
    }

    /// The next record (the rest of it, if `AsyncRead` consumed part); `None` after the peer's
    /// CLOSE.
    pub async fn recv_record(&mut self) -> Result<Option<Bytes>, DilationError> {
        if self.pos < self.record.len() {
            let total = self.record.len();
            let rest = self.record.split_off(self.pos);
            self.finish_record_len(total);
            return Ok(Some(rest));
        }
        match poll_fn(|cx| self.poll_event(cx)).await? {
            true => {
                let r = std::mem::take(&mut self.record);
                self.finish_record_len(r.len());
                Ok(Some(r))
            }
            false => Ok(None),
        }
    }

    /// Waits for the next record into `self.record`: true, or false at end of file.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, DilationError>> {
        if let Some(e) = &self.read_error {
            return Poll::Ready(Err(e.clone()));
        }
        if self.eof {
            return Poll::Ready(Ok(false));
        }
        let ev = match self.events.poll_recv(cx) {
            Poll::Ready(ev) => ev,
            Poll::Pending => {
                // Nothing to read: what was read goes back now, so the peer's data is not held
                // up by a window that only looks full.
                self.report();
                return Poll::Pending;
            }
        };
        match ev {
            Some(SubEvent::Data(d)) => {
                self.record = d;
                self.pos = 0;
                Poll::Ready(Ok(true))
            }
            Some(SubEvent::PeerClosed) => {
                self.eof = true;
                self.report();
                Poll::Ready(Ok(false))
            }
            Some(SubEvent::Ended(e)) => {
                self.read_error = Some(e.clone());
                Poll::Ready(Err(e))
            }
            None => {
                self.read_error = Some(DilationError::Ended);
                Poll::Ready(Err(DilationError::Ended))
            }
        }
    }

    fn finish_record(&mut self) {
        let n = self.record.len();
        self.finish_record_len(n);
    }

    fn finish_record_len(&mut self, n: usize) {
        self.record.clear();
        self.pos = 0;
        self.unreported += n;
        if self.unreported >= self.report_every {
            self.report();
        }
    }

    /// Reports what was read and not yet reported (receive credit for the peer).
    fn report(&mut self) {
        if self.unreported > 0 {
            let n = std::mem::take(&mut self.unreported);
            let _ = self.requests.send(AppRequest::Consumed { scid: self.scid, n });
        }
    }
}

impl AsyncRead for Subchannel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.record.len() {
                let n = (this.record.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.record[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.record.len() {
                    this.finish_record();
                }
                return Poll::Ready(Ok(()));
            }
            match ready!(this.poll_event(cx)) {
                Ok(true) if this.record.is_empty() => continue,
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl AsyncWrite for Subchannel {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = buf.len().min(this.max_write);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_room(cx, n))?;
        this.submit(Bytes::copy_from_slice(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(ready!(self.get_mut().poll_pending(cx))?))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_pending(cx))?;
            match this.shut {
                Shut::Done => return Poll::Ready(Ok(())),
                Shut::Sending => this.shut = Shut::Done,
                Shut::Open => {
                    let (reply, rx) = oneshot::channel();
                    this.requests
                        .send(AppRequest::Shutdown {
                            scid: this.scid,
                            reply,
                        })
                        .map_err(|_| DilationError::Ended)?;
                    this.pending.push_back((rx, 0));
                    this.shut = Shut::Sending;
                }
            }
        }
    }
}

impl Drop for Subchannel {
    fn drop(&mut self) {
        let mut unread = self.record.len() - self.pos.min(self.record.len());
        while let Ok(ev) = self.events.try_recv() {
            if let SubEvent::Data(d) = ev {
                unread += d.len();
            }
        }
        // What was read and not reported counts as freed, as what was never read does.
        let _ = self.requests.send(AppRequest::Dropped {
            scid: self.scid,
            shut: self.shut != Shut::Open,
            unread: unread + self.unreported,
        });
    }
}

/// Subchannels the peer opens for one subprotocol.
#[derive(Debug)]
pub struct SubchannelListener {
    subprotocol: String,
    incoming: mpsc::UnboundedReceiver<Subchannel>,
    /// Keeps the Dilation task alive while someone listens.
    _keep: mpsc::UnboundedSender<AppRequest>,
}

impl SubchannelListener {
    pub(crate) fn new(
        subprotocol: String,
        incoming: mpsc::UnboundedReceiver<Subchannel>,
        keep: mpsc::UnboundedSender<AppRequest>,
    ) -> Self {
        SubchannelListener {
            subprotocol,
            incoming,
            _keep: keep,
        }
    }

    /// The subprotocol listened for.
    pub fn subprotocol(&self) -> &str {
        &self.subprotocol
    }

    /// The next subchannel the peer opened; `None` once Dilation ended.
    pub async fn accept(&mut self) -> Option<Subchannel> {
        self.incoming.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// What the Dilation task was told was consumed, and the drop's count.
    fn reports(rx: &mut mpsc::UnboundedReceiver<AppRequest>) -> (Vec<usize>, Option<usize>) {
        let (mut consumed, mut dropped) = (Vec::new(), None);
        while let Ok(r) = rx.try_recv() {
            match r {
                AppRequest::Consumed { n, .. } => consumed.push(n),
                AppRequest::Dropped { unread, .. } => dropped = Some(unread),
                _ => {}
            }
        }
        (consumed, dropped)
    }

    #[tokio::test]
    async fn reads_are_reported_in_batches_and_before_waiting() {
        let (req_tx, mut req_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let mut sub = Subchannel::new(3, "p".into(), (1 << 20, 1 << 20), req_tx, ev_rx);
        let record = Bytes::from(vec![1u8; 100 << 10]);
        for _ in 0..5 {
            ev_tx.send(SubEvent::Data(record.clone())).unwrap();
        }
        for _ in 0..3 {
            sub.recv_record().await.unwrap().unwrap();
        }
        // 300 KiB read: one report, once past REPORT_EVERY.
        assert_eq!(reports(&mut req_rx).0, [300 << 10]);
        for _ in 0..2 {
            sub.recv_record().await.unwrap().unwrap();
        }
        assert!(reports(&mut req_rx).0.is_empty(), "below the batch: held");
        // Waiting for the next record reports what was read.
        assert!(sub.recv_record().now_or_never().is_none());
        assert_eq!(reports(&mut req_rx).0, [200 << 10]);
        // A record read but not reported counts when the subchannel is dropped, with one unread.
        ev_tx.send(SubEvent::Data(record.clone())).unwrap();
        ev_tx.send(SubEvent::Data(record.clone())).unwrap();
        sub.recv_record().await.unwrap().unwrap();
        drop(sub);
        assert_eq!(reports(&mut req_rx), (vec![], Some(200 << 10)));
    }

    #[tokio::test]
    async fn a_small_window_is_reported_a_quarter_at_a_time_and_at_the_end() {
        let (req_tx, mut req_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let mut sub = Subchannel::new(3, "p".into(), (1 << 20, 4000), req_tx, ev_rx);
        for _ in 0..4 {
            ev_tx.send(SubEvent::Data(Bytes::from(vec![2u8; 600]))).unwrap();
        }
        ev_tx.send(SubEvent::PeerClosed).unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut sub, &mut got)
            .await
            .unwrap();
        assert_eq!(got.len(), 2400);
        // 1000 bytes a batch: after the second and fourth record; nothing is left at the end.
        assert_eq!(reports(&mut req_rx).0, [1200, 1200]);
    }
}
