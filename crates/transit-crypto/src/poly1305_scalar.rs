//! Poly1305 one block at a time in radix 2^44: numbers mod 2^130 - 5 as three limbs of
//! 44/44/42 bits, the representation the IFMA backend (`poly1305_ifma.rs`) works in; it uses these
//! functions for its powers of r, its tail and short messages, and the final reduction. Also a
//! backend of its own (`Poly1305Backend::Scalar`). Safe code only; no state, no I/O.

use zeroize::Zeroize;

pub(crate) const M44: u64 = (1 << 44) - 1;
pub(crate) const M42: u64 = (1 << 42) - 1;

/// A number mod 2^130 - 5 as limbs of (44, 44, 42) bits, loosely reduced.
pub(crate) type Limbs = [u64; 3];

/// Two little-endian 64-bit halves of a 128-bit number as (44, 44, 40)-bit limbs.
pub(crate) fn split(lo: u64, hi: u64) -> Limbs {
    [lo & M44, ((lo >> 44) | (hi << 20)) & M44, hi >> 24]
}

/// The first two little-endian 64-bit words of `b` (16 bytes or more).
pub(crate) fn halves(b: &[u8]) -> (u64, u64) {
    let le = |r: std::ops::Range<usize>| {
        u64::from_le_bytes(b.get(r).and_then(|s| s.try_into().ok()).unwrap_or_default())
    };
    (le(0..8), le(8..16))
}

pub(crate) fn clamp_r(key: &[u8; 32]) -> Limbs {
    let (lo, hi) = halves(key);
    split(lo & 0x0fff_fffc_0fff_ffff, hi & 0x0fff_fffc_0fff_fffc)
}

/// One 16-byte block as limbs, plus 2^128 for a full block (`hibit`).
pub(crate) fn block_limbs(b: &[u8; 16], hibit: u64) -> Limbs {
    let (lo, hi) = halves(b);
    let [l0, l1, l2] = split(lo, hi);
    [l0, l1, l2 | (hibit << 40)]
}

/// `a * b mod 2^130 - 5`, loosely reduced (limb 0 may exceed 44 bits by a little).
pub(crate) fn mul(a: Limbs, b: Limbs) -> Limbs {
    let (s1, s2) = (b[1] * 20, b[2] * 20);
    let m = |x: u64, y: u64| x as u128 * y as u128;
    let d0 = m(a[0], b[0]) + m(a[1], s2) + m(a[2], s1);
    let mut d1 = m(a[0], b[1]) + m(a[1], b[0]) + m(a[2], s2);
    let mut d2 = m(a[0], b[2]) + m(a[1], b[1]) + m(a[2], b[0]);
    d1 += d0 >> 44;
    let h0 = d0 as u64 & M44;
    d2 += d1 >> 44;
    let h1 = d1 as u64 & M44;
    let c = (d2 >> 42) as u64;
    let h2 = d2 as u64 & M42;
    let h0 = h0 + c * 5;
    [h0 & M44, h1 + (h0 >> 44), h2]
}

pub(crate) fn add(a: Limbs, b: Limbs) -> Limbs {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Absorb `msg` block by block into `h` (the final partial block padded with 1, no 2^128).
pub(crate) fn absorb_scalar(mut h: Limbs, r: Limbs, msg: &[u8]) -> Limbs {
    let mut blocks = msg.chunks_exact(16);
    for b in &mut blocks {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        h = mul(add(h, block_limbs(&a, 1)), r);
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let mut a = [0u8; 16];
        a[..rest.len()].copy_from_slice(rest);
        a[rest.len()] = 1;
        h = mul(add(h, block_limbs(&a, 0)), r);
    }
    h
}

/// Fully reduce `h` mod 2^130 - 5 and add `s`: the tag.
pub(crate) fn finish(h: Limbs, key: &[u8; 32]) -> [u8; 16] {
    let [mut h0, mut h1, mut h2] = h;
    for _ in 0..2 {
        h1 += h0 >> 44;
        h0 &= M44;
        h2 += h1 >> 44;
        h1 &= M44;
        h0 += (h2 >> 42) * 5;
        h2 &= M42;
    }
    h1 += h0 >> 44;
    h0 &= M44;
    h2 += h1 >> 44;
    h1 &= M44;
    // h < 2^130 + small; g = h + 5 - 2^130 is the answer when it is not negative.
    let g0 = h0 + 5;
    let g1 = h1 + (g0 >> 44);
    let g2 = h2 + (g1 >> 44);
    let take_g = 0u64.wrapping_sub(g2 >> 42); // all ones when h + 5 >= 2^130
    let sel = |g: u64, h: u64| (g & take_g) | (h & !take_g);
    let (h0, h1, h2) = (sel(g0 & M44, h0), sel(g1 & M44, h1), sel(g2 & M42, h2));
    let h = h0 as u128 | (h1 as u128) << 44 | (h2 as u128) << 88;
    let s = u128::from_le_bytes(key[16..32].try_into().unwrap_or_default());
    h.wrapping_add(s).to_le_bytes()
}

/// The Poly1305 tag of `msg` under the one-time `key`, scalar code only.
pub(crate) fn mac_scalar(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let mut r = clamp_r(key);
    let tag = finish(absorb_scalar([0; 3], r, msg), key);
    r.zeroize();
    tag
}

/// The message tail of the ChaCha20-Poly1305 AEAD (RFC 8439 §2.8, empty associated data) after
/// the whole 16-byte blocks of the ciphertext: its last `rest` bytes (fewer than 128) zero-padded
/// to a block, then the lengths block `le64(0) ‖ le64(ct_len)`. Only whole blocks: it is absorbed
/// with [`absorb_scalar`], whose partial-block rule then never applies.
pub(crate) fn aead_tail(rest: &[u8], ct_len: usize) -> ([u8; 144], usize) {
    let mut out = [0u8; 144];
    let n = rest.len().min(128);
    out[..n].copy_from_slice(&rest[..n]);
    let padded = n.div_ceil(16) * 16;
    out[padded + 8..padded + 16].copy_from_slice(&(ct_len as u64).to_le_bytes());
    (out, padded + 16)
}

/// The ChaCha20-Poly1305 tag of ciphertext `ct` (no associated data) under the one-time `key`,
/// scalar code only.
pub(crate) fn mac_aead_scalar(key: &[u8; 32], ct: &[u8]) -> [u8; 16] {
    let mut r = clamp_r(key);
    let whole = ct.len() / 16 * 16;
    let h = absorb_scalar([0; 3], r, &ct[..whole]);
    let (tail, n) = aead_tail(&ct[whole..], ct.len());
    let tag = finish(absorb_scalar(h, r, &tail[..n]), key);
    r.zeroize();
    tag
}
