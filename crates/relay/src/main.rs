//! The standalone `wormhole-relay` binary: the same relay as `wormhole-server relay`, for deployments
//! and benchmarks that want only the transit relay.
//!
//! Owns: argument parsing, logging set-up and the tokio runtime. Must not: hold relay logic.

#![forbid(unsafe_code)]

use clap::Parser;

/// magic-wormhole transit relay (TCP and WebSocket).
#[derive(Debug, Parser)]
#[command(name = "wormhole-relay", version)]
struct Cli {
    #[command(flatten)]
    relay: wormhole_relay::RelayArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wormhole-relay: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wormhole_relay::run(cli.relay)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wormhole-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
