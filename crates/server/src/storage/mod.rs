//! Durable storage of the mailbox server, behind the [`Storage`] trait.
//!
//! The mailbox core ([`crate::mailbox::core`]) keeps the authoritative state in memory and
//! describes every change as a list of [`Write`]s. The engine hands one batch of writes (the
//! effects of many commands from many clients) to [`Storage::commit`], which must make all of
//! them durable atomically before returning; only then are the replies released. On start-up
//! [`Storage::load`] returns the state that was last committed.
//!
//! Owns: the vocabulary shared by the core and every backend (the records, [`Write`],
//! [`Snapshot`], [`StorageError`]) and the choice of backend at run time ([`StorageConfig`],
//! in `backend.rs`). Must not: contain protocol logic or name any database library; backends
//! (one file each: [`sqlite`], [`postgres`]) must not reorder writes inside a batch or decide protocol
//! outcomes, and nothing of theirs (row ids, error types, connections) may reach the core.
//!
//! Why this shape:
//! - Everything here is in the protocol's terms: a nameplate is `(app_id, name)`, a mailbox is
//!   its random id, a side is the client's side string; moods, messages and usage summaries
//!   are what the protocol says. The core never needs a database key, so none crosses the
//!   trait in either direction; a backend that wants integer keys (SQLite's `nameplates.id`,
//!   kept for server 0.8.0's file layout) maps names to keys itself.
//! - Errors are typed by what failed (open, load, commit, version), with the backend's own
//!   error as a boxed `source`: the engine and the binary act on the variant and print the
//!   chain, and never look inside a backend's error.
//! - The backend is a `Box<dyn Storage>` picked from the flags at start-up
//!   ([`StorageConfig::open`]). The trait is called once per batch (one transaction), so
//!   dynamic dispatch costs nothing measurable, and a second backend is one new file plus one
//!   variant of [`StorageConfig`], with no change to `mailbox/`.
//! - The PostgreSQL backend for one node (issue #13) fits as is: `load` reads the tables,
//!   `commit` runs the batch in one transaction. Several nodes sharing one database need more
//!   than this trait gives today: claims and allocations decided by the database rather than
//!   by one node's memory, and messages added on another node arriving as engine inputs. The
//!   writes already name the domain operations (claim a side, add a message, close with a
//!   mood), which is what such a backend turns into conditional statements; the conflict
//!   answers and the inbound stream will be additions to this trait, made with that backend.
//!   Until then the PostgreSQL backend holds a node lock on its database (`postgres/lock.rs`)
//!   so that a second node is refused at start instead of silently diverging.
//! - The plan for several nodes, in this trait's terms (not built yet): (1) a channel's rows
//!   become the authority: before the core decides a `claim`, `open`, `release` or `close`,
//!   the engine asks the store for that channel's current rows (`SELECT … FOR UPDATE` on the
//!   nameplate or mailbox row, in the batch's transaction), so crowding and reclaiming are
//!   decided on what every node committed; `allocate` picks among names that are free in the
//!   table, and the `(app_id, name)` primary key turns a race into a conflict answer that the
//!   engine retries with another name. (2) An inbound stream: each commit that adds messages
//!   sends `NOTIFY` with the mailbox id and `messages.seq`; every node `LISTEN`s, reads
//!   `messages WHERE mailbox_id = … AND seq > last_seen` for mailboxes it has listeners on,
//!   and after any reconnect of its listening connection re-reads from its last seen `seq`
//!   for all of them, so nothing is missed and nothing is delivered twice. Those are two
//!   additions to this trait (`lock_channel`-style reads inside the commit, and a receiver of
//!   inbound changes handed to the engine); the core then treats an inbound message as it
//!   treats a local `add`, minus the write.

mod backend;
mod error;
pub mod postgres;
pub mod sqlite;

pub use backend::StorageConfig;
pub use error::{BackendError, StorageError};

/// A nameplate: its name within an app, and the mailbox it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct NameplateRow {
    /// Application id.
    pub app_id: String,
    /// The nameplate, e.g. `"7"` (unique within `app_id`).
    pub name: String,
    /// The mailbox it points to.
    pub mailbox_id: String,
}

/// A side that claimed a nameplate.
#[derive(Debug, Clone, PartialEq)]
pub struct NameplateSideRow {
    /// The nameplate's application id.
    pub app_id: String,
    /// The nameplate's name.
    pub name: String,
    /// The side.
    pub side: String,
    /// `true` after `claim`, `false` after `release`.
    pub claimed: bool,
    /// When the side first claimed it (seconds since the epoch).
    pub added: f64,
}

/// A mailbox.
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

/// A side that opened a mailbox.
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

/// A message added to a mailbox.
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

/// The usage summary of a retired nameplate or mailbox.
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
    /// How it ended.
    pub result: Outcome,
}

/// How a nameplate or mailbox ended, as recorded in its usage summary (server 0.8.0's
/// `result` strings, see [`Outcome::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Two sides met (and, for a mailbox, no side reported a problem).
    Happy,
    /// Only one side came, or a side closed with mood `lonely`.
    Lonely,
    /// Deleted by pruning.
    Pruney,
    /// More than two sides.
    Crowded,
    /// A mailbox that no side opened.
    Quiet,
    /// A side closed with mood `scary` (wrong code).
    Scary,
    /// A side closed with mood `errory`.
    Errory,
}

impl Outcome {
    /// The string server 0.8.0 stores for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Happy => "happy",
            Outcome::Lonely => "lonely",
            Outcome::Pruney => "pruney",
            Outcome::Crowded => "crowded",
            Outcome::Quiet => "quiet",
            Outcome::Scary => "scary",
            Outcome::Errory => "errory",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to the stored state. A batch is applied in order inside one transaction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// Insert a nameplate.
    InsertNameplate(NameplateRow),
    /// Delete a nameplate and all its sides.
    DeleteNameplate {
        /// Application id.
        app_id: String,
        /// The nameplate.
        name: String,
    },
    /// Insert a nameplate side.
    InsertNameplateSide(NameplateSideRow),
    /// Mark a side's claim as released.
    ReleaseNameplateSide {
        /// Application id.
        app_id: String,
        /// The nameplate.
        name: String,
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
    /// Usage: a retired nameplate.
    UsageNameplate(UsageRow),
    /// Usage: a retired mailbox.
    UsageMailbox {
        /// The summary.
        row: UsageRow,
        /// Whether the mailbox was created for a nameplate.
        for_nameplate: bool,
    },
    /// Usage: a client's `bind`.
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
    /// Usage: replace the one summary of the running server.
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

/// A durable store for the mailbox state.
///
/// Contract: [`Storage::commit`] applies the whole batch or nothing, in order, and when it
/// returns `Ok` the batch survives a crash of the process (and, at the backend's strictest
/// durability setting, of the machine). After an `Err` the store holds what it held before
/// the call, so the engine may retry the same batch. Usage writes are dropped by a store that
/// was not asked to keep usage.
pub trait Storage: Send {
    /// Read the whole committed channel state.
    fn load(&mut self) -> Result<Snapshot, StorageError>;
    /// Apply a batch of writes atomically and durably.
    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError>;
    /// Whether the store answers now: a cheap query, for `/ready`. Changes nothing.
    fn ready(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl<S: Storage + ?Sized> Storage for Box<S> {
    fn load(&mut self) -> Result<Snapshot, StorageError> {
        (**self).load()
    }
    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
        (**self).commit(batch)
    }
    fn ready(&mut self) -> Result<(), StorageError> {
        (**self).ready()
    }
}
