//! The `wormhole` CLI defects found by trying it (issue #9 item 4), each shown with a real
//! process, a real signal, a real pipe or a real terminal:
//! - SIGTERM, SIGHUP and SIGINT during `receive` remove the `.NAME.part-<hex>.tmp` file;
//! - the progress bar stops where the transfer stopped when the peer vanishes (no 100 %);
//! - `wormhole send FILE 2>&1 | head -3` does not panic once the pipe is closed, and the
//!   transfer completes;
//! - standard input is a real input: piped text is sent whole, other bytes as a file, `send -`;
//! - a receiver that gives up before accepting (stdin closed, Ctrl-C at the prompt) tells the
//!   sender, which exits with that reason; Ctrl-C at `ok? (Y/n)` acts at once;
//! - `ssh invite` adds a key once; a missing `~/.ssh` is reported once.
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace --bins` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wormhole_interop::*;

/// Hang guard for every wait below (never a timing assumption).
const LONG: Duration = Duration::from_secs(60);

/// The file the interrupted transfers offer: 2 GiB of holes, far more than passes before the
/// test stops the sender, and free at the source.
const BIG_FILE: u64 = 2 << 30;

/// The receiver's RAM-backed directory: room for [`BIG_FILE`] (its free-space check passes
/// whatever the disk has left), while only what arrives takes memory.
const BIG_FILE_ROOM_MIB: u64 = (BIG_FILE >> 20) + 512;

fn ours(args: &[&str], dir: &Path) -> Command {
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn python(args: &[&str], dir: &Path) -> Command {
    let mut cmd = clean_command(Peers::locate().python_wormhole);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `send --hide-progress --code CODE FILE` through `url`, run by `peer` (ours or Python) in `src`.
fn quiet_file_sender(
    peer: fn(&[&str], &Path) -> Command,
    url: &str,
    code: &str,
    file: &str,
    src: &Path,
    name: &str,
) -> LiveChild {
    let args = [
        "--relay-url",
        url,
        "send",
        "--hide-progress",
        "--code",
        code,
        file,
    ];
    LiveChild::spawn(peer(&args, src), name)
}

/// Our classic sender (`--classic`): between two of ours the Dilated File-Transfer protocol would
/// be used, and these tests are about the classic flow's behaviour.
fn classic_file_sender(url: &str, code: &str, file: &str, src: &Path, name: &str) -> LiveChild {
    let args = [
        "--relay-url",
        url,
        "send",
        "--classic",
        "--hide-progress",
        "--code",
        code,
        file,
    ];
    LiveChild::spawn(ours(&args, src), name)
}

/// A sparse file of `len` bytes (reads as zeros, takes no disk space at the source).
fn sparse_file(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Poll until `dir` has an entry; return it (the receiver's temporary file). A receiver that
/// exits first fails the test at once, with what it printed if `shown` gives it.
fn wait_for_entry(dir: &Path, receiver: &mut ChildGuard, mut shown: impl FnMut() -> String) -> PathBuf {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(e) = std::fs::read_dir(dir).unwrap().flatten().next() {
            return e.path();
        }
        if let Some(st) = receiver.try_wait() {
            panic!(
                "the receiver exited ({st:?}) before anything appeared in {}:\n{}",
                dir.display(),
                shown()
            );
        }
        assert!(Instant::now() < deadline, "nothing appeared in {}", dir.display());
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Start a big file transfer ours → ours, wait until the receiver's temporary file exists,
/// freeze the sender (SIGSTOP) so the transfer is surely mid-way, and return both.
fn transfer_frozen_mid_way(url: &str, src: &Path, dst: &Path) -> (LiveChild, LiveChild) {
    sparse_file(&src.join("big.bin"), BIG_FILE);
    let code = unique_code();
    let sender = classic_file_sender(url, &code, "big.bin", src, "sender");
    let receiver = LiveChild::spawn(
        ours(
            &[
                "--relay-url",
                url,
                "receive",
                "--accept-file",
                "--hide-progress",
                &code,
            ],
            dst,
        ),
        "receiver",
    );
    let mut receiver = receiver;
    let part = {
        let LiveChild { guard, lines, seen } = &mut receiver;
        wait_for_entry(dst, guard, || {
            seen.extend(lines.try_iter().map(|l| l + "\n"));
            seen.clone()
        })
    };
    sender.signal("STOP");
    let name = part.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(".big.bin.part-") && name.ends_with(".tmp"),
        "{name}"
    );
    (sender, receiver)
}

#[test]
fn a_signal_during_receive_removes_the_partial_file() {
    require_netns();
    let server = start_our_mailbox(&[]);
    for (sig, code) in [("TERM", 143), ("HUP", 129), ("INT", 130)] {
        let src = tempfile::tempdir().unwrap();
        let dst = RamDir::new(BIG_FILE_ROOM_MIB);
        let (mut sender, mut receiver) = transfer_frozen_mid_way(server.url(), src.path(), dst.path());
        receiver.signal(sig);
        let st = receiver.exit(LONG);
        assert_eq!(st.code(), Some(code), "signal {sig}: {st:?}\n{}", receiver.seen);
        assert_eq!(
            entries(dst.path()),
            Vec::<String>::new(),
            "signal {sig} left files behind"
        );
        sender.guard.kill();
    }
}

#[test]
fn the_progress_bar_stops_where_the_vanished_peer_left_it() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = RamDir::new(BIG_FILE_ROOM_MIB);
    sparse_file(&src.path().join("big.bin"), BIG_FILE);
    let code = unique_code();
    let mut sender = classic_file_sender(server.url(), &code, "big.bin", src.path(), "sender");
    // The receiver runs on a terminal (script(1) gives it a pseudo-terminal), so it draws its bar.
    let line = format!(
        "stty cols 120 rows 24; exec '{}' --relay-url '{}' receive --accept-file '{code}'",
        our_bin("wormhole").display(),
        server.url()
    );
    let mut cmd = clean_command("script");
    cmd.args(["-qfec", &line, "/dev/null"])
        .current_dir(dst.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut term = ChildGuard::spawn(cmd, "receiver on a terminal");
    let mut out = term.child_mut().stdout.take().unwrap();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = std::thread::spawn({
        let screen = Arc::clone(&screen);
        move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }
    });
    let shown = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    wait_for_entry(dst.path(), &mut term, shown);
    // Let some data through, then the sender vanishes mid-transfer.
    let deadline = Instant::now() + LONG;
    while std::fs::read_dir(dst.path())
        .unwrap()
        .flatten()
        .all(|e| e.metadata().map(|m| m.len()).unwrap_or(0) < 1 << 20)
    {
        assert!(Instant::now() < deadline, "no data arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    sender.guard.kill();
    let st = term.wait_timeout(LONG).expect("receiver hung");
    reader.join().unwrap();
    let shown = shown();
    assert_eq!(st.code(), Some(1), "{st:?}\n{shown}");
    let percents: Vec<u32> = shown
        .split('%')
        .filter_map(|s| {
            let digits: String = s.chars().rev().take_while(char::is_ascii_digit).collect();
            digits.chars().rev().collect::<String>().parse().ok()
        })
        .collect();
    assert!(!percents.is_empty(), "no progress bar drawn:\n{shown}");
    assert!(
        percents.iter().all(|&p| p < 100),
        "bar reached 100 %: {percents:?}\n{shown}"
    );
    assert!(shown.contains("TransferError: peer closed"), "{shown}");
    assert_eq!(entries(dst.path()), Vec::<String>::new());
}

#[test]
fn a_closed_stderr_pipe_does_not_stop_the_sender() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let sent = write_test_file(src.path().join("f.bin"), 100_000, 7);
    let code = unique_code();
    // `wormhole send f.bin 2>&1 | head -3`
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(["--relay-url", server.url(), "send", "--code", &code, "f.bin"])
        .current_dir(src.path())
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let mut sender = ChildGuard::spawn(cmd, "sender");
    let mut head = BufReader::new(reader);
    let mut first = String::new();
    for _ in 0..3 {
        assert!(head.read_line(&mut first).unwrap() > 0, "{first}");
    }
    drop(head); // the pipe is closed now: every later line hits EPIPE
    let mut receiver = LiveChild::spawn(
        ours(
            &[
                "--relay-url",
                server.url(),
                "receive",
                "--accept-file",
                "--hide-progress",
                &code,
            ],
            dst.path(),
        ),
        "receiver",
    );
    let rx = receiver.exit(LONG);
    assert!(rx.success(), "{rx:?}\n{}", receiver.seen);
    assert_eq!(sha256_file(dst.path().join("f.bin")), sent);
    let st = sender.wait_timeout(LONG).expect("sender hung");
    assert_eq!(
        st.code(),
        Some(0),
        "sender: {st:?} (101 = panic); it printed:\n{first}"
    );
}

#[test]
fn a_closed_stdout_refuses_the_text_instead_of_panicking() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let dir = tempfile::tempdir().unwrap();
    let code = unique_code();
    let mut sender = LiveChild::spawn(
        ours(
            &[
                "--relay-url",
                server.url(),
                "send",
                "--code",
                &code,
                "--text",
                "hi",
            ],
            dir.path(),
        ),
        "sender",
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = ours(&["--relay-url", server.url(), "receive", &code], dir.path());
    cmd.stdout(writer);
    let mut receiver = LiveChild::spawn(cmd, "receiver");
    let st = receiver.exit(LONG);
    assert_eq!(st.code(), Some(1), "{st:?}\n{}", receiver.seen);
    assert!(receiver.seen.contains("stdout"), "{}", receiver.seen);
    let st = sender.exit(LONG);
    assert_eq!(st.code(), Some(1), "{st:?}\n{}", sender.seen);
    assert!(sender.seen.contains("transfer rejected"), "{}", sender.seen);
}

/// Our sender with `stdin` piped in, Python's receiver; (sender stderr, receiver stdout).
fn send_stdin(extra: &[&str], stdin: &[u8], dst: &Path) -> (String, String) {
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let mut args = vec!["--relay-url", server.url(), "send", "--code", &code];
    args.extend_from_slice(extra);
    let sender = PeerCommand::new(our_bin("wormhole"))
        .args(&args)
        .stdin(stdin.to_vec())
        .timeout(LONG)
        .spawn();
    let rx = PeerCommand::new(Peers::locate().python_wormhole)
        .args([
            "--relay-url",
            server.url(),
            "receive",
            "--accept-file",
            "--hide-progress",
            &code,
        ])
        .current_dir(dst)
        .timeout(LONG)
        .run();
    let tx = sender.wait();
    rx.assert_success();
    tx.assert_success();
    (tx.stderr, rx.stdout)
}

#[test]
fn piped_stdin_is_sent_whole_as_text_or_as_a_file() {
    require_netns();
    let dst = tempfile::tempdir().unwrap();
    let (said, got) = send_stdin(&[], b"a\nb\n", dst.path());
    // Python's receiver shows text as `repr(text)[1:-1]`.
    assert_eq!(got, "a\\nb\\n\n", "{said}");
    assert!(said.contains("sending it as a text message"), "{said}");

    let (said, got) = send_stdin(&["-"], "-: ünïcode\n".as_bytes(), dst.path());
    assert_eq!(got, "-: ünïcode\\n\n", "{said}");

    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (said, _) = send_stdin(&["-"], &bytes, dst.path());
    assert!(said.contains("sending it as a file named 'stdin'"), "{said}");
    assert_eq!(std::fs::read(dst.path().join("stdin")).unwrap(), bytes);
}

#[test]
fn a_receiver_without_an_answer_tells_the_sender() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("f.bin"), 1000, 1);
    let code = unique_code();
    let mut sender = quiet_file_sender(python, server.url(), &code, "f.bin", src.path(), "python sender");
    // stdin is /dev/null: the `ok? (Y/n)` question gets no answer.
    let mut receiver = LiveChild::spawn(
        ours(&["--relay-url", server.url(), "receive", &code], dst.path()),
        "receiver",
    );
    assert_eq!(receiver.exit(LONG).code(), Some(1), "{}", receiver.seen);
    assert!(
        receiver.seen.contains("standard input is closed"),
        "{}",
        receiver.seen
    );
    assert_eq!(sender.exit(LONG).code(), Some(1), "{}", sender.seen);
    assert!(sender.seen.contains("transfer rejected"), "{}", sender.seen);
    assert!(entries(dst.path()).is_empty());
}

#[test]
fn ctrl_c_at_the_prompt_ends_at_once_and_tells_the_sender() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("f.bin"), 1000, 2);
    let code = unique_code();
    let mut sender = classic_file_sender(server.url(), &code, "f.bin", src.path(), "sender");
    // stdin stays open and silent: the prompt waits for a line that never comes.
    let mut cmd = ours(&["--relay-url", server.url(), "receive", &code], dst.path());
    cmd.stdin(Stdio::piped());
    let mut receiver = LiveChild::spawn(cmd, "receiver");
    let _keep_stdin_open = receiver.guard.child_mut().stdin.take();
    receiver.wait_for("Receiving file", LONG);
    receiver.signal("INT");
    assert_eq!(receiver.exit(LONG).code(), Some(130), "{}", receiver.seen);
    assert_eq!(sender.exit(LONG).code(), Some(1), "{}", sender.seen);
    assert!(
        sender
            .seen
            .contains("remote error, transfer abandoned: transfer rejected: the receiver was interrupted"),
        "{}",
        sender.seen
    );
    assert!(entries(dst.path()).is_empty());
}

#[test]
fn ssh_invite_adds_a_key_once_and_a_missing_ssh_dir_is_said_once() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let inviter_home = tempfile::tempdir().unwrap();
    let accepter = tempfile::tempdir().unwrap();
    let key = accepter.path().join("id.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnce me@there\n").unwrap();
    for round in 0..2 {
        let mut cmd = ours(
            &["--relay-url", server.url(), "ssh", "invite"],
            inviter_home.path(),
        );
        cmd.env("HOME", inviter_home.path());
        let mut invite = LiveChild::spawn(cmd, "ssh invite");
        let line = invite.wait_for("wormhole ssh accept", LONG);
        let code = line.split_whitespace().nth(3).unwrap().to_owned();
        let mut cmd = ours(
            &[
                "--relay-url",
                server.url(),
                "ssh",
                "accept",
                &code,
                "-F",
                key.to_str().unwrap(),
                "--yes",
            ],
            accepter.path(),
        );
        cmd.env("HOME", accepter.path());
        let mut accept = LiveChild::spawn(cmd, "ssh accept");
        assert!(accept.exit(LONG).success(), "{}", accept.seen);
        assert!(invite.exit(LONG).success(), "{}", invite.seen);
        if round == 1 {
            assert!(invite.seen.contains("not added again"), "{}", invite.seen);
        }
    }
    let auth = std::fs::read_to_string(inviter_home.path().join(".ssh/authorized_keys")).unwrap();
    assert_eq!(auth, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnce me@there\n");

    // `ssh accept` with no ~/.ssh: one clear message, before any network traffic.
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = ours(
        &["--relay-url", server.url(), "ssh", "accept", "5-purple-sausages"],
        empty.path(),
    );
    cmd.env("HOME", empty.path());
    let mut accept = LiveChild::spawn(cmd, "ssh accept");
    assert_eq!(accept.exit(LONG).code(), Some(1), "{}", accept.seen);
    assert!(accept.seen.contains("Can't find"), "{}", accept.seen);
    assert!(
        accept.seen.matches("No such file or directory").count() <= 1,
        "{}",
        accept.seen
    );
}
