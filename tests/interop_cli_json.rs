//! `wormhole --json` (issue 18): our CLI on both sides, on our mailbox server, for a text, a file,
//! a directory, a file through a transit relay, `ssh invite`/`ssh accept`, `--show-config`, and
//! failed runs (a wrong code, a sender gone mid-transfer, a file offer with no `--accept-file`, a
//! signal, a usage error). Every stdout line of every run must be a JSON object that
//! validates against docs/cli-json.schema.json (with the `jsonschema` crate), and each run must
//! show exactly its documented events in order (docs/cli-json.md).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use wormhole_interop::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn schema() -> jsonschema::Validator {
    let path = workspace_root().join("docs/cli-json.schema.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Every stdout line of `out`, parsed and checked against the schema.
fn events(out: &PeerOutput) -> Vec<Value> {
    lines_to_events(&out.stdout, &out.to_string())
}

/// Every line of `stdout`, parsed and checked against the schema (`out` describes the run).
fn lines_to_events(stdout: &str, out: &str) -> Vec<Value> {
    let validator = schema();
    assert!(!stdout.is_empty(), "no events:\n{out}");
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}\n{out}"));
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{line}\ndrifts from the schema: {errors:?}\n{out}"
            );
            v
        })
        .collect()
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// `got` is `expected` with each `progress*` entry standing for one or more `progress` lines.
#[track_caller]
fn assert_sequence(got: &[String], expected: &[&str]) {
    let mut collapsed: Vec<&str> = Vec::new();
    for n in got {
        if n == "progress" && collapsed.last() == Some(&"progress*") {
            continue;
        }
        collapsed.push(if n == "progress" { "progress*" } else { n });
    }
    assert_eq!(collapsed, expected, "events: {got:?}");
}

fn find<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

fn ours(name: &str, server: &MailboxServer, relay: &str) -> PeerCommand {
    PeerCommand::new(our_bin("wormhole"))
        .name(name)
        .timeout(TIMEOUT)
        .args(["--json", "--relay-url", server.url(), "--transit-helper", relay])
}

/// A relay hint nothing listens on (the port is held, never listening).
fn no_relay() -> (impl Sized, String) {
    let (held, port) = refusing_port().unwrap();
    (held, format!("tcp:127.0.0.1:{port}"))
}

/// Run `send --json … what` against `receive --json --accept-file …` (in `dst`), both on `code`.
fn transfer(
    server: &MailboxServer,
    relay: &str,
    send_args: &[&str],
    recv_args: &[&str],
    dst: &Path,
) -> (PeerOutput, PeerOutput) {
    let code = unique_code();
    // `--classic`: these events are the classic flow's (two of ours would use transfer-v2).
    let sender = ours("json sender", server, relay)
        .args(["send", "--classic", "--code", &code])
        .args(send_args)
        .spawn();
    let receiver = ours("json receiver", server, relay)
        .arg("receive")
        .args(recv_args)
        .arg(&code)
        .current_dir(dst)
        .spawn();
    (sender.wait(), receiver.wait())
}

/// The events both sides share before the offer.
const MAILBOX: [&str; 5] = ["start", "welcome", "code", "key_established", "verifier"];

