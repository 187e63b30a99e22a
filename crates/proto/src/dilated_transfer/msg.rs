//! The records of an offer subchannel: one kind byte, then (except for file data and bundles) a
//! msgpack map with string keys. Decoding is bounded: a data record or a bundle is at most
//! [`super::MAX_DATA_RECORD`] bytes, any other at most [`super::MAX_CONTROL_RECORD`].
//!
//! Owns: the encoding of each record. Must not: judge whether a record fits where it arrived
//! (that is [`super::Inbound`]'s job).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{MAX_CONTROL_RECORD, MAX_DATA_RECORD};

/// Kind bytes (the spec's 1–6; 7 and 8 are ours, sent only with the `resume` and `bundle`
/// features).
pub mod kind {
    /// [`super::FileOffer`].
    pub const FILE_OFFER: u8 = 1;
    /// [`super::DirectoryOffer`].
    pub const DIRECTORY_OFFER: u8 = 2;
    /// [`super::OfferAccept`].
    pub const ACCEPT: u8 = 3;
    /// [`super::OfferReject`].
    pub const REJECT: u8 = 4;
    /// Raw file data.
    pub const DATA: u8 = 5;
    /// [`super::FileAck`].
    pub const FILE_ACK: u8 = 6;
    /// [`super::DataStart`] (feature `resume`).
    pub const DATA_START: u8 = 7;
    /// Several records in one (feature `bundle`): [`super::Record::Bundle`].
    pub const BUNDLE: u8 = 8;
}

/// Bytes of the length before each record inside a bundle (big-endian).
pub const BUNDLE_LEN_BYTES: usize = 4;

/// The longest encoded [`FileAck`] record (kind byte, `bytes` of any value, both hashes).
pub const FILE_ACK_MAX: usize = 97;

/// A 32-byte hash, a msgpack `bin` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hash32(pub [u8; 32]);

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Hash32;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Hash32, E> {
                <[u8; 32]>::try_from(v)
                    .map(Hash32)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Hash32, A::Error> {
                let mut out = [0u8; 32];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(33, &self));
                }
                Ok(Hash32(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Kind 1: one file (alone, or as the header of each file of a directory offer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffer {
    /// The file's name (one segment).
    pub filename: String,
    /// Modification time, Unix seconds.
    pub timestamp: i64,
    /// Its length in bytes (0 for a stream).
    pub bytes: u64,
    /// Feature `stream`: the length is not known; the data ends with the [`FileAck`], which
    /// gives it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream: bool,
}

/// Kind 2: a directory tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryOffer {
    /// The name of the directory the user chose.
    pub base: String,
    /// Total bytes of all its files.
    pub size: u64,
    /// Each file's path below `base`, as segments, in the order they are sent.
    pub files: Vec<Vec<String>>,
    /// Feature `empty-dirs`: directories holding no file, as segments below `base`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<Vec<String>>,
}

/// What a receiver already holds of a file (feature `resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeClaim {
    /// Length of the partial file.
    pub bytes: u64,
    /// SHA-256 of those bytes.
    pub sha256: Hash32,
}

/// Kind 3: the offer is accepted. Without features it has no payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OfferAccept {
    /// Feature `resume`: the receiver holds this prefix of a single-file offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeClaim>,
}

/// Kind 4: the offer is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferReject {
    /// Why, for the user.
    pub reason: String,
}

/// Kind 6: the end of one file, sent by both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAck {
    /// The file's length.
    pub bytes: u64,
    /// BLAKE2b-256 of the whole file (32 zero bytes when both sides use `sha256-ack`).
    pub hash: Hash32,
    /// Feature `sha256-ack`: SHA-256 of the whole file (then the check, instead of `hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Hash32>,
}

/// Kind 7 (feature `resume`): where the data that follows starts in the file; 0 when the
/// sender found the receiver's prefix differs from its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStart {
    /// Offset of the first data byte.
    pub offset: u64,
}

/// One record of an offer subchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Kind 1.
    FileOffer(FileOffer),
    /// Kind 2.
    DirectoryOffer(DirectoryOffer),
    /// Kind 3.
    Accept(OfferAccept),
    /// Kind 4.
    Reject(OfferReject),
    /// Kind 5 (sharing the buffer it arrived in).
    Data(bytes::Bytes),
    /// Kind 6.
    FileAck(FileAck),
    /// Kind 7.
    DataStart(DataStart),
    /// Kind 8 (feature `bundle`): whole records, each still encoded (kind byte first), sent as
    /// one so that small files cost one Dilation record for many files. On the wire: the kind
    /// byte, then for each record its length ([`BUNDLE_LEN_BYTES`], big-endian) and its bytes.
    /// Decoding checks only this framing (each part non-empty, none past the end, at least
    /// one): what the parts may be is the receiver's rule ([`super::Inbound`]).
    Bundle(Vec<bytes::Bytes>),
}

