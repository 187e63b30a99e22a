//! `wormhole`: send and receive text, files and directories through a magic wormhole,
//! flag-compatible with the Python CLI.
//!
//! This file parses the command line, opens the wormhole, runs the chosen flow, closes the
//! wormhole and maps failures to the Python CLI's messages and exit code 1 (2 for usage errors).
//! It also owns the end of a run by signal (SIGINT, SIGTERM, SIGHUP): the flow is dropped (so
//! partial downloads are removed by their drop guards), a receiver holding an unanswered offer
//! tells the sender, and the wormhole is closed. The flows live in `send`, `receive`, `files` and
//! `ssh`; the transfer protocol itself is the `wormhole` library's.

#![forbid(unsafe_code)]

// Nothing we print may panic: a closed stdout or stderr (`wormhole send F 2>&1 | head -3`) is
// ignored for messages. These shadow the std macros in every module below.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod args;
mod code_input;
mod config;
mod config_file;
mod dilated;
mod files;
mod forward;
mod forward_args;
mod forward_control;
mod interrupt;
mod json;
mod meter;
mod notices;
mod output;
mod real;
mod receive;
mod report;
mod send;
mod ssh;
mod ssh_keys;
mod stdin;
mod text;
mod tor;

use std::path::Path;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use wormhole::{Timing, Wormhole, WormholeOptions};

use crate::args::{APPID_SSH, APPID_XFER, GlobalOptions, Invocation, SshOptions};
use crate::interrupt::Run;
use crate::json::{Event, Summary};

/// A usage or configuration error: shown (and in JSON mode emitted), exit 2.
fn usage_exit(kind: &str, message: &str, json: bool) -> ! {
    if json {
        json::enable();
        json::emit(&Event::Error {
            kind: kind.to_owned(),
            message: message.to_owned(),
        });
    }
    eprintln!("Error: {message}");
    std::process::exit(2);
}

/// The command's name in the `start` event.
fn command_name(inv: &Invocation) -> &'static str {
    match inv {
        Invocation::Send(..) => "send",
        Invocation::Receive(..) => "receive",
        Invocation::Ssh(_, SshOptions::Invite { .. }) => "ssh-invite",
        Invocation::Ssh(_, SshOptions::Accept { .. }) => "ssh-accept",
        Invocation::Forward(..) => "forward",
        Invocation::Completions(_) => "completions",
        Invocation::Man(_) => "man",
        Invocation::ShowConfig(_) => "show-config",
    }
}

/// Print what needs no wormhole (completions, man page, settings); false for a real run. Built
/// in memory first: a closed stdout (`| head`) must not panic the generators.
fn print_only(inv: &Invocation) -> bool {
    use std::io::Write as _;
    let mut out = Vec::new();
    match inv {
        Invocation::Completions(shell) => {
            clap_complete::generate(*shell, &mut args::Cli::command(), "wormhole", &mut out);
        }
        Invocation::Man(path) => {
            let mut page = args::Cli::command().name("wormhole");
            page.build();
            for name in path {
                let Some(sub) = page.find_subcommand(name).cloned() else {
                    usage_exit(
                        "usage",
                        &format!("no manual page for {name:?}: not a command"),
                        false,
                    );
                };
                page = sub;
            }
            if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
                eprintln!("ERROR: rendering the manual page: {e}");
                std::process::exit(1);
            }
        }
        Invocation::ShowConfig(settings) if json::enabled() => {
            out = format!("{}\n", json::to_line(&config_event(settings))).into_bytes();
        }
        Invocation::ShowConfig(settings) => out = format!("{}\n", settings.render()).into_bytes(),
        _ => return false,
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
    true
}

/// The `config` event of `--show-config --json`.
fn config_event(shown: &args::Settings) -> Event {
    use json::SettingSource as S;
    let settings = shown
        .entries()
        .into_iter()
        .map(|(key, value, source)| {
            let (source, from) = match source {
                args::Source::Flag(f) => (S::Flag, Some(f.to_owned())),
                args::Source::Env(e) => (S::Env, Some(e.to_owned())),
                args::Source::File => (S::File, None),
                args::Source::Default => (S::Default, None),
            };
            json::Setting {
                key: key.to_owned(),
                value,
                source,
                from,
            }
        })
        .collect();
    Event::Config {
        file: shown
            .config_file
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        settings,
    }
}

