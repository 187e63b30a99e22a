//! Reorder: the receiving end of the record pipe. The peer numbers its application messages
//! `"0"`, `"1"`, …; this delivers them in strict numeric order with no gaps, buffering early
//! ones, within a bounded window (docs/protocol.md §2.1). Duplicates by phase were already dropped by
//! the mailbox; a phase that is not a canonical decimal number is not an app message.

use std::collections::BTreeMap;

/// Peer app messages may run at most this far ahead of the next expected phase.
pub const MAX_REORDER_WINDOW: u64 = 1024;
/// At most this many plaintext bytes are buffered waiting for a missing earlier phase.
pub const MAX_REORDER_BYTES: usize = 16 * 1024 * 1024;

/// `"0"`, `"17"` → Some; `"007"`, `"-1"`, `"1e3"`, absurdly long → None.
pub(crate) fn canonical_number(phase: &str) -> Option<u64> {
    if phase.is_empty() || !phase.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if phase.len() > 1 && phase.starts_with('0') {
        return None;
    }
    phase.parse().ok()
}

/// The reorder buffer.
#[derive(Debug, Default)]
pub(crate) struct Reorder {
    pub(super) next: u64,
    pub(super) buffer: BTreeMap<u64, Vec<u8>>,
    pub(super) bytes: usize,
}

impl Reorder {
    /// Accept message `n`; returns the messages now deliverable, in order. Err(reason) if the
    /// peer ran too far ahead (a protocol violation).
    pub(crate) fn push(&mut self, n: u64, plaintext: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        if n < self.next || self.buffer.contains_key(&n) {
            return Ok(Vec::new());
        }
        if n - self.next > MAX_REORDER_WINDOW
            || self.bytes.saturating_add(plaintext.len()) > MAX_REORDER_BYTES
        {
            return Err(format!("peer message {n} is too far out of order"));
        }
        self.bytes += plaintext.len();
        self.buffer.insert(n, plaintext);
        let mut out = Vec::new();
        while let Some(m) = self.buffer.remove(&self.next) {
            self.bytes -= m.len();
            self.next += 1;
            out.push(m);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers() {
        assert_eq!(canonical_number("0"), Some(0));
        assert_eq!(canonical_number("17"), Some(17));
        assert_eq!(canonical_number("007"), None);
        assert_eq!(canonical_number(""), None);
        assert_eq!(canonical_number("dilate-0"), None);
        assert_eq!(canonical_number("99999999999999999999999"), None);
    }

    #[test]
    fn delivers_in_order_and_bounds() {
        let mut r = Reorder::default();
        assert_eq!(r.push(2, b"c".to_vec()), Ok(vec![]));
        assert_eq!(r.push(1, b"b".to_vec()), Ok(vec![]));
        assert_eq!(
            r.push(0, b"a".to_vec()),
            Ok(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()])
        );
        assert_eq!(r.push(1, b"b".to_vec()), Ok(vec![]), "old phases are dropped");
        assert!(r.push(3 + MAX_REORDER_WINDOW + 1, vec![]).is_err());
        assert!(r.push(5, vec![0; MAX_REORDER_BYTES + 1]).is_err());
        assert_eq!(r.push(3, b"d".to_vec()), Ok(vec![b"d".to_vec()]));
    }
}
