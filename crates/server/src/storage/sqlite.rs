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
//! The core names nameplates by `(app_id, name)`; the 0.8.0 tables key them by an integer
//! `nameplates.id`, which this backend assigns and remembers (`ids.rs`). rusqlite errors leave
//! this file only as the boxed `source` of a [`StorageError`].
//!
//! Owns: the SQL, the connection, the checkpointer thread and the nameplate keys. Must not:
//! decide protocol outcomes, or let anything SQLite-shaped out through the trait.

mod ids;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};

use self::ids::{NameplateIds, Pending};
use self::schema::{CHANNEL_SCHEMA, USAGE_SCHEMA};
use super::{
    MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot, Storage, StorageError,
    Write,
};

/// Why one write of a batch could not be applied (the `source` of [`StorageError::Commit`]).
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    /// SQLite refused the statement.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// A side was added to a nameplate the store does not hold (a bug in the caller).
    #[error("nameplate {name:?} of app {app_id:?} is not stored")]
    UnknownNameplate { app_id: String, name: String },
    /// A nameplate was inserted twice (a bug in the caller).
    #[error("nameplate {name:?} of app {app_id:?} is already stored")]
    DuplicateNameplate { app_id: String, name: String },
}

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
        Ok(Self {
            conn,
            has_usage,
            ids,
            stop,
        })
    }

    fn apply(tx: &Connection, ids: &mut Pending<'_>, w: &Write, has_usage: bool) -> Result<(), ApplyError> {
        match w {
            Write::InsertNameplate(r) => {
                let id = ids
                    .insert(&r.app_id, &r.name)
                    .ok_or_else(|| ApplyError::DuplicateNameplate {
                        app_id: r.app_id.clone(),
                        name: r.name.clone(),
                    })?;
                tx.prepare_cached(
                    "INSERT INTO `nameplates` (`id`,`app_id`,`name`,`mailbox_id`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![id, r.app_id, r.name, r.mailbox_id])?;
            }
            Write::DeleteNameplate { app_id, name } => {
                // Deleting what is not stored is a no-op, as the SQL `DELETE` would be.
                if let Some(id) = ids.remove(app_id, name) {
                    tx.prepare_cached("DELETE FROM `nameplate_sides` WHERE `nameplates_id`=?1")?
                        .execute([id])?;
                    tx.prepare_cached("DELETE FROM `nameplates` WHERE `id`=?1")?
                        .execute([id])?;
                }
            }
            Write::InsertNameplateSide(r) => {
                let id = ids
                    .get(&r.app_id, &r.name)
                    .ok_or_else(|| ApplyError::UnknownNameplate {
                        app_id: r.app_id.clone(),
                        name: r.name.clone(),
                    })?;
                tx.prepare_cached(
                    "INSERT INTO `nameplate_sides` (`nameplates_id`,`claimed`,`side`,`added`) \
                     VALUES (?1,?2,?3,?4)",
                )?
                .execute(params![id, r.claimed, r.side, r.added])?;
            }
            Write::ReleaseNameplateSide { app_id, name, side } => {
                if let Some(id) = ids.get(app_id, name) {
                    tx.prepare_cached(
                        "UPDATE `nameplate_sides` SET `claimed`=0 \
                         WHERE `nameplates_id`=?1 AND `side`=?2",
                    )?
                    .execute(params![id, side])?;
                }
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
                    u.result.as_str()
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
                    row.result.as_str(),
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

/// Put `schema` in WAL mode with the given `synchronous` level and create its tables.
fn set_up(conn: &Connection, schema: &str, sync_sql: &str, tables: &str) -> rusqlite::Result<()> {
    // `journal_mode` answers with a row, so query it rather than execute it.
    let _mode: String = conn.query_row(&format!("PRAGMA {schema}.journal_mode=WAL"), [], |r| r.get(0))?;
    conn.execute_batch(&format!("PRAGMA {schema}.synchronous={sync_sql};"))?;
    conn.execute_batch(&format!("BEGIN; {tables} COMMIT;"))
}

/// The stored nameplates' keys.
fn read_ids(conn: &Connection) -> rusqlite::Result<NameplateIds> {
    let rows = conn
        .prepare("SELECT `id`,`app_id`,`name` FROM `nameplates`")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(NameplateIds::new(rows))
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

/// Read the whole channel state.
fn read_snapshot(c: &Connection) -> rusqlite::Result<Snapshot> {
    let nameplates = c
        .prepare("SELECT `app_id`,`name`,`mailbox_id` FROM `nameplates` ORDER BY `id`")?
        .query_map([], |r| {
            Ok(NameplateRow {
                app_id: r.get(0)?,
                name: r.get(1)?,
                mailbox_id: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let nameplate_sides = c
        .prepare(
            "SELECT n.`app_id`, n.`name`, s.`side`, s.`claimed`, s.`added` \
                 FROM `nameplate_sides` s JOIN `nameplates` n ON n.`id` = s.`nameplates_id` \
                 ORDER BY s.rowid",
        )?
        .query_map([], |r| {
            Ok(NameplateSideRow {
                app_id: r.get(0)?,
                name: r.get(1)?,
                side: r.get(2)?,
                claimed: r.get(3)?,
                added: get_f64(r, 4)?,
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

impl Storage for SqliteStorage {
    fn load(&mut self) -> Result<Snapshot, StorageError> {
        read_snapshot(&self.conn).map_err(StorageError::load)
    }

    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let has_usage = self.has_usage;
        let mut ids = self.ids.begin();
        let run = |ids: &mut Pending<'_>| -> Result<(), ApplyError> {
            let tx = self.conn.unchecked_transaction()?;
            for w in batch {
                Self::apply(&tx, ids, w, has_usage)?;
            }
            tx.commit()?;
            Ok(())
        };
        run(&mut ids).map_err(|e| StorageError::commit(batch.len(), e))?;
        let changes = ids.finish();
        self.ids.apply(changes);
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
                app_id: "app".into(),
                name: "7".into(),
                mailbox_id: "mb1".into(),
            }),
            Write::InsertNameplateSide(NameplateSideRow {
                app_id: "app".into(),
                name: "7".into(),
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
                app_id: "app".into(),
                name: "7".into(),
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
            Write::DeleteNameplate {
                app_id: "app".into(),
                name: "7".into(),
            },
            Write::DeleteMailbox { id: "mb1".into() },
        ])
        .unwrap();
        assert_eq!(s.load().unwrap(), Snapshot::default());
    }

    #[test]
    fn failed_batch_is_rolled_back() {
        let mut s = SqliteStorage::open(":memory:", None, SyncMode::Full).unwrap();
        let mut batch = sample_batch();
        // The same nameplate inserted twice makes the batch fail.
        batch.push(Write::InsertNameplate(NameplateRow {
            app_id: "app".into(),
            name: "7".into(),
            mailbox_id: "mb1".into(),
        }));
        let err = s.commit(&batch).unwrap_err();
        assert!(matches!(err, StorageError::Commit { writes: 6, .. }), "{err}");
        assert_eq!(s.load().unwrap(), Snapshot::default());
        // The failed batch left no keys behind: the good part commits and reads back.
        batch.pop();
        s.commit(&batch).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.nameplate_sides.len(), 1);
        assert_eq!(
            (&*snap.nameplate_sides[0].app_id, &*snap.nameplate_sides[0].name),
            ("app", "7")
        );
    }

    #[test]
    fn sides_find_their_nameplate_by_name_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let path = path.to_str().unwrap();
        {
            let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
            s.commit(&sample_batch()).unwrap();
        }
        // A new process knows the nameplate only by its name: a second side and a release reach
        // the row written by the first process, and a side of an unknown nameplate is refused.
        let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
        s.commit(&[
            Write::InsertNameplateSide(NameplateSideRow {
                app_id: "app".into(),
                name: "7".into(),
                side: "s2".into(),
                claimed: true,
                added: 12.0,
            }),
            Write::ReleaseNameplateSide {
                app_id: "app".into(),
                name: "7".into(),
                side: "s1".into(),
            },
        ])
        .unwrap();
        let snap = s.load().unwrap();
        let sides: Vec<(&str, bool)> = snap
            .nameplate_sides
            .iter()
            .map(|r| (r.side.as_str(), r.claimed))
            .collect();
        assert_eq!(sides, [("s1", false), ("s2", true)]);
        let orphan = Write::InsertNameplateSide(NameplateSideRow {
            app_id: "other".into(),
            name: "7".into(),
            side: "s3".into(),
            claimed: true,
            added: 13.0,
        });
        let err = s.commit(&[orphan]).unwrap_err();
        assert!(matches!(err, StorageError::Commit { writes: 1, .. }));
        let raw = Connection::open(path).unwrap();
        let ids: Vec<i64> = raw
            .prepare("SELECT nameplates_id FROM nameplate_sides")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ids, [1, 1], "0.8.0 layout: sides point at nameplates.id");
    }

    #[test]
    fn open_errors_name_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/c.sqlite");
        let err = SqliteStorage::open(missing.to_str().unwrap(), None, SyncMode::Full).unwrap_err();
        assert!(matches!(err, StorageError::Open { .. }), "{err}");
        let source = std::error::Error::source(&err).unwrap();
        assert!(
            source.is::<rusqlite::Error>(),
            "the backend error is kept as the source"
        );
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
                result: super::super::Outcome::Lonely,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod state_round_trip;
