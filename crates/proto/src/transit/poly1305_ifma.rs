//! Poly1305 for transit records with AVX-512 IFMA: eight message blocks per step in 52-bit
//! multiply-accumulate lanes, numbers held as three limbs of 44/44/42 bits (radix 2^44). Blocks go
//! to eight lanes Horner-style with r^8; the last eight are multiplied by r^8…r^1 and the lanes
//! summed, which equals the one-block-at-a-time definition. Whatever does not fill eight blocks
//! (and short messages) goes through the scalar code below, in the same representation.
//!
//! Used by `secretbox.rs` when the CPU has AVX-512F and AVX-512 IFMA (checked at run time there);
//! tested against the `poly1305` crate. No I/O, no state between calls.

use core::arch::x86_64::*;

const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

/// A number mod 2^130 - 5 as limbs of (44, 44, 42) bits, loosely reduced.
type Limbs = [u64; 3];

/// Two little-endian 64-bit halves of a 128-bit number as (44, 44, 40)-bit limbs.
fn split(lo: u64, hi: u64) -> Limbs {
    [lo & M44, ((lo >> 44) | (hi << 20)) & M44, hi >> 24]
}

/// The first two little-endian 64-bit words of `b` (16 bytes or more).
fn halves(b: &[u8]) -> (u64, u64) {
    let le = |r: std::ops::Range<usize>| {
        u64::from_le_bytes(b.get(r).and_then(|s| s.try_into().ok()).unwrap_or_default())
    };
    (le(0..8), le(8..16))
}

fn clamp_r(key: &[u8; 32]) -> Limbs {
    let (lo, hi) = halves(key);
    split(lo & 0x0fff_fffc_0fff_ffff, hi & 0x0fff_fffc_0fff_fffc)
}

/// One 16-byte block as limbs, plus 2^128 for a full block (`hibit`).
fn block_limbs(b: &[u8; 16], hibit: u64) -> Limbs {
    let (lo, hi) = halves(b);
    let [l0, l1, l2] = split(lo, hi);
    [l0, l1, l2 | (hibit << 40)]
}

/// `a * b mod 2^130 - 5`, loosely reduced (limb 0 may exceed 44 bits by a little).
fn mul(a: Limbs, b: Limbs) -> Limbs {
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

fn add(a: Limbs, b: Limbs) -> Limbs {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Absorb `msg` block by block into `h` (the final partial block padded with 1, no 2^128).
fn absorb_scalar(mut h: Limbs, r: Limbs, msg: &[u8]) -> Limbs {
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
fn finish(h: Limbs, key: &[u8; 32]) -> [u8; 16] {
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
pub(super) fn mac_scalar(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let r = clamp_r(key);
    finish(absorb_scalar([0; 3], r, msg), key)
}

/// Messages shorter than this many bytes go through the scalar code.
const VECTOR_MIN: usize = 256;

/// The Poly1305 tag of `msg` under the one-time `key`, eight blocks at a time.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let r = clamp_r(key);
    let groups = msg.len() / 128;
    if msg.len() < VECTOR_MIN || groups == 0 {
        return mac_scalar(key, msg);
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
    finish(absorb_scalar(acc, r, rest), key)
}

/// Eight consecutive blocks (128 bytes) as limb vectors, lane j = block j, each + 2^128.
#[inline]
#[target_feature(enable = "avx512f")]
fn load8(g: &[u8; 128]) -> [__m512i; 3] {
    // SAFETY: `g` is 128 readable bytes: two unaligned 64-byte loads stay inside it.
    #[allow(unsafe_code)]
    let (x, y) = unsafe {
        (
            _mm512_loadu_si512(g.as_ptr().cast()),
            _mm512_loadu_si512(g[64..].as_ptr().cast()),
        )
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use poly1305::Poly1305;
    use poly1305::universal_hash::KeyInit;

    fn reference(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let t = Poly1305::new(key.into()).compute_unpadded(msg);
        let mut o = [0u8; 16];
        o.copy_from_slice(&t);
        o
    }

    fn have_ifma() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
    }

    fn check(key: &[u8; 32], msg: &[u8]) {
        let want = reference(key, msg);
        assert_eq!(mac_scalar(key, msg), want, "scalar, {} bytes", msg.len());
        if have_ifma() {
            // SAFETY: the CPU has the features `mac` needs (checked just above).
            #[allow(unsafe_code)]
            let got = unsafe { mac(key, msg) };
            assert_eq!(got, want, "ifma, {} bytes", msg.len());
        }
    }

    /// RFC 8439 §2.5.2.
    #[test]
    fn rfc_vector() {
        let key: [u8; 32] = hex::decode("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
            .unwrap()
            .try_into()
            .unwrap();
        let tag = mac_scalar(&key, b"Cryptographic Forum Research Group");
        assert_eq!(hex::encode(tag), "a8061dc1305136c6c22b8baf0c0127a9");
    }

    #[test]
    fn matches_the_poly1305_crate() {
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut lens: Vec<usize> = (0..700).collect();
        lens.extend([1023, 1024, 1025, 4096, 16384, 16385, 16400, 70001]);
        for len in lens {
            let key: [u8; 32] = core::array::from_fn(|_| next() as u8);
            let msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check(&key, &msg);
        }
    }

    /// Every carry at its largest: r and s all ones (after clamping), message all 0xff.
    #[test]
    fn extreme_values() {
        for len in [0usize, 15, 16, 17, 127, 128, 255, 256, 257, 1024, 16384, 16399] {
            let msg = vec![0xffu8; len];
            check(&[0xff; 32], &msg);
            check(&[0; 32], &msg);
            let mut key = [0xffu8; 32];
            key[16..].fill(0);
            check(&key, &msg);
            let zeros = vec![0u8; len];
            check(&[0xff; 32], &zeros);
        }
    }
}
