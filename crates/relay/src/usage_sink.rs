//! Where usage records go: the SQLite usage database (`--usage-db`, schema version 1 of
//! magic-wormhole-transit-relay) and the JSON-lines log (`--log-fd`).
//!
//! Owns: opening/creating the database, a writer thread that batches rows into transactions, and a
//! bounded queue between the async relay and that thread (records are dropped, with a warning, rather
//! than letting a slow disk grow memory).
//! Must not: block async tasks (everything blocking happens on the writer thread).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use rusqlite::Connection;

use crate::RelayError;
use crate::usage::{CurrentRow, UsageRecord};

/// Records queued for the writer thread before new ones are dropped.
const QUEUE: usize = 16_384;

const SCHEMA_V1: &str = "
CREATE TABLE `version` (`version` INTEGER);
CREATE TABLE `current` (`rebooted` INTEGER, `updated` INTEGER, `connected` INTEGER, `waiting` INTEGER,
  `incomplete_bytes` INTEGER);
CREATE TABLE `usage` (`started` INTEGER, `total_time` INTEGER, `waiting_time` INTEGER,
  `total_bytes` INTEGER, `result` VARCHAR);
CREATE INDEX `usage_started_index` ON `usage` (`started`);
CREATE INDEX `usage_result_index` ON `usage` (`result`);
INSERT INTO `version` (`version`) VALUES (1);
";

enum Event {
    Usage(UsageRecord),
    Current(CurrentRow),
}

/// Sends usage events to the writer thread; cheap to clone. A sink with no backends does nothing.
#[derive(Debug, Clone, Default)]
pub struct UsageSink {
    tx: Option<SyncSender<Event>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("usage event")
    }
}

/// Open (creating if needed) a usage database and check its schema version.
pub fn open_usage_db(path: &Path) -> Result<Connection, RelayError> {
    let err = |source: rusqlite::Error| RelayError::UsageDb {
        path: path.to_path_buf(),
        source,
    };
    let db = Connection::open(path).map_err(err)?;
    let has_version: bool = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(err)?
        > 0;
    if !has_version {
        db.execute_batch(&format!("BEGIN; {SCHEMA_V1} COMMIT;"))
            .map_err(err)?;
    }
    let version: i64 = db
        .query_row("SELECT version FROM version", [], |r| r.get(0))
        .map_err(err)?;
    if version != 1 {
        return Err(RelayError::UsageDbVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(db)
}

/// Open the file behind an inherited file descriptor for appending JSON lines.
pub fn open_log_fd(fd: i32) -> Result<File, RelayError> {
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|source| RelayError::LogFd { fd, source })
}

impl UsageSink {
    /// A sink that records nothing.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Start the writer thread for the given backends (a sink with neither is disabled).
    pub fn start(db: Option<Connection>, log: Option<File>) -> Result<Self, RelayError> {
        if db.is_none() && log.is_none() {
            return Ok(Self::disabled());
        }
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("relay-usage".into())
            .spawn(move || writer(rx, db, log))
            .map_err(RelayError::Thread)?;
        Ok(Self { tx: Some(tx) })
    }

    /// Queue one usage record.
    pub fn record(&self, record: UsageRecord) {
        self.send(Event::Usage(record));
    }

    /// Queue a new `current` row.
    pub fn current(&self, row: CurrentRow) {
        self.send(Event::Current(row));
    }

    /// Whether any backend is configured.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    fn send(&self, event: Event) {
        if let Some(tx) = &self.tx {
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => tracing::warn!("usage queue full; dropping a usage record"),
                Err(TrySendError::Disconnected(_)) => {
                    tracing::warn!("usage writer stopped; dropping a usage record")
                }
            }
        }
    }
}

fn writer(rx: Receiver<Event>, mut db: Option<Connection>, mut log: Option<File>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if let Some(file) = log.as_mut() {
            let mut lines = Vec::new();
            for e in &batch {
                if let Event::Usage(r) = e
                    && serde_json::to_writer(&mut lines, r).is_ok()
                {
                    lines.push(b'\n');
                }
            }
            if !lines.is_empty()
                && let Err(e) = file.write_all(&lines).and_then(|()| file.flush())
            {
                tracing::warn!("cannot write the usage log: {e}");
            }
        }
        if let Some(conn) = db.as_mut()
            && let Err(e) = write_batch(conn, &batch)
        {
            tracing::warn!("cannot write the usage database: {e}");
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Event]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for e in batch {
        match e {
            Event::Usage(r) => {
                tx.execute(
                    "INSERT INTO `usage` (`started`, `total_time`, `waiting_time`, `total_bytes`, `result`) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        r.started,
                        r.total_time,
                        r.waiting_time,
                        i64::try_from(r.total_bytes).unwrap_or(i64::MAX),
                        r.mood.as_str()
                    ],
                )?;
            }
            Event::Current(c) => {
                tx.execute("DELETE FROM `current`", [])?;
                tx.execute(
                    "INSERT INTO `current` (`rebooted`, `updated`, `connected`, `waiting`, `incomplete_bytes`) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        c.rebooted,
                        c.updated,
                        i64::try_from(c.connected).unwrap_or(i64::MAX),
                        i64::try_from(c.waiting).unwrap_or(i64::MAX),
                        i64::try_from(c.incomplete_bytes).unwrap_or(i64::MAX)
                    ],
                )?;
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Half, Mood};

    #[test]
    fn creates_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.sqlite");
        drop(open_usage_db(&path).unwrap());
        let db = open_usage_db(&path).unwrap();
        let tables: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('version','current','usage',\
                 'usage_started_index','usage_result_index')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 5);
    }

    #[test]
    fn rejects_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.sqlite");
        let db = open_usage_db(&path).unwrap();
        db.execute("UPDATE version SET version = 2", []).unwrap();
        drop(db);
        assert!(matches!(
            open_usage_db(&path),
            Err(RelayError::UsageDbVersion { version: 2, .. })
        ));
    }

    #[test]
    fn writes_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.sqlite");
        let mut db = open_usage_db(&path).unwrap();
        let r = UsageRecord::new(
            Half {
                started: 1.0,
                bytes_sent: 5,
            },
            None,
            2.0,
            Mood::Lonely,
            None,
        );
        let c = CurrentRow {
            rebooted: 1,
            updated: 2,
            connected: 2,
            waiting: 3,
            incomplete_bytes: 4,
        };
        write_batch(&mut db, &[Event::Usage(r), Event::Current(c), Event::Current(c)]).unwrap();
        let (mood, bytes, wait): (String, i64, Option<f64>) = db
            .query_row("SELECT result, total_bytes, waiting_time FROM usage", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((mood.as_str(), bytes, wait), ("lonely", 5, None));
        let n: i64 = db
            .query_row("SELECT count(*) FROM current", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}
