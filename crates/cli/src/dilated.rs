//! `send` / `receive` over the Dilated File-Transfer protocol (transfer-v2,
//! docs/dilated-transfer.md), used when the peer lists it in its versions (that is, the peer
//! is this program) and `--classic` was not given. Several paths per session, resume of a
//! partial file, standard input streamed with `--name`.
//!
//! Only the user-facing half lives here (lines on stderr, `--json` events, the `ok? (Y/n)`
//! question, progress bars); the protocol is `wormhole::transfer::dilated`'s.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use wormhole::Wormhole;
use wormhole::dilation::DilationOptions;
use wormhole::transfer::SendItem;
use wormhole::transfer::dilated::{
    self, Features, Incoming, Mode, OfferItem, PeerTransfer, SessionEvent, SessionOptions, SessionReport,
};

use crate::args::{GlobalOptions, ReceiveOptions, SendOptions};
use crate::interrupt::Run;
use crate::json::{self, Event, OfferKind, Role, Summary};
use crate::meter::Meter;
use crate::output::{ask, is_yes_default, naturalsize};
use crate::report::{PromptRefused, TransferError};
use crate::text::python_repr;

/// The features this CLI offers.
pub fn features() -> Features {
    Features::all()
}

/// The transfer-v2 parameters with this peer, unless `--classic` or a classic peer.
pub async fn peer_speaks_v2(w: &Wormhole, classic: bool) -> Result<Option<PeerTransfer>> {
    if classic {
        return Ok(None);
    }
    let versions = w.get_versions().await?;
    Ok(dilated::peer_transfer(&versions, features()))
}

/// How long a session waits for a peer whose connection is gone (Dilation re-dials meanwhile).
const PEER_GONE_AFTER: std::time::Duration = std::time::Duration::from_secs(20);

fn dilation_options(global: &GlobalOptions, listen: bool) -> DilationOptions {
    DilationOptions {
        relays: vec![global.transit_helper.clone()],
        no_listen: !listen,
        ..DilationOptions::default()
    }
}

fn lib_error(e: wormhole::transfer::TransferError, sending: bool) -> anyhow::Error {
    crate::files::cli_error(e, sending)
}

/// One progress bar per offer, driven by the session's events.
struct Bars {
    hide: bool,
    meter: Mutex<Option<Meter>>,
}

