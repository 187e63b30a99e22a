//! Order: the peer's `pake` must reach Key before anything else reaches Receive. Peer messages
//! that arrive before the key exists are held (bounded) and released in arrival order once it
//! does (docs/protocol.md §2.6 "O"; we hold until the key rather than until the pake, which also
//! covers a pake that arrives before our own code is known).

use std::collections::VecDeque;

/// At most this many non-pake peer messages are held before the key; more is a protocol error.
pub(crate) const MAX_HELD: usize = 64;

/// A peer message (side, phase, body).
pub(crate) type PeerMsg = (String, String, Vec<u8>);

/// The order machine.
#[derive(Debug, Default)]
pub(crate) struct Order {
    pub(super) held: VecDeque<PeerMsg>,
}

impl Order {
    /// Hold a non-pake message until the key exists. Err if too many are held.
    pub(crate) fn hold(&mut self, msg: PeerMsg) -> Result<(), ()> {
        if self.held.len() >= MAX_HELD {
            return Err(());
        }
        self.held.push_back(msg);
        Ok(())
    }

    /// The key exists: everything held, in arrival order.
    pub(crate) fn release(&mut self) -> Vec<PeerMsg> {
        self.held.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_in_order_and_bounds() {
        let mut o = Order::default();
        for i in 0..MAX_HELD {
            assert!(o.hold(("p".into(), i.to_string(), vec![])).is_ok());
        }
        assert!(o.hold(("p".into(), "x".into(), vec![])).is_err());
        let out = o.release();
        assert_eq!(out.len(), MAX_HELD);
        assert_eq!(out[1].1, "1");
        assert!(o.release().is_empty());
    }
}
