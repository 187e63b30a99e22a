//! The `wormhole-server` binary: `mailbox` (rendezvous server), `relay` (transit relay), and `serve`
//! (both in one process).
//!
//! Only argument parsing, logging set-up, the operator endpoint's wiring (`--metrics`) and the
//! runtime live here; the servers are the `wormhole_server` and `wormhole_relay` libraries.

#![forbid(unsafe_code)]

use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use wormhole_relay::metrics::RelayMetrics;
use wormhole_server::metrics::MailboxMetrics;
use wormhole_server::ops::{self, Ops};

/// magic-wormhole servers.
#[derive(Debug, Parser)]
#[command(name = "wormhole-server", version, about)]
struct Cli {
    /// Log format on stderr: `text` (human) or `json` (one object per line). `RUST_LOG` picks
    /// the level (default `warn`).
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mailbox (rendezvous) server; clients connect to ws://HOST:PORT/v1.
    Mailbox(wormhole_server::MailboxArgs),
    /// Run the transit relay.
    Relay(RelayCmd),
    /// Run the mailbox server and the transit relay in one process (what a self-hoster runs).
    Serve(ServeArgs),
}

/// `wormhole-server relay`: the relay's flags plus the operator endpoint.
#[derive(Debug, clap::Args)]
struct RelayCmd {
    #[command(flatten)]
    relay: wormhole_relay::RelayArgs,
    /// Serve `/metrics` (Prometheus), `/health` and `/ready` on this address (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
}

/// `wormhole-server serve`: every mailbox flag, plus the relay's flags prefixed `--relay-`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    mailbox: wormhole_server::MailboxArgs,
    #[command(flatten)]
    relay: wormhole_relay::ServeRelayArgs,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Start the operator endpoint if `addr` is given, over these metrics and probes.
async fn start_ops(
    addr: Option<&str>,
    mailbox: Option<(&MailboxMetrics, ops::Probe)>,
    relay: Option<&RelayMetrics>,
) -> anyhow::Result<()> {
    let Some(addr) = addr else { return Ok(()) };
    let mut o = Ops::default();
    if let Some((m, probe)) = mailbox {
        m.register(&mut o.registry);
        o.probes.push(probe);
    }
    if let Some(m) = relay {
        m.register(&mut o.registry);
    }
    ops::start(addr, Arc::new(o)).await?;
    Ok(())
}

async fn mailbox(args: wormhole_server::MailboxArgs, relay: Option<&RelayMetrics>) -> anyhow::Result<()> {
    wormhole_server::rlimit::raise_nofile();
    let metrics = MailboxMetrics::default();
    let server = wormhole_server::MailboxServer::start_with_metrics(&args, metrics.clone())?;
    let listener = wormhole_server::bind(&args.listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    start_ops(args.metrics.as_deref(), Some((&metrics, server.probe())), relay).await?;
    server.serve(listener).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // `--io-threads` sizes the runtime of `mailbox` and `serve` (the relay shares it there);
    // `relay` alone has no such flag and gets tokio's default.
    let io_threads = match &cli.command {
        Command::Mailbox(args) => args.io_threads,
        Command::Serve(args) => args.mailbox.io_threads,
        Command::Relay(_) => 0,
    };
    let runtime = wormhole_server::runtime::build(io_threads)?;
    runtime.block_on(async move {
        match cli.command {
            Command::Mailbox(args) => mailbox(args, None).await?,
            Command::Relay(cmd) => {
                let metrics = RelayMetrics::default();
                start_ops(cmd.metrics.as_deref(), None, Some(&metrics)).await?;
                wormhole_relay::run_with_metrics(cmd.relay, metrics).await?;
            }
            Command::Serve(args) => {
                let relay = args.relay.to_relay_args(args.mailbox.blur_usage);
                let relay_metrics = RelayMetrics::default();
                // Both run until a fatal error; the first error stops the process.
                tokio::try_join!(mailbox(args.mailbox, Some(&relay_metrics)), async {
                    wormhole_relay::run_with_metrics(relay, relay_metrics.clone())
                        .await
                        .map_err(anyhow::Error::from)
                },)?;
            }
        }
        Ok(())
    })
}
