//! Symmetric SPAKE2 over Ed25519, written on `curve25519-dalek` so that the shared point K is
//! ours to see (the `spake2` crate hides it, and [`super::go_compat`] needs it).
//!
//! Owns: the password scalar (HKDF-SHA256, salt empty, info `SPAKE2 pw`, 48 bytes read as a
//! big-endian number mod ℓ), the blinding constant S, the outbound element X = x·B + pw·S, the
//! shared point K = x·(Y − pw·S) and the transcript hash
//! SHA256(SHA256(pw) ‖ SHA256(id) ‖ min(X,Y) ‖ max(X,Y) ‖ K). Every value equals python-spake2 0.9
//! and the `spake2` crate 0.4 (proved by the tests in [`super::pake`] and the known-answer vectors).
//! Must not: parse wire bodies or judge the peer's element (that is [`super::pake`]).

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// python-spake2's `ParamsEd25519.S`, compressed.
const S_COMPRESSED: [u8; 32] = [
    0x6f, 0x00, 0xda, 0xe8, 0x7c, 0x1b, 0xe1, 0xa7, 0x3b, 0x59, 0x22, 0xef, 0x43, 0x1c, 0xd8, 0xf5, 0x78,
    0x79, 0x56, 0x9c, 0x22, 0x2d, 0x22, 0xb1, 0xcd, 0x71, 0xe8, 0x54, 0x6a, 0xb8, 0xe6, 0xf1,
];

/// The blinding element S (a fixed, valid point: decompression cannot fail).
pub(crate) fn const_s() -> EdwardsPoint {
    CompressedEdwardsY(S_COMPRESSED)
        .decompress()
        .unwrap_or(ED25519_BASEPOINT_POINT)
}

/// The password scalar: HKDF-SHA256(salt = "", ikm = password, info = "SPAKE2 pw") to 48 bytes,
/// read big-endian, reduced mod ℓ.
pub(crate) fn password_scalar(password: &[u8]) -> Scalar {
    let mut okm = [0u8; 48];
    // 48 bytes is far below HKDF's 8160-byte limit; the expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(b""), password).expand(b"SPAKE2 pw", &mut okm);
    let mut wide = [0u8; 64];
    for (i, b) in okm.iter().enumerate() {
        wide[47 - i] = *b;
    }
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The secret scalar: 64 bytes from `rng`, little-endian, mod ℓ (what `Scalar::random` does, so
/// the same RNG stream gives the `spake2` crate's scalar).
pub(crate) fn random_scalar<R: RngCore + ?Sized>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// Our outbound element X = x·B + pw·S, compressed.
pub(crate) fn outbound(x: &Scalar, pw: &Scalar) -> [u8; 32] {
    (ED25519_BASEPOINT_POINT * x + const_s() * pw)
        .compress()
        .to_bytes()
}

/// The shared point K = x·(Y − pw·S), compressed (32 bytes, little-endian y, x's sign in bit 255).
pub(crate) fn shared_point(x: &Scalar, pw: &Scalar, peer: &EdwardsPoint) -> [u8; 32] {
    ((peer - const_s() * pw) * x).compress().to_bytes()
}

/// The symmetric transcript hash with every element cut to its first `len` bytes: `len` = 32 is
/// the standard key; a shorter `len` is what gospake2 hashes (see [`super::go_compat`]).
pub(crate) fn transcript_key(
    password: &[u8],
    identity: &[u8],
    msg_a: &[u8; 32],
    msg_b: &[u8; 32],
    k: &[u8; 32],
    len: usize,
) -> [u8; 32] {
    let len = len.min(32);
    let (first, second) = if msg_a < msg_b {
        (msg_a, msg_b)
    } else {
        (msg_b, msg_a)
    };
    let mut h = Sha256::new();
    h.update(Sha256::digest(password));
    h.update(Sha256::digest(identity));
    h.update(&first[..len]);
    h.update(&second[..len]);
    h.update(&k[..len]);
    h.finalize().into()
}
