//! Joining two TCP connections with `splice(2)` through a pipe per direction: the kernel moves the
//! bytes from one socket to the other, none pass through user space (Linux; the copy loop of
//! [`crate::splice`] serves WebSocket legs and other systems).
//!
//! Owns: the per-direction pipe (made when the direction first has data, so an idle pair holds no
//! pipe; sized to the relay's buffer size, at least [`MIN_PIPE_SIZE`]), readiness through tokio's reactor (`try_io`), byte
//! counting and the byte cap with the same rules as the copy loop (a direction reads only once its
//! pipe is empty; the read that crosses the cap is not forwarded), the first-side-to-end rule, and
//! when to raise a source's receive low-water mark: after a read of [`BULK_READ`] or more it is
//! [`BULK_LOWAT`], so a paced sender's many small writes cost one wake-up, and a wait longer than
//! [`LOWAT_GRACE`] puts it back to 1, so a tail, a pause or an interactive exchange is never held
//! back longer than that.
//! Must not: use `unsafe` (the system calls are rustix's safe wrappers and [`crate::lowat`]), or
//! know about tokens, usage or WebSockets.

use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice as splice_fds};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::lowat::set_rcvlowat;

use crate::splice::{Carried, End};

/// The pipe size asked for at least. A pipe holds references to the socket's pages, not memory of
/// its own, so a large one costs little; on loopback 1 MiB pipes used about a third less relay CPU
/// per GiB than 256 KiB ones (0.25 against 0.38 s/GiB, scripts/bench-relay). 1 MiB is also the
/// kernel's default ceiling for unprivileged processes (/proc/sys/fs/pipe-max-size).
pub const MIN_PIPE_SIZE: usize = 1 << 20;

/// Most bytes moved by one `splice` call (and the pipe size asked for): `--buffer-size`, but at
/// least [`MIN_PIPE_SIZE`].
fn chunk(buffer_size: usize) -> usize {
    buffer_size
        .max(MIN_PIPE_SIZE)
        .clamp(crate::splice::MIN_BUFFER_SIZE, crate::splice::MAX_BUFFER_SIZE)
}

/// A read at least this large means the direction is in bulk flow: its source's low-water mark
/// is raised to [`BULK_LOWAT`].
pub const BULK_READ: usize = 64 * 1024;
/// The source's low-water mark in bulk flow: the kernel wakes the relay once this much waits.
pub const BULK_LOWAT: usize = 256 * 1024;
/// How long a raised mark may hold back bytes below it: a wait longer than this lowers the mark
/// to 1 again (the flow paused or ended, or it is interactive).
pub const LOWAT_GRACE: Duration = Duration::from_millis(4);

/// One direction: socket → pipe → socket.
#[derive(Debug)]
struct Direction {
    /// (read end, write end), made on first data.
    pipe: Option<(OwnedFd, OwnedFd)>,
    /// Bytes in the pipe, not yet moved to the destination.
    in_pipe: usize,
    /// Bytes read from the source so far.
    bytes: u64,
    chunk: usize,
    /// The source's receive low-water mark as last set (1: the kernel's default).
    lowat: usize,
    /// While the mark is raised: when the current wait stops holding bytes back (made the
    /// first time the mark is raised, so a pair that never carries bulk has no timer).
    grace: Option<Pin<Box<Sleep>>>,
}

