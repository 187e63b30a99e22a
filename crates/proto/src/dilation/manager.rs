//! The Dilation manager (docs/protocol.md §6.2–6.3): the L1 messages that travel through the mailbox
//! as phases `dilate-0`, `dilate-1`, …, the Leader choice, and the manager state machine
//! (WAITING → WANTING → CONNECTING → CONNECTED, with FLUSHING / LONELY / ABANDONING around
//! reconnection, STOPPING / STOPPED at the end) as events in, actions out.
//!
//! Owns: the JSON shape of `please` (`side`, `use-version`), `connection-hints` (`hints`),
//! `reconnect` and `reconnecting`; the version choice
//! (the first of our versions the peer also lists); the role (the greater dilation side string
//! leads; equal sides are an error); when to start, restart or stop a connector generation.
//!
//! Must not: number, encrypt or send mailbox messages (the caller hands each [`Action::Send`] to
//! `machine::Boss::send_dilation_message`, the one counter of our `dilate-N` phases), dial or listen (it says [`Action::StartConnecting`] and the driver's connector does
//! it), parse hint contents (hints pass through as JSON values; the driver parses them with the
//! transit hint parser), or read clocks.
//!
//! Where Python would raise inside its state machine (a message that makes no sense in the
//! current state), this machine reports [`Action::Ignored`] and stays put.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::Role;

/// The Dilation versions we speak, most preferred first.
pub const OUR_VERSIONS: &[&str] = &["ged"];

/// Messages received before the peer's versions are known are held, up to this many.
pub const MAX_PENDING_MESSAGES: usize = 64;

/// One L1 message (the plaintext of a `dilate-N` phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum L1Message {
    /// "I want to dilate": sent by both sides once `dilate()` was called and the peer's
    /// versions arrived.
    Please {
        /// The sender's dilation side (16 hex chars in Python).
        side: String,
        /// The chosen version; absent when there is no common version.
        #[serde(rename = "use-version", default, skip_serializing_if = "Option::is_none")]
        use_version: Option<String>,
    },
    /// Where to reach the sender (hint dicts as in the transit `hints` list).
    ConnectionHints {
        /// The hints, as JSON (parsed by the driver).
        hints: Vec<Value>,
    },
    /// Leader → Follower: the current connection is dead, drop yours.
    Reconnect,
    /// Follower → Leader: connections dropped, ready for a new generation.
    Reconnecting,
}

impl L1Message {
    /// The JSON bytes to seal as a `dilate-N` phase.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising this enum (strings and JSON values only) cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a decrypted `dilate-N` body.
    pub fn from_bytes(bytes: &[u8]) -> Result<L1Message, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The keys a dilating side adds to its version message (docs/protocol.md §2.5):
/// `can-dilate` (our versions) and `dilation-abilities` (direct TCP and relay).
pub fn version_fields() -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("can-dilate".into(), serde_json::json!(OUR_VERSIONS));
    m.insert(
        "dilation-abilities".into(),
        serde_json::json!([{"type": "direct-tcp-v1"}, {"type": "relay-v1"}]),
    );
    m
}

