//! fowl's messages. On a `fowl-commands` subchannel the side that runs a service asks its peer
//! to listen for it ([`RequestListener`]) and gets a [`ListenerResponse`]. On a `fowl`
//! subchannel (one per forwarded TCP connection) the side that accepted the local connection
//! sends an [`OpenRequest`] naming the service and waits for an [`OpenReply`] before any data.
//!
//! Owns: the field names and their types, tolerant of what Python sends (`nil` for an absent
//! port, extra keys). Must not: decide anything (that is [`super::policy`]).

use serde::{Deserialize, Serialize};

use super::frame::{self, FrameError};

/// A TCP port from the peer: `nil` or absent is none; anything outside 1..=65535 is refused.
fn port(v: Option<i64>, field: &str) -> Result<Option<u16>, FrameError> {
    match v {
        None => Ok(None),
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .map(Some)
            .ok_or_else(|| FrameError::Malformed(format!("{field} {p} is not a TCP port"))),
    }
}

/// "Listen on your side for connections to my service `unique_name`" (fowl's `fledge`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestListener {
    /// Always `"request-listener"`.
    kind: &'static str,
    /// The service's name, which the peer must have allowed.
    #[serde(rename = "unique-name")]
    pub unique_name: String,
    /// The port the peer should listen on (`nil`: the peer's choice).
    #[serde(rename = "listen-port")]
    pub listen_port: Option<u16>,
}

impl RequestListener {
    /// A request for `unique_name`, optionally on `listen_port` at the peer.
    pub fn new(unique_name: &str, listen_port: Option<u16>) -> RequestListener {
        RequestListener {
            kind: "request-listener",
            unique_name: unique_name.to_owned(),
            listen_port,
        }
    }
}

/// The answer to a [`RequestListener`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerResponse {
    /// Always `"listener-response"`.
    kind: &'static str,
    /// The service it answers.
    #[serde(rename = "unique-name")]
    pub unique_name: String,
    /// Whether the peer now listens.
    pub listening: bool,
    /// The port the peer wants us to connect to locally (its `--client …:remote-connect=P`).
    #[serde(rename = "desired-port", skip_serializing_if = "Option::is_none")]
    pub desired_port: Option<u16>,
    /// Why not, when not listening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ListenerResponse {
    /// "Listening", with the port the service should be reached on, if we insist on one.
    pub fn listening(unique_name: &str, desired_port: Option<u16>) -> ListenerResponse {
        ListenerResponse {
            kind: "listener-response",
            unique_name: unique_name.to_owned(),
            listening: true,
            desired_port,
            reason: None,
        }
    }

    /// "Not listening", and why.
    pub fn refused(unique_name: &str, reason: &str) -> ListenerResponse {
        ListenerResponse {
            kind: "listener-response",
            unique_name: unique_name.to_owned(),
            listening: false,
            desired_port: None,
            reason: Some(reason.to_owned()),
        }
    }
}

/// A message on a `fowl-commands` subchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMsg {
    /// The peer asks us to listen.
    RequestListener(RequestListener),
    /// The peer answers our request.
    ListenerResponse(ListenerResponse),
    /// A kind we do not know (fowl reports it and goes on; so do we).
    Unknown(String),
}

/// Every field any control message has, as it arrives.
#[derive(Deserialize)]
struct RawControl {
    kind: String,
    #[serde(rename = "unique-name")]
    unique_name: Option<String>,
    #[serde(rename = "listen-port")]
    listen_port: Option<i64>,
    listening: Option<bool>,
    #[serde(rename = "desired-port")]
    desired_port: Option<i64>,
    reason: Option<String>,
}

impl ControlMsg {
    /// The control message a whole record holds.
    pub fn decode(record: &[u8]) -> Result<ControlMsg, FrameError> {
        let raw: RawControl = frame::decode(record)?;
        let name = |n: Option<String>| {
            n.ok_or_else(|| FrameError::Malformed(format!("{} without unique-name", raw.kind)))
        };
        match raw.kind.as_str() {
            "request-listener" => Ok(ControlMsg::RequestListener(RequestListener::new(
                &name(raw.unique_name)?,
                port(raw.listen_port, "listen-port")?,
            ))),
            "listener-response" => Ok(ControlMsg::ListenerResponse(ListenerResponse {
                kind: "listener-response",
                unique_name: raw.unique_name.unwrap_or_default(),
                listening: raw.listening.unwrap_or(false),
                desired_port: port(raw.desired_port, "desired-port")?,
                reason: raw.reason,
            })),
            _ => Ok(ControlMsg::Unknown(raw.kind)),
        }
    }
}

