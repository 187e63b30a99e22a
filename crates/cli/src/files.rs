//! File and directory transfers for the CLI (docs/protocol.md §5.2–5.4): the sender's offer lines and
//! transfer, the receiver's destination messages, the `ok? (Y/n)` question and progress bars, on
//! top of `wormhole::transfer` (which owns transit, the zip formats and the safe-receive rules).
//!
//! This module only talks to the user (and, with `--json`, emits the transfer's events through
//! `json.rs`) and translates options and errors; it must not decide destinations or touch
//! received data itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wormhole::Wormhole;
use wormhole::transfer::{
    self, Decision, EventHandler, OfferInfo, Offered, Received, SendItem, TransferError as LibError,
    TransferEvent, TransitPurpose, parse_relay_endpoints,
};
use wormhole::transit::TransitConfig;

use crate::args::{GlobalOptions, ReceiveOptions, SendOptions};
use crate::interrupt::Run;
use crate::json::{self, Event, OfferKind, Role, Summary};
use crate::meter::Meter;
use crate::output::{ask, is_yes_default, naturalsize};
use crate::report::{PromptRefused, TransferError, UnsendableFileError};
use crate::stdin::STDIN_FILE_NAME;
use crate::text::python_repr;

/// A file or directory, inspected and ready to offer.
pub struct Prepared {
    pub(crate) item: SendItem,
}

/// Translate a library error into the CLI's error kinds (so `report` prints Python's wording).
/// A failure of the wormhole itself keeps its type, so a wrong code, a crowded or unreachable
/// server or a peer that went away get the same messages as before the transfer started.
pub fn cli_error(e: LibError, sending: bool) -> anyhow::Error {
    match e {
        LibError::Wormhole(w) => w.into(),
        LibError::Peer(msg) if sending => {
            TransferError(format!("remote error, transfer abandoned: {msg}")).into()
        }
        LibError::Peer(msg) => TransferError(msg).into(),
        LibError::Unsendable { path, reason } => {
            UnsendableFileError(format!("{}: {reason}", path.display())).into()
        }
        other => TransferError(other.to_string()).into(),
    }
}

/// Inspect the path to send and print what will be offered (before any network traffic).
pub fn prepare_send(path: &Path, opts: &SendOptions) -> Result<Prepared> {
    check_exists(path)?;
    if path.is_dir() {
        eprintln!("Building zipfile..");
    }
    let item = SendItem::prepare(path, opts.ignore_unsendable_files).map_err(|e| cli_error(e, true))?;
    Ok(announced(item))
}

