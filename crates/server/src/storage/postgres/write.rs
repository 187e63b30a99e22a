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

use super::text::encode;
use super::{PgError, listen};
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

/// The writes of `batch` worth a statement: a mailbox's `TouchMailbox` is dropped when a later
/// one of the same mailbox follows in the batch (times only grow, so the last touch has the
/// value; keeping the last one keeps it after any insert of that mailbox). Order is kept.
pub(super) fn without_repeated_touches(batch: &[Write]) -> Vec<&Write> {
    let mut later: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut kept: Vec<&Write> = batch
        .iter()
        .rev()
        .filter(|w| match w {
            Write::TouchMailbox { id, .. } => later.insert(id.as_str()),
            _ => true,
        })
        .collect();
    kept.reverse();
    kept
}

/// The `NOTIFY` of every mailbox that `batch` adds messages to (sent by PostgreSQL at
/// `COMMIT`, to every node's notice connection, see `listen.rs`).
pub(super) fn notices(batch: &[Write]) -> Vec<(&'static str, Params)> {
    let mut ids: Vec<&str> = batch
        .iter()
        .filter_map(|w| match w {
            Write::InsertMessage(m) => Some(m.mailbox_id.as_str()),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let stored = encode(id);
            let payload = if stored.len() > listen::MAX_PAYLOAD {
                listen::RESYNC_PAYLOAD.to_owned()
            } else {
                stored.into_owned()
            };
            (
                "SELECT pg_notify($1, $2)",
                vec![b(listen::CHANNEL.to_owned()), b(payload)],
            )
        })
        .collect()
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
    let s = |v: &String| b(encode(v).into_owned());
    let opt = |v: &Option<String>| b(v.as_deref().map(|v| encode(v).into_owned()));
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
                opt(&r.mood),
            ],
        ),
        Write::CloseMailboxSide {
            mailbox_id,
            side,
            mood,
        } => (
            "UPDATE mailbox_sides SET opened = FALSE, mood = $1 \
             WHERE mailbox_id = $2 AND side = $3",
            vec![opt(mood), s(mailbox_id), s(side)],
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
                opt(&r.msg_id),
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
                opt(implementation),
                opt(version),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::{
        MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Outcome, UsageRow,
    };
    use std::sync::{Arc, Mutex};

    fn every_write() -> Vec<Write> {
        let s = || "x".to_owned();
        let usage = UsageRow {
            app_id: s(),
            started: 1.0,
            waiting_time: None,
            total_time: 2.0,
            result: Outcome::Happy,
        };
        vec![
            Write::InsertNameplate(NameplateRow {
                app_id: s(),
                name: s(),
                mailbox_id: s(),
            }),
            Write::DeleteNameplate {
                app_id: s(),
                name: s(),
            },
            Write::InsertNameplateSide(NameplateSideRow {
                app_id: s(),
                name: s(),
                side: s(),
                claimed: true,
                added: 1.0,
            }),
            Write::ReleaseNameplateSide {
                app_id: s(),
                name: s(),
                side: s(),
            },
            Write::InsertMailbox(MailboxRow {
                id: s(),
                app_id: s(),
                updated: 1.0,
                for_nameplate: true,
            }),
            Write::TouchMailbox {
                id: s(),
                updated: 2.0,
            },
            Write::DeleteMailbox { id: s() },
            Write::InsertMailboxSide(MailboxSideRow {
                mailbox_id: s(),
                side: s(),
                opened: true,
                added: 1.0,
                mood: None,
            }),
            Write::CloseMailboxSide {
                mailbox_id: s(),
                side: s(),
                mood: Some("happy".into()),
            },
            Write::InsertMessage(MessageRow {
                app_id: s(),
                mailbox_id: s(),
                side: s(),
                phase: s(),
                body: s(),
                server_rx: 1.0,
                msg_id: None,
            }),
            Write::UsageNameplate(usage.clone()),
            Write::UsageMailbox {
                row: usage,
                for_nameplate: false,
            },
            Write::UsageClientVersion {
                app_id: s(),
                side: s(),
                connect_time: 1.0,
                implementation: None,
                version: None,
            },
            Write::UsageCurrent {
                rebooted: 1.0,
                updated: 2.0,
                blur_time: Some(60),
                connections_websocket: 3,
            },
        ]
    }

    /// Highest `$N` placeholder in `sql`.
    fn placeholders(sql: &str) -> usize {
        sql.split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn only_the_last_touch_of_a_mailbox_is_kept() {
        let touch = |id: &str, t: f64| Write::TouchMailbox {
            id: id.into(),
            updated: t,
        };
        let batch = vec![
            touch("a", 1.0),
            Write::DeleteMailbox { id: "b".into() },
            touch("b", 2.0),
            touch("a", 3.0),
        ];
        let kept = without_repeated_touches(&batch);
        assert_eq!(kept, vec![&batch[1], &batch[2], &batch[3]]);
    }

    #[test]
    fn every_write_is_one_statement_with_matching_parameters() {
        let writes = every_write();
        for w in &writes {
            let (sql, params) = statement(w, true, "node").unwrap();
            assert_eq!(placeholders(sql), params.len(), "{w:?}: {sql}");
            assert_eq!(sql.matches(';').count(), 0, "one statement: {sql}");
        }
        let (sql, params) = record_token("n", 1, 2.0);
        assert_eq!(placeholders(sql), params.len());
        // Without usage, the usage writes produce nothing and the rest are unchanged.
        let kept = writes
            .iter()
            .filter(|w| statement(w, false, "n").is_some())
            .count();
        assert_eq!(kept, writes.len() - 4);
    }

    /// A future that logs its first poll, is pending once, then yields `result`.
    struct Step {
        id: usize,
        log: Arc<Mutex<Vec<usize>>>,
        polled: bool,
        result: Result<(), usize>,
    }

    impl Future for Step {
        type Output = Result<(), usize>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            if !self.polled {
                self.polled = true;
                let id = self.id;
                self.log.lock().unwrap().push(id);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.result)
        }
    }

    #[tokio::test]
    async fn futures_are_first_polled_in_order_and_the_first_error_wins() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let steps = |fail: Option<usize>| -> Vec<Step> {
            (0..40)
                .map(|id| Step {
                    id,
                    log: log.clone(),
                    polled: false,
                    result: if Some(id) == fail { Err(id) } else { Ok(()) },
                })
                .collect()
        };
        assert_eq!(run_in_order(steps(None)).await, Ok(()));
        assert_eq!(*log.lock().unwrap(), (0..40).collect::<Vec<_>>());
        assert_eq!(run_in_order(steps(Some(7))).await, Err(7));
    }
}
