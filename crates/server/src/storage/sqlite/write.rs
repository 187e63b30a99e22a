//! Applying a batch of [`Write`]s to the SQLite tables in one transaction.
//!
//! Owns: the INSERT/UPDATE/DELETE statements and the translation of nameplate names into
//! `nameplates.id` through the transaction's [`Pending`] keys. Must not: commit keys itself
//! (the caller does, after the transaction) or decide protocol outcomes.

use rusqlite::{Connection, params};

use super::ids::Pending;
use crate::storage::Write;

/// Why one write of a batch could not be applied (the `source` of [`StorageError::Commit`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum ApplyError {
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

/// Apply `batch` in one transaction (rolled back on any error).
pub(super) fn write_batch(
    conn: &mut Connection,
    ids: &mut Pending<'_>,
    batch: &[Write],
    has_usage: bool,
) -> Result<(), ApplyError> {
    let tx = conn.transaction()?;
    for w in batch {
        apply(&tx, ids, w, has_usage)?;
    }
    tx.commit()?;
    Ok(())
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
