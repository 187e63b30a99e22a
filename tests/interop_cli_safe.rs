//! Safe receive at the CLI level: `wormhole receive` never overwrites or follows an existing file
//! unless `-o` names that path explicitly (accepting a transfer is not consent to overwrite), and
//! `-o DIR` puts the file inside an existing directory. The sender is Python 0.24, so the
//! rejection is also seen on the wire (`transfer rejected`).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_cli_common.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use wormhole_interop::*;

/// Send `payload.bin` (1 MB) from Python; run our receiver in `dst` with `extra` arguments.
/// Returns (sender, receiver, sha256 of the sent file).
fn python_sends_to_ours(dst: &Path, extra: &[&str]) -> (PeerOutput, PeerOutput, String) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let sha = write_test_file(src.path().join("payload.bin"), 1_000_003, 9);
    let code = unique_code();
    let sender = PeerCommand::new(Peers::locate().python_wormhole)
        .args(Peers::python_global_args(server.url(), None))
        .args([
            "send",
            "--code",
            &code,
            "--hide-progress",
            "--no-qr",
            "payload.bin",
        ])
        .current_dir(src.path())
        .timeout(Duration::from_secs(60))
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let receiver = PeerCommand::new(our_bin("wormhole"))
        .args([
            "--relay-url",
            server.url(),
            "receive",
            "--accept-file",
            "--hide-progress",
        ])
        .args(extra)
        .arg(&code)
        .current_dir(dst)
        .timeout(Duration::from_secs(60))
        .run();
    (sender.wait(), receiver, sha)
}

#[test]
fn existing_file_is_never_overwritten_without_o() {
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(dst.path().join("payload.bin"), b"precious").unwrap();
    let (sender, receiver, _) = python_sends_to_ours(dst.path(), &[]);
    assert!(!receiver.success(), "receiver should fail:\n{receiver}");
    assert!(
        receiver.stderr.contains("refusing to overwrite"),
        "no clear message:\n{receiver}"
    );
    assert!(!sender.success(), "sender should see the rejection:\n{sender}");
    assert!(sender.stderr.contains("transfer rejected"), "{sender}");
    assert_eq!(
        std::fs::read(dst.path().join("payload.bin")).unwrap(),
        b"precious"
    );
    let names: Vec<_> = std::fs::read_dir(dst.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "stray files left behind: {names:?}");
}

#[test]
fn existing_symlink_is_not_followed() {
    let dst = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"do not touch").unwrap();
    std::os::unix::fs::symlink(&victim, dst.path().join("payload.bin")).unwrap();
    let (_, receiver, _) = python_sends_to_ours(dst.path(), &[]);
    assert!(!receiver.success(), "receiver should fail:\n{receiver}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    assert!(
        std::fs::symlink_metadata(dst.path().join("payload.bin"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn dash_o_names_the_file_explicitly_so_it_is_replaced() {
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(dst.path().join("mine.bin"), b"old").unwrap();
    let (sender, receiver, sha) = python_sends_to_ours(dst.path(), &["-o", "mine.bin"]);
    receiver.assert_success();
    sender.assert_success();
    assert_eq!(sha256_file(dst.path().join("mine.bin")), sha);
    assert!(receiver.stderr.contains("Overwriting"), "{receiver}");
}

#[test]
fn dash_o_existing_directory_receives_inside_it() {
    let dst = tempfile::tempdir().unwrap();
    std::fs::create_dir(dst.path().join("inbox")).unwrap();
    let (sender, receiver, sha) = python_sends_to_ours(dst.path(), &["-o", "inbox"]);
    receiver.assert_success();
    sender.assert_success();
    assert_eq!(sha256_file(dst.path().join("inbox/payload.bin")), sha);
}

#[test]
fn fresh_name_is_written() {
    let dst = tempfile::tempdir().unwrap();
    let (sender, receiver, sha) = python_sends_to_ours(dst.path(), &[]);
    receiver.assert_success();
    sender.assert_success();
    assert_eq!(sha256_file(dst.path().join("payload.bin")), sha);
    assert!(receiver.stderr.contains("Received file written to"), "{receiver}");
}
