//! `wormhole forward --control`: fowld's JSON-lines interface. Commands arrive one per line on
//! stdin, messages leave one per line on stdout, with fowld's `kind` names and fields, so a
//! program written for fowld can drive us (docs/forward.md lists both).
//!
//! Owns: parsing commands and rendering [`ForwardEvent`]s as fowld messages. Must not: act on
//! them (forward.rs does).

use serde_json::{Value, json};
use wormhole::forward::{ClientSpec, ForwardEvent, ServiceSpec};

/// One fowld command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `{"kind": "allocate-code", "length": N}`.
    AllocateCode(Option<usize>),
    /// `{"kind": "set-code", "code": "…"}`.
    SetCode(String),
    /// `{"kind": "local", "name": …, "local_listen_port", "remote_connect_port", "bind_interface"}`:
    /// allow the peer's service and listen for it here (our `--client`).
    Local(ClientSpec),
    /// `{"kind": "remote", "name": …, "remote_listen_port", "local_connect_port", "connect_address"}`:
    /// offer our service (our `--service`).
    Remote(ServiceSpec),
    /// `{"kind": "session-close", "timeout": S}`.
    SessionClose(u64),
    /// `{"kind": "ping", "ping_id": …}`.
    Ping(Value),
}

fn port(v: &Value, key: &str) -> Result<Option<u16>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .map(Some)
            .ok_or_else(|| format!("Invalid port: {p}")),
    }
}

fn string(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("\"{key}\" must be a string, not {other}")),
    }
}

fn required(v: &Value, key: &str) -> Result<String, String> {
    string(v, key)?.ok_or_else(|| format!("\"{key}\" is missing"))
}

impl Command {
    /// Parse one line.
    pub fn parse(line: &str) -> Result<Command, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("No 'kind' in command")?;
        match kind {
            "allocate-code" => {
                let n = match v.get("length") {
                    None | Some(Value::Null) => None,
                    Some(n) => Some(
                        n.as_u64()
                            .filter(|n| (1..=64).contains(n))
                            .ok_or("\"length\" must be 1 to 64")? as usize,
                    ),
                };
                Ok(Command::AllocateCode(n))
            }
            "set-code" => Ok(Command::SetCode(required(&v, "code")?)),
            "local" => Ok(Command::Local(ClientSpec {
                name: required(&v, "name")?,
                listen_port: port(&v, "local_listen_port")?,
                bind: string(&v, "bind_interface")?,
                remote_connect_port: port(&v, "remote_connect_port")?,
            })),
            "remote" => Ok(Command::Remote(ServiceSpec {
                name: required(&v, "name")?,
                connect_port: port(&v, "local_connect_port")?,
                remote_listen_port: port(&v, "remote_listen_port")?,
                connect_address: string(&v, "connect_address")?,
            })),
            "session-close" => Ok(Command::SessionClose(
                v.get("timeout").and_then(Value::as_u64).unwrap_or(10),
            )),
            "ping" => Ok(Command::Ping(v.get("ping_id").cloned().unwrap_or(Value::Null))),
            other => Err(format!("unknown command kind {other:?}")),
        }
    }
}

/// The fowld message for a forwarder event (`None`: fowld has none for it).
pub fn event_message(e: &ForwardEvent) -> Value {
    match e {
        ForwardEvent::Listening { name, port } => {
            json!({"kind": "listening", "name": name, "listening_port": port})
        }
        ForwardEvent::AwaitingConnect { name, port } => {
            json!({"kind": "awaiting-connect", "name": name, "local_port": port})
        }
        ForwardEvent::ListeningFailed { name, reason } => {
            json!({"kind": "listening-failed", "name": name, "reason": reason})
        }
        ForwardEvent::OutgoingConnection { name, id } => {
            json!({"kind": "outgoing-connection", "service_name": name, "id": id})
        }
        ForwardEvent::IncomingConnection { name, id } => {
            json!({"kind": "incoming-connection", "service_name": name, "id": id})
        }
        ForwardEvent::RemoteConnectFailed { id, reason } => {
            json!({"kind": "remote-connect-failed", "id": id, "reason": reason})
        }
        ForwardEvent::Bytes { id, from_local, n } => {
            let kind = if *from_local { "bytes-in" } else { "bytes-out" };
            json!({"kind": kind, "id": id, "bytes": n})
        }
        ForwardEvent::Closed {
            id,
            name,
            incoming,
            bytes_in,
            bytes_out,
            error,
        } => {
            let side = if *incoming { "incoming" } else { "outgoing" };
            let kind = match error {
                None => format!("{side}-done"),
                Some(_) => format!("{side}-lost"),
            };
            let mut m = json!({"kind": kind, "id": id, "service_name": name,
                               "bytes_in": bytes_in, "bytes_out": bytes_out});
            if let Some(r) = error {
                m["reason"] = json!(r);
            }
            m
        }
        ForwardEvent::Error { message } => json!({"kind": "error", "message": message}),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fowld_commands() {
        assert_eq!(
            Command::parse(r#"{"kind":"allocate-code"}"#),
            Ok(Command::AllocateCode(None))
        );
        assert_eq!(
            Command::parse(r#"{"kind":"allocate-code","length":3}"#),
            Ok(Command::AllocateCode(Some(3)))
        );
        assert_eq!(
            Command::parse(r#"{"kind":"set-code","code":"1-a-b"}"#),
            Ok(Command::SetCode("1-a-b".into()))
        );
        let Command::Local(c) = Command::parse(
            r#"{"kind":"local","name":"db","local_listen_port":5432,"remote_connect_port":null}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.name.as_str(), c.listen_port, c.remote_connect_port),
            ("db", Some(5432), None)
        );
        let Command::Remote(s) =
            Command::parse(r#"{"kind":"remote","name":"web","local_connect_port":8080}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((s.name.as_str(), s.connect_port), ("web", Some(8080)));
        assert_eq!(
            Command::parse(r#"{"kind":"session-close"}"#),
            Ok(Command::SessionClose(10))
        );
        for bad in [
            "nope",
            r#"{"code":"1-a"}"#,
            r#"{"kind":"set-code"}"#,
            r#"{"kind":"local"}"#,
            r#"{"kind":"local","name":"a","local_listen_port":70000}"#,
            r#"{"kind":"remote","name":"a","local_connect_port":"80"}"#,
            r#"{"kind":"allocate-code","length":0}"#,
            r#"{"kind":"launch-missiles"}"#,
        ] {
            assert!(Command::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fowld_messages() {
        let m = event_message(&ForwardEvent::Listening {
            name: "db".into(),
            port: 7,
        });
        assert_eq!(m, json!({"kind": "listening", "name": "db", "listening_port": 7}));
        let m = event_message(&ForwardEvent::Closed {
            id: 3,
            name: "db".into(),
            incoming: true,
            bytes_in: 1,
            bytes_out: 2,
            error: Some("x".into()),
        });
        assert_eq!(m["kind"], "incoming-lost");
        assert_eq!(m["reason"], "x");
    }
}