fn with_mailbox(rest: &[&'static str]) -> Vec<&'static str> {
    MAILBOX.iter().copied().chain(rest.iter().copied()).collect()
}

#[test]
fn text_events() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let dst = tempfile::tempdir().unwrap();
    let text = "it's a\ttab\nand \\ \u{1b}[31m \"q\" ✓";
    let (s, r) = transfer(&server, &relay, &["--text", text], &[], dst.path());
    s.assert_success();
    r.assert_success();
    let se = events(&s);
    let re = events(&r);
    assert_sequence(&names(&se), &with_mailbox(&["offer", "done"]));
    assert_sequence(&names(&re), &with_mailbox(&["offer", "text_received", "done"]));
    assert_eq!(find(&re, "text_received")["text"], text);
    assert_eq!(find(&se, "start")["command"], "send");
    assert_eq!(find(&re, "start")["command"], "receive");
    assert_eq!(find(&se, "code")["code"], find(&re, "code")["code"]);
    assert_eq!(
        find(&se, "verifier")["verifier"],
        find(&re, "verifier")["verifier"]
    );
    let offer = find(&re, "offer");
    assert_eq!(
        (&offer["role"], &offer["kind"]),
        (&"receiver".into(), &"text".into())
    );
    assert_eq!(offer["bytes"], text.len());
    assert_eq!(find(&se, "done")["connection"], Value::Null);
}

#[test]
fn file_events() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("data.bin");
    let sha = write_test_file(&path, 300_000, 18);
    let (s, r) = transfer(
        &server,
        &relay,
        &[path.to_str().unwrap()],
        &["--accept-file"],
        dst.path(),
    );
    s.assert_success();
    r.assert_success();
    let se = events(&s);
    let re = events(&r);
    assert_sequence(
        &names(&se),
        &with_mailbox(&["offer", "connected", "progress*", "data_sent", "done"]),
    );
    assert_sequence(
        &names(&re),
        &with_mailbox(&["offer", "connected", "progress*", "file_written", "done"]),
    );
    for ev in [&se, &re] {
        let last = ev.iter().rfind(|e| e["event"] == "progress").unwrap();
        assert_eq!(
            (&last["bytes"], &last["total"]),
            (&300_000.into(), &300_000.into())
        );
        assert_eq!(find(ev, "connected")["kind"], "direct");
        let done = find(ev, "done");
        assert_eq!(done["bytes"], 300_000);
        assert_eq!(done["connection"], "direct");
        assert!(done["seconds"].is_number(), "{done}");
    }
    let offer = find(&re, "offer");
    assert_eq!(offer["kind"], "file");
    assert_eq!(offer["name"], "data.bin");
    assert_eq!(offer["bytes"], 300_000);
    let written = find(&re, "file_written");
    assert_eq!(written["sha256"], sha.as_str());
    assert_eq!(written["bytes"], 300_000);
    let at = Path::new(written["path"].as_str().unwrap());
    assert_eq!(at, dst.path().join("data.bin"));
    assert_eq!(sha256_file(at), sha);
}

#[test]
fn directory_events() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    make_test_tree(&tree);
    let (s, r) = transfer(
        &server,
        &relay,
        &[tree.to_str().unwrap()],
        &["--accept-file"],
        dst.path(),
    );
    s.assert_success();
    r.assert_success();
    let se = events(&s);
    let re = events(&r);
    assert_sequence(
        &names(&se),
        &with_mailbox(&["offer", "connected", "progress*", "data_sent", "done"]),
    );
    assert_sequence(
        &names(&re),
        &with_mailbox(&[
            "offer",
            "connected",
            "progress*",
            "unpacking",
            "directory_written",
            "done",
        ]),
    );
    let sent = find(&se, "offer");
    let offered = find(&re, "offer");
    assert_eq!(offered["kind"], "directory");
    assert_eq!(offered["name"], "tree");
    for key in ["bytes", "files", "uncompressed_bytes"] {
        assert_eq!(sent[key], offered[key], "{key}");
    }
    let written = find(&re, "directory_written");
    assert_eq!(written["files"], offered["files"]);
    assert_eq!(
        Path::new(written["path"].as_str().unwrap()),
        dst.path().join("tree")
    );
    assert_eq!(sha256_dir(dst.path().join("tree")), sha256_dir(&tree));
}

#[test]
fn relayed_file_says_relay() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let relay = start_python_relay(ANY_PORT);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("r.bin");
    let sha = write_test_file(&path, 50_000, 3);
    let (s, r) = transfer(
        &server,
        &relay.python_hint(),
        &["--no-listen", path.to_str().unwrap()],
        &["--no-listen", "--accept-file"],
        dst.path(),
    );
    s.assert_success();
    r.assert_success();
    for ev in [events(&s), events(&r)] {
        let c = find(&ev, "connected");
        assert_eq!((&c["kind"], &c["direction"]), (&"relay".into(), &Value::Null));
        assert!(
            c["description"].as_str().unwrap().starts_with("->relay:tcp:"),
            "{c}"
        );
        assert_eq!(find(&ev, "done")["connection"], "relay");
    }
    assert_eq!(find(&events(&r), "file_written")["sha256"], sha.as_str());
}

#[test]
fn wrong_code_is_an_error_event() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let code = unique_code();
    let (nameplate, _) = code.split_once('-').unwrap();
    let wrong = format!("{nameplate}-not-this");
    let sender = ours("json sender", &server, &relay)
        .args(["send", "--code", &code, "--text", "never"])
        .spawn();
    let receiver = ours("json receiver", &server, &relay)
        .args(["receive", &wrong])
        .run();
    let sender = sender.wait();
    for out in [&sender, &receiver] {
        assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out}");
        let ev = events(out);
        let n = names(&ev);
        assert_sequence(&n, &["start", "welcome", "code", "key_established", "error"]);
        let err = ev.last().unwrap();
        assert_eq!(err["kind"], "wrong_code", "{out}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("Key confirmation failed")
        );
        // The human message is on stderr as before.
        assert!(out.stderr.contains("ERROR: Key confirmation failed"), "{out}");
    }
}

