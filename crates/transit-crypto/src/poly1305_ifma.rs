//! Poly1305 for transit records with AVX-512 IFMA: eight message blocks per step in 52-bit
//! multiply-accumulate lanes, numbers held as three limbs of 44/44/42 bits (radix 2^44). Blocks go
//! to eight lanes Horner-style with r^8; the last eight are multiplied by r^8…r^1 and the lanes
//! summed, which equals the one-block-at-a-time definition. Whatever does not fill eight blocks
//! (and short messages) goes through the scalar code of `poly1305_scalar.rs`, in the same
//! representation.
//!
//! Used by `simd.rs` when the CPU has AVX-512F and AVX-512 IFMA (checked at run time there);
//! tested against the `poly1305` crate and fixed vectors (`tests/poly1305.rs`). No I/O, no state
//! between calls; the powers of r are wiped before returning.

use core::arch::x86_64::*;

use zeroize::Zeroize;

use crate::poly1305_scalar::{
    M42, M44, absorb_scalar, aead_tail, clamp_r, finish, mac_aead_scalar, mac_scalar, mul,
};

/// Messages shorter than this many bytes go through the scalar code.
const VECTOR_MIN: usize = 256;

/// The Poly1305 tag of `msg` under the one-time `key`, eight blocks at a time.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) fn mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    mac_inner(key, msg, false)
}

/// The ChaCha20-Poly1305 tag of ciphertext `ct` (RFC 8439 §2.8, no associated data) under the
/// one-time `key`: the ciphertext's whole 128-byte groups eight blocks at a time, then its rest
/// padded and the lengths block in scalar code.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) fn mac_aead(key: &[u8; 32], ct: &[u8]) -> [u8; 16] {
    mac_inner(key, ct, true)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn mac_inner(key: &[u8; 32], msg: &[u8], aead: bool) -> [u8; 16] {
    let r = clamp_r(key);
    let groups = msg.len() / 128;
    if msg.len() < VECTOR_MIN || groups == 0 {
        return if aead {
            mac_aead_scalar(key, msg)
        } else {
            mac_scalar(key, msg)
        };
    }
    // Powers r^1 … r^8.
    let mut pow = [r; 8];
    for i in 1..8 {
        pow[i] = mul(pow[i - 1], r);
    }
    let splat = |x: u64| _mm512_set1_epi64(x as i64);
    let r8 = [splat(pow[7][0]), splat(pow[7][1]), splat(pow[7][2])];
    // Lane j of the last step multiplies by r^(8 - j).
    let lane = |l: usize| {
        _mm512_setr_epi64(
            pow[7][l] as i64,
            pow[6][l] as i64,
            pow[5][l] as i64,
            pow[4][l] as i64,
            pow[3][l] as i64,
            pow[2][l] as i64,
            pow[1][l] as i64,
            pow[0][l] as i64,
        )
    };
    let rl = [lane(0), lane(1), lane(2)];

    let mut h = [_mm512_setzero_si512(); 3];
    let (vector, rest) = msg.split_at(groups * 128);
    let count = groups;
    for (i, g) in vector.chunks_exact(128).enumerate() {
        let Ok(g) = <&[u8; 128]>::try_from(g) else {
            continue; // chunks_exact: never shorter
        };
        let m = load8(g);
        let a = [
            _mm512_add_epi64(h[0], m[0]),
            _mm512_add_epi64(h[1], m[1]),
            _mm512_add_epi64(h[2], m[2]),
        ];
        h = if i + 1 < count { mul8(a, r8) } else { mul8(a, rl) };
    }
    let sum = [
        _mm512_reduce_add_epi64(h[0]) as u64,
        _mm512_reduce_add_epi64(h[1]) as u64,
        _mm512_reduce_add_epi64(h[2]) as u64,
    ];
    // Sums of eight loosely reduced limbs: fold the carries before going on in scalar.
    let mut acc = [0u64; 3];
    acc[0] = sum[0] & M44;
    acc[1] = (sum[1] & M44) + (sum[0] >> 44);
    let top = sum[2] + (sum[1] >> 44);
    acc[2] = top & M42;
    acc[0] += (top >> 42) * 5;
    let h = if aead {
        let (tail, n) = aead_tail(rest, msg.len());
        absorb_scalar(acc, r, &tail[..n])
    } else {
        absorb_scalar(acc, r, rest)
    };
    let tag = finish(h, key);
    pow.zeroize();
    tag
}

