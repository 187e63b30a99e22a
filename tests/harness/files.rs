//! File helpers for transfer tests: sha256 of files and directory trees, and deterministic test data.
//!
//! Trees are compared by content only (relative path → sha256); modes and timestamps are ignored because
//! the peers treat them differently. Symlinks are recorded by target and never followed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex sha256 of a file's content (streamed). Panics with the path on I/O errors.
pub fn sha256_file(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }
    hex::encode(hasher.finalize())
}

/// One entry of a directory tree as seen by [`dir_tree`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TreeEntry {
    /// A directory.
    Dir,
    /// A regular file with this sha256 (hex).
    File(String),
    /// A symbolic link with this target.
    Symlink(String),
}

/// Every entry below `root` (not `root` itself), keyed by its `/`-separated path relative to `root`.
pub fn dir_tree(root: impl AsRef<Path>) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    walk(root.as_ref(), "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, TreeEntry>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.insert(rel, TreeEntry::Symlink(target));
        } else if meta.is_dir() {
            out.insert(rel.clone(), TreeEntry::Dir);
            walk(&path, &rel, out);
        } else {
            out.insert(rel, TreeEntry::File(sha256_file(&path)));
        }
    }
}

/// One sha256 over the whole tree below `root`: sorted relative paths with their kind and content hash.
pub fn sha256_dir(root: impl AsRef<Path>) -> String {
    let mut hasher = Sha256::new();
    for (path, entry) in dir_tree(root) {
        let line = match entry {
            TreeEntry::Dir => format!("D {path}\n"),
            TreeEntry::File(h) => format!("F {path} {h}\n"),
            TreeEntry::Symlink(t) => format!("L {path} {t}\n"),
        };
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Write `size` deterministic pseudo-random bytes (from `seed`) to `path`, creating parent directories.
/// Returns the sha256 of what was written.
pub fn write_test_file(path: impl AsRef<Path>, size: usize, seed: u64) -> String {
    let path = path.as_ref();
    if let Some(parent) = path.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        panic!("cannot create {}: {e}", parent.display());
    }
    let mut file = match std::fs::File::create(path) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => panic!("cannot create {}: {e}", path.display()),
    };
    let mut hasher = Sha256::new();
    // xorshift64*: cheap, deterministic, incompressible enough for transfer tests.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut remaining = size;
    let mut chunk = Vec::with_capacity(1 << 16);
    while remaining > 0 {
        chunk.clear();
        while chunk.len() < (1 << 16) && chunk.len() < remaining {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        chunk.truncate(remaining.min(chunk.len()));
        hasher.update(&chunk);
        if let Err(e) = file.write_all(&chunk) {
            panic!("cannot write {}: {e}", path.display());
        }
        remaining -= chunk.len();
    }
    if let Err(e) = file.flush() {
        panic!("cannot write {}: {e}", path.display());
    }
    hex::encode(hasher.finalize())
}

/// Create a small directory tree under `root` (created if needed) for directory-transfer tests: text
/// files, a 300 kB binary file and a nested subdirectory, no empty directories or special files.
/// Returns [`dir_tree`] of it.
pub fn make_test_tree(root: impl AsRef<Path>) -> BTreeMap<String, TreeEntry> {
    let root = root.as_ref();
    let write = |rel: &str, content: &[u8]| {
        let path = root.join(rel);
        if let Some(parent) = path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            panic!("cannot create {}: {e}", parent.display());
        }
        if let Err(e) = std::fs::write(&path, content) {
            panic!("cannot write {}: {e}", path.display());
        }
    };
    write("README.txt", b"a directory sent through a wormhole\n");
    write("notes/one.txt", b"first note\n");
    write(
        "notes/deeper/two.txt",
        "second note, with UTF-8: \u{e9}\u{f8}\n".as_bytes(),
    );
    write_test_file(root.join("data/blob.bin"), 300_000, 7);
    dir_tree(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_trees() {
        let dir = tempfile::tempdir().unwrap();
        let h = write_test_file(dir.path().join("f"), 100_003, 1);
        assert_eq!(h, sha256_file(dir.path().join("f")));
        assert_eq!(std::fs::metadata(dir.path().join("f")).unwrap().len(), 100_003);
        assert_eq!(
            sha256_bytes(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = make_test_tree(dir.path().join("a"));
        let b = make_test_tree(dir.path().join("b"));
        assert_eq!(a, b);
        assert_eq!(sha256_dir(dir.path().join("a")), sha256_dir(dir.path().join("b")));
        assert!(a.contains_key("notes/deeper/two.txt"));
        std::fs::write(dir.path().join("b/notes/one.txt"), b"changed").unwrap();
        assert_ne!(sha256_dir(dir.path().join("a")), sha256_dir(dir.path().join("b")));
    }
}
