//! L3 records of Dilation (docs/protocol.md §6.5): the plaintext inside each decrypted frame.
//!
//! Owns: the tag numbering that interoperates with Python 0.24.0 (KCM = 0x00, PING = 0x01,
//! PONG = 0x02, OPEN = 0x03, DATA = 0x04, CLOSE = 0x05, ACK = 0x06 — not the older documented
//! numbering that starts PING at 0x00), encoding a [`Record`] to bytes and parsing bytes back.
//!
//! Must not: encrypt, frame, track sequence numbers or decide what a record means for a
//! subchannel (that is [`super::l4`]). Parsing treats its input as untrusted: it never panics and
//! returns a typed [`RecordError`].
//!
//! Parsing is strict where Python is lax: a fixed-size record (KCM, PING, PONG, CLOSE, ACK) with
//! trailing bytes is refused. Python never sends such records, and refusing them keeps the
//! encoding canonical (parse ∘ encode is the identity).

use bytes::Bytes;
use thiserror::Error;

/// Tag of a key-confirmation message (the first encrypted message on a connection).
pub const TAG_KCM: u8 = 0x00;
/// Tag of a keepalive request.
pub const TAG_PING: u8 = 0x01;
/// Tag of a keepalive answer.
pub const TAG_PONG: u8 = 0x02;
/// Tag of a subchannel open.
pub const TAG_OPEN: u8 = 0x03;
/// Tag of subchannel data.
pub const TAG_DATA: u8 = 0x04;
/// Tag of a subchannel (half-)close.
pub const TAG_CLOSE: u8 = 0x05;
/// Tag of an acknowledgement.
pub const TAG_ACK: u8 = 0x06;

/// Bytes before the payload of OPEN and DATA, and the whole of CLOSE: tag + scid + seqnum.
pub const SUBCHANNEL_HEADER_LEN: usize = 1 + 4 + 4;

/// One L3 record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Key confirmation: plaintext `0x00`, nothing after the tag.
    Kcm,
    /// Keepalive request with an opaque 4-byte id.
    Ping {
        /// Opaque id the peer echoes in its PONG.
        ping_id: [u8; 4],
    },
    /// Keepalive answer echoing the PING's id.
    Pong {
        /// The id of the PING being answered.
        ping_id: [u8; 4],
    },
    /// Open subchannel `scid` for `subprotocol`.
    Open {
        /// Subchannel id.
        scid: u32,
        /// Per-direction L4 sequence number.
        seqnum: u32,
        /// Subprotocol name (UTF-8, may be empty).
        subprotocol: String,
    },
    /// Application bytes for subchannel `scid`.
    Data {
        /// Subchannel id.
        scid: u32,
        /// Per-direction L4 sequence number.
        seqnum: u32,
        /// The payload (may be empty); shared, so the retransmit queue and delivery do not copy
        /// it.
        data: Bytes,
    },
    /// "I will send nothing more on `scid`."
    Close {
        /// Subchannel id.
        scid: u32,
        /// Per-direction L4 sequence number.
        seqnum: u32,
    },
    /// Every record with seqnum ≤ `resp_seqnum` has been received.
    Ack {
        /// The highest acknowledged sequence number.
        resp_seqnum: u32,
    },
}

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The decrypted frame was empty. The peer is broken; drop the connection.
    #[error("empty L3 record (no tag byte)")]
    Empty,
    /// The tag byte is not one of 0x00..=0x06. The peer speaks another Dilation version or is
    /// broken; drop the connection (Python does the same and reconnects).
    #[error("unknown L3 record tag 0x{0:02x}")]
    UnknownTag(u8),
    /// The record is shorter than its fixed layout. The peer is broken; drop the connection.
    #[error("L3 record with tag 0x{tag:02x} is {got} bytes, needs at least {need}")]
    Short {
        /// The record's tag.
        tag: u8,
        /// Bytes received (tag included).
        got: usize,
        /// Bytes required (tag included).
        need: usize,
    },
    /// A fixed-size record carried extra bytes. The peer is broken; drop the connection.
    #[error("L3 record with tag 0x{tag:02x} is {got} bytes, expected exactly {expected}")]
    TrailingBytes {
        /// The record's tag.
        tag: u8,
        /// Bytes received (tag included).
        got: usize,
        /// The record's fixed size (tag included).
        expected: usize,
    },
    /// An OPEN's subprotocol name is not UTF-8. The peer is broken; drop the connection.
    #[error("OPEN for subchannel {scid}: subprotocol name is not UTF-8")]
    SubprotocolNotUtf8 {
        /// The subchannel the OPEN was for.
        scid: u32,
    },
}

