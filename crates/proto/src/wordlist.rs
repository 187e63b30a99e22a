//! The PGP word list, word choice and completion (PROTOCOL.md §2.10).
//!
//! INTERFACE STUB: signatures fixed; bodies being written.

/// Choose `n` words from random bytes drawn from `rng`, joined by `-`.
pub fn choose_words<R: rand::RngCore + ?Sized>(_n: usize, _rng: &mut R) -> String {
    unimplemented!("stub")
}

/// Choose words from the given bytes (one byte per word), for known-answer tests.
pub fn words_from_bytes(_bytes: &[u8]) -> String {
    unimplemented!("stub")
}

/// Completions of `prefix` (the part after `NN-`), as Python's `get_completions`.
pub fn get_completions(_prefix: &str, _num_words: usize) -> Vec<String> {
    unimplemented!("stub")
}
