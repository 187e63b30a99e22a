//! Port forwarding over Dilation, on fowl's wire (docs/forward.md): the protocol that fowl 26.8
//! ("Forward Over Wormhole Locally") speaks, so that `wormhole forward` and fowl can stand on
//! either side of one session.
//!
//! Owns: fowl's appid and `app_versions` entry, the framing of its subchannel messages (a 2-byte
//! big-endian length, then a msgpack map), those messages, the `--service` / `--client`
//! argument forms, and the policy that decides what a peer's request may reach.
//! Must not: open sockets, bind ports or spawn tasks (the `wormhole` crate's forwarder does).
//!
//! - [`frame`]: [`frame::encode`], [`frame::decode`] of one framed message.
//! - [`msg`]: the control messages (`request-listener`, `listener-response`) and the opening
//!   handshake of a forwarded connection.
//! - [`spec`]: [`ServiceSpec`] (`--service`) and [`ClientSpec`] (`--client`), parsed like fowl.
//! - [`policy`]: what a peer's request is allowed to do with our specs.

pub mod frame;
pub mod msg;
pub mod policy;
pub mod spec;

pub use frame::FrameError;
pub use msg::{ControlMsg, ListenerResponse, OpenReply, OpenRequest, RequestListener};
pub use policy::{ListenDecision, Policy, PolicyError};
pub use spec::{ClientSpec, ServiceSpec, SpecError};

/// fowl's application id: both sides must use it (fowl has no way to change it from its CLI).
pub const APPID: &str = "meejah.ca/wormhole/forward";
/// The subprotocol of the control subchannels (one per listener request).
pub const SUBPROTOCOL_COMMANDS: &str = "fowl-commands";
/// The subprotocol of each forwarded TCP connection.
pub const SUBPROTOCOL_STREAM: &str = "fowl";
/// The one feature of fowl's protocol so far.
pub const FEATURE_CORE_V1: &str = "core-v1";
/// Our extension: the peer keeps a forwarded connection open in one direction after the
/// other direction's CLOSE (a TCP half-close is passed on). fowl 26.8 treats a CLOSE as the
/// end of both directions and ignores features it does not know.
pub const FEATURE_HALF_CLOSE: &str = "half-close";
/// The most bytes one framed message may hold (its length prefix is 16 bits).
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// Our `app_versions`: `{"fowl": {"features": ["core-v1", "half-close"]}}` (fowl sends only
/// `core-v1`).
pub fn our_versions() -> serde_json::Value {
    serde_json::json!({ "fowl": { "features": [FEATURE_CORE_V1, FEATURE_HALF_CLOSE] } })
}

/// Whether the peer's `app_versions` lists `feature` in its `fowl` entry.
fn peer_has(versions: &serde_json::Value, feature: &str) -> bool {
    versions
        .get("fowl")
        .and_then(|f| f.get("features"))
        .and_then(|f| f.as_array())
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(feature)))
}

/// Whether the peer passes half-closes on ([`FEATURE_HALF_CLOSE`]); without it, its CLOSE
/// ends both directions of a forwarded connection.
pub fn peer_half_closes(versions: &serde_json::Value) -> bool {
    peer_has(versions, FEATURE_HALF_CLOSE)
}

/// Whether the peer's `app_versions` says it forwards with fowl's core protocol. fowl 26.8
/// itself does not check the peer's entry; we use this only to warn.
pub fn peer_speaks_fowl(versions: &serde_json::Value) -> bool {
    peer_has(versions, FEATURE_CORE_V1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        assert!(peer_speaks_fowl(&our_versions()));
        assert!(!peer_speaks_fowl(&serde_json::json!({})));
        assert!(!peer_speaks_fowl(
            &serde_json::json!({"fowl": {"features": ["core-v2"]}})
        ));
        assert!(!peer_speaks_fowl(
            &serde_json::json!({"fowl": {"features": "core-v1"}})
        ));
        assert!(peer_half_closes(&our_versions()));
        let fowl = serde_json::json!({"fowl": {"features": ["core-v1"]}});
        assert!(peer_speaks_fowl(&fowl) && !peer_half_closes(&fowl));
    }
}