#[test]
fn a_file_offer_without_accept_file_is_refused_not_asked() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("ask.bin");
    write_test_file(&path, 1000, 9);
    let (s, r) = transfer(&server, &relay, &[path.to_str().unwrap()], &[], dst.path());
    assert_eq!(r.status.and_then(|s| s.code()), Some(1), "{r}");
    assert_eq!(s.status.and_then(|s| s.code()), Some(1), "{s}");
    let re = events(&r);
    assert_sequence(&names(&re), &with_mailbox(&["offer", "error"]));
    let err = re.last().unwrap();
    assert_eq!(err["kind"], "prompt_refused");
    assert!(
        err["message"].as_str().unwrap().contains("--accept-file"),
        "{err}"
    );
    let se = events(&s);
    assert_sequence(&names(&se), &with_mailbox(&["offer", "error"]));
    assert_eq!(se.last().unwrap()["kind"], "transfer");
    assert!(std::fs::read_dir(dst.path()).unwrap().next().is_none());
}

#[test]
fn usage_errors_are_events_too() {
    let server_url = "ws://127.0.0.1:9/v1";
    // No code: it would have to be typed.
    let out = PeerCommand::new(our_bin("wormhole"))
        .args(["--json", "--relay-url", server_url, "receive"])
        .run();
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{out}");
    let ev = events(&out);
    assert_eq!(names(&ev), ["error"]);
    assert_eq!(ev[0]["kind"], "usage");
    // An unreachable server.
    let out = PeerCommand::new(our_bin("wormhole"))
        .args(["--json", "--relay-url", server_url, "send", "--text", "x"])
        .run();
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out}");
    let ev = events(&out);
    assert_eq!(names(&ev), ["start", "error"]);
    assert_eq!(ev[1]["kind"], "server_connection");
}

