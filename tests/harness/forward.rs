//! Helpers of the `wormhole forward` tests (tests/interop_forward.rs): the local services behind
//! the service side (an echo server, one that closes mid-stream, one that streams), the
//! checks a local client makes through a forwarded port, and starting each implementation
//! (ours, the `fowl` CLI, `fowld`) in either role.
//!
//! Owns: those servers, clients and command lines. Must not: decide what a test asserts about
//! a session as a whole (the tests do).
// Test helpers: a failed set-up step fails the test, with the step named.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LiveChild, Peers, clean_command, our_bin, sha256_bytes};

/// Which program stands on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardImpl {
    /// `wormhole forward`.
    Ours,
    /// fowl 26.8's `fowl` CLI (cannot show its code in a parseable way: it always gets one).
    FowlCli,
    /// fowl 26.8's `fowld` (JSON lines).
    Fowld,
    /// `wormhole forward --control`, given the same JSON-lines commands as `fowld`.
    OursControl,
}

impl ForwardImpl {
    /// `wormhole forward`, with or without `--control`.
    pub fn is_ours(self) -> bool {
        matches!(self, ForwardImpl::Ours | ForwardImpl::OursControl)
    }

    /// Driven by fowld's JSON-lines commands on stdin.
    pub fn is_controlled(self) -> bool {
        matches!(self, ForwardImpl::Fowld | ForwardImpl::OursControl)
    }
}

/// A TCP server on 127.0.0.1 that echoes every connection until its end of file, then closes.
pub fn echo_server() -> u16 {
    serve(|mut c| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = c.shutdown(Shutdown::Both);
    })
}

/// A server that reads 64 KiB of each connection, then closes it (the service side's end of a
/// forwarded connection closing mid-stream).
pub fn closing_server() -> u16 {
    serve(|mut c| {
        let mut buf = vec![0u8; 64 * 1024];
        let _ = c.read_exact(&mut buf);
        let _ = c.shutdown(Shutdown::Both);
    })
}

/// A server that sends 64 MiB to each connection (or until the connection is gone), then
/// closes it.
pub fn source_server() -> u16 {
    serve(|mut c| {
        let chunk = random(64 * 1024, 11);
        for _ in 0..1024 {
            if c.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = c.shutdown(Shutdown::Both);
    })
}

fn serve(handle: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a local service");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || handle(c));
        }
    });
    port
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    c
}

/// Send `n` random bytes through the forwarded `port` while reading the echo; the echo's
/// SHA-256 must be the data's. Closes only after everything came back (fowl passes no
/// half-close: a CLOSE ends both directions at once).
pub fn echo(port: u16, n: usize, seed: u64) -> Result<(), String> {
    echo_then(port, n, seed, || ())
}

