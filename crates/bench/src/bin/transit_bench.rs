//! `transit-bench`: throughput of our transit library on loopback, in one run:
//!
//! 1. `core`: what one core can decrypt + SHA-256 (records of 16 KiB, our record codec), measured
//!    as bytes per CPU second of this single-threaded loop, with the other parts of a transfer
//!    (encryption, loopback TCP, file writes and reads) and the two-core ceilings they imply;
//! 2. `direct`: `--size` bytes from a Sender to a Receiver (both in this process, each on its own
//!    tokio worker + blocking crypto thread) over a direct loopback connection: MB/s, CPU seconds
//!    of the whole process (both sides), CPU s per GiB, and the ratio to the core limit;
//! 3. `relay`: the same through Python's `twist transitrelay` (and our `wormhole-relay` when it is
//!    built next to this binary), plus the relay process's CPU seconds.
//! 4. `relay-ws`: the same through our relay's and Python's relay's WebSocket port (both sides on
//!    WebSocket), each next to the same relay's TCP port, with the relay's CPU seconds.
//! 5. `cli-direct` / `cli-relay`: whole CLI process pairs sending a `--size` file, for each of
//!    `--impls` (ours, python, go, rs) against itself (or `a>b`: `a` sends, `b` receives), on our mailbox server, relayed through
//!    Python's transit relay on 127.0.0.1:4001 (Go cannot be pointed elsewhere): wall time, MB/s,
//!    CPU seconds and peak RSS of each process (polled from /proc), receiver output checked by
//!    SHA-256. The relay phase forces the relay with `--no-listen` (ours, Python) and
//!    `--force-relay` (Rust); Go only relays when no direct address exists, so run that phase
//!    in a namespace without the test address (`scripts/bench-transit` does).
//!
//! Peak RSS (VmHWM) is printed after each library phase; it must stay flat whatever `--size` is.
//! Library phases use generated data and a hashing sink: they measure transit, not disks.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wormhole::transit::{DirectHint, Role, Transit, TransitConfig, WebSocketHint};
use wormhole_bench::sys;

/// Transit throughput benchmark (library level).
#[derive(Debug, Parser)]
#[command(name = "transit-bench")]
struct Args {
    /// Bytes per transfer.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Phases to run (comma separated): core, direct, relay, relay-ws (also cli-direct, cli-relay).
    #[arg(long, default_value = "core,direct,relay")]
    phases: String,
    /// Python's `twist` (default: ~/.cache/wormhole-peers/venv/bin/twist).
    #[arg(long)]
    twist: Option<PathBuf>,
    /// Implementations for the CLI phases (comma separated): ours, python, go, rs; `a>b` pairs
    /// sender `a` with receiver `b`. Our CLI keeps `WORMHOLE_TRANSIT_CRYPTO` from the environment.
    #[arg(long, default_value = "ours,python,go,rs")]
    impls: String,
    /// The transit relay the CLI phases run on 127.0.0.1:4001 (every client's relay there):
    /// `python` (twist transitrelay) or `ours` (`wormhole-server relay` next to this binary).
    #[arg(long, default_value = "python")]
    cli_relay: String,
    /// Runs per implementation in the CLI phases; the fastest is reported (all wall times shown).
    #[arg(long, default_value_t = 2)]
    repeat: u32,
}

/// Endless pseudo-random bytes (a repeated 1 MiB block).
pub(crate) struct Gen {
    block: Vec<u8>,
    pos: usize,
}

