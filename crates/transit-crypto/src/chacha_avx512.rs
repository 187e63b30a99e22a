//! ChaCha20 keystream XOR with AVX-512F: sixteen 64-byte blocks at once, one block per 32-bit
//! lane of sixteen `__m512i` state words, with the native 32-bit rotate (`vprold`); the words are
//! transposed back to block order by the Salsa20 core's [`xor_transposed`]. Used by `chacha.rs`
//! for whole 1 KiB chunks when the CPU has AVX-512F (checked at run time there); tails go through
//! the scalar block function. No I/O, no state.

use core::arch::x86_64::*;

use crate::rounds::chacha20_rounds;
use crate::salsa_avx512::{CHUNK, xor_transposed};

macro_rules! qr {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $a = _mm512_add_epi32($a, $b);
        $d = _mm512_rol_epi32::<16>(_mm512_xor_si512($d, $a));
        $c = _mm512_add_epi32($c, $d);
        $b = _mm512_rol_epi32::<12>(_mm512_xor_si512($b, $c));
        $a = _mm512_add_epi32($a, $b);
        $d = _mm512_rol_epi32::<8>(_mm512_xor_si512($d, $a));
        $c = _mm512_add_epi32($c, $d);
        $b = _mm512_rol_epi32::<7>(_mm512_xor_si512($b, $c));
    };
}

/// XOR the keystream of blocks `counter, counter + 1, …` (RFC 8439's 32-bit block counter) of
/// the ChaCha20 `state` (its word 12 is ignored) into every whole [`CHUNK`] of `data`; returns
/// the number of bytes done (a multiple of [`CHUNK`]). The caller advances its counter by
/// `returned / 64` blocks and handles the tail.
#[target_feature(enable = "avx512f")]
pub(crate) fn xor_chunks(state: &[u32; 16], counter: u32, data: &mut [u8]) -> usize {
    let base: [__m512i; 16] = core::array::from_fn(|i| _mm512_set1_epi32(state[i] as i32));
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let chunks = data.len() / CHUNK;
    for (n, out) in data.chunks_exact_mut(CHUNK).enumerate() {
        let first = counter.wrapping_add(16u32.wrapping_mul(n as u32));
        let mut init = base;
        init[12] = _mm512_add_epi32(_mm512_set1_epi32(first as i32), lane);
        let x = chacha20_rounds!(qr, init);
        let f: [__m512i; 16] = core::array::from_fn(|i| _mm512_add_epi32(x[i], init[i]));
        xor_transposed(&f, out);
    }
    chunks * CHUNK
}
