//! Issue 2, Show 4 support: the `mailbox-load` bench binary really drives complete client pairs (and
//! idle bound connections) through a mailbox server — ours, and the Python server as the control that
//! shows the generator speaks the protocol a reference server accepts. Small, bounded runs; the figures
//! themselves come from `scripts/bench-mailbox`.
//!
//! Requires `cargo build --workspace` first (for `wormhole-server` and `mailbox-load`) and, for the
//! control, the Python peers (`scripts/install-peers`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use wormhole_interop::*;

/// Run `mailbox-load` with `args` and return the `key=value` pairs of its `RESULT` line.
fn run_load(args: &[&str]) -> HashMap<String, String> {
    let out = PeerCommand::new(our_bin("mailbox-load"))
        .name("mailbox-load")
        .args(args)
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn ours() -> String {
    our_bin("wormhole-server").display().to_string()
}

/// The load comes from many loopback addresses, as from many clients, so the server's default
/// per-address limits (connections, new connections per second, nameplates) stay on.
const SPREAD: [&str; 2] = ["--source-ips", "250"];

#[test]
fn closed_loop_pairs_complete_through_our_server() {
    let r = run_load(&[
        SPREAD[0],
        SPREAD[1],
        "--spawn-ours",
        &ours(),
        "--concurrency",
        "10",
        "--pairs",
        "100",
        "--pair-timeout",
        "30",
        "--max-seconds",
        "90",
    ]);
    assert_eq!(r["pairs_ok"], "100", "{r:?}");
    assert_eq!(r["pairs_failed"], "0", "{r:?}");
    assert!(r["pairs_per_s"].parse::<f64>().unwrap() > 0.0, "{r:?}");
    assert!(r["server_peak_rss_kb"].parse::<u64>().unwrap() > 0, "{r:?}");
    let (p50, p99): (f64, f64) = (r["p50_ms"].parse().unwrap(), r["p99_ms"].parse().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{r:?}");
}

#[test]
fn open_loop_pairs_complete_through_our_server() {
    let r = run_load(&[
        SPREAD[0],
        SPREAD[1],
        "--spawn-ours",
        &ours(),
        "--rate",
        "40",
        "--duration",
        "1",
        "--pair-timeout",
        "30",
        "--max-seconds",
        "60",
    ]);
    assert_eq!(r["pairs_ok"], "40", "{r:?}");
    assert_eq!(r["pairs_failed"], "0", "{r:?}");
    assert_eq!(r["dropped"], "0", "{r:?}");
}

#[test]
fn idle_connections_stay_bound_on_our_server() {
    let r = run_load(&[
        SPREAD[0],
        SPREAD[1],
        "--spawn-ours",
        &ours(),
        "--idle",
        "300",
        "--hold",
        "0.5",
    ]);
    assert_eq!(r["connections"], "300", "{r:?}");
    assert_eq!(r["ping_alive"], "100/100", "{r:?}");
    assert!(r["kb_per_conn"].parse::<f64>().is_ok(), "{r:?}");
}

/// Control: the same generator against the Python server 0.8.0.
#[test]
fn control_closed_loop_pairs_complete_through_python_server() {
    let peers = Peers::locate();
    let twist = peers.twist.display().to_string();
    let r = run_load(&[
        "--spawn-python",
        &twist,
        "--concurrency",
        "2",
        "--pairs",
        "6",
        "--pair-timeout",
        "60",
        "--max-seconds",
        "100",
    ]);
    assert_eq!(r["pairs_ok"], "6", "{r:?}");
    assert_eq!(r["pairs_failed"], "0", "{r:?}");
}
