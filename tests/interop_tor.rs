//! `--tor` with a real SOCKS5 proxy (Debian's `microsocks`) standing in for Tor's SOCKS port, and
//! `--launch-tor` with a real `tor` on a machine without internet.
//!
//! Layout: the test runs in `scripts/netns-run`'s namespace ("outside": mailbox, relay, Python,
//! the proxy on a veth address). Our CLI runs in a second namespace ("inside") whose only link is
//! that veth: the mailbox URL and every hint point at 127.0.0.1, which inside is an empty
//! loopback, so a transfer can only complete if every connection went through the proxy. The
//! proxy's log must show the connections, and the inside namespace is watched while our CLI runs:
//! any listening socket there (nothing else runs inside) fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wormhole_interop::*;

/// The inside namespace and the proxy on its link; removed on drop.
struct Inside {
    net: InsideNetns,
    proxy: String,
    _socks: ChildGuard,
    log: Arc<Mutex<String>>,
}

impl Inside {
    fn new() -> Inside {
        let net = InsideNetns::new("tor", 78);
        let a = net.outer.clone();
        let mut cmd = clean_command("microsocks");
        cmd.args(["-i", &a, "-p", "1080"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("microsocks (scripts/install-peers tor)");
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&(line + "\n"));
                }
            });
        }
        let proxy = format!("{a}:1080");
        assert!(
            wait_until_accepting(proxy.parse().unwrap(), Duration::from_secs(10)),
            "microsocks did not start"
        );
        Inside {
            net,
            proxy,
            _socks: ChildGuard::new(child, "microsocks"),
            log,
        }
    }

    /// Our CLI inside, with every connection through the proxy.
    fn ours(&self, mailbox: &str, relay: &str) -> PeerCommand {
        self.net
            .command(our_bin("wormhole"))
            .name("ours (inside, --tor)")
            .args(["--relay-url", mailbox, "--transit-helper", relay])
    }

    /// Listening TCP sockets inside (there must never be any).
    fn listeners(&self) -> String {
        self.net.listeners()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Run `ours` while watching the inside namespace for listening sockets.
fn run_watched(inside: &Inside, ours: PeerCommand) -> PeerOutput {
    let running = ours.spawn();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let l = inside.listeners();
                if !l.is_empty() {
                    seen.push(l);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        });
        let out = running.wait();
        done.store(true, Ordering::Relaxed);
        (out, watcher.join().unwrap())
    });
    let (out, listeners) = seen;
    assert!(
        listeners.is_empty(),
        "a socket listened inside: {listeners:?}\n{out}"
    );
    out
}

