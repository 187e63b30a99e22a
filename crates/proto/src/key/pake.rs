//! The SPAKE2 exchange of phase `pake` (docs/protocol.md §2.3) and its JSON body.
//!
//! Owns: NFC-normalising the code and appid, running symmetric SPAKE2 over Ed25519 (`key::spake2`,
//! equal to python-spake2 0.9 and the `spake2` crate, which the tests prove), the key a Go peer
//! derives when K's top byte is zero ([`super::go_compat`]), the exact 81-byte body Python sends, and strict,
//! bounded parsing of the peer's body with the checks python-spake2 makes (side byte `S`,
//! prime-order subgroup, no reflection). Must not: decide what a failure means for the wormhole
//! (the Key machine maps errors to "scary" / `WrongPasswordError`).

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use rand::RngCore;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::KeyError;
use super::go_compat::go_key;
use super::spake2::{outbound, password_scalar, random_scalar, shared_point, transcript_key};

/// Length of a SPAKE2 message: side byte `S` then a 32-byte compressed Edwards point.
pub const PAKE_MSG_LEN: usize = 33;

/// The largest peer `pake` body accepted (the honest one is 81 bytes; anything this large is
/// garbage and is refused before JSON parsing).
pub const PAKE_BODY_MAX: usize = 4096;

/// The side byte of symmetric SPAKE2 messages.
const SIDE_SYMMETRIC: u8 = b'S';

/// A started SPAKE2 exchange.
pub struct Pake {
    secret: Scalar,
    pw_scalar: Scalar,
    password: Vec<u8>,
    identity: Vec<u8>,
    own_msg: [u8; PAKE_MSG_LEN],
}

