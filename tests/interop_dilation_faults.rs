//! Issue 11, Show 2 and 3: Dilation under faults, every byte checked by sha256 (in order,
//! exactly once), with `dilation-peer` (ours) and `tests/drivers/py_dilation_peer.py` (Python
//! 0.24):
//! - the L2 TCP connection destroyed (`ss -K`) twice during 256 MiB, ours⇄ours and ours⇄Python;
//! - the transit relay SIGKILLed and restarted 1.3 s later while 256 MiB flows relay-only,
//!   ours⇄ours (Python dials once and stalls here);
//! - the only path frozen for 6 s (SIGSTOP of a TCP forwarder in it): our connection is aborted
//!   before the path comes back, and the transfer carries on once it does;
//! - a receiver that stops reading for 10 s while 1 GiB is sent: both processes stay under
//!   64 MB RSS and everything arrives.
//!
//! The senders are paced (`--rate`) so each transfer lasts long enough for its faults whatever
//! the machine's speed. Runs inside `scripts/netns-run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use DilationImpl::{Ours, Python};
use wormhole_interop::*;

const T: Duration = Duration::from_secs(240);
const MIB_256: u64 = 256 << 20;

/// Waits (bounded) until `f` returns something.
fn wait_for<R>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<R>) -> R {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

/// Our transit relay on 127.0.0.1:`port`.
fn start_our_relay(port: u16) -> ChildGuard {
    let mut cmd = clean_command(our_bin("wormhole-server"));
    cmd.args(["relay", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let guard = ChildGuard::spawn(cmd, "wormhole-server relay");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        wait_until_accepting(addr, Duration::from_secs(30)),
        "relay on {port} did not start"
    );
    guard
}

fn start_forwarder(listen: u16, target: u16) -> ChildGuard {
    let mut cmd = clean_command(Peers::locate().python);
    cmd.arg(workspace_root().join("tests/drivers/tcp_forwarder.py"))
        .args([listen.to_string(), target.to_string()])
        .stdout(std::process::Stdio::null());
    let guard = ChildGuard::spawn(cmd, "tcp_forwarder.py");
    let addr = SocketAddr::from(([127, 0, 0, 1], listen));
    assert!(
        wait_until_accepting(addr, Duration::from_secs(30)),
        "forwarder on {listen} did not start"
    );
    guard
}

/// Sender and receiver of `bytes` of the bench stream; the sender paced at `rate` MB/s.
fn spawn_transfer(
    url: &str,
    sender: DilationImpl,
    receiver: DilationImpl,
    bytes: u64,
    sender_extra: &[&str],
    receiver_extra: &[&str],
) -> DilationPair {
    let n = bytes.to_string();
    let mut s = vec!["--mode", "send", "--bytes", &n, "--side", LEADER_SIDE];
    s.extend(sender_extra);
    let mut r = vec!["--mode", "recv", "--bytes", &n, "--side", FOLLOWER_SIDE];
    r.extend(receiver_extra);
    DilationPair::spawn(url, (sender, &s), (receiver, &r), T)
}

/// Both ended ok and the receiver got every byte; returns the (sender, receiver) JSON lines.
fn check(pair: DilationPair, bytes: u64) -> (serde_json::Value, serde_json::Value) {
    let (s, r) = pair.wait();
    let (sj, rj) = (s.assert_ok().clone(), r.assert_ok().clone());
    assert_eq!(rj["bytes_received"], bytes, "{rj}");
    assert_eq!(rj["sha256_received"], bench_digest(bytes).as_str(), "{rj}");
    (sj, rj)
}

/// The pair's established connections other than the mailbox's.
fn l2(pair: &DilationPair, mailbox: u16) -> Vec<(u16, u16)> {
    established_tcp(&[pair.a.pid(), pair.b.pid()], &[mailbox])
}

fn destroy_twice(receiver: DilationImpl) {
    require_netns();
    let server = start_our_mailbox(&[]);
    let mport = server.port();
    // Paced so 256 MiB lasts about 17 s: the pacer catches up after each reconnect, so the
    // transfer ends on time however long the reconnects took, and the second destruction
    // (after two reconnects and 3 s of flow) must land well before that end, or no third
    // connection is needed (seen with 8 s on a loaded machine: connections 2, all bytes there).
    let pair = spawn_transfer(server.url(), Ours, receiver, MIB_256, &["--rate", "16"], &[]);
    let mut killed: HashSet<(u16, u16)> = HashSet::new();
    let started = Instant::now();
    let mut rounds = Vec::new();
    for round in 1..=2 {
        // The connection in use: the only one left once the race's losers are gone, not one
        // destroyed before, and alone for 1.5 s in a row (data has flowed on it for a while).
        // A connection seen alone only briefly may be a candidate that then loses to another,
        // and destroying it interrupts nothing (the likely cause of one CI failure on a loaded
        // machine: connections 2).
        let mut alone: Option<((u16, u16), Instant)> = None;
        let conn = wait_for(&format!("L2 connection {round}"), Duration::from_secs(60), || {
            let mut conns: Vec<(u16, u16)> = l2(&pair, mport)
                .into_iter()
                .map(|(a, b)| (a.min(b), a.max(b)))
                .collect();
            conns.sort_unstable();
            conns.dedup();
            match (&conns[..], alone) {
                (&[c], Some((seen, since))) if c == seen => {
                    (since.elapsed() >= Duration::from_millis(1500)).then_some(c)
                }
                (&[c], _) if !killed.contains(&c) => {
                    alone = Some((c, Instant::now()));
                    None
                }
                _ => {
                    alone = None;
                    None
                }
            }
        });
        destroy_tcp(conn.0);
        destroy_tcp(conn.1);
        killed.insert(conn);
        let at = format!(
            "round {round}: destroyed {conn:?} at {:.1} s",
            started.elapsed().as_secs_f64()
        );
        eprintln!("{at}");
        rounds.push(at);
    }
    let (sj, rj) = check(pair, MIB_256);
    assert!(sj["connections"].as_u64().unwrap() >= 3, "{rounds:?} {sj}");
    eprintln!("sender {sj}\nreceiver {rj}");
}

#[test]
fn l2_connection_destroyed_twice_ours_to_ours() {
    destroy_twice(Ours);
}

#[test]
fn l2_connection_destroyed_twice_ours_to_python() {
    destroy_twice(Python);
}

#[test]
fn relay_killed_and_restarted_relay_only_ours_to_ours() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let rport = free_port();
    let mut relay = start_our_relay(rport);
    let hint = format!("tcp:127.0.0.1:{rport}");
    let extra = ["--no-listen", "--relay", &hint, "--rate", "32"];
    let pair = spawn_transfer(server.url(), Ours, Ours, MIB_256, &extra, &extra[..3]);
    wait_for("both sides on the relay", Duration::from_secs(60), || {
        let n = l2(&pair, server.port()).iter().filter(|c| c.1 == rport).count();
        (n >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    relay.kill();
    std::thread::sleep(Duration::from_millis(1300));
    let _relay = start_our_relay(rport);
    let (sj, _) = check(pair, MIB_256);
    assert!(sj["connections"].as_u64().unwrap() >= 2, "{sj}");
}

#[test]
fn frozen_path_is_aborted_and_replaced_once_it_thaws() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let (rport, fport) = (free_port(), free_port());
    let _relay = start_our_relay(rport);
    let forwarder = start_forwarder(fport, rport);
    let hint = format!("tcp:127.0.0.1:{fport}");
    // PINGs every second: the Leader aborts after 2 s of silence, the Follower after 4 s.
    let extra = ["--no-listen", "--relay", &hint, "--ping-interval", "1"];
    let mut s_extra = extra.to_vec();
    s_extra.extend(["--rate", "8"]);
    let pair = spawn_transfer(server.url(), Ours, Ours, 96 << 20, &s_extra, &extra);
    // Our two sockets to the forwarder (each side's connection through it).
    let ours = wait_for(
        "both sides through the forwarder",
        Duration::from_secs(60),
        || {
            let socks: Vec<u16> = l2(&pair, server.port())
                .into_iter()
                .filter(|c| c.1 == fport)
                .map(|c| c.0)
                .collect();
            (socks.len() >= 2).then_some(socks)
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    signal(forwarder.pid(), "-STOP");
    let frozen = Instant::now();
    let still_there = || {
        let now: HashSet<u16> = l2(&pair, server.port()).into_iter().map(|c| c.0).collect();
        ours.iter().filter(|p| now.contains(p)).count()
    };
    // Every one of our connections on the frozen path is aborted while it is still frozen.
    let mut first_gone = None;
    while frozen.elapsed() < Duration::from_secs(6) {
        let left = still_there();
        if left < ours.len() && first_gone.is_none() {
            first_gone = Some(frozen.elapsed());
        }
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let all_gone = frozen.elapsed();
    assert_eq!(
        still_there(),
        0,
        "a connection on the frozen path outlived 6 s of silence"
    );
    eprintln!("first connection aborted after {first_gone:?}, all after {all_gone:?}");
    std::thread::sleep(Duration::from_secs(6).saturating_sub(frozen.elapsed()));
    signal(forwarder.pid(), "-CONT");
    let (sj, _) = check(pair, 96 << 20);
    assert!(sj["connections"].as_u64().unwrap() >= 2, "{sj}");
}

#[test]
fn stalled_receiver_keeps_both_sides_memory_bounded() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let gib = 1u64 << 30;
    let pair = spawn_transfer(server.url(), Ours, Ours, gib, &[], &["--stall", "10"]);
    let (sj, rj) = check(pair, gib);
    for j in [&sj, &rj] {
        let kb = j["max_rss_kb"].as_u64().expect("max_rss_kb");
        assert!(kb < 64 * 1024, "peak RSS {kb} KiB over 64 MiB: {j}");
    }
    let secs = rj["seconds"].as_f64().unwrap();
    assert!(
        secs >= 10.0,
        "the receiver stalled 10 s, yet the transfer took {secs} s"
    );
    eprintln!("sender {sj}\nreceiver {rj}");
}