/// The peer's `can-dilate` list from its version message; empty when absent or malformed
/// (non-string entries are skipped), so a peer that cannot dilate is never sent `dilate-N`.
pub fn peer_can_dilate(their_versions: &Value) -> Vec<String> {
    their_versions
        .get("can-dilate")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .take(MAX_PENDING_MESSAGES)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A new random dilation side: 8 random bytes as 16 lowercase hex chars.
pub fn new_side(rng: &mut impl rand::RngCore) -> String {
    let mut b = [0u8; 8];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The first of `mine` (in my order of preference) that `theirs` also lists.
pub fn find_shared_version(mine: &[&str], theirs: &[String]) -> Option<String> {
    mine.iter()
        .find(|m| theirs.iter().any(|t| t == *m))
        .map(|m| (*m).to_owned())
}

/// The role of the side whose dilation side is `mine`, given the peer's `theirs`.
pub fn choose_role(mine: &str, theirs: &str) -> Result<Role, ManagerError> {
    match mine.cmp(theirs) {
        std::cmp::Ordering::Greater => Ok(Role::Leader),
        std::cmp::Ordering::Less => Ok(Role::Follower),
        std::cmp::Ordering::Equal => Err(ManagerError::EqualSides),
    }
}

/// Why Dilation cannot go on. Each ends the manager (it enters STOPPED).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The peer lists no Dilation version we speak (or none at all): it is too old or too new.
    /// Use the plain wormhole, or upgrade one side.
    #[error("the peer cannot dilate: no common Dilation version")]
    NoCommonVersion,
    /// Both sides picked the same dilation side: our own messages are being reflected back.
    /// Start a new wormhole.
    #[error("the peer's dilation side equals ours (reflection?)")]
    EqualSides,
}

/// The manager's state (docs/protocol.md §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `dilate()` called; waiting for the peer's versions.
    Waiting,
    /// `please` sent; waiting for the peer's.
    Wanting,
    /// A connector generation is running.
    Connecting,
    /// One L3 connection is in use.
    Connected,
    /// Leader: the connection was lost, `reconnect` sent, waiting for `reconnecting`.
    Flushing,
    /// Follower: the connection was lost, waiting for the Leader's `reconnect`.
    Lonely,
    /// Follower: told to reconnect while connected; waiting for the connection to close.
    Abandoning,
    /// Stop requested while connected; waiting for the connection to close.
    Stopping,
    /// Terminal.
    Stopped,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `message` as our next `dilate-N` phase (the Boss numbers and seals it).
    Send {
        /// The message.
        message: L1Message,
    },
    /// Start a new connector generation in `role` (listen, publish hints, dial).
    StartConnecting {
        /// Our role.
        role: Role,
        /// Local generation counter (1 for the first connector); never sent on the wire.
        generation: u64,
    },
    /// Stop the current connector (cancel dials, close the listener).
    StopConnecting,
    /// Give these peer hints to the current connector.
    UseHints(Vec<Value>),
    /// Close the current L3 connection (then report [`Manager::connection_lost`]).
    AbandonConnection,
    /// The manager stopped; nothing more will happen.
    Stopped,
    /// Dilation failed; the manager stopped.
    Failed(ManagerError),
    /// An input had no effect; worth a log line.
    Ignored(String),
}

/// The Dilation manager of one side.
#[derive(Debug, Clone)]
pub struct Manager {
    state: State,
    my_side: String,
    role: Option<Role>,
    generation: u64,
    pending: Vec<Vec<u8>>,
}

impl Manager {
    /// A manager for dilation side `my_side` (see [`new_side`]), in WAITING.
    pub fn new(my_side: String) -> Self {
        Manager {
            state: State::Waiting,
            my_side,
            role: None,
            generation: 0,
            pending: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our role, once the peer's `please` arrived.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Our dilation side.
    pub fn side(&self) -> &str {
        &self.my_side
    }

    fn send(&mut self, message: L1Message, out: &mut Vec<Action>) {
        out.push(Action::Send { message });
    }

    fn start_connecting(&mut self, out: &mut Vec<Action>) {
        if let Some(role) = self.role {
            self.generation += 1;
            self.state = State::Connecting;
            out.push(Action::StartConnecting {
                role,
                generation: self.generation,
            });
        }
    }

    fn fail(&mut self, e: ManagerError, out: &mut Vec<Action>) {
        if self.state == State::Connecting {
            out.push(Action::StopConnecting);
        }
        self.state = State::Stopped;
        out.push(Action::Failed(e));
    }

    /// The peer's version message arrived; `their_can_dilate` is its `can-dilate` list (see
    /// [`peer_can_dilate`]; empty if absent). Sends `please` and replays messages that arrived
    /// earlier.
    ///
    /// A peer that lists no version at all gets no `dilate-N` message (docs/protocol.md §8: Rust and
    /// Go peers cannot handle one). A peer that lists only versions we do not speak gets
    /// `please` without `use-version`, as Python does, and the manager fails.
    pub fn got_peer_versions(&mut self, their_can_dilate: &[String]) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Waiting {
            out.push(Action::Ignored("peer versions arrived twice".into()));
            return out;
        }
        let use_version = find_shared_version(OUR_VERSIONS, their_can_dilate);
        let common = use_version.is_some();
        if !their_can_dilate.is_empty() {
            let side = self.my_side.clone();
            self.send(L1Message::Please { side, use_version }, &mut out);
        }
        if !common {
            self.fail(ManagerError::NoCommonVersion, &mut out);
            return out;
        }
        self.state = State::Wanting;
        for body in std::mem::take(&mut self.pending) {
            out.extend(self.received(&body));
        }
        out
    }

    /// Our connector announced hints: send them to the peer.
    pub fn send_hints(&mut self, hints: Vec<Value>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Connecting {
            self.send(L1Message::ConnectionHints { hints }, &mut out);
        } else {
            out.push(Action::Ignored(format!(
                "hints from a connector while {:?}",
                self.state
            )));
        }
        out
    }

    /// A decrypted `dilate-N` body from the peer, delivered in numeric order.
    pub fn received(&mut self, body: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Stopped => {
                out.push(Action::Ignored("L1 message after stop".into()));
                return out;
            }
            State::Waiting => {
                if self.pending.len() < MAX_PENDING_MESSAGES {
                    self.pending.push(body.to_vec());
                } else {
                    out.push(Action::Ignored(
                        "too many L1 messages before the peer's versions".into(),
                    ));
                }
                return out;
            }
            _ => {}
        }
        let message = match L1Message::from_bytes(body) {
            Ok(m) => m,
            Err(e) => {
                out.push(Action::Ignored(format!("unparseable L1 message: {e}")));
                return out;
            }
        };
        let leader = self.role == Some(Role::Leader);
        match (self.state, message) {
            (State::Wanting, L1Message::Please { side, .. }) => match choose_role(&self.my_side, &side) {
                Ok(role) => {
                    self.role = Some(role);
                    self.start_connecting(&mut out);
                }
                Err(e) => self.fail(e, &mut out),
            },
            (State::Connecting, L1Message::ConnectionHints { hints }) => {
                out.push(Action::UseHints(hints));
            }
            (state, L1Message::ConnectionHints { .. }) => {
                out.push(Action::Ignored(format!("hints while {state:?}")));
            }
            (State::Flushing, L1Message::Reconnecting) => self.start_connecting(&mut out),
            (State::Lonely, L1Message::Reconnect) if !leader => {
                self.send(L1Message::Reconnecting, &mut out);
                self.start_connecting(&mut out);
            }
            (State::Connected, L1Message::Reconnect) if !leader => {
                self.state = State::Abandoning;
                out.push(Action::AbandonConnection);
            }
            (State::Connecting, L1Message::Reconnect) if !leader => {
                out.push(Action::StopConnecting);
                self.send(L1Message::Reconnecting, &mut out);
                self.start_connecting(&mut out);
            }
            (state, message) => {
                out.push(Action::Ignored(format!(
                    "unexpected {} while {state:?}",
                    kind(&message)
                )));
            }
        }
        out
    }

