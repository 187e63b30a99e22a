//! The sans-IO mailbox server: connections' protocol state and command dispatch.
//!
//! [`Core::handle`] takes one [`Input`] (a connection opened, a frame arrived, a connection
//! closed, a prune tick) and the current time, mutates the in-memory [`State`], and appends the
//! storage [`Write`]s and the outgoing replies to an [`Effects`]. The engine commits the writes
//! and only then releases the replies. Error strings follow server 0.8.0 (docs/protocol.md §1.3).
//!
//! This file must not do I/O, read the clock, or block.

use std::collections::HashMap;

use rand::Rng;
use serde_json::{Map, Value};
use wormhole_proto::server_msg::{NameplateEntry, ServerMessage, Welcome, YourAddress};

use super::fields;
use super::state::{ChannelError, ConnId, State, StoredMessage, UsageSettings};
use super::usage::blur;
use crate::metrics::Reason;
use crate::storage::{ChannelKeys, Outcome, Snapshot, Write};

/// Settings of the core (from the command line).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The welcome body, without `your-address` (added per connection).
    pub welcome: Welcome,
    /// Answer `list` with the nameplates (false: `--disallow-list`).
    pub allow_list: bool,
    /// Usage DB settings.
    pub usage: UsageSettings,
    /// Most messages a mailbox may hold.
    pub max_mailbox_messages: usize,
    /// Seconds of inactivity after which a channel is pruned.
    pub channel_expiration: f64,
    /// Proof of work asked of new connections before `bind` (`--require-hashcash`).
    pub hashcash: Option<HashcashPolicy>,
}

/// `--require-hashcash BITS` [`--hashcash-above-rate N`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HashcashPolicy {
    /// Leading zero bits a stamp's SHA-1 must have.
    pub bits: u32,
    /// Ask only while more than this many connections per second arrive (10 s average);
    /// `None`: always.
    pub above_rate: Option<f64>,
}

/// New connections per second over the last [`RateMeter::WINDOW`] seconds.
#[derive(Debug, Default, Clone)]
struct RateMeter {
    /// (second, arrivals in it), one slot per second of the window.
    slots: [(i64, u32); RateMeter::WINDOW],
}

impl RateMeter {
    const WINDOW: usize = 10;

    fn second(now: f64) -> i64 {
        now.floor() as i64
    }

    fn record(&mut self, now: f64) {
        let sec = Self::second(now);
        let i = sec.rem_euclid(Self::WINDOW as i64) as usize;
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.0 != sec {
                *slot = (sec, 0);
            }
            slot.1 = slot.1.saturating_add(1);
        }
    }

    fn rate(&self, now: f64) -> f64 {
        let sec = Self::second(now);
        let recent = self
            .slots
            .iter()
            .filter(|(s, _)| *s > sec - Self::WINDOW as i64 && *s <= sec)
            .map(|(_, n)| f64::from(*n))
            .sum::<f64>();
        recent / Self::WINDOW as f64
    }
}

/// A frame as parsed by the connection task.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A JSON value (not necessarily an object).
    Json(Value),
    /// Not JSON at all: the parse error and the (truncated) text.
    Invalid {
        /// What was wrong.
        error: String,
        /// The frame's text (possibly truncated), echoed as `orig`.
        orig: String,
    },
}

/// One event for the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// A WebSocket connection was opened.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The client's address for `welcome["your-address"]`.
        address: YourAddress,
    },
    /// A data frame arrived.
    Frame {
        /// The connection.
        conn: ConnId,
        /// Its content.
        frame: Frame,
    },
    /// The connection is gone.
    Disconnected {
        /// The connection.
        conn: ConnId,
    },
    /// Time to prune old channels and refresh usage stats.
    Prune,
}

/// One reply to one connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An `ack` echoing this `id` value (kept verbatim, `null` if absent).
    Ack(Value),
    /// Any other message.
    Msg(ServerMessage),
}

/// A message to send once the batch is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// To one connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The reply.
        reply: Reply,
    },
    /// The same message to several connections (a mailbox broadcast).
    Broadcast {
        /// The connections.
        conns: Vec<ConnId>,
        /// The message.
        msg: ServerMessage,
    },
}

