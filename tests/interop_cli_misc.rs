//! The `wormhole` CLI's other paths, against Python 0.24 on our mailbox server: a code typed on
//! stdin, `receive --allocate`, `-0`, `--verify` (yes and no), `--text -`, a wrong code, the
//! `ok? (Y/n)` refusal, `--dump-timing`, and `ssh invite`/`ssh accept` in both directions.
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use wormhole_interop::*;

fn ours() -> PeerCommand {
    PeerCommand::new(our_bin("wormhole")).timeout(Duration::from_secs(60))
}

/// Our `send --verify --text v` on `code`, answering the verifier prompt with `answer`.
fn verifying_sender(url: &str, code: &str, answer: &str) -> RunningPeer {
    ours()
        .args([
            "--relay-url",
            url,
            "send",
            "--verify",
            "--code",
            code,
            "--text",
            "v",
        ])
        .stdin(format!("{answer}\n"))
        .spawn()
}

fn python() -> PeerCommand {
    PeerCommand::new(Peers::locate().python_wormhole).timeout(Duration::from_secs(60))
}

/// Start `program args` (with `HOME=home` when given), its lines read as they are printed.
fn live(program: &std::path::Path, args: &[&str], home: Option<&std::path::Path>) -> LiveChild {
    let mut cmd = clean_command(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(h) = home {
        cmd.env("HOME", h);
    }
    LiveChild::spawn(cmd, "live")
}

/// How long [`LiveChild::wait_for`] waits for a line here.
const LINE_WAIT: Duration = Duration::from_secs(30);

/// Wait for exit; true on success. Collects the remaining output into `seen`.
fn finish(live: &mut LiveChild) -> bool {
    let st = live.guard.wait_timeout(Duration::from_secs(60));
    // The readers end (and the channel disconnects) once the pipes close; bounded in case a
    // grandchild keeps one open.
    while let Ok(l) = live.lines.recv_timeout(Duration::from_secs(5)) {
        live.note(&l);
    }
    st.is_some_and(|s| s.success())
}

#[test]
fn code_typed_on_stdin() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let sender = python()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--code",
            &code,
            "--text",
            "typed",
        ])
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let out = ours()
        .args(["--relay-url", server.url(), "receive"])
        .stdin(format!("{code}\n"))
        .run();
    out.assert_success();
    sender.wait().assert_success();
    assert_eq!(out.stdout, "typed\n");
    assert!(out.stderr.contains("use <Tab> to complete"), "{out}");
}

#[test]
fn receive_allocates_the_code() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let mut rx = live(
        &our_bin("wormhole"),
        &["--relay-url", server.url(), "receive", "--allocate", "-c", "3"],
        None,
    );
    let line = rx.wait_for("wormhole send --code", LINE_WAIT);
    let code = line.split_whitespace().nth(3).unwrap().to_owned();
    assert_eq!(code.split('-').count(), 4, "three words: {code}");
    python()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--code",
            &code,
            "--text",
            "allocated",
        ])
        .run()
        .assert_success();
    assert!(finish(&mut rx), "{}", rx.seen);
    assert!(rx.seen.contains("allocated\n"), "{}", rx.seen);
}

#[test]
fn zero_mode_both_ways() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let sender = ours()
        .args(["--relay-url", server.url(), "send", "-0", "--text", "zero"])
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let out = python()
        .args(["--relay-url", server.url(), "receive", "-0"])
        .run();
    out.assert_success();
    sender.wait().assert_success();
    assert_eq!(out.stdout, "zero\n");
}

#[test]
fn verify_yes_shows_the_same_verifier() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let sender = verifying_sender(server.url(), &code, "yes");
    std::thread::sleep(Duration::from_millis(300));
    let rx = python()
        .args(["--relay-url", server.url(), "receive", "--verify", &code])
        .run();
    let tx = sender.wait();
    rx.assert_success();
    tx.assert_success();
    let verifier = rx
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Verifier ")
                .map(|v| v.trim_end_matches('.').to_owned())
        })
        .expect("python printed a verifier");
    assert_eq!(verifier.len(), 64);
    assert!(
        tx.stderr.contains(&format!("Verifier {verifier}. ok? (yes/no)")),
        "{tx}"
    );
}

#[test]
fn verify_no_abandons_the_transfer() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let sender = verifying_sender(server.url(), &code, "no");
    std::thread::sleep(Duration::from_millis(300));
    let rx = python()
        .args(["--relay-url", server.url(), "receive", &code])
        .run();
    let tx = sender.wait();
    assert!(
        !tx.success() && tx.status.and_then(|s| s.code()) == Some(1),
        "{tx}"
    );
    assert!(!rx.success(), "{rx}");
    assert!(rx.stderr.contains("sender rejected verification check"), "{rx}");
    assert!(rx.stdout.is_empty(), "text leaked: {rx}");
}

