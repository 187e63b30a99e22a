//! `wss://` with the real peers: our mailbox server terminating TLS (`--tls-cert`, `--tls-key`)
//! with a throwaway CA's certificate, trusted by both clients through `SSL_CERT_FILE`
//! (Python's Twisted reads it through OpenSSL, ours through the platform trust store).
//!
//! - Python 0.24 sends text to our CLI, and our CLI sends a file to Python, over `wss://`;
//! - our CLI refuses a certificate for another host and an expired one, saying which, and exits 1;
//! - the server picks up a renewed certificate on `SIGHUP` without a restart.
//!
//! Runs inside `scripts/netns-run` (the file transfer connects directly).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use wormhole_interop::*;
use wormhole_testkit::tls::{ServerCert, TestCa, Validity};

const NAMES: &[&str] = &["localhost", "127.0.0.1"];

struct Setup {
    dir: tempfile::TempDir,
    ca: TestCa,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path()).unwrap();
    Setup { dir, ca }
}

fn tls_server(cert: &ServerCert) -> MailboxServer {
    start_our_mailbox(&[
        "--tls-cert",
        cert.cert.to_str().unwrap(),
        "--tls-key",
        cert.key.to_str().unwrap(),
    ])
}

fn wss(server: &MailboxServer) -> String {
    format!("wss://localhost:{}/v1", server.port())
}

fn ours(url: &str, ca: &Path) -> PeerCommand {
    PeerCommand::new(our_bin("wormhole"))
        .name("ours")
        .env("SSL_CERT_FILE", ca)
        .args(["--relay-url", url])
}

fn python(url: &str, ca: &Path) -> PeerCommand {
    PeerCommand::new(Peers::locate().python_wormhole)
        .name("python")
        .env("SSL_CERT_FILE", ca)
        .args(["--relay-url", url])
}

#[test]
fn python_sends_text_to_ours_over_wss() {
    let s = setup();
    let cert = s.ca.server("good", NAMES, Validity::Current).unwrap();
    let server = tls_server(&cert);
    let url = wss(&server);
    let ca = s.ca.ca_file();
    let code = "12-tls-text";
    let sender = python(&url, &ca)
        .args([
            "send",
            "--code",
            code,
            "--hide-progress",
            "--no-qr",
            "--text",
            "over wss",
        ])
        .spawn();
    let out = ours(&url, &ca).args(["receive", code]).run();
    out.assert_success();
    assert_eq!(out.stdout.trim(), "over wss", "{out}");
    sender.wait().assert_success();
}

#[test]
fn ours_sends_a_file_to_python_over_wss() {
    require_netns();
    let s = setup();
    let cert = s.ca.server("good", NAMES, Validity::Current).unwrap();
    let server = tls_server(&cert);
    let url = wss(&server);
    let ca = s.ca.ca_file();
    let src = s.dir.path().join("payload.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let out_dir = s.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let code = "13-tls-file";
    let sender = ours(&url, &ca)
        .current_dir(s.dir.path())
        .args(["send", "--code", code, "--hide-progress", "payload.bin"])
        .spawn();
    python(&url, &ca)
        .current_dir(&out_dir)
        .args(["receive", "--accept-file", "--hide-progress", code])
        .run()
        .assert_success();
    sender.wait().assert_success();
    assert_eq!(std::fs::read(out_dir.join("payload.bin")).unwrap(), data);
}

/// Our CLI against a server with `cert`: it must fail with exit status 1 and `expect` in stderr.
fn refused(s: &Setup, cert: &ServerCert, expect: &str) {
    let server = tls_server(cert);
    let out = ours(&wss(&server), &s.ca.ca_file())
        .args(["send", "--text", "never sent"])
        .run();
    assert_eq!(out.status.and_then(|st| st.code()), Some(1), "{out}");
    assert!(out.stderr.contains("TLS certificate refused"), "{out}");
    assert!(out.stderr.contains(expect), "{out}");
}

#[test]
fn our_cli_names_a_wrong_host_certificate() {
    let s = setup();
    let cert =
        s.ca.server("other", &["mailbox.example"], Validity::Current)
            .unwrap();
    refused(&s, &cert, "it is for mailbox.example, not for localhost");
}

#[test]
fn our_cli_names_an_expired_certificate() {
    let s = setup();
    let cert = s.ca.server("old", NAMES, Validity::Expired).unwrap();
    refused(&s, &cert, "it expired on 2020-12-31");
}

#[test]
fn the_server_reloads_its_certificate_on_sighup() {
    let s = setup();
    let old = s.ca.server("old", NAMES, Validity::Expired).unwrap();
    let fresh = s.ca.server("fresh", NAMES, Validity::Current).unwrap();
    let server = tls_server(&old);
    let url = wss(&server);
    let ca = s.ca.ca_file();
    let code = "14-tls-reload";
    let try_once = || {
        let sender = python(&url, &ca)
            .timeout(Duration::from_secs(30))
            .args([
                "send",
                "--code",
                code,
                "--hide-progress",
                "--no-qr",
                "--text",
                "renewed",
            ])
            .spawn();
        let out = ours(&url, &ca)
            .timeout(Duration::from_secs(30))
            .args(["receive", code])
            .run();
        drop(sender);
        out
    };
    let before = ours(&url, &ca).args(["send", "--text", "x"]).run();
    assert!(before.stderr.contains("it expired on"), "{before}");
    // Renew in place, as certbot would, then signal.
    std::fs::copy(&fresh.cert, &old.cert).unwrap();
    std::fs::copy(&fresh.key, &old.key).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The reload runs on the server's runtime: allow it a moment, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = try_once();
        if out.success() {
            assert_eq!(out.stdout.trim(), "renewed", "{out}");
            break;
        }
        assert!(out.stderr.contains("it expired on"), "unexpected failure: {out}");
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
