//! Rendezvous: the client side of the mailbox wire (docs/protocol.md §1). Builds command frames,
//! parses server frames into [`Inbound`] (bounded, never panicking), tracks the connection
//! (first-connection failure vs. reconnect) and computes the reconnect backoff (§2.7).
//!
//! It owns no socket: the Boss asks the driver to connect and send.

use std::time::Duration;

use serde_json::Value;

use crate::server_msg::{ClientCommand, ClientVersion, ServerMessage};

/// Largest server frame we accept (bytes of JSON text). Peer messages are hex in `body`, so this
/// allows application messages of about 4 MiB; larger frames are refused unparsed.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Largest application message `send_message` accepts (plaintext bytes).
pub const MAX_MESSAGE_BYTES: usize = 3 * 1024 * 1024;

/// A command to the server (C->S, §1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `bind` with our appid and side.
    Bind {
        /// Application id.
        appid: String,
        /// Our side (10 hex chars).
        side: String,
        /// `[implementation, version]`, if any.
        client_version: Option<(String, String)>,
    },
    /// `allocate` a nameplate.
    Allocate,
    /// `claim` a nameplate.
    Claim(String),
    /// `release` a nameplate.
    Release(String),
    /// `open` a mailbox.
    Open(String),
    /// `add` a message: phase and raw body (hex-encoded on the wire).
    Add {
        /// Phase name.
        phase: String,
        /// Body bytes.
        body: Vec<u8>,
    },
    /// `close` the mailbox with a mood.
    Close {
        /// Mailbox id.
        mailbox: String,
        /// Mood string.
        mood: String,
    },
    /// `list` nameplates.
    List,
    /// `submit-permissions` with a hashcash stamp (before `bind`, §1.10).
    SubmitHashcash(String),
    /// `ping` (answered by `pong` after everything the commands before it caused).
    Ping(i64),
}

impl Command {
    /// The wire command ([`ClientCommand`]) for this command with the given `id` (Python and Go
    /// send a random 4-hex-digit id on every command; the server echoes it in its `ack`).
    pub fn to_wire(&self, id: &str) -> ClientCommand {
        let id = Some(id.to_owned());
        match self {
            Command::Bind {
                appid,
                side,
                client_version,
            } => ClientCommand::Bind {
                appid: appid.clone(),
                side: side.clone(),
                client_version: client_version.clone().map(|(i, v)| ClientVersion(i, v)),
                id,
            },
            Command::Allocate => ClientCommand::Allocate { id },
            Command::Claim(n) => ClientCommand::Claim {
                nameplate: n.clone(),
                id,
            },
            Command::Release(n) => ClientCommand::Release {
                nameplate: Some(n.clone()),
                id,
            },
            Command::Open(m) => ClientCommand::Open {
                mailbox: m.clone(),
                id,
            },
            Command::Add { phase, body } => ClientCommand::Add {
                phase: phase.clone(),
                body: hex::encode(body),
                id,
            },
            Command::Close { mailbox, mood } => ClientCommand::Close {
                mailbox: Some(mailbox.clone()),
                mood: Some(mood.clone()),
                id,
            },
            Command::List => ClientCommand::List { id },
            Command::Ping(ping) => ClientCommand::Ping { ping: *ping, id },
            Command::SubmitHashcash(stamp) => ClientCommand::SubmitPermissions {
                method: "hashcash".to_owned(),
                stamp: stamp.clone(),
                id,
            },
        }
    }

    /// The JSON object for this command with the given `id`.
    pub fn to_value(&self, id: &str) -> Value {
        serde_json::to_value(self.to_wire(id)).unwrap_or(Value::Null)
    }
}

/// A server frame, parsed (S->C, §1.3). Unknown types are kept as `Unknown` and ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `welcome` with its dict and its `server_tx` (the server's clock, for a hashcash date).
    Welcome(Value, Option<f64>),
    /// `ack` of a command (ignored by the client).
    Ack,
    /// `pong`.
    Pong,
    /// `nameplates`: the listed ids.
    Nameplates(Vec<String>),
    /// `allocated` nameplate.
    Allocated(String),
    /// `claimed`: mailbox id.
    Claimed(String),
    /// `released`.
    Released,
    /// `message` from some side (ours: an echo).
    Message {
        /// Sender side.
        side: String,
        /// Phase name.
        phase: String,
        /// Body bytes (hex-decoded).
        body: Vec<u8>,
    },
    /// `closed`.
    Closed,
    /// `error` with the message and the original command.
    Error {
        /// The server's error string.
        error: String,
        /// The command it refers to.
        orig: Value,
    },
    /// Any other type.
    Unknown(String),
}

/// Why a server frame was refused (the frame is ignored; the driver may log it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Larger than [`MAX_FRAME_BYTES`].
    #[error("server frame too large ({0} bytes)")]
    TooLarge(usize),
    /// Not a JSON object.
    #[error("server frame is not a JSON object: {0}")]
    NotJson(String),
    /// A known type lacked a field or had the wrong kind of value.
    #[error("server frame of type {kind:?} is malformed: {why}")]
    Malformed {
        /// Frame type.
        kind: String,
        /// What was wrong.
        why: String,
    },
}

