//! A fast NaCl secretbox (XSalsa20-Poly1305) for transit records, byte-identical to
//! `crypto_secretbox` (tested against it on every path).
//!
//! Why not `crypto_secretbox`: its Salsa20 has only a scalar backend, which made transit records
//! cost ~3 CPU s per GiB. Here, chosen at run time from what the CPU has:
//! - Salsa20: sixteen blocks at once with AVX-512F (`salsa_avx512.rs`, XORed straight into the
//!   data), else eight with AVX2, else eight in portable `wide` lanes; short tails one block at a
//!   time;
//! - Poly1305: eight blocks at once with AVX-512 IFMA (`poly1305_ifma.rs`), else the `poly1305`
//!   crate (AVX2 when present).
//!
//! `unsafe` is limited to calling those feature-gated functions after the feature check and, inside
//! them, unaligned vector loads and stores on bounds-checked slices.
//! Detached, in place: `tag = seal(key, nonce, buf)`, `open(key, nonce, buf, tag)`. No I/O.

use poly1305::Poly1305;

use super::salsa_rounds::salsa20_rounds;
use poly1305::universal_hash::{KeyInit, UniversalHash};

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
const LANES: usize = 8;
type Lane = wide::u32x8;

#[inline(always)]
fn add(a: Lane, b: Lane) -> Lane {
    a + b
}

#[inline(always)]
fn xor_rot<const R: u32>(x: Lane, s: Lane) -> Lane {
    x ^ ((s << R) | (s >> (32 - R)))
}

macro_rules! qr {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $b = xor_rot::<7>($b, add($a, $d));
        $c = xor_rot::<9>($c, add($b, $a));
        $d = xor_rot::<13>($d, add($c, $b));
        $a = xor_rot::<18>($a, add($d, $c));
    };
}

/// Twenty Salsa20 rounds over eight blocks at once (word-major lanes).
#[inline(always)]
fn rounds(x: &mut [Lane; 16]) {
    *x = salsa20_rounds!(qr, *x);
}

fn words<const N: usize>(b: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (i, c) in b.chunks_exact(4).take(N).enumerate() {
        w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

fn initial_state(key: &[u8; 32], input: &[u8; 16]) -> [u32; 16] {
    let k: [u32; 8] = words(key);
    let n: [u32; 4] = words(input);
    [
        SIGMA[0], k[0], k[1], k[2], k[3], SIGMA[1], n[0], n[1], n[2], n[3], SIGMA[2], k[4], k[5], k[6], k[7],
        SIGMA[3],
    ]
}

macro_rules! qr_u32 {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $b ^= $a.wrapping_add($d).rotate_left(7);
        $c ^= $b.wrapping_add($a).rotate_left(9);
        $d ^= $c.wrapping_add($b).rotate_left(13);
        $a ^= $d.wrapping_add($c).rotate_left(18);
    };
}

/// HSalsa20: derive the XSalsa20 subkey from the key and the first 16 nonce bytes (one block,
/// scalar: once per record).
fn hsalsa20(key: &[u8; 32], nonce16: &[u8; 16]) -> [u8; 32] {
    let x = salsa20_rounds!(qr_u32, initial_state(key, nonce16));
    let mut out = [0u8; 32];
    for (j, i) in [0usize, 5, 10, 15, 6, 7, 8, 9].iter().enumerate() {
        out[4 * j..4 * j + 4].copy_from_slice(&x[*i].to_le_bytes());
    }
    out
}

/// Salsa20 keystream generator for one (subkey, 8-byte nonce).
struct Salsa {
    state: [u32; 16],
    block: u64,
}

impl Salsa {
    fn new(subkey: &[u8; 32], nonce8: &[u8]) -> Self {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(nonce8);
        Salsa {
            state: initial_state(subkey, &input),
            block: 0,
        }
    }

    /// The next eight 64-byte keystream blocks.
    fn next4(&mut self, out: &mut [u8; 64 * LANES]) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && !force_portable() {
            // SAFETY: `next8_avx2` only needs AVX2, which the CPU was just checked to have.
            #[allow(unsafe_code)]
            unsafe {
                avx2::next8(&self.state, self.block, out)
            };
            self.block = self.block.wrapping_add(LANES as u64);
            return;
        }
        self.next_portable(out);
    }

    fn next_portable(&mut self, out: &mut [u8; 64 * LANES]) {
        let mut x = self.state.map(Lane::splat);
        let c: [u64; LANES] = core::array::from_fn(|l| self.block.wrapping_add(l as u64));
        x[8] = Lane::new(c.map(|c| c as u32));
        x[9] = Lane::new(c.map(|c| (c >> 32) as u32));
        let init = x;
        rounds(&mut x);
        for i in 0..16 {
            let v = (x[i] + init[i]).to_array();
            for l in 0..LANES {
                out[64 * l + 4 * i..64 * l + 4 * i + 4].copy_from_slice(&v[l].to_le_bytes());
            }
        }
        self.block = self.block.wrapping_add(LANES as u64);
    }
}

