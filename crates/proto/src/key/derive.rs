//! HKDF-SHA256 and the wormhole key purposes (docs/protocol.md §2.4).
//!
//! Owns: HKDF with an empty salt, the phase-key purpose layout, the verifier and the NFC rule for
//! application purposes. Must not: choose which phase or side a caller encrypts for, or know about
//! transit (the transit module derives its own purposes from a key made here).

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use super::KeyError;

/// The largest output HKDF-SHA256 can produce (255 blocks of 32 bytes).
pub const HKDF_MAX_LEN: usize = 255 * 32;

/// HKDF purpose of the verifier.
pub const VERIFIER_PURPOSE: &[u8] = b"wormhole:verifier";

/// HKDF purpose of the Dilation Noise PSK.
pub const DILATION_PURPOSE: &[u8] = b"dilation-v1";

/// HKDF-SHA256 with an explicit `salt` (may be empty, which RFC 5869 treats as 32 zero bytes),
/// filling `out`. Fails only if `out` is longer than [`HKDF_MAX_LEN`].
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KeyError> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| KeyError::LengthTooLarge(out.len()))
}

/// HKDF-SHA256 (empty salt) of `key` with info `purpose`, `len` bytes; an error if `len` is
/// larger than [`HKDF_MAX_LEN`].
pub fn try_derive_key(key: &[u8], purpose: &[u8], len: usize) -> Result<Vec<u8>, KeyError> {
    if len > HKDF_MAX_LEN {
        return Err(KeyError::LengthTooLarge(len));
    }
    let mut out = vec![0u8; len];
    hkdf_sha256(b"", key, purpose, &mut out)?;
    Ok(out)
}

/// HKDF-SHA256 (empty salt) of `key` with info `purpose`, `len` bytes.
///
/// # Panics
/// If `len` is larger than [`HKDF_MAX_LEN`] (8160), which is a programming error; use
/// [`try_derive_key`] when the length comes from elsewhere.
pub fn derive_key(key: &[u8], purpose: &[u8], len: usize) -> Vec<u8> {
    match try_derive_key(key, purpose, len) {
        Ok(v) => v,
        Err(e) => panic!("derive_key: {e}"),
    }
}

/// Like Python's `Wormhole.derive_key(purpose, length)`: the purpose string is NFC-normalised and
/// UTF-8 encoded first.
pub fn derive_key_for_purpose(key: &[u8], purpose: &str, len: usize) -> Result<Vec<u8>, KeyError> {
    let normalised: String = purpose.nfc().collect();
    try_derive_key(key, normalised.as_bytes(), len)
}

/// The HKDF info for a message in `phase` sent by `side`:
/// `b"wormhole:phase:" ‖ SHA256(side) ‖ SHA256(phase)` (79 bytes).
pub fn phase_key_purpose(side: &str, phase: &str) -> Vec<u8> {
    let mut purpose = Vec::with_capacity(15 + 32 + 32);
    purpose.extend_from_slice(b"wormhole:phase:");
    purpose.extend_from_slice(&Sha256::digest(side.as_bytes()));
    purpose.extend_from_slice(&Sha256::digest(phase.as_bytes()));
    purpose
}

/// Fill a 32-byte array with HKDF(key, info); 32 bytes never exceed the HKDF limit.
fn derive_32(key: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 ≤ HKDF_MAX_LEN, so expand cannot fail; keep the zeroes otherwise rather than panic.
    let _ = hkdf_sha256(b"", key, info, &mut out);
    out
}

/// The secretbox key for a message in `phase` sent by `side`.
pub fn derive_phase_key(key: &[u8], side: &str, phase: &str) -> [u8; 32] {
    derive_32(key, &phase_key_purpose(side, phase))
}