/// `wormhole --json ssh …` with `HOME=home`, only its stdout read (line by line, as printed).
fn live_ssh(server: &MailboxServer, home: &Path, args: &[&str]) -> LiveChild {
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(["--json", "--relay-url", server.url(), "ssh"])
        .args(args)
        .env("HOME", home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    LiveChild::spawn(cmd, "json ssh")
}

#[test]
fn ssh_events() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let inviter = tempfile::tempdir().unwrap();
    let accepter = tempfile::tempdir().unwrap();
    let key = accepter.path().join("id.pub");
    std::fs::write(&key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJson me@there\n").unwrap();
    let mut invite = live_ssh(&server, inviter.path(), &["invite"]);
    let line = invite.wait_for("\"event\":\"code\"", TIMEOUT);
    let code: Value = serde_json::from_str(&line).unwrap();
    let code = code["code"].as_str().unwrap().to_owned();
    let mut accept = live_ssh(
        &server,
        accepter.path(),
        &["accept", &code, "-F", key.to_str().unwrap(), "--yes"],
    );
    assert!(accept.exit(TIMEOUT).success(), "{}", accept.seen);
    assert!(invite.exit(TIMEOUT).success(), "{}", invite.seen);
    let expected = [
        "start",
        "welcome",
        "code",
        "key_established",
        "verifier",
        "ssh_key",
        "done",
    ];
    let ie = lines_to_events(&invite.seen, &invite.seen);
    let ae = lines_to_events(&accept.seen, &accept.seen);
    assert_sequence(&names(&ie), &expected);
    assert_sequence(&names(&ae), &expected);
    assert_eq!(find(&ie, "start")["command"], "ssh-invite");
    assert_eq!(find(&ae, "start")["command"], "ssh-accept");
    let added = find(&ie, "ssh_key");
    assert_eq!(
        (&added["key_type"], &added["keyid"]),
        (&"ssh-ed25519".into(), &"me@there".into())
    );
    assert_eq!(added["added"], true);
    let auth = inviter.path().join(".ssh/authorized_keys");
    assert_eq!(Path::new(added["path"].as_str().unwrap()), auth);
    assert_eq!(find(&ae, "ssh_key")["path"], Value::Null);
    assert_eq!(
        find(&ie, "verifier")["verifier"],
        find(&ae, "verifier")["verifier"]
    );
}

#[test]
fn a_sender_gone_mid_transfer_is_an_error_event() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (_held, relay) = no_relay();
    let src = tempfile::tempdir().unwrap();
    // In RAM: the receiver checks the disk has room for all 2 GiB, and a CI disk may not.
    let dst = RamDir::new(2560);
    // 2 GiB of holes: far more than goes through before the sender is killed.
    let big = src.path().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();
    let code = unique_code();
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(["--relay-url", server.url(), "--transit-helper", &relay])
        .args(["send", "--classic", "--hide-progress", "--code", &code])
        .arg(&big)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut sender = ChildGuard::spawn(cmd, "sender");
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(["--json", "--relay-url", server.url(), "--transit-helper", &relay])
        .args(["receive", "--accept-file", &code])
        .current_dir(dst.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut receiver = LiveChild::spawn(cmd, "json receiver");
    receiver.wait_for("\"event\":\"progress\"", TIMEOUT);
    sender.kill();
    let st = receiver.exit(TIMEOUT);
    assert_eq!(st.code(), Some(1), "{}", receiver.seen);
    let ev = lines_to_events(&receiver.seen, &receiver.seen);
    assert_sequence(
        &names(&ev),
        &with_mailbox(&["offer", "connected", "progress*", "error"]),
    );
    let err = ev.last().unwrap();
    assert_eq!(err["kind"], "transfer", "{err}");
    assert!(
        ev.iter()
            .all(|e| e["event"] != "progress" || e["bytes"] != e["total"])
    );
    assert!(
        std::fs::read_dir(dst.path()).unwrap().next().is_none(),
        "a partial file was left"
    );
}

#[test]
fn a_signal_ends_with_an_interrupted_event() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let home = tempfile::tempdir().unwrap();
    let code = unique_code();
    let mut cmd = clean_command(our_bin("wormhole"));
    cmd.args(["--json", "--relay-url", server.url(), "receive", &code])
        .env("HOME", home.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut receiver = LiveChild::spawn(cmd, "json receiver");
    // Nobody sends: it waits for the key after the code.
    receiver.wait_for("\"event\":\"code\"", TIMEOUT);
    receiver.signal("TERM");
    let st = receiver.exit(TIMEOUT);
    assert_eq!(st.code(), Some(128 + 15), "{}", receiver.seen);
    let ev = lines_to_events(&receiver.seen, &receiver.seen);
    assert_sequence(&names(&ev), &["start", "welcome", "code", "error"]);
    assert_eq!(ev.last().unwrap()["kind"], "interrupted");
}

#[test]
fn show_config_is_one_event() {
    let home = tempfile::tempdir().unwrap();
    let out = PeerCommand::new(our_bin("wormhole"))
        .env("HOME", home.path())
        .env("WORMHOLE_QR", "0")
        .args([
            "--json",
            "--show-config",
            "--relay-url",
            "ws://flag/v1",
            "send",
            "-c",
            "3",
        ])
        .run();
    out.assert_success();
    let ev = events(&out);
    assert_eq!(names(&ev), ["config"]);
    assert_eq!(ev[0]["file"], Value::Null);
    let settings = ev[0]["settings"].as_array().unwrap();
    let get = |k: &str| settings.iter().find(|s| s["key"] == k).unwrap().clone();
    assert_eq!(get("relay-url")["value"], "ws://flag/v1");
    assert_eq!(
        (
            get("relay-url")["source"].clone(),
            get("relay-url")["from"].clone()
        ),
        ("flag".into(), "--relay-url".into())
    );
    assert_eq!(
        (get("qr")["value"].clone(), get("qr")["source"].clone()),
        (false.into(), "env".into())
    );
    assert_eq!(get("qr")["from"], "WORMHOLE_QR");
    assert_eq!(get("code-length")["value"], 3);
    assert_eq!(get("accept-file")["source"], "default");
    assert_eq!(get("appid")["value"], Value::Null);
}

#[test]
fn the_schema_rejects_drift() {
    let v = schema();
    let ok: Value = serde_json::from_str(r#"{"v":1,"event":"code","code":"4-a-b"}"#).unwrap();
    assert!(v.is_valid(&ok));
    for bad in [
        r#"{"v":1,"event":"code","code":"4-a-b","extra":1}"#,
        r#"{"v":1,"event":"code"}"#,
        r#"{"v":2,"event":"code","code":"4-a-b"}"#,
        r#"{"v":1,"event":"nonsense"}"#,
        r#"{"v":1,"event":"error","kind":"made_up","message":"m"}"#,
        r#"{"v":1,"event":"file_written","path":"p","bytes":1,"sha256":"xyz"}"#,
    ] {
        let bad: Value = serde_json::from_str(bad).unwrap();
        assert!(!v.is_valid(&bad), "{bad} passed the schema");
    }
}
