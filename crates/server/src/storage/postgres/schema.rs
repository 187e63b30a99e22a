//! The PostgreSQL schema as numbered migrations, and the code that brings a database up to date.
//!
//! Owns: the DDL of every version and the `wormhole_migrations` table that records which ones
//! ran. Must not: touch the rows of the tables it creates.
//!
//! On start every node runs [`migrate`]: inside one transaction it takes an advisory lock (so
//! nodes starting together do not race on `CREATE TABLE`), reads the versions already applied,
//! refuses a database newer than this server, and applies the missing migrations in order. A
//! new version is a new entry at the end of [`MIGRATIONS`]; entries are never edited.

use tokio_postgres::Client;

use super::PgError;

/// Key of the advisory lock held while migrating (any constant; it names this schema).
const MIGRATION_LOCK: i64 = 0x776f_726d_686f_6c65; // "wormhole"

/// The migrations, version `i + 1` at index `i`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the channel state, the usage records, and per-node commit tokens.
    //    `seq` columns keep insertion order (SQLite's rowid). Nameplates are unique per app,
    //    which is also what lets several nodes share the table later.
    "
CREATE TABLE nameplates (
  app_id TEXT NOT NULL, name TEXT NOT NULL, mailbox_id TEXT NOT NULL,
  seq BIGSERIAL NOT NULL, PRIMARY KEY (app_id, name));
CREATE TABLE nameplate_sides (
  seq BIGSERIAL PRIMARY KEY, app_id TEXT NOT NULL, name TEXT NOT NULL, side TEXT NOT NULL,
  claimed BOOLEAN NOT NULL, added DOUBLE PRECISION NOT NULL);
CREATE INDEX nameplate_sides_np_idx ON nameplate_sides (app_id, name);
CREATE TABLE mailboxes (
  id TEXT PRIMARY KEY, app_id TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL,
  for_nameplate BOOLEAN NOT NULL);
CREATE TABLE mailbox_sides (
  seq BIGSERIAL PRIMARY KEY, mailbox_id TEXT NOT NULL, side TEXT NOT NULL,
  opened BOOLEAN NOT NULL, added DOUBLE PRECISION NOT NULL, mood TEXT);
CREATE INDEX mailbox_sides_mb_idx ON mailbox_sides (mailbox_id);
CREATE TABLE messages (
  seq BIGSERIAL PRIMARY KEY, app_id TEXT NOT NULL, mailbox_id TEXT NOT NULL,
  side TEXT NOT NULL, phase TEXT NOT NULL, body TEXT NOT NULL,
  server_rx DOUBLE PRECISION NOT NULL, msg_id TEXT);
CREATE INDEX messages_mb_idx ON messages (mailbox_id, seq);
CREATE TABLE usage_current (
  node TEXT PRIMARY KEY, rebooted DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,
  blur_time BIGINT, connections_websocket BIGINT NOT NULL);
CREATE TABLE usage_nameplates (
  app_id TEXT NOT NULL, started DOUBLE PRECISION NOT NULL, waiting_time DOUBLE PRECISION,
  total_time DOUBLE PRECISION NOT NULL, result TEXT NOT NULL);
CREATE INDEX usage_nameplates_idx ON usage_nameplates (app_id, started);
CREATE TABLE usage_mailboxes (
  app_id TEXT NOT NULL, for_nameplate BOOLEAN NOT NULL, started DOUBLE PRECISION NOT NULL,
  total_time DOUBLE PRECISION NOT NULL, waiting_time DOUBLE PRECISION, result TEXT NOT NULL);
CREATE INDEX usage_mailboxes_idx ON usage_mailboxes (app_id, started);
CREATE TABLE usage_client_versions (
  app_id TEXT NOT NULL, side TEXT NOT NULL, connect_time DOUBLE PRECISION NOT NULL,
  implementation TEXT, version TEXT);
CREATE INDEX usage_client_versions_time_idx ON usage_client_versions (connect_time);
CREATE TABLE node_commits (
  node TEXT PRIMARY KEY, token BIGINT NOT NULL, updated DOUBLE PRECISION NOT NULL);
",
    // 2: several nodes read single channels per batch: the nameplates of a mailbox, and the
    //    mailboxes a prune pass expires, by index.
    "
CREATE INDEX nameplates_mailbox_idx ON nameplates (mailbox_id);
CREATE INDEX mailboxes_updated_idx ON mailboxes (updated);
",
];

/// The newest version this server knows.
pub(super) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database to [`latest`]; returns the version found before, or the error.
pub(super) async fn migrate(client: &mut Client, now: f64) -> Result<i64, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS wormhole_migrations (
           version INTEGER PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM wormhole_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    if found > latest() {
        return Err(PgError::TooNew { found });
    }
    for (i, ddl) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(ddl).await?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO wormhole_migrations (version, applied) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}
