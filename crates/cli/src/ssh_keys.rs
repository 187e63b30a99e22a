//! The file-system half of `wormhole ssh` (docs/protocol.md §5.6): finding the public key to send and
//! appending a received key to `authorized_keys`.
//!
//! Received keys are untrusted: one line, bounded size, a plausible key type, no control
//! characters, so a peer cannot smuggle extra lines (options, other keys) into the file. This module
//! does no networking.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest public key line we accept (RSA 16384-bit keys are about 2.8 kB).
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// What can go wrong with ssh keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshKeyError {
    /// The key file or directory does not exist. Pass an existing path with `-F`.
    #[error("Can't find '{0}'")]
    NotFound(PathBuf),
    /// The directory holds no `*.pub` file. Create a key with `ssh-keygen` or pass `-F`.
    #[error("No public keys in '{0}'")]
    NoKeys(PathBuf),
    /// Reading or writing a file failed. (The OS error is part of the message, not a separate
    /// cause, so it is printed once.)
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The received (or local) key is not a single plausible public-key line.
    #[error("not an ssh public key: {0}")]
    BadKey(String),
    /// The user did not pick a key.
    #[error("no key chosen")]
    NoChoice,
}

/// A public key: type (e.g. `ssh-ed25519`), comment (`unknown` when absent) and the whole line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Key type, the first field.
    pub kind: String,
    /// The comment, the third field, or `unknown`.
    pub keyid: String,
    /// The whole key line, trimmed.
    pub line: String,
}

/// Check and split one public-key line.
pub fn parse_public_key(text: &str) -> Result<PublicKey, SshKeyError> {
    let line = text.trim();
    if line.is_empty() || line.len() > MAX_KEY_LEN {
        return Err(SshKeyError::BadKey(format!("{} bytes", line.len())));
    }
    if line.chars().any(char::is_control) {
        return Err(SshKeyError::BadKey(
            "contains control characters or several lines".to_owned(),
        ));
    }
    let mut parts = line.splitn(3, char::is_whitespace);
    let kind = parts.next().unwrap_or_default().to_owned();
    let body = parts.next().unwrap_or_default();
    let keyid = parts
        .next()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or("unknown")
        .to_owned();
    let kind_ok = kind.starts_with("ssh-")
        || kind.starts_with("ecdsa-")
        || kind.starts_with("sk-")
        || kind.contains("@openssh.com");
    if !kind_ok || body.is_empty() {
        return Err(SshKeyError::BadKey(format!("unknown key type {kind:?}")));
    }
    Ok(PublicKey {
        kind,
        keyid,
        line: line.to_owned(),
    })
}

/// The `*.pub` files of a directory, sorted.
pub fn list_public_keys(dir: &Path) -> Result<Vec<PathBuf>, SshKeyError> {
    let entries = fs::read_dir(dir).map_err(|source| SshKeyError::Io {
        path: dir.to_owned(),
        error: source,
    })?;
    let mut keys: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        .collect();
    keys.sort();
    Ok(keys)
}

/// Read one key file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, SshKeyError> {
    let text = fs::read_to_string(path).map_err(|source| SshKeyError::Io {
        path: path.to_owned(),
        error: source,
    })?;
    parse_public_key(&text)
}

/// Find the key to send: `hint` may be a file or a directory (default `~/.ssh/`). With several
/// keys, `choose` is asked for an index into the listed names.
pub fn find_public_key(
    hint: Option<&Path>,
    home: &Path,
    choose: &mut dyn FnMut(&[PathBuf]) -> Option<usize>,
) -> Result<PublicKey, SshKeyError> {
    let dir = match hint {
        Some(h) if h.is_file() => return read_public_key(h),
        Some(h) if !h.exists() => return Err(SshKeyError::NotFound(h.to_owned())),
        Some(h) => h.to_owned(),
        None => home.join(".ssh"),
    };
    if !dir.exists() {
        return Err(SshKeyError::NotFound(dir));
    }
    let keys = list_public_keys(&dir)?;
    match keys.as_slice() {
        [] => Err(SshKeyError::NoKeys(dir)),
        [one] => read_public_key(one),
        many => {
            let i = choose(many).ok_or(SshKeyError::NoChoice)?;
            read_public_key(many.get(i).ok_or(SshKeyError::NoChoice)?)
        }
    }
}