/// The verifier, HKDF(key, "wormhole:verifier").
pub fn derive_verifier(key: &[u8]) -> [u8; 32] {
    derive_32(key, VERIFIER_PURPOSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// docs/protocol.md §7.1: HKDF with skm `secret`, every salt/info combination, every prefix of
    /// the 64-byte output.
    #[test]
    fn hkdf_vectors_every_prefix() {
        let cases: [(&[u8], &[u8], &str); 4] = [
            (
                b"",
                b"",
                "2f34e5ff91ec85d53ca9b543683174d0cf550b60d5f52b24c97b386cfcf6cbbf9cfd42fd37e1e5a214d15f03058d7fee63dc28f564b7b9fe3da514f80daad4bf",
            ),
            (
                b"",
                b"context",
                "c24c303a1adfb4c3e2b092e6254ed481c41d8955ba8ec3f6a1473493a60c957b31b723018ca75557214d3d5c61c0c7a5315b103b21ff00cb03ebe023dc347a47",
            ),
            (
                b"salt",
                b"",
                "f1156507c39b0e326159e778696253122de430899a8df2484040a85a5f95ceb1dfca555d4cc603bdf7153ed1560de8cbc3234b27a6d2be8e8ca202d90649679a",
            ),
            (
                b"salt",
                b"context",
                "61a4f201a867bcc12381ddb180d27074408d03ee9d5750855e5a12d967fa060f10336ead9370927eaabb0d60b259346ee5f57eb7ceba8c72f1ed3f2932b1bf19",
            ),
        ];
        for (salt, info, expected) in cases {
            let expected = h(expected);
            assert_eq!(expected.len(), 64);
            for n in 0..=64 {
                let mut out = vec![0u8; n];
                hkdf_sha256(salt, b"secret", info, &mut out).unwrap();
                assert_eq!(out, expected[..n], "salt {salt:?} info {info:?} len {n}");
                if salt.is_empty() {
                    assert_eq!(derive_key(b"secret", info, n), expected[..n]);
                }
            }
        }
    }

    const MAIN: &str = "588ba9eef353778b074413a0140205d90d7479e36e0dd4ee35bb729d26131ef1";

    #[test]
    fn derive_key_vectors() {
        let main = h(MAIN);
        assert_eq!(
            hex::encode(derive_key(&main, b"purpose1", 32)),
            "835b5df80ce9ca46908e8524fb308649122cfbcefbeaa7e65061c6ef08ee1b2a"
        );
        assert_eq!(
            hex::encode(derive_key(&main, b"purpose2", 10)),
            "f2238e84315b47eb6279"
        );
        assert_eq!(
            hex::encode(derive_key_for_purpose(&main, "purpose1", 32).unwrap()),
            "835b5df80ce9ca46908e8524fb308649122cfbcefbeaa7e65061c6ef08ee1b2a"
        );
    }

    #[test]
    fn phase_key_vectors() {
        let main = h(MAIN);
        let cases = [
            (
                "side1",
                "phase1",
                "3af6a61d1a111225cc8968c6ca6265efe892065c3ab46de79dda21306b062990",
            ),
            (
                "side1",
                "phase2",
                "88a1dd12182d989ff498022a9656d1e2806f17328d8bf5d8d0c9753e4381a752",
            ),
            (
                "side2",
                "phase1",
                "a306627b436ec23bdae3af8fa90c9ac927780d86be1831003e7f617c518ea689",
            ),
            (
                "side2",
                "phase2",
                "bf99e3e16420f2dad33f9b1ccb0be1462b253d639dacdb50ed9496fa528d8758",
            ),
        ];
        for (side, phase, expected) in cases {
            assert_eq!(
                hex::encode(derive_phase_key(&main, side, phase)),
                expected,
                "{side}/{phase}"
            );
        }
        assert_eq!(phase_key_purpose("side1", "phase1").len(), 79);
    }

    #[test]
    fn nfc_purpose_matches_composed_form() {
        let main = h(MAIN);
        // "é" decomposed (e + U+0301) and composed (U+00E9) derive the same key.
        let decomposed = derive_key_for_purpose(&main, "caf\u{65}\u{301}", 16).unwrap();
        let composed = derive_key(&main, "caf\u{e9}".as_bytes(), 16);
        assert_eq!(decomposed, composed);
        assert_ne!(derive_key(&main, "caf\u{65}\u{301}".as_bytes(), 16), composed);
    }

    #[test]
    fn too_long_is_an_error_not_a_panic() {
        assert_eq!(
            try_derive_key(b"k", b"p", HKDF_MAX_LEN + 1),
            Err(KeyError::LengthTooLarge(HKDF_MAX_LEN + 1))
        );
        assert_eq!(try_derive_key(b"k", b"p", HKDF_MAX_LEN).unwrap().len(), 8160);
        assert!(derive_key_for_purpose(b"k", "p", usize::MAX).is_err());
    }
}
