//! The `wormhole-transfer:` URI (docs/protocol.md §5.7), shown as a QR code by senders:
//! `wormhole-transfer:<percent-encoded code>[?version=0&rendezvous=<ws url>&role=leader|follower]`.
//!
//! Owns: formatting and strict, bounded parsing of that URI. Must not: connect anywhere or decide
//! what a leader does; the CLI acts on the parsed [`TransferUri`].

use super::{Code, KeyFormatError};

/// The URI scheme, with its colon.
pub const SCHEME: &str = "wormhole-transfer:";

/// The longest URI accepted by [`TransferUri::parse`].
pub const MAX_URI_LEN: usize = 4096;

/// Which side made the URI: normally the sender shows it (`follower` is implied for the
/// scanning side); `leader` asks the scanner to act as the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriRole {
    /// The scanning side receives (the default when `role` is absent).
    #[default]
    Follower,
    /// The scanning side sends.
    Leader,
}

/// A parsed `wormhole-transfer:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferUri {
    /// The wormhole code carried by the URI.
    pub code: Code,
    /// A non-default mailbox server (a `ws://` or `wss://` URL), if one is named.
    pub rendezvous: Option<String>,
    /// The role requested by the URI's creator.
    pub role: UriRole,
}

/// A `wormhole-transfer:` URI could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum UriError {
    /// The text does not start with `wormhole-transfer:`; pass a code or such a URI.
    #[error("not a wormhole-transfer: URI")]
    WrongScheme,
    /// The URI is longer than [`MAX_URI_LEN`]; it is not one a wormhole tool made.
    #[error("wormhole-transfer: URI is too long")]
    TooLong,
    /// `wormhole-transfer://…` has a host part; the code must follow the colon directly.
    #[error("wormhole-transfer: URIs carry the code right after the colon, not a host")]
    HasHost,
    /// A `%` escape is broken or the decoded text is not UTF-8.
    #[error("bad percent-encoding in wormhole-transfer: URI")]
    BadEncoding,
    /// The URI names a scheme version this program does not know; update the program.
    #[error("unsupported wormhole-transfer: URI version {0:?}")]
    UnsupportedVersion(String),
    /// `role` is neither `leader` nor `follower`.
    #[error("invalid role {0:?} in wormhole-transfer: URI (expected leader or follower)")]
    InvalidRole(String),
    /// `rendezvous` is not a `ws://` or `wss://` URL.
    #[error("invalid rendezvous server {0:?} in wormhole-transfer: URI (expected ws:// or wss://)")]
    BadRendezvous(String),
    /// The code inside the URI is malformed.
    #[error("bad code in wormhole-transfer: URI: {0}")]
    Code(#[from] KeyFormatError),
}

impl TransferUri {
    /// A URI for `code` with the default server and role.
    pub fn new(code: Code) -> TransferUri {
        TransferUri {
            code,
            rendezvous: None,
            role: UriRole::Follower,
        }
    }

