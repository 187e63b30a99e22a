//! Applying a batch of [`Write`]s to the PostgreSQL tables in one transaction.
//!
//! Owns: the one statement each write becomes ([`statement`]), and sending them pipelined in
//! batch order ([`run_in_order`]). Must not: decide protocol outcomes or reorder the writes.
//!
//! Pipelining: every statement is prepared first (once per connection, cached), then all are
//! sent back to back without waiting for answers, so a batch costs about one round trip
//! instead of one per write. Order holds because tokio-postgres queues a statement on the
//! connection when its future is first polled, and [`run_in_order`] first-polls them in batch
//! order; PostgreSQL executes a connection's messages in the order received. Each write is a
//! single statement (deletes of several tables use data-modifying `WITH`) for the same reason.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::PgError;
use crate::storage::Write;

/// One statement's parameters, owned (they outlive the borrow of the batch by the futures).
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// A count as PostgreSQL's BIGINT (counts beyond `i64::MAX` do not occur; clamp anyway).
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn b<T: ToSql + Sync + Send + 'static>(v: T) -> Box<dyn ToSql + Sync + Send> {
    Box::new(v)
}

/// The statement recording that `node` committed batch `token` (read back after an
/// ambiguous `COMMIT`); the first statement of every batch.
pub(super) fn record_token(node: &str, token: i64, now: f64) -> (&'static str, Params) {
    (
        "INSERT INTO node_commits (node, token, updated) VALUES ($1, $2, $3) \
         ON CONFLICT (node) DO UPDATE SET token = EXCLUDED.token, updated = EXCLUDED.updated",
        vec![b(node.to_owned()), b(token), b(now)],
    )
}

