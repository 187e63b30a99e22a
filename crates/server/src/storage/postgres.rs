//! PostgreSQL implementation of [`Storage`] (tokio-postgres behind a deadpool connection pool).
//!
//! Same promise as the SQLite backend: [`Storage::commit`] returns `Ok` only after PostgreSQL
//! answered the `COMMIT` of the batch's one transaction, so (with the server's default
//! `synchronous_commit = on`) no reply or delivery leaves the engine before its effects are
//! durable. The schema is created and migrated on open (`schema.rs`, versioned in the
//! `wormhole_migrations` table). Give the server a database of its own.
//!
//! The [`Storage`] trait is synchronous and is called from the engine's own thread (and, for
//! `open`/`load`, once from the start-up code, which may be inside the binary's runtime). So
//! the backend owns a small tokio runtime of its own (`Worker`): each call is spawned there
//! and the caller blocks on a plain channel for the answer. That never nests runtimes and
//! keeps every async type inside this file.
//!
//! Faults: a pooled connection that PostgreSQL closed is replaced on the next call; a database
//! that is down is waited for (up to `--database-wait`, [`DEFAULT_WAIT`]) before a call fails. A `COMMIT` whose
//! answer was lost (connection cut at that moment) is ambiguous: each batch records a
//! per-process token in `node_commits` inside its transaction, and when the engine retries the
//! same batch after such an error the backend first reads the token back, so a batch that did
//! land is not applied twice (no duplicated message).
//!
//! Owns: the runtime, the pool, migrations on open, the commit token, and the [`Storage`]
//! impl; its parts are `schema.rs` (migrations), `read.rs` (SELECTs), `write.rs` (a batch's
//! statements), `text.rs` (the NUL-safe escape of stored strings) and `lock.rs` (the
//! single-node guard). Must not: decide protocol outcomes, or let anything PostgreSQL-shaped out
//! through the trait (errors leave only as the boxed `source` of a [`StorageError`]).

mod lock;
mod read;
mod schema;
mod text;
mod write;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{Snapshot, Storage, StorageError, Write};

/// How long a call waits for the database (a connection, the node lock) before failing, unless
/// `--database-wait` says otherwise: long enough for a PostgreSQL crash recovery or failover.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Connections kept by the pool (the engine uses one at a time; start-up may use another).
const POOL_SIZE: usize = 4;

/// Errors of the PostgreSQL backend (the `source` of a [`StorageError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// PostgreSQL refused a statement or the connection failed.
    #[error("{}", sql_message(.0))]
    Sql(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("no database connection within {secs} s: {source}")]
    Pool {
        /// How long we waited.
        secs: u64,
        /// The last failure.
        source: deadpool_postgres::PoolError,
    },
    /// The URL is not a PostgreSQL connection string.
    #[error("not a PostgreSQL URL (expected postgres://USER@HOST:PORT/DB): {0}")]
    Url(tokio_postgres::Error),
    /// The pool could not be built.
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    /// The backend's own runtime could not start.
    #[error("cannot start the PostgreSQL runtime: {0}")]
    Runtime(std::io::Error),
    /// The backend's runtime dropped a call (it is shutting down).
    #[error("the PostgreSQL worker stopped")]
    WorkerGone,
    /// Another mailbox node holds this database (one node per database for now).
    #[error(
        "another mailbox node is using this database (one node per database is supported; \
         waited {secs} s for it to stop)"
    )]
    InUse {
        /// How long we waited.
        secs: u64,
    },
    /// The database was migrated by a newer server (see [`StorageError::Version`]).
    #[error("database schema version {found} is newer than this server's")]
    TooNew {
        /// The version found.
        found: i64,
    },
}

/// tokio-postgres says only "db error" at the top; show PostgreSQL's own message and code.
fn sql_message(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("PostgreSQL: {} (SQLSTATE {})", db.message(), db.code().code()),
        (None, Some(src)) => format!("{e}: {src}"),
        (None, None) => e.to_string(),
    }
}

/// The backend's runtime: one worker thread that runs every database future.
struct Worker {
    rt: Option<tokio::runtime::Runtime>,
}

impl Worker {
    fn start() -> Result<Self, PgError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(PgError::Runtime)?;
        Ok(Worker { rt: Some(rt) })
    }

    /// Run `fut` on the worker and wait for its answer (from any thread, async or not).
    fn run<T, F>(&self, fut: F) -> Result<T, PgError>
    where
        F: Future<Output = Result<T, PgError>> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self.rt.as_ref().ok_or(PgError::WorkerGone)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or(Err(PgError::WorkerGone))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Never blocks, so dropping is fine from inside another runtime too.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Seconds since the epoch (for the bookkeeping columns).
fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A connection from the pool, waiting up to `wait` for the database to be up.
async fn connection(pool: &Pool, wait: Duration) -> Result<deadpool_postgres::Object, PgError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match pool.get().await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(PgError::Pool {
                    secs: wait.as_secs(),
                    source: e,
                });
            }
            Err(e) => {
                tracing::warn!("PostgreSQL not reachable, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Longest wait of a readiness query (`/ready` answers within seconds).
const READY_WAIT: Duration = Duration::from_secs(2);

/// The PostgreSQL store.
pub struct PostgresStorage {
    worker: Worker,
    pool: Pool,
    /// For re-taking the node lock.
    config: tokio_postgres::Config,
    /// The single-node guard (`lock.rs`); `None` after its connection was lost and until the
    /// next commit takes it again.
    lock: Option<lock::NodeLock>,
    /// How long a call waits for the database.
    wait: Duration,
    usage: bool,
    /// This process's name in `node_commits` (random per open).
    node: String,
    /// Token of the last batch attempted.
    token: i64,
    /// A batch whose `COMMIT` failed: its token and writes, until we know whether it landed.
    uncertain: Option<(i64, Vec<Write>)>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("node", &self.node)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

/// What the operator sees for the database in errors: host, port and name, never a password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default)");
    format!("PostgreSQL database {db:?} at {}:{port}", hosts.join(","))
}

impl PostgresStorage {
    /// Connect to `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`), create or migrate the
    /// schema, and keep usage records there when `usage` is set. Every call waits up to `wait`
    /// for an unreachable database (and, at open, for another node's lock) before failing.
    pub fn open(url: &str, usage: bool, wait: Duration) -> Result<Self, StorageError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StorageError::open("PostgreSQL database", PgError::Url(e)))?;
        let what = describe(&config);
        let fail = |e: PgError| StorageError::open(what.clone(), e);
        let worker = Worker::start().map_err(fail)?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = worker
            .run(async move {
                Ok(Pool::builder(manager)
                    .max_size(POOL_SIZE)
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .build()?)
            })
            .map_err(fail)?;
        let now = now_secs();
        let p = pool.clone();
        let migrated = worker.run(async move {
            let mut client = connection(&p, wait).await?;
            schema::migrate(&mut client, now).await
        });
        match migrated {
            Ok(_) => {}
            Err(PgError::TooNew { found }) => {
                return Err(StorageError::Version {
                    db: "postgres",
                    version: found,
                    expected: schema::latest(),
                });
            }
            Err(e) => return Err(fail(e)),
        }
        let node_lock = worker.run(lock::take(config.clone(), wait)).map_err(fail)?;
        let node = format!("{:016x}", rand::random::<u64>());
        Ok(PostgresStorage {
            worker,
            pool,
            config,
            lock: Some(node_lock),
            wait,
            usage,
            node,
            token: 0,
            uncertain: None,
        })
    }

    /// Make sure this node holds the node lock before it writes (re-taken after a reconnect).
    fn hold_lock(&mut self) -> Result<(), PgError> {
        if self.lock.as_ref().is_some_and(|l| !l.is_lost()) {
            return Ok(());
        }
        self.lock = None;
        tracing::warn!("PostgreSQL node lock lost (connection closed); taking it again");
        self.lock = Some(self.worker.run(lock::take(self.config.clone(), self.wait))?);
        Ok(())
    }

    /// After a failed commit: did batch `token` land after all?
    fn landed(&self, token: i64) -> Result<bool, PgError> {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let wait = self.wait;
        self.worker.run(async move {
            let client = connection(&pool, wait).await?;
            Ok(read::committed_token(&client, &node).await? >= token)
        })
    }

    fn write(&self, token: i64, batch: Vec<Write>) -> Result<(), PgError> {
        let pool = self.pool.clone();
        let node = self.node.clone();
        let usage = self.usage;
        let wait = self.wait;
        let now = now_secs();
        self.worker.run(async move {
            let mut statements = Vec::with_capacity(batch.len() + 1);
            statements.push(write::record_token(&node, token, now));
            statements.extend(batch.iter().filter_map(|w| write::statement(w, usage, &node)));
            let mut client = connection(&pool, wait).await?;
            let tx = client.transaction().await?;
            write::run_all(&tx, statements).await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

impl Storage for PostgresStorage {
    fn load(&mut self) -> Result<Snapshot, StorageError> {
        let pool = self.pool.clone();
        let wait = self.wait;
        self.worker
            .run(async move {
                let mut client = connection(&pool, wait).await?;
                read::read_snapshot(&mut client).await
            })
            .map_err(StorageError::load)
    }

    fn ready(&mut self) -> Result<(), StorageError> {
        let pool = self.pool.clone();
        let wait = self.wait.min(READY_WAIT);
        self.worker
            .run(async move {
                let client = connection(&pool, wait).await?;
                client.simple_query("SELECT 1").await?;
                Ok(())
            })
            .map_err(StorageError::unreachable)
    }

    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.hold_lock()
            .map_err(|e| StorageError::commit(batch.len(), e))?;
        if let Some((token, writes)) = self.uncertain.take() {
            match self.landed(token) {
                Ok(true) if writes == batch => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    self.uncertain = Some((token, writes));
                    return Err(StorageError::commit(batch.len(), e));
                }
            }
        }
        self.token += 1;
        let token = self.token;
        self.write(token, batch.to_vec()).map_err(|e| {
            self.uncertain = Some((token, batch.to_vec()));
            StorageError::commit(batch.len(), e)
        })
    }
}
