//! Transit abilities and connection hints as they travel inside the `transit` message
//! (docs/protocol.md §4.2): `direct-tcp-v1` (optional float `priority`), `tor-tcp-v1` (parsed, never
//! dialled without Tor), `relay-v1` with inner hints: the relay's TCP and Tor endpoints and its
//! WebSocket URLs (`websocket-v1` as the protocols repository names them, also read in
//! wormhole-rs's `websocket` spelling), and wormhole-rs's optional `name`.
//!
//! Parsing is lenient about what it does not know (unknown hint and ability types are skipped) and
//! strict about sizes: every list and string from the peer is bounded. It does no I/O.

use serde_json::{Map, Value, json};

/// At most this many hints (outer or inner) are kept from one peer message.
pub const MAX_HINTS: usize = 64;
/// Longest hostname accepted in a hint.
pub const MAX_HOSTNAME: usize = 255;
/// Longest WebSocket URL accepted in a relay hint.
pub const MAX_URL: usize = 1024;

/// A transit ability (`abilities-v1` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ability {
    /// `direct-tcp-v1`: we can dial and be dialled.
    DirectTcpV1,
    /// `relay-v1`: we can use a transit relay.
    RelayV1,
    /// Anything else (kept by name, never acted on).
    Other(String),
}

impl Ability {
    fn name(&self) -> &str {
        match self {
            Ability::DirectTcpV1 => "direct-tcp-v1",
            Ability::RelayV1 => "relay-v1",
            Ability::Other(s) => s,
        }
    }
}

/// One TCP endpoint hint (`direct-tcp-v1` or `tor-tcp-v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectHint {
    /// Hostname or IP literal (IPv6 without brackets).
    pub hostname: String,
    /// TCP port (never 0).
    pub port: u16,
    /// Priority, higher first; 0.0 when absent.
    pub priority: f64,
}

/// A relay's WebSocket endpoint (`websocket-v1` inside `relay-v1`): a `ws://` or `wss://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebSocketHint {
    /// The URL, `ws://…` or `wss://…`, at most [`MAX_URL`] bytes.
    pub url: String,
}

impl WebSocketHint {
    /// A hint for `url` if it is a `ws://` or `wss://` URL with a host, at most [`MAX_URL`] bytes.
    pub fn new(url: &str) -> Option<WebSocketHint> {
        let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("wss://"))?;
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let ok = url.len() <= MAX_URL
            && host_end > 0
            && !rest[..host_end].starts_with(':')
            && url.chars().all(|c| c.is_ascii_graphic());
        ok.then(|| WebSocketHint { url: url.to_owned() })
    }
}

/// A `relay-v1` hint: one relay reachable through any of its endpoints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RelayHint {
    /// The relay's TCP endpoints (`direct-tcp-v1` entries; Tor entries are kept separately).
    pub tcp: Vec<DirectHint>,
    /// Tor endpoints of the relay (parsed, used only with Tor).
    pub tor: Vec<DirectHint>,
    /// The relay's WebSocket endpoints, dialled when TCP to the relays fails.
    pub websocket: Vec<WebSocketHint>,
    /// Rust's optional relay name.
    pub name: Option<String>,
}

impl RelayHint {
    /// The highest priority of the relay's endpoints (0.0 if none).
    pub fn priority(&self) -> f64 {
        self.tcp.iter().map(|h| h.priority).fold(0.0, f64::max)
    }
}

/// One entry of `hints-v1`.
#[derive(Debug, Clone, PartialEq)]
pub enum Hint {
    /// `direct-tcp-v1`.
    DirectTcp(DirectHint),
    /// `tor-tcp-v1`.
    TorTcp(DirectHint),
    /// `relay-v1`.
    Relay(RelayHint),
}

/// The body of a `{"transit": …}` message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransitMsg {
    /// `abilities-v1`.
    pub abilities: Vec<Ability>,
    /// `hints-v1` (unknown types dropped).
    pub hints: Vec<Hint>,
}

impl TransitMsg {
    /// Both standard abilities and the given hints.
    pub fn new(hints: Vec<Hint>) -> Self {
        TransitMsg {
            abilities: vec![Ability::DirectTcpV1, Ability::RelayV1],
            hints,
        }
    }

