//! SQLite implementation of [`Storage`] (rusqlite, WAL journal).
//!
//! The channel DB uses the tables and columns of the Python server 0.8.0 (`version` = 1), so the
//! files stay readable by the same tools; only the indexes differ (see `CHANNEL_SCHEMA` below). The optional usage DB (`version`
//! = 2) is ATTACHed to the same connection as schema `usage`, so one `COMMIT` covers both.
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
//! This file only moves rows; it must not decide protocol outcomes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot, Storage, StorageError,
    Write,
};

/// How hard each commit pushes data to the disk (SQLite `PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum SyncMode {
    /// fsync the WAL at every commit: survives process crashes and power loss.
    Full,
    /// fsync only at checkpoints: survives process crashes, not power loss.
    Normal,
}

/// The server 0.8.0 channel tables. Indexes: only those our writes use (every read of the
/// state happens once, at start-up). 0.8.0's lookup indexes (`nameplates_idx`, ...) serve its
/// per-command queries, which we do not make; each would cost extra page writes per commit.
/// `nameplates.id` is assigned by the server, so it needs no AUTOINCREMENT bookkeeping.
const CHANNEL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS `version` (`version` INTEGER);
CREATE TABLE IF NOT EXISTS `nameplates` (
  `id` INTEGER PRIMARY KEY, `app_id` VARCHAR, `name` VARCHAR,
  `mailbox_id` VARCHAR REFERENCES `mailboxes`(`id`), `request_id` VARCHAR);
CREATE TABLE IF NOT EXISTS `nameplate_sides` (
  `nameplates_id` REFERENCES `nameplates`(`id`), `claimed` BOOLEAN, `side` VARCHAR,
  `added` INTEGER);
CREATE INDEX IF NOT EXISTS `nameplate_sides_np_idx` ON `nameplate_sides` (`nameplates_id`);
CREATE TABLE IF NOT EXISTS `mailboxes` (
  `app_id` VARCHAR, `id` VARCHAR PRIMARY KEY, `updated` INTEGER, `for_nameplate` BOOLEAN);
CREATE TABLE IF NOT EXISTS `mailbox_sides` (
  `mailbox_id` REFERENCES `mailboxes`(`id`), `opened` BOOLEAN, `side` VARCHAR,
  `added` INTEGER, `mood` VARCHAR);
CREATE INDEX IF NOT EXISTS `mailbox_sides_mb_idx` ON `mailbox_sides` (`mailbox_id`);
CREATE TABLE IF NOT EXISTS `messages` (
  `app_id` VARCHAR, `mailbox_id` VARCHAR, `side` VARCHAR, `phase` VARCHAR, `body` VARCHAR,
  `server_rx` INTEGER, `msg_id` VARCHAR);
CREATE INDEX IF NOT EXISTS `messages_mb_idx` ON `messages` (`mailbox_id`);
";

const USAGE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage.`version` (`version` INTEGER);
CREATE TABLE IF NOT EXISTS usage.`current` (
  `rebooted` INTEGER, `updated` INTEGER, `blur_time` INTEGER, `connections_websocket` INTEGER);
