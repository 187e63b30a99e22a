//! How failures are shown to the user: the Python CLI's wording for the well-known errors (wrong
//! code, welcome error, bad code format, server connection, transfer errors), wrapped at 70
//! columns like Python's `textwrap.fill`, and a plain `ERROR: …` for everything else.
//!
//! Only formatting lives here; the exit code (always 1 for these) is decided by `main`. The
//! `kind` of a `--json` error event ([`error_kind`]) is found here too, from the error's type.

use wormhole::WormholeError;

/// A failure of the transfer itself (rejected, abandoned, bad ack), printed as
/// `TransferError: <message>` like Python.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransferError(pub String);

/// A file of a directory could not be read (and `--ignore-unsendable-files` was not given).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnsendableFileError(pub String);

/// `--json` would need a question answered on the terminal; the flag that answers it is named.
#[derive(Debug, thiserror::Error)]
#[error("--json: refusing to ask {question:?}; {hint}")]
pub struct PromptRefused {
    /// The question.
    pub question: String,
    /// Which flag answers it.
    pub hint: &'static str,
}

const WRONG_PASSWORD: &str = "Key confirmation failed. Either you or your correspondent typed the \
code wrong, or a would-be man-in-the-middle attacker guessed incorrectly. Try sending the file again.";
const WELCOME: &str = "The relay server told us to signal an error, probably because our version \
is too old to possibly work. The server said:";
const KEY_FORMAT: &str = "The key you entered contains spaces or was missing a dash. \
Magic-wormhole expects the numerical nameplate and the code words to be separated by dashes. \
Please reenter the key you were given separating the words with dashes.";
const SERVER_CONNECTION: &str = "We had a problem connecting to the relay server:";
const UNSENDABLE: &str = "A file you wanted to send couldn't be read, maybe because it's not a \
file, or because it's a symlink that points to something that doesn't exist.";
const CROWDED: &str = "The mailbox server says this code is already being used by two other \
parties (crowded). Someone may have intercepted or mistyped your code; start again with a new code.";
const LONELY: &str = "The wormhole closed before the other side connected. Make sure the other \
side runs its command with the same code, then try again.";

/// Greedy word wrap at `width` columns (like `textwrap.fill`, which collapses whitespace).
pub fn fill(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let wlen = word.chars().count();
        if line_len > 0 && line_len + 1 + wlen > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += wlen;
    }
    out
}

fn error_block(doc: &str) -> String {
    fill(&format!("ERROR: {doc}"), 70)
}

/// The message for a wormhole-level error; `relay_url` is named when the server was unreachable.
pub fn wormhole_error(e: &WormholeError, relay_url: &str) -> String {
    match e {
        WormholeError::WrongPassword => error_block(WRONG_PASSWORD),
        WormholeError::Welcome(msg) => format!("{}\n\n{msg}", error_block(WELCOME)),
        WormholeError::KeyFormat(k) => format!("{}\n\n{k}", error_block(KEY_FORMAT)),
        WormholeError::ServerConnection(reason) => format!(
            "{}\n(relay URL was {relay_url})\n{reason}",
            error_block(SERVER_CONNECTION)
        ),
        WormholeError::Crowded => error_block(CROWDED),
        WormholeError::Lonely => error_block(LONELY),
        other => format!("ERROR: {other}"),
    }
}

/// The whole text printed on stderr for a failed command.
pub fn render(err: &anyhow::Error, relay_url: &str) -> String {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<WormholeError>() {
            return wormhole_error(e, relay_url);
        }
        if let Some(e) = cause.downcast_ref::<TransferError>() {
            return format!("TransferError: {e}");
        }
        if let Some(e @ crate::code_input::CodeInputError::Incomplete) =
            cause.downcast_ref::<crate::code_input::CodeInputError>()
        {
            return format!("{}\n\n{e}", error_block(KEY_FORMAT));
        }
        if let Some(e) = cause.downcast_ref::<UnsendableFileError>() {
            return format!("{}\n\n{e}", error_block(UNSENDABLE));
        }
    }
    format!("ERROR: {err:#}")
}

