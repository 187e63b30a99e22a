//! Locating our own built binaries (`wormhole-server`, `wormhole`) for the interop tests.
//!
//! `CARGO_BIN_EXE_*` only exists for binaries of the test's own package, so the binaries are looked up
//! in the target directory the test binary itself runs from (`target/<profile>/deps/<test>` →
//! `target/<profile>/`). The tests therefore require `cargo build --workspace` (same profile) first;
//! this module never builds anything itself (a nested cargo would wait on the outer one's lock).
//! `$WORMHOLE_BIN_DIR` overrides the directory.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `target/<profile>/` of the running test binary, or `$WORMHOLE_BIN_DIR` if set.
pub fn target_profile_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WORMHOLE_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => panic!("cannot find the running test binary: {e}"),
    };
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Path of our binary `name` (e.g. `"wormhole-server"`, `"wormhole"`). Panics with the command to run
/// if it has not been built; warns on stderr if it is older than the sources of its crate.
pub fn our_bin(name: &str) -> PathBuf {
    let path = target_profile_dir().join(name);
    let Ok(meta) = std::fs::metadata(&path) else {
        panic!(
            "our binary `{name}` is not built at {}. Run `cargo build --workspace` (same profile as the \
             tests) before running the interop tests, or set WORMHOLE_BIN_DIR.",
            path.display()
        );
    };
    let crate_dir = match name {
        "wormhole-server" => Some("crates/server"),
        "wormhole" => Some("crates/cli"),
        _ => None,
    };
    if let (Some(crate_dir), Ok(built)) = (crate_dir, meta.modified()) {
        let src = workspace_root().join(crate_dir).join("src");
        if let Some(newest) = newest_mtime(&src, 0)
            && newest > built
        {
            eprintln!(
                "warning: {} is older than {}; run `cargo build --workspace` to test current code",
                path.display(),
                src.display()
            );
        }
    }
    path
}

fn newest_mtime(dir: &Path, depth: usize) -> Option<SystemTime> {
    if depth > 8 {
        return None;
    }
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let t = if meta.is_dir() {
            newest_mtime(&entry.path(), depth + 1)
        } else {
            meta.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}
