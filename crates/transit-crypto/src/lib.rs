//! `wormhole-transit-crypto`: the NaCl secretbox (XSalsa20-Poly1305) that seals and opens
//! transit records, detached and in place; and, on the same vector cores, the ChaCha20-Poly1305
//! of Dilation's Noise transport ([`chacha`], AVX-512 only).
//!
//! Two implementations, one interface ([`Engine`]):
//! - the audited RustCrypto path (`crypto_secretbox`), always built;
//! - a hand-written one (feature `simd`, on by default): Salsa20 in portable lanes, AVX2 or
//!   AVX-512F, Poly1305 in radix 2^44 scalar code or AVX-512 IFMA, about 10× faster per core
//!   than RustCrypto's scalar Salsa20.
//!
//! [`seal`] and [`open`] use the engine picked once per process by [`selected`]:
//! `WORMHOLE_TRANSIT_CRYPTO=auto|rustcrypto` (default `auto`), with a known-answer self-test and
//! a fall-back to RustCrypto (see `select.rs`). Tests pick engines explicitly: [`Engine::all`]
//! lists every backend combination and whether this CPU runs it.
//!
//! This is the only crate of the workspace allowed `unsafe`: calls of `#[target_feature]`
//! functions right after the feature check, and unaligned vector loads and stores on
//! bounds-checked slices, each with a SAFETY comment. No I/O, no global state other than the
//! chosen engine.

mod engine;
mod reference;
mod select;

/// ChaCha20-Poly1305 on the same vector cores (Dilation's Noise transport).
#[cfg(feature = "simd")]
pub mod chacha;
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
mod chacha_avx512;
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
mod poly1305_ifma;
#[cfg(feature = "simd")]
mod poly1305_scalar;
#[cfg(feature = "simd")]
mod rounds;
#[cfg(feature = "simd")]
mod salsa;
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
mod salsa_avx2;
#[cfg(all(feature = "simd", target_arch = "x86_64"))]
mod salsa_avx512;
#[cfg(feature = "simd")]
mod simd;

pub use engine::{Engine, Poly1305Backend, Salsa20Backend, Unsupported};
pub use select::{Choice, ENV_VAR, Request, UnknownValue, choose, selected, self_test};

/// Encrypt `buf` in place with the process's engine; returns the 16-byte tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8]) -> [u8; 16] {
    selected().seal(key, nonce, buf)
}

/// Check `tag` in constant time and decrypt `buf` in place with the process's engine. On a bad
/// tag `buf` is left as it was and `false` is returned.
pub fn open(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    selected().open(key, nonce, buf, tag)
}

#[cfg(feature = "simd")]
impl Salsa20Backend {
    /// XOR the plain Salsa20 keystream of (`key`, `nonce8`) from block `block` on into `data`
    /// (no XSalsa20 step), for tests and fuzzing of any block counter.
    pub fn xor_keystream(
        self,
        key: &[u8; 32],
        nonce8: &[u8; 8],
        block: u64,
        data: &mut [u8],
    ) -> Result<(), Unsupported> {
        self.check()?;
        simd::salsa20_xor(self, key, nonce8, block, data);
        Ok(())
    }
}

#[cfg(feature = "simd")]
impl Poly1305Backend {
    /// The Poly1305 tag of `msg` under the one-time `key` (for tests and fuzzing).
    pub fn tag(self, key: &[u8; 32], msg: &[u8]) -> Result<[u8; 16], Unsupported> {
        self.check()?;
        Ok(simd::mac(self, key, msg))
    }
}

#[cfg(not(feature = "simd"))]
impl Salsa20Backend {
    /// Built without the `simd` feature: no hand-written Salsa20.
    pub fn xor_keystream(self, _: &[u8; 32], _: &[u8; 8], _: u64, _: &mut [u8]) -> Result<(), Unsupported> {
        self.check()
    }
}

#[cfg(not(feature = "simd"))]
impl Poly1305Backend {
    /// The Poly1305 tag of `msg` under the one-time `key` (only RustCrypto in this build).
    pub fn tag(self, key: &[u8; 32], msg: &[u8]) -> Result<[u8; 16], Unsupported> {
        self.check()?;
        Ok(reference::poly1305(key, msg))
    }
}