#[cfg(test)]
thread_local! {
    static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests force the portable path to check it against the reference too.
fn force_portable() -> bool {
    #[cfg(test)]
    return PORTABLE.with(|p| p.get());
    #[cfg(not(test))]
    false
}

/// Salsa20 with AVX2 intrinsics: eight blocks, one per 32-bit lane of 16 `__m256i` words.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use crate::transit::salsa_rounds::salsa20_rounds;

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

    #[target_feature(enable = "avx2")]
    pub(super) fn next8(state: &[u32; 16], block: u64, out: &mut [u8; 512]) {
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
}

#[inline(always)]
fn xor_into(data: &mut [u8], ks: &[u8]) {
    for (d, k) in data.iter_mut().zip(ks) {
        *d ^= *k;
    }
}

/// Bytes of keystream made at the start of a record: the Poly1305 key, then data.
const FIRST: usize = 1024;

impl Salsa {
    /// Whether the sixteen-block AVX-512 core may be used.
    fn wide(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::is_x86_feature_detected!("avx512f") && !force_portable();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The keystream of the next block alone (scalar: for the last bytes of a record).
    fn next1(&mut self) -> [u8; 64] {
        let mut init = self.state;
        init[8] = self.block as u32;
        init[9] = (self.block >> 32) as u32;
        let x = salsa20_rounds!(qr_u32, init);
        let mut out = [0u8; 64];
        for i in 0..16 {
            out[4 * i..4 * i + 4].copy_from_slice(&x[i].wrapping_add(init[i]).to_le_bytes());
        }
        self.block = self.block.wrapping_add(1);
        out
    }

    /// XOR the keystream from the current block on into `data`, advancing the block counter by
    /// the blocks started.
    fn xor(&mut self, mut data: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if data.len() >= super::salsa_avx512::CHUNK && self.wide() {
            // SAFETY: `xor_chunks` only needs AVX-512F, which `wide` checked the CPU has.
            #[allow(unsafe_code)]
            let done = unsafe { super::salsa_avx512::xor_chunks(&self.state, self.block, data) };
            self.block = self.block.wrapping_add((done / 64) as u64);
            data = &mut data[done..];
        }
        // A short tail one block at a time; anything longer eight blocks at a time.
        if data.len() <= 128 {
            for part in data.chunks_mut(64) {
                let ks = self.next1();
                xor_into(part, &ks);
            }
            return;
        }
        let mut ks = [0u8; 64 * LANES];
        while !data.is_empty() {
            self.next4(&mut ks);
            let n = data.len().min(ks.len());
            let (now, later) = data.split_at_mut(n);
            xor_into(now, &ks);
            data = later;
        }
    }
}

/// The start of a record's secretbox stream: the Salsa20 generator and the keystream of its first
/// blocks (sixteen with AVX-512, else eight), whose first 32 bytes are the Poly1305 key.
struct Start {
    salsa: Salsa,
    first: [u8; FIRST],
    len: usize,
}

fn start(key: &[u8; 32], nonce: &[u8; 24]) -> Start {
    let mut n16 = [0u8; 16];
    n16.copy_from_slice(&nonce[..16]);
    let subkey = hsalsa20(key, &n16);
    let mut salsa = Salsa::new(&subkey, &nonce[16..]);
    let mut first = [0u8; FIRST];
    let len = if salsa.wide() {
        salsa.xor(&mut first); // keystream XOR zeros: the keystream itself
        FIRST
    } else {
        let mut ks = [0u8; 64 * LANES];
        salsa.next4(&mut ks);
        first[..ks.len()].copy_from_slice(&ks);
        ks.len()
    };
    Start { salsa, first, len }
}

impl Start {
    fn poly_key(&self) -> [u8; 32] {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&self.first[..32]);
        pk
    }

    /// XOR the whole keystream into `buf`: the rest of the first blocks after the Poly1305 key,
    /// then the generator from where it stands.
    fn apply(mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.len - 32);
        let (head, rest) = buf.split_at_mut(n);
        xor_into(head, &self.first[32..]);
        self.salsa.xor(rest);
    }
}