#[test]
fn text_from_stdin() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let sender = ours()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--code",
            &code,
            "--text",
            "-",
        ])
        .stdin("line one\nline two\n")
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let rx = python()
        .args(["--relay-url", server.url(), "receive", &code])
        .run();
    rx.assert_success();
    sender.wait().assert_success();
    assert_eq!(rx.stdout, "line one\\nline two\\n\n");
}

#[test]
fn wrong_code_is_reported_clearly() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let wrong = format!("{}-wrong-words", code.split('-').next().unwrap());
    let sender = python()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--code",
            &code,
            "--text",
            "secret",
        ])
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let rx = ours()
        .args(["--relay-url", server.url(), "receive", &wrong])
        .run();
    let tx = sender.wait();
    assert_eq!(rx.status.and_then(|s| s.code()), Some(1), "{rx}");
    assert!(rx.stderr.contains("ERROR: Key confirmation failed."), "{rx}");
    assert!(rx.stdout.is_empty(), "{rx}");
    assert!(!tx.success(), "{tx}");
}

#[test]
fn answering_no_rejects_the_file() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    write_test_file(src.path().join("f.bin"), 1000, 3);
    let code = unique_code();
    let sender = python()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--hide-progress",
            "--no-qr",
            "--code",
            &code,
            "f.bin",
        ])
        .current_dir(src.path())
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let rx = ours()
        .args(["--relay-url", server.url(), "receive", &code])
        .current_dir(dst.path())
        .stdin("n\n")
        .run();
    let tx = sender.wait();
    assert_eq!(rx.status.and_then(|s| s.code()), Some(1), "{rx}");
    assert!(rx.stderr.contains("ok? (Y/n)"), "{rx}");
    assert!(tx.stderr.contains("transfer rejected"), "{tx}");
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);
}

#[test]
fn dump_timing_writes_json() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let dir = tempfile::tempdir().unwrap();
    let code = unique_code();
    let timing = dir.path().join("t.json");
    let sender = python()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--code",
            &code,
            "--text",
            "t",
        ])
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    ours()
        .arg("--dump-timing")
        .arg(&timing)
        .args(["--relay-url", server.url(), "receive", &code])
        .run()
        .assert_success();
    sender.wait().assert_success();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&timing).unwrap()).unwrap();
    let text = v.to_string();
    assert!(v.is_array() || v.is_object(), "{text}");
    assert!(text.contains("ws_send") || text.contains("ws_receive"), "{text}");
}

const PUBKEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhL0dmxLAlCnSz5qnJkT1kwCCExampleKey0000 tester@example\n";

#[test]
fn ssh_invite_ours_accept_python() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let home = tempfile::tempdir().unwrap();
    let keydir = tempfile::tempdir().unwrap();
    std::fs::write(keydir.path().join("id_ed25519.pub"), PUBKEY).unwrap();
    let mut inv = live(
        &our_bin("wormhole"),
        &["--relay-url", server.url(), "ssh", "invite"],
        Some(home.path()),
    );
    let line = inv.wait_for("wormhole ssh accept", LINE_WAIT);
    let code = line.split_whitespace().last().unwrap().to_owned();
    python()
        .args(["--relay-url", server.url(), "ssh", "accept", "-y", "-F"])
        .arg(keydir.path()) // Python's -F takes a directory of *.pub files
        .arg(&code)
        .run()
        .assert_success();
    assert!(finish(&mut inv), "{}", inv.seen);
    assert_eq!(
        std::fs::read_to_string(home.path().join(".ssh/authorized_keys")).unwrap(),
        PUBKEY
    );
    assert!(
        inv.seen
            .contains("Appended key type='ssh-ed25519' id='tester@example'"),
        "{}",
        inv.seen
    );
}

#[test]
fn ssh_invite_python_accept_ours() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let home = tempfile::tempdir().unwrap();
    // Python's invite gives up when ~/.ssh cannot be listed.
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let keyhome = tempfile::tempdir().unwrap();
    std::fs::create_dir(keyhome.path().join(".ssh")).unwrap();
    std::fs::write(keyhome.path().join(".ssh/id_ed25519.pub"), PUBKEY).unwrap();
    let mut inv = live(
        &Peers::locate().python_wormhole,
        &["--relay-url", server.url(), "ssh", "invite"],
        Some(home.path()),
    );
    let line = inv.wait_for("wormhole ssh accept", LINE_WAIT);
    let code = line.split_whitespace().last().unwrap().to_owned();
    let acc = ours()
        .args(["--relay-url", server.url(), "ssh", "accept", "-y", &code])
        .env("HOME", keyhome.path())
        .run();
    acc.assert_success();
    assert!(acc.stdout.contains("Key sent."), "{acc}");
    assert!(finish(&mut inv), "{}", inv.seen);
    assert_eq!(
        std::fs::read_to_string(home.path().join(".ssh/authorized_keys")).unwrap(),
        PUBKEY
    );
}