/// Eight consecutive blocks (128 bytes) as limb vectors, lane j = block j, each + 2^128.
#[inline]
#[target_feature(enable = "avx512f")]
fn load8(g: &[u8; 128]) -> [__m512i; 3] {
    // SAFETY: `g` is 128 readable bytes; this unaligned 64-byte load reads its first half.
    #[allow(unsafe_code)]
    let x = unsafe { _mm512_loadu_si512(g.as_ptr().cast()) };
    // SAFETY: `g[64..]` is the other 64 readable bytes of `g`.
    #[allow(unsafe_code)]
    let y = unsafe { _mm512_loadu_si512(g[64..].as_ptr().cast()) };
    // x = [b0.lo, b0.hi, b1.lo, …, b3.hi], y the same for blocks 4..8.
    let lo = _mm512_permutex2var_epi64(x, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), y);
    let hi = _mm512_permutex2var_epi64(x, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), y);
    let m44 = _mm512_set1_epi64(M44 as i64);
    [
        _mm512_and_si512(lo, m44),
        _mm512_and_si512(
            _mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)),
            m44,
        ),
        _mm512_or_si512(_mm512_srli_epi64::<24>(hi), _mm512_set1_epi64(1 << 40)),
    ]
}

/// `a * b mod 2^130 - 5` in each lane, loosely reduced. Inputs must stay under 2^52 per limb
/// (IFMA reads 52 bits): limbs here are at most a little over 2^45, times 20 under 2^50.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul8(a: [__m512i; 3], b: [__m512i; 3]) -> [__m512i; 3] {
    // x * 20 = x * 16 + x * 4 (no AVX-512DQ needed).
    let times20 = |x: __m512i| _mm512_add_epi64(_mm512_slli_epi64::<4>(x), _mm512_slli_epi64::<2>(x));
    let s1 = times20(b[1]);
    let s2 = times20(b[2]);
    let z = _mm512_setzero_si512();
    let lo = |x: __m512i, p: [(__m512i, __m512i); 3]| {
        let x = _mm512_madd52lo_epu64(x, p[0].0, p[0].1);
        let x = _mm512_madd52lo_epu64(x, p[1].0, p[1].1);
        _mm512_madd52lo_epu64(x, p[2].0, p[2].1)
    };
    let hi = |x: __m512i, p: [(__m512i, __m512i); 3]| {
        let x = _mm512_madd52hi_epu64(x, p[0].0, p[0].1);
        let x = _mm512_madd52hi_epu64(x, p[1].0, p[1].1);
        _mm512_madd52hi_epu64(x, p[2].0, p[2].1)
    };
    let t0 = [(a[0], b[0]), (a[1], s2), (a[2], s1)];
    let t1 = [(a[0], b[1]), (a[1], b[0]), (a[2], s2)];
    let t2 = [(a[0], b[2]), (a[1], b[1]), (a[2], b[0])];
    let (l0, h0) = (lo(z, t0), hi(z, t0));
    let (l1, h1) = (lo(z, t1), hi(z, t1));
    let (l2, h2) = (lo(z, t2), hi(z, t2));
    // Value = Σ l_k 2^(44k) + Σ h_k 2^(44k + 52); 2^52 = 2^8 · 2^44, and the top term sits at
    // 2^132 + 8, which is 20 · 2^8 = 5120 at 2^0.
    let h2x5120 = _mm512_add_epi64(_mm512_slli_epi64::<12>(h2), _mm512_slli_epi64::<10>(h2));
    let d0 = _mm512_add_epi64(l0, h2x5120);
    let d1 = _mm512_add_epi64(l1, _mm512_slli_epi64::<8>(h0));
    let d2 = _mm512_add_epi64(l2, _mm512_slli_epi64::<8>(h1));
    let m44 = _mm512_set1_epi64(M44 as i64);
    let m42 = _mm512_set1_epi64(M42 as i64);
    let d1 = _mm512_add_epi64(d1, _mm512_srli_epi64::<44>(d0));
    let d0 = _mm512_and_si512(d0, m44);
    let d2 = _mm512_add_epi64(d2, _mm512_srli_epi64::<44>(d1));
    let d1 = _mm512_and_si512(d1, m44);
    let c = _mm512_srli_epi64::<42>(d2);
    let d2 = _mm512_and_si512(d2, m42);
    let d0 = _mm512_add_epi64(d0, _mm512_add_epi64(c, _mm512_slli_epi64::<2>(c)));
    let d1 = _mm512_add_epi64(d1, _mm512_srli_epi64::<44>(d0));
    let d0 = _mm512_and_si512(d0, m44);
    [d0, d1, d2]
}
