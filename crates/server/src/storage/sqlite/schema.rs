//! The SQL schema of the SQLite backend: server 0.8.0's channel tables (`version` = 1) and its
//! usage tables (`version` = 2). Owns: the table and index definitions. Must not: run them.

/// The server 0.8.0 channel tables. Indexes: only those our writes use (every read of the
/// state happens once, at start-up). 0.8.0's lookup indexes (`nameplates_idx`, ...) serve its
/// per-command queries, which we do not make; each would cost extra page writes per commit.
/// `nameplates.id` is assigned by this backend (`ids.rs`), so it needs no AUTOINCREMENT
/// bookkeeping.
pub(super) const CHANNEL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS `version` (`version` INTEGER);
CREATE TABLE IF NOT EXISTS `nameplates` (
  `id` INTEGER PRIMARY KEY, `app_id` VARCHAR, `name` VARCHAR,
  `mailbox_id` VARCHAR REFERENCES `mailboxes`(`id`), `request_id` VARCHAR);
CREATE TABLE IF NOT EXISTS `nameplate_sides` (
  `nameplates_id` REFERENCES `nameplates`(`id`), `claimed` BOOLEAN, `side` VARCHAR,
  `added` INTEGER);
CREATE INDEX IF NOT EXISTS `nameplate_sides_np_idx` ON `nameplate_sides` (`nameplates_id`);
CREATE TABLE IF NOT EXISTS `mailboxes` (
  `app_id` VARCHAR, `id` VARCHAR PRIMARY KEY, `updated` INTEGER, `for_nameplate` BOOLEAN);
CREATE TABLE IF NOT EXISTS `mailbox_sides` (
  `mailbox_id` REFERENCES `mailboxes`(`id`), `opened` BOOLEAN, `side` VARCHAR,
  `added` INTEGER, `mood` VARCHAR);
CREATE INDEX IF NOT EXISTS `mailbox_sides_mb_idx` ON `mailbox_sides` (`mailbox_id`);
CREATE TABLE IF NOT EXISTS `messages` (
  `app_id` VARCHAR, `mailbox_id` VARCHAR, `side` VARCHAR, `phase` VARCHAR, `body` VARCHAR,
  `server_rx` INTEGER, `msg_id` VARCHAR);
CREATE INDEX IF NOT EXISTS `messages_mb_idx` ON `messages` (`mailbox_id`);
";

pub(super) const USAGE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage.`version` (`version` INTEGER);
CREATE TABLE IF NOT EXISTS usage.`current` (
  `rebooted` INTEGER, `updated` INTEGER, `blur_time` INTEGER, `connections_websocket` INTEGER);
CREATE TABLE IF NOT EXISTS usage.`nameplates` (
  `app_id` VARCHAR, `started` INTEGER, `waiting_time` INTEGER, `total_time` INTEGER,
  `result` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`nameplates_idx` ON `nameplates` (`app_id`, `started`);
CREATE TABLE IF NOT EXISTS usage.`mailboxes` (
  `app_id` VARCHAR, `for_nameplate` BOOLEAN, `started` INTEGER, `total_time` INTEGER,
  `waiting_time` INTEGER, `result` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`mailboxes_idx` ON `mailboxes` (`app_id`, `started`);
CREATE INDEX IF NOT EXISTS usage.`mailboxes_result_idx` ON `mailboxes` (`result`);
CREATE TABLE IF NOT EXISTS usage.`client_versions` (
  `app_id` VARCHAR, `side` VARCHAR, `connect_time` INTEGER, `implementation` VARCHAR,
  `version` VARCHAR);
CREATE INDEX IF NOT EXISTS usage.`client_versions_time_idx` ON `client_versions` (`connect_time`);
CREATE INDEX IF NOT EXISTS usage.`client_versions_appid_time_idx`
  ON `client_versions` (`app_id`, `connect_time`);
";
