//! Free space of a filesystem (statvfs), for the receiver's check before accepting data.
//!
//! Holds the only `unsafe` of this crate: one libc call writing into a stack struct.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes available to an unprivileged user on the filesystem holding `dir`.
pub(crate) fn available(dir: &Path) -> std::io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs on our stack;
    // statvfs only writes into it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised (it was zeroed before anyway).
    #[allow(unsafe_code)]
    let st = unsafe { st.assume_init() };
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
