//! `mailbox-load`: a load generator for mailbox (rendezvous) servers, ours or Python's.
//!
//! Modes (every loop bounded in count and in time):
//! - closed loop (default): `--concurrency C --pairs N` — C workers each run complete client pairs
//!   back to back until N pairs (or `--max-seconds`); prints pairs/s and pair latency p50/p99.
//! - open loop: `--rate R --duration D` — start one pair every 1/R s for D s whatever the server does;
//!   latency is measured from each pair's scheduled start (no coordinated omission).
//! - idle: `--idle N` — open N connections, bind each, hold them `--hold` s, and print the server's RSS
//!   growth per connection (the generator raises its own RLIMIT_NOFILE first).
//!
//! With `--flood`, a flooder (crates/bench/src/flood.rs) hammers the server from an address of its
//! own while the pairs run, and its view of the server's refusals is printed after the figures;
//! `--source-ips` spreads the pairs over many loopback addresses so per-address limits can stay on.
//!
//! The server is given by `--url` (plus `--server-pid` for memory figures) or started by the generator
//! (`--spawn-ours BIN` / `--spawn-python TWIST`, with `--server-arg` for extra flags). Besides the
//! figures it prints the generator's own CPU time, so one can see it is not the bottleneck, and a final
//! `RESULT key=value …` line for scripts. It must not contain server logic.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::task::JoinSet;
use tokio::time::Instant;

use wormhole_bench::flood::{Flood, FloodConfig};
use wormhole_bench::latency::{Latencies, ms};
use wormhole_bench::mailbox_client::{Conn, PairError, idle_bound, run_pair_split};
use wormhole_bench::server_proc::{ServerProc, ServerSpec};
use wormhole_bench::sys;

#[derive(Parser, Debug)]
#[command(
    name = "mailbox-load",
    about = "Drive client pairs (or idle connections) through a mailbox server and print throughput, latency and server memory"
)]
struct Args {
    /// Server WebSocket URL, e.g. ws://127.0.0.1:4000/v1 (or use --spawn-ours / --spawn-python).
    #[arg(long, conflicts_with_all = ["spawn_ours", "spawn_python"])]
    url: Option<String>,
    /// Side B of every pair connects here instead of to the server (another node of a
    /// cluster): pairs are split across nodes, and the A-to-B delivery latency is reported.
    #[arg(long, value_name = "URL")]
    url_b: Option<String>,
    /// PID of the server at --url, for its peak RSS (VmHWM) and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start our server from this `wormhole-server` binary (127.0.0.1:0, channel DB file in a temp dir).
    #[arg(long, value_name = "BIN", conflicts_with = "spawn_python")]
    spawn_ours: Option<PathBuf>,
    /// Start the Python server with this `twist` (wormhole-mailbox, free port, channel DB file).
    #[arg(long, value_name = "TWIST")]
    spawn_python: Option<PathBuf>,
    /// Extra argument for a spawned server (repeatable).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Closed loop: number of pairs in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: u64,
    /// Closed loop: total pairs to run.
    #[arg(long, default_value_t = 5000)]
    pairs: u64,
    /// Open loop: pairs started per second (selects the open-loop mode).
    #[arg(long, conflicts_with = "idle")]
    rate: Option<f64>,
    /// Open loop: seconds to keep starting pairs.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop: pairs allowed in flight; further starts are counted as dropped.
    #[arg(long, default_value_t = 5000)]
    max_in_flight: u64,
    /// Idle mode: number of bound connections to open and hold.
    #[arg(long)]
    idle: Option<u64>,
    /// Idle mode: seconds to hold the connections before measuring.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Idle mode: connections opened in parallel.
    #[arg(long, default_value_t = 200)]
    connect_parallelism: usize,
    /// A pair (or an idle connection's setup) fails if it takes longer than this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pair_timeout: f64,
    /// Hard bound on the measured phase, in seconds (closed loop stops starting pairs after it).
    #[arg(long, default_value_t = 300.0)]
    max_seconds: f64,
    /// Generator worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A label for the RESULT line (e.g. `ours`, `python`).
    #[arg(long, default_value = "server")]
    label: String,
    /// Spread the pairs' connections over N loopback source addresses (127.0.1.1 … 127.0.1.N,
    /// at most 250), like clients from many addresses, so the server's per-address limits can
    /// stay on (needs a `ws://127.x.x.x` server).
    #[arg(long, value_name = "N", default_value_t = 0)]
    source_ips: usize,
    /// While the pairs run (closed or open loop), flood the server from one other address:
    /// `--flood-parallel` connections opened back to back, each sending `bind` and then pings
    /// as fast as it can (one thread of its own; starts a second before the measured phase).
    #[arg(long, conflicts_with = "idle")]
    flood: bool,
    /// Control run: aim the flood at a second spawned server of the same kind instead, so the
    /// flooder competes with the measured server for CPU only.
    #[arg(long, requires = "flood")]
    flood_elsewhere: bool,
    /// The flooder's source address.
    #[arg(long, value_name = "IP", default_value = "127.0.0.2")]
    flood_from: std::net::IpAddr,
    /// Flooding connections kept going at once.
    #[arg(long, value_name = "N", default_value_t = 200)]
    flood_parallel: usize,
    /// Most connections the flooder opens in all.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    flood_max_connections: u64,
    /// After the run, read the server's `/metrics` at this address (the `--metrics` of our
    /// server) and print its rejection counters.
    #[arg(long, value_name = "ADDR:PORT")]
    scrape_metrics: Option<String>,
}

