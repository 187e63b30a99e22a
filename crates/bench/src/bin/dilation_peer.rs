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
//! and `max_rss_kb` (this process), and `error` when not ok. Exit status 0 when ok, 1 otherwise.
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
use wormhole_bench::sys::{own_cpu_time, peak_rss_kb};

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
    /// send: pace the writes; recv: pace the reads, to this many MB/s per subchannel (fault
    /// tests that need a transfer to last).
    #[arg(long, value_name = "MB_PER_S")]
    rate: Option<f64>,
    /// The receive window per subchannel, bytes (default: the library's).
    #[arg(long)]
    recv_window: Option<usize>,
    /// The unacked outbound queue, bytes (default: the library's).
    #[arg(long)]
    max_unacked: Option<usize>,
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

/// Keeps a byte count at `rate` bytes per second from its start (no pacing without a rate).
struct Pacer {
    start: Instant,
    rate: Option<f64>,
    done: u64,
}

impl Pacer {
    fn new(mb_per_s: Option<f64>) -> Pacer {
        Pacer {
            start: Instant::now(),
            rate: mb_per_s.filter(|r| *r > 0.0).map(|r| r * 1e6),
            done: 0,
        }
    }

    async fn pace(&mut self, n: usize) {
        self.done += n as u64;
        if let Some(rate) = self.rate {
            let due = self.start + Duration::from_secs_f64(self.done as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// How far each subchannel got (shown when a run times out, to tell where it stalled).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Progress {
    sent: u64,
    received: u64,
    /// We half-closed.
    shut: bool,
    /// The peer's CLOSE arrived.
    eof: bool,
}

static PROGRESS: std::sync::Mutex<std::collections::BTreeMap<u32, Progress>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn progress(scid: u32, f: impl FnOnce(&mut Progress)) {
    if let Ok(mut m) = PROGRESS.lock() {
        f(m.entry(scid).or_default());
    }
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
        Err(_) => {
            let streams: Vec<_> = PROGRESS
                .lock()
                .map(|m| {
                    m.iter()
                        .map(|(id, p)| json!({"scid": id, "progress": p}))
                        .collect()
                })
                .unwrap_or_default();
            json!({"ok": false, "error": format!("timed out after {limit:?}"), "streams": streams})
        }
    };
    let ok = out["ok"].as_bool().unwrap_or(false);
    let mut out = out;
    out["cpu_s"] = json!(own_cpu_time().as_secs_f64());
    out["max_rss_kb"] = json!(peak_rss_kb(std::process::id()));
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
    let mut config = wormhole::dilation::EndpointConfig::default();
    if let Some(w) = args.recv_window {
        config.recv_window = w;
    }
    if let Some(u) = args.max_unacked {
        config.max_unacked_bytes = u;
    }
    let options = DilationOptions {
        config,
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

/// What `send` writes on each subchannel: a file's bytes, or the bench stream made as it is
/// written (so a 1 GiB send costs 1 MiB of memory).
#[derive(Clone)]
enum Payload {
    File(std::sync::Arc<Vec<u8>>),
    Bench {
        block: std::sync::Arc<Vec<u8>>,
        len: u64,
    },
}

impl Payload {
    async fn load(args: &Args) -> anyhow::Result<Payload> {
        if let Some(f) = &args.file {
            let data = tokio::fs::read(f)
                .await
                .with_context(|| format!("reading {}", f.display()))?;
            return Ok(Payload::File(data.into()));
        }
        Ok(Payload::Bench {
            block: bench_block().into(),
            len: args.bytes.unwrap_or(0),
        })
    }

    fn len(&self) -> u64 {
        match self {
            Payload::File(d) => d.len() as u64,
            Payload::Bench { len, .. } => *len,
        }
    }

    /// The `n` bytes at `offset` (`n` is cut at the end).
    fn chunk(&self, offset: u64, n: usize) -> Vec<u8> {
        let end = (offset + n as u64).min(self.len());
        match self {
            Payload::File(d) => d[offset as usize..end as usize].to_vec(),
            Payload::Bench { block, .. } => {
                let mut out = Vec::with_capacity((end - offset) as usize);
                let mut at = offset;
                while at < end {
                    let i = (at % block.len() as u64) as usize;
                    let take = ((end - at) as usize).min(block.len() - i);
                    out.extend_from_slice(&block[i..i + take]);
                    at += take as u64;
                }
                out
            }
        }
    }
}

async fn send(args: &Args, d: &Dilated) -> anyhow::Result<Tally> {
    let data = Payload::load(args).await?;
    let size = args.write_size.max(1);
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let ch = d.open(&args.subprotocol).await?;
        let data = data.clone();
        let rate = args.rate;
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
                        progress(id, |p| p.eof = true);
                        break;
                    }
                    s.add(&buf[..n]);
                    progress(id, |p| p.received += n as u64);
                }
                anyhow::Ok(s)
            });
            let mut pacer = Pacer::new(rate);
            let mut offset = 0;
            while offset < data.len() {
                let chunk = data.chunk(offset, size);
                pacer.pace(chunk.len()).await;
                wr.write_all(&chunk).await?;
                offset += chunk.len() as u64;
                progress(id, |p| p.sent += chunk.len() as u64);
            }
            wr.shutdown().await?;
            progress(id, |p| p.shut = true);
            let mut s = reader.await??;
            s.sent = data.len();
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
        let rate = args.rate;
        let want = args.bytes;
        tasks.push(tokio::spawn(async move {
            let s = if mode == Mode::Echo {
                echo(&mut ch).await?
            } else {
                let s = drain(&mut ch, out, stall, rate).await?;
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

async fn drain(
    ch: &mut Subchannel,
    out: Option<PathBuf>,
    stall: Option<Duration>,
    rate: Option<f64>,
) -> anyhow::Result<Stream> {
    let mut pacer = Pacer::new(rate);
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
        pacer.pace(rec.len()).await;
        s.add(&rec);
        progress(ch.id(), |p| p.received += rec.len() as u64);
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
        let n = rec.len() as u64;
        progress(ch.id(), |p| p.received += n);
        ch.send_record(rec.to_vec()).await?;
        progress(ch.id(), |p| p.sent += n);
    }
    progress(ch.id(), |p| p.eof = true);
    Ok(s)
}
