//! A scratch directory backed by RAM (a tmpfs mounted on a fresh temporary directory), for tests
//! whose receiver would otherwise need gigabytes of free disk: our `receive` refuses a file larger
//! than the free space of its target directory, as Python's does, and a CI machine may have little
//! disk left after the build. A tmpfs reports its own size as free space and holds only what is
//! written, so a test can offer a 2 GiB file, kill the transfer after a few MiB, and need neither.
//!
//! Owns: the mount and its removal. Must not: mount anywhere but inside `scripts/netns-run`, whose
//! private mount namespace keeps the tmpfs invisible to the rest of the machine and drops it when
//! the test's processes end, even if `umount` is never reached.

use std::path::Path;
use std::process::Command;

use crate::netns::require_netns;

/// A temporary directory with a tmpfs of `size_mib` MiB mounted on it; unmounted and removed on drop.
pub struct RamDir {
    dir: tempfile::TempDir,
}

impl RamDir {
    /// Mount a tmpfs of at most `size_mib` MiB (pages are only used as they are written).
    /// Panics with mount(8)'s message when the mount fails.
    #[track_caller]
    pub fn new(size_mib: u64) -> RamDir {
        require_netns();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0700"))
            .arg("wormhole-test")
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run mount(8): {e}"));
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} failed: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        RamDir { dir }
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RamDir {
    fn drop(&mut self) {
        // A failure leaves the mount to the namespace's end; the directory then stays behind.
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
