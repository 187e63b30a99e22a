//! Incremental, byte-exact checking of what a transit peer must send before records: its
//! handshake, the relay's `ok\n`, and `go\n` (docs/protocol.md §4.3). The first mismatching byte fails.
//!
//! Sans-IO: feed whatever bytes arrived; the checker says how many it consumed (bytes after the
//! expected string belong to the next stage and are left to the caller).

/// What the Sender writes to the winning connection.
pub const GO: &[u8] = b"go\n";
/// What the Sender writes to losing connections.
pub const NEVERMIND: &[u8] = b"nevermind\n";
/// What a relay writes once both halves are paired.
pub const RELAY_OK: &[u8] = b"ok\n";

/// The peer sent something other than the expected bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: unexpected byte at offset {offset} (got {got:?} so far)")]
pub struct ExpectError {
    /// What was expected (`"peer handshake"`, `"relay ok"`, `"go"`).
    pub what: &'static str,
    /// Offset of the first wrong byte.
    pub offset: usize,
    /// The received prefix up to and including the wrong byte, lossily decoded (at most 120 chars).
    pub got: String,
}

/// Progress after feeding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectProgress {
    /// All expected bytes have arrived; `consumed` bytes of the last input belonged to us.
    Done {
        /// How many bytes of the input were consumed.
        consumed: usize,
    },
    /// More bytes are needed (the whole input was consumed).
    NeedMore,
}

/// Checks that an exact byte string arrives.
#[derive(Debug, Clone)]
pub struct Expect {
    what: &'static str,
    expected: Vec<u8>,
    matched: usize,
}

impl Expect {
    /// Expect exactly `expected`; `what` names it in errors.
    pub fn new(what: &'static str, expected: &[u8]) -> Self {
        Expect {
            what,
            expected: expected.to_vec(),
            matched: 0,
        }
    }

    /// Bytes still missing.
    pub fn remaining(&self) -> usize {
        self.expected.len() - self.matched
    }

    /// Feed received bytes.
    pub fn feed(&mut self, input: &[u8]) -> Result<ExpectProgress, ExpectError> {
        let want = &self.expected[self.matched..];
        let n = want.len().min(input.len());
        if let Some(i) = want.iter().zip(input).position(|(a, b)| a != b) {
            let mut got = self.expected[..self.matched + i].to_vec();
            got.push(input[i]);
            let got: String = String::from_utf8_lossy(&got).chars().take(120).collect();
            return Err(ExpectError {
                what: self.what,
                offset: self.matched + i,
                got,
            });
        }
        self.matched += n;
        if self.matched == self.expected.len() {
            Ok(ExpectProgress::Done { consumed: n })
        } else {
            Ok(ExpectProgress::NeedMore)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_by_byte_and_leftover() {
        let mut e = Expect::new("go", GO);
        assert_eq!(e.feed(b"g").unwrap(), ExpectProgress::NeedMore);
        assert_eq!(e.remaining(), 2);
        assert_eq!(e.feed(b"o\nREC").unwrap(), ExpectProgress::Done { consumed: 2 });
    }

    #[test]
    fn first_wrong_byte_fails() {
        let mut e = Expect::new("go", GO);
        let err = e.feed(b"nevermind\n").unwrap_err();
        assert_eq!(err.offset, 0);
        let mut e = Expect::new("relay ok", RELAY_OK);
        e.feed(b"o").unwrap();
        let err = e.feed(b"x").unwrap_err();
        assert_eq!(err.offset, 1);
        assert_eq!(err.got, "ox");
        // a relay's refusal fails on its first byte
        let mut e = Expect::new("relay ok", RELAY_OK);
        assert!(e.feed(b"bad handshake\n").is_err());
    }

    #[test]
    fn whole_handshake() {
        let keys = crate::transit::TransitKeys::new(b"123");
        let mut e = Expect::new("peer handshake", keys.sender_handshake());
        let mut wire = keys.sender_handshake().to_vec();
        wire.extend_from_slice(b"go\n");
        assert_eq!(e.feed(&wire[..50]).unwrap(), ExpectProgress::NeedMore);
        assert_eq!(
            e.feed(&wire[50..]).unwrap(),
            ExpectProgress::Done { consumed: 37 }
        );
        let mut e = Expect::new("peer handshake", keys.sender_handshake());
        assert!(e.feed(keys.receiver_handshake()).is_err());
    }
}
