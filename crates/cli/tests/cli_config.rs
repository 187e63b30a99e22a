//! The config file, as a user meets it: found at `$XDG_CONFIG_HOME/wormhole/config.toml`, else
//! `~/.config/wormhole/config.toml`, or named by `--config`/`WORMHOLE_CONFIG`; its values rank
//! below flags and the environment (`--show-config` tells each value's source) and are used by
//! real runs; a bad file (unknown key, bad type, unreadable, too large) stops the run with the
//! file and line named, exit 2. No network: a run that connects goes to a closed loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// `wormhole args` with only `env` (plus `PATH`) in its environment and `home` as `HOME`.
fn wormhole(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wormhole"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .args(args);
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--show-config` line of `key`.
fn setting(out: &Output, key: &str) -> String {
    assert!(out.status.success(), "{out:?}");
    let text = stdout(out);
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .to_owned()
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let d = dir.join(".config/wormhole");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("config.toml");
    std::fs::write(&f, text).unwrap();
    f
}

const FILE: &str = "relay-url = \"ws://file:1/v1\"\ntransit-helper = \"tcp:file:2\"\nappid = \"file/app\"\n\
code-length = 3\nqr = false\nhide-progress = true\naccept-file = true\n";

#[test]
fn file_then_env_then_flag() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Defaults without a file.
    let out = wormhole(h, &[], &["--show-config"]);
    assert!(
        stdout(&out).starts_with("# config file: none ("),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        setting(&out, "relay-url"),
        "relay-url = \"ws://relay.magic-wormhole.io:4000/v1\"  # default"
    );
    assert_eq!(setting(&out, "code-length"), "code-length = 2  # default");
    // The file (at ~/.config) beats the defaults.
    let path = write_config(h, FILE);
    let out = wormhole(h, &[], &["--show-config"]);
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        format!("# config file: {}", path.display())
    );
    for (key, value) in [
        ("relay-url", "\"ws://file:1/v1\""),
        ("transit-helper", "\"tcp:file:2\""),
        ("appid", "\"file/app\""),
        ("code-length", "3"),
        ("qr", "false"),
        ("hide-progress", "true"),
        ("accept-file", "true"),
    ] {
        assert_eq!(setting(&out, key), format!("{key} = {value}  # config file"));
    }
    // The environment beats the file.
    let env = [
        ("WORMHOLE_RELAY_URL", "ws://env:1/v1"),
        ("WORMHOLE_TRANSIT_HELPER", "tcp:env:2"),
        ("WORMHOLE_APPID", "env/app"),
        ("WORMHOLE_CODE_LENGTH", "4"),
        ("WORMHOLE_QR", "1"),
        ("WORMHOLE_HIDE_PROGRESS", "no"),
        ("WORMHOLE_ACCEPT_FILE", "0"),
    ];
    let out = wormhole(h, &env, &["--show-config"]);
    for (key, value, var) in [
        ("relay-url", "\"ws://env:1/v1\"", "WORMHOLE_RELAY_URL"),
        ("transit-helper", "\"tcp:env:2\"", "WORMHOLE_TRANSIT_HELPER"),
        ("appid", "\"env/app\"", "WORMHOLE_APPID"),
        ("code-length", "4", "WORMHOLE_CODE_LENGTH"),
        ("qr", "true", "WORMHOLE_QR"),
        ("hide-progress", "false", "WORMHOLE_HIDE_PROGRESS"),
        ("accept-file", "false", "WORMHOLE_ACCEPT_FILE"),
    ] {
        assert_eq!(
            setting(&out, key),
            format!("{key} = {value}  # environment {var}")
        );
    }
    // Flags beat both (the subcommand's flags count too).
    let out = wormhole(
        h,
        &env,
        &[
            "--show-config",
            "--relay-url",
            "ws://flag:1/v1",
            "--appid",
            "flag/app",
            "send",
            "-c",
            "5",
            "--no-qr",
            "--hide-progress",
        ],
    );
    assert_eq!(
        setting(&out, "relay-url"),
        "relay-url = \"ws://flag:1/v1\"  # flag --relay-url"
    );
    assert_eq!(setting(&out, "appid"), "appid = \"flag/app\"  # flag --appid");
    assert_eq!(
        setting(&out, "code-length"),
        "code-length = 5  # flag --code-length"
    );
    assert_eq!(setting(&out, "qr"), "qr = false  # flag --no-qr");
    assert_eq!(
        setting(&out, "hide-progress"),
        "hide-progress = true  # flag --hide-progress"
    );
    assert_eq!(
        setting(&out, "transit-helper"),
        "transit-helper = \"tcp:env:2\"  # environment WORMHOLE_TRANSIT_HELPER"
    );
    let out = wormhole(h, &[], &["--show-config", "receive", "--accept-file"]);
    assert_eq!(
        setting(&out, "accept-file"),
        "accept-file = true  # flag --accept-file"
    );
}

#[test]
fn where_the_file_is_looked_for() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    write_config(h, "code-length = 3\n");
    let xdg = h.join("xdg");
    std::fs::create_dir_all(xdg.join("wormhole")).unwrap();
    std::fs::write(xdg.join("wormhole/config.toml"), "code-length = 4\n").unwrap();
    let other = h.join("other.toml");
    std::fs::write(&other, "code-length = 5\n").unwrap();
    let third = h.join("third.toml");
    std::fs::write(&third, "code-length = 6\n").unwrap();
    let x = xdg.to_str().unwrap();
    let o = other.to_str().unwrap();
    let cl = |out: &Output| setting(out, "code-length");
    assert_eq!(
        cl(&wormhole(h, &[], &["--show-config"])),
        "code-length = 3  # config file"
    );
    let out = wormhole(h, &[("XDG_CONFIG_HOME", x)], &["--show-config"]);
    assert_eq!(cl(&out), "code-length = 4  # config file");
    // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    let out = wormhole(h, &[("XDG_CONFIG_HOME", "rel")], &["--show-config"]);
    assert_eq!(cl(&out), "code-length = 3  # config file");
    let out = wormhole(
        h,
        &[("XDG_CONFIG_HOME", x), ("WORMHOLE_CONFIG", o)],
        &["--show-config"],
    );
    assert_eq!(cl(&out), "code-length = 5  # config file");
    assert!(stdout(&out).starts_with(&format!("# config file: {o}\n")));
    let out = wormhole(
        h,
        &[("WORMHOLE_CONFIG", o)],
        &["--config", third.to_str().unwrap(), "--show-config"],
    );
    assert_eq!(cl(&out), "code-length = 6  # config file");
}

#[test]
fn real_runs_use_the_file() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // Nothing listens on port 9 of loopback: the run fails naming the URL it used.
    write_config(h, "relay-url = \"ws://127.0.0.1:9/v1\"\nqr = false\n");
    let out = wormhole(h, &[], &["send", "--text", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("(relay URL was ws://127.0.0.1:9/v1)"),
        "{}",
        stderr(&out)
    );
    let out = wormhole(
        h,
        &[("WORMHOLE_RELAY_URL", "ws://127.0.0.1:7/v1")],
        &["send", "--text", "x"],
    );
    assert!(
        stderr(&out).contains("(relay URL was ws://127.0.0.1:7/v1)"),
        "{}",
        stderr(&out)
    );
}

/// The run refused with exit 2 and this message on stderr.
#[track_caller]
fn refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(out).contains(needle), "{needle:?} not in {}", stderr(out));
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn bad_files_are_errors_naming_file_and_line() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let f = write_config(h, "qr = false\n\n# a comment\nrelay_url = \"ws://x/v1\"\n");
    let name = f.display().to_string();
    for args in [
        &["--show-config"][..],
        &["send", "--text", "x"],
        &["receive", "1-a-b"],
    ] {
        let out = wormhole(h, &[], args);
        refused(
            &out,
            &format!("config file {name}, line 4: unknown field `relay_url`"),
        );
    }
    write_config(h, "code-length = 3\nqr = \"maybe\"\n");
    refused(
        &wormhole(h, &[], &["--show-config"]),
        &format!("config file {name}, line 2: invalid type"),
    );
    write_config(h, "code-length = 0\n");
    refused(
        &wormhole(h, &[], &["--show-config"]),
        &format!("config file {name}, line 1: code-length must be between 1 and 64"),
    );
    write_config(h, "[section]\nx = 1\n");
    refused(
        &wormhole(h, &[], &["--show-config"]),
        &format!("config file {name}, line 1: unknown field `section`"),
    );
    write_config(h, "qr = \n");
    refused(
        &wormhole(h, &[], &["--show-config"]),
        &format!("config file {name}, line 1:"),
    );
    // Unreadable: a directory where the file should be, a missing explicit file.
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    refused(
        &wormhole(h, &[], &["--show-config"]),
        &format!("cannot read config file {name}:"),
    );
    let missing = h.join("missing.toml");
    let m = missing.to_str().unwrap();
    refused(
        &wormhole(h, &[], &["--config", m, "--show-config"]),
        &format!("cannot read config file {m}:"),
    );
    refused(
        &wormhole(h, &[("WORMHOLE_CONFIG", m)], &["send", "--text", "x"]),
        &format!("cannot read config file {m}:"),
    );
    // Too large.
    std::fs::write(&missing, vec![b'#'; 70_000]).unwrap();
    refused(
        &wormhole(h, &[], &["--config", m, "--show-config"]),
        "is larger than the 65536-byte limit",
    );
    // --json: the same error as an event on stdout.
    let out = wormhole(h, &[], &["--json", "--config", m, "send", "--text", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["event"], "error");
    assert_eq!(line["kind"], "config");
}

#[test]
fn bad_env_values_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let out = wormhole(home.path(), &[("WORMHOLE_CODE_LENGTH", "99")], &["--show-config"]);
    refused(&out, "invalid value \"99\" for WORMHOLE_CODE_LENGTH");
    let out = wormhole(
        home.path(),
        &[("WORMHOLE_HIDE_PROGRESS", "sometimes")],
        &["--show-config"],
    );
    refused(&out, "WORMHOLE_HIDE_PROGRESS");
}
