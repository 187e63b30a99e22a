//! Snapshot: the client machine's whole state as plain data, and its versioned JSON form
//! (docs/journal.md), so that a wormhole can be saved and restored after its process ended.
//!
//! Owns: [`SerializedWormholeWithKeys`] (the envelope: format name, version, mailbox URL, the
//! machine), [`MachineStateWithKeys`] (one record per sub-machine), the bounded parser
//! [`SerializedWormholeWithKeys::from_json`], [`Boss::snapshot`] and [`Boss::restore`], and
//! [`StateError`]. Must not: do I/O, or log a state (the JSON holds the session key, the SPAKE2
//! secret and the code; both types' `Debug` print only public facts).
//!
//! What is not saved: the connection (a restored machine reconnects), the RNG (a fresh one is
//! given; every body already made is saved as sent), the reconnect timer and the brief wait of
//! the Go-key choice (restarted). What restore adds: the echo checks of the `mailbox` module (an
//! echo of ours the state does not record is [`WormholeError::StateReused`]) and the audit of
//! the reopened mailbox (our earlier echoes must come back before the `pong` of a `ping`).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::boss::{Boss, Config, Phase};
use super::code::{CodeMachine, State as CodeState};
use super::error::WormholeError;
use super::events::Mood;
use super::key::Key;
use super::key_choice::KeyChoice;
use super::mailbox::{Mailbox, State as MbState};
use super::nameplate::{Nameplate, State as NpState};
use super::order::{MAX_HELD, Order};
use super::receive::Receive;
use super::rendezvous::ConnState;
use super::reorder::{MAX_REORDER_BYTES, MAX_REORDER_WINDOW, Reorder};
use super::send::Sender;
use super::terminator::Terminator;
use crate::key::Pake;

/// The `format` field of every serialized wormhole.
pub const STATE_FORMAT: &str = "rust-magic-wormhole-state-with-keys";
/// The newest format version this build writes and reads.
pub const STATE_VERSION: u32 = 1;
/// The largest serialized state accepted (bytes of JSON), refused before parsing.
pub const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;

/// Why a wormhole cannot be serialized, or a serialized one cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// `dilate()` was called (or Dilation messages flowed): a Dilation connection lives in
    /// sockets and timers that no saved state can carry.
    #[error("a dilated wormhole cannot be serialized")]
    Dilated,
    /// The wormhole was created in the awaiting mode; only delegated (event) wormholes can be
    /// serialized, since only they hand every event to the application exactly once.
    #[error("only delegated (event) wormholes can be serialized, not awaiting-mode ones")]
    AwaitingMode,
    /// Interactive code input is half done (a nameplate chosen, the words not yet).
    #[error("code input is in progress; serialize once the code is known")]
    InputInProgress,
    /// The wormhole has closed: there is nothing to carry on.
    #[error("the wormhole is closed")]
    Closed,
    /// The state was written by a newer format version than this build reads.
    #[error("serialized wormhole has format version {found}; this build reads up to {supported}")]
    FutureVersion {
        /// The version in the state.
        found: u64,
        /// [`STATE_VERSION`].
        supported: u32,
    },
    /// The text is not a serialized wormhole (wrong or missing `format`).
    #[error("not a serialized wormhole (format {0:?})")]
    NotAState(String),
    /// Larger than [`MAX_STATE_BYTES`].
    #[error("serialized wormhole of {size} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// Size given.
        size: usize,
        /// [`MAX_STATE_BYTES`].
        max: usize,
    },
    /// The right format and version, but a field is missing, mistyped or inconsistent.
    #[error("malformed serialized wormhole: {0}")]
    Malformed(String),
    /// Restore was asked for a wormhole whose state says it is dilated, or with options that
    /// journal mode cannot honour (e.g. `dilation`).
    #[error("journal mode cannot be used with {0}")]
    JournalUnsupported(&'static str),
}

/// Hex (de)serialization of byte fields.
mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// A 32-byte value as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hex32([u8; 32]);

impl Serialize for Hex32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = hexbytes::deserialize(d)?;
        let a: [u8; 32] = v
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 32 bytes (64 hex digits)"))?;
        Ok(Hex32(a))
    }
}

/// A 16-byte digest as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Hex16([u8; 16]);

impl Serialize for Hex16 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex16 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = hexbytes::deserialize(d)?;
        let a: [u8; 16] = v
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 16 bytes (32 hex digits)"))?;
        Ok(Hex16(a))
    }
}

