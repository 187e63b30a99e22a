//! Loopback ports for tests and benchmarks: a free port, and waiting until something accepts.
//!
//! Owns probing 127.0.0.1 only; must not bind or dial anything else, and never waits unbounded.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released; another binder may still race for it).
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// [`try_free_port`], panicking with the reason if 127.0.0.1 has no port to give (for tests).
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("cannot find a free port on 127.0.0.1: {e}"),
    }
}

/// Poll `addr` with TCP connects until one succeeds or `timeout` passes. Returns false on timeout.
pub fn wait_until_accepting(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        // Tests run in parallel and another may take the port between the probe and our bind, so
        // require one of a few probes to be bindable, not every one.
        let bound = (0..5).any(|_| {
            let port = free_port();
            assert_ne!(port, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        assert!(bound, "no probed port was bindable");
    }

    #[test]
    fn waits_for_a_listener_and_gives_up_without_one() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        assert!(wait_until_accepting(addr, Duration::from_secs(30)));
        drop(l);
        assert!(!wait_until_accepting(addr, Duration::from_millis(100)));
    }
}
