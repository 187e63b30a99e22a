//! `wormhole-relay`: the magic-wormhole transit relay server (TCP and WebSocket).
//!
//! INTERFACE STUB: `RelayArgs` and `run` are what the `wormhole-server` binary calls.

/// Command-line options of `wormhole-server relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// TCP address to listen on.
    #[arg(long, default_value = "[::]:4001")]
    pub listen: String,
}

/// Errors that stop the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Could not bind a listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Run the relay until the process is stopped.
pub async fn run(_args: RelayArgs) -> Result<(), RelayError> {
    unimplemented!("stub")
}