/// `GET /metrics` from `addr` and print the `wormhole_mailbox_rejected_total` samples; returns
/// them as `rejected_REASON=N` pairs for the RESULT line.
async fn scrape_rejections(addr: &str) -> Vec<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        std::io::Result::Ok(body)
    };
    let body = match tokio::time::timeout(Duration::from_secs(10), fetch).await {
        Ok(Ok(b)) => b,
        _ => {
            println!("  server metrics: cannot read http://{addr}/metrics");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut shown = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("wormhole_mailbox_rejected_total{reason=\"") else {
            continue;
        };
        if let Some((reason, value)) = rest.split_once("\"} ") {
            shown.push(format!("{reason} {value}"));
            out.push((format!("rejected_{reason}"), value.to_owned()));
        }
    }
    println!(
        "  server rejections (/metrics): {}",
        if shown.is_empty() {
            "none".to_owned()
        } else {
            shown.join(", ")
        }
    );
    out
}

/// Errors of a run, by kind, with a few examples.
#[derive(Default)]
struct ErrorTally {
    by_kind: BTreeMap<&'static str, u64>,
    examples: Vec<String>,
}

impl ErrorTally {
    fn add(&mut self, e: &PairError) {
        *self.by_kind.entry(e.kind()).or_default() += 1;
        if self.examples.len() < 5 {
            self.examples.push(e.to_string());
        }
    }
    fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
    fn merge(&mut self, other: ErrorTally) {
        for (k, v) in other.by_kind {
            *self.by_kind.entry(k).or_default() += v;
        }
        for e in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }
    fn print(&self) {
        if self.total() == 0 {
            return;
        }
        println!("  errors: {:?}", self.by_kind);
        for e in &self.examples {
            println!("    e.g. {e}");
        }
    }
}

/// CPU/RSS bookkeeping around a measured phase.
struct Meter {
    server_pid: Option<u32>,
    started: Instant,
    own_cpu0: Duration,
    server_cpu0: Option<Duration>,
    own_sched0: Option<sys::SchedStat>,
    server_sched0: Option<sys::SchedStat>,
}

impl Meter {
    fn start(server_pid: Option<u32>) -> Meter {
        Meter {
            server_pid,
            started: Instant::now(),
            own_cpu0: sys::own_cpu_time(),
            server_cpu0: server_pid.and_then(sys::proc_cpu_time),
            own_sched0: sys::proc_sched(std::process::id()),
            server_sched0: server_pid.and_then(sys::proc_sched),
        }
    }

