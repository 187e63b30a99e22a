//! One Dilation L2 connection, sans-IO (docs/protocol.md §6.4): optional relay handshake, the role
//! prefixes, the Noise handshake, the KCM exchange and then encrypted L3 records.
//!
//! Owns: the order of things on one TCP stream — a relay connection first writes
//! `please relay <hex(HKDF(dilation PSK, "transit_relay_token"))> for side <side>\n` and waits
//! for `ok\n`; then both write their prefix; the Leader writes Noise frame 1 once the
//! Follower's prefix has arrived; the Follower answers with frame 2 and its KCM; the first
//! record the Leader decrypts must be that KCM. Bytes in, bytes and events out.
//!
//! Must not: open or race sockets, pick the winning connection (the driver picks the first
//! that reports [`ConnEvent::KcmReceived`] and, as Leader, sends its own KCM on it with
//! [`Connection::send_record`]), read clocks, or track seqnums (that is [`super::l4`]).

use bytes::{Buf, BytesMut};
use thiserror::Error;

use super::Role;
use super::frame::{
    ConnectionReader, FRAME_HEADER_LEN, FrameError, Inbound, encode_frame, frame_header, prefix_for,
};
use super::l3::{Record, RecordError};
use super::noise::{LeaderHandshake, NoiseError, NoiseTransport, encrypted_len, respond};
use crate::key::KeyError;
use crate::key::derive::hkdf_sha256;
use crate::transit::handshake::{Expect, ExpectError, ExpectProgress, RELAY_OK};

/// HKDF purpose of the relay token of a Dilation connection.
pub const RELAY_TOKEN_PURPOSE: &[u8] = b"transit_relay_token";

/// The line a Dilation connection through a transit relay writes first:
/// `please relay <64 hex> for side <side>\n`, with the token derived from the Dilation PSK
/// (not a transit key).
pub fn relay_handshake(psk: &[u8; 32], side: &str) -> Result<Vec<u8>, KeyError> {
    let mut token = [0u8; 32];
    hkdf_sha256(b"", psk, RELAY_TOKEN_PURPOSE, &mut token)?;
    Ok(format!("please relay {} for side {side}\n", hex::encode(token)).into_bytes())
}

/// Why a connection must be dropped. Other connections (and later generations) may still
/// succeed; none of these is fatal to the Dilation session.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The relay did not answer `ok\n`. Try other hints.
    #[error("transit relay refused: {0}")]
    RelayNotOk(ExpectError),
    /// Bad prefix or frame. The peer is not a Dilation peer in the expected role.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The Noise handshake or a decryption failed (a different key, or corruption).
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// A decrypted record did not parse. The peer is broken or newer.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The first record after the handshake was not KCM.
    #[error("expected KCM as the first record, got tag 0x{0:02x}")]
    ExpectedKcm(u8),
    /// A record was sent before the connection was confirmed (a driver bug).
    #[error("cannot send records before the KCM exchange")]
    NotReady,
    /// The connection already failed; drop it.
    #[error("connection already failed")]
    Failed,
}

/// What received bytes produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// The peer's KCM arrived: this connection is a candidate (Follower: it was chosen).
    KcmReceived,
    /// An L3 record (after the KCM).
    Record(Record),
}

/// Bytes to write and events, from one call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Write these to the socket, in order.
    pub send: Vec<u8>,
    /// What arrived, in order.
    pub events: Vec<ConnEvent>,
}

enum Stage {
    RelayOk(Expect),
    Prefix,
    Handshake(Option<Box<LeaderHandshake>>),
    Kcm(NoiseTransport),
    Open(NoiseTransport),
    Failed,
}

/// Smallest record whose DATA payload is handed on as a slice of the buffer it was read into
/// ([`Connection::receive_buf`]); smaller payloads are copied. With a reader's buffers of
/// 256 KiB, the memory that payloads an application holds keep alive is then at most about
/// five times their own size.
pub const SHARE_MIN: usize = 48 << 10;

