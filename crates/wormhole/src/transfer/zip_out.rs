//! The directory we send: a STORED zip streamed straight from the files (no temporary copy).
//!
//! Two passes: [`ZipPlan::scan`] (in `zip_scan`) walks the tree (following symlinks, like Python) and records each
//! entry's size, which makes the exact `zipsize` computable up front; [`ZipStream`] then produces
//! the bytes as a `Read`, computing CRC-32 on the fly. Regular files use data descriptors (general
//! flag bit 3) and zip64 fields when a size or offset needs them; names are UTF-8 (bit 11).
//! Entries are relative to the directory, `/`-separated; empty directories appear as `name/`.
//! A file that changes size between the passes makes the stream fail rather than lie.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESC_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOC64_SIG: u32 = 0x0706_4b50;
const MAX32: u64 = 0xffff_ffff;
/// DOS date 1980-01-01, time 00:00 (we do not leak mtimes).
const DOS_DATE: u16 = 0x0021;

/// One zip entry.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    /// Name inside the zip (`a/b.txt`, or `empty/` for an empty directory).
    pub name: String,
    /// Source path (None for directories).
    pub source: Option<PathBuf>,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Unix permission bits (`0o644`…), stored in `external_attr`.
    pub mode: u32,
    /// Modification time at the scan (Unix seconds; 0 for directories).
    pub mtime: i64,
}

/// The scanned tree.
#[derive(Debug, Clone)]
pub struct ZipPlan {
    /// Entries in stream order.
    pub entries: Vec<ZipEntry>,
    /// Entries skipped as unsendable (with `ignore_unsendable`).
    pub skipped: Vec<(PathBuf, String)>,
}

impl ZipPlan {
    /// Number of regular files.
    pub fn numfiles(&self) -> u64 {
        self.entries.iter().filter(|e| e.source.is_some()).count() as u64
    }

    /// Total bytes of the regular files.
    pub fn numbytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The exact length of the stream [`ZipStream`] will produce.
    pub fn zipsize(&self) -> u64 {
        let mut off = 0u64;
        let mut central = 0u64;
        for e in &self.entries {
            let start = off;
            off += local_header(e).len() as u64 + e.size + descriptor(e, 0).len() as u64;
            central += central_header(e, start, 0).len() as u64;
        }
        off + central + end_records(self.entries.len() as u64, off, central).len() as u64
    }
}

