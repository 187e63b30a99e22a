//! `wormhole-relay`: the magic-wormhole transit relay server (TCP and WebSocket), byte-compatible with
//! magic-wormhole-transit-relay 0.5 (docs/protocol.md §4.6).
//!
//! Owns: the command-line surface (`RelayArgs`, used by `wormhole-server relay` and by the
//! `wormhole-relay` binary), the error type, and the entry points [`run`] (bind and serve from flags)
//! and [`serve`] (serve on listeners the caller already bound, for tests and `wormhole-server serve`).
//! Must not: hold protocol logic itself; that lives in the sans-IO modules `handshake`, `registry` and
//! `usage`, driven by `server`.

#![forbid(unsafe_code)]

pub mod config;
pub mod handshake;
pub mod lowat;
pub mod metrics;
pub mod registry;
mod server;
pub mod splice;
pub mod stream;
pub mod usage;
pub mod usage_sink;
pub mod zero_copy;

use std::path::PathBuf;
use std::time::Duration;

pub use config::{Limits, bind, parse_listen};
pub use server::serve;
pub use usage_sink::UsageSink;

/// Default `--handshake-timeout`: seconds a new connection has to send its request.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 20;
/// Default `--max-wait`: seconds a connection may wait for its partner. Generous, because some clients
/// (wormhole-william's sender) connect to the relay before the receiving human has accepted the offer.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 900;

/// Command-line options of `wormhole-server relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// TCP address to listen on: `ADDR:PORT`, `PORT`, or Twisted's `tcp:PORT[:interface=ADDR]`.
    /// `[::]` also accepts IPv4.
    #[arg(
        long,
        short = 'p',
        visible_alias = "port",
        default_value = "[::]:4001",
        value_name = "ADDR:PORT"
    )]
    pub listen: String,

    /// Also accept WebSocket clients (BINARY messages; first message = the request) on this address.
    #[arg(long, short = 'w', value_name = "ADDR:PORT")]
    pub websocket: Option<String>,

    /// Accepted for compatibility with `twist transitrelay -u/--websocket-url` and ignored: our WebSocket
    /// listener accepts any URL path.
    #[arg(long, short = 'u', value_name = "URL", hide = true)]
    pub websocket_url: Option<String>,

    /// Record one row per finished connection in this SQLite file (created if missing; schema of
    /// magic-wormhole-transit-relay).
    #[arg(long, value_name = "PATH")]
    pub usage_db: Option<PathBuf>,

    /// Round recorded start times down to this many seconds and byte counts up to coarse buckets.
    #[arg(long, value_name = "SECONDS")]
    pub blur_usage: Option<u64>,

    /// Write one JSON line per finished connection to this (inherited) file descriptor.
    #[arg(long, value_name = "FD")]
    pub log_fd: Option<i32>,

    /// Most concurrent client connections (handshaking, waiting or relaying); more are closed at once.
    #[arg(long, default_value_t = Limits::default().max_connections, value_name = "N")]
    pub max_connections: usize,

    /// Most concurrent connections from one IP address (0: no per-address limit).
    #[arg(long, default_value_t = Limits::default().max_connections_per_ip, value_name = "N")]
    pub max_connections_per_ip: usize,

    /// Seconds a new connection has to send its request.
    #[arg(long, default_value_t = DEFAULT_HANDSHAKE_TIMEOUT_SECS, value_name = "SECONDS")]
    pub handshake_timeout: u64,

    /// Seconds a connection may wait for its partner before it is closed (0: wait forever).
    #[arg(long, default_value_t = DEFAULT_MAX_WAIT_SECS, value_name = "SECONDS")]
    pub max_wait: u64,

    /// Close a pair once it has carried this many bytes, both directions together (default: no limit).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,

    /// Close a pair this many seconds after it was paired (default: no limit).
    #[arg(long, value_name = "SECONDS")]
    pub max_time: Option<u64>,

    /// Copy buffer per direction of a relaying pair, in bytes (4 KiB to 16 MiB). Idle pairs hold none.
    #[arg(long, default_value_t = splice::DEFAULT_BUFFER_SIZE, value_name = "BYTES",
          value_parser = clap::value_parser!(usize))]
    pub buffer_size: usize,

    /// Relay TCP pairs through the copy loop instead of `splice(2)` (for comparison benchmarks).
    #[arg(long)]
    pub no_splice: bool,
}