/// What [`append_authorized_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The key was added to this file.
    Added(PathBuf),
    /// This file already holds the key line; nothing was written.
    AlreadyPresent(PathBuf),
}

/// Append `key` to `ssh_dir/authorized_keys`, creating the directory (0700) and the file (0600)
/// when missing, unless the file already holds that exact key line.
pub fn append_authorized_key(ssh_dir: &Path, key: &PublicKey) -> Result<Appended, SshKeyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| SshKeyError::Io { path, error }
    };
    if !ssh_dir.exists() {
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(ssh_dir)
            .map_err(io(ssh_dir))?;
    }
    let path = ssh_dir.join("authorized_keys");
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    let mut existing = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut existing).map_err(io(&path))?;
    let present = String::from_utf8_lossy(&existing)
        .lines()
        .any(|l| l.trim() == key.line);
    if present {
        return Ok(Appended::AlreadyPresent(path));
    }
    // Keep the file line-oriented even if its last line lacks a newline.
    let mut text = String::new();
    if existing.last().is_some_and(|&c| c != b'\n') {
        text.push('\n');
    }
    text.push_str(&key.line);
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(io(&path))?;
    Ok(Appended::Added(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG me@host\n";

    #[test]
    fn parses_keys() {
        let k = parse_public_key(KEY).unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert_eq!(k.keyid, "me@host");
        let k = parse_public_key("ssh-rsa AAAA").unwrap();
        assert_eq!(k.keyid, "unknown");
        assert!(parse_public_key("").is_err());
        assert!(parse_public_key("hello world").is_err());
        assert!(parse_public_key("ssh-rsa AAAA a\nssh-rsa BBBB evil").is_err());
        assert!(parse_public_key(&format!("ssh-rsa {}", "A".repeat(MAX_KEY_LEN))).is_err());
    }

    #[test]
    fn finds_single_and_chosen_keys() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        let mut never = |_: &[PathBuf]| -> Option<usize> { panic!("no choice expected") };
        let e = find_public_key(None, home.path(), &mut never).unwrap_err();
        assert!(matches!(e, SshKeyError::NotFound(_)), "{e:?}");
        // One message, not the OS error twice.
        let shown = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(shown, format!("Can't find '{}'", ssh.display()));
        fs::create_dir(&ssh).unwrap();
        assert!(matches!(
            find_public_key(None, home.path(), &mut never),
            Err(SshKeyError::NoKeys(_))
        ));
        fs::write(ssh.join("a.pub"), KEY).unwrap();
        fs::write(ssh.join("id"), "private").unwrap();
        assert_eq!(
            find_public_key(None, home.path(), &mut never).unwrap().keyid,
            "me@host"
        );
        fs::write(ssh.join("b.pub"), "ssh-rsa BBBB other\n").unwrap();
        let mut second = |names: &[PathBuf]| {
            assert_eq!(names.len(), 2);
            Some(1)
        };
        assert_eq!(
            find_public_key(None, home.path(), &mut second).unwrap().keyid,
            "other"
        );
        let file = ssh.join("a.pub");
        assert_eq!(
            find_public_key(Some(&file), home.path(), &mut never)
                .unwrap()
                .kind,
            "ssh-ed25519"
        );
        assert!(matches!(
            find_public_key(Some(&ssh.join("nope")), home.path(), &mut never),
            Err(SshKeyError::NotFound(_))
        ));
    }

    #[test]
    fn appends_with_safe_modes() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        let key = parse_public_key(KEY).unwrap();
        let Appended::Added(path) = append_authorized_key(&ssh, &key).unwrap() else {
            panic!("not added")
        };
        assert_eq!(fs::metadata(&ssh).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::write(&path, "ssh-rsa XXXX old").unwrap();
        append_authorized_key(&ssh, &key).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("ssh-rsa XXXX old\n{}", KEY)
        );
        // The same key again: nothing is appended.
        assert_eq!(
            append_authorized_key(&ssh, &key).unwrap(),
            Appended::AlreadyPresent(path.clone())
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("ssh-rsa XXXX old\n{}", KEY)
        );
    }
}
