//! Durable storage of the mailbox server, behind the [`Storage`] trait.
//!
//! The mailbox core ([`crate::mailbox::core`]) keeps the authoritative state in memory and
//! describes every change as a list of [`Write`]s. The engine hands one batch of writes (the
//! effects of many commands from many clients) to [`Storage::commit`], which must make all of
//! them durable atomically before returning; only then are the replies released. On start-up
//! [`Storage::load`] returns the state that was last committed.
//!
//! This module defines the row shapes and the trait. It must not contain protocol logic, and
//! implementations must not reorder writes inside a batch.

pub mod sqlite;

/// A nameplate row (`nameplates` table).
#[derive(Debug, Clone, PartialEq)]
pub struct NameplateRow {
    /// Database id (`nameplates.id`), referenced by its side rows.
    pub id: i64,
    /// Application id.
    pub app_id: String,
    /// The nameplate, e.g. `"7"`.
    pub name: String,
    /// The mailbox it points to.
    pub mailbox_id: String,
}

/// A `nameplate_sides` row.
#[derive(Debug, Clone, PartialEq)]
pub struct NameplateSideRow {
    /// The nameplate's database id.
    pub nameplate_id: i64,
    /// The side.
    pub side: String,
    /// `true` after `claim`, `false` after `release`.
    pub claimed: bool,
    /// When the side first claimed it (seconds since the epoch).
    pub added: f64,
}

/// A `mailboxes` row.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxRow {
    /// Mailbox id (unique across apps).
    pub id: String,
    /// Application id.
    pub app_id: String,
    /// Last activity (seconds since the epoch), used for pruning.
    pub updated: f64,
    /// Created by a nameplate claim rather than a bare `open`.
    pub for_nameplate: bool,
}

/// A `mailbox_sides` row.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxSideRow {
    /// The mailbox.
    pub mailbox_id: String,
    /// The side.
    pub side: String,
    /// `true` after `open`, `false` after `close`.
    pub opened: bool,
    /// When the side first opened it.
    pub added: f64,
    /// The mood given at `close`, if any.
    pub mood: Option<String>,
}

/// A `messages` row.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// Application id.
    pub app_id: String,
    /// The mailbox.
    pub mailbox_id: String,
    /// The sending side.
    pub side: String,
    /// The phase.
    pub phase: String,
    /// The body (hex, as sent).
    pub body: String,
    /// When the server received it.
    pub server_rx: f64,
    /// The `id` of the `add` command.
    pub msg_id: Option<String>,
}

/// One usage summary row (usage DB `nameplates` or `mailboxes` table).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// Application id.
    pub app_id: String,
    /// First side's arrival, blurred.
    pub started: f64,
    /// Seconds between the first and second side, if there was a second.
    pub waiting_time: Option<f64>,
    /// Seconds from the first side to deletion.
    pub total_time: f64,
    /// `happy`, `lonely`, `pruney`, `crowded`, `quiet`, `scary`, `errory`.
    pub result: String,
}

/// One change to the stored state. A batch is applied in order inside one transaction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// Insert a nameplate.
    InsertNameplate(NameplateRow),
    /// Delete a nameplate and all its side rows.
    DeleteNameplate {
        /// The nameplate's database id.
        id: i64,
    },
    /// Insert a nameplate side.
    InsertNameplateSide(NameplateSideRow),
    /// Mark a side's claim as released.
    ReleaseNameplateSide {
        /// The nameplate's database id.
        nameplate_id: i64,
        /// The side.
        side: String,
    },
    /// Insert a mailbox.
    InsertMailbox(MailboxRow),
    /// Set a mailbox's `updated` time.
    TouchMailbox {
        /// The mailbox.
        id: String,
        /// New `updated` value.
        updated: f64,
    },
    /// Delete a mailbox with its sides and messages.
    DeleteMailbox {
        /// The mailbox.
        id: String,
    },
    /// Insert a mailbox side.
    InsertMailboxSide(MailboxSideRow),
    /// Mark a side closed, with its mood.
    CloseMailboxSide {
        /// The mailbox.
        mailbox_id: String,
        /// The side.
        side: String,
        /// The mood.
        mood: Option<String>,
    },
    /// Store a message.
    InsertMessage(MessageRow),
    /// Usage DB: a retired nameplate.
    UsageNameplate(UsageRow),
    /// Usage DB: a retired mailbox.
    UsageMailbox {
        /// The summary.
        row: UsageRow,
        /// Whether the mailbox was created for a nameplate.
        for_nameplate: bool,
    },
    /// Usage DB: a client's `bind`.
    UsageClientVersion {
        /// Application id.
        app_id: String,
        /// The side.
        side: String,
        /// Bind time, blurred.
        connect_time: f64,
        /// `client_version[0]`.
        implementation: Option<String>,
        /// `client_version[1]`.
        version: Option<String>,
    },
    /// Usage DB: replace the single `current` row.
    UsageCurrent {
        /// Server start time.
        rebooted: f64,
        /// Now.
        updated: f64,
        /// The `--blur-usage` value.
        blur_time: Option<u64>,
        /// Number of subscribed connections.
        connections_websocket: u64,
    },
}

/// Everything [`Storage::load`] returns: the committed channel state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// All nameplates.
    pub nameplates: Vec<NameplateRow>,
    /// All nameplate sides.
    pub nameplate_sides: Vec<NameplateSideRow>,
    /// All mailboxes.
    pub mailboxes: Vec<MailboxRow>,
    /// All mailbox sides.
    pub mailbox_sides: Vec<MailboxSideRow>,
    /// All messages, in the order they were received.
    pub messages: Vec<MessageRow>,
}

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite reported an error (disk full, I/O error, corrupt or foreign file).
    /// Check the path, free space and permissions of the database files.
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database has a schema version this server does not understand.
    /// Use a fresh file, or the server version that wrote it.
    #[error("unsupported {db} database version {version} (expected {expected})")]
    Version {
        /// Which database (`channel` or `usage`).
        db: &'static str,
        /// The version found.
        version: i64,
        /// The version we support.
        expected: i64,
    },
}

/// A durable store for the mailbox state.
///
/// Contract: [`Storage::commit`] applies the whole batch or nothing, and when it returns `Ok`
/// the batch survives a crash of the process (and, with `synchronous=FULL`, of the machine).
pub trait Storage: Send {
    /// Read the whole committed channel state.
    fn load(&mut self) -> Result<Snapshot, StorageError>;
    /// Apply a batch of writes atomically and durably.
    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError>;
}