/// One connection attempt.
pub struct Connection {
    role: Role,
    psk: [u8; 32],
    reader: ConnectionReader,
    stage: Stage,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::RelayOk(_) => "relay-ok",
            Stage::Prefix => "prefix",
            Stage::Handshake(_) => "handshake",
            Stage::Kcm(_) => "kcm",
            Stage::Open(_) => "open",
            Stage::Failed => "failed",
        };
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A new connection in `role` keyed by the Dilation `psk`; `relay` is the relay handshake
    /// line (see [`relay_handshake`]) for a relay connection. Returns the bytes to write once
    /// the socket is up.
    pub fn new(
        role: Role,
        psk: [u8; 32],
        relay: Option<Vec<u8>>,
        max_frame_len: usize,
    ) -> (Connection, Vec<u8>) {
        let (stage, first) = match relay {
            Some(line) => (Stage::RelayOk(Expect::new("relay ok", RELAY_OK)), line),
            None => (Stage::Prefix, prefix_for(role).to_vec()),
        };
        let conn = Connection {
            role,
            psk,
            reader: ConnectionReader::new(role, max_frame_len),
            stage,
        };
        (conn, first)
    }

    /// True once the KCM exchange (as far as this side sees it) is done.
    pub fn is_open(&self) -> bool {
        matches!(self.stage, Stage::Open(_))
    }

    /// Feeds bytes read from the socket. On error the connection is dead; drop it.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Output, ConnectionError> {
        self.receive_buf(BytesMut::from(bytes))
    }

    /// [`Self::receive`] of a buffer we own: frames are decrypted where they lie in it, and
    /// DATA payloads stay there.
    pub fn receive_buf(&mut self, bytes: BytesMut) -> Result<Output, ConnectionError> {
        let result = self.receive_inner(bytes);
        if result.is_err() {
            self.stage = Stage::Failed;
        }
        result
    }

    fn receive_inner(&mut self, mut bytes: BytesMut) -> Result<Output, ConnectionError> {
        let mut out = Output::default();
        if let Stage::RelayOk(expect) = &mut self.stage {
            match expect.feed(&bytes).map_err(ConnectionError::RelayNotOk)? {
                ExpectProgress::NeedMore => return Ok(out),
                ExpectProgress::Done { consumed } => {
                    bytes.advance(consumed.min(bytes.len()));
                    out.send.extend_from_slice(prefix_for(self.role));
                    self.stage = Stage::Prefix;
                }
            }
        }
        if matches!(self.stage, Stage::Failed) {
            return Err(ConnectionError::Failed);
        }
        for inbound in self.reader.feed_buf(bytes)? {
            match inbound {
                Inbound::PrefixReceived => {
                    let leader = match self.role {
                        Role::Leader => {
                            let (hs, frame1) = LeaderHandshake::start(&self.psk)?;
                            out.send.extend(encode_frame(&frame1)?);
                            Some(Box::new(hs))
                        }
                        Role::Follower => None,
                    };
                    self.stage = Stage::Handshake(leader);
                }
                Inbound::Frame(frame) => self.frame(frame, &mut out)?,
            }
        }
        Ok(out)
    }

    fn frame(&mut self, mut frame: BytesMut, out: &mut Output) -> Result<(), ConnectionError> {
        match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Handshake(Some(hs)) => {
                self.stage = Stage::Kcm(hs.finish(&frame)?);
            }
            Stage::Handshake(None) => {
                let (frame2, mut noise) = respond(&self.psk, &frame)?;
                out.send.extend(encode_frame(&frame2)?);
                out.send.extend(seal(&mut noise, &Record::Kcm, Vec::new())?);
                self.stage = Stage::Kcm(noise);
            }
            Stage::Kcm(mut noise) => {
                let len = noise.decrypt_in_place(&mut frame)?;
                let record = Record::parse(frame.get(..len).unwrap_or_default())?;
                if record != Record::Kcm {
                    return Err(ConnectionError::ExpectedKcm(record.tag()));
                }
                out.events.push(ConnEvent::KcmReceived);
                self.stage = Stage::Open(noise);
            }
            Stage::Open(mut noise) => {
                let len = noise.decrypt_in_place(&mut frame)?;
                frame.truncate(len);
                // A large record's payload stays where it was read; a small one is copied out,
                // so that a few bytes the application holds on to never keep a whole read
                // buffer alive (a peer could otherwise pin one per byte it sends).
                let record = if len >= SHARE_MIN {
                    Record::parse_bytes(frame.freeze())?
                } else {
                    Record::parse(&frame)?
                };
                out.events.push(ConnEvent::Record(record));
                self.stage = Stage::Open(noise);
            }
            // The reader yields frames only after the prefix, so these cannot see one.
            Stage::RelayOk(_) | Stage::Prefix | Stage::Failed => {
                return Err(ConnectionError::Failed);
            }
        }
        Ok(())
    }

    /// Encrypts and frames `record` for writing. Only after the peer's KCM arrived (the
    /// Leader's own KCM is sent this way on the chosen connection).
    pub fn send_record(&mut self, record: &Record) -> Result<Vec<u8>, ConnectionError> {
        self.send_record_in(record, Vec::new())
    }

    /// [`Connection::send_record`] into `buf` (emptied first; replaced if it has less room than
    /// [`sealed_len`]), a buffer from a [`super::frame_pool::FramePool`] say.
    pub fn send_record_in(&mut self, record: &Record, buf: Vec<u8>) -> Result<Vec<u8>, ConnectionError> {
        match &mut self.stage {
            Stage::Open(noise) => seal(noise, record, buf),
            Stage::Failed => Err(ConnectionError::Failed),
            _ => Err(ConnectionError::NotReady),
        }
    }
}

