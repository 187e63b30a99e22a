//! Python magic-wormhole 0.24's transit port race: the exact failure signature it leaves in the
//! Python CLI's output, and [`KnownPeerBugs`], the one bounded, logged retry budget that the tests
//! pairing real peers put around every peer bug we have proven (this one, wormhole-william's
//! SPAKE2 key bug, `go_key_bug.rs`, and its relay race, `go_relay_race.rs`).
//!
//! Owns the matching of captured output only; it must not start processes.
//!
//! # The bug (not ours)
//! `wormhole/transit.py` picks the port of its transit listener with `allocate_tcp_port()`: it binds
//! a socket to `127.0.0.1:0`, reads the port the kernel chose, and closes the socket. Only later,
//! once the wormhole has a key and asks for its connection hints (`get_connection_hints` →
//! `_get_direct_hints`), does it listen on `any:PORT`. Any socket bound (or connected) in between by any process of
//! the same network namespace (our tests run many servers and peers side by side) may take that
//! port; Python then dies with `twisted.internet.error.CannotListenError: Couldn't listen on
//! any:PORT: [Errno 98] Address already in use.` and exit status 1, and its partner waits for a
//! peer that is gone. Seen in CI (stop 21, Python → wormhole-william directory transfer).
//!
//! # The signature
//! A Python `wormhole` process that exited on its own with a failure status and whose output has
//! both the `CannotListenError` line for `any:` and Errno 98, raised under the traceback line that
//! calls `self._get_direct_hints()`.

use crate::clis::PeerKind;
use crate::go_key_bug::GoKeyBugRetries;
use crate::go_relay_race::GoRelayRace;
use crate::process::PeerOutput;

/// How many times one exchange may be repeated after a Python peer failed with exactly this
/// signature. Each repeat draws a fresh port, so two in a row are already rare.
pub const PYTHON_LISTEN_RACE_RETRIES: usize = 2;

/// True when `python` (the output of a Python 0.24 `wormhole` process) shows exactly the
/// transit-port race described in the module doc.
pub fn python_listen_race_signature(python: &PeerOutput) -> bool {
    let out = python.all_output();
    let ended_failing = !python.timed_out && python.status.is_some() && !python.success();
    ended_failing
        && out.contains("self._get_direct_hints()")
        && out.lines().any(|l| {
            l.starts_with("twisted.internet.error.CannotListenError: Couldn't listen on any:")
                && l.trim_end().ends_with("[Errno 98] Address already in use.")
        })
}

/// The retry budget of one exchange for the Python transit-port race: [`PYTHON_LISTEN_RACE_RETRIES`]
/// when a side is Python, none otherwise.
#[derive(Debug)]
pub struct PythonListenRace {
    left: usize,
    label: String,
}

impl PythonListenRace {
    /// A budget for an exchange labelled `label` (e.g. `python -> go`).
    pub fn new(label: impl Into<String>) -> PythonListenRace {
        PythonListenRace {
            left: PYTHON_LISTEN_RACE_RETRIES,
            label: label.into(),
        }
    }

    /// True (and the failure logged on stderr) when one of `pythons` (outputs of Python peers of
    /// this failed attempt) shows the signature and the budget is not used up; `all` is every
    /// output of the attempt, for the log.
    pub fn should_retry(&mut self, pythons: &[&PeerOutput], all: &[&PeerOutput]) -> bool {
        if self.left == 0 || !pythons.iter().any(|o| python_listen_race_signature(o)) {
            return false;
        }
        self.left -= 1;
        eprintln!(
            "{}: Python 0.24's transit port race (see tests/harness/python_listen_race.rs); retry {} \
             of {PYTHON_LISTEN_RACE_RETRIES}:",
            self.label,
            PYTHON_LISTEN_RACE_RETRIES - self.left
        );
        for o in all {
            eprintln!("{o}");
        }
        true
    }
}

