//! Fuzz target: the receiver's handling of offered names (`wormhole::transfer::safety`):
//! `safe_basename`, `plan_destination` (against a fixed, empty directory), `escape_control` and
//! `python_repr_text`. A name that passes must be a single, non-empty path component without
//! control characters, and the planned destination must be directly inside the directory.
//! Input that parses as a decrypted transfer message with a file or directory offer also goes
//! through `inspect_offer` (destination, free space, mode) with the temp dir as the working
//! directory; an accepted offer must land directly inside it.
#![no_main]
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use wormhole::transfer::{
    ReceiveOptions, escape_control, inspect_offer, plan_destination, python_repr_text, safe_basename,
};
use wormhole_proto::transfer::{AppMsg, Offer};

fuzz_target!(|data: &[u8]| {
    if let Ok(AppMsg::Offer(offer)) = AppMsg::parse(data) {
        let cwd = std::env::temp_dir();
        let opts = ReceiveOptions {
            cwd: cwd.clone(),
            ..ReceiveOptions::default()
        };
        if let Ok(info) = inspect_offer(&offer, &opts) {
            assert_eq!(info.destination.path.parent(), Some(cwd.as_path()));
            assert!(
                !info.destination.overwrite,
                "overwrite without an explicit output"
            );
            assert_eq!(info.is_directory, matches!(offer, Offer::Directory(_)));
        }
    }
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(name) = safe_basename(s) {
        assert!(!name.is_empty() && name.len() <= 255 && name != "." && name != "..");
        assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'));
        assert!(!name.chars().any(char::is_control), "{name:?}");
        let mut comps = Path::new(&name).components();
        assert!(matches!(comps.next(), Some(Component::Normal(_))) && comps.next().is_none());
        // A directory that does not exist: nothing there can be overwritten.
        let cwd = Path::new("/nonexistent-wormhole-fuzz-dir");
        match plan_destination(s, None, cwd) {
            Ok(d) => {
                assert_eq!(d.path.parent(), Some(cwd), "{:?}", d.path);
                assert!(!d.overwrite);
            }
            Err(e) => panic!("plan_destination refused a safe name {name:?}: {e}"),
        }
    } else {
        assert!(plan_destination(s, None, Path::new("/nonexistent-wormhole-fuzz-dir")).is_err());
    }
    for shown in [escape_control(s), python_repr_text(s)] {
        assert!(
            !shown.chars().any(|c| c.is_control()),
            "control char survived: {shown:?}"
        );
    }
});
