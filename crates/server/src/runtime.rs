//! The tokio runtime of the `wormhole-server` binary, sized by `--io-threads`.
//!
//! Owns: turning the flag into a runtime (0: tokio's default, one worker per CPU; 1: a
//! single-threaded runtime; N: N workers). Must not: know about the servers it runs. The
//! mailbox engine and the SQLite checkpointer are separate OS threads in every case, so
//! `--io-threads` only sizes the network side. In-process callers ([`crate::serve_mailbox`])
//! bring their own runtime, and the flag does not apply to them.

use tokio::runtime::{Builder, Runtime};

/// Largest accepted `--io-threads` (a typo guard; more workers than this helps nothing).
pub const MAX_IO_THREADS: usize = 1024;

/// Build the runtime for `--io-threads N`.
pub fn build(io_threads: usize) -> std::io::Result<Runtime> {
    match io_threads {
        0 => Builder::new_multi_thread().enable_all().build(),
        1 => Builder::new_current_thread().enable_all().build(),
        n if n <= MAX_IO_THREADS => Builder::new_multi_thread().worker_threads(n).enable_all().build(),
        n => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--io-threads {n} is more than the limit of {MAX_IO_THREADS}"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn thread_counts_follow_the_flag() {
        let one = build(1).unwrap();
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let three = build(3).unwrap();
        assert_eq!(three.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert_eq!(three.metrics().num_workers(), 3);
        let default = build(0).unwrap();
        assert_eq!(default.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert!(default.metrics().num_workers() >= 1);
        let err = build(MAX_IO_THREADS + 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
