//! `wss://` mailbox connections against our own server terminating TLS (`--tls-cert`,
//! `--tls-key`) with a throwaway CA: a message exchange over TLS, the certificate reloaded in
//! place, and a clear error for each certificate problem (wrong host, expired, unknown issuer).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::timeout;
use wormhole::net::NetworkOptions;
use wormhole::{Wormhole, WormholeError, WormholeOptions};
use wormhole_server::{MailboxArgs, MailboxServer, bind};
use wormhole_testkit::tls::{ServerCert, TestCa, Validity};

const APPID: &str = "example.com/wormhole-tls-test";
const T: Duration = Duration::from_secs(30);

/// Our server on 127.0.0.1:0 serving `cert`; returns its port.
async fn tls_server(cert: &ServerCert) -> u16 {
    let mut args = MailboxArgs::defaults();
    args.listen = "127.0.0.1:0".into();
    args.channel_db = ":memory:".into();
    args.tls_cert = Some(cert.cert.clone());
    args.tls_key = Some(cert.key.clone());
    let srv = MailboxServer::start(&args).unwrap();
    let listener = bind(&args.listen).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(srv.serve(listener));
    port
}

fn trusting(ca: Option<&Path>) -> WormholeOptions {
    WormholeOptions {
        network: NetworkOptions {
            extra_ca_file: ca.map(Path::to_path_buf),
            ..NetworkOptions::default()
        },
        ..WormholeOptions::default()
    }
}

/// One message each way between two wormholes on `url`.
async fn exchange(url: &str, ca: &Path) {
    let a = Wormhole::create(APPID, url, trusting(Some(ca)));
    a.allocate_code(2).await.unwrap();
    let code = timeout(T, a.get_code()).await.unwrap().unwrap();
    let b = Wormhole::create(APPID, url, trusting(Some(ca)));
    b.set_code(&code).await.unwrap();
    a.send_message(b"over tls".to_vec()).await.unwrap();
    assert_eq!(timeout(T, b.get_message()).await.unwrap().unwrap(), b"over tls");
    b.send_message(b"and back".to_vec()).await.unwrap();
    assert_eq!(timeout(T, a.get_message()).await.unwrap().unwrap(), b"and back");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The error a lone wormhole on `url` ends with.
async fn first_error(url: &str, ca: Option<&Path>) -> String {
    let w = Wormhole::create(APPID, url, trusting(ca));
    let _ = w.allocate_code(2).await;
    match timeout(T, w.get_code()).await.unwrap() {
        Err(WormholeError::ServerConnection(why)) => {
            eprintln!("error for {url}: {why}");
            why
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path()).unwrap();
    Pki { _dir: dir, ca }
}

#[tokio::test]
async fn messages_flow_over_wss_by_name_and_by_address() {
    let pki = pki();
    let cert = pki
        .ca
        .server("good", &["localhost", "127.0.0.1"], Validity::Current)
        .unwrap();
    let port = tls_server(&cert).await;
    exchange(&format!("wss://localhost:{port}/v1"), &pki.ca.ca_file()).await;
    exchange(&format!("wss://127.0.0.1:{port}/v1"), &pki.ca.ca_file()).await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_clearly() {
    let pki = pki();
    let cert = pki
        .ca
        .server("other", &["other.example"], Validity::Current)
        .unwrap();
    let port = tls_server(&cert).await;
    let why = first_error(&format!("wss://localhost:{port}/v1"), Some(&pki.ca.ca_file())).await;
    assert!(why.contains("TLS certificate refused"), "{why}");
    assert!(
        why.contains("it is for other.example, not for localhost"),
        "{why}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_clearly() {
    let pki = pki();
    let cert = pki.ca.server("old", &["localhost"], Validity::Expired).unwrap();
    let port = tls_server(&cert).await;
    let why = first_error(&format!("wss://localhost:{port}/v1"), Some(&pki.ca.ca_file())).await;
    assert!(why.contains("TLS certificate refused"), "{why}");
    assert!(why.contains("it expired on 2020-12-31"), "{why}");
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_clearly() {
    let pki = pki();
    let cert = pki.ca.server("good", &["localhost"], Validity::Current).unwrap();
    let port = tls_server(&cert).await;
    let why = first_error(&format!("wss://localhost:{port}/v1"), None).await;
    assert!(why.contains("authority we do not trust"), "{why}");
}

#[tokio::test]
async fn a_plain_client_of_a_tls_server_fails_without_hanging() {
    let pki = pki();
    let cert = pki.ca.server("good", &["localhost"], Validity::Current).unwrap();
    let port = tls_server(&cert).await;
    let why = first_error(&format!("ws://localhost:{port}/v1"), None).await;
    assert!(why.contains("WebSocket handshake failed"), "{why}");
}

#[tokio::test]
async fn an_unreadable_extra_ca_file_is_named_in_the_error() {
    let missing: PathBuf = "/nonexistent/ca.pem".into();
    let why = first_error("wss://localhost:1/v1", Some(&missing)).await;
    // The TCP connection to port 1 fails first, or the trust store does: either names the cause.
    assert!(
        why.contains("cannot connect") || why.contains("/nonexistent/ca.pem"),
        "{why}"
    );
}
