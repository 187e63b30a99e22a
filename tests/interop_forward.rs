//! `wormhole forward` against fowl 26.8 (the `fowl` CLI and `fowld`, from PyPI) in both roles,
//! each way, and ours ⇄ ours, on our mailbox. Behind the service side run an echo server, a
//! server that closes each connection after 64 KiB, one that streams 64 MiB to each, and a port
//! that refuses connections. Through
//! one session each test sends 1 kB, 64 MiB (random, echoed back, SHA-256 compared) and four
//! concurrent connections of 4 MiB; closes a connection mid-stream from the client's end and
//! from the service's end; reaches the refusing service (the client's connection ends, and our
//! side names the reason); then a last echo shows the session survived all of it, and our side
//! never lost its Dilation connection. The session ends with fowl's `closing` exchange: the
//! other side exits too.
//!
//! Ours ⇄ ours adds what fowl 26.8 does not survive on the client's side (docs/forward.md): a
//! client that closes while it is still sending, a half-close (the client's end of file goes
//! through and the whole echo still comes back), and concurrent connections that end one by
//! one while the others move data (100 of them); and the Dilation connection killed (`ss -K`)
//! under load: every stream completes, byte for byte.
//!
//! Runs inside `scripts/netns-run` (fowl dials every address it has; its transit relay is fixed
//! to transit.magic-wormhole.io:4001, which netns-run maps to 127.0.0.1); needs `cargo build
//! --workspace` and `scripts/install-peers fowl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use wormhole_interop::forward::{
    ForwardImpl, ForwardPeer, close_mid_stream, close_while_sending, closing_server, echo,
    echo_after_half_close, echo_server, echo_together, ends_within, source_server, wait_until_echo_works,
};
use wormhole_interop::*;

const NAMES: [&str; 4] = ["echo", "closer", "dead", "source"];
const READY: Duration = Duration::from_secs(60);

struct Session {
    service: ForwardPeer,
    client: ForwardPeer,
    /// Client-side ports of echo, closer, dead and source.
    ports: [u16; 4],
    /// Service-side ports of the same.
    targets: [u16; 4],
    _refusing: socket2::Socket,
    _mailbox: MailboxServer,
}

fn session(service_imp: ForwardImpl, client_imp: ForwardImpl) -> Session {
    require_netns();
    let mailbox = start_our_mailbox(&[]);
    let url = mailbox.url().to_owned();
    let (refusing, dead) = refusing_port().expect("a refusing port");
    let targets = [echo_server(), closing_server(), dead, source_server()];
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let services: Vec<String> = NAMES
        .iter()
        .zip(targets)
        .map(|(n, p)| format!("{n}:{p}"))
        .collect();
    let clients: Vec<String> = NAMES.iter().zip(ports).map(|(n, p)| format!("{n}:{p}")).collect();
    let (mut service, mut client) = if service_imp == ForwardImpl::FowlCli {
        let mut c = ForwardPeer::start(client_imp, &url, &[], &clients, None);
        let code = c.code();
        (
            ForwardPeer::start(service_imp, &url, &services, &[], Some(&code)),
            c,
        )
    } else {
        let mut s = ForwardPeer::start(service_imp, &url, &services, &[], None);
        let code = s.code();
        let c = ForwardPeer::start(client_imp, &url, &[], &clients, Some(&code));
        (s, c)
    };
    for n in NAMES {
        if client.imp.is_ours() {
            client
                .live
                .wait_seen(&format!("Service \"{n}\": listening on port"), READY);
        } else if service.imp.is_ours() {
            service
                .live
                .wait_seen(&format!("Service \"{n}\": the peer listens"), READY);
        }
    }
    // fowl registers a service only once its peer's answer was handled: wait for a working path.
    wait_until_echo_works(ports[0], READY);
    Session {
        service,
        client,
        ports,
        targets,
        _refusing: refusing,
        _mailbox: mailbox,
    }
}

fn ours(s: &mut Session) -> Vec<&mut ForwardPeer> {
    [&mut s.service, &mut s.client]
        .into_iter()
        .filter(|p| p.imp.is_ours())
        .collect()
}

/// Everything Show 1 lists, through one session.
fn exercise(s: &mut Session) {
    let [echo_port, closer_port, dead_port, source_port] = s.ports;
    echo(echo_port, 1000, 2).unwrap();
    echo(echo_port, 64 << 20, 3).unwrap();
    echo_together(echo_port, 4, 4 << 20, 10).unwrap();
    close_mid_stream(source_port);
    echo(echo_port, 1000, 4).unwrap();
    // The service's end closes mid-stream: the client sees the end, nothing more.
    ends_within(closer_port, 1 << 20, 0, Duration::from_secs(30));
    // The service is not running: the client's connection ends and our side says why.
    ends_within(dead_port, 1000, 0, Duration::from_secs(30));
    let dead_target = s.targets[2];
    let service_is_ours = s.service.imp.is_ours();
    if service_is_ours {
        s.service
            .live
            .wait_seen(&format!("cannot connect to 127.0.0.1:{dead_target}"), READY);
    }
    if s.client.imp.is_ours() {
        s.client.live.wait_seen("the peer could not connect", READY);
    }
    echo(echo_port, 1000, 5).unwrap();
}

