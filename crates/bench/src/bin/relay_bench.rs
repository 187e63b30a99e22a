//! `relay-bench`: transit relay throughput and footprint, ours against Python's, in the same run.
//!
//! Throughput: for each relay (our `wormhole-relay`, Python's `twist transitrelay`), start it on a free
//! 127.0.0.1 port, pair two raw TCP clients with the relay handshake, push `--size` bytes from one to
//! the other, and print MB/s, the relay process's CPU seconds during the push (utime+stime from
//! /proc/PID/stat), CPU s per GiB and peak RSS (VmHWM), then the ratios. Idle: open `--pairs` paired but
//! silent connections through a fresh relay and print its resident memory.
//!
//! Measures and prints only; the relay is a separate process so its figures are its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wormhole_bench::sys;
use wormhole_testkit::{ChildGuard, clean_command, try_free_port};

/// Transit relay benchmark: ours vs Python's.
#[derive(Debug, Parser)]
#[command(name = "relay-bench")]
struct Args {
    /// Bytes to push through each relay per round.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Rounds per relay (interleaved: ours, Python, ours, …); medians are reported.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// What to run.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Idle pairs to open in the idle mode.
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Our relay binary (default: `wormhole-relay` next to this binary).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Python's `twist` (default: $WORMHOLE_PEERS or ~/.cache/wormhole-peers, venv/bin/twist).
    #[arg(long)]
    twist: Option<PathBuf>,
    /// Skip the Python relay.
    #[arg(long)]
    no_python: bool,
    /// Extra argument for our relay (repeatable), e.g. `--relay-arg=--buffer-size=65536`.
    #[arg(long = "relay-arg", allow_hyphen_values = true)]
    relay_args: Vec<String>,
    /// Pace the sending client to this many MB/s (a "slow client"; default: as fast as it can).
    #[arg(long, value_name = "MB_PER_S")]
    rate: Option<f64>,
    /// Also measure our relay with `--no-splice` (the user-space copy loop).
    #[arg(long)]
    copy_loop_too: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Throughput,
    Idle,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Ours,
    /// Ours with `--no-splice`.
    OursCopy,
    Python,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Ours => "ours (splice)",
            Which::OursCopy => "ours (copy loop)",
            Which::Python => "python (transitrelay 0.5)",
        }
    }
}

/// A relay process, killed and reaped on drop.
struct RelayProc {
    child: ChildGuard,
    addr: SocketAddr,
}