/// Prepare and run `statements` in one pipelined burst, in order; the first error wins.
pub(super) async fn run_all(
    tx: &Transaction<'_>,
    statements: Vec<(&'static str, Params)>,
) -> Result<(), PgError> {
    let mut prepared = Vec::with_capacity(statements.len());
    for (sql, _) in &statements {
        prepared.push(tx.prepare_cached(sql).await?);
    }
    let refs: Vec<Vec<&(dyn ToSql + Sync)>> = statements
        .iter()
        .map(|(_, p)| p.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect())
        .collect();
    let futures = prepared
        .iter()
        .zip(&refs)
        .map(|(st, params)| tx.execute(st, params))
        .collect();
    run_in_order(futures).await?;
    Ok(())
}

/// Await every future, polling the pending ones in index order on each wake-up (so their first
/// polls happen in order); the first error is returned once all are done or one failed.
async fn run_in_order<F, T, E>(futures: Vec<F>) -> Result<(), E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in pending.iter_mut() {
            let Some(f) = slot else { continue };
            match f.as_mut().poll(cx) {
                Poll::Ready(Ok(_)) => *slot = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => all_done = false,
            }
        }
        if all_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The one statement that applies `w`, or `None` for a usage write without usage.
pub(super) fn statement(w: &Write, usage: bool, node: &str) -> Option<(&'static str, Params)> {
    let s = |v: &String| b(v.clone());
    Some(match w {
        Write::InsertNameplate(r) => (
            "INSERT INTO nameplates (app_id, name, mailbox_id) VALUES ($1, $2, $3)",
            vec![s(&r.app_id), s(&r.name), s(&r.mailbox_id)],
        ),
        Write::DeleteNameplate { app_id, name } => (
            "WITH sides AS (DELETE FROM nameplate_sides WHERE app_id = $1 AND name = $2) \
             DELETE FROM nameplates WHERE app_id = $1 AND name = $2",
            vec![s(app_id), s(name)],
        ),
        Write::InsertNameplateSide(r) => (
            "INSERT INTO nameplate_sides (app_id, name, side, claimed, added) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![s(&r.app_id), s(&r.name), s(&r.side), b(r.claimed), b(r.added)],
        ),
        Write::ReleaseNameplateSide { app_id, name, side } => (
            "UPDATE nameplate_sides SET claimed = FALSE \
             WHERE app_id = $1 AND name = $2 AND side = $3",
            vec![s(app_id), s(name), s(side)],
        ),
        Write::InsertMailbox(r) => (
            "INSERT INTO mailboxes (id, app_id, updated, for_nameplate) VALUES ($1, $2, $3, $4)",
            vec![s(&r.id), s(&r.app_id), b(r.updated), b(r.for_nameplate)],
        ),
        Write::TouchMailbox { id, updated } => (
            "UPDATE mailboxes SET updated = $1 WHERE id = $2",
            vec![b(*updated), s(id)],
        ),
        Write::DeleteMailbox { id } => (
            "WITH m AS (DELETE FROM messages WHERE mailbox_id = $1), \
             s AS (DELETE FROM mailbox_sides WHERE mailbox_id = $1) \
             DELETE FROM mailboxes WHERE id = $1",
            vec![s(id)],
        ),
        Write::InsertMailboxSide(r) => (
            "INSERT INTO mailbox_sides (mailbox_id, side, opened, added, mood) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                s(&r.mailbox_id),
                s(&r.side),
                b(r.opened),
                b(r.added),
                b(r.mood.clone()),
            ],
        ),
        Write::CloseMailboxSide {
            mailbox_id,
            side,
            mood,
        } => (
            "UPDATE mailbox_sides SET opened = FALSE, mood = $1 \
             WHERE mailbox_id = $2 AND side = $3",
            vec![b(mood.clone()), s(mailbox_id), s(side)],
        ),
        Write::InsertMessage(r) => (
            "INSERT INTO messages (app_id, mailbox_id, side, phase, body, server_rx, msg_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                s(&r.app_id),
                s(&r.mailbox_id),
                s(&r.side),
                s(&r.phase),
                s(&r.body),
                b(r.server_rx),
                b(r.msg_id.clone()),
            ],
        ),
        Write::UsageNameplate(u) if usage => (
            "INSERT INTO usage_nameplates (app_id, started, total_time, waiting_time, result) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                s(&u.app_id),
                b(u.started),
                b(u.total_time),
                b(u.waiting_time),
                b(u.result.as_str()),
            ],
        ),
        Write::UsageMailbox { row, for_nameplate } if usage => (
            "INSERT INTO usage_mailboxes \
             (app_id, started, total_time, waiting_time, result, for_nameplate) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                s(&row.app_id),
                b(row.started),
                b(row.total_time),
                b(row.waiting_time),
                b(row.result.as_str()),
                b(*for_nameplate),
            ],
        ),
        Write::UsageClientVersion {
            app_id,
            side,
            connect_time,
            implementation,
            version,
        } if usage => (
            "INSERT INTO usage_client_versions \
             (app_id, side, connect_time, implementation, version) VALUES ($1, $2, $3, $4, $5)",
            vec![
                s(app_id),
                s(side),
                b(*connect_time),
                b(implementation.clone()),
                b(version.clone()),
            ],
        ),
        // One summary per node (a single node has one row, as 0.8.0's `current`).
        Write::UsageCurrent {
            rebooted,
            updated,
            blur_time,
            connections_websocket,
        } if usage => (
            "INSERT INTO usage_current \
             (node, rebooted, updated, blur_time, connections_websocket) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node) DO UPDATE SET \
             rebooted = EXCLUDED.rebooted, updated = EXCLUDED.updated, \
             blur_time = EXCLUDED.blur_time, \
             connections_websocket = EXCLUDED.connections_websocket",
            vec![
                b(node.to_owned()),
                b(*rebooted),
                b(*updated),
                b(blur_time.map(big)),
                b(big(*connections_websocket)),
            ],
        ),
        Write::UsageNameplate(_)
        | Write::UsageMailbox { .. }
        | Write::UsageClientVersion { .. }
        | Write::UsageCurrent { .. } => return None,
    })
}