fn check_exists(path: &Path) -> Result<()> {
    if std::fs::metadata(path).is_err() {
        return Err(TransferError(format!(
            "Cannot send: no file/directory named '{}'",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// A directory's scan, running on a blocking thread while the wormhole connects (and, with
/// `--code`, while the key is agreed): a tree of many files takes a while to walk.
pub struct Scan(tokio::task::JoinHandle<std::result::Result<SendItem, LibError>>);

/// Starts scanning directory `path` (after the same checks and message as [`prepare_send`]).
pub fn start_scan(path: &Path, opts: &SendOptions) -> Result<Scan> {
    check_exists(path)?;
    eprintln!("Building zipfile..");
    let (path, ignore) = (path.to_owned(), opts.ignore_unsendable_files);
    Ok(Scan(tokio::task::spawn_blocking(move || {
        SendItem::prepare(&path, ignore)
    })))
}

impl Scan {
    /// The scanned directory, announced as [`prepare_send`] does.
    pub async fn finish(self) -> Result<Prepared> {
        let item = self.0.await.context("scanning the directory")?;
        Ok(announced(item.map_err(|e| cli_error(e, true))?))
    }
}

fn announced(item: SendItem) -> Prepared {
    match &item {
        SendItem::File { name, size, .. } => {
            eprintln!("Sending {} file named {}", naturalsize(*size), python_repr(name))
        }
        SendItem::Directory { name, zipsize, .. } => eprintln!(
            "Sending directory ({} compressed) named {}",
            naturalsize(*zipsize),
            python_repr(name)
        ),
    }
    Prepared { item }
}

/// Standard input spooled to `file` (see `stdin.rs`), offered as a file.
pub fn prepare_stdin(file: &std::fs::File, size: u64) -> Result<Prepared> {
    // The spool is unlinked; offer it through its descriptor's path.
    let path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file)));
    eprintln!(
        "Sending {} file named {}",
        naturalsize(size),
        python_repr(STDIN_FILE_NAME)
    );
    Ok(Prepared {
        item: SendItem::File {
            path,
            name: STDIN_FILE_NAME.to_owned(),
            size,
        },
    })
}

/// Standard input spooled to `file`, offered as a file named `name` (`--name`).
pub fn prepare_stdin_named(file: &std::fs::File, size: u64, name: &str) -> Result<Prepared> {
    let mut p = prepare_stdin(file, size)?;
    if let SendItem::File { name: n, .. } = &mut p.item {
        *n = name.to_owned();
    }
    Ok(p)
}

/// The transit-key purpose. The Python CLI always derives it from the default AppID, even with
/// `--appid` (its bug #339, kept for compatibility); `--appid` is a Python-CLI flag, so we do the
/// same. With the default AppID this equals what Go and Rust derive.
const TRANSIT_PURPOSE: TransitPurpose = TransitPurpose::PythonFixed;

/// Transit settings from the command line.
fn transit_config(global: &GlobalOptions, listen: bool) -> Result<TransitConfig> {
    let relay = parse_relay_endpoints(&global.transit_helper).with_context(|| {
        format!(
            "invalid --transit-helper {:?}: expected tcp:HOST:PORT, a ws:// or wss:// URL, or \
             several of them separated by commas",
            global.transit_helper
        )
    })?;
    Ok(TransitConfig {
        relays: relay.tcp,
        relay_websockets: relay.websocket,
        listen,
        dialer: global.dialer.clone(),
        ..TransitConfig::default()
    })
}

/// Print the Python CLI's lines as the transfer goes: `Sending (->tcp:HOST:PORT)..` (or
/// `Receiving (…)..`) once transit is connected, before any data (shown even with
/// `--hide-progress`, like Python); `File sent.. waiting for confirmation` when the sender's data
/// is out; `Unpacking zipfile..` before a received directory is extracted. Lines are printed
/// around the progress bar, never through it. Each is also a JSON event.
fn transfer_lines(meter: &Meter, verb: &'static str) -> EventHandler {
    let meter = meter.clone();
    Arc::new(move |event| match event {
        TransferEvent::Connected(info) => {
            meter.connected(info);
            json::emit(&Event::connected(info));
            let line = format!("{verb} ({})..", info.describe());
            meter.bar().suspend(|| eprintln!("{line}"));
        }
        TransferEvent::DataSent => {
            meter.finish();
            json::emit(&Event::DataSent {});
            eprintln!("File sent.. waiting for confirmation");
        }
        TransferEvent::Unpacking => {
            meter.finish();
            json::emit(&Event::Unpacking {});
            eprintln!("Unpacking zipfile..");
        }
        _ => {}
    })
}

/// The `offer` event of what we send.
fn sent_offer(item: &SendItem) -> Event {
    match item.offer() {
        wormhole::transfer::Offer::Directory(d) => Event::Offer {
            role: Role::Sender,
            kind: OfferKind::Directory,
            name: Some(d.dirname),
            bytes: d.zipsize,
            files: Some(d.numfiles),
            uncompressed_bytes: Some(d.numbytes),
        },
        wormhole::transfer::Offer::File { filename, filesize } => Event::Offer {
            role: Role::Sender,
            kind: OfferKind::File,
            name: Some(filename),
            bytes: filesize,
            files: None,
            uncompressed_bytes: None,
        },
        _ => Event::Offer {
            role: Role::Sender,
            kind: OfferKind::File,
            name: None,
            bytes: item.wire_size(),
            files: None,
            uncompressed_bytes: None,
        },
    }
}

/// The `offer` event of what we were offered.
fn received_offer(info: &OfferInfo) -> Event {
    Event::Offer {
        role: Role::Receiver,
        kind: if info.is_directory {
            OfferKind::Directory
        } else {
            OfferKind::File
        },
        name: Some(info.offered_name.clone()),
        bytes: info.transfer_size,
        files: info.is_directory.then_some(info.numfiles),
        uncompressed_bytes: info.is_directory.then_some(info.numbytes),
    }
}

/// The classic sender after the key is confirmed.
pub async fn send_classic(
    w: &Wormhole,
    opts: &SendOptions,
    global: &GlobalOptions,
    prepared: Prepared,
) -> Result<Summary> {
    json::emit(&sent_offer(&prepared.item));
    let meter = Meter::new(opts.hide_progress);
    meter.start(prepared.item.wire_size());
    let send_opts = transfer::SendOptions {
        transit: transit_config(global, opts.listen)?,
        purpose: TRANSIT_PURPOSE,
        progress: Some(meter.progress()),
        events: Some(transfer_lines(&meter, "Sending")),
    };
    let result = transfer::send_item(w, &prepared.item, send_opts).await;
    meter.stop();
    result.map_err(|e| cli_error(e, true))?;
    eprintln!("Confirmation received. Transfer complete.");
    meter.print_summary();
    Ok(meter.summary())
}

/// Print the destination lines for an offer.
fn announce(info: &OfferInfo, opts: &ReceiveOptions) {
    let name = info
        .destination
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if info.is_directory {
        eprintln!(
            "Receiving directory ({}) into: {}/",
            naturalsize(info.transfer_size),
            python_repr(&name)
        );
        eprintln!(
            "{} files, {} (uncompressed)",
            info.numfiles,
            naturalsize(info.numbytes)
        );
    } else {
        eprintln!(
            "Receiving file ({}) into: {}",
            naturalsize(info.transfer_size),
            python_repr(&name)
        );
    }
    if info.destination.overwrite {
        let shown = opts
            .output_file
            .as_deref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(name);
        eprintln!("Overwriting {}", python_repr(&shown));
    }
}

/// Ask `ok? (Y/n)` (unless `--accept-file`). `Err` when there is no answer (stdin closed, or
/// `--json`, which never asks); a signal meanwhile ends the run in `main`, which then tells the
/// sender (see `interrupt.rs`).
async fn ask_permission(opts: &ReceiveOptions, run: &Run) -> Result<bool> {
    if opts.accept_file {
        return Ok(true);
    }
    if json::enabled() {
        return Err(PromptRefused {
            question: "ok? (Y/n): ".to_owned(),
            hint: "give --accept-file to accept files (or --only-text to refuse them)",
        }
        .into());
    }
    run.set_offer_pending(true);
    let answer = ask("ok? (Y/n): ".to_owned()).await;
    run.set_offer_pending(false);
    if is_yes_default(&answer.context("asking for permission")?) {
        Ok(true)
    } else {
        eprintln!("transfer rejected");
        Ok(false)
    }
}

/// The Python CLI's message for an offer refused by the safe-receive rules or the options.
fn refusal_message(e: &LibError) -> Option<String> {
    Some(match e {
        LibError::WouldOverwrite(p) if p.is_dir() => {
            format!("Not deleting existing directory: {}", p.display())
        }
        LibError::WouldOverwrite(p) => {
            let offered = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("Error: refusing to overwrite existing {}", python_repr(&offered))
        }
        LibError::NoSpace { free, need, .. } => {
            format!("Error: insufficient free space ({free}B) for file ({need}B)")
        }
        LibError::UnknownDirectoryMode(m) => {
            format!("Error: unknown directory-transfer mode (directory mode {m:?})")
        }
        LibError::UnknownOffer(kind) => {
            format!(
                "I don't know what they're offering\n\nOffer details: {}",
                python_repr(kind)
            )
        }
        LibError::FilesRefused => "Refusing a file or directory: --only-text was given".to_owned(),
        LibError::BadName(_) | LibError::Unsupported(_) | LibError::File { .. } => format!("Error: {e}"),
        _ => return None,
    })
}

/// The errors a refused offer ends with: Python's `TransferError: <reason sent>`.
fn refusal_error(e: LibError) -> anyhow::Error {
    match e {
        LibError::UnknownDirectoryMode(_) => TransferError("unknown mode".into()).into(),
        LibError::UnknownOffer(_) => TransferError("unknown offer type".into()).into(),
        LibError::Unsupported(m) => TransferError(format!("unsupported offer ({m})")).into(),
        _ => TransferError("transfer rejected".into()).into(),
    }
}

/// The receiver after the key is confirmed: the library's receive flow, with this CLI's lines,
/// the `ok? (Y/n)` question and the progress bar. A text is printed on stdout before its ack.
pub async fn run_receive(
    w: &Wormhole,
    opts: &ReceiveOptions,
    global: &GlobalOptions,
    run: &Run,
) -> Result<Summary> {
    let cwd: PathBuf = std::env::current_dir().context("finding the current directory")?;
    // The bar is shown once the offer is accepted (its size known then).
    let meter = Meter::new(opts.hide_progress);
    let ropts = transfer::ReceiveOptions {
        transit: transit_config(global, opts.listen)?,
        purpose: TRANSIT_PURPOSE,
        progress: Some(meter.progress()),
        events: Some(transfer_lines(&meter, "Receiving")),
        output: opts.output_file.clone(),
        cwd,
        accept_files: !opts.only_text,
    };
    let mut local_failure: Option<anyhow::Error> = None;
    let mut accepted = false;
    let result = transfer::receive_with(w, ropts, async |offered: Offered<'_>| match offered {
        Offered::Text(text) => {
            json::emit(&Event::Offer {
                role: Role::Receiver,
                kind: OfferKind::Text,
                name: None,
                bytes: text.len() as u64,
                files: None,
                uncompressed_bytes: None,
            });
            match crate::receive::print_text(text) {
                Ok(()) => Decision::Accept,
                Err(e) => {
                    local_failure = Some(e);
                    Decision::Reject
                }
            }
        }
        Offered::Files(info) => {
            json::emit(&received_offer(info));
            announce(info, opts);
            match ask_permission(opts, run).await {
                Ok(true) => {
                    accepted = true;
                    meter.start(info.transfer_size);
                    Decision::Accept
                }
                Ok(false) => Decision::Reject,
                Err(e) => {
                    local_failure = Some(e);
                    Decision::Reject
                }
            }
        }
    })
    .await;
    if result.is_ok() {
        meter.finish();
    } else {
        meter.stop();
    }
    let transit = matches!(result, Ok(Received::File { .. } | Received::Directory { .. }));
    finish_receive(result, local_failure, accepted)?;
    if !transit {
        return Ok(Summary::default());
    }
    meter.print_summary();
    Ok(meter.summary())
}

/// Report how the receive ended. A refusal before we accepted (our checks, the options, the
/// user) has Python's refusal lines; a failure after it is a transfer error.
fn finish_receive(
    result: Result<Received, LibError>,
    local_failure: Option<anyhow::Error>,
    accepted: bool,
) -> Result<()> {
    match result {
        Ok(Received::File { path, bytes, sha256 }) => {
            json::emit(&Event::FileWritten {
                path: path.to_string_lossy().into_owned(),
                bytes,
                sha256: hex::encode(sha256),
            });
            eprintln!("Received file written to: {}", shown_path(&path));
        }
        Ok(Received::Directory { path, files, bytes }) => {
            json::emit(&Event::DirectoryWritten {
                path: path.to_string_lossy().into_owned(),
                files,
                bytes,
            });
            eprintln!("Received files written to: {}", shown_path(&path));
        }
        Ok(Received::Text(_)) => {}
        Err(LibError::Rejected) if local_failure.is_some() => {
            return Err(local_failure.unwrap_or_else(|| anyhow::anyhow!("transfer rejected")));
        }
        Err(e) => {
            if !accepted && let Some(m) = refusal_message(&e) {
                eprintln!("{m}");
                return Err(refusal_error(e));
            }
            return Err(cli_error(e, false));
        }
    }
    Ok(())
}

/// A path for messages, with control characters escaped.
fn shown_path(p: &Path) -> String {
    transfer::escape_control(&p.to_string_lossy())
}

/// Where the library would put an offer (kept for messages in tests).
#[cfg(test)]
fn plan(offered: &str, output: Option<&Path>, cwd: &Path) -> Result<transfer::Destination, LibError> {
    transfer::plan_destination(offered, output, cwd)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn transit_helper_is_parsed() {
        let g = GlobalOptions {
            appid: None,
            relay_url: "ws://x/v1".into(),
            transit_helper: "tcp:127.0.0.1:4001".into(),
            dump_timing: None,
            json: false,
            tor: crate::tor::TorMode::Off,
            dialer: wormhole::net::Dialer::Direct,
        };
        let c = transit_config(&g, false).unwrap();
        assert_eq!(c.relays.len(), 1);
        assert_eq!(c.relays[0].port, 4001);
        assert!(!c.listen);
        let both = GlobalOptions {
            transit_helper: "tcp:relay:4001,wss://relay.example/ws".into(),
            ..g.clone()
        };
        let c = transit_config(&both, true).unwrap();
        assert_eq!(c.relays[0].hostname, "relay");
        assert_eq!(c.relay_websockets[0].url, "wss://relay.example/ws");
        let bad = GlobalOptions {
            transit_helper: "nonsense".into(),
            ..g
        };
        let e = transit_config(&bad, true).unwrap_err();
        assert!(format!("{e:#}").contains("a ws:// or wss:// URL"), "{e:#}");
    }

    #[test]
    fn refusal_messages_follow_python() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.txt"), b"mine").unwrap();
        let e = plan("x.txt", None, d.path()).unwrap_err();
        assert_eq!(
            refusal_message(&e).unwrap(),
            "Error: refusing to overwrite existing 'x.txt'"
        );
        let s = crate::report::render(&refusal_error(e), "u");
        assert_eq!(s, "TransferError: transfer rejected");
        let e = LibError::UnknownDirectoryMode("tarball".into());
        assert_eq!(
            refusal_message(&e).unwrap(),
            "Error: unknown directory-transfer mode (directory mode \"tarball\")"
        );
        assert_eq!(
            crate::report::render(&refusal_error(e), "u"),
            "TransferError: unknown mode"
        );
    }

    #[test]
    fn peer_errors_are_worded_per_side() {
        let s = crate::report::render(&cli_error(LibError::Peer("transfer rejected".into()), true), "u");
        assert_eq!(
            s,
            "TransferError: remote error, transfer abandoned: transfer rejected"
        );
        let s = crate::report::render(&cli_error(LibError::Peer("nope".into()), false), "u");
        assert_eq!(s, "TransferError: nope");
    }

    #[test]
    fn wormhole_failures_during_a_transfer_keep_their_messages() {
        use wormhole::WormholeError;
        let from_pipe = LibError::from(transfer::PipeError::from(WormholeError::WrongPassword));
        let s = crate::report::render(&cli_error(from_pipe, true), "u");
        assert!(s.starts_with("ERROR: Key confirmation failed."), "{s}");
        let e = cli_error(LibError::Wormhole(WormholeError::Crowded), false);
        let s = crate::report::render(&e, "u");
        assert!(
            s.starts_with("ERROR: The mailbox server says this code is already"),
            "{s}"
        );
        let s = crate::report::render(&cli_error(LibError::Wormhole(WormholeError::Lonely), true), "u");
        assert!(
            s.starts_with("ERROR: The wormhole closed before the other side"),
            "{s}"
        );
        let e = cli_error(
            LibError::Wormhole(WormholeError::ServerConnection("refused".into())),
            false,
        );
        let s = crate::report::render(&e, "ws://h/v1");
        assert!(s.contains("(relay URL was ws://h/v1)\nrefused"), "{s}");
        // Other pipes' failures stay transfer errors.
        let s = crate::report::render(&cli_error(LibError::Pipe("gone".into()), true), "u");
        assert_eq!(s, "TransferError: message pipe failed: gone");
    }

    #[test]
    fn missing_path_is_reported_before_networking() {
        let opts = SendOptions {
            code: None,
            zeromode: false,
            code_length: 2,
            verify: false,
            hide_progress: true,
            listen: true,
            qr: false,
            text: None,
            what: None,
            ignore_unsendable_files: false,
            more: Vec::new(),
            classic: false,
            name: None,
        };
        let e = prepare_send(Path::new("/nonexistent/thing"), &opts)
            .err()
            .unwrap();
        assert_eq!(
            crate::report::render(&e, "u"),
            "TransferError: Cannot send: no file/directory named '/nonexistent/thing'"
        );
    }
}