impl Bars {
    fn start(&self, total: u64) {
        let m = Meter::new(self.hide);
        m.start(total);
        if let Ok(mut g) = self.meter.lock() {
            *g = Some(m);
        }
    }
    fn progress(&self, done: u64, total: u64) {
        if let Ok(g) = self.meter.lock()
            && let Some(m) = g.as_ref()
        {
            (m.progress())(done, total.max(done));
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.meter.lock()
            && let Some(m) = g.take()
        {
            m.finish();
        }
    }
    fn stop(&self) {
        if let Ok(mut g) = self.meter.lock()
            && let Some(m) = g.take()
        {
            m.stop();
        }
    }
}

fn summary(report_bytes: u64, started: Instant) -> Summary {
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = (seconds > 0.0).then(|| report_bytes as f64 / seconds);
    Summary {
        bytes: Some(report_bytes),
        seconds: Some(seconds),
        bytes_per_second: rate,
        connection: None,
    }
}

/// What the sender offers.
pub enum Sendable {
    /// Paths (files, directories).
    Paths(Vec<PathBuf>),
    /// One directory already scanned (for the classic offer, before the peer was known).
    Scanned(OfferItem),
    /// Standard input, streamed, under this name.
    Stdin(String),
    /// Standard input already spooled (it was not short text), offered as a stream named
    /// `stdin`.
    Spooled(std::fs::File),
}

/// The sender's session, after the key is confirmed.
pub async fn run_send(
    w: &Wormhole,
    opts: &SendOptions,
    global: &GlobalOptions,
    peer: PeerTransfer,
    what: Sendable,
) -> Result<Summary> {
    let mut items = Vec::new();
    match what {
        Sendable::Paths(paths) => {
            for p in &paths {
                items.push(
                    OfferItem::prepare(p, opts.ignore_unsendable_files).map_err(|e| lib_error(e, true))?,
                );
            }
        }
        Sendable::Scanned(item) => items.push(item),
        Sendable::Stdin(name) => items.push(OfferItem::stream(&name, Box::new(tokio::io::stdin()))),
        Sendable::Spooled(f) => items.push(OfferItem::stream(
            crate::stdin::STDIN_FILE_NAME,
            Box::new(tokio::fs::File::from_std(f)),
        )),
    }
    let total: u64 = items.iter().map(OfferItem::bytes).sum();
    let files: u64 = items.iter().map(OfferItem::files).sum();
    eprintln!(
        "The receiver speaks the Dilated File-Transfer protocol: sending {} offer(s), {} file(s), {}",
        items.len(),
        files,
        naturalsize(total)
    );
    let bars = Arc::new(Bars {
        hide: opts.hide_progress,
        meter: Mutex::new(None),
    });
    let b = bars.clone();
    let offers = items.len();
    let done_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let index = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let events: dilated::SessionEvents = Arc::new(move |e: &SessionEvent| match e {
        SessionEvent::Offered { name, bytes, files } => {
            let i = index.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            json::emit(&Event::Offer {
                role: Role::Sender,
                kind: if *files == 1 {
                    OfferKind::File
                } else {
                    OfferKind::Directory
                },
                name: Some(name.clone()),
                bytes: *bytes,
                files: Some(*files),
                uncompressed_bytes: None,
            });
            let before = done_bytes.load(std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "Offering {} ({}), {i} of {offers} ({} of {} sent so far)",
                python_repr(name),
                naturalsize(*bytes),
                naturalsize(before),
                naturalsize(total)
            );
        }
        SessionEvent::Accepted { name, offset } => {
            if *offset > 0 {
                eprintln!(
                    "Resuming {}: the receiver has its first {} bytes",
                    python_repr(name),
                    offset
                );
            }
            b.start(0);
        }
        SessionEvent::PrefixMismatch { name, claimed } => eprintln!(
            "The receiver's partial {} ({claimed} bytes) differs from this file: sending it from the start",
            python_repr(name)
        ),
        SessionEvent::Progress { done, total } => b.progress(*done, *total),
        SessionEvent::Sent { name, sent } => {
            b.finish();
            done_bytes.fetch_add(*sent, std::sync::atomic::Ordering::Relaxed);
            json::emit(&Event::DataSent {});
            eprintln!("Sent {} ({sent} bytes of data), confirmed", python_repr(name));
        }
        SessionEvent::Rejected { name, reason } => {
            b.stop();
            eprintln!(
                "The receiver refused {}: {}",
                python_repr(name),
                wormhole::transfer::escape_control(reason)
            );
        }
        _ => {}
    });
    let sopts = SessionOptions {
        mode: Mode::Send,
        features: features(),
        dilation: dilation_options(global, opts.listen),
        cwd: std::env::current_dir()?,
        output: None,
        events: Some(events),
        peer_gone_after: Some(PEER_GONE_AFTER),
    };
    let started = Instant::now();
    let result = dilated::run_session(w, peer, sopts, items, async |_: &Incoming| false).await;
    bars.stop();
    let report: SessionReport = result.map_err(|e| lib_error(e, true))?;
    if let Some((name, reason)) = report.rejected.first() {
        return Err(TransferError(format!(
            "remote error, transfer abandoned: {} refused {}",
            wormhole::transfer::escape_control(reason),
            python_repr(name)
        ))
        .into());
    }
    eprintln!("Transfer complete.");
    Ok(summary(report.bytes_sent, started))
}

/// The receiver's session, after the key is confirmed.
pub async fn run_receive(
    w: &Wormhole,
    opts: &ReceiveOptions,
    global: &GlobalOptions,
    run: &Run,
    peer: PeerTransfer,
) -> Result<Summary> {
    if opts.only_text {
        anyhow::bail!(TransferError(
            "the sender offers files (Dilated File-Transfer) and --only-text was given".into()
        ));
    }
    let bars = Arc::new(Bars {
        hide: opts.hide_progress,
        meter: Mutex::new(None),
    });
    let b = bars.clone();
    let events: dilated::SessionEvents = Arc::new(move |e: &SessionEvent| match e {
        SessionEvent::IncomingOffer(i) => {
            json::emit(&Event::Offer {
                role: Role::Receiver,
                kind: if i.is_directory {
                    OfferKind::Directory
                } else {
                    OfferKind::File
                },
                name: Some(i.name.clone()),
                bytes: i.bytes,
                files: Some(i.files),
                uncompressed_bytes: None,
            });
            let shown = shown_name(&i.destination);
            if i.is_directory {
                eprintln!(
                    "Receiving directory ({}, {} files) into: {}/",
                    naturalsize(i.bytes),
                    i.files,
                    shown
                );
            } else if i.stream {
                eprintln!("Receiving a stream of unknown length into: {shown}");
            } else {
                eprintln!("Receiving file ({}) into: {}", naturalsize(i.bytes), shown);
            }
            if i.partial > 0 {
                eprintln!(
                    "A partial download of it holds {} bytes: asking the sender to resume",
                    i.partial
                );
            }
        }
        SessionEvent::Progress { done, total } => b.progress(*done, *total),
        SessionEvent::FileWritten {
            path,
            bytes,
            sha256,
            resumed,
        } => {
            b.finish();
            json::emit(&Event::FileWritten {
                path: path.to_string_lossy().into_owned(),
                bytes: *bytes,
                sha256: hex::encode(sha256),
            });
            if *resumed > 0 {
                eprintln!(
                    "Received file written to: {} (resumed at byte {resumed})",
                    shown_path(path)
                );
            } else {
                eprintln!("Received file written to: {}", shown_path(path));
            }
        }
        SessionEvent::DirectoryWritten { path, files, bytes } => {
            b.finish();
            json::emit(&Event::DirectoryWritten {
                path: path.to_string_lossy().into_owned(),
                files: *files,
                bytes: *bytes,
            });
            eprintln!("Received files written to: {}", shown_path(path));
        }
        SessionEvent::IncomingFailed { name, reason } => {
            b.stop();
            eprintln!(
                "Refused {}: {}",
                python_repr(name),
                wormhole::transfer::escape_control(reason)
            );
        }
        _ => {}
    });
    let sopts = SessionOptions {
        mode: Mode::Receive,
        features: features(),
        dilation: dilation_options(global, opts.listen),
        cwd: std::env::current_dir()?,
        output: opts.output_file.clone(),
        events: Some(events),
        peer_gone_after: Some(PEER_GONE_AFTER),
    };
    let started = Instant::now();
    let mut prompt_failure: Option<anyhow::Error> = None;
    let decide = async |i: &Incoming| -> bool {
        if prompt_failure.is_some() {
            return false;
        }
        match ask_permission(opts, run).await {
            Ok(true) => {
                bars.start(i.bytes);
                true
            }
            Ok(false) => false,
            Err(e) => {
                prompt_failure = Some(e);
                false
            }
        }
    };
    let result = dilated::run_session(w, peer, sopts, Vec::new(), decide).await;
    bars.stop();
    let report = result.map_err(|e| lib_error(e, false))?;
    if let Some(e) = prompt_failure {
        return Err(e);
    }
    if let Some((name, reason)) = report.failed.first() {
        return Err(TransferError(format!(
            "refused {}: {}",
            python_repr(name),
            wormhole::transfer::escape_control(reason)
        ))
        .into());
    }
    if report.written.is_empty() && report.declined > 0 {
        return Err(TransferError("transfer rejected".into()).into());
    }
    Ok(summary(report.bytes_received, started))
}

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
    if is_yes_default(&answer?) {
        Ok(true)
    } else {
        eprintln!("transfer rejected");
        Ok(false)
    }
}

