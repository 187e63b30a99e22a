//! Opening the mailbox WebSocket for a `ws://` or `wss://` URL (and, with other limits, a transit
//! relay's WebSocket port).
//!
//! Owns: URL → host and port, TCP, TLS (for `wss://`), the WebSocket handshake, and the limit on
//! how long all of it may take. Must not: retry (the machine decides).

use std::time::Duration;

use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use url::Url;
use wormhole_proto::machine::MAX_FRAME_BYTES;

use super::stream::MailboxStream;
use super::{ConnectError, NetworkOptions, tls};

/// The mailbox connection.
pub(crate) type Ws = WebSocketStream<MailboxStream>;

/// A connection attempt (TCP, TLS and WebSocket handshakes) that takes longer fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// Where a mailbox URL points.
struct Target {
    tls: bool,
    /// Host name or IP address, without IPv6 brackets.
    host: String,
    port: u16,
}

fn target(url: &str) -> Result<Target, ConnectError> {
    let bad = || ConnectError::BadUrl { url: url.to_owned() };
    let parsed = Url::parse(url).map_err(|_| bad())?;
    let tls = match parsed.scheme() {
        "ws" => false,
        "wss" => true,
        _ => return Err(bad()),
    };
    let host = match parsed.host().ok_or_else(bad)? {
        url::Host::Domain(d) => d.to_owned(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    let port = parsed.port_or_known_default().ok_or_else(bad)?;
    Ok(Target { tls, host, port })
}

/// Open the mailbox WebSocket at `url`.
pub(crate) async fn connect(url: &str, net: &NetworkOptions) -> Result<Ws, ConnectError> {
    connect_with(url, net, ws_config()).await
}

/// Open a WebSocket at `url` with these settings (a transit relay's WebSocket port uses its own
/// limits); the same steps, errors and time limit as the mailbox's.
pub(crate) async fn connect_with(
    url: &str,
    net: &NetworkOptions,
    config: WebSocketConfig,
) -> Result<Ws, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(url, net, config)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout {
            url: url.to_owned(),
            limit: CONNECT_TIMEOUT,
        }),
    }
}

async fn connect_inner(url: &str, net: &NetworkOptions, config: WebSocketConfig) -> Result<Ws, ConnectError> {
    let t = target(url)?;
    let tcp = net
        .dialer
        .connect(&t.host, t.port)
        .await
        .map_err(|source| ConnectError::Tcp {
            url: url.to_owned(),
            source,
        })?;
    let stream = if t.tls {
        let config = tls::client_config(net.extra_ca_file.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|_| ConnectError::BadUrl { url: url.to_owned() })?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| match tls::certificate_problem(&source) {
                Some(reason) => ConnectError::Certificate {
                    url: url.to_owned(),
                    reason,
                },
                None => ConnectError::Tls {
                    url: url.to_owned(),
                    source,
                },
            })?;
        MailboxStream::Tls(Box::new(tls))
    } else {
        MailboxStream::Plain(tcp)
    };
    let (ws, _resp) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| ConnectError::WebSocket {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_scheme() {
        let t = target("wss://relay.example:443/v1").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("relay.example", 443));
        let t = target("wss://relay.example/v1").unwrap();
        assert_eq!(t.port, 443);
        let t = target("ws://[::1]:4000/v1").unwrap();
        assert!(!t.tls);
        assert_eq!((t.host.as_str(), t.port), ("::1", 4000));
        assert!(matches!(target("http://x/v1"), Err(ConnectError::BadUrl { .. })));
        assert!(matches!(target("not a url"), Err(ConnectError::BadUrl { .. })));
    }
}
