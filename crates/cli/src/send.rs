//! `wormhole send`: the sender's flow (docs/protocol.md §5.2) — decide what to send, get a code and
//! show it, wait for the key (and the user's verifier check), then hand the text, file or
//! directory to the `wormhole::transfer` flow and report how it ended.
//!
//! Only the user-facing half lives here (Python's lines, all on stderr, and the `--json` events);
//! the protocol is the library's. Files and directories go through `files.rs`.

use std::io::IsTerminal;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use wormhole::Wormhole;
use wormhole::transfer;

use crate::args::SendOptions;
use crate::json::{self, Event, OfferKind, Role, Summary};
use crate::notices::with_notice;
use crate::output::{ask, naturalsize, qr_string};
use crate::report::{PromptRefused, TransferError};
use crate::stdin::{STDIN_FILE_NAME, StdinInput, read_input};

/// What the user asked to send.
#[derive(Debug)]
pub enum What {
    /// A text message.
    Text(String),
    /// A file or directory path.
    Path(PathBuf),
    /// Standard input that is not (short) text, spooled; its size.
    Stdin(std::fs::File, u64),
}

/// Read all of standard input on a blocking thread (so a signal is handled meanwhile).
async fn read_stdin_all() -> Result<StdinInput> {
    tokio::task::spawn_blocking(|| read_input(std::io::stdin().lock()))
        .await
        .context("reading standard input")?
        .context("reading standard input")
}

/// Decide what to send: `--text`, `--text -` (all of stdin, as Python), a path, `-` or a piped
/// stdin with neither (text if it is short UTF-8, else a file), or the `Text to send: ` prompt
/// on a terminal. Done before any network traffic, like Python.
pub async fn decide_what(opts: &SendOptions) -> Result<What> {
    let mut text = opts.text.clone();
    if text.as_deref() == Some("-") {
        eprintln!("Reading text message from stdin..");
        let buf = tokio::task::spawn_blocking(|| {
            let mut buf = String::new();
            std::io::stdin().read_to_string(&mut buf).map(|_| buf)
        })
        .await
        .context("reading the text message from stdin")?
        .context("reading the text message from stdin")?;
        text = Some(buf);
    }
    let no_text = text.as_deref().is_none_or(str::is_empty);
    let stdin_asked = opts.what.as_deref() == Some(std::path::Path::new("-"));
    if stdin_asked || (no_text && opts.what.is_none() && !std::io::stdin().is_terminal()) {
        return match read_stdin_all().await? {
            StdinInput::Text(t) => {
                eprintln!("Reading from standard input: it is text, sending it as a text message");
                eprintln!("Sending text message ({})", naturalsize(t.chars().count() as u64));
                Ok(What::Text(t))
            }
            StdinInput::File(f, size) => {
                eprintln!(
                    "Reading from standard input: not short UTF-8 text, sending it as a file named '{STDIN_FILE_NAME}'"
                );
                Ok(What::Stdin(f, size))
            }
        };
    }
    if no_text && opts.what.is_none() {
        if json::enabled() {
            return Err(PromptRefused {
                question: "Text to send: ".to_owned(),
                hint: "give the text with --text, or a file or directory to send",
            }
            .into());
        }
        text = Some(
            ask("Text to send: ".to_owned())
                .await
                .context("reading the text message")?,
        );
    }
    match (text, &opts.what) {
        (Some(t), _) => {
            eprintln!("Sending text message ({})", naturalsize(t.chars().count() as u64));
            Ok(What::Text(t))
        }
        (None, Some(p)) => Ok(What::Path(p.clone())),
        (None, None) => Err(anyhow::anyhow!("nothing to send")),
    }
}

/// Set (unless `code_set`: the caller already did) or allocate the code, print it (and its QR
/// code), and tell the user what the other side must run. Returns the code.
pub async fn establish_code(w: &Wormhole, opts: &SendOptions, code_set: bool) -> Result<String> {
    match &opts.code {
        Some(_) if code_set => {}
        Some(code) => w.set_code(code).await?,
        None => w.allocate_code(opts.code_length).await?,
    }
    let code = w.get_code().await?;
    json::emit(&Event::Code { code: code.clone() });
    let mut other = String::from("wormhole receive");
    if opts.verify {
        other.push_str(" --verify");
    }
    if opts.zeromode {
        other.push_str(" -0");
    } else {
        eprintln!("Wormhole code is: {code}");
        other.push(' ');
        other.push_str(&code);
        if opts.qr
            && let Some(qr) = qr_string(&format!("wormhole-transfer:{code}"))
        {
            eprintln!("{qr}");
        }
    }
    eprintln!("On the other computer, please run:\n\n{other}\n");
    Ok(code)
}

/// Wait for the key and the peer's confirmation; with `--verify`, ask the user to compare the
/// verifier and tell the peer if they say no.
pub async fn confirm_peer(w: &Wormhole, verify: bool) -> Result<()> {
    w.get_unverified_key().await?;
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
        let hex = hex::encode(verifier);
        loop {
            let answer = ask(format!("Verifier {hex}. ok? (yes/no): ")).await?;
            match answer.to_lowercase().as_str() {
                "yes" => break,
                "no" => {
                    let err = "sender rejected verification check, abandoned transfer";
                    transfer::reject(w, err).await;
                    return Err(TransferError(err.to_owned()).into());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The whole text flow after the wormhole is created: welcome, code, key, text.
pub async fn run_text(w: &Wormhole, opts: &SendOptions, text: &str, relay_url: &str) -> Result<Summary> {
    let welcome = w.get_welcome().await?;
    crate::notices::show_welcome(&welcome, relay_url, env!("CARGO_PKG_VERSION"));
    establish_code(w, opts, false).await?;
    confirm_peer(w, opts.verify).await?;
    json::emit(&Event::Offer {
        role: Role::Sender,
        kind: OfferKind::Text,
        name: None,
        bytes: text.len() as u64,
        files: None,
        uncompressed_bytes: None,
    });
    transfer::send_text(w, text)
        .await
        .map_err(|e| crate::files::cli_error(e, true))?;
    eprintln!("text message sent");
    Ok(Summary::default())
}
