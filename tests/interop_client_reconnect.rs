//! Reconnection for real (issue 3, Show 4): our mailbox server is killed (SIGKILL) and restarted
//! on the same port and the same `--channel-db` file in the middle of a handshake; both clients
//! reconnect with backoff, re-bind with the same side, re-claim / re-open / re-send, and finish
//! with the same verifier and every message delivered exactly once.
//!
//! Needs `cargo build --workspace` first (for `wormhole-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use wormhole::{Mood, Timing, Wormhole, WormholeOptions};
use wormhole_interop::{MailboxServer, PyClient, our_bin};
use wormhole_testkit::{ChannelDb, ServerSpec, StartOptions};

const APPID: &str = "example.com/interop-reconnect";
const T: Duration = Duration::from_secs(60);

/// Our mailbox server on 127.0.0.1:`port` (0 the first time: the server picks a free one; a restart
/// must come back on the same address) with the channel DB `db` (kept across restarts).
fn start_server(port: u16, db: &Path) -> MailboxServer {
    let spec = ServerSpec::Ours {
        bin: our_bin("wormhole-server"),
        args: Vec::new(),
    };
    let opts = StartOptions {
        listen: Some(format!("127.0.0.1:{port}")),
        channel_db: ChannelDb::At(db.to_path_buf()),
    };
    MailboxServer::start_with(&spec, &opts).unwrap_or_else(|e| panic!("our mailbox server: {e}"))
}

fn client(url: &str, who: &str, timing: &Timing) -> Wormhole {
    Wormhole::create(
        APPID,
        url,
        WormholeOptions {
            versions: json!({"who": who}),
            timing: Some(timing.clone()),
            ..WormholeOptions::default()
        },
    )
}

/// Wait until one client's timing log shows the server's `message` frame for `phase` (callers bound it).
async fn echoed(t: &Timing, phase: &str) {
    while !t.events().iter().any(|e| {
        let m = e.details.get("message");
        e.name == "ws_receive" && m.is_some_and(|m| m["type"] == "message" && m["phase"] == phase)
    }) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sides seen in `bind` frames of one client's timing log.
fn bound_sides(t: &Timing) -> Vec<String> {
    t.events()
        .iter()
        .filter(|e| e.name == "ws_send" && e.details.get("type") == Some(&json!("bind")))
        .map(|e| e.details["side"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("channel.sqlite");
    let mut server = start_server(0, &db);
    let port = server.port();
    let url = server.url().to_owned();
    let (ta, tb) = (Timing::new(), Timing::new());
    let a = client(&url, "a", &ta);
    let b = client(&url, "b", &tb);
    a.get_welcome().await.unwrap();
    b.get_welcome().await.unwrap();

    // A allocates, claims, opens and adds its pake; then the server dies.
    a.allocate_code(2).await.unwrap();
    let code = a.get_code().await.unwrap();
    // The server has stored A's pake once it echoes it back to A.
    tokio::time::timeout(T, echoed(&ta, "pake"))
        .await
        .expect("the server never echoed A's pake");
    server.kill();

    // B learns the code while the server is down; A already queues an app message.
    b.set_code(&code).await.unwrap();
    a.send_message(b"sent while down".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut server = start_server(port, &db);

    let (va, vb) = tokio::time::timeout(T, async { tokio::join!(a.get_verifier(), b.get_verifier()) })
        .await
        .expect("handshake did not finish after the restart");
    assert_eq!(va.unwrap(), vb.unwrap());
    assert_eq!(a.get_versions().await.unwrap(), json!({"who": "b"}));
    assert_eq!(b.get_versions().await.unwrap(), json!({"who": "a"}));

    // Second outage after the key is confirmed: messages queued meanwhile still arrive once.
    server.kill();
    b.send_message(b"b1".to_vec()).await.unwrap();
    a.send_message(b"a1".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _server = start_server(port, &db);
    let got_b = tokio::time::timeout(T, async { (b.get_message().await, b.get_message().await) })
        .await
        .unwrap();
    assert_eq!(got_b.0.unwrap(), b"sent while down");
    assert_eq!(got_b.1.unwrap(), b"a1");
    assert_eq!(
        tokio::time::timeout(T, a.get_message()).await.unwrap().unwrap(),
        b"b1"
    );

    let (ca, cb) = tokio::time::timeout(T, async { tokio::join!(a.close(), b.close()) })
        .await
        .unwrap();
    assert_eq!((ca, cb), (Ok(Mood::Happy), Ok(Mood::Happy)));

    // Each client bound several times, always with the same side.
    for (t, w) in [(&ta, &a), (&tb, &b)] {
        let sides = bound_sides(t);
        assert!(sides.len() >= 3, "expected reconnections, saw binds {sides:?}");
        assert!(sides.iter().all(|s| s == w.side()));
    }
}

/// The same with the Python library on the other side (it reconnects too, docs/protocol.md §2.7):
/// Python allocates, the server dies, we set the code while it is down, the server comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_with_python_peer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("channel.sqlite");
    let mut server = start_server(0, &db);
    let port = server.port();
    let url = server.url().to_owned();
    let ta = Timing::new();
    let w = client(&url, "ours", &ta);
    w.get_welcome().await.unwrap();

    let mut py = PyClient::spawn(&url, APPID, None, r#"{"who": "py"}"#);
    let code = py.next().await["code"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    w.set_code(&code).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = start_server(port, &db);

    let verifier = tokio::time::timeout(T, w.get_verifier()).await.unwrap().unwrap();
    assert_eq!(w.get_versions().await.unwrap(), json!({"who": "py"}));
    for i in 0..3 {
        w.send_message(format!("rs{i}").into_bytes()).await.unwrap();
    }
    for i in 0..3 {
        let m = tokio::time::timeout(T, w.get_message()).await.unwrap().unwrap();
        assert_eq!(m, format!("py{i}").into_bytes());
    }
    assert_eq!(py.next().await, json!({"verifier": hex::encode(verifier)}));
    assert_eq!(py.next().await, json!({"versions": {"who": "ours"}}));
    assert_eq!(py.next().await, json!({"received": ["rs0", "rs1", "rs2"]}));
    assert_eq!(tokio::time::timeout(T, w.close()).await.unwrap(), Ok(Mood::Happy));
    assert_eq!(py.next().await, json!({"closed": "happy"}));
    py.finish().await;
    assert!(bound_sides(&ta).len() >= 2, "we reconnected");
}
