//! Reading the SQLite tables back: the whole channel state at start-up, and the nameplate keys.
//!
//! Owns: the SELECTs and the tolerant reading of 0.8.0's number columns. Must not: write.

use rusqlite::Connection;

use super::ids::NameplateIds;
use crate::storage::{MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot};

/// The stored nameplates' keys.
pub(super) fn read_ids(conn: &Connection) -> rusqlite::Result<NameplateIds> {
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
pub(super) fn read_snapshot(c: &Connection) -> rusqlite::Result<Snapshot> {
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