/// What handling inputs produced.
#[derive(Debug, Default)]
pub struct Effects {
    /// Storage writes, to commit before any of `out` is sent.
    pub writes: Vec<Write>,
    /// Replies, in order.
    pub out: Vec<Out>,
    /// Counts for the metrics.
    pub stats: Stats,
}

/// What the metrics learn from one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// Messages added.
    pub messages: u64,
    /// Their body bytes.
    pub message_bytes: u64,
    /// Commands refused by a limit.
    pub rejected: Vec<Reason>,
}

impl Effects {
    fn send(&mut self, conn: ConnId, msg: ServerMessage) {
        self.out.push(Out::Send {
            conn,
            reply: Reply::Msg(msg),
        });
    }
}

/// Per-connection protocol state (server 0.8.0 `WebSocketServer` attributes).
#[derive(Debug, Default)]
struct Conn {
    app: Option<String>,
    side: Option<String>,
    did_allocate: bool,
    did_claim: bool,
    did_release: bool,
    did_close: bool,
    /// The nameplate of this connection's `claim`.
    nameplate: Option<String>,
    /// The mailbox named by the last `open` (even a failed one).
    mailbox_id: Option<String>,
    /// The mailbox opened (and subscribed) on this connection.
    open_mailbox: Option<String>,
    /// The hashcash resource this connection must pay for before `bind` (`None`: free to bind).
    owes_stamp: Option<String>,
}

/// The mailbox server logic.
#[derive(Debug)]
pub struct Core<R> {
    state: State,
    conns: HashMap<ConnId, Conn>,
    config: CoreConfig,
    rng: R,
    last_now: f64,
    rebooted: Option<f64>,
    arrivals: RateMeter,
}

fn error(conn: ConnId, fx: &mut Effects, text: impl Into<String>, orig: Value) {
    fx.send(
        conn,
        ServerMessage::Error {
            error: text.into(),
            orig,
            server_tx: None,
        },
    );
}

impl<R: Rng> Core<R> {
    /// A core over the committed `snapshot`.
    pub fn new(snapshot: Snapshot, config: CoreConfig, rng: R) -> Self {
        Core {
            state: State::from_snapshot(snapshot, config.usage),
            conns: HashMap::new(),
            config,
            rng,
            last_now: 0.0,
            rebooted: None,
            arrivals: RateMeter::default(),
        }
    }

    /// The channel state (for tests and stats).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The channels that handling `inputs` (in order, at `now`) may read, for a store shared
    /// by several nodes: the engine reads exactly these from the store, under its lock, and
    /// hands them to [`Core::reload`] before handling the inputs. It may name more than is
    /// used, never less: a claim names its nameplate (whose mailbox the store adds), an `add`
    /// or `close` the connection's mailbox, `list` and `allocate` the app's names, a prune
    /// tick every expired mailbox.
    pub fn touches(&self, inputs: &[Input], now: f64) -> ChannelKeys {
        let now = now.max(self.last_now);
        let mut keys = ChannelKeys::default();
        let mut bound: HashMap<ConnId, String> = HashMap::new();
        for input in inputs {
            let (conn, msg) = match input {
                Input::Prune => {
                    keys.expired = Some(now - self.config.channel_expiration);
                    continue;
                }
                Input::Frame {
                    conn,
                    frame: Frame::Json(Value::Object(msg)),
                } => (*conn, msg),
                _ => continue,
            };
            let c = self.conns.get(&conn);
            let text = |k: &str| msg.get(k).and_then(Value::as_str).map(str::to_owned);
            let mtype = msg.get("type").and_then(Value::as_str).unwrap_or("");
            if mtype == "bind" {
                if let (None, Some(app)) = (c.and_then(|c| c.app.as_ref()), text("appid")) {
                    bound.entry(conn).or_insert(app);
                }
                continue;
            }
            let Some(app) = c
                .and_then(|c| c.app.clone())
                .or_else(|| bound.get(&conn).cloned())
            else {
                continue;
            };
            match mtype {
                "list" | "allocate" => keys.apps.push(app),
                "claim" => keys.nameplates.extend(text("nameplate").map(|n| (app, n))),
                "release" => {
                    let n = text("nameplate").or_else(|| c.and_then(|c| c.nameplate.clone()));
                    keys.nameplates.extend(n.map(|n| (app, n)));
                }
                "open" => keys.mailboxes.extend(text("mailbox")),
                "add" => keys.mailboxes.extend(c.and_then(|c| c.open_mailbox.clone())),
                "close" => {
                    let m = text("mailbox").or_else(|| c.and_then(|c| c.mailbox_id.clone()));
                    keys.mailboxes.extend(m);
                }
                _ => {}
            }
        }
        keys.dedup();
        keys
    }

