//! Receive: decrypts each peer message with the key for (sender side, phase). The first success
//! confirms the key (happy + verifier); any failure scares the wormhole, after which everything
//! is ignored (docs/protocol.md §2.2 step 5, §2.6 "R").

use crate::key::{decrypt_data, derive_phase_key, derive_verifier};

/// Result of one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RxOutcome {
    /// The first message that decrypted: the key is confirmed.
    FirstGood {
        /// The verifier.
        verifier: [u8; 32],
        /// Phase.
        phase: String,
        /// Plaintext.
        plaintext: Vec<u8>,
    },
    /// A later message that decrypted.
    Good {
        /// Phase.
        phase: String,
        /// Plaintext.
        plaintext: Vec<u8>,
    },
    /// Decryption failed: wrong code.
    Bad,
    /// Scared already, or no key: ignored.
    Ignored,
}

/// The receive machine.
#[derive(Debug, Default)]
pub(crate) struct Receive {
    pub(super) key: Option<[u8; 32]>,
    pub(super) verified: bool,
    pub(super) scared: bool,
}

impl Receive {
    /// The (unverified) key is known.
    pub(crate) fn got_key(&mut self, key: [u8; 32]) {
        self.key = Some(key);
    }

    /// A peer message (after Order).
    pub(crate) fn got_message(&mut self, side: &str, phase: String, body: &[u8]) -> RxOutcome {
        let Some(key) = self.key else {
            return RxOutcome::Ignored;
        };
        if self.scared {
            return RxOutcome::Ignored;
        }
        let pk = derive_phase_key(&key, side, &phase);
        match decrypt_data(&pk, body) {
            Ok(plaintext) if self.verified => RxOutcome::Good { phase, plaintext },
            Ok(plaintext) => {
                self.verified = true;
                RxOutcome::FirstGood {
                    verifier: derive_verifier(&key),
                    phase,
                    plaintext,
                }
            }
            Err(_) => {
                self.scared = true;
                RxOutcome::Bad
            }
        }
    }
}
