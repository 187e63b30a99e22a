//! Free space of a filesystem (statvfs through `rustix`, no `unsafe` here), for the receiver's
//! check before accepting data.

use std::path::Path;

/// Bytes available to an unprivileged user on the filesystem holding `dir`.
pub(crate) fn available(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tmp_has_space() {
        let d = tempfile::tempdir().unwrap();
        assert!(super::available(d.path()).unwrap() > 0);
        assert!(super::available(std::path::Path::new("/nonexistent/dir")).is_err());
    }
}
