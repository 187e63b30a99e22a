//! ChaCha20-Poly1305 (RFC 8439 §2.8) with empty associated data, detached and in place: the
//! cipher of Dilation's Noise transport. ChaCha20 runs sixteen blocks at a time on AVX-512F
//! (`chacha_avx512.rs`) and the tag on AVX-512 IFMA (`poly1305_ifma.rs`), the same cores that
//! make our transit secretbox fast. Only offered where the CPU has both ([`available`](crate::chacha::available)); elsewhere callers keep their
//! own implementation. Tested against ring's (`tests/chacha20poly1305.rs`).
//!
//! Owns the AEAD's layout (one-time Poly1305 key from block 0, data from block 1, the padded
//! MAC input). The Poly1305 key and keystream blocks of the tails are wiped after use; the tag is
//! compared in constant time. No I/O, no state between calls.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::poly1305_scalar::mac_aead_scalar;
use crate::rounds::chacha20_rounds;

/// The ChaCha20 quarter-round on four `u32` locals.
macro_rules! qr_u32 {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $a = $a.wrapping_add($b);
        $d = ($d ^ $a).rotate_left(16);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_left(12);
        $a = $a.wrapping_add($b);
        $d = ($d ^ $a).rotate_left(8);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_left(7);
    };
}

/// Whether to use this ChaCha20-Poly1305: the CPU has AVX-512F and AVX-512 IFMA, and the
/// hand-written code was not turned off for the process (`WORMHOLE_TRANSIT_CRYPTO=rustcrypto`,
/// or a failed self-test, see [`crate::selected`]).
pub fn available() -> bool {
    crate::engine::has_avx512f()
        && crate::engine::has_ifma()
        && crate::selected() != crate::Engine::RUSTCRYPTO
}

/// The initial state of (`key`, `nonce`) with the block counter (word 12) at 0.
fn initial(key: &[u8; 32], nonce: &[u8; 12]) -> Zeroizing<[u32; 16]> {
    let mut s = Zeroizing::new([0u32; 16]);
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    let word = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    for (i, c) in key.chunks_exact(4).enumerate() {
        s[4 + i] = word(c);
    }
    for (i, c) in nonce.chunks_exact(4).enumerate() {
        s[13 + i] = word(c);
    }
    s
}

/// One 64-byte keystream block (scalar code).
fn block(state: &[u32; 16], counter: u32) -> Zeroizing<[u8; 64]> {
    let mut init = *state;
    init[12] = counter;
    let mut x = chacha20_rounds!(qr_u32, init);
    let mut out = Zeroizing::new([0u8; 64]);
    for (i, o) in out.chunks_exact_mut(4).enumerate() {
        o.copy_from_slice(&x[i].wrapping_add(init[i]).to_le_bytes());
    }
    x.zeroize();
    init.zeroize();
    out
}

/// XOR the keystream from block `counter` on into `data`.
fn xor(state: &[u32; 16], mut counter: u32, mut data: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if crate::engine::has_avx512f() {
        // SAFETY: `xor_chunks` needs only AVX-512F, which the CPU was checked to have just above.
        #[allow(unsafe_code)]
        let done = unsafe { crate::chacha_avx512::xor_chunks(state, counter, data) };
        counter = counter.wrapping_add((done / 64) as u32);
        data = &mut data[done..];
        // A tail of more than a few blocks goes through the vector core too, in a scratch chunk.
        if data.len() > 256 {
            let mut tmp = Zeroizing::new([0u8; crate::salsa_avx512::CHUNK]);
            let n = data.len();
            tmp[..n].copy_from_slice(data);
            // SAFETY: as above.
            #[allow(unsafe_code)]
            unsafe {
                crate::chacha_avx512::xor_chunks(state, counter, &mut tmp[..])
            };
            data.copy_from_slice(&tmp[..n]);
            return;
        }
    }
    for chunk in data.chunks_mut(64) {
        let ks = block(state, counter);
        for (d, k) in chunk.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
        counter = counter.wrapping_add(1);
    }
}

fn mac(pk: &[u8; 32], ct: &[u8]) -> [u8; 16] {
    #[cfg(target_arch = "x86_64")]
    if crate::engine::has_ifma() {
        // SAFETY: `mac_aead` needs only AVX-512F and IFMA, which the CPU was checked to have
        // just above.
        #[allow(unsafe_code)]
        return unsafe { crate::poly1305_ifma::mac_aead(pk, ct) };
    }
    mac_aead_scalar(pk, ct)
}

fn poly_key(state: &[u32; 16]) -> Zeroizing<[u8; 32]> {
    let b0 = block(state, 0);
    let mut pk = Zeroizing::new([0u8; 32]);
    pk.copy_from_slice(&b0[..32]);
    pk
}

/// Encrypt `buf` in place under (`key`, `nonce`); returns the 16-byte tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
    let state = initial(key, nonce);
    let pk = poly_key(&state);
    xor(&state, 1, buf);
    mac(&pk, buf)
}

/// Check `tag` in constant time and decrypt `buf` in place. On a bad tag `buf` is left as it
/// was and `false` is returned.
pub fn open(key: &[u8; 32], nonce: &[u8; 12], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    let state = initial(key, nonce);
    let pk = poly_key(&state);
    let mut expect = mac(&pk, buf);
    let ok: bool = expect.ct_eq(tag).into();
    expect.zeroize();
    if ok {
        xor(&state, 1, buf);
    }
    ok
}
