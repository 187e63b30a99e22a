//! The Noise layer of Dilation (docs/protocol.md §6.4 steps 5–7): `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`,
//! the handshake with the `snow` crate and the transport with `cipher.rs` under the two
//! keys of snow's split (in place, so a frame's payload is never copied to be sealed or opened).
//!
//! Owns: the PSK derivation (HKDF-SHA256 of the shared wormhole key, info `dilation-v1`,
//! 32 bytes, via [`crate::key::derive`]), the two-message handshake (the Leader is the
//! initiator; the prologue is empty — the role prefixes of [`super::frame`] are *not* fed to
//! Noise) and the transport encryption of frame payloads with Python's splitting rule: plaintext
//! is cut into pieces of at most [`NOISE_MAX_PAYLOAD`] bytes, each encrypted, and the
//! ciphertexts concatenated into one frame; an inbound frame is cut into pieces of
//! [`NOISE_MAX_CIPHERTEXT`] bytes, each decrypted.
//!
//! Must not: frame (the caller wraps and unwraps `u32 BE length` with [`super::frame`]), parse
//! records, or decide which connection wins. Randomness for the ephemeral keys comes from
//! `snow`'s resolver (the operating system's RNG).
//!
//! Sequence on one connection, after both prefixes:
//! 1. Leader: [`LeaderHandshake::start`] → frame 1 (48 bytes).
//! 2. Follower: [`respond`] on frame 1 → frame 2 (48 bytes) and a [`NoiseTransport`]; it then
//!    sends the KCM record encrypted.
//! 3. Leader: [`LeaderHandshake::finish`] on frame 2 → a [`NoiseTransport`].

use thiserror::Error;

use super::cipher::CipherState;
use crate::key::KeyError;
use crate::key::derive::{DILATION_PURPOSE, hkdf_sha256};

/// The Noise protocol name Python 0.24.0 uses.
pub const NOISE_PROTOCOL_NAME: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Size of each handshake message (32-byte ephemeral key + 16-byte tag over an empty payload).
pub const HANDSHAKE_MSG_LEN: usize = 48;
/// Bytes of AEAD tag per Noise message.
pub const NOISE_TAG_LEN: usize = 16;
/// The largest Noise message (ciphertext + tag).
pub const NOISE_MAX_CIPHERTEXT: usize = 65535;
/// The largest plaintext in one Noise message.
pub const NOISE_MAX_PAYLOAD: usize = NOISE_MAX_CIPHERTEXT - NOISE_TAG_LEN;

/// Why the Noise layer refused something.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// `snow` could not build the handshake state: a bug or a build without the default crypto
    /// resolver. Report it.
    #[error("cannot set up Noise: {0}")]
    Setup(snow::Error),
    /// A handshake message has the wrong size. The peer is not a Dilation peer (or is broken);
    /// drop this connection.
    #[error("Noise handshake message is {got} bytes, expected {HANDSHAKE_MSG_LEN}")]
    HandshakeLength {
        /// Bytes received.
        got: usize,
    },
    /// The peer's handshake did not authenticate: it holds a different wormhole key (a wrong
    /// code, or a stale connection from another session). Drop this connection.
    #[error("Noise handshake failed to authenticate (different Dilation key?)")]
    HandshakeAuth,
    /// A transport message did not authenticate (corruption, reordering or an attacker). Drop
    /// the connection; Dilation reconnects and re-sends what was not acknowledged.
    #[error("Noise message {piece} of the frame failed to decrypt")]
    Decrypt {
        /// Index of the failing piece within the frame.
        piece: usize,
    },
    /// The 2^64 - 1 messages one direction may carry are used up. Drop the connection and
    /// reconnect (a new connection has new keys).
    #[error("Noise nonce space exhausted: reconnect")]
    NonceExhausted,
    /// The cipher refused its key or a buffer: a bug. Report it.
    #[error("Noise transport cipher failed")]
    Key,
}

/// The Dilation PSK: HKDF-SHA256(shared wormhole key, info `dilation-v1`, 32 bytes).
pub fn dilation_psk(shared_key: &[u8]) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    hkdf_sha256(b"", shared_key, DILATION_PURPOSE, &mut out)?;
    Ok(out)
}

