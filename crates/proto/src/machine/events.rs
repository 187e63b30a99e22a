//! What the client machine tells its driver: [`Action`]s to perform and [`Event`]s for the
//! application. Plain data; nothing here performs I/O.

use std::time::Instant;

use super::error::WormholeError;

/// How a wormhole ended, as sent to the server in `close` (docs/protocol.md §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mood {
    /// The peer was verified (its first message decrypted).
    Happy,
    /// Closed before any peer message decrypted.
    Lonely,
    /// A peer message failed to decrypt (wrong code, or an attack).
    Scary,
    /// The server reported an error (e.g. `crowded`) or the peer broke the protocol.
    Errory,
    /// The server's welcome carried an `error`.
    Unwelcome,
}

impl Mood {
    /// The wire string (`"happy"`, `"lonely"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Mood::Happy => "happy",
            Mood::Lonely => "lonely",
            Mood::Scary => "scary",
            Mood::Errory => "errory",
            Mood::Unwelcome => "unwelcome",
        }
    }
}

impl std::fmt::Display for Mood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's `welcome` dict, with the keys a client acts on (docs/protocol.md §1.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// Message of the day; a CLI prints it.
    pub motd: Option<String>,
    /// The CLI version the server advertises; a CLI warns when it differs from its own.
    pub current_cli_version: Option<String>,
    /// If set the server refuses service; the wormhole closes with [`WormholeError::Welcome`].
    pub error: Option<String>,
    /// The whole welcome dict as received (unknown keys included).
    pub raw: serde_json::Value,
}

impl Welcome {
    /// Build from the `welcome` value of a server frame; non-string keys are treated as absent.
    pub fn from_value(raw: serde_json::Value) -> Welcome {
        let get = |k: &str| raw.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Welcome {
            motd: get("motd"),
            current_cli_version: get("current_cli_version"),
            error: raw.get("error").map(|v| match v.as_str() {
                Some(s) => s.to_owned(),
                None => v.to_string(),
            }),
            raw,
        }
    }

    /// Python's rule: warn when the advertised version differs from ours, unless ours is a
    /// development build (contains `+`).
    pub fn version_mismatch(&self, own_version: &str) -> bool {
        match &self.current_cli_version {
            Some(v) => v != own_version && !own_version.contains('+'),
            None => false,
        }
    }
}

/// Something the application should learn about. Each is delivered at most once, except
/// `Message` (once per peer message, in order) and `Nameplates` (once per refresh).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The server's welcome (first connection only).
    Welcome(Welcome),
    /// The wormhole code is known (allocated, set, or typed).
    Code(String),
    /// The shared key was computed from the peer's `pake`; not yet confirmed by the peer.
    UnverifiedKey([u8; 32]),
    /// The peer's first message decrypted: the key is confirmed. Value: the verifier.
    Verifier([u8; 32]),
    /// The peer's `app_versions` (an empty object if it sent none).
    Versions(serde_json::Value),
    /// One application message from the peer, in the peer's send order.
    Message(Vec<u8>),
    /// The plaintext of one peer `dilate-N` phase, in numeric order from `dilate-0`: the input
    /// of a Dilation manager ([`crate::dilation::manager`]).
    Dilation(Vec<u8>),
    /// Answer to a nameplate-list refresh (code input helper).
    Nameplates(Vec<String>),
    /// The chosen nameplate was claimed; word completion may proceed (code input helper).
    WordlistReady,
    /// The wormhole is closed; nothing follows. `Ok(Happy)` or why it was not happy.
    Closed(Result<Mood, WormholeError>),
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Open a WebSocket to the mailbox server; report `connected` or `connection_lost`.
    Connect,
    /// Send this JSON text as one TEXT frame on the current connection.
    SendFrame(String),
    /// Drop the current connection (the wormhole is finished).
    CloseConnection,
    /// Arrange for `timer_fired` to be called at this instant (replaces any earlier timer).
    SetTimer(Instant),
    /// Cancel the pending timer, if any.
    CancelTimer,
    /// Tell the application.
    Deliver(Event),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn welcome_keys_and_version_rule() {
        let w = Welcome::from_value(json!({"motd": "m", "current_cli_version": "0.24.0", "x": 1}));
        assert_eq!(w.motd.as_deref(), Some("m"));
        assert_eq!(w.error, None);
        assert!(!w.version_mismatch("0.24.0"));
        assert!(w.version_mismatch("0.23.0"));
        assert!(!w.version_mismatch("0.23.0+dev"), "development builds never warn");
        let e = Welcome::from_value(json!({"error": {"odd": true}}));
        assert_eq!(
            e.error.as_deref(),
            Some(r#"{"odd":true}"#),
            "non-string errors still abort"
        );
        assert_eq!(Mood::Unwelcome.to_string(), "unwelcome");
    }
}
