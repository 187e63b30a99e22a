//! Fuzz target: checked extraction of a received directory zip (`wormhole::transfer::zip_in`).
//!
//! Input: byte 0 = declared file count (0..=255), bytes 1..4 = declared byte total (0..=16 MiB,
//! which also bounds the work per run), the rest = the zip. Extraction goes into a subdirectory of
//! a fresh temp dir. When it succeeds, the tree must hold exactly the counted regular files and
//! bytes, no symlinks, and nothing may appear outside the target subdirectory; the entry-name
//! check must never accept an absolute or `..` path.
#![no_main]
use std::io::Cursor;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wormhole::transfer::zip_in::{checked_name, extract};

/// (regular files, bytes) under `dir`; panics on anything but files and directories.
fn walk(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        panic!("cannot list {}", dir.display())
    };
    for e in rd.flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() {
            let (f, b) = walk(&e.path());
            files += f;
            bytes += b;
        } else {
            assert!(
                m.is_file(),
                "extracted a non-regular entry: {}",
                e.path().display()
            );
            files += 1;
            bytes += m.len();
        }
    }
    (files, bytes)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let max_files = u64::from(data[0]);
    let max_bytes = u64::from(u32::from_le_bytes([data[1], data[2], data[3], 0]));
    let zip = &data[4..];

    if let Ok(s) = std::str::from_utf8(zip) {
        if let Ok(p) = checked_name(s) {
            assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{p:?}");
        }
    }

    let Ok(root) = tempfile::tempdir() else { return };
    let into = root.path().join("into");
    if std::fs::create_dir(&into).is_err() {
        return;
    }
    let result = extract(Cursor::new(zip), &into, max_files, max_bytes);
    // Nothing outside the target directory, whatever the outcome.
    let outside: Vec<_> = std::fs::read_dir(root.path())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("into")],
        "wrote outside the target"
    );
    if let Ok((files, bytes)) = result {
        assert!(files <= max_files && bytes <= max_bytes, "limits exceeded");
        assert_eq!(
            walk(&into),
            (files, bytes),
            "reported counts differ from the tree"
        );
    }
});
