//! `wormhole send` / `receive` between two of ours, which speak the Dilated File-Transfer
//! protocol (transfer-v2, docs/dilated-transfer.md): one file, a tree of 10,000 small files, an
//! empty file, an empty directory, several paths, a stream from stdin, refused offers, and
//! resume after either side was killed (and a changed file, which starts over).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build -p wormhole-cli -p wormhole-server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use wormhole_interop::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn ours(server: &MailboxServer, dir: &Path, name: &str) -> PeerCommand {
    PeerCommand::new(our_bin("wormhole"))
        .name(name)
        .args(["--relay-url", server.url()])
        .current_dir(dir)
        .timeout(TIMEOUT)
}

fn sender(server: &MailboxServer, dir: &Path, code: &str, args: &[&str]) -> PeerCommand {
    ours(server, dir, "our sender")
        .args(["send", "--code", code, "--hide-progress", "--no-qr"])
        .args(args)
}

fn receiver(server: &MailboxServer, dir: &Path, code: &str, args: &[&str]) -> PeerCommand {
    ours(server, dir, "our receiver")
        .args(["receive", "--hide-progress"])
        .args(args)
        .arg(code)
}

/// Send `paths` from `src` into `dst`, both accepting; both must succeed.
fn transfer(src: &Path, dst: &Path, paths: &[&str]) -> (PeerOutput, PeerOutput) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src, &code, paths).spawn();
    let r = receiver(&server, dst, &code, &["--accept-file"]).run();
    let s = s.wait();
    s.assert_success();
    r.assert_success();
    assert!(
        s.stderr.contains("Dilated File-Transfer"),
        "not over transfer-v2:\n{s}"
    );
    (s, r)
}

fn no_leftovers(dst: &Path) {
    for e in std::fs::read_dir(dst).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.contains("wormhole-partial"), "left behind: {n}");
    }
}

/// The last JSON line with `"event": "done"` (or `"error"`).
fn json_end(out: &PeerOutput) -> Value {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|v| v["event"] == "done" || v["event"] == "error")
        .unwrap_or_else(|| panic!("no done/error event:\n{out}"))
}

#[test]
fn one_file() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let sha = write_test_file(src.path().join("one.bin"), 5_000_011, 1);
    let (_, r) = transfer(src.path(), dst.path(), &["one.bin"]);
    assert_eq!(sha256_file(dst.path().join("one.bin")), sha);
    assert!(r.stderr.contains("Received file written to:"), "{r}");
    no_leftovers(dst.path());
}

#[test]
fn empty_file_and_empty_directory() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("empty.txt"), b"").unwrap();
    std::fs::create_dir(src.path().join("nothing")).unwrap();
    transfer(src.path(), dst.path(), &["empty.txt", "nothing"]);
    assert_eq!(std::fs::metadata(dst.path().join("empty.txt")).unwrap().len(), 0);
    assert!(dst.path().join("nothing").is_dir());
    assert_eq!(std::fs::read_dir(dst.path().join("nothing")).unwrap().count(), 0);
    no_leftovers(dst.path());
}

#[test]
fn several_paths_with_a_tree_and_its_empty_subdirectory() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("a.bin"), 100_000, 2);
    write_test_file(src.path().join("b.bin"), 70_000, 3);
    let tree = make_test_tree(src.path().join("tree"));
    std::fs::create_dir_all(src.path().join("tree/hollow/inner")).unwrap();
    let (s, r) = transfer(src.path(), dst.path(), &["a.bin", "tree", "b.bin"]);
    assert_eq!(
        sha256_file(dst.path().join("a.bin")),
        sha256_file(src.path().join("a.bin"))
    );
    assert_eq!(
        sha256_file(dst.path().join("b.bin")),
        sha256_file(src.path().join("b.bin"))
    );
    assert_eq!(
        dir_tree(dst.path().join("tree")),
        dir_tree(src.path().join("tree"))
    );
    assert!(tree.len() > 1);
    assert!(dst.path().join("tree/hollow/inner").is_dir());
    assert_eq!(r.stderr.matches("written to:").count(), 3, "{r}");
    assert_eq!(s.stderr.matches("confirmed").count(), 3, "{s}");
}

