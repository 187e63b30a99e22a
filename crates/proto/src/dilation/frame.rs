//! L2 of Dilation (docs/protocol.md §6.4): the role prefixes and `u32 BE length ‖ payload` frames.
//!
//! Owns: the two fixed prefixes each side writes first (`Magic-Wormhole Dilation Handshake v1
//! Leader\n\n` / `… Follower\n\n`), checking the peer's prefix however the bytes are split,
//! and splitting the byte stream after it into frames with a size cap that is checked on the
//! 4-byte header, before any payload is buffered (a 4 GiB length is an error, not an allocation).
//!
//! Must not: touch sockets, decrypt (frames here are Noise ciphertext, see [`super::noise`]),
//! parse records or speak the transit-relay handshake (a relay connection sends
//! `please relay …` and waits for `ok\n` before the prefix; that belongs to the driver).
//!
//! The prefix check reuses [`crate::transit::handshake::Expect`]: the first wrong byte fails,
//! where Python waits for a newline or the full length before complaining. The result is the
//! same (the connection is dropped), only sooner.

use bytes::{Buf, BytesMut};
use thiserror::Error;

use super::Role;
use crate::transit::handshake::{Expect, ExpectError, ExpectProgress};

/// What the Leader writes first on every connection.
pub const LEADER_PREFIX: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Leader\n\n";
/// What the Follower writes first on every connection.
pub const FOLLOWER_PREFIX: &[u8] = b"Magic-Wormhole Dilation Handshake v1 Follower\n\n";

/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 4;

/// Default cap on one inbound frame's payload: 64 MiB.
///
/// Python puts each application write into one DATA record and each record into one frame, so
/// a frame can in principle reach about 4 GiB; real peers write far smaller chunks. A caller
/// that must accept larger frames passes its own cap to [`FrameDecoder::new`].
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// The prefix `role` writes.
pub fn prefix_for(role: Role) -> &'static [u8] {
    match role {
        Role::Leader => LEADER_PREFIX,
        Role::Follower => FOLLOWER_PREFIX,
    }
}

/// Why L2 input was refused. Every variant means: drop this connection (others may succeed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer's prefix was wrong: it is not a Dilation peer in the expected role (or both
    /// sides think they lead). Drop the connection.
    #[error("bad Dilation prefix: {0}")]
    BadPrefix(#[from] ExpectError),
    /// A frame header announced more than the cap. Drop the connection; raise the cap only if
    /// the peer is known to send such frames.
    #[error("Dilation frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced payload length.
        len: u64,
        /// The cap in force.
        max: usize,
    },
    /// A payload to send does not fit the 4-byte length. Split it into smaller records.
    #[error("cannot frame {0} bytes: the length field is 32 bits")]
    PayloadTooLong(usize),
}

/// The 4-byte header of a frame carrying `payload_len` bytes.
pub fn frame_header(payload_len: usize) -> Result<[u8; FRAME_HEADER_LEN], FrameError> {
    u32::try_from(payload_len)
        .map(u32::to_be_bytes)
        .map_err(|_| FrameError::PayloadTooLong(payload_len))
}

/// `u32 BE length ‖ payload`.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let header = frame_header(payload.len())?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a byte stream (after the prefix) into frame payloads, however it is chunked.
///
/// A frame that arrived whole inside one input buffer is split off that buffer, not copied.
/// A frame cut between two inputs is joined: for free when the second input continues the
/// first's allocation (a reader that reads into one `BytesMut` and splits each read off it),
/// else by copying that one frame's pieces. Nothing is ever reserved by the announced length:
/// a partial frame holds only the bytes that arrived.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_have: usize,
    /// Payload of the frame in progress, with its announced length, once the header is known.
    body: Option<(usize, BytesMut)>,
}

