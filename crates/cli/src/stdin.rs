//! Standard input as the thing to send (`printf 'a\nb\n' | wormhole send`, `wormhole send -`):
//! all of it, as a text message when it is valid UTF-8 of at most [`MAX_STDIN_TEXT`] bytes,
//! otherwise as a file offer named [`STDIN_FILE_NAME`], spooled to an unlinked temporary file
//! first because an offer states its size.
//!
//! Python 0.24 defines two cases, which we keep: `--text -` reads all of stdin as text, and
//! `wormhole send` with neither text nor path asks `Text to send: ` — on a terminal. With a
//! piped stdin Python reads only its first line there and sends it silently, and it treats
//! `send -` as a missing file; both are where we read standard input instead. Reading only;
//! the caller says which it became.

use std::io::{Read, Write};

/// Larger (or non-UTF-8) standard input is sent as a file rather than a text message.
pub const MAX_STDIN_TEXT: usize = 64 * 1024;

/// The name offered for standard input sent as a file.
pub const STDIN_FILE_NAME: &str = "stdin";

/// What standard input turned out to be.
#[derive(Debug)]
pub enum StdinInput {
    /// Valid UTF-8 text, within the limit.
    Text(String),
    /// Anything else, spooled (read back from the start); its size in bytes.
    File(std::fs::File, u64),
}

/// Read all of `input`.
pub fn read_input(mut input: impl Read) -> std::io::Result<StdinInput> {
    let mut head = Vec::new();
    (&mut input)
        .take(MAX_STDIN_TEXT as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() <= MAX_STDIN_TEXT
        && let Ok(text) = String::from_utf8(head.clone())
    {
        return Ok(StdinInput::Text(text));
    }
    let mut spool = tempfile::tempfile()?;
    spool.write_all(&head)?;
    let rest = std::io::copy(&mut input, &mut spool)?;
    spool.flush()?;
    use std::io::Seek;
    spool.seek(std::io::SeekFrom::Start(0))?;
    Ok(StdinInput::File(spool, head.len() as u64 + rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn text_binary_and_large() {
        match read_input(&b"a\nb\n"[..]).unwrap() {
            StdinInput::Text(t) => assert_eq!(t, "a\nb\n"),
            other => panic!("{other:?}"),
        }
        match read_input(&[0xff, 0, 1][..]).unwrap() {
            StdinInput::File(mut f, n) => {
                assert_eq!(n, 3);
                let mut v = Vec::new();
                f.read_to_end(&mut v).unwrap();
                assert_eq!(v, [0xff, 0, 1]);
            }
            other => panic!("{other:?}"),
        }
        let big = vec![b'x'; MAX_STDIN_TEXT + 10];
        assert!(matches!(read_input(&big[..]).unwrap(), StdinInput::File(_, n) if n == big.len() as u64));
        let edge = vec![b'x'; MAX_STDIN_TEXT];
        assert!(matches!(read_input(&edge[..]).unwrap(), StdinInput::Text(t) if t.len() == MAX_STDIN_TEXT));
    }
}