/// Every kind [`error_kind`] returns (the schema lists them; `main` adds `usage`, `config` and
/// `interrupted`).
#[cfg(test)]
pub const ERROR_KINDS: [&str; 12] = [
    "wrong_code",
    "welcome",
    "bad_code",
    "server_connection",
    "crowded",
    "lonely",
    "wormhole",
    "transfer",
    "unsendable_file",
    "prompt_refused",
    "io",
    "other",
];

/// The stable machine-readable kind of a failure (docs/cli-json.md lists them), from the first
/// typed error in its chain.
pub fn error_kind(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<WormholeError>() {
            return match e {
                WormholeError::WrongPassword => "wrong_code",
                WormholeError::Welcome(_) => "welcome",
                WormholeError::KeyFormat(_) => "bad_code",
                WormholeError::ServerConnection(_) => "server_connection",
                WormholeError::Crowded => "crowded",
                WormholeError::Lonely => "lonely",
                _ => "wormhole",
            };
        }
        if cause.is::<TransferError>() {
            return "transfer";
        }
        if cause.is::<crate::code_input::CodeInputError>() {
            return "bad_code";
        }
        if cause.is::<UnsendableFileError>() {
            return "unsendable_file";
        }
        if cause.is::<PromptRefused>() {
            return "prompt_refused";
        }
        if cause.is::<std::io::Error>() {
            return "io";
        }
    }
    "other"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn fill_wraps_at_70() {
        let s = fill(&format!("ERROR: {WRONG_PASSWORD}"), 70);
        assert!(s.lines().all(|l| l.chars().count() <= 70), "{s}");
        assert!(s.starts_with("ERROR: Key confirmation failed. Either you or your correspondent"));
        assert_eq!(
            s.split_whitespace().collect::<Vec<_>>().join(" "),
            format!("ERROR: {WRONG_PASSWORD}")
        );
    }

    #[test]
    fn wrong_code_message() {
        let e = anyhow::Error::new(WormholeError::WrongPassword).context("waiting for the key");
        let s = render(&e, "ws://x/v1");
        assert!(s.starts_with("ERROR: Key confirmation failed."), "{s}");
        assert!(s.contains("man-in-the-middle"));
    }

    #[test]
    fn other_messages() {
        let s = render(
            &anyhow::Error::new(WormholeError::ServerConnection("refused".into())),
            "ws://h:1/v1",
        );
        assert!(s.contains("(relay URL was ws://h:1/v1)\nrefused"), "{s}");
        let s = render(&WormholeError::Welcome("go away".into()).into(), "u");
        assert!(s.ends_with("\n\ngo away"), "{s}");
        let s = render(&WormholeError::Crowded.into(), "u");
        assert!(s.contains("crowded"), "{s}");
        let s = render(&WormholeError::Server("must bind first".into()).into(), "u");
        assert_eq!(s, "ERROR: server error: must bind first");
        let s = render(&TransferError("transfer rejected".into()).into(), "u");
        assert_eq!(s, "TransferError: transfer rejected");
        let s = render(&crate::code_input::CodeInputError::Incomplete.into(), "u");
        assert!(s.starts_with("ERROR: The key you entered contains spaces"), "{s}");
        assert!(s.ends_with("\n\nincomplete wormhole code"), "{s}");
        let s = render(&anyhow::anyhow!("boom"), "u");
        assert_eq!(s, "ERROR: boom");
    }

    #[test]
    fn kinds_come_from_types() {
        let k = |e: anyhow::Error| error_kind(&e);
        assert_eq!(
            k(anyhow::Error::new(WormholeError::WrongPassword).context("x")),
            "wrong_code"
        );
        assert_eq!(k(WormholeError::Crowded.into()), "crowded");
        assert_eq!(k(WormholeError::Closed.into()), "wormhole");
        assert_eq!(k(TransferError("transfer rejected".into()).into()), "transfer");
        let refused = PromptRefused {
            question: "ok? (Y/n): ".into(),
            hint: "give --accept-file",
        };
        assert_eq!(k(refused.into()), "prompt_refused");
        assert_eq!(k(anyhow::anyhow!("boom")), "other");
        for e in [
            anyhow::Error::new(WormholeError::Lonely),
            UnsendableFileError("x".into()).into(),
            std::io::Error::other("x").into(),
            crate::code_input::CodeInputError::Incomplete.into(),
        ] {
            assert!(ERROR_KINDS.contains(&k(e)));
        }
    }
}