impl Record {
    /// The record's tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            Record::Kcm => TAG_KCM,
            Record::Ping { .. } => TAG_PING,
            Record::Pong { .. } => TAG_PONG,
            Record::Open { .. } => TAG_OPEN,
            Record::Data { .. } => TAG_DATA,
            Record::Close { .. } => TAG_CLOSE,
            Record::Ack { .. } => TAG_ACK,
        }
    }

    /// Length of [`Record::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Kcm => 1,
            Record::Ping { .. } | Record::Pong { .. } | Record::Ack { .. } => 5,
            Record::Open { subprotocol, .. } => SUBCHANNEL_HEADER_LEN + subprotocol.len(),
            Record::Data { data, .. } => SUBCHANNEL_HEADER_LEN + data.len(),
            Record::Close { .. } => SUBCHANNEL_HEADER_LEN,
        }
    }

    /// Appends the record's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.tag());
        match self {
            Record::Kcm => {}
            Record::Ping { ping_id } | Record::Pong { ping_id } => out.extend_from_slice(ping_id),
            Record::Open {
                scid,
                seqnum,
                subprotocol,
            } => {
                out.extend_from_slice(&scid.to_be_bytes());
                out.extend_from_slice(&seqnum.to_be_bytes());
                out.extend_from_slice(subprotocol.as_bytes());
            }
            Record::Data { scid, seqnum, data } => {
                out.extend_from_slice(&scid.to_be_bytes());
                out.extend_from_slice(&seqnum.to_be_bytes());
                out.extend_from_slice(data);
            }
            Record::Close { scid, seqnum } => {
                out.extend_from_slice(&scid.to_be_bytes());
                out.extend_from_slice(&seqnum.to_be_bytes());
            }
            Record::Ack { resp_seqnum } => out.extend_from_slice(&resp_seqnum.to_be_bytes()),
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Parses one record (the whole decrypted plaintext of a frame).
    pub fn parse(bytes: &[u8]) -> Result<Record, RecordError> {
        Record::parse_with(bytes, Bytes::copy_from_slice)
    }

    /// [`Record::parse`] of a shared plaintext: a DATA payload is a slice of `whole`.
    pub fn parse_bytes(whole: Bytes) -> Result<Record, RecordError> {
        Record::parse_with(&whole, |payload| {
            let start = whole.len() - payload.len();
            whole.slice(start..)
        })
    }

    fn parse_with(bytes: &[u8], data: impl FnOnce(&[u8]) -> Bytes) -> Result<Record, RecordError> {
        let (&tag, rest) = bytes.split_first().ok_or(RecordError::Empty)?;
        match tag {
            TAG_KCM => {
                exact(tag, bytes, 1)?;
                Ok(Record::Kcm)
            }
            TAG_PING | TAG_PONG | TAG_ACK => {
                exact(tag, bytes, 5)?;
                let four = be4_array(tag, bytes, rest)?;
                Ok(match tag {
                    TAG_PING => Record::Ping { ping_id: four },
                    TAG_PONG => Record::Pong { ping_id: four },
                    _ => Record::Ack {
                        resp_seqnum: u32::from_be_bytes(four),
                    },
                })
            }
            TAG_OPEN | TAG_DATA | TAG_CLOSE => {
                let (scid, seqnum, payload) = subchannel_header(tag, bytes)?;
                match tag {
                    TAG_OPEN => {
                        let subprotocol = std::str::from_utf8(payload)
                            .map_err(|_| RecordError::SubprotocolNotUtf8 { scid })?
                            .to_owned();
                        Ok(Record::Open {
                            scid,
                            seqnum,
                            subprotocol,
                        })
                    }
                    TAG_DATA => Ok(Record::Data {
                        scid,
                        seqnum,
                        data: data(payload),
                    }),
                    _ => {
                        exact(tag, bytes, SUBCHANNEL_HEADER_LEN)?;
                        Ok(Record::Close { scid, seqnum })
                    }
                }
            }
            other => Err(RecordError::UnknownTag(other)),
        }
    }
}

/// Refuses `bytes` unless it is exactly `expected` long.
fn exact(tag: u8, bytes: &[u8], expected: usize) -> Result<(), RecordError> {
    let got = bytes.len();
    if got < expected {
        Err(RecordError::Short {
            tag,
            got,
            need: expected,
        })
    } else if got > expected {
        Err(RecordError::TrailingBytes { tag, got, expected })
    } else {
        Ok(())
    }
}

