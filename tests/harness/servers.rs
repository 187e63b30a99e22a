//! Starting servers for tests: our mailbox (`wormhole-server mailbox`), the Python mailbox
//! (`twist wormhole-mailbox`) and the Python transit relay (`twist transitrelay`), each bound to
//! 127.0.0.1 and waited for until it accepts TCP connections. Also [`free_port`] and the lock for the
//! fixed port 4001.
//!
//! Servers are owned by their handle: dropping it kills and reaps the process. Their output is drained
//! into a bounded in-memory log ([`MailboxServer::logs`]) so a chatty server can never block on a full
//! pipe. Nothing here binds anything but loopback.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ours::our_bin;
use crate::peers::Peers;
use crate::process::{ChildGuard, clean_command};

/// How long a server may take to start accepting connections.
pub const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Keep at most this many bytes of a server's output.
const LOG_CAP: usize = 256 * 1024;

/// A free TCP port on 127.0.0.1 (bound, then released; a tiny race with other binders remains).
pub fn free_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free port on 127.0.0.1: {e}"),
    }
}

/// Poll `addr` with TCP connects until one succeeds or `timeout` passes. Returns false on timeout.
pub fn wait_until_accepting(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Which implementation a [`MailboxServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Our `wormhole-server mailbox`.
    Ours,
    /// Python `twist wormhole-mailbox` (magic-wormhole-mailbox-server 0.8.0).
    Python,
}

/// A running mailbox server on 127.0.0.1. Dropping it kills the process.
#[derive(Debug)]
pub struct MailboxServer {
    /// Which implementation this is.
    pub kind: ServerKind,
    /// The bound address.
    pub addr: SocketAddr,
    /// The channel database file.
    pub channel_db: PathBuf,
    url: String,
    log: Arc<Mutex<String>>,
    guard: ChildGuard,
    _dir: Option<tempfile::TempDir>,
}

impl MailboxServer {
    /// The WebSocket URL, `ws://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's PID (e.g. for RSS measurements).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Everything the server printed so far (bounded).
    pub fn logs(&self) -> String {
        lock(&self.log).clone()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }

    /// Kill (SIGKILL) and reap the server now, keeping the database (e.g. for restart tests).
    pub fn kill(&mut self) {
        self.guard.kill();
    }
}

/// Start our `wormhole-server mailbox --listen 127.0.0.1:0` with a fresh channel DB in a temporary
/// directory, plus `extra_args`. The bound address is read from the server's output (a line containing
/// `listening on ADDR`). Panics (with the server's output) if it does not come up.
pub fn start_our_mailbox(extra_args: &[&str]) -> MailboxServer {
    let dir = tempdir();
    let db = dir.path().join("channel.sqlite");
    let mut server = start_our_mailbox_on_db(&db, extra_args);
    server._dir = Some(dir);
    server
}

/// Like [`start_our_mailbox`] but on the given channel DB path (kept after the server ends), so a test
/// can restart the server on the same database.
pub fn start_our_mailbox_on_db(channel_db: &Path, extra_args: &[&str]) -> MailboxServer {
    let bin = our_bin("wormhole-server");
    let mut cmd = clean_command(&bin);
    cmd.arg("mailbox")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--channel-db")
        .arg(channel_db)
        .args(extra_args);
    if let Some(dir) = channel_db.parent() {
        cmd.current_dir(dir);
    }
    let (tx, rx) = channel();
    let (mut guard, log) = spawn_logged(cmd, "wormhole-server mailbox", Some(tx));
    let addr = wait_for_listen_line(&mut guard, &rx, &log);
    if !wait_until_accepting(addr, SERVER_START_TIMEOUT) {
        panic!(
            "our mailbox server announced {addr} but does not accept connections; output:\n{}",
            lock(&log)
        );
    }
    MailboxServer {
        kind: ServerKind::Ours,
        url: format!("ws://{addr}/v1"),
        addr,
        channel_db: channel_db.to_path_buf(),
        log,
        guard,
        _dir: None,
    }
}

fn wait_for_listen_line(
    guard: &mut ChildGuard,
    rx: &Receiver<SocketAddr>,
    log: &Arc<Mutex<String>>,
) -> SocketAddr {
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    loop {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
            return addr;
        }
        if let Some(status) = guard.try_wait() {
            // Give the drain threads a moment to collect the last words.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "our mailbox server exited ({status}) before announcing its address; output:\n{}",
                lock(log)
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "our mailbox server printed no `listening on ADDR` line within {SERVER_START_TIMEOUT:?}; \
                 output:\n{}",
                lock(log)
            );
        }
    }
}

/// Find `listening on ADDR` in a log line (ANSI colours, `ws://` prefix and `/v1` suffix tolerated).
fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let plain = strip_ansi(line);
    let lower = plain.to_ascii_lowercase();
    let at = lower.find("listening on")? + "listening on".len();
    let rest = plain.get(at..)?.trim_start_matches([' ', ':', '=']);
    let token = rest.split_whitespace().next()?;
    let token = token.trim_start_matches("ws://").trim_start_matches("http://");
    let token = token.split('/').next()?;
    let token = token.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | '.' | ';' | '(' | ')'));
    token.parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip a CSI sequence: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Start the Python mailbox server (`twist wormhole-mailbox`) on a free 127.0.0.1 port with a fresh
