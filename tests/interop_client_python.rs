//! Interop of our client library (`wormhole::Wormhole`) with the Python library 0.24
//! (`wormhole.create`, Deferred API, driven by `tests/drivers/py_client.py`), on the Python
//! mailbox server and on ours, in both directions: one side allocates, the other sets the
//! code; versions and three messages each way; equal verifiers; happy close on both.
//! Plus the wrong-code case (WrongPasswordError on both sides).
//!
//! Needs `cargo build --workspace` first (for `wormhole-server`) and the Python peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use wormhole::{Mood, Wormhole, WormholeError, WormholeOptions};
use wormhole_interop::{MailboxServer, PyClient, start_our_mailbox, start_python_mailbox, unique_code};

const APPID: &str = "lothar.com/wormhole/interop-client-test";
const T: Duration = Duration::from_secs(60);

/// The Python side, with the versions `exchange` expects of it.
fn py_peer(url: &str, code: Option<&str>) -> PyClient {
    PyClient::spawn(url, APPID, code, r#"{"py": true}"#)
}

fn ours(url: &str) -> Wormhole {
    Wormhole::create(
        APPID,
        url,
        WormholeOptions {
            versions: json!({"ours": true}),
            ..WormholeOptions::default()
        },
    )
}

async fn exchange(server: &MailboxServer, python_allocates: bool) {
    let url = server.url();
    let w = ours(url);
    let mut py = if python_allocates {
        let mut py = py_peer(url, None);
        let code = py.next().await["code"].as_str().unwrap().to_owned();
        w.set_code(&code).await.unwrap();
        py
    } else {
        w.allocate_code(2).await.unwrap();
        let code = w.get_code().await.unwrap();
        let mut py = py_peer(url, Some(&code));
        assert_eq!(py.next().await["code"], json!(code));
        py
    };
    let verifier = tokio::time::timeout(T, w.get_verifier()).await.unwrap().unwrap();
    assert_eq!(w.get_versions().await.unwrap(), json!({"py": true}));
    for i in 0..3 {
        w.send_message(format!("rs{i}").into_bytes()).await.unwrap();
    }
    for i in 0..3 {
        let m = tokio::time::timeout(T, w.get_message()).await.unwrap().unwrap();
        assert_eq!(m, format!("py{i}").into_bytes());
    }
    assert_eq!(py.next().await, json!({"verifier": hex::encode(verifier)}));
    assert_eq!(py.next().await, json!({"versions": {"ours": true}}));
    assert_eq!(py.next().await, json!({"received": ["rs0", "rs1", "rs2"]}));
    assert_eq!(tokio::time::timeout(T, w.close()).await.unwrap(), Ok(Mood::Happy));
    assert_eq!(py.next().await, json!({"closed": "happy"}));
    py.finish().await;
}

async fn wrong_code(server: &MailboxServer) {
    let code = unique_code();
    let w = ours(server.url());
    w.set_code(&code).await.unwrap();
    let mut py = py_peer(server.url(), Some(&format!("{code}x")));
    assert!(py.next().await.get("code").is_some());
    let v = tokio::time::timeout(T, w.get_verifier()).await.unwrap();
    assert_eq!(v, Err(WormholeError::WrongPassword));
    assert_eq!(w.close().await, Err(WormholeError::WrongPassword));
    let e = py.next().await;
    assert_eq!(e["error"], "WrongPasswordError", "{e}");
    assert_eq!(py.next().await["close_error"], "WrongPasswordError");
    py.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_python_allocates() {
    exchange(&start_python_mailbox(&[]), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_server_ours_allocates() {
    exchange(&start_python_mailbox(&[]), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_python_allocates() {
    exchange(&start_our_mailbox(&[]), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_ours_allocates() {
    exchange(&start_our_mailbox(&[]), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_python_server() {
    wrong_code(&start_python_mailbox(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_our_server() {
    wrong_code(&start_our_mailbox(&[])).await;
}
