//! wormhole-william's SPAKE2 key bug: the exact failure signature it leaves in both peers' output,
//! and the bounded, logged retry that the tests pairing wormhole-william with another *real* peer
//! (Python, wormhole-rs) put around it.
//!
//! Owns the matching of captured output only; it must not start processes, and it must never be
//! used for a pair that includes our side (our client adopts the key wormhole-william derived, so a
//! key-confirmation failure there is a real failure, not this bug).
//!
//! # The bug (not ours)
//! gospake2, which wormhole-william 1.0.6 uses, encodes a point with `big.Int.Bytes()` reversed
//! (`ed25519group/ed25519.go`, `AffinePoint.Compress`), which drops the most significant byte when
//! it is zero, so the shared point K comes out 31 bytes long in 1 of 256 exchanges; `Finish` then
//! builds the transcript with `len(key)` (31) as the element size (`spake2.go`,
//! `transcriptSymmetric`), so its key differs from that of every 32-byte-correct peer (Python,
//! wormhole-rs, ours). Two Go peers make the same mistake and agree. Go then cannot open the peer's
//! `version` message (`openAndUnmarshal` returns `errDecryptFailed`, "decrypt message failed") and
//! the peer cannot open Go's. Proof against `/usr/bin/wormhole-william` 1.0.6: a Python receiver
//! made to pick its scalar so that K's top byte is 0 failed this way in every completed run, one
//! made to avoid it never failed. Measured rate Go⇄Python: about 1 exchange in 150.
//!
//! # The signature (output shapes captured from the real binaries, a wrong code on the other side
//! # produces the same failure)
//! - Go as *sender*: the last line on its stderr is `Send error: decrypt message failed`, bare for
//!   a file or directory offer, or as a Go `log` line `YYYY/MM/DD HH:MM:SS Send error: decrypt
//!   message failed` for `--text`.
//! - Go as *receiver*: the last line on its stderr is the log line `YYYY/MM/DD HH:MM:SS decrypt
//!   message failed` (a transit record failure reads `… Receive file error: …` instead).
//! - The other side: reports "Key confirmation failed" (Python: `ERROR:  Key confirmation
//!   failed. …`; wormhole-rs: `0: Key confirmation failed. …`), which a transit-stage failure
//!   never produces.
//! - Both sides exited on their own (no timeout) with a failure status.

use crate::clis::PeerKind;
use crate::process::PeerOutput;

/// How many times one exchange between wormhole-william and another real peer may be repeated
/// after failing with exactly this signature. At ~1/150 per exchange, three failures in a row
/// (1 in 3.4 million) are negligible; the first two are logged.
pub const GO_KEY_BUG_RETRIES: usize = 2;

/// The role wormhole-william played in a failed exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoRole {
    /// Go sent (`wormhole-william send`).
    Sender,
    /// Go received (`wormhole-william receive`).
    Receiver,
}

/// True when `go` (wormhole-william in `role`) and `other` (the real, non-Go peer of the same
/// exchange) ended with exactly the signature of the key bug (see the module doc).
pub fn go_key_bug_signature(role: GoRole, go: &PeerOutput, other: &PeerOutput) -> bool {
    let ended_failing = |o: &PeerOutput| !o.timed_out && o.status.is_some() && !o.success();
    let Some(last) = go.stderr.lines().rev().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    let last = last.trim_end();
    let go_says = match role {
        GoRole::Sender => {
            const SEND: &str = "Send error: decrypt message failed";
            last == SEND || go_log_message(last) == Some(SEND)
        }
        GoRole::Receiver => go_log_message(last) == Some("decrypt message failed"),
    };
    let other_says = other.all_output().contains("Key confirmation failed");
    go_says && other_says && ended_failing(go) && ended_failing(other)
}

