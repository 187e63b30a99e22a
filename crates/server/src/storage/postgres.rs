//! PostgreSQL implementation of [`Storage`] (tokio-postgres behind a deadpool connection pool),
//! for one or many mailbox nodes sharing one database.
//!
//! Same promise as the SQLite backend: [`Storage::commit`] returns `Ok` only after PostgreSQL
//! answered the `COMMIT` of the batch's one transaction, so (with the server's default
//! `synchronous_commit = on`) no reply or delivery leaves the engine before its effects are
//! durable. The schema is created and migrated on open (`schema.rs`, versioned in the
//! `wormhole_migrations` table). Give the server a database of its own (shared by its nodes).
//!
//! Several nodes: the store is [`Storage::shared`]. Each batch is one transaction that first
//! takes the channel lock (`pg_advisory_xact_lock`, held until its `COMMIT`), then reads the
//! channels the batch touches ([`Storage::begin`], `read.rs`), and later applies the batch's
//! writes and commits ([`Storage::commit`]). Batches of all nodes are therefore serialized,
//! and each decides on rows no one else can change until it commits: allocation picks among
//! names free in the table (the `(app_id, name)` primary key is the backstop), crowding and
//! reclaiming count the sides every node recorded. Because messages are inserted and
//! committed under the lock, `messages.seq` order is commit order, so a mailbox's messages
//! only ever grow at the end and a subscriber's count of messages sent is a complete
//! cursor. A batch that adds messages `NOTIFY`s their mailboxes in the same transaction (sent
//! at `COMMIT`); `listen.rs` turns them into [`super::Inbound`] notices on every node.
//!
//! The [`Storage`] trait is synchronous and is called from the engine's own thread (and, for
//! `open`, once from the start-up code, which may be inside the binary's runtime). So the
//! backend owns a small tokio runtime of its own (`Worker`): each call is spawned there and
//! the caller blocks on a plain channel for the answer. A batch's transaction lives in one
//! spawned task from `begin` to `commit`, which hand it the writes over a channel. That never
//! nests runtimes and keeps every async type inside this file.
//!
//! Faults: a pooled connection that PostgreSQL closed is replaced on the next call; a database
//! that is down is waited for (up to `--database-wait`, [`DEFAULT_WAIT`]) before a call fails,
//! and meanwhile [`StorageHealth`] says unready. A `COMMIT` whose answer was lost (connection
//! cut at that moment) is ambiguous: each batch records a per-process token in `node_commits`
//! inside its transaction, and after such an error the backend reads the token back, so a
//! batch that did land is reported as committed (and its replies are sent) and one that did
//! not is reported failed (nothing of it was sent; the engine drops its clients).
//!
//! Owns: the runtime, the pool, migrations on open, the batch transaction, the commit token,
//! and the [`Storage`] impl; its parts are `schema.rs` (migrations), `read.rs` (SELECTs),
//! `write.rs` (a batch's statements), `text.rs` (the NUL-safe escape of stored strings) and
//! `listen.rs` (the notice connection). Must not: decide protocol outcomes, or let anything
//! PostgreSQL-shaped out through the trait (errors leave only as the boxed `source` of a
//! [`StorageError`]).

mod listen;
mod read;
mod schema;
mod text;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::{ChannelKeys, InboundSink, Snapshot, Storage, StorageError, StorageHealth, Write};

/// How long a call waits for the database (a connection) before failing, unless
/// `--database-wait` says otherwise: long enough for a PostgreSQL crash recovery or failover.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Connections kept by the pool (the engine uses one at a time; start-up may use another).
const POOL_SIZE: usize = 4;
/// Key of the channel lock every batch transaction takes (any constant, distinct from the
/// migration lock).
const CHANNEL_LOCK: i64 = 0x776f_726d_6368_616e; // "wormchan"

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

/// A batch transaction that is open on the worker (between `begin` and `commit`).
struct OpenBatch {
    /// Hands the task the batch's token and writes (dropping it rolls back).
    writes: tokio::sync::oneshot::Sender<(i64, Vec<Write>)>,
    /// The task's answer to the `COMMIT`.
    done: std::sync::mpsc::Receiver<Result<(), PgError>>,
}

/// Longest wait of a readiness query (`/ready` answers within seconds).
const READY_WAIT: Duration = Duration::from_secs(2);

/// The PostgreSQL store.
pub struct PostgresStorage {
    worker: Worker,
    pool: Pool,
    /// For the notice connection.
    config: tokio_postgres::Config,
    /// How long a call waits for the database.
    wait: Duration,
    usage: bool,
    /// This process's name in `node_commits` and `usage_current` (random per open).
    node: String,
    /// Token of the last batch attempted.
    token: i64,
    /// The batch transaction `begin` opened.
    open: Option<OpenBatch>,
    health: Arc<StorageHealth>,
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
    /// for an unreachable database before failing.
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
        let node = format!("{:016x}", rand::random::<u64>());
        Ok(PostgresStorage {
            worker,
            pool,
            config,
            wait,
            usage,
            node,
            token: 0,
            open: None,
            health: Arc::new(StorageHealth::default()),
        })
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