/// The first message on a `fowl` subchannel: which service this connection is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The service's name.
    #[serde(rename = "unique-name")]
    pub unique_name: Option<String>,
    /// fowl checks it against the service's port when present; fowl 26.8 never sends it.
    #[serde(rename = "listen-port", skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<i64>,
}

impl OpenRequest {
    /// The request for `unique_name`.
    pub fn new(unique_name: &str) -> OpenRequest {
        OpenRequest {
            unique_name: Some(unique_name.to_owned()),
            listen_port: None,
        }
    }

    /// The request a whole record holds.
    pub fn decode(record: &[u8]) -> Result<OpenRequest, FrameError> {
        frame::decode(record)
    }
}

/// The answer to an [`OpenRequest`]: after `connected: true` the subchannel carries the
/// connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReply {
    /// Whether the service side reached its local service.
    #[serde(default)]
    pub connected: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

impl OpenReply {
    /// "Connected".
    pub fn connected() -> OpenReply {
        OpenReply {
            connected: true,
            reason: None,
        }
    }

    /// "Not connected", and why.
    pub fn refused(reason: &str) -> OpenReply {
        OpenReply {
            connected: false,
            reason: Some(reason.to_owned()),
        }
    }

    /// The reply a whole record holds.
    pub fn decode(record: &[u8]) -> Result<OpenReply, FrameError> {
        frame::decode(record)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::forward::frame::encode;

    #[test]
    fn the_bytes_python_writes_decode() {
        // msgpack.packb({"kind": "request-listener", "unique-name": "web", "listen-port": None})
        let mut rec = vec![0u8, 0];
        rec.extend_from_slice(b"\x83\xa4kind\xb0request-listener\xabunique-name\xa3web\xablisten-port\xc0");
        let n = (rec.len() - 2) as u16;
        rec[..2].copy_from_slice(&n.to_be_bytes());
        assert_eq!(
            ControlMsg::decode(&rec).unwrap(),
            ControlMsg::RequestListener(RequestListener::new("web", None))
        );
        // Ours encodes to the same bytes.
        assert_eq!(encode(&RequestListener::new("web", None)).unwrap(), rec);
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            ListenerResponse::listening("a", None),
            ListenerResponse::listening("a", Some(8080)),
            ListenerResponse::refused("a", "No service permitted for name: a"),
        ] {
            let back = ControlMsg::decode(&encode(&r).unwrap()).unwrap();
            assert_eq!(back, ControlMsg::ListenerResponse(r));
        }
        for r in [OpenReply::connected(), OpenReply::refused("Connection refused")] {
            assert_eq!(OpenReply::decode(&encode(&r).unwrap()).unwrap(), r);
        }
        let o = OpenRequest::new("svc");
        assert_eq!(OpenRequest::decode(&encode(&o).unwrap()).unwrap(), o);
    }

    #[test]
    fn refuses_bad_ports_and_missing_names() {
        #[derive(Serialize)]
        struct R<'a> {
            kind: &'a str,
            #[serde(rename = "unique-name")]
            name: Option<&'a str>,
            #[serde(rename = "listen-port")]
            port: i64,
        }
        for (name, port) in [(Some("a"), 0), (Some("a"), 65536), (Some("a"), -1), (None, 80)] {
            let rec = encode(&R {
                kind: "request-listener",
                name,
                port,
            })
            .unwrap();
            assert!(
                matches!(ControlMsg::decode(&rec), Err(FrameError::Malformed(_))),
                "{name:?} {port}"
            );
        }
        let unknown = encode(&std::collections::BTreeMap::from([("kind", "frobnicate")])).unwrap();
        assert_eq!(
            ControlMsg::decode(&unknown).unwrap(),
            ControlMsg::Unknown("frobnicate".into())
        );
    }
}
