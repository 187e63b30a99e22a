//! The tiny HTTP/1.1 front: read one request head (bounded), answer `GET /` with
//! `Wormhole Relay\n`, upgrade `GET /v1` to a WebSocket, refuse everything else.
//!
//! Parsing is pure ([`parse_head`]); the async helpers only read and write bytes. Nothing here
//! knows about the mailbox protocol.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest accepted request head.
pub const MAX_HEAD: usize = 8192;
/// Time allowed for the request head to arrive.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// A parsed request head.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Header names (as sent) and values (trimmed).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Serve the root page.
    Root,
    /// Upgrade to a WebSocket; the value is the `Sec-WebSocket-Accept` header.
    Upgrade(String),
    /// Answer with this status line and message.
    Refuse(&'static str, &'static str),
}

/// Parse a request head (everything before the blank line).
pub fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let version = first.next()?;
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Some(Request {
        method,
        path,
        headers,
    })
}

/// Decide how to answer a request.
pub fn route(req: &Request) -> Route {
    match req.path.as_str() {
        "/" if req.method == "GET" || req.method == "HEAD" => Route::Root,
        "/" => Route::Refuse("405 Method Not Allowed", "method not allowed\n"),
        "/v1" | "/v1/" => {
            if req.method != "GET" {
                return Route::Refuse("405 Method Not Allowed", "method not allowed\n");
            }
            if !req.header_has_token("upgrade", "websocket") || !req.header_has_token("connection", "upgrade")
            {
                return Route::Refuse(
                    "426 Upgrade Required",
                    "this is a WebSocket endpoint: connect with ws://HOST:PORT/v1\n",
                );
            }
            if req.header("sec-websocket-version") != Some("13") {
                return Route::Refuse("426 Upgrade Required", "WebSocket version 13 required\n");
            }
            match req.header("sec-websocket-key") {
                Some(key) if !key.is_empty() => Route::Upgrade(derive_accept_key(key.as_bytes())),
                _ => Route::Refuse("400 Bad Request", "missing Sec-WebSocket-Key\n"),
            }
        }
        _ => Route::Refuse("404 Not Found", "not found\n"),
    }
}

/// Read a request head; returns it and any bytes read past its end.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = buf.split_off(pos + 4);
                buf.truncate(pos);
                return Ok((std::mem::take(&mut buf), rest));
            }
            if buf.len() > MAX_HEAD {
                return Err("request head too large");
            }
            buf.reserve(1024);
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err("connection closed during request"),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, read)
        .await
        .unwrap_or(Err("request head timed out"))
}

/// Write a small complete response and close.
pub async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, body: &str, head_only: bool) {
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if status.starts_with("426") {
        resp.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    resp.push_str("\r\n");
    if !head_only {
        resp.push_str(body);
    }
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Write the `101 Switching Protocols` answer.
pub async fn accept_upgrade<S: AsyncWrite + Unpin>(stream: &mut S, accept: &str) -> std::io::Result<()> {
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nServer: wormhole-server {}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn root_and_upgrade() {
        let r = parse_head(b"GET / HTTP/1.1\r\nHost: x").unwrap();
        assert_eq!(route(&r), Route::Root);
        let r = parse_head(
            b"GET /v1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        )
        .unwrap();
        // RFC 6455 §1.3 example.
        assert_eq!(route(&r), Route::Upgrade("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()));
    }

    #[test]
    fn refusals() {
        let r = parse_head(b"GET /v1 HTTP/1.1\r\nHost: x").unwrap();
        assert!(matches!(route(&r), Route::Refuse(s, _) if s.starts_with("426")));
        let r = parse_head(b"GET /nope HTTP/1.1").unwrap();
        assert!(matches!(route(&r), Route::Refuse(s, _) if s.starts_with("404")));
        let r = parse_head(b"POST / HTTP/1.1").unwrap();
        assert!(matches!(route(&r), Route::Refuse(s, _) if s.starts_with("405")));
        assert!(parse_head(b"garbage").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nno colon").is_none());
        assert!(parse_head(&[0xff, 0xfe]).is_none());
    }
}