#[test]
fn ten_thousand_small_files() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let root = src.path().join("many");
    for d in 0..100 {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let body = format!("file {d}/{f} ").repeat(1 + (d * 7 + f) % 40);
            std::fs::write(dir.join(format!("f{f:03}.txt")), body).unwrap();
        }
    }
    // Among the small files (sent several to a bundle), files around the bundle's size limit
    // and larger ones (sent record by record), and an empty one: the two ways interleave.
    for (i, size) in [0usize, 65_000, 65_400, 65_536, 200_000, 7]
        .into_iter()
        .enumerate()
    {
        let body: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        std::fs::write(root.join("d050").join(format!("edge{i}.bin")), body).unwrap();
    }
    let started = Instant::now();
    let (_, r) = transfer(src.path(), dst.path(), &["many"]);
    let took = started.elapsed();
    eprintln!("10,006 files ours->ours over transfer-v2: {took:.2?}");
    assert_eq!(dir_tree(dst.path().join("many")), dir_tree(&root));
    assert!(r.stderr.contains("10006 files"), "{r}");
    no_leftovers(dst.path());
}

#[test]
fn stdin_is_streamed_under_its_name() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["--name", "x.tar", "-"])
        .stdin(data.clone())
        .spawn();
    let r = receiver(&server, dst.path(), &code, &["--accept-file"]).run();
    let s = s.wait();
    s.assert_success();
    r.assert_success();
    assert!(r.stderr.contains("stream of unknown length"), "{r}");
    assert_eq!(std::fs::read(dst.path().join("x.tar")).unwrap(), data);
}

#[test]
fn offers_refused_by_the_user_and_by_the_rules() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("yes.bin"), 10_000, 4);
    write_test_file(src.path().join("no.bin"), 10_000, 5);
    write_test_file(src.path().join("exists.bin"), 10_000, 6);
    std::fs::write(dst.path().join("exists.bin"), b"precious").unwrap();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["yes.bin", "no.bin", "exists.bin"]).spawn();
    let r = receiver(&server, dst.path(), &code, &[]).stdin("y\nn\n").run();
    let s = s.wait();
    assert!(!s.success(), "the sender must report the refusals:\n{s}");
    assert!(
        s.stderr
            .contains("The receiver refused 'no.bin': transfer rejected"),
        "{s}"
    );
    assert!(s.stderr.contains("refusing to overwrite"), "{s}");
    assert!(!r.success(), "{r}");
    assert!(r.stderr.contains("refusing to overwrite"), "{r}");
    assert_eq!(
        sha256_file(dst.path().join("yes.bin")),
        sha256_file(src.path().join("yes.bin"))
    );
    assert!(!dst.path().join("no.bin").exists());
    assert_eq!(std::fs::read(dst.path().join("exists.bin")).unwrap(), b"precious");
    no_leftovers(dst.path());
}

#[test]
fn classic_is_forced_with_the_flag() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let sha = write_test_file(src.path().join("c.bin"), 200_000, 7);
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["--classic", "c.bin"]).spawn();
    let r = receiver(&server, dst.path(), &code, &["--accept-file"]).run();
    let s = s.wait();
    s.assert_success();
    r.assert_success();
    assert!(!s.stderr.contains("Dilated"), "{s}");
    assert!(
        s.stderr.contains("Sending ("),
        "classic transit line missing:\n{s}"
    );
    assert_eq!(sha256_file(dst.path().join("c.bin")), sha);
    // Several paths to a classic peer: a clear refusal.
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["c.bin", "c.bin"]).spawn();
    let r = receiver(&server, dst.path(), &code, &["--classic", "--accept-file"]).run();
    let s = s.wait();
    assert!(!s.success());
    assert!(s.stderr.contains("one file or directory per wormhole"), "{s}");
    assert!(!r.success());
}

// ---- resume ----

