//! The `wormhole` binary's surface without any network: version, help, aliases, usage errors
//! (exit 2), refusals that happen before connecting (exit 1), all with clear messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn wormhole(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wormhole"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WORMHOLE_") {
            cmd.env_remove(&k);
        }
    }
    // Nothing listens on port 9 of loopback: a test that connected would fail loudly.
    cmd.args(["--relay-url", "ws://127.0.0.1:9/v1"]).args(args);
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_and_help() {
    let out = wormhole(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("magic-wormhole "), "{out:?}");
    let out = wormhole(&["--help"]);
    let help = text(&out.stdout);
    for word in [
        "send",
        "receive",
        "ssh",
        "--relay-url",
        "--transit-helper",
        "--appid",
        "--dump-timing",
        "WORMHOLE_RELAY_URL",
        "--json",
        "--config",
        "--show-config",
        "completions",
        "man",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let out = wormhole(&["rx", "--help"]);
    let help = text(&out.stdout);
    for word in [
        "--accept-file",
        "--output-file",
        "--allocate",
        "--only-text",
        "--no-listen",
        "WORMHOLE_ACCEPT_FILE",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let out = wormhole(&["tx", "--help"]);
    let help = text(&out.stdout);
    for word in [
        "--text",
        "--code",
        "--code-length",
        "--verify",
        "--no-qr",
        "--ignore-unsendable-files",
        "-0",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["receive", "--allocate", "1-a-b"][..],
        &["receive", "-c", "3"],
        &["receive", "1-a", "2-b"],
        &[
            "send",
            "--launch-tor",
            "--tor-socks",
            "127.0.0.1:9",
            "--text",
            "x",
        ],
        &["send", "--text", "x", "file"],
        &["bogus"],
        &[],
    ] {
        let out = wormhole(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!text(&out.stderr).is_empty(), "{args:?}");
    }
    let out = wormhole(&[
        "send",
        "--launch-tor",
        "--tor-socks",
        "127.0.0.1:9",
        "--text",
        "x",
    ]);
    assert!(
        text(&out.stderr).contains("--launch-tor starts a Tor of its own"),
        "{out:?}"
    );
}

#[test]
fn missing_file_is_refused_before_connecting() {
    let out = wormhole(&["send", "/nonexistent/file"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "TransferError: Cannot send: no file/directory named '/nonexistent/file'"
    );
}

#[test]
fn bad_code_and_unreachable_server() {
    let out = wormhole(&["receive", "12 ab-cd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("ERROR: The key you entered contains spaces"),
        "{out:?}"
    );
    let out = wormhole(&["receive", "12-ab-cd"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("We had a problem connecting to the relay server"),
        "{err}"
    );
    assert!(err.contains("(relay URL was ws://127.0.0.1:9/v1)"), "{err}");
}
