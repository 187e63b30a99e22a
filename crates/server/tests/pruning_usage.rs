//! Pruning with a short expiry (set by flags) and the usage DB rows, read back with rusqlite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, InProcess, args};
use rusqlite::Connection;
use serde_json::json;

const APP: &str = "app";

fn usage_rows(path: &Path, table: &str) -> Vec<(String, Option<f64>, f64, String)> {
    let c = Connection::open(path).unwrap();
    let sql = format!("SELECT app_id, waiting_time, started, result FROM {table} ORDER BY rowid");
    c.prepare(&sql)
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn results(path: &Path, table: &str) -> Vec<String> {
    usage_rows(path, table).into_iter().map(|r| r.3).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn idle_channels_are_pruned_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage.sqlite");
    let mut a = args();
    a.usage_db = Some(usage.clone());
    a.prune_interval = 0.3;
    a.channel_expiration = 1.0;
    let srv = InProcess::start(a).await;

    // Abandoned channel: claimed, opened, a message, then the client vanishes. Every activity on
    // it comes after `abandoned`, so it cannot expire before `abandoned` + 1 s, however slowly
    // the rest of the setup runs.
    let mut gone = Client::bound(&srv.url(), APP, "gone").await;
    let abandoned = Instant::now();
    let mb = gone.claim("4").await;
    gone.open(&mb).await;
    gone.add("pake", "00", "m").await;
    drop(gone);
    // Crowded channel, also abandoned.
    for s in ["c1", "c2", "c3"] {
        let mut c = Client::bound(&srv.url(), APP, s).await;
        c.cmd(json!({"type": "claim", "nameplate": "9"}), "c").await;
        c.recv().await; // claimed or crowded
    }
    // Live channel: its client stays subscribed, so pruning keeps touching it.
    let mut live = Client::bound(&srv.url(), APP, "live").await;
    let live_mb = live.claim("6").await;
    live.open(&live_mb).await;

    let mut obs = Client::bound(&srv.url(), APP, "observer").await;
    assert_eq!(obs.list().await, json!([{"id": "4"}, {"id": "6"}, {"id": "9"}]));
    let start = Instant::now();
    loop {
        let l = obs.list().await;
        if l == json!([{"id": "6"}]) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "not pruned: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 1 s of expiration, less a little for the server's floating-point seconds.
    assert!(
        abandoned.elapsed() >= Duration::from_millis(900),
        "pruned too early ({:?} after it was abandoned)",
        abandoned.elapsed()
    );
    let mut np = results(&usage, "nameplates");
    np.sort();
    assert_eq!(np, ["crowded", "pruney"]);
    let mut mbx = results(&usage, "mailboxes");
    mbx.sort();
    assert_eq!(mbx, ["crowded", "pruney"]);

    // The pruned mailbox lost its messages.
    let mut late = Client::bound(&srv.url(), APP, "late").await;
    late.open(&mb).await;
    late.quiet(Duration::from_millis(300)).await;

    // `current` counts subscribed connections (live and late).
    wait_for("current row", || {
        let c = Connection::open(&usage).unwrap();
        c.query_row("SELECT connections_websocket FROM current", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n == 2)
        .unwrap_or(false)
    })
    .await;
    // The live one still works.
    live.add("x", "01", "alive").await;
}

#[tokio::test]
async fn usage_rows_for_completed_channels() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("usage.sqlite");
    let mut a = args();
    a.usage_db = Some(usage.clone());
    a.blur_usage = Some(3600);
    let srv = InProcess::start(a).await;

    // Happy: two sides, both release and close happy.
    let (mut x, _) = Client::connect(&srv.url()).await;
    x.cmd(
        json!({"type": "bind", "appid": APP, "side": "x", "client_version": ["python", "0.24.0"]}),
        "b",
    )
    .await;
    let (mut y, _) = Client::connect(&srv.url()).await;
    y.cmd(json!({"type": "bind", "appid": APP, "side": "y"}), "b")
        .await;
    let mb = x.claim("11").await;
    y.claim("11").await;
    for c in [&mut x, &mut y] {
        c.cmd(json!({"type": "release"}), "r").await;
        c.expect("released").await;
    }
    for c in [&mut x, &mut y] {
        c.cmd(json!({"type": "close", "mailbox": mb, "mood": "happy"}), "x")
            .await;
        c.expect("closed").await;
    }
    // Scary: one side says scary.
    let mut s1 = Client::bound(&srv.url(), APP, "s1").await;
    let mut s2 = Client::bound(&srv.url(), APP, "s2").await;
    s1.open("scary-mb").await;
    s2.open("scary-mb").await;
    s1.cmd(json!({"type": "close", "mood": "scary"}), "x").await;
    s1.expect("closed").await;
    s2.cmd(json!({"type": "close", "mood": "happy"}), "x").await;
    s2.expect("closed").await;
    // Lonely: one side alone.
    let mut l = Client::bound(&srv.url(), APP, "l").await;
    let lonely_mb = l.claim("12").await;
    l.cmd(json!({"type": "release"}), "r").await;
    l.expect("released").await;
    // (claim does not count as an open: close must name the mailbox)
    l.cmd(json!({"type": "close", "mood": "lonely"}), "x0").await;
    l.expect_error("close without mailbox must follow open").await;
    l.cmd(
        json!({"type": "close", "mailbox": lonely_mb, "mood": "lonely"}),
        "x",
    )
    .await;
    l.expect("closed").await;

    let np = usage_rows(&usage, "nameplates");
    assert_eq!(np.len(), 2, "{np:?}");
    assert_eq!(np[0].3, "happy");
    assert!(np[0].1.is_some(), "happy nameplate has a waiting time");
    assert_eq!(np[1].3, "lonely");
    assert!(np[1].1.is_none());
    for row in &np {
        assert_eq!(row.2 % 3600.0, 0.0, "started is blurred: {row:?}");
    }
    assert_eq!(results(&usage, "mailboxes"), ["happy", "scary", "lonely"]);

    let c = Connection::open(&usage).unwrap();
    let for_np: Vec<bool> = c
        .prepare("SELECT for_nameplate FROM mailboxes ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(for_np, [true, false, true]);
    let versions: Vec<(String, Option<String>, Option<String>, f64)> = c
        .prepare(
            "SELECT side, implementation, version, connect_time FROM client_versions \
             WHERE side IN ('x','y') ORDER BY side",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].1.as_deref(), Some("python"));
    assert_eq!(versions[0].2.as_deref(), Some("0.24.0"));
    assert_eq!((versions[1].1.as_deref(), versions[1].2.as_deref()), (None, None));
    assert_eq!(versions[0].3 % 3600.0, 0.0);
}
