//! The I/O steps of one transit connection during the race, each a future that ends with a
//! [`Step`] for the machine: dial, handshake (relay line and `ok`, both `transit … ready` lines),
//! the Receiver's wait for `go`/`nevermind`, the Sender's `go`, and a best-effort `nevermind`.
//!
//! Owns the transit bytes and telling a key mismatch from noise; must not decide anything about
//! the race (no timeouts of its own except the short best-effort writes; the machine times every
//! step).

use std::sync::Arc;
use std::time::Duration;

use crate::net::Dialer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wormhole_proto::transit::handshake::{GO, NEVERMIND, RELAY_OK};
use wormhole_proto::transit::race::ConnEvent;
use wormhole_proto::transit::{
    DirectHint, Expect, ExpectError, ExpectProgress, Role, TransitKeys, WebSocketHint,
};

use crate::transit::stream::{TransitStream, dial_websocket};

/// A connection between steps: the socket and bytes read ahead of the next stage.
pub(super) struct Link {
    pub(super) stream: TransitStream,
    pub(super) pending: Vec<u8>,
}

impl Link {
    pub(super) fn new(stream: TransitStream) -> Link {
        Link {
            stream,
            pending: Vec::new(),
        }
    }
}

/// How a step ended.
pub(super) enum Step {
    Dialed(Link),
    Handshaken(Link),
    Mismatched,
    GoSent(Link),
    Go(Link),
    Nevermind,
    Failed(String),
}

impl Step {
    /// The machine's event, and the connection if it lives on.
    pub(super) fn into_event(self) -> (ConnEvent, Option<Link>) {
        match self {
            Step::Dialed(l) => (ConnEvent::Dialed, Some(l)),
            Step::Handshaken(l) => (ConnEvent::HandshakeCompleted, Some(l)),
            Step::Mismatched => (ConnEvent::HandshakeMismatched, None),
            Step::GoSent(l) => (ConnEvent::GoSent, Some(l)),
            Step::Go(l) => (ConnEvent::GoReceived, Some(l)),
            Step::Nevermind => (ConnEvent::NevermindReceived, None),
            Step::Failed(why) => (ConnEvent::Failed(why), None),
        }
    }
}

pub(super) async fn dial(target: DirectHint, dialer: Arc<Dialer>) -> Step {
    match dialer.connect(&target.hostname, target.port).await {
        Ok(stream) => Step::Dialed(Link::new(TransitStream::Tcp(stream))),
        Err(e) => Step::Failed(e.to_string()),
    }
}

/// Open a WebSocket to a relay's WebSocket port; the relay line and everything after it then
/// travel as binary messages.
pub(super) async fn dial_relay_websocket(
    target: WebSocketHint,
    dialer: Arc<Dialer>,
    extra_ca_file: Option<std::path::PathBuf>,
) -> Step {
    match dial_websocket(&target.url, &dialer, extra_ca_file).await {
        Ok(stream) => Step::Dialed(Link::new(stream)),
        Err(e) => Step::Failed(e.to_string()),
    }
}

/// Relay request and `ok` (relays only), then both handshakes: the Sender writes first; the
/// Receiver answers only after the Sender's arrived, as Go's receiver does. Senders never wait
/// for the receiver, so this cannot deadlock; and it keeps our reply from being already
/// buffered when wormhole-william's sender reads it, which otherwise triggers a race in that
/// sender that closes its own relay connection.
pub(super) async fn handshake(
    mut link: Link,
    role: Role,
    keys: Arc<TransitKeys>,
    relay_request: Option<Arc<Vec<u8>>>,
) -> Step {
    if let Some(req) = relay_request {
        if let Err(e) = link.stream.write_all(&req).await {
            return Step::Failed(e.to_string());
        }
        if let Err(f) = expect(&mut link, Expect::new("relay ok", RELAY_OK)).await {
            return Step::Failed(plain(f));
        }
    }
    let theirs = keys.peer_handshake(role);
    let ours = keys.our_handshake(role);
    if role == Role::Sender
        && let Err(e) = link.stream.write_all(ours).await
    {
        return Step::Failed(e.to_string());
    }
    if let Err(f) = expect(&mut link, Expect::new("peer handshake", theirs)).await {
        let step = classify_handshake(f, theirs);
        if role == Role::Receiver && matches!(step, Step::Mismatched) {
            // Still show ours (as Python's receiver always does), so the Sender sees the
            // mismatch too and can stop waiting instead of timing out.
            let _ = tokio::time::timeout(Duration::from_secs(1), link.stream.write_all(ours)).await;
        }
        return step;
    }
    if role == Role::Receiver
        && let Err(e) = link.stream.write_all(ours).await
    {
        return Step::Failed(e.to_string());
    }
    Step::Handshaken(link)
}

