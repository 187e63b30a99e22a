//! Sans-IO parsing of the relay request (`please relay TOKEN [for side SIDE]`), byte-compatible with
//! magic-wormhole-transit-relay 0.5 (docs/protocol.md §4.6).
//!
//! Owns: finding the request line in the first bytes of a TCP connection (1024-byte cap), and matching
//! a line (TCP) or a whole first message (WebSocket) against the two accepted forms.
//! Must not: do any I/O, allocate per byte, or decide what happens after the request (see `session`).

/// Longest request line accepted (without its `\n`); more bytes without a newline close the connection.
pub const MAX_LINE: usize = 1024;

/// Length of the relay token (`\w{64}`).
pub const TOKEN_LEN: usize = 64;
/// Length of the side (`\w{16}`).
pub const SIDE_LEN: usize = 16;

const PREFIX: &[u8] = b"please relay ";
const FOR_SIDE: &[u8] = b" for side ";

/// The relay token a client asks to be paired on.
pub type Token = [u8; TOKEN_LEN];
/// The side a client names itself with (absent in the legacy request).
pub type Side = [u8; SIDE_LEN];

/// A well-formed relay request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The 64-character token both peers derived from their shared key.
    pub token: Token,
    /// The 16-character side, or `None` for the legacy `please relay TOKEN` form (pairs with anyone).
    pub side: Option<Side>,
}

/// What the first bytes of a TCP connection amount to so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineScan {
    /// No `\n` yet and at most [`MAX_LINE`] bytes: read more.
    Incomplete,
    /// A complete line: `line_len` bytes of line, `consumed` bytes including the `\n`.
    Line {
        /// Length of the line without its `\n`.
        line_len: usize,
        /// Bytes to drop from the front of the buffer (the line and its `\n`).
        consumed: usize,
    },
    /// More than [`MAX_LINE`] bytes without a `\n`: close silently (Python's `lineLengthExceeded`).
    TooLong,
}

/// Look for the request line at the start of `buf` (everything the connection has sent so far).
pub fn scan_line(buf: &[u8]) -> LineScan {
    let window = &buf[..buf.len().min(MAX_LINE + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(pos) => LineScan::Line {
            line_len: pos,
            consumed: pos + 1,
        },
        None if buf.len() > MAX_LINE => LineScan::TooLong,
        None => LineScan::Incomplete,
    }
}

/// Python's bytes-regex `\w`: ASCII letters, digits and underscore.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn word_field<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let field: [u8; N] = bytes.try_into().ok()?;
    field.iter().all(|&b| is_word(b)).then_some(field)
}

/// Match one request line (without its `\n`) against both accepted forms. Anything else, including a
/// line ending in `\r`, is a bad handshake.
pub fn parse_line(line: &[u8]) -> Option<Request> {
    let rest = line.strip_prefix(PREFIX)?;
    let (token_bytes, tail) = rest.split_at_checked(TOKEN_LEN)?;
    let token = word_field::<TOKEN_LEN>(token_bytes)?;
    if tail.is_empty() {
        return Some(Request { token, side: None });
    }
    let side = word_field::<SIDE_LEN>(tail.strip_prefix(FOR_SIDE)?)?;
    Some(Request {
        token,
        side: Some(side),
    })
}

/// Match the first WebSocket message: the whole payload is the request, optionally followed by one `\n`
/// (Python applies `^…$` to the payload, and `$` also matches before a final newline).
pub fn parse_message(payload: &[u8]) -> Option<Request> {
    parse_line(payload.strip_suffix(b"\n").unwrap_or(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn sided() -> Vec<u8> {
        format!("please relay {TOKEN} for side 0123456789abcdef").into_bytes()
    }

    #[test]
    fn sided_request_parses() {
        let r = parse_line(&sided()).unwrap();
        assert_eq!(&r.token[..], TOKEN.as_bytes());
        assert_eq!(r.side.as_ref().map(|s| &s[..]), Some(&b"0123456789abcdef"[..]));
        assert_eq!(sided().len() + 1, 104, "docs/protocol.md: 104 bytes with the newline");
    }

    #[test]
    fn legacy_request_parses() {
        let r = parse_line(format!("please relay {TOKEN}").as_bytes()).unwrap();
        assert_eq!(r.side, None);
    }

    #[test]
    fn word_characters_not_only_hex() {
        let tok = "Z_".repeat(32);
        assert!(parse_line(format!("please relay {tok} for side ________________").as_bytes()).is_some());
    }

    #[test]
    fn bad_lines_rejected() {
        let mut crlf = sided();
        crlf.push(b'\r');
        let cases: Vec<Vec<u8>> = vec![
            crlf,
            b"".to_vec(),
            b"please relay".to_vec(),
            format!("please relay {}", &TOKEN[..63]).into_bytes(),
            format!("please relay {TOKEN}0").into_bytes(),
            format!("please relay {TOKEN} for side 0123").into_bytes(),
            format!("please relay {TOKEN} for side 0123456789abcdef0").into_bytes(),
            format!("please relay {TOKEN} for side 0123456789abcde-").into_bytes(),
            format!("please relay {TOKEN} for  side 0123456789abcdef").into_bytes(),
            format!("Please relay {TOKEN}").into_bytes(),
            format!(" please relay {TOKEN}").into_bytes(),
            format!("please relay {}", "é".repeat(32)).into_bytes(),
        ];
        for c in cases {
            assert_eq!(parse_line(&c), None, "{:?}", String::from_utf8_lossy(&c));
        }
    }

    #[test]
    fn websocket_message_allows_one_trailing_newline() {
        let mut m = sided();
        assert!(parse_message(&m).is_some());
        m.push(b'\n');
        assert!(parse_message(&m).is_some());
        m.push(b'\n');
        assert!(parse_message(&m).is_none());
    }

    #[test]
    fn scan_finds_line_and_leftover() {
        let mut buf = sided();
        assert_eq!(scan_line(&buf), LineScan::Incomplete);
        buf.extend_from_slice(b"\nextra");
        assert_eq!(
            scan_line(&buf),
            LineScan::Line {
                line_len: 103,
                consumed: 104
            }
        );
    }

    #[test]
    fn scan_line_length_cap() {
        let mut buf = vec![b'x'; MAX_LINE];
        assert_eq!(scan_line(&buf), LineScan::Incomplete);
        buf.push(b'\n');
        assert_eq!(
            scan_line(&buf),
            LineScan::Line {
                line_len: MAX_LINE,
                consumed: MAX_LINE + 1
            }
        );
        let mut long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(scan_line(&long), LineScan::TooLong);
        long.push(b'\n');
        assert_eq!(scan_line(&long), LineScan::TooLong);
    }
}
