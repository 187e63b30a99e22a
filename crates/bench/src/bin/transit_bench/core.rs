//! The `core` phase of `transit-bench`: what the unavoidable parts of a transfer cost on this
//! machine, each measured alone on one thread as CPU seconds per GiB:
//!
//! - decrypt + SHA-256 of 16 KiB records (the receiver's crypto: the "one-core limit"),
//!   encrypt + SHA-256 (the sender's), and the three primitives on their own;
//! - moving bytes through a loopback TCP connection (both ends, kernel copies included);
//! - writing a file and reading it back (page cache of the CLI phases' temp directory).
//!
//! From these it prints the ceilings they imply on a two-core machine: a transfer where sender
//! and receiver share the two cores can go no faster than 2 cores / (the sum of its parts). The
//! transfer phases are then compared against the one-core limit and these ceilings.
//! Measures and prints only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use sha2::Digest;
use wormhole_bench::sys;
use wormhole_proto::transit::{RECORD_HEADER, RECORD_OVERHEAD, RecordOpener, RecordSealer, SEND_CHUNK};

use super::Gen;

const WORK: usize = 16 << 20;
const GIB: f64 = (1u64 << 30) as f64;

/// CPU seconds per GiB of each part.
pub struct Costs {
    pub decrypt_hash: f64,
    /// Decrypt + SHA-256 with the field's standard crates (`crypto_secretbox` + `sha2`).
    pub decrypt_hash_std: f64,
    pub encrypt_hash: f64,
    pub decrypt: f64,
    pub encrypt: f64,
    pub sha256: f64,
    pub tcp: f64,
    pub file_write: f64,
    pub file_read: f64,
}

impl Costs {
    /// The one-core limit: bytes per CPU second of decrypt + hash.
    pub fn limit(&self) -> f64 {
        GIB / self.decrypt_hash
    }

    /// Bytes per second two cores could move if they did nothing but these parts.
    fn ceiling(&self, parts: f64) -> f64 {
        2.0 * GIB / parts
    }

    pub fn library_ceiling(&self) -> f64 {
        self.ceiling(self.encrypt_hash + self.decrypt_hash + self.tcp)
    }

    pub fn cli_ceiling(&self) -> f64 {
        self.ceiling(self.encrypt_hash + self.decrypt_hash + self.tcp + self.file_write + self.file_read)
    }
}

/// CPU seconds per GiB of `f`, run over `bytes` per call: the best of three rounds of `passes`
/// calls (the machine's capability, not its noise).
fn per_gib(bytes: usize, passes: u64, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let c0 = sys::own_cpu_time();
            for _ in 0..passes {
                f();
            }
            let cpu = (sys::own_cpu_time() - c0).as_secs_f64();
            cpu / (bytes as f64 * passes as f64) * GIB
        })
        .fold(f64::INFINITY, f64::min)
}

fn records() -> (Vec<u8>, usize, Vec<u8>) {
    let key = [9u8; 32];
    let mut sealer = RecordSealer::new(&key);
    let mut sealed = Vec::new();
    let mut plain = vec![0u8; WORK];
    Gen::new().read_exact(&mut plain).unwrap_or_default();
    for chunk in plain.chunks(SEND_CHUNK) {
        sealer.seal_into(chunk, &mut sealed).unwrap_or_default();
    }
    let rec = sealed.len() / (WORK / SEND_CHUNK);
    (sealed, rec, plain)
}

