//! wormhole-william's relay race: the exact failure its sender shows when it closes its own winning
//! relay connection, and [`GoRelayRace`], the bounded, logged retry budget for it that
//! [`crate::KnownPeerBugs`] applies to every Go sender paired with another real peer.
//!
//! Owns the matching of captured output only; it must not start processes.
//!
//! # The bug (not ours)
//! wormhole-william 1.0.6, `wormhole/file_transport.go`: the sender's relay goroutine first runs
//! `waitForRelayPeer`, which starts a watchdog goroutine that closes the connection once `cancelCh`
//! is closed and returns with `defer close(okCh)`. It then runs the transit handshake on the same
//! connection; when that wins, `acceptConnection` closes `cancelCh` and writes `go\n`. If the
//! receiver's handshake is already buffered when Go reads it, nothing in between blocks, so the
//! watchdog may not have run yet: it then finds both `okCh` and `cancelCh` closed, Go's `select`
//! picks one at random, and half of those times it closes the connection the transfer is about to
//! use. The sender exits 1 with `Send error: write tcp …: use of closed network connection`.
//!
//! Python 0.24 and wormhole-rs 0.8.1 both write their receiver handshake as soon as the relay pairs
//! them, so they can trigger it; a Go receiver (and ours) answers only after the sender's handshake,
//! which makes Go's read block and the watchdog exit first.
//!
//! # How often
//! About 1 Go sender attempt in 7 on a quiet machine (3 in 20 runs of `interop_cluster`); at most
//! one in two by construction (the coin flip of `select`), more often under load, when the other
//! scheduler thread cannot steal the watchdog in time. Three attempts were not enough in a
//! fresh-clone CI run (three failures in a row, stop 26).

use crate::clis::PeerKind;
use crate::process::PeerOutput;

/// Extra attempts one Go sender exchange gets for this race. At the worst rate of one in two,
/// eight retries in a row all fail once in 512 exchanges.
pub const GO_RELAY_RACE_RETRIES: usize = 8;

/// True when `sender` (a wormhole-william sender's output) failed with exactly the relay race.
pub fn go_relay_race_signature(sender: &PeerOutput) -> bool {
    let ended_failing = !sender.timed_out && sender.status.is_some() && !sender.success();
    ended_failing
        && sender.all_output().lines().any(|l| {
            l.contains("Send error: write tcp ")
                && l.trim_end().ends_with(": use of closed network connection")
        })
}

/// The retry budget of one exchange for the relay race: [`GO_RELAY_RACE_RETRIES`] when a Go sender
/// faces a receiver that writes its handshake early (Python or wormhole-rs), none otherwise.
#[derive(Debug)]
pub struct GoRelayRace {
    left: usize,
    label: String,
}

impl GoRelayRace {
    /// The budget for `from` sending to `to`.
    pub fn new(from: PeerKind, to: PeerKind) -> GoRelayRace {
        let exposed = from == PeerKind::Go && to != PeerKind::Go;
        GoRelayRace {
            left: if exposed { GO_RELAY_RACE_RETRIES } else { 0 },
            label: format!("{} -> {}", from.name(), to.name()),
        }
    }

    /// True (and the attempt logged on stderr) when `sender` shows the signature and the budget
    /// is not used up.
    pub fn should_retry(&mut self, sender: &PeerOutput, receiver: &PeerOutput) -> bool {
        if self.left == 0 || !go_relay_race_signature(sender) {
            return false;
        }
        self.left -= 1;
        eprintln!(
            "{}: wormhole-william's relay race (see tests/harness/go_relay_race.rs); retry {} of \
             {GO_RELAY_RACE_RETRIES}:\n{sender}\n{receiver}",
            self.label,
            GO_RELAY_RACE_RETRIES - self.left
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stderr: &str) -> PeerOutput {
        PeerOutput::exited(code, "", stderr)
    }

    // As wormhole-william printed it in a fresh-clone CI run.
    const RACE: &str =
        "Send error: write tcp 127.0.0.1:37082->127.0.0.1:4001: use of closed network connection\n";

    #[test]
    fn the_exact_failure_is_retried_within_its_budget_only() {
        let mut race = GoRelayRace::new(PeerKind::Go, PeerKind::Rust);
        let receiver = out(1, "Transit error: unexpected end of file");
        for _ in 0..GO_RELAY_RACE_RETRIES {
            assert!(race.should_retry(&out(1, RACE), &receiver));
        }
        assert!(!race.should_retry(&out(1, RACE), &receiver));
    }

    #[test]
    fn other_failures_and_other_pairs_are_not_retried() {
        let receiver = out(0, "");
        let mut race = GoRelayRace::new(PeerKind::Go, PeerKind::Python);
        assert!(!race.should_retry(&out(0, RACE), &receiver), "a success");
        assert!(!race.should_retry(&out(1, "Send error: decrypt message failed\n"), &receiver));
        assert!(!race.should_retry(&out(1, "read tcp: use of closed network connection\n"), &receiver));
        for (from, to) in [
            (PeerKind::Go, PeerKind::Go),
            (PeerKind::Python, PeerKind::Go),
            (PeerKind::Rust, PeerKind::Python),
        ] {
            let mut race = GoRelayRace::new(from, to);
            assert!(!race.should_retry(&out(1, RACE), &receiver), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn a_timed_out_sender_is_not_the_race() {
        let mut timed_out = out(1, RACE);
        timed_out.timed_out = true;
        let mut race = GoRelayRace::new(PeerKind::Go, PeerKind::Python);
        assert!(!race.should_retry(&timed_out, &out(0, "")));
    }
}