fn builder(psk: &[u8; 32]) -> Result<snow::Builder<'_>, NoiseError> {
    let params: snow::params::NoiseParams = NOISE_PROTOCOL_NAME.parse().map_err(NoiseError::Setup)?;
    Ok(snow::Builder::new(params).psk(0, psk).prologue(&[]))
}

/// The Leader (initiator) after sending frame 1, waiting for frame 2.
pub struct LeaderHandshake {
    state: snow::HandshakeState,
}

impl std::fmt::Debug for LeaderHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderHandshake").finish_non_exhaustive()
    }
}

impl LeaderHandshake {
    /// Starts the Leader's handshake on a new connection: returns the state and frame 1
    /// (`-> psk, e`, 48 bytes) to send once the Follower's prefix has arrived.
    pub fn start(psk: &[u8; 32]) -> Result<(LeaderHandshake, Vec<u8>), NoiseError> {
        let mut state = builder(psk)?.build_initiator().map_err(NoiseError::Setup)?;
        let mut msg = vec![0u8; HANDSHAKE_MSG_LEN];
        let n = state.write_message(&[], &mut msg).map_err(NoiseError::Setup)?;
        msg.truncate(n);
        Ok((LeaderHandshake { state }, msg))
    }

    /// Consumes frame 2 (`<- e, ee`) and switches to transport mode.
    pub fn finish(mut self, frame2: &[u8]) -> Result<NoiseTransport, NoiseError> {
        if frame2.len() != HANDSHAKE_MSG_LEN {
            return Err(NoiseError::HandshakeLength { got: frame2.len() });
        }
        let mut payload = [0u8; HANDSHAKE_MSG_LEN];
        self.state
            .read_message(frame2, &mut payload)
            .map_err(|_| NoiseError::HandshakeAuth)?;
        transport(self.state)
    }
}

/// The Follower's (responder's) whole handshake: consumes frame 1 and returns frame 2
/// (48 bytes) and the transport. The caller sends frame 2, then the KCM record encrypted with
/// the transport.
pub fn respond(psk: &[u8; 32], frame1: &[u8]) -> Result<(Vec<u8>, NoiseTransport), NoiseError> {
    if frame1.len() != HANDSHAKE_MSG_LEN {
        return Err(NoiseError::HandshakeLength { got: frame1.len() });
    }
    let mut state = builder(psk)?.build_responder().map_err(NoiseError::Setup)?;
    let mut payload = [0u8; HANDSHAKE_MSG_LEN];
    state
        .read_message(frame1, &mut payload)
        .map_err(|_| NoiseError::HandshakeAuth)?;
    let mut msg = vec![0u8; HANDSHAKE_MSG_LEN];
    let n = state.write_message(&[], &mut msg).map_err(NoiseError::Setup)?;
    msg.truncate(n);
    Ok((msg, transport(state)?))
}

fn transport(mut state: snow::HandshakeState) -> Result<NoiseTransport, NoiseError> {
    if !state.is_handshake_finished() {
        return Err(NoiseError::Key);
    }
    // Noise's split: the initiator (Leader) sends under the first key, the responder under the
    // second.
    let (k1, k2) = state.dangerously_get_raw_split();
    let (send, recv) = if state.is_initiator() { (k1, k2) } else { (k2, k1) };
    Ok(NoiseTransport {
        send: CipherState::new(&send)?,
        recv: CipherState::new(&recv)?,
    })
}

/// Encryption and decryption of frame payloads after the handshake. Each direction has its own
/// nonce counter, so frames must be decrypted in the order they were sent.
#[derive(Debug)]
pub struct NoiseTransport {
    send: CipherState,
    recv: CipherState,
}

