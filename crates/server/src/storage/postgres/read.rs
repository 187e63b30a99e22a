//! Reading the PostgreSQL tables back: the channels one batch touches (inside its locked
//! transaction), the whole channel state, and a node's last commit token.
//!
//! Owns: the SELECTs. Must not: write.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Transaction;
use tokio_postgres::{Client, Row};

use super::PgError;
use super::text::{decode, encode};
use crate::storage::{
    ChannelKeys, MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot,
};

fn nameplate(r: &Row) -> Result<NameplateRow, PgError> {
    Ok(NameplateRow {
        app_id: decode(r.try_get(0)?),
        name: decode(r.try_get(1)?),
        mailbox_id: decode(r.try_get(2)?),
    })
}

/// Run `sql` as a cached prepared statement (no extra round trip to parse it each batch).
async fn rows(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, PgError> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query(&st, params).await?)
}

/// Encoded `(app_id, name)` keys as two parallel arrays (for `unnest`).
fn key_arrays<'a>(keys: impl Iterator<Item = &'a (String, String)>) -> (Vec<String>, Vec<String>) {
    keys.map(|(a, n)| (encode(a).into_owned(), encode(n).into_owned()))
        .unzip()
}

const NAMEPLATES_BY_KEY: &str = "SELECT n.app_id, n.name, n.mailbox_id FROM nameplates n \
     JOIN unnest($1::text[], $2::text[]) AS k(app_id, name) \
     ON n.app_id = k.app_id AND n.name = k.name";
const EXPIRED: &str = "SELECT id FROM mailboxes WHERE updated <= $1";
const NAMES_OF_APPS: &str = "SELECT app_id, name, mailbox_id FROM nameplates WHERE app_id = ANY($1)";
const NAMEPLATES_OF_MAILBOXES: &str =
    "SELECT app_id, name, mailbox_id FROM nameplates WHERE mailbox_id = ANY($1)";
const MAILBOXES: &str = "SELECT id, app_id, updated, for_nameplate FROM mailboxes WHERE id = ANY($1)";
const MAILBOX_SIDES: &str = "SELECT mailbox_id, side, opened, added, mood FROM mailbox_sides \
     WHERE mailbox_id = ANY($1) ORDER BY seq";
const MESSAGES: &str = "SELECT app_id, mailbox_id, side, phase, body, server_rx, msg_id FROM messages \
     WHERE mailbox_id = ANY($1) ORDER BY seq";
const NAMEPLATE_SIDES: &str = "SELECT s.app_id, s.name, s.side, s.claimed, s.added FROM nameplate_sides s \
     JOIN unnest($1::text[], $2::text[]) AS k(app_id, name) \
     ON s.app_id = k.app_id AND s.name = k.name ORDER BY s.seq";

/// The rows of the channels named by `keys` (see [`ChannelKeys`]): the nameplates asked for
/// and their mailboxes; the mailboxes asked for (and, for a prune, the expired ones) with
/// their sides, messages in stored order, and the nameplates pointing to them with their
/// sides; and the bare names of the apps asked for. Run inside the batch's transaction,
/// after its lock, so nothing changes between this read and the batch's writes. Three round
/// trips: the queries of each step are sent together (tokio-postgres pipelines them).
pub(super) async fn read_channels(tx: &Transaction<'_>, keys: &ChannelKeys) -> Result<Snapshot, PgError> {
    // Step 1: the nameplates asked for, the expired mailboxes, the apps' names.
    let (np_apps, np_names) = key_arrays(keys.nameplates.iter());
    let apps: Vec<String> = keys.apps.iter().map(|a| encode(a).into_owned()).collect();
    let old = keys.expired.unwrap_or(f64::NEG_INFINITY);
    let (by_key, expired, app_names) = futures_util::future::try_join3(
        rows(tx, NAMEPLATES_BY_KEY, &[&np_apps, &np_names]),
        rows(tx, EXPIRED, &[&old]),
        rows(tx, NAMES_OF_APPS, &[&apps]),
    )
    .await?;
    let mut nameplates: BTreeMap<(String, String), NameplateRow> = BTreeMap::new();
    let mut with_sides: BTreeSet<(String, String)> = BTreeSet::new();
    let mut mailbox_ids: BTreeSet<String> = keys.mailboxes.iter().cloned().collect();
    for r in &by_key {
        let np = nameplate(r)?;
        mailbox_ids.insert(np.mailbox_id.clone());
        with_sides.insert((np.app_id.clone(), np.name.clone()));
        nameplates.insert((np.app_id.clone(), np.name.clone()), np);
    }
    if keys.expired.is_some() {
        for r in &expired {
            mailbox_ids.insert(decode(r.try_get(0)?));
        }
    }
    // Step 2: those mailboxes, with their sides, messages and nameplates.
    let ids: Vec<String> = mailbox_ids.iter().map(|m| encode(m).into_owned()).collect();
    let (of_mailboxes, mailboxes, sides, messages) = futures_util::future::try_join4(
        rows(tx, NAMEPLATES_OF_MAILBOXES, &[&ids]),
        rows(tx, MAILBOXES, &[&ids]),
        rows(tx, MAILBOX_SIDES, &[&ids]),
        rows(tx, MESSAGES, &[&ids]),
    )
    .await?;
    for r in &of_mailboxes {
        let np = nameplate(r)?;
        with_sides.insert((np.app_id.clone(), np.name.clone()));
        nameplates.insert((np.app_id.clone(), np.name.clone()), np);
    }
    for r in &app_names {
        let np = nameplate(r)?;
        nameplates
            .entry((np.app_id.clone(), np.name.clone()))
            .or_insert(np);
    }
    // Step 3: the sides of every nameplate read with its mailbox.
    let (side_apps, side_names) = key_arrays(with_sides.iter());
    let nameplate_sides = if with_sides.is_empty() {
        Vec::new()
    } else {
        rows(tx, NAMEPLATE_SIDES, &[&side_apps, &side_names]).await?
    };
    Ok(Snapshot {
        nameplates: nameplates.into_values().collect(),
        nameplate_sides: nameplate_sides
            .iter()
            .map(nameplate_side)
            .collect::<Result<_, PgError>>()?,
        mailboxes: mailboxes.iter().map(mailbox).collect::<Result<_, PgError>>()?,
        mailbox_sides: sides.iter().map(mailbox_side).collect::<Result<_, PgError>>()?,
        messages: messages.iter().map(message).collect::<Result<_, PgError>>()?,
    })
}

