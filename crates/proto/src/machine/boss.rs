//! Boss: the top of the client machine. It owns every sub-machine, turns API calls, connection
//! events, server frames and timer expiries into [`Action`]s, and decides the wormhole's mood
//! and result (docs/protocol.md §2.2, §2.6 "B", §2.7 reconnection, §8 "as a client").
//!
//! Sans-IO: no socket, no clock (callers pass `now`), no task. All randomness (command ids, code
//! words, the SPAKE2 secret, every secretbox nonce) comes from the RNG given to [`Boss::new`],
//! which must be cryptographically secure outside tests; the same seed replays a run byte for
//! byte. The reconnect jitter is passed in.
//!
//! Dilation's seam (the protocol itself lives in [`crate::dilation`]): extra `version` fields
//! (`can-dilate`, `dilation-abilities`) are set at creation with [`Boss::with_version_fields`];
//! the peer's `dilate-N` phases come out, decrypted and in order, as [`Event::Dilation`]; ours go
//! in through [`Boss::send_dilation_message`], which alone numbers them.

use std::collections::VecDeque;
use std::time::Instant;

use rand::RngCore;
use serde_json::{Value, json};

use super::code::CodeMachine;
use super::error::WormholeError;
use super::events::{Action, Event, Mood, Welcome};
use super::key::{Key, KeyStep};
use super::key_choice::KeyChoice;
use super::mailbox::{Mailbox, Rx};
use super::nameplate::Nameplate;
use super::order::Order;
use super::permission::{self, Permission};
use super::receive::{Receive, RxOutcome};
use super::rendezvous::{
    Command, ConnState, FrameError, Inbound, MAX_MESSAGE_BYTES, backoff_delay, parse_frame,
};
use super::reorder::{Reorder, canonical_number};
use super::send::Sender;
use super::terminator::Terminator;
use crate::key::{derive_phase_key, encrypt_data_with_rng};
use crate::wordlist::choose_words;

/// Static configuration of one wormhole.
#[derive(Debug, Clone)]
pub struct Config {
    /// Application id (namespaces nameplates; SPAKE2 identity).
    pub appid: String,
    /// Our side: 10 lowercase hex chars, the same for every reconnection.
    pub side: String,
    /// Our `app_versions`, sent to the peer in the `version` message.
    pub versions: Value,
    /// `[implementation, version]` for `bind`, if any.
    pub client_version: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// No code yet.
    Empty,
    /// Code known, peer not verified.
    Lonely,
    /// Peer verified.
    Happy,
    /// Closing; waiting for `released`/`closed`.
    Closing,
    /// Done.
    Closed,
}

/// The client machine. Feed it inputs, then drain [`Boss::poll_action`].
pub struct Boss {
    pub(super) cfg: Config,
    pub(super) rng: Box<dyn RngCore + std::marker::Send>,
    pub(super) out: VecDeque<Action>,
    pub(super) conn: ConnState,
    pub(super) ever_connected: bool,
    pub(super) attempt: u32,
    pub(super) code: CodeMachine,
    pub(super) nameplate: Nameplate,
    pub(super) mailbox: Mailbox,
    pub(super) order: Order,
    pub(super) key: Key,
    pub(super) receive: Receive,
    pub(super) send: Sender,
    pub(super) term: Terminator,
    pub(super) phase: Phase,
    pub(super) result: Option<Result<Mood, WormholeError>>,
    pub(super) welcome_seen: bool,
    /// The current connection has not seen its welcome yet, so it is not bound.
    pub(super) awaiting_welcome: bool,
    pub(super) code_str: Option<String>,
    pub(super) verifier: Option<[u8; 32]>,
    pub(super) peer_versions: Option<Value>,
    pub(super) reorder: Reorder,
    /// The peer's `dilate-N` phases, delivered in numeric order (only when we offered
    /// `can-dilate`; otherwise they are ignored).
    pub(super) dilate_reorder: Reorder,
    /// Our next `dilate-N` (the one counter of our Dilation phases).
    pub(super) next_dilate: u64,
    /// Extra top-level fields of our `version` message (`can-dilate`, `dilation-abilities`).
    pub(super) version_fields: serde_json::Map<String, Value>,
    /// The side of the peer's `pake` (the Go-key tie-break).
    pub(super) peer_side: Option<String>,
    /// Two candidate keys while our `version` waits for the peer's ([`KeyChoice`]).
    pub(super) choice: Option<KeyChoice>,
    /// When the reconnect backoff ends, while waiting for it.
    pub(super) reconnect_at: Option<Instant>,
    /// The instant of the last [`Action::SetTimer`], until it fires or is cancelled.
    pub(super) timer_at: Option<Instant>,
}

