//! The SPAKE2 exchange of phase `pake` (docs/protocol.md §2.3) and its JSON body.
//!
//! Owns: NFC-normalising the code and appid, running symmetric SPAKE2 over Ed25519 (RustCrypto
//! `spake2`, which matches python-spake2 0.9), the exact 81-byte body Python sends, and strict,
//! bounded parsing of the peer's body with the checks python-spake2 makes (side byte `S`,
//! prime-order subgroup, no reflection). Must not: decide what a failure means for the wormhole
//! (the Key machine maps errors to "scary" / `WrongPasswordError`).

use rand::{CryptoRng, RngCore};
use serde::Deserialize;
use spake2::{Ed25519Group, Group, Identity, Password, Spake2};
use unicode_normalization::UnicodeNormalization;

use super::KeyError;

/// Length of a SPAKE2 message: side byte `S` then a 32-byte compressed Edwards point.
pub const PAKE_MSG_LEN: usize = 33;

/// The largest peer `pake` body accepted (the honest one is 81 bytes; anything this large is
/// garbage and is refused before JSON parsing).
pub const PAKE_BODY_MAX: usize = 4096;

/// The side byte of symmetric SPAKE2 messages.
const SIDE_SYMMETRIC: u8 = b'S';

/// A started SPAKE2 exchange.
pub struct Pake {
    spake: Spake2<Ed25519Group>,
    own_msg: [u8; PAKE_MSG_LEN],
}

impl std::fmt::Debug for Pake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret scalar stays hidden; the outbound message is public anyway.
        f.debug_struct("Pake")
            .field("own_msg", &hex::encode(self.own_msg))
            .finish_non_exhaustive()
    }
}

fn nfc_bytes(s: &str) -> Vec<u8> {
    s.nfc().collect::<String>().into_bytes()
}

impl Pake {
    /// Start SPAKE2 for `code` within `appid`. Returns the machine and the body bytes to send in
    /// phase `pake` (the UTF-8 JSON `{"pake_v1": "<hex>"}`, exactly Python's 81 bytes).
    pub fn start(code: &str, appid: &str) -> (Pake, Vec<u8>) {
        Self::start_with_rng(code, appid, &mut rand::rngs::OsRng)
    }

    /// Like [`Pake::start`], drawing the 64 bytes of the secret scalar from `rng` (for
    /// deterministic tests). The crate reads them as a little-endian number, python-spake2 as
    /// big-endian.
    pub fn start_with_rng<R: RngCore + CryptoRng + ?Sized>(
        code: &str,
        appid: &str,
        rng: &mut R,
    ) -> (Pake, Vec<u8>) {
        let password = Password::new(nfc_bytes(code));
        let identity = Identity::new(&nfc_bytes(appid));
        let (spake, msg) =
            Spake2::<Ed25519Group>::start_symmetric_with_rng(&password, &identity, RngRef(rng));
        let mut own_msg = [0u8; PAKE_MSG_LEN];
        // The crate always returns 1 + 32 bytes for Ed25519.
        if msg.len() == PAKE_MSG_LEN {
            own_msg.copy_from_slice(&msg);
        }
        let body = format_pake_body(&own_msg);
        (Pake { spake, own_msg }, body)
    }

    /// Our outbound SPAKE2 message (`S` ‖ point).
    pub fn message(&self) -> &[u8; PAKE_MSG_LEN] {
        &self.own_msg
    }

    /// Finish with the peer's `pake` body bytes; returns the 32-byte shared key.
    pub fn finish(self, peer_body: &[u8]) -> Result<[u8; 32], KeyError> {
        let peer = parse_pake_body(peer_body)?;
        self.finish_with_message(&peer)
    }

    /// Finish with the peer's raw 33-byte SPAKE2 message (already taken out of its JSON body).
    pub fn finish_with_message(self, peer: &[u8]) -> Result<[u8; 32], KeyError> {
        if peer.len() != PAKE_MSG_LEN {
            return Err(KeyError::BadPakeMessage);
        }
        if peer[0] != SIDE_SYMMETRIC {
            return Err(KeyError::Spake2(format!(
                "peer message has side byte 0x{:02x}, expected 'S'",
                peer[0]
            )));
        }
        if peer == self.own_msg {
            return Err(KeyError::Spake2("peer message is a reflection of ours".into()));
        }
        let point = <Ed25519Group as Group>::bytes_to_element(&peer[1..])
            .ok_or_else(|| KeyError::Spake2("peer element is not a curve point".into()))?;
        if point.is_small_order() || !point.is_torsion_free() {
            return Err(KeyError::Spake2(
                "peer element is not in the prime-order subgroup".into(),
            ));
        }
        let key = self
            .spake
            .finish(peer)
            .map_err(|e| KeyError::Spake2(e.to_string()))?;
        key.try_into()
            .map_err(|_| KeyError::Spake2("shared key is not 32 bytes".into()))
    }
}