    /// The connector produced the connection now in use.
    pub fn connection_made(&mut self) -> Vec<Action> {
        if self.state == State::Connecting {
            self.state = State::Connected;
            Vec::new()
        } else {
            vec![Action::Ignored(format!("connection made while {:?}", self.state))]
        }
    }

    /// The connection in use closed (or was abandoned).
    pub fn connection_lost(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, self.role) {
            (State::Connected, Some(Role::Leader)) => {
                self.state = State::Flushing;
                self.send(L1Message::Reconnect, &mut out);
            }
            (State::Connected, Some(Role::Follower)) => self.state = State::Lonely,
            (State::Abandoning, _) => {
                self.send(L1Message::Reconnecting, &mut out);
                self.start_connecting(&mut out);
            }
            (State::Stopping, _) => {
                self.state = State::Stopped;
                out.push(Action::Stopped);
            }
            (state, _) => out.push(Action::Ignored(format!("connection lost while {state:?}"))),
        }
        out
    }

    /// The application stops Dilation.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Waiting | State::Wanting | State::Flushing | State::Lonely => {
                self.state = State::Stopped;
                out.push(Action::Stopped);
            }
            State::Connecting => {
                self.state = State::Stopped;
                out.push(Action::StopConnecting);
                out.push(Action::Stopped);
            }
            State::Connected => {
                self.state = State::Stopping;
                out.push(Action::AbandonConnection);
            }
            State::Abandoning => self.state = State::Stopping,
            State::Stopping | State::Stopped => {}
        }
        out
    }
}