/// How many bytes `record`'s wire frame takes: what a buffer for [`Connection::send_record_in`]
/// needs room for.
pub fn sealed_len(record: &Record) -> usize {
    FRAME_HEADER_LEN + encrypted_len(record.encoded_len())
}

/// The wire frame of `record`, in `buf`: encoded once behind room for the frame header, sealed
/// in place, and the header written in front.
fn seal(noise: &mut NoiseTransport, record: &Record, mut buf: Vec<u8>) -> Result<Vec<u8>, ConnectionError> {
    let need = sealed_len(record);
    if buf.capacity() < need {
        // Not `reserve`: growing would have the allocator copy the old contents for nothing.
        buf = Vec::with_capacity(need);
    }
    buf.clear();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    record.encode_into(&mut buf);
    noise.encrypt_in_place(&mut buf, FRAME_HEADER_LEN)?;
    let header = frame_header(buf.len() - FRAME_HEADER_LEN)?;
    if let Some(h) = buf.get_mut(..FRAME_HEADER_LEN) {
        h.copy_from_slice(&header);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dilation::frame::{DEFAULT_MAX_FRAME_LEN, FOLLOWER_PREFIX, LEADER_PREFIX};
    use crate::dilation::noise::dilation_psk;

    fn psk(k: &[u8]) -> [u8; 32] {
        dilation_psk(k).unwrap()
    }

    /// Pumps bytes between two connections in `chunk`-sized pieces until quiet.
    fn pump(
        a: &mut Connection,
        b: &mut Connection,
        mut to_b: Vec<u8>,
        mut to_a: Vec<u8>,
        chunk: usize,
    ) -> (Vec<ConnEvent>, Vec<ConnEvent>) {
        let (mut ev_a, mut ev_b) = (Vec::new(), Vec::new());
        while !to_a.is_empty() || !to_b.is_empty() {
            let n = chunk.min(to_b.len());
            let piece: Vec<u8> = to_b.drain(..n).collect();
            let o = b.receive(&piece).unwrap();
            to_a.extend(o.send);
            ev_b.extend(o.events);
            let n = chunk.min(to_a.len());
            let piece: Vec<u8> = to_a.drain(..n).collect();
            let o = a.receive(&piece).unwrap();
            to_b.extend(o.send);
            ev_a.extend(o.events);
        }
        (ev_a, ev_b)
    }

    #[test]
    fn relay_line_layout() {
        // Known answer from Python 0.24.0's `build_sided_relay_handshake(dilation_key, side)`
        // with dilation_key = derive_key(b"shared", b"dilation-v1").
        let line = relay_handshake(&psk(b"shared"), "0123456789abcdef").unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "please relay 19e51b4674fa8387d197317216b1189dfa033e8be5d77e965e23cb3cef646d14 \
             for side 0123456789abcdef\n"
        );
    }

    #[test]
    fn leader_and_follower_connect_over_any_chunking() {
        for chunk in [1, 3, 17, 48, 1000] {
            let key = psk(b"shared");
            let (mut l, l0) = Connection::new(Role::Leader, key, None, DEFAULT_MAX_FRAME_LEN);
            let (mut f, f0) = Connection::new(Role::Follower, key, None, DEFAULT_MAX_FRAME_LEN);
            assert_eq!(l0, LEADER_PREFIX);
            assert_eq!(f0, FOLLOWER_PREFIX);
            let (ev_l, ev_f) = pump(&mut l, &mut f, l0, f0, chunk);
            assert_eq!(ev_l, vec![ConnEvent::KcmReceived], "chunk {chunk}");
            assert!(ev_f.is_empty());
            // The Follower may not send records before the Leader's KCM.
            assert!(matches!(
                f.send_record(&Record::Kcm),
                Err(ConnectionError::NotReady)
            ));
            let kcm = l.send_record(&Record::Kcm).unwrap();
            let ping = Record::Ping { ping_id: *b"ping" };
            let mut wire = kcm;
            wire.extend(l.send_record(&ping).unwrap());
            let (_, ev_f) = pump(&mut l, &mut f, wire, Vec::new(), chunk);
            assert_eq!(ev_f, vec![ConnEvent::KcmReceived, ConnEvent::Record(ping)]);
            assert!(l.is_open() && f.is_open());
            let data = Record::Data {
                scid: 2,
                seqnum: 0,
                data: vec![3; 70_000].into(),
            };
            let wire = f.send_record(&data).unwrap();
            let (ev_l, _) = pump(&mut l, &mut f, Vec::new(), wire, chunk);
            assert_eq!(ev_l, vec![ConnEvent::Record(data)]);
        }
    }

    /// A Leader and a Follower past the handshake and both KCMs.
    fn open_pair() -> (Connection, Connection) {
        let key = psk(b"shared");
        let (mut l, l0) = Connection::new(Role::Leader, key, None, DEFAULT_MAX_FRAME_LEN);
        let (mut f, f0) = Connection::new(Role::Follower, key, None, DEFAULT_MAX_FRAME_LEN);
        pump(&mut l, &mut f, l0, f0, 1000);
        let kcm = l.send_record(&Record::Kcm).unwrap();
        pump(&mut l, &mut f, kcm, Vec::new(), 1000);
        (l, f)
    }

    #[test]
    fn a_record_sealed_into_a_used_buffer_arrives_whole() {
        let (mut l, mut f) = open_pair();
        for (size, room) in [(70_000, 200_000), (70_000, 10), (5, 100_000)] {
            let data = Record::Data {
                scid: 2,
                seqnum: 0,
                data: vec![6; size].into(),
            };
            // A buffer that held an older frame: its bytes must not leak into the new one.
            let mut used = Vec::with_capacity(room);
            used.extend_from_slice(&vec![0xee; room.min(1000)]);
            let wire = f.send_record_in(&data, used).unwrap();
            assert_eq!(wire.len(), sealed_len(&data));
            let (ev_l, _) = pump(&mut l, &mut f, Vec::new(), wire, 1000);
            assert_eq!(ev_l, vec![ConnEvent::Record(data)], "size {size}, room {room}");
        }
    }

    #[test]
    fn only_large_payloads_stay_in_the_read_buffer() {
        let (mut l, mut f) = open_pair();
        for (size, shared) in [(10, false), (SHARE_MIN, true), (70_000, true)] {
            let data = Record::Data {
                scid: 2,
                seqnum: 0,
                data: vec![5; size].into(),
            };
            let wire = BytesMut::from(&f.send_record(&data).unwrap()[..]);
            let range = wire.as_ptr_range();
            let out = l.receive_buf(wire).unwrap();
            let [ConnEvent::Record(Record::Data { data: got, .. })] = &out.events[..] else {
                panic!("expected one DATA record: {:?}", out.events);
            };
            assert_eq!(got.len(), size);
            assert_eq!(range.contains(&got.as_ptr()), shared, "payload of {size} bytes");
        }
    }

    #[test]
    fn relay_connection_waits_for_ok_before_its_prefix() {
        let key = psk(b"shared");
        let line = relay_handshake(&key, "0011223344556677").unwrap();
        let (mut l, first) = Connection::new(Role::Leader, key, Some(line.clone()), DEFAULT_MAX_FRAME_LEN);
        assert_eq!(first, line);
        assert_eq!(l.receive(b"o").unwrap(), Output::default());
        let mut rest = b"k\n".to_vec();
        rest.extend_from_slice(FOLLOWER_PREFIX);
        let o = l.receive(&rest).unwrap();
        // Our prefix, then frame 1 (the Follower's prefix arrived in the same read).
        assert!(o.send.starts_with(LEADER_PREFIX));
        assert_eq!(o.send.len(), LEADER_PREFIX.len() + 4 + 48);

        let (mut l, _) = Connection::new(Role::Leader, key, Some(line), DEFAULT_MAX_FRAME_LEN);
        assert!(matches!(l.receive(b"no\n"), Err(ConnectionError::RelayNotOk(_))));
        assert!(matches!(l.receive(b"x"), Err(ConnectionError::Failed)));
    }

    #[test]
    fn wrong_key_and_non_kcm_first_record_fail() {
        let (mut l, l0) = Connection::new(Role::Leader, psk(b"a"), None, 1024);
        let (mut f, f0) = Connection::new(Role::Follower, psk(b"b"), None, 1024);
        let o = l.receive(&f0).unwrap();
        f.receive(&l0).unwrap();
        assert!(matches!(
            f.receive(&o.send),
            Err(ConnectionError::Noise(NoiseError::HandshakeAuth))
        ));

        // A Follower whose first record is not KCM.
        let key = psk(b"k");
        let (mut l, l0) = Connection::new(Role::Leader, key, None, 1024);
        let frame1 = l.receive(FOLLOWER_PREFIX).unwrap().send;
        assert_eq!(l0, LEADER_PREFIX);
        let (frame2, mut noise) = respond(&key, frame1.get(4..).unwrap()).unwrap();
        let mut wire = encode_frame(&frame2).unwrap();
        let ping = noise.encrypt(&Record::Ping { ping_id: [0; 4] }.encode()).unwrap();
        wire.extend(encode_frame(&ping).unwrap());
        assert!(matches!(
            l.receive(&wire),
            Err(ConnectionError::ExpectedKcm(0x01))
        ));
    }
}