    /// Start the batch task: a transaction holding the channel lock, with `keys` read.
    fn open_batch(&mut self, keys: ChannelKeys) -> Result<Snapshot, PgError> {
        self.open = None; // a batch still open is rolled back
        let pool = self.pool.clone();
        let wait = self.wait;
        let usage = self.usage;
        let node = self.node.clone();
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel(1);
        let (writes_tx, writes_rx) = tokio::sync::oneshot::channel::<(i64, Vec<Write>)>();
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let rt = self.worker.rt.as_ref().ok_or(PgError::WorkerGone)?;
        rt.spawn(async move {
            let mut client = match connection(&pool, wait).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = read_tx.send(Err(e));
                    return;
                }
            };
            let tx = match locked(&mut client, &keys).await {
                Ok((tx, snapshot)) => {
                    let _ = read_tx.send(Ok(snapshot));
                    tx
                }
                Err(e) => {
                    let _ = read_tx.send(Err(e));
                    return;
                }
            };
            // Dropped sender: the engine gave up on the batch; dropping `tx` rolls back.
            let Ok((token, writes)) = writes_rx.await else {
                return;
            };
            let _ = done_tx.send(apply(tx, &node, token, &writes, usage).await);
        });
        let snapshot = read_rx.recv().unwrap_or(Err(PgError::WorkerGone))?;
        self.open = Some(OpenBatch {
            writes: writes_tx,
            done: done_rx,
        });
        Ok(snapshot)
    }

    /// Commit `batch` in the open batch transaction (opening one if none is).
    fn finish(&mut self, batch: &[Write]) -> Result<(), PgError> {
        if self.open.is_none() {
            self.open_batch(ChannelKeys::default())?;
        }
        let open = self.open.take().ok_or(PgError::WorkerGone)?;
        self.token += 1;
        let token = self.token;
        if open.writes.send((token, batch.to_vec())).is_err() {
            return Err(PgError::WorkerGone);
        }
        match open.done.recv().unwrap_or(Err(PgError::WorkerGone)) {
            Ok(()) => Ok(()),
            // The COMMIT may have landed even though its answer was lost.
            Err(e) => match self.landed(token) {
                Ok(true) => {
                    tracing::warn!("PostgreSQL commit answer lost, but the batch landed: {e}");
                    Ok(())
                }
                Ok(false) | Err(_) => Err(e),
            },
        }
    }
}

/// Open a transaction on `client`, take the channel lock, read `keys`.
async fn locked<'a>(
    client: &'a mut deadpool_postgres::Object,
    keys: &ChannelKeys,
) -> Result<(deadpool_postgres::Transaction<'a>, Snapshot), PgError> {
    let tx = client.transaction().await?;
    let lock = tx.prepare_cached("SELECT pg_advisory_xact_lock($1)").await?;
    tx.execute(&lock, &[&CHANNEL_LOCK]).await?;
    let snapshot = if keys.is_empty() {
        Snapshot::default()
    } else {
        read::read_channels(&tx, keys).await?
    };
    Ok((tx, snapshot))
}

/// Write the token, the batch and its notices in `tx`, and commit.
async fn apply(
    tx: deadpool_postgres::Transaction<'_>,
    node: &str,
    token: i64,
    batch: &[Write],
    usage: bool,
) -> Result<(), PgError> {
    let mut statements = Vec::with_capacity(batch.len() + 2);
    statements.push(write::record_token(node, token, now_secs()));
    let writes = write::without_repeated_touches(batch);
    statements.extend(
        writes
            .into_iter()
            .filter_map(|w| write::statement(w, usage, node)),
    );
    statements.extend(write::notices(batch));
    write::run_all(&tx, statements).await?;
    tx.commit().await?;
    Ok(())
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
        let result = self.finish(batch);
        self.health.set_reachable(result.is_ok());
        result.map_err(|e| StorageError::commit(batch.len(), e))
    }

    fn shared(&self) -> bool {
        true
    }

    fn begin(&mut self, keys: &ChannelKeys) -> Result<Snapshot, StorageError> {
        let result = self.open_batch(keys.clone());
        self.health.set_reachable(result.is_ok());
        result.map_err(StorageError::load)
    }

    fn inbound(&mut self, sink: InboundSink) {
        let Some(rt) = self.worker.rt.as_ref() else {
            return;
        };
        self.health.set_listening(false);
        rt.spawn(listen::run(self.config.clone(), sink, self.health.clone()));
        // Start serving only once notices flow (or report unready after the wait).
        let deadline = std::time::Instant::now() + self.wait;
        while !self.health.ready() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn health(&self) -> Arc<StorageHealth> {
        self.health.clone()
    }
}
