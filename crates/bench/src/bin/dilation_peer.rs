//! `dilation-peer`: one side of a dilated wormhole, for tests and benchmarks that put our side
//! opposite Python's (`tests/drivers/py_dilation_peer.py` takes the same flags).
//!
//! Modes (every mode uses `--streams K` subchannels of `--subprotocol NAME`):
//! - `send`: opens K subchannels and writes the payload on each (`--file PATH`, or `--bytes N` of
//!   the bench stream below) in writes of `--write-size` bytes and half-closes, reading what
//!   comes back meanwhile until the peer's CLOSE (counted as received; `records_received`
//!   then counts reads, not records);
//! - `recv`: accepts K subchannels and reads each to the end (`--out PATH` gets the bytes of a
//!   single stream; `--bytes N` requires exactly N bytes on each), then half-closes;
//! - `echo`: accepts K subchannels and writes every record back as it came, then half-closes.
//!
//! The bench stream: a 1 MiB block, SHA-256(`dilation-bench` ‖ be32(j)) for j = 0…32767
//! concatenated, repeated and cut at N bytes.
//!
//! Prints one JSON line at the end: `ok`, `dilation_role`, `bytes_sent`, `bytes_received`,
//! `records_received`, `sha256_received` (over the streams in subchannel-id order), `seconds` (from dilated to
//! done), `dilated_ms` (from create to dilated), `connections` (L2 connections used), `cpu_s`
//! (this process), and `error` when not ok. Exit status 0 when ok, 1 otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wormhole::dilation::{Dilated, DilationOptions, Role, Subchannel};
use wormhole::{Wormhole, WormholeOptions};
use wormhole_bench::sys::own_cpu_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Send,
    Recv,
    Echo,
}

#[derive(Debug, Parser)]
#[command(about = "One side of a dilated wormhole (tests and benchmarks)")]
struct Args {
    /// Mailbox server URL.
    #[arg(long)]
    mailbox: String,
    /// Application id.
    #[arg(long, default_value = "example.com/dilation-peer")]
    appid: String,
    /// Join with this code.
    #[arg(long, conflicts_with = "allocate")]
    code: Option<String>,
    /// Allocate a code (printed to stderr, and written to --code-file).
    #[arg(long)]
    allocate: bool,
    /// Where to write the allocated code.
    #[arg(long)]
    code_file: Option<PathBuf>,
    /// What to do.
    #[arg(long, value_enum)]
    mode: Mode,
    /// send: the payload.
    #[arg(long, conflicts_with = "bytes")]
    file: Option<PathBuf>,
    /// send: N bytes of the bench stream; recv: require exactly N bytes per stream.
    #[arg(long)]
    bytes: Option<u64>,
    /// recv: write what arrives here (one stream).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Number of subchannels.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Bytes per write (one DATA record each).
    #[arg(long, default_value_t = 256 * 1024)]
    write_size: usize,
    /// Subprotocol name.
    #[arg(long, default_value = "bench")]
    subprotocol: String,
    /// A transit relay (tcp:HOST:PORT).
    #[arg(long)]
    relay: Vec<String>,
    /// Do not listen for direct connections.
    #[arg(long)]
    no_listen: bool,
    /// Advertise only these addresses in our direct hints (default: every interface).
    #[arg(long)]
    advertise: Vec<String>,
    /// Our Dilation side (16 hex): ffffffffffffffff leads, 0000000000000000 follows.
    #[arg(long)]
    side: Option<String>,
    /// Keepalive PING interval, seconds.
    #[arg(long)]
    ping_interval: Option<f64>,
    /// recv: stop reading for this many seconds after the first record (flow-control tests).
    #[arg(long)]
    stall: Option<f64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    received: u64,
    records: u64,
    /// Per subchannel id: its received bytes' digest state.
    streams: Vec<(u32, Sha256)>,
}

/// What one subchannel carried.
#[derive(Default)]
struct Stream {
    sent: u64,
    received: u64,
    records: u64,
    hash: Sha256,
}

impl Stream {
    fn add(&mut self, rec: &[u8]) {
        self.hash.update(rec);
        self.received += rec.len() as u64;
        self.records += 1;
    }
}

fn bench_block() -> Vec<u8> {
    let mut block = Vec::with_capacity(1 << 20);
    for j in 0u32..32768 {
        let mut h = Sha256::new();
        h.update(b"dilation-bench");
        h.update(j.to_be_bytes());
        block.extend_from_slice(&h.finalize());
    }
    block
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // RUST_LOG=wormhole=debug shows the Dilation task's decisions on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(args.timeout);
    let out = match tokio::time::timeout(limit, run(&args, start)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => json!({"ok": false, "error": format!("{e:#}")}),
        Err(_) => json!({"ok": false, "error": format!("timed out after {limit:?}")}),
    };
    let ok = out["ok"].as_bool().unwrap_or(false);
    let mut out = out;
    out["cpu_s"] = json!(own_cpu_time().as_secs_f64());
    println!("{out}");
    std::process::exit(if ok { 0 } else { 1 });
}

