//! The outgoing queue of one connection: the engine pushes TEXT frames, the connection task
//! takes them all at once.
//!
//! It replaces a bounded channel to keep idle connections small: an empty queue holds no
//! allocation (the task swaps the whole deque out when it drains it), and the struct itself is
//! about a hundred bytes. The queue is bounded: a push beyond the limit closes the outbox, and
//! the connection task then closes the WebSocket (the client is too slow). It must not block
//! the engine: pushes take a short uncontended lock and never wait.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue was full; the outbox is now closed.
    Full,
    /// The outbox was already closed.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Utf8Bytes>,
    closed: bool,
}

/// A bounded single-consumer queue of outgoing frames.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
    limit: usize,
}

impl Outbox {
    /// An empty, open outbox holding at most `limit` frames.
    pub fn new(limit: usize) -> Self {
        Outbox {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            limit,
        }
    }

    /// Queue a frame (engine side).
    pub fn push(&self, frame: Utf8Bytes) -> Result<(), PushError> {
        {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if g.closed {
                return Err(PushError::Closed);
            }
            if g.queue.len() >= self.limit {
                g.closed = true;
                g.queue = VecDeque::new();
                drop(g);
                self.notify.notify_one();
                return Err(PushError::Full);
            }
            g.queue.push_back(frame);
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Close the outbox: the consumer gets `None` once it has drained what is queued.
    pub fn close(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.notify.notify_one();
    }

    /// Wait for frames and take all of them (connection side); `None` once closed and drained.
    /// Cancel-safe: frames stay queued if the future is dropped.
    pub async fn take(&self) -> Option<VecDeque<Utf8Bytes>> {
        loop {
            {
                let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                if !g.queue.is_empty() {
                    return Some(std::mem::take(&mut g.queue));
                }
                if g.closed {
                    return None;
                }
            }
            // A push after the check above leaves a permit, so this cannot miss it.
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn push_take_close() {
        let o = Arc::new(Outbox::new(3));
        o.push("a".into()).unwrap();
        o.push("b".into()).unwrap();
        let got: Vec<_> = o.take().await.unwrap().into_iter().collect();
        assert_eq!(got, vec![Utf8Bytes::from("a"), Utf8Bytes::from("b")]);
        let o2 = o.clone();
        let waiter = tokio::spawn(async move { o2.take().await.map(|q| q.len()) });
        tokio::task::yield_now().await;
        o.push("c".into()).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(1));
        o.push("d".into()).unwrap();
        o.close();
        assert_eq!(o.push("e".into()), Err(PushError::Closed));
        assert_eq!(o.take().await.map(|q| q.len()), Some(1));
        assert!(o.take().await.is_none());
    }

    #[tokio::test]
    async fn overflow_closes() {
        let o = Outbox::new(2);
        o.push("a".into()).unwrap();
        o.push("b".into()).unwrap();
        assert_eq!(o.push("c".into()), Err(PushError::Full));
        assert!(o.take().await.is_none(), "a full outbox is dropped and closed");
    }
}
