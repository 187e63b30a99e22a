//! Shared plumbing of the `interop_cli_*` tests (included with `#[path]`, not a test target of its
//! own): how to run each CLI (ours, Python, Go, Rust) as a sender or receiver of text, a file or a
//! directory, and how to check what arrived.
//!
//! It builds command lines and compares results only; spawning and killing is the harness's job.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use wormhole_interop::*;

/// Which CLI plays a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cli {
    /// Our `wormhole`.
    Ours,
    /// Python magic-wormhole 0.24.
    Python,
    /// wormhole-william.
    Go,
    /// wormhole-rs 0.8.1.
    Rs,
}

/// What is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// A text message.
    Text,
    /// A 1 MB file.
    File,
    /// A small directory tree.
    Dir,
}

/// Which mailbox server a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Our `wormhole-server mailbox`.
    Ours,
    /// Python `twist wormhole-mailbox`.
    Python,
}

/// The text every text case sends: control characters, both quotes, a backslash, non-ASCII.
pub const TEXT: &str =
    "hello from the wormhole: tab\there, quote ' and \"dq\", backslash \\ and \u{e9}\nsecond line";

/// How Python (and we) print a received text: `repr(text)[1:-1]`, written here independently for
/// the ASCII-control, quote and backslash cases [`TEXT`] uses.
pub fn python_repr_inner(text: &str) -> String {
    let escape_single = text.contains('\'') && text.contains('"');
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\'' if escape_single => out.push_str("\\'"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A running mailbox server of either kind.
pub fn start_server(server: Server) -> MailboxServer {
    match server {
        Server::Ours => start_our_mailbox(&[]),
        Server::Python => start_python_mailbox(&[]),
    }
}

/// Options of one transfer case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Sending CLI.
    pub sender: Cli,
    /// Receiving CLI.
    pub receiver: Cli,
    /// What is sent.
    pub payload: Payload,
    /// Mailbox URL.
    pub mailbox: String,
    /// Transit relay `tcp:HOST:PORT` for the CLIs that take one.
    pub relay_hint: Option<String>,
    /// Force the relay: `--no-listen` on Python and ours, `--force-relay` on wormhole-rs.
    pub force_relay: bool,
}

/// The prepared sending side and what the receiver must end up with.
pub struct Prepared {
    /// Working directory of the sender (holds the file or tree).
    pub src: tempfile::TempDir,
    /// Working directory of the receiver.
    pub dst: tempfile::TempDir,
    /// The file or directory name the receiver should create.
    pub name: String,
    /// sha256 of the file, or the tree of the directory.
    pub want_file: Option<String>,
    /// The expected directory tree.
    pub want_tree: Option<BTreeMap<String, TreeEntry>>,
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wormhole-cli-interop-")
        .tempdir()
        .expect("tempdir")
}

/// Create the payload on disk.
pub fn prepare(payload: Payload) -> Prepared {
    let src = tmp();
    let dst = tmp();
    match payload {
        Payload::Text => Prepared {
            src,
            dst,
            name: String::new(),
            want_file: None,
            want_tree: None,
        },
        Payload::File => {
            let h = write_test_file(src.path().join("payload.bin"), 1_000_003, 42);
            Prepared {
                src,
                dst,
                name: "payload.bin".into(),
                want_file: Some(h),
                want_tree: None,
            }
        }
        Payload::Dir => {
            let tree = make_test_tree(src.path().join("tree"));
            Prepared {
                src,
                dst,
                name: "tree".into(),
                want_file: None,
                want_tree: Some(tree),
            }
        }
    }
}

fn our_wormhole() -> PathBuf {
    our_bin("wormhole")
}

/// The sender's command.
pub fn sender_command(case: &Case, code: &str, prep: &Prepared) -> PeerCommand {
    let what = prep.name.as_str();
    let text = case.payload == Payload::Text;
    let cmd = match case.sender {
        Cli::Ours | Cli::Python => {
            let bin = if case.sender == Cli::Ours {
                our_wormhole()
            } else {
                Peers::locate().python_wormhole
            };
            let mut c = PeerCommand::new(bin)
                .args(Peers::python_global_args(
                    &case.mailbox,
                    case.relay_hint.as_deref(),
                ))
                .args(["send", "--code", code, "--hide-progress", "--no-qr"]);
            if case.force_relay {
                c = c.arg("--no-listen");
            }
            if text {
                c.args(["--text", TEXT])
            } else {
                c.arg(what)
            }
        }
        Cli::Go => {
            let c = PeerCommand::new(Peers::locate().go_wormhole).args([
                "--relay-url",
                &case.mailbox,
                "send",
                "--code",
                code,
                "--hide-progress",
            ]);
            if text {
                c.args(["--text", TEXT])
            } else {
                c.arg(what)
            }
        }
        Cli::Rs => {
            assert!(!text, "wormhole-rs cannot send text");
            let mut c = PeerCommand::new(Peers::locate().rs_wormhole).args([
                "send",
                "--rendezvous-server",
                &case.mailbox,
                "--code",
                code,
                "--no-qr",
            ]);
            if let Some(hint) = &case.relay_hint {
                c = c.args(["--relay-server", &rs_relay_url(hint)]);
            }
            if case.force_relay {
                c = c.arg("--force-relay");
            }
            c.arg(what)
        }
    };
    cmd.name(&format!("{:?} sender", case.sender))
        .current_dir(prep.src.path())
        .timeout(Duration::from_secs(90))
}

/// `tcp:HOST:PORT` → `tcp://HOST:PORT`.
pub fn rs_relay_url(hint: &str) -> String {
    format!("tcp://{}", hint.trim_start_matches("tcp:"))
}

/// The receiver's command.
pub fn receiver_command(case: &Case, code: &str, prep: &Prepared) -> PeerCommand {
    let cmd = match case.receiver {
        Cli::Ours | Cli::Python => {
            let bin = if case.receiver == Cli::Ours {
                our_wormhole()
            } else {
                Peers::locate().python_wormhole
            };
            let mut c = PeerCommand::new(bin)
                .args(Peers::python_global_args(
                    &case.mailbox,
                    case.relay_hint.as_deref(),
                ))
                .args(["receive", "--accept-file", "--hide-progress"]);
            if case.force_relay {
                c = c.arg("--no-listen");
            }
            c.arg(code)
        }
        Cli::Go => PeerCommand::new(Peers::locate().go_wormhole)
            .args(["--relay-url", &case.mailbox, "receive", "--hide-progress", code])
            .stdin("y\n"),
        Cli::Rs => {
            let mut c = PeerCommand::new(Peers::locate().rs_wormhole).args([
                "receive",
                "--noconfirm",
                "--rendezvous-server",
                &case.mailbox,
                "--out-dir",
            ]);
            c = c.arg(prep.dst.path());
            if let Some(hint) = &case.relay_hint {
                c = c.args(["--relay-server", &rs_relay_url(hint)]);
            }
            if case.force_relay {
                c = c.arg("--force-relay");
            }
            c.arg(code)
        }
    };
    cmd.name(&format!("{:?} receiver", case.receiver))
        .current_dir(prep.dst.path())
        .timeout(Duration::from_secs(90))
}

/// Both sides' output.
pub struct Outcome {
    /// The sender's result.
    pub sender: PeerOutput,
    /// The receiver's result.
    pub receiver: PeerOutput,
    /// The prepared directories (kept alive for checks).
    pub prep: Prepared,
}

/// A run in which a side failed: both sides' output.
pub struct Failed {
    /// The sender's result.
    pub sender: PeerOutput,
    /// The receiver's result.
    pub receiver: PeerOutput,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.sender, self.receiver)
    }
}

