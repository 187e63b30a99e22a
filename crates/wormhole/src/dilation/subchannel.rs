//! The application's handles: a [`Subchannel`] (a record pipe that is also a tokio
//! `AsyncRead + AsyncWrite` with half-close) and a [`SubchannelListener`].
//!
//! Owns: the read position in the current record, the one write in flight, and reporting what
//! was read (receive credit) back to the Dilation task. Must not: buffer more than one record
//! (the endpoint's receive window is the bound) or split a write of the record API.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::{AppRequest, DilationError};

/// What the Dilation task delivers to a subchannel.
#[derive(Debug)]
pub(crate) enum SubEvent {
    /// One DATA record.
    Data(Vec<u8>),
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
    record: Vec<u8>,
    pos: usize,
    eof: bool,
    read_error: Option<DilationError>,
    pending: Option<Pending>,
    shut: Shut,
}

impl Subchannel {
    pub(crate) fn new(
        scid: u32,
        subprotocol: String,
        max_write: usize,
        requests: mpsc::UnboundedSender<AppRequest>,
        events: mpsc::UnboundedReceiver<SubEvent>,
    ) -> Subchannel {
        Subchannel {
            scid,
            subprotocol,
            max_write,
            requests,
            events,
            record: Vec::new(),
            pos: 0,
            eof: false,
            read_error: None,
            pending: None,
            shut: Shut::Open,
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

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DilationError>> {
        let Some(rx) = self.pending.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let res = ready!(Pin::new(rx).poll(cx));
        self.pending = None;
        Poll::Ready(res.unwrap_or(Err(DilationError::Ended)))
    }

    fn submit(&mut self, data: Vec<u8>) -> Result<(), DilationError> {
        if self.shut != Shut::Open {
            return Err(DilationError::Subchannel {
                scid: self.scid,
                reason: "written after shutdown".into(),
            });
        }
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(AppRequest::Write {
                scid: self.scid,
                data,
                reply,
            })
            .map_err(|_| DilationError::Ended)?;
        self.pending = Some(rx);
        Ok(())
    }

    /// Sends `data` as one DATA record (waits while the unacked queue is full).
    pub async fn send_record(&mut self, data: Vec<u8>) -> Result<(), DilationError> {
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

    /// The next record (the rest of it, if `AsyncRead` consumed part); `None` after the peer's
    /// CLOSE.
    pub async fn recv_record(&mut self) -> Result<Option<Vec<u8>>, DilationError> {
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
        match ready!(self.events.poll_recv(cx)) {
            Some(SubEvent::Data(d)) => {
                self.record = d;
                self.pos = 0;
                Poll::Ready(Ok(true))
            }
            Some(SubEvent::PeerClosed) => {
                self.eof = true;
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
        if n > 0 {
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
        ready!(this.poll_pending(cx))?;
        let n = buf.len().min(this.max_write);
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        this.submit(buf[..n].to_vec())?;
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
                    this.pending = Some(rx);
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
        let _ = self.requests.send(AppRequest::Dropped {
            scid: self.scid,
            shut: self.shut != Shut::Open,
            unread,
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