/// `count` concurrent [`echo`]s of `n` bytes each through `port`; every connection closes only
/// once all of them got their echo back. (fowl 26.8 as the side whose listener the clients
/// reach drops its own Dilation connection when one forwarded connection closes while others
/// still move data: docs/forward.md. The staggered closes run ours ⇄ ours.)
pub fn echo_together(port: u16, count: usize, n: usize, seed: u64) -> Result<(), String> {
    let all = std::sync::Arc::new(std::sync::Barrier::new(count));
    let threads: Vec<_> = (0..count)
        .map(|i| {
            let all = all.clone();
            std::thread::spawn(move || {
                let r = echo_then(port, n, seed + i as u64, || {
                    all.wait();
                });
                if r.is_err() {
                    // Do not keep the others waiting at the barrier: they fail on their own
                    // read timeout otherwise.
                    all.wait();
                }
                r
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().map_err(|_| "an echo thread panicked".to_owned()))
        .collect();
    for r in results {
        r??;
    }
    Ok(())
}

fn echo_then(port: u16, n: usize, seed: u64, before_close: impl FnOnce()) -> Result<(), String> {
    let data = random(n, seed);
    let want = sha256_bytes(&data);
    let mut c = connect(port);
    let mut w = c.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || w.write_all(&data));
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < n {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => return Err(format!("reading the echo after {} of {n} bytes: {e}", got.len())),
        }
    }
    let _ = writer.join();
    if got.len() != n {
        return Err(format!("the echo ended after {} of {n} bytes", got.len()));
    }
    let sha = sha256_bytes(&got);
    if sha != want {
        return Err(format!("echo of {n} bytes differs: {sha} != {want}"));
    }
    before_close();
    Ok(())
}

/// Repeat a 1 kB echo until it works (the forwarded path is ready end to end), at most `within`.
pub fn wait_until_echo_works(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let attempt = std::panic::catch_unwind(|| echo(port, 1000, 1));
        match attempt {
            Ok(Ok(())) => return,
            Ok(Err(e)) if Instant::now() > deadline => panic!("port {port} never echoed: {e}"),
            Err(_) if Instant::now() > deadline => panic!("port {port} never accepted"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A local client closes mid-stream: it reads 256 KiB of a [`source_server`]'s stream, then
/// closes while the rest is on its way. (The client sends nothing: fowl 26.8 on the client's
/// side drops its own Dilation connection when a local connection closes while fowl still has
/// that connection's data to send; docs/forward.md.)
pub fn close_mid_stream(port: u16) {
    let mut c = connect(port);
    let mut buf = vec![0u8; 256 << 10];
    c.read_exact(&mut buf).expect("the first 256 KiB of the stream");
    let _ = c.shutdown(Shutdown::Both);
}

/// Send `n` bytes, half-close (`shutdown(Write)`), then read the echo to its end of file: all
/// of it must arrive after our end of file went through (only between two sides that pass
/// half-closes on; fowl ends both directions at the first CLOSE).
pub fn echo_after_half_close(port: u16, n: usize, seed: u64) -> Result<(), String> {
    let data = random(n, seed);
    let want = sha256_bytes(&data);
    let mut c = connect(port);
    let mut w = c.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || {
        w.write_all(&data)?;
        w.shutdown(Shutdown::Write)
    });
    let mut got = Vec::with_capacity(n);
    c.read_to_end(&mut got)
        .map_err(|e| format!("reading the echo after {} of {n} bytes: {e}", got.len()))?;
    writer
        .join()
        .map_err(|_| "the writer panicked".to_owned())?
        .map_err(|e| format!("sending: {e}"))?;
    let sha = sha256_bytes(&got);
    if got.len() != n || sha != want {
        return Err(format!(
            "after the half-close {} of {n} bytes came back (sha256 {sha}, want {want})",
            got.len()
        ));
    }
    Ok(())
}

/// A local client closes while it sends: 1 MiB to an echo, one read, close.
pub fn close_while_sending(port: u16) {
    let mut c = connect(port);
    let data = random(1 << 20, 7);
    let mut w = c.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let mut buf = vec![0u8; 64 * 1024];
    let _ = c.read(&mut buf);
    let _ = c.shutdown(Shutdown::Both);
    drop(c);
    let _ = writer.join();
}

/// The connection ends (end of file or reset) within `within`, having received at most `max`
/// bytes; how many it received.
pub fn ends_within(port: u16, send: usize, max: usize, within: Duration) -> usize {
    let mut c = connect(port);
    c.set_read_timeout(Some(within)).expect("timeout");
    let mut w = c.try_clone().expect("clone");
    let data = random(send, 9);
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&data);
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("port {port}: the connection was still open after {within:?}")
            }
            Err(_) => break,
        }
    }
    let _ = c.shutdown(Shutdown::Both);
    let _ = writer.join();
    assert!(
        got <= max,
        "port {port}: received {got} bytes, expected at most {max}"
    );
    got
}