/// The name of a destination, quoted like the classic receiver's lines.
fn shown_name(p: &Path) -> String {
    python_repr(
        &p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// A written path, with control characters escaped.
fn shown_path(p: &Path) -> String {
    wormhole::transfer::escape_control(&p.to_string_lossy())
}

/// Several paths: each must exist (checked before any network traffic), and `-` cannot be one.
pub fn check_paths(opts: &SendOptions) -> Result<()> {
    if opts.text.is_some() {
        anyhow::bail!("--text sends a text message: give no paths with it");
    }
    for p in opts.what.iter().chain(&opts.more) {
        if p.as_os_str() == "-" {
            anyhow::bail!("`-` (standard input) cannot be sent together with other paths");
        }
        if std::fs::metadata(p).is_err() {
            return Err(
                TransferError(format!("Cannot send: no file/directory named '{}'", p.display())).into(),
            );
        }
    }
    Ok(())
}

/// The file sender after the wormhole is open: welcome, code (`code_set`: `--code` was already
/// given to the wormhole), key; then transfer-v2 with a peer of ours, or the classic protocol
/// (one path) with anyone else.
pub async fn send_files(
    w: &Wormhole,
    opts: &SendOptions,
    global: &GlobalOptions,
    what: Option<&crate::send::What>,
    prepared: Option<crate::files::Prepared>,
    code_set: bool,
) -> Result<Summary> {
    use crate::send::What;
    let welcome = w.get_welcome().await?;
    crate::notices::show_welcome(&welcome, &global.relay_url, env!("CARGO_PKG_VERSION"));
    crate::send::establish_code(w, opts, code_set).await?;
    crate::send::confirm_peer(w, opts.verify).await?;
    let paths: Vec<PathBuf> = opts.what.iter().chain(&opts.more).cloned().collect();
    if let Some(peer) = peer_speaks_v2(w, opts.classic).await? {
        let sendable = match (what, &opts.name) {
            (None, Some(name)) => Sendable::Stdin(name.clone()),
            (Some(What::Stdin(f, _)), _) => Sendable::Spooled(f.try_clone()?),
            _ => match prepared.as_ref().map(|p| &p.item) {
                Some(SendItem::Directory { name, plan, .. }) if paths.len() == 1 => {
                    Sendable::Scanned(OfferItem::from_plan(name.clone(), plan))
                }
                _ => Sendable::Paths(paths),
            },
        };
        return run_send(w, opts, global, peer, sendable).await;
    }
    if paths.len() > 1 {
        let msg = format!(
            "the receiver speaks only the classic file-transfer protocol, which carries one file \
             or directory per wormhole: send these {} paths one at a time, or put them in one \
             directory and send that",
            paths.len()
        );
        wormhole::transfer::reject(w, &msg).await;
        return Err(TransferError(msg).into());
    }
    let prepared = match (prepared, &opts.name) {
        (Some(p), _) => p,
        (None, Some(name)) => {
            // A classic peer needs the length first: spool standard input now.
            let input =
                tokio::task::spawn_blocking(|| crate::stdin::read_input(std::io::stdin().lock())).await??;
            let (spool, size) = match input {
                crate::stdin::StdinInput::File(f, size) => (f, size),
                crate::stdin::StdinInput::Text(t) => {
                    let mut spool = tempfile::tempfile()?;
                    std::io::Write::write_all(&mut spool, t.as_bytes())?;
                    std::io::Seek::rewind(&mut spool)?;
                    (spool, t.len() as u64)
                }
            };
            eprintln!(
                "The receiver speaks only the classic protocol: standard input was read to its end \
                 and is sent as a file"
            );
            let p = crate::files::prepare_stdin_named(&spool, size, name)?;
            return crate::files::send_classic(w, opts, global, p).await;
        }
        (None, None) => anyhow::bail!("nothing to send"),
    };
    crate::files::send_classic(w, opts, global, prepared).await
}