enum Step {
    Eof,
    Cap,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Direction {
    fn new(buffer_size: usize) -> Self {
        Direction {
            pipe: None,
            in_pipe: 0,
            bytes: 0,
            chunk: chunk(buffer_size),
            lowat: 1,
            grace: None,
        }
    }

    fn make_pipe(&mut self) -> io::Result<()> {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A larger pipe means fewer system calls per byte; the kernel may give less (the
        // unprivileged ceiling is /proc/sys/fs/pipe-max-size), and then we ask for less per call.
        let size = fcntl_setpipe_size(&w, self.chunk).unwrap_or(64 * 1024);
        self.chunk = self.chunk.min(size.max(4096));
        self.pipe = Some((r, w));
        Ok(())
    }

    fn poll_move(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        total: &AtomicU64,
        cap: Option<u64>,
    ) -> Poll<io::Result<Step>> {
        loop {
            if self.in_pipe > 0 {
                let Some((r, _)) = &self.pipe else {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                };
                ready!(to.poll_write_ready(cx))?;
                let moved = to.try_io(Interest::WRITABLE, || {
                    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
                    Ok(splice_fds(r, None, to, None, self.in_pipe, flags)?)
                });
                match moved {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => self.in_pipe = self.in_pipe.saturating_sub(n),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                continue;
            }
            if from.poll_read_ready(cx)?.is_pending() {
                // The grace timer is polled (and so armed) only while the mark is raised.
                let grace_over = self.lowat > 1
                    && self
                        .grace
                        .as_mut()
                        .is_some_and(|g| g.as_mut().poll(cx).is_ready());
                if grace_over {
                    // Bytes below the mark may be waiting: lowering it makes the kernel report
                    // them readable.
                    set_rcvlowat(from, 1)?;
                    self.lowat = 1;
                    continue;
                }
                return Poll::Pending;
            }
            if self.pipe.is_none() {
                self.make_pipe()?;
            }
            let Some((_, w)) = &self.pipe else {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            };
            // Under a cap, read at most one byte past what is left: that byte proves the cap
            // crossed, and is not forwarded.
            let want = match cap {
                Some(c) => {
                    let left = c.saturating_sub(total.load(Ordering::Relaxed));
                    self.chunk
                        .min(usize::try_from(left).unwrap_or(usize::MAX).saturating_add(1))
                }
                None => self.chunk,
            };
            let read = from.try_io(Interest::READABLE, || {
                let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
                Ok(splice_fds(from, None, w, None, want, flags)?)
            });
            match read {
                Ok(0) => return Poll::Ready(Ok(Step::Eof)),
                Ok(n) => {
                    self.bytes += n as u64;
                    let so_far = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    if cap.is_some_and(|c| so_far > c) {
                        return Poll::Ready(Ok(Step::Cap));
                    }
                    self.in_pipe = n;
                    if n >= BULK_READ && self.lowat == 1 {
                        self.raise_lowat(from);
                    }
                }
                Err(e) if would_block(&e) => {
                    if let Some(grace) = self.grace.as_mut().filter(|_| self.lowat > 1) {
                        grace.as_mut().reset(Instant::now() + LOWAT_GRACE);
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Raise the source's mark to [`BULK_LOWAT`]. A refusal only costs the saving: the mark
    /// stays at 1. (Lowering it again, in `poll_move`, must work: a failure there ends the pair,
    /// as bytes below a raised mark could wait forever.)
    fn raise_lowat(&mut self, from: &TcpStream) {
        if let Err(e) = set_rcvlowat(from, BULK_LOWAT) {
            tracing::debug!("SO_RCVLOWAT refused, the mark stays at 1: {e}");
            return;
        }
        self.lowat = BULK_LOWAT;
        self.grace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + LOWAT_GRACE)));
    }
}

/// Relay between two TCP connections with `splice(2)` until either side ends, fails, or the pair
/// carried more than `cap` bytes (both directions together). Same contract as
/// [`crate::splice::splice`]: `live` grows with every chunk, `carried` is kept current so it
/// survives cancellation.
pub async fn splice_tcp(
    a: &TcpStream,
    b: &TcpStream,
    cap: Option<u64>,
    buffer_size: usize,
    live: &AtomicU64,
    carried: &mut Carried,
) -> End {
    let mut ab = Direction::new(buffer_size);
    let mut ba = Direction::new(buffer_size);
    let total = AtomicU64::new(0);
    poll_fn(|cx| {
        let r = ab.poll_move(cx, a, b, &total, cap);
        let before = carried.a_to_b;
        carried.a_to_b = ab.bytes;
        live.fetch_add(ab.bytes - before, Ordering::Relaxed);
        match r {
            Poll::Ready(Ok(Step::Eof)) => return Poll::Ready(End::ClosedA),
            Poll::Ready(Ok(Step::Cap)) => return Poll::Ready(End::ByteCap),
            Poll::Ready(Err(e)) => return Poll::Ready(End::Error(e)),
            Poll::Pending => {}
        }
        let r = ba.poll_move(cx, b, a, &total, cap);
        let before = carried.b_to_a;
        carried.b_to_a = ba.bytes;
        live.fetch_add(ba.bytes - before, Ordering::Relaxed);
        match r {
            Poll::Ready(Ok(Step::Eof)) => Poll::Ready(End::ClosedB),
            Poll::Ready(Ok(Step::Cap)) => Poll::Ready(End::ByteCap),
            Poll::Ready(Err(e)) => Poll::Ready(End::Error(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, s)
    }

    #[tokio::test]
    async fn moves_bytes_both_ways_and_ends_with_the_first_close() {
        let (mut client_a, relay_a) = tcp_pair().await;
        let (mut client_b, relay_b) = tcp_pair().await;
        let live = AtomicU64::new(0);
        let task = tokio::spawn(async move {
            let mut carried = Carried::default();
            let end = splice_tcp(&relay_a, &relay_b, None, 64 * 1024, &live, &mut carried).await;
            (end, carried, live.load(Ordering::Relaxed))
        });
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        client_b.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        client_a.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        let writer = tokio::spawn(async move {
            client_a.write_all(&sent).await.unwrap();
            client_a.shutdown().await.unwrap();
            client_a
        });
        let mut got = vec![0u8; data.len()];
        client_b.read_exact(&mut got).await.unwrap();
        assert!(got == data, "bytes arrive intact and in order");
        // A's FIN ends the pair (no half-close).
        let (end, carried, live) = task.await.unwrap();
        assert!(matches!(end, End::ClosedA), "{end:?}");
        assert_eq!((carried.a_to_b, carried.b_to_a), (3_000_000, 5));
        assert_eq!(live, carried.a_to_b + carried.b_to_a);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn the_read_that_crosses_the_cap_is_not_forwarded() {
        let (mut client_a, relay_a) = tcp_pair().await;
        let (mut client_b, relay_b) = tcp_pair().await;
        let task = tokio::spawn(async move {
            let live = AtomicU64::new(0);
            let mut carried = Carried::default();
            splice_tcp(&relay_a, &relay_b, Some(1000), 64 * 1024, &live, &mut carried).await
        });
        client_a.write_all(&[7u8; 1000]).await.unwrap();
        let mut got = vec![0u8; 1000];
        client_b.read_exact(&mut got).await.unwrap();
        client_a.write_all(&[8u8; 10]).await.unwrap();
        assert!(matches!(task.await.unwrap(), End::ByteCap));
    }

    /// A pair whose relay-side socket can hold a megabyte, so the relay reads bulk in large
    /// pieces as it does once the kernel has grown a busy socket's buffer.
    async fn roomy_tcp_pair() -> (TcpStream, TcpStream) {
        let (c, s) = tcp_pair().await;
        socket2::SockRef::from(&s).set_recv_buffer_size(1 << 20).unwrap();
        socket2::SockRef::from(&c).set_send_buffer_size(1 << 20).unwrap();
        (c, s)
    }

    /// Polls `check` until it holds, for at most 20 s (a loaded machine is slow, never wrong).
    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn bulk_flow_raises_the_mark_and_a_pause_lowers_it_so_the_tail_arrives() {
        let (mut client_a, relay_a) = roomy_tcp_pair().await;
        let (mut client_b, relay_b) = tcp_pair().await;
        let relay_a = std::sync::Arc::new(relay_a);
        let watched = relay_a.clone();
        let task = tokio::spawn(async move {
            let live = AtomicU64::new(0);
            let mut carried = Carried::default();
            splice_tcp(&relay_a, &relay_b, None, 64 * 1024, &live, &mut carried).await;
            carried
        });
        let lowat = || crate::lowat::rcvlowat(&*watched).unwrap();
        assert_eq!(lowat(), 1);
        // Bulk: the relay reads 64 KiB or more at once and raises the mark while the flow lasts.
        const BULK: usize = 64 << 20;
        let writer = tokio::spawn(async move {
            let chunk = vec![1u8; 64 * 1024];
            for _ in 0..BULK / chunk.len() {
                client_a.write_all(&chunk).await.unwrap();
            }
            client_a
        });
        let mut buf = vec![0u8; 256 * 1024];
        let (mut got, mut raised) = (0, false);
        while got < BULK {
            got += client_b.read(&mut buf).await.unwrap();
            raised |= lowat() == BULK_LOWAT;
        }
        assert!(raised, "the mark was raised during bulk flow");
        let mut client_a = writer.await.unwrap();
        // Once nothing flows, the grace runs out and the mark is back at 1.
        eventually("the mark is lowered after a pause", || lowat() == 1).await;
        // A tail far below the mark, after more bulk, still arrives: the grace lowers the mark.
        client_a.write_all(&[2u8; 300 * 1024]).await.unwrap();
        let mut got = vec![0u8; 300 * 1024];
        client_b.read_exact(&mut got).await.unwrap();
        client_a.write_all(b"tail").await.unwrap();
        let mut tail = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), client_b.read_exact(&mut tail))
            .await
            .expect("the tail below the mark arrives")
            .unwrap();
        assert_eq!(&tail, b"tail");
        // Small interactive messages never raise it.
        for _ in 0..50 {
            client_a.write_all(b"ping").await.unwrap();
            client_b.read_exact(&mut tail).await.unwrap();
            assert_eq!(lowat(), 1);
        }
        drop(client_a);
        let carried = task.await.unwrap();
        assert_eq!(carried.a_to_b, (BULK + 300 * 1024 + 4 + 50 * 4) as u64);
    }
}
