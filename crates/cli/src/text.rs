//! Printing untrusted text safely: received messages are shown like Python's `repr(text)[1:-1]`
//! (docs/protocol.md §5.3), so control characters, terminal escapes and invisible format characters
//! become visible escapes instead of reaching the terminal.
//!
//! Pure string functions, no I/O.

/// `repr(text)[1:-1]` as Python 3 prints a `str` (the library's
/// [`wormhole::transfer::python_repr_text`]): backslash doubled, `\n` `\r` `\t` named, other
/// unprintable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`, and `'` escaped only when the text
/// contains both quote kinds.
pub fn python_repr_inner(text: &str) -> String {
    wormhole::transfer::python_repr_text(text)
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
        // docs/protocol.md §5.3: `it's a<TAB>tab<LF>and \ é "q"` → `it\'s a\ttab\nand \\ é "q"`.
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
