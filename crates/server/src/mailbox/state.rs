//! The channel state (apps, nameplates, mailboxes, sides, messages) held in memory, and its
//! operations with the semantics of server 0.8.0 (docs/protocol.md §1.5–§1.7).
//!
//! Every mutation appends the matching [`Write`]s to the caller's batch, in an order that keeps
//! the stored rows consistent (a mailbox before the nameplate that points to it, sides before
//! their parent is deleted). The in-memory state is therefore always what the storage will hold
//! once the batch commits. Per-connection state and replies live in [`super::core`]; this file
//! must not know about connections except as opaque listener ids.
//!
//! Identity is the protocol's own: a nameplate is `(app_id, name)`, a mailbox its random id.
//! The writes name things only that way; how a backend keys its rows (SQLite's integer
//! `nameplates.id`, say) is the backend's business and never comes back here.

use std::collections::HashMap;

use rand::Rng;

use super::allocate::Occupancy;
use super::usage::{mailbox_usage, nameplate_usage};
use crate::storage::{
    MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Outcome, Snapshot, Write,
};

/// Opaque id of a connection (a mailbox listener).
pub type ConnId = u64;

/// Why a claim or open was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelError {
    /// More than two sides.
    Crowded,
    /// The side released this nameplate before.
    Reclaimed,
    /// The mailbox id exists in another app.
    ForeignMailbox,
}

#[derive(Debug, Clone)]
struct NameplateSide {
    side: String,
    claimed: bool,
    added: f64,
}

#[derive(Debug, Clone)]
struct Nameplate {
    mailbox_id: String,
    sides: Vec<NameplateSide>,
}

/// A stored mailbox message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Sender side.
    pub side: String,
    /// Phase.
    pub phase: String,
    /// Body (hex).
    pub body: String,
    /// Arrival time.
    pub server_rx: f64,
    /// The `add` command's id.
    pub msg_id: Option<String>,
}

#[derive(Debug, Clone)]
struct MailboxSide {
    side: String,
    opened: bool,
    added: f64,
    mood: Option<String>,
}

#[derive(Debug, Clone)]
struct Mailbox {
    app_id: String,
    for_nameplate: bool,
    updated: f64,
    sides: Vec<MailboxSide>,
    messages: Vec<StoredMessage>,
    /// Names of the nameplates (in `app_id`) pointing here.
    nameplates: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct App {
    nameplates: HashMap<String, Nameplate>,
    occupancy: Occupancy,
}

/// Settings the state needs for usage rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageSettings {
    /// Write usage rows at all.
    pub enabled: bool,
    /// `--blur-usage` seconds.
    pub blur: Option<u64>,
}

/// A connection subscribed to a mailbox, and how many of its messages it has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listener {
    conn: ConnId,
    /// Messages `0..seen` of the mailbox (in stored order) were sent to it.
    seen: usize,
}

/// All channels of all apps, and this process's subscriptions.
///
/// The channel maps (`apps`, `mailboxes`) are either the whole committed state (one node:
/// SQLite) or, on a shared store, only the channels read for the current batch
/// ([`State::replace_channels`]). The subscriptions (`listeners`) are this node's own and
/// outlive every reload; each one counts the messages already sent, so a message that reaches
/// this node twice (its own `add` and a reload after another node's notice) is sent once.
#[derive(Debug, Default)]
pub struct State {
    apps: HashMap<String, App>,
    mailboxes: HashMap<String, Mailbox>,
    listeners: HashMap<String, Vec<Listener>>,
    usage: UsageSettings,
    /// Outcomes of mailboxes retired since the last [`State::take_retired`] (for metrics).
    retired: Vec<Outcome>,
}

/// Create a fresh mailbox id: base32 of 8 random bytes, lowercase, unpadded (13 characters).
fn new_mailbox_id(rng: &mut impl Rng) -> String {
    let bytes: [u8; 8] = rng.r#gen();
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &bytes).to_lowercase()
}

impl State {
    /// Rebuild the state from committed rows.
    pub fn from_snapshot(snap: Snapshot, usage: UsageSettings) -> Self {
        let mut st = State {
            usage,
            ..State::default()
        };
        st.fill(snap);
        st
    }

    /// Replace the channel maps with `snap` (the channels read for one batch from a shared
    /// store), keeping the subscriptions.
    pub fn replace_channels(&mut self, snap: Snapshot) {
        self.clear_channels();
        self.fill(snap);
    }

