//! SQLite implementation of [`Storage`] (rusqlite, WAL journal).
//!
//! The channel DB uses the tables and columns of the Python server 0.8.0 (`version` = 1), so the
//! files stay readable by the same tools; only the indexes differ (see `schema.rs`). The optional
//! usage DB (`version` = 2) is ATTACHed to the same connection as schema `usage`, so one `COMMIT`
//! covers both.
//!
//! Durability: the journal is WAL and `synchronous` is FULL by default, so a `COMMIT` that
//! returned has been fsynced to the WAL and survives a process crash and a power loss.
//! With [`SyncMode::Normal`] the WAL is only fsynced at checkpoints: a committed transaction
//! still survives a crash of this process (it is in the OS page cache), but the last
//! transactions may roll back after a power loss or kernel crash.
//!
//! WAL checkpoints run on a background connection every 500 ms instead of inside a commit, so
//! a commit never pays for copying the WAL back into the database file.
//!
//! The core names nameplates by `(app_id, name)`; the 0.8.0 tables key them by an integer
//! `nameplates.id`, which this backend assigns and remembers (`ids.rs`). rusqlite errors leave
//! this file only as the boxed `source` of a [`StorageError`].
//!
//! Owns: opening the files, the connection, the checkpointer thread and the [`Storage`] impl;
//! its parts are `schema.rs` (tables), `read.rs` (start-up reads), `write.rs` (a batch's
//! statements) and `ids.rs` (nameplate keys). Must not: decide protocol outcomes, or let
//! anything SQLite-shaped out through the trait.

mod ids;
mod read;
mod schema;
mod write;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension};

use self::ids::NameplateIds;
use self::read::{read_ids, read_snapshot};
use self::schema::{CHANNEL_SCHEMA, USAGE_SCHEMA};
use self::write::write_batch;
use super::{Snapshot, Storage, StorageError, Write};

/// How hard each commit pushes data to the disk (SQLite `PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum SyncMode {
    /// fsync the WAL at every commit: survives process crashes and power loss.
    Full,
    /// fsync only at checkpoints: survives process crashes, not power loss.
    Normal,
}

/// The SQLite store: one connection, channel DB as `main`, usage DB (if any) as `usage`.
pub struct SqliteStorage {
    conn: Connection,
    has_usage: bool,
    /// `(app_id, name)` → `nameplates.id` of the committed rows.
    ids: NameplateIds,
    /// Set to stop the background checkpointer.
    stop: Arc<AtomicBool>,
    /// The channel DB file (`None` for `:memory:`), checked by [`Storage::ready`].
    path: Option<std::path::PathBuf>,
}

impl Drop for SqliteStorage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checkpoint the WAL from a second connection every [`CHECKPOINT_EVERY`], so the committing
/// thread never stalls on a checkpoint (passive checkpoints never block the writer).
fn spawn_checkpointer(channel_db: &str, usage_db: Option<&Path>, stop: Arc<AtomicBool>) {
    let channel_db = channel_db.to_owned();
    let usage_db = usage_db.map(Path::to_path_buf);
    let run = move || -> rusqlite::Result<()> {
        let conn = Connection::open(&channel_db)?;
        conn.busy_timeout(std::time::Duration::from_secs(1))?;
        if let Some(u) = &usage_db {
            conn.execute("ATTACH DATABASE ?1 AS usage", [u.to_string_lossy()])?;
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(CHECKPOINT_EVERY);
            let _: (i64, i64, i64) = conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            if usage_db.is_some() {
                let _: (i64, i64, i64) = conn.query_row("PRAGMA usage.wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            }
        }
        Ok(())
    };
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            if let Err(e) = run() {
                tracing::warn!("WAL checkpointer stopped: {e}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the WAL checkpointer: {e}");
    }
}

/// Period of the background WAL checkpoint.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("has_usage", &self.has_usage)
            .finish_non_exhaustive()
    }
}

