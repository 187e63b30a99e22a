//! Relay settings: limits with their defaults, listen-address parsing, and binding listeners.
//!
//! Owns: the `Limits` a running relay enforces, turning `--listen`-style strings into socket addresses
//! (`PORT`, `ADDR:PORT`, `[V6]:PORT`, or Twisted's `tcp:PORT[:interface=ADDR]`), and binding dual-stack
//! listeners.
//! Must not: accept connections or parse the relay protocol.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

use crate::RelayError;

/// Limits of our own (the Python relay has none). `None` means unlimited.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Concurrent client connections (waiting, relaying or still handshaking); more are closed at once.
    pub max_connections: usize,
    /// Concurrent connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Time a new connection has to send its request (TCP) or to upgrade and send it (WebSocket).
    pub handshake_timeout: Duration,
    /// Time a connection may wait for its partner before it is closed as lonely.
    pub max_wait: Option<Duration>,
    /// Bytes (both directions) a pair may carry before it is closed.
    pub max_bytes: Option<u64>,
    /// Time a pair may stay connected after it was paired.
    pub max_time: Option<Duration>,
    /// Bytes of copy buffer per direction of a relaying pair (allocated when data first flows).
    pub buffer_size: usize,
    /// Time given to a polite close (flush, FIN, WebSocket close) before the socket is just dropped.
    pub close_timeout: Duration,
    /// Join two TCP legs with `splice(2)` (false: the copy loop, as for WebSocket legs).
    pub zero_copy: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            handshake_timeout: Duration::from_secs(crate::DEFAULT_HANDSHAKE_TIMEOUT_SECS),
            max_wait: Some(Duration::from_secs(crate::DEFAULT_MAX_WAIT_SECS)),
            max_bytes: None,
            max_time: None,
            buffer_size: crate::splice::DEFAULT_BUFFER_SIZE,
            close_timeout: Duration::from_secs(5),
            zero_copy: true,
        }
    }
}

/// Parse a listen address: `4001`, `0.0.0.0:4001`, `[::]:4001`, `localhost:4001` is *not* resolved
/// (give an IP), or Twisted's `tcp:4001`, `tcp:4001:interface=127.0.0.1`, `tcp:4001:interface=\:\:`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, RelayError> {
    let bad = || RelayError::BadAddress { addr: s.to_string() };
    let s_trim = s.trim();
    if let Some(rest) = s_trim.strip_prefix("tcp:") {
        let mut parts = rest.splitn(2, ':');
        let port: u16 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let ip = match parts.next() {
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            Some(opt) => {
                let iface = opt.strip_prefix("interface=").ok_or_else(bad)?.replace('\\', "");
                let iface = iface.trim_start_matches('[').trim_end_matches(']');
                iface.parse().map_err(|_| bad())?
            }
        };
        return Ok(SocketAddr::new(ip, port));
    }
    if let Ok(port) = s_trim.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    s_trim.parse().map_err(|_| bad())
}

/// Bind a TCP listener; `[::]` also accepts IPv4 (dual-stack) where the system allows it, and falls
/// back to `0.0.0.0` on systems without IPv6.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, RelayError> {
    match bind_exact(addr) {
        Err(e) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            let v4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port());
            match bind_exact(v4) {
                Ok(l) => {
                    tracing::warn!("cannot bind {addr} ({e}); listening on {v4} (IPv4 only)");
                    Ok(l)
                }
                Err(_) => Err(e),
            }
        }
        other => other,
    }
}

fn bind_exact(addr: SocketAddr) -> Result<TcpListener, RelayError> {
    let err = |source| RelayError::Bind {
        addr: addr.to_string(),
        source,
    };
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(err)?;
    if let SocketAddr::V6(v6) = addr
        && v6.ip().is_unspecified()
        && let Err(e) = socket2::SockRef::from(&socket).set_only_v6(false)
    {
        tracing::warn!("cannot make {addr} dual-stack, IPv4 clients may not reach it: {e}");
    }
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("4001").unwrap(), "[::]:4001".parse().unwrap());
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(parse_listen("[::1]:4002").unwrap(), "[::1]:4002".parse().unwrap());
        assert_eq!(parse_listen("tcp:4001").unwrap(), "[::]:4001".parse().unwrap());
        assert_eq!(
            parse_listen("tcp:4001:interface=127.0.0.1").unwrap(),
            "127.0.0.1:4001".parse().unwrap()
        );
        assert_eq!(
            parse_listen(r"tcp:4001:interface=\:\:").unwrap(),
            "[::]:4001".parse().unwrap()
        );
        for bad in ["", "tcp:", "tcp:x", "host:4001", "tcp:1:iface=1.2.3.4", "70000"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn dual_stack_accepts_v4() {
        let l = bind("[::]:0".parse().unwrap()).unwrap();
        let port = l.local_addr().unwrap().port();
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(c.is_ok(), "IPv4 client reaches [::] listener");
    }
}
