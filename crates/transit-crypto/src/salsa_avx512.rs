//! Salsa20 keystream XOR with AVX-512F: sixteen 64-byte blocks at once, one block per 32-bit lane
//! of sixteen `__m512i` state words, with the native 32-bit rotate (`vprold`). The keystream is
//! transposed back to block order in registers and XORed straight into the caller's buffer, so no
//! keystream is ever stored. Used by `salsa.rs` for whole 1 KiB chunks when the CPU has
//! AVX-512F (checked at run time there); tails go through the narrower paths. No I/O, no state.

use core::arch::x86_64::*;

use crate::rounds::salsa20_rounds;

/// Bytes of keystream per call of the core: sixteen blocks.
pub(crate) const CHUNK: usize = 16 * 64;

macro_rules! step {
    ($t:ident, $s:expr, $r:literal) => {{
        $t = _mm512_xor_si512($t, _mm512_rol_epi32::<$r>($s));
    }};
}

macro_rules! qr {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        step!($b, _mm512_add_epi32($a, $d), 7);
        step!($c, _mm512_add_epi32($b, $a), 9);
        step!($d, _mm512_add_epi32($c, $b), 13);
        step!($a, _mm512_add_epi32($d, $c), 18);
    };
}

/// Interleave four word-major vectors (words `w..w+4` of sixteen blocks) so that 128-bit lane `k`
/// of output `j` holds those four words of block `4k + j`.
#[inline]
#[target_feature(enable = "avx512f")]
fn interleave4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> [__m512i; 4] {
    let ab_lo = _mm512_unpacklo_epi32(a, b);
    let ab_hi = _mm512_unpackhi_epi32(a, b);
    let cd_lo = _mm512_unpacklo_epi32(c, d);
    let cd_hi = _mm512_unpackhi_epi32(c, d);
    [
        _mm512_unpacklo_epi64(ab_lo, cd_lo),
        _mm512_unpackhi_epi64(ab_lo, cd_lo),
        _mm512_unpacklo_epi64(ab_hi, cd_hi),
        _mm512_unpackhi_epi64(ab_hi, cd_hi),
    ]
}

/// XOR the keystream of blocks `block, block + 1, …` into every whole [`CHUNK`] of `data`;
/// returns the number of bytes done (a multiple of [`CHUNK`]). The caller advances its counter
/// by `returned / 64` blocks and handles the tail.
#[target_feature(enable = "avx512f")]
pub(crate) fn xor_chunks(state: &[u32; 16], block: u64, data: &mut [u8]) -> usize {
    let s = |i: usize| _mm512_set1_epi32(state[i] as i32);
    let base = [
        s(0),
        s(1),
        s(2),
        s(3),
        s(4),
        s(5),
        s(6),
        s(7),
        s(8),
        s(9),
        s(10),
        s(11),
        s(12),
        s(13),
        s(14),
        s(15),
    ];
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let chunks = data.len() / CHUNK;
    for (n, out) in data.chunks_exact_mut(CHUNK).enumerate() {
        // Block counters block + 16n + l as (low, high) words; a carry out of the low word
        // (lanes that wrapped) adds one to the high word.
        let first = block.wrapping_add(16 * n as u64);
        let lo0 = _mm512_set1_epi32(first as u32 as i32);
        let lo = _mm512_add_epi32(lo0, lane);
        let wrapped = _mm512_cmplt_epu32_mask(lo, lo0);
        let hi0 = _mm512_set1_epi32((first >> 32) as u32 as i32);
        let hi = _mm512_mask_add_epi32(hi0, wrapped, hi0, _mm512_set1_epi32(1));
        let mut init = base;
        init[8] = lo;
        init[9] = hi;
        let x = salsa20_rounds!(qr, init);
        let f: [__m512i; 16] = core::array::from_fn(|i| _mm512_add_epi32(x[i], init[i]));
        xor_transposed(&f, out);
    }
    chunks * CHUNK
}

/// XOR sixteen keystream blocks into `out` (one [`CHUNK`]): `f[w]` holds word `w` of block `l`
/// in lane `l`, as the word-major cores of Salsa20 and ChaCha20 leave them. The words are
/// transposed to block order in registers, so no keystream is stored.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn xor_transposed(f: &[__m512i; 16], out: &mut [u8]) {
    if out.len() < CHUNK {
        return;
    }
    // u[g][j]: 128-bit lane k holds words 4g..4g+4 of block 4k + j.
    let u = [
        interleave4(f[0], f[1], f[2], f[3]),
        interleave4(f[4], f[5], f[6], f[7]),
        interleave4(f[8], f[9], f[10], f[11]),
        interleave4(f[12], f[13], f[14], f[15]),
    ];
    #[allow(clippy::needless_range_loop)] // `j` also names the output blocks
    for j in 0..4 {
        // Lanes (0, 2 | 0, 2) and (1, 3 | 1, 3) of word groups 0/1 and 2/3 …
        let v02 = _mm512_shuffle_i32x4::<0x88>(u[0][j], u[1][j]);
        let v13 = _mm512_shuffle_i32x4::<0xDD>(u[0][j], u[1][j]);
        let w02 = _mm512_shuffle_i32x4::<0x88>(u[2][j], u[3][j]);
        let w13 = _mm512_shuffle_i32x4::<0xDD>(u[2][j], u[3][j]);
        // … then whole blocks 4k + j, for k = 0, 2, 1, 3.
        let blocks = [
            (j, _mm512_shuffle_i32x4::<0x88>(v02, w02)),
            (8 + j, _mm512_shuffle_i32x4::<0xDD>(v02, w02)),
            (4 + j, _mm512_shuffle_i32x4::<0x88>(v13, w13)),
            (12 + j, _mm512_shuffle_i32x4::<0xDD>(v13, w13)),
        ];
        for (b, ks) in blocks {
            let p = out[64 * b..64 * b + 64].as_mut_ptr();
            // SAFETY: `p` points at 64 bytes inside `out` (the slice above is bounds
            // checked); an unaligned load may read any readable address.
            #[allow(unsafe_code)]
            let d = unsafe { _mm512_loadu_si512(p.cast()) };
            let x = _mm512_xor_si512(d, ks);
            // SAFETY: the same 64 bytes, writable through `out`'s unique borrow.
            #[allow(unsafe_code)]
            unsafe {
                _mm512_storeu_si512(p.cast(), x)
            };
        }
    }
}
