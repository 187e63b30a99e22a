//! Reading the PostgreSQL tables back: the whole channel state at start-up, and a node's
//! last commit token.
//!
//! Owns: the SELECTs. Must not: write.

use tokio_postgres::Client;

use super::PgError;
use super::text::decode;
use crate::storage::{MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot};

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
