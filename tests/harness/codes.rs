//! Distinct wormhole codes for tests, so a failed run can never leave a crowded nameplate that a later
//! test trips over.
//!
//! Codes look like real ones, `NNNNN-word-word`, built from words of the PGP word list (every word is at
//! least 4 bytes, as wormhole-rs requires of passwords). The nameplate is a per-process random base plus
//! a counter, so every call in a process gives a different nameplate.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::Rng;

/// A sample of the PGP word list's "even" column (used for the first word).
const EVEN_WORDS: [&str; 32] = [
    "aardvark",
    "aimless",
    "assume",
    "beaming",
    "bison",
    "breadline",
    "chairlift",
    "classic",
    "crackdown",
    "deadbolt",
    "drumbeat",
    "endorse",
    "facial",
    "frighten",
    "guidance",
    "island",
    "merit",
    "newborn",
    "peachy",
    "printer",
    "ragtime",
    "retouch",
    "ruffled",
    "select",
    "slowdown",
    "spaniel",
    "stagnate",
    "stormy",
    "tapeworm",
    "trauma",
    "unearth",
    "vulcan",
];
/// A sample of the PGP word list's "odd" column (used for the second word).
const ODD_WORDS: [&str; 32] = [
    "adroitness",
    "antenna",
    "autopsy",
    "borderline",
    "butterfat",
    "cellulose",
    "commando",
    "consulting",
    "dakota",
    "dictator",
    "embezzle",
    "everyday",
    "fortitude",
    "gravity",
    "hesitate",
    "indigo",
    "intention",
    "maritime",
    "millionaire",
    "narrative",
    "orlando",
    "paramount",
    "phonetic",
    "provincial",
    "recipe",
    "retrieval",
    "savagery",
    "stupendous",
    "tobacco",
    "typewriter",
    "upcoming",
    "warranty",
];

/// A fresh code `NNNNN-even-odd`, distinct from every other code this process generated.
pub fn unique_code() -> String {
    static BASE: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(|| rand::thread_rng().gen_range(10_000..800_000));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut rng = rand::thread_rng();
    let even = EVEN_WORDS[rng.gen_range(0..EVEN_WORDS.len())];
    let odd = ODD_WORDS[rng.gen_range(0..ODD_WORDS.len())];
    format!("{}-{even}-{odd}", base + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_well_formed() {
        let codes: Vec<String> = (0..200).map(|_| unique_code()).collect();
        let nameplates: std::collections::HashSet<&str> =
            codes.iter().map(|c| c.split('-').next().unwrap()).collect();
        assert_eq!(nameplates.len(), codes.len());
        for code in &codes {
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.len(), 3, "{code}");
            assert!(parts[0].bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(parts[1].len() >= 4 && parts[2].len() >= 4, "{code}");
        }
    }
}