/// Drives `wormhole receive` on a pseudo-terminal: waits for the prompt, types part of the nameplate
/// and of each word, pressing Tab after each and waiting until the terminal shows the completion, then
/// Return; then reads until the program exits. Every wait is for output (30 s hang guard each, then it
/// gives up: exit status 3). Prints everything the terminal showed.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, time
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def pump_until(want, guard=30.0):
    # Read until `want` shows up after position `mark` (None: until the terminal closes).
    global out
    mark = len(out)
    end = time.time() + guard
    while time.time() < end:
        if want is not None and want in out[mark:]:
            return True
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                return want is None
            out += chunk
    return False
np, full = os.environ["NP"].encode(), os.environ["FULL_NP"].encode()
steps = (
    (b"Enter receive wormhole code: ", np + b"\t"),
    (full + b"-", b"retrie\t"),
    (b"retrieval-", b"guid\t"),
    (b"guidance", b"\r"),
)
status = 0
for want, keys in steps:
    if not pump_until(want):
        sys.stderr.write("pty driver: no %r on the terminal\n" % want)
        status = 3
        break
    os.write(fd, keys)
if not pump_until(None, 60.0):
    sys.stderr.write("pty driver: the program did not exit\n")
    status = 3
if status:
    os.kill(pid, 9)
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(status)
"#;

/// Poll the mailbox's `list` (as a client of the CLI's AppID would) until `nameplate` is in it;
/// panics after 30 s.
fn wait_until_listed(url: &str, nameplate: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let bind = serde_json::json!({"type": "bind", "appid": APPID, "side": "listprobe"});
        ws.send(Message::text(bind.to_string())).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let list = serde_json::json!({"type": "list"});
            ws.send(Message::text(list.to_string())).await.unwrap();
            loop {
                let frame = tokio::time::timeout_at(deadline, ws.next())
                    .await
                    .unwrap_or_else(|_| panic!("nameplate {nameplate} not listed within 30 s"))
                    .expect("mailbox closed")
                    .unwrap();
                let Message::Text(t) = frame else { continue };
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "nameplates" {
                    continue;
                }
                let listed = v["nameplates"].as_array().into_iter().flatten();
                if listed.into_iter().any(|n| n["id"] == nameplate) {
                    return;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn interactive_code_entry_completes_nameplate_and_words() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let nameplate = unique_code().split('-').next().unwrap().to_owned();
    let code = format!("{nameplate}-retrieval-guidance");
    let sender = ours()
        .args([
            "--relay-url",
            server.url(),
            "send",
            "--no-qr",
            "--code",
            &code,
            "--text",
            "via a tty",
        ])
        .spawn();
    // Tab completes from the server's nameplate list: wait until the sender has claimed it.
    wait_until_listed(server.url(), &nameplate);
    // Type all but the last digit of the nameplate: Tab must complete it from the server's list.
    let partial = &nameplate[..nameplate.len() - 1];
    let shown = PeerCommand::new(Peers::locate().python)
        .args(["-c", PTY_DRIVER])
        .arg(our_bin("wormhole"))
        .args(["--relay-url", server.url(), "receive"])
        .env("NP", partial)
        .env("FULL_NP", &nameplate)
        .timeout(Duration::from_secs(240))
        .run();
    let tx = sender.wait();
    shown.assert_success();
    tx.assert_success();
    assert!(shown.stdout.contains(&format!("{nameplate}-")), "{shown}");
    assert!(shown.stdout.contains(&code), "words not completed:\n{shown}");
    assert!(shown.stdout.contains("via a tty"), "{shown}");
}

#[test]
fn custom_appid_file_transfer_with_python() {
    // Python derives the transit key from the default AppID even with --appid; so must we.
    require_netns();
    let server = start_our_mailbox(&[]);
    let appid = "example.com/custom-app";
    for ours_sends in [true, false] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let sha = write_test_file(src.path().join("f.bin"), 200_000, 11);
        let code = unique_code();
        let (snd, rcv) = if ours_sends {
            (ours(), python())
        } else {
            (python(), ours())
        };
        let sender = snd
            .args([
                "--appid",
                appid,
                "--relay-url",
                server.url(),
                "send",
                "--hide-progress",
                "--no-qr",
                "--code",
                &code,
                "f.bin",
            ])
            .current_dir(src.path())
            .spawn();
        std::thread::sleep(Duration::from_millis(300));
        let rx = rcv
            .args([
                "--appid",
                appid,
                "--relay-url",
                server.url(),
                "receive",
                "--accept-file",
                "--hide-progress",
                &code,
            ])
            .current_dir(dst.path())
            .run();
        let tx = sender.wait();
        rx.assert_success();
        tx.assert_success();
        assert_eq!(sha256_file(dst.path().join("f.bin")), sha);
    }
}