    /// Print the shared lines and return `key=value` pairs for the RESULT line.
    fn finish(&self, result: &mut Vec<(String, String)>) -> Duration {
        let wall = self.started.elapsed();
        let own = sys::own_cpu_time().saturating_sub(self.own_cpu0);
        println!(
            "  generator CPU: {:.2} s over {:.2} s wall ({:.0} % of one core)",
            own.as_secs_f64(),
            wall.as_secs_f64(),
            100.0 * own.as_secs_f64() / wall.as_secs_f64().max(1e-9)
        );
        result.push(("gen_cpu_s".into(), format!("{:.2}", own.as_secs_f64())));
        // Run-queue delay: how long threads were ready to run but had no CPU (contention from
        // other processes on the machine, or too few cores for server + generator).
        if let (Some(s0), Some(s1)) = (self.own_sched0, sys::proc_sched(std::process::id())) {
            let d = s1.since(&s0);
            println!(
                "  generator threads: {:.2} s on CPU, {:.2} s waiting for a CPU",
                d.run.as_secs_f64(),
                d.wait.as_secs_f64()
            );
            result.push(("gen_runq_wait_s".into(), format!("{:.2}", d.wait.as_secs_f64())));
        }
        if let (Some(pid), Some(s0)) = (self.server_pid, self.server_sched0)
            && let Some(s1) = sys::proc_sched(pid)
        {
            let d = s1.since(&s0);
            println!(
                "  server threads: {:.2} s on CPU, {:.2} s waiting for a CPU",
                d.run.as_secs_f64(),
                d.wait.as_secs_f64()
            );
            result.push((
                "server_runq_wait_s".into(),
                format!("{:.2}", d.wait.as_secs_f64()),
            ));
        }
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            let one = load.split_whitespace().next().unwrap_or("?").to_owned();
            println!("  machine load average (1 min): {one}");
            result.push(("loadavg".into(), one));
        }
        result.push(("wall_s".into(), format!("{:.2}", wall.as_secs_f64())));
        if let Some(pid) = self.server_pid {
            if let (Some(c0), Some(c1)) = (self.server_cpu0, sys::proc_cpu_time(pid)) {
                let c = c1.saturating_sub(c0);
                println!(
                    "  server CPU: {:.2} s ({:.0} % of one core)",
                    c.as_secs_f64(),
                    100.0 * c.as_secs_f64() / wall.as_secs_f64().max(1e-9)
                );
                result.push(("server_cpu_s".into(), format!("{:.2}", c.as_secs_f64())));
            }
            match sys::peak_rss_kb(pid) {
                Some(kb) => {
                    println!("  server peak RSS (VmHWM): {kb} kB");
                    result.push(("server_peak_rss_kb".into(), kb.to_string()));
                }
                None => println!("  server peak RSS: unknown (cannot read /proc/{pid}/status)"),
            }
        } else {
            println!("  server RSS: unknown (give --server-pid)");
        }
        wall
    }
}

fn print_latency(lat: &Latencies, result: &mut Vec<(String, String)>) {
    println!(
        "  pair latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99)),
        ms(lat.max()),
        ms(lat.mean())
    );
    result.push(("p50_ms".into(), format!("{:.2}", ms(lat.quantile(0.5)))));
    result.push(("p99_ms".into(), format!("{:.2}", ms(lat.quantile(0.99)))));
    result.push(("max_ms".into(), format!("{:.2}", ms(lat.max()))));
}

/// The A-to-B delivery of each pair's last message (`add` on side A's server to side B).
fn print_delivery(d: &Latencies, result: &mut Vec<(String, String)>) {
    println!(
        "  delivery A->B (last message, from add to arrival): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(d.quantile(0.5)),
        ms(d.quantile(0.99)),
        ms(d.max())
    );
    result.push(("delivery_p50_ms".into(), format!("{:.2}", ms(d.quantile(0.5)))));
    result.push(("delivery_p99_ms".into(), format!("{:.2}", ms(d.quantile(0.99)))));
}