fn start_relay(args: &Args, which: Which) -> anyhow::Result<RelayProc> {
    let port = try_free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut cmd = match which {
        Which::Ours | Which::OursCopy => {
            let bin = match &args.relay_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe()?.with_file_name("wormhole-relay"),
            };
            if !bin.exists() {
                bail!(
                    "{} not found: build it with `cargo build --release -p wormhole-relay`",
                    bin.display()
                );
            }
            let mut c = clean_command(bin);
            c.args(["--listen", &addr.to_string(), "--max-connections", "100000"]);
            c.args(["--max-connections-per-ip", "0"]);
            c.args(&args.relay_args);
            if which == Which::OursCopy {
                c.arg("--no-splice");
            }
            c
        }
        Which::Python => {
            let twist = match &args.twist {
                Some(t) => t.clone(),
                None => peer_dir().join("venv/bin/twist"),
            };
            if !twist.exists() {
                bail!(
                    "{} not found: install the peers with scripts/install-peers",
                    twist.display()
                );
            }
            let mut c = clean_command(twist);
            c.args([
                "transitrelay",
                "--port",
                &format!("tcp:{port}:interface=127.0.0.1"),
            ]);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", which.name()))?;
    let mut relay = RelayProc {
        child: ChildGuard::new(child, "transit relay"),
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // That probe connection shows up as one `empty` connection; harmless.
            return Ok(relay);
        }
        if let Some(status) = relay.child.child_mut().try_wait()? {
            bail!("{} exited early: {status}", which.name());
        }
        if Instant::now() > deadline {
            bail!("{} does not accept on {addr}", which.name());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn peer_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WORMHOLE_PEERS").filter(|d| !d.is_empty()) {
        return d.into();
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/wormhole-peers")
}

fn token(n: u64) -> String {
    format!("{n:064x}")
}

/// Connect and send the request; do not wait for `ok`.
fn request(addr: SocketAddr, token: &str, side: &str) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.write_all(format!("please relay {token} for side {side}\n").as_bytes())?;
    Ok(s)
}

fn expect_ok(s: &mut TcpStream) -> anyhow::Result<()> {
    let mut ok = [0u8; 3];
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.read_exact(&mut ok)?;
    if &ok != b"ok\n" {
        bail!("relay answered {:?}", String::from_utf8_lossy(&ok));
    }
    s.set_read_timeout(None)?;
    Ok(())
}

fn pair(addr: SocketAddr, n: u64) -> anyhow::Result<(TcpStream, TcpStream)> {
    let tok = token(n);
    let mut a = request(addr, &tok, "aaaaaaaaaaaaaaaa")?;
    let mut b = request(addr, &tok, "bbbbbbbbbbbbbbbb")?;
    expect_ok(&mut a)?;
    expect_ok(&mut b)?;
    Ok((a, b))
}

struct Throughput {
    mb_s: f64,
    cpu_s: f64,
    cpu_per_gib: f64,
    peak_rss_mb: f64,
}

fn push(args: &Args, which: Which, round: u64) -> anyhow::Result<Throughput> {
    let relay = start_relay(args, which)?;
    let pid = relay.child.pid();
    let (mut a, mut b) = pair(relay.addr, 1000 + round)?;
    let size = args.size;
    let rate = args.rate.filter(|r| *r > 0.0).map(|r| r * 1e6);
    let cpu0 = sys::proc_cpu_time(pid).context("relay CPU time")?;
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || -> std::io::Result<TcpStream> {
        // Slow clients write 64 KiB at a time on a schedule; fast ones 256 KiB as fast as they can.
        let chunk = vec![0x5au8; if rate.is_some() { 64 * 1024 } else { 256 * 1024 }];
        let mut left = size;
        let mut sent = 0u64;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            a.write_all(&chunk[..n])?;
            left -= n as u64;
            sent += n as u64;
            if let Some(r) = rate {
                let due = Duration::from_secs_f64(sent as f64 / r);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        Ok(a)
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < size {
        let n = b.read(&mut buf)?;
        if n == 0 {
            bail!("{} closed after {got} of {size} bytes", which.name());
        }
        got += n as u64;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = sys::proc_cpu_time(pid).context("relay CPU time")?;
    let _a = writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let peak = sys::peak_rss_kb(pid).unwrap_or(0) as f64 / 1024.0;
    let cpu_s = (cpu1 - cpu0).as_secs_f64();
    Ok(Throughput {
        mb_s: size as f64 / elapsed / 1e6,
        cpu_s,
        cpu_per_gib: cpu_s * (1u64 << 30) as f64 / size as f64,
        peak_rss_mb: peak,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn throughput(args: &Args) -> anyhow::Result<()> {
    let mut whiches = vec![Which::Ours];
    if args.copy_loop_too {
        whiches.push(Which::OursCopy);
    }
    if !args.no_python {
        whiches.push(Which::Python);
    }
    let mut results: Vec<(Which, Vec<Throughput>)> = whiches.iter().map(|&w| (w, Vec::new())).collect();
    for round in 0..args.rounds.max(1) {
        for (w, rs) in results.iter_mut() {
            let r = push(args, *w, round as u64)?;
            println!(
                "round {round} {:<28} {:>8.1} MB/s  relay CPU {:>6.3} s ({:.3} s/GiB)  peak RSS {:>6.1} MB",
                w.name(),
                r.mb_s,
                r.cpu_s,
                r.cpu_per_gib,
                r.peak_rss_mb
            );
            rs.push(r);
        }
    }
    let pace = match args.rate {
        Some(r) => format!("sender paced to {r} MB/s"),
        None => "sender as fast as it can".to_owned(),
    };
    println!(
        "\n== {} MiB through each relay ({pace}), median of {} round(s) ==",
        args.size >> 20,
        args.rounds.max(1)
    );
    let mut summary = Vec::new();
    for (w, rs) in &results {
        let mb = median(rs.iter().map(|r| r.mb_s).collect());
        let cpu = median(rs.iter().map(|r| r.cpu_per_gib).collect());
        let rss = median(rs.iter().map(|r| r.peak_rss_mb).collect());
        println!(
            "{:<28} {mb:>8.1} MB/s  {cpu:.3} relay CPU s/GiB  peak RSS {rss:.1} MB",
            w.name()
        );
        summary.push((*w, mb, cpu));
    }
    let find = |w: Which| {
        summary
            .iter()
            .find(|(x, ..)| *x == w)
            .map(|(_, mb, cpu)| (*mb, *cpu))
    };
    if let Some((py_mb, py_cpu)) = find(Which::Python) {
        for w in [Which::Ours, Which::OursCopy] {
            if let Some((mb, cpu)) = find(w) {
                println!(
                    "ratio {}/python: throughput {:.2}x, CPU per GiB {:.2}x (target for splice <= 0.15)",
                    w.name(),
                    mb / py_mb,
                    cpu / py_cpu
                );
            }
        }
    }
    Ok(())
}

fn idle(args: &Args, which: Which) -> anyhow::Result<()> {
    let relay = start_relay(args, which)?;
    let pid = relay.child.pid();
    let base = sys::rss_kb(pid).unwrap_or(0);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(args.pairs);
    for i in 0..args.pairs {
        held.push(pair(relay.addr, 1_000_000 + i as u64).with_context(|| format!("pair {i}"))?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss = sys::rss_kb(pid).unwrap_or(0);
    println!(
        "{:<28} {} idle pairs opened in {:.2} s: relay RSS {:.1} MB (started at {:.1} MB, {:.1} kB per pair)",
        which.name(),
        held.len(),
        t0.elapsed().as_secs_f64(),
        rss as f64 / 1024.0,
        base as f64 / 1024.0,
        (rss.saturating_sub(base)) as f64 / held.len().max(1) as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let want = (args.pairs as u64) * 4 + 256;
    match sys::raise_nofile(want) {
        Ok(n) if n < want => eprintln!(
            "warning: open-file limit {n} may be too low for {} pairs",
            args.pairs
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot raise the open-file limit: {e}"),
    }
    if matches!(args.mode, Mode::Throughput | Mode::All) {
        throughput(&args)?;
    }
    if matches!(args.mode, Mode::Idle | Mode::All) {
        println!("\n== idle pairs ==");
        idle(&args, Which::Ours)?;
        if !args.no_python {
            idle(&args, Which::Python)?;
        }
    }
    Ok(())
}