/// Read (or create) the one-row `version` table of `schema` and check it.
fn check_version(
    conn: &Connection,
    schema: &str,
    db: &'static str,
    expected: i64,
) -> Result<(), StorageError> {
    let what = || format!("{db} database");
    let sql = format!("SELECT `version` FROM {schema}.`version` LIMIT 1");
    let found: Option<i64> = conn
        .query_row(&sql, [], |r| r.get(0))
        .optional()
        .map_err(|e| StorageError::open(what(), e))?;
    match found {
        None => {
            conn.execute(
                &format!("INSERT INTO {schema}.`version` (`version`) VALUES (?1)"),
                [expected],
            )
            .map_err(|e| StorageError::open(what(), e))?;
            Ok(())
        }
        Some(v) if v == expected => Ok(()),
        Some(version) => Err(StorageError::Version {
            db,
            version,
            expected,
        }),
    }
}

impl SqliteStorage {
    /// Open (creating if needed) the channel DB at `channel_db` (`:memory:` allowed) and the
    /// optional usage DB.
    pub fn open(channel_db: &str, usage_db: Option<&Path>, sync: SyncMode) -> Result<Self, StorageError> {
        let channel = |e| StorageError::open(format!("channel database {channel_db:?}"), e);
        let conn = Connection::open(channel_db).map_err(channel)?;
        let sync_sql = match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(channel)?;
        set_up(&conn, "main", sync_sql, CHANNEL_SCHEMA).map_err(channel)?;
        check_version(&conn, "main", "channel", 1)?;
        let has_usage = if let Some(path) = usage_db {
            let usage = |e| StorageError::open(format!("usage database {:?}", path.display()), e);
            conn.execute("ATTACH DATABASE ?1 AS usage", [path.to_string_lossy()])
                .map_err(usage)?;
            set_up(&conn, "usage", sync_sql, USAGE_SCHEMA).map_err(usage)?;
            check_version(&conn, "usage", "usage", 2)?;
            true
        } else {
            false
        };
        let ids = read_ids(&conn).map_err(channel)?;
        let stop = Arc::new(AtomicBool::new(false));
        if channel_db != ":memory:" && !channel_db.is_empty() {
            // Checkpoints move to a background connection (see `spawn_checkpointer`).
            conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
                .map_err(channel)?;
            spawn_checkpointer(channel_db, usage_db, stop.clone());
        }
        let path = (channel_db != ":memory:" && !channel_db.is_empty()).then(|| channel_db.into());
        Ok(Self {
            conn,
            has_usage,
            ids,
            stop,
            path,
        })
    }
}

/// Put `schema` in WAL mode with the given `synchronous` level and create its tables.
fn set_up(conn: &Connection, schema: &str, sync_sql: &str, tables: &str) -> rusqlite::Result<()> {
    // `journal_mode` answers with a row, so query it rather than execute it.
    let _mode: String = conn.query_row(&format!("PRAGMA {schema}.journal_mode=WAL"), [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA {schema}.synchronous={sync_sql};"))?;
    conn.execute_batch(&format!("BEGIN; {tables} COMMIT;"))
}

impl Storage for SqliteStorage {
    fn load(&mut self) -> Result<Snapshot, StorageError> {
        read_snapshot(&self.conn).map_err(StorageError::load)
    }

    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut ids = self.ids.begin();
        write_batch(&mut self.conn, &mut ids, batch, self.has_usage)
            .map_err(|e| StorageError::commit(batch.len(), e))?;
        // Only now, with the transaction committed, do the new keys become the known ones.
        let changes = ids.finish();
        self.ids.apply(changes);
        Ok(())
    }

    /// The file must still be there (an open connection keeps reading a deleted file, but
    /// nothing written to it would survive) and answer a query.
    fn ready(&mut self) -> Result<(), StorageError> {
        if let Some(path) = &self.path {
            std::fs::metadata(path).map_err(StorageError::unreachable)?;
        }
        let _: i64 = self
            .conn
            .query_row("SELECT count(*) FROM main.sqlite_master", [], |r| r.get(0))
            .map_err(StorageError::unreachable)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod state_round_trip;
