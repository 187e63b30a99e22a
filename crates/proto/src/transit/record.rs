//! Transit record codec (docs/protocol.md §4.5): `len(u32 BE) ‖ nonce(24, BE counter) ‖ tag(16) ‖ ct`,
//! NaCl secretbox (XSalsa20-Poly1305) with one key per direction and a counter nonce starting at 0.
//!
//! The sealer and opener work in place on caller-owned buffers so the I/O layer can read file data
//! straight into a record buffer and decrypt records where they landed, with no per-record
//! allocation. The length prefix is checked against a cap before anyone allocates for it, and any
//! nonce other than the expected counter is refused. No I/O here.

use wormhole_transit_crypto as secretbox;
use zeroize::Zeroize;

/// Bytes of the length prefix.
pub const RECORD_HEADER: usize = 4;
/// Bytes of nonce + tag inside each record.
pub const RECORD_OVERHEAD: usize = 24 + 16;
/// Plaintext bytes per file-data record we send (Python's chunk size; interop-safe).
pub const SEND_CHUNK: usize = 16384;
/// Default cap on the plaintext size of one received record (16 MiB; peers send 16 KiB).
pub const DEFAULT_MAX_RECORD: usize = 16 << 20;

/// Errors from sealing or opening records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The peer announced a record larger than we accept; the connection must be dropped. Nothing
    /// was allocated for it. A peer that really sends such records needs a larger cap.
    #[error("peer announced a {len}-byte transit record, over the {max}-byte limit")]
    TooLarge {
        /// Announced length (nonce + tag + ciphertext).
        len: u64,
        /// The cap in force (same units).
        max: u64,
    },
    /// The record is shorter than nonce + tag: a corrupt or hostile peer; drop the connection.
    #[error("transit record of {len} bytes is shorter than nonce and tag")]
    TooShort {
        /// Announced length.
        len: usize,
    },
    /// The nonce is not the expected counter (replayed, reordered or forged record).
    #[error("transit record out of order: expected nonce {expected}, got {got}")]
    BadNonce {
        /// Expected counter value.
        expected: u64,
        /// Received nonce, hex.
        got: String,
    },
    /// Authentication failed: corrupted data or a different key.
    #[error("transit record failed to decrypt (corrupted data or wrong key)")]
    DecryptFailed,
    /// The buffer handed to the sealer was smaller than a record header.
    #[error("record buffer too small")]
    BufferTooSmall,
}

fn nonce_for(counter: u64) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[16..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// Encrypts outgoing records. Not `Clone`: a copy would seal with the same counter, reusing
/// nonces (and so Poly1305 keys). The key is wiped on drop and never printed.
pub struct RecordSealer {
    key: [u8; 32],
    counter: u64,
}

impl Drop for RecordSealer {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for RecordSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSealer")
            .field("key", &"<redacted>")
            .field("counter", &self.counter)
            .finish()
    }
}

impl Drop for RecordOpener {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for RecordOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordOpener")
            .field("key", &"<redacted>")
            .field("counter", &self.counter)
            .field("max_body", &self.max_body)
            .finish()
    }
}

impl RecordSealer {
    /// A sealer for `key`, first nonce 0.
    pub fn new(key: &[u8; 32]) -> Self {
        RecordSealer {
            key: *key,
            counter: 0,
        }
    }

    /// Seal a record in place. `buf` is `[4 header][24 nonce][16 tag][plaintext…]`: the caller
    /// puts the plaintext at offset [`RECORD_HEADER`] + [`RECORD_OVERHEAD`]; this fills in the
    /// header, nonce and tag and encrypts the plaintext where it lies.
    pub fn seal_in_place(&mut self, buf: &mut [u8]) -> Result<(), RecordError> {
        let start = RECORD_HEADER + RECORD_OVERHEAD;
        if buf.len() < start {
            return Err(RecordError::BufferTooSmall);
        }
        let body_len = u32::try_from(buf.len() - RECORD_HEADER).map_err(|_| RecordError::TooLarge {
            len: buf.len() as u64,
            max: u32::MAX as u64,
        })?;
        let nonce = nonce_for(self.counter);
        self.counter += 1;
        let (head, pt) = buf.split_at_mut(start);
        let tag = secretbox::seal(&self.key, &nonce, pt);
        head[..4].copy_from_slice(&body_len.to_be_bytes());
        head[4..28].copy_from_slice(&nonce);
        head[28..44].copy_from_slice(&tag);
        Ok(())
    }