    /// Parse a `wormhole-transfer:` URI (the scheme is case-insensitive; unknown query keys and
    /// a `#fragment` are ignored).
    pub fn parse(uri: &str) -> Result<TransferUri, UriError> {
        if uri.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let scheme = uri.get(..SCHEME.len()).ok_or(UriError::WrongScheme)?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(UriError::WrongScheme);
        }
        let rest = &uri[SCHEME.len()..];
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        if rest.starts_with("//") {
            return Err(UriError::HasHost);
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let code = Code::parse(&percent_decode(path, false)?)?;
        let mut out = TransferUri::new(code);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k, true)?;
            let value = percent_decode(v, true)?;
            match key.as_str() {
                "version" if value != "0" => return Err(UriError::UnsupportedVersion(value)),
                "rendezvous" => {
                    if !(value.starts_with("ws://") || value.starts_with("wss://")) {
                        return Err(UriError::BadRendezvous(value));
                    }
                    out.rendezvous = Some(value);
                }
                "role" => {
                    out.role = match value.as_str() {
                        "leader" => UriRole::Leader,
                        "follower" => UriRole::Follower,
                        _ => return Err(UriError::InvalidRole(value)),
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for TransferUri {
    /// The bare form (`wormhole-transfer:<code>`) unless a server or the leader role is named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SCHEME)?;
        f.write_str(&percent_encode(&self.code.full, false))?;
        if self.rendezvous.is_some() || self.role == UriRole::Leader {
            f.write_str("?version=0")?;
            if let Some(r) = &self.rendezvous {
                write!(f, "&rendezvous={}", percent_encode(r, true))?;
            }
            if self.role == UriRole::Leader {
                f.write_str("&role=leader")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for TransferUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<TransferUri, UriError> {
        TransferUri::parse(s)
    }
}

/// Percent-encode `s`: in a path keep the unreserved set `A-Z a-z 0-9 - . _ ~`; in a query
/// value use form encoding (keep `A-Z a-z 0-9 * - . _`, space as `+`).
fn percent_encode(s: &str, form: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (if form { b == b'*' } else { b == b'~' });
        if keep {
            out.push(char::from(b));
        } else if form && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes (and `+` as a space when `form`); the result must be UTF-8.
fn percent_decode(s: &str, form: bool) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(UriError::BadEncoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| UriError::BadEncoding)?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| UriError::BadEncoding)?;
                out.push(v);
                i += 3;
            }
            b'+' if form => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UriError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    #[test]
    fn bare_form_round_trip() {
        let u = TransferUri::new(code("4-hurricane-equipment"));
        assert_eq!(u.to_string(), "wormhole-transfer:4-hurricane-equipment");
        assert_eq!(TransferUri::parse(&u.to_string()).unwrap(), u);
        assert_eq!(
            TransferUri::parse("WORMHOLE-TRANSFER:4-a-b").unwrap().code,
            code("4-a-b")
        );
    }

    #[test]
    fn non_ascii_code_is_percent_encoded() {
        let u = TransferUri::new(code("8-🙈-🙉-🙊"));
        assert_eq!(
            u.to_string(),
            "wormhole-transfer:8-%F0%9F%99%88-%F0%9F%99%89-%F0%9F%99%8A"
        );
        assert_eq!(TransferUri::parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn full_form_round_trip_and_rust_style_input() {
        let u = TransferUri {
            code: code("8-🙈-🙉-🙊"),
            rendezvous: Some("ws://localhost:4000/".into()),
            role: UriRole::Leader,
        };
        let s = u.to_string();
        assert_eq!(
            s,
            "wormhole-transfer:8-%F0%9F%99%88-%F0%9F%99%89-%F0%9F%99%8A?version=0&rendezvous=ws%3A%2F%2Flocalhost%3A4000%2F&role=leader"
        );
        assert_eq!(TransferUri::parse(&s).unwrap(), u);
        // As another implementation emits it: no version, unknown keys, a fragment.
        let parsed = TransferUri::parse(
            "wormhole-transfer:8-%F0%9F%99%88-%F0%9F%99%89-%F0%9F%99%8A?rendezvous=ws%3A%2F%2Flocalhost%3A4000%2F&role=leader&x=y#frag",
        )
        .unwrap();
        assert_eq!(parsed, u);
        let follower = TransferUri::parse("wormhole-transfer:1-a?role=follower").unwrap();
        assert_eq!(follower.role, UriRole::Follower);
    }

    #[test]
    fn rejects_bad_uris() {
        use UriError::*;
        let cases: Vec<(String, UriError)> = vec![
            ("4-a-b".into(), WrongScheme),
            ("wormhole:4-a-b".into(), WrongScheme),
            ("wormhole-transfer://host/4-a".into(), HasHost),
            ("wormhole-transfer:4-a%2".into(), BadEncoding),
            ("wormhole-transfer:4-a%zz".into(), BadEncoding),
            ("wormhole-transfer:4-a%ff".into(), BadEncoding),
            (
                "wormhole-transfer:4-a?version=42".into(),
                UnsupportedVersion("42".into()),
            ),
            (
                "wormhole-transfer:4-a?role=boss".into(),
                InvalidRole("boss".into()),
            ),
            (
                "wormhole-transfer:4-a?rendezvous=http%3A%2F%2Fx".into(),
                BadRendezvous("http://x".into()),
            ),
            (
                format!("wormhole-transfer:4-{}", "a".repeat(MAX_URI_LEN)),
                TooLong,
            ),
        ];
        for (s, e) in cases {
            assert_eq!(TransferUri::parse(&s), Err(e), "{s}");
        }
        for s in [
            "wormhole-transfer:",
            "wormhole-transfer:?role=leader",
            "wormhole-transfer:4-a%20b",
            "wormhole-transfer:abc-d",
        ] {
            assert!(matches!(TransferUri::parse(s), Err(Code(_))), "{s}");
        }
        // Multi-byte text at the scheme boundary must not panic.
        assert_eq!(TransferUri::parse("wormhole-transfeé"), Err(WrongScheme));
        assert_eq!(TransferUri::parse("é"), Err(WrongScheme));
    }
}