    /// Mailboxes this node has subscribers on (to re-read after a missed notice).
    pub fn subscribed_mailboxes(&self) -> Vec<String> {
        self.state.subscribed_mailboxes()
    }

    /// Whether this node has subscribers on `mailbox_id`.
    pub fn is_subscribed(&self, mailbox_id: &str) -> bool {
        self.state.is_subscribed(mailbox_id)
    }

    /// Shared store: replace the channel state with the channels just read for this batch,
    /// and send every subscriber the messages of those mailboxes it has not had yet (added
    /// on another node), oldest first.
    pub fn reload(&mut self, snapshot: Snapshot, fx: &mut Effects) {
        self.state.replace_channels(snapshot);
        for (conn, messages) in self.state.catch_up() {
            for m in &messages {
                fx.send(conn, message(m));
            }
        }
    }

    /// Shared store: forget the channels read for the batch just handled.
    pub fn forget_channels(&mut self) {
        self.state.clear_channels();
    }

    /// Outcomes of the mailboxes retired since the last call (metrics).
    pub fn take_retired(&mut self) -> Vec<Outcome> {
        self.state.take_retired()
    }

    /// Handle one input at time `now` (seconds since the epoch).
    pub fn handle(&mut self, input: Input, now: f64, fx: &mut Effects) {
        // Keep time monotonic so replay order (by server_rx) equals delivery order.
        let now = now.max(self.last_now);
        self.last_now = now;
        match input {
            Input::Connected { conn, address } => {
                self.arrivals.record(now);
                let mut welcome = self.config.welcome.clone();
                let owes_stamp = self.ask_permission(now, &mut welcome);
                self.conns.insert(
                    conn,
                    Conn {
                        owes_stamp,
                        ..Conn::default()
                    },
                );
                welcome.your_address = Some(address);
                fx.send(
                    conn,
                    ServerMessage::Welcome {
                        welcome,
                        server_tx: None,
                    },
                );
            }
            Input::Disconnected { conn } => {
                if let Some(c) = self.conns.remove(&conn)
                    && let Some(mb) = c.open_mailbox
                {
                    self.state.remove_listener(&mb, conn);
                }
            }
            Input::Frame { conn, frame } => {
                if self.conns.contains_key(&conn) {
                    self.frame(conn, frame, now, fx);
                }
            }
            Input::Prune => self.prune(now, fx),
        }
    }

