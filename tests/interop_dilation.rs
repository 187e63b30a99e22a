//! Issue 11, Show 1: Dilation between our side (`dilation-peer`) and Python 0.24
//! (`tests/drivers/py_dilation_peer.py`, `create(..., dilation=True)`), with our side as Leader and
//! as Follower (forced through the Dilation sides), direct and relay-only (`--no-listen` on both
//! sides, the Python transit relay): data both ways (send ⇄ echo), 4 concurrent subchannels, a
//! 0-byte subchannel, 2,000 one-byte writes arriving as 2,000 records, and half-close in both
//! directions (the sender half-closes first and reads the echo to the end; the echoing side
//! half-closes after the peer's CLOSE). Every byte is checked by sha256.
//!
//! Runs inside `scripts/netns-run` (both peers advertise and dial every interface address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wormhole_interop::*;

const T: Duration = Duration::from_secs(120);
use DilationImpl::{Ours, Python};

fn side(leader: bool) -> &'static str {
    if leader { LEADER_SIDE } else { FOLLOWER_SIDE }
}

/// `sender` opens `streams` subchannels with `bytes` each (in `write_size` writes); `echoer`
/// echoes them. Both finish ok with the roles asked for; every byte came back.
fn send_echo(
    url: &str,
    sender: DilationImpl,
    echoer: DilationImpl,
    sender_leads: bool,
    extra: &[&str],
    streams: usize,
    bytes: usize,
) {
    let (n, k) = (bytes.to_string(), streams.to_string());
    let mut s_args = vec![
        "--mode",
        "send",
        "--bytes",
        &n,
        "--streams",
        &k,
        "--side",
        side(sender_leads),
    ];
    let mut e_args = vec!["--mode", "echo", "--streams", &k, "--side", side(!sender_leads)];
    s_args.extend(extra);
    e_args.extend(extra);
    let (e, s) = DilationPair::spawn(url, (echoer, &e_args), (sender, &s_args), T).wait();
    let (sj, ej) = (s.assert_ok(), e.assert_ok());
    assert_eq!(
        sj["dilation_role"],
        if sender_leads { "leader" } else { "follower" }
    );
    assert_eq!(
        ej["dilation_role"],
        if sender_leads { "follower" } else { "leader" }
    );
    let want = expected_digest(&bench_stream(bytes), streams);
    assert_eq!(ej["sha256_received"], want.as_str(), "what the echoer got");
    assert_eq!(sj["sha256_received"], want.as_str(), "what came back");
    assert_eq!(s.u64("bytes_received"), (bytes * streams) as u64);
    assert_eq!(s.u64("connections"), 1, "{sj}");
}

#[test]
fn direct_ours_leader_python_follower_four_subchannels_both_ways() {
    require_netns();
    let server = start_our_mailbox(&[]);
    send_echo(server.url(), Ours, Python, true, &[], 4, 3 << 20);
}

#[test]
fn direct_python_leader_ours_follower_four_subchannels_both_ways() {
    require_netns();
    let server = start_our_mailbox(&[]);
    send_echo(server.url(), Python, Ours, true, &[], 4, 3 << 20);
}

#[test]
fn direct_ours_sends_as_follower_python_echoes_as_leader() {
    require_netns();
    let server = start_our_mailbox(&[]);
    send_echo(server.url(), Ours, Python, false, &[], 2, 1 << 20);
}

#[test]
fn relay_only_both_roles() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let relay = start_python_relay(ANY_PORT);
    let hint = relay.python_hint();
    let extra = ["--no-listen", "--relay", hint.as_str()];
    send_echo(server.url(), Ours, Python, true, &extra, 1, 4 << 20);
    send_echo(server.url(), Python, Ours, true, &extra, 1, 4 << 20);
}

/// 2,000 one-byte writes arrive as 2,000 records, both ways; and a 0-byte subchannel, both ways.
#[test]
fn record_boundaries_and_empty_subchannels() {
    require_netns();
    let server = start_our_mailbox(&[]);
    for (sender, receiver) in [(Ours, Python), (Python, Ours)] {
        let s_args = [
            "--mode",
            "send",
            "--bytes",
            "2000",
            "--write-size",
            "1",
            "--side",
            LEADER_SIDE,
        ];
        let r_args = ["--mode", "recv", "--bytes", "2000", "--side", FOLLOWER_SIDE];
        let (r, s) = DilationPair::spawn(server.url(), (receiver, &r_args), (sender, &s_args), T).wait();
        s.assert_ok();
        r.assert_ok();
        assert_eq!(
            r.u64("records_received"),
            2000,
            "{:?} → {:?}: {}",
            sender,
            receiver,
            r.json
        );
        assert_eq!(
            r.json["sha256_received"],
            expected_digest(&bench_stream(2000), 1).as_str()
        );

        let s_args = ["--mode", "send", "--bytes", "0", "--side", FOLLOWER_SIDE];
        let r_args = ["--mode", "recv", "--bytes", "0", "--side", LEADER_SIDE];
        let (r, s) = DilationPair::spawn(server.url(), (receiver, &r_args), (sender, &s_args), T).wait();
        s.assert_ok();
        r.assert_ok();
        assert_eq!(r.u64("bytes_received"), 0);
        assert_eq!(r.u64("records_received"), 0);
    }
}
