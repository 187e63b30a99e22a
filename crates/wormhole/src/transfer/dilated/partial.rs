//! Partial files and the hashes of this protocol.
//!
//! A single file being received is written to `.<name>.wormhole-partial` beside its
//! destination and renamed into place only once it is complete and confirmed. The partial file
//! stays after any interruption; the next offer of the same name into the same directory is
//! answered with its length and the SHA-256 of its bytes (a resume claim). It is removed when
//! the user declines such an offer, when the sender's prefix differs (the data restarts from
//! zero into a fresh partial file), and when the file is complete.
//!
//! Owns: those names, the claim, and moving a finished file into place without overwriting.
//! Must not: decide destinations (that is [`super::super::safety`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use blake2::Blake2b;
use blake2::digest::consts::U32;
use sha2::{Digest, Sha256};
use wormhole_proto::dilated_transfer::msg::Hash32;
use wormhole_proto::dilated_transfer::{Features, FileAck};

use super::super::TransferError;

/// The hashes of a file: BLAKE2b-256 (the spec's ack) and SHA-256 (our feature, and the resume
/// claim). With the `sha256-ack` feature the SHA-256 is the check and BLAKE2b is not computed
/// (the ack's `hash` is then 32 zero bytes): it would cost more CPU than Dilation itself.
#[derive(Clone)]
pub struct Hashes {
    blake: Option<Blake2b<U32>>,
    sha: Sha256,
}

impl Default for Hashes {
    fn default() -> Self {
        Hashes {
            blake: Some(Blake2b::default()),
            sha: Sha256::default(),
        }
    }
}

impl Hashes {
    /// The hashes a session with `features` needs.
    pub fn for_features(features: Features) -> Hashes {
        Hashes {
            blake: (!features.sha256).then(Blake2b::default),
            sha: Sha256::default(),
        }
    }

    /// Hash more bytes.
    pub fn update(&mut self, b: &[u8]) {
        if let Some(h) = self.blake.as_mut() {
            h.update(b);
        }
        self.sha.update(b);
    }

    /// (BLAKE2b-256 or zeros, SHA-256).
    pub fn finish(self) -> (Hash32, Hash32) {
        (
            self.blake
                .map(|h| Hash32(h.finalize().into()))
                .unwrap_or_default(),
            Hash32(self.sha.finalize().into()),
        )
    }

    /// The SHA-256 so far, without ending.
    pub fn sha_so_far(&self) -> Hash32 {
        Hash32(self.sha.clone().finalize().into())
    }
}

/// Whether two acks of one file disagree: by SHA-256 when both carry it, else by BLAKE2b; and by
/// length.
pub fn acks_differ(a: &FileAck, b: &FileAck) -> bool {
    let hashes_differ = match (a.sha256, b.sha256) {
        (Some(x), Some(y)) => x != y,
        _ => a.hash != b.hash,
    };
    a.bytes != b.bytes || hashes_differ
}

/// Hashes (started as `h`) of the first `len` bytes of `path` (fewer if the file is shorter:
/// the count read is returned).
pub fn hash_prefix(path: &Path, len: u64, mut h: Hashes) -> std::io::Result<(Hashes, u64)> {
    let mut f = File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h, n))
}

/// The partial file of a destination.
pub fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.wormhole-partial"))
}

/// The partial directory of a directory destination.
pub fn partial_dir(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.wormhole-partial-dir"))
}

/// The length of a resumable partial file at `partial` (a regular file, not a link, no longer
/// than `limit`), if any.
pub fn existing_partial(partial: &Path, limit: u64) -> Option<u64> {
    let m = std::fs::symlink_metadata(partial).ok()?;
    (m.file_type().is_file() && m.len() <= limit).then_some(m.len())
}

/// Remove a partial file (or a stale entry of that name that is not a directory).
pub fn remove_partial(partial: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(partial)
        && !m.is_dir()
    {
        let _ = std::fs::remove_file(partial);
    }
}

/// Put a finished file or directory at `dest`. Without `overwrite` an existing entry there is
/// never replaced (a file is hard-linked into place, which fails if `dest` exists; a directory
/// is renamed after checking).
pub fn finish(partial: &Path, dest: &Path, overwrite: bool, is_dir: bool) -> Result<(), TransferError> {
    if overwrite {
        return std::fs::rename(partial, dest).map_err(TransferError::file(dest));
    }
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(TransferError::WouldOverwrite(dest.to_owned()));
    }
    if is_dir {
        return std::fs::rename(partial, dest).map_err(TransferError::file(dest));
    }
    std::fs::hard_link(partial, dest).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TransferError::WouldOverwrite(dest.to_owned())
        } else {
            TransferError::File {
                path: dest.to_owned(),
                source: e,
            }
        }
    })?;
    std::fs::remove_file(partial).map_err(TransferError::file(partial))
}

/// Removes a partial directory when dropped, unless disarmed.
pub struct DirGuard(pub Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_finish() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("a.bin");
        let p = partial_path(&dest);
        assert_eq!(p, d.path().join(".a.bin.wormhole-partial"));
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(existing_partial(&p, 10), Some(5));
        assert_eq!(existing_partial(&p, 4), None);
        let (h, n) = hash_prefix(&p, 3, Hashes::default()).unwrap();
        assert_eq!(n, 3);
        assert_eq!(h.sha_so_far().0.to_vec(), Sha256::digest(b"hel").to_vec());
        std::fs::write(&dest, b"mine").unwrap();
        assert!(matches!(
            finish(&p, &dest, false, false),
            Err(TransferError::WouldOverwrite(_))
        ));
        std::fs::remove_file(&dest).unwrap();
        finish(&p, &dest, false, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert!(!p.exists());
    }

    #[test]
    fn links_are_not_partials() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".x.wormhole-partial");
        std::os::unix::fs::symlink("/etc/passwd", &p).unwrap();
        assert_eq!(existing_partial(&p, u64::MAX), None);
        remove_partial(&p);
        assert!(std::fs::symlink_metadata(&p).is_err());
    }
}
