//! The `wormhole-server` binary: `mailbox` (rendezvous server), `relay` (transit relay), and `serve`
//! (both in one process).
//!
//! Only argument parsing, logging set-up and the runtime live here; the servers are the
//! `wormhole_server` and `wormhole_relay` libraries.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// magic-wormhole servers.
#[derive(Debug, Parser)]
#[command(name = "wormhole-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mailbox (rendezvous) server; clients connect to ws://HOST:PORT/v1.
    Mailbox(wormhole_server::MailboxArgs),
    /// Run the transit relay.
    Relay(wormhole_relay::RelayArgs),
    /// Run the mailbox server and the transit relay in one process (what a self-hoster runs).
    Serve(ServeArgs),
}

/// `wormhole-server serve`: every mailbox flag, plus the relay's flags prefixed `--relay-`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    mailbox: wormhole_server::MailboxArgs,
    #[command(flatten)]
    relay: wormhole_relay::ServeRelayArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
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
            Command::Mailbox(args) => wormhole_server::run_mailbox(args).await?,
            Command::Relay(args) => wormhole_relay::run(args).await?,
            Command::Serve(args) => {
                let relay = args.relay.to_relay_args(args.mailbox.blur_usage);
                // Both run until a fatal error; the first error stops the process.
                tokio::try_join!(
                    async {
                        wormhole_server::run_mailbox(args.mailbox)
                            .await
                            .map_err(anyhow::Error::from)
                    },
                    async { wormhole_relay::run(relay).await.map_err(anyhow::Error::from) },
                )?;
            }
        }
        Ok(())
    })
}
