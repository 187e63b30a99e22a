//! The engine thread: runs the [`Core`] and the [`Storage`] with group commit.
//!
//! One dedicated OS thread owns the core and the database. It waits for the first input, then
//! takes every input already queued (up to [`MAX_BATCH`]), handles them all in order, commits
//! all their writes in **one** transaction, and only after the commit returns does it hand the
//! replies to the connection tasks. So no `ack`, reply or delivered `message` is ever visible
//! to a client before its effects are durable, while one fsync is shared by every client whose
//! command arrived during the previous commit.
//!
//! If a commit fails it is retried once; if it fails again the engine stops (fail-stop: the
//! in-memory state would be ahead of the disk), every connection is closed, and
//! [`crate::serve_mailbox`] returns the error. Nothing unacknowledged is lost, because nothing
//! of the failed batch was sent.
//!
//! On a store shared by several nodes ([`Storage::shared`], see `crate::storage`) a batch is
//! different: the engine first asks the core which channels the batch may read, has the
//! store open the batch's transaction under its channel lock and read them, lets the core
//! decide on those rows, commits the writes in the same transaction, and forgets the rows.
//! Notices of other nodes' messages ([`EngineInput::Inbound`]) make it re-read the mailboxes
//! this node has subscribers on. A failed batch does not stop a shared engine: nothing of it
//! was sent, its connections are closed (their clients reconnect, perhaps to another node,
//! and start again from the committed state), and the next batch starts afresh.
//!
//! The engine never blocks on a client: replies go into each connection's bounded [`Outbox`];
//! a client whose queue is full is too slow and is disconnected.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wormhole_proto::server_msg::{ServerMessage, YourAddress};

use super::core::{Core, CoreConfig, Effects, Frame, Input, Out, Reply, Stats};
use super::outbox::{Outbox, PushError};
use super::state::ConnId;
use crate::metrics::MailboxMetrics;
use crate::storage::{Inbound, Snapshot, Storage, StorageError, Write};

/// A count as a gauge value.
fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Most inputs handled in one batch (one transaction).
pub const MAX_BATCH: usize = 4096;
/// Most non-urgent writes kept uncommitted.
const MAX_LAZY: usize = 4096;

/// Whether the replies of a batch containing `w` must wait for a commit.
///
/// Only a mailbox's `updated` time and the usage `current` row may lag: they steer pruning and
/// statistics, not what any client was told. Losing them in a crash only moves a pruning
/// deadline back to the last committed activity. They are committed with the next batch that
/// has real changes, before more than [`MAX_LAZY`] pile up, and at every prune tick.
fn must_sync(w: &Write) -> bool {
    !matches!(w, Write::TouchMailbox { .. } | Write::UsageCurrent { .. })
}

/// Queue of outgoing TEXT frames of one connection.
pub type OutSender = Arc<Outbox>;

/// What connection tasks (and the prune timer) send to the engine.
#[derive(Debug)]
pub enum EngineInput {
    /// A WebSocket connection opened; replies go to `out`.
    Connected {
        /// Connection id (unique for the process lifetime).
        conn: ConnId,
        /// Its address for the welcome.
        address: YourAddress,
        /// Its outgoing queue.
        out: OutSender,
    },
    /// A data frame.
    Frame {
        /// The connection.
        conn: ConnId,
        /// The parsed frame.
        frame: Frame,
    },
    /// The connection closed.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// Prune tick.
    Prune,
    /// Another node changed something (shared store only).
    Inbound(Inbound),
    /// `/ready`: run the storage's cheap query and answer (the error's text on failure).
    Ready(tokio::sync::oneshot::Sender<Result<(), String>>),
}

/// Seconds since the epoch.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Serialize a server message with `server_tx` appended.
pub fn encode(msg: &ServerMessage, server_tx: f64) -> Option<String> {
    let mut s = serde_json::to_string(msg).ok()?;
    if !s.ends_with('}') || s.len() < 2 {
        return None;
    }
    s.pop();
    s.push_str(",\"server_tx\":");
    s.push_str(&serde_json::to_string(&server_tx).ok()?);
    s.push('}');
    Some(s)
}