    /// If this connection must pay (docs/operations.md "Proof of work"), put the challenge in
    /// its welcome, with an `error` for clients that do not know the scheme (they show it and
    /// stop); return the resource it must pay for.
    fn ask_permission(&mut self, now: f64, welcome: &mut Welcome) -> Option<String> {
        let policy = self.config.hashcash?;
        if policy
            .above_rate
            .is_some_and(|limit| self.arrivals.rate(now) <= limit)
        {
            return None;
        }
        let resource = hex::encode(self.rng.r#gen::<[u8; 8]>());
        let bits = policy.bits;
        // `"none": null` says "not offered": wormhole-rs 0.8.1 cannot parse a
        // `permission-required` without a `none` key (docs/protocol.md §1.10).
        welcome.extra.insert(
            "permission-required".to_owned(),
            serde_json::json!({"none": null, "hashcash": {"bits": bits, "resource": resource}}),
        );
        welcome.error.get_or_insert_with(|| {
            format!(
                "This server requires a proof of work (hashcash, {bits} bits; \
                 'permission-required' in the welcome) that this client does not support: \
                 upgrade the client, or use another mailbox server"
            )
        });
        Some(resource)
    }

    /// `submit-permissions` (or wormhole-rs's `submit-permission`): check the stamp.
    fn submit_permission(
        &mut self,
        conn: ConnId,
        msg: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let bits = self.config.hashcash.map(|p| p.bits).unwrap_or(0);
        let c = self.conn(conn)?;
        let Some(resource) = c.owes_stamp.as_deref() else {
            return Ok(()); // nothing asked of this connection: accepted and ignored
        };
        let method = fields::required_str(msg, "method", "submit-permissions requires 'method'")?;
        let checked = if method != "hashcash" {
            Err(format!("unknown method {method:?}; this server offers hashcash"))
        } else {
            let stamp = fields::required_str(msg, "stamp", "submit-permissions requires 'stamp'")?;
            wormhole_proto::hashcash::check(stamp, resource, bits).map_err(|e| e.to_string())
        };
        match checked {
            Ok(()) => {
                c.owes_stamp = None;
                Ok(())
            }
            Err(why) => {
                fx.stats.rejected.push(Reason::Permission);
                Err(format!("permission denied: {why}"))
            }
        }
    }

    fn prune(&mut self, now: f64, fx: &mut Effects) {
        let rebooted = *self.rebooted.get_or_insert(now);
        let old = now - self.config.channel_expiration;
        let dropped = self.state.prune(now, old, &mut fx.writes);
        self.forget_listeners(&dropped);
        if self.config.usage.enabled {
            fx.writes.push(Write::UsageCurrent {
                rebooted,
                updated: now,
                blur_time: self.config.usage.blur,
                connections_websocket: self.state.listener_count() as u64,
            });
        }
    }

    /// Connections whose mailbox was deleted are no longer subscribed to it.
    fn forget_listeners(&mut self, dropped: &[ConnId]) {
        for c in dropped {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.open_mailbox = None;
            }
        }
    }

    fn frame(&mut self, conn: ConnId, frame: Frame, now: f64, fx: &mut Effects) {
        let value = match frame {
            Frame::Invalid { error: e, orig } => {
                error(conn, fx, format!("message is not JSON: {e}"), Value::String(orig));
                return;
            }
            Frame::Json(v) => v,
        };
        let Value::Object(msg) = value else {
            let text = format!("message must be a JSON object, not {}", fields::type_name(&value));
            error(conn, fx, text, value);
            return;
        };
        let Some(mtype) = msg.get("type") else {
            error(conn, fx, "missing 'type'", Value::Object(msg));
            return;
        };
        fx.out.push(Out::Send {
            conn,
            reply: Reply::Ack(msg.get("id").cloned().unwrap_or(Value::Null)),
        });
        let mtype = mtype.as_str().unwrap_or("").to_owned();
        if let Err(text) = self.command(conn, &mtype, &msg, now, fx) {
            error(conn, fx, text, Value::Object(msg));
        }
    }

    fn command(
        &mut self,
        conn: ConnId,
        mtype: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        match mtype {
            "ping" => return ping(conn, msg, fx),
            "submit-permissions" | "submit-permission" => return self.submit_permission(conn, msg, fx),
            "bind" => return self.bind(conn, msg, now, fx),
            _ => {}
        }
        let (app, side) = match self.conns.get(&conn) {
            Some(Conn {
                app: Some(app),
                side: Some(side),
                ..
            }) => (app.clone(), side.clone()),
            _ => return Err("must bind first".to_owned()),
        };
        match mtype {
            "list" => {
                let nameplates = if self.config.allow_list {
                    self.state.nameplate_names(&app)
                } else {
                    Vec::new()
                };
                let nameplates = nameplates.into_iter().map(|id| NameplateEntry { id }).collect();
                fx.send(
                    conn,
                    ServerMessage::Nameplates {
                        nameplates,
                        server_tx: None,
                    },
                );
                Ok(())
            }
            "allocate" => self.allocate(conn, &app, &side, now, fx),
            "claim" => self.claim(conn, &app, &side, msg, now, fx),
            "release" => self.release(conn, &app, &side, msg, now, fx),
            "open" => self.open(conn, &app, &side, msg, now, fx),
            "add" => self.add(conn, &side, msg, now, fx),
            "close" => self.close(conn, &app, &side, msg, now, fx),
            _ => Err("unknown type".to_owned()),
        }
    }

    fn conn(&mut self, conn: ConnId) -> Result<&mut Conn, String> {
        self.conns
            .get_mut(&conn)
            .ok_or_else(|| "connection is closed".to_owned())
    }

