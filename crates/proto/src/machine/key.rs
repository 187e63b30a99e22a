//! Key: joins the code and the peer's `pake` (in either order) into the shared key with SPAKE2
//! (docs/protocol.md §2.2 steps 2–3, §2.6 "K"). Starting SPAKE2 yields our `pake` body; finishing it
//! yields the key(s): the standard one and, when K's top byte is zero, wormhole-william's
//! (`key_choice`). The Boss adopts one and then sends `version`.
//!
//! Crypto lives in [`crate::key`]; this file only sequences it.

use rand::RngCore;

use crate::key::{Pake, PakeKeys};

/// What happened when an input reached Key.
#[derive(Debug)]
pub(crate) enum KeyStep {
    /// Nothing yet.
    Waiting,
    /// SPAKE2 finished: the candidate key(s). None is adopted yet.
    Key(PakeKeys),
    /// The peer's pake was unusable: the wormhole is scared.
    Failed,
}

/// The key machine.
#[derive(Default)]
pub(crate) struct Key {
    pub(super) pake: Option<Pake>,
    pub(super) code_known: bool,
    pub(super) peer_pake: Option<Vec<u8>>,
    pub(super) key: Option<[u8; 32]>,
    pub(super) done: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("code_known", &self.code_known)
            .field("have_peer_pake", &self.peer_pake.is_some())
            .field("have_key", &self.key.is_some())
            .finish()
    }
}

impl Key {
    /// The code is known: start SPAKE2. Returns our `pake` body and the step.
    /// The SPAKE2 secret is drawn from `rng` (the Boss's RNG, so simulations repeat).
    pub(crate) fn got_code(&mut self, code: &str, appid: &str, rng: &mut dyn RngCore) -> (Vec<u8>, KeyStep) {
        let (pake, body) = Pake::start_with_rng(code, appid, rng);
        self.pake = Some(pake);
        self.code_known = true;
        let step = match self.peer_pake.take() {
            Some(peer) => self.finish(&peer),
            None => KeyStep::Waiting,
        };
        (body, step)
    }

    /// The peer's `pake` body arrived (first copy only; Mailbox drops duplicates).
    pub(crate) fn got_pake(&mut self, body: Vec<u8>) -> KeyStep {
        if self.done {
            return KeyStep::Waiting;
        }
        if self.code_known {
            self.finish(&body)
        } else {
            self.peer_pake = Some(body);
            KeyStep::Waiting
        }
    }

    fn finish(&mut self, peer: &[u8]) -> KeyStep {
        self.done = true;
        match self.pake.take() {
            Some(p) => match p.finish_keys(peer) {
                Ok(keys) => KeyStep::Key(keys),
                Err(_) => KeyStep::Failed,
            },
            None => KeyStep::Waiting,
        }
    }

    /// Adopt `key` as the shared key (the standard one, or Go's: see `key_choice`).
    pub(crate) fn adopt(&mut self, key: [u8; 32]) {
        self.key = Some(key);
    }

    /// The adopted shared (possibly unverified) key.
    pub(crate) fn key(&self) -> Option<[u8; 32]> {
        self.key
    }
}
