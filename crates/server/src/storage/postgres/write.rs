//! Applying a batch of [`Write`]s to the PostgreSQL tables in one transaction.
//!
//! Owns: the INSERT/UPDATE/DELETE statements (prepared once per connection) and the commit
//! token of the batch. Must not: decide protocol outcomes or reorder the writes.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::PgError;
use crate::storage::Write;

/// Run `sql` (prepared and cached on this connection) with `params`.
async fn exec(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<(), PgError> {
    let st = tx.prepare_cached(sql).await?;
    tx.execute(&st, params).await?;
    Ok(())
}

/// A count as PostgreSQL's BIGINT (counts beyond `i64::MAX` do not occur; clamp anyway).
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Record that `node` committed batch `token` (read back after an ambiguous `COMMIT`).
pub(super) async fn record_token(
    tx: &Transaction<'_>,
    node: &str,
    token: i64,
    now: f64,
) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO node_commits (node, token, updated) VALUES ($1, $2, $3) \
         ON CONFLICT (node) DO UPDATE SET token = EXCLUDED.token, updated = EXCLUDED.updated",
        &[&node, &token, &now],
    )
    .await
}

/// Apply one write.
pub(super) async fn apply(tx: &Transaction<'_>, w: &Write, usage: bool, node: &str) -> Result<(), PgError> {
    match w {
        Write::InsertNameplate(r) => {
            exec(
                tx,
                "INSERT INTO nameplates (app_id, name, mailbox_id) VALUES ($1, $2, $3)",
                &[&r.app_id, &r.name, &r.mailbox_id],
            )
            .await?
        }
        Write::DeleteNameplate { app_id, name } => {
            exec(
                tx,
                "DELETE FROM nameplate_sides WHERE app_id = $1 AND name = $2",
                &[app_id, name],
            )
            .await?;
            exec(
                tx,
                "DELETE FROM nameplates WHERE app_id = $1 AND name = $2",
                &[app_id, name],
            )
            .await?
        }
        Write::InsertNameplateSide(r) => {
            exec(
                tx,
                "INSERT INTO nameplate_sides (app_id, name, side, claimed, added) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&r.app_id, &r.name, &r.side, &r.claimed, &r.added],
            )
            .await?
        }
        Write::ReleaseNameplateSide { app_id, name, side } => {
            exec(
                tx,
                "UPDATE nameplate_sides SET claimed = FALSE \
                 WHERE app_id = $1 AND name = $2 AND side = $3",
                &[app_id, name, side],
            )
            .await?
        }
        Write::InsertMailbox(r) => {
            exec(
                tx,
                "INSERT INTO mailboxes (id, app_id, updated, for_nameplate) VALUES ($1, $2, $3, $4)",
                &[&r.id, &r.app_id, &r.updated, &r.for_nameplate],
            )
            .await?
        }
        Write::TouchMailbox { id, updated } => {
            exec(
                tx,
                "UPDATE mailboxes SET updated = $1 WHERE id = $2",
                &[updated, id],
            )
            .await?
        }
        Write::DeleteMailbox { id } => {
            exec(tx, "DELETE FROM messages WHERE mailbox_id = $1", &[id]).await?;
            exec(tx, "DELETE FROM mailbox_sides WHERE mailbox_id = $1", &[id]).await?;
            exec(tx, "DELETE FROM mailboxes WHERE id = $1", &[id]).await?
        }
        Write::InsertMailboxSide(r) => {
            exec(
                tx,
                "INSERT INTO mailbox_sides (mailbox_id, side, opened, added, mood) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&r.mailbox_id, &r.side, &r.opened, &r.added, &r.mood],
            )
            .await?
        }
        Write::CloseMailboxSide {
            mailbox_id,
            side,
            mood,
        } => {
            exec(
                tx,
                "UPDATE mailbox_sides SET opened = FALSE, mood = $1 \
                 WHERE mailbox_id = $2 AND side = $3",
                &[mood, mailbox_id, side],
            )
            .await?
        }
        Write::InsertMessage(r) => {
            exec(
                tx,
                "INSERT INTO messages (app_id, mailbox_id, side, phase, body, server_rx, msg_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &r.app_id,
                    &r.mailbox_id,
                    &r.side,
                    &r.phase,
                    &r.body,
                    &r.server_rx,
                    &r.msg_id,
                ],
            )
            .await?
        }
        Write::UsageNameplate(u) if usage => {
            exec(
                tx,
                "INSERT INTO usage_nameplates (app_id, started, total_time, waiting_time, result) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &u.app_id,
                    &u.started,
                    &u.total_time,
                    &u.waiting_time,
                    &u.result.as_str(),
                ],
            )
            .await?
        }
        Write::UsageMailbox { row, for_nameplate } if usage => {
            exec(
                tx,
                "INSERT INTO usage_mailboxes \
                 (app_id, started, total_time, waiting_time, result, for_nameplate) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &row.app_id,
                    &row.started,
                    &row.total_time,
                    &row.waiting_time,
                    &row.result.as_str(),
                    for_nameplate,
                ],
            )
            .await?
        }
        Write::UsageClientVersion {
            app_id,
            side,
            connect_time,
            implementation,
            version,
        } if usage => {
            exec(
                tx,
                "INSERT INTO usage_client_versions \
                 (app_id, side, connect_time, implementation, version) VALUES ($1, $2, $3, $4, $5)",
                &[app_id, side, connect_time, implementation, version],
            )
            .await?
        }
        Write::UsageCurrent {
            rebooted,
            updated,
            blur_time,
            connections_websocket,
        } if usage => {
            // One summary per node (a single node has one row, as 0.8.0's `current`).
            exec(
                tx,
                "INSERT INTO usage_current \
                 (node, rebooted, updated, blur_time, connections_websocket) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node) DO UPDATE SET \
                 rebooted = EXCLUDED.rebooted, updated = EXCLUDED.updated, \
                 blur_time = EXCLUDED.blur_time, \
                 connections_websocket = EXCLUDED.connections_websocket",
                &[
                    &node,
                    rebooted,
                    updated,
                    &blur_time.map(big),
                    &big(*connections_websocket),
                ],
            )
            .await?
        }
        Write::UsageNameplate(_)
        | Write::UsageMailbox { .. }
        | Write::UsageClientVersion { .. }
        | Write::UsageCurrent { .. } => {}
    }
    Ok(())
}