async fn closed_loop(args: &Args, url: &str, pid: Option<u32>) -> Result<Vec<(String, String)>> {
    let pairs = args.pairs;
    let workers = args.concurrency.clamp(1, 100_000);
    println!("closed loop: {workers} concurrent pairs, {pairs} pairs, against {url}");
    let next = Arc::new(AtomicU64::new(0));
    let pair_timeout = Duration::from_secs_f64(args.pair_timeout);
    let meter = Meter::start(pid);
    let stop_at = meter.started + Duration::from_secs_f64(args.max_seconds);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let next = next.clone();
        let url = url.to_owned();
        let url_b = args.url_b.clone().unwrap_or_else(|| url.clone());
        set.spawn(async move {
            let mut lat = Latencies::new();
            let mut delivery = Latencies::new();
            let mut errors = ErrorTally::default();
            while next.fetch_add(1, Ordering::Relaxed) < pairs && Instant::now() < stop_at {
                let t = Instant::now();
                match run_pair_split(&url, &url_b, pair_timeout).await {
                    Ok(d) => {
                        lat.record(t.elapsed());
                        delivery.record(d);
                    }
                    Err(e) => errors.add(&e),
                }
            }
            (lat, delivery, errors)
        });
    }
    let mut lat = Latencies::new();
    let mut delivery = Latencies::new();
    let mut errors = ErrorTally::default();
    while let Some(r) = set.join_next().await {
        let (l, d, e) = r.context("worker panicked")?;
        lat.merge(&l);
        delivery.merge(&d);
        errors.merge(e);
    }
    let mut result = vec![
        ("mode".into(), "closed".into()),
        ("concurrency".into(), workers.to_string()),
    ];
    let wall = meter.finish(&mut result);
    let ok = lat.count();
    let rate = ok as f64 / wall.as_secs_f64().max(1e-9);
    println!("  pairs: {ok} ok, {} failed, {rate:.1} pairs/s", errors.total());
    print_latency(&lat, &mut result);
    print_delivery(&delivery, &mut result);
    errors.print();
    result.push(("pairs_ok".into(), ok.to_string()));
    result.push(("pairs_failed".into(), errors.total().to_string()));
    result.push(("pairs_per_s".into(), format!("{rate:.1}")));
    Ok(result)
}

async fn open_loop(args: &Args, url: &str, pid: Option<u32>, rate: f64) -> Result<Vec<(String, String)>> {
    if !(rate > 0.0 && rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000]");
    }
    let total = (rate * args.duration).round().max(1.0) as u64;
    println!(
        "open loop: {rate} pairs/s offered for {} s ({total} pairs, at most {} in flight), against {url}",
        args.duration, args.max_in_flight
    );
    let pair_timeout = Duration::from_secs_f64(args.pair_timeout);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let meter = Meter::start(pid);
    let t0 = meter.started;
    let hard_stop = t0 + Duration::from_secs_f64(args.max_seconds);
    let mut set: JoinSet<(Result<Duration, PairError>, Duration)> = JoinSet::new();
    let mut lat = Latencies::new();
    let mut delivery = Latencies::new();
    let mut errors = ErrorTally::default();
    let mut dropped = 0u64;
    let mut late_starts = 0u64;
    let absorb = |r: (Result<Duration, PairError>, Duration),
                  lat: &mut Latencies,
                  delivery: &mut Latencies,
                  errors: &mut ErrorTally| match r.0 {
        Ok(d) => {
            lat.record(r.1);
            delivery.record(d);
        }
        Err(e) => errors.add(&e),
    };
    for i in 0..total {
        let scheduled = t0 + interval.mul_f64(i as f64);
        if scheduled >= hard_stop {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        if Instant::now() > scheduled + Duration::from_millis(10) {
            late_starts += 1;
        }
        while let Some(r) = set.try_join_next() {
            absorb(
                r.context("pair task panicked")?,
                &mut lat,
                &mut delivery,
                &mut errors,
            );
        }
        if set.len() as u64 >= args.max_in_flight {
            dropped += 1;
            continue;
        }
        let url = url.to_owned();
        let url_b = args.url_b.clone().unwrap_or_else(|| url.clone());
        set.spawn(async move {
            let r = run_pair_split(&url, &url_b, pair_timeout).await;
            // Latency from the scheduled start: queueing in the generator or server counts.
            (r, scheduled.elapsed())
        });
    }
    let launch_wall = t0.elapsed();
    let drain_deadline = (Instant::now() + pair_timeout + Duration::from_secs(1))
        .min(hard_stop.max(Instant::now() + Duration::from_secs(1)));
    let mut unfinished = 0u64;
    loop {
        match tokio::time::timeout_at(drain_deadline, set.join_next()).await {
            Ok(Some(r)) => absorb(
                r.context("pair task panicked")?,
                &mut lat,
                &mut delivery,
                &mut errors,
            ),
            Ok(None) => break,
            Err(_) => {
                unfinished = set.len() as u64;
                set.abort_all();
                break;
            }
        }
    }
    let mut result = vec![
        ("mode".into(), "open".into()),
        ("offered_per_s".into(), format!("{rate}")),
    ];
    // Completed pairs over the whole run (launching and draining), never over the launch window
    // alone, so a server that falls behind is not credited with the offered rate.
    let wall = meter.finish(&mut result).max(launch_wall);
    let ok = lat.count();
    let achieved = ok as f64 / wall.as_secs_f64().max(1e-9);
    println!(
        "  pairs: {ok} ok, {} failed, {dropped} dropped (too many in flight), {unfinished} unfinished; {achieved:.1} pairs/s completed; {late_starts} starts > 10 ms late",
        errors.total()
    );
    print_latency(&lat, &mut result);
    print_delivery(&delivery, &mut result);
    errors.print();
    result.push(("pairs_ok".into(), ok.to_string()));
    result.push(("pairs_failed".into(), errors.total().to_string()));
    result.push(("dropped".into(), dropped.to_string()));
    result.push(("unfinished".into(), unfinished.to_string()));
    result.push(("late_starts".into(), late_starts.to_string()));
    result.push(("pairs_per_s".into(), format!("{achieved:.1}")));
    Ok(result)
}

