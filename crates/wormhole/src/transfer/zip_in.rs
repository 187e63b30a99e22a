//! Checked extraction of a received directory zip (stored or deflated; data descriptors and
//! zip64 are handled by the `zip` crate).
//!
//! Every entry is checked before anything is written: names must be relative, without `..`,
//! drive letters, backslashes or NUL; symlinks and entries with setuid/setgid/sticky bits are
//! refused; the regular-file count and the bytes actually decompressed must not exceed what the
//! offer declared. Extraction goes into a fresh directory the caller later renames into place, so
//! a refused zip leaves nothing behind at the destination.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::TransferError;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

fn bad(msg: String) -> TransferError {
    TransferError::BadZip(msg)
}

/// Check one entry name and turn it into a relative path.
pub fn checked_name(raw: &str) -> Result<PathBuf, TransferError> {
    let shown = super::escape_control(raw);
    if raw.is_empty() || raw.contains('\0') || raw.contains('\\') {
        return Err(bad(format!("entry {shown:?} has an invalid name")));
    }
    if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
        return Err(bad(format!("entry {shown:?} is an absolute path")));
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(bad(format!("entry {shown:?} escapes the target directory"))),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad(format!("entry {shown:?} has an empty path")));
    }
    Ok(out)
}

/// Extract `zip` into `into` (which must exist and be empty), after checking every entry.
/// Returns (files, bytes) written.
pub fn extract<R: Read + Seek>(
    zip: R,
    into: &Path,
    max_files: u64,
    max_bytes: u64,
) -> Result<(u64, u64), TransferError> {
    let mut z = zip::ZipArchive::new(zip).map_err(|e| bad(format!("not a valid zip: {e}")))?;
    // First pass: names, kinds and modes, declared counts.
    let mut files = 0u64;
    let mut plan = Vec::with_capacity(z.len());
    for i in 0..z.len() {
        let e = z.by_index_raw(i).map_err(|e| bad(format!("entry {i}: {e}")))?;
        let raw = String::from_utf8_lossy(e.name_raw()).into_owned();
        let rel = checked_name(&raw)?;
        let shown = super::escape_control(&raw);
        let mode = e.unix_mode().unwrap_or(0);
        let kind = mode & S_IFMT;
        if kind == S_IFLNK {
            return Err(bad(format!("entry {shown:?} is a symlink")));
        }
        if mode & 0o7000 != 0 {
            return Err(bad(format!(
                "entry {shown:?} has setuid/setgid/sticky bits ({:o})",
                mode & 0o7777
            )));
        }
        let is_dir = e.is_dir() || kind == S_IFDIR;
        if !is_dir && kind != 0 && kind != S_IFREG {
            return Err(bad(format!("entry {shown:?} is not a regular file or directory")));
        }
        if !is_dir {
            files += 1;
            if files > max_files {
                return Err(bad(format!("more than the {max_files} files the offer declared")));
            }
        }
        plan.push((rel, is_dir, mode & 0o777));
    }
    // Second pass: write, counting real decompressed bytes against the declared total.
    let mut bytes = 0u64;
    for (i, (rel, is_dir, perm)) in plan.into_iter().enumerate() {
        let dest = into.join(&rel);
        if is_dir {
            std::fs::create_dir_all(&dest).map_err(TransferError::file(&dest))?;
            continue;
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(TransferError::file(parent))?;
        }
        let mut entry = z
            .by_index(i)
            .map_err(|e| bad(format!("entry {}: {e}", rel.display())))?;
        // create_new: a duplicate name (or anything already there) is refused, never followed.
        let mut out: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => bad(format!(
                    "entry {} appears twice",
                    super::escape_control(&rel.to_string_lossy())
                )),
                _ => TransferError::File {
                    path: dest.clone(),
                    source: e,
                },
            })?;
        let room = max_bytes - bytes;
        let mut limited = (&mut entry).take(room.saturating_add(1));
        let n = std::io::copy(&mut limited, &mut out).map_err(|e| bad(format!("{}: {e}", rel.display())))?;
        if n > room {
            return Err(bad(format!("more than the {max_bytes} bytes the offer declared")));
        }
        bytes += n;
        out.flush().map_err(TransferError::file(&dest))?;
        if perm != 0 {
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(perm))
                .map_err(TransferError::file(&dest))?;
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::write::SimpleFileOptions;

    fn make(entries: &[(&str, u32, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, mode, data) in entries {
            let o = SimpleFileOptions::default()
                .compression_method(method)
                .unix_permissions(*mode);
            w.start_file(*name, o).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn names() {
        assert!(checked_name("a/b.txt").is_ok());
        for bad in [
            "../x",
            "/etc/x",
            "a/../../x",
            "C:/x",
            "a\\..\\x",
            "",
            "./",
            "x\0y",
        ] {
            assert!(checked_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deflated_and_stored_extract() {
        for m in [zip::CompressionMethod::Deflated, zip::CompressionMethod::Stored] {
            let z = make(&[("a.txt", 0o640, b"hello"), ("d/b", 0o644, &[1u8; 5000])], m);
            let d = tempfile::tempdir().unwrap();
            assert_eq!(extract(Cursor::new(z), d.path(), 2, 5005).unwrap(), (2, 5005));
            assert_eq!(std::fs::read(d.path().join("a.txt")).unwrap(), b"hello");
            let mode = std::fs::metadata(d.path().join("a.txt"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }

    #[test]
    fn no_byte_limit_does_not_overflow() {
        // Found by the zip_extract fuzz target: max_bytes = u64::MAX made `room + 1` overflow.
        let z = make(&[("a", 0o644, b"hello")], zip::CompressionMethod::Stored);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(extract(Cursor::new(z), d.path(), 1, u64::MAX).unwrap(), (1, 5));
        assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"hello");
    }

    /// A zip with arbitrary names and mode bits, built with our own stream writer.
    pub(crate) fn raw_zip(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        use crate::transfer::zip_out::{ZipEntry, ZipPlan, ZipStream};
        let d = tempfile::tempdir().unwrap();
        let mut plan = ZipPlan {
            entries: Vec::new(),
            skipped: Vec::new(),
        };
        for (i, (name, mode, data)) in entries.iter().enumerate() {
            let src = d.path().join(i.to_string());
            std::fs::write(&src, data).unwrap();
            plan.entries.push(ZipEntry {
                name: name.to_string(),
                source: Some(src),
                size: data.len() as u64,
                mode: *mode,
                mtime: 0,
            });
        }
        let mut out = Vec::new();
        ZipStream::new(plan).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn refusals() {
        let cases: Vec<(Vec<u8>, u64, u64, &str)> = vec![
            (raw_zip(&[("../x", 0o644, b"x")]), 9, 9, "escapes"),
            (
                raw_zip(&[("ok", 0o644, b"x"), ("a/../../x", 0o644, b"x")]),
                9,
                9,
                "escapes",
            ),
            (raw_zip(&[("/etc/x", 0o644, b"x")]), 9, 9, "absolute"),
            (raw_zip(&[("s", 0o4755, b"x")]), 9, 9, "setuid"),
            (raw_zip(&[("s", 0o2755, b"x")]), 9, 9, "setgid"),
            (raw_zip(&[("s", 0o1777, b"x")]), 9, 9, "sticky"),
            (raw_zip(&[("l", 0o120777, b"/etc/passwd")]), 9, 99, "symlink"),
            (raw_zip(&[("a", 0o644, b"x"), ("b", 0o644, b"y")]), 1, 9, "files"),
            (
                make(&[("a", 0o644, &[0u8; 100])], zip::CompressionMethod::Deflated),
                1,
                99,
                "bytes",
            ),
            (b"PK\x03\x04 not a zip".to_vec(), 1, 1, "valid zip"),
        ];
        for (z, f, b, want) in cases {
            let d = tempfile::tempdir().unwrap();
            let e = extract(Cursor::new(z), d.path(), f, b)
                .expect_err(want)
                .to_string();
            assert!(e.contains(want), "{e} should mention {want}");
            if want != "bytes" {
                assert_eq!(
                    std::fs::read_dir(d.path()).unwrap().count(),
                    0,
                    "nothing written: {want}"
                );
            }
        }
        let d = tempfile::tempdir().unwrap();
        // a symlink entry
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let e = extract(Cursor::new(z), d.path(), 9, 9).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            0,
            "nothing written for refused zips"
        );
    }
}
