//! The buffers a sender reads file data into, one per DATA record, reused once Dilation is done
//! with them.
//!
//! A record's bytes stay alive after it is written: Dilation keeps each record until the peer
//! acknowledges it (to send it again on a new connection). Asking the allocator for a fresh
//! 64 KiB buffer per record makes it hand memory back to the kernel and take new, zeroed pages
//! again: about one page fault per 4 KiB sent. Here the buffer of an acknowledged record goes
//! back to a free list when its last [`Bytes`] handle is dropped, and the next record is read
//! into it.
//!
//! Owns: the free list (bounded). Must not: read files or look at the bytes.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Most free buffers kept: enough for the records Dilation holds unacknowledged (4 MiB by
/// default) plus those queued on their way to it.
const MAX_FREE: usize = 96;

/// A pool of record buffers; clones share it.
#[derive(Clone, Default)]
pub(super) struct RecordPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// A buffer of the pool that goes back to it when dropped.
struct Pooled {
    buf: Vec<u8>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Ok(mut free) = self.free.lock()
            && free.len() < MAX_FREE
        {
            free.push(buf);
        }
    }
}

impl RecordPool {
    /// An empty buffer with room for at least `capacity` bytes: a free one if one is large
    /// enough, else a new one.
    pub(super) fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut free| {
            let i = free.iter().rposition(|b| b.capacity() >= capacity)?;
            Some(free.swap_remove(i))
        });
        reused.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// `buf` as shared bytes whose memory returns to the pool when the last handle is dropped.
    pub(super) fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            free: Arc::clone(&self.free),
        })
    }

    #[cfg(test)]
    fn free_len(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_every_handle_is_dropped() {
        let pool = RecordPool::default();
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"record");
        let ptr = buf.as_ptr();
        let shared = pool.share(buf);
        let slice = shared.slice(1..3);
        assert_eq!(&shared[..], b"record");
        drop(shared);
        assert_eq!(pool.free_len(), 0, "a slice still holds it");
        assert_eq!(&slice[..], b"ec");
        drop(slice);
        assert_eq!(pool.free_len(), 1);
        let again = pool.take(1000);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty() && again.capacity() >= 1000);
    }

    #[test]
    fn a_small_free_buffer_is_not_handed_out_for_a_larger_record() {
        let pool = RecordPool::default();
        drop(pool.share(Vec::with_capacity(10)));
        assert!(pool.take(100).capacity() >= 100);
        assert_eq!(pool.free_len(), 1);
    }

    #[test]
    fn the_free_list_is_bounded() {
        let pool = RecordPool::default();
        let held: Vec<Bytes> = (0..MAX_FREE + 10).map(|_| pool.share(pool.take(16))).collect();
        drop(held);
        assert_eq!(pool.free_len(), MAX_FREE);
    }
}
