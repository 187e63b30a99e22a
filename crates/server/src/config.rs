//! Command-line options of `wormhole-server mailbox` ([`MailboxArgs`]).
//!
//! The first group mirrors `twist wormhole-mailbox` of server 0.8.0 (docs/protocol.md §1.9); the
//! second group holds our own limits and timers. Only parsing and defaults live here, and the
//! translation of the storage flags into a [`StorageConfig`] ([`MailboxArgs::storage`]).

use std::path::PathBuf;

use crate::storage::StorageConfig;
use crate::storage::sqlite::SyncMode;

/// Options of the mailbox (rendezvous) server.
#[derive(Debug, Clone, clap::Args)]
pub struct MailboxArgs {
    /// Address to listen on. The default `[::]:4000` accepts IPv4 and IPv6.
    #[arg(long, value_name = "ADDR:PORT", default_value = "[::]:4000")]
    pub listen: String,

    /// Channel (state) database; `:memory:` keeps it in memory (nothing survives a restart).
    #[arg(long, value_name = "PATH", default_value = "relay.sqlite")]
    pub channel_db: String,

    /// Keep the state in this PostgreSQL database instead of SQLite
    /// (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`); the schema is created or migrated on
    /// start. Give it a database of its own. Overrides `--channel-db`; `--usage-db` and
    /// `--sync` (SQLite only) are refused with it.
    #[arg(long, value_name = "URL", env = "WORMHOLE_DATABASE", hide_env_values = true,
          conflicts_with_all = ["usage_db", "sync"])]
    pub database: Option<DatabaseUrl>,

    /// With `--database`: also record usage statistics there (tables `usage_*`).
    #[arg(long, requires = "database")]
    pub database_usage: bool,

    /// With `--database`: how long to wait for an unreachable database (at start, and at each
    /// commit) and for another node's lock at start, before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub database_wait: u64,

    /// Record usage statistics in this SQLite database.
    #[arg(long, value_name = "PATH")]
    pub usage_db: Option<PathBuf>,

    /// Round the times recorded in the usage database down to multiples of SECS.
    #[arg(long, value_name = "SECS")]
    pub blur_usage: Option<u64>,

    /// Message of the day, shown by clients in the welcome.
    #[arg(long, value_name = "TEXT")]
    pub motd: Option<String>,

    /// Make every client fail with this message (welcome `error`).
    #[arg(long, value_name = "TEXT")]
    pub signal_error: Option<String>,

    /// Client version to recommend (welcome `current_cli_version`).
    #[arg(long, value_name = "VER")]
    pub advertise_version: Option<String>,

    /// Answer `list` with an empty list of nameplates.
    #[arg(long)]
    pub disallow_list: bool,

    /// Largest accepted WebSocket message (bytes); larger ones close the connection.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_message_size: usize,

    /// Most simultaneous client connections; more are refused with HTTP 503.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Most messages one mailbox may hold; further `add`s get an error.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_mailbox_messages: usize,

    /// Seconds between pruning passes (server 0.8.0: 300).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub prune_interval: f64,

    /// Seconds of inactivity after which a nameplate and mailbox are deleted (0.8.0: 660).
    #[arg(long, value_name = "SECS", default_value_t = 660.0)]
    pub channel_expiration: f64,

    /// Seconds between WebSocket pings to each client.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub ping_interval: f64,

    /// Close a connection that sent nothing (not even a pong) for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    pub idle_timeout: f64,

    /// Close a connection this many seconds after it opened, busy or not (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = 86_400.0)]
    pub max_connection_lifetime: f64,

    /// Most simultaneous WebSocket connections from one client IP address (0: no limit); more
    /// get a welcome `error` and are closed.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// New connections per second one client IP address may open on average, after a burst of
    /// `--max-connections-per-ip` or 64, whichever is more (0: no limit); more get a welcome
    /// `error` and are closed. Without it, a client closing and reopening connections would get a fresh
    /// `--command-burst` each time.
    #[arg(long, value_name = "N", default_value_t = 20.0)]
    pub connections_per_second_per_ip: f64,

    /// Connections over `--connections-per-second-per-ip` held back (1 s, then refused in the
    /// welcome) at once per client IP address; a client that reconnects as soon as it is refused
    /// is slowed to this many attempts per second. Past it, a plain HTTP `429` at once (at least 1).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub held_refusals_per_ip: usize,

    /// Commands per second one connection may send on average (token bucket; 0: no limit);
    /// commands over it get an `error` and are dropped.
    #[arg(long, value_name = "N", default_value_t = 20.0)]
    pub commands_per_second: f64,

    /// Commands one connection may send at once before `--commands-per-second` applies; a
    /// connection refused more than this many (at most 10) times in a row is closed.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub command_burst: u32,

    /// Most connections from one client IP address holding a nameplate (claimed or allocated)
    /// at once (0: no limit); more claims get an `error`. One connection holds at most one
    /// allocation and one claim (the protocol's own rule).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_nameplates_per_ip: usize,

    /// Count clients under the `X-Real-IP` header for the per-address limits (the welcome's
    /// `your-address` uses it either way). Set it behind a front end that sets the header
    /// (deploy/haproxy.cfg does), or every client counts as the front end's address; never
    /// without one, or clients choose their own address.
    #[arg(long)]
    pub trust_x_real_ip: bool,

    /// Ask every new connection for a hashcash proof of work of BITS leading zero bits before
    /// `bind` (the welcome's `permission-required`; 1 to 24, about 2^BITS SHA-1s for the
    /// client: 20 takes well under a second). Clients that do not support it get a welcome
    /// `error`.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u32).range(1..=24))]
    pub require_hashcash: Option<u32>,

    /// With `--require-hashcash`: ask only while more than N connections per second arrive
    /// (averaged over 10 s); below that, connections bind for free.
    #[arg(long, value_name = "N", requires = "require_hashcash")]
    pub hashcash_above_rate: Option<f64>,

    /// Terminate TLS: serve `wss://` on `--listen` with this certificate chain (PEM, leaf
    /// first), instead of `ws://`. Needs `--tls-key`. Both files are read again on `SIGHUP`
    /// (a renewed certificate needs no restart; if the new files are unusable, the old
    /// certificate stays and the error is logged).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve `/metrics` (Prometheus), `/health` and `/ready` on this address (off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,

    /// SQLite durability: `full` fsyncs every commit (survives power loss); `normal`
    /// survives a crash of the server process only.
    #[arg(long, value_enum, default_value = "full")]
    pub sync: SyncMode,

    /// Network I/O threads: tokio workers of the binary (0: one per CPU; 1: a single-threaded
    /// runtime; at most 1024). The protocol engine always has its own thread. With `serve` the
    /// relay shares these threads.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub io_threads: usize,
}

