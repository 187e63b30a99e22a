//! Transit through a relay's WebSocket port (issue 15, Show 3): our CLI in a namespace where every
//! TCP port is refused except the mailbox's and the relay's WebSocket port, with a TCP peer (Python
//! 0.24, or ours) on the other side of the same relay: ours and Python's relay, both directions,
//! checked by SHA-256.
//!
//! Layout: the test runs in `scripts/netns-run`'s namespace ("outside": the mailbox, the relay's TCP
//! and WebSocket ports, all on the veth address, and the TCP peer). Our CLI runs in a second
//! namespace ("inside") whose iptables rules reset every other TCP connection, out or in: the
//! relay's TCP port, the peer's direct hints, the peer dialling our listener. So the transfer can
//! only go through the WebSocket; the inside CLI must say so (`->relay:ws://…`, classic transit),
//! and the reject rules must have refused something (our dial of the relay's TCP port at least).
//! Two of ours also move the file over Dilation (its connection through the WebSocket).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use wormhole_interop::*;
use wormhole_testkit::{ChannelDb, ServerSpec, StartOptions, spawn_logged};

/// A relay with a TCP and a WebSocket port on the outer veth address.
struct Relay {
    tcp: u16,
    ws: u16,
    host: String,
    _guard: ChildGuard,
    log: wormhole_testkit::Log,
}

impl Relay {
    /// Ours: `wormhole-server relay --listen A:0 --websocket A:0`.
    fn ours(host: &str) -> Relay {
        let mut cmd = clean_command(our_bin("wormhole-server"));
        cmd.args([
            "relay",
            "--listen",
            &format!("{host}:0"),
            "--websocket",
            &format!("{host}:0"),
        ]);
        Relay::start(cmd, host, |line| {
            let port = || line.rsplit(':').next()?.trim().parse().ok();
            match line.contains("transit relay websocket listening on") {
                true => Some((false, port()?)),
                false if line.contains("transit relay listening on") => Some((true, port()?)),
                false => None,
            }
        })
    }

    /// Python's: `twist transitrelay --port tcp:0:interface=A --websocket tcp:0:interface=A`.
    fn python(host: &str, dir: &Path) -> Relay {
        let mut cmd = clean_command(Peers::locate().twist);
        cmd.args([
            "transitrelay",
            "--port",
            &format!("tcp:0:interface={host}"),
            "--websocket",
            &format!("tcp:0:interface={host}"),
            // Only used in its handshake answers; it may not name port 0.
            "--websocket-url",
            &format!("ws://{host}:1/"),
        ])
        .current_dir(dir);
        Relay::start(cmd, host, |line| {
            const MARK: &str = "ServerFactory starting on ";
            let at = line.find(MARK)? + MARK.len();
            let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
            Some((
                !line[..at].ends_with("WebSocketServerFactory starting on "),
                digits.parse().ok()?,
            ))
        })
    }

    /// Start `cmd` and read its two ports from its log with `parse` (`(is_tcp, port)` per line).
    fn start(cmd: std::process::Command, host: &str, parse: impl Fn(&str) -> Option<(bool, u16)>) -> Relay {
        let (guard, log) = spawn_logged(cmd, "relay", None).unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = log.text();
            let found: Vec<(bool, u16)> = text.lines().filter_map(&parse).collect();
            let tcp = found.iter().find(|(t, _)| *t).map(|(_, p)| *p);
            let ws = found.iter().find(|(t, _)| !*t).map(|(_, p)| *p);
            if let (Some(tcp), Some(ws)) = (tcp, ws) {
                for port in [tcp, ws] {
                    let addr = format!("{host}:{port}").parse().unwrap();
                    assert!(
                        wait_until_accepting(addr, Duration::from_secs(10)),
                        "relay port {port}:\n{text}"
                    );
                }
                return Relay {
                    tcp,
                    ws,
                    host: host.to_owned(),
                    _guard: guard,
                    log,
                };
            }
            assert!(
                Instant::now() < deadline,
                "relay did not announce both ports:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn tcp_hint(&self) -> String {
        format!("tcp:{}:{}", self.host, self.tcp)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}:{}/", self.host, self.ws)
    }
}

/// Everything one case needs: the inside namespace, a mailbox and a relay on its link, a file.
struct Setup {
    inside: InsideNetns,
    mailbox: MailboxServer,
    relay: Relay,
    src: tempfile::TempDir,
    sha: String,
    _relay_dir: tempfile::TempDir,
}

const FILE: &str = "payload.bin";

fn setup(python_relay: bool, seed: u64) -> Setup {
    let inside = InsideNetns::new("ws", 79);
    let spec = ServerSpec::Ours {
        bin: our_bin("wormhole-server"),
        args: Vec::new(),
    };
    let opts = StartOptions {
        listen: Some(format!("{}:0", inside.outer)),
        channel_db: ChannelDb::Fresh,
    };
    let mailbox = MailboxServer::start_with(&spec, &opts).unwrap_or_else(|e| panic!("mailbox: {e}"));
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = match python_relay {
        true => Relay::python(&inside.outer, relay_dir.path()),
        false => Relay::ours(&inside.outer),
    };
    inside.allow_only_tcp_to(&[mailbox.port(), relay.ws]);
    let src = tempfile::tempdir().unwrap();
    let sha = write_test_file(src.path().join(FILE), (2 << 20) + 5, seed);
    Setup {
        inside,
        mailbox,
        relay,
        src,
        sha,
        _relay_dir: relay_dir,
    }
}

/// Who runs where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Our CLI, inside (WebSocket only).
    OursInside,
    /// Our CLI, outside (TCP to the relay).
    OursOutside,
    /// Python 0.24, outside (TCP to the relay).
    Python,
}