/// Run one case to completion: start the sender, then the receiver; `Err` unless both succeed.
pub fn try_run_case(case: &Case) -> Result<Outcome, Box<Failed>> {
    let code = unique_code();
    let prep = prepare(case.payload);
    let sender = sender_command(case, &code, &prep).spawn();
    // Let the sender claim the nameplate first, as a person would.
    std::thread::sleep(Duration::from_millis(300));
    let receiver = receiver_command(case, &code, &prep).run();
    let sender = sender.wait();
    if !receiver.success() || !sender.success() {
        return Err(Box::new(Failed { sender, receiver }));
    }
    Ok(Outcome {
        sender,
        receiver,
        prep,
    })
}

/// Run one case to completion: start the sender, then the receiver; both must succeed. A run in
/// which a Python side hit Python's own transit port race (`tests/harness/python_listen_race.rs`,
/// exact and logged) is run again, at most [`PYTHON_LISTEN_RACE_RETRIES`] times.
pub fn run_case(case: &Case) -> Outcome {
    let mut race = PythonListenRace::new(format!("case {case:?}"));
    loop {
        match try_run_case(case) {
            Ok(out) => return out,
            Err(f) if is_python_listen_race(case, &f, &mut race) => {}
            Err(f) => panic!("case {case:?} failed:\n{f}"),
        }
    }
}