    /// Append a whole record carrying `plaintext` to `out`.
    pub fn seal_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let at = out.len();
        out.resize(at + RECORD_HEADER + RECORD_OVERHEAD, 0);
        out.extend_from_slice(plaintext);
        self.seal_in_place(&mut out[at..])
    }

    /// One record carrying `plaintext`, as a new vector.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, RecordError> {
        let mut v = Vec::with_capacity(RECORD_HEADER + RECORD_OVERHEAD + plaintext.len());
        self.seal_into(plaintext, &mut v)?;
        Ok(v)
    }
}

/// Checks and decrypts incoming records. Not `Clone` (one counter per direction); the key is
/// wiped on drop and never printed.
pub struct RecordOpener {
    key: [u8; 32],
    counter: u64,
    max_body: usize,
}

impl RecordOpener {
    /// An opener for `key` accepting plaintexts up to `max_plaintext` bytes.
    pub fn new(key: &[u8; 32], max_plaintext: usize) -> Self {
        RecordOpener {
            key: *key,
            counter: 0,
            max_body: max_plaintext.saturating_add(RECORD_OVERHEAD),
        }
    }

    /// The body length (nonce + tag + ciphertext) announced by a 4-byte header, checked against
    /// the cap and the minimum.
    pub fn body_len(&self, header: [u8; 4]) -> Result<usize, RecordError> {
        let len = u32::from_be_bytes(header) as u64;
        if len > self.max_body as u64 {
            return Err(RecordError::TooLarge {
                len,
                max: self.max_body as u64,
            });
        }
        let len = len as usize;
        if len < RECORD_OVERHEAD {
            return Err(RecordError::TooShort { len });
        }
        Ok(len)
    }

    /// If `buf` starts with a complete record, its total length (header included); `None` if more
    /// bytes are needed; an error as soon as the header is bad.
    pub fn complete_record(&self, buf: &[u8]) -> Result<Option<usize>, RecordError> {
        let Some(h) = buf.get(..4) else { return Ok(None) };
        let body = self.body_len([h[0], h[1], h[2], h[3]])?;
        let total = RECORD_HEADER + body;
        Ok((buf.len() >= total).then_some(total))
    }

    /// Check the nonce and decrypt a record body (`nonce ‖ tag ‖ ct`, without the length
    /// prefix) in place; returns the plaintext, which lies at `body[40..]`.
    pub fn open_in_place<'a>(&mut self, body: &'a mut [u8]) -> Result<&'a [u8], RecordError> {
        if body.len() < RECORD_OVERHEAD {
            return Err(RecordError::TooShort { len: body.len() });
        }
        let expected = nonce_for(self.counter);
        let (head, ct) = body.split_at_mut(RECORD_OVERHEAD);
        if head[..24] != expected {
            return Err(RecordError::BadNonce {
                expected: self.counter,
                got: hex::encode(&head[..24]),
            });
        }
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&head[24..40]);
        if !secretbox::open(&self.key, &expected, ct, &tag) {
            return Err(RecordError::DecryptFailed);
        }
        self.counter += 1;
        Ok(ct)
    }

    /// Open a whole record (length prefix included) in place; returns the plaintext.
    pub fn open_record<'a>(&mut self, record: &'a mut [u8]) -> Result<&'a [u8], RecordError> {
        let Some(h) = record.get(..4) else {
            return Err(RecordError::TooShort { len: record.len() });
        };
        let body = self.body_len([h[0], h[1], h[2], h[3]])?;
        if record.len() != RECORD_HEADER + body {
            return Err(RecordError::TooShort { len: record.len() });
        }
        self.open_in_place(&mut record[RECORD_HEADER..])
    }
}