    fn bind(
        &mut self,
        conn: ConnId,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let c = self.conn(conn)?;
        if c.app.is_some() || c.side.is_some() {
            return Err("already bound".to_owned());
        }
        if c.owes_stamp.is_some() {
            fx.stats.rejected.push(Reason::Permission);
            return Err("permission denied: this server requires a hashcash stamp \
                        (submit-permissions, as the welcome's 'permission-required' says) before bind"
                .to_owned());
        }
        let appid = fields::required_str(msg, "appid", "bind requires 'appid'")?;
        let side = fields::required_str(msg, "side", "bind requires 'side'")?;
        let (implementation, version) = fields::client_version(msg)?;
        c.app = Some(appid.to_owned());
        c.side = Some(side.to_owned());
        if self.config.usage.enabled {
            fx.writes.push(Write::UsageClientVersion {
                app_id: appid.to_owned(),
                side: side.to_owned(),
                connect_time: blur(now, self.config.usage.blur),
                implementation,
                version,
            });
        }
        Ok(())
    }

    fn allocate(
        &mut self,
        conn: ConnId,
        app: &str,
        side: &str,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        if self.conn(conn)?.did_allocate {
            fx.stats.rejected.push(Reason::NameplatesPerConnection);
            return Err("you already allocated one, don't be greedy".to_owned());
        }
        let name = self
            .state
            .choose_nameplate(app, &mut self.rng)
            .ok_or_else(|| "unable to find a free nameplate-id".to_owned())?;
        self.state
            .claim_nameplate(app, &name, side, now, &mut self.rng, &mut fx.writes)
            .map_err(channel_error)?;
        self.conn(conn)?.did_allocate = true;
        fx.send(
            conn,
            ServerMessage::Allocated {
                nameplate: name,
                server_tx: None,
            },
        );
        Ok(())
    }

    fn claim(
        &mut self,
        conn: ConnId,
        app: &str,
        side: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let Some(v) = msg.get("nameplate") else {
            return Err("claim requires 'nameplate'".to_owned());
        };
        let c = self.conn(conn)?;
        if c.did_claim {
            fx.stats.rejected.push(Reason::NameplatesPerConnection);
            return Err("only one claim per connection".to_owned());
        }
        let name = fields::check_nameplate(v)?;
        c.did_claim = true;
        c.nameplate = Some(name.to_owned());
        let mailbox = self
            .state
            .claim_nameplate(app, name, side, now, &mut self.rng, &mut fx.writes)
            .map_err(channel_error)?;
        fx.send(
            conn,
            ServerMessage::Claimed {
                mailbox,
                server_tx: None,
            },
        );
        Ok(())
    }

    fn release(
        &mut self,
        conn: ConnId,
        app: &str,
        side: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let c = self.conn(conn)?;
        if c.did_release {
            return Err("only one release per connection".to_owned());
        }
        let name = fields::given_or_remembered(
            msg,
            "nameplate",
            c.nameplate.as_deref(),
            "release and claim must use same nameplate",
            "release without nameplate must follow claim",
        )?;
        c.did_release = true;
        self.state
            .release_nameplate(app, &name, side, now, &mut fx.writes);
        fx.send(conn, ServerMessage::Released { server_tx: None });
        Ok(())
    }

    fn open(
        &mut self,
        conn: ConnId,
        app: &str,
        side: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let c = self.conn(conn)?;
        if c.open_mailbox.is_some() {
            return Err("only one open per connection".to_owned());
        }
        let mailbox_id = fields::required_str(msg, "mailbox", "open requires 'mailbox'")?;
        c.mailbox_id = Some(mailbox_id.to_owned());
        self.state
            .open_mailbox(app, mailbox_id, side, now, &mut fx.writes)
            .map_err(channel_error)?;
        self.conn(conn)?.open_mailbox = Some(mailbox_id.to_owned());
        for m in self.state.add_listener(mailbox_id, conn) {
            fx.send(conn, message(m));
        }
        Ok(())
    }