fn encode_reply(reply: &Reply, server_tx: f64) -> Option<String> {
    match reply {
        Reply::Msg(m) => encode(m, server_tx),
        Reply::Ack(id) => {
            let id = serde_json::to_string(id).ok()?;
            let tx = serde_json::to_string(&server_tx).ok()?;
            Some(format!(r#"{{"type":"ack","id":{id},"server_tx":{tx}}}"#))
        }
    }
}

/// The engine state owned by its thread.
pub struct Engine<S> {
    core: Core<rand::rngs::StdRng>,
    storage: S,
    outs: HashMap<ConnId, OutSender>,
    /// Committed-later writes (see [`must_sync`]).
    lazy: Vec<Write>,
    /// Set when an inbound notice could not be queued: re-read every subscribed mailbox.
    resync: Arc<AtomicBool>,
    /// Shared store: connections closed because their batch failed; their frames still in
    /// the queue are ignored (so nothing after the lost batch is applied), until they are gone.
    dropped: HashSet<ConnId>,
    metrics: MailboxMetrics,
}

impl<S: Storage> Engine<S> {
    /// Load the committed state from `storage` and build the core.
    pub fn new(mut storage: S, config: CoreConfig) -> Result<Self, StorageError> {
        // A shared store is read per batch, never as a whole.
        let snapshot = if storage.shared() {
            Snapshot::default()
        } else {
            storage.load()?
        };
        let core = Core::new(snapshot, config, rand::rngs::StdRng::from_entropy());
        Ok(Engine {
            core,
            storage,
            outs: HashMap::new(),
            lazy: Vec::new(),
            resync: Arc::new(AtomicBool::new(false)),
            dropped: HashSet::new(),
            metrics: MailboxMetrics::default(),
        })
    }

    /// The flag an inbound sink sets when it could not queue a notice.
    pub fn resync_flag(&self) -> Arc<AtomicBool> {
        self.resync.clone()
    }

    /// The store (to hand it the inbound sink before the engine runs).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Report into `metrics` (instead of a private set nobody reads).
    pub fn with_metrics(mut self, metrics: MailboxMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Run until every sender of `rx` is gone (Ok) or storage fails twice (Err).
    pub fn run(mut self, mut rx: mpsc::Receiver<EngineInput>) -> Result<(), StorageError> {
        let mut batch = Vec::with_capacity(64);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(i) => batch.push(i),
                    Err(_) => break,
                }
            }
            self.step(&mut batch)?;
        }
        self.flush()
    }

    /// Handle one batch: process, commit, deliver.
    pub fn step(&mut self, batch: &mut Vec<EngineInput>) -> Result<(), StorageError> {
        if self.storage.shared() {
            self.step_shared(batch);
            return Ok(());
        }
        let now = now_secs();
        let mut fx = Effects::default();
        let mut force = false;
        for input in batch.drain(..) {
            let input = match input {
                EngineInput::Connected { conn, address, out } => {
                    self.outs.insert(conn, out);
                    Input::Connected { conn, address }
                }
                EngineInput::Frame { conn, frame } => Input::Frame { conn, frame },
                EngineInput::Disconnected { conn } => {
                    self.outs.remove(&conn);
                    Input::Disconnected { conn }
                }
                EngineInput::Prune => {
                    force = true;
                    Input::Prune
                }
                EngineInput::Inbound(_) => continue, // one node: nothing comes from elsewhere
                EngineInput::Ready(answer) => {
                    let _ = answer.send(self.storage.ready().map_err(|e| e.to_string()));
                    continue;
                }
            };
            self.core.handle(input, now, &mut fx);
        }
        let urgent = fx.writes.iter().any(must_sync);
        self.lazy.append(&mut fx.writes);
        if force || self.lazy.len() >= MAX_LAZY || urgent {
            self.flush()?;
        }
        self.count(&fx.stats);
        self.deliver(fx.out);
        Ok(())
    }

    /// One batch on a shared store: read the channels it touches under the store's lock,
    /// decide, commit in the same transaction, then deliver (see the module doc).
    fn step_shared(&mut self, batch: &mut Vec<EngineInput>) {
        let now = now_secs();
        let mut inputs = Vec::with_capacity(batch.len());
        let mut notices = Vec::new();
        let mut resync = self.resync.swap(false, Ordering::Relaxed);
        let mut involved = HashSet::new();
        for input in batch.drain(..) {
            inputs.push(match input {
                EngineInput::Connected { conn, address, out } => {
                    self.outs.insert(conn, out);
                    involved.insert(conn);
                    Input::Connected { conn, address }
                }
                EngineInput::Frame { conn, .. } if self.dropped.contains(&conn) => continue,
                EngineInput::Frame { conn, frame } => {
                    involved.insert(conn);
                    Input::Frame { conn, frame }
                }
                EngineInput::Disconnected { conn } => {
                    self.outs.remove(&conn);
                    self.dropped.remove(&conn);
                    Input::Disconnected { conn }
                }
                EngineInput::Prune => Input::Prune,
                EngineInput::Inbound(Inbound::Mailbox(m)) => {
                    notices.push(m);
                    continue;
                }
                EngineInput::Inbound(Inbound::Resync) => {
                    resync = true;
                    continue;
                }
                EngineInput::Ready(answer) => {
                    let _ = answer.send(self.storage.ready().map_err(|e| e.to_string()));
                    continue;
                }
            });
        }
        let mut keys = self.core.touches(&inputs, now);
        if resync {
            keys.mailboxes.extend(self.core.subscribed_mailboxes());
        } else {
            let subscribed = notices.into_iter().filter(|m| self.core.is_subscribed(m));
            keys.mailboxes.extend(subscribed);
        }
        keys.dedup();
        let mut fx = Effects::default();
        let open = !keys.is_empty();
        if open {
            match self.storage.begin(&keys) {
                Ok(snapshot) => self.core.reload(snapshot, &mut fx),
                Err(e) => {
                    tracing::error!("storage unavailable, dropping the clients of this batch: {e}");
                    self.refuse(inputs, &involved, now);
                    return;
                }
            }
        }
        for input in inputs {
            self.core.handle(input, now, &mut fx);
        }
        // Counted before the batch's channels are forgotten: on a shared store the gauges
        // describe the channels this batch read, the counters what this node handled.
        self.count(&fx.stats);
        self.core.forget_channels();
        self.lazy.append(&mut fx.writes);
        let urgent = self.lazy.iter().any(must_sync);
        if open || urgent || self.lazy.len() >= MAX_LAZY {
            let result = self.storage.commit(&self.lazy);
            self.lazy.clear();
            if let Err(e) = result {
                tracing::error!("storage commit failed, dropping the clients of this batch: {e}");
                let mut affected = involved;
                for o in &fx.out {
                    match o {
                        Out::Send { conn, .. } => {
                            affected.insert(*conn);
                        }
                        Out::Broadcast { conns, .. } => affected.extend(conns.iter().copied()),
                    }
                }
                self.close_all(&affected);
                self.resync.store(true, Ordering::Relaxed);
                return;
            }
        }
        self.deliver(fx.out);
    }

    /// A batch whose transaction could not start: keep the connection bookkeeping, answer
    /// nothing, close the connections that sent something (they reconnect and retry).
    fn refuse(&mut self, inputs: Vec<Input>, involved: &HashSet<ConnId>, now: f64) {
        let mut ignored = Effects::default();
        for input in inputs {
            if matches!(input, Input::Connected { .. } | Input::Disconnected { .. }) {
                self.core.handle(input, now, &mut ignored);
            }
        }
        self.close_all(involved);
        self.resync.store(true, Ordering::Relaxed);
    }

    fn close_all(&mut self, conns: &HashSet<ConnId>) {
        for conn in conns {
            if let Some(outbox) = self.outs.remove(conn) {
                outbox.close();
                self.dropped.insert(*conn);
            }
        }
    }

    /// Bring the metrics up to date after a batch.
    fn count(&mut self, stats: &Stats) {
        let m = &self.metrics;
        m.messages.inc_by(stats.messages);
        m.message_bytes.inc_by(stats.message_bytes);
        for r in &stats.rejected {
            m.reject(*r);
        }
        for outcome in self.core.take_retired() {
            m.retired(outcome);
        }
        let state = self.core.state();
        m.apps.set(gauge(state.app_count()));
        m.nameplates.set(gauge(state.nameplate_count()));
        m.mailboxes.set(gauge(state.mailbox_count()));
    }

    /// Commit every pending write.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.lazy.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let first = self.storage.commit(&self.lazy);
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(first) = first {
            tracing::error!("storage commit failed, retrying once: {first}");
            self.storage.commit(&self.lazy)?;
        }
        self.lazy.clear();
        Ok(())
    }

    fn push(&mut self, conn: ConnId, text: Utf8Bytes) {
        let Some(outbox) = self.outs.get(&conn) else {
            return;
        };
        if let Err(e) = outbox.push(text) {
            if e == PushError::Full {
                tracing::info!("connection {conn}: outgoing queue full, disconnecting slow client");
            }
            // The outbox is closed: the connection task closes the WebSocket.
            self.outs.remove(&conn);
        }
    }

    fn deliver(&mut self, out: Vec<Out>) {
        let tx = now_secs();
        for o in out {
            match o {
                Out::Send { conn, reply } => {
                    if let Some(text) = encode_reply(&reply, tx) {
                        self.push(conn, Utf8Bytes::from(text));
                    }
                }
                Out::Broadcast { conns, msg } => {
                    if let Some(text) = encode(&msg, tx) {
                        let text = Utf8Bytes::from(text);
                        for conn in conns {
                            self.push(conn, text.clone());
                        }
                    }
                }
            }
        }
    }
}

