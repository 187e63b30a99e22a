//! The `wormhole-server mailbox` binary with its flags: the startup line, dual-stack `[::]`,
//! welcome flags, `--disallow-list`, and pruning with a short expiry written to `--usage-db`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Client;
use serde_json::json;

#[tokio::test]
async fn flags_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let usage = dir.path().join("u.sqlite");
    let server = common::spawn(&[
        "--channel-db",
        db.to_str().unwrap(),
        "--usage-db",
        usage.to_str().unwrap(),
        "--motd",
        "be nice",
        "--advertise-version",
        "9.9",
        "--disallow-list",
        "--prune-interval",
        "0.3",
        "--channel-expiration",
        "1",
    ]);
    let (mut c, w) = Client::connect(server.url()).await;
    assert_eq!(w["welcome"]["motd"], "be nice");
    assert_eq!(w["welcome"]["current_cli_version"], "9.9");
    c.cmd(json!({"type": "bind", "appid": "a", "side": "s"}), "b")
        .await;
    c.claim("17").await;
    c.cmd(json!({"type": "list"}), "l").await;
    assert_eq!(c.expect("nameplates").await["nameplates"], json!([]));
    drop(c);
    // The abandoned channel is pruned within a few prune periods.
    let start = Instant::now();
    loop {
        let n: i64 = rusqlite::Connection::open(&usage)
            .and_then(|u| {
                u.query_row("SELECT count(*) FROM nameplates WHERE result='pruney'", [], |r| {
                    r.get(0)
                })
            })
            .unwrap_or(0);
        if n == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "not pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn dual_stack_listen() {
    let server = common::spawn_on("[::]:0", &["--channel-db", ":memory:"]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    let port = server.addr.port();
    let (_a, w4) = Client::connect(&format!("ws://127.0.0.1:{port}/v1")).await;
    assert_eq!(w4["welcome"]["your-address"]["ipv4"], "127.0.0.1");
    let (_b, w6) = Client::connect(&format!("ws://[::1]:{port}/v1")).await;
    assert_eq!(w6["welcome"]["your-address"]["ipv6"], "::1");
}
