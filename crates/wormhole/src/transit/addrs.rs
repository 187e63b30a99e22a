//! Our side of direct connections: one listening port on all interfaces (dual-stack when IPv6 is
//! available) and a `direct-tcp-v1` hint for every non-loopback IPv4 and IPv6 address.
//! Link-local IPv6 addresses are skipped (they cannot be dialled without a scope id).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use wormhole_proto::transit::{DirectHint, Hint};

fn bind(addr: SocketAddr, v6only: Option<bool>) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(v) = v6only {
        socket.set_only_v6(v)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    TcpListener::from_std(socket.into())
}

/// Bind one port on all interfaces: `[::]` accepting IPv4 too, or `0.0.0.0` without IPv6.
pub(crate) fn bind_listener() -> std::io::Result<TcpListener> {
    bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0), Some(false))
        .or_else(|_| bind(SocketAddr::from(([0, 0, 0, 0], 0)), None))
}

fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// Direct hints for `port` on every non-loopback address of this host (IPv4 first), or
/// `127.0.0.1` alone when there is none (as Python does).
pub fn local_direct_hints(port: u16) -> Vec<Hint> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).filter(usable).collect())
        .unwrap_or_default();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.into_iter()
        .map(|ip| {
            Hint::DirectTcp(DirectHint {
                hostname: ip.to_string(),
                port,
                priority: 0.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(!usable(&"127.0.0.1".parse().unwrap()));
        assert!(!usable(&"::1".parse().unwrap()));
        assert!(!usable(&"fe80::1".parse().unwrap()));
        assert!(usable(&"198.18.0.1".parse().unwrap()));
        assert!(usable(&"2001:db8::1".parse().unwrap()));
        let hints = local_direct_hints(1234);
        assert!(!hints.is_empty());
        for h in hints {
            let Hint::DirectTcp(d) = h else { panic!() };
            assert_eq!(d.port, 1234);
        }
    }

    #[tokio::test]
    async fn listener_binds() {
        let l = bind_listener().unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }
}
