//! The transit key purpose rule (docs/protocol.md §4.1) and everything derived from the transit key:
//! the byte-exact handshake strings, the relay request line and the two record keys.
//!
//! Pure functions over bytes (HKDF-SHA256 with an empty salt); no I/O.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroize;

/// The default file-transfer AppID.
pub const DEFAULT_APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

/// Which side of a transit connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The Sender (Leader): decides which connection wins and writes `go\n`.
    Sender,
    /// The Receiver (Follower): waits for `go\n`.
    Receiver,
}

/// How to choose the HKDF purpose of the transit key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TransitPurpose {
    /// Python's rule for the default AppID (its fixed string) and `{appid}/transit-key` for any
    /// other AppID (what Go and Rust do).
    #[default]
    Auto,
    /// Always Python's fixed string, whatever the AppID (talking to Python with a custom AppID).
    PythonFixed,
    /// Always `{appid}/transit-key`.
    AppId,
    /// An explicit purpose string.
    Custom(String),
}

/// The HKDF purpose of the transit key for `appid` under `rule`.
pub fn transit_key_purpose(appid: &str, rule: &TransitPurpose) -> String {
    let fixed = format!("{DEFAULT_APPID}/transit-key");
    match rule {
        TransitPurpose::Auto | TransitPurpose::AppId => format!("{appid}/transit-key"),
        TransitPurpose::PythonFixed => fixed,
        TransitPurpose::Custom(s) => s.clone(),
    }
}

fn hkdf32(key: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // The caller owns (and wipes) the result. 32 bytes is always a valid HKDF-SHA256 output length, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(None, key).expand(purpose, &mut out);
    out
}

/// Everything derived from one transit key.
#[derive(Clone)]
pub struct TransitKeys {
    sender_handshake: Vec<u8>,
    receiver_handshake: Vec<u8>,
    relay_token_hex: String,
    sender_record_key: [u8; 32],
    receiver_record_key: [u8; 32],
}

impl Drop for TransitKeys {
    fn drop(&mut self) {
        self.sender_record_key.zeroize();
        self.receiver_record_key.zeroize();
        self.relay_token_hex.zeroize();
    }
}

impl std::fmt::Debug for TransitKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransitKeys(..)")
    }
}

impl TransitKeys {
    /// Derive all transit values from the transit key.
    pub fn new(transit_key: &[u8]) -> Self {
        let s = hex::encode(hkdf32(transit_key, b"transit_sender"));
        let r = hex::encode(hkdf32(transit_key, b"transit_receiver"));
        TransitKeys {
            sender_handshake: format!("transit sender {s} ready\n\n").into_bytes(),
            receiver_handshake: format!("transit receiver {r} ready\n\n").into_bytes(),
            relay_token_hex: hex::encode(hkdf32(transit_key, b"transit_relay_token")),
            sender_record_key: hkdf32(transit_key, b"transit_record_sender_key"),
            receiver_record_key: hkdf32(transit_key, b"transit_record_receiver_key"),
        }
    }

    /// The handshake the Sender writes (87 bytes).
    pub fn sender_handshake(&self) -> &[u8] {
        &self.sender_handshake
    }

    /// The handshake the Receiver writes (89 bytes).
    pub fn receiver_handshake(&self) -> &[u8] {
        &self.receiver_handshake
    }

    /// The handshake `role` writes.
    pub fn our_handshake(&self, role: Role) -> &[u8] {
        match role {
            Role::Sender => &self.sender_handshake,
            Role::Receiver => &self.receiver_handshake,
        }
    }

    /// The handshake `role` expects from its peer.
    pub fn peer_handshake(&self, role: Role) -> &[u8] {
        match role {
            Role::Sender => &self.receiver_handshake,
            Role::Receiver => &self.sender_handshake,
        }
    }

    /// The relay request line for our transit side (16 hex chars), 104 bytes.
    pub fn relay_request(&self, side_hex: &str) -> Vec<u8> {
        format!("please relay {} for side {side_hex}\n", self.relay_token_hex).into_bytes()
    }

