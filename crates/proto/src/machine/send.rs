//! Send: numbers application messages `"0"`, `"1"`, … and holds them until the key is verified,
//! then encrypts each with the key for (own side, phase) (docs/protocol.md §2.2 step 6, §2.6 "S").
//! The `version` message does not pass through here (the Boss sends it as soon as the key
//! exists), so no numeric phase can precede it.

use rand::RngCore;

use crate::key::{derive_phase_key, encrypt_data_with_rng};

/// The send machine (named so as not to shadow `std::marker::Send`).
#[derive(Debug)]
pub(crate) struct Sender {
    pub(super) side: String,
    pub(super) next_phase: u64,
    pub(super) queued: Vec<(String, Vec<u8>)>,
    pub(super) key: Option<[u8; 32]>,
}

impl Sender {
    pub(crate) fn new(side: &str) -> Self {
        Sender {
            side: side.to_owned(),
            next_phase: 0,
            queued: Vec::new(),
            key: None,
        }
    }

    fn seal(&self, key: &[u8; 32], phase: &str, plaintext: &[u8], rng: &mut dyn RngCore) -> Vec<u8> {
        encrypt_data_with_rng(&derive_phase_key(key, &self.side, phase), plaintext, rng)
    }

    /// Queue or encrypt one application message. Returns (phase, body) to add now, if any.
    /// Nonces come from `rng` (the Boss's RNG).
    pub(crate) fn send(&mut self, plaintext: Vec<u8>, rng: &mut dyn RngCore) -> Option<(String, Vec<u8>)> {
        let phase = self.next_phase.to_string();
        self.next_phase += 1;
        match self.key {
            Some(key) => {
                let body = self.seal(&key, &phase, &plaintext, rng);
                Some((phase, body))
            }
            None => {
                self.queued.push((phase, plaintext));
                None
            }
        }
    }

    /// The key was verified: everything queued, encrypted, in order.
    pub(crate) fn got_verified_key(
        &mut self,
        key: [u8; 32],
        rng: &mut dyn RngCore,
    ) -> Vec<(String, Vec<u8>)> {
        self.key = Some(key);
        let queued = std::mem::take(&mut self.queued);
        queued
            .into_iter()
            .map(|(phase, pt)| {
                let body = self.seal(&key, &phase, &pt, rng);
                (phase, body)
            })
            .collect()
    }
}
