//! [`StorageConfig`]: which backend to use, chosen at run time from the flags.
//!
//! Owns: the list of backends and the one `match` that opens them. Must not: hold backend code
//! (each backend is its own file) or know about flags (`crate::config` builds the value).
//! Adding a backend: a new file beside [`super::sqlite`], a variant here, its arm in
//! [`StorageConfig::open`], and the flag that selects it in `crate::config`.

use std::path::PathBuf;

use super::postgres::PostgresStorage;
use super::sqlite::{SqliteStorage, SyncMode};
use super::{Storage, StorageError};

/// Which store holds the mailbox state, with that store's settings. Its `Debug` never shows
/// a PostgreSQL URL (it may hold a password).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum StorageConfig {
    /// SQLite files (`--channel-db`, `--usage-db`, `--sync`); `:memory:` keeps nothing.
    Sqlite {
        /// The channel database path, or `:memory:`.
        channel_db: String,
        /// The usage database, if usage is recorded.
        usage_db: Option<PathBuf>,
        /// How hard each commit pushes to the disk.
        sync: SyncMode,
    },
    /// A PostgreSQL database (`--database postgres://…`), usage kept in it if `usage`.
    Postgres {
        /// The connection URL (may hold a password: never print it).
        url: String,
        /// Whether usage records are kept (`--database-usage`).
        usage: bool,
        /// How long to wait for an unreachable database (`--database-wait`).
        wait: std::time::Duration,
    },
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Sqlite {
                channel_db,
                usage_db,
                sync,
            } => f
                .debug_struct("Sqlite")
                .field("channel_db", channel_db)
                .field("usage_db", usage_db)
                .field("sync", sync)
                .finish(),
            StorageConfig::Postgres { usage, wait, .. } => f
                .debug_struct("Postgres")
                .field("url", &"(hidden)")
                .field("usage", usage)
                .field("wait", wait)
                .finish(),
        }
    }
}

impl StorageConfig {
    /// Whether the store keeps usage records; without, the core writes none.
    pub fn records_usage(&self) -> bool {
        match self {
            StorageConfig::Sqlite { usage_db, .. } => usage_db.is_some(),
            StorageConfig::Postgres { usage, .. } => *usage,
        }
    }

    /// Open (creating if needed) the configured store.
    pub fn open(&self) -> Result<Box<dyn Storage>, StorageError> {
        match self {
            StorageConfig::Sqlite {
                channel_db,
                usage_db,
                sync,
            } => Ok(Box::new(SqliteStorage::open(
                channel_db,
                usage_db.as_deref(),
                *sync,
            )?)),
            StorageConfig::Postgres { url, usage, wait } => {
                Ok(Box::new(PostgresStorage::open(url, *usage, *wait)?))
            }
        }
    }
}
