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
//! - Several nodes on one PostgreSQL database (issue #13): such a store says so
//!   ([`Storage::shared`]), and the engine then treats its own memory as a per-batch cache.
//!   Before handling a batch it asks the core which channels the batch may read
//!   ([`ChannelKeys`]) and calls [`Storage::begin`], which opens the batch's transaction,
//!   takes the store's channel lock and returns those channels' committed rows; the core
//!   decides on them (crowding, reclaiming, allocation among the names free in the table,
//!   replay), and [`Storage::commit`] applies the writes in that same transaction. So every
//!   decision is made on what every node committed, and two nodes can never hand out the
//!   same nameplate. After the batch the engine forgets the channels again; only its
//!   subscriptions (which connection listens to which mailbox, and how many messages it
//!   was sent) stay in memory.
//! - Messages added on another node arrive through [`Storage::inbound`]: the store calls the
//!   sink with [`Inbound::Mailbox`] for a mailbox that got messages (PostgreSQL: `NOTIFY`
//!   sent in the adding transaction), or [`Inbound::Resync`] when notices may have been
//!   missed (the listening connection was re-established). The engine re-reads those
//!   mailboxes (every subscribed one, for a resync) in its next batch, and the core sends
//!   each subscriber the stored messages past its count, so nothing is missed and nothing is
//!   sent twice.
//! - [`Storage::health`] tells the accept loop whether the store is reachable; a node whose
//!   database is gone refuses new clients until it is back.

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

/// The channels one batch may read from a shared store ([`Storage::begin`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelKeys {
    /// Apps whose nameplate names are all needed (`list`, `allocate`): names and mailbox
    /// ids only.
    pub apps: Vec<String>,
    /// Nameplates `(app_id, name)`, with their sides and their mailbox.
    pub nameplates: Vec<(String, String)>,
    /// Mailboxes, with their sides, messages (in stored order) and the nameplates (with
    /// sides) that point to them.
    pub mailboxes: Vec<String>,
    /// Also every mailbox last updated at or before this time (a prune pass).
    pub expired: Option<f64>,
}

impl ChannelKeys {
    /// Nothing to read.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
            && self.nameplates.is_empty()
            && self.mailboxes.is_empty()
            && self.expired.is_none()
    }

    /// Sort and remove repeated keys.
    pub fn dedup(&mut self) {
        self.apps.sort();
        self.apps.dedup();
        self.nameplates.sort();
        self.nameplates.dedup();
        self.mailboxes.sort();
        self.mailboxes.dedup();
    }
}

/// A change made by another node, announced by a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Messages were added to this mailbox.
    Mailbox(String),
    /// Notices may have been missed: re-read every subscribed mailbox.
    Resync,
}

/// Where a shared store delivers [`Inbound`] notices (called from the store's own threads;
/// must not block).
pub type InboundSink = Box<dyn Fn(Inbound) + Send + Sync>;

/// Whether a store is usable right now (shared by the store and the accept loop).
#[derive(Debug)]
pub struct StorageHealth {
    reachable: std::sync::atomic::AtomicBool,
    listening: std::sync::atomic::AtomicBool,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth {
            reachable: std::sync::atomic::AtomicBool::new(true),
            listening: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl StorageHealth {
    /// Whether the store answered its last call and (for a shared store) its notice
    /// connection is up.
    pub fn ready(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.reachable.load(Relaxed) && self.listening.load(Relaxed)
    }

    /// Record whether the last call reached the store.
    pub fn set_reachable(&self, ok: bool) {
        self.reachable.store(ok, std::sync::atomic::Ordering::Relaxed);
    }

    /// Record whether the notice connection is up.
    pub fn set_listening(&self, ok: bool) {
        self.listening.store(ok, std::sync::atomic::Ordering::Relaxed);
    }
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
    /// Apply a batch of writes atomically and durably. On a shared store, ends the
    /// transaction [`Storage::begin`] opened (or opens one, with the lock, if none is open).
    fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError>;
    /// Whether several nodes share this store (see the module doc). Default: no.
    fn shared(&self) -> bool {
        false
    }
    /// Shared store: open the batch's transaction, take the channel lock, and read `keys`.
    /// The lock is held until the next [`Storage::commit`] (or until the next `begin`, which
    /// rolls back). Default (not shared): nothing to read.
    fn begin(&mut self, keys: &ChannelKeys) -> Result<Snapshot, StorageError> {
        let _ = keys;
        Ok(Snapshot::default())
    }
    /// Shared store: deliver other nodes' changes to `sink` from now on. Default: none come.
    fn inbound(&mut self, sink: InboundSink) {
        let _ = sink;
    }
    /// The store's health flags. Default: always ready.
    fn health(&self) -> std::sync::Arc<StorageHealth> {
        std::sync::Arc::new(StorageHealth::default())
    }

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
    fn shared(&self) -> bool {
        (**self).shared()
    }
    fn begin(&mut self, keys: &ChannelKeys) -> Result<Snapshot, StorageError> {
        (**self).begin(keys)
    }
    fn inbound(&mut self, sink: InboundSink) {
        (**self).inbound(sink)
    }
    fn health(&self) -> std::sync::Arc<StorageHealth> {
        (**self).health()
    }

    fn ready(&mut self) -> Result<(), StorageError> {
        (**self).ready()
    }
}