/// The message of a Go `log` line (`YYYY/MM/DD HH:MM:SS message`), if `line` is one.
pub fn go_log_message(line: &str) -> Option<&str> {
    let mut parts = line.splitn(3, ' ');
    let (date, time, msg) = (parts.next()?, parts.next()?, parts.next()?);
    let shape = |s: &str, sep: char, lens: [usize; 3]| {
        let fields: Vec<&str> = s.split(sep).collect();
        fields.len() == 3
            && fields
                .iter()
                .zip(lens)
                .all(|(f, n)| f.len() == n && f.bytes().all(|b| b.is_ascii_digit()))
    };
    (shape(date, '/', [4, 2, 2]) && shape(time, ':', [2, 2, 2])).then_some(msg)
}

/// The retry budget of one exchange between two real peers: [`GO_KEY_BUG_RETRIES`] when exactly one
/// side is wormhole-william, none otherwise (Go⇄Go agree on the wrong key; Python⇄wormhole-rs
/// never hit it).
#[derive(Debug)]
pub struct GoKeyBugRetries {
    go: Option<GoRole>,
    left: usize,
    label: String,
}

impl GoKeyBugRetries {
    /// The budget for `from` sending to `to`.
    pub fn new(from: PeerKind, to: PeerKind) -> GoKeyBugRetries {
        let go = match (from, to) {
            (PeerKind::Go, PeerKind::Go) => None,
            (PeerKind::Go, _) => Some(GoRole::Sender),
            (_, PeerKind::Go) => Some(GoRole::Receiver),
            _ => None,
        };
        GoKeyBugRetries {
            go,
            left: if go.is_some() { GO_KEY_BUG_RETRIES } else { 0 },
            label: format!("{} -> {}", from.name(), to.name()),
        }
    }