    /// The record key for records sent by the Sender.
    pub fn sender_record_key(&self) -> &[u8; 32] {
        &self.sender_record_key
    }

    /// The record key for records sent by the Receiver.
    pub fn receiver_record_key(&self) -> &[u8; 32] {
        &self.receiver_record_key
    }

    /// (key we encrypt with, key we decrypt with) for `role`.
    pub fn record_keys(&self, role: Role) -> (&[u8; 32], &[u8; 32]) {
        match role {
            Role::Sender => (&self.sender_record_key, &self.receiver_record_key),
            Role::Receiver => (&self.receiver_record_key, &self.sender_record_key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_rule() {
        let d = "lothar.com/wormhole/text-or-file-xfer/transit-key";
        assert_eq!(transit_key_purpose(DEFAULT_APPID, &TransitPurpose::Auto), d);
        assert_eq!(
            transit_key_purpose("x.org/app", &TransitPurpose::Auto),
            "x.org/app/transit-key"
        );
        assert_eq!(transit_key_purpose("x.org/app", &TransitPurpose::PythonFixed), d);
        assert_eq!(
            transit_key_purpose("x.org/app", &TransitPurpose::AppId),
            "x.org/app/transit-key"
        );
        assert_eq!(transit_key_purpose("x", &TransitPurpose::Custom("p".into())), "p");
    }

    /// docs/protocol.md §7.1: transit key `b"123"`.
    #[test]
    fn vectors_7_1() {
        let k = TransitKeys::new(b"123");
        assert_eq!(
            k.sender_handshake(),
            b"transit sender 559bdeae4b49fa6a23378d2b68f4c7e69378615d4af049c371c6a26e82391089 ready\n\n"
        );
        assert_eq!(
            k.receiver_handshake(),
            b"transit receiver ed447528194bac4c00d0c854b12a97ce51413d89aa74d6304475f516fdc23a1b ready\n\n"
        );
        assert_eq!(
            hex::encode(k.sender_record_key()),
            "5a2fba3a9e524ab2e2823ff53b05f946896f6e4ce4e282ffd8e3ac0e5e9e0cda"
        );
        assert_eq!(
            hex::encode(k.receiver_record_key()),
            "eedb143117249f45b39da324decf6bd9aae33b7ccd58487436de611a3c6b871d"
        );
        assert_eq!(k.sender_handshake().len(), 87);
        assert_eq!(k.receiver_handshake().len(), 89);
        assert_eq!(k.record_keys(Role::Receiver).0, k.receiver_record_key());
        assert_eq!(k.peer_handshake(Role::Sender), k.receiver_handshake());
    }

    /// docs/protocol.md §7.2: the end-to-end transit key.
    #[test]
    fn vectors_7_2() {
        let tk = hex::decode("ab6f9490a2a47de9c51258a7910cb1989b5cf8012aa25d887aa452406c850c40").unwrap();
        let k = TransitKeys::new(&tk);
        assert_eq!(
            k.sender_handshake(),
            b"transit sender e26c594a0776010df4b9fddd686ad2650bba51f580986c1f8be3733319144729 ready\n\n"
        );
        assert_eq!(
            k.receiver_handshake(),
            b"transit receiver 0c29b75d8a2236b8fe810a290eee811c1bf098a15c1df3c3fbdb37f1b4ba1c70 ready\n\n"
        );
        let req = k.relay_request("0123456789abcdef");
        assert_eq!(
            req,
            b"please relay 8270d19d2fc4872358b73c375b3727ccc50448797f5fb1d04aaa9cfb4796ca4f for side 0123456789abcdef\n"
        );
        assert_eq!(req.len(), 104);
        assert_eq!(
            hex::encode(k.sender_record_key()),
            "cdc2b2aa4c6b3cdc0ef14e81cf462abbce261de9e6cf36bbb1021dbb034dd5d9"
        );
        assert_eq!(
            hex::encode(k.receiver_record_key()),
            "56a9c3a513f4e679648a66aadb648ab35d0b9835f2c5f73f3ed9c88c420c0525"
        );
    }
}
