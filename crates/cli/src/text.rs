//! Printing untrusted text safely: received messages are shown like Python's `repr(text)[1:-1]`
//! (PROTOCOL.md §5.3), so control characters, terminal escapes and invisible format characters
//! become visible escapes instead of reaching the terminal.
//!
//! Pure string functions, no I/O.

/// True for characters Python's `str.isprintable()` rejects, as far as we can tell without the
/// Unicode database: controls (Cc), the common format characters (Cf), line/paragraph separators,
/// non-ASCII spaces (Zs), private use, and noncharacters.
fn is_unprintable(c: char) -> bool {
    let u = c as u32;
    matches!(u,
        0x00..=0x1f | 0x7f..=0xa0 | 0xad
        | 0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f | 0x180e
        | 0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f
        | 0x3000 | 0xd800..=0xf8ff | 0xfdd0..=0xfdef | 0xfeff | 0xfff9..=0xfffb
        | 0x110bd | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f
        | 0xf0000..=0x10ffff)
        || (u & 0xfffe) == 0xfffe
}

/// `repr(text)[1:-1]` as Python 3 prints a `str`: backslash doubled, `\n` `\r` `\t` named,
/// other unprintable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`, and `'` escaped only when
/// the text contains both quote kinds (Python then picks `'` as the delimiter).
pub fn python_repr_inner(text: &str) -> String {
    let escape_single = text.contains('\'') && text.contains('"');
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\'' if escape_single => out.push_str("\\'"),
            c if is_unprintable(c) => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u <= 0xffff {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `repr(name)` of a file name, with its quotes, for messages like
/// `Receiving file (1.0 MB) into: 'name'`.
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    format!("{quote}{}{quote}", python_repr_inner(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_observed_python_output() {
        // PROTOCOL.md §5.3: `it's a<TAB>tab<LF>and \ é "q"` → `it\'s a\ttab\nand \\ é "q"`.
        assert_eq!(
            python_repr_inner("it's a\ttab\nand \\ é \"q\""),
            "it\\'s a\\ttab\\nand \\\\ é \"q\""
        );
        assert_eq!(python_repr_inner("it's"), "it's");
        assert_eq!(python_repr_inner("say \"hi\""), "say \"hi\"");
    }

    #[test]
    fn escapes_terminal_tricks() {
        assert_eq!(python_repr_inner("\u{1b}[31mred"), "\\x1b[31mred");
        assert_eq!(python_repr_inner("a\u{7f}b\u{85}"), "a\\x7fb\\x85");
        assert_eq!(python_repr_inner("\u{202e}evil"), "\\u202eevil");
        assert_eq!(python_repr_inner("nb\u{a0}sp"), "nb\\xa0sp");
        assert_eq!(python_repr_inner("\u{e0041}"), "\\U000e0041");
        assert_eq!(python_repr_inner("日本語 ok ✓ 😀"), "日本語 ok ✓ 😀");
    }

    #[test]
    fn repr_with_quotes() {
        assert_eq!(python_repr("a.txt"), "'a.txt'");
        assert_eq!(python_repr("it's.txt"), "\"it's.txt\"");
        assert_eq!(python_repr("x\ny"), "'x\\ny'");
    }
}