impl Gen {
    pub(crate) fn new() -> Self {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let block = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Gen { block, pos: 0 }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.block.len();
        Ok(n)
    }
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn peak_rss_mb() -> f64 {
    sys::peak_rss_kb(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

struct Run {
    secs: f64,
    cpu: f64,
}

/// How both sides reach each other in one library transfer.
enum Path {
    /// Directly over loopback.
    Direct,
    /// Through a relay's TCP port.
    RelayTcp(SocketAddr),
    /// Through a relay's WebSocket port (both sides).
    RelayWebSocket(String),
}

async fn transfer(size: u64, path: Path) -> anyhow::Result<Run> {
    let mut cfg = TransitConfig::default();
    match path {
        Path::Direct => {}
        Path::RelayTcp(r) => {
            cfg.listen = false;
            cfg.relays = vec![DirectHint {
                hostname: r.ip().to_string(),
                port: r.port(),
                priority: 0.0,
            }];
        }
        Path::RelayWebSocket(url) => {
            cfg.listen = false;
            cfg.relay_websockets = vec![WebSocketHint::new(&url).context("relay WebSocket URL")?];
        }
    }
    let s = Transit::new(Role::Sender, cfg.clone())?;
    let r = Transit::new(Role::Receiver, cfg)?;
    let (smsg, rmsg) = (s.message(), r.message());
    let key = b"transit-bench-key".to_vec();
    let k2 = key.clone();
    let c0 = sys::own_cpu_time();
    let t0 = Instant::now();
    let st = tokio::spawn(async move {
        let mut c = s.connect(&key, &rmsg).await?;
        let h = c.send_from(Gen::new(), size, None).await?;
        let ack = c.receive_record().await?;
        anyhow::ensure!(ack == h, "hash mismatch");
        anyhow::Ok(())
    });
    let rt = tokio::spawn(async move {
        let mut c = r.connect(&k2, &smsg).await?;
        let (h, _) = c.receive_into(std::io::sink(), size, None).await?;
        c.send_record(&h).await?;
        anyhow::Ok(())
    });
    st.await??;
    rt.await??;
    Ok(Run {
        secs: t0.elapsed().as_secs_f64(),
        cpu: (sys::own_cpu_time() - c0).as_secs_f64(),
    })
}

pub(crate) struct RelayProc(pub(crate) Child);

impl RelayProc {
    /// Spawn `cmd` (a relay, output discarded) and wait until it accepts on `addr`; fails if it
    /// exits or `timeout` passes first.
    pub(crate) fn start(
        mut cmd: Command,
        addr: SocketAddr,
        timeout: Duration,
        what: &str,
    ) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut p = RelayProc(cmd.spawn().with_context(|| format!("starting the {what}"))?);
        let deadline = Instant::now() + timeout;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if p.0.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("{what} did not start on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_python_relay(args: &Args) -> anyhow::Result<(RelayProc, SocketAddr)> {
    start_python_relay_on(args, free_port()?)
}

fn start_python_relay_on(args: &Args, port: u16) -> anyhow::Result<(RelayProc, SocketAddr)> {
    let twist = args.twist.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/wormhole-peers/venv/bin/twist")
    });
    if !twist.exists() {
        bail!(
            "{} not found: install the peers with scripts/install-peers",
            twist.display()
        );
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut cmd = Command::new(twist);
    cmd.args([
        "transitrelay",
        "--port",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WORMHOLE_") {
            cmd.env_remove(k);
        }
    }
    let p = RelayProc::start(cmd, addr, Duration::from_secs(30), "python transit relay")?;
    Ok((p, addr))
}

fn peer_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/wormhole-peers")
}

#[path = "transit_bench/core.rs"]
mod core_costs;

#[path = "transit_bench/cli.rs"]
mod cli_phases;

fn report(name: &str, size: u64, run: &Run, core: Option<f64>, extra: &str) {
    let gib = size as f64 / (1u64 << 30) as f64;
    let rate = mbps(size, run.secs);
    let vs_core = core
        .map(|c| format!(", {:.0} % of one-core limit", 100.0 * rate * 1e6 / c))
        .unwrap_or_default();
    println!(
        "{name:<28} {rate:>7.0} MB/s  {:>6.2} s  CPU {:>5.2} s (both sides; {:.2} s/GiB){extra}{vs_core}  peak RSS {:.1} MB",
        run.secs,
        run.cpu,
        run.cpu / gib,
        peak_rss_mb()
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phases: Vec<&str> = args.phases.split(',').map(str::trim).collect();
    println!(
        "transit-bench: {} bytes per transfer, loopback, 16 KiB records; reference (docs/testing.md): Python 318 MB/s direct with 6.0 CPU s/GiB, 214 MB/s relayed",
        args.size
    );
    let mut core = None;
    if phases.contains(&"core") {
        let costs = core_costs::measure(args.size, &std::env::temp_dir())?;
        core_costs::print(&costs);
        core = Some(costs.limit());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if phases.contains(&"direct") {
        // The core phase's buffers are not part of a transfer.
        let _ = sys::reset_own_peak_rss();
        let run = rt.block_on(transfer(args.size, Path::Direct))?;
        report("ours direct", args.size, &run, core, "");
    }
    let cli: Vec<&str> = phases.iter().copied().filter(|p| p.starts_with("cli-")).collect();
    if !cli.is_empty() {
        cli_phases::run(&args, &cli, core)?;
    }
    if phases.contains(&"relay") {
        let _ = sys::reset_own_peak_rss();
        match start_python_relay(&args) {
            Ok((relay, addr)) => {
                let pid = relay.0.id();
                let c0 = sys::proc_cpu_time(pid).unwrap_or_default();
                let run = rt.block_on(transfer(args.size, Path::RelayTcp(addr)))?;
                let rc = (sys::proc_cpu_time(pid).unwrap_or_default() - c0).as_secs_f64();
                report(
                    "ours via python relay",
                    args.size,
                    &run,
                    None,
                    &format!(", relay CPU {rc:.2} s"),
                );
            }
            Err(e) => println!("ours via python relay: skipped ({e})"),
        }
    }
    if phases.contains(&"relay-ws") {
        relay_websocket_phase(&args, &rt);
    }
    Ok(())
}

/// Our library through each relay's WebSocket port (both sides on WebSocket, the costliest
/// case), next to the same relay's TCP port, with the relay process's CPU seconds.
fn relay_websocket_phase(args: &Args, rt: &tokio::runtime::Runtime) {
    for which in ["ours", "python"] {
        let started = match which {
            "ours" => start_our_relay_with_websocket(),
            _ => start_python_relay_with_websocket(args),
        };
        let (relay, tcp, ws) = match started {
            Ok(r) => r,
            Err(e) => {
                println!("ours via {which} relay websocket: skipped ({e:#})");
                continue;
            }
        };
        let pid = relay.0.id();
        for (label, path) in [
            (format!("ours via {which} relay tcp"), Path::RelayTcp(tcp)),
            (
                format!("ours via {which} relay ws"),
                Path::RelayWebSocket(ws.clone()),
            ),
        ] {
            let _ = sys::reset_own_peak_rss();
            let c0 = sys::proc_cpu_time(pid).unwrap_or_default();
            match rt.block_on(transfer(args.size, path)) {
                Ok(run) => {
                    let rc = (sys::proc_cpu_time(pid).unwrap_or_default() - c0).as_secs_f64();
                    report(&label, args.size, &run, None, &format!(", relay CPU {rc:.2} s"));
                }
                Err(e) => println!("{label}: failed ({e:#})"),
            }
        }
    }
}

/// A free port on 127.0.0.1 (released before the relay binds it), never one given out before.
fn free_port() -> anyhow::Result<u16> {
    Ok(wormhole_testkit::try_free_port()?)
}

/// Our `wormhole-server relay` with a TCP and a WebSocket port: the process, the TCP address, the
/// WebSocket URL.
fn start_our_relay_with_websocket() -> anyhow::Result<(RelayProc, SocketAddr, String)> {
    let (tcp, ws) = (free_port()?, free_port()?);
    let bin = std::env::current_exe()?.with_file_name("wormhole-server");
    let mut cmd = Command::new(bin);
    cmd.args([
        "relay",
        "--listen",
        &format!("127.0.0.1:{tcp}"),
        "--websocket",
        &format!("127.0.0.1:{ws}"),
    ]);
    let p = RelayProc::start(
        cmd,
        SocketAddr::from((Ipv4Addr::LOCALHOST, ws)),
        Duration::from_secs(20),
        "our relay",
    )?;
    Ok((
        p,
        SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)),
        format!("ws://127.0.0.1:{ws}/"),
    ))
}

/// Python's `twist transitrelay --websocket`: the process, the TCP address, the WebSocket URL.
fn start_python_relay_with_websocket(args: &Args) -> anyhow::Result<(RelayProc, SocketAddr, String)> {
    let (tcp, ws) = (free_port()?, free_port()?);
    let twist = args
        .twist
        .clone()
        .unwrap_or_else(|| peer_dir().join("venv/bin/twist"));
    let url = format!("ws://127.0.0.1:{ws}/");
    let mut cmd = Command::new(twist);
    cmd.args([
        "transitrelay",
        "--port",
        &format!("tcp:{tcp}:interface=127.0.0.1"),
        "--websocket",
        &format!("tcp:{ws}:interface=127.0.0.1"),
        "--websocket-url",
        &url,
    ]);
    let p = RelayProc::start(
        cmd,
        SocketAddr::from((Ipv4Addr::LOCALHOST, ws)),
        Duration::from_secs(30),
        "python relay",
    )?;
    Ok((p, SocketAddr::from((Ipv4Addr::LOCALHOST, tcp)), url))
}