fn kill(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits until the receiver's partial file holds at least `at` bytes.
fn wait_partial(dst: &Path, name: &str, at: u64) -> u64 {
    let p = dst.join(format!(".{name}.wormhole-partial"));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(m) = std::fs::metadata(&p)
            && m.len() >= at
        {
            return m.len();
        }
        assert!(Instant::now() < deadline, "partial file never reached {at} bytes");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const RESUME_SIZE: usize = 64 << 20;

/// First run: interrupted at ~40 % by killing `victim` ("receiver" or "sender"; the other is
/// then stopped as a user would). Second run: complete. Returns (bytes the second sender sent,
/// the partial length before it).
fn interrupted_then_resumed(victim: &str, change: bool) -> (u64, u64, PeerOutput, PeerOutput) {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut sha = write_test_file(src.path().join("big.bin"), RESUME_SIZE, 11);
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["big.bin"]).spawn();
    let r = receiver(&server, dst.path(), &code, &["--accept-file"]).spawn();
    wait_partial(dst.path(), "big.bin", (RESUME_SIZE as u64) * 2 / 5);
    if victim == "receiver" {
        kill(r.pid(), "-KILL");
        kill(s.pid(), "-KILL");
    } else {
        kill(s.pid(), "-KILL");
        // The receiver waits for the sender to come back; the user presses Ctrl-C.
        kill(r.pid(), "-INT");
    }
    let (s, r) = (s.wait(), r.wait());
    assert!(!s.success() && !r.success());
    let partial = std::fs::metadata(dst.path().join(".big.bin.wormhole-partial"))
        .unwrap()
        .len();
    assert!(partial > 0 && partial < RESUME_SIZE as u64, "{partial}");
    if change {
        // Same size, new bytes at the start: the prefix check must fail.
        sha = write_test_file(src.path().join("big.bin"), RESUME_SIZE, 12);
    }
    let code = unique_code();
    let s = ours(&server, src.path(), "our sender")
        .args(["--json", "send", "--code", &code, "--no-qr", "big.bin"])
        .spawn();
    let r = receiver(&server, dst.path(), &code, &["--accept-file"]).run();
    let s = s.wait();
    s.assert_success();
    r.assert_success();
    assert_eq!(sha256_file(dst.path().join("big.bin")), sha);
    no_leftovers(dst.path());
    let sent = json_end(&s)["bytes"].as_u64().unwrap();
    (sent, partial, s, r)
}

#[test]
fn resume_after_the_receiver_was_killed() {
    let (sent, partial, _, r) = interrupted_then_resumed("receiver", false);
    eprintln!(
        "receiver killed: partial {partial} of {RESUME_SIZE}; second run sent {sent} bytes ({:.1} %)",
        sent as f64 * 100.0 / RESUME_SIZE as f64
    );
    assert_eq!(sent, RESUME_SIZE as u64 - partial);
    assert!(r.stderr.contains("resumed at byte"), "{r}");
}

#[test]
fn resume_after_the_sender_was_killed() {
    let (sent, partial, _, _) = interrupted_then_resumed("sender", false);
    eprintln!(
        "sender killed: partial {partial} of {RESUME_SIZE}; second run sent {sent} bytes ({:.1} %)",
        sent as f64 * 100.0 / RESUME_SIZE as f64
    );
    assert_eq!(sent, RESUME_SIZE as u64 - partial);
}

#[test]
fn a_changed_file_starts_over() {
    let (sent, _, s, _) = interrupted_then_resumed("receiver", true);
    assert_eq!(sent, RESUME_SIZE as u64);
    assert!(s.stderr.contains("differs from this file"), "{s}");
}

#[test]
fn declining_a_resumable_offer_removes_the_partial_file() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("p.bin"), 100_000, 13);
    std::fs::write(dst.path().join(".p.bin.wormhole-partial"), vec![0u8; 500]).unwrap();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let s = sender(&server, src.path(), &code, &["p.bin"]).spawn();
    let r = receiver(&server, dst.path(), &code, &[]).stdin("n\n").run();
    let s = s.wait();
    assert!(!s.success() && !r.success());
    assert!(r.stderr.contains("partial download of it holds 500 bytes"), "{r}");
    assert!(!dst.path().join(".p.bin.wormhole-partial").exists());
    assert!(!dst.path().join("p.bin").exists());
}
