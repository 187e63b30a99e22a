//! Reuse of sealed-frame buffers between the endpoint that seals frames and the driver that
//! writes them.
//!
//! Every record leaves as a freshly sealed frame of up to about 64 KiB. Asking the allocator for
//! each one meant the kernel handing out, and zeroing, fresh pages for most of them: 86 % of a
//! sender's page faults on a large file. The endpoint takes its buffers from a [`FramePool`],
//! and the driver puts each one back once the socket took its bytes.
//!
//! Owns: a bounded list of empty buffers. Must not: hold a buffer with bytes in it, grow past
//! [`FramePool::MAX_BUFFERS`], or keep buffers too small or too large to be worth keeping.

use std::sync::{Arc, Mutex, MutexGuard};

/// Empty buffers for sealed frames, shared by the endpoint and its driver (clones share one
/// list).
#[derive(Debug, Clone, Default)]
pub struct FramePool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FramePool {
    /// Most buffers kept: more than the driver's writer has in flight at once (about 1 MiB).
    pub const MAX_BUFFERS: usize = 32;
    /// Smallest capacity kept: a buffer for an ACK or a PING is cheap to allocate.
    pub const MIN_KEPT: usize = 16 << 10;
    /// Largest capacity kept: a coalesced or odd-sized buffer is not held on to.
    pub const MAX_KEPT: usize = 128 << 10;

    /// An empty pool.
    pub fn new() -> FramePool {
        FramePool::default()
    }

    /// An empty buffer with room for at least `capacity` bytes: a kept one if there is one big
    /// enough (a smaller one is dropped, not grown: growing would copy its old contents).
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity >= Self::MIN_KEPT
            && let Some(buf) = self.lock().pop()
            && buf.capacity() >= capacity
        {
            return buf;
        }
        Vec::with_capacity(capacity)
    }

    /// Hands `buf` back: emptied and kept if its size is worth keeping and the pool has room,
    /// dropped otherwise.
    pub fn put(&self, mut buf: Vec<u8>) {
        if !(Self::MIN_KEPT..=Self::MAX_KEPT).contains(&buf.capacity()) {
            return;
        }
        buf.clear();
        let mut free = self.lock();
        if free.len() < Self::MAX_BUFFERS {
            free.push(buf);
        }
    }

    /// How many buffers are kept now.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // The list holds only empty buffers, so one left by a panicking holder is still sound.
        self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_put_back_is_taken_again_empty() {
        let pool = FramePool::new();
        let mut buf = pool.take(64 << 10);
        buf.extend_from_slice(&[9; 1000]);
        let ptr = buf.as_ptr();
        pool.clone().put(buf);
        assert_eq!(pool.kept(), 1);
        let again = pool.take(60 << 10);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
        assert!(again.capacity() >= 60 << 10);
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn small_requests_and_odd_sizes_bypass_the_pool() {
        let pool = FramePool::new();
        pool.put(Vec::with_capacity(64 << 10));
        let small = pool.take(100);
        assert!(small.capacity() >= 100);
        assert_eq!(pool.kept(), 1, "an ACK's buffer does not use up a kept one");
        pool.put(Vec::with_capacity(100));
        pool.put(Vec::with_capacity(FramePool::MAX_KEPT + 1));
        assert_eq!(pool.kept(), 1);
    }

    #[test]
    fn a_kept_buffer_too_small_for_the_request_is_not_used() {
        let pool = FramePool::new();
        pool.put(Vec::with_capacity(FramePool::MIN_KEPT));
        let buf = pool.take(100 << 10);
        assert!(buf.capacity() >= 100 << 10);
        assert_eq!(
            pool.kept(),
            0,
            "the small one was dropped, not handed out or kept"
        );
    }

    #[test]
    fn the_pool_is_bounded() {
        let pool = FramePool::new();
        for _ in 0..FramePool::MAX_BUFFERS + 10 {
            pool.put(Vec::with_capacity(64 << 10));
        }
        assert_eq!(pool.kept(), FramePool::MAX_BUFFERS);
    }
}
