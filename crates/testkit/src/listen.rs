//! Reading the address a server announces: `listening on ADDR` in one line of its output, or
//! Twisted's `<Factory> starting on PORT` (a `twist` server told to listen on 127.0.0.1 port 0).
//!
//! Owns this one parser of a child's (trusted, local) output; must not read pipes itself.

use std::net::SocketAddr;

/// Find `listening on ADDR` in a log line (ANSI colours, a `ws://`/`http://` prefix, a `/v1` path
/// and trailing punctuation tolerated), or Twisted's `… starting on PORT` (then 127.0.0.1:PORT: the
/// `twist` servers the kit starts are always told `interface=127.0.0.1`).
pub fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    parse_listening_on(line).or_else(|| parse_twisted_start(line))
}

fn parse_listening_on(line: &str) -> Option<SocketAddr> {
    let plain = strip_ansi(line);
    let at = plain.to_ascii_lowercase().find("listening on")? + "listening on".len();
    let rest = plain.get(at..)?.trim_start_matches([' ', ':', '=']);
    let token = rest.split_whitespace().next()?;
    let token = token.trim_start_matches("ws://").trim_start_matches("http://");
    let token = token.split('/').next()?;
    token
        .trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | '.' | ';' | '(' | ')'))
        .parse()
        .ok()
}

/// Twisted logs `ServerFactory starting on 40123` once the port is bound.
fn parse_twisted_start(line: &str) -> Option<SocketAddr> {
    const MARK: &str = " starting on ";
    let at = line.find(MARK)? + MARK.len();
    let rest = line.get(at..)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let port: u16 = rest.get(..digits)?.parse().ok()?;
    (port != 0).then(|| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip a CSI sequence: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_listen_lines() {
        let want: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(parse_listen_line("listening on 127.0.0.1:40123"), Some(want));
        assert_eq!(parse_listen_line("listening on 127.0.0.1:40123\n"), Some(want));
        assert_eq!(
            parse_listen_line(
                "2026-01-01T00:00:00Z  INFO wormhole_server: listening on ws://127.0.0.1:40123/v1"
            ),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("\u{1b}[32mINFO\u{1b}[0m mailbox listening on 127.0.0.1:40123."),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("listening on [::1]:4000").map(|a| a.port()),
            Some(4000)
        );
        assert_eq!(
            parse_listen_line("transit relay listening on 127.0.0.1:40123"),
            Some(want)
        );
        assert_eq!(parse_listen_line("starting up"), None);
        // Twisted (JSON log lines of `twist`); the mailbox's placeholder URL is no address.
        assert_eq!(
            parse_listen_line(r#"{"log_text": "ServerFactory starting on 40123", "x": 1}"#),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("PrivacyEnhancedSite starting on 40123"),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("websocket listening on ws://HOSTNAME:PORT/v1"),
            None
        );
        assert_eq!(parse_listen_line("Site starting on port"), None);
        assert_eq!(parse_listen_line("listening on nowhere"), None);
    }
}
