//! `wormhole receive`: the receiver's mailbox steps (docs/protocol.md §5.3) — get the code (argument,
//! `-0`, `--allocate`, or typed with completion), wait for the key, show the verifier. The offer
//! itself (text, file or directory) is the `wormhole::transfer` flow's, run from `files.rs`.
//!
//! Only the received text goes to stdout (with `--json`: only the events); everything else to
//! stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use wormhole::Wormhole;

use crate::args::ReceiveOptions;
use crate::json::{self, Event};
use crate::notices::{show_welcome, with_notice};
use crate::text::python_repr_inner;

/// Accept a `wormhole-transfer:` URI where a code is expected (as wormhole-rs prints one): the
/// code, and the mailbox it names, if any. Plain codes pass through unchanged.
pub fn code_from_argument(arg: &str) -> Result<(String, Option<String>)> {
    use wormhole::code::uri::{SCHEME, TransferUri, UriRole};
    let is_uri = arg
        .get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME));
    if !is_uri {
        return Ok((arg.to_owned(), None));
    }
    let uri = TransferUri::parse(arg)?;
    if uri.role == UriRole::Leader {
        anyhow::bail!(
            "this wormhole-transfer: URI asks the scanning side to send (role=leader); run \
             `wormhole send --code {}` instead",
            uri.code.full
        );
    }
    Ok((uri.code.full, uri.rendezvous))
}

/// Get the code the way the options say. `interactive` runs the typed-code prompt and returns
/// whether Tab completion was used.
pub async fn establish_code<F>(w: &Wormhole, opts: &ReceiveOptions, interactive: F) -> Result<()>
where
    F: AsyncFnOnce(&Wormhole) -> Result<bool>,
{
    if let Some(code) = &opts.code {
        w.set_code(code).await?;
    } else if opts.allocate {
        w.allocate_code(opts.code_length).await?;
        let code = w.get_code().await?;
        eprintln!("Allocated code: {code}");
        eprintln!("On the other computer, please run:");
        eprintln!("   wormhole send --code {code} <filename>");
    } else {
        let used_completion = interactive(w).await?;
        if !used_completion {
            eprintln!(" (note: you can use <Tab> to complete words)");
        }
    }
    let code = w.get_code().await?;
    json::emit(&Event::Code { code });
    Ok(())
}

/// Wait for the sender's key and confirmation, printing Python's progress notices, and show the
/// verifier with `--verify`.
pub async fn confirm_peer(w: &Wormhole, verify: bool) -> Result<()> {
    with_notice(
        w.get_unverified_key(),
        Duration::from_secs(1),
        "Waiting for sender...",
    )
    .await?;
    json::emit(&Event::KeyEstablished {});
    let verifier = with_notice(
        w.get_verifier(),
        Duration::from_secs(1),
        "Key established, waiting for confirmation...",
    )
    .await?;
    json::emit(&Event::Verifier {
        verifier: hex::encode(verifier),
    });
    if verify {
        eprintln!("Verifier {}.", hex::encode(verifier));
    }
    Ok(())
}

/// Print a received text like Python (`repr(text)[1:-1]` and a newline) on stdout; in JSON
/// mode the `text_received` event holds it, exactly as sent, instead.
pub fn print_text(text: &str) -> Result<()> {
    if json::enabled() {
        json::emit(&Event::TextReceived {
            text: text.to_owned(),
        });
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", python_repr_inner(text)).context("writing the text to stdout")?;
    out.flush().context("writing the text to stdout")
}

/// The mailbox part of `receive`: welcome, code, key, verifier.
pub async fn run<F>(w: &Wormhole, opts: &ReceiveOptions, relay_url: &str, interactive: F) -> Result<()>
where
    F: AsyncFnOnce(&Wormhole) -> Result<bool>,
{
    let welcome = w.get_welcome().await?;
    show_welcome(&welcome, relay_url, env!("CARGO_PKG_VERSION"));
    establish_code(w, opts, interactive).await?;
    confirm_peer(w, opts.verify).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn codes_and_uris() {
        assert_eq!(code_from_argument("4-a-b").unwrap(), ("4-a-b".into(), None));
        assert_eq!(
            code_from_argument("wormhole-transfer:4-purple-sausages").unwrap(),
            ("4-purple-sausages".into(), None)
        );
        assert_eq!(
            code_from_argument(
                "wormhole-transfer:77-deadbolt-upcoming?rendezvous=ws%3A%2F%2F127.0.0.1%3A34609%2Fv1"
            )
            .unwrap(),
            (
                "77-deadbolt-upcoming".into(),
                Some("ws://127.0.0.1:34609/v1".into())
            )
        );
        assert!(code_from_argument("wormhole-transfer:4-a?version=0&role=leader").is_err());
        assert!(code_from_argument("wormhole-transfer:x-a").is_err());
    }
}