/// A record we cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// An empty record (no kind byte).
    #[error("the peer sent an empty record (no kind byte)")]
    Empty,
    /// A kind byte we do not know.
    #[error("the peer sent a record of unknown kind {0}")]
    UnknownKind(u8),
    /// A record over its limit.
    #[error("the peer sent a record of kind {kind} of {len} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Its kind byte.
        kind: u8,
        /// Its length (kind byte included).
        len: usize,
        /// The limit for that kind.
        limit: usize,
    },
    /// The msgpack payload does not decode as that kind's message.
    #[error("the peer's record of kind {kind} is malformed: {reason}")]
    Malformed {
        /// Its kind byte.
        kind: u8,
        /// What the decoder said.
        reason: String,
    },
}

fn pack<T: Serialize>(k: u8, v: &T) -> Vec<u8> {
    let mut out = vec![k];
    // Serialising these plain structs into a Vec cannot fail.
    if let Ok(body) = rmp_serde::to_vec_named(v) {
        out.extend_from_slice(&body);
    }
    out
}

fn unpack<'a, T: Deserialize<'a>>(k: u8, body: &'a [u8]) -> Result<T, MsgError> {
    rmp_serde::from_slice(body).map_err(|e| MsgError::Malformed {
        kind: k,
        reason: e.to_string(),
    })
}

impl Record {
    /// The record's kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Record::FileOffer(_) => kind::FILE_OFFER,
            Record::DirectoryOffer(_) => kind::DIRECTORY_OFFER,
            Record::Accept(_) => kind::ACCEPT,
            Record::Reject(_) => kind::REJECT,
            Record::Data(_) => kind::DATA,
            Record::FileAck(_) => kind::FILE_ACK,
            Record::DataStart(_) => kind::DATA_START,
            Record::Bundle(_) => kind::BUNDLE,
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::FileOffer(m) => pack(kind::FILE_OFFER, m),
            Record::DirectoryOffer(m) => pack(kind::DIRECTORY_OFFER, m),
            Record::Accept(m) if m.resume.is_none() => vec![kind::ACCEPT],
            Record::Accept(m) => pack(kind::ACCEPT, m),
            Record::Reject(m) => pack(kind::REJECT, m),
            Record::Data(d) => data_record(d),
            Record::FileAck(m) => pack(kind::FILE_ACK, m),
            Record::DataStart(m) => pack(kind::DATA_START, m),
            Record::Bundle(parts) => {
                let mut b = BundleBuilder::new();
                parts.iter().for_each(|p| b.push(p));
                b.into_record()
            }
        }
    }

    /// Decodes one record, within the limits.
    pub fn decode(bytes: &[u8]) -> Result<Record, MsgError> {
        Record::decode_with(bytes, |r| bytes::Bytes::copy_from_slice(&bytes[r]))
    }

    /// [`Record::decode`] of a buffer we share: DATA and a bundle's parts stay in it, uncopied.
    pub fn decode_bytes(bytes: &bytes::Bytes) -> Result<Record, MsgError> {
        Record::decode_with(bytes, |r| bytes.slice(r))
    }

    /// `share` gives the bytes of a range of `bytes` (copied or shared).
    fn decode_with(
        bytes: &[u8],
        share: impl Fn(std::ops::Range<usize>) -> bytes::Bytes,
    ) -> Result<Record, MsgError> {
        let (&k, body) = bytes.split_first().ok_or(MsgError::Empty)?;
        let limit = if k == kind::DATA || k == kind::BUNDLE {
            MAX_DATA_RECORD
        } else {
            MAX_CONTROL_RECORD
        };
        if bytes.len() > limit {
            return Err(MsgError::TooLarge {
                kind: k,
                len: bytes.len(),
                limit,
            });
        }
        Ok(match k {
            kind::FILE_OFFER => Record::FileOffer(unpack(k, body)?),
            kind::DIRECTORY_OFFER => Record::DirectoryOffer(unpack(k, body)?),
            kind::ACCEPT if body.is_empty() => Record::Accept(OfferAccept::default()),
            kind::ACCEPT => Record::Accept(unpack(k, body)?),
            kind::REJECT => Record::Reject(unpack(k, body)?),
            kind::DATA => Record::Data(share(1..bytes.len())),
            kind::FILE_ACK => Record::FileAck(unpack(k, body)?),
            kind::DATA_START => Record::DataStart(unpack(k, body)?),
            kind::BUNDLE => Record::Bundle(split_bundle(body)?.into_iter().map(&share).collect()),
            other => return Err(MsgError::UnknownKind(other)),
        })
    }
}

