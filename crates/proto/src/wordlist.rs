//! The PGP word list, word choice and completion (docs/protocol.md §2.10).
//!
//! Owns: turning random bytes into code words (first word from the odd, three-syllable column,
//! then alternating) and Python-compatible completion of a partly typed password. Must not: know
//! about nameplates, claim anything or read the terminal; the input helper strips `NN-` before
//! calling [`get_completions`].

use rand::RngCore;

#[path = "wordlist_data.rs"]
mod data;

use data::PGP_WORDS;

/// The even-column (two-syllable) word for byte `b`, lowercase.
pub fn even_word(b: u8) -> &'static str {
    PGP_WORDS[usize::from(b)].0
}

/// The odd-column (three-syllable) word for byte `b`, lowercase.
pub fn odd_word(b: u8) -> &'static str {
    PGP_WORDS[usize::from(b)].1
}

/// The word for the `i`-th position (0-based) of a code: odd column at even positions.
fn word_at(i: usize, b: u8) -> &'static str {
    if i.is_multiple_of(2) {
        odd_word(b)
    } else {
        even_word(b)
    }
}

/// Choose `n` words from random bytes drawn from `rng`, joined by `-`.
pub fn choose_words<R: RngCore + ?Sized>(n: usize, rng: &mut R) -> String {
    let mut bytes = vec![0u8; n];
    rng.fill_bytes(&mut bytes);
    words_from_bytes(&bytes)
}

/// Choose words from the given bytes (one byte per word), for known-answer tests.
pub fn words_from_bytes(bytes: &[u8]) -> String {
    let words: Vec<&str> = bytes.iter().enumerate().map(|(i, &b)| word_at(i, b)).collect();
    words.join("-")
}

/// Completions of `prefix` (the part after `NN-`), as Python's `get_completions`.
///
/// The column is chosen by the number of `-` already typed (even → odd column); the last partial
/// word is matched case-sensitively as a prefix of the lowercase words; a `-` is appended when
/// more words are expected (`count + 1 < num_words`). The result is sorted and has no
/// duplicates (Python returns a set).
pub fn get_completions(prefix: &str, num_words: usize) -> Vec<String> {
    let count = prefix.matches('-').count();
    let last_partial = prefix.rsplit('-').next().unwrap_or("");
    // `last_partial` is a suffix of `prefix`, so this cut is on a char boundary.
    let kept = &prefix[..prefix.len() - last_partial.len()];
    let more = count.saturating_add(1) < num_words;
    let mut out: Vec<String> = PGP_WORDS
        .iter()
        .map(|&(even, odd)| if count.is_multiple_of(2) { odd } else { even })
        .filter(|word| word.starts_with(last_partial))
        .map(|word| {
            let mut s = String::with_capacity(kept.len() + word.len() + 1);
            s.push_str(kept);
            s.push_str(word);
            if more {
                s.push('-');
            }
            s
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shape() {
        assert_eq!(even_word(0), "aardvark");
        assert_eq!(odd_word(0), "adroitness");
        assert_eq!(even_word(0xff), "zulu");
        assert_eq!(odd_word(0xff), "yucatan");
        let mut evens: Vec<&str> = (0..=255u8).map(even_word).collect();
        let mut odds: Vec<&str> = (0..=255u8).map(odd_word).collect();
        for w in evens.iter().chain(odds.iter()) {
            assert!(!w.is_empty());
            assert!(w.bytes().all(|c| c.is_ascii_lowercase()), "{w}");
        }
        // Each column is alphabetical and free of duplicates; the columns do not overlap.
        let sorted_e = {
            let mut v = evens.clone();
            v.sort();
            v
        };
        assert_eq!(evens, sorted_e);
        evens.dedup();
        odds.sort();
        odds.dedup();
        assert_eq!(evens.len(), 256);
        assert_eq!(odds.len(), 256);
        assert!(evens.iter().all(|e| odds.binary_search(e).is_err()));
    }

    /// docs/protocol.md §7.1 and §7.2 word vectors.
    #[test]
    fn words_from_bytes_vectors() {
        assert_eq!(words_from_bytes(&[0x04, 0x10]), "alkali-assume");
        assert_eq!(words_from_bytes(&[0x00, 0xff]), "adroitness-zulu");
        assert_eq!(words_from_bytes(&[0xff, 0x00, 0x42]), "yucatan-aardvark-december");
        assert_eq!(words_from_bytes(&[]), "");
    }

    struct Bytes(Vec<u8>);
    impl RngCore for Bytes {
        fn next_u32(&mut self) -> u32 {
            unimplemented!()
        }
        fn next_u64(&mut self) -> u64 {
            unimplemented!()
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            let n = dest.len();
            dest.copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    #[test]
    fn choose_words_uses_one_byte_per_word() {
        assert_eq!(choose_words(2, &mut Bytes(vec![0x04, 0x10])), "alkali-assume");
        assert_eq!(
            choose_words(3, &mut Bytes(vec![0xff, 0x00, 0x42])),
            "yucatan-aardvark-december"
        );
        let mut rng = rand::thread_rng();
        for n in 1..6 {
            let code = choose_words(n, &mut rng);
            assert_eq!(code.split('-').count(), n);
        }
    }

    #[test]
    fn completion_vectors() {
        assert_eq!(get_completions("ar", 2), ["armistice-", "article-"]);
        assert_eq!(
            get_completions("armistice-ba", 2),
            [
                "armistice-baboon",
                "armistice-backfield",
                "armistice-backward",
                "armistice-banjo"
            ]
        );
        assert_eq!(
            get_completions("armistice-ba", 3),
            [
                "armistice-baboon-",
                "armistice-backfield-",
                "armistice-backward-",
                "armistice-banjo-"
            ]
        );
        let all = get_completions("armistice-", 2);
        assert_eq!(all.len(), 256);
        assert!(all.iter().all(|c| c.starts_with("armistice-")));
        assert!(all.contains(&"armistice-aardvark".to_string()));
        assert_eq!(
            get_completions("purple-sa", 2),
            ["purple-sailboat", "purple-sawdust"]
        );
    }

    #[test]
    fn completion_rules() {
        // Case-sensitive: typed uppercase matches nothing.
        assert!(get_completions("AR", 2).is_empty());
        // Empty prefix: all 256 odd words, each with a trailing '-'.
        let first = get_completions("", 2);
        assert_eq!(first.len(), 256);
        assert!(first.iter().all(|c| c.ends_with('-')));
        assert!(first.contains(&"adroitness-".to_string()));
        // Third word comes from the odd column again; no '-' once enough words exist.
        assert_eq!(get_completions("a-b-yuc", 3), ["a-b-yucatan"]);
        assert_eq!(get_completions("a-b-yuc", 4), ["a-b-yucatan-"]);
        // A full word is its own completion; an unknown one has none.
        assert_eq!(get_completions("armistice", 2), ["armistice-"]);
        assert!(get_completions("xyzzy", 2).is_empty());
        assert!(get_completions("armistice-é", 2).is_empty());
        assert_eq!(get_completions("x", 0), Vec::<String>::new());
    }
}
