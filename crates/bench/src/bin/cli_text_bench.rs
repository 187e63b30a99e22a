//! `cli-text-bench`: wall time of a whole `wormhole send --text` / `wormhole receive` pair of
//! processes — ours, wormhole-william and Python 0.24 — against the same mailbox server in the
//! same run, interleaved so they share the machine's conditions. Prints min / median / p90 per CLI.
//!
//! A pair starts when the sender is spawned and ends when both processes have exited; the receiver
//! is spawned right after the sender (the code is fixed with `--code`, so no output parsing sits on
//! the measured path). Only loopback is used, and text needs no transit, so no namespace is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use wormhole_testkit::{ChannelDb, ChildGuard, MailboxServer, ServerSpec, StartOptions, clean_command};

/// Benchmark the text send/receive pair of several wormhole CLIs.
#[derive(Debug, Parser)]
struct Args {
    /// Pairs per CLI.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Our `wormhole` binary (default: next to this binary).
    #[arg(long)]
    ours: Option<PathBuf>,
    /// Our `wormhole-server` binary (default: next to this binary).
    #[arg(long)]
    server: Option<PathBuf>,
    /// wormhole-william.
    #[arg(long, default_value = "/usr/bin/wormhole-william")]
    go: PathBuf,
    /// Python magic-wormhole's `wormhole` (default: ~/.cache/wormhole-peers/venv/bin/wormhole).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Mailbox URL to use instead of starting our server.
    #[arg(long)]
    mailbox: Option<String>,
    /// Leave Python out (it costs ~0.4 s per pair).
    #[arg(long)]
    no_python: bool,
}

fn sibling(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// A `WORMHOLE_*`-free command with stdout piped (the received text) and the rest quiet.
fn clean(program: &Path) -> Command {
    let mut cmd = clean_command(program);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Start our mailbox server (in-memory DB) on a free port.
fn start_server(bin: &Path) -> Result<MailboxServer> {
    let spec = ServerSpec::Ours {
        bin: bin.to_path_buf(),
        args: vec!["--channel-db".into(), ":memory:".into()],
    };
    let opts = StartOptions {
        listen: None,
        channel_db: ChannelDb::InArgs,
    };
    MailboxServer::start_with(&spec, &opts).with_context(|| format!("starting {}", bin.display()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ours,
    Go,
    Python,
}

fn pair(kind: Kind, bin: &Path, url: &str, code: &str, text: &str) -> Result<Duration> {
    let (send_args, recv_args): (Vec<&str>, Vec<&str>) = match kind {
        Kind::Ours | Kind::Python => (
            vec![
                "--relay-url",
                url,
                "send",
                "--code",
                code,
                "--no-qr",
                "--hide-progress",
                "--text",
                text,
            ],
            vec!["--relay-url", url, "receive", "--hide-progress", code],
        ),
        Kind::Go => (
            vec![
                "--relay-url",
                url,
                "send",
                "--code",
                code,
                "--hide-progress",
                "--text",
                text,
            ],
            vec!["--relay-url", url, "receive", "--hide-progress", code],
        ),
    };
    let start = Instant::now();
    let mut sender = ChildGuard::new(clean(bin).args(&send_args).spawn()?, "sender");
    let mut receiver = ChildGuard::new(clean(bin).args(&recv_args).spawn()?, "receiver");
    let deadline = start + Duration::from_secs(30);
    let mut out = String::new();
    if let Some(mut so) = receiver.child_mut().stdout.take() {
        use std::io::Read;
        so.read_to_string(&mut out)?;
    }
    for (name, g) in [("receiver", &mut receiver), ("sender", &mut sender)] {
        loop {
            if let Some(st) = g.child_mut().try_wait()? {
                if !st.success() {
                    bail!("{kind:?} {name} failed: {st}");
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("{kind:?} {name} timed out");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let took = start.elapsed();
    if out.trim_end() != text {
        bail!("{kind:?} receiver printed {out:?}, expected {text:?}");
    }
    Ok(took)
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        ms(v[i.min(v.len() - 1)])
    };
    format!(
        "min {:7.1} ms   median {:7.1} ms   p90 {:7.1} ms   (n={})",
        ms(v[0]),
        pick(0.5),
        pick(0.9),
        v.len()
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ours = match args.ours {
        Some(p) => p,
        None => sibling("wormhole")?,
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let python = args
        .python
        .unwrap_or_else(|| home.join(".cache/wormhole-peers/venv/bin/wormhole"));
    let mut clis = vec![(Kind::Ours, ours), (Kind::Go, args.go)];
    if !args.no_python {
        clis.push((Kind::Python, python));
    }
    for (kind, bin) in &clis {
        if !bin.is_file() {
            bail!("{kind:?} CLI not found at {}", bin.display());
        }
    }
    let (_server, url) = match args.mailbox {
        Some(u) => (None, u),
        None => {
            let bin = match args.server {
                Some(p) => p,
                None => sibling("wormhole-server")?,
            };
            let server = start_server(&bin)?;
            let url = server.url().to_owned();
            (Some(server), url)
        }
    };
    println!(
        "cli-text-bench: mailbox {url}, {} pairs per CLI, interleaved",
        args.runs
    );
    let base = 20_000 + std::process::id() % 10_000 * 10;
    let mut results: Vec<Vec<Duration>> = vec![Vec::new(); clis.len()];
    // One warm-up pair each (page cache, Python bytecode), not counted.
    for (i, (kind, bin)) in clis.iter().enumerate() {
        let code = format!("{}-warmup-{i}", base + 900_000);
        pair(*kind, bin, &url, &code, "warm up")?;
    }
    for run in 0..args.runs {
        for (i, (kind, bin)) in clis.iter().enumerate() {
            let code = format!("{}-purple-sausages", base as usize + run * clis.len() + i);
            results[i].push(pair(*kind, bin, &url, &code, "hello wormhole")?);
        }
    }
    for ((kind, _), r) in clis.iter().zip(results) {
        println!("{:<8} {}", format!("{kind:?}"), summary(r));
    }
    Ok(())
}