fn nameplate_side(r: &Row) -> Result<NameplateSideRow, PgError> {
    Ok(NameplateSideRow {
        app_id: decode(r.try_get(0)?),
        name: decode(r.try_get(1)?),
        side: decode(r.try_get(2)?),
        claimed: r.try_get(3)?,
        added: r.try_get(4)?,
    })
}

fn mailbox(r: &Row) -> Result<MailboxRow, PgError> {
    Ok(MailboxRow {
        id: decode(r.try_get(0)?),
        app_id: decode(r.try_get(1)?),
        updated: r.try_get(2)?,
        for_nameplate: r.try_get(3)?,
    })
}

fn mailbox_side(r: &Row) -> Result<MailboxSideRow, PgError> {
    Ok(MailboxSideRow {
        mailbox_id: decode(r.try_get(0)?),
        side: decode(r.try_get(1)?),
        opened: r.try_get(2)?,
        added: r.try_get(3)?,
        mood: r.try_get::<_, Option<String>>(4)?.map(decode),
    })
}

fn message(r: &Row) -> Result<MessageRow, PgError> {
    Ok(MessageRow {
        app_id: decode(r.try_get(0)?),
        mailbox_id: decode(r.try_get(1)?),
        side: decode(r.try_get(2)?),
        phase: decode(r.try_get(3)?),
        body: decode(r.try_get(4)?),
        server_rx: r.try_get(5)?,
        msg_id: r.try_get::<_, Option<String>>(6)?.map(decode),
    })
}

/// Read the whole channel state in one REPEATABLE READ transaction (one consistent view).
pub(super) async fn read_snapshot(client: &mut Client) -> Result<Snapshot, PgError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let nameplates = tx
        .query(
            "SELECT app_id, name, mailbox_id FROM nameplates ORDER BY seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(NameplateRow {
                app_id: decode(r.try_get(0)?),
                name: decode(r.try_get(1)?),
                mailbox_id: decode(r.try_get(2)?),
            })
        })
        .collect::<Result<_, PgError>>()?;
    let nameplate_sides = tx
        .query(
            "SELECT app_id, name, side, claimed, added FROM nameplate_sides ORDER BY seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(NameplateSideRow {
                app_id: decode(r.try_get(0)?),
                name: decode(r.try_get(1)?),
                side: decode(r.try_get(2)?),
                claimed: r.try_get(3)?,
                added: r.try_get(4)?,
            })
        })
        .collect::<Result<_, PgError>>()?;
    let mailboxes = tx
        .query("SELECT id, app_id, updated, for_nameplate FROM mailboxes", &[])
        .await?
        .iter()
        .map(|r| {
            Ok(MailboxRow {
                id: decode(r.try_get(0)?),
                app_id: decode(r.try_get(1)?),
                updated: r.try_get(2)?,
                for_nameplate: r.try_get(3)?,
            })
        })
        .collect::<Result<_, PgError>>()?;
    let mailbox_sides = tx
        .query(
            "SELECT mailbox_id, side, opened, added, mood FROM mailbox_sides ORDER BY seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(MailboxSideRow {
                mailbox_id: decode(r.try_get(0)?),
                side: decode(r.try_get(1)?),
                opened: r.try_get(2)?,
                added: r.try_get(3)?,
                mood: r.try_get::<_, Option<String>>(4)?.map(decode),
            })
        })
        .collect::<Result<_, PgError>>()?;
    let messages = tx
        .query(
            "SELECT app_id, mailbox_id, side, phase, body, server_rx, msg_id FROM messages \
             ORDER BY server_rx, seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(MessageRow {
                app_id: decode(r.try_get(0)?),
                mailbox_id: decode(r.try_get(1)?),
                side: decode(r.try_get(2)?),
                phase: decode(r.try_get(3)?),
                body: decode(r.try_get(4)?),
                server_rx: r.try_get(5)?,
                msg_id: r.try_get::<_, Option<String>>(6)?.map(decode),
            })
        })
        .collect::<Result<_, PgError>>()?;
    tx.commit().await?;
    Ok(Snapshot {
        nameplates,
        nameplate_sides,
        mailboxes,
        mailbox_sides,
        messages,
    })
}

/// The last batch token `node` committed (0 if none).
pub(super) async fn committed_token(client: &Client, node: &str) -> Result<i64, PgError> {
    let row = client
        .query_opt("SELECT token FROM node_commits WHERE node = $1", &[&node])
        .await?;
    match row {
        Some(r) => Ok(r.try_get(0)?),
        None => Ok(0),
    }
}
