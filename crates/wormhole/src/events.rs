//! The delegated API mode: every wormhole event as one ordered stream ([`Events`]), instead of
//! awaiting `get_*` methods. The driver pushes; the application pulls.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use wormhole_proto::machine::{Mood, Welcome, WormholeError};

/// One event of the delegated mode, in the order the wormhole produced them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The server's welcome (motd, current_cli_version).
    Welcome(Welcome),
    /// The code is known.
    Code(String),
    /// The shared key exists (not yet confirmed by the peer).
    Key([u8; 32]),
    /// The peer is verified; the verifier (compare out of band for extra safety).
    Verifier([u8; 32]),
    /// The peer's `app_versions`.
    Versions(serde_json::Value),
    /// One application message from the peer.
    Message(Vec<u8>),
    /// The wormhole closed: `Ok(mood)` or why. Always the last event.
    Closed(Result<Mood, WormholeError>),
}

/// The receiving end of the delegated mode. Use [`Events::recv`] or the `Stream` impl.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<Event>,
}

impl Events {
    /// The next event; `None` after [`Event::Closed`] has been received.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl futures_util::Stream for Events {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