/// The ranges (in the whole record, kind byte at 0) of a bundle's parts.
fn split_bundle(body: &[u8]) -> Result<Vec<std::ops::Range<usize>>, MsgError> {
    let bad = |reason: &str| MsgError::Malformed {
        kind: kind::BUNDLE,
        reason: reason.to_owned(),
    };
    let mut parts = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let len_end = at + BUNDLE_LEN_BYTES;
        let Some(len) = body.get(at..len_end) else {
            return Err(bad("a part's length is cut off"));
        };
        let mut be = [0u8; BUNDLE_LEN_BYTES];
        be.copy_from_slice(len);
        let len = u32::from_be_bytes(be) as usize;
        if len == 0 {
            return Err(bad("an empty part"));
        }
        if len > body.len() - len_end {
            return Err(bad("a part runs past the end of the record"));
        }
        // +1: the ranges are in the whole record, after its kind byte.
        parts.push(len_end + 1..len_end + 1 + len);
        at = len_end + len;
    }
    if parts.is_empty() {
        return Err(bad("no parts"));
    }
    Ok(parts)
}

/// A [`Record::Bundle`] built in place: each part is appended as it is made (a file's data can
/// be read straight into it), with no copy of the parts afterwards.
#[derive(Debug)]
pub struct BundleBuilder {
    buf: Vec<u8>,
    parts: usize,
}

impl Default for BundleBuilder {
    fn default() -> Self {
        BundleBuilder::new()
    }
}

impl BundleBuilder {
    /// An empty bundle (room for [`MAX_DATA_RECORD`] bytes reserved).
    pub fn new() -> BundleBuilder {
        BundleBuilder::with_capacity(MAX_DATA_RECORD)
    }

    /// An empty bundle with room for `n` bytes reserved.
    pub fn with_capacity(n: usize) -> BundleBuilder {
        let mut buf = Vec::with_capacity(n.clamp(1, MAX_DATA_RECORD));
        buf.push(kind::BUNDLE);
        BundleBuilder { buf, parts: 0 }
    }

    /// Parts so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The record's length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no part was added.
    pub fn is_empty(&self) -> bool {
        self.parts == 0
    }

    /// Whether parts of `sizes` bytes each still fit within [`MAX_DATA_RECORD`].
    pub fn fits(&self, sizes: &[usize]) -> bool {
        Self::fits_after(self.buf.len(), sizes)
    }

    /// Whether parts of `sizes` bytes each fit in an empty bundle.
    pub fn fits_empty(sizes: &[usize]) -> bool {
        Self::fits_after(1, sizes)
    }

    fn fits_after(len: usize, sizes: &[usize]) -> bool {
        let need = sizes
            .iter()
            .try_fold(0usize, |sum, n| sum.checked_add(n.checked_add(BUNDLE_LEN_BYTES)?));
        need.is_some_and(|need| len + need <= MAX_DATA_RECORD)
    }

    /// Appends one encoded record.
    pub fn push(&mut self, record: &[u8]) {
        self.push_with(|b| b.extend_from_slice(record));
    }

    /// Appends one record that `write` appends to the buffer it is given (its length is filled
    /// in afterwards); an error of `write` leaves the bundle as it was.
    pub fn try_push_with<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; BUNDLE_LEN_BYTES]);
        if let Err(e) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let len = (self.buf.len() - start - BUNDLE_LEN_BYTES) as u32;
        self.buf[start..start + BUNDLE_LEN_BYTES].copy_from_slice(&len.to_be_bytes());
        self.parts += 1;
        Ok(())
    }

    fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let _ = self.try_push_with(|b| {
            write(b);
            Ok::<(), ()>(())
        });
    }

    /// The record's bytes.
    pub fn into_record(self) -> Vec<u8> {
        self.buf
    }
}