/// A connected (Leader, Follower) transport pair made with fixed ephemeral private keys, for
/// fuzzing and known-answer tests only: fixed ephemerals remove forward secrecy and make every
/// session with the same inputs identical. Never use it on a real connection.
#[doc(hidden)]
pub fn transport_pair_for_testing(
    psk: &[u8; 32],
    leader_ephemeral: &[u8; 32],
    follower_ephemeral: &[u8; 32],
) -> Result<(NoiseTransport, NoiseTransport), NoiseError> {
    let mut leader = builder(psk)?
        .fixed_ephemeral_key_for_testing_only(leader_ephemeral)
        .build_initiator()
        .map_err(NoiseError::Setup)?;
    let mut follower = builder(psk)?
        .fixed_ephemeral_key_for_testing_only(follower_ephemeral)
        .build_responder()
        .map_err(NoiseError::Setup)?;
    let mut msg = [0u8; HANDSHAKE_MSG_LEN];
    let mut payload = [0u8; HANDSHAKE_MSG_LEN];
    let n = leader.write_message(&[], &mut msg).map_err(NoiseError::Setup)?;
    follower
        .read_message(msg.get(..n).unwrap_or_default(), &mut payload)
        .map_err(|_| NoiseError::HandshakeAuth)?;
    let n = follower.write_message(&[], &mut msg).map_err(NoiseError::Setup)?;
    leader
        .read_message(msg.get(..n).unwrap_or_default(), &mut payload)
        .map_err(|_| NoiseError::HandshakeAuth)?;
    Ok((transport(leader)?, transport(follower)?))
}

/// Ciphertext length of a frame carrying `plaintext_len` bytes.
pub fn encrypted_len(plaintext_len: usize) -> usize {
    let pieces = plaintext_len.div_ceil(NOISE_MAX_PAYLOAD).max(1);
    plaintext_len + pieces * NOISE_TAG_LEN
}