fn mac(poly_key: &[u8; 32], ct: &[u8]) -> [u8; 16] {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512ifma")
        && !force_portable()
    {
        // SAFETY: `mac` only needs AVX-512F and IFMA, which the CPU was just checked to have.
        #[allow(unsafe_code)]
        return unsafe { super::poly1305_ifma::mac(poly_key, ct) };
    }
    // Whole blocks through the parallel (AVX2 when available) path, the tail NaCl-style.
    let mut poly = Poly1305::new(poly_key.into());
    let full = ct.len() / 16 * 16;
    poly.update_padded(&ct[..full]);
    let tag = poly.compute_unpadded(&ct[full..]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&tag);
    out
}

/// Encrypt `buf` in place; returns the 16-byte tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
    let st = start(key, nonce);
    let pk = st.poly_key();
    st.apply(buf);
    mac(&pk, buf)
}

/// Check `tag` and decrypt `buf` in place. On a bad tag `buf` is left as it was and `false` is
/// returned.
pub fn open(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    let st = start(key, nonce);
    let expect = mac(&st.poly_key(), buf);
    let diff = expect.iter().zip(tag).fold(0u8, |a, (x, y)| a | (x ^ y));
    if diff != 0 {
        return false;
    }
    st.apply(buf);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_secretbox::aead::AeadInPlace;
    use crypto_secretbox::{Nonce, XSalsa20Poly1305};

    #[test]
    fn portable_path_matches_too() {
        PORTABLE.with(|p| p.set(true));
        matches_crypto_secretbox();
        nacl_vector();
        PORTABLE.with(|p| p.set(false));
    }

    #[test]
    fn matches_crypto_secretbox() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let nonce: [u8; 24] = core::array::from_fn(|i| (i * 13 + 1) as u8);
        let reference = XSalsa20Poly1305::new(&key.into());
        for len in [
            0usize, 1, 31, 32, 33, 63, 64, 65, 223, 224, 225, 255, 256, 257, 480, 481, 511, 512, 513, 1000,
            1503, 1504, 1505, 2047, 2048, 2049, 2528, 16384, 70000,
        ] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let mut ours = pt.clone();
            let tag = seal(&key, &nonce, &mut ours);
            let mut theirs = pt.clone();
            let rtag = reference
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "len {len}");
            assert_eq!(&tag[..], &rtag[..], "len {len}");
            assert!(open(&key, &nonce, &mut ours, &tag));
            assert_eq!(ours, pt);
            let mut bad = tag;
            bad[0] ^= 1;
            assert!(!open(&key, &nonce, &mut theirs, &bad));
        }
    }

    /// The wide path's block counter carries into the high word exactly like the portable one.
    #[test]
    fn counter_carry_matches_portable() {
        let subkey: [u8; 32] = core::array::from_fn(|i| (i * 5 + 1) as u8);
        for (start, len) in [0u64, 5, 0xFFFF_FFF8, 0xFFFF_FFFF, u64::MAX - 3]
            .into_iter()
            .flat_map(|s| [(s, 3000), (s, 1024 + 100), (s, 2048 + 128), (s, 64)])
        {
            let run = |portable: bool| {
                PORTABLE.with(|p| p.set(portable));
                let mut s = Salsa::new(&subkey, &[7u8; 8]);
                s.block = start;
                let mut buf = vec![0u8; len];
                s.xor(&mut buf);
                PORTABLE.with(|p| p.set(false));
                buf
            };
            assert_eq!(run(false), run(true), "start {start:#x}, {len} bytes");
        }
    }

    /// docs/protocol.md §7.1 secretbox vector.
    #[test]
    fn nacl_vector() {
        let key: [u8; 32] = hex::decode("ddc543ef8e4629a603d39dd0307a51bb1e7adb9cb259f6b085c91d0842a18679")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 24] = hex::decode("2d5e43eb465aa42e750f991e425bee485f06abad7e04af80")
            .unwrap()
            .try_into()
            .unwrap();
        let mut buf = hex::decode("edc089a518219ec1cee184e89d2d37af").unwrap();
        let tag = seal(&key, &nonce, &mut buf);
        assert_eq!(
            format!("{}{}", hex::encode(tag), hex::encode(&buf)),
            "fe318e39d0e4ce932d2b54b300c56d2cda55ee5f0488d63eb1d5f76f7919a49a"
        );
    }
}