    /// True (and the failure logged on stderr) when this failed attempt shows exactly the key-bug
    /// signature and the budget is not used up; the caller then runs the exchange again.
    pub fn should_retry(&mut self, sender: &PeerOutput, receiver: &PeerOutput) -> bool {
        let Some(role) = self.go else { return false };
        let (go, other) = match role {
            GoRole::Sender => (sender, receiver),
            GoRole::Receiver => (receiver, sender),
        };
        if self.left == 0 || !go_key_bug_signature(role, go, other) {
            return false;
        }
        self.left -= 1;
        eprintln!(
            "{}: wormhole-william's SPAKE2 key bug (see tests/harness/go_key_bug.rs); retry {} of \
             {GO_KEY_BUG_RETRIES}:\n{sender}\n{receiver}",
            self.label,
            GO_KEY_BUG_RETRIES - self.left
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str, stderr: &str) -> PeerOutput {
        PeerOutput::exited(code, stdout, stderr)
    }

    // Captured from /usr/bin/wormhole-william 1.0.6 and Python 0.24 / wormhole-rs 0.8.1.
    const GO_OUT: &str = "On the other computer, please run: wormhole receive (or wormhole-william recv)\n\
                          Wormhole code is: 7-aardvark-adroitness\n";
    const GO_SEND_TEXT: &str = "2026/12/03 05:34:40 Send error: decrypt message failed\n";
    const GO_SEND_FILE: &str = "Send error: decrypt message failed\n";
    const GO_RECV: &str = "2026/12/03 05:34:41 decrypt message failed\n";
    const PY: &str = "ERROR:  Key confirmation failed. Either you or your correspondent\n\
                      typed the code wrong, or a would-be man-in-the-middle attacker guessed\n\
                      incorrectly. Try sending the file again.\n";
    const RS: &str = "Error: \n   0: Key confirmation failed. If you didn't mistype the code, this \
                      is a sign of an attacker guessing passwords. Please try again some time later.\n";

    #[test]
    fn matches_every_shape_go_prints() {
        for go in [GO_SEND_TEXT, GO_SEND_FILE] {
            for other in [PY, RS] {
                assert!(go_key_bug_signature(
                    GoRole::Sender,
                    &out(1, GO_OUT, go),
                    &out(1, "", other)
                ));
            }
        }
        for other in [PY, RS] {
            assert!(go_key_bug_signature(
                GoRole::Receiver,
                &out(1, "", GO_RECV),
                &out(1, other, "")
            ));
        }
    }

    #[test]
    fn rejects_everything_near_it() {
        let send =
            |go: &str, other: PeerOutput| go_key_bug_signature(GoRole::Sender, &out(1, GO_OUT, go), &other);
        let recv =
            |go: &str, other: PeerOutput| go_key_bug_signature(GoRole::Receiver, &out(1, "", go), &other);
        // The other side did not report a key-confirmation failure.
        assert!(!send(GO_SEND_TEXT, out(1, "", "ERROR: transit\n")));
        // A transit-stage decrypt failure on Go's receiver; the bare receiver form Go never prints.
        assert!(!recv(
            "2026/12/03 05:34:41 Receive file error: decrypt message failed\n",
            out(1, "", PY)
        ));
        assert!(!recv("decrypt message failed\n", out(1, "", PY)));
        // Go's relay race; a sender line in the receiver role and vice versa.
        assert!(!send(
            "2026/12/03 05:34:41 Send error: write tcp: use of closed network connection\n",
            out(1, "", PY)
        ));
        assert!(!recv(GO_SEND_TEXT, out(1, "", PY)));
        assert!(!send(GO_RECV, out(1, "", PY)));
        // The line not last, or with something around it, or a malformed timestamp.
        assert!(!send(&format!("{GO_SEND_FILE}panic: later\n"), out(1, "", PY)));
        assert!(!send("x Send error: decrypt message failed\n", out(1, "", PY)));
        assert!(!send(
            "2026/12/3 05:34:40 Send error: decrypt message failed\n",
            out(1, "", PY)
        ));
        assert!(!send(
            "Send error: decrypt message failed: extra\n",
            out(1, "", PY)
        ));
        // On stdout instead of stderr.
        assert!(!go_key_bug_signature(
            GoRole::Sender,
            &out(1, GO_SEND_FILE, ""),
            &out(1, "", PY)
        ));
        // A side that succeeded, or was killed on timeout.
        assert!(!send(GO_SEND_TEXT, out(0, "", PY)));
        assert!(!go_key_bug_signature(
            GoRole::Sender,
            &out(0, GO_OUT, GO_SEND_TEXT),
            &out(1, "", PY)
        ));
        let mut killed = out(1, "", PY);
        killed.timed_out = true;
        killed.status = None;
        assert!(!send(GO_SEND_TEXT, killed));
    }

    #[test]
    fn retries_only_go_with_another_real_peer_and_at_most_twice() {
        let go_fail = out(1, GO_OUT, GO_SEND_FILE);
        let py_fail = out(1, "", PY);
        let mut r = GoKeyBugRetries::new(PeerKind::Go, PeerKind::Python);
        assert!(r.should_retry(&go_fail, &py_fail));
        assert!(r.should_retry(&go_fail, &py_fail));
        assert!(!r.should_retry(&go_fail, &py_fail), "a third retry");
        // Roles follow the direction: Go receiving from wormhole-rs.
        let mut r = GoKeyBugRetries::new(PeerKind::Rust, PeerKind::Go);
        assert!(r.should_retry(&out(1, "", RS), &out(1, "", GO_RECV)));
        assert!(!r.should_retry(&go_fail, &py_fail), "roles swapped");
        // Go⇄Go and pairs without Go never retry.
        let mut r = GoKeyBugRetries::new(PeerKind::Go, PeerKind::Go);
        assert!(!r.should_retry(&go_fail, &out(1, "", GO_RECV)));
        let mut r = GoKeyBugRetries::new(PeerKind::Python, PeerKind::Rust);
        assert!(!r.should_retry(&py_fail, &out(1, "", RS)));
    }
}
