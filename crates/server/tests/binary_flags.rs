//! The `wormhole-server mailbox` binary with its flags: the startup line, dual-stack `[::]`,
//! welcome flags, `--disallow-list`, pruning with a short expiry written to `--usage-db`, the
//! operator endpoint and JSON logs, and `wormhole-server relay --metrics`.
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

/// `--metrics` serves the operator endpoint beside the mailbox; `--log-format json` writes one
/// JSON object per log line (here the warning of a failed `/ready`).
#[tokio::test]
async fn metrics_endpoint_and_json_logs() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let server = common::spawn(&[
        "--log-format",
        "json",
        "--channel-db",
        db.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
    ]);
    let wait_for_log = |needle: &str| {
        let start = Instant::now();
        loop {
            if let Some(line) = server.logs().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {needle:?} in {}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let line = wait_for_log("metrics on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap()
        .trim()
        .to_owned();
    let get = |path: &'static str| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(addr.as_str()).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    let (_c, _) = Client::connect(server.url()).await;
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(
        metrics.contains("\nwormhole_mailbox_connections 1\n"),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    assert!(get("/ready").await.starts_with("HTTP/1.1 200"));
    std::fs::remove_file(&db).unwrap();
    assert!(get("/ready").await.starts_with("HTTP/1.1 503"));
    let warning = wait_for_log("not ready");
    let v: serde_json::Value = serde_json::from_str(&warning).expect("a JSON log line");
    assert_eq!(v["level"], "WARN", "{v}");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not ready: storage is not reachable")
    );
}

/// `wormhole-server relay --metrics` serves the relay's metrics, `/health` and `/ready` (the relay
/// alone depends on no storage: always ready).
#[test]
fn relay_binary_serves_its_metrics() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wormhole-server"))
        .args(["relay", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let _guard = Kill(child);
    // Read stderr to the end on a thread (a closed pipe would make the relay's next log line fail)
    // and hand over the line naming the endpoint.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line
                .split("metrics on http://")
                .nth(1)
                .and_then(|r| r.strip_suffix("/metrics"))
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the relay names its metrics address");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(addr.as_str()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(metrics.contains("\nwormhole_relay_connections 0\n"), "{metrics}");
    assert!(!metrics.contains("wormhole_mailbox_"), "relay only: {metrics}");
    assert!(get("/health").starts_with("HTTP/1.1 200"));
    assert!(get("/ready").starts_with("HTTP/1.1 200"));
}
