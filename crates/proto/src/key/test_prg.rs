//! Test-only: the seeded PRG of python-spake2's test suite (docs/protocol.md §7.1), as an `RngCore`.
//!
//! Block i = SHA256(b"prng-" ‖ decimal(i) ‖ b"-" ‖ seed), blocks concatenated into one stream.
//! python-spake2 reads 64 bytes as a big-endian integer for its secret scalar, while
//! curve25519-dalek's `Scalar::random` reads them little-endian; so every `fill_bytes` request is
//! delivered byte-reversed, which makes both libraries pick the same scalar.

use sha2::{Digest, Sha256};

pub(crate) struct Prg {
    seed: Vec<u8>,
    next_block: u64,
    buf: Vec<u8>,
}

impl Prg {
    pub(crate) fn new(seed: &[u8]) -> Prg {
        Prg {
            seed: seed.to_vec(),
            next_block: 0,
            buf: Vec::new(),
        }
    }

    /// The next `n` bytes of the stream, in stream order.
    pub(crate) fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut h = Sha256::new();
            h.update(b"prng-");
            h.update(self.next_block.to_string().as_bytes());
            h.update(b"-");
            h.update(&self.seed);
            self.buf.extend_from_slice(&h.finalize());
            self.next_block += 1;
        }
        self.buf.drain(..n).collect()
    }
}

impl rand::RngCore for Prg {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut bytes = self.read(dest.len());
        bytes.reverse();
        dest.copy_from_slice(&bytes);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Test-only determinism; never used outside #[cfg(test)].
impl rand::CryptoRng for Prg {}

#[test]
fn prg_known_answer() {
    assert_eq!(
        hex::encode(Prg::new(b"A").read(16)),
        "c1d59d78903e9d7874d9064e12d36c58"
    );
    // Reads are a stream: two halves equal one whole.
    let whole = Prg::new(b"A").read(80);
    let mut p = Prg::new(b"A");
    let mut halves = p.read(40);
    halves.extend(p.read(40));
    assert_eq!(whole, halves);
}