    fn add(
        &mut self,
        conn: ConnId,
        side: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let Some(mailbox_id) = self.conn(conn)?.open_mailbox.clone() else {
            return Err("must open mailbox before adding".to_owned());
        };
        let phase = fields::required_str(msg, "phase", "missing 'phase'")?;
        let body = match msg.get("body") {
            None => return Err("missing 'body'".to_owned()),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(format!(
                    "'body' must be a string, not {}",
                    fields::type_name(other)
                ));
            }
        };
        let msg_id = fields::optional_str(msg, "id")?;
        let count = self.state.message_count(&mailbox_id).unwrap_or(0);
        if count >= self.config.max_mailbox_messages {
            fx.stats.rejected.push(Reason::MailboxFull);
            return Err(format!(
                "mailbox is full ({} messages); close it and start again",
                self.config.max_mailbox_messages
            ));
        }
        let stored = StoredMessage {
            side: side.to_owned(),
            phase: phase.to_owned(),
            body: body.clone(),
            server_rx: now,
            msg_id: msg_id.map(str::to_owned),
        };
        fx.stats.messages += 1;
        fx.stats.message_bytes += body.len() as u64;
        let out = message(&stored);
        let listeners = self.state.add_message(&mailbox_id, stored, &mut fx.writes);
        if !listeners.is_empty() {
            fx.out.push(Out::Broadcast {
                conns: listeners,
                msg: out,
            });
        }
        Ok(())
    }

    fn close(
        &mut self,
        conn: ConnId,
        app: &str,
        side: &str,
        msg: &Map<String, Value>,
        now: f64,
        fx: &mut Effects,
    ) -> Result<(), String> {
        let c = self.conn(conn)?;
        if c.did_close {
            return Err("only one close per connection".to_owned());
        }
        let mailbox_id = fields::given_or_remembered(
            msg,
            "mailbox",
            c.mailbox_id.as_deref(),
            "open and close must use same mailbox",
            "close without mailbox must follow open",
        )?;
        let mood = fields::optional_str(msg, "mood")?;
        let was_open = c.open_mailbox.take();
        match was_open {
            Some(open) => self.state.remove_listener(&open, conn),
            None => self
                .state
                .open_mailbox(app, &mailbox_id, side, now, &mut fx.writes)
                .map_err(channel_error)?,
        }
        self.conn(conn)?.did_close = true;
        let dropped = self
            .state
            .close_mailbox(app, &mailbox_id, side, mood, now, &mut fx.writes);
        self.forget_listeners(&dropped);
        fx.send(conn, ServerMessage::Closed { server_tx: None });
        Ok(())
    }
}

fn ping(conn: ConnId, msg: &Map<String, Value>, fx: &mut Effects) -> Result<(), String> {
    match msg.get("ping") {
        None => Err("ping requires 'ping'".to_owned()),
        Some(v) => {
            let Some(pong) = v.as_i64() else {
                return Err(format!("'ping' must be an integer, not {}", fields::type_name(v)));
            };
            fx.send(
                conn,
                ServerMessage::Pong {
                    pong,
                    server_tx: None,
                },
            );
            Ok(())
        }
    }
}

fn channel_error(e: ChannelError) -> String {
    match e {
        ChannelError::Crowded => "crowded",
        ChannelError::Reclaimed => "reclaimed",
        ChannelError::ForeignMailbox => "mailbox id is in use by another application",
    }
    .to_owned()
}