async fn idle(args: &Args, url: &str, pid: Option<u32>, n: u64) -> Result<Vec<(String, String)>> {
    let Some(pid) = pid else {
        bail!("idle mode measures the server's memory: give --server-pid or spawn the server");
    };
    if n > 1_000_000 {
        bail!("--idle is limited to 1,000,000 connections");
    }
    let limit = sys::raise_nofile(n + 1024).context("raising RLIMIT_NOFILE")?;
    if limit < n + 64 {
        bail!("RLIMIT_NOFILE is {limit}, too low for {n} connections (run as root or raise the hard limit)");
    }
    println!("idle: {n} bound connections held {} s, against {url}", args.hold);
    let base_rss = sys::rss_kb(pid).context("cannot read the server's RSS")?;
    let meter = Meter::start(Some(pid));
    let deadline = meter.started + Duration::from_secs_f64(args.max_seconds);
    let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_parallelism.max(1)));
    let mut set: JoinSet<Result<Conn, PairError>> = JoinSet::new();
    let setup_timeout = Duration::from_secs_f64(args.pair_timeout);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        if Instant::now() >= deadline {
            break;
        }
        let url = url.to_owned();
        set.spawn(async move {
            let _permit = permit;
            idle_bound(&url, (Instant::now() + setup_timeout).min(deadline)).await
        });
    }
    let mut conns = Vec::with_capacity(n as usize);
    let mut errors = ErrorTally::default();
    while let Some(r) = set.join_next().await {
        match r.context("connect task panicked")? {
            Ok(c) => conns.push(c),
            Err(e) => errors.add(&e),
        }
    }
    let connect_wall = meter.started.elapsed();
    println!(
        "  {} connections bound in {:.2} s ({} failed)",
        conns.len(),
        connect_wall.as_secs_f64(),
        errors.total()
    );
    tokio::time::sleep(Duration::from_secs_f64(args.hold.clamp(0.0, 3600.0))).await;
    let rss = sys::rss_kb(pid).context("cannot read the server's RSS")?;
    // Are they really alive? Ping a sample.
    let mut alive = 0u64;
    let sample = conns.len().min(100);
    for c in conns.iter_mut().take(sample) {
        c.set_deadline(Instant::now() + Duration::from_secs(5));
        if c.ping().await.is_ok() {
            alive += 1;
        }
    }
    let mut result = vec![
        ("mode".into(), "idle".into()),
        ("connections".into(), conns.len().to_string()),
    ];
    meter.finish(&mut result);
    let per_conn = (rss.saturating_sub(base_rss)) as f64 / (conns.len().max(1) as f64);
    println!(
        "  server RSS: {base_rss} kB before, {rss} kB with {} idle connections → {per_conn:.2} kB per connection; {alive}/{sample} sampled connections answer ping",
        conns.len()
    );
    errors.print();
    result.push(("rss_before_kb".into(), base_rss.to_string()));
    result.push(("rss_kb".into(), rss.to_string()));
    result.push(("kb_per_conn".into(), format!("{per_conn:.2}")));
    result.push(("ping_alive".into(), format!("{alive}/{sample}")));
    result.push(("failed".into(), errors.total().to_string()));
    drop(conns);
    Ok(result)
}

