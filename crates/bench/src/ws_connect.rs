//! Opening a load client's WebSocket connection, optionally from a chosen source address.
//!
//! The mailbox server limits connections and nameplates per client address, and a benchmark's
//! clients all run on one machine. So a run can spread its well-behaved clients over several
//! loopback addresses ([`spread_sources`]: `127.0.1.1`, `127.0.1.2`, …, round robin, like
//! clients behind many addresses) and put a flooder on an address of its own ([`connect_from`]).
//! Linux answers the whole of 127.0.0.0/8 on the loopback interface, so nothing needs setting up.
//!
//! Owns: the TCP connect (with the source bind) and the WebSocket upgrade. Must not: speak the
//! mailbox protocol or keep statistics.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The WebSocket of a load client.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most source addresses [`spread_sources`] accepts.
pub const MAX_SOURCES: usize = 250;

static SOURCES: OnceLock<Vec<IpAddr>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// From now on, connections made by [`connect`] come from `127.0.1.1` … `127.0.1.N` in turn
/// (`n` capped at [`MAX_SOURCES`]; 0 or 1 … the default source, as the kernel picks). Only
/// the first call counts.
pub fn spread_sources(n: usize) {
    let n = n.min(MAX_SOURCES);
    if n <= 1 {
        return;
    }
    let ips = (1..=n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8)))
        .collect();
    let _ = SOURCES.set(ips);
}

/// Connect to `url`, from the next spread source address if [`spread_sources`] was called.
pub async fn connect(url: &str, deadline: Instant) -> Result<Ws, String> {
    let source = SOURCES
        .get()
        .map(|ips| ips[NEXT.fetch_add(1, Ordering::Relaxed) % ips.len()]);
    connect_from(url, source, deadline).await
}

/// Connect to `url` (`ws://IP:PORT/…`) from `source` (any port), or from the kernel's choice.
pub async fn connect_from(url: &str, source: Option<IpAddr>, deadline: Instant) -> Result<Ws, String> {
    let Some(source) = source else {
        let c = tokio_tungstenite::connect_async_with_config(url, None, true);
        return match timeout_at(deadline, c).await {
            Err(_) => Err("timed out in the WebSocket handshake".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok((ws, _))) => Ok(ws),
        };
    };
    let addr = server_addr(url)?;
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = match timeout_at(deadline, socket.connect(addr)).await {
        Err(_) => return Err("timed out connecting".into()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let upgrade = tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), None);
    match timeout_at(deadline, upgrade).await {
        Err(_) => Err("timed out in the WebSocket handshake".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// The `IP:PORT` of a `ws://IP:PORT/path` URL (names are not resolved: benchmarks use IPs).
fn server_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url:.100}: only ws:// URLs can be given a source address"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    hostport
        .parse()
        .map_err(|_| format!("{url:.100}: give the server as ws://IP:PORT/…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            server_addr("ws://127.0.0.1:4000/v1").unwrap(),
            "127.0.0.1:4000".parse().unwrap()
        );
        assert_eq!(
            server_addr("ws://[::1]:5/v1").unwrap(),
            "[::1]:5".parse().unwrap()
        );
        assert!(server_addr("wss://127.0.0.1:4000/v1").is_err());
        assert!(server_addr("ws://localhost:4000/v1").is_err());
    }
}
