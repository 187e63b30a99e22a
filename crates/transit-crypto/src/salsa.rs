//! The Salsa20 keystream generator of the hand-written secretbox, over a chosen
//! [`Salsa20Backend`]: HSalsa20 for the XSalsa20 subkey, one block at a time in scalar code for
//! short tails, eight blocks at a time in portable `wide` lanes or AVX2 (`salsa_avx2.rs`), sixteen
//! at a time with AVX-512F (`salsa_avx512.rs`). The block counter is 64 bits (words 8 and 9) and
//! carries like the reference.
//!
//! Owns the dispatch to the vector cores (each call site re-checks the CPU feature it needs) and
//! the wiping of the state and every keystream block it holds; it must not know about Poly1305
//! or record layout.

use zeroize::Zeroize;

use crate::engine::Salsa20Backend;
use crate::rounds::salsa20_rounds;

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
/// Blocks per call of the eight-lane cores.
pub(crate) const LANES: usize = 8;
/// Bytes of keystream per call of the eight-lane cores.
pub(crate) const WIDE8: usize = 64 * LANES;
type Lane = wide::u32x8;

#[inline(always)]
fn xor_rot<const R: u32>(x: Lane, s: Lane) -> Lane {
    x ^ ((s << R) | (s >> (32 - R)))
}

macro_rules! qr_lanes {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $b = xor_rot::<7>($b, $a + $d);
        $c = xor_rot::<9>($c, $b + $a);
        $d = xor_rot::<13>($d, $c + $b);
        $a = xor_rot::<18>($a, $d + $c);
    };
}

macro_rules! qr_u32 {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $b ^= $a.wrapping_add($d).rotate_left(7);
        $c ^= $b.wrapping_add($a).rotate_left(9);
        $d ^= $c.wrapping_add($b).rotate_left(13);
        $a ^= $d.wrapping_add($c).rotate_left(18);
    };
}

fn words<const N: usize>(b: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (i, c) in b.chunks_exact(4).take(N).enumerate() {
        w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

fn initial_state(key: &[u8; 32], input: &[u8; 16]) -> [u32; 16] {
    let mut k: [u32; 8] = words(key);
    let n: [u32; 4] = words(input);
    let s = [
        SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], n[2], n[3], SIGMA[2], k[4], k[5], k[6], k[7],
        SIGMA[3],
    ];
    k.zeroize();
    s
}

/// HSalsa20: the XSalsa20 subkey from the key and the first 16 nonce bytes (scalar, once per
/// record). The caller wipes the result.
pub(crate) fn hsalsa20(key: &[u8; 32], nonce16: &[u8; 16]) -> [u8; 32] {
    let mut init = initial_state(key, nonce16);
    let mut x = salsa20_rounds!(qr_u32, init);
    let mut out = [0u8; 32];
    for (j, i) in [0usize, 5, 10, 15, 6, 7, 8, 9].iter().enumerate() {
        out[4 * j..4 * j + 4].copy_from_slice(&x[*i].to_le_bytes());
    }
    init.zeroize();
    x.zeroize();
    out
}

#[inline(always)]
pub(crate) fn xor_into(data: &mut [u8], ks: &[u8]) {
    for (d, k) in data.iter_mut().zip(ks) {
        *d ^= *k;
    }
}

/// Salsa20 keystream generator for one (key, 8-byte nonce), from block `block` on.
pub(crate) struct Salsa {
    state: [u32; 16],
    block: u64,
    backend: Salsa20Backend,
}

impl Drop for Salsa {
    fn drop(&mut self) {
        self.state.zeroize();
    }
}

impl Salsa {
    pub(crate) fn new(backend: Salsa20Backend, key: &[u8; 32], nonce8: &[u8; 8], block: u64) -> Self {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(nonce8);
        Salsa {
            state: initial_state(key, &input),
            block,
            backend,
        }
    }

    /// Whether whole 1 KiB chunks go through the sixteen-block AVX-512 core.
    pub(crate) fn wide(&self) -> bool {
        self.backend == Salsa20Backend::Avx512
    }

    /// The next eight 64-byte keystream blocks (AVX2 for the AVX2 and AVX-512 backends).
    fn next8(&mut self, out: &mut [u8; WIDE8]) {
        #[cfg(target_arch = "x86_64")]
        if self.backend != Salsa20Backend::Portable && crate::engine::has_avx2() {
            // SAFETY: `next8` needs only AVX2, which the CPU was checked to have just above.
            #[allow(unsafe_code)]
            unsafe {
                crate::salsa_avx2::next8(&self.state, self.block, out)
            };
            self.block = self.block.wrapping_add(LANES as u64);
            return;
        }
        self.next8_portable(out);
    }

    fn next8_portable(&mut self, out: &mut [u8; WIDE8]) {
        let mut init = self.state.map(Lane::splat);
        let c: [u64; LANES] = core::array::from_fn(|l| self.block.wrapping_add(l as u64));
        init[8] = Lane::new(c.map(|c| c as u32));
        init[9] = Lane::new(c.map(|c| (c >> 32) as u32));
        let x = salsa20_rounds!(qr_lanes, init);
        for i in 0..16 {
            let v = (x[i] + init[i]).to_array();
            for l in 0..LANES {
                out[64 * l + 4 * i..64 * l + 4 * i + 4].copy_from_slice(&v[l].to_le_bytes());
            }
        }
        self.block = self.block.wrapping_add(LANES as u64);
    }

    /// The keystream of the next block alone (scalar: for the last bytes of a record).
    fn next1(&mut self) -> [u8; 64] {
        let mut init = self.state;
        init[8] = self.block as u32;
        init[9] = (self.block >> 32) as u32;
        let mut x = salsa20_rounds!(qr_u32, init);
        let mut out = [0u8; 64];
        for i in 0..16 {
            out[4 * i..4 * i + 4].copy_from_slice(&x[i].wrapping_add(init[i]).to_le_bytes());
        }
        init.zeroize();
        x.zeroize();
        self.block = self.block.wrapping_add(1);
        out
    }

    /// XOR the keystream from the current block on into `data`, advancing the block counter by
    /// the blocks started.
    pub(crate) fn xor(&mut self, mut data: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if data.len() >= crate::salsa_avx512::CHUNK && self.wide() && crate::engine::has_avx512f() {
            // SAFETY: `xor_chunks` needs only AVX-512F, which the CPU was checked to have just
            // above.
            #[allow(unsafe_code)]
            let done = unsafe { crate::salsa_avx512::xor_chunks(&self.state, self.block, data) };
            self.block = self.block.wrapping_add((done / 64) as u64);
            data = &mut data[done..];
        }
        // A short tail one block at a time; anything longer eight blocks at a time.
        if data.len() <= 128 {
            for part in data.chunks_mut(64) {
                let mut ks = self.next1();
                xor_into(part, &ks);
                ks.zeroize();
            }
            return;
        }
        let mut ks = [0u8; WIDE8];
        while !data.is_empty() {
            self.next8(&mut ks);
            let n = data.len().min(ks.len());
            let (now, later) = data.split_at_mut(n);
            xor_into(now, &ks);
            data = later;
        }
        ks.zeroize();
    }

    /// Write the next eight blocks of keystream into `out` (the start of a record on the
    /// eight-lane backends).
    pub(crate) fn keystream8(&mut self, out: &mut [u8; WIDE8]) {
        self.next8(out);
    }
}
