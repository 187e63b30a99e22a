//! Inbound subchannel bookkeeping of the Dilation endpoint (docs/protocol.md §6.6): which
//! subprotocols the application listens for, OPENs held until somebody listens (or until they
//! time out), and the bounded receive buffer of every subchannel (flow control).
//!
//! Owns: per-subchannel "delivered but not yet consumed" byte counts and the set of subchannels
//! whose count reached the receive window (while that set is non-empty the endpoint stops
//! reading the connection, unless its writes wait for ACKs: see
//! [`super::actions::Config::blocked_read_allowance`]); held OPENs with the DATA/CLOSE that arrived behind them; OPENs that
//! were refused, whose late DATA is dropped.
//!
//! Must not: send records, track seqnums or open/close state on the wire (that is
//! [`super::l4`]), or read clocks (deadlines are computed from the `now` passed in).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::Instant;

/// Something a held OPEN collected before it was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A DATA record's bytes.
    Data(bytes::Bytes),
    /// The peer's CLOSE.
    Close,
}

/// An OPEN for a subprotocol nobody listens for yet.
#[derive(Debug, Clone)]
pub struct PendingOpen {
    /// The subprotocol name it asked for.
    pub subprotocol: String,
    /// When it is refused if still nobody listens.
    pub deadline: Instant,
    /// What arrived behind it, in order.
    pub held: Vec<Held>,
}

/// What became of an inbound OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// Somebody listens: hand it to the application now.
    Accepted,
    /// Held until a listener appears or the deadline passes.
    Held,
    /// Too many OPENs are held already: refuse it now.
    Refused,
}

/// What to do with inbound DATA or CLOSE for a subchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Deliver to the application.
    Deliver,
    /// Kept with its held OPEN.
    Held,
    /// The subchannel was refused (or is unknown here): drop it.
    Drop,
}

#[derive(Debug, Clone, Copy, Default)]
struct Recv {
    buffered: usize,
    peer_closed: bool,
    we_closed: bool,
}

/// The inbound side of every subchannel.
#[derive(Debug, Clone)]
pub struct Subchannels {
    window: usize,
    max_pending: usize,
    listening: HashSet<String>,
    recv: BTreeMap<u32, Recv>,
    pending: BTreeMap<u32, PendingOpen>,
    refused: VecDeque<u32>,
    full: BTreeSet<u32>,
}

/// How many refused subchannel ids are remembered (their late DATA is dropped quietly).
const MAX_REFUSED: usize = 1024;

impl Subchannels {
    /// Receive window `window` bytes per subchannel; at most `max_pending` held OPENs.
    pub fn new(window: usize, max_pending: usize) -> Self {
        Subchannels {
            window: window.max(1),
            max_pending,
            listening: HashSet::new(),
            recv: BTreeMap::new(),
            pending: BTreeMap::new(),
            refused: VecDeque::new(),
            full: BTreeSet::new(),
        }
    }

    /// True while some subchannel's buffer is full: stop reading the connection.
    pub fn should_pause(&self) -> bool {
        !self.full.is_empty()
    }

    /// Bytes delivered on `scid` (or held for it) and not yet consumed.
    pub fn buffered(&self, scid: u32) -> usize {
        self.recv.get(&scid).map_or(0, |r| r.buffered)
    }

    /// Bytes delivered (or held) and not yet consumed, over all subchannels.
    pub fn total_buffered(&self) -> usize {
        self.recv.values().map(|r| r.buffered).sum()
    }

    /// The largest [`Subchannels::buffered`] over all subchannels.
    pub fn max_buffered(&self) -> usize {
        self.recv.values().map(|r| r.buffered).max().unwrap_or(0)
    }

    /// How many subchannels are tracked (open, held, or closed with data not yet consumed).
    pub fn tracked(&self) -> usize {
        self.recv.len()
    }

