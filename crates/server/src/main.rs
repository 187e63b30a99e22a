//! The `wormhole-server` binary: `mailbox` (rendezvous server) and `relay` (transit relay).
//!
//! Only argument parsing, logging set-up and the runtime live here; the servers are the
//! `wormhole_server` and `wormhole_relay` libraries.

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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Mailbox(args) => wormhole_server::run_mailbox(args).await?,
            Command::Relay(args) => wormhole_relay::run(args).await?,
        }
        Ok(())
    })
}