impl NoiseTransport {
    /// Encrypts one record's bytes into one frame payload (pieces of ≤ 65519 plaintext bytes,
    /// each encrypted, concatenated). An empty plaintext gives one 16-byte message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut out = Vec::with_capacity(encrypted_len(plaintext.len()));
        out.extend_from_slice(plaintext);
        self.send.seal_in_place(&mut out, 0)?;
        Ok(out)
    }

    /// Encrypts `buf[start..]` in place into one frame payload (what [`Self::encrypt`] returns),
    /// so a record encoded after a frame header is sealed without another copy.
    pub fn encrypt_in_place(&mut self, buf: &mut Vec<u8>, start: usize) -> Result<(), NoiseError> {
        self.send.seal_in_place(buf, start)
    }

    /// Decrypts one frame payload (cut into 65535-byte ciphertexts, each decrypted). Any
    /// failure means the connection must be dropped: the nonce counters are then out of step.
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>, NoiseError> {
        self.decrypt_owned(frame.to_vec())
    }

    /// [`Self::decrypt`] in the frame's own buffer, which becomes the plaintext.
    pub fn decrypt_owned(&mut self, mut frame: Vec<u8>) -> Result<Vec<u8>, NoiseError> {
        let len = self.decrypt_in_place(&mut frame)?;
        frame.truncate(len);
        Ok(frame)
    }

    /// [`Self::decrypt`] where the frame lies: its plaintext is the first returned number of
    /// bytes of `frame`.
    pub fn decrypt_in_place(&mut self, frame: &mut [u8]) -> Result<usize, NoiseError> {
        self.recv.open_in_place(frame)
    }

    /// Messages sent so far (the next sending nonce).
    pub fn sending_nonce(&self) -> u64 {
        self.send.nonce()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dilation::l3::Record;

    fn psk(key: &[u8]) -> [u8; 32] {
        dilation_psk(key).unwrap()
    }

    #[test]
    fn a_forged_frame_leaves_the_nonce_for_the_next_real_one() {
        let (mut leader, mut follower) = pair(&psk(b"k"));
        assert!(follower.decrypt(&[0x5d; 40]).is_err());
        let ct = leader.encrypt(b"real").unwrap();
        assert_eq!(follower.decrypt(&ct).unwrap(), b"real");
    }

    fn pair(psk: &[u8; 32]) -> (NoiseTransport, NoiseTransport) {
        let (leader, frame1) = LeaderHandshake::start(psk).unwrap();
        assert_eq!(frame1.len(), HANDSHAKE_MSG_LEN);
        let (frame2, follower) = respond(psk, &frame1).unwrap();
        assert_eq!(frame2.len(), HANDSHAKE_MSG_LEN);
        (leader.finish(&frame2).unwrap(), follower)
    }

    #[test]
    fn psk_matches_python_derive_key() {
        // Known answers from Python 0.24.0: `wormhole._key.derive_key(key, b"dilation-v1", 32)`.
        assert_eq!(
            hex::encode(dilation_psk(&[0u8; 32]).unwrap()),
            "1505e70443d8145ea7af05251051a3c13adfce735a0ab23fe5f20da24ca6cf85"
        );
        assert_eq!(
            hex::encode(dilation_psk(b"shared key").unwrap()),
            "dd2f70d0ad3b35a7f2ebc85fc69c54f0a87347087c0a3a5cf4aabf863a0fb503"
        );
    }

    #[test]
    fn kcm_is_17_bytes_and_roundtrips() {
        let psk = psk(b"shared key");
        let (mut leader, mut follower) = pair(&psk);
        let kcm = follower.encrypt(&Record::Kcm.encode()).unwrap();
        assert_eq!(kcm.len(), 17);
        assert_eq!(
            Record::parse(&leader.decrypt(&kcm).unwrap()).unwrap(),
            Record::Kcm
        );
        let back = leader.encrypt(b"\x00").unwrap();
        assert_eq!(follower.decrypt(&back).unwrap(), b"\x00");
    }

    #[test]
    fn splitting_rule_at_boundaries() {
        let psk = psk(b"k");
        let (mut a, mut b) = pair(&psk);
        for len in [
            0,
            1,
            NOISE_MAX_PAYLOAD - 1,
            NOISE_MAX_PAYLOAD,
            NOISE_MAX_PAYLOAD + 1,
            2 * NOISE_MAX_PAYLOAD,
            2 * NOISE_MAX_PAYLOAD + 7,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ct = a.encrypt(&plain).unwrap();
            assert_eq!(ct.len(), encrypted_len(len), "len {len}");
            let pieces = len.div_ceil(NOISE_MAX_PAYLOAD).max(1);
            assert_eq!(ct.len(), len + 16 * pieces);
            assert_eq!(b.decrypt(&ct).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn wrong_psk_fails_the_handshake() {
        let one = psk(b"one");
        let two = psk(b"two");
        // The Follower notices on frame 1 (psk0 keys the tag of the first message).
        let (leader1, frame1) = LeaderHandshake::start(&one).unwrap();
        assert!(matches!(respond(&two, &frame1), Err(NoiseError::HandshakeAuth)));
        // The Leader notices on frame 2 when it comes from a handshake under another key.
        let (_, frame1b) = LeaderHandshake::start(&two).unwrap();
        let (frame2, _) = respond(&two, &frame1b).unwrap();
        assert!(matches!(leader1.finish(&frame2), Err(NoiseError::HandshakeAuth)));
    }

    #[test]
    fn bad_lengths_and_tampering_are_typed_errors() {
        let psk = psk(b"k");
        assert!(matches!(
            respond(&psk, &[0u8; 47]),
            Err(NoiseError::HandshakeLength { got: 47 })
        ));
        let (leader, _) = LeaderHandshake::start(&psk).unwrap();
        assert!(matches!(
            leader.finish(&[0u8; 49]),
            Err(NoiseError::HandshakeLength { got: 49 })
        ));
        let (mut a, mut b) = pair(&psk);
        assert!(matches!(b.decrypt(&[]), Err(NoiseError::Decrypt { piece: 0 })));
        assert!(matches!(
            b.decrypt(&[0u8; 15]),
            Err(NoiseError::Decrypt { piece: 0 })
        ));
        let mut ct = a.encrypt(b"hello").unwrap();
        ct[2] ^= 1;
        assert!(matches!(b.decrypt(&ct), Err(NoiseError::Decrypt { piece: 0 })));
        // A frame whose last piece is shorter than a tag.
        let (mut a, mut b) = pair(&psk);
        let mut ct = a.encrypt(&vec![1u8; NOISE_MAX_PAYLOAD]).unwrap();
        ct.extend_from_slice(&[0u8; 5]);
        assert!(matches!(b.decrypt(&ct), Err(NoiseError::Decrypt { piece: 1 })));
    }

    #[test]
    fn fixed_ephemeral_pair_is_deterministic() {
        let psk = psk(b"k");
        let (mut a1, mut b1) = transport_pair_for_testing(&psk, &[1; 32], &[2; 32]).unwrap();
        let (mut a2, _) = transport_pair_for_testing(&psk, &[1; 32], &[2; 32]).unwrap();
        let (mut a3, _) = transport_pair_for_testing(&psk, &[1; 32], &[3; 32]).unwrap();
        let ct = a1.encrypt(b"same").unwrap();
        assert_eq!(ct, a2.encrypt(b"same").unwrap());
        assert_ne!(ct, a3.encrypt(b"same").unwrap());
        assert_eq!(b1.decrypt(&ct).unwrap(), b"same");
    }

    #[test]
    fn nonces_advance_per_piece() {
        let psk = psk(b"k");
        let (mut a, mut b) = pair(&psk);
        let big = vec![9u8; NOISE_MAX_PAYLOAD * 3];
        let ct = a.encrypt(&big).unwrap();
        assert_eq!(a.sending_nonce(), 3);
        assert_eq!(b.decrypt(&ct).unwrap(), big);
        // Replaying the frame fails: the receiver's nonce moved on.
        assert!(b.decrypt(&ct).is_err());
    }

    /// `ours` seals `plain` exactly as `snow_same` (the same side's snow transport) does, and
    /// `snow_peer` opens it.
    fn check(
        (ours, ours_peer): (&mut NoiseTransport, &mut NoiseTransport),
        snow_same: &mut snow::TransportState,
        snow_peer: &mut snow::TransportState,
        plain: &[u8],
    ) {
        let ct = ours.encrypt(plain).unwrap();
        let mut pieces: Vec<&[u8]> = plain.chunks(NOISE_MAX_PAYLOAD).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let mut expect = Vec::new();
        for piece in pieces {
            let mut m = vec![0u8; piece.len() + NOISE_TAG_LEN];
            snow_same.write_message(piece, &mut m).unwrap();
            expect.extend_from_slice(&m);
        }
        assert_eq!(ct, expect, "len {}", plain.len());
        let mut got = Vec::new();
        for c in ct.chunks(NOISE_MAX_CIPHERTEXT) {
            let mut m = vec![0u8; c.len()];
            let n = snow_peer.read_message(c, &mut m).unwrap();
            got.extend_from_slice(&m[..n]);
        }
        assert_eq!(got, plain, "len {}", plain.len());
        assert_eq!(ours_peer.decrypt(&ct).unwrap(), plain, "len {}", plain.len());
    }

    /// Our in-place transport is byte-exact with `snow`'s own TransportState, both ways and
    /// across the splitting rule's boundaries.
    #[test]
    fn transport_matches_snow() {
        let psk = psk(b"k");
        let handshake = || {
            let mut l = builder(&psk)
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(&[1; 32])
                .build_initiator()
                .unwrap();
            let mut f = builder(&psk)
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(&[2; 32])
                .build_responder()
                .unwrap();
            let (mut msg, mut payload) = ([0u8; HANDSHAKE_MSG_LEN], [0u8; HANDSHAKE_MSG_LEN]);
            l.write_message(&[], &mut msg).unwrap();
            f.read_message(&msg, &mut payload).unwrap();
            f.write_message(&[], &mut msg).unwrap();
            l.read_message(&msg, &mut payload).unwrap();
            (l, f)
        };
        let (l, f) = handshake();
        let (mut ours_l, mut ours_f) = (transport(l).unwrap(), transport(f).unwrap());
        let (l, f) = handshake();
        let mut snow_l = l.into_transport_mode().unwrap();
        let mut snow_f = f.into_transport_mode().unwrap();
        for len in [
            0,
            1,
            17,
            NOISE_MAX_PAYLOAD,
            NOISE_MAX_PAYLOAD + 1,
            3 * NOISE_MAX_PAYLOAD + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            check((&mut ours_l, &mut ours_f), &mut snow_l, &mut snow_f, &plain);
            check((&mut ours_f, &mut ours_l), &mut snow_f, &mut snow_l, &plain);
            // What snow seals, ours opens (and ours seals the same bytes, keeping the four
            // counters in step).
            let piece = &plain[..len.min(NOISE_MAX_PAYLOAD)];
            let mut m = vec![0u8; piece.len() + NOISE_TAG_LEN];
            snow_l.write_message(piece, &mut m).unwrap();
            assert_eq!(ours_f.decrypt_owned(m.clone()).unwrap(), piece);
            let ct = ours_l.encrypt(piece).unwrap();
            assert_eq!(ct, m);
            let mut back = vec![0u8; m.len()];
            snow_f.read_message(&ct, &mut back).unwrap();
            assert_eq!(&back[..piece.len()], piece);
        }
    }
}