    /// Parse the value of the `transit` key. Returns `None` when it is not an object.
    pub fn from_value(v: &Value) -> Option<TransitMsg> {
        let obj = v.as_object()?;
        let abilities = obj
            .get("abilities-v1")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .take(MAX_HINTS)
                    .filter_map(|e| e.get("type").and_then(Value::as_str))
                    .map(|t| match t {
                        "direct-tcp-v1" => Ability::DirectTcpV1,
                        "relay-v1" => Ability::RelayV1,
                        o => Ability::Other(o.chars().take(64).collect()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let hints = obj
            .get("hints-v1")
            .and_then(Value::as_array)
            .map(|a| a.iter().take(MAX_HINTS).filter_map(parse_hint).collect())
            .unwrap_or_default();
        Some(TransitMsg { abilities, hints })
    }

    /// The value for the `transit` key, with Python's field set.
    pub fn to_value(&self) -> Value {
        let abilities: Vec<Value> = self.abilities.iter().map(|a| json!({"type": a.name()})).collect();
        let hints: Vec<Value> = self.hints.iter().map(hint_to_value).collect();
        json!({"abilities-v1": abilities, "hints-v1": hints})
    }

    /// The peer's direct TCP hints.
    pub fn direct_hints(&self) -> impl Iterator<Item = &DirectHint> {
        self.hints.iter().filter_map(|h| match h {
            Hint::DirectTcp(d) => Some(d),
            _ => None,
        })
    }

    /// The peer's relay hints.
    pub fn relay_hints(&self) -> impl Iterator<Item = &RelayHint> {
        self.hints.iter().filter_map(|h| match h {
            Hint::Relay(r) => Some(r),
            _ => None,
        })
    }
}

fn parse_endpoint(o: &Map<String, Value>) -> Option<DirectHint> {
    let hostname = o.get("hostname")?.as_str()?;
    if hostname.is_empty() || hostname.len() > MAX_HOSTNAME {
        return None;
    }
    let port = o.get("port")?.as_u64()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    let priority = o
        .get("priority")
        .and_then(Value::as_f64)
        .filter(|p| p.is_finite())
        .unwrap_or(0.0);
    Some(DirectHint {
        hostname: hostname.to_owned(),
        port,
        priority,
    })
}

fn parse_hint(v: &Value) -> Option<Hint> {
    let o = v.as_object()?;
    match o.get("type")?.as_str()? {
        "direct-tcp-v1" => parse_endpoint(o).map(Hint::DirectTcp),
        "tor-tcp-v1" => parse_endpoint(o).map(Hint::TorTcp),
        "relay-v1" => {
            let mut relay = RelayHint {
                tcp: Vec::new(),
                tor: Vec::new(),
                websocket: Vec::new(),
                name: o
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(256).collect()),
            };
            for inner in o.get("hints")?.as_array()?.iter().take(MAX_HINTS) {
                let Some(io) = inner.as_object() else { continue };
                match io.get("type").and_then(Value::as_str) {
                    Some("direct-tcp-v1") => relay.tcp.extend(parse_endpoint(io)),
                    Some("tor-tcp-v1") => relay.tor.extend(parse_endpoint(io)),
                    Some("websocket-v1" | "websocket") => relay
                        .websocket
                        .extend(io.get("url").and_then(Value::as_str).and_then(WebSocketHint::new)),
                    _ => {} // unknown kinds are ignored
                }
            }
            Some(Hint::Relay(relay))
        }
        _ => None,
    }
}

fn endpoint_value(kind: &str, h: &DirectHint) -> Value {
    json!({"type": kind, "priority": h.priority, "hostname": h.hostname, "port": h.port})
}

fn hint_to_value(h: &Hint) -> Value {
    match h {
        Hint::DirectTcp(d) => endpoint_value("direct-tcp-v1", d),
        Hint::TorTcp(d) => endpoint_value("tor-tcp-v1", d),
        Hint::Relay(r) => {
            let inner: Vec<Value> = r
                .tcp
                .iter()
                .map(|d| endpoint_value("direct-tcp-v1", d))
                .chain(r.tor.iter().map(|d| endpoint_value("tor-tcp-v1", d)))
                .chain(
                    r.websocket
                        .iter()
                        .map(|w| json!({"type": "websocket-v1", "url": w.url})),
                )
                .collect();
            json!({"type": "relay-v1", "hints": inner})
        }
    }
}

/// Parse a `--transit-helper` value: `tcp:HOST:PORT[:priority=F]`, `tcp:[v6]:PORT`, also Rust's
/// `tcp://HOST:PORT` and a bare `HOST:PORT`. Returns `None` when it cannot be understood.
pub fn parse_relay_url(s: &str) -> Option<DirectHint> {
    let rest = s
        .strip_prefix("tcp://")
        .or_else(|| s.strip_prefix("tcp:"))
        .unwrap_or(s);
    let rest = rest.trim_end_matches('/');
    let (host, after) = if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']')?;
        (&r[..end], r[end + 1..].strip_prefix(':')?)
    } else {
        let colon = rest.find(':')?;
        (&rest[..colon], &rest[colon + 1..])
    };
    let mut parts = after.split(':');
    let port: u16 = parts.next()?.parse().ok().filter(|p| *p != 0)?;
    let mut priority = 0.0;
    for p in parts {
        if let Some(v) = p.strip_prefix("priority=") {
            priority = v.parse().ok().filter(|f: &f64| f.is_finite())?;
        } else {
            return None;
        }
    }
    if host.is_empty() || host.len() > MAX_HOSTNAME {
        return None;
    }
    Some(DirectHint {
        hostname: host.to_owned(),
        port,
        priority,
    })
}