fn message(m: &StoredMessage) -> ServerMessage {
    ServerMessage::Message {
        side: m.side.clone(),
        phase: m.phase.clone(),
        body: m.body.clone(),
        server_rx: Some(m.server_rx),
        id: m.msg_id.clone(),
        server_tx: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn core() -> Core<rand::rngs::StdRng> {
        let config = CoreConfig {
            welcome: Welcome::default(),
            allow_list: true,
            usage: UsageSettings {
                enabled: true,
                blur: None,
            },
            max_mailbox_messages: 10,
            channel_expiration: 100.0,
            hashcash: None,
        };
        Core::new(Snapshot::default(), config, rand::rngs::StdRng::seed_from_u64(7))
    }

    fn connect(core: &mut Core<rand::rngs::StdRng>, conn: ConnId, side: &str) {
        let mut fx = Effects::default();
        let address = YourAddress {
            port: 1,
            ipv4: Some("127.0.0.1".into()),
            ipv6: None,
        };
        core.handle(Input::Connected { conn, address }, 1.0, &mut fx);
        send(
            core,
            conn,
            json!({"type": "bind", "appid": "a", "side": side}),
            1.0,
        );
    }

    /// Send one command; return the non-ack replies to that connection.
    fn send(
        core: &mut Core<rand::rngs::StdRng>,
        conn: ConnId,
        v: Value,
        now: f64,
    ) -> (Vec<ServerMessage>, Vec<Write>) {
        let mut fx = Effects::default();
        core.handle(
            Input::Frame {
                conn,
                frame: Frame::Json(v),
            },
            now,
            &mut fx,
        );
        let mut replies = Vec::new();
        for o in fx.out {
            match o {
                Out::Send {
                    conn: c,
                    reply: Reply::Msg(m),
                } if c == conn => replies.push(m),
                Out::Broadcast { conns, msg } if conns.contains(&conn) => replies.push(msg),
                _ => {}
            }
        }
        (replies, fx.writes)
    }

    fn error_text(m: &[ServerMessage]) -> Option<String> {
        m.iter().find_map(|m| match m {
            ServerMessage::Error { error, .. } => Some(error.clone()),
            _ => None,
        })
    }

    fn paying_core(above_rate: Option<f64>) -> Core<rand::rngs::StdRng> {
        let mut c = core();
        c.config.hashcash = Some(HashcashPolicy { bits: 8, above_rate });
        c
    }

    /// Connect; the welcome's hashcash resource, if one was asked.
    fn connect_raw(core: &mut Core<rand::rngs::StdRng>, conn: ConnId, now: f64) -> Option<String> {
        let mut fx = Effects::default();
        let address = YourAddress {
            port: 1,
            ipv4: Some("127.0.0.1".into()),
            ipv6: None,
        };
        core.handle(Input::Connected { conn, address }, now, &mut fx);
        let Some(Out::Send {
            reply: Reply::Msg(ServerMessage::Welcome { welcome, .. }),
            ..
        }) = fx.out.first()
        else {
            panic!("{:?}", fx.out)
        };
        let asked = welcome.extra.get("permission-required")?;
        assert!(welcome.error.as_deref().unwrap().contains("hashcash, 8 bits"));
        assert_eq!(asked["hashcash"]["bits"], 8);
        assert!(
            asked["none"].is_null(),
            "present for wormhole-rs, but not offered"
        );
        Some(asked["hashcash"]["resource"].as_str().unwrap().to_owned())
    }

    #[test]
    fn hashcash_is_asked_and_checked_before_bind() {
        let mut c = paying_core(None);
        let resource = connect_raw(&mut c, 1, 1.0).expect("asked");
        let bind = json!({"type": "bind", "appid": "a", "side": "s"});
        let (r, _) = send(&mut c, 1, bind.clone(), 1.0);
        assert!(
            error_text(&r)
                .unwrap()
                .starts_with("permission denied: this server requires a hashcash stamp")
        );
        let forged = format!("1:8:261203:{resource}::abcd:0");
        let (r, _) = send(
            &mut c,
            1,
            json!({"type": "submit-permissions", "method": "hashcash", "stamp": forged}),
            1.0,
        );
        let text = error_text(&r).unwrap();
        assert!(
            text.starts_with("permission denied: the stamp's SHA-1 has"),
            "{text}"
        );
        let other = wormhole_proto::hashcash::mint("other", 8, "261203", "ab").unwrap();
        let (r, _) = send(
            &mut c,
            1,
            json!({"type": "submit-permissions", "method": "hashcash", "stamp": other}),
            1.0,
        );
        assert!(error_text(&r).unwrap().contains("another resource"));
        let stamp = wormhole_proto::hashcash::mint(&resource, 8, "261203", "ab").unwrap();
        // wormhole-rs spells the type in the singular.
        let (r, _) = send(
            &mut c,
            1,
            json!({"type": "submit-permission", "method": "hashcash", "stamp": stamp}),
            1.0,
        );
        assert_eq!(error_text(&r), None);
        let (r, _) = send(&mut c, 1, bind, 1.0);
        assert_eq!(error_text(&r), None, "bound after paying");
        // The resource is per connection: the same stamp buys nothing on another one.
        let resource2 = connect_raw(&mut c, 2, 1.0).expect("asked");
        assert_ne!(resource, resource2);
        let (r, _) = send(
            &mut c,
            2,
            json!({"type": "submit-permissions", "method": "hashcash", "stamp": stamp}),
            1.0,
        );
        assert!(error_text(&r).unwrap().contains("another resource"));
    }

    #[test]
    fn hashcash_above_a_connection_rate() {
        // More than 0.5 connections/s over 10 s: from the 6th connection within 10 s.
        let mut c = paying_core(Some(0.5));
        for conn in 1..=5 {
            assert_eq!(
                connect_raw(&mut c, conn, 100.0 + conn as f64 * 0.1),
                None,
                "{conn}"
            );
        }
        assert!(connect_raw(&mut c, 6, 101.0).is_some());
        // A quiet minute later, free again.
        assert_eq!(connect_raw(&mut c, 7, 200.0), None);
        connect(&mut c, 8, "s8"); // and a free connection binds at once
    }

    #[test]
    fn allocate_is_not_a_claim_and_replies_wait_for_writes() {
        let mut c = core();
        connect(&mut c, 1, "s1");
        let (r, w) = send(&mut c, 1, json!({"type": "allocate"}), 2.0);
        let ServerMessage::Allocated { nameplate, .. } = &r[0] else {
            panic!("{r:?}")
        };
        assert!(!w.is_empty(), "allocate writes rows");
        // Releasing without a nameplate needs a claim on this connection.
        let (r, _) = send(&mut c, 1, json!({"type": "release"}), 2.0);
        assert_eq!(
            error_text(&r).as_deref(),
            Some("release without nameplate must follow claim")
        );
        let (r, w) = send(&mut c, 1, json!({"type": "release", "nameplate": nameplate}), 2.0);
        assert!(matches!(r[0], ServerMessage::Released { .. }));
        assert!(w.iter().any(|w| matches!(w, Write::UsageNameplate(_))));
        assert_eq!(c.state().nameplate_names("a"), Vec::<String>::new());
    }

    #[test]
    fn last_close_removes_a_nameplate_still_claimed_by_the_peer() {
        let mut c = core();
        connect(&mut c, 1, "s1");
        connect(&mut c, 2, "s2");
        let (r, _) = send(&mut c, 1, json!({"type": "claim", "nameplate": "4"}), 2.0);
        let ServerMessage::Claimed { mailbox, .. } = &r[0] else {
            panic!()
        };
        send(&mut c, 2, json!({"type": "claim", "nameplate": "4"}), 2.0);
        for conn in [1, 2] {
            let (r, _) = send(
                &mut c,
                conn,
                json!({"type": "close", "mailbox": mailbox, "mood": "happy"}),
                3.0,
            );
            assert!(matches!(r[0], ServerMessage::Closed { .. }));
        }
        assert_eq!(c.state().mailbox_count(), 0);
        assert!(c.state().nameplate_names("a").is_empty());
    }

    #[test]
    fn time_never_goes_backwards_in_messages() {
        let mut c = core();
        connect(&mut c, 1, "s1");
        send(&mut c, 1, json!({"type": "open", "mailbox": "m"}), 5.0);
        let (r, _) = send(&mut c, 1, json!({"type": "add", "phase": "p", "body": ""}), 4.0);
        let ServerMessage::Message { server_rx, .. } = &r[0] else {
            panic!()
        };
        assert_eq!(*server_rx, Some(5.0));
    }

    #[test]
    fn prune_keeps_subscribed_and_drops_idle() {
        let mut c = core();
        connect(&mut c, 1, "s1");
        connect(&mut c, 2, "s2");
        send(&mut c, 1, json!({"type": "open", "mailbox": "kept"}), 10.0);
        send(&mut c, 2, json!({"type": "claim", "nameplate": "3"}), 10.0);
        let mut fx = Effects::default();
        c.handle(Input::Disconnected { conn: 2 }, 10.0, &mut fx);
        c.handle(Input::Prune, 50.0, &mut fx);
        assert_eq!(c.state().mailbox_count(), 2);
        c.handle(Input::Prune, 111.0, &mut fx);
        assert_eq!(c.state().mailbox_count(), 1, "idle channel pruned");
        assert!(c.state().nameplate_names("a").is_empty());
        let pruney = fx
            .writes
            .iter()
            .filter(|w| matches!(w, Write::UsageMailbox { row, .. } if row.result == crate::storage::Outcome::Pruney))
            .count();
        assert_eq!(pruney, 1);
    }
}