fn zip64_sizes(e: &ZipEntry) -> bool {
    e.size >= MAX32
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn flags(e: &ZipEntry) -> u16 {
    if e.source.is_some() { 0x0808 } else { 0x0800 }
}

fn local_header(e: &ZipEntry) -> Vec<u8> {
    let z = zip64_sizes(e);
    let mut v = Vec::with_capacity(30 + e.name.len() + 20);
    put32(&mut v, LOCAL_SIG);
    put16(&mut v, if z { 45 } else { 20 });
    put16(&mut v, flags(e));
    put16(&mut v, 0); // stored
    put16(&mut v, 0);
    put16(&mut v, DOS_DATE);
    put32(&mut v, 0); // crc (in the descriptor)
    put32(&mut v, if z { u32::MAX } else { 0 });
    put32(&mut v, if z { u32::MAX } else { 0 });
    put16(&mut v, e.name.len() as u16);
    put16(&mut v, if z { 20 } else { 0 });
    v.extend_from_slice(e.name.as_bytes());
    if z {
        put16(&mut v, 0x0001);
        put16(&mut v, 16);
        put64(&mut v, 0);
        put64(&mut v, 0);
    }
    v
}

fn descriptor(e: &ZipEntry, crc: u32) -> Vec<u8> {
    let mut v = Vec::new();
    if e.source.is_none() {
        return v;
    }
    put32(&mut v, DESC_SIG);
    put32(&mut v, crc);
    if zip64_sizes(e) {
        put64(&mut v, e.size);
        put64(&mut v, e.size);
    } else {
        put32(&mut v, e.size as u32);
        put32(&mut v, e.size as u32);
    }
    v
}

fn central_header(e: &ZipEntry, offset: u64, crc: u32) -> Vec<u8> {
    let zs = zip64_sizes(e);
    let zo = offset >= MAX32;
    let mut extra = Vec::new();
    if zs {
        put64(&mut extra, e.size);
        put64(&mut extra, e.size);
    }
    if zo {
        put64(&mut extra, offset);
    }
    let mut v = Vec::with_capacity(46 + e.name.len() + 28);
    put32(&mut v, CENTRAL_SIG);
    put16(&mut v, (3 << 8) | 45); // made by Unix, spec 4.5
    put16(&mut v, if zs || zo { 45 } else { 20 });
    put16(&mut v, flags(e));
    put16(&mut v, 0);
    put16(&mut v, 0);
    put16(&mut v, DOS_DATE);
    put32(&mut v, crc);
    let size32 = if zs { u32::MAX } else { e.size as u32 };
    put32(&mut v, size32);
    put32(&mut v, size32);
    put16(&mut v, e.name.len() as u16);
    put16(
        &mut v,
        if extra.is_empty() {
            0
        } else {
            extra.len() as u16 + 4
        },
    );
    put16(&mut v, 0); // comment
    put16(&mut v, 0); // disk
    put16(&mut v, 0); // internal attrs
    let kind = if e.source.is_some() { 0o100000 } else { 0o040000 };
    let dos_dir = if e.source.is_some() { 0 } else { 0x10 };
    put32(&mut v, ((kind | e.mode) << 16) | dos_dir);
    put32(&mut v, if zo { u32::MAX } else { offset as u32 });
    v.extend_from_slice(e.name.as_bytes());
    if !extra.is_empty() {
        put16(&mut v, 0x0001);
        put16(&mut v, extra.len() as u16);
        v.extend_from_slice(&extra);
    }
    v
}

fn end_records(count: u64, cd_offset: u64, cd_size: u64) -> Vec<u8> {
    let z = count >= 0xffff || cd_offset >= MAX32 || cd_size >= MAX32;
    let mut v = Vec::new();
    if z {
        let eocd64_at = cd_offset + cd_size;
        put32(&mut v, EOCD64_SIG);
        put64(&mut v, 44);
        put16(&mut v, (3 << 8) | 45);
        put16(&mut v, 45);
        put32(&mut v, 0);
        put32(&mut v, 0);
        put64(&mut v, count);
        put64(&mut v, count);
        put64(&mut v, cd_size);
        put64(&mut v, cd_offset);
        put32(&mut v, LOC64_SIG);
        put32(&mut v, 0);
        put64(&mut v, eocd64_at);
        put32(&mut v, 1);
    }
    put32(&mut v, EOCD_SIG);
    put16(&mut v, 0);
    put16(&mut v, 0);
    let c16 = if z { 0xffff } else { count as u16 };
    put16(&mut v, c16);
    put16(&mut v, c16);
    put32(&mut v, if z { u32::MAX } else { cd_size as u32 });
    put32(&mut v, if z { u32::MAX } else { cd_offset as u32 });
    put16(&mut v, 0);
    v
}

/// The zip bytes of a [`ZipPlan`], produced on demand.
pub struct ZipStream {
    plan: ZipPlan,
    next: usize,
    pending: Vec<u8>,
    pending_pos: usize,
    current: Option<(File, PathBuf, u64, crc32fast::Hasher)>,
    offsets: Vec<u64>,
    crcs: Vec<u32>,
    pos: u64,
    finished: bool,
}

impl ZipStream {
    /// Start streaming `plan`.
    pub fn new(plan: ZipPlan) -> Self {
        ZipStream {
            plan,
            next: 0,
            pending: Vec::new(),
            pending_pos: 0,
            current: None,
            offsets: Vec::new(),
            crcs: Vec::new(),
            pos: 0,
            finished: false,
        }
    }

    fn set_pending(&mut self, v: Vec<u8>) {
        self.pending = v;
        self.pending_pos = 0;
    }

    fn advance(&mut self) -> std::io::Result<bool> {
        if self.next < self.plan.entries.len() {
            let i = self.next;
            self.next += 1;
            self.offsets.push(self.pos);
            let e = &self.plan.entries[i];
            let header = local_header(e);
            if let Some(src) = &e.source {
                let f = File::open(src)
                    .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", src.display())))?;
                self.current = Some((f, src.clone(), e.size, crc32fast::Hasher::new()));
            } else {
                self.crcs.push(0);
            }
            self.set_pending(header);
            return Ok(true);
        }
        if !self.finished {
            self.finished = true;
            let cd_offset = self.pos;
            let mut cd = Vec::new();
            for (i, e) in self.plan.entries.iter().enumerate() {
                cd.extend(central_header(e, self.offsets[i], self.crcs[i]));
            }
            let end = end_records(self.plan.entries.len() as u64, cd_offset, cd.len() as u64);
            cd.extend(end);
            self.set_pending(cd);
            return Ok(true);
        }
        Ok(false)
    }
}

impl Read for ZipStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pending_pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pending_pos);
                buf[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                self.pos += n as u64;
                return Ok(n);
            }
            if let Some((f, path, left, crc)) = &mut self.current {
                if *left > 0 {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = f.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::other(format!(
                            "{} shrank while being sent",
                            path.display()
                        )));
                    }
                    crc.update(&buf[..n]);
                    *left -= n as u64;
                    self.pos += n as u64;
                    return Ok(n);
                }
                let mut probe = [0u8; 1];
                if f.read(&mut probe)? != 0 {
                    return Err(std::io::Error::other(format!(
                        "{} grew while being sent",
                        path.display()
                    )));
                }
                let crc = crc.clone().finalize();
                self.crcs.push(crc);
                let i = self.next - 1;
                let d = descriptor(&self.plan.entries[i], crc);
                self.current = None;
                self.set_pending(d);
                continue;
            }
            if !self.advance()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::TransferError;
    use std::io::Cursor;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(r.join("empty")).unwrap();
        std::fs::write(r.join("a.txt"), b"hello").unwrap();
        std::fs::write(r.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::write(r.join("sub/deeper/é.txt"), b"").unwrap();
        std::fs::set_permissions(r.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
        d
    }

    #[test]
    fn exact_size_and_readable_by_zip_crate() {
        let d = tree();
        let plan = ZipPlan::scan(d.path(), false).unwrap();
        assert_eq!(plan.numfiles(), 3);
        assert_eq!(plan.numbytes(), 100_005);
        let size = plan.zipsize();
        let mut out = Vec::new();
        ZipStream::new(plan).read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        let mut z = zip::ZipArchive::new(Cursor::new(out)).unwrap();
        let names: Vec<String> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().to_owned())
            .collect();
        assert_eq!(names, ["a.txt", "empty/", "sub/b.bin", "sub/deeper/é.txt"]);
        let mut a = z.by_name("a.txt").unwrap();
        assert_eq!(a.unix_mode().unwrap() & 0o777, 0o600);
        let mut s = String::new();
        a.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        drop(a);
        let mut b = Vec::new();
        z.by_name("sub/b.bin").unwrap().read_to_end(&mut b).unwrap();
        assert_eq!(b, vec![7u8; 100_000]);
        assert!(z.by_name("empty/").unwrap().is_dir());
    }

    #[test]
    fn zip64_end_records_sized_exactly() {
        // Many entries force the zip64 end records; sizes must still be exact.
        let d = tempfile::tempdir().unwrap();
        let mut plan = ZipPlan {
            entries: Vec::new(),
            skipped: Vec::new(),
        };
        std::fs::write(d.path().join("f"), b"x").unwrap();
        for i in 0..70_000 {
            plan.entries.push(ZipEntry {
                name: format!("d{i}/"),
                source: None,
                size: 0,
                mode: 0o755,
                mtime: 0,
            });
        }
        plan.entries.push(ZipEntry {
            name: "f".into(),
            source: Some(d.path().join("f")),
            size: 1,
            mode: 0o644,
            mtime: 0,
        });
        let size = plan.zipsize();
        let mut out = Vec::new();
        ZipStream::new(plan).read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        let z = zip::ZipArchive::new(Cursor::new(out)).unwrap();
        assert_eq!(z.len(), 70_001);
    }

    #[test]
    fn changed_file_fails() {
        let d = tree();
        let plan = ZipPlan::scan(d.path(), false).unwrap();
        std::fs::write(d.path().join("a.txt"), b"hello, longer now").unwrap();
        let mut out = Vec::new();
        let e = ZipStream::new(plan).read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("grew"), "{e}");
    }

    #[test]
    fn unsendable_entries() {
        let d = tree();
        std::os::unix::fs::symlink("/nonexistent", d.path().join("dangling")).unwrap();
        assert!(matches!(
            ZipPlan::scan(d.path(), false),
            Err(TransferError::Unsendable { .. })
        ));
        let plan = ZipPlan::scan(d.path(), true).unwrap();
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.numfiles(), 3);
        // A link to a file is followed; a link back up the tree is a loop; a FIFO is neither
        // file nor directory.
        std::os::unix::fs::symlink(d.path().join("sub/b.bin"), d.path().join("to-b")).unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("sub/up")).unwrap();
        let fifo = d.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let plan = ZipPlan::scan(d.path(), true).unwrap();
        let reasons: Vec<String> = plan
            .skipped
            .iter()
            .map(|(p, r)| format!("{}: {r}", p.display()))
            .collect();
        assert_eq!(plan.skipped.len(), 3, "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("fifo: not a regular file")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("up: directory loop")),
            "{reasons:?}"
        );
        let linked = plan.entries.iter().find(|e| e.name == "to-b").unwrap();
        assert_eq!(linked.size, 100_000);
        let a = plan.entries.iter().find(|e| e.name == "a.txt").unwrap();
        let meta = std::fs::metadata(d.path().join("a.txt")).unwrap();
        assert_eq!((a.mode, a.mtime), (0o600, meta.mtime()));
    }
}
