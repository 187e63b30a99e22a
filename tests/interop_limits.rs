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

/// A Python sender that completes the key exchange and then puts one `--size`-byte message into
/// the mailbox (hex on the wire, so twice as large), then waits until it is killed.
const OVERSIZED_SENDER: &str = r#"
import argparse, sys
from twisted.internet import defer, task
import wormhole

@defer.inlineCallbacks
def main(reactor, args):
    w = wormhole.create(args.appid, args.url, reactor)
    w.set_code(args.code)
    yield w.get_verifier()
    w.send_message(b"x" * args.size)
    print("sent", flush=True)
    try:
        yield w.get_message()
    except Exception as e:
        print("closed: %r" % (e,), flush=True)

p = argparse.ArgumentParser()
p.add_argument("--url", required=True)
p.add_argument("--code", required=True)
p.add_argument("--size", type=int, required=True)
p.add_argument("--appid", default="lothar.com/wormhole/text-or-file-xfer")
task.react(main, (p.parse_args(),))
"#;

/// Start [`OVERSIZED_SENDER`] against `url` with `code`; it is killed when the result is dropped.
fn spawn_oversized_sender(dir: &std::path::Path, url: &str, code: &str, size: usize) -> RunningPeer {
    let script = dir.join("oversized_sender.py");
    std::fs::write(&script, OVERSIZED_SENDER).expect("write the sender script");
    PeerCommand::new(Peers::locate().python)
        .name("python oversized sender")
        .arg(&script)
        .args(["--url", url, "--code", code, "--size", &size.to_string()])
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
    let sender = spawn_oversized_sender(dir.path(), server.url(), &code, size);
    let started = Instant::now();
    // The timeout is only a hang guard: before the fix the receiver never ended.
    let out = PeerCommand::new(our_bin("wormhole"))
        .name("ours receiver")
        .args(["--relay-url", server.url(), "receive", "--hide-progress", &code])
        .current_dir(dir.path())
        .timeout(Duration::from_secs(120))
        .run();
    eprintln!(
        "our receiver ended after {:?}: {}",
        started.elapsed(),
        out.stderr.trim()
    );
    assert!(!out.timed_out, "our receiver hung: {}", out.all_output());
    assert!(!out.success(), "our receiver succeeded: {}", out.all_output());
    let want = format!("a message from the mailbox was larger than our limit of {MAX_FRAME_BYTES} bytes");
    assert!(out.stderr.contains(&want), "no {want:?} in: {}", out.all_output());
    drop(sender);
}
