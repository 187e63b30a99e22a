//! Sans-IO pairing of waiting relay connections by token (docs/protocol.md §4.6).
//!
//! Owns: the table of connections that sent a valid request and wait for a partner; the matching rule
//! (same token, different side, or either side legacy); choosing the partner (the oldest waiter that
//! matches) and the redundant waiters to drop when a pair forms.
//! Must not: touch sockets or clocks; the driver stores whatever it needs to wake a waiter in `W`.

use std::collections::HashMap;

use crate::handshake::{Request, Side, Token};

/// Identifies one connection for the life of the process.
pub type ConnId = u64;

#[derive(Debug)]
struct Waiter<W> {
    id: ConnId,
    side: Option<Side>,
    wake: W,
}

/// Result of registering a request.
#[derive(Debug)]
pub enum Registered<W> {
    /// No partner yet: the connection now waits under its token.
    Waiting,
    /// Paired with an earlier waiter, which is no longer registered.
    Paired {
        /// The waiter that was registered first (it becomes the "happy" half of the pair).
        partner: W,
        /// Every other connection that waited on the same token; they must be closed as redundant.
        redundant: Vec<W>,
    },
}

/// Waiting connections, keyed by token.
#[derive(Debug)]
pub struct Registry<W> {
    pending: HashMap<Token, Vec<Waiter<W>>>,
}

impl<W> Default for Registry<W> {
    fn default() -> Self {
        Self {
            pending: HashMap::new(),
        }
    }
}

fn sides_match(a: Option<&Side>, b: Option<&Side>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

impl<W> Registry<W> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register connection `id` with its request. Either it waits, or it pairs with the oldest matching
    /// waiter, and all other waiters on the token are handed back as redundant.
    pub fn register(&mut self, request: &Request, id: ConnId, wake: W) -> Registered<W> {
        let waiters = self.pending.entry(request.token).or_default();
        let found = waiters
            .iter()
            .position(|w| sides_match(w.side.as_ref(), request.side.as_ref()));
        match found {
            None => {
                waiters.push(Waiter {
                    id,
                    side: request.side,
                    wake,
                });
                Registered::Waiting
            }
            Some(index) => {
                let mut all = self.pending.remove(&request.token).unwrap_or_default();
                let partner = all.swap_remove(index).wake;
                let redundant = all.into_iter().map(|w| w.wake).collect();
                Registered::Paired { partner, redundant }
            }
        }
    }

    /// Remove connection `id` if it is still waiting on `token`; `None` means it was already taken
    /// (paired or dropped as redundant) and its wake value has been (or is being) used.
    pub fn unregister(&mut self, token: &Token, id: ConnId) -> Option<W> {
        let waiters = self.pending.get_mut(token)?;
        let index = waiters.iter().position(|w| w.id == id)?;
        let waiter = waiters.remove(index);
        if waiters.is_empty() {
            self.pending.remove(token);
        }
        Some(waiter.wake)
    }

    /// Number of tokens with at least one waiting connection (Python's `waiting` statistic).
    pub fn waiting_tokens(&self) -> usize {
        self.pending.len()
    }

    /// Number of waiting connections.
    pub fn waiting_connections(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(token: u8, side: Option<u8>) -> Request {
        Request {
            token: [token; 64],
            side: side.map(|s| [s; 16]),
        }
    }

    fn paired(r: Registered<u64>) -> (u64, Vec<u64>) {
        match r {
            Registered::Paired { partner, redundant } => (partner, redundant),
            Registered::Waiting => panic!("expected a pair"),
        }
    }

    #[test]
    fn different_sides_pair() {
        let mut reg = Registry::new();
        assert!(matches!(
            reg.register(&req(b'a', Some(b'1')), 1, 1),
            Registered::Waiting
        ));
        assert_eq!(reg.waiting_tokens(), 1);
        assert_eq!(paired(reg.register(&req(b'a', Some(b'2')), 2, 2)), (1, vec![]));
        assert_eq!(reg.waiting_tokens(), 0);
    }

    #[test]
    fn same_side_waits_and_extra_become_redundant() {
        let mut reg = Registry::new();
        assert!(matches!(
            reg.register(&req(b'a', Some(b'1')), 1, 1),
            Registered::Waiting
        ));
        assert!(matches!(
            reg.register(&req(b'a', Some(b'1')), 2, 2),
            Registered::Waiting
        ));
        assert_eq!(reg.waiting_connections(), 2);
        let (partner, redundant) = paired(reg.register(&req(b'a', Some(b'2')), 3, 3));
        assert_eq!(partner, 1, "the oldest matching waiter pairs");
        assert_eq!(redundant, vec![2]);
        assert_eq!(reg.waiting_connections(), 0);
    }

    #[test]
    fn different_tokens_do_not_pair() {
        let mut reg = Registry::new();
        reg.register(&req(b'a', Some(b'1')), 1, 1);
        assert!(matches!(
            reg.register(&req(b'b', Some(b'2')), 2, 2),
            Registered::Waiting
        ));
        assert_eq!(reg.waiting_tokens(), 2);
    }

    #[test]
    fn legacy_pairs_with_anyone() {
        let mut reg = Registry::new();
        reg.register(&req(b'a', Some(b'1')), 1, 1);
        assert_eq!(paired(reg.register(&req(b'a', None), 2, 2)).0, 1);
        reg.register(&req(b'b', None), 3, 3);
        assert_eq!(paired(reg.register(&req(b'b', None), 4, 4)).0, 3);
        reg.register(&req(b'c', None), 5, 5);
        assert_eq!(paired(reg.register(&req(b'c', Some(b'9')), 6, 6)).0, 5);
    }

    #[test]
    fn unregister_only_once() {
        let mut reg = Registry::new();
        reg.register(&req(b'a', Some(b'1')), 1, 10);
        assert_eq!(reg.unregister(&[b'a'; 64], 2), None);
        assert_eq!(reg.unregister(&[b'a'; 64], 1), Some(10));
        assert_eq!(reg.unregister(&[b'a'; 64], 1), None);
        assert_eq!(reg.waiting_tokens(), 0);
        reg.register(&req(b'a', Some(b'1')), 3, 30);
        paired(reg.register(&req(b'a', Some(b'2')), 4, 40));
        assert_eq!(reg.unregister(&[b'a'; 64], 3), None, "paired waiters are gone");
    }
}