fn kind(m: &L1Message) -> &'static str {
    match m {
        L1Message::Please { .. } => "please",
        L1Message::ConnectionHints { .. } => "connection-hints",
        L1Message::Reconnect => "reconnect",
        L1Message::Reconnecting => "reconnecting",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HI: &str = "ffffffffffffff00";
    const LO: &str = "0000000000000001";

    fn body(m: &L1Message) -> Vec<u8> {
        m.to_bytes()
    }

    fn ged() -> Vec<String> {
        vec!["ged".into()]
    }

    fn please(side: &str) -> Vec<u8> {
        body(&L1Message::Please {
            side: side.into(),
            use_version: Some("ged".into()),
        })
    }

    fn connected(side: &str, peer: &str) -> Manager {
        let mut m = Manager::new(side.into());
        m.got_peer_versions(&ged());
        m.received(&please(peer));
        m.connection_made();
        assert_eq!(m.state(), State::Connected);
        m
    }

    #[test]
    fn json_shapes_match_python() {
        let v: Value = serde_json::from_slice(&please(HI)).unwrap();
        assert_eq!(v, json!({"type": "please", "side": HI, "use-version": "ged"}));
        let no_version = L1Message::Please {
            side: LO.into(),
            use_version: None,
        };
        let v: Value = serde_json::from_slice(&no_version.to_bytes()).unwrap();
        assert_eq!(v, json!({"type": "please", "side": LO}));
        let hints = L1Message::ConnectionHints {
            hints: vec![
                json!({"type": "direct-tcp-v1", "hostname": "10.0.0.1", "port": 4567, "priority": 0.0}),
            ],
        };
        let v: Value = serde_json::from_slice(&hints.to_bytes()).unwrap();
        assert_eq!(v["type"], "connection-hints");
        assert_eq!(v["hints"][0]["port"], 4567);
        assert_eq!(
            L1Message::Reconnect.to_bytes(),
            br#"{"type":"reconnect"}"#.to_vec()
        );
        assert_eq!(
            L1Message::from_bytes(br#"{"type":"reconnecting","extra":1}"#).unwrap(),
            L1Message::Reconnecting
        );
        // Python's `please` may carry other keys (the docs' accepted-versions).
        assert_eq!(
            L1Message::from_bytes(br#"{"type":"please","side":"ab","accepted-versions":["ged"]}"#).unwrap(),
            L1Message::Please {
                side: "ab".into(),
                use_version: None
            }
        );
        assert!(L1Message::from_bytes(br#"{"type":"bogus"}"#).is_err());
    }

    #[test]
    fn version_message_fields() {
        let mut versions = Value::Object(version_fields());
        assert_eq!(
            versions,
            json!({"can-dilate": ["ged"], "dilation-abilities": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}]})
        );
        assert_eq!(peer_can_dilate(&versions), ged());
        versions["app_versions"] = json!({});
        assert_eq!(peer_can_dilate(&versions), ged());
        assert!(peer_can_dilate(&json!({"app_versions": {}})).is_empty());
        assert!(peer_can_dilate(&json!({"can-dilate": "ged"})).is_empty());
        assert_eq!(peer_can_dilate(&json!({"can-dilate": [1, "ged", null]})), ged());
    }

    #[test]
    fn role_and_version_choice() {
        assert_eq!(choose_role(HI, LO), Ok(Role::Leader));
        assert_eq!(choose_role(LO, HI), Ok(Role::Follower));
        assert_eq!(choose_role(LO, LO), Err(ManagerError::EqualSides));
        assert_eq!(
            find_shared_version(&["ged", "old"], &["old".into(), "ged".into()]),
            Some("ged".into())
        );
        assert_eq!(find_shared_version(&["ged"], &[]), None);
        let mut rng = rand::rngs::mock::StepRng::new(0x0102_0304_0506_0708, 1);
        let s = new_side(&mut rng);
        assert_eq!(s.len(), 16);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn happy_path_both_roles() {
        for (me, peer, role) in [(HI, LO, Role::Leader), (LO, HI, Role::Follower)] {
            let mut m = Manager::new(me.into());
            assert_eq!(m.state(), State::Waiting);
            let a = m.got_peer_versions(&ged());
            assert_eq!(
                a,
                vec![Action::Send {
                    message: L1Message::Please {
                        side: me.into(),
                        use_version: Some("ged".into())
                    }
                }]
            );
            assert_eq!(m.state(), State::Wanting);
            // Hints before please are too early.
            assert!(matches!(
                m.received(&body(&L1Message::ConnectionHints { hints: vec![] }))[..],
                [Action::Ignored(_)]
            ));
            let a = m.received(&please(peer));
            assert_eq!(a, vec![Action::StartConnecting { role, generation: 1 }]);
            assert_eq!(m.role(), Some(role));
            let a = m.send_hints(vec![json!({"type": "relay-v1", "hints": []})]);
            assert!(matches!(
                &a[..],
                [Action::Send {
                    message: L1Message::ConnectionHints { .. }
                }]
            ));
            let a = m.received(&body(&L1Message::ConnectionHints {
                hints: vec![json!(1)],
            }));
            assert_eq!(a, vec![Action::UseHints(vec![json!(1)])]);
            assert!(m.connection_made().is_empty());
            assert_eq!(m.state(), State::Connected);
            // Late hints are ignored.
            assert!(matches!(
                m.received(&body(&L1Message::ConnectionHints { hints: vec![] }))[..],
                [Action::Ignored(_)]
            ));
        }
    }

    #[test]
    fn messages_before_versions_are_replayed() {
        let mut m = Manager::new(LO.into());
        assert!(m.received(&please(HI)).is_empty());
        let a = m.got_peer_versions(&ged());
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[1],
            Action::StartConnecting {
                role: Role::Follower,
                generation: 1
            }
        );
    }

    #[test]
    fn no_common_version_or_equal_sides_fail() {
        let mut m = Manager::new(LO.into());
        let a = m.got_peer_versions(&["future".into()]);
        assert!(matches!(
            &a[..],
            [
                Action::Send {
                    message: L1Message::Please {
                        use_version: None,
                        ..
                    },
                    ..
                },
                Action::Failed(ManagerError::NoCommonVersion)
            ]
        ));
        assert_eq!(m.state(), State::Stopped);

        // A peer without `can-dilate` (Go, Rust) is never sent a dilate-N message.
        let mut m = Manager::new(LO.into());
        assert_eq!(
            m.got_peer_versions(&[]),
            vec![Action::Failed(ManagerError::NoCommonVersion)]
        );

        let mut m = Manager::new(LO.into());
        m.got_peer_versions(&ged());
        assert_eq!(
            m.received(&please(LO)),
            vec![Action::Failed(ManagerError::EqualSides)]
        );
        assert_eq!(m.state(), State::Stopped);
    }

    #[test]
    fn leader_reconnect_cycle() {
        let mut m = connected(HI, LO);
        let a = m.connection_lost();
        assert!(matches!(
            &a[..],
            [Action::Send {
                message: L1Message::Reconnect
            }]
        ));
        assert_eq!(m.state(), State::Flushing);
        // A Leader never acts on `reconnect`.
        assert!(matches!(
            m.received(&body(&L1Message::Reconnect))[..],
            [Action::Ignored(_)]
        ));
        let a = m.received(&body(&L1Message::Reconnecting));
        assert_eq!(
            a,
            vec![Action::StartConnecting {
                role: Role::Leader,
                generation: 2
            }]
        );
        m.connection_made();
        assert_eq!(m.state(), State::Connected);
    }

    #[test]
    fn follower_reconnect_paths() {
        // Lost first, then told.
        let mut m = connected(LO, HI);
        assert!(m.connection_lost().is_empty());
        assert_eq!(m.state(), State::Lonely);
        let a = m.received(&body(&L1Message::Reconnect));
        assert!(matches!(
            &a[..],
            [
                Action::Send {
                    message: L1Message::Reconnecting,
                    ..
                },
                Action::StartConnecting { generation: 2, .. }
            ]
        ));
        // Told while connected: abandon, then answer once the connection is gone.
        m.connection_made();
        let a = m.received(&body(&L1Message::Reconnect));
        assert_eq!(a, vec![Action::AbandonConnection]);
        assert_eq!(m.state(), State::Abandoning);
        let a = m.connection_lost();
        assert!(matches!(
            &a[..],
            [
                Action::Send {
                    message: L1Message::Reconnecting,
                    ..
                },
                Action::StartConnecting { generation: 3, .. }
            ]
        ));
        // Told while still connecting: restart.
        let a = m.received(&body(&L1Message::Reconnect));
        assert!(matches!(
            &a[..],
            [
                Action::StopConnecting,
                Action::Send {
                    message: L1Message::Reconnecting,
                    ..
                },
                Action::StartConnecting { generation: 4, .. }
            ]
        ));
    }

    #[test]
    fn stop_from_each_state() {
        let mut m = Manager::new(LO.into());
        assert_eq!(m.stop(), vec![Action::Stopped]);
        assert!(matches!(m.received(&please(HI))[..], [Action::Ignored(_)]));

        let mut m = Manager::new(LO.into());
        m.got_peer_versions(&ged());
        m.received(&please(HI));
        assert_eq!(m.stop(), vec![Action::StopConnecting, Action::Stopped]);

        let mut m = connected(HI, LO);
        assert_eq!(m.stop(), vec![Action::AbandonConnection]);
        assert_eq!(m.state(), State::Stopping);
        assert_eq!(m.connection_lost(), vec![Action::Stopped]);
        assert_eq!(m.state(), State::Stopped);
    }

    #[test]
    fn garbage_is_ignored_not_fatal() {
        let mut m = connected(HI, LO);
        for junk in [&b"not json"[..], b"{}", b"[1,2]", br#"{"type":"please"}"#] {
            assert!(matches!(m.received(junk)[..], [Action::Ignored(_)]), "{junk:?}");
        }
        assert_eq!(m.state(), State::Connected);
        let mut w = Manager::new(LO.into());
        for _ in 0..MAX_PENDING_MESSAGES {
            w.received(b"x");
        }
        assert!(matches!(w.received(b"x")[..], [Action::Ignored(_)]));
    }
}
