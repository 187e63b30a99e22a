//! Limits on what a peer sends end the session with an error that names the limit, promptly and
//! with a non-zero exit (docs/protocol.md §1, issue #9 item 5): a message larger than our
//! WebSocket limit used to make our receiver reconnect and fetch it again forever, silently.
//!
//! The oversized message comes from the Python library through Python's mailbox server (which
//! accepts messages of any size); the receiver is our `wormhole` binary. No transit is involved,
//! so no network namespace is needed.

#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use wormhole_interop::*;
use wormhole_proto::machine::MAX_FRAME_BYTES;
use wormhole_proto::transfer::MAX_NAME;

/// A Python sender that completes the key exchange and then puts one message into the mailbox:
/// `--size` bytes of `x` (hex on the wire, so twice as large), or the `--json` text; then it
/// waits until it is killed.
const OVERSIZED_SENDER: &str = r#"
import argparse, sys
from twisted.internet import defer, task
import wormhole

@defer.inlineCallbacks
def main(reactor, args):
    w = wormhole.create(args.appid, args.url, reactor)
    w.set_code(args.code)
    yield w.get_verifier()
    w.send_message(args.json.encode() if args.json else b"x" * args.size)
    print("sent", flush=True)
    try:
        yield w.get_message()
    except Exception as e:
        print("closed: %r" % (e,), flush=True)

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--code", required=True)
p.add_argument("--size", type=int, default=0)
p.add_argument("--json")
p.add_argument("--appid", default="lothar.com/wormhole/text-or-file-xfer")
task.react(main, (p.parse_args(),))
"#;

/// Start [`OVERSIZED_SENDER`] against `url` with `code` and `what` (`["--size", N]` or
/// `["--json", TEXT]`); it is killed when the result is dropped.
fn spawn_oversized_sender(dir: &std::path::Path, url: &str, code: &str, what: [&str; 2]) -> RunningPeer {
    let script = dir.join("oversized_sender.py");
    std::fs::write(&script, OVERSIZED_SENDER).expect("write the sender script");
    PeerCommand::new(Peers::locate().python)
        .name("python oversized sender")
        .arg(&script)
        .args(["--url", url, "--code", code])
        .args(what)
        .timeout(Duration::from_secs(180))
        .spawn()
}

#[test]
fn receive_of_an_oversized_mailbox_message_fails_naming_the_limit() {
    let server = start_python_mailbox(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let code = unique_code();
    // Hex doubles it: well over the limit, but small enough for Python to relay quickly.
    let size = MAX_FRAME_BYTES * 3 / 4;
    let sender = spawn_oversized_sender(dir.path(), server.url(), &code, ["--size", &size.to_string()]);
    let want = format!("a message from the mailbox was larger than our limit of {MAX_FRAME_BYTES} bytes");
    receive_fails_with(dir.path(), server.url(), &code, &want);
    drop(sender);
}

#[test]
fn receive_of_an_offer_with_an_over_long_name_fails_naming_the_limit() {
    let server = start_python_mailbox(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let code = unique_code();
    let name = "n".repeat(MAX_NAME + 1);
    let offer = format!(r#"{{"offer": {{"file": {{"filename": "{name}", "filesize": 1}}}}}}"#);
    let sender = spawn_oversized_sender(dir.path(), server.url(), &code, ["--json", &offer]);
    let want = format!("over our limit of {MAX_NAME} bytes");
    receive_fails_with(dir.path(), server.url(), &code, &want);
    drop(sender);
}

/// Run our `wormhole receive` with `code`; it must end promptly, non-zero, saying `want`.
fn receive_fails_with(dir: &std::path::Path, url: &str, code: &str, want: &str) {
    let started = Instant::now();
    // The timeout is only a hang guard: before the fix the receiver never ended.
    let out = PeerCommand::new(our_bin("wormhole"))
        .name("ours receiver")
        .args(["--relay-url", url, "receive", "--hide-progress", code])
        .current_dir(dir)
        .timeout(Duration::from_secs(120))
        .run();
    eprintln!(
        "our receiver ended after {:?}: {}",
        started.elapsed(),
        out.stderr.trim()
    );
    assert!(!out.timed_out, "our receiver hung: {}", out.all_output());
    assert!(!out.success(), "our receiver succeeded: {}", out.all_output());
    assert!(out.stderr.contains(want), "no {want:?} in: {}", out.all_output());
}
