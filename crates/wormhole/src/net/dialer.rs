//! Outgoing TCP connections: straight to the destination, or through a SOCKS5 proxy (Tor's SOCKS
//! port) with the host name resolved by the proxy.
//!
//! Owns: making one TCP connection to `host:port` either way, and the SOCKS5 exchange on it
//! (whose bytes are `wormhole_proto::socks5`'s). Must not: decide what to dial, or time anything
//! (callers bound every dial).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wormhole_proto::socks5::{self, Socks5Error};

/// How outgoing connections are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Dialer {
    /// Straight to the destination (names resolved by the system).
    #[default]
    Direct,
    /// Through the SOCKS5 proxy at `HOST:PORT` (Tor's SOCKS port), which resolves names.
    Socks5 {
        /// The proxy's address.
        proxy: String,
    },
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The destination could not be reached (or resolved).
    #[error("{target}: {source}")]
    Tcp {
        /// `host:port`.
        target: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The SOCKS proxy itself could not be reached.
    #[error("cannot reach the SOCKS proxy {proxy} (is Tor running?): {source}")]
    Proxy {
        /// The proxy's address.
        proxy: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The proxy refused or failed the CONNECT.
    #[error("{target} through the SOCKS proxy {proxy}: {source}")]
    Socks {
        /// `host:port`.
        target: String,
        /// The proxy's address.
        proxy: String,
        /// What the proxy said.
        source: Socks5Error,
    },
    /// The proxy closed the connection during the exchange.
    #[error("{target}: the SOCKS proxy {proxy} closed the connection")]
    ProxyClosed {
        /// `host:port`.
        target: String,
        /// The proxy's address.
        proxy: String,
    },
}

impl Dialer {
    /// Whether connections go through a proxy (Tor): then we must not listen or reveal our
    /// addresses.
    pub fn is_proxied(&self) -> bool {
        matches!(self, Dialer::Socks5 { .. })
    }

    /// One TCP connection to `host:port` (an IPv6 host without brackets), `TCP_NODELAY` set.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        let target = || match host.contains(':') {
            true => format!("[{host}]:{port}"),
            false => format!("{host}:{port}"),
        };
        let stream = match self {
            Dialer::Direct => TcpStream::connect((host, port))
                .await
                .map_err(|source| DialError::Tcp {
                    target: target(),
                    source,
                })?,
            Dialer::Socks5 { proxy } => socks_connect(proxy, host, port).await.map_err(|e| match e {
                Step::Proxy(source) => DialError::Proxy {
                    proxy: proxy.clone(),
                    source,
                },
                Step::Socks(source) => DialError::Socks {
                    target: target(),
                    proxy: proxy.clone(),
                    source,
                },
                Step::Closed => DialError::ProxyClosed {
                    target: target(),
                    proxy: proxy.clone(),
                },
            })?,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

enum Step {
    Proxy(std::io::Error),
    Socks(Socks5Error),
    Closed,
}

async fn socks_connect(proxy: &str, host: &str, port: u16) -> Result<TcpStream, Step> {
    let mut s = TcpStream::connect(proxy).await.map_err(Step::Proxy)?;
    let request = socks5::connect_request(host, port).map_err(Step::Socks)?;
    s.write_all(&socks5::GREETING).await.map_err(|_| Step::Closed)?;
    read_until(&mut s, socks5::parse_method_reply).await?;
    s.write_all(&request).await.map_err(|_| Step::Closed)?;
    read_until(&mut s, socks5::parse_connect_reply).await?;
    Ok(s)
}

/// Read exactly one reply, byte by byte (nothing past it may be consumed: it is the destination's).
async fn read_until(
    s: &mut TcpStream,
    parse: fn(&[u8]) -> Result<Option<usize>, Socks5Error>,
) -> Result<(), Step> {
    // The longest reply: 4 + 1 + 255 + 2 bytes.
    let mut buf = Vec::with_capacity(262);
    loop {
        if let Some(_n) = parse(&buf).map_err(Step::Socks)? {
            return Ok(());
        }
        let mut byte = [0u8; 1];
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => {
                // A refusal cut short still says why.
                parse(&buf).map_err(Step::Socks)?;
                return Err(Step::Closed);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot SOCKS5 proxy that checks the request and answers `code`.
    async fn proxy(code: u8, expect_host: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut g = [0u8; 3];
            s.read_exact(&mut g).await.unwrap();
            assert_eq!(g, socks5::GREETING);
            s.write_all(&[5, 0]).await.unwrap();
            let mut head = [0u8; 5];
            s.read_exact(&mut head).await.unwrap();
            assert_eq!(&head[..4], &[5, 1, 0, 3]);
            let mut name = vec![0u8; usize::from(head[4]) + 2];
            s.read_exact(&mut name).await.unwrap();
            assert_eq!(&name[..name.len() - 2], expect_host);
            s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
            s.write_all(b"hello").await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn a_name_goes_to_the_proxy_unresolved_and_the_stream_follows() {
        let p = proxy(0, b"mailbox.onion").await;
        let d = Dialer::Socks5 { proxy: p };
        let mut s = d.connect("mailbox.onion", 80).await.unwrap();
        let mut got = [0u8; 5];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    #[tokio::test]
    async fn a_refusal_names_its_reason() {
        let p = proxy(4, b"gone.example").await;
        let d = Dialer::Socks5 { proxy: p };
        let e = d.connect("gone.example", 80).await.unwrap_err();
        assert!(matches!(e, DialError::Socks { .. }), "{e}");
        assert!(e.to_string().contains("host unreachable"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_proxy_says_so() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = Dialer::Socks5 { proxy: addr }
            .connect("x.example", 1)
            .await
            .unwrap_err();
        assert!(matches!(e, DialError::Proxy { .. }), "{e}");
        assert!(e.to_string().contains("is Tor running?"), "{e}");
    }
}