impl RelayArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip,
            handshake_timeout: Duration::from_secs(self.handshake_timeout.max(1)),
            max_wait: (self.max_wait > 0).then(|| Duration::from_secs(self.max_wait)),
            max_bytes: self.max_bytes,
            max_time: self.max_time.map(Duration::from_secs),
            buffer_size: self
                .buffer_size
                .clamp(splice::MIN_BUFFER_SIZE, splice::MAX_BUFFER_SIZE),
            zero_copy: !self.no_splice,
            ..Limits::default()
        }
    }

    /// Open the usage backends these flags ask for and build the relay configuration.
    pub fn config(&self) -> Result<RelayConfig, RelayError> {
        let db = self
            .usage_db
            .as_deref()
            .map(usage_sink::open_usage_db)
            .transpose()?;
        let log = self.log_fd.map(usage_sink::open_log_fd).transpose()?;
        Ok(RelayConfig {
            limits: self.limits(),
            usage: UsageSink::start(db, log)?,
            blur_usage: self.blur_usage.filter(|&b| b > 0),
            metrics: metrics::RelayMetrics::default(),
        })
    }
}

/// The relay's options inside `wormhole-server serve` (mailbox and relay in one process): the same
/// settings as [`RelayArgs`], named `--relay-*` so they cannot clash with the mailbox's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeRelayArgs {
    /// Transit relay TCP address (`ADDR:PORT`, `PORT` or `tcp:PORT[:interface=ADDR]`); `[::]` also
    /// accepts IPv4.
    #[arg(long, default_value = "[::]:4001", value_name = "ADDR:PORT")]
    pub relay_listen: String,

    /// Also accept WebSocket relay clients on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub relay_websocket: Option<String>,

    /// Record one row per finished relay connection in this SQLite file (not the mailbox's usage DB:
    /// the schemas differ).
    #[arg(long, value_name = "PATH")]
    pub relay_usage_db: Option<PathBuf>,

    /// Write one JSON line per finished relay connection to this file descriptor.
    #[arg(long, value_name = "FD")]
    pub relay_log_fd: Option<i32>,

    /// Most concurrent relay connections.
    #[arg(long, default_value_t = Limits::default().max_connections, value_name = "N")]
    pub relay_max_connections: usize,

    /// Most concurrent relay connections from one IP address (0: no per-address limit).
    #[arg(long, default_value_t = Limits::default().max_connections_per_ip, value_name = "N")]
    pub relay_max_connections_per_ip: usize,

    /// Seconds a relay connection may wait for its partner (0: forever).
    #[arg(long, default_value_t = DEFAULT_MAX_WAIT_SECS, value_name = "SECONDS")]
    pub relay_max_wait: u64,

    /// Close a relayed pair after this many bytes, both directions together.
    #[arg(long, value_name = "BYTES")]
    pub relay_max_bytes: Option<u64>,

    /// Close a relayed pair this many seconds after it was paired.
    #[arg(long, value_name = "SECONDS")]
    pub relay_max_time: Option<u64>,
}

impl ServeRelayArgs {
    /// The equivalent `wormhole-server relay` options; `blur_usage` is shared with the mailbox.
    pub fn to_relay_args(&self, blur_usage: Option<u64>) -> RelayArgs {
        RelayArgs {
            listen: self.relay_listen.clone(),
            websocket: self.relay_websocket.clone(),
            websocket_url: None,
            usage_db: self.relay_usage_db.clone(),
            blur_usage,
            log_fd: self.relay_log_fd,
            max_connections: self.relay_max_connections,
            max_connections_per_ip: self.relay_max_connections_per_ip,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            max_wait: self.relay_max_wait,
            max_bytes: self.relay_max_bytes,
            max_time: self.relay_max_time,
            buffer_size: splice::DEFAULT_BUFFER_SIZE,
            no_splice: false,
        }
    }
}

