//! Mailbox: opens the mailbox once its id and a connection are known, keeps every outbound
//! message until the server echoes it back (re-sending all of them after a reconnect), drops
//! inbound duplicates by phase, and closes with a mood, re-sending `close` after reconnects until
//! `closed` (docs/protocol.md §2.6 "M").
//!
//! It does not decrypt or interpret phases; it only filters and forwards.

use std::collections::HashSet;

use super::rendezvous::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Mailbox id unknown (or known but never opened while connected).
    Active,
    /// `close` requested with this mood.
    Closing(String),
    /// Closed (or nothing to close).
    Done,
}

/// What an inbound `message` turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rx {
    /// A peer message seen for the first time.
    Theirs {
        /// Peer side.
        side: String,
        /// Phase.
        phase: String,
        /// Body.
        body: Vec<u8>,
    },
    /// Our echo, a duplicate, or a message after close: nothing to do.
    Nothing,
}

/// The mailbox machine.
#[derive(Debug)]
pub(crate) struct Mailbox {
    side: String,
    mailbox: Option<String>,
    /// Whether `open` went out on the current connection.
    open_sent: bool,
    /// Outbound messages not yet echoed, in send order.
    pending: Vec<(String, Vec<u8>)>,
    /// Peer phases already delivered.
    processed: HashSet<String>,
    state: State,
}

impl Mailbox {
    pub(crate) fn new(side: &str) -> Self {
        Mailbox {
            side: side.to_owned(),
            mailbox: None,
            open_sent: false,
            pending: Vec::new(),
            processed: HashSet::new(),
            state: State::Active,
        }
    }

    fn open_and_drain(&mut self, out: &mut Vec<Command>) {
        if let Some(m) = &self.mailbox {
            out.push(Command::Open(m.clone()));
            self.open_sent = true;
            for (phase, body) in &self.pending {
                out.push(Command::Add {
                    phase: phase.clone(),
                    body: body.clone(),
                });
            }
        }
    }

    /// The mailbox id arrived (from `claimed`).
    pub(crate) fn got_mailbox(&mut self, id: &str, connected: bool, out: &mut Vec<Command>) {
        if self.mailbox.is_some() || self.state != State::Active {
            return;
        }
        self.mailbox = Some(id.to_owned());
        if connected {
            self.open_and_drain(out);
        }
    }

    /// A (re)connection was made and bound.
    pub(crate) fn connected(&mut self, out: &mut Vec<Command>) {
        match &self.state {
            State::Active => self.open_and_drain(out),
            State::Closing(mood) => {
                if let Some(m) = &self.mailbox {
                    out.push(Command::Close {
                        mailbox: m.clone(),
                        mood: mood.clone(),
                    });
                }
            }
            State::Done => {}
        }
    }

    /// The connection was lost.
    pub(crate) fn lost(&mut self) {
        self.open_sent = false;
    }

    /// Queue an outbound message; sent now if the mailbox is open on this connection.
    pub(crate) fn add(&mut self, phase: &str, body: Vec<u8>, out: &mut Vec<Command>) {
        if self.state != State::Active {
            return;
        }
        if self.open_sent {
            out.push(Command::Add {
                phase: phase.to_owned(),
                body: body.clone(),
            });
        }
        self.pending.push((phase.to_owned(), body));
    }

    /// An inbound `message`.
    pub(crate) fn rx_message(&mut self, side: String, phase: String, body: Vec<u8>) -> Rx {
        if self.state != State::Active {
            return Rx::Nothing;
        }
        if side == self.side {
            self.pending.retain(|(p, _)| *p != phase);
            return Rx::Nothing;
        }
        if !self.processed.insert(phase.clone()) {
            return Rx::Nothing;
        }
        Rx::Theirs { side, phase, body }
    }

    /// Close with `mood`. Returns true if there is nothing to wait for.
    pub(crate) fn close(&mut self, mood: &str, connected: bool, out: &mut Vec<Command>) -> bool {
        match self.state {
            State::Active => match &self.mailbox {
                None => {
                    self.state = State::Done;
                    true
                }
                Some(m) => {
                    if connected {
                        out.push(Command::Close {
                            mailbox: m.clone(),
                            mood: mood.to_owned(),
                        });
                    }
                    self.state = State::Closing(mood.to_owned());
                    false
                }
            },
            State::Closing(_) => false,
            State::Done => true,
        }
    }

    /// `closed` arrived: returns true if the mailbox is now done.
    pub(crate) fn rx_closed(&mut self) -> bool {
        if matches!(self.state, State::Closing(_)) {
            self.state = State::Done;
            true
        } else {
            false
        }
    }

    /// Number of outbound messages not yet echoed (for tests and diagnostics).
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_open_resend_and_echo() {
        let mut m = Mailbox::new("me");
        let mut out = vec![];
        m.add("pake", b"p".to_vec(), &mut out);
        assert!(out.is_empty());
        m.got_mailbox("mb", true, &mut out);
        assert_eq!(
            out,
            vec![
                Command::Open("mb".into()),
                Command::Add {
                    phase: "pake".into(),
                    body: b"p".to_vec()
                }
            ]
        );
        out.clear();
        m.add("version", b"v".to_vec(), &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        assert_eq!(
            m.rx_message("me".into(), "pake".into(), b"p".to_vec()),
            Rx::Nothing
        );
        assert_eq!(m.pending_len(), 1);
        m.lost();
        m.connected(&mut out);
        assert_eq!(
            out,
            vec![
                Command::Open("mb".into()),
                Command::Add {
                    phase: "version".into(),
                    body: b"v".to_vec()
                }
            ]
        );
    }

    #[test]
    fn duplicates_dropped_by_phase() {
        let mut m = Mailbox::new("me");
        let first = m.rx_message("peer".into(), "0".into(), b"x".to_vec());
        assert!(matches!(first, Rx::Theirs { .. }));
        assert_eq!(
            m.rx_message("peer".into(), "0".into(), b"x".to_vec()),
            Rx::Nothing
        );
    }

    #[test]
    fn close_resent_after_reconnect() {
        let mut m = Mailbox::new("me");
        let mut out = vec![];
        m.got_mailbox("mb", false, &mut out);
        assert!(!m.close("happy", false, &mut out));
        assert!(out.is_empty());
        m.connected(&mut out);
        assert_eq!(
            out,
            vec![Command::Close {
                mailbox: "mb".into(),
                mood: "happy".into()
            }]
        );
        assert!(m.rx_closed());
    }
}