fn payload(dir: &std::path::Path) -> Vec<u8> {
    let data: Vec<u8> = (0..400_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(dir.join("tor.bin"), &data).unwrap();
    data
}

#[test]
fn python_sends_text_and_a_file_to_ours_through_the_proxy() {
    let inside = Inside::new();
    let mailbox = start_our_mailbox(&[]);
    let relay = start_python_relay(ANY_PORT);
    let url = mailbox.url().to_owned();
    let hint = relay.python_hint();
    let py = || {
        PeerCommand::new(Peers::locate().python_wormhole)
            .name("python")
            .args(Peers::python_global_args(&url, Some(&hint)))
    };
    // Text.
    let sender = py()
        .args([
            "send",
            "--code",
            "21-tor-text",
            "--hide-progress",
            "--no-qr",
            "--text",
            "via socks",
        ])
        .spawn();
    let out = run_watched(
        &inside,
        inside
            .ours(&url, &hint)
            .args(["receive", "--tor-socks", &inside.proxy, "21-tor-text"]),
    );
    out.assert_success();
    assert_eq!(out.stdout.trim(), "via socks", "{out}");
    sender.wait().assert_success();
    // A file.
    let dir = tempfile::tempdir().unwrap();
    let data = payload(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let sender = py()
        .current_dir(dir.path())
        .args([
            "send",
            "--code",
            "22-tor-file",
            "--hide-progress",
            "--no-qr",
            "tor.bin",
        ])
        .spawn();
    let out = run_watched(
        &inside,
        inside.ours(&url, &hint).current_dir(out_dir.path()).args([
            "receive",
            "--tor-socks",
            &inside.proxy,
            "--accept-file",
            "--hide-progress",
            "22-tor-file",
        ]),
    );
    out.assert_success();
    sender.wait().assert_success();
    assert_eq!(std::fs::read(out_dir.path().join("tor.bin")).unwrap(), data);
    let log = inside.log();
    let port = mailbox.port();
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "proxy log lacks the mailbox:\n{log}"
    );
    assert!(log.lines().count() >= 3, "proxy log:\n{log}");
}

#[test]
fn ours_sends_a_file_to_python_through_the_proxy() {
    let inside = Inside::new();
    let mailbox = start_our_mailbox(&[]);
    let relay = start_python_relay(ANY_PORT);
    let url = mailbox.url().to_owned();
    let hint = relay.python_hint();
    let dir = tempfile::tempdir().unwrap();
    let data = payload(dir.path());
    // A Python receiver that lost its own transit-port race (exact, logged) is run again.
    let mut race = PythonListenRace::new("ours -> python through the proxy");
    let out_dir = loop {
        let out_dir = tempfile::tempdir().unwrap();
        let code = unique_code();
        let receiver = PeerCommand::new(Peers::locate().python_wormhole)
            .name("python")
            .args(Peers::python_global_args(&url, Some(&hint)))
            .current_dir(out_dir.path())
            .args(["receive", "--accept-file", "--hide-progress", &code])
            .spawn();
        let out = run_watched(
            &inside,
            inside.ours(&url, &hint).current_dir(dir.path()).args([
                "send",
                "--tor-socks",
                &inside.proxy,
                "--code",
                &code,
                "--hide-progress",
                "tor.bin",
            ]),
        );
        let receiver = receiver.wait();
        if out.success() && receiver.success() {
            break out_dir;
        }
        if !race.should_retry(&[&receiver], &[&out, &receiver]) {
            panic!(
                "transfer failed:\n{out}\n{receiver}\n--- proxy log:\n{}",
                inside.log()
            );
        }
    };
    assert_eq!(std::fs::read(out_dir.path().join("tor.bin")).unwrap(), data);
    // We publish no direct hints, so the transit connection is one we dialled, through the proxy
    // (to Python's direct hints or to the relay): the log has more than the mailbox connection.
    let log = inside.log();
    let mailbox_line = format!("127.0.0.1:{}", mailbox.port());
    assert!(log.contains(&mailbox_line), "proxy log lacks the mailbox:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("connected to") && !l.contains(&mailbox_line)),
        "no transit connection through the proxy:\n{log}"
    );
}

#[test]
fn without_a_proxy_tor_mode_fails_clearly_and_dials_nothing_directly() {
    let inside = Inside::new();
    let out = inside
        .ours("ws://127.0.0.1:1/v1", "tcp:127.0.0.1:2")
        .args(["send", "--tor", "--text", "x"])
        .run();
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out}");
    assert!(
        out.stderr
            .contains("no Tor SOCKS port at 127.0.0.1:9050 or 127.0.0.1:9150"),
        "{out}"
    );
}

#[test]
fn launch_tor_starts_tor_says_it_cannot_bootstrap_and_stops_it() {
    require_netns();
    let out = PeerCommand::new(our_bin("wormhole"))
        .args([
            "send",
            "--launch-tor",
            "--tor-bootstrap-timeout",
            "4",
            "--text",
            "x",
        ])
        .timeout(Duration::from_secs(90))
        .run();
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{out}");
    assert!(out.stderr.contains("Tor could not bootstrap within 4 s"), "{out}");
    let pid: u32 = out
        .stderr
        .split("Launched Tor (pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no tor pid in:\n{out}"));
    // We reaped it before exiting, so the PID no longer names our tor.
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.contains("wormhole-tor-"),
        "tor {pid} still runs: {cmdline}"
    );
}
