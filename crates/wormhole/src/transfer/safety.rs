//! Safe-receive rules: reduce offered names to a base name, decide the destination without ever
//! overwriting (or following) an existing entry unless the caller named that path explicitly, and
//! escape untrusted text before it reaches a terminal.
//!
//! Pure path logic plus `symlink_metadata` look-ups; it never creates or deletes anything.

use std::path::{Path, PathBuf};

use super::TransferError;

fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00ad | 0x061c | 0x180e | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f
        | 0xfeff | 0xfff9..=0xfffb)
}

fn is_control(c: char) -> bool {
    c.is_control() || is_bidi_or_invisible(c)
}

/// Check an offered file or directory name: it must already be a plain base name, safe to create
/// in a directory. A name holding a path (`/` or `\\`, as in `../x` or `/etc/x`), control or
/// bidi-override characters, nothing, `.`, `..`, or more than 255 bytes is refused. Honest senders
/// (Python, Go, Rust) only ever offer base names, so a refusal means a broken or hostile peer.
pub fn safe_basename(offered: &str) -> Result<String, TransferError> {
    let plain = !offered.is_empty()
        && offered != "."
        && offered != ".."
        && offered.len() <= 255
        && !offered.contains(['/', '\\'])
        && !offered.chars().any(is_control);
    if !plain {
        return Err(TransferError::BadName(escape_control(offered)));
    }
    Ok(offered.to_owned())
}