/// The first four bytes of `rest` (the bytes after the tag).
fn be4_array(tag: u8, bytes: &[u8], rest: &[u8]) -> Result<[u8; 4], RecordError> {
    rest.get(..4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or(RecordError::Short {
            tag,
            got: bytes.len(),
            need: 5,
        })
}

/// Splits `tag ‖ scid be4 ‖ seqnum be4 ‖ payload`.
fn subchannel_header(tag: u8, bytes: &[u8]) -> Result<(u32, u32, &[u8]), RecordError> {
    let short = RecordError::Short {
        tag,
        got: bytes.len(),
        need: SUBCHANNEL_HEADER_LEN,
    };
    let scid = bytes
        .get(1..5)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or_else(|| short.clone())?;
    let seqnum = bytes
        .get(5..9)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or_else(|| short.clone())?;
    let payload = bytes.get(SUBCHANNEL_HEADER_LEN..).ok_or(short)?;
    Ok((u32::from_be_bytes(scid), u32::from_be_bytes(seqnum), payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Record> {
        vec![
            Record::Kcm,
            Record::Ping {
                ping_id: [1, 2, 3, 4],
            },
            Record::Pong {
                ping_id: [0xff, 0, 0xee, 7],
            },
            Record::Open {
                scid: 1,
                seqnum: 0,
                subprotocol: "fowl".into(),
            },
            Record::Open {
                scid: 3,
                seqnum: 9,
                subprotocol: String::new(),
            },
            Record::Data {
                scid: 0x0102_0304,
                seqnum: 0xfffe_fdfc,
                data: b"hello".to_vec().into(),
            },
            Record::Data {
                scid: 2,
                seqnum: 1,
                data: Vec::new().into(),
            },
            Record::Close { scid: 4, seqnum: 77 },
            Record::Ack {
                resp_seqnum: u32::MAX,
            },
        ]
    }

    #[test]
    fn tags_follow_the_running_code() {
        let tags: Vec<u8> = all_kinds().iter().map(|r| r.encode()[0]).collect();
        assert_eq!(tags, vec![0, 1, 2, 3, 3, 4, 4, 5, 6]);
    }

    #[test]
    fn byte_exact_layouts() {
        assert_eq!(Record::Kcm.encode(), vec![0x00]);
        assert_eq!(Record::Ping { ping_id: *b"abcd" }.encode(), b"\x01abcd");
        assert_eq!(
            Record::Open {
                scid: 1,
                seqnum: 2,
                subprotocol: "ssh".into()
            }
            .encode(),
            b"\x03\x00\x00\x00\x01\x00\x00\x00\x02ssh"
        );
        assert_eq!(
            Record::Data {
                scid: 258,
                seqnum: 3,
                data: b"xy".to_vec().into()
            }
            .encode(),
            b"\x04\x00\x00\x01\x02\x00\x00\x00\x03xy"
        );
        assert_eq!(
            Record::Close { scid: 2, seqnum: 5 }.encode(),
            b"\x05\x00\x00\x00\x02\x00\x00\x00\x05"
        );
        assert_eq!(
            Record::Ack { resp_seqnum: 0x10 }.encode(),
            b"\x06\x00\x00\x00\x10"
        );
    }

    #[test]
    fn roundtrip_every_kind() {
        for r in all_kinds() {
            let bytes = r.encode();
            assert_eq!(bytes.len(), r.encoded_len());
            assert_eq!(Record::parse(&bytes), Ok(r));
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for r in all_kinds() {
            let bytes = r.encode();
            let min = match r {
                Record::Open { .. } | Record::Data { .. } => SUBCHANNEL_HEADER_LEN,
                _ => bytes.len(),
            };
            for cut in 0..min {
                let err = Record::parse(&bytes[..cut]).unwrap_err();
                if cut == 0 {
                    assert_eq!(err, RecordError::Empty);
                } else {
                    assert!(matches!(err, RecordError::Short { need, .. } if need == min));
                }
            }
        }
    }

    #[test]
    fn unknown_tags_are_refused() {
        for tag in 7..=255u8 {
            assert_eq!(
                Record::parse(&[tag, 0, 0, 0, 0, 0, 0, 0, 0]),
                Err(RecordError::UnknownTag(tag))
            );
        }
    }

    #[test]
    fn trailing_bytes_on_fixed_records_are_refused() {
        assert!(matches!(
            Record::parse(&[0, 0]),
            Err(RecordError::TrailingBytes { tag: 0, .. })
        ));
        assert!(matches!(
            Record::parse(b"\x02abcde"),
            Err(RecordError::TrailingBytes { tag: 2, .. })
        ));
        assert!(matches!(
            Record::parse(b"\x05\0\0\0\x01\0\0\0\x01z"),
            Err(RecordError::TrailingBytes { tag: 5, .. })
        ));
    }

    #[test]
    fn non_utf8_subprotocol_is_refused() {
        let mut bytes = Record::Open {
            scid: 7,
            seqnum: 0,
            subprotocol: String::new(),
        }
        .encode();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(
            Record::parse(&bytes),
            Err(RecordError::SubprotocolNotUtf8 { scid: 7 })
        );
    }
}
