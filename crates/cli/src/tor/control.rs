//! Tor's control-port replies (control-spec §2.3, §3.21, §3.25): the parsers we need to find the
//! SOCKS port, authenticate, and follow bootstrapping. Self-contained (no crate imports), so the
//! fuzz target includes this file as it is.
//!
//! Owns: splitting a reply into its lines and reading `PROTOCOLINFO`, `net/listeners/socks` and
//! `status/bootstrap-phase`. Must not: do I/O.

/// Longest reply line we accept.
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply.
pub const MAX_LINES: usize = 64;

/// A control-port reply that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// A line is longer than [`MAX_LINE`], or a reply has more than [`MAX_LINES`] lines.
    TooLong,
    /// A line does not start with a three-digit status and a separator.
    Malformed(String),
    /// Tor answered with an error status.
    Refused(String),
    /// A needed field is missing.
    Missing(&'static str),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::TooLong => write!(f, "reply longer than {MAX_LINES} lines of {MAX_LINE} bytes"),
            ControlError::Malformed(l) => write!(f, "malformed reply line {l:?}"),
            ControlError::Refused(l) => write!(f, "Tor refused: {l}"),
            ControlError::Missing(what) => write!(f, "the reply has no {what}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// Whether `buf` holds a complete reply: returns its length (through the final `NNN ` line).
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ControlError> {
    let mut at = 0;
    let mut lines = 0;
    while let Some(nl) = buf.get(at..).and_then(|b| b.iter().position(|c| *c == b'\n')) {
        let line = buf.get(at..at + nl).unwrap_or_default();
        if line.len() > MAX_LINE {
            return Err(ControlError::TooLong);
        }
        lines += 1;
        if lines > MAX_LINES {
            return Err(ControlError::TooLong);
        }
        at += nl + 1;
        if line.get(3) == Some(&b' ') {
            return Ok(Some(at));
        }
    }
    if buf.len() - at > MAX_LINE {
        return Err(ControlError::TooLong);
    }
    Ok(None)
}

/// The lines of a complete reply, status checked (`250`), status and separator removed.
pub fn lines(reply: &[u8]) -> Result<Vec<String>, ControlError> {
    let text = String::from_utf8_lossy(reply);
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (status, rest) = (line.get(..3), line.get(4..).unwrap_or(""));
        match status {
            Some("250") => out.push(rest.to_owned()),
            Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(ControlError::Refused(line.to_owned()));
            }
            _ => return Err(ControlError::Malformed(line.chars().take(80).collect())),
        }
    }
    Ok(out)
}

/// How `PROTOCOLINFO` says we may authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthInfo {
    /// `METHODS=` (e.g. `NULL`, `COOKIE`, `SAFECOOKIE`, `HASHEDPASSWORD`).
    pub methods: Vec<String>,
    /// `COOKIEFILE=`, unquoted.
    pub cookie_file: Option<String>,
}

/// Read the `AUTH` line of a `PROTOCOLINFO` reply.
pub fn auth_info(lines: &[String]) -> Result<AuthInfo, ControlError> {
    let auth = lines
        .iter()
        .find_map(|l| l.strip_prefix("AUTH "))
        .ok_or(ControlError::Missing("AUTH line"))?;
    let mut info = AuthInfo::default();
    for (key, value) in fields(auth) {
        match key.as_str() {
            "METHODS" => info.methods = value.split(',').map(str::to_owned).collect(),
            "COOKIEFILE" => info.cookie_file = Some(value),
            _ => {}
        }
    }
    Ok(info)
}

/// The first SOCKS listener of a `GETINFO net/listeners/socks` reply (`HOST:PORT`).
pub fn socks_listener(lines: &[String]) -> Result<String, ControlError> {
    let value = lines
        .iter()
        .find_map(|l| l.strip_prefix("net/listeners/socks="))
        .ok_or(ControlError::Missing("net/listeners/socks"))?;
    let first = value.split(' ').find(|s| !s.is_empty()).map(unquote);
    match first {
        Some(a) if !a.is_empty() && !a.starts_with("unix:") => Ok(a),
        _ => Err(ControlError::Missing("TCP SOCKS listener")),
    }
}

/// Tor's bootstrap state (`GETINFO status/bootstrap-phase`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bootstrap {
    /// `PROGRESS=` (0–100).
    pub progress: u8,
    /// `SUMMARY=`.
    pub summary: String,
    /// `WARNING=` of a failing step, if any.
    pub warning: Option<String>,
}

/// Read a `status/bootstrap-phase` reply.
pub fn bootstrap(lines: &[String]) -> Result<Bootstrap, ControlError> {
    let value = lines
        .iter()
        .find_map(|l| l.strip_prefix("status/bootstrap-phase="))
        .ok_or(ControlError::Missing("status/bootstrap-phase"))?;
    let mut b = Bootstrap::default();
    for (key, v) in fields(value) {
        match key.as_str() {
            "PROGRESS" => b.progress = v.parse::<u8>().unwrap_or(0).min(100),
            "SUMMARY" => b.summary = v,
            "WARNING" => b.warning = Some(v),
            _ => {}
        }
    }
    Ok(b)
}

/// `KEY=VALUE` pairs of a line, values unquoted (`"..."` with backslash escapes).
fn fields(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].rsplit(' ').next().unwrap_or("").to_owned();
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = q.get(end..).unwrap_or("");
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        out.push((key, value));
    }
    out
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(s)
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replies_end_at_the_line_with_a_space() {
        let r = b"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250 OK\r\nextra";
        assert_eq!(reply_len(&r[..10]), Ok(None));
        assert_eq!(reply_len(r), Ok(Some(r.len() - 5)));
        assert_eq!(reply_len(&vec![b'x'; MAX_LINE + 2]), Err(ControlError::TooLong));
    }

    #[test]
    fn protocolinfo_gives_methods_and_cookie_file() {
        let l = lines(
            b"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/run/tor/control.authcookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n",
        )
        .unwrap();
        let a = auth_info(&l).unwrap();
        assert_eq!(a.methods, ["COOKIE", "SAFECOOKIE"]);
        assert_eq!(a.cookie_file.as_deref(), Some("/run/tor/control.authcookie"));
    }

    #[test]
    fn the_socks_listener_is_read_unquoted() {
        let l = lines(b"250-net/listeners/socks=\"127.0.0.1:39051\" \"[::1]:39051\"\r\n250 OK\r\n").unwrap();
        assert_eq!(socks_listener(&l).unwrap(), "127.0.0.1:39051");
        let none = lines(b"250-net/listeners/socks=\r\n250 OK\r\n").unwrap();
        assert!(socks_listener(&none).is_err());
    }

    #[test]
    fn bootstrap_phase_with_a_warning() {
        let l = lines(b"250-status/bootstrap-phase=WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY=\"Connecting to a relay\" WARNING=\"Network is unreachable\" REASON=NOROUTE COUNT=3 RECOMMENDATION=warn\r\n250 OK\r\n").unwrap();
        let b = bootstrap(&l).unwrap();
        assert_eq!(b.progress, 5);
        assert_eq!(b.summary, "Connecting to a relay");
        assert_eq!(b.warning.as_deref(), Some("Network is unreachable"));
    }

    #[test]
    fn error_statuses_are_refusals() {
        assert!(matches!(
            lines(b"515 Authentication failed\r\n"),
            Err(ControlError::Refused(_))
        ));
        assert!(matches!(lines(b"hello\r\n"), Err(ControlError::Malformed(_))));
    }
}