/// channel DB, plus `extra_args` (e.g. `["--usage-db", "u.sqlite"]`).
pub fn start_python_mailbox(extra_args: &[&str]) -> MailboxServer {
    let peers = Peers::locate();
    let dir = tempdir();
    let db = dir.path().join("channel.sqlite");
    let port = free_port();
    let mut cmd = clean_command(&peers.twist);
    cmd.arg("wormhole-mailbox")
        .arg("--port")
        .arg(format!("tcp:{port}:interface=127.0.0.1"))
        .arg("--channel-db")
        .arg(&db)
        .args(extra_args)
        .current_dir(dir.path());
    let (guard, log, addr) = start_twist(cmd, port, "twist wormhole-mailbox");
    MailboxServer {
        kind: ServerKind::Python,
        url: format!("ws://{addr}/v1"),
        addr,
        channel_db: db,
        log,
        guard,
        _dir: Some(dir),
    }
}

/// A running Python transit relay on 127.0.0.1. Dropping it kills the process.
#[derive(Debug)]
pub struct TransitRelay {
    /// The bound address.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl TransitRelay {
    /// The Python CLI's `--transit-helper` form: `tcp:127.0.0.1:PORT`.
    pub fn python_hint(&self) -> String {
        format!("tcp:{}:{}", self.addr.ip(), self.addr.port())
    }

    /// wormhole-rs's `--relay-server` form: `tcp://127.0.0.1:PORT`.
    pub fn rs_url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The relay's PID.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Everything the relay printed so far (bounded).
    pub fn logs(&self) -> String {
        lock(&self.log).clone()
    }
}

/// Start the Python transit relay (`twist transitrelay`) on 127.0.0.1:`port` (use [`free_port`], or
/// 4001 under [`lock_port_4001`] when Go peers are involved).
pub fn start_python_relay(port: u16) -> TransitRelay {
    let peers = Peers::locate();
    let dir = tempdir();
    let mut cmd = clean_command(&peers.twist);
    cmd.arg("transitrelay")
        .arg("--port")
        .arg(format!("tcp:{port}:interface=127.0.0.1"))
        .current_dir(dir.path());
    let (guard, log, addr) = start_twist(cmd, port, "twist transitrelay");
    TransitRelay {
        addr,
        log,
        guard,
        _dir: dir,
    }
}

fn start_twist(
    cmd: std::process::Command,
    port: u16,
    name: &str,
) -> (ChildGuard, Arc<Mutex<String>>, SocketAddr) {
    let (mut guard, log) = spawn_logged(cmd, name, None);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return (guard, log, addr);
        }
        if let Some(status) = guard.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{name} exited ({status}) before accepting on {addr}; output:\n{}",
                lock(&log)
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "{name} does not accept on {addr} after {SERVER_START_TIMEOUT:?}; output:\n{}",
                lock(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawn `cmd` (stdin empty) with stdout and stderr drained into one bounded log; lines announcing
/// `listening on ADDR` are reported on `announce`, if given.
fn spawn_logged(
    mut cmd: std::process::Command,
    name: &str,
    announce: Option<Sender<SocketAddr>>,
) -> (ChildGuard, Arc<Mutex<String>>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(cmd, name);
    let log = Arc::new(Mutex::new(String::new()));
    let child = guard.child_mut();
    if let Some(out) = child.stdout.take() {
        drain_lines(out, log.clone(), announce.clone());
    }
    if let Some(err) = child.stderr.take() {
        drain_lines(err, log.clone(), announce);
    }
    (guard, log)
}

fn drain_lines<R: Read + Send + 'static>(
    pipe: R,
    log: Arc<Mutex<String>>,
    announce: Option<Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(tx) = &announce
                && let Some(addr) = parse_listen_line(&text)
            {
                let _ = tx.send(addr);
            }
            let mut log = lock(&log);
            if log.len() + text.len() <= LOG_CAP {
                log.push_str(&text);
            }
        }
    });
}

/// Holds the fixed port 4001 for one test: wormhole-william always offers
/// `transit.magic-wormhole.io:4001` as its relay, which `scripts/netns-run` maps to 127.0.0.1, so a test
/// with a Go peer that may use the relay starts [`start_python_relay`]`(4001)` while holding this.
#[derive(Debug)]
pub struct Port4001Lock {
    _guard: MutexGuard<'static, ()>,
    _file: File,
}

/// Take the port-4001 lock: a process-wide mutex (tests of one binary run as threads) plus an exclusive
/// file lock keyed by the network namespace (test binaries or runs sharing a namespace). Blocks until free.
pub fn lock_port_4001() -> Port4001Lock {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ns = std::fs::read_link("/proc/self/ns/net")
        .map(|p| {
            p.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_else(|_| "default".to_owned());
    let path = std::env::temp_dir().join(format!("wormhole-interop-port4001-{ns}.lock"));
    let file = match File::create(&path) {
        Ok(f) => f,
        Err(e) => panic!("cannot create lock file {}: {e}", path.display()),
    };
    if let Err(e) = file.lock() {
        panic!("cannot lock {}: {e}", path.display());
    }
    Port4001Lock {
        _guard: guard,
        _file: file,
    }
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::Builder::new().prefix("wormhole-interop-").tempdir() {
        Ok(d) => d,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_lines() {
        let want: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(parse_listen_line("listening on 127.0.0.1:40123"), Some(want));
        assert_eq!(
            parse_listen_line(
                "2026-01-01T00:00:00Z  INFO wormhole_server: listening on ws://127.0.0.1:40123/v1"
            ),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("\u{1b}[32mINFO\u{1b}[0m mailbox listening on 127.0.0.1:40123."),
            Some(want)
        );
        assert_eq!(
            parse_listen_line("listening on [::1]:4000").map(|a| a.port()),
            Some(4000)
        );
        assert_eq!(parse_listen_line("starting up"), None);
        assert_eq!(parse_listen_line("listening on nowhere"), None);
    }
}