/// A data record for `payload` (at most [`super::DATA_CHUNK`] bytes) without an extra copy of
/// a [`Record`].
pub fn data_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(kind::DATA);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips() {
        let recs = [
            Record::FileOffer(FileOffer {
                filename: "a.txt".into(),
                timestamp: 1_700_000_000,
                bytes: 5,
                stream: false,
            }),
            Record::DirectoryOffer(DirectoryOffer {
                base: "project".into(),
                size: 165,
                files: vec![vec!["README".into()], vec!["src".into(), "hello.py".into()]],
                directories: vec![],
            }),
            Record::Accept(OfferAccept::default()),
            Record::Accept(OfferAccept {
                resume: Some(ResumeClaim {
                    bytes: 7,
                    sha256: Hash32([9; 32]),
                }),
            }),
            Record::Reject(OfferReject { reason: "no".into() }),
            Record::Data(bytes::Bytes::from_static(b"hello")),
            Record::FileAck(FileAck {
                bytes: 5,
                hash: Hash32([1; 32]),
                sha256: Some(Hash32([2; 32])),
            }),
            Record::DataStart(DataStart { offset: 3 }),
            Record::Bundle(vec![
                bytes::Bytes::from_static(b"\x05abc"),
                bytes::Bytes::from_static(b"\x06"),
            ]),
        ];
        for r in recs {
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
        // The spec's accept is the kind byte alone.
        assert_eq!(Record::Accept(OfferAccept::default()).encode(), vec![3]);
    }

    #[test]
    fn wire_form_is_a_named_map() {
        let r = Record::Reject(OfferReject { reason: "x".into() }).encode();
        // fixmap(1) "reason" "x"
        assert_eq!(r, b"\x04\x81\xa6reason\xa1x");
        let ack = Record::FileAck(FileAck {
            bytes: 1,
            hash: Hash32([0; 32]),
            sha256: None,
        })
        .encode();
        assert_eq!(&ack[..2], b"\x06\x82");
        assert!(ack.windows(2).any(|w| w == b"\xc4\x20"), "hash is bin 32");
    }

    #[test]
    fn bundle_wire_form_and_sharing() {
        let mut b = BundleBuilder::new();
        b.push(b"\x05hi");
        b.try_push_with(|buf| {
            buf.push(5);
            buf.extend_from_slice(b"there");
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            b.try_push_with(|buf| {
                buf.push(9);
                Err("read failed")
            }),
            Err("read failed")
        );
        assert_eq!(b.parts(), 2);
        let rec = bytes::Bytes::from(b.into_record());
        assert_eq!(&rec[..], b"\x08\0\0\0\x03\x05hi\0\0\0\x06\x05there");
        let Record::Bundle(parts) = Record::decode_bytes(&rec).unwrap() else {
            panic!("not a bundle");
        };
        assert_eq!(parts, [&b"\x05hi"[..], &b"\x05there"[..]]);
        // The parts share the record's buffer.
        assert_eq!(parts[0].as_ptr(), rec[5..].as_ptr());
        let most = MAX_DATA_RECORD - 1 - BUNDLE_LEN_BYTES;
        assert!(BundleBuilder::new().fits(&[most]));
        assert!(!BundleBuilder::new().fits(&[most + 1]));
        assert!(BundleBuilder::fits_empty(&[most]));
        assert!(!BundleBuilder::fits_empty(&[usize::MAX, 1]));
        // The largest ack fits in FILE_ACK_MAX.
        let ack = Record::FileAck(FileAck {
            bytes: u64::MAX,
            hash: Hash32([0xff; 32]),
            sha256: Some(Hash32([0xff; 32])),
        });
        assert_eq!(ack.encode().len(), FILE_ACK_MAX);
    }

    #[test]
    fn bundle_framing_errors() {
        let malformed = |r: &[u8]| matches!(Record::decode(r), Err(MsgError::Malformed { kind: 8, .. }));
        assert!(malformed(b"\x08"), "no parts");
        assert!(malformed(b"\x08\0\0\0"), "cut-off length");
        assert!(malformed(b"\x08\0\0\0\0"), "empty part");
        assert!(malformed(b"\x08\0\0\0\x02\x05"), "past the end");
        assert!(malformed(b"\x08\xff\xff\xff\xff\x05"), "huge length");
        let mut big = vec![8u8; MAX_DATA_RECORD + 1];
        big[1..5].copy_from_slice(&((MAX_DATA_RECORD - 4) as u32).to_be_bytes());
        assert!(matches!(
            Record::decode(&big),
            Err(MsgError::TooLarge { kind: 8, .. })
        ));
    }

    #[test]
    fn limits_and_garbage() {
        assert_eq!(Record::decode(&[]), Err(MsgError::Empty));
        assert_eq!(Record::decode(&[0]), Err(MsgError::UnknownKind(0)));
        assert_eq!(Record::decode(&[200, 1]), Err(MsgError::UnknownKind(200)));
        let big = vec![5u8; MAX_DATA_RECORD + 1];
        assert!(matches!(
            Record::decode(&big),
            Err(MsgError::TooLarge { kind: 5, .. })
        ));
        assert!(Record::decode(&vec![5u8; MAX_DATA_RECORD]).is_ok());
        let mut huge = vec![1u8; MAX_CONTROL_RECORD + 1];
        huge[0] = 1;
        assert!(matches!(Record::decode(&huge), Err(MsgError::TooLarge { .. })));
        assert!(matches!(
            Record::decode(&[1, 0xc1]),
            Err(MsgError::Malformed { kind: 1, .. })
        ));
        // An array claiming 2^32 elements in a few bytes must not allocate them.
        let claim = [
            2u8, 0x83, 0xa4, b'b', b'a', b's', b'e', 0xa1, b'x', 0xa4, b's', b'i', b'z', b'e', 0, 0xa5, b'f',
            b'i', b'l', b'e', b's', 0xdd, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(Record::decode(&claim).is_err());
    }
}
