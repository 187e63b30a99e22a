//! Wire types of the client ⇄ mailbox-server protocol (docs/protocol.md §1): one JSON object per
//! WebSocket TEXT frame, tagged by its `"type"` key.
//!
//! [`ClientCommand`] is what a client sends (`bind`, `ping`, `list`, `allocate`, `claim`,
//! `release`, `open`, `add`, `close`); [`ServerMessage`] is what a server sends (`welcome`,
//! `ack`, `pong`, `nameplates`, `allocated`, `claimed`, `released`, `message`, `closed`,
//! `error`). Both directions serialize and deserialize, so the client library, the server and
//! the tests share one definition.
//!
//! Compatibility rules encoded here:
//! - unknown keys are ignored when parsing (the welcome object keeps them in
//!   [`Welcome::extra`]);
//! - an unknown server message type parses as [`ServerMessage::Unknown`] so clients can skip it;
//! - `server_tx` is optional when parsing (every real server sends it) and omitted when `None`;
//! - `ack.id` and `message.id` are written even when `None` (as JSON `null`), like server 0.8.
//!
//! This module only describes bytes. It must not do I/O, read clocks, or hold protocol state.
//! The server validates untrusted commands itself (it needs Python's exact error strings and
//! the original object for `orig`), so [`ClientCommand`] parsing is a convenience for clients
//! and tests, not the server's validator.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `client_version` of a `bind`: `[implementation, version]`, e.g. `["python","0.24.0"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientVersion(pub String, pub String);

