//! `wormhole send`: the sender's flow (docs/protocol.md §5.2) — decide what to send, get a code and
//! show it, wait for the key (and the user's verifier check), then send the text or hand the file
//! or directory to the transfer library.
//!
//! The mailbox part is written against [`Session`]; the bytes of files go through `files.rs`.
//! User-facing lines follow the Python CLI; everything goes to stderr.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use wormhole_proto::transfer::{Answer, AppMsg, Offer};

use crate::args::SendOptions;
use crate::output::{naturalsize, prompt_line, qr_string};
use crate::report::TransferError;
use crate::session::{Session, with_notice};

/// What the user asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A text message.
    Text(String),
    /// A file or directory path.
    Path(PathBuf),
}

/// Decide what to send: `--text`, `--text -` (stdin), a path, or (with neither) the
/// `Text to send: ` prompt. Done before any network traffic, like Python.
pub fn decide_what(opts: &SendOptions) -> Result<What> {
    let mut text = opts.text.clone();
    if text.as_deref() == Some("-") {
        eprintln!("Reading text message from stdin..");
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the text message from stdin")?;
        text = Some(buf);
    }
    if text.as_deref().is_none_or(str::is_empty) && opts.what.is_none() {
        text = Some(prompt_line("Text to send: ").context("reading the text message")?);
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

/// Set or allocate the code, print it (and its QR code), and tell the user what the other side
/// must run. Returns the code.
pub async fn establish_code<S: Session>(w: &mut S, opts: &SendOptions) -> Result<String> {
    match &opts.code {
        Some(code) => w.set_code(code).await?,
        None => w.allocate_code(opts.code_length).await?,
    }
    let code = w.code().await?;
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
pub async fn confirm_peer<S: Session>(w: &mut S, verify: bool) -> Result<()> {
    w.unverified_key().await?;
    let verifier = with_notice(
        w.verifier(),
        Duration::from_secs(1),
        "Key established, waiting for confirmation...",
    )
    .await?;
    if verify {
        let hex = hex::encode(verifier);
        loop {
            let prompt = format!("Verifier {hex}. ok? (yes/no): ");
            let answer = tokio::task::spawn_blocking(move || prompt_line(&prompt))
                .await
                .context("verifier prompt")??;
            match answer.to_lowercase().as_str() {
                "yes" => break,
                "no" => {
                    let err = "sender rejected verification check, abandoned transfer";
                    w.send(AppMsg::Error(err.to_owned()).to_bytes()).await?;
                    return Err(TransferError(err.to_owned()).into());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Send a text message and wait for its acknowledgement.
pub async fn send_text<S: Session>(w: &mut S, text: String) -> Result<()> {
    w.send(AppMsg::Offer(Offer::Message(text)).to_bytes()).await?;
    loop {
        let bytes = w.receive().await?;
        match AppMsg::parse(&bytes).context("message from the receiver")? {
            AppMsg::Error(e) => {
                return Err(TransferError(format!("remote error, transfer abandoned: {e}")).into());
            }
            AppMsg::Answer(Answer::MessageAck(ok)) if ok == "ok" => {
                eprintln!("text message sent");
                return Ok(());
            }
            AppMsg::Answer(other) => {
                return Err(TransferError(format!("error sending text: {other:?}")).into());
            }
            // A transit message or anything unknown: not needed for text.
            _ => {}
        }
    }
}

/// The whole text flow after the wormhole is created: welcome, code, key, text.
pub async fn run_text<S: Session>(
    w: &mut S,
    opts: &SendOptions,
    text: String,
    relay_url: &str,
) -> Result<()> {
    let welcome = w.welcome().await?;
    crate::session::show_welcome(&welcome, relay_url, env!("CARGO_PKG_VERSION"));
    establish_code(w, opts).await?;
    confirm_peer(w, opts.verify).await?;
    send_text(w, text).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::session::fake::pair;

    fn opts() -> SendOptions {
        SendOptions {
            code: Some("4-purple-sausages".into()),
            zeromode: false,
            code_length: 2,
            verify: false,
            hide_progress: true,
            listen: true,
            qr: false,
            text: Some("hi".into()),
            what: None,
            ignore_unsendable_files: false,
        }
    }

    #[tokio::test]
    async fn text_is_offered_and_ack_ends_it() {
        let (mut a, mut b) = pair();
        let peer = tokio::spawn(async move {
            let m = b.receive().await.unwrap();
            assert_eq!(
                AppMsg::parse(&m).unwrap(),
                AppMsg::Offer(Offer::Message("hi".into()))
            );
            b.send(br#"{"transit": {"abilities-v1": [], "hints-v1": []}}"#.to_vec())
                .await
                .unwrap();
            b.send(br#"{"answer": {"message_ack": "ok"}}"#.to_vec())
                .await
                .unwrap();
        });
        run_text(&mut a, &opts(), "hi".into(), "ws://x/v1").await.unwrap();
        peer.await.unwrap();
        assert_eq!(a.code.as_deref(), Some("4-purple-sausages"));
    }

    #[tokio::test]
    async fn remote_error_is_a_transfer_error() {
        let (mut a, mut b) = pair();
        b.send(br#"{"error": "transfer rejected"}"#.to_vec())
            .await
            .unwrap();
        let e = send_text(&mut a, "x".into()).await.unwrap_err();
        assert_eq!(
            crate::report::render(&e, "u"),
            "TransferError: remote error, transfer abandoned: transfer rejected"
        );
    }

    #[tokio::test]
    async fn wrong_code_is_reported_as_such() {
        let (mut a, _b) = pair();
        a.wrong_code = true;
        let e = run_text(&mut a, &opts(), "x".into(), "u").await.unwrap_err();
        assert!(crate::report::render(&e, "u").starts_with("ERROR: Key confirmation failed."));
    }

    #[tokio::test]
    async fn allocation_uses_the_code_length() {
        let (mut a, _b) = pair();
        let mut o = opts();
        o.code = None;
        o.code_length = 3;
        let code = establish_code(&mut a, &o).await.unwrap();
        assert_eq!(code, "7-word-word-word");
    }
}
