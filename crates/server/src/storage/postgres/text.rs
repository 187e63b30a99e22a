//! Strings in and out of PostgreSQL `TEXT`, which cannot hold the NUL character.
//!
//! Sides, phases, app ids, mailbox ids, moods and message ids come from clients, and JSON lets
//! them contain `\u0000`; stored as is, PostgreSQL would refuse the whole batch, and a failed
//! commit stops the engine (one client could stop the server). So every string is stored with a
//! reversible escape: `\` becomes `\\` and NUL becomes `\0`. Strings with neither (all that real
//! clients send) are stored unchanged, and equality in `WHERE` clauses still holds because the
//! mapping is one-to-one.
//!
//! Owns: [`encode`] and [`decode`]. Must not: know about tables.

use std::borrow::Cow;

/// The stored form of `s`.
pub(super) fn encode(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '\0']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The string whose stored form is `s`. Never fails: a stray backslash (a row not written by
/// us) is kept as it is.
pub(super) fn decode(s: String) -> String {
    if !s.contains('\\') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            Some('0') => {
                chars.next();
                out.push('\0');
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_plain_strings_alone() {
        for s in ["", "pake", "a\0b", "\\", "\\0", "\0\0\\\\0", "ünï\0cödé\\", "x\\"] {
            let stored = encode(s);
            assert!(!stored.contains('\0'), "{s:?} -> {stored:?}");
            assert_eq!(decode(stored.into_owned()), s);
        }
        assert!(matches!(
            encode("lothar.com/wormhole/text-or-file-xfer"),
            Cow::Borrowed(_)
        ));
        // Distinct strings stay distinct (equality in WHERE clauses).
        assert_ne!(encode("\\0"), encode("\0"));
        // Rows we did not write: a lone backslash survives.
        assert_eq!(decode("a\\b\\".into()), "a\\b\\");
    }
}