/// Diagnostics on stderr when `WORMHOLE_LOG` is set (a `tracing` filter such as `debug` or
/// `wormhole=trace`); silent otherwise.
fn init_logging() {
    let Ok(filter) = std::env::var("WORMHOLE_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    init_logging();
    let cli = args::Cli::parse();
    let json_mode = cli.json;
    if cli.command.is_none() && !cli.show_config && std::env::args_os().len() <= 1 {
        // Like clap for a required subcommand: the help, on stderr, exit 2.
        let _ = args::Cli::command().write_help(&mut std::io::stderr());
        std::process::exit(2);
    }
    let env = |k: &str| std::env::var(k).ok();
    let loaded = match config::load_config(cli.config.as_deref(), &env) {
        Ok(l) => l,
        Err(e) => usage_exit("config", &e.to_string(), json_mode),
    };
    let invocation = match cli.resolve(&env, &loaded) {
        Ok(inv) => inv,
        Err(e) => usage_exit("usage", &e.to_string(), json_mode),
    };
    // `forward` writes fowld's messages itself (docs/forward.md), not these events.
    let json_mode = json_mode && !matches!(invocation, Invocation::Forward(..));
    if json_mode {
        json::enable();
    }
    if print_only(&invocation) {
        return;
    }
    if json_mode {
        json::emit(&Event::Start {
            command: command_name(&invocation).to_owned(),
            program_version: env!("CARGO_PKG_VERSION").to_owned(),
        });
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot start the async runtime");
            json::emit(&Event::Error {
                kind: report::error_kind(&e).to_owned(),
                message: format!("{e:#}"),
            });
            eprintln!("ERROR: {e:#}");
            std::process::exit(1);
        }
    };
    let relay_url = match &invocation {
        Invocation::Send(g, _)
        | Invocation::Receive(g, _)
        | Invocation::Ssh(g, _)
        | Invocation::Forward(g, _) => g.relay_url.clone(),
        _ => String::new(),
    };
    let state = Run::default();
    let result = runtime.block_on(async {
        let mut signals = match interrupt::Signals::register() {
            Ok(s) => s,
            Err(e) => return Err(Ok(anyhow::Error::new(e).context("installing signal handlers"))),
        };
        let outcome = tokio::select! {
            biased;
            sig = signals.next() => Err(sig),
            r = run(invocation, &state) => Ok(r),
        };
        match outcome {
            Ok(r) => r.map_err(Ok),
            Err(sig) => {
                // The flow is dropped by now: its temporary files are gone.
                state.abandon().await;
                Err(Err(sig))
            }
        }
    });
    // Do not wait for stray blocking tasks (e.g. a prompt nobody will answer).
    runtime.shutdown_background();
    match result {
        Ok(summary) => json::emit(&Event::Done(summary)),
        Err(Ok(e)) => {
            let message = report::render(&e, &relay_url);
            json::emit(&Event::Error {
                kind: report::error_kind(&e).to_owned(),
                message: message.clone(),
            });
            eprintln!("{message}");
            std::process::exit(1);
        }
        Err(Err(_)) if state.was_forwarding() => {
            eprintln!("\nSession closed.");
        }
        Err(Err(sig)) => {
            json::emit(&Event::Error {
                kind: "interrupted".to_owned(),
                message: "Interrupted.".to_owned(),
            });
            eprintln!("\nInterrupted.");
            std::process::exit(sig.exit_code());
        }
    }
}

