//! Mailbox: opens the mailbox once its id and a connection are known, keeps every outbound
//! message until the server echoes it back, drops inbound duplicates by phase, and closes with a
//! mood, re-sending `close` after reconnects until `closed` (docs/protocol.md §2.6 "M").
//!
//! Re-sending after a reconnect (or a restore) differs from Python's machine on purpose: a message
//! whose echo was lost with the connection may already be in the mailbox, and re-adding it puts a
//! second copy there, which wormhole-william rejects ("got unexpected phase"). So a reopen is
//! followed by a `ping`; the server replays the mailbox before it answers, and only the messages
//! still unechoed at the `pong` are added again (new ones wait behind them, in order).
//!
//! It does not decrypt or interpret phases; it only filters and forwards.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use sha2::{Digest, Sha256};

use super::rendezvous::Command;

/// The `ping` value that marks the end of the mailbox's replay after a reopen.
pub(super) const REPLAY_PING: i64 = 0x5e57;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
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
    /// (Restored machines only.) A message under our side that we never added, or added with
    /// another body: another copy of this state is running, or ran, ahead of us.
    Foreign,
}

/// A short digest of an outbound body: what a restored machine checks its echoes against.
pub(super) fn body_digest(body: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(body);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The mailbox machine.
#[derive(Debug)]
pub(crate) struct Mailbox {
    pub(super) side: String,
    pub(super) mailbox: Option<String>,
    /// Whether `open` went out on the current connection.
    pub(super) open_sent: bool,
    /// Whether an earlier connection (or the saved state's process) may have added messages:
    /// a reopen then waits for the replay before re-sending.
    pub(super) opened_before: bool,
    /// On this connection: `open` and the replay ping went out, the `pong` has not come back;
    /// adds are held until it does.
    pub(super) replaying: bool,
    /// Outbound messages not yet echoed, in send order.
    pub(super) pending: Vec<(String, Vec<u8>)>,
    /// Peer phases already delivered.
    pub(super) processed: HashSet<String>,
    pub(super) state: State,
    /// Every phase we ever added, with its body's digest (restored machines check echoes).
    pub(super) sent: BTreeMap<String, [u8; 16]>,
    /// Restored: an echo that `sent` does not account for is [`Rx::Foreign`].
    pub(super) strict_echo: bool,
    /// Restored: our phases the server had echoed before the state was saved; each must be
    /// echoed again after the first `open`, before the `pong` of the ping sent after it.
    pub(super) audit: Option<BTreeSet<String>>,
}

impl Mailbox {
    pub(crate) fn new(side: &str) -> Self {
        Mailbox {
            side: side.to_owned(),
            mailbox: None,
            open_sent: false,
            opened_before: false,
            replaying: false,
            pending: Vec::new(),
            processed: HashSet::new(),
            state: State::Active,
            sent: BTreeMap::new(),
            strict_echo: false,
            audit: None,
        }
    }

    fn open_and_drain(&mut self, out: &mut Vec<Command>) {
        let Some(m) = &self.mailbox else { return };
        out.push(Command::Open(m.clone()));
        self.open_sent = true;
        let reopen = std::mem::replace(&mut self.opened_before, true);
        if reopen && (!self.pending.is_empty() || self.audit.is_some()) {
            self.replaying = true;
            out.push(Command::Ping(REPLAY_PING));
        } else {
            self.send_pending(out);
        }
    }

    fn send_pending(&self, out: &mut Vec<Command>) {
        for (phase, body) in &self.pending {
            out.push(Command::Add {
                phase: phase.clone(),
                body: body.clone(),
            });
        }
    }

    /// A `pong` arrived. After a reopen it ends the replay: every message still unechoed goes out
    /// again. True when the restore audit failed (an earlier echo of ours is missing from the
    /// reopened mailbox: it was closed, and so deleted, by another copy).
    pub(crate) fn rx_pong(&mut self, out: &mut Vec<Command>) -> bool {
        if !self.open_sent || !std::mem::take(&mut self.replaying) {
            return false;
        }
        let failed = self.audit.take().is_some_and(|missing| !missing.is_empty());
        if !failed && self.state == State::Active {
            self.send_pending(out);
        }
        failed
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
        self.replaying = false;
    }

    /// Queue an outbound message; sent now if the mailbox is open on this connection.
    pub(crate) fn add(&mut self, phase: &str, body: Vec<u8>, out: &mut Vec<Command>) {
        if self.state != State::Active {
            return;
        }
        if self.open_sent && !self.replaying {
            out.push(Command::Add {
                phase: phase.to_owned(),
                body: body.clone(),
            });
        }
        self.sent.insert(phase.to_owned(), body_digest(&body));
        self.pending.push((phase.to_owned(), body));
    }

    /// An inbound `message`.
    pub(crate) fn rx_message(&mut self, side: String, phase: String, body: Vec<u8>) -> Rx {
        if self.state != State::Active {
            return Rx::Nothing;
        }
        if side == self.side {
            if self.strict_echo && self.sent.get(&phase) != Some(&body_digest(&body)) {
                return Rx::Foreign;
            }
            if let Some(a) = &mut self.audit {
                a.remove(&phase);
            }
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
        // A reopen waits for the replay (ended by the pong) before re-adding anything.
        assert_eq!(out, vec![Command::Open("mb".into()), Command::Ping(REPLAY_PING)]);
        out.clear();
        assert!(!m.rx_pong(&mut out));
        assert_eq!(out, vec![add("version", b"v")]);
    }

    fn add(phase: &str, body: &[u8]) -> Command {
        Command::Add {
            phase: phase.into(),
            body: body.to_vec(),
        }
    }

    /// Open a mailbox, add `phases`, lose the connection with none echoed, reconnect.
    fn reopened_with(phases: &[&str]) -> (Mailbox, Vec<Command>) {
        let mut m = Mailbox::new("me");
        let mut out = vec![];
        m.got_mailbox("mb", true, &mut out);
        for p in phases {
            m.add(p, p.as_bytes().to_vec(), &mut out);
        }
        m.lost();
        out.clear();
        m.connected(&mut out);
        (m, out)
    }

    #[test]
    fn a_message_replayed_on_reopen_is_not_added_twice() {
        let (mut m, mut out) = reopened_with(&["pake", "version"]);
        assert_eq!(out, vec![Command::Open("mb".into()), Command::Ping(REPLAY_PING)]);
        out.clear();
        // The first add reached the server before the connection died: the replay has it.
        assert_eq!(
            m.rx_message("me".into(), "pake".into(), b"pake".to_vec()),
            Rx::Nothing
        );
        assert!(!m.rx_pong(&mut out));
        assert_eq!(out, vec![add("version", b"version")]);
        // A second pong (someone else's ping) re-sends nothing.
        out.clear();
        assert!(!m.rx_pong(&mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn adds_during_the_replay_wait_behind_the_unechoed_ones() {
        let (mut m, mut out) = reopened_with(&["pake"]);
        out.clear();
        m.add("version", b"v".to_vec(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert!(!m.rx_pong(&mut out));
        assert_eq!(out, vec![add("pake", b"pake"), add("version", b"v")]);
        out.clear();
        m.add("0", b"z".to_vec(), &mut out);
        assert_eq!(out, vec![add("0", b"z")]);
    }

    #[test]
    fn a_connection_lost_during_the_replay_pings_again_on_the_next() {
        let (mut m, mut out) = reopened_with(&["pake"]);
        m.lost();
        out.clear();
        m.connected(&mut out);
        assert_eq!(out, vec![Command::Open("mb".into()), Command::Ping(REPLAY_PING)]);
        out.clear();
        assert!(!m.rx_pong(&mut out));
        assert_eq!(out, vec![add("pake", b"pake")]);
    }

    #[test]
    fn a_reopen_with_nothing_unechoed_sends_no_ping() {
        let (_, out) = reopened_with(&[]);
        assert_eq!(out, vec![Command::Open("mb".into())]);
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