fn command(s: &Setup, peer: Peer) -> PeerCommand {
    let url = s.mailbox.url();
    match peer {
        Peer::OursInside => {
            let helper = format!("{},{}", s.relay.tcp_hint(), s.relay.ws_url());
            s.inside
                .command(our_bin("wormhole"))
                .name("ours (inside: WebSocket only)")
                .args(["--relay-url", url, "--transit-helper", &helper])
        }
        Peer::OursOutside => PeerCommand::new(our_bin("wormhole"))
            .name("ours (outside)")
            .args(["--relay-url", url, "--transit-helper", &s.relay.tcp_hint()]),
        Peer::Python => PeerCommand::new(Peers::locate().python_wormhole)
            .name("python (outside)")
            .args(Peers::python_global_args(url, Some(&s.relay.tcp_hint()))),
    }
}

/// Which protocol two of ours use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// Classic transit (`--classic`; always the case with Python).
    Classic,
    /// The Dilated File-Transfer protocol: Dilation's connection through the WebSocket.
    Dilated,
}

/// One run: `from` sends the file to `to`.
fn attempt(s: &Setup, from: Peer, to: Peer, proto: Proto) -> (PeerOutput, PeerOutput, tempfile::TempDir) {
    let code = unique_code();
    let dst = tempfile::tempdir().unwrap();
    let mut send = command(s, from)
        .current_dir(s.src.path())
        .args(["send", "--code", &code, "--hide-progress", "--no-qr"])
        .timeout(Duration::from_secs(90));
    if proto == Proto::Classic && from != Peer::Python && to != Peer::Python {
        // Two of ours would use Dilation otherwise.
        send = send.arg("--classic");
    }
    let sender = send.arg(FILE).spawn();
    let receiver = command(s, to)
        .current_dir(dst.path())
        .args(["receive", "--accept-file", "--hide-progress", &code])
        .timeout(Duration::from_secs(90))
        .run();
    (sender.wait(), receiver, dst)
}

/// `from` sends to `to` (one of them inside) through the relay's WebSocket; checks the content, the
/// path the inside side reports (classic transit prints it), and that the firewall refused
/// something. Inside, nothing but the mailbox and the WebSocket port is reachable, so a completed
/// transfer went through the WebSocket whatever is printed.
fn transfer(python_relay: bool, from: Peer, to: Peer, seed: u64) {
    transfer_with(python_relay, from, to, seed, Proto::Classic);
}

fn transfer_with(python_relay: bool, from: Peer, to: Peer, seed: u64, proto: Proto) {
    require_netns();
    let s = setup(python_relay, seed);
    let mut race = PythonListenRace::new(format!("{from:?} -> {to:?}"));
    let (sender, receiver, dst) = loop {
        let (sender, receiver, dst) = attempt(&s, from, to, proto);
        let pythons: Vec<&PeerOutput> = [(from, &sender), (to, &receiver)]
            .into_iter()
            .filter(|(p, _)| *p == Peer::Python)
            .map(|(_, o)| o)
            .collect();
        let failed = !(sender.success() && receiver.success());
        if failed && race.should_retry(&pythons, &[&sender, &receiver]) {
            continue;
        }
        break (sender, receiver, dst);
    };
    let context = || {
        format!(
            "{sender}\n{receiver}\n--- relay log:\n{}\n--- mailbox log:\n{}",
            s.relay.log.text(),
            s.mailbox.logs()
        )
    };
    assert!(
        sender.success() && receiver.success(),
        "transfer failed:\n{}",
        context()
    );
    assert_eq!(
        sha256_file(dst.path().join(FILE)),
        s.sha,
        "content differs:\n{}",
        context()
    );
    let inside = if from == Peer::OursInside {
        &sender
    } else {
        &receiver
    };
    let path = format!("->relay:{})..", s.relay.ws_url());
    assert!(
        proto == Proto::Dilated || inside.all_output().contains(&path),
        "the inside side did not report `{path}`:\n{}",
        context()
    );
    let refused = s.inside.refused_packets();
    assert!(
        refused > 0,
        "no TCP connection was refused inside:\n{}",
        context()
    );
}

#[test]
fn ours_inside_sends_to_python_through_our_relays_websocket() {
    transfer(false, Peer::OursInside, Peer::Python, 61);
}

#[test]
fn python_sends_to_ours_inside_through_our_relays_websocket() {
    transfer(false, Peer::Python, Peer::OursInside, 62);
}

#[test]
fn ours_inside_sends_to_python_through_pythons_relay_websocket() {
    transfer(true, Peer::OursInside, Peer::Python, 63);
}

#[test]
fn python_sends_to_ours_inside_through_pythons_relay_websocket() {
    transfer(true, Peer::Python, Peer::OursInside, 64);
}

#[test]
fn ours_inside_sends_to_ours_outside_through_our_relays_websocket() {
    transfer(false, Peer::OursInside, Peer::OursOutside, 65);
}

#[test]
fn ours_outside_sends_to_ours_inside_through_pythons_relay_websocket() {
    transfer(true, Peer::OursOutside, Peer::OursInside, 66);
}

#[test]
fn dilated_ours_inside_sends_to_ours_outside_through_our_relays_websocket() {
    transfer_with(false, Peer::OursInside, Peer::OursOutside, 67, Proto::Dilated);
}

#[test]
fn dilated_ours_outside_sends_to_ours_inside_through_pythons_relay_websocket() {
    transfer_with(true, Peer::OursOutside, Peer::OursInside, 68, Proto::Dilated);
}