    /// How many OPENs are held.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn account(&mut self, scid: u32, add: usize, sub: usize) {
        let window = self.window;
        if let Some(r) = self.recv.get_mut(&scid) {
            r.buffered = r.buffered.saturating_add(add).saturating_sub(sub);
            if r.buffered >= window {
                self.full.insert(scid);
            } else {
                self.full.remove(&scid);
            }
            if r.buffered == 0 && r.peer_closed && r.we_closed {
                self.recv.remove(&scid);
            }
        }
    }

    /// The application listens for `subprotocol`: returns the held OPENs it now accepts.
    pub fn listen(&mut self, subprotocol: &str) -> Vec<(u32, PendingOpen)> {
        self.listening.insert(subprotocol.to_owned());
        let ids: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.subprotocol == subprotocol)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                if p.held.contains(&Held::Close)
                    && let Some(r) = self.recv.get_mut(&id)
                {
                    r.peer_closed = true;
                }
                out.push((id, p));
            }
        }
        out
    }

    /// We opened `scid` ourselves.
    pub fn opened_locally(&mut self, scid: u32) {
        self.recv.insert(scid, Recv::default());
    }

    /// The peer opened `scid` for `subprotocol`.
    pub fn peer_open(&mut self, scid: u32, subprotocol: &str, deadline: Instant) -> OpenOutcome {
        if self.listening.contains(subprotocol) {
            self.recv.insert(scid, Recv::default());
            return OpenOutcome::Accepted;
        }
        if self.pending.len() >= self.max_pending {
            self.refuse(scid);
            return OpenOutcome::Refused;
        }
        self.recv.insert(scid, Recv::default());
        self.pending.insert(
            scid,
            PendingOpen {
                subprotocol: subprotocol.to_owned(),
                deadline,
                held: Vec::new(),
            },
        );
        OpenOutcome::Held
    }

    fn refuse(&mut self, scid: u32) {
        if self.refused.len() >= MAX_REFUSED {
            self.refused.pop_front();
        }
        self.refused.push_back(scid);
    }

    /// DATA of `len` bytes arrived on `scid`; `data` is kept if the OPEN is held.
    pub fn peer_data(&mut self, scid: u32, data: &mut bytes::Bytes) -> Route {
        let len = data.len();
        if let Some(p) = self.pending.get_mut(&scid) {
            p.held.push(Held::Data(std::mem::take(data)));
            self.account(scid, len, 0);
            return Route::Held;
        }
        if self.recv.contains_key(&scid) {
            self.account(scid, len, 0);
            return Route::Deliver;
        }
        Route::Drop
    }

    /// The peer's CLOSE arrived on `scid`.
    pub fn peer_close(&mut self, scid: u32) -> Route {
        if let Some(p) = self.pending.get_mut(&scid) {
            p.held.push(Held::Close);
            return Route::Held;
        }
        if let Some(pos) = self.refused.iter().position(|&s| s == scid) {
            self.refused.remove(pos);
            return Route::Drop;
        }
        match self.recv.get_mut(&scid) {
            Some(r) => {
                r.peer_closed = true;
                self.account(scid, 0, 0);
                Route::Deliver
            }
            None => Route::Drop,
        }
    }

    /// We sent CLOSE on `scid`.
    pub fn we_closed(&mut self, scid: u32) {
        if let Some(r) = self.recv.get_mut(&scid) {
            r.we_closed = true;
        }
        self.account(scid, 0, 0);
    }

    /// The application consumed `n` bytes of `scid`.
    pub fn consumed(&mut self, scid: u32, n: usize) {
        self.account(scid, 0, n);
    }

    /// The earliest deadline of a held OPEN.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Removes and returns the held OPENs whose deadline passed (refused: CLOSE them).
    pub fn expire(&mut self, now: Instant) -> Vec<(u32, PendingOpen)> {
        let ids: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.pending.remove(&id) {
                self.recv.remove(&id);
                self.full.remove(&id);
                if !p.held.contains(&Held::Close) {
                    self.refuse(id);
                }
                out.push((id, p));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn window_pauses_and_consumption_resumes() {
        let t = Instant::now();
        let mut s = Subchannels::new(10, 2);
        s.listen("p");
        assert_eq!(s.peer_open(1, "p", t), OpenOutcome::Accepted);
        assert_eq!(s.peer_data(1, &mut vec![0; 6].into()), Route::Deliver);
        assert!(!s.should_pause());
        assert_eq!(s.peer_data(1, &mut vec![0; 6].into()), Route::Deliver);
        assert!(s.should_pause());
        s.consumed(1, 5);
        assert!(!s.should_pause());
        assert_eq!(s.buffered(1), 7);
        assert_eq!(s.peer_data(9, &mut vec![0; 6].into()), Route::Drop);
    }

    #[test]
    fn held_opens_are_accepted_or_refused() {
        let t = Instant::now();
        let mut s = Subchannels::new(100, 2);
        assert_eq!(s.peer_open(1, "x", t), OpenOutcome::Held);
        assert_eq!(s.peer_open(3, "y", t + Duration::from_secs(1)), OpenOutcome::Held);
        assert_eq!(s.peer_open(5, "z", t), OpenOutcome::Refused);
        let mut d = bytes::Bytes::from_static(b"hi");
        assert_eq!(s.peer_data(1, &mut d), Route::Held);
        assert_eq!(s.buffered(1), 2);
        assert_eq!(s.peer_close(1), Route::Held);
        let got = s.listen("x");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].1.held,
            vec![Held::Data(b"hi".to_vec().into()), Held::Close]
        );
        assert_eq!(s.next_deadline(), Some(t + Duration::from_secs(1)));
        let gone = s.expire(t + Duration::from_secs(1));
        assert_eq!(gone.len(), 1);
        assert_eq!(s.peer_data(3, &mut vec![1].into()), Route::Drop);
        assert_eq!(s.peer_close(3), Route::Drop);
        assert_eq!(s.pending_len(), 0);
    }
}
