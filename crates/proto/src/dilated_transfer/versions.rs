//! Negotiation in `app_versions`: our `"transfer-v2": {"mode": …, "features": {…}}` entry, and
//! what we use with a peer (the highest common version, the features both list).
//!
//! Owns: the feature names. Must not: decide anything about Dilation itself (the peer's
//! `can-dilate` is the Dilation layer's business).

use serde_json::{Map, Value, json};

/// The only version of the protocol we speak.
pub const VERSION: u32 = 2;

/// Feature: [`super::FileAck`] carries the file's SHA-256, which replaces its BLAKE2b `hash`.
pub const FEATURE_SHA256: &str = "sha256-ack";
/// Feature: resume a single-file offer from a partial file ([`super::ResumeClaim`],
/// [`super::DataStart`]).
pub const FEATURE_RESUME: &str = "resume";
/// Feature: file offers of unknown length (`stream`).
pub const FEATURE_STREAM: &str = "stream";
/// Feature: directory offers list their empty directories.
pub const FEATURE_EMPTY_DIRS: &str = "empty-dirs";
/// Several whole records (a directory's small files: header, data and ack each) sent as one
/// record of kind 8, and the receiver's acks of them likewise.
pub const FEATURE_BUNDLE: &str = "bundle";

/// A peer's declared mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only offers.
    Send,
    /// Only receives offers.
    Receive,
    /// Both.
    Connect,
}

impl Mode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Send => "send",
            Mode::Receive => "receive",
            Mode::Connect => "connect",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "send" => Mode::Send,
            "receive" => Mode::Receive,
            "connect" => Mode::Connect,
            _ => return None,
        })
    }

    /// Whether a side in mode `self` may offer to a peer in mode `peer`.
    pub fn may_offer_to(self, peer: Mode) -> bool {
        self != Mode::Receive && peer != Mode::Send
    }
}

/// The protocol extensions in use (both sides listed them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// [`FEATURE_SHA256`].
    pub sha256: bool,
    /// [`FEATURE_RESUME`].
    pub resume: bool,
    /// [`FEATURE_STREAM`].
    pub stream: bool,
    /// [`FEATURE_EMPTY_DIRS`].
    pub empty_dirs: bool,
    /// [`FEATURE_BUNDLE`].
    pub bundle: bool,
}

impl Features {
    /// Every feature we implement.
    pub fn all() -> Features {
        Features {
            sha256: true,
            resume: true,
            stream: true,
            empty_dirs: true,
            bundle: true,
        }
    }

    /// Those in both.
    pub fn common(self, other: Features) -> Features {
        Features {
            sha256: self.sha256 && other.sha256,
            resume: self.resume && other.resume,
            stream: self.stream && other.stream,
            empty_dirs: self.empty_dirs && other.empty_dirs,
            bundle: self.bundle && other.bundle,
        }
    }

    fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.sha256, FEATURE_SHA256),
            (self.resume, FEATURE_RESUME),
            (self.stream, FEATURE_STREAM),
            (self.empty_dirs, FEATURE_EMPTY_DIRS),
            (self.bundle, FEATURE_BUNDLE),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }

    fn from_names<'a>(names: impl Iterator<Item = &'a str>) -> Features {
        let mut f = Features::default();
        for n in names {
            match n {
                FEATURE_SHA256 => f.sha256 = true,
                FEATURE_RESUME => f.resume = true,
                FEATURE_STREAM => f.stream = true,
                FEATURE_EMPTY_DIRS => f.empty_dirs = true,
                FEATURE_BUNDLE => f.bundle = true,
                _ => {}
            }
        }
        f
    }
}

/// What a peer declared for the version we share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTransfer {
    /// The version chosen (2).
    pub version: u32,
    /// The peer's mode.
    pub mode: Mode,
    /// The features both sides listed.
    pub features: Features,
}

/// Our `app_versions` entries (merge them into the object sent).
pub fn our_versions(mode: Mode, features: Features) -> Map<String, Value> {
    let feats: Map<String, Value> = features
        .names()
        .into_iter()
        .map(|n| (n.to_owned(), json!({})))
        .collect();
    let mut m = Map::new();
    m.insert(
        format!("transfer-v{VERSION}"),
        json!({"mode": mode.as_str(), "features": feats}),
    );
    m
}

/// The version number of a `transfer-vN` key: the tail after `-v` must be digits only, N > 0.
fn version_of(key: &str) -> Option<u32> {
    let tail = key.strip_prefix("transfer-v")?;
    if tail.is_empty() || tail.len() > 9 || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok().filter(|&n| n > 0)
}

/// What to use with a peer whose `app_versions` are `peer`, given our features: `None` when
/// the peer offers no version we speak (classic peers), or gives no valid mode.
pub fn choose(peer: &Value, ours: Features) -> Option<PeerTransfer> {
    let obj = peer.as_object()?;
    let best = obj
        .keys()
        .filter_map(|k| version_of(k))
        .filter(|&v| v == VERSION)
        .max()?;
    let entry = obj.get(&format!("transfer-v{best}"))?;
    let mode = Mode::parse(entry.get("mode")?.as_str()?)?;
    // The spec shows `features` both as a map and as a list; accept either.
    let theirs = match entry.get("features") {
        Some(Value::Object(m)) => Features::from_names(m.keys().map(String::as_str)),
        Some(Value::Array(a)) => Features::from_names(a.iter().filter_map(Value::as_str)),
        _ => Features::default(),
    };
    Some(PeerTransfer {
        version: best,
        mode,
        features: ours.common(theirs),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn negotiation() {
        let ours = Value::Object(our_versions(Mode::Receive, Features::all()));
        let p = choose(&ours, Features::all()).unwrap();
        assert_eq!(p.mode, Mode::Receive);
        assert_eq!(p.features, Features::all());
        // Classic peers: Python `{}`, wormhole-rs `{"abilities": [...]}`.
        assert_eq!(choose(&json!({}), Features::all()), None);
        assert_eq!(
            choose(&json!({"abilities": ["transfer-v1"]}), Features::all()),
            None
        );
        // Only a later version, or a bad tag: nothing in common.
        assert_eq!(
            choose(&json!({"transfer-v3": {"mode": "send"}}), Features::all()),
            None
        );
        assert_eq!(
            choose(&json!({"transfer-v02x": {"mode": "send"}}), Features::all()),
            None
        );
        // Features as a list, some unknown; ours limit the result.
        let p = choose(
            &json!({"transfer-v2": {"mode": "connect", "features": ["resume", "thumbnails"]},
                    "transfer-v4": {}}),
            Features {
                resume: true,
                sha256: true,
                ..Features::default()
            },
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Connect);
        assert_eq!(
            p.features,
            Features {
                resume: true,
                ..Features::default()
            }
        );
        assert_eq!(
            choose(&json!({"transfer-v2": {"mode": "sideways"}}), Features::all()),
            None
        );
    }

    #[test]
    fn modes() {
        assert!(Mode::Send.may_offer_to(Mode::Receive));
        assert!(Mode::Connect.may_offer_to(Mode::Connect));
        assert!(!Mode::Connect.may_offer_to(Mode::Send));
        assert!(!Mode::Receive.may_offer_to(Mode::Connect));
        assert!(!Mode::Send.may_offer_to(Mode::Send));
    }
}