impl std::fmt::Debug for Boss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boss")
            .field("side", &self.cfg.side)
            .field("phase", &self.phase)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Boss {
    /// A new machine. Call [`Boss::start`] to begin connecting.
    pub fn new(cfg: Config, rng: Box<dyn RngCore + std::marker::Send>) -> Boss {
        let side = cfg.side.clone();
        Boss {
            cfg,
            rng,
            out: VecDeque::new(),
            conn: ConnState::Idle,
            ever_connected: false,
            attempt: 0,
            code: CodeMachine::new(),
            nameplate: Nameplate::new(),
            mailbox: Mailbox::new(&side),
            order: Order::default(),
            key: Key::default(),
            receive: Receive::default(),
            send: Sender::new(&side),
            term: Terminator::default(),
            phase: Phase::Empty,
            result: None,
            welcome_seen: false,
            awaiting_welcome: false,
            code_str: None,
            verifier: None,
            peer_versions: None,
            reorder: Reorder::default(),
            dilate_reorder: Reorder::default(),
            next_dilate: 0,
            version_fields: serde_json::Map::new(),
            peer_side: None,
            choice: None,
            reconnect_at: None,
            timer_at: None,
        }
    }

    /// Set extra top-level fields of our `version` message, beside `app_versions` (which cannot
    /// be overridden): a Dilation endpoint passes `can-dilate` and `dilation-abilities`
    /// ([`crate::dilation::manager`]). Call at creation, before [`Boss::start`].
    pub fn with_version_fields(mut self, mut fields: serde_json::Map<String, Value>) -> Boss {
        fields.remove("app_versions");
        self.version_fields = fields;
        self
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    // ----- driver inputs -------------------------------------------------------------------

    /// Begin: asks the driver to connect.
    pub fn start(&mut self) {
        if self.conn == ConnState::Idle {
            self.conn = ConnState::Connecting;
            self.out.push_back(Action::Connect);
        }
    }

    /// The WebSocket opened. Sends `bind`, then whatever is outstanding (§2.7).
    pub fn connected(&mut self, now: Instant) {
        if self.conn != ConnState::Connecting {
            return;
        }
        self.conn = ConnState::Connected;
        self.ever_connected = true;
        self.attempt = 0;
        // `bind` waits for this connection's welcome, which may ask for a permission first
        // (§1.10); every server sends the welcome as soon as the WebSocket is up.
        self.awaiting_welcome = true;
        self.arm_timers(now);
    }

    /// Bind this connection (after `stamp`'s `submit-permissions`, if any), then send whatever
    /// is outstanding (§2.7).
    fn bind(&mut self, stamp: Option<String>) {
        let mut cmds: Vec<Command> = stamp.map(Command::SubmitHashcash).into_iter().collect();
        cmds.push(Command::Bind {
            appid: self.cfg.appid.clone(),
            side: self.cfg.side.clone(),
            client_version: self.cfg.client_version.clone(),
        });
        self.nameplate.connected(&mut cmds);
        self.mailbox.connected(&mut cmds);
        self.code.connected(&mut cmds);
        self.flush(cmds);
    }

    /// A welcome arrived on the current connection.
    fn welcome(&mut self, v: Value, server_tx: Option<f64>) {
        let permission = permission::answer(&v, server_tx, &mut *self.rng);
        let refusal = match &permission {
            Permission::Unsupported(methods) => Some(format!(
                "the server requires permission by {}, which this client does not support",
                methods.join(", ")
            )),
            Permission::TooHard(bits) => Some(format!(
                "the server asks for {bits} bits of hashcash, more than the {} this client computes",
                crate::hashcash::MAX_MINT_BITS
            )),
            Permission::NotRequired | Permission::Hashcash(_) => None,
        };
        let mut failure = None;
        if !self.welcome_seen {
            self.welcome_seen = true;
            let mut w = Welcome::from_value(v);
            if matches!(permission, Permission::Hashcash(_)) {
                // That error is addressed to clients that cannot pay; we do.
                w.error = None;
            }
            match w.error.clone().or(refusal) {
                Some(e) => failure = Some(e),
                None => self.deliver(Event::Welcome(w)),
            }
        } else {
            failure = refusal;
        }
        // Bind even when failing, so the close that follows reaches the server as before.
        if std::mem::take(&mut self.awaiting_welcome) {
            let stamp = match permission {
                Permission::Hashcash(stamp) => Some(stamp),
                _ => None,
            };
            self.bind(stamp);
        }
        if let Some(e) = failure {
            self.fail(Mood::Unwelcome, WormholeError::Welcome(e));
        }
    }

    /// The connection was lost or a connect attempt failed. `jitter` in `[0,1)` seconds is added
    /// to the backoff. Before any successful connection this ends the wormhole with
    /// [`WormholeError::ServerConnection`].
    pub fn connection_lost(&mut self, now: Instant, jitter: f64, reason: &str) {
        match self.conn {
            ConnState::Connecting | ConnState::Connected => {}
            _ => return,
        }
        self.mailbox.lost();
        if !self.ever_connected {
            self.result = Some(Err(WormholeError::ServerConnection(reason.to_owned())));
            self.finish();
            return;
        }
        self.conn = ConnState::Waiting;
        let delay = backoff_delay(self.attempt, jitter);
        self.attempt = self.attempt.saturating_add(1);
        self.reconnect_at = Some(now + delay);
        self.arm_timers(now);
    }

    /// The timer set by [`Action::SetTimer`] expired: reconnect after the backoff, or end the
    /// brief wait of the Go-key version exchange (`KeyChoice`), whichever is due at `now`.
    pub fn timer_fired(&mut self, now: Instant) {
        self.timer_at = None;
        if self.conn == ConnState::Waiting && self.reconnect_at.is_none_or(|t| now >= t) {
            self.reconnect_at = None;
            self.conn = ConnState::Connecting;
            self.out.push_back(Action::Connect);
        }
        if let Some(choice) = self.choice.take_if(|c| c.expired(now)) {
            tracing::debug!("no peer version within the brief wait: sending ours with the standard key");
            self.adopt(choice.standard());
        }
        self.arm_timers(now);
    }

    /// Ask for the earliest pending deadline (reconnect, or the brief wait, started at `now`).
    fn arm_timers(&mut self, now: Instant) {
        let brief = self.choice.as_mut().and_then(|c| c.arm(now));
        let next = [self.reconnect_at, brief].into_iter().flatten().min();
        if next.is_some() && next != self.timer_at {
            self.timer_at = next;
            self.out.extend(next.map(Action::SetTimer));
        }
    }

    /// A TEXT frame arrived from the server. Malformed frames are ignored (the error says why).
    pub fn frame_received(&mut self, text: &str, now: Instant) -> Result<(), FrameError> {
        if self.conn != ConnState::Connected {
            return Ok(());
        }
        let inbound = parse_frame(text)?;
        self.inbound(inbound);
        self.arm_timers(now);
        Ok(())
    }

    fn inbound(&mut self, inbound: Inbound) {
        let mut cmds = Vec::new();
        match inbound {
            Inbound::Welcome(v, server_tx) => self.welcome(v, server_tx),
            Inbound::Ack | Inbound::Unknown(_) => {}
            Inbound::Pong => {
                if self.mailbox.rx_pong(&mut cmds) {
                    self.stop_reused(WormholeError::StateReused(
                        "our earlier messages are gone from the mailbox (it was closed by another copy)"
                            .into(),
                    ));
                }
            }
            Inbound::Nameplates(ids) => {
                self.code.rx_nameplates();
                self.deliver(Event::Nameplates(ids));
            }
            Inbound::Allocated(np) => {
                if let Some(len) = self.code.rx_allocated() {
                    let words = choose_words(len, &mut *self.rng);
                    let code = format!("{np}-{words}");
                    self.got_code(&np, code);
                }
            }
            Inbound::Claimed(mb) => {
                if self.nameplate.rx_claimed() {
                    self.deliver(Event::WordlistReady);
                    self.mailbox.got_mailbox(&mb, true, &mut cmds);
                }
            }
            Inbound::Released => {
                if self.nameplate.rx_released() && self.term.nameplate_done() {
                    self.finish();
                }
            }
            Inbound::Closed => {
                if self.mailbox.rx_closed() && self.term.mailbox_done() {
                    self.finish();
                }
            }
            Inbound::Error { error, .. } => {
                if self.phase == Phase::Closing {
                    // The server refused part of our shutdown; nothing more will come.
                    self.finish();
                } else {
                    let e = if error == "crowded" {
                        WormholeError::Crowded
                    } else {
                        WormholeError::Server(error)
                    };
                    self.fail(Mood::Errory, e);
                }
            }
            Inbound::Message { side, phase, body } => self.rx_message(side, phase, body),
        }
        self.flush(cmds);
    }

    // ----- API inputs ----------------------------------------------------------------------

    fn check_open(&self) -> Result<(), WormholeError> {
        match self.phase {
            Phase::Closing | Phase::Closed => Err(WormholeError::Closed),
            _ => Ok(()),
        }
    }

    /// Connected and bound: commands may go out now (before the welcome they wait for
    /// [`Boss::bind`]).
    fn connected_now(&self) -> bool {
        self.conn == ConnState::Connected && !self.awaiting_welcome
    }

    /// Ask the server for a nameplate and build a code of `length` words on it.
    pub fn allocate_code(&mut self, length: usize) -> Result<(), WormholeError> {
        self.check_open()?;
        let mut cmds = Vec::new();
        self.code.allocate(length, self.connected_now(), &mut cmds)?;
        self.flush(cmds);
        Ok(())
    }

    /// Use a code typed by the user (`<digits>-<words>`).
    pub fn set_code(&mut self, code: &str) -> Result<(), WormholeError> {
        self.check_open()?;
        let parsed = self.code.set_code(code)?;
        self.got_code(&parsed.nameplate, parsed.full);
        Ok(())
    }

    /// Begin interactive code input (see the `input_*` methods).
    pub fn input_code(&mut self) -> Result<(), WormholeError> {
        self.check_open()?;
        self.code.input()
    }

    /// Input helper: request the list of nameplates (answered by [`Event::Nameplates`]).
    pub fn input_refresh_nameplates(&mut self) -> Result<(), WormholeError> {
        self.check_open()?;
        let mut cmds = Vec::new();
        self.code.refresh_nameplates(self.connected_now(), &mut cmds)?;
        self.flush(cmds);
        Ok(())
    }

    /// Input helper: commit the nameplate (claims it; [`Event::WordlistReady`] follows).
    pub fn input_choose_nameplate(&mut self, nameplate: &str) -> Result<(), WormholeError> {
        self.check_open()?;
        self.code.choose_nameplate(nameplate)?;
        let mut cmds = Vec::new();
        self.nameplate
            .set_nameplate(nameplate, self.connected_now(), &mut cmds);
        self.flush(cmds);
        Ok(())
    }

    /// Input helper: may words be completed/chosen now?
    pub fn input_check_words(&self) -> Result<(), WormholeError> {
        self.code.check_words_allowed()
    }

    /// Input helper: commit the words; the code is then known.
    pub fn input_choose_words(&mut self, words: &str) -> Result<(), WormholeError> {
        self.check_open()?;
        let parsed = self.code.choose_words(words)?;
        self.got_code(&parsed.nameplate, parsed.full);
        Ok(())
    }

    /// Send one application message (held until the key is verified).
    pub fn send_message(&mut self, plaintext: Vec<u8>) -> Result<(), WormholeError> {
        self.check_open()?;
        if plaintext.len() > MAX_MESSAGE_BYTES {
            return Err(WormholeError::MessageTooLarge {
                size: plaintext.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let mut cmds = Vec::new();
        if let Some((phase, body)) = self.send.send(plaintext, &mut *self.rng) {
            self.mailbox.add(&phase, body, &mut cmds);
        }
        self.flush(cmds);
        Ok(())
    }

    /// Send a Dilation message as phase `dilate-N`, numbered here (the only counter of our
    /// `dilate-N` phases). Refused unless the peer's versions carry `can-dilate`
    /// (docs/protocol.md §8). The peer's `dilate-N` phases come back as [`Event::Dilation`].
    pub fn send_dilation_message(&mut self, plaintext: &[u8]) -> Result<(), WormholeError> {
        self.check_open()?;
        if !self.peer_can_dilate() {
            return Err(WormholeError::OldPeerCannotDilate);
        }
        let (Some(key), Phase::Happy) = (self.key.key(), self.phase) else {
            return Err(WormholeError::NoKey);
        };
        let phase = format!("dilate-{}", self.next_dilate);
        self.next_dilate += 1;
        let body = encrypt_data_with_rng(
            &derive_phase_key(&key, &self.cfg.side, &phase),
            plaintext,
            &mut *self.rng,
        );
        let mut cmds = Vec::new();
        self.mailbox.add(&phase, body, &mut cmds);
        self.flush(cmds);
        Ok(())
    }

    /// Close the wormhole. The result arrives as [`Event::Closed`].
    pub fn close(&mut self) {
        match self.phase {
            Phase::Empty | Phase::Lonely => {
                self.result = Some(Err(WormholeError::Lonely));
                self.begin_close(Mood::Lonely);
            }
            Phase::Happy => {
                self.result = Some(Ok(Mood::Happy));
                self.begin_close(Mood::Happy);
            }
            Phase::Closing | Phase::Closed => {}
        }
    }

    // ----- getters -------------------------------------------------------------------------

    /// Our side.
    pub fn side(&self) -> &str {
        &self.cfg.side
    }

    /// The application id.
    pub fn appid(&self) -> &str {
        &self.cfg.appid
    }

    /// The code, once known.
    pub fn code(&self) -> Option<&str> {
        self.code_str.as_deref()
    }

    /// The shared key, once computed (unverified until [`Boss::verifier`] is set).
    pub fn key(&self) -> Option<[u8; 32]> {
        self.key.key()
    }

    /// The verifier, once the peer's first message decrypted.
    pub fn verifier(&self) -> Option<[u8; 32]> {
        self.verifier
    }

    /// The peer's whole `version` dict, once received.
    pub fn peer_versions(&self) -> Option<&Value> {
        self.peer_versions.as_ref()
    }

    /// Whether the peer advertised `can-dilate` with at least one version string (the same rule
    /// as [`crate::dilation::manager::peer_can_dilate`], which it uses).
    pub fn peer_can_dilate(&self) -> bool {
        self.peer_versions
            .as_ref()
            .is_some_and(|v| !crate::dilation::manager::peer_can_dilate(v).is_empty())
    }

    /// Whether the wormhole has finished.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Number of outbound messages the server has not echoed yet.
    pub fn unechoed_outbound(&self) -> usize {
        self.mailbox.pending_len()
    }

    // ----- internals -----------------------------------------------------------------------

    fn deliver(&mut self, ev: Event) {
        self.out.push_back(Action::Deliver(ev));
    }

    fn flush(&mut self, cmds: Vec<Command>) {
        if !self.connected_now() {
            return;
        }
        for c in cmds {
            let id = format!("{:04x}", self.rng.next_u32() & 0xffff);
            self.out.push_back(Action::SendFrame(c.to_value(&id).to_string()));
        }
    }

    fn got_code(&mut self, nameplate: &str, code: String) {
        self.code_str = Some(code.clone());
        self.deliver(Event::Code(code.clone()));
        if self.phase == Phase::Empty {
            self.phase = Phase::Lonely;
        }
        let mut cmds = Vec::new();
        let connected = self.connected_now();
        self.nameplate.set_nameplate(nameplate, connected, &mut cmds);
        let (body, step) = self.key.got_code(&code, &self.cfg.appid, &mut *self.rng);
        self.mailbox.add("pake", body, &mut cmds);
        self.flush(cmds);
        self.key_step(step);
    }

    fn key_step(&mut self, step: KeyStep) {
        match step {
            KeyStep::Waiting => {}
            KeyStep::Failed => self.fail(Mood::Scary, WormholeError::WrongPassword),
            KeyStep::Key(keys) => {
                let peer = self.peer_side.clone().unwrap_or_default();
                match KeyChoice::new(&keys, &self.cfg.side, &peer) {
                    None => self.adopt(keys.key),
                    Some(choice) => {
                        tracing::debug!(
                            brief_wait = choice.is_brief(),
                            "SPAKE2 K has a zero top byte: wormhole-william key bug workaround engaged, \
                             our version waits for the peer's"
                        );
                        self.choice = Some(choice);
                    }
                }
                for (side, phase, body) in self.order.release() {
                    self.peer_input(&side, phase, &body);
                }
            }
        }
    }

    /// Adopt `k` as the shared key: tell the application, send our `version` sealed with it.
    fn adopt(&mut self, k: [u8; 32]) {
        self.key.adopt(k);
        self.deliver(Event::UnverifiedKey(k));
        let mut version = self.version_fields.clone();
        version.insert("app_versions".into(), self.cfg.versions.clone());
        let plaintext = Value::Object(version).to_string();
        let body = encrypt_data_with_rng(
            &derive_phase_key(&k, &self.cfg.side, "version"),
            plaintext.as_bytes(),
            &mut *self.rng,
        );
        let mut cmds = Vec::new();
        self.mailbox.add("version", body, &mut cmds);
        self.flush(cmds);
        self.receive.got_key(k);
    }

    /// A peer message once SPAKE2 has finished: the first one settles a pending [`KeyChoice`].
    fn peer_input(&mut self, side: &str, phase: String, body: &[u8]) {
        if let Some(choice) = self.choice.take() {
            let k = choice.pick(side, &phase, body);
            tracing::debug!(
                go_key = (k != choice.standard()),
                "peer's first message chose the key (wormhole-william key bug workaround)"
            );
            self.adopt(k);
        }
        self.peer_message(side, phase, body);
    }

    fn rx_message(&mut self, side: String, phase: String, body: Vec<u8>) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        let (side, phase, body) = match self.mailbox.rx_message(side, phase, body) {
            Rx::Theirs { side, phase, body } => (side, phase, body),
            Rx::Nothing => return,
            Rx::Foreign => {
                return self.stop_reused(WormholeError::StateReused(
                    "the mailbox holds a message of ours that this state never sent".into(),
                ));
            }
        };
        let mut cmds = Vec::new();
        self.nameplate.release(self.connected_now(), &mut cmds);
        self.flush(cmds);
        if phase == "pake" {
            self.peer_side.get_or_insert(side);
            let step = self.key.got_pake(body);
            self.key_step(step);
        } else if self.key.key().is_some() || self.choice.is_some() {
            self.peer_input(&side, phase, &body);
        } else if self.order.hold((side, phase, body)).is_err() {
            self.fail(
                Mood::Errory,
                WormholeError::Protocol("too many messages before pake".into()),
            );
        }
    }

    fn peer_message(&mut self, side: &str, phase: String, body: &[u8]) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        match self.receive.got_message(side, phase, body) {
            RxOutcome::FirstGood {
                verifier,
                phase,
                plaintext,
            } => {
                if self.phase == Phase::Lonely {
                    self.phase = Phase::Happy;
                }
                if let Some(k) = self.key.key() {
                    let mut cmds = Vec::new();
                    for (p, b) in self.send.got_verified_key(k, &mut *self.rng) {
                        self.mailbox.add(&p, b, &mut cmds);
                    }
                    self.flush(cmds);
                }
                self.verifier = Some(verifier);
                self.deliver(Event::Verifier(verifier));
                self.app_message(&phase, plaintext);
            }
            RxOutcome::Good { phase, plaintext } => self.app_message(&phase, plaintext),
            RxOutcome::Bad => self.fail(Mood::Scary, WormholeError::WrongPassword),
            RxOutcome::Ignored => {}
        }
    }

    fn app_message(&mut self, phase: &str, plaintext: Vec<u8>) {
        if phase == "version" {
            match serde_json::from_slice::<Value>(&plaintext) {
                Ok(v @ Value::Object(_)) => {
                    let app = v.get("app_versions").cloned().unwrap_or_else(|| json!({}));
                    self.peer_versions = Some(v);
                    self.deliver(Event::Versions(app));
                }
                _ => self.fail(
                    Mood::Errory,
                    WormholeError::Protocol("version message is not a JSON object".into()),
                ),
            }
            return;
        }
        if let Some(n) = phase.strip_prefix("dilate-").and_then(canonical_number) {
            if !self.version_fields.contains_key("can-dilate") {
                // We did not offer Dilation: ignored, as Python does.
                return;
            }
            match self.dilate_reorder.push(n, plaintext) {
                Ok(ready) => ready.into_iter().for_each(|m| self.deliver(Event::Dilation(m))),
                Err(why) => self.fail(Mood::Errory, WormholeError::Protocol(why)),
            }
            return;
        }
        let Some(n) = canonical_number(phase) else {
            // Unknown phases are ignored, as Python does.
            return;
        };
        match self.reorder.push(n, plaintext) {
            Ok(ready) => {
                for m in ready {
                    self.deliver(Event::Message(m));
                }
            }
            Err(why) => self.fail(Mood::Errory, WormholeError::Protocol(why)),
        }
    }

    /// A restored state turned out to be reused or stale: stop at once, sending nothing (no
    /// `release`, no `close`: another copy may still be using the nameplate and mailbox).
    fn stop_reused(&mut self, err: WormholeError) {
        if self.phase == Phase::Closed {
            return;
        }
        self.result = Some(Err(err));
        self.finish();
    }

    fn fail(&mut self, mood: Mood, err: WormholeError) {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return;
        }
        self.result = Some(Err(err));
        self.begin_close(mood);
    }

    fn begin_close(&mut self, mood: Mood) {
        self.phase = Phase::Closing;
        self.choice = None;
        let connected = self.connected_now();
        let mut cmds = Vec::new();
        let n_done = self.nameplate.close(connected, &mut cmds);
        let m_done = self.mailbox.close(mood.as_str(), connected, &mut cmds);
        self.flush(cmds);
        if self.term.close(n_done, m_done) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.conn = ConnState::Stopped;
        self.choice = None;
        self.reconnect_at = None;
        self.timer_at = None;
        self.out.push_back(Action::CancelTimer);
        self.out.push_back(Action::CloseConnection);
        let result = self.result.clone().unwrap_or(Err(WormholeError::Lonely));
        self.deliver(Event::Closed(result));
    }
}
