//! Joining two TCP connections with `splice(2)` through a pipe per direction: the kernel moves the
//! bytes from one socket to the other, none pass through user space (Linux; the copy loop of
//! [`crate::splice`] serves WebSocket legs and other systems).
//!
//! Owns: the per-direction pipe (made when the direction first has data, so an idle pair holds no
//! pipe; sized to the relay's buffer size, at least [`MIN_PIPE_SIZE`]), readiness through tokio's reactor (`try_io`), byte
//! counting and the byte cap with the same rules as the copy loop (a direction reads only once its
//! pipe is empty; the read that crosses the cap is not forwarded), and the first-side-to-end rule.
//! Must not: use `unsafe` (the system calls are rustix's safe wrappers), or know about tokens,
//! usage or WebSockets.

use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice as splice_fds};
use tokio::io::Interest;
use tokio::net::TcpStream;

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
            ready!(from.poll_read_ready(cx))?;
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
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
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
}
