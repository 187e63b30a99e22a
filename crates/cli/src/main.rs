//! `wormhole`: send and receive text, files and directories through a magic wormhole,
//! flag-compatible with the Python CLI.
//!
//! This file parses the command line, opens the wormhole, runs the chosen flow, closes the
//! wormhole and maps failures to the Python CLI's messages and exit code 1 (2 for usage errors).
//! The flows live in `send`, `receive`, `files` and `ssh`.

mod args;
mod code_input;
mod files;
mod output;
mod real;
mod receive;
mod report;
mod send;
mod session;
mod ssh;
mod ssh_keys;
mod text;

use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;
use wormhole::{Timing, Wormhole, WormholeOptions};

use crate::args::{APPID_SSH, APPID_XFER, GlobalOptions, Invocation, SshOptions};
use crate::session::Session;

fn main() {
    let cli = args::Cli::parse();
    let invocation = match cli.resolve(&|k| std::env::var(k).ok()) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let relay_url = match &invocation {
        Invocation::Send(g, _) | Invocation::Receive(g, _) | Invocation::Ssh(g, _) => g.relay_url.clone(),
    };
    // Ctrl-C drops the running flow, so partial downloads are removed by their drop guards.
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(invocation) => r.map_err(Some),
            _ = tokio::signal::ctrl_c() => Err(None),
        }
    });
    // Do not wait for stray blocking tasks (e.g. a prompt nobody will answer).
    runtime.shutdown_background();
    match result {
        Ok(()) => {}
        Err(Some(e)) => {
            eprintln!("{}", report::render(&e, &relay_url));
            std::process::exit(1);
        }
        Err(None) => {
            eprintln!("\nInterrupted.");
            std::process::exit(130);
        }
    }
}

/// Open a wormhole with the CLI's options.
fn open(global: &GlobalOptions, default_appid: &str, timing: Option<Timing>) -> Wormhole {
    let appid = global.appid.as_deref().unwrap_or(default_appid);
    let options = WormholeOptions {
        timing,
        ..WormholeOptions::default()
    };
    Wormhole::create(appid, &global.relay_url, options)
}

/// Run `flow`, then close the wormhole: after success the close result counts (like Python, a
/// non-happy close is an error); after a failure the original error wins.
async fn with_close<T>(w: &mut Wormhole, flow: Result<T>) -> Result<T> {
    match flow {
        Ok(v) => {
            Session::close(w).await.context("closing the wormhole")?;
            Ok(v)
        }
        Err(e) => {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), Session::close(w)).await;
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
    wormhole_proto::code::Code::parse(code).map_err(wormhole_proto::machine::WormholeError::KeyFormat)?;
    Ok(())
}

async fn run(invocation: Invocation) -> Result<()> {
    match invocation {
        Invocation::Send(global, opts) => {
            // Check the code and decide what to send (and fail on a missing file) before
            // touching the network.
            if let Some(code) = &opts.code {
                check_code(code)?;
            }
            let what = send::decide_what(&opts)?;
            let prepared = match &what {
                send::What::Text(_) => None,
                send::What::Path(p) => Some(files::prepare_send(p, &opts)?),
            };
            let timing = global.dump_timing.as_ref().map(|_| Timing::new());
            let mut w = open(&global, APPID_XFER, timing.clone());
            let flow = match what {
                send::What::Text(text) => send::run_text(&mut w, &opts, text, &global.relay_url).await,
                send::What::Path(_) => match prepared {
                    Some(p) => files::run_send(&mut w, &opts, &global, p).await,
                    None => Err(anyhow::anyhow!("nothing to send")),
                },
            };
            let r = with_close(&mut w, flow).await;
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
            let mut w = open(&global, APPID_XFER, timing.clone());
            let flow = async {
                let incoming = receive::run(&mut w, &opts, &global.relay_url, real::input_code).await?;
                match incoming {
                    receive::Incoming::TextDone => Ok(()),
                    receive::Incoming::Transfer { transit, offer } => {
                        files::run_receive(&mut w, &opts, &global, transit, offer).await
                    }
                }
            }
            .await;
            let r = with_close(&mut w, flow).await;
            write_timing(timing.as_ref(), global.dump_timing.as_deref());
            r
        }
        Invocation::Ssh(global, SshOptions::Invite { code_length, user }) => {
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            let dir = ssh::ssh_dir(user.as_deref(), Path::new(&home))?;
            let mut w = open(&global, APPID_SSH, None);
            let flow = ssh::invite(&mut w, code_length, &dir).await.map(|_| ());
            with_close(&mut w, flow).await
        }
        Invocation::Ssh(global, SshOptions::Accept { code, key_file, yes }) => {
            check_code(&code)?;
            let home = std::env::var_os("HOME").context("HOME is not set")?;
            let key = ssh_keys::find_public_key(key_file.as_deref(), Path::new(&home), &mut |names| {
                let list: Vec<String> = names
                    .iter()
                    .enumerate()
                    .map(|(i, p)| format!("  {i}: {}", p.file_name().unwrap_or_default().to_string_lossy()))
                    .collect();
                let prompt = format!(
                    "Multiple public-keys found:\n{}\nSend which one?: ",
                    list.join("\n")
                );
                output::prompt_line(&prompt).ok()?.trim().parse().ok()
            })?;
            println!("Sending public key type='{}' keyid='{}'", key.kind, key.keyid);
            if !yes {
                let answer =
                    output::prompt_line(&format!("Really send public key '{}' ? [y/N]: ", key.keyid))?;
                if !answer.trim().to_lowercase().starts_with('y') {
                    anyhow::bail!("Aborted!");
                }
            }
            let mut w = open(&global, APPID_SSH, None);
            let flow = ssh::accept(&mut w, &code, &key).await;
            with_close(&mut w, flow).await
        }
    }
}