/// The outcome of SPAKE2: the standard key, and the key wormhole-william derives instead when
/// the shared point's top byte is zero ([`super::go_compat`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PakeKeys {
    /// The key of python-spake2, the `spake2` crate and every correct peer.
    pub key: [u8; 32],
    /// Present only when K's byte 31 is zero: the key a Go peer will have derived.
    pub go_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for PakeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PakeKeys")
            .field("go_key", &self.go_key.is_some())
            .finish_non_exhaustive()
    }
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

    /// Like [`Pake::start`], drawing the 64 bytes of the secret scalar from `rng`, which must be
    /// cryptographically secure outside tests. They are read as a little-endian number (as the
    /// `spake2` crate does; python-spake2 reads big-endian).
    pub fn start_with_rng<R: RngCore + ?Sized>(code: &str, appid: &str, rng: &mut R) -> (Pake, Vec<u8>) {
        let password = nfc_bytes(code);
        let identity = nfc_bytes(appid);
        let secret = random_scalar(rng);
        let pw_scalar = password_scalar(&password);
        let mut own_msg = [0u8; PAKE_MSG_LEN];
        own_msg[0] = SIDE_SYMMETRIC;
        own_msg[1..].copy_from_slice(&outbound(&secret, &pw_scalar));
        let body = format_pake_body(&own_msg);
        let pake = Pake {
            secret,
            pw_scalar,
            password,
            identity,
            own_msg,
        };
        (pake, body)
    }

    /// The secret parts of a started exchange (password, identity, secret scalar), for the
    /// machine's serialized state (`machine::snapshot`). They are key material.
    pub(crate) fn secret_parts(&self) -> (&[u8], &[u8], [u8; 32]) {
        (&self.password, &self.identity, self.secret.to_bytes())
    }

    /// Rebuild a started exchange from [`Pake::secret_parts`]; `None` if `secret` is not a
    /// canonical scalar.
    pub(crate) fn from_secret_parts(password: Vec<u8>, identity: Vec<u8>, secret: [u8; 32]) -> Option<Pake> {
        let secret: Scalar = Option::from(Scalar::from_canonical_bytes(secret))?;
        let pw_scalar = password_scalar(&password);
        let mut own_msg = [0u8; PAKE_MSG_LEN];
        own_msg[0] = SIDE_SYMMETRIC;
        own_msg[1..].copy_from_slice(&outbound(&secret, &pw_scalar));
        Some(Pake {
            secret,
            pw_scalar,
            password,
            identity,
            own_msg,
        })
    }

    /// Our outbound SPAKE2 message (`S` ‖ point).
    pub fn message(&self) -> &[u8; PAKE_MSG_LEN] {
        &self.own_msg
    }

    /// Finish with the peer's `pake` body bytes; returns the 32-byte shared key.
    pub fn finish(self, peer_body: &[u8]) -> Result<[u8; 32], KeyError> {
        Ok(self.finish_keys(peer_body)?.key)
    }

    /// Finish with the peer's `pake` body bytes; returns the standard key and, when K's top byte
    /// is zero, the key a wormhole-william peer derives instead.
    pub fn finish_keys(self, peer_body: &[u8]) -> Result<PakeKeys, KeyError> {
        let peer = parse_pake_body(peer_body)?;
        self.finish_keys_with_message(&peer)
    }

    /// Finish with the peer's raw 33-byte SPAKE2 message (already taken out of its JSON body).
    pub fn finish_with_message(self, peer: &[u8]) -> Result<[u8; 32], KeyError> {
        Ok(self.finish_keys_with_message(peer)?.key)
    }

    /// [`Pake::finish_keys`] for the raw 33-byte SPAKE2 message.
    pub fn finish_keys_with_message(self, peer: &[u8]) -> Result<PakeKeys, KeyError> {
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
        let mut peer_elem = [0u8; 32];
        peer_elem.copy_from_slice(&peer[1..]);
        let point = CompressedEdwardsY(peer_elem)
            .decompress()
            .ok_or_else(|| KeyError::Spake2("peer element is not a curve point".into()))?;
        if point.is_small_order() || !point.is_torsion_free() {
            return Err(KeyError::Spake2(
                "peer element is not in the prime-order subgroup".into(),
            ));
        }
        let k = shared_point(&self.secret, &self.pw_scalar, &point);
        let mut own_elem = [0u8; 32];
        own_elem.copy_from_slice(&self.own_msg[1..]);
        let (pw, id) = (&self.password, &self.identity);
        Ok(PakeKeys {
            key: transcript_key(pw, id, &own_elem, &peer_elem, &k, 32),
            go_key: go_key(pw, id, &own_elem, &peer_elem, &k),
        })
    }

    /// The compressed shared point K for `peer` (tests: searching seeds, checking top bytes).
    #[cfg(test)]
    pub(crate) fn shared_point_for(&self, peer: &[u8; PAKE_MSG_LEN]) -> Option<[u8; 32]> {
        let mut e = [0u8; 32];
        e.copy_from_slice(&peer[1..]);
        let p = CompressedEdwardsY(e).decompress()?;
        Some(shared_point(&self.secret, &self.pw_scalar, &p))
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

#[cfg(test)]
mod tests {
    use super::super::test_prg::Prg;
    use super::*;
    use spake2::{Ed25519Group, Group, Identity, Password, Spake2};

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

    /// Our SPAKE2 equals the `spake2` crate's: same message and same key from the same RNG
    /// stream, for many seeds (the known-answer vectors in `vectors_e2e_tests` pin python-spake2).
    #[test]
    fn equals_the_spake2_crate() {
        for i in 0..64u32 {
            let (sa, sb) = (format!("a{i}"), format!("b{i}"));
            let (ours_a, body_a) = Pake::start_with_rng("7-code", "appid", &mut Prg::new(sa.as_bytes()));
            let pw = Password::new(b"7-code");
            let id = Identity::new(b"appid");
            let (crate_b, msg_b) =
                Spake2::<Ed25519Group>::start_symmetric_with_rng(&pw, &id, Prg::new(sb.as_bytes()));
            let (crate_a, msg_a) =
                Spake2::<Ed25519Group>::start_symmetric_with_rng(&pw, &id, Prg::new(sa.as_bytes()));
            assert_eq!(&msg_a[..], &ours_a.message()[..], "seed {i}");
            let ours_key = ours_a.finish_keys(&format_pake_body(&msg_b)).unwrap();
            assert_eq!(
                crate_b.finish(&parse_pake_body(&body_a).unwrap()).unwrap(),
                ours_key.key
            );
            assert_eq!(crate_a.finish(&msg_b).unwrap(), ours_key.key);
        }
    }

    /// The first PRG seed pair (`za<i>`, `zb<i>`) whose shared point has a zero top byte, for
    /// code `code` (about 1 in 256 pairs).
    pub(crate) fn zero_top_seeds(code: &str, appid: &str) -> (String, String) {
        for i in 0..10_000 {
            let (sa, sb) = (format!("za{i}"), format!("zb{i}"));
            let (a, _) = Pake::start_with_rng(code, appid, &mut Prg::new(sa.as_bytes()));
            let (b, _) = Pake::start_with_rng(code, appid, &mut Prg::new(sb.as_bytes()));
            if a.shared_point_for(b.message()).is_some_and(|k| k[31] == 0) {
                return (sa, sb);
            }
        }
        panic!("no seed pair with a zero top byte");
    }

    #[test]
    fn go_key_only_when_the_top_byte_is_zero_and_matches_gos_model() {
        let (sa, sb) = zero_top_seeds("3-go-bug", "appid");
        let (a, body_a) = Pake::start_with_rng("3-go-bug", "appid", &mut Prg::new(sa.as_bytes()));
        let (b, body_b) = Pake::start_with_rng("3-go-bug", "appid", &mut Prg::new(sb.as_bytes()));
        let k = a.shared_point_for(b.message()).unwrap();
        let (ma, mb) = (*a.message(), *b.message());
        let ka = a.finish_keys(&body_b).unwrap();
        let kb = b.finish_keys(&body_a).unwrap();
        assert_eq!(ka, kb, "both sides see the same two keys");
        let go = ka.go_key.expect("top byte zero: a Go key exists");
        assert_ne!(go, ka.key);
        let own: [u8; 32] = ma[1..].try_into().unwrap();
        let inbound: [u8; 32] = mb[1..].try_into().unwrap();
        let model =
            super::super::go_compat::tests::go_finish_model(b"3-go-bug", b"appid", &own, &inbound, &k);
        assert_eq!(go, model);

        // Any other seed pair: no Go key, and Go's model gives the standard key.
        let (c, _) = Pake::start_with_rng("3-go-bug", "appid", &mut Prg::new(b"c"));
        let (d, body_d) = Pake::start_with_rng("3-go-bug", "appid", &mut Prg::new(b"d"));
        let k = c.shared_point_for(d.message()).unwrap();
        assert_ne!(k[31], 0);
        let own: [u8; 32] = c.message()[1..].try_into().unwrap();
        let inbound: [u8; 32] = d.message()[1..].try_into().unwrap();
        let model =
            super::super::go_compat::tests::go_finish_model(b"3-go-bug", b"appid", &own, &inbound, &k);
        let keys = c.finish_keys(&body_d).unwrap();
        assert_eq!(keys.go_key, None);
        assert_eq!(keys.key, model);
    }
}
