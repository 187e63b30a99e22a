//! The progress display of our `wormhole` (issue 18): on a 50-column terminal (a pty from
//! `script`, `stty cols 50`) no bar line is wider than the terminal, and the transfer ends with
//! the summary line (bytes, time, rate, connection kind); with stderr not a terminal there is no
//! bar and no summary (the Python CLI's output, unchanged).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wormhole_interop::*;

const TIMEOUT: Duration = Duration::from_secs(90);

/// `s` without ANSI escape sequences (`ESC [ … letter`, `ESC letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

#[test]
fn fifty_columns_no_wrap_and_a_summary() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, port) = refusing_port().unwrap();
    let relay = format!("tcp:127.0.0.1:{port}");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("big.bin");
    write_test_file(&path, 4_000_000, 50);
    let code = unique_code();
    let wormhole = our_bin("wormhole");
    let inner = format!(
        "stty cols 50 rows 24; exec {} --relay-url {} --transit-helper {relay} send --classic --no-qr --code {code} {}",
        wormhole.display(),
        server.url(),
        path.display()
    );
    let sender = PeerCommand::new("script")
        .name("sender on a pty")
        .args(["-qfec", &inner, "/dev/null"])
        .timeout(TIMEOUT)
        .spawn();
    let receiver = PeerCommand::new(&wormhole)
        .name("piped receiver")
        .args(["--relay-url", server.url(), "--transit-helper", &relay])
        .args(["receive", "--accept-file", &code])
        .current_dir(dst.path())
        .timeout(TIMEOUT)
        .run();
    let sender = sender.wait();
    sender.assert_success();
    receiver.assert_success();

    let shown = strip_ansi(&sender.stdout);
    let segments: Vec<&str> = shown.split(['\r', '\n']).collect();
    let bars: Vec<&&str> = segments.iter().filter(|s| s.contains("%|")).collect();
    assert!(!bars.is_empty(), "no bar drawn on the pty:\n{shown}");
    for b in &bars {
        assert!(b.chars().count() <= 50, "{} columns: {b:?}", b.chars().count());
    }
    let summary = segments
        .iter()
        .find(|s| s.starts_with("Transferred "))
        .unwrap_or_else(|| panic!("no summary line:\n{shown}"));
    assert!(summary.starts_with("Transferred 4.0 MB in "), "{summary}");
    assert!(summary.contains("/s), direct ("), "{summary}");

    // The receiver's stderr is a pipe: Python's lines only.
    assert!(!receiver.stderr.contains("%|"), "{receiver}");
    assert!(!receiver.stderr.contains("Transferred "), "{receiver}");
    assert!(
        receiver.stderr.contains("Received file written to: "),
        "{receiver}"
    );
}
