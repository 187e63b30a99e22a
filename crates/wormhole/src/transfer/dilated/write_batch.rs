//! Received file data held briefly so that several records reach the file in one `writev`:
//! a 64 KiB record per `write` costs a system call (and a wake-up of the writer) per record.
//!
//! Owns: the records not yet written (shared with the buffers they arrived in: no copy) and
//! their total, bounded by [`WriteBatch::LIMIT`]. Must not: hash or judge the data (the caller
//! does both as each record arrives), or hold data across a point where the caller reports it
//! written.

use std::io::{IoSlice, Write};

use bytes::Bytes;

/// Data records not yet written, in order.
#[derive(Debug, Default)]
pub(super) struct WriteBatch {
    bufs: Vec<Bytes>,
    len: usize,
}

impl WriteBatch {
    /// Most bytes held before they are written.
    pub const LIMIT: usize = 256 << 10;

    /// Adds `data`; writes everything held once [`Self::LIMIT`] is reached.
    pub fn push(&mut self, data: Bytes, out: &mut impl Write) -> std::io::Result<()> {
        self.len += data.len();
        self.bufs.push(data);
        if self.len >= Self::LIMIT {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Writes everything held, in order.
    pub fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = self.bufs.iter().map(|b| IoSlice::new(b)).collect();
        crate::transit::write_all_vectored(out, &mut slices)?;
        drop(slices);
        self.bufs.clear();
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most 3 bytes a call, from the first slice only.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = b.len().min(3);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_keep_order_and_limit_flushes() {
        let mut out = Trickle(Vec::new());
        let mut b = WriteBatch::default();
        for part in ["abcde", "", "f", "ghijklmno"] {
            b.push(Bytes::from(part), &mut out).unwrap();
        }
        assert!(out.0.is_empty(), "held below the limit");
        b.flush(&mut out).unwrap();
        assert_eq!(out.0, b"abcdefghijklmno");
        b.flush(&mut out).unwrap();
        let big = Bytes::from(vec![7u8; WriteBatch::LIMIT]);
        b.push(big, &mut Vec::new()).unwrap();
        assert_eq!(b.len, 0, "written at the limit");
    }
}