/// One side of a forward session.
pub struct ForwardPeer {
    /// The program.
    pub imp: ForwardImpl,
    /// Its output, as it comes.
    pub live: LiveChild,
    /// fowld's command input (kept open: fowld reads commands for as long as it runs).
    pub stdin: Option<ChildStdin>,
}

impl ForwardPeer {
    /// Start `imp` on `mailbox` with these `--service` and `--client` specs (fowl's syntax),
    /// with `code` or allocating one (not possible for the fowl CLI).
    pub fn start(
        imp: ForwardImpl,
        mailbox: &str,
        services: &[String],
        clients: &[String],
        code: Option<&str>,
    ) -> ForwardPeer {
        let peers = Peers::locate();
        let name = format!("{imp:?}");
        let mut cmd: Command = match imp {
            ForwardImpl::Ours => {
                let mut c = clean_command(our_bin("wormhole"));
                c.args(["--relay-url", mailbox, "forward"]);
                c
            }
            ForwardImpl::OursControl => {
                let mut c = clean_command(our_bin("wormhole"));
                c.args(["--relay-url", mailbox, "forward", "--control"]);
                c
            }
            ForwardImpl::FowlCli => {
                let mut c = clean_command(&peers.fowl);
                c.args(["--mailbox", mailbox]);
                c
            }
            ForwardImpl::Fowld => {
                let mut c = clean_command(&peers.fowld);
                c.args(["--mailbox", mailbox]);
                c
            }
        };
        if !imp.is_controlled() {
            for s in services {
                cmd.args(["--service", s]);
            }
            for c in clients {
                cmd.args(["--client", c]);
            }
            if let Some(code) = code {
                cmd.arg(code);
            } else {
                assert_eq!(
                    imp,
                    ForwardImpl::Ours,
                    "only ours and fowld show an allocated code"
                );
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut live = LiveChild::spawn(cmd, &name);
        let mut stdin = live.guard.child_mut().stdin.take();
        if imp.is_controlled() {
            let mut lines = vec![match code {
                Some(c) => serde_json::json!({"kind": "set-code", "code": c}),
                None => serde_json::json!({"kind": "allocate-code"}),
            }];
            for c in clients {
                let (n, p) = name_port(c);
                lines.push(serde_json::json!({"kind": "local", "name": n, "local_listen_port": p}));
            }
            for s in services {
                let (n, p) = name_port(s);
                lines.push(serde_json::json!({"kind": "remote", "name": n, "local_connect_port": p}));
            }
            let w = stdin.as_mut().expect("fowld stdin");
            for l in lines {
                writeln!(w, "{l}").expect("write a fowld command");
            }
            w.flush().expect("flush");
        } else {
            stdin = None;
        }
        ForwardPeer { imp, live, stdin }
    }

    /// Send one JSON-lines command (fowld and `--control` only).
    pub fn command(&mut self, v: serde_json::Value) {
        let w = self.stdin.as_mut().expect("a side driven by JSON-lines commands");
        writeln!(w, "{v}").expect("write a command");
        w.flush().expect("flush");
    }

    /// The code this side allocated.
    pub fn code(&mut self) -> String {
        let within = Duration::from_secs(30);
        match self.imp {
            ForwardImpl::Ours => {
                let line = self.live.wait_for("Wormhole code is: ", within);
                line.rsplit(' ').next().expect("code").trim().to_owned()
            }
            ForwardImpl::Fowld | ForwardImpl::OursControl => {
                let line = self.live.wait_for("code-allocated", within);
                let v: serde_json::Value = serde_json::from_str(&line).expect("fowld JSON");
                v["code"].as_str().expect("code").to_owned()
            }
            ForwardImpl::FowlCli => panic!("the fowl CLI is always given the code"),
        }
    }
}

/// `NAME:PORT` of a spec.
fn name_port(spec: &str) -> (String, Option<u16>) {
    let mut it = spec.split(':');
    let n = it.next().unwrap_or_default().to_owned();
    (n, it.next().and_then(|p| p.parse().ok()))
}
