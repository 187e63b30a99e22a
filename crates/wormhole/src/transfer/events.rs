//! What the transfer flows tell their caller while they run: the transit connection once it is
//! established (before any data flows), for the sender the end of the data (before the
//! receiver's confirmation), for a directory's receiver the start of the extraction, so a CLI
//! can print its lines at the right moments. Also the Python CLI's description of a transit
//! connection (`->tcp:HOST:PORT`, `<-HOST:PORT`, `->relay:tcp:HOST:PORT`).
//!
//! Only reporting lives here: nothing is printed, and a handler cannot change the flow.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::transit::{ConnectionKind, TransitConnection};

/// How a transfer's transit connection was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Direct (which side dialled) or relayed.
    pub kind: ConnectionKind,
    /// The remote address: the hint we dialled (`HOST:PORT`), the address that dialled our
    /// listener, or the relay's.
    pub peer: String,
}

impl ConnectionInfo {
    /// The description of an established connection.
    pub fn of(conn: &TransitConnection) -> ConnectionInfo {
        ConnectionInfo {
            kind: conn.kind(),
            peer: conn.peer().to_owned(),
        }
    }

    /// The connection described as the Python CLI does in `Sending (…)..`/`Receiving (…)..`:
    /// `->tcp:HOST:PORT` when we dialled the peer's direct hint, `<-HOST:PORT` when the peer
    /// dialled our listener (an IPv4-mapped IPv6 address shown as IPv4, as a Python listener
    /// sees it), `->relay:tcp:HOST:PORT` through a relay's TCP port and `->relay:ws://…` (or
    /// `wss://…`) through its WebSocket port.
    pub fn describe(&self) -> String {
        match self.kind {
            ConnectionKind::DirectOutbound => format!("->tcp:{}", self.peer),
            ConnectionKind::DirectInbound => match self.peer.parse::<SocketAddr>() {
                Ok(addr) => format!("<-{}:{}", addr.ip().to_canonical(), addr.port()),
                Err(_) => format!("<-{}", self.peer),
            },
            ConnectionKind::Relay if self.peer.starts_with("ws://") || self.peer.starts_with("wss://") => {
                format!("->relay:{}", self.peer)
            }
            ConnectionKind::Relay => format!("->relay:tcp:{}", self.peer),
        }
    }
}

/// Something that happened during a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferEvent {
    /// The transit connection is established; the data is about to flow.
    Connected(ConnectionInfo),
    /// Sender only: every byte is written; now waiting for the receiver's confirmation.
    DataSent,
    /// Receiver of a directory only: the whole zip arrived and was confirmed; now it is checked
    /// and extracted.
    Unpacking,
}

/// A handler for [`TransferEvent`]s, called on the transfer's task; it should return quickly.
pub type EventHandler = Arc<dyn Fn(&TransferEvent) + Send + Sync>;

/// Call `handler`, if any, with `event`.
pub(crate) fn emit(handler: Option<&EventHandler>, event: TransferEvent) {
    if let Some(h) = handler {
        h(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(kind: ConnectionKind, peer: &str) -> String {
        ConnectionInfo {
            kind,
            peer: peer.into(),
        }
        .describe()
    }

    #[test]
    fn python_forms() {
        assert_eq!(
            d(ConnectionKind::DirectOutbound, "198.18.0.1:41234"),
            "->tcp:198.18.0.1:41234"
        );
        assert_eq!(
            d(ConnectionKind::DirectInbound, "[::ffff:198.18.0.1]:37342"),
            "<-198.18.0.1:37342"
        );
        assert_eq!(d(ConnectionKind::DirectInbound, "127.0.0.1:5"), "<-127.0.0.1:5");
        // Python formats IPv6 hosts without brackets.
        assert_eq!(
            d(ConnectionKind::DirectInbound, "[2001:db8::1]:9"),
            "<-2001:db8::1:9"
        );
        assert_eq!(
            d(ConnectionKind::Relay, "transit.example:4001"),
            "->relay:tcp:transit.example:4001"
        );
    }
}
