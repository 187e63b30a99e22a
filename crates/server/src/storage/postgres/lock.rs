//! The single-node guard: a session-level advisory lock that one mailbox node holds on its
//! database for as long as it runs.
//!
//! Why: each node keeps the authoritative channel state in its engine's memory (see
//! `storage/mod.rs`), so two nodes writing one database would hand out the same nameplates and
//! never see each other's messages. Until several nodes are supported, a second node is refused
//! at start with [`PgError::InUse`], instead of failing later in a confusing way.
//!
//! The lock lives on a connection of its own, outside the pool. If that connection drops
//! (PostgreSQL restarted), the next commit takes the lock again before writing, and fails if
//! another node took it meanwhile. A node killed with SIGKILL frees its lock once PostgreSQL
//! sees the socket close, so a replacement started right after waits for it (up to
//! `--database-wait`).
//!
//! Owns: that connection and the lock key. Must not: run anything else on the connection.

use tokio_postgres::{Client, Config, NoTls};

use std::time::Duration;

use super::PgError;

/// Key of the node lock (any constant, distinct from the migration lock).
const NODE_LOCK: i64 = 0x776f_726d_6e6f_6465; // "wormnode"

/// A held node lock (released when dropped: the connection closes).
pub(super) struct NodeLock {
    client: Client,
}

impl NodeLock {
    /// Whether the lock's connection is gone (and with it the lock).
    pub(super) fn is_lost(&self) -> bool {
        self.client.is_closed()
    }
}

/// Connect and take the lock, retrying connection failures and a held lock until
/// `wait` has passed.
pub(super) async fn take(config: Config, wait: Duration) -> Result<NodeLock, PgError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let err = match try_take(&config, wait).await {
            Ok(lock) => return Ok(lock),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn try_take(config: &Config, wait: Duration) -> Result<NodeLock, PgError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL node-lock connection ended: {e}");
        }
    });
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&NODE_LOCK])
        .await?
        .try_get(0)?;
    if got {
        Ok(NodeLock { client })
    } else {
        Err(PgError::InUse { secs: wait.as_secs() })
    }
}