/// Open a wormhole with the CLI's options (kept in `state` so an interrupted run can close it).
fn open(
    state: &Run,
    global: &GlobalOptions,
    default_appid: &str,
    timing: Option<Timing>,
    options: WormholeOptions,
) -> std::rc::Rc<Wormhole> {
    let appid = global.appid.as_deref().unwrap_or(default_appid);
    let options = WormholeOptions {
        timing,
        network: wormhole::net::NetworkOptions {
            dialer: global.dialer.clone(),
            ..options.network
        },
        ..options
    };
    state.opened(Wormhole::create(appid, &global.relay_url, options))
}

/// Run `flow`, then close the wormhole: after success the close result counts (like Python, a
/// non-happy close is an error); after a failure the original error wins.
async fn with_close<T>(w: &Wormhole, flow: Result<T>) -> Result<T> {
    match flow {
        Ok(v) => {
            w.close().await.context("closing the wormhole")?;
            Ok(v)
        }
        Err(e) => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), w.close()).await;
            Err(e)
        }
    }
}

fn write_timing(timing: Option<&Timing>, path: Option<&Path>) {
    if let (Some(t), Some(p)) = (timing, path) {
        match t.write(p) {
            Ok(()) => eprintln!("Timing data written to {}", p.display()),
            Err(e) => eprintln!("Warning: cannot write timing data to {}: {e}", p.display()),
        }
    }
}

/// Reject a malformed code at once, like Python's `set_code`, whether or not a server is reachable.
fn check_code(code: &str) -> Result<()> {
    wormhole::code::Code::parse(code).map_err(wormhole::WormholeError::KeyFormat)?;
    Ok(())
}

async fn run(mut invocation: Invocation, state: &Run) -> Result<Summary> {
    // Tor first: no connection may be made before we know how to make it.
    let launched = match invocation.global_mut() {
        Some(global) => {
            let (dialer, launched) = tor::start(&global.tor).await?;
            global.dialer = dialer;
            launched
        }
        None => None,
    };
    let result = run_command(invocation, state).await;
    if let Some(tor) = launched {
        tor.stop().await;
    }
    result
}