/// `spec` without its `--metrics ADDR` (a second server cannot bind the same address).
fn without_metrics(spec: &ServerSpec) -> ServerSpec {
    let strip = |args: &[String]| {
        let mut out = Vec::new();
        let mut skip_next = false;
        for a in args {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            if a == "--metrics" {
                skip_next = true;
            } else if !a.starts_with("--metrics=") {
                out.push(a.clone());
            }
        }
        out
    };
    match spec {
        ServerSpec::Ours { bin, args } => ServerSpec::Ours {
            bin: bin.clone(),
            args: strip(args),
        },
        ServerSpec::Python { twist, args } => ServerSpec::Python {
            twist: twist.clone(),
            args: strip(args),
        },
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(n) = args.idle {
        // Raise before spawning a server, so it inherits the limit too.
        sys::raise_nofile(n + 1024).context("raising RLIMIT_NOFILE")?;
    }
    let spec = match (&args.spawn_ours, &args.spawn_python) {
        (Some(bin), _) => Some(ServerSpec::Ours {
            bin: bin.clone(),
            args: args.server_args.clone(),
        }),
        (None, Some(twist)) => Some(ServerSpec::Python {
            twist: twist.clone(),
            args: args.server_args.clone(),
        }),
        (None, None) => None,
    };
    let server = spec
        .as_ref()
        .map(ServerProc::start)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("starting the server")?;
    // The control run: the flood goes to a second server of the same kind, so only its CPU
    // competes with the measured one.
    let decoy = match (&spec, args.flood_elsewhere) {
        (Some(spec), true) => Some(
            ServerProc::start(&without_metrics(spec))
                .map_err(anyhow::Error::msg)
                .context("starting the second server")?,
        ),
        (None, true) => bail!("--flood-elsewhere needs --spawn-ours or --spawn-python"),
        _ => None,
    };
    let (url, pid) = match (&server, &args.url) {
        (Some(s), _) => (s.url(), Some(s.pid())),
        (None, Some(u)) => (u.clone(), args.server_pid),
        (None, None) => bail!("give --url (and --server-pid) or --spawn-ours / --spawn-python"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 64))
        .enable_all()
        .build()?;
    wormhole_bench::ws_connect::spread_sources(args.source_ips);
    let flood = if args.flood {
        let f = Flood::start(FloodConfig {
            url: decoy.as_ref().map(ServerProc::url).unwrap_or_else(|| url.clone()),
            source: Some(args.flood_from),
            parallel: args.flood_parallel,
            max_time: Duration::from_secs_f64(args.max_seconds + args.pair_timeout + 5.0),
            max_connections: args.flood_max_connections,
        })?;
        println!(
            "flooding {} from {} with {} connections at once (a second before the measured phase)",
            if decoy.is_some() {
                "a second server"
            } else {
                "the server"
            },
            args.flood_from,
            args.flood_parallel
        );
        std::thread::sleep(Duration::from_secs(1));
        Some(f)
    } else {
        None
    };
    let mut result = rt.block_on(async {
        if let Some(n) = args.idle {
            idle(&args, &url, pid, n).await
        } else if let Some(rate) = args.rate {
            open_loop(&args, &url, pid, rate).await
        } else {
            closed_loop(&args, &url, pid).await
        }
    })?;
    result.push(("flood".into(), args.flood.to_string()));
    if let Some(f) = flood {
        result.extend(f.stop().print());
    }
    if let Some(addr) = &args.scrape_metrics {
        result.extend(rt.block_on(scrape_rejections(addr)));
    }
    let mut line = format!("RESULT label={}", args.label);
    for (k, v) in result {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    drop(server);
    drop(decoy);
    Ok(())
}