/// A phase and its bytes (an outbound body, or a queued plaintext).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseBytes {
    phase: String,
    #[serde(with = "hexbytes")]
    bytes: Vec<u8>,
}

/// A peer message held before the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeldRecord {
    side: String,
    phase: String,
    #[serde(with = "hexbytes")]
    body: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PhaseRecord {
    Empty,
    Lonely,
    Happy,
    Closing,
}

/// How the wormhole will close (saved once closing began).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultRecord {
    /// `happy`, `lonely`, `scary`, `errory`, `unwelcome`.
    mood: String,
    /// The error's kind (`lonely`, `wrong_password`, `crowded`, `server`, `welcome`,
    /// `protocol`, `state_reused`, `closed`, `other`) and text; absent when happy.
    error: Option<(String, String)>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
enum CodeRecord {
    Idle,
    Allocating { length: usize },
    Known,
}

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum NameplateStateRecord {
    Unknown,
    Claiming,
    Claimed,
    Releasing,
    Done,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameplateRecord {
    name: Option<String>,
    state: NameplateStateRecord,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
enum MailboxStateRecord {
    Active,
    Closing { mood: String },
    Done,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxRecord {
    id: Option<String>,
    state: MailboxStateRecord,
    /// Our messages the server has not echoed yet, in send order (re-sent after `open`).
    unechoed: Vec<PhaseBytes>,
    /// Every phase we ever added, with its body's digest (first 16 bytes of SHA-256).
    sent: BTreeMap<String, Hex16>,
    /// Peer phases already processed (duplicates of these are dropped).
    processed: BTreeSet<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PakeRecord {
    #[serde(with = "hexbytes")]
    password: Vec<u8>,
    #[serde(with = "hexbytes")]
    identity: Vec<u8>,
    secret: Hex32,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    /// SPAKE2 started and not finished: its secret.
    pake: Option<PakeRecord>,
    code_known: bool,
    /// The peer's `pake` body, when it came before our code.
    #[serde(default)]
    peer_pake: Option<String>,
    /// The adopted shared key.
    key: Option<Hex32>,
    done: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveRecord {
    key: Option<Hex32>,
    verified: bool,
    scared: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRecord {
    next_phase: u64,
    /// Plaintexts waiting for the verified key.
    queued: Vec<PhaseBytes>,
    key: Option<Hex32>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReorderRecord {
    next: u64,
    /// Peer messages received ahead of `next`, as (phase number, plaintext).
    early: Vec<PhaseBytes>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChoiceRecord {
    standard: Hex32,
    go: Hex32,
    brief: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminatorRecord {
    closing: bool,
    nameplate_done: bool,
    mailbox_done: bool,
}

/// The client machine's state, keys included: the SPAKE2 secret, the shared key and the code.
/// Anyone holding it can read and forge this wormhole's messages. Its `Debug` prints only the
/// side, the phase and counts; never log its JSON.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineStateWithKeys {
    appid: String,
    side: String,
    versions: Value,
    client_version: Option<(String, String)>,
    version_fields: Map<String, Value>,
    phase: PhaseRecord,
    result: Option<ResultRecord>,
    welcome_seen: bool,
    code: CodeRecord,
    code_str: Option<String>,
    nameplate: NameplateRecord,
    mailbox: MailboxRecord,
    held_before_key: Vec<HeldRecord>,
    key: KeyRecord,
    receive: ReceiveRecord,
    send: SendRecord,
    reorder: ReorderRecord,
    verifier: Option<Hex32>,
    peer_versions: Option<Value>,
    peer_side: Option<String>,
    key_choice: Option<ChoiceRecord>,
    terminator: TerminatorRecord,
}

impl std::fmt::Debug for MachineStateWithKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineStateWithKeys")
            .field("side", &self.side)
            .field("phase", &self.phase_name())
            .field("sent_messages", &self.send.next_phase)
            .field("received_messages", &self.reorder.next)
            .field("unechoed", &self.mailbox.unechoed.len())
            .finish_non_exhaustive()
    }
}

impl MachineStateWithKeys {
    fn phase_name(&self) -> &'static str {
        match self.phase {
            PhaseRecord::Empty => "empty",
            PhaseRecord::Lonely => "lonely",
            PhaseRecord::Happy => "happy",
            PhaseRecord::Closing => "closing",
        }
    }

    /// Our side (10 hex digits), kept across restores.
    pub fn side(&self) -> &str {
        &self.side
    }

    /// The application id.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// The code, once known.
    pub fn code(&self) -> Option<&str> {
        self.code_str.as_deref()
    }

    /// How many application messages this side has sent (queued ones included): the next
    /// `send_message` becomes message number `messages_sent()`.
    pub fn messages_sent(&self) -> u64 {
        self.send.next_phase
    }

    /// How many application messages of the peer were delivered (in order) so far.
    pub fn messages_received(&self) -> u64 {
        self.reorder.next
    }

    /// How many of our messages the server has not echoed yet (each is sent again after a
    /// restore). Zero means the mailbox holds everything this state has sent.
    pub fn unechoed(&self) -> usize {
        self.mailbox.unechoed.len()
    }

    /// The shared key exists (SPAKE2 finished and a key was adopted).
    pub fn has_key(&self) -> bool {
        self.key.key.is_some()
    }

    /// The peer is verified (its first message decrypted).
    pub fn is_verified(&self) -> bool {
        self.verifier.is_some()
    }

    /// Closing began (a `close` was requested or the wormhole failed).
    pub fn is_closing(&self) -> bool {
        self.phase == PhaseRecord::Closing
    }
}

/// A saved wormhole in its versioned JSON envelope (docs/journal.md): `format`, `version`, the
/// mailbox URL and the [`MachineStateWithKeys`]. It holds keys: see there.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerializedWormholeWithKeys {
    format: String,
    version: u32,
    mailbox_url: String,
    machine: MachineStateWithKeys,
}

impl std::fmt::Debug for SerializedWormholeWithKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerializedWormholeWithKeys")
            .field("version", &self.version)
            .field("mailbox_url", &self.mailbox_url)
            .field("machine", &self.machine)
            .finish()
    }
}

/// Only `format` and `version`: read first, so a future version is named as such.
#[derive(Deserialize)]
struct Header {
    format: Option<Value>,
    version: Option<Value>,
}

impl SerializedWormholeWithKeys {
    /// Wrap a machine state for `mailbox_url`.
    pub fn new(mailbox_url: &str, machine: MachineStateWithKeys) -> Self {
        SerializedWormholeWithKeys {
            format: STATE_FORMAT.to_owned(),
            version: STATE_VERSION,
            mailbox_url: mailbox_url.to_owned(),
            machine,
        }
    }

    /// The mailbox server the wormhole uses.
    pub fn mailbox_url(&self) -> &str {
        &self.mailbox_url
    }

    /// The format version (always [`STATE_VERSION`] once parsed).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The machine state.
    pub fn machine(&self) -> &MachineStateWithKeys {
        &self.machine
    }

    /// The JSON text (keys included: store it like a private key).
    pub fn to_json(&self) -> String {
        // Every field is a string, number, bool, map or list: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse the JSON text. Never panics; bounded by [`MAX_STATE_BYTES`]; a newer `version` is
    /// [`StateError::FutureVersion`], another `format` [`StateError::NotAState`].
    pub fn from_json(text: &str) -> Result<Self, StateError> {
        if text.len() > MAX_STATE_BYTES {
            return Err(StateError::TooLarge {
                size: text.len(),
                max: MAX_STATE_BYTES,
            });
        }
        let header: Header = serde_json::from_str(text).map_err(|e| StateError::Malformed(e.to_string()))?;
        match header.format {
            Some(Value::String(f)) if f == STATE_FORMAT => {}
            other => {
                return Err(StateError::NotAState(
                    other.map(|v| v.to_string()).unwrap_or_default(),
                ));
            }
        }
        let version = header
            .version
            .as_ref()
            .and_then(Value::as_u64)
            .ok_or_else(|| StateError::Malformed("no numeric version".into()))?;
        if version > u64::from(STATE_VERSION) {
            return Err(StateError::FutureVersion {
                found: version,
                supported: STATE_VERSION,
            });
        }
        if version == 0 {
            return Err(StateError::Malformed("version 0 does not exist".into()));
        }
        let s: SerializedWormholeWithKeys =
            serde_json::from_str(text).map_err(|e| StateError::Malformed(e.to_string()))?;
        s.machine.check()?;
        Ok(s)
    }
}

fn malformed(why: &str) -> StateError {
    StateError::Malformed(why.to_owned())
}

impl MachineStateWithKeys {
    /// Consistency checks beyond the types (bounds the restored machine relies on).
    fn check(&self) -> Result<(), StateError> {
        if self.side.is_empty() || self.side.len() > 64 {
            return Err(malformed("side must be 1 to 64 characters"));
        }
        if self.held_before_key.len() > MAX_HELD {
            return Err(malformed("too many messages held before the key"));
        }
        if self.reorder.early.len() as u64 > MAX_REORDER_WINDOW {
            return Err(malformed("too many early peer messages"));
        }
        let mut early_bytes = 0usize;
        for e in &self.reorder.early {
            let n: u64 = e
                .phase
                .parse()
                .map_err(|_| malformed("early phase is not a number"))?;
            if n <= self.reorder.next || n - self.reorder.next > MAX_REORDER_WINDOW {
                return Err(malformed("early phase outside the reorder window"));
            }
            early_bytes = early_bytes.saturating_add(e.bytes.len());
        }
        if early_bytes > MAX_REORDER_BYTES {
            return Err(malformed("early peer messages exceed the reorder buffer"));
        }
        for m in &self.mailbox.unechoed {
            if !self.mailbox.sent.contains_key(&m.phase) {
                return Err(malformed("an unechoed message is not among the sent ones"));
            }
        }
        if self.key.pake.is_some() && self.key.done {
            return Err(malformed("SPAKE2 both finished and pending"));
        }
        if let Some(p) = &self.key.peer_pake
            && p.len() > 2 * crate::key::PAKE_BODY_MAX
        {
            return Err(malformed("peer pake body too large"));
        }
        Ok(())
    }
}

fn result_record(r: &Result<Mood, WormholeError>) -> ResultRecord {
    match r {
        Ok(m) => ResultRecord {
            mood: m.as_str().to_owned(),
            error: None,
        },
        Err(e) => {
            let kind = match e {
                WormholeError::Lonely => "lonely",
                WormholeError::WrongPassword => "wrong_password",
                WormholeError::Crowded => "crowded",
                WormholeError::Server(_) => "server",
                WormholeError::Welcome(_) => "welcome",
                WormholeError::Protocol(_) => "protocol",
                WormholeError::StateReused(_) => "state_reused",
                WormholeError::Closed => "closed",
                _ => "other",
            };
            let text = match e {
                WormholeError::Server(s)
                | WormholeError::Welcome(s)
                | WormholeError::Protocol(s)
                | WormholeError::StateReused(s) => s.clone(),
                other => other.to_string(),
            };
            let mood = match e {
                WormholeError::Lonely => Mood::Lonely,
                WormholeError::WrongPassword => Mood::Scary,
                WormholeError::Welcome(_) => Mood::Unwelcome,
                _ => Mood::Errory,
            };
            ResultRecord {
                mood: mood.as_str().to_owned(),
                error: Some((kind.to_owned(), text)),
            }
        }
    }
}

fn result_from_record(r: &ResultRecord) -> Result<Mood, WormholeError> {
    match &r.error {
        None => Ok(Mood::Happy),
        Some((kind, text)) => Err(match kind.as_str() {
            "lonely" => WormholeError::Lonely,
            "wrong_password" => WormholeError::WrongPassword,
            "crowded" => WormholeError::Crowded,
            "server" => WormholeError::Server(text.clone()),
            "welcome" => WormholeError::Welcome(text.clone()),
            "state_reused" => WormholeError::StateReused(text.clone()),
            "closed" => WormholeError::Closed,
            _ => WormholeError::Protocol(text.clone()),
        }),
    }
}

fn phase_bytes(v: &[(String, Vec<u8>)]) -> Vec<PhaseBytes> {
    v.iter()
        .map(|(phase, bytes)| PhaseBytes {
            phase: phase.clone(),
            bytes: bytes.clone(),
        })
        .collect()
}

fn pairs(v: Vec<PhaseBytes>) -> Vec<(String, Vec<u8>)> {
    v.into_iter().map(|p| (p.phase, p.bytes)).collect()
}

impl Boss {
    /// The machine's state, keys included, for [`SerializedWormholeWithKeys`]. Refused after
    /// Dilation began ([`StateError::Dilated`]), during interactive code input
    /// ([`StateError::InputInProgress`]) and once closed ([`StateError::Closed`]).
    pub fn snapshot(&self) -> Result<MachineStateWithKeys, StateError> {
        if self.next_dilate > 0 || self.dilate_reorder.next > 0 || !self.dilate_reorder.buffer.is_empty() {
            return Err(StateError::Dilated);
        }
        let phase = match self.phase {
            Phase::Empty => PhaseRecord::Empty,
            Phase::Lonely => PhaseRecord::Lonely,
            Phase::Happy => PhaseRecord::Happy,
            Phase::Closing => PhaseRecord::Closing,
            Phase::Closed => return Err(StateError::Closed),
        };
        let code = match &self.code.state {
            CodeState::Idle => CodeRecord::Idle,
            CodeState::Allocating { length } => CodeRecord::Allocating { length: *length },
            CodeState::Known => CodeRecord::Known,
            CodeState::Inputting {
                words_chosen: true, ..
            } => CodeRecord::Known,
            CodeState::Inputting { .. } => return Err(StateError::InputInProgress),
        };
        let np_state = match self.nameplate.state {
            NpState::Unknown => NameplateStateRecord::Unknown,
            NpState::Claiming => NameplateStateRecord::Claiming,
            NpState::Claimed => NameplateStateRecord::Claimed,
            NpState::Releasing => NameplateStateRecord::Releasing,
            NpState::Done => NameplateStateRecord::Done,
        };
        let mb_state = match &self.mailbox.state {
            MbState::Active => MailboxStateRecord::Active,
            MbState::Closing(mood) => MailboxStateRecord::Closing { mood: mood.clone() },
            MbState::Done => MailboxStateRecord::Done,
        };
        let pake = self.key.pake.as_ref().map(|p| {
            let (password, identity, secret) = p.secret_parts();
            PakeRecord {
                password: password.to_vec(),
                identity: identity.to_vec(),
                secret: Hex32(secret),
            }
        });
        Ok(MachineStateWithKeys {
            appid: self.cfg.appid.clone(),
            side: self.cfg.side.clone(),
            versions: self.cfg.versions.clone(),
            client_version: self.cfg.client_version.clone(),
            version_fields: self.version_fields.clone(),
            phase,
            result: self.result.as_ref().map(result_record),
            welcome_seen: self.welcome_seen,
            code,
            code_str: self.code_str.clone(),
            nameplate: NameplateRecord {
                name: self.nameplate.name.clone(),
                state: np_state,
            },
            mailbox: MailboxRecord {
                id: self.mailbox.mailbox.clone(),
                state: mb_state,
                unechoed: phase_bytes(&self.mailbox.pending),
                sent: self
                    .mailbox
                    .sent
                    .iter()
                    .map(|(k, v)| (k.clone(), Hex16(*v)))
                    .collect(),
                processed: self.mailbox.processed.iter().cloned().collect(),
            },
            held_before_key: self
                .order
                .held
                .iter()
                .map(|(side, phase, body)| HeldRecord {
                    side: side.clone(),
                    phase: phase.clone(),
                    body: body.clone(),
                })
                .collect(),
            key: KeyRecord {
                pake,
                code_known: self.key.code_known,
                peer_pake: self.key.peer_pake.as_ref().map(hex::encode),
                key: self.key.key.map(Hex32),
                done: self.key.done,
            },
            receive: ReceiveRecord {
                key: self.receive.key.map(Hex32),
                verified: self.receive.verified,
                scared: self.receive.scared,
            },
            send: SendRecord {
                next_phase: self.send.next_phase,
                queued: phase_bytes(&self.send.queued),
                key: self.send.key.map(Hex32),
            },
            reorder: ReorderRecord {
                next: self.reorder.next,
                early: self
                    .reorder
                    .buffer
                    .iter()
                    .map(|(n, b)| PhaseBytes {
                        phase: n.to_string(),
                        bytes: b.clone(),
                    })
                    .collect(),
            },
            verifier: self.verifier.map(Hex32),
            peer_versions: self.peer_versions.clone(),
            peer_side: self.peer_side.clone(),
            key_choice: self.choice.as_ref().map(|c| ChoiceRecord {
                standard: Hex32(c.standard),
                go: Hex32(c.go),
                brief: c.brief,
            }),
            terminator: TerminatorRecord {
                closing: self.term.closing,
                nameplate_done: self.term.nameplate_done,
                mailbox_done: self.term.mailbox_done,
            },
        })
    }

    /// A machine that carries on from `state`, with a fresh `rng` (cryptographically secure
    /// outside tests). Call [`Boss::start`]: it reconnects, re-claims or re-releases the
    /// nameplate, reopens the mailbox, re-sends every unechoed message and checks the mailbox
    /// for signs that this state was restored before ([`WormholeError::StateReused`]).
    pub fn restore(
        state: MachineStateWithKeys,
        rng: Box<dyn RngCore + std::marker::Send>,
    ) -> Result<Boss, StateError> {
        state.check()?;
        let s = state;
        let cfg = Config {
            appid: s.appid,
            side: s.side,
            versions: s.versions,
            client_version: s.client_version,
        };
        let mut boss = Boss::new(cfg, rng).with_version_fields(s.version_fields);
        let side = boss.cfg.side.clone();
        boss.phase = match s.phase {
            PhaseRecord::Empty => Phase::Empty,
            PhaseRecord::Lonely => Phase::Lonely,
            PhaseRecord::Happy => Phase::Happy,
            PhaseRecord::Closing => Phase::Closing,
        };
        boss.result = s.result.as_ref().map(result_from_record);
        boss.welcome_seen = s.welcome_seen;
        // A restored wormhole has connected before: a failed connection is retried, not fatal.
        boss.ever_connected = true;
        boss.conn = ConnState::Idle;
        boss.code = CodeMachine {
            state: match s.code {
                CodeRecord::Idle => CodeState::Idle,
                CodeRecord::Allocating { length } => CodeState::Allocating { length },
                CodeRecord::Known => CodeState::Known,
            },
            list_outstanding: false,
        };
        boss.code_str = s.code_str;
        boss.nameplate = Nameplate {
            name: s.nameplate.name,
            state: match s.nameplate.state {
                NameplateStateRecord::Unknown => NpState::Unknown,
                NameplateStateRecord::Claiming => NpState::Claiming,
                NameplateStateRecord::Claimed => NpState::Claimed,
                NameplateStateRecord::Releasing => NpState::Releasing,
                NameplateStateRecord::Done => NpState::Done,
            },
        };
        let pending = pairs(s.mailbox.unechoed);
        let pending_phases: HashSet<&str> = pending.iter().map(|(p, _)| p.as_str()).collect();
        let sent: BTreeMap<String, [u8; 16]> = s.mailbox.sent.into_iter().map(|(k, v)| (k, v.0)).collect();
        let audit: BTreeSet<String> = sent
            .keys()
            .filter(|p| !pending_phases.contains(p.as_str()))
            .cloned()
            .collect();
        let active = s.mailbox.state == MailboxStateRecord::Active;
        let mut mailbox = Mailbox::new(&side);
        mailbox.mailbox = s.mailbox.id;
        mailbox.state = match s.mailbox.state {
            MailboxStateRecord::Active => MbState::Active,
            MailboxStateRecord::Closing { mood } => MbState::Closing(mood),
            MailboxStateRecord::Done => MbState::Done,
        };
        mailbox.pending = pending;
        mailbox.processed = s.mailbox.processed.into_iter().collect();
        mailbox.strict_echo = true;
        // The saved process may have added any unechoed message: reopen with the replay ping.
        mailbox.opened_before = mailbox.mailbox.is_some();
        mailbox.audit = (active && mailbox.mailbox.is_some() && !audit.is_empty()).then_some(audit);
        mailbox.sent = sent;
        boss.mailbox = mailbox;
        boss.order = Order {
            held: s
                .held_before_key
                .into_iter()
                .map(|h| (h.side, h.phase, h.body))
                .collect::<VecDeque<_>>(),
        };
        let pake = match s.key.pake {
            Some(p) => Some(
                Pake::from_secret_parts(p.password, p.identity, p.secret.0)
                    .ok_or_else(|| malformed("SPAKE2 secret is not a canonical scalar"))?,
            ),
            None => None,
        };
        let peer_pake = match s.key.peer_pake {
            Some(h) => Some(hex::decode(h).map_err(|_| malformed("peer pake is not hex"))?),
            None => None,
        };
        boss.key = Key {
            pake,
            code_known: s.key.code_known,
            peer_pake,
            key: s.key.key.map(|k| k.0),
            done: s.key.done,
        };
        boss.receive = Receive {
            key: s.receive.key.map(|k| k.0),
            verified: s.receive.verified,
            scared: s.receive.scared,
        };
        let mut send = Sender::new(&side);
        send.next_phase = s.send.next_phase;
        send.queued = pairs(s.send.queued);
        send.key = s.send.key.map(|k| k.0);
        boss.send = send;
        let mut reorder = Reorder {
            next: s.reorder.next,
            ..Reorder::default()
        };
        for e in s.reorder.early {
            let n: u64 = e
                .phase
                .parse()
                .map_err(|_| malformed("early phase is not a number"))?;
            reorder.bytes += e.bytes.len();
            reorder.buffer.insert(n, e.bytes);
        }
        boss.reorder = reorder;
        boss.verifier = s.verifier.map(|v| v.0);
        boss.peer_versions = s.peer_versions;
        boss.peer_side = s.peer_side;
        boss.choice = s.key_choice.map(|c| KeyChoice {
            standard: c.standard.0,
            go: c.go.0,
            brief: c.brief,
            deadline: None,
        });
        boss.term = Terminator {
            closing: s.terminator.closing,
            nameplate_done: s.terminator.nameplate_done,
            mailbox_done: s.terminator.mailbox_done,
        };
        Ok(boss)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;

    fn boss(side: &str) -> Boss {
        let cfg = Config {
            appid: "example.com/snapshot".into(),
            side: side.into(),
            versions: json!({"v": 1}),
            client_version: None,
        };
        Boss::new(cfg, Box::new(rand::rngs::StdRng::seed_from_u64(3)))
    }

    fn rng() -> Box<dyn RngCore + std::marker::Send> {
        Box::new(rand::rngs::StdRng::seed_from_u64(4))
    }

    #[test]
    fn restore_then_snapshot_is_the_same_state() {
        let mut b = boss("aaaaaaaaaa");
        b.set_code("4-purple-sausages").unwrap();
        b.send_message(b"queued".to_vec()).unwrap();
        let s1 = b.snapshot().unwrap();
        let text = SerializedWormholeWithKeys::new("ws://x/v1", s1.clone()).to_json();
        let parsed = SerializedWormholeWithKeys::from_json(&text).unwrap();
        let restored = Boss::restore(parsed.machine().clone(), rng()).unwrap();
        assert_eq!(restored.snapshot().unwrap(), s1);
        assert_eq!(restored.code(), Some("4-purple-sausages"));
        assert_eq!(s1.messages_sent(), 1);
        assert!(!format!("{s1:?}").contains("purple"), "Debug hides the code");
    }

    #[test]
    fn refusals() {
        let mut b = boss("bbbbbbbbbb");
        b.input_code().unwrap();
        b.input_choose_nameplate("4").unwrap();
        assert_eq!(b.snapshot().err(), Some(StateError::InputInProgress));
        let mut c = boss("cccccccccc");
        c.start();
        // A first connection that fails closes the wormhole: nothing left to save.
        c.connection_lost(std::time::Instant::now(), 0.0, "refused");
        while c.poll_action().is_some() {}
        assert_eq!(c.snapshot().err(), Some(StateError::Closed));
    }

    #[test]
    fn parse_bounds_and_versions() {
        let b = boss("dddddddddd");
        let text = SerializedWormholeWithKeys::new("ws://x/v1", b.snapshot().unwrap()).to_json();
        let future = text.replace("\"version\":1", "\"version\":7");
        assert_eq!(
            SerializedWormholeWithKeys::from_json(&future),
            Err(StateError::FutureVersion {
                found: 7,
                supported: STATE_VERSION
            })
        );
        let zero = text.replace("\"version\":1", "\"version\":0");
        assert!(matches!(
            SerializedWormholeWithKeys::from_json(&zero),
            Err(StateError::Malformed(_))
        ));
        let extra = text.replace("\"welcome_seen\":false", "\"welcome_seen\":false,\"new\":1");
        assert!(matches!(
            SerializedWormholeWithKeys::from_json(&extra),
            Err(StateError::Malformed(_))
        ));
        let bad_scalar = {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            v["machine"]["key"]["pake"] = json!({"password": "", "identity": "", "secret": "ff".repeat(32)});
            v["machine"]["key"]["code_known"] = json!(true);
            v.to_string()
        };
        let parsed = SerializedWormholeWithKeys::from_json(&bad_scalar).unwrap();
        assert!(matches!(
            Boss::restore(parsed.machine().clone(), rng()),
            Err(StateError::Malformed(_))
        ));
    }
}
