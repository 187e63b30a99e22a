//! Nameplate: claims the nameplate once it and a connection are known, re-claims after every
//! reconnect until `claimed`, and releases it (again after reconnects until `released`) on the
//! first peer message or on close (docs/protocol.md §2.6 "N").
//!
//! It only emits [`Command`]s; the Boss decides what the answers mean.

use super::rendezvous::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// No nameplate yet.
    Unknown,
    /// Known; `claim` sent on the current connection if connected.
    Claiming,
    /// `claimed` arrived.
    Claimed,
    /// `release` sent (or to be re-sent on reconnect).
    Releasing,
    /// `released` arrived, or there was nothing to release.
    Done,
}

/// The nameplate machine.
#[derive(Debug)]
pub(crate) struct Nameplate {
    pub(super) name: Option<String>,
    pub(super) state: State,
}

impl Nameplate {
    pub(crate) fn new() -> Self {
        Nameplate {
            name: None,
            state: State::Unknown,
        }
    }

    /// The nameplate is known (from the code). Sends `claim` now if connected.
    pub(crate) fn set_nameplate(&mut self, name: &str, connected: bool, out: &mut Vec<Command>) {
        if self.state != State::Unknown {
            return;
        }
        self.name = Some(name.to_owned());
        self.state = State::Claiming;
        if connected {
            out.push(Command::Claim(name.to_owned()));
        }
    }

    /// A (re)connection was made and bound.
    pub(crate) fn connected(&mut self, out: &mut Vec<Command>) {
        if let Some(name) = &self.name {
            match self.state {
                State::Claiming => out.push(Command::Claim(name.clone())),
                State::Releasing => out.push(Command::Release(name.clone())),
                _ => {}
            }
        }
    }

    /// `claimed` arrived: returns true if it is news (the mailbox id should be used).
    pub(crate) fn rx_claimed(&mut self) -> bool {
        if self.state == State::Claiming {
            self.state = State::Claimed;
            true
        } else {
            false
        }
    }

    /// Release the nameplate (first peer message). Idempotent.
    pub(crate) fn release(&mut self, connected: bool, out: &mut Vec<Command>) {
        if matches!(self.state, State::Claimed | State::Claiming) {
            self.state = State::Releasing;
            if let (true, Some(name)) = (connected, &self.name) {
                out.push(Command::Release(name.clone()));
            }
        }
    }

    /// `released` arrived: returns true if the nameplate is now done.
    pub(crate) fn rx_released(&mut self) -> bool {
        if self.state == State::Releasing {
            self.state = State::Done;
            true
        } else {
            false
        }
    }

    /// Closing: release if needed. Returns true if already done (nothing to wait for).
    pub(crate) fn close(&mut self, connected: bool, out: &mut Vec<Command>) -> bool {
        match self.state {
            State::Unknown | State::Done => {
                self.state = State::Done;
                true
            }
            State::Claiming | State::Claimed => {
                self.release(connected, out);
                false
            }
            State::Releasing => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_reclaim_release() {
        let mut n = Nameplate::new();
        let mut out = vec![];
        n.set_nameplate("7", false, &mut out);
        assert!(out.is_empty());
        n.connected(&mut out);
        assert_eq!(out, vec![Command::Claim("7".into())]);
        out.clear();
        n.connected(&mut out); // reconnect before claimed: claim again
        assert_eq!(out, vec![Command::Claim("7".into())]);
        out.clear();
        assert!(n.rx_claimed());
        assert!(!n.rx_claimed());
        n.connected(&mut out);
        assert!(out.is_empty());
        n.release(true, &mut out);
        n.release(true, &mut out);
        assert_eq!(out, vec![Command::Release("7".into())]);
        out.clear();
        n.connected(&mut out);
        assert_eq!(out, vec![Command::Release("7".into())]);
        assert!(!n.close(true, &mut vec![]));
        assert!(n.rx_released());
        assert!(n.close(true, &mut vec![]));
    }

    #[test]
    fn close_without_nameplate_is_done() {
        let mut n = Nameplate::new();
        assert!(n.close(true, &mut vec![]));
    }
}
