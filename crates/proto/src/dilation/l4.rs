//! L4 of Dilation (docs/protocol.md §6.6): reliable, ordered delivery of OPEN/DATA/CLOSE across
//! a succession of L3 connections, and the subchannel-id bookkeeping.
//!
//! Owns: the outbound sequence counter (per direction, from 0), the queue of sent-but-unacked
//! OPEN/DATA/CLOSE records (retired by ACK N for every seqnum ≤ N, re-sent whole and in order on
//! every new connection), the inbound watermark (a record with seqnum ≤ the highest seen is
//! acknowledged but otherwise ignored), immediate ACKs, PONG answers to PING, subchannel-id
//! allocation (Leader odd from 1, Follower even from 2, 0 reserved) and which subchannels are
//! open or half-closed.
//!
//! Must not: encrypt, frame, choose connections, run timers (the keepalive schedule belongs to
//! the driver; PINGs are sent with [`Reliability::send_ping`] and PONGs reported back), or
//! buffer application data for paused subchannels (flow control is the driver's).
//!
//! Records that are not queued (ACK, PING, PONG, KCM) are produced only while a connection is in
//! use; otherwise they are dropped, as in Python.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use thiserror::Error;

use super::Role;
use super::l3::Record;

/// Misuse of the L4 API by the local application (never caused by the peer).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum L4Error {
    /// 2^32 records were sent in this direction; the wire's 4-byte seqnum cannot go further.
    /// End the Dilation session and start a new wormhole.
    #[error("Dilation sequence numbers exhausted (2^32 records sent)")]
    SeqnumExhausted,
    /// No more subchannel ids of our parity. End the Dilation session.
    #[error("Dilation subchannel ids exhausted")]
    ScidExhausted,
    /// The subchannel id is already open. Allocate ids with [`Reliability::allocate_scid`].
    #[error("subchannel {0} is already open")]
    AlreadyOpen(u32),
    /// The subchannel is not open (never opened, or fully closed). Open it first.
    #[error("subchannel {0} is not open")]
    NotOpen(u32),
    /// We already sent CLOSE on this subchannel; nothing more may be sent on it.
    #[error("subchannel {0} is closed for sending")]
    ClosedForSending(u32),
    /// Subchannel id 0 is reserved.
    #[error("subchannel id 0 is reserved")]
    ReservedScid,
}

/// Something for the application, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The peer opened subchannel `scid` for `subprotocol`.
    Open {
        /// Subchannel id.
        scid: u32,
        /// Subprotocol name.
        subprotocol: String,
    },
    /// Bytes on subchannel `scid`.
    Data {
        /// Subchannel id.
        scid: u32,
        /// The bytes.
        data: bytes::Bytes,
    },
    /// The peer will send nothing more on `scid` (reply with [`Reliability::send_close`] once
    /// done writing).
    Close {
        /// Subchannel id.
        scid: u32,
    },
}

/// Why an inbound record had no effect (for logging; none of these is fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ignored {
    /// Seqnum ≤ the watermark: already delivered (a re-send after reconnection). It was ACKed.
    Old {
        /// The record's seqnum.
        seqnum: u32,
    },
    /// OPEN for a subchannel that is already open.
    DuplicateOpen {
        /// Subchannel id.
        scid: u32,
    },
    /// DATA or CLOSE for a subchannel that is not open (or that the peer already closed).
    UnknownSubchannel {
        /// Subchannel id.
        scid: u32,
    },
    /// A KCM after the connection was already chosen.
    UnexpectedKcm,
    /// An OPEN for the reserved subchannel 0.
    ReservedScid,
}

/// What [`Reliability::receive`] asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Encrypt and send this record on the current connection.
    Send(Record),
    /// Hand this to the application.
    Deliver(Delivery),
    /// The peer answered a PING (the keepalive driver matches the id).
    PongReceived([u8; 4]),
    /// The record changed nothing; worth a log line.
    Ignored(Ignored),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SubchannelState {
    we_closed: bool,
    they_closed: bool,
}

/// The L4 state of one side of a Dilation session; it outlives the L3 connections.
#[derive(Debug, Clone)]
pub struct Reliability {
    role: Role,
    connected: bool,
    /// Next outbound seqnum; `None` once 2^32 have been used.
    next_seqnum: Option<u32>,
    unacked: VecDeque<Record>,
    /// Sum of the encoded lengths of `unacked` (for the endpoint's send-queue bound).
    unacked_bytes: usize,
    /// Highest inbound seqnum seen (`None` is Python's −1).
    inbound_watermark: Option<u32>,
    next_scid: Option<u32>,
    subchannels: BTreeMap<u32, SubchannelState>,
}

