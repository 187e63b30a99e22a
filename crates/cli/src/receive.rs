//! `wormhole receive`: the receiver's mailbox flow (docs/protocol.md §5.3) — get the code (argument,
//! `-0`, `--allocate`, or typed with completion), wait for the key, show the verifier, then read
//! the sender's messages: a text offer is printed on stdout and acknowledged here; a file or
//! directory offer is returned to the caller, which runs the transfer.
//!
//! Written against [`Session`]. Only the received text goes to stdout; everything else to stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use wormhole_proto::transfer::{Answer, AppMsg, Offer};
use wormhole_proto::transit::TransitMsg;

use crate::args::ReceiveOptions;
use crate::report::TransferError;
use crate::session::{Session, show_welcome, with_notice};
use crate::text::python_repr_inner;

/// What the sender wanted, once the mailbox part is done.
#[derive(Debug)]
pub enum Incoming {
    /// A text message: already printed and acknowledged.
    TextDone,
    /// A file or directory offer, with the sender's transit message (which every sender sends
    /// before such an offer).
    Transfer {
        /// The sender's transit abilities and hints, if it sent them.
        transit: Option<TransitMsg>,
        /// The offer.
        offer: Offer,
    },
}

/// Accept a `wormhole-transfer:` URI where a code is expected (as wormhole-rs prints one): the
/// code, and the mailbox it names, if any. Plain codes pass through unchanged.
pub fn code_from_argument(arg: &str) -> Result<(String, Option<String>)> {
    use wormhole_proto::code::uri::{SCHEME, TransferUri, UriRole};
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
pub async fn establish_code<S, F>(w: &mut S, opts: &ReceiveOptions, interactive: F) -> Result<()>
where
    S: Session,
    F: AsyncFnOnce(&mut S) -> Result<bool>,
{
    if let Some(code) = &opts.code {
        w.set_code(code).await?;
    } else if opts.allocate {
        w.allocate_code(opts.code_length).await?;
        let code = w.code().await?;
        eprintln!("Allocated code: {code}");
        eprintln!("On the other computer, please run:");
        eprintln!("   wormhole send --code {code} <filename>");
    } else {
        let used_completion = interactive(w).await?;
        if !used_completion {
            eprintln!(" (note: you can use <Tab> to complete words)");
        }
    }
    w.code().await?;
    Ok(())
}

/// Wait for the sender's key and confirmation, printing Python's progress notices, and show the
/// verifier with `--verify`.
pub async fn confirm_peer<S: Session>(w: &mut S, verify: bool) -> Result<()> {
    with_notice(
        w.unverified_key(),
        Duration::from_secs(1),
        "Waiting for sender...",
    )
    .await?;
    let verifier = with_notice(
        w.verifier(),
        Duration::from_secs(1),
        "Key established, waiting for confirmation...",
    )
    .await?;
    if verify {
        eprintln!("Verifier {}.", hex::encode(verifier));
    }
    Ok(())
}

/// Print a received text like Python (`repr(text)[1:-1]` and a newline) on stdout.
pub fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", python_repr_inner(text)).context("writing the text to stdout")?;
    out.flush().context("writing the text to stdout")
}

/// Read the sender's messages until an offer: print and acknowledge text, return file and
/// directory offers. An `error` from the sender is a [`TransferError`].
pub async fn read_offer<S: Session>(w: &mut S, only_text: bool) -> Result<Incoming> {
    let mut transit = None;
    loop {
        let bytes = w.receive().await?;
        match AppMsg::parse(&bytes).context("message from the sender")? {
            AppMsg::Error(e) => return Err(TransferError(e).into()),
            AppMsg::Transit(t) => {
                // Like Python, only the first transit message counts.
                if transit.is_none() {
                    transit = Some(t);
                }
            }
            AppMsg::Offer(Offer::Message(text)) => {
                print_text(&text)?;
                w.send(AppMsg::Answer(Answer::MessageAck("ok".into())).to_bytes())
                    .await?;
                return Ok(Incoming::TextDone);
            }
            AppMsg::Offer(Offer::Unknown(kind)) => {
                eprintln!("I don't know what they're offering\n");
                eprintln!("Offer details: {}", crate::text::python_repr(&kind));
                w.send(AppMsg::Error("unknown offer type".into()).to_bytes())
                    .await?;
                return Err(TransferError("unknown offer type".into()).into());
            }
            AppMsg::Offer(offer) => {
                if only_text {
                    eprintln!("Refusing a file or directory: --only-text was given");
                    w.send(AppMsg::Error("transfer rejected".into()).to_bytes())
                        .await?;
                    return Err(TransferError("transfer rejected".into()).into());
                }
                return Ok(Incoming::Transfer { transit, offer });
            }
            AppMsg::Answer(_) | AppMsg::Unknown => {}
        }
    }
}