/// End the session from our side (fowl's `closing` exchange) and check both sides exit; with
/// `steady`, our sides never lost their Dilation connection.
fn finish(mut s: Session, steady: bool) {
    let (closer, other) = if s.client.imp.is_ours() {
        (&mut s.client, &mut s.service)
    } else {
        (&mut s.service, &mut s.client)
    };
    let said = if closer.imp == ForwardImpl::OursControl {
        closer.command(serde_json::json!({"kind": "session-close"}));
        "The peer acknowledged the end of the session."
    } else {
        closer.live.signal("INT");
        "Session closed."
    };
    let st = closer.live.exit(Duration::from_secs(20));
    assert!(
        st.success(),
        "ours exits 0 when it ends the session:\n{}",
        closer.live.seen
    );
    assert!(closer.live.seen.contains(said), "{}", closer.live.seen);
    // The other side got our closing and ends the session too.
    let st = other.live.exit(Duration::from_secs(20));
    if other.imp.is_ours() {
        assert!(st.success(), "{}", other.live.seen);
        assert!(
            other.live.seen.contains("The peer closed the session."),
            "{}",
            other.live.seen
        );
    }
    if steady {
        for p in ours(&mut s) {
            assert!(
                !p.live.seen.contains("Connection to the peer lost"),
                "nothing in the session may cost the Dilation connection:\n{}",
                p.live.seen
            );
        }
    }
}

fn run(service: ForwardImpl, client: ForwardImpl) {
    let mut s = session(service, client);
    exercise(&mut s);
    finish(s, true);
}

#[test]
fn fowl_cli_service_to_our_client() {
    run(ForwardImpl::FowlCli, ForwardImpl::Ours);
}

#[test]
fn our_service_to_fowl_cli_client() {
    run(ForwardImpl::Ours, ForwardImpl::FowlCli);
}

#[test]
fn fowld_service_to_our_client() {
    run(ForwardImpl::Fowld, ForwardImpl::Ours);
}

#[test]
fn our_service_to_fowld_client() {
    run(ForwardImpl::Ours, ForwardImpl::Fowld);
}

/// `--control` takes fowld's commands (the harness gives both the same lines) and answers
/// fowld's `ping` with a `pong` carrying the round trip; `session-close` ends the session.
#[test]
fn our_control_mode_service_to_fowld_client() {
    let mut s = session(ForwardImpl::OursControl, ForwardImpl::Fowld);
    exercise(&mut s);
    s.service
        .command(serde_json::json!({"kind": "ping", "ping_id": 4242}));
    let pong = s.service.live.wait_for("\"pong\"", READY);
    let v: serde_json::Value = serde_json::from_str(&pong).expect("a JSON pong");
    assert_eq!(v["ping_id"], 4242, "{pong}");
    assert!(
        v["time_of_flight"].as_f64().is_some_and(|t| t > 0.0 && t < 30.0),
        "{pong}"
    );
    for kind in [
        "code-allocated",
        "peer-connected",
        "awaiting-connect",
        "incoming-connection",
        "incoming-done",
    ] {
        assert!(
            s.service.live.seen.contains(&format!("\"kind\":\"{kind}\"")),
            "no {kind}:\n{}",
            s.service.live.seen
        );
    }
    finish(s, true);
}

#[test]
fn ours_to_ours() {
    let mut s = session(ForwardImpl::Ours, ForwardImpl::Ours);
    exercise(&mut s);
    let echo_port = s.ports[0];
    close_while_sending(echo_port);
    echo(echo_port, 1000, 6).unwrap();
    echo_after_half_close(echo_port, 8 << 20, 7).unwrap();
    let hundred: Vec<_> = (0..100)
        .map(|i| std::thread::spawn(move || echo(echo_port, 256 << 10, 100 + i)))
        .collect();
    for t in hundred {
        t.join().unwrap().unwrap();
    }
    dilation_killed_under_load(&mut s);
    finish(s, false);
}

/// Four 32 MiB echoes; the Dilation connection is destroyed while they run; all complete.
fn dilation_killed_under_load(s: &mut Session) {
    let echo_port = s.ports[0];
    let pids = [s.service.live.guard.pid(), s.client.live.guard.pid()];
    let mut except: Vec<u16> = s.ports.iter().chain(&s.targets).copied().collect();
    except.push(s._mailbox.addr.port());
    let started = Instant::now();
    let load: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || echo(echo_port, 32 << 20, 200 + i)))
        .collect();
    // The Dilation connection: our two processes' TCP connections, but for the mailbox, the
    // local listeners and the local services' connections.
    let mut killed = Vec::new();
    while killed.is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
        for (a, b) in established_tcp(&pids, &except) {
            destroy_tcp(a);
            destroy_tcp(b);
            killed.push((a, b));
        }
    }
    assert!(!killed.is_empty(), "no Dilation connection found to kill");
    let still_running = load.iter().filter(|t| !t.is_finished()).count();
    for t in load {
        t.join().unwrap().unwrap();
    }
    assert!(
        still_running > 0,
        "the load had finished before the kill; the test proves nothing"
    );
    s.service.live.wait_seen("Reconnected to the peer.", READY);
}