impl<S> Drop for Engine<S> {
    fn drop(&mut self) {
        // Engine stopping (storage failure or shutdown): close every connection.
        for outbox in self.outs.values() {
            outbox.close();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mailbox::state::UsageSettings;
    use crate::storage::Snapshot;
    use std::sync::Mutex;

    /// Records committed batches.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<Write>>>>);

    impl Storage for Recorder {
        fn load(&mut self) -> Result<Snapshot, StorageError> {
            Ok(Snapshot::default())
        }
        fn commit(&mut self, batch: &[Write]) -> Result<(), StorageError> {
            self.0.lock().unwrap().push(batch.to_vec());
            Ok(())
        }
    }

    fn frame(conn: ConnId, v: serde_json::Value) -> EngineInput {
        EngineInput::Frame {
            conn,
            frame: Frame::Json(v),
        }
    }

    #[tokio::test]
    async fn replies_wait_for_commit_but_touches_do_not_force_one() {
        let rec = Recorder::default();
        let config = CoreConfig {
            welcome: Default::default(),
            allow_list: true,
            usage: UsageSettings::default(),
            max_mailbox_messages: 10,
            channel_expiration: 60.0,
            hashcash: None,
        };
        let mut engine = Engine::new(rec.clone(), config).unwrap();
        let outbox = Arc::new(Outbox::new(100));
        let address = YourAddress {
            port: 1,
            ipv4: None,
            ipv6: Some("::1".into()),
        };
        let mut batch = vec![
            EngineInput::Connected {
                conn: 1,
                address,
                out: outbox.clone(),
            },
            frame(1, serde_json::json!({"type": "bind", "appid": "a", "side": "s"})),
            frame(1, serde_json::json!({"type": "claim", "nameplate": "5"})),
        ];
        engine.step(&mut batch).unwrap();
        assert_eq!(rec.0.lock().unwrap().len(), 1, "claim committed before replies");
        let sent = outbox.take().await.unwrap();
        assert_eq!(sent.len(), 4, "welcome, 2 acks, claimed");
        // open of the mailbox this side already opened by claiming: only a touch.
        let mb = match serde_json::from_str::<serde_json::Value>(sent[3].as_str()) {
            Ok(v) => v["mailbox"].as_str().unwrap().to_owned(),
            Err(e) => panic!("{e}"),
        };
        let mut batch = vec![frame(1, serde_json::json!({"type": "open", "mailbox": mb}))];
        engine.step(&mut batch).unwrap();
        assert_eq!(rec.0.lock().unwrap().len(), 1, "a touch alone does not commit");
        assert_eq!(outbox.take().await.unwrap().len(), 1);
        // The next real change commits the pending touch with it, in order.
        let mut batch = vec![frame(
            1,
            serde_json::json!({"type": "add", "phase": "p", "body": ""}),
        )];
        engine.step(&mut batch).unwrap();
        let commits = rec.0.lock().unwrap().clone();
        assert_eq!(commits.len(), 2);
        assert!(matches!(commits[1][0], Write::TouchMailbox { .. }));
        assert!(commits[1].iter().any(|w| matches!(w, Write::InsertMessage(_))));
    }

    #[test]
    fn encode_appends_server_tx() {
        let s = encode(&ServerMessage::Closed { server_tx: None }, 1.5).unwrap();
        assert_eq!(s, r#"{"type":"closed","server_tx":1.5}"#);
        let s = encode_reply(&Reply::Ack(serde_json::json!("ab")), 2.0).unwrap();
        assert_eq!(s, r#"{"type":"ack","id":"ab","server_tx":2.0}"#);
        let s = encode_reply(&Reply::Ack(serde_json::Value::Null), 2.0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v["id"].is_null());
    }
}