/// Follows record boundaries in a received byte stream without decrypting, so a reader knows
/// where a transfer of a declared plaintext size ends and can refuse a bad length prefix (too large,
/// too short, or announcing more plaintext than declared) before buffering the record.
#[derive(Debug, Clone)]
pub struct RecordWalker {
    max_body: usize,
    header: [u8; 4],
    header_have: usize,
    body_left: usize,
    announced: u64,
    limit: u64,
}

/// The stream carried more than the declared amount of plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// A bad record header.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// More plaintext (or bytes after the last record) than the offer declared.
    #[error("peer sent more data than the {limit} bytes it declared")]
    TooMuchData {
        /// The declared size.
        limit: u64,
    },
}

impl RecordWalker {
    /// Walk records of at most `max_plaintext` bytes each, `limit` plaintext bytes in total.
    pub fn new(max_plaintext: usize, limit: u64) -> Self {
        RecordWalker {
            max_body: max_plaintext.saturating_add(RECORD_OVERHEAD),
            header: [0; 4],
            header_have: 0,
            body_left: 0,
            announced: 0,
            limit,
        }
    }

    /// True once records carrying exactly `limit` plaintext bytes have fully arrived.
    pub fn is_done(&self) -> bool {
        self.announced == self.limit && self.header_have == 0 && self.body_left == 0
    }