/// Everything a running relay needs besides its listeners.
#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    /// Limits of our own.
    pub limits: Limits,
    /// Where usage records go.
    pub usage: UsageSink,
    /// `--blur-usage` seconds.
    pub blur_usage: Option<u64>,
    /// Where the relay counts what it does.
    pub metrics: metrics::RelayMetrics,
}

/// Errors that stop the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Could not bind a listener: pick a free port, or run with the right to bind it.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A listen address could not be understood: give `ADDR:PORT`, `PORT` or `tcp:PORT[:interface=ADDR]`.
    #[error("bad listen address {addr:?}: expected ADDR:PORT, PORT or tcp:PORT[:interface=ADDR]")]
    BadAddress {
        /// What was given.
        addr: String,
    },
    /// A listener stopped working: check the system's socket limits and restart.
    #[error("listener failed: {0}")]
    Accept(std::io::Error),
    /// The usage database could not be opened or created: check the path and its permissions.
    #[error("cannot use usage database {path:?}: {source}")]
    UsageDb {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The usage database has a schema version we do not know: point `--usage-db` at another file.
    #[error("usage database {path:?} has schema version {version}; only version 1 is supported")]
    UsageDbVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: i64,
    },
    /// `--log-fd` does not name an open file descriptor: start the relay with that descriptor open.
    #[error("cannot write usage log to file descriptor {fd}: {source}")]
    LogFd {
        /// The descriptor.
        fd: i32,
        /// The cause.
        source: std::io::Error,
    },
    /// The usage writer thread could not start: the system is out of resources.
    #[error("cannot start the usage writer thread: {0}")]
    Thread(std::io::Error),
}

/// Bind the listeners named by `args` and run the relay until the process is stopped.
pub async fn run(args: RelayArgs) -> Result<(), RelayError> {
    run_with_metrics(args, metrics::RelayMetrics::default()).await
}

/// [`run`], counting into `metrics`.
pub async fn run_with_metrics(args: RelayArgs, metrics: metrics::RelayMetrics) -> Result<(), RelayError> {
    let tcp = bind(parse_listen(&args.listen)?)?;
    let websocket = args
        .websocket
        .as_deref()
        .map(|a| parse_listen(a).and_then(bind))
        .transpose()?;
    let mut config = args.config()?;
    config.metrics = metrics;
    serve(config, tcp, websocket).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Relay {
        #[command(flatten)]
        relay: RelayArgs,
    }

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        relay: ServeRelayArgs,
    }

    #[test]
    fn flags_are_consistent() {
        Relay::command().debug_assert();
        Serve::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a = Relay::parse_from(["relay"]).relay;
        assert_eq!(a.listen, "[::]:4001");
        let l = a.limits();
        assert_eq!(l.max_wait, Some(Duration::from_secs(DEFAULT_MAX_WAIT_SECS)));
        assert_eq!(l.max_bytes, None);
        assert_eq!(l.max_time, None);
        let l = Relay::parse_from(["relay", "--max-wait", "0", "--max-bytes", "5"])
            .relay
            .limits();
        assert_eq!((l.max_wait, l.max_bytes), (None, Some(5)));
    }

    #[test]
    fn serve_flags_map_to_relay_flags() {
        let s = Serve::parse_from([
            "serve",
            "--relay-listen",
            "127.0.0.1:5001",
            "--relay-websocket",
            "127.0.0.1:5002",
            "--relay-max-time",
            "60",
        ])
        .relay;
        let r = s.to_relay_args(Some(3600));
        assert_eq!(r.listen, "127.0.0.1:5001");
        assert_eq!(r.websocket.as_deref(), Some("127.0.0.1:5002"));
        assert_eq!(r.blur_usage, Some(3600));
        assert_eq!(r.max_time, Some(60));
        assert_eq!(r.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT_SECS);
    }
}
