//! KeyChoice: the version exchange when SPAKE2's shared point K has a zero top byte, the one case
//! where a wormhole-william (Go) peer derives another key than every correct peer
//! ([`crate::key::go_compat`], docs/go-spake2-key-bug.md).
//!
//! In that case only, our `version` waits for the peer's: both candidate keys are tried on the
//! peer's `version` message (and on nothing else), and the one that opens it is adopted; every
//! later key (phase keys, verifier, application keys) derives from it. Python and Go send their
//! `version` as soon as they have the key, so they never wait for ours. Two of our peers would
//! wait for each other, so the tie is broken by side: the side whose side string is not larger
//! waits only [`BRIEF_WAIT`], then commits to the standard key and sends its `version`; the larger
//! side waits for the peer's `version` as long as it takes.
//!
//! Owns: the candidates, the deadline, the choice. Must not: send anything or keep time itself
//! (the Boss passes `now` and arms the timer).

use std::time::{Duration, Instant};

use crate::key::{PakeKeys, decrypt_data, derive_phase_key};

/// How long the smaller side waits for the peer's `version` before sending ours with the standard
/// key. A Go or Python peer's `version` follows its `pake` at once, so this only bounds the
/// ours⇄ours case.
pub const BRIEF_WAIT: Duration = Duration::from_secs(5);

/// Two candidate keys, waiting for the peer's `version`.
#[derive(Clone)]
pub(crate) struct KeyChoice {
    pub(super) standard: [u8; 32],
    pub(super) go: [u8; 32],
    pub(super) brief: bool,
    pub(super) deadline: Option<Instant>,
}

impl std::fmt::Debug for KeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyChoice")
            .field("brief", &self.brief)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl KeyChoice {
    /// `Some` only when `keys` carries a Go key (K's top byte is zero). `ours` and `peer` are the
    /// two side strings (the tie-break).
    pub(crate) fn new(keys: &PakeKeys, ours: &str, peer: &str) -> Option<KeyChoice> {
        let go = keys.go_key?;
        Some(KeyChoice {
            standard: keys.key,
            go,
            brief: ours <= peer,
            deadline: None,
        })
    }

    /// The standard key (what we commit to when the wait ends or the peer's first message is not
    /// a `version`).
    pub(crate) fn standard(&self) -> [u8; 32] {
        self.standard
    }

    /// Whether this side waits only briefly.
    pub(crate) fn is_brief(&self) -> bool {
        self.brief
    }

    /// Start the brief wait at `now` if this side has one and it has not started; returns the
    /// deadline to arm.
    pub(crate) fn arm(&mut self, now: Instant) -> Option<Instant> {
        if self.brief && self.deadline.is_none() {
            self.deadline = Some(now + BRIEF_WAIT);
        }
        self.deadline
    }

    /// Whether the brief wait is over at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// The key to adopt for the peer's first message: on a `version` from `side`, the candidate
    /// that opens it (standard first); otherwise the standard key (a failure is then reported by
    /// the normal receive path).
    pub(crate) fn pick(&self, side: &str, phase: &str, body: &[u8]) -> [u8; 32] {
        if phase == "version" {
            for k in [self.standard, self.go] {
                if decrypt_data(&derive_phase_key(&k, side, "version"), body).is_ok() {
                    return k;
                }
            }
        }
        self.standard
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::encrypt_data_with_nonce;

    fn keys() -> PakeKeys {
        PakeKeys {
            key: [1; 32],
            go_key: Some([2; 32]),
        }
    }

    #[test]
    fn only_with_a_go_key_and_the_tie_by_side() {
        let plain = PakeKeys {
            key: [1; 32],
            go_key: None,
        };
        assert!(KeyChoice::new(&plain, "aa", "bb").is_none());
        assert!(KeyChoice::new(&keys(), "aa", "bb").unwrap().is_brief());
        assert!(!KeyChoice::new(&keys(), "bb", "aa").unwrap().is_brief());
    }

    #[test]
    fn brief_side_arms_once_and_expires() {
        let t0 = Instant::now();
        let mut small = KeyChoice::new(&keys(), "aa", "bb").unwrap();
        assert_eq!(small.arm(t0), Some(t0 + BRIEF_WAIT));
        assert_eq!(small.arm(t0 + Duration::from_secs(1)), Some(t0 + BRIEF_WAIT));
        assert!(!small.expired(t0 + Duration::from_secs(1)));
        assert!(small.expired(t0 + BRIEF_WAIT));
        let mut large = KeyChoice::new(&keys(), "bb", "aa").unwrap();
        assert_eq!(large.arm(t0), None);
        assert!(!large.expired(t0 + BRIEF_WAIT * 100));
    }

    #[test]
    fn picks_the_key_that_opens_the_version_only() {
        let c = KeyChoice::new(&keys(), "aa", "bb").unwrap();
        let seal = |k: &[u8; 32], phase: &str| {
            encrypt_data_with_nonce(&derive_phase_key(k, "bb", phase), &[7; 24], b"{}")
        };
        assert_eq!(c.pick("bb", "version", &seal(&[2; 32], "version")), [2; 32]);
        assert_eq!(c.pick("bb", "version", &seal(&[1; 32], "version")), [1; 32]);
        assert_eq!(c.pick("bb", "version", &seal(&[3; 32], "version")), [1; 32]);
        // The Go key is never tried on anything but `version`.
        assert_eq!(c.pick("bb", "0", &seal(&[2; 32], "0")), [1; 32]);
    }
}