fn seqnum_of(r: &Record) -> Option<u32> {
    match r {
        Record::Open { seqnum, .. } | Record::Data { seqnum, .. } | Record::Close { seqnum, .. } => {
            Some(*seqnum)
        }
        _ => None,
    }
}

impl Reliability {
    /// Fresh state for `role`, with no connection.
    pub fn new(role: Role) -> Self {
        Reliability {
            role,
            connected: false,
            next_seqnum: Some(0),
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            inbound_watermark: None,
            next_scid: Some(match role {
                Role::Leader => 1,
                Role::Follower => 2,
            }),
            subchannels: BTreeMap::new(),
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True while an L3 connection is in use.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Records sent but not yet acknowledged, oldest first.
    pub fn unacked(&self) -> impl ExactSizeIterator<Item = &Record> {
        self.unacked.iter()
    }

    /// The encoded size of every record in [`Reliability::unacked`], in bytes.
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// The highest inbound seqnum accepted so far.
    pub fn inbound_watermark(&self) -> Option<u32> {
        self.inbound_watermark
    }

    /// True if `scid` is open (in either direction).
    pub fn is_open(&self, scid: u32) -> bool {
        self.subchannels.contains_key(&scid)
    }

    /// A new L3 connection is in use (its KCMs were exchanged): returns every unacked record, in
    /// order, to send on it before anything else.
    pub fn connection_made(&mut self) -> Vec<Record> {
        self.connected = true;
        self.unacked.iter().cloned().collect()
    }

    /// The L3 connection is gone. Queued records stay queued for the next one.
    pub fn connection_lost(&mut self) {
        self.connected = false;
    }

    /// The next subchannel id of our parity (Leader 1, 3, 5…; Follower 2, 4, 6…), skipping any
    /// the peer happens to have opened.
    pub fn allocate_scid(&mut self) -> Result<u32, L4Error> {
        loop {
            let scid = self.next_scid.ok_or(L4Error::ScidExhausted)?;
            self.next_scid = scid.checked_add(2);
            if !self.subchannels.contains_key(&scid) {
                return Ok(scid);
            }
        }
    }

    fn queue(&mut self, make: impl FnOnce(u32) -> Record) -> Result<Option<Record>, L4Error> {
        let seqnum = self.next_seqnum.ok_or(L4Error::SeqnumExhausted)?;
        self.next_seqnum = seqnum.checked_add(1);
        let record = make(seqnum);
        self.unacked_bytes += record.encoded_len();
        self.unacked.push_back(record.clone());
        Ok(self.connected.then_some(record))
    }

    /// Opens `scid` for `subprotocol`. Returns the OPEN to send now if connected (it is queued
    /// either way).
    pub fn send_open(&mut self, scid: u32, subprotocol: &str) -> Result<Option<Record>, L4Error> {
        if scid == 0 {
            return Err(L4Error::ReservedScid);
        }
        if self.subchannels.contains_key(&scid) {
            return Err(L4Error::AlreadyOpen(scid));
        }
        let out = self.queue(|seqnum| Record::Open {
            scid,
            seqnum,
            subprotocol: subprotocol.to_owned(),
        })?;
        self.subchannels.insert(scid, SubchannelState::default());
        Ok(out)
    }

    fn check_sendable(&self, scid: u32) -> Result<(), L4Error> {
        match self.subchannels.get(&scid) {
            None => Err(L4Error::NotOpen(scid)),
            Some(s) if s.we_closed => Err(L4Error::ClosedForSending(scid)),
            Some(_) => Ok(()),
        }
    }

    /// Sends `data` on `scid` as one DATA record (queued; returned if connected).
    pub fn send_data(&mut self, scid: u32, data: impl Into<Bytes>) -> Result<Option<Record>, L4Error> {
        self.check_sendable(scid)?;
        self.queue(|seqnum| Record::Data {
            scid,
            seqnum,
            data: data.into(),
        })
    }

    /// Sends CLOSE on `scid` ("nothing more from us"). The subchannel is forgotten once the
    /// peer's CLOSE has also arrived; DATA arriving meanwhile is still delivered.
    pub fn send_close(&mut self, scid: u32) -> Result<Option<Record>, L4Error> {
        self.check_sendable(scid)?;
        let out = self.queue(|seqnum| Record::Close { scid, seqnum })?;
        if let Some(s) = self.subchannels.get_mut(&scid) {
            s.we_closed = true;
            if s.they_closed {
                self.subchannels.remove(&scid);
            }
        }
        Ok(out)
    }

    /// A PING to send now, or `None` without a connection (PINGs are never queued).
    pub fn send_ping(&self, ping_id: [u8; 4]) -> Option<Record> {
        self.connected.then_some(Record::Ping { ping_id })
    }

    /// Handles one record received (and decrypted) on the current connection.
    pub fn receive(&mut self, record: Record) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(seqnum) = seqnum_of(&record) {
            if self.connected {
                out.push(Action::Send(Record::Ack { resp_seqnum: seqnum }));
            }
            if self.inbound_watermark.is_some_and(|w| seqnum <= w) {
                out.push(Action::Ignored(Ignored::Old { seqnum }));
                return out;
            }
            self.inbound_watermark = Some(seqnum);
        }
        match record {
            Record::Open {
                scid, subprotocol, ..
            } => {
                if scid == 0 {
                    out.push(Action::Ignored(Ignored::ReservedScid));
                } else if let std::collections::btree_map::Entry::Vacant(slot) = self.subchannels.entry(scid)
                {
                    slot.insert(SubchannelState::default());
                    out.push(Action::Deliver(Delivery::Open { scid, subprotocol }));
                } else {
                    out.push(Action::Ignored(Ignored::DuplicateOpen { scid }));
                }
            }
            Record::Data { scid, data, .. } => match self.subchannels.get(&scid) {
                Some(s) if !s.they_closed => {
                    out.push(Action::Deliver(Delivery::Data { scid, data }));
                }
                _ => out.push(Action::Ignored(Ignored::UnknownSubchannel { scid })),
            },
            Record::Close { scid, .. } => match self.subchannels.get_mut(&scid) {
                Some(s) if !s.they_closed => {
                    s.they_closed = true;
                    if s.we_closed {
                        self.subchannels.remove(&scid);
                    }
                    out.push(Action::Deliver(Delivery::Close { scid }));
                }
                _ => out.push(Action::Ignored(Ignored::UnknownSubchannel { scid })),
            },
            Record::Ack { resp_seqnum } => {
                while self
                    .unacked
                    .front()
                    .and_then(seqnum_of)
                    .is_some_and(|s| s <= resp_seqnum)
                {
                    if let Some(r) = self.unacked.pop_front() {
                        self.unacked_bytes -= r.encoded_len();
                    }
                }
            }
            Record::Ping { ping_id } => {
                if self.connected {
                    out.push(Action::Send(Record::Pong { ping_id }));
                }
            }
            Record::Pong { ping_id } => out.push(Action::PongReceived(ping_id)),
            Record::Kcm => out.push(Action::Ignored(Ignored::UnexpectedKcm)),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dilation::l3::SUBCHANNEL_HEADER_LEN;

    fn sends(actions: &[Action]) -> Vec<Record> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn deliveries(actions: &[Action]) -> Vec<Delivery> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn scid_allocation_by_role() {
        let mut l = Reliability::new(Role::Leader);
        let mut f = Reliability::new(Role::Follower);
        assert_eq!(
            (0..3).map(|_| l.allocate_scid().unwrap()).collect::<Vec<_>>(),
            vec![1, 3, 5]
        );
        assert_eq!(
            (0..3).map(|_| f.allocate_scid().unwrap()).collect::<Vec<_>>(),
            vec![2, 4, 6]
        );
        // An id the peer opened (against the parity rule) is skipped.
        f.connection_made();
        f.receive(Record::Open {
            scid: 8,
            seqnum: 0,
            subprotocol: "x".into(),
        });
        assert_eq!(f.allocate_scid().unwrap(), 10);
        assert_eq!(f.send_open(0, "x"), Err(L4Error::ReservedScid));
        let mut near_end = Reliability::new(Role::Leader);
        near_end.next_scid = Some(u32::MAX);
        assert_eq!(near_end.allocate_scid(), Ok(u32::MAX));
        assert_eq!(near_end.allocate_scid(), Err(L4Error::ScidExhausted));
    }

    #[test]
    fn seqnums_count_from_zero_across_subchannels() {
        let mut l = Reliability::new(Role::Leader);
        l.connection_made();
        let a = l.allocate_scid().unwrap();
        let b = l.allocate_scid().unwrap();
        let recs = [
            l.send_open(a, "p").unwrap().unwrap(),
            l.send_open(b, "q").unwrap().unwrap(),
            l.send_data(a, b"1".to_vec()).unwrap().unwrap(),
            l.send_close(b).unwrap().unwrap(),
        ];
        let seqs: Vec<u32> = recs.iter().filter_map(seqnum_of).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!(l.unacked().len(), 4);
    }

    #[test]
    fn ack_retires_everything_up_to_n() {
        let mut l = Reliability::new(Role::Leader);
        l.connection_made();
        l.send_open(1, "p").unwrap();
        for i in 0..5u8 {
            l.send_data(1, vec![i]).unwrap();
        }
        assert!(l.receive(Record::Ack { resp_seqnum: 2 }).is_empty());
        let left: Vec<u32> = l.unacked().filter_map(seqnum_of).collect();
        assert_eq!(left, vec![3, 4, 5]);
        // A stale ACK changes nothing; a later one retires the rest.
        l.receive(Record::Ack { resp_seqnum: 1 });
        assert_eq!(l.unacked().len(), 3);
        assert_eq!(l.unacked_bytes(), 3 * (SUBCHANNEL_HEADER_LEN + 1));
        l.receive(Record::Ack { resp_seqnum: 5 });
        assert_eq!(l.unacked().len(), 0);
        assert_eq!(l.unacked_bytes(), 0);
    }

    #[test]
    fn offline_sends_are_queued_and_resent_in_order() {
        let mut l = Reliability::new(Role::Leader);
        assert_eq!(l.send_open(1, "p").unwrap(), None);
        assert_eq!(l.send_data(1, b"a".to_vec()).unwrap(), None);
        assert_eq!(l.send_ping([0; 4]), None);
        let resent = l.connection_made();
        assert_eq!(
            resent.iter().filter_map(seqnum_of).collect::<Vec<_>>(),
            vec![0, 1]
        );
        // Lost again before any ACK: the same queue goes out on the next connection.
        l.connection_lost();
        assert_eq!(l.connection_made(), resent);
    }

    #[test]
    fn duplicates_are_acked_but_not_redelivered() {
        let mut f = Reliability::new(Role::Follower);
        f.connection_made();
        let open = Record::Open {
            scid: 1,
            seqnum: 0,
            subprotocol: "p".into(),
        };
        let data = Record::Data {
            scid: 1,
            seqnum: 1,
            data: b"x".to_vec().into(),
        };
        let a = f.receive(open.clone());
        assert_eq!(sends(&a), vec![Record::Ack { resp_seqnum: 0 }]);
        assert_eq!(deliveries(&a).len(), 1);
        f.receive(data.clone());
        for old in [open, data] {
            let a = f.receive(old);
            assert_eq!(sends(&a).len(), 1, "old records are still ACKed");
            assert!(deliveries(&a).is_empty());
            assert!(matches!(a.last(), Some(Action::Ignored(Ignored::Old { .. }))));
        }
        assert_eq!(f.inbound_watermark(), Some(1));
    }

    #[test]
    fn subchannel_rules() {
        let mut f = Reliability::new(Role::Follower);
        f.connection_made();
        let a = f.receive(Record::Data {
            scid: 5,
            seqnum: 0,
            data: b"?".to_vec().into(),
        });
        assert_eq!(
            a.last(),
            Some(&Action::Ignored(Ignored::UnknownSubchannel { scid: 5 }))
        );
        f.receive(Record::Open {
            scid: 1,
            seqnum: 1,
            subprotocol: "p".into(),
        });
        let a = f.receive(Record::Open {
            scid: 1,
            seqnum: 2,
            subprotocol: "p".into(),
        });
        assert_eq!(
            a.last(),
            Some(&Action::Ignored(Ignored::DuplicateOpen { scid: 1 }))
        );
        // We close first; DATA still arrives and is delivered; their CLOSE ends it.
        f.send_close(1).unwrap();
        assert_eq!(f.send_data(1, vec![1]), Err(L4Error::ClosedForSending(1)));
        let a = f.receive(Record::Data {
            scid: 1,
            seqnum: 3,
            data: b"late".to_vec().into(),
        });
        assert_eq!(
            deliveries(&a),
            vec![Delivery::Data {
                scid: 1,
                data: b"late".to_vec().into()
            }]
        );
        let a = f.receive(Record::Close { scid: 1, seqnum: 4 });
        assert_eq!(deliveries(&a), vec![Delivery::Close { scid: 1 }]);
        assert!(!f.is_open(1));
        assert_eq!(f.send_data(1, vec![1]), Err(L4Error::NotOpen(1)));
        // PING is answered, PONG reported, KCM ignored.
        assert_eq!(
            f.receive(Record::Ping { ping_id: *b"abcd" }),
            vec![Action::Send(Record::Pong { ping_id: *b"abcd" })]
        );
        assert_eq!(
            f.receive(Record::Pong { ping_id: *b"wxyz" }),
            vec![Action::PongReceived(*b"wxyz")]
        );
        assert_eq!(
            f.receive(Record::Kcm),
            vec![Action::Ignored(Ignored::UnexpectedKcm)]
        );
    }

    #[test]
    fn seqnum_exhaustion_is_an_error() {
        let mut l = Reliability::new(Role::Leader);
        l.next_seqnum = Some(u32::MAX);
        l.send_open(1, "p").unwrap();
        assert_eq!(l.send_data(1, vec![]), Err(L4Error::SeqnumExhausted));
    }

    /// A tiny deterministic PRNG (xorshift) for the lossy-link simulation.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Two sides exchange records over connections that die at random points, dropping
    /// whatever was in flight (TCP loss), and reconnect. Each side's application data must
    /// arrive exactly once and in order, and every queue must drain.
    #[test]
    fn lossy_reconnecting_link_delivers_exactly_once_in_order() {
        let (mut reconnects, mut duplicates) = (0u32, 0u32);
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut sides = [Reliability::new(Role::Leader), Reliability::new(Role::Follower)];
            let scids = [
                sides[0].allocate_scid().unwrap(),
                sides[1].allocate_scid().unwrap(),
            ];
            let total = 30u32;
            let mut wrote = [0u32; 2];
            let mut got: [Vec<Delivery>; 2] = [Vec::new(), Vec::new()];
            // In-flight records, per direction (index = receiver).
            let mut wire: [VecDeque<Record>; 2] = [VecDeque::new(), VecDeque::new()];
            let mut connected = false;
            for _step in 0..20_000 {
                if !connected {
                    connected = true;
                    for (i, s) in sides.iter_mut().enumerate() {
                        wire[1 - i].extend(s.connection_made());
                    }
                }
                match rng.next(40) {
                    0 => {
                        // The connection dies; what was in flight is lost.
                        connected = false;
                        reconnects += 1;
                        wire[0].clear();
                        wire[1].clear();
                        sides[0].connection_lost();
                        sides[1].connection_lost();
                    }
                    1..=12 => {
                        let i = rng.next(2);
                        let n = wrote[i];
                        let out = if n == 0 {
                            sides[i].send_open(scids[i], "sim").unwrap()
                        } else if n <= total {
                            sides[i].send_data(scids[i], n.to_be_bytes().to_vec()).unwrap()
                        } else {
                            None
                        };
                        if n <= total {
                            wrote[i] += 1;
                        }
                        wire[1 - i].extend(out);
                    }
                    _ => {
                        let i = rng.next(2);
                        if let Some(r) = wire[i].pop_front() {
                            for a in sides[i].receive(r) {
                                match a {
                                    Action::Send(r) => wire[1 - i].push_back(r),
                                    Action::Deliver(d) => got[i].push(d),
                                    Action::Ignored(Ignored::Old { .. }) => duplicates += 1,
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                if wrote == [total + 1; 2]
                    && sides.iter().all(|s| s.unacked().len() == 0)
                    && wire.iter().all(VecDeque::is_empty)
                {
                    break;
                }
            }
            for i in 0..2 {
                let peer = 1 - i;
                let mut want = vec![Delivery::Open {
                    scid: scids[peer],
                    subprotocol: "sim".into(),
                }];
                want.extend((1..=total).map(|n| Delivery::Data {
                    scid: scids[peer],
                    data: n.to_be_bytes().to_vec().into(),
                }));
                assert_eq!(got[i], want, "seed {seed}, side {i}");
                assert_eq!(sides[i].unacked().len(), 0, "seed {seed}");
            }
        }
        // The simulation really lost connections and really re-sent delivered records.
        assert!(
            reconnects > 1000 && duplicates > 1000,
            "{reconnects} {duplicates}"
        );
    }
}