async fn run_command(invocation: Invocation, state: &Run) -> Result<Summary> {
    match invocation {
        Invocation::Send(global, opts) => {
            // Check the code and decide what to send (and fail on a missing file) before
            // touching the network.
            if let Some(code) = &opts.code {
                check_code(code)?;
            }
            let stdin_stream = opts.name.is_some() && opts.what.as_deref() == Some(Path::new("-"));
            if opts.name.is_some() && !stdin_stream {
                anyhow::bail!("--name names standard input: give it with `-` as the only path");
            }
            let multi = !opts.more.is_empty();
            if multi {
                dilated::check_paths(&opts)?;
            }
            let what = if stdin_stream || multi {
                None
            } else {
                Some(send::decide_what(&opts).await?)
            };
            // `what` (for stdin: the spooled file) lives until the flow is done. A directory is
            // scanned while the wormhole connects.
            let mut scan = None;
            let prepared = match &what {
                Some(send::What::Path(p)) if p.is_dir() => {
                    scan = Some(files::start_scan(p, &opts)?);
                    None
                }
                Some(send::What::Path(p)) => Some(files::prepare_send(p, &opts)?),
                Some(send::What::Stdin(f, size)) => Some(files::prepare_stdin(f, *size)?),
                _ => None,
            };
            let is_text = matches!(what, Some(send::What::Text(_)));
            // A text goes by the classic protocol; files offer transfer-v2 too.
            let options = if opts.classic || is_text {
                WormholeOptions::default()
            } else {
                wormhole::transfer::dilated::wormhole_options(
                    wormhole::transfer::dilated::Mode::Send,
                    dilated::features(),
                )
            };
            let timing = global.dump_timing.as_ref().map(|_| Timing::new());
            let w = open(state, &global, APPID_XFER, timing.clone(), options);
            let flow = async {
                let (prepared, code_set) = match scan {
                    Some(scan) => {
                        // With `--code` the key is agreed meanwhile; the code is printed, as
                        // always, after what is sent was announced.
                        let code_set = match &opts.code {
                            Some(code) => {
                                w.set_code(code).await?;
                                true
                            }
                            None => false,
                        };
                        (Some(scan.finish().await?), code_set)
                    }
                    None => (prepared, false),
                };
                match &what {
                    Some(send::What::Text(text)) => send::run_text(&w, &opts, text, &global.relay_url).await,
                    _ => dilated::send_files(&w, &opts, &global, what.as_ref(), prepared, code_set).await,
                }
            }
            .await;
            let r = with_close(&w, flow).await;
            write_timing(timing.as_ref(), global.dump_timing.as_deref());
            r
        }
        Invocation::Receive(mut global, mut opts) => {
            if let Some(arg) = opts.code.take() {
                let (code, mailbox) = receive::code_from_argument(&arg)?;
                check_code(&code)?;
                opts.code = Some(code);
                // The URI's mailbox replaces only the default, never an explicit choice.
                if let Some(m) = mailbox
                    && global.relay_url == args::DEFAULT_RELAY_URL
                {
                    global.relay_url = m;
                }
            }
            let timing = global.dump_timing.as_ref().map(|_| Timing::new());
            let options = if opts.classic {
                WormholeOptions::default()
            } else {
                wormhole::transfer::dilated::wormhole_options(
                    wormhole::transfer::dilated::Mode::Receive,
                    dilated::features(),
                )
            };
            let w = open(state, &global, APPID_XFER, timing.clone(), options);
            let flow = async {
                receive::run(&w, &opts, &global.relay_url, real::input_code).await?;
                match dilated::peer_speaks_v2(&w, opts.classic).await? {
                    Some(peer) => dilated::run_receive(&w, &opts, &global, state, peer).await,
                    None => files::run_receive(&w, &opts, &global, state).await,
                }
            }
            .await;
            let r = with_close(&w, flow).await;
            write_timing(timing.as_ref(), global.dump_timing.as_deref());
            r
        }
        Invocation::Ssh(global, SshOptions::Invite { code_length, user }) => {
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            let dir = ssh::ssh_dir(user.as_deref(), Path::new(&home))?;
            let w = open(state, &global, APPID_SSH, None, WormholeOptions::default());
            let flow = ssh::invite(&w, code_length, &dir)
                .await
                .map(|_| Summary::default());
            with_close(&w, flow).await
        }
        Invocation::Forward(global, opts) => {
            if let Some(code) = &opts.code {
                check_code(code)?;
            }
            let w = open(
                state,
                &global,
                wormhole::forward::APPID,
                None,
                forward::wormhole_options(),
            );
            let flow = forward::run(&w, &global, opts, state).await;
            with_close(&w, flow).await
        }
        Invocation::Completions(_) | Invocation::Man(_) | Invocation::ShowConfig(_) => Ok(Summary::default()),
        Invocation::Ssh(global, SshOptions::Accept { code, key_file, yes }) => {
            check_code(&code)?;
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            let home = Path::new(&home).to_owned();
            let key = tokio::task::spawn_blocking(move || {
                ssh_keys::find_public_key(key_file.as_deref(), &home, &mut |names| {
                    let list: Vec<String> = names
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            format!("  {i}: {}", p.file_name().unwrap_or_default().to_string_lossy())
                        })
                        .collect();
                    let prompt = format!(
                        "Multiple public-keys found:\n{}\nSend which one?: ",
                        list.join("\n")
                    );
                    output::prompt_line(&prompt).ok()?.trim().parse().ok()
                })
            })
            .await
            .context("choosing a key")??;
            json::say(&format!(
                "Sending public key type='{}' keyid='{}'",
                key.kind, key.keyid
            ));
            if !yes {
                let answer = output::ask(format!("Really send public key '{}' ? [y/N]: ", key.keyid)).await?;
                if !answer.trim().to_lowercase().starts_with('y') {
                    anyhow::bail!("Aborted!");
                }
            }
            let w = open(state, &global, APPID_SSH, None, WormholeOptions::default());
            let flow = ssh::accept(&w, &code, &key).await.map(|()| Summary::default());
            with_close(&w, flow).await
        }
    }
}
