//! `exchange-time`: wall time of a full wormhole exchange with our library and with the Python
//! library, on the same mailbox server in the same run (issue 3, Show 6).
//!
//! One exchange = A allocates a code → B sets it → both have the verifier → each sends one
//! message and reads the other's → both closed. Both wormholes live in one process for each
//! implementation (ours: one current-thread tokio runtime; Python:
//! `tests/drivers/py_exchange_bench.py`, one Twisted reactor), so interpreter/process start-up is
//! not counted. The two run in up to 5 interleaved rounds so both see the same machine load.
//! Prints both medians and the ratio.
//!
//! By default it starts our `wormhole-server mailbox` (found next to this binary) on a free
//! 127.0.0.1 port with an in-memory DB; `--python-server` starts `twist wormhole-mailbox`
//! instead; `--mailbox-url` uses a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wormhole::{Wormhole, WormholeOptions};
use wormhole_testkit::{ChannelDb, MailboxServer, ServerSpec, StartOptions, clean_command};

const APPID: &str = "example.com/exchange-time-bench";

#[derive(Debug, Parser)]
#[command(about = "Wall time of a full exchange: our library vs the Python library")]
struct Args {
    /// Exchanges per implementation.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Use this running mailbox server instead of starting one.
    #[arg(long)]
    mailbox_url: Option<String>,
    /// Start the Python mailbox server (`twist wormhole-mailbox`) instead of ours.
    #[arg(long)]
    python_server: bool,
    /// Directory of the Python peers' venv binaries (python, twist).
    #[arg(long)]
    venv_bin: Option<PathBuf>,
    /// Skip the Python measurement.
    #[arg(long)]
    no_python: bool,
}

fn venv_bin(args: &Args) -> PathBuf {
    args.venv_bin.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        PathBuf::from(home).join(".cache/wormhole-peers/venv/bin")
    })
}

/// The mailbox URL, and the server this run started (dropped: killed), if it started one: ours
/// (next to this binary) or Python's, on 127.0.0.1 with an in-memory channel DB.
fn start_server(args: &Args) -> anyhow::Result<(String, Option<MailboxServer>)> {
    if let Some(url) = &args.mailbox_url {
        return Ok((url.clone(), None));
    }
    let memory = vec!["--channel-db".to_owned(), ":memory:".to_owned()];
    let spec = if args.python_server {
        ServerSpec::Python {
            twist: venv_bin(args).join("twist"),
            args: memory,
        }
    } else {
        ServerSpec::Ours {
            bin: std::env::current_exe()?.with_file_name("wormhole-server"),
            args: memory,
        }
    };
    let opts = StartOptions {
        listen: None,
        channel_db: ChannelDb::InArgs,
    };
    let server = MailboxServer::start_with(&spec, &opts)
        .context("starting the mailbox server (build wormhole-server first)")?;
    Ok((server.url().to_owned(), Some(server)))
}

async fn one_exchange(url: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let a = Wormhole::create(APPID, url, WormholeOptions::default());
    let b = Wormhole::create(APPID, url, WormholeOptions::default());
    a.allocate_code(2).await?;
    let code = a.get_code().await?;
    b.set_code(&code).await?;
    let (va, vb) = tokio::join!(a.get_verifier(), b.get_verifier());
    if va? != vb? {
        bail!("verifiers differ");
    }
    a.send_message(b"from a".to_vec()).await?;
    b.send_message(b"from b".to_vec()).await?;
    let (ma, mb) = tokio::join!(a.get_message(), b.get_message());
    if ma? != b"from b" || mb? != b"from a" {
        bail!("wrong messages");
    }
    let (ca, cb) = tokio::join!(a.close(), b.close());
    ca?;
    cb?;
    Ok(t0.elapsed())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn python_times(args: &Args, url: &str, count: usize) -> anyhow::Result<Vec<f64>> {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/drivers/py_exchange_bench.py");
    let out = clean_command(venv_bin(args).join("python"))
        .arg(driver)
        .args(["--url", url, "--appid", APPID, "--count", &count.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the Python driver")?;
    if !out.status.success() {
        bail!("python driver failed: {}", out.status);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("python driver output")?;
    let times = v["seconds"]
        .as_array()
        .context("no seconds")?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    Ok(times)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.count == 0 || args.count > 1000 {
        bail!("--count must be in 1..=1000");
    }
    let (url, _server) = start_server(&args)?;
    // One thread for both of our wormholes, like Python's single reactor thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Interleave rounds of ours and Python's so both see the same machine load.
    let rounds = args.count.min(5);
    let mut ours = Vec::with_capacity(args.count);
    let mut py = Vec::with_capacity(args.count);
    for r in 0..rounds {
        let n = args.count / rounds + usize::from(r < args.count % rounds);
        for _ in 0..n {
            let d = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(60), one_exchange(&url)).await
            })??;
            ours.push(d.as_secs_f64());
        }
        if !args.no_python {
            py.extend(python_times(&args, &url, n)?);
        }
    }
    let server = if args.mailbox_url.is_some() {
        "given"
    } else if args.python_server {
        "python 0.8.0"
    } else {
        "ours"
    };
    let ours_median = median(&mut ours);
    println!(
        "server: {server} ({url}); {} exchanges each, {rounds} interleaved rounds",
        args.count
    );
    println!(
        "ours    median {:8.2} ms  (min {:.2} ms)",
        ours_median * 1e3,
        ours[0] * 1e3
    );
    if !args.no_python {
        let py_median = median(&mut py);
        let py_min = py.first().copied().unwrap_or(f64::NAN);
        println!(
            "python  median {:8.2} ms  (min {:.2} ms)",
            py_median * 1e3,
            py_min * 1e3
        );
        println!(
            "ratio ours/python = {:.3} (target <= 0.100)",
            ours_median / py_median
        );
    }
    Ok(())
}