/// A command sent by a client to the mailbox server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientCommand {
    /// Bind the connection to an application namespace and a side.
    Bind {
        /// Application id, e.g. `lothar.com/wormhole/text-or-file-xfer`.
        appid: String,
        /// This client's side (10 hex characters in every known client).
        side: String,
        /// `[implementation, version]`; Rust clients omit it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_version: Option<ClientVersion>,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Liveness check; needs no `bind`. The server answers `pong` with the same value.
    Ping {
        /// Any integer.
        ping: i64,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Ask for the nameplates currently in use in this app.
    List {
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Ask the server to pick and claim a free nameplate.
    Allocate {
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Claim a nameplate (digits only), learning its mailbox id.
    Claim {
        /// The nameplate, e.g. `"7"`.
        nameplate: String,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Release this side's claim on a nameplate.
    Release {
        /// The nameplate; optional when this connection claimed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nameplate: Option<String>,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Open (and subscribe to) a mailbox; stored messages are replayed.
    Open {
        /// The mailbox id from `claimed`.
        mailbox: String,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Add a message to the open mailbox; it is echoed to every subscriber.
    Add {
        /// The phase, e.g. `pake`, `version`, `0`.
        phase: String,
        /// The body as lowercase hex.
        body: String,
        /// Optional command id, echoed in the `ack` and in the resulting `message`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Close this side of the mailbox, with a mood.
    Close {
        /// The mailbox; optional when this connection opened one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mailbox: Option<String>,
        /// `happy`, `lonely`, `scary`, `errory`, `unwelcome`, or anything else.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mood: Option<String>,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Answer the welcome's `permission-required` before `bind` (docs/protocol.md §1.10).
    /// wormhole-rs 0.8 sends the type as `submit-permission`; servers accept both.
    #[serde(rename = "submit-permissions", alias = "submit-permission")]
    SubmitPermissions {
        /// The method chosen, e.g. `hashcash`.
        method: String,
        /// The hashcash stamp.
        stamp: String,
        /// Optional command id, echoed in the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl ClientCommand {
    /// The command's `id`, if it carries one.
    pub fn id(&self) -> Option<&str> {
        match self {
            ClientCommand::Bind { id, .. }
            | ClientCommand::Ping { id, .. }
            | ClientCommand::List { id }
            | ClientCommand::Allocate { id }
            | ClientCommand::Claim { id, .. }
            | ClientCommand::Release { id, .. }
            | ClientCommand::Open { id, .. }
            | ClientCommand::Add { id, .. }
            | ClientCommand::Close { id, .. }
            | ClientCommand::SubmitPermissions { id, .. } => id.as_deref(),
        }
    }
}

/// The peer address the server saw, in `welcome["your-address"]` (server 0.8.0 and later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YourAddress {
    /// TCP port of the client as seen by the server.
    pub port: u16,
    /// Dotted IPv4 address (IPv4-mapped IPv6 addresses are folded to this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// The body of the `welcome` message. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// Message of the day; clients print it and continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motd: Option<String>,
    /// The CLI version the server advertises; clients warn on a mismatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cli_version: Option<String>,
    /// A server-signalled error; clients show it and abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The client's address as the server saw it.
    #[serde(rename = "your-address", default, skip_serializing_if = "Option::is_none")]
    pub your_address: Option<YourAddress>,
    /// Any other keys (e.g. `permission-required`), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of a `nameplates` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameplateEntry {
    /// The nameplate, e.g. `"7"`.
    pub id: String,
}

/// A message sent by the mailbox server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServerMessage {
    /// First frame on every connection.
    Welcome {
        /// Server information.
        welcome: Welcome,
        /// Server clock (seconds since the epoch) when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Sent once per command (that has a `type`), before any other reply to it, in order.
    Ack {
        /// Copy of the command's `id`, `null` if it had none.
        #[serde(default)]
        id: Option<String>,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `ping`.
    Pong {
        /// The value of the `ping`.
        pong: i64,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `list`.
    Nameplates {
        /// Nameplates in use in this app, sorted as strings.
        nameplates: Vec<NameplateEntry>,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `allocate`.
    Allocated {
        /// The allocated nameplate.
        nameplate: String,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `claim`.
    Claimed {
        /// The mailbox id the nameplate points to.
        mailbox: String,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `release`.
    Released {
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// A mailbox message: a replay on `open`, or a live `add` (including our own echo).
    Message {
        /// The side that added it.
        side: String,
        /// Its phase.
        phase: String,
        /// Its body as hex.
        body: String,
        /// Server clock when the `add` arrived.
        #[serde(default)]
        server_rx: Option<f64>,
        /// Copy of the `add` command's `id`.
        #[serde(default)]
        id: Option<String>,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Answer to `close`.
    Closed {
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// A command was refused.
    Error {
        /// Human-readable reason, e.g. `crowded`, `must bind first`.
        error: String,
        /// The original command object.
        #[serde(default)]
        orig: Value,
        /// Server clock when sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_tx: Option<f64>,
    },
    /// Any message type this crate does not know; clients ignore it.
    #[serde(other)]
    Unknown,
}

impl ServerMessage {
    /// The message's `server_tx`, if any.
    pub fn server_tx(&self) -> Option<f64> {
        match self {
            ServerMessage::Welcome { server_tx, .. }
            | ServerMessage::Ack { server_tx, .. }
            | ServerMessage::Pong { server_tx, .. }
            | ServerMessage::Nameplates { server_tx, .. }
            | ServerMessage::Allocated { server_tx, .. }
            | ServerMessage::Claimed { server_tx, .. }
            | ServerMessage::Released { server_tx }
            | ServerMessage::Message { server_tx, .. }
            | ServerMessage::Closed { server_tx }
            | ServerMessage::Error { server_tx, .. } => *server_tx,
            ServerMessage::Unknown => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Parse, re-serialize, re-parse: the value must survive and match `expected`. Returns the
    /// original and the re-serialized JSON values.
    fn roundtrip<T>(bytes: &str, expected: &T) -> (Value, Value)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let parsed: T = serde_json::from_str(bytes).unwrap();
        assert_eq!(&parsed, expected);
        let out = serde_json::to_string(&parsed).unwrap();
        let again: T = serde_json::from_str(&out).unwrap();
        assert_eq!(&again, expected);
        (
            serde_json::from_str(bytes).unwrap(),
            serde_json::from_str(&out).unwrap(),
        )
    }

    fn roundtrip_client(bytes: &str, expected: &ClientCommand) {
        let (a, b) = roundtrip(bytes, expected);
        // Same JSON value as the original, apart from keys we drop.
        for (k, v) in b.as_object().unwrap() {
            assert_eq!(a.get(k), Some(v), "key {k}");
        }
    }

    fn roundtrip_server(bytes: &str, expected: &ServerMessage) {
        let (a, b) = roundtrip(bytes, expected);
        assert_eq!(a, b, "server message must re-serialize to the same JSON value");
    }

    // Client commands as the Python 0.24.0 client writes them (json.dumps: ", " and ": ").
    #[test]
    fn python_bind() {
        roundtrip_client(
            r#"{"appid": "lothar.com/wormhole/text-or-file-xfer", "side": "79fe711da1", "client_version": ["python", "0.24.0"], "id": "b7c9", "type": "bind"}"#,
            &ClientCommand::Bind {
                appid: "lothar.com/wormhole/text-or-file-xfer".into(),
                side: "79fe711da1".into(),
                client_version: Some(ClientVersion("python".into(), "0.24.0".into())),
                id: Some("b7c9".into()),
            },
        );
    }

    #[test]
    fn rust_bind_without_version_or_id() {
        let c = ClientCommand::Bind {
            appid: "a".into(),
            side: "s".into(),
            client_version: None,
            id: None,
        };
        roundtrip_client(r#"{"type":"bind","appid":"a","side":"s"}"#, &c);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"type":"bind","appid":"a","side":"s"}"#
        );
    }

    #[test]
    fn python_commands() {
        let cases: Vec<(&str, ClientCommand)> = vec![
            (
                r#"{"nameplate": "7", "id": "dd17", "type": "claim"}"#,
                ClientCommand::Claim {
                    nameplate: "7".into(),
                    id: Some("dd17".into()),
                },
            ),
            (
                r#"{"mailbox": "mf6cshojhht3s", "id": "0a1b", "type": "open"}"#,
                ClientCommand::Open {
                    mailbox: "mf6cshojhht3s".into(),
                    id: Some("0a1b".into()),
                },
            ),
            (
                r#"{"phase": "pake", "body": "0011ff", "id": "c0de", "type": "add"}"#,
                ClientCommand::Add {
                    phase: "pake".into(),
                    body: "0011ff".into(),
                    id: Some("c0de".into()),
                },
            ),
            (
                r#"{"nameplate": "7", "id": "9f00", "type": "release"}"#,
                ClientCommand::Release {
                    nameplate: Some("7".into()),
                    id: Some("9f00".into()),
                },
            ),
            (
                r#"{"mailbox": "mf6cshojhht3s", "mood": "happy", "id": "1d54", "type": "close"}"#,
                ClientCommand::Close {
                    mailbox: Some("mf6cshojhht3s".into()),
                    mood: Some("happy".into()),
                    id: Some("1d54".into()),
                },
            ),
            (
                r#"{"id": "aa00", "type": "allocate"}"#,
                ClientCommand::Allocate {
                    id: Some("aa00".into()),
                },
            ),
            (
                r#"{"id": "bb00", "type": "list"}"#,
                ClientCommand::List {
                    id: Some("bb00".into()),
                },
            ),
            (
                r#"{"ping": 3, "id": "cc00", "type": "ping"}"#,
                ClientCommand::Ping {
                    ping: 3,
                    id: Some("cc00".into()),
                },
            ),
            (
                r#"{"type": "release"}"#,
                ClientCommand::Release {
                    nameplate: None,
                    id: None,
                },
            ),
            (
                r#"{"type": "close", "mood": "lonely"}"#,
                ClientCommand::Close {
                    mailbox: None,
                    mood: Some("lonely".into()),
                    id: None,
                },
            ),
        ];
        for (bytes, cmd) in cases {
            roundtrip_client(bytes, &cmd);
        }
    }

    #[test]
    fn client_unknown_keys_are_ignored() {
        let c: ClientCommand =
            serde_json::from_str(r#"{"type":"claim","nameplate":"4","future":[1,2]}"#).unwrap();
        assert_eq!(
            c,
            ClientCommand::Claim {
                nameplate: "4".into(),
                id: None
            }
        );
        assert_eq!(c.id(), None);
    }

    // Server messages as server 0.8.0 writes them.
    #[test]
    fn python_welcome() {
        let mut extra = Map::new();
        extra.insert("permission-required".into(), serde_json::json!({"none": {}}));
        roundtrip_server(
            r#"{"welcome": {"motd": "hello motd", "current_cli_version": "0.24.0", "your-address": {"port": 60206, "ipv4": "127.0.0.1"}, "permission-required": {"none": {}}}, "type": "welcome", "server_tx": 1700000000.123456}"#,
            &ServerMessage::Welcome {
                welcome: Welcome {
                    motd: Some("hello motd".into()),
                    current_cli_version: Some("0.24.0".into()),
                    error: None,
                    your_address: Some(YourAddress {
                        port: 60206,
                        ipv4: Some("127.0.0.1".into()),
                        ipv6: None,
                    }),
                    extra,
                },
                server_tx: Some(1700000000.123456),
            },
        );
        roundtrip_server(
            r#"{"welcome": {"error": "go away", "your-address": {"port": 1, "ipv6": "::1"}}, "type": "welcome", "server_tx": 1.5}"#,
            &ServerMessage::Welcome {
                welcome: Welcome {
                    error: Some("go away".into()),
                    your_address: Some(YourAddress {
                        port: 1,
                        ipv4: None,
                        ipv6: Some("::1".into()),
                    }),
                    ..Welcome::default()
                },
                server_tx: Some(1.5),
            },
        );
    }

    #[test]
    fn python_replies() {
        let tx = Some(1700000000.5);
        let cases: Vec<(&str, ServerMessage)> = vec![
            (
                r#"{"id": "b7c9", "type": "ack", "server_tx": 1700000000.5}"#,
                ServerMessage::Ack {
                    id: Some("b7c9".into()),
                    server_tx: tx,
                },
            ),
            (
                r#"{"id": null, "type": "ack", "server_tx": 1700000000.5}"#,
                ServerMessage::Ack {
                    id: None,
                    server_tx: tx,
                },
            ),
            (
                r#"{"pong": 7, "type": "pong", "server_tx": 1700000000.5}"#,
                ServerMessage::Pong {
                    pong: 7,
                    server_tx: tx,
                },
            ),
            (
                r#"{"nameplates": [{"id": "12"}, {"id": "7"}], "type": "nameplates", "server_tx": 1700000000.5}"#,
                ServerMessage::Nameplates {
                    nameplates: vec![
                        NameplateEntry { id: "12".into() },
                        NameplateEntry { id: "7".into() },
                    ],
                    server_tx: tx,
                },
            ),
            (
                r#"{"nameplate": "7", "type": "allocated", "server_tx": 1700000000.5}"#,
                ServerMessage::Allocated {
                    nameplate: "7".into(),
                    server_tx: tx,
                },
            ),
            (
                r#"{"mailbox": "mf6cshojhht3s", "type": "claimed", "server_tx": 1700000000.5}"#,
                ServerMessage::Claimed {
                    mailbox: "mf6cshojhht3s".into(),
                    server_tx: tx,
                },
            ),
            (
                r#"{"type": "released", "server_tx": 1700000000.5}"#,
                ServerMessage::Released { server_tx: tx },
            ),
            (
                r#"{"side": "79fe711da1", "phase": "pake", "body": "41ff", "server_rx": 1700000000.25, "id": "c0de", "type": "message", "server_tx": 1700000000.5}"#,
                ServerMessage::Message {
                    side: "79fe711da1".into(),
                    phase: "pake".into(),
                    body: "41ff".into(),
                    server_rx: Some(1700000000.25),
                    id: Some("c0de".into()),
                    server_tx: tx,
                },
            ),
            (
                r#"{"side": "79fe711da1", "phase": "0", "body": "", "server_rx": 1700000000.25, "id": null, "type": "message", "server_tx": 1700000000.5}"#,
                ServerMessage::Message {
                    side: "79fe711da1".into(),
                    phase: "0".into(),
                    body: "".into(),
                    server_rx: Some(1700000000.25),
                    id: None,
                    server_tx: tx,
                },
            ),
            (
                r#"{"type": "closed", "server_tx": 1700000000.5}"#,
                ServerMessage::Closed { server_tx: tx },
            ),
            (
                r#"{"error": "crowded", "orig": {"nameplate": "7", "id": "dd17", "type": "claim"}, "type": "error", "server_tx": 1700000000.5}"#,
                ServerMessage::Error {
                    error: "crowded".into(),
                    orig: serde_json::json!({"nameplate": "7", "id": "dd17", "type": "claim"}),
                    server_tx: tx,
                },
            ),
        ];
        for (bytes, msg) in cases {
            roundtrip_server(bytes, &msg);
            assert_eq!(msg.server_tx(), tx);
        }
    }

    #[test]
    fn unknown_server_type_and_keys() {
        let m: ServerMessage =
            serde_json::from_str(r#"{"type": "future-thing", "x": 1, "server_tx": 2.0}"#).unwrap();
        assert_eq!(m, ServerMessage::Unknown);
        let m: ServerMessage = serde_json::from_str(r#"{"type":"closed","extra":{"a":1}}"#).unwrap();
        assert_eq!(m, ServerMessage::Closed { server_tx: None });
    }

    #[test]
    fn compact_ack_keeps_null_id() {
        let s = serde_json::to_string(&ServerMessage::Ack {
            id: None,
            server_tx: Some(1.25),
        })
        .unwrap();
        assert_eq!(s, r#"{"type":"ack","id":null,"server_tx":1.25}"#);
    }
}