impl FrameDecoder {
    /// A decoder refusing frames whose payload exceeds `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            max: max_frame_len,
            header: [0; FRAME_HEADER_LEN],
            header_have: 0,
            body: None,
        }
    }

    /// The cap in force.
    pub fn max_frame_len(&self) -> usize {
        self.max
    }

    /// True if no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.header_have == 0 && self.body.is_none()
    }

    /// Feeds received bytes (copied), appending every completed payload to `out`. After an
    /// error the decoder's state is unspecified; drop the connection.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), FrameError> {
        let mut frames = Vec::new();
        let result = self.feed_buf(BytesMut::from(input), &mut frames);
        out.extend(frames.into_iter().map(Vec::from));
        result
    }

    /// [`Self::feed`] of a buffer we own: whole frames are split off it without a copy.
    pub fn feed_buf(&mut self, mut input: BytesMut, out: &mut Vec<BytesMut>) -> Result<(), FrameError> {
        while !input.is_empty() {
            match &mut self.body {
                None => {
                    let n = (FRAME_HEADER_LEN - self.header_have).min(input.len());
                    let head = input.split_to(n);
                    self.header[self.header_have..self.header_have + n].copy_from_slice(&head);
                    self.header_have += n;
                    if self.header_have < FRAME_HEADER_LEN {
                        continue;
                    }
                    self.header_have = 0;
                    let len = u32::from_be_bytes(self.header);
                    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
                    if len_usize > self.max {
                        return Err(FrameError::TooLarge {
                            len: u64::from(len),
                            max: self.max,
                        });
                    }
                    if len_usize <= input.len() {
                        out.push(input.split_to(len_usize));
                    } else {
                        self.body = Some((len_usize, input.split()));
                    }
                }
                Some((len, buf)) => {
                    let n = (*len - buf.len()).min(input.len());
                    buf.unsplit(input.split_to(n));
                    if buf.len() == *len
                        && let Some((_, done)) = self.body.take()
                    {
                        out.push(done);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a connection's inbound byte stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// The peer's prefix arrived complete and correct (exactly once, before any frame). The
    /// Leader sends its Noise handshake now.
    PrefixReceived,
    /// One frame payload (Noise handshake or ciphertext), in the buffer it was read into.
    Frame(BytesMut),
}

/// The inbound side of one Dilation connection: the peer's prefix, then frames.
#[derive(Debug, Clone)]
pub struct ConnectionReader {
    prefix: Option<Expect>,
    frames: FrameDecoder,
}

impl ConnectionReader {
    /// A reader for a connection on which we play `our_role` (so the peer sends the other
    /// role's prefix), refusing frames larger than `max_frame_len`.
    pub fn new(our_role: Role, max_frame_len: usize) -> Self {
        let peer = prefix_for(our_role.peer());
        ConnectionReader {
            prefix: Some(Expect::new("Dilation peer prefix", peer)),
            frames: FrameDecoder::new(max_frame_len),
        }
    }

    /// Feeds received bytes (copied); returns what they completed, in order.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<Inbound>, FrameError> {
        self.feed_buf(BytesMut::from(input))
    }

    /// [`Self::feed`] of a buffer we own: whole frames are split off it without a copy.
    pub fn feed_buf(&mut self, mut input: BytesMut) -> Result<Vec<Inbound>, FrameError> {
        let mut events = Vec::new();
        if let Some(expect) = &mut self.prefix {
            match expect.feed(&input)? {
                ExpectProgress::NeedMore => return Ok(events),
                ExpectProgress::Done { consumed } => {
                    self.prefix = None;
                    events.push(Inbound::PrefixReceived);
                    input.advance(consumed.min(input.len()));
                }
            }
        }
        let mut frames = Vec::new();
        self.frames.feed_buf(input, &mut frames)?;
        events.extend(frames.into_iter().map(Inbound::Frame));
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let payloads = vec![b"first".to_vec(), Vec::new(), vec![0xab; 300], b"x".to_vec()];
        let mut bytes = FOLLOWER_PREFIX.to_vec();
        for p in &payloads {
            bytes.extend(encode_frame(p).unwrap());
        }
        (bytes, payloads)
    }

    fn expected(payloads: &[Vec<u8>]) -> Vec<Inbound> {
        let mut v = vec![Inbound::PrefixReceived];
        v.extend(payloads.iter().map(|p| Inbound::Frame(BytesMut::from(&p[..]))));
        v
    }

    #[test]
    fn prefixes_are_byte_exact() {
        assert_eq!(
            prefix_for(Role::Leader),
            b"Magic-Wormhole Dilation Handshake v1 Leader\n\n"
        );
        assert_eq!(
            prefix_for(Role::Follower),
            b"Magic-Wormhole Dilation Handshake v1 Follower\n\n"
        );
    }

    #[test]
    fn encoder_layout() {
        assert_eq!(encode_frame(b"abc").unwrap(), b"\0\0\0\x03abc");
        assert_eq!(encode_frame(b"").unwrap(), b"\0\0\0\0");
    }

    #[test]
    fn every_single_split_point() {
        let (bytes, payloads) = stream();
        for cut in 0..=bytes.len() {
            let mut r = ConnectionReader::new(Role::Leader, 1024);
            let mut got = r.feed(&bytes[..cut]).unwrap();
            got.extend(r.feed(&bytes[cut..]).unwrap());
            assert_eq!(got, expected(&payloads), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_and_varied_chunks() {
        let (bytes, payloads) = stream();
        for chunk in [1, 2, 3, 5, 7, 13, 47, 48, 49, 1000] {
            let mut r = ConnectionReader::new(Role::Leader, 1024);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                got.extend(r.feed(c).unwrap());
            }
            assert_eq!(got, expected(&payloads), "chunk {chunk}");
        }
    }

    #[test]
    fn wrong_role_prefix_is_refused() {
        // Both sides think they lead: the Leader receives the Leader prefix.
        let mut r = ConnectionReader::new(Role::Leader, 1024);
        let err = r.feed(LEADER_PREFIX).unwrap_err();
        assert!(
            matches!(err, FrameError::BadPrefix(ref e) if e.offset == 37),
            "{err:?}"
        );
        let mut r = ConnectionReader::new(Role::Follower, 1024);
        assert_eq!(r.feed(b"Magic").unwrap(), vec![]);
        assert!(r.feed(b"-Wormhole Transit").is_err());
        let mut r = ConnectionReader::new(Role::Follower, 1024);
        assert!(r.feed(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn huge_length_is_refused_before_any_allocation() {
        let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut out = Vec::new();
        let err = d.feed(&[0xff, 0xff, 0xff, 0xff], &mut out).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: DEFAULT_MAX_FRAME_LEN
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn cap_is_inclusive_and_split_headers_are_checked() {
        let mut d = FrameDecoder::new(3);
        let mut out = Vec::new();
        d.feed(b"\0\0", &mut out).unwrap();
        d.feed(b"\0\x03ab", &mut out).unwrap();
        assert!(out.is_empty() && !d.is_idle());
        d.feed(b"c", &mut out).unwrap();
        assert_eq!(out, vec![b"abc".to_vec()]);
        assert!(d.is_idle());
        assert!(matches!(
            d.feed(b"\0\0\0\x04", &mut out),
            Err(FrameError::TooLarge { len: 4, max: 3 })
        ));
    }

    #[test]
    fn announced_length_does_not_reserve_memory() {
        let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut out = Vec::new();
        d.feed(&frame_header(DEFAULT_MAX_FRAME_LEN).unwrap(), &mut out)
            .unwrap();
        d.feed(b"tiny", &mut out).unwrap();
        match &d.body {
            Some((len, buf)) => {
                assert_eq!(*len, DEFAULT_MAX_FRAME_LEN);
                assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
            }
            None => panic!("expected a partial frame"),
        }
    }

    #[test]
    fn frames_of_one_read_buffer_are_not_copied() {
        // A reader's way: one allocation, each read split off it. Frames that arrived whole,
        // and frames cut between two reads, both stay in that allocation.
        let (bytes, payloads) = stream();
        for cut in 0..=bytes.len() {
            let mut whole = BytesMut::with_capacity(bytes.len());
            whole.extend_from_slice(&bytes);
            let range = whole.as_ptr_range();
            let first = whole.split_to(cut);
            let mut r = ConnectionReader::new(Role::Leader, 1024);
            let mut got = r.feed_buf(first).unwrap();
            got.extend(r.feed_buf(whole).unwrap());
            assert_eq!(got, expected(&payloads), "cut at {cut}");
            for event in &got {
                if let Inbound::Frame(f) = event
                    && !f.is_empty()
                {
                    assert!(range.contains(&f.as_ptr()), "cut at {cut}: a frame was copied");
                }
            }
        }
    }

    #[test]
    fn prefix_then_frame_in_one_chunk() {
        let mut r = ConnectionReader::new(Role::Follower, 16);
        let mut bytes = LEADER_PREFIX.to_vec();
        bytes.extend(encode_frame(b"hi").unwrap());
        assert_eq!(
            r.feed(&bytes).unwrap(),
            vec![
                Inbound::PrefixReceived,
                Inbound::Frame(BytesMut::from(&b"hi"[..]))
            ]
        );
    }
}