async fn run(args: &Args, start: Instant) -> anyhow::Result<serde_json::Value> {
    let w = Wormhole::create(
        &args.appid,
        &args.mailbox,
        WormholeOptions {
            dilation: true,
            ..WormholeOptions::default()
        },
    );
    match (&args.code, args.allocate) {
        (Some(c), _) => w.set_code(c).await?,
        (None, true) => {
            w.allocate_code(2).await?;
            let code = w.get_code().await?;
            eprintln!("code: {code}");
            if let Some(f) = &args.code_file {
                std::fs::write(f, &code).with_context(|| format!("writing {}", f.display()))?;
            }
        }
        (None, false) => bail!("give --code or --allocate"),
    }
    let options = DilationOptions {
        relays: args.relay.clone(),
        no_listen: args.no_listen,
        ping_interval: args.ping_interval.map(Duration::from_secs_f64),
        side: args.side.clone(),
        advertise: (!args.advertise.is_empty()).then(|| args.advertise.clone()),
        ..DilationOptions::default()
    };
    let d = w.dilate(options).await?;
    let role = d.when_dilated().await?;
    let dilated_ms = start.elapsed().as_secs_f64() * 1000.0;
    let t0 = Instant::now();
    let tally = match args.mode {
        Mode::Send => send(args, &d).await?,
        Mode::Recv | Mode::Echo => serve(args, &d).await?,
    };
    let seconds = t0.elapsed().as_secs_f64();
    let connections = d.status().connections;
    d.close().await.ok();
    w.close().await.ok();
    let mut streams = tally.streams;
    streams.sort_by_key(|(id, _)| *id);
    let mut all = Sha256::new();
    let digest = if streams.len() == 1 {
        hex::encode(streams.pop().unwrap().1.finalize())
    } else {
        for (_, h) in streams {
            all.update(h.finalize());
        }
        hex::encode(all.finalize())
    };
    Ok(json!({
        "ok": true,
        "dilation_role": match role { Role::Leader => "leader", Role::Follower => "follower" },
        "bytes_sent": tally.sent,
        "bytes_received": tally.received,
        "records_received": tally.records,
        "sha256_received": digest,
        "seconds": seconds,
        "dilated_ms": dilated_ms,
        "connections": connections,
    }))
}

async fn payload(args: &Args) -> anyhow::Result<Vec<u8>> {
    if let Some(f) = &args.file {
        return tokio::fs::read(f)
            .await
            .with_context(|| format!("reading {}", f.display()));
    }
    let n = usize::try_from(args.bytes.unwrap_or(0)).context("--bytes too large")?;
    let block = bench_block();
    Ok(block.iter().copied().cycle().take(n).collect())
}

async fn send(args: &Args, d: &Dilated) -> anyhow::Result<Tally> {
    let data = std::sync::Arc::new(payload(args).await?);
    let size = args.write_size.max(1);
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let ch = d.open(&args.subprotocol).await?;
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let id = ch.id();
            // Read what comes back while writing: a peer that echoes can only go on while we
            // consume (as with TCP, two sides that both only write would stall each other).
            let (mut rd, mut wr) = tokio::io::split(ch);
            let reader = tokio::spawn(async move {
                let mut s = Stream::default();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = rd.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    s.add(&buf[..n]);
                }
                anyhow::Ok(s)
            });
            for chunk in data.chunks(size) {
                wr.write_all(chunk).await?;
            }
            wr.shutdown().await?;
            let mut s = reader.await??;
            s.sent = data.len() as u64;
            anyhow::Ok((id, s))
        }));
    }
    collect(tasks).await
}

async fn serve(args: &Args, d: &Dilated) -> anyhow::Result<Tally> {
    let mut listener = d.listen(&args.subprotocol).await?;
    let mut tasks = Vec::new();
    for i in 0..args.streams {
        let Some(mut ch) = listener.accept().await else {
            bail!("Dilation ended after {i} of {} subchannels", args.streams)
        };
        let mode = args.mode;
        let out = args.out.clone().filter(|_| args.streams == 1);
        let stall = args.stall.map(Duration::from_secs_f64);
        let want = args.bytes;
        tasks.push(tokio::spawn(async move {
            let s = if mode == Mode::Echo {
                echo(&mut ch).await?
            } else {
                let s = drain(&mut ch, out, stall).await?;
                if let Some(w) = want
                    && s.received != w
                {
                    bail!(
                        "subchannel {}: {} bytes arrived, {w} expected",
                        ch.id(),
                        s.received
                    );
                }
                s
            };
            ch.shutdown().await?;
            anyhow::Ok((ch.id(), s))
        }));
    }
    collect(tasks).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<(u32, Stream)>>>,
) -> anyhow::Result<Tally> {
    let mut t = Tally::default();
    for task in tasks {
        let (id, s) = task.await??;
        t.sent += s.sent;
        t.received += s.received;
        t.records += s.records;
        t.streams.push((id, s.hash));
    }
    Ok(t)
}

async fn drain(ch: &mut Subchannel, out: Option<PathBuf>, stall: Option<Duration>) -> anyhow::Result<Stream> {
    let mut file = match out {
        Some(p) => Some(
            tokio::fs::File::create(&p)
                .await
                .with_context(|| format!("creating {}", p.display()))?,
        ),
        None => None,
    };
    let mut s = Stream::default();
    let mut stall = stall;
    while let Some(rec) = ch.recv_record().await? {
        s.add(&rec);
        if let Some(f) = file.as_mut() {
            f.write_all(&rec).await?;
        }
        if let Some(t) = stall.take() {
            tokio::time::sleep(t).await;
        }
    }
    if let Some(mut f) = file {
        f.flush().await?;
    }
    Ok(s)
}

async fn echo(ch: &mut Subchannel) -> anyhow::Result<Stream> {
    let mut s = Stream::default();
    while let Some(rec) = ch.recv_record().await? {
        s.add(&rec);
        s.sent += rec.len() as u64;
        ch.send_record(rec).await?;
    }
    Ok(s)
}