/// Escape control characters (C0, DEL, C1), bidi overrides and invisible format characters as
/// `\n`, `\t`, `\xNN` or `\u{NNNN}`, and backslashes as `\\`, so untrusted text cannot move the
/// cursor, change colours or reorder what a terminal shows.
pub fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_control(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// True for characters Python's `str.isprintable()` rejects, as far as we can tell without the
/// Unicode database: controls (Cc), the common format characters (Cf), line/paragraph separators,
/// non-ASCII spaces (Zs), surrogates, private use, and noncharacters.
fn py_unprintable(c: char) -> bool {
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

/// Text exactly as Python prints `repr(text)[1:-1]` (what Python's receiver shows for a received
/// message): backslashes doubled, `\n` `\r` `\t`, other unprintable characters as `\xNN`,
/// `\uNNNN` or `\UNNNNNNNN`, printable non-ASCII kept, and `'` escaped only when the text holds
/// both quote kinds. Unprintable non-ASCII follows Python's rule for controls, format and
/// separator characters, private use and noncharacters (other unassigned code points are not tracked).
pub fn python_repr_text(text: &str) -> String {
    let escape_single = text.contains('\'') && text.contains('"');
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\'' if escape_single => out.push_str("\\'"),
            c if py_unprintable(c) => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
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

/// Where an offered file or directory will go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The final path.
    pub path: PathBuf,
    /// An entry exists there and will be replaced (only possible when the caller named the path
    /// explicitly; ask the user unless they pre-accepted).
    pub overwrite: bool,
}

/// Decide where an offer goes (docs/protocol.md §5.3). The offered name must pass [`safe_basename`]
/// (a path or control characters are refused, even with `output`); then:
/// - no `output`: `cwd/name`; an existing entry there is refused;
/// - `output` is an existing directory: `output/name`, same refusal unless it is a
///   plain file the user will confirm overwriting;
/// - otherwise `output` itself (the caller named it: overwriting it is allowed, never following it
///   if it is a symlink since the new data is renamed over the link).
///
/// An existing *directory* at the final path is never replaced.
pub fn plan_destination(
    offered: &str,
    output: Option<&Path>,
    cwd: &Path,
) -> Result<Destination, TransferError> {
    let name = safe_basename(offered)?;
    let (path, explicit) = match output {
        None => (cwd.join(&name), false),
        Some(o) => {
            let o = cwd.join(o);
            // Only a real directory (not a symlink to one) redirects into itself.
            match std::fs::symlink_metadata(&o) {
                Ok(m) if m.is_dir() => (o.join(&name), true),
                _ => (o, true),
            }
        }
    };
    match std::fs::symlink_metadata(&path) {
        Err(_) => Ok(Destination {
            path,
            overwrite: false,
        }),
        Ok(m) if m.is_dir() => Err(TransferError::WouldOverwrite(path)),
        Ok(_) if explicit => Ok(Destination {
            path,
            overwrite: true,
        }),
        Ok(_) => Err(TransferError::WouldOverwrite(path)),
    }
}

/// A fresh, exclusive temporary path next to `dest` (never an existing entry).
pub(crate) fn temp_sibling(dest: &Path, tag: &str) -> PathBuf {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short: String = base.chars().take(100).collect();
    let r: u64 = rand::random();
    parent.join(format!(".{short}.{tag}-{r:016x}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(safe_basename("x").unwrap(), "x");
        assert_eq!(safe_basename("my file (1).tar.gz").unwrap(), "my file (1).tar.gz");
        assert_eq!(safe_basename("é.txt").unwrap(), "é.txt");
        for bad in [
            "",
            "..",
            ".",
            "x/",
            "a/..",
            "/",
            "../x",
            "/etc/x",
            "a\\..\\b.txt",
            "evil\x1b[31m.txt",
            "rtl\u{202e}txt.exe",
            "new\nline",
        ] {
            assert!(safe_basename(bad).is_err(), "{bad:?}");
        }
        assert!(safe_basename(&"a".repeat(255)).is_ok());
        assert!(safe_basename(&"a".repeat(256)).is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_control("a\x1b[2Jb\nc\\"), "a\\x1b[2Jb\\nc\\\\");
        assert_eq!(escape_control("é ok"), "é ok");
        assert_eq!(escape_control("x\u{202e}y\u{85}"), "x\\u{202e}y\\x85");
    }

    #[test]
    fn python_repr_matches_observed() {
        // docs/protocol.md §5.3, observed from Python 0.24.0.
        assert_eq!(
            python_repr_text("it's a\ttab\nand \\ é \"q\""),
            "it\\'s a\\ttab\\nand \\\\ é \"q\""
        );
        assert_eq!(python_repr_text("it's"), "it's");
        assert_eq!(python_repr_text("say \"hi\""), "say \"hi\"");
        assert_eq!(
            python_repr_text("\x00\x7f\u{a0}\u{2028}😀"),
            "\\x00\\x7f\\xa0\\u2028😀"
        );
        assert_eq!(python_repr_text("\r"), "\\r");
    }

    #[test]
    fn destinations() {
        let d = tempfile::tempdir().unwrap();
        let cwd = d.path();
        assert!(matches!(
            plan_destination("../../x.txt", None, cwd),
            Err(TransferError::BadName(_))
        ));
        let p = plan_destination("x.txt", None, cwd).unwrap();
        assert_eq!(
            p,
            Destination {
                path: cwd.join("x.txt"),
                overwrite: false
            }
        );
        std::fs::write(cwd.join("x.txt"), b"old").unwrap();
        assert!(matches!(
            plan_destination("x.txt", None, cwd),
            Err(TransferError::WouldOverwrite(_))
        ));
        // -o naming the file explicitly allows overwriting it
        let p = plan_destination("whatever", Some(Path::new("x.txt")), cwd).unwrap();
        assert_eq!(
            p,
            Destination {
                path: cwd.join("x.txt"),
                overwrite: true
            }
        );
        // -o an existing directory: inside it, by base name
        std::fs::create_dir(cwd.join("out")).unwrap();
        let p = plan_destination("passwd", Some(Path::new("out")), cwd).unwrap();
        assert_eq!(p.path, cwd.join("out/passwd"));
        assert!(plan_destination("/etc/passwd", Some(Path::new("out")), cwd).is_err());
        // an existing directory as the final target is never replaced
        std::fs::create_dir(cwd.join("out/dir")).unwrap();
        assert!(plan_destination("dir", Some(Path::new("out")), cwd).is_err());
        // a symlink at the default target is refused, not followed
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/nonexistent/target", cwd.join("link")).unwrap();
            assert!(matches!(
                plan_destination("link", None, cwd),
                Err(TransferError::WouldOverwrite(_))
            ));
        }
        let t = temp_sibling(&cwd.join("x.txt"), "part");
        assert!(t.starts_with(cwd) && !t.exists());
    }
}