/// A `--database` URL. It may hold a password, so its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl MailboxArgs {
    /// The store the storage flags name: `--database URL` (with `--database-usage`) is
    /// PostgreSQL; otherwise `--channel-db PATH` (with `--usage-db`, `--sync`) is SQLite.
    /// This is the only place outside `storage/` that a backend touches.
    pub fn storage(&self) -> StorageConfig {
        if let Some(url) = &self.database {
            return StorageConfig::Postgres {
                url: url.0.clone(),
                usage: self.database_usage,
                wait: std::time::Duration::from_secs(self.database_wait),
            };
        }
        StorageConfig::Sqlite {
            channel_db: self.channel_db.clone(),
            usage_db: self.usage_db.clone(),
            sync: self.sync,
        }
    }

    /// The defaults, as if no flag was given (handy for tests).
    pub fn defaults() -> Self {
        MailboxArgs {
            listen: "[::]:4000".into(),
            channel_db: "relay.sqlite".into(),
            database: None,
            database_usage: false,
            database_wait: 30,
            usage_db: None,
            blur_usage: None,
            motd: None,
            signal_error: None,
            advertise_version: None,
            disallow_list: false,
            max_message_size: 1 << 20,
            max_connections: 100_000,
            max_mailbox_messages: 256,
            prune_interval: 300.0,
            channel_expiration: 660.0,
            ping_interval: 60.0,
            idle_timeout: 600.0,
            sync: SyncMode::Full,
            io_threads: 0,
            max_connection_lifetime: 86_400.0,
            max_connections_per_ip: 64,
            connections_per_second_per_ip: 20.0,
            held_refusals_per_ip: 256,
            trust_x_real_ip: false,
            commands_per_second: 20.0,
            command_burst: 100,
            max_nameplates_per_ip: 32,
            metrics: None,
            tls_cert: None,
            tls_key: None,
            require_hashcash: None,
            hashcash_above_rate: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MailboxArgs,
    }

    #[test]
    fn parser_defaults_match_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let d = MailboxArgs::defaults();
        assert_eq!(cli.args.listen, d.listen);
        assert_eq!(cli.args.channel_db, d.channel_db);
        assert_eq!(cli.args.max_message_size, d.max_message_size);
        assert_eq!(cli.args.max_connections, d.max_connections);
        assert_eq!(cli.args.max_mailbox_messages, d.max_mailbox_messages);
        assert_eq!(cli.args.prune_interval, d.prune_interval);
        assert_eq!(cli.args.channel_expiration, d.channel_expiration);
        assert_eq!(cli.args.sync, d.sync);
        assert_eq!(cli.args.max_connection_lifetime, d.max_connection_lifetime);
        assert_eq!(cli.args.max_connections_per_ip, d.max_connections_per_ip);
        assert_eq!(cli.args.commands_per_second, d.commands_per_second);
        assert_eq!(
            cli.args.connections_per_second_per_ip,
            d.connections_per_second_per_ip
        );
        assert_eq!(cli.args.held_refusals_per_ip, d.held_refusals_per_ip);
        assert_eq!(cli.args.command_burst, d.command_burst);
        assert_eq!(cli.args.max_nameplates_per_ip, d.max_nameplates_per_ip);
        assert_eq!(cli.args.metrics, d.metrics);
    }

    #[test]
    fn python_flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--channel-db",
            ":memory:",
            "--usage-db",
            "u.sqlite",
            "--blur-usage",
            "3600",
            "--motd",
            "hi",
            "--signal-error",
            "no",
            "--advertise-version",
            "1.0",
            "--disallow-list",
        ])
        .unwrap();
        assert!(cli.args.disallow_list);
        assert_eq!(cli.args.blur_usage, Some(3600));
        assert_eq!(cli.args.motd.as_deref(), Some("hi"));
        let store = cli.args.storage();
        assert!(store.records_usage());
        assert_eq!(
            store,
            StorageConfig::Sqlite {
                channel_db: ":memory:".into(),
                usage_db: Some("u.sqlite".into()),
                sync: SyncMode::Full,
            }
        );
        assert!(!MailboxArgs::defaults().storage().records_usage());
    }

    #[test]
    fn database_flag_selects_postgres_and_refuses_sqlite_only_flags() {
        let url = "postgres://u@127.0.0.1:5/db";
        let cli = Cli::try_parse_from(["x", "--database", url, "--database-usage"]).unwrap();
        assert_eq!(
            cli.args.storage(),
            StorageConfig::Postgres {
                url: url.into(),
                usage: true,
                wait: std::time::Duration::from_secs(30),
            }
        );
        assert!(cli.args.storage().records_usage());
        assert!(
            !format!("{:?}", cli.args.storage()).contains("postgres://"),
            "URL hidden"
        );
        assert!(
            !format!("{:?}", cli.args).contains("postgres://"),
            "URL hidden in the flags' Debug too"
        );
        let over = Cli::try_parse_from(["x", "--channel-db", "a.sqlite", "--database", url]).unwrap();
        assert!(matches!(
            over.args.storage(),
            StorageConfig::Postgres { usage: false, .. }
        ));
        for extra in [["--usage-db", "u.sqlite"], ["--sync", "normal"]] {
            let mut argv = vec!["x", "--database", url];
            argv.extend(extra);
            assert!(Cli::try_parse_from(argv).is_err(), "{extra:?} with --database");
        }
        assert!(Cli::try_parse_from(["x", "--database-usage"]).is_err());
        assert!(Cli::try_parse_from(["x", "--database", url, "--database-wait", "3601"]).is_err());
    }
}