    /// Forget every channel (kept: the subscriptions). On a shared store this runs after each
    /// batch, so nothing read under one batch's lock is trusted in the next.
    pub fn clear_channels(&mut self) {
        self.apps.clear();
        self.mailboxes.clear();
    }

    /// For each subscription of a loaded mailbox that has not been sent every stored message:
    /// the connection and the messages it misses, oldest first (marked as sent).
    pub fn catch_up(&mut self) -> Vec<(ConnId, Vec<StoredMessage>)> {
        let mut out = Vec::new();
        for (id, listeners) in self.listeners.iter_mut() {
            let Some(mb) = self.mailboxes.get(id) else {
                continue;
            };
            for l in listeners.iter_mut() {
                if l.seen < mb.messages.len() {
                    out.push((l.conn, mb.messages[l.seen..].to_vec()));
                    l.seen = mb.messages.len();
                }
            }
        }
        out
    }

    /// The mailboxes this node has subscribers on.
    pub fn subscribed_mailboxes(&self) -> Vec<String> {
        self.listeners.keys().cloned().collect()
    }

    /// Whether this node has subscribers on `mailbox_id`.
    pub fn is_subscribed(&self, mailbox_id: &str) -> bool {
        self.listeners.contains_key(mailbox_id)
    }

    fn fill(&mut self, snap: Snapshot) {
        let st = self;
        for m in snap.mailboxes {
            st.mailboxes.insert(
                m.id,
                Mailbox {
                    app_id: m.app_id,
                    for_nameplate: m.for_nameplate,
                    updated: m.updated,
                    sides: Vec::new(),
                    messages: Vec::new(),
                    nameplates: Vec::new(),
                },
            );
        }
        for n in snap.nameplates {
            if let Some(mb) = st.mailboxes.get_mut(&n.mailbox_id) {
                mb.nameplates.push(n.name.clone());
            }
            let app = st.apps.entry(n.app_id.clone()).or_default();
            app.occupancy.insert(&n.name);
            app.nameplates.insert(
                n.name,
                Nameplate {
                    mailbox_id: n.mailbox_id,
                    sides: Vec::new(),
                },
            );
        }
        for s in snap.nameplate_sides {
            if let Some(np) = st
                .apps
                .get_mut(&s.app_id)
                .and_then(|a| a.nameplates.get_mut(&s.name))
            {
                np.sides.push(NameplateSide {
                    side: s.side,
                    claimed: s.claimed,
                    added: s.added,
                });
            }
        }
        for s in snap.mailbox_sides {
            if let Some(mb) = st.mailboxes.get_mut(&s.mailbox_id) {
                mb.sides.push(MailboxSide {
                    side: s.side,
                    opened: s.opened,
                    added: s.added,
                    mood: s.mood,
                });
            }
        }
        for m in snap.messages {
            if let Some(mb) = st.mailboxes.get_mut(&m.mailbox_id) {
                mb.messages.push(StoredMessage {
                    side: m.side,
                    phase: m.phase,
                    body: m.body,
                    server_rx: m.server_rx,
                    msg_id: m.msg_id,
                });
            }
        }
    }

