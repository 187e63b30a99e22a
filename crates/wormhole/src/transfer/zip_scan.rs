//! The walk of a directory we send ([`ZipPlan::scan`]): symlinks followed (like Python), loops
//! refused, each entry's size, mode and mtime recorded in sorted order. The children of the
//! top directory are walked by up to [`MAX_THREADS`] threads at once (in runs of
//! [`CLAIM`] names) and their results joined in order, so the plan, its skipped entries and the
//! first error are what a walk by one thread gives; a tree of many small files is scanned
//! before the offer, while the peer waits, and one core did it alone.
//!
//! Owns: the walk. Must not: read file contents or build zip bytes (`zip_out`'s).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::fs::{Access, AtFlags, FileType, Mode, OFlags};

use super::TransferError;
use super::zip_out::{ZipEntry, ZipPlan};

const MAX_DEPTH: usize = 256;
/// Most threads walking the top directory's children.
pub const MAX_THREADS: usize = 4;
/// Children of the top directory a thread takes at a time.
pub const CLAIM: usize = 8;

/// Directories on the path from the top to where the walk is (a loop comes back to one).
type Ancestors = HashSet<(u64, u64)>;

/// A directory opened for its entries.
struct Listing {
    id: (u64, u64),
    mode: u32,
    names: Vec<OsString>,
    fd: OwnedFd,
}

impl ZipPlan {
    /// Walk `root`. Unreadable or special files are an error unless `ignore_unsendable`.
    pub fn scan(root: &Path, ignore_unsendable: bool) -> Result<ZipPlan, TransferError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        Self::scan_with(root, ignore_unsendable, threads)
    }

    /// [`ZipPlan::scan`] with `threads` walking the top directory's children.
    pub fn scan_with(root: &Path, ignore: bool, threads: usize) -> Result<ZipPlan, TransferError> {
        let mut plan = ZipPlan {
            entries: Vec::new(),
            skipped: Vec::new(),
        };
        let mut seen = Ancestors::new();
        let Some(top) = plan.list(root, ignore, &mut seen, 0)? else {
            return Ok(plan);
        };
        let runs: Vec<&[OsString]> = top.names.chunks(CLAIM).collect();
        let threads = threads.clamp(1, runs.len().max(1));
        let next = AtomicUsize::new(0);
        let done: Mutex<Vec<(usize, Result<ZipPlan, TransferError>)>> = Mutex::new(Vec::new());
        let work = || {
            let mut seen = seen.clone();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(run) = runs.get(i) else { break };
                let mut part = ZipPlan {
                    entries: Vec::new(),
                    skipped: Vec::new(),
                };
                let r = run
                    .iter()
                    .try_for_each(|n| part.child(&top.fd, root, "", n, ignore, &mut seen, 0))
                    .map(|()| part);
                let failed = r.is_err();
                done.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                if failed {
                    // Later runs are not needed: the first error in order wins, and it is
                    // this one or one before it.
                    next.fetch_max(runs.len(), Ordering::Relaxed);
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        let mut parts = done.into_inner().unwrap_or_else(|p| p.into_inner());
        parts.sort_by_key(|(i, _)| *i);
        for (_, part) in parts {
            let part = part?;
            plan.entries.extend(part.entries);
            plan.skipped.extend(part.skipped);
        }
        Ok(plan)
    }

    fn unsendable(&mut self, path: &Path, reason: String, ignore: bool) -> Result<(), TransferError> {
        if ignore {
            self.skipped.push((path.to_owned(), reason));
            Ok(())
        } else {
            Err(TransferError::Unsendable {
                path: path.to_owned(),
                reason,
            })
        }
    }

    /// Opens `dir` for its sorted entries and adds it to `seen`; `None` if it is skipped.
    fn list(
        &mut self,
        dir: &Path,
        ignore: bool,
        seen: &mut Ancestors,
        depth: usize,
    ) -> Result<Option<Listing>, TransferError> {
        let meta = std::fs::metadata(dir).map_err(TransferError::file(dir))?;
        let id = (meta.dev(), meta.ino());
        if depth > MAX_DEPTH || !seen.insert(id) {
            self.unsendable(dir, "directory loop (symlink cycle) or too deep".into(), ignore)?;
            return Ok(None);
        }
        let opened = std::fs::read_dir(dir).and_then(|rd| {
            let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
            names.sort();
            // Each entry is looked at relative to the directory, opened once: a path walk from
            // the root per call was a large part of scanning a tree of many small files.
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
            let fd = rustix::fs::open(dir, flags, Mode::empty())?;
            Ok((names, fd))
        });
        match opened {
            Ok((names, fd)) => Ok(Some(Listing {
                id,
                mode: meta.permissions().mode() & 0o777,
                names,
                fd,
            })),
            Err(e) => {
                seen.remove(&id);
                self.unsendable(dir, e.to_string(), ignore)?;
                Ok(None)
            }
        }
    }

    fn walk(
        &mut self,
        dir: &Path,
        prefix: &str,
        ignore: bool,
        seen: &mut Ancestors,
        depth: usize,
    ) -> Result<(), TransferError> {
        let Some(listing) = self.list(dir, ignore, seen, depth)? else {
            return Ok(());
        };
        let before = self.entries.len();
        for n in &listing.names {
            self.child(&listing.fd, dir, prefix, n, ignore, seen, depth)?;
        }
        seen.remove(&listing.id);
        if self.entries.len() == before && !prefix.is_empty() {
            self.entries.push(ZipEntry {
                name: prefix.to_owned(),
                source: None,
                size: 0,
                mode: listing.mode,
                mtime: 0,
            });
        }
        Ok(())
    }

    /// The entry `n` of `dir` (open as `dfd`): a file recorded, a directory walked.
    #[allow(clippy::too_many_arguments)]
    fn child(
        &mut self,
        dfd: &OwnedFd,
        dir: &Path,
        prefix: &str,
        n: &OsString,
        ignore: bool,
        seen: &mut Ancestors,
        depth: usize,
    ) -> Result<(), TransferError> {
        let path = dir.join(n);
        let Some(name) = n.to_str() else {
            return self.unsendable(&path, "name is not valid UTF-8".into(), ignore);
        };
        // As `std::fs::metadata`: links are followed.
        let st = match rustix::fs::statat(dfd, name, AtFlags::empty()) {
            Ok(st) => st,
            Err(e) => return self.unsendable(&path, std::io::Error::from(e).to_string(), ignore),
        };
        let rel = format!("{prefix}{name}");
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => self.walk(&path, &format!("{rel}/"), ignore, seen, depth + 1),
            FileType::RegularFile => {
                if let Err(e) = readable(dfd, name, &st) {
                    return self.unsendable(&path, e.to_string(), ignore);
                }
                self.entries.push(ZipEntry {
                    name: rel,
                    source: Some(path),
                    size: u64::try_from(st.st_size).unwrap_or(0),
                    mode: st.st_mode & 0o777,
                    mtime: st.st_mtime,
                });
                Ok(())
            }
            _ => self.unsendable(&path, "not a regular file or directory".into(), ignore),
        }
    }
}