/// The Receiver reads the Sender's decision: `go\n` or `nevermind\n`.
pub(super) async fn await_go(mut link: Link) -> Step {
    // The two differ in their first byte.
    let first = match expect_one_of(&mut link).await {
        Ok(b) => b,
        Err(f) => return Step::Failed(plain(f)),
    };
    let (what, word) = if first == NEVERMIND[0] {
        ("nevermind", NEVERMIND)
    } else {
        ("go", GO)
    };
    match expect(&mut link, Expect::new(what, word)).await {
        Ok(()) if what == "go" => Step::Go(link),
        Ok(()) => Step::Nevermind,
        Err(f) => Step::Failed(plain(f)),
    }
}

/// The Sender tells the winner.
pub(super) async fn send_go(mut link: Link) -> Step {
    match link.stream.write_all(GO).await {
        Ok(()) => Step::GoSent(link),
        Err(e) => Step::Failed(e.to_string()),
    }
}

/// The Sender tells a loser, best effort; the connection is dropped afterwards.
pub(super) async fn send_nevermind(mut link: Link) {
    let _ = tokio::time::timeout(Duration::from_millis(200), link.stream.write_all(NEVERMIND)).await;
}

/// Why [`expect`] stopped.
enum ExpectFail {
    /// A byte differed from the expected string.
    Mismatch(ExpectError),
    /// The connection failed or closed first.
    Io(String),
}

/// Read at least one byte into `pending` and return the first, without consuming it.
async fn expect_one_of(link: &mut Link) -> Result<u8, ExpectFail> {
    if link.pending.is_empty() {
        let mut b = [0u8; 1];
        read_some(&mut link.stream, &mut b).await?;
        link.pending.push(b[0]);
    }
    Ok(link.pending[0])
}

async fn read_some(stream: &mut TransitStream, buf: &mut [u8]) -> Result<usize, ExpectFail> {
    let n = stream
        .read(buf)
        .await
        .map_err(|err| ExpectFail::Io(err.to_string()))?;
    if n == 0 {
        return Err(ExpectFail::Io("connection closed during handshake".into()));
    }
    Ok(n)
}

/// Read until `e` is satisfied, starting with the bytes already in `link.pending`; leaves any
/// extra bytes there.
async fn expect(link: &mut Link, mut e: Expect) -> Result<(), ExpectFail> {
    loop {
        if !link.pending.is_empty() {
            match e.feed(&link.pending).map_err(ExpectFail::Mismatch)? {
                ExpectProgress::Done { consumed } => {
                    link.pending.drain(..consumed);
                    return Ok(());
                }
                ExpectProgress::NeedMore => link.pending.clear(),
            }
        }
        let mut buf = [0u8; 256];
        let want = e.remaining().min(buf.len());
        // Read no more than the expected bytes, so nothing of the next stage is swallowed early.
        let n = read_some(&mut link.stream, &mut buf[..want]).await?;
        link.pending.extend_from_slice(&buf[..n]);
    }
}

/// Length of the key-derived hex in a handshake (`transit sender <64 hex> ready\n\n`).
const HANDSHAKE_KEY_HEX: usize = 64;
/// What follows the key-derived hex in a handshake.
const HANDSHAKE_TAIL: &[u8] = b" ready\n\n";

/// Classify a failed `expect` of the peer's handshake `expected`: a first wrong byte inside the
/// key-derived hex (everything before it matched) means the peer derived another transit key.
fn classify_handshake(f: ExpectFail, expected: &[u8]) -> Step {
    match f {
        ExpectFail::Mismatch(e) => {
            let key_start = expected
                .len()
                .saturating_sub(HANDSHAKE_KEY_HEX + HANDSHAKE_TAIL.len());
            if key_start > 0 && (key_start..key_start + HANDSHAKE_KEY_HEX).contains(&e.offset) {
                Step::Mismatched
            } else {
                Step::Failed(format!(
                    "{}: unexpected byte at offset {} (not a transit peer of this role)",
                    e.what, e.offset
                ))
            }
        }
        ExpectFail::Io(m) => Step::Failed(m),
    }
}

fn plain(f: ExpectFail) -> String {
    match f {
        ExpectFail::Mismatch(e) => format!("{}: unexpected byte at offset {}", e.what, e.offset),
        ExpectFail::Io(m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_difference_in_the_key_part_proves_another_key() {
        let ours = TransitKeys::new(b"one");
        let theirs = TransitKeys::new(b"two");
        let expected = ours.peer_handshake(Role::Receiver);
        let feed = |got: &[u8]| {
            let mut e = Expect::new("peer handshake", expected);
            match e.feed(got) {
                Err(err) => classify_handshake(ExpectFail::Mismatch(err), expected),
                Ok(p) => panic!("no mismatch: {p:?}"),
            }
        };
        assert!(matches!(
            feed(theirs.our_handshake(Role::Sender)),
            Step::Mismatched
        ));
        // Another role's handshake, or something that is not transit at all, proves nothing.
        assert!(matches!(
            feed(theirs.our_handshake(Role::Receiver)),
            Step::Failed(_)
        ));
        assert!(matches!(feed(b"GET / HTTP/1.1\r\n"), Step::Failed(_)));
        assert!(matches!(
            classify_handshake(ExpectFail::Io("closed".into()), expected),
            Step::Failed(_)
        ));
    }
}