/// True (logged, budget spent) when a Python side of this failed run shows Python's transit port
/// race.
fn is_python_listen_race(case: &Case, failed: &Failed, race: &mut PythonListenRace) -> bool {
    let mut pythons = Vec::new();
    if case.sender == Cli::Python {
        pythons.push(&failed.sender);
    }
    if case.receiver == Cli::Python {
        pythons.push(&failed.receiver);
    }
    race.should_retry(&pythons, &[&failed.sender, &failed.receiver])
}

/// True when a failed run shows exactly the signature of wormhole-william's SPAKE2 key bug
/// (`tests/harness/go_key_bug.rs` has the bug, the evidence and the output shapes), and nothing
/// else explains it.
///
/// Only for Go paired with another *real* peer (Python, wormhole-rs): it returns false for every
/// pair that includes our side (`Cli::Ours`), because our client detects and adopts the key Go
/// derived, so a key-confirmation failure between ours and Go is a real failure of ours. It also
/// returns false for Go⇄Go (both make the same mistake and agree) and pairs without Go.
pub fn is_go_spake2_key_bug(case: &Case, failed: &Failed) -> bool {
    match (case.sender, case.receiver) {
        (Cli::Ours, _) | (_, Cli::Ours) | (Cli::Go, Cli::Go) => false,
        (Cli::Go, _) => go_key_bug_signature(GoRole::Sender, &failed.sender, &failed.receiver),
        (_, Cli::Go) => go_key_bug_signature(GoRole::Receiver, &failed.receiver, &failed.sender),
        _ => false,
    }
}

/// Run a case, repeating it at most [`GO_KEY_BUG_RETRIES`] times, each logged, and only while it
/// fails with exactly [`is_go_spake2_key_bug`]'s signature (so never for a pair with our side), or
/// Python's transit port race as in [`run_case`]. Any other failure fails the test.
pub fn run_with_go_key_bug_retry(case: &Case) -> Outcome {
    let mut retry = 0;
    let mut race = PythonListenRace::new(format!("case {case:?}"));
    loop {
        match try_run_case(case) {
            Ok(out) => return out,
            Err(f) if is_python_listen_race(case, &f, &mut race) => {}
            Err(f) if retry < GO_KEY_BUG_RETRIES && is_go_spake2_key_bug(case, &f) => {
                retry += 1;
                eprintln!(
                    "case {case:?}: wormhole-william's SPAKE2 key bug; retry {retry} of \
                     {GO_KEY_BUG_RETRIES}:\n{f}"
                );
            }
            Err(f) => panic!("case {case:?} failed:\n{f}"),
        }
    }
}