/// Measure every part; `size` scales the number of passes, `dir` is where files go.
pub fn measure(size: u64, dir: &Path) -> anyhow::Result<Costs> {
    let passes = (size / WORK as u64).clamp(4, 32);
    let (sealed, rec, plain) = records();
    let key = [9u8; 32];
    let mut work = sealed.clone();
    // Restoring the ciphertext between passes is a copy; time it and take it off.
    let copy = per_gib(WORK, passes, || work.copy_from_slice(&sealed));
    let mut h = sha2::Sha256::new();
    let decrypt_hash = per_gib(WORK, passes, || {
        work.copy_from_slice(&sealed);
        let mut opener = RecordOpener::new(&key, 1 << 20);
        for r in work.chunks_mut(rec) {
            if let Ok(pt) = opener.open_record(r) {
                h.update(pt);
            }
        }
    }) - copy;
    // The same with the standard crates: what a straightforward implementation's core can do.
    let std_box = XSalsa20Poly1305::new(&key.into());
    let decrypt_hash_std = per_gib(WORK, passes, || {
        work.copy_from_slice(&sealed);
        for r in work.chunks_mut(rec) {
            let (head, ct) = r.split_at_mut(RECORD_HEADER + RECORD_OVERHEAD);
            let nonce = Nonce::clone_from_slice(&head[RECORD_HEADER..RECORD_HEADER + 24]);
            let tag = Tag::clone_from_slice(&head[RECORD_HEADER + 24..]);
            if std_box.decrypt_in_place_detached(&nonce, b"", ct, &tag).is_ok() {
                h.update(&ct[..]);
            }
        }
    }) - copy;
    let decrypt = per_gib(WORK, passes, || {
        work.copy_from_slice(&sealed);
        let mut opener = RecordOpener::new(&key, 1 << 20);
        for r in work.chunks_mut(rec) {
            std::hint::black_box(opener.open_record(r).map(|p| p.len()).unwrap_or(0));
        }
    }) - copy;
    let sha256 = per_gib(WORK, passes, || h.update(&plain));
    // Sealing works in place on a record buffer (the sender reads the file straight into it):
    // re-seal the same buffer; XOR does not care what the bytes are.
    let mut sealer = RecordSealer::new(&key);
    let encrypt_hash = per_gib(WORK, passes, || {
        for r in work.chunks_mut(rec) {
            h.update(&r[RECORD_HEADER + RECORD_OVERHEAD..]);
            sealer.seal_in_place(r).unwrap_or_default();
        }
    });
    let encrypt = per_gib(WORK, passes, || {
        for r in work.chunks_mut(rec) {
            sealer.seal_in_place(r).unwrap_or_default();
        }
    });
    std::hint::black_box(h.finalize());
    let tcp = tcp_cost(size.min(1 << 30))?;
    // The page cache's first write after large deletions can cost several times more: take the
    // better of two rounds, as for the crypto.
    let (w1, r1) = file_cost(size.min(1 << 30), dir)?;
    let (w2, r2) = file_cost(size.min(1 << 30), dir)?;
    let (file_write, file_read) = (w1.min(w2), r1.min(r2));
    Ok(Costs {
        decrypt_hash,
        decrypt_hash_std,
        encrypt_hash,
        decrypt,
        encrypt,
        sha256,
        tcp,
        file_write,
        file_read,
    })
}

/// Write `len` bytes to `w`, `buf` (whole, then a part) at a time.
fn write_len(w: &mut impl Write, buf: &[u8], len: u64) -> std::io::Result<()> {
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// CPU per GiB (both ends) of `size` bytes through loopback TCP in 1 MiB writes and reads.
fn tcp_cost(size: u64) -> anyhow::Result<f64> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = l.local_addr()?;
    let c0 = sys::own_cpu_time();
    let tx = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        write_len(&mut s, &vec![7u8; 1 << 20], size)
    });
    let (mut r, _) = l.accept()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < size {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    tx.join().map_err(|_| anyhow::anyhow!("tcp sender panicked"))??;
    let cpu = (sys::own_cpu_time() - c0).as_secs_f64();
    Ok(cpu / size as f64 * GIB)
}

/// CPU per GiB of writing `size` bytes to a new file in `dir` (1 MiB writes) and of reading it.
fn file_cost(size: u64, dir: &Path) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("file-cost-{}.bin", std::process::id()));
    let buf = vec![3u8; 1 << 20];
    let c0 = sys::own_cpu_time();
    {
        let mut f = std::fs::File::create(&path)?;
        write_len(&mut f, &buf, size)?;
    }
    let w = (sys::own_cpu_time() - c0).as_secs_f64();
    let mut rbuf = vec![0u8; 1 << 20];
    let c0 = sys::own_cpu_time();
    {
        let mut f = std::fs::File::open(&path)?;
        while f.read(&mut rbuf)? > 0 {}
    }
    let r = (sys::own_cpu_time() - c0).as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok((w / size as f64 * GIB, r / size as f64 * GIB))
}

/// Print the parts and the ceilings they imply.
pub fn print(c: &Costs) {
    let rate = |s: f64| GIB / s / 1e6;
    println!(
        "{:<28} {:>7.0} MB/s per CPU second (decrypt + SHA-256, one thread; {:.2} CPU s/GiB)",
        "one-core limit",
        c.limit() / 1e6,
        c.decrypt_hash
    );
    println!(
        "{:<28} {:>7.0} MB/s per CPU second with the standard crates (crypto_secretbox + sha2)",
        "  (standard crates)",
        rate(c.decrypt_hash_std)
    );
    println!(
        "{:<28} encrypt+SHA-256 {:.0}, decrypt {:.0}, encrypt {:.0}, SHA-256 {:.0} MB per CPU s",
        "  parts",
        rate(c.encrypt_hash),
        rate(c.decrypt),
        rate(c.encrypt),
        rate(c.sha256)
    );
    println!(
        "{:<28} loopback TCP {:.2}, file write {:.2}, file read {:.2} CPU s/GiB",
        "  I/O", c.tcp, c.file_write, c.file_read
    );
    println!(
        "{:<28} library (crypto both sides + TCP) {:.0} MB/s = {:.0} % of the limit; CLI (+ file read and write) {:.0} MB/s = {:.0} %",
        "  two-core ceilings",
        c.library_ceiling() / 1e6,
        100.0 * c.library_ceiling() / c.limit(),
        c.cli_ceiling() / 1e6,
        100.0 * c.cli_ceiling() / c.limit()
    );
}
