//! Loopback ports for tests and benchmarks: a free port, and waiting until something accepts.
//!
//! Owns probing 127.0.0.1 only; must not bind or dial anything else, and never waits unbounded.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many ports the kernel may offer that this process handed out before, before giving up.
const FRESH_TRIES: usize = 256;
/// The first port handed out from below the kernel's ephemeral range.
const FIXED_FIRST: u16 = 10_000;
/// The fewest ports between [`FIXED_FIRST`] and the ephemeral range for that range to be used.
const FIXED_MIN_SPAN: u16 = 1_000;

/// A free TCP port on 127.0.0.1 (free when probed; another binder may still race for it).
///
/// Never the same port twice in one process: a test that asks for several ports before its
/// child binds them (a forwarder's four services, say) must get distinct ones, and the kernel
/// may offer a just-released port again. Ports handed out are remembered for the process's life.
///
/// Taken from below the kernel's ephemeral range when there is room there (from port 10000,
/// at an offset that differs between processes), so no listener on port 0 and
/// no outgoing connection of any process can take a port between the probe and its use.
/// Otherwise the kernel picks.
pub fn try_free_port() -> std::io::Result<u16> {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match ephemeral_low() {
        Some(low) if low >= FIXED_FIRST + FIXED_MIN_SPAN => below_ephemeral(&mut given, low),
        _ => from_the_kernel(&mut given),
    }
}

/// The first port of the kernel's ephemeral range, if it can be read (read once per process).
fn ephemeral_low() -> Option<u16> {
    static LOW: std::sync::OnceLock<Option<u16>> = std::sync::OnceLock::new();
    *LOW.get_or_init(|| {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        range.split_whitespace().next()?.parse().ok()
    })
}

/// A bindable port in `FIXED_FIRST..low` not in `given`, searched from this process's offset.
fn below_ephemeral(given: &mut BTreeSet<u16>, low: u16) -> std::io::Result<u16> {
    let span = u32::from(low - FIXED_FIRST);
    let offset = process_offset() % span;
    for i in 0..span {
        let port = FIXED_FIRST + ((offset + i) % span) as u16;
        if !given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::other(format!(
        "no port of {FIXED_FIRST}..{low} is free and not handed out already"
    )))
}

/// Where this process starts searching: apart from other processes' starts (its id and the
/// time it first asked), and the same for all its later calls (they go on from there).
fn process_offset() -> u32 {
    static OFFSET: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        std::process::id().wrapping_mul(2_654_435_761) ^ nanos
    })
}

/// A port the kernel picks, not in `given`.
fn from_the_kernel(given: &mut BTreeSet<u16>) -> std::io::Result<u16> {
    for _ in 0..FRESH_TRIES {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(format!(
        "the kernel offered {FRESH_TRIES} ports in a row that this process had handed out already"
    )))
}

/// [`try_free_port`], panicking with the reason if 127.0.0.1 has no port to give (for tests).
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("cannot find a free port on 127.0.0.1: {e}"),
    }
}

/// A 127.0.0.1 port that refuses every connection for as long as the returned socket lives: it is
/// bound (so no other test can take the port meanwhile) but never listens, so a connect gets a
/// reset at once. For "nothing listens there" cases, instead of a [`free_port`] someone may reuse.
pub fn refusing_port() -> std::io::Result<(socket2::Socket, u16)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let port = socket
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| std::io::Error::other("bound socket has no IP address"))?;
    Ok((socket, port))
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
    fn free_ports_stay_out_of_the_ephemeral_range_when_there_is_room() {
        let Some(low) = ephemeral_low().filter(|l| *l >= FIXED_FIRST + FIXED_MIN_SPAN) else {
            return;
        };
        for _ in 0..50 {
            let port = free_port();
            assert!((FIXED_FIRST..low).contains(&port), "{port} not below {low}");
        }
    }

    #[test]
    fn free_ports_are_never_repeated() {
        let ports: Vec<u16> = (0..500).map(|_| free_port()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn refusing_port_refuses() {
        let (_hold, port) = refusing_port().unwrap();
        let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err(),
            "port held"
        );
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