/// Whether we may read the file `name` of `dfd` (stat'ed as `st`). A file of ours with its
/// owner-read bit set is (an ACL cannot take that from the owner), which saves an `access`
/// call for most files; any other asks the kernel.
fn readable(dfd: &OwnedFd, name: &str, st: &rustix::fs::Stat) -> std::io::Result<()> {
    // Our user, if the real and effective ones agree (`access` judges by the real one); asked
    // once, not per file: this process never changes them.
    static USER: OnceLock<Option<u32>> = OnceLock::new();
    let user = *USER.get_or_init(|| {
        let uid = rustix::process::getuid();
        (uid == rustix::process::geteuid()).then(|| uid.as_raw())
    });
    if user == Some(st.st_uid) && st.st_mode & 0o400 != 0 {
        return Ok(());
    }
    rustix::fs::accessat(dfd, name, Access::READ_OK, AtFlags::empty()).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(p: &ZipPlan) -> Vec<(String, u64)> {
        p.entries.iter().map(|e| (e.name.clone(), e.size)).collect()
    }

    #[test]
    fn threads_give_the_plan_one_thread_gives() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..30 {
            let sub = d.path().join(format!("d{i:02}"));
            std::fs::create_dir(&sub).unwrap();
            for j in 0..(i % 4) {
                std::fs::write(sub.join(format!("f{j}")), vec![0; i + j]).unwrap();
            }
            std::fs::write(d.path().join(format!("top{i:02}")), b"x").unwrap();
        }
        std::fs::create_dir_all(d.path().join("d05/deep/er")).unwrap();
        let one = ZipPlan::scan_with(d.path(), false, 1).unwrap();
        assert_eq!(one.entries.len(), 30 + 43 + 8 + 1);
        for threads in [2, 3, 4] {
            let many = ZipPlan::scan_with(d.path(), false, threads).unwrap();
            assert_eq!(names(&many), names(&one), "{threads} threads");
        }
        let mut sorted = names(&one);
        sorted.sort();
        assert_eq!(names(&one), sorted, "in sorted order");
    }

    #[test]
    fn the_first_error_in_order_is_the_one_reported() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        for i in 0..40 {
            std::fs::write(d.path().join(format!("f{i:02}")), b"x").unwrap();
        }
        // Two special entries (dangling links), far apart in sorted order.
        symlink("/nonexistent/a", d.path().join("f05z")).unwrap();
        symlink("/nonexistent/b", d.path().join("f33z")).unwrap();
        for threads in [1, 2, 4] {
            match ZipPlan::scan_with(d.path(), false, threads) {
                Err(TransferError::Unsendable { path, .. }) => assert_eq!(path, d.path().join("f05z")),
                other => panic!("{threads} threads: expected Unsendable, got {other:?}"),
            }
            let kept = ZipPlan::scan_with(d.path(), true, threads).unwrap();
            assert_eq!(kept.entries.len(), 40);
            let skipped: Vec<_> = kept.skipped.iter().map(|(p, _)| p.clone()).collect();
            assert_eq!(skipped, vec![d.path().join("f05z"), d.path().join("f33z")]);
        }
    }

    #[test]
    fn a_loop_below_the_top_is_refused_by_every_thread_count() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        symlink("..", d.path().join("a/b/up")).unwrap();
        for threads in [1, 2] {
            assert!(matches!(
                ZipPlan::scan_with(d.path(), false, threads),
                Err(TransferError::Unsendable { .. })
            ));
        }
    }
}