CREATE TABLE IF NOT EXISTS usage.`nameplates` (
  `app_id` VARCHAR, `started` INTEGER, `waiting_time` INTEGER, `total_time` INTEGER,
  `result` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`nameplates_idx` ON `nameplates` (`app_id`, `started`);
CREATE TABLE IF NOT EXISTS usage.`mailboxes` (
  `app_id` VARCHAR, `for_nameplate` BOOLEAN, `started` INTEGER, `total_time` INTEGER,
  `waiting_time` INTEGER, `result` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`mailboxes_idx` ON `mailboxes` (`app_id`, `started`);
CREATE INDEX IF NOT EXISTS usage.`mailboxes_result_idx` ON `mailboxes` (`result`);
CREATE TABLE IF NOT EXISTS usage.`client_versions` (
  `app_id` VARCHAR, `side` VARCHAR, `connect_time` INTEGER, `implementation` VARCHAR,
  `version` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`client_versions_time_idx` ON `client_versions` (`connect_time`);
CREATE INDEX IF NOT EXISTS usage.`client_versions_appid_time_idx`
  ON `client_versions` (`app_id`, `connect_time`);
";

/// The SQLite store: one connection, channel DB as `main`, usage DB (if any) as `usage`.
pub struct SqliteStorage {
    conn: Connection,
    has_usage: bool,
    /// Set to stop the background checkpointer.
    stop: Arc<AtomicBool>,
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
    let sql = format!("SELECT `version` FROM {schema}.`version` LIMIT 1");
    let found: Option<i64> = conn.query_row(&sql, [], |r| r.get(0)).optional()?;
    match found {
        None => {
            conn.execute(
                &format!("INSERT INTO {schema}.`version` (`version`) VALUES (?1)"),
                [expected],
            )?;
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
        let conn = Connection::open(channel_db)?;
        let sync_sql = match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // `journal_mode` answers with a row, so query it rather than execute it.
        let _mode: String = conn.query_row("PRAGMA main.journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch(&format!("PRAGMA main.synchronous={sync_sql};"))?;
        conn.execute_batch(&format!("BEGIN; {CHANNEL_SCHEMA} COMMIT;"))?;
        check_version(&conn, "main", "channel", 1)?;
        let has_usage = if let Some(path) = usage_db {
            conn.execute("ATTACH DATABASE ?1 AS usage", [path.to_string_lossy()])?;
            let _mode: String = conn.query_row("PRAGMA usage.journal_mode=WAL", [], |r| r.get(0))?;
            conn.execute_batch(&format!("PRAGMA usage.synchronous={sync_sql};"))?;
            conn.execute_batch(&format!("BEGIN; {USAGE_SCHEMA} COMMIT;"))?;
            check_version(&conn, "usage", "usage", 2)?;
            true
        } else {
            false
        };
        let stop = Arc::new(AtomicBool::new(false));
        if channel_db != ":memory:" && !channel_db.is_empty() {
            // Checkpoints move to a background connection (see `spawn_checkpointer`).
            conn.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
            spawn_checkpointer(channel_db, usage_db, stop.clone());
        }
        Ok(Self {
            conn,
            has_usage,
            stop,
        })
    }

    fn apply(tx: &Connection, w: &Write, has_usage: bool) -> rusqlite::Result<()> {
        match w {
            Write::InsertNameplate(r) => {
                tx.prepare_cached(
                    "INSERT INTO `nameplates` (`id`,`app_id`,`name`,`mailbox_id`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![r.id, r.app_id, r.name, r.mailbox_id])?;
            }
            Write::DeleteNameplate { id } => {
                tx.prepare_cached("DELETE FROM `nameplate_sides` WHERE `nameplates_id`=?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM `nameplates` WHERE `id`=?1")?
                    .execute([id])?;
            }
            Write::InsertNameplateSide(r) => {
                tx.prepare_cached(
                    "INSERT INTO `nameplate_sides` (`nameplates_id`,`claimed`,`side`,`added`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![r.nameplate_id, r.claimed, r.side, r.added])?;
            }
            Write::ReleaseNameplateSide { nameplate_id, side } => {
                tx.prepare_cached(
                    "UPDATE `nameplate_sides` SET `claimed`=0 \
                     WHERE `nameplates_id`=?1 AND `side`=?2",
                )?
                .execute(params![nameplate_id, side])?;
            }
            Write::InsertMailbox(r) => {
                tx.prepare_cached(
                    "INSERT INTO `mailboxes` (`app_id`,`id`,`updated`,`for_nameplate`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![r.app_id, r.id, r.updated, r.for_nameplate])?;
            }
            Write::TouchMailbox { id, updated } => {
                tx.prepare_cached("UPDATE `mailboxes` SET `updated`=?1 WHERE `id`=?2")?
                    .execute(params![updated, id])?;
            }
            Write::DeleteMailbox { id } => {
                tx.prepare_cached("DELETE FROM `messages` WHERE `mailbox_id`=?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM `mailbox_sides` WHERE `mailbox_id`=?1")?
                    .execute([id])?;
                tx.prepare_cached("DELETE FROM `mailboxes` WHERE `id`=?1")?
                    .execute([id])?;
            }
            Write::InsertMailboxSide(r) => {
                tx.prepare_cached(
                    "INSERT INTO `mailbox_sides` (`mailbox_id`,`opened`,`side`,`added`,`mood`) \
                     VALUES (?1,?2,?3,?4,?5)",
                )?
                .execute(params![r.mailbox_id, r.opened, r.side, r.added, r.mood])?;
            }
            Write::CloseMailboxSide {
                mailbox_id,
                side,
                mood,
            } => {
                tx.prepare_cached(
                    "UPDATE `mailbox_sides` SET `opened`=0, `mood`=?1 \
                     WHERE `mailbox_id`=?2 AND `side`=?3",
                )?
                .execute(params![mood, mailbox_id, side])?;
            }
            Write::InsertMessage(r) => {
                tx.prepare_cached(
                    "INSERT INTO `messages` \
                     (`app_id`,`mailbox_id`,`side`,`phase`,`body`,`server_rx`,`msg_id`) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7)",
                )?
                .execute(params![
                    r.app_id,
                    r.mailbox_id,
                    r.side,
                    r.phase,
                    r.body,
                    r.server_rx,
                    r.msg_id
                ])?;
            }
            Write::UsageNameplate(u) if has_usage => {
                tx.prepare_cached(
                    "INSERT INTO usage.`nameplates` \
                     (`app_id`,`started`,`total_time`,`waiting_time`,`result`) \
                     VALUES (?1,?2,?3,?4,?5)",
                )?
                .execute(params![
                    u.app_id,
                    u.started,
                    u.total_time,
                    u.waiting_time,
                    u.result
                ])?;
            }
            Write::UsageMailbox { row, for_nameplate } if has_usage => {
                tx.prepare_cached(
                    "INSERT INTO usage.`mailboxes` \
                     (`app_id`,`started`,`total_time`,`waiting_time`,`result`,`for_nameplate`) \
                     VALUES (?1,?2,?3,?4,?5,?6)",
                )?
                .execute(params![
                    row.app_id,
                    row.started,
                    row.total_time,
                    row.waiting_time,
                    row.result,
                    for_nameplate
                ])?;
            }
            Write::UsageClientVersion {
                app_id,
                side,
                connect_time,
                implementation,
                version,
            } if has_usage => {
                tx.prepare_cached(
                    "INSERT INTO usage.`client_versions` \
                     (`app_id`,`side`,`connect_time`,`implementation`,`version`) \
                     VALUES (?1,?2,?3,?4,?5)",
                )?
                .execute(params![app_id, side, connect_time, implementation, version])?;
            }
            Write::UsageCurrent {
                rebooted,
                updated,
                blur_time,
                connections_websocket,
            } if has_usage => {
                tx.prepare_cached("DELETE FROM usage.`current`")?.execute([])?;
                tx.prepare_cached(
                    "INSERT INTO usage.`current` \
                     (`rebooted`,`updated`,`blur_time`,`connections_websocket`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![rebooted, updated, blur_time, connections_websocket])?;
            }
            Write::UsageNameplate(_)
            | Write::UsageMailbox { .. }
            | Write::UsageClientVersion { .. }
            | Write::UsageCurrent { .. } => {}
        }
        Ok(())
    }
}

/// Read a REAL-or-INTEGER column as `f64` (Python wrote floats into INTEGER columns).
fn get_f64(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<f64> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i)? {
        ValueRef::Integer(v) => Ok(v as f64),
        ValueRef::Real(v) => Ok(v),
        ValueRef::Null => Ok(0.0),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            "number".into(),
            other.data_type(),
        )),
    }
}

impl Storage for SqliteStorage {
    fn load(&mut self) -> Result<Snapshot, StorageError> {
        let c = &self.conn;
        let nameplates = c
            .prepare("SELECT `id`,`app_id`,`name`,`mailbox_id` FROM `nameplates` ORDER BY `id`")?
            .query_map([], |r| {
                Ok(NameplateRow {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    name: r.get(2)?,
                    mailbox_id: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let nameplate_sides = c
            .prepare(
                "SELECT `nameplates_id`,`side`,`claimed`,`added` FROM `nameplate_sides` \
                 ORDER BY rowid",
            )?
            .query_map([], |r| {
                Ok(NameplateSideRow {
                    nameplate_id: r.get(0)?,
                    side: r.get(1)?,
                    claimed: r.get(2)?,
                    added: get_f64(r, 3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mailboxes = c
            .prepare("SELECT `id`,`app_id`,`updated`,`for_nameplate` FROM `mailboxes`")?
            .query_map([], |r| {
                Ok(MailboxRow {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    updated: get_f64(r, 2)?,
                    for_nameplate: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mailbox_sides = c
            .prepare(
                "SELECT `mailbox_id`,`side`,`opened`,`added`,`mood` FROM `mailbox_sides` \
                 ORDER BY rowid",
            )?
            .query_map([], |r| {
                Ok(MailboxSideRow {
                    mailbox_id: r.get(0)?,
                    side: r.get(1)?,
                    opened: r.get(2)?,
                    added: get_f64(r, 3)?,
                    mood: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let messages = c
            .prepare(
                "SELECT `app_id`,`mailbox_id`,`side`,`phase`,`body`,`server_rx`,`msg_id` \
                 FROM `messages` ORDER BY `server_rx`, rowid",
            )?
            .query_map([], |r| {
                Ok(MessageRow {
                    app_id: r.get(0)?,
                    mailbox_id: r.get(1)?,
                    side: r.get(2)?,
                    phase: r.get(3)?,
                    body: r.get(4)?,
                    server_rx: get_f64(r, 5)?,
                    msg_id: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            nameplates,
            nameplate_sides,
            mailboxes,
            mailbox_sides,
            messages,
        })
    }

    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let has_usage = self.has_usage;
        let tx = self.conn.transaction()?;
        for w in batch {
            Self::apply(&tx, w, has_usage)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::storage::UsageRow;

    fn sample_batch() -> Vec<Write> {
        vec![
            Write::InsertMailbox(MailboxRow {
                id: "mb1".into(),
                app_id: "app".into(),
                updated: 10.5,
                for_nameplate: true,
            }),
            Write::InsertNameplate(NameplateRow {
                id: 1,
                app_id: "app".into(),
                name: "7".into(),
                mailbox_id: "mb1".into(),
            }),
            Write::InsertNameplateSide(NameplateSideRow {
                nameplate_id: 1,
                side: "s1".into(),
                claimed: true,
                added: 10.5,
            }),
            Write::InsertMailboxSide(MailboxSideRow {
                mailbox_id: "mb1".into(),
                side: "s1".into(),
                opened: true,
                added: 10.5,
                mood: None,
            }),
            Write::InsertMessage(MessageRow {
                app_id: "app".into(),
                mailbox_id: "mb1".into(),
                side: "s1".into(),
                phase: "pake".into(),
                body: "00ff".into(),
                server_rx: 11.0,
                msg_id: Some("ab12".into()),
            }),
        ]
    }

    #[test]
    fn commit_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let path = path.to_str().unwrap();
        {
            let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
            s.commit(&sample_batch()).unwrap();
        }
        let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.nameplates.len(), 1);
        assert_eq!(snap.nameplate_sides[0].side, "s1");
        assert_eq!(snap.mailboxes[0].updated, 10.5);
        assert_eq!(snap.messages[0].msg_id.as_deref(), Some("ab12"));
        s.commit(&[
            Write::ReleaseNameplateSide {
                nameplate_id: 1,
                side: "s1".into(),
            },
            Write::CloseMailboxSide {
                mailbox_id: "mb1".into(),
                side: "s1".into(),
                mood: Some("happy".into()),
            },
        ])
        .unwrap();
        let snap = s.load().unwrap();
        assert!(!snap.nameplate_sides[0].claimed);
        assert_eq!(snap.mailbox_sides[0].mood.as_deref(), Some("happy"));
        s.commit(&[
            Write::DeleteNameplate { id: 1 },
            Write::DeleteMailbox { id: "mb1".into() },
        ])
        .unwrap();
        assert_eq!(s.load().unwrap(), Snapshot::default());
    }

    #[test]
    fn failed_batch_is_rolled_back() {
        let mut s = SqliteStorage::open(":memory:", None, SyncMode::Full).unwrap();
        let mut batch = sample_batch();
        // A second nameplate with the same primary key makes the batch fail.
        batch.push(Write::InsertNameplate(NameplateRow {
            id: 1,
            app_id: "app".into(),
            name: "8".into(),
            mailbox_id: "mb1".into(),
        }));
        assert!(s.commit(&batch).is_err());
        assert_eq!(s.load().unwrap(), Snapshot::default());
    }

    #[test]
    fn usage_rows_go_to_attached_db() {
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join("u.sqlite");
        let mut s = SqliteStorage::open(":memory:", Some(&usage), SyncMode::Normal).unwrap();
        s.commit(&[
            Write::UsageNameplate(UsageRow {
                app_id: "a".into(),
                started: 1.0,
                waiting_time: None,
                total_time: 2.0,
                result: "lonely".into(),
            }),
            Write::UsageCurrent {
                rebooted: 1.0,
                updated: 2.0,
                blur_time: None,
                connections_websocket: 3,
            },
        ])
        .unwrap();
        drop(s);
        let u = Connection::open(&usage).unwrap();
        let result: String = u
            .query_row("SELECT result FROM nameplates", [], |r| r.get(0))
            .unwrap();
        assert_eq!(result, "lonely");
        let v: i64 = u
            .query_row("SELECT version FROM version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn wrong_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE version (version INTEGER); INSERT INTO version VALUES (7);")
                .unwrap();
        }
        let err = SqliteStorage::open(path.to_str().unwrap(), None, SyncMode::Full).unwrap_err();
        assert!(matches!(err, StorageError::Version { version: 7, .. }));
    }
}