/// Every proven peer bug a two-real-peer exchange may hit, each matched exactly and retried a
/// bounded number of times with a log line: wormhole-william's SPAKE2 key bug ([`GoKeyBugRetries`])
/// and relay race ([`GoRelayRace`]), and Python's transit port race ([`PythonListenRace`]).
#[derive(Debug)]
pub struct KnownPeerBugs {
    from: PeerKind,
    to: PeerKind,
    go_key: GoKeyBugRetries,
    go_relay: GoRelayRace,
    listen_race: PythonListenRace,
}

impl KnownPeerBugs {
    /// The budgets for `from` sending to `to`.
    pub fn new(from: PeerKind, to: PeerKind) -> KnownPeerBugs {
        KnownPeerBugs {
            from,
            to,
            go_key: GoKeyBugRetries::new(from, to),
            go_relay: GoRelayRace::new(from, to),
            listen_race: PythonListenRace::new(format!("{} -> {}", from.name(), to.name())),
        }
    }

    /// True (logged) when this failed attempt shows exactly one of the known bugs and its budget is
    /// not used up; the caller then runs the exchange again with a fresh code.
    pub fn should_retry(&mut self, sender: &PeerOutput, receiver: &PeerOutput) -> bool {
        if self.go_key.should_retry(sender, receiver) || self.go_relay.should_retry(sender, receiver) {
            return true;
        }
        let mut pythons = Vec::new();
        if self.from == PeerKind::Python {
            pythons.push(sender);
        }
        if self.to == PeerKind::Python {
            pythons.push(receiver);
        }
        self.listen_race.should_retry(&pythons, &[sender, receiver])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stderr: &str) -> PeerOutput {
        PeerOutput::exited(code, "", stderr)
    }

    // The tail of the traceback Python 0.24 printed in CI.
    const RACE: &str = "  File \".../wormhole/transit.py\", line 616, in get_connection_hints\n\
        \x20   direct_hints = yield self._get_direct_hints()\n\
        \x20 File \".../twisted/internet/defer.py\", line 144, in execute\n\
        \x20 File \".../twisted/internet/tcp.py\", line 1438, in startListening\n\
        \x20   raise CannotListenError(self.interface, self.port, le)\n\
        twisted.internet.error.CannotListenError: Couldn't listen on any:42103: [Errno 98] Address already in use.\n\
        ERROR: Couldn't listen on any:42103: [Errno 98] Address already in use.\n";

    #[test]
    fn matches_the_ci_traceback() {
        assert!(python_listen_race_signature(&out(1, RACE)));
    }

    #[test]
    fn rejects_everything_near_it() {
        let race = RACE;
        // Succeeded, or killed on timeout: not this failure.
        assert!(!python_listen_race_signature(&out(0, race)));
        let mut timed_out = out(1, race);
        timed_out.timed_out = true;
        timed_out.status = None;
        assert!(!python_listen_race_signature(&timed_out));
        // Not raised from the transit listener (e.g. a server of the test could not bind).
        let elsewhere = race.replace("direct_hints = yield self._get_direct_hints()", "yield listen()");
        assert!(!python_listen_race_signature(&out(1, &elsewhere)));
        // Another errno, or a specific interface.
        assert!(!python_listen_race_signature(&out(
            1,
            &race.replace(
                "[Errno 98] Address already in use",
                "[Errno 13] Permission denied"
            )
        )));
        assert!(!python_listen_race_signature(&out(
            1,
            &race.replace("listen on any:", "listen on 127.0.0.1:")
        )));
    }

    #[test]
    fn budget_is_bounded_and_only_for_python_outputs() {
        let race = out(1, RACE);
        let go = out(1, "");
        let mut bugs = KnownPeerBugs::new(PeerKind::Python, PeerKind::Go);
        for _ in 0..PYTHON_LISTEN_RACE_RETRIES {
            assert!(bugs.should_retry(&race, &go));
        }
        assert!(!bugs.should_retry(&race, &go));
        // The same text from a non-Python side is never retried.
        let mut bugs = KnownPeerBugs::new(PeerKind::Go, PeerKind::Rust);
        assert!(!bugs.should_retry(&race, &go));
    }
}
