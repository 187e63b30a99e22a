//! The hand-written NaCl secretbox (XSalsa20-Poly1305), byte-identical to `crypto_secretbox`
//! (tested against it for every backend combination, `tests/differential.rs`), detached and in
//! place: `tag = seal(..)`, `open(.., tag)`.
//!
//! Why: RustCrypto's Salsa20 has only a scalar backend, which made transit records cost ~3 CPU s
//! per GiB. Here the Salsa20 keystream comes from the chosen [`Salsa20Backend`] (`salsa.rs`) and
//! the tag from the chosen [`Poly1305Backend`]. The Poly1305 key (the first 32 keystream bytes),
//! the subkey and every keystream block are wiped after use; the tag is compared in constant
//! time (`subtle`). Values that live only in vector registers or compiler spills inside the SIMD
//! cores are out of reach of `zeroize`.
//!
//! Owns the layout of the secretbox stream (subkey, Poly1305 key, then data) and the backend
//! dispatch for Poly1305; it must not choose backends (that is `select.rs`).

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::engine::{Poly1305Backend, Salsa20Backend};
use crate::salsa::{Salsa, WIDE8, hsalsa20, xor_into};

/// Bytes of keystream made at the start of a record on the AVX-512 backend: the Poly1305 key,
/// then data.
const FIRST: usize = 1024;

/// The start of a record's secretbox stream: the Salsa20 generator and the keystream of its first
/// blocks (sixteen with AVX-512, else eight), whose first 32 bytes are the Poly1305 key.
struct Start {
    salsa: Salsa,
    first: Zeroizing<[u8; FIRST]>,
    len: usize,
}

fn start(backend: Salsa20Backend, key: &[u8; 32], nonce: &[u8; 24]) -> Start {
    let mut n16 = [0u8; 16];
    n16.copy_from_slice(&nonce[..16]);
    let subkey = Zeroizing::new(hsalsa20(key, &n16));
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&nonce[16..]);
    let mut salsa = Salsa::new(backend, &subkey, &n8, 0);
    let mut first = Zeroizing::new([0u8; FIRST]);
    let len = if salsa.wide() {
        salsa.xor(&mut first[..]); // keystream XOR zeros: the keystream itself
        FIRST
    } else {
        let mut ks = Zeroizing::new([0u8; WIDE8]);
        salsa.keystream8(&mut ks);
        first[..WIDE8].copy_from_slice(&ks[..]);
        WIDE8
    };
    Start { salsa, first, len }
}

impl Start {
    fn poly_key(&self) -> Zeroizing<[u8; 32]> {
        let mut pk = Zeroizing::new([0u8; 32]);
        pk.copy_from_slice(&self.first[..32]);
        pk
    }

    /// XOR the whole keystream into `buf`: the rest of the first blocks after the Poly1305 key,
    /// then the generator from where it stands.
    fn apply(mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.len - 32);
        let (head, rest) = buf.split_at_mut(n);
        xor_into(head, &self.first[32..self.len]);
        self.salsa.xor(rest);
    }
}

/// The Poly1305 tag of `msg` under the one-time key `pk` with `backend`.
pub(crate) fn mac(backend: Poly1305Backend, pk: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    match backend {
        #[cfg(target_arch = "x86_64")]
        Poly1305Backend::Ifma if crate::engine::has_ifma() => {
            // SAFETY: `mac` needs only AVX-512F and IFMA, which the CPU was checked to have just
            // above.
            #[allow(unsafe_code)]
            unsafe {
                crate::poly1305_ifma::mac(pk, msg)
            }
        }
        Poly1305Backend::Scalar => crate::poly1305_scalar::mac_scalar(pk, msg),
        // RustCrypto (and IFMA on a CPU without it, which `Engine::simd` never builds).
        _ => crate::reference::poly1305(pk, msg),
    }
}

/// XOR the Salsa20 keystream of (`key`, `nonce8`) from block `block` on into `data` with
/// `backend` (no XSalsa20 subkey step): lets tests and the fuzz target reach any block counter,
/// including the carry into the high word at 2^32.
pub(crate) fn salsa20_xor(
    backend: Salsa20Backend,
    key: &[u8; 32],
    nonce8: &[u8; 8],
    block: u64,
    data: &mut [u8],
) {
    Salsa::new(backend, key, nonce8, block).xor(data);
}

/// Encrypt `buf` in place; returns the 16-byte tag.
pub(crate) fn seal(
    s: Salsa20Backend,
    p: Poly1305Backend,
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
) -> [u8; 16] {
    let st = start(s, key, nonce);
    let pk = st.poly_key();
    st.apply(buf);
    mac(p, &pk, buf)
}

/// Check `tag` in constant time and decrypt `buf` in place. On a bad tag `buf` is left as it
/// was and `false` is returned.
pub(crate) fn open(
    s: Salsa20Backend,
    p: Poly1305Backend,
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> bool {
    let st = start(s, key, nonce);
    let mut expect = mac(p, &st.poly_key(), buf);
    let ok: bool = expect.ct_eq(tag).into();
    expect.zeroize();
    if ok {
        st.apply(buf);
    }
    ok
}