/// The mailbox part of `receive`: welcome, code, key, verifier, offer.
pub async fn run<S, F>(w: &mut S, opts: &ReceiveOptions, relay_url: &str, interactive: F) -> Result<Incoming>
where
    S: Session,
    F: AsyncFnOnce(&mut S) -> Result<bool>,
{
    let welcome = w.welcome().await?;
    show_welcome(&welcome, relay_url, env!("CARGO_PKG_VERSION"));
    establish_code(w, opts, interactive).await?;
    confirm_peer(w, opts.verify).await?;
    read_offer(w, opts.only_text).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::session::fake::{FakeSession, pair};

    fn opts() -> ReceiveOptions {
        ReceiveOptions {
            code: Some("4-purple-sausages".into()),
            zeromode: false,
            allocate: false,
            code_length: 2,
            verify: true,
            hide_progress: true,
            listen: true,
            only_text: false,
            accept_file: true,
            output_file: None,
        }
    }

    async fn never(_: &mut FakeSession) -> Result<bool> {
        panic!("no interactive entry expected")
    }

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

    #[tokio::test]
    async fn text_offer_is_acknowledged() {
        let (mut a, mut b) = pair();
        b.send(br#"{"offer": {"message": "hello"}}"#.to_vec())
            .await
            .unwrap();
        let got = run(&mut a, &opts(), "u", never).await.unwrap();
        assert!(matches!(got, Incoming::TextDone));
        let ack = b.receive().await.unwrap();
        assert_eq!(
            AppMsg::parse(&ack).unwrap(),
            AppMsg::Answer(Answer::MessageAck("ok".into()))
        );
    }

    #[tokio::test]
    async fn file_offer_comes_back_with_transit() {
        let (mut a, mut b) = pair();
        b.send(br#"{"transit": {"abilities-v1": [{"type": "direct-tcp-v1"}], "hints-v1": []}}"#.to_vec())
            .await
            .unwrap();
        b.send(br#"{"offer": {"file": {"filename": "x.bin", "filesize": 3}}}"#.to_vec())
            .await
            .unwrap();
        match run(&mut a, &opts(), "u", never).await.unwrap() {
            Incoming::Transfer { transit, offer } => {
                assert!(transit.is_some());
                assert_eq!(
                    offer,
                    Offer::File {
                        filename: "x.bin".into(),
                        filesize: 3
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn only_text_rejects_files() {
        let (mut a, mut b) = pair();
        b.send(br#"{"offer": {"file": {"filename": "x.bin", "filesize": 3}}}"#.to_vec())
            .await
            .unwrap();
        let mut o = opts();
        o.only_text = true;
        let e = run(&mut a, &o, "u", never).await.unwrap_err();
        assert_eq!(crate::report::render(&e, "u"), "TransferError: transfer rejected");
        let reply = b.receive().await.unwrap();
        assert_eq!(
            AppMsg::parse(&reply).unwrap(),
            AppMsg::Error("transfer rejected".into())
        );
    }

    #[tokio::test]
    async fn sender_error_and_unknown_offer() {
        let (mut a, mut b) = pair();
        b.send(br#"{"error": "sender rejected verification check, abandoned transfer"}"#.to_vec())
            .await
            .unwrap();
        let e = read_offer(&mut a, false).await.unwrap_err();
        assert!(crate::report::render(&e, "u").contains("sender rejected verification"));
        b.send(br#"{"offer": {"teleport": {}}}"#.to_vec()).await.unwrap();
        assert!(read_offer(&mut a, false).await.is_err());
        assert_eq!(
            AppMsg::parse(&b.receive().await.unwrap()).unwrap(),
            AppMsg::Error("unknown offer type".into())
        );
    }

    #[tokio::test]
    async fn allocate_and_interactive_paths() {
        let (mut a, _b) = pair();
        let mut o = opts();
        o.code = None;
        o.allocate = true;
        o.code_length = 3;
        establish_code(&mut a, &o, never).await.unwrap();
        assert_eq!(a.code.as_deref(), Some("7-word-word-word"));
        let (mut a, _b) = pair();
        o.allocate = false;
        establish_code(&mut a, &o, async |w: &mut FakeSession| {
            w.set_code("5-typed-in").await?;
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!(a.code.as_deref(), Some("5-typed-in"));
    }
}