/// The body of phase `pake` for an outbound SPAKE2 message, byte-identical to Python's
/// `json.dumps({"pake_v1": hex})`.
pub fn format_pake_body(msg: &[u8]) -> Vec<u8> {
    format!("{{\"pake_v1\": \"{}\"}}", hex::encode(msg)).into_bytes()
}

#[derive(Deserialize)]
struct PakeBody {
    pake_v1: String,
}

/// Parse a peer's `pake` body: a JSON object (any whitespace, other keys ignored) whose
/// `pake_v1` is the hex of a 33-byte SPAKE2 message. Bounded by [`PAKE_BODY_MAX`]; anything else
/// is [`KeyError::BadPakeMessage`].
pub fn parse_pake_body(body: &[u8]) -> Result<[u8; PAKE_MSG_LEN], KeyError> {
    if body.len() > PAKE_BODY_MAX {
        return Err(KeyError::BadPakeMessage);
    }
    let parsed: PakeBody = serde_json::from_slice(body).map_err(|_| KeyError::BadPakeMessage)?;
    if parsed.pake_v1.len() != 2 * PAKE_MSG_LEN {
        return Err(KeyError::BadPakeMessage);
    }
    let mut msg = [0u8; PAKE_MSG_LEN];
    hex::decode_to_slice(&parsed.pake_v1, &mut msg).map_err(|_| KeyError::BadPakeMessage)?;
    Ok(msg)
}

/// Lets the crate take our RNG by value while the caller keeps ownership (and allows unsized
/// `dyn RngCore` callers).
struct RngRef<'a, R: ?Sized>(&'a mut R);

impl<R: RngCore + ?Sized> RngCore for RngRef<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl<R: CryptoRng + ?Sized> CryptoRng for RngRef<'_, R> {}

#[cfg(test)]
mod tests {
    use super::super::test_prg::Prg;
    use super::*;

    #[test]
    fn body_is_pythons_81_bytes() {
        let (pake, body) = Pake::start("4-purple-sausages", "appid");
        assert_eq!(body.len(), 81);
        assert!(body.starts_with(b"{\"pake_v1\": \"53"));
        assert!(body.ends_with(b"\"}"));
        assert_eq!(parse_pake_body(&body).unwrap(), *pake.message());
    }

    #[test]
    fn symmetric_exchange_agrees_and_wrong_code_differs() {
        let (a, body_a) = Pake::start("4-purple-sausages", "appid");
        let (b, body_b) = Pake::start("4-purple-sausages", "appid");
        let ka = a.finish(&body_b).unwrap();
        let kb = b.finish(&body_a).unwrap();
        assert_eq!(ka, kb);

        let (a, body_a) = Pake::start("4-purple-sausages", "appid");
        let (b, body_b) = Pake::start("4-purple-sausagez", "appid");
        assert_ne!(a.finish(&body_b).unwrap(), b.finish(&body_a).unwrap());

        let (a, body_a) = Pake::start("4-purple-sausages", "appid1");
        let (b, body_b) = Pake::start("4-purple-sausages", "appid2");
        assert_ne!(a.finish(&body_b).unwrap(), b.finish(&body_a).unwrap());
    }

    #[test]
    fn code_and_appid_are_nfc_normalised() {
        // Same SPAKE2 scalar from the same PRG: decomposed and composed inputs give one message.
        let (_, composed) = Pake::start_with_rng("1-caf\u{e9}", "\u{e9}", &mut Prg::new(b"1"));
        let (_, decomposed) = Pake::start_with_rng("1-caf\u{65}\u{301}", "e\u{301}", &mut Prg::new(b"1"));
        assert_eq!(composed, decomposed);
    }

