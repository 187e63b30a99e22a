//! The wormhole driver's end of Dilation: what the Dilation task needs from the mailbox (the
//! shared key, the peer's `can-dilate` list, the peer's `dilate-N` bodies in order, the end of
//! the wormhole). Bodies that arrive before [`crate::Wormhole::dilate`] is called are held here
//! (a Python peer may send `please` first), up to [`MAX_EARLY`].
//!
//! Owns: that buffer and the channel to the Dilation task. Must not: interpret the bodies (the
//! endpoint does) or number our own phases (the Boss does).

use tokio::sync::mpsc;
use wormhole_proto::machine::{Boss, WormholeError};

/// How many `dilate-N` bodies are held before `dilate()` is called; more end the port.
pub(crate) const MAX_EARLY: usize = 256;

/// What the mailbox tells the Dilation task.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// The shared key (the Dilation PSK is derived from it).
    Key([u8; 32]),
    /// The peer's `can-dilate` list (empty: it cannot dilate).
    PeerCanDilate(Vec<String>),
    /// One decrypted `dilate-N` body, in order.
    Mailbox(Vec<u8>),
    /// Too many bodies arrived before `dilate()`; Dilation cannot start.
    Overflow,
    /// The wormhole closed.
    Closed(Option<WormholeError>),
}

/// Held in the wormhole driver.
#[derive(Debug, Default)]
pub(crate) struct DilationPort {
    early: Vec<Vec<u8>>,
    overflow: bool,
    tx: Option<mpsc::UnboundedSender<Inbound>>,
    attached: bool,
}

impl DilationPort {
    /// `dilate()` was called: a receiver primed with everything known so far, or `None` when
    /// it was called before.
    pub(crate) fn attach(&mut self, boss: &Boss) -> Option<mpsc::UnboundedReceiver<Inbound>> {
        if self.attached {
            return None;
        }
        self.attached = true;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(k) = boss.key() {
            let _ = tx.send(Inbound::Key(k));
        }
        if let Some(v) = boss.peer_versions() {
            let list = wormhole_proto::dilation::manager::peer_can_dilate(v);
            let _ = tx.send(Inbound::PeerCanDilate(list));
        }
        for body in self.early.drain(..) {
            let _ = tx.send(Inbound::Mailbox(body));
        }
        if self.overflow {
            let _ = tx.send(Inbound::Overflow);
        }
        self.tx = Some(tx);
        Some(rx)
    }

    fn send(&self, m: Inbound) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }

    pub(crate) fn key(&self, key: [u8; 32]) {
        self.send(Inbound::Key(key));
    }

    pub(crate) fn versions(&self, boss: &Boss) {
        if let Some(v) = boss.peer_versions() {
            self.send(Inbound::PeerCanDilate(
                wormhole_proto::dilation::manager::peer_can_dilate(v),
            ));
        }
    }

    pub(crate) fn mailbox(&mut self, body: Vec<u8>) {
        if self.tx.is_some() {
            self.send(Inbound::Mailbox(body));
        } else if self.early.len() < MAX_EARLY {
            self.early.push(body);
        } else if !self.overflow {
            tracing::warn!("more than {MAX_EARLY} Dilation messages before dilate() was called");
            self.overflow = true;
        }
    }

    pub(crate) fn closed(&mut self, error: Option<WormholeError>) {
        self.send(Inbound::Closed(error));
        self.tx = None;
    }
}