/// Check what arrived, by content hash.
pub fn check_received(case: &Case, out: &Outcome) {
    let ctx = || format!("case {case:?}:\n{}\n{}", out.sender, out.receiver);
    match case.payload {
        Payload::Text => {
            let want = match case.receiver {
                Cli::Ours | Cli::Python => python_repr_inner(TEXT),
                Cli::Go => TEXT.to_owned(),
                Cli::Rs => unreachable!("wormhole-rs cannot receive text"),
            };
            assert_eq!(
                out.receiver
                    .stdout
                    .strip_suffix('\n')
                    .unwrap_or(&out.receiver.stdout),
                want,
                "{}",
                ctx()
            );
        }
        Payload::File => {
            let path = out.prep.dst.path().join(&out.prep.name);
            assert!(path.is_file(), "no file {}: {}", path.display(), ctx());
            assert_eq!(Some(sha256_file(&path)), out.prep.want_file, "{}", ctx());
        }
        Payload::Dir => {
            let want = out.prep.want_tree.as_ref().expect("tree");
            let got_dir = match (case.sender, case.receiver) {
                // wormhole-rs sends a tar as a file offer: unpack it.
                (Cli::Rs, _) => {
                    let tar = out.prep.dst.path().join("tree.tar");
                    assert!(tar.is_file(), "no tree.tar: {}", ctx());
                    let x = out.prep.dst.path().join("x");
                    std::fs::create_dir(&x).expect("mkdir");
                    let st = std::process::Command::new("tar")
                        .arg("-xf")
                        .arg(&tar)
                        .arg("-C")
                        .arg(&x)
                        .status()
                        .expect("tar");
                    assert!(st.success(), "tar -xf failed: {}", ctx());
                    // Some tars hold a top-level directory, some hold the entries.
                    if x.join("tree").is_dir() {
                        x.join("tree")
                    } else {
                        x
                    }
                }
                // wormhole-rs saves a directory offer as the raw zip: unpack it with Python.
                (_, Cli::Rs) => {
                    let zip = out.prep.dst.path().join("tree.zip");
                    assert!(zip.is_file(), "no tree.zip: {}", ctx());
                    let x = out.prep.dst.path().join("x");
                    let o = PeerCommand::new(Peers::locate().python)
                        .args(["-m", "zipfile", "-e"])
                        .arg(&zip)
                        .arg(&x)
                        .run();
                    o.assert_success();
                    x
                }
                _ => out.prep.dst.path().join("tree"),
            };
            assert_eq!(&dir_tree(&got_dir), want, "{}", ctx());
        }
    }
}

/// Run and check one case.
pub fn transfer(
    sender: Cli,
    receiver: Cli,
    payload: Payload,
    server: Server,
    relay: Option<&TransitRelay>,
    force_relay: bool,
) -> Outcome {
    require_netns();
    let mailbox = start_server(server);
    let case = Case {
        sender,
        receiver,
        payload,
        mailbox: mailbox.url().to_owned(),
        relay_hint: relay.map(TransitRelay::python_hint),
        force_relay,
    };
    let out = run_case(&case);
    check_received(&case, &out);
    out
}

/// True when this process runs in a namespace without the 198.18.0.1 test address.
pub fn without_test_addr() -> bool {
    std::env::var("WORMHOLE_NETNS_NO_TEST_ADDR").is_ok_and(|v| v == "1")
}

/// Run the named test of this test binary again inside a nested `scripts/netns-run` without the
/// 198.18.0.1 address (so wormhole-william has no direct hint and must use the relay). Panics
/// with the inner output if it fails.
pub fn rerun_without_test_addr(test_name: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let script = workspace_root().join("scripts").join("netns-run");
    let out = PeerCommand::new(&script)
        .name(&format!("nested {test_name}"))
        .env("WORMHOLE_NETNS_NO_TEST_ADDR", "1")
        .arg(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .timeout(Duration::from_secs(240))
        .run();
    if !out.success() || !out.stdout.contains("1 passed") {
        panic!("nested run of {test_name} failed:\n{out}");
    }
}
