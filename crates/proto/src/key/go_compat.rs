//! The key wormhole-william (Go) derives when the shared point K's top byte is zero, so that our
//! side can adopt it instead of failing (docs/go-spake2-key-bug.md).
//!
//! # The bug (in gospake2, which wormhole-william 1.0.6 uses; not ours)
//! gospake2 encodes a point as `big.Int.Bytes()` reversed (`ed25519group`, `AffinePoint.Compress`).
//! `Bytes()` is big-endian without leading zeros, so when the most significant byte of the
//! standard 32-byte little-endian encoding — byte 31, holding x's sign bit and y's bits 248–254 —
//! is zero, the encoding of K comes out 31 bytes long (30 when bytes 30 and 31 are both zero, and
//! so on). `transcriptSymmetric` (`spake2.go`) then takes `len(K)` as the element size: the
//! transcript is SHA256(pw) ‖ SHA256(id) ‖ the first L bytes of the smaller message ‖ the first
//! L bytes of the larger one ‖ the L bytes of K, L = `len(K)` (Go's `copy` truncates to the
//! slot). With L = 32 that is the standard transcript; with L < 32 it is another key, so Go and
//! any correct peer (Python, us) disagree in 1 exchange of 256. Two Go peers agree.
//!
//! # Why adopting it does not weaken the PAKE
//! Both candidate keys are public functions of the same K and the same transcript; anyone who
//! can compute one can compute the other, so an attacker who has not guessed the code knows
//! neither. The extra key gives no extra guess: it exists only when K's top byte is zero (a fact
//! of this one run), and it is tried only on the peer's `version` message, the one message that
//! confirms the key. An active attacker still gets one password guess per run, as before.
//! After one key opened the `version` message, only that key is used.
//!
//! Must not: decide when to try which key (the client machine's `machine::key_choice` does).

use super::spake2::transcript_key;

/// How many bytes gospake2 keeps of a compressed point: 32 minus its trailing (most
/// significant) zero bytes.
pub fn go_encoded_len(point: &[u8; 32]) -> usize {
    32 - point.iter().rev().take_while(|b| **b == 0).count()
}

/// The key wormhole-william derives for this exchange, if it differs from the standard one
/// (exactly when byte 31 of K's encoding is zero).
pub(crate) fn go_key(
    password: &[u8],
    identity: &[u8],
    msg_a: &[u8; 32],
    msg_b: &[u8; 32],
    k: &[u8; 32],
) -> Option<[u8; 32]> {
    let len = go_encoded_len(k);
    (len < 32).then(|| transcript_key(password, identity, msg_a, msg_b, k, len))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// An independent model of gospake2's `Finish` key derivation, written from its source as
    /// Go executes it: `Compress` strips high zero bytes, the transcript is `2*32 + 3*len(key)`
    /// bytes, the messages are ordered by `bytes.Compare` of Go's own (possibly short) encoding
    /// against the 32 inbound bytes, and `copy` truncates to each slot.
    pub(crate) fn go_finish_model(
        password: &[u8],
        identity: &[u8],
        go_own: &[u8; 32],
        inbound: &[u8; 32],
        k: &[u8; 32],
    ) -> [u8; 32] {
        let strip = |p: &[u8; 32]| p[..go_encoded_len(p)].to_vec();
        let (own, key) = (strip(go_own), strip(k));
        let l = key.len();
        let mut t = vec![0u8; 64 + 3 * l];
        t[..32].copy_from_slice(&Sha256::digest(password));
        t[32..64].copy_from_slice(&Sha256::digest(identity));
        let (first, second): (&[u8], &[u8]) = if own.as_slice() < inbound.as_slice() {
            (&own, inbound)
        } else {
            (inbound, &own)
        };
        let copy = |dst: &mut [u8], src: &[u8]| {
            let n = dst.len().min(src.len());
            dst[..n].copy_from_slice(&src[..n]);
        };
        copy(&mut t[64..64 + l], first);
        copy(&mut t[64 + l..64 + 2 * l], second);
        copy(&mut t[64 + 2 * l..64 + 3 * l], &key);
        Sha256::digest(&t).into()
    }

    #[test]
    fn encoded_len_counts_high_zero_bytes() {
        let mut p = [1u8; 32];
        assert_eq!(go_encoded_len(&p), 32);
        p[31] = 0;
        assert_eq!(go_encoded_len(&p), 31);
        p[30] = 0;
        assert_eq!(go_encoded_len(&p), 30);
        p[31] = 0x80;
        assert_eq!(go_encoded_len(&p), 32);
    }

    #[test]
    fn go_key_matches_the_model_for_short_and_full_points() {
        let a = [0x11u8; 32];
        let mut b = [0x22u8; 32];
        b[31] = 0; // Go's own message short too: it is still ordered and padded the same way
        for zeros in 0..3 {
            let mut k = [0x5au8; 32];
            for i in 0..zeros {
                k[31 - i] = 0;
            }
            let model_ab = go_finish_model(b"pw", b"id", &a, &b, &k);
            let model_ba = go_finish_model(b"pw", b"id", &b, &a, &k);
            assert_eq!(model_ab, model_ba, "both Go sides agree");
            let standard = transcript_key(b"pw", b"id", &a, &b, &k, 32);
            match go_key(b"pw", b"id", &a, &b, &k) {
                None => {
                    assert_eq!(zeros, 0);
                    assert_eq!(model_ab, standard, "a full K gives Go the standard key");
                }
                Some(g) => {
                    assert_eq!(g, model_ab);
                    assert_ne!(g, standard);
                }
            }
        }
    }
}