    /// Sorted nameplate names of an app.
    pub fn nameplate_names(&self, app_id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .apps
            .get(app_id)
            .map(|a| a.nameplates.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Pick a free nameplate name in an app.
    pub fn choose_nameplate(&self, app_id: &str, rng: &mut impl Rng) -> Option<String> {
        match self.apps.get(app_id) {
            None => Occupancy::default().choose(rng, |_| false),
            Some(app) => app.occupancy.choose(rng, |n| app.nameplates.contains_key(n)),
        }
    }

    /// Ensure a mailbox row exists (server `_add_mailbox`).
    fn add_mailbox(
        &mut self,
        app_id: &str,
        mailbox_id: &str,
        for_nameplate: bool,
        now: f64,
        w: &mut Vec<Write>,
    ) -> Result<(), ChannelError> {
        match self.mailboxes.get(mailbox_id) {
            Some(mb) if mb.app_id == app_id => Ok(()),
            Some(_) => Err(ChannelError::ForeignMailbox),
            None => {
                self.mailboxes.insert(
                    mailbox_id.to_owned(),
                    Mailbox {
                        app_id: app_id.to_owned(),
                        for_nameplate,
                        updated: now,
                        sides: Vec::new(),
                        messages: Vec::new(),
                        nameplates: Vec::new(),
                    },
                );
                w.push(Write::InsertMailbox(MailboxRow {
                    id: mailbox_id.to_owned(),
                    app_id: app_id.to_owned(),
                    updated: now,
                    for_nameplate,
                }));
                Ok(())
            }
        }
    }

    /// Claim `name` for `side` (creating it and its mailbox if new) and open that mailbox.
    /// Returns the mailbox id.
    pub fn claim_nameplate(
        &mut self,
        app_id: &str,
        name: &str,
        side: &str,
        now: f64,
        rng: &mut impl Rng,
        w: &mut Vec<Write>,
    ) -> Result<String, ChannelError> {
        let exists = self
            .apps
            .get(app_id)
            .is_some_and(|a| a.nameplates.contains_key(name));
        if !exists {
            let mut mailbox_id = new_mailbox_id(rng);
            while self.mailboxes.contains_key(&mailbox_id) {
                mailbox_id = new_mailbox_id(rng);
            }
            self.add_mailbox(app_id, &mailbox_id, true, now, w)?;
            if let Some(mb) = self.mailboxes.get_mut(&mailbox_id) {
                mb.nameplates.push(name.to_owned());
            }
            let app = self.apps.entry(app_id.to_owned()).or_default();
            app.occupancy.insert(name);
            app.nameplates.insert(
                name.to_owned(),
                Nameplate {
                    mailbox_id: mailbox_id.clone(),
                    sides: Vec::new(),
                },
            );
            w.push(Write::InsertNameplate(NameplateRow {
                app_id: app_id.to_owned(),
                name: name.to_owned(),
                mailbox_id,
            }));
        }
        let Some(np) = self.apps.get_mut(app_id).and_then(|a| a.nameplates.get_mut(name)) else {
            return Err(ChannelError::Crowded); // unreachable: inserted above
        };
        match np.sides.iter().find(|s| s.side == side) {
            Some(s) if !s.claimed => return Err(ChannelError::Reclaimed),
            Some(_) => {}
            None => {
                np.sides.push(NameplateSide {
                    side: side.to_owned(),
                    claimed: true,
                    added: now,
                });
                w.push(Write::InsertNameplateSide(NameplateSideRow {
                    app_id: app_id.to_owned(),
                    name: name.to_owned(),
                    side: side.to_owned(),
                    claimed: true,
                    added: now,
                }));
            }
        }
        let mailbox_id = np.mailbox_id.clone();
        let np_sides = np.sides.len();
        self.open_mailbox(app_id, &mailbox_id, side, now, w)?;
        if np_sides > 2 {
            return Err(ChannelError::Crowded);
        }
        Ok(mailbox_id)
    }

    /// Clear `side`'s claim on `name`; retire the nameplate when no claims remain.
    /// Unknown nameplates and sides are a silent no-op.
    pub fn release_nameplate(&mut self, app_id: &str, name: &str, side: &str, now: f64, w: &mut Vec<Write>) {
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let Some(np) = app.nameplates.get_mut(name) else {
            return;
        };
        let Some(s) = np.sides.iter_mut().find(|s| s.side == side) else {
            return;
        };
        s.claimed = false;
        w.push(Write::ReleaseNameplateSide {
            app_id: app_id.to_owned(),
            name: name.to_owned(),
            side: side.to_owned(),
        });
        if np.sides.iter().any(|s| s.claimed) {
            return;
        }
        let mailbox_id = np.mailbox_id.clone();
        let added: Vec<f64> = np.sides.iter().map(|s| s.added).collect();
        app.nameplates.remove(name);
        app.occupancy.remove(name);
        if app.nameplates.is_empty() {
            self.apps.remove(app_id);
        }
        if let Some(mb) = self.mailboxes.get_mut(&mailbox_id) {
            mb.nameplates.retain(|n| n != name);
        }
        w.push(Write::DeleteNameplate {
            app_id: app_id.to_owned(),
            name: name.to_owned(),
        });
        if self.usage.enabled {
            w.push(Write::UsageNameplate(nameplate_usage(
                app_id,
                added,
                now,
                false,
                self.usage.blur,
            )));
        }
    }

    /// Record `side` as having opened the mailbox (creating it if unknown) and touch it.
    pub fn open_mailbox(
        &mut self,
        app_id: &str,
        mailbox_id: &str,
        side: &str,
        now: f64,
        w: &mut Vec<Write>,
    ) -> Result<(), ChannelError> {
        self.add_mailbox(app_id, mailbox_id, false, now, w)?;
        let Some(mb) = self.mailboxes.get_mut(mailbox_id) else {
            return Err(ChannelError::ForeignMailbox);
        };
        if !mb.sides.iter().any(|s| s.side == side) {
            mb.sides.push(MailboxSide {
                side: side.to_owned(),
                opened: true,
                added: now,
                mood: None,
            });
            w.push(Write::InsertMailboxSide(MailboxSideRow {
                mailbox_id: mailbox_id.to_owned(),
                side: side.to_owned(),
                opened: true,
                added: now,
                mood: None,
            }));
        }
        mb.updated = now;
        w.push(Write::TouchMailbox {
            id: mailbox_id.to_owned(),
            updated: now,
        });
        if mb.sides.len() > 2 {
            return Err(ChannelError::Crowded);
        }
        Ok(())
    }

    /// Subscribe a connection; returns the stored messages to replay.
    pub fn add_listener(&mut self, mailbox_id: &str, conn: ConnId) -> &[StoredMessage] {
        let Some(mb) = self.mailboxes.get(mailbox_id) else {
            return &[];
        };
        let listeners = self.listeners.entry(mailbox_id.to_owned()).or_default();
        if !listeners.iter().any(|l| l.conn == conn) {
            listeners.push(Listener {
                conn,
                seen: mb.messages.len(),
            });
        }
        &mb.messages
    }

    /// Unsubscribe a connection.
    pub fn remove_listener(&mut self, mailbox_id: &str, conn: ConnId) {
        if let Some(listeners) = self.listeners.get_mut(mailbox_id) {
            listeners.retain(|l| l.conn != conn);
            if listeners.is_empty() {
                self.listeners.remove(mailbox_id);
            }
        }
    }

    /// The connections subscribed to `mailbox_id`, marking all its messages as sent to them.
    fn take_listeners(&mut self, mailbox_id: &str, seen: usize) -> Vec<ConnId> {
        match self.listeners.get_mut(mailbox_id) {
            Some(ls) => ls
                .iter_mut()
                .map(|l| {
                    l.seen = seen;
                    l.conn
                })
                .collect(),
            None => Vec::new(),
        }
    }

    /// Number of stored messages, or `None` if the mailbox does not exist.
    pub fn message_count(&self, mailbox_id: &str) -> Option<usize> {
        self.mailboxes.get(mailbox_id).map(|m| m.messages.len())
    }

    /// Store a message and return the listeners to deliver it to.
    pub fn add_message(&mut self, mailbox_id: &str, msg: StoredMessage, w: &mut Vec<Write>) -> Vec<ConnId> {
        let Some(mb) = self.mailboxes.get_mut(mailbox_id) else {
            return Vec::new();
        };
        w.push(Write::InsertMessage(MessageRow {
            app_id: mb.app_id.clone(),
            mailbox_id: mailbox_id.to_owned(),
            side: msg.side.clone(),
            phase: msg.phase.clone(),
            body: msg.body.clone(),
            server_rx: msg.server_rx,
            msg_id: msg.msg_id.clone(),
        }));
        mb.updated = msg.server_rx;
        w.push(Write::TouchMailbox {
            id: mailbox_id.to_owned(),
            updated: msg.server_rx,
        });
        mb.messages.push(msg);
        let seen = mb.messages.len();
        self.take_listeners(mailbox_id, seen)
    }

    /// Mark `side` closed with `mood`. If no side remains open, delete the mailbox, its
    /// messages and the nameplates pointing to it. Returns the listeners that were dropped
    /// because the mailbox is gone.
    pub fn close_mailbox(
        &mut self,
        app_id: &str,
        mailbox_id: &str,
        side: &str,
        mood: Option<&str>,
        now: f64,
        w: &mut Vec<Write>,
    ) -> Vec<ConnId> {
        let Some(mb) = self.mailboxes.get_mut(mailbox_id) else {
            return Vec::new();
        };
        if mb.app_id != app_id {
            return Vec::new();
        }
        let Some(s) = mb.sides.iter_mut().find(|s| s.side == side) else {
            return Vec::new();
        };
        s.opened = false;
        s.mood = mood.map(str::to_owned);
        w.push(Write::CloseMailboxSide {
            mailbox_id: mailbox_id.to_owned(),
            side: side.to_owned(),
            mood: mood.map(str::to_owned),
        });
        if mb.sides.iter().any(|s| s.opened) {
            return Vec::new();
        }
        self.delete_mailbox(mailbox_id, now, false, w)
    }

    /// Delete a mailbox with its nameplates; writes usage rows. Returns its listeners.
    fn delete_mailbox(
        &mut self,
        mailbox_id: &str,
        now: f64,
        pruned: bool,
        w: &mut Vec<Write>,
    ) -> Vec<ConnId> {
        let Some(mb) = self.mailboxes.remove(mailbox_id) else {
            return Vec::new();
        };
        if let Some(app) = self.apps.get_mut(&mb.app_id) {
            for name in &mb.nameplates {
                if let Some(np) = app.nameplates.remove(name) {
                    app.occupancy.remove(name);
                    w.push(Write::DeleteNameplate {
                        app_id: mb.app_id.clone(),
                        name: name.clone(),
                    });
                    // Like server 0.8.0, a nameplate retired together with its mailbox gets a
                    // usage row only when it is pruned.
                    if pruned && self.usage.enabled {
                        let added = np.sides.iter().map(|s| s.added).collect();
                        w.push(Write::UsageNameplate(nameplate_usage(
                            &mb.app_id,
                            added,
                            now,
                            true,
                            self.usage.blur,
                        )));
                    }
                }
            }
            if app.nameplates.is_empty() {
                self.apps.remove(&mb.app_id);
            }
        }
        w.push(Write::DeleteMailbox {
            id: mailbox_id.to_owned(),
        });
        let listeners = self
            .listeners
            .remove(mailbox_id)
            .map(|ls| ls.into_iter().map(|l| l.conn).collect())
            .unwrap_or_default();
        let sides: Vec<(f64, Option<&str>)> = mb.sides.iter().map(|s| (s.added, s.mood.as_deref())).collect();
        let row = mailbox_usage(&mb.app_id, &sides, now, pruned, self.usage.blur);
        self.retired.push(row.result);
        if self.usage.enabled {
            w.push(Write::UsageMailbox {
                row,
                for_nameplate: mb.for_nameplate,
            });
        }
        listeners
    }

    /// Pruning pass: touch mailboxes that have listeners, then delete every mailbox (and its
    /// nameplates) not updated since `old`. Returns the listeners of deleted mailboxes.
    pub fn prune(&mut self, now: f64, old: f64, w: &mut Vec<Write>) -> Vec<ConnId> {
        let mut subscribed: Vec<&String> = self.listeners.keys().collect();
        subscribed.sort();
        for id in subscribed {
            // On a shared store the mailbox may not be loaded: the touch is written anyway.
            if let Some(mb) = self.mailboxes.get_mut(id) {
                mb.updated = now;
            }
            w.push(Write::TouchMailbox {
                id: id.clone(),
                updated: now,
            });
        }
        let mut old_ids: Vec<String> = self
            .mailboxes
            .iter()
            .filter(|(_, mb)| mb.updated <= old)
            .map(|(id, _)| id.clone())
            .collect();
        old_ids.sort();
        let mut dropped = Vec::new();
        for id in old_ids {
            dropped.extend(self.delete_mailbox(&id, now, true, w));
        }
        dropped
    }

    /// Number of subscribed connections (usage `current.connections_websocket`).
    pub fn listener_count(&self) -> usize {
        self.listeners.values().map(Vec::len).sum()
    }

    /// Number of mailboxes (for tests and stats).
    pub fn mailbox_count(&self) -> usize {
        self.mailboxes.len()
    }

    /// Number of apps with at least one nameplate (metrics).
    pub fn app_count(&self) -> usize {
        self.apps.len()
    }

    /// Number of nameplates in all apps (metrics).
    pub fn nameplate_count(&self) -> usize {
        self.apps.values().map(|a| a.nameplates.len()).sum()
    }

    /// The outcomes of the mailboxes retired since the last call (metrics).
    pub fn take_retired(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.retired)
    }
}
