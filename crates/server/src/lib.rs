//! `wormhole-server`: the magic-wormhole mailbox (rendezvous) server.
//!
//! Run it with [`run_mailbox`] (binds `--listen`, prints `listening on ADDR` to stderr, serves
//! until a fatal error), or, in tests, bind your own listener and call [`serve_mailbox`].
//! See `crates/server/README.md` for the flags and the durability argument.
//!
//! Layout: [`config`] (flags), [`mailbox`] (protocol, connections, engine), [`storage`]
//! (the `Storage` trait in the core's terms, the backend chosen at run time, SQLite), [`rlimit`] (file-descriptor limit),
//! [`runtime`] (the binary's tokio runtime, sized by `--io-threads`).
//! No `unsafe` anywhere in this crate (`forbid`): system calls go through safe wrappers.

#![forbid(unsafe_code)]

pub mod config;
pub mod mailbox;
pub mod metrics;
pub mod ops;
pub mod rlimit;
pub mod runtime;
pub mod storage;

pub use config::MailboxArgs;
pub use mailbox::server::{MailboxServer, bind};

use tokio::net::TcpListener;

/// Errors that stop the mailbox server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address could not be resolved or bound. Check `--listen` and that the port
    /// is free.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened, read or written. Check `--channel-db`/`--usage-db`,
    /// disk space and permissions.
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    /// A flag has an unusable value; fix the flag.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// The TLS certificate or key (`--tls-cert`, `--tls-key`) cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] mailbox::tls::TlsConfigError),
    /// The engine thread could not be started (out of memory or threads).
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
    /// The engine thread ended unexpectedly (a bug); restart the server.
    #[error("the mailbox engine stopped unexpectedly")]
    EngineGone,
}

/// Serve the mailbox protocol on an already-bound listener until a fatal error.
pub async fn serve_mailbox(listener: TcpListener, args: &MailboxArgs) -> Result<(), ServerError> {
    MailboxServer::start(args)?.serve(listener).await
}

/// Run the mailbox server as `wormhole-server mailbox` does: raise the file-descriptor limit,
/// open the databases, bind `--listen`, print `listening on ADDR` on stderr, and serve.
pub async fn run_mailbox(args: MailboxArgs) -> Result<(), ServerError> {
    rlimit::raise_nofile();
    let server = MailboxServer::start(&args)?;
    let listener = bind(&args.listen).await?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: args.listen.clone(),
        source,
    })?;
    eprintln!("listening on {local}");
    server.serve(listener).await
}