/// Parse one server frame. Never panics; bounded by [`MAX_FRAME_BYTES`].
pub fn parse_frame(text: &str) -> Result<Inbound, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let kind = match v.get("type") {
        Some(Value::String(s)) => s.clone(),
        _ if !v.is_object() => return Err(FrameError::NotJson("not an object".into())),
        _ => {
            return Err(FrameError::Malformed {
                kind: String::new(),
                why: "no type".into(),
            });
        }
    };
    let msg: ServerMessage = serde_json::from_value(v).map_err(|e| FrameError::Malformed {
        kind: kind.clone(),
        why: e.to_string(),
    })?;
    Ok(match msg {
        ServerMessage::Welcome { welcome, server_tx } => {
            Inbound::Welcome(serde_json::to_value(welcome).unwrap_or(Value::Null), server_tx)
        }
        ServerMessage::Ack { .. } => Inbound::Ack,
        ServerMessage::Pong { .. } => Inbound::Pong,
        ServerMessage::Nameplates { nameplates, .. } => {
            Inbound::Nameplates(nameplates.into_iter().map(|n| n.id).collect())
        }
        ServerMessage::Allocated { nameplate, .. } => Inbound::Allocated(nameplate),
        ServerMessage::Claimed { mailbox, .. } => Inbound::Claimed(mailbox),
        ServerMessage::Released { .. } => Inbound::Released,
        ServerMessage::Message {
            side, phase, body, ..
        } => {
            let body = hex::decode(body).map_err(|e| FrameError::Malformed {
                kind,
                why: format!("body is not hex: {e}"),
            })?;
            Inbound::Message { side, phase, body }
        }
        ServerMessage::Closed { .. } => Inbound::Closed,
        ServerMessage::Error { error, orig, .. } => Inbound::Error { error, orig },
        _ => Inbound::Unknown(kind),
    })
}

/// Reconnect delay after `attempt` consecutive failures (0 for the first retry):
/// `min(1 s × 1.5^attempt, 60 s) + jitter`, with `jitter` in `[0, 1)` seconds supplied by the
/// caller (Twisted's default policy, which Python uses).
pub fn backoff_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 1.5f64.powi(attempt.min(64) as i32).min(60.0);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Duration::from_secs_f64(base + jitter)
}

/// Connection bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Not started.
    Idle,
    /// A connect was requested.
    Connecting,
    /// The WebSocket is open and `bind` was sent.
    Connected,
    /// Waiting for the backoff timer.
    Waiting,
    /// Finished; no more connections.
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(0, 0.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(1, 0.0), Duration::from_millis(1500));
        assert_eq!(backoff_delay(2, 0.5), Duration::from_millis(2750));
        assert_eq!(backoff_delay(20, 0.0), Duration::from_secs(60));
        assert_eq!(backoff_delay(1000, 0.25), Duration::from_millis(60250));
        assert_eq!(backoff_delay(0, f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn parses_python_frames() {
        let m = parse_frame(
            r#"{"type": "message", "side": "abc", "phase": "pake", "body": "7b7d", "server_rx": 1.5, "id": null, "server_tx": 2.0}"#,
        );
        assert_eq!(
            m,
            Ok(Inbound::Message {
                side: "abc".into(),
                phase: "pake".into(),
                body: b"{}".to_vec()
            })
        );
        assert_eq!(
            parse_frame(r#"{"type":"claimed","mailbox":"mf6c","server_tx":1}"#),
            Ok(Inbound::Claimed("mf6c".into()))
        );
        assert_eq!(
            parse_frame(r#"{"type":"nameplates","nameplates":[{"id":"7"},{"id":"12"}]}"#),
            Ok(Inbound::Nameplates(vec!["7".into(), "12".into()]))
        );
        assert_eq!(
            parse_frame(r#"{"type":"whatever"}"#),
            Ok(Inbound::Unknown("whatever".into()))
        );
    }

    #[test]
    fn refuses_bad_frames_without_panicking() {
        assert!(parse_frame("[1,2]").is_err());
        assert!(parse_frame("not json").is_err());
        assert!(parse_frame(r#"{"type":"message","side":"a","phase":"0","body":"zz"}"#).is_err());
        assert!(parse_frame(r#"{"type":"claimed","mailbox":7}"#).is_err());
        assert!(parse_frame(r#"{"no":"type"}"#).is_err());
        let big = format!("{{\"type\":\"x\",\"p\":\"{}\"}}", "a".repeat(MAX_FRAME_BYTES));
        assert_eq!(parse_frame(&big), Err(FrameError::TooLarge(big.len())));
    }

    #[test]
    fn bind_has_client_version_and_id() {
        let c = Command::Bind {
            appid: "app".into(),
            side: "s1".into(),
            client_version: Some(("rust".into(), "0.1".into())),
        };
        let v = c.to_value("ab12");
        assert_eq!(v["type"], "bind");
        assert_eq!(v["client_version"], json!(["rust", "0.1"]));
        assert_eq!(v["id"], "ab12");
        let a = Command::Add {
            phase: "0".into(),
            body: vec![0xff, 0x01],
        }
        .to_value("0001");
        assert_eq!(a["body"], "ff01");
    }
}
