//! Salsa20 with AVX2 intrinsics: eight blocks, one per 32-bit lane of sixteen `__m256i` words.
//! Used by `salsa.rs` for the AVX2 and AVX-512 backends after it checked the CPU has AVX2. No
//! memory access through pointers (results go out through `bytemuck`), no state, no I/O.

use core::arch::x86_64::*;

use crate::rounds::salsa20_rounds;

macro_rules! step {
    ($t:ident, $s:expr, $l:literal, $r:literal) => {{
        let v = $s;
        $t = _mm256_xor_si256(
            $t,
            _mm256_or_si256(_mm256_slli_epi32::<$l>(v), _mm256_srli_epi32::<$r>(v)),
        );
    }};
}

macro_rules! qr {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        step!($b, _mm256_add_epi32($a, $d), 7, 25);
        step!($c, _mm256_add_epi32($b, $a), 9, 23);
        step!($d, _mm256_add_epi32($c, $b), 13, 19);
        step!($a, _mm256_add_epi32($d, $c), 18, 14);
    };
}

/// The keystream of blocks `block .. block + 8` into `out`.
#[target_feature(enable = "avx2")]
pub(crate) fn next8(state: &[u32; 16], block: u64, out: &mut [u8; 512]) {
    let s = |i: usize| _mm256_set1_epi32(state[i] as i32);
    let c: [u64; 8] = core::array::from_fn(|l| block.wrapping_add(l as u64));
    let lo = |l: usize| c[l] as u32 as i32;
    let hi = |l: usize| (c[l] >> 32) as u32 as i32;
    let init = [
        s(0),
        s(1),
        s(2),
        s(3),
        s(4),
        s(5),
        s(6),
        s(7),
        _mm256_setr_epi32(lo(0), lo(1), lo(2), lo(3), lo(4), lo(5), lo(6), lo(7)),
        _mm256_setr_epi32(hi(0), hi(1), hi(2), hi(3), hi(4), hi(5), hi(6), hi(7)),
        s(10),
        s(11),
        s(12),
        s(13),
        s(14),
        s(15),
    ];
    let x = salsa20_rounds!(qr, init);
    for i in 0..16 {
        let w: [u32; 8] = bytemuck::cast(_mm256_add_epi32(x[i], init[i]));
        for (l, v) in w.iter().enumerate() {
            out[64 * l + 4 * i..64 * l + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
}