    /// Account for newly received bytes.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), WalkError> {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            if self.is_done() {
                return Err(WalkError::TooMuchData { limit: self.limit });
            }
            let n = (4 - self.header_have).min(data.len());
            self.header[self.header_have..self.header_have + n].copy_from_slice(&data[..n]);
            self.header_have += n;
            data = &data[n..];
            if self.header_have == 4 {
                self.header_have = 0;
                let len = u32::from_be_bytes(self.header) as u64;
                if len > self.max_body as u64 {
                    return Err(RecordError::TooLarge {
                        len,
                        max: self.max_body as u64,
                    }
                    .into());
                }
                if len < RECORD_OVERHEAD as u64 {
                    return Err(RecordError::TooShort { len: len as usize }.into());
                }
                self.announced += len - RECORD_OVERHEAD as u64;
                if self.announced > self.limit {
                    return Err(WalkError::TooMuchData { limit: self.limit });
                }
                self.body_left = len as usize;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transit::TransitKeys;

    /// docs/protocol.md §7.2: the first Sender record carrying `hello`.
    #[test]
    fn first_record_vector() {
        let tk = hex::decode("ab6f9490a2a47de9c51258a7910cb1989b5cf8012aa25d887aa452406c850c40").unwrap();
        let keys = TransitKeys::new(&tk);
        let mut s = RecordSealer::new(keys.sender_record_key());
        let rec = s.seal(b"hello").unwrap();
        assert_eq!(
            hex::encode(&rec),
            "0000002d000000000000000000000000000000000000000000000000685dc2e06498fdc699d5b7587f5afd5d1e7c656fae"
        );
        let mut o = RecordOpener::new(keys.sender_record_key(), DEFAULT_MAX_RECORD);
        let mut r = rec.clone();
        assert_eq!(o.open_record(&mut r).unwrap(), b"hello");
        // the receiver's key does not open it
        let mut o2 = RecordOpener::new(keys.receiver_record_key(), DEFAULT_MAX_RECORD);
        let mut r = rec.clone();
        assert_eq!(o2.open_record(&mut r).unwrap_err(), RecordError::DecryptFailed);
    }

    #[test]
    fn counter_and_order() {
        let key = [7u8; 32];
        let mut s = RecordSealer::new(&key);
        let a = s.seal(b"a").unwrap();
        let b = s.seal(b"b").unwrap();
        assert_eq!(&b[4..28], &nonce_for(1));
        let mut o = RecordOpener::new(&key, 100);
        let mut bb = b.clone();
        assert!(matches!(
            o.open_record(&mut bb),
            Err(RecordError::BadNonce { expected: 0, .. })
        ));
        let mut aa = a.clone();
        assert_eq!(o.open_record(&mut aa).unwrap(), b"a");
        let mut aa = a.clone();
        assert!(matches!(
            o.open_record(&mut aa),
            Err(RecordError::BadNonce { expected: 1, .. })
        ));
        let mut bb = b.clone();
        assert_eq!(o.open_record(&mut bb).unwrap(), b"b");
    }

    #[test]
    fn caps_and_tampering() {
        let key = [1u8; 32];
        let o = RecordOpener::new(&key, 1000);
        assert_eq!(
            o.body_len([0xff, 0xff, 0xff, 0xff]).unwrap_err(),
            RecordError::TooLarge {
                len: 0xffff_ffff,
                max: 1040
            }
        );
        assert_eq!(
            o.body_len([0, 0, 0, 39]).unwrap_err(),
            RecordError::TooShort { len: 39 }
        );
        assert_eq!(o.body_len([0, 0, 0, 40]).unwrap(), 40);
        assert_eq!(o.complete_record(&[0, 0]).unwrap(), None);
        assert_eq!(o.complete_record(&[0, 0, 0, 41, 0]).unwrap(), None);
        assert!(o.complete_record(&[0x10, 0, 0, 0]).is_err());

        let mut s = RecordSealer::new(&key);
        let mut rec = s.seal(&[9u8; 100]).unwrap();
        assert_eq!(o.complete_record(&rec).unwrap(), Some(rec.len()));
        let last = rec.len() - 1;
        rec[last] ^= 1;
        let mut o = RecordOpener::new(&key, 1000);
        assert_eq!(o.open_record(&mut rec).unwrap_err(), RecordError::DecryptFailed);
    }

    #[test]
    fn walker() {
        let key = [2u8; 32];
        let mut s = RecordSealer::new(&key);
        let mut wire = s.seal(&[1u8; 10]).unwrap();
        wire.extend(s.seal(&[1u8; 5]).unwrap());
        let mut w = RecordWalker::new(100, 15);
        for b in wire.chunks(3) {
            assert!(!w.is_done());
            w.feed(b).unwrap();
        }
        assert!(w.is_done());
        assert_eq!(w.feed(&[0]).unwrap_err(), WalkError::TooMuchData { limit: 15 });
        // announcing more than declared fails at the header
        let mut w = RecordWalker::new(100, 12);
        assert_eq!(
            w.feed(&wire[..54 + 4]).unwrap_err(),
            WalkError::TooMuchData { limit: 12 }
        );
        // a 4 GiB prefix fails at the header
        let mut w = RecordWalker::new(100, 1 << 40);
        assert!(matches!(
            w.feed(&[0xff, 0xff, 0xff, 0xff]),
            Err(WalkError::Record(RecordError::TooLarge { .. }))
        ));
        let w = RecordWalker::new(100, 0);
        assert!(w.is_done());
    }

    #[test]
    fn debug_hides_the_key() {
        let key = [0xabu8; 32];
        let s = format!("{:?} {:?}", RecordSealer::new(&key), RecordOpener::new(&key, 10));
        assert!(!s.contains("171") && !s.to_lowercase().contains("abab"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn empty_plaintext_and_in_place() {
        let key = [3u8; 32];
        let mut s = RecordSealer::new(&key);
        let mut buf = vec![0u8; 44 + 5];
        buf[44..].copy_from_slice(b"world");
        s.seal_in_place(&mut buf).unwrap();
        let e = s.seal(b"").unwrap();
        assert_eq!(e.len(), 44);
        let mut o = RecordOpener::new(&key, 10);
        assert_eq!(o.open_record(&mut buf).unwrap(), b"world");
        let mut e = e;
        assert_eq!(o.open_record(&mut e).unwrap(), b"");
        assert!(s.seal_in_place(&mut [0u8; 10]).is_err());
    }
}