    #[test]
    fn parse_accepts_compact_json_extra_keys_and_uppercase_hex() {
        let (_, body) = Pake::start_with_rng("1-x", "a", &mut Prg::new(b"1"));
        let msg = parse_pake_body(&body).unwrap();
        let hex_msg = hex::encode(msg);
        let compact = format!("{{\"pake_v1\":\"{hex_msg}\"}}");
        assert_eq!(parse_pake_body(compact.as_bytes()).unwrap(), msg);
        let extra = format!(
            "{{ \"other\": [1,2], \"pake_v1\" : \"{}\" }}\n",
            hex_msg.to_uppercase()
        );
        assert_eq!(parse_pake_body(extra.as_bytes()).unwrap(), msg);
    }

    #[test]
    fn parse_rejects_malformed() {
        let good_hex = "53".repeat(33);
        let too_big = format!(
            "{{\"pake_v1\": \"{good_hex}\", \"pad\": \"{}\"}}",
            "x".repeat(5000)
        );
        let bad: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"{}".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"\"pake_v1\"".to_vec(),
            b"{\"pake_v1\": 5}".to_vec(),
            b"{\"pake_v1\": null}".to_vec(),
            b"{\"pake_v2\": \"53\"}".to_vec(),
            format!("{{\"pake_v1\": \"{}\"}}", &good_hex[..64]).into_bytes(),
            format!("{{\"pake_v1\": \"{good_hex}00\"}}").into_bytes(),
            format!("{{\"pake_v1\": \"{}zz\"}}", &good_hex[..64]).into_bytes(),
            format!("{{\"pake_v1\": \"{good_hex}\"").into_bytes(),
            vec![0xff, 0xfe, 0x00],
            too_big.into_bytes(),
        ];
        for body in bad {
            assert_eq!(
                parse_pake_body(&body),
                Err(KeyError::BadPakeMessage),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
            let (pake, _) = Pake::start("1-x", "a");
            assert_eq!(pake.finish(&body), Err(KeyError::BadPakeMessage));
        }
    }

    #[test]
    fn finish_rejects_wrong_side_reflection_and_small_order() {
        let (a, body_a) = Pake::start("1-x", "a");
        assert!(matches!(a.finish(&body_a), Err(KeyError::Spake2(_))));

        let (b, body_b) = Pake::start("1-x", "a");
        let mut msg = parse_pake_body(&body_b).unwrap();
        msg[0] = b'A';
        let (a, _) = Pake::start("1-x", "a");
        assert!(matches!(
            a.finish(&format_pake_body(&msg)),
            Err(KeyError::Spake2(_))
        ));
        drop(b);

        // The identity point (y = 1) and a point of order 2 (y = -1) are small-order.
        let mut identity = [0u8; 33];
        identity[0] = b'S';
        identity[1] = 1;
        let mut order2 = [0xffu8; 33];
        order2[0] = b'S';
        order2[1] = 0xec;
        order2[32] = 0x7f;
        for m in [identity, order2] {
            let (a, _) = Pake::start("1-x", "a");
            assert!(matches!(
                a.finish(&format_pake_body(&m)),
                Err(KeyError::Spake2(_))
            ));
        }

        // A y coordinate with no matching x is not a point at all (y = 2 is not on the curve).
        let mut off_curve = [0u8; 33];
        off_curve[0] = b'S';
        off_curve[1] = 2;
        let (a, _) = Pake::start("1-x", "a");
        assert!(matches!(
            a.finish(&format_pake_body(&off_curve)),
            Err(KeyError::Spake2(_))
        ));
    }

    #[test]
    fn finish_rejects_mixed_order_point() {
        // honest element + a point of order 2 is on the curve but outside the subgroup.
        let (b, body_b) = Pake::start("1-x", "a");
        drop(b);
        let msg = parse_pake_body(&body_b).unwrap();
        let p = <Ed25519Group as Group>::bytes_to_element(&msg[1..]).unwrap();
        let mut t2 = [0xffu8; 32];
        t2[0] = 0xec;
        t2[31] = 0x7f;
        let t = <Ed25519Group as Group>::bytes_to_element(&t2).unwrap();
        let mixed = <Ed25519Group as Group>::add(&p, &t);
        let mut bad = vec![b'S'];
        bad.extend_from_slice(&<Ed25519Group as Group>::element_to_bytes(&mixed));
        let (a, _) = Pake::start("1-x", "a");
        assert!(matches!(
            a.finish(&format_pake_body(&bad)),
            Err(KeyError::Spake2(_))
        ));
    }
}