/// Parse a `--transit-helper` value that may name several endpoints of one relay, separated by
/// commas: each a TCP form of [`parse_relay_url`] or a `ws://` / `wss://` URL, e.g.
/// `tcp:relay.example:4001,wss://relay.example/`. Returns `None` when any part cannot be
/// understood or there is none.
pub fn parse_relay_endpoints(s: &str) -> Option<RelayHint> {
    let mut relay = RelayHint::default();
    for part in s.split(',').map(str::trim) {
        if part.starts_with("ws://") || part.starts_with("wss://") {
            relay.websocket.push(WebSocketHint::new(part)?);
        } else {
            relay.tcp.push(parse_relay_url(part)?);
        }
    }
    (relay.tcp.len() + relay.websocket.len() <= MAX_HINTS).then_some(relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_go_rust_forms() {
        let v: Value = serde_json::from_str(
            r#"{"abilities-v1":[{"type":"direct-tcp-v1"},{"type":"relay-v1"},{"type":"relay-v2"}],
            "hints-v1":[
              {"type":"direct-tcp-v1","priority":0.0,"hostname":"192.168.1.5","port":40123},
              {"type":"direct-tcp-v1","hostname":"fe80::1","port":5},
              {"type":"tor-tcp-v1","priority":0.5,"hostname":"xyz.onion","port":80},
              {"type":"relay-v1","name":"default","hints":[
                 {"type":"direct-tcp-v1","priority":2.0,"hostname":"transit.example","port":4001},
                 {"type":"websocket","url":"ws://x/"},{"type":"websocket-v1","url":"ws://y/"}]},
              {"type":"weird-v9","x":1},
              {"type":"direct-tcp-v1","hostname":"bad","port":70000},
              {"type":"direct-tcp-v1","hostname":"bad","port":0}
            ]}"#,
        )
        .unwrap();
        let m = TransitMsg::from_value(&v).unwrap();
        assert_eq!(m.abilities.len(), 3);
        assert_eq!(m.abilities[2], Ability::Other("relay-v2".into()));
        assert_eq!(m.hints.len(), 4);
        let d: Vec<_> = m.direct_hints().collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].priority, 0.0);
        assert_eq!(d[1].hostname, "fe80::1");
        let r: Vec<_> = m.relay_hints().collect();
        assert_eq!(r[0].tcp.len(), 1);
        let ws: Vec<&str> = r[0].websocket.iter().map(|w| w.url.as_str()).collect();
        assert_eq!(ws, ["ws://x/", "ws://y/"]);
        assert_eq!(r[0].name.as_deref(), Some("default"));
        assert_eq!(r[0].priority(), 2.0);
        assert!(matches!(&m.hints[2], Hint::TorTcp(t) if t.hostname == "xyz.onion"));
    }

    #[test]
    fn serialises_like_python() {
        let m = TransitMsg::new(vec![
            Hint::DirectTcp(DirectHint {
                hostname: "10.0.0.1".into(),
                port: 1234,
                priority: 0.0,
            }),
            Hint::Relay(RelayHint {
                tcp: vec![DirectHint {
                    hostname: "relay".into(),
                    port: 4001,
                    priority: 0.0,
                }],
                tor: vec![],
                websocket: vec![],
                name: None,
            }),
        ]);
        let s = serde_json::to_string(&m.to_value()).unwrap();
        assert_eq!(
            s,
            r#"{"abilities-v1":[{"type":"direct-tcp-v1"},{"type":"relay-v1"}],"hints-v1":[{"hostname":"10.0.0.1","port":1234,"priority":0.0,"type":"direct-tcp-v1"},{"hints":[{"hostname":"relay","port":4001,"priority":0.0,"type":"direct-tcp-v1"}],"type":"relay-v1"}]}"#
        );
        assert_eq!(TransitMsg::from_value(&m.to_value()).unwrap(), m);
    }

    #[test]
    fn no_hints_and_non_object() {
        let m = TransitMsg::from_value(&json!({"abilities-v1":[{"type":"direct-tcp-v1"}]})).unwrap();
        assert!(m.hints.is_empty());
        assert!(TransitMsg::from_value(&json!("x")).is_none());
        assert!(
            TransitMsg::from_value(&json!({"hints-v1": 5}))
                .unwrap()
                .hints
                .is_empty()
        );
    }

    #[test]
    fn relay_urls() {
        let h = parse_relay_url("tcp:transit.magic-wormhole.io:4001").unwrap();
        assert_eq!(
            (h.hostname.as_str(), h.port, h.priority),
            ("transit.magic-wormhole.io", 4001, 0.0)
        );
        let h = parse_relay_url("tcp:[::1]:4001:priority=2.5").unwrap();
        assert_eq!((h.hostname.as_str(), h.port, h.priority), ("::1", 4001, 2.5));
        let h = parse_relay_url("tcp://127.0.0.1:9/").unwrap();
        assert_eq!((h.hostname.as_str(), h.port), ("127.0.0.1", 9));
        assert_eq!(parse_relay_url("host:80").unwrap().port, 80);
        assert!(parse_relay_url("tcp:host").is_none());
        assert!(parse_relay_url("tcp:host:0").is_none());
        assert!(parse_relay_url("tcp:host:1:color=red").is_none());
    }

    #[test]
    fn websocket_endpoints_round_trip_in_the_spec_spelling() {
        let relay = parse_relay_endpoints("tcp:relay:4001, wss://relay.example/transit").unwrap();
        assert_eq!(relay.tcp[0].port, 4001);
        assert_eq!(relay.websocket[0].url, "wss://relay.example/transit");
        let m = TransitMsg::new(vec![Hint::Relay(relay)]);
        let v = m.to_value();
        assert_eq!(
            v["hints-v1"][0]["hints"][1],
            json!({"type": "websocket-v1", "url": "wss://relay.example/transit"})
        );
        assert_eq!(TransitMsg::from_value(&v).unwrap(), m);
        let only_ws = parse_relay_endpoints("ws://127.0.0.1:4002/").unwrap();
        assert!(only_ws.tcp.is_empty());
        assert_eq!(only_ws.websocket.len(), 1);
    }

    #[test]
    fn bad_websocket_urls_are_refused() {
        for bad in ["ws://", "wss:///x", "ws://:80/", "http://relay/", "ws://a b/"] {
            assert!(WebSocketHint::new(bad).is_none(), "{bad}");
        }
        assert!(WebSocketHint::new(&format!("ws://{}/", "a".repeat(MAX_URL))).is_none());
        assert!(parse_relay_endpoints("").is_none());
        assert!(parse_relay_endpoints("tcp:relay:4001,").is_none());
        assert!(parse_relay_endpoints("tcp:relay:4001,ftp://x/").is_none());
        // A peer's malformed URL is dropped, the rest of the relay hint kept.
        let v = json!({"hints-v1": [{"type": "relay-v1", "hints": [
            {"type": "websocket-v1", "url": "javascript:alert(1)"},
            {"type": "websocket-v1", "url": 7},
            {"type": "websocket-v1", "url": "ws://ok/"}]}]});
        let m = TransitMsg::from_value(&v).unwrap();
        let r: Vec<_> = m.relay_hints().collect();
        assert_eq!(
            r[0].websocket,
            [WebSocketHint {
                url: "ws://ok/".into()
            }]
        );
    }
}
