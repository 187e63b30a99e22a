//! Starting a mailbox server for a test or benchmark: ours (`wormhole-server mailbox`, its address
//! read from its `listening on ADDR` line) or Python's (`twist wormhole-mailbox` on port 0, its port
//! read from Twisted's `starting on PORT` line), on loopback, and waiting until it accepts TCP connections. The process is killed and reaped when
//! the [`MailboxServer`] is dropped; a channel database it made in a fresh directory goes with it.
//!
//! Owns the one server spawner of the workspace (the interop harness, the server's integration
//! tests and the benchmarks all use it). Must not touch a process it did not start, bind anything
//! but what it is told (loopback by default), or wait longer than [`START_TIMEOUT`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::net::wait_until_accepting;
use crate::process::{ChildGuard, Log, clean_command, spawn_logged};

/// How long a server may take to announce its address and accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server to start, with extra arguments after the ones this module passes.
#[derive(Debug, Clone)]
pub enum ServerSpec {
    /// Our `wormhole-server` at `bin`: `mailbox --listen … [--channel-db …] ARGS`.
    Ours {
        /// Path of `wormhole-server`.
        bin: PathBuf,
        /// Extra arguments.
        args: Vec<String>,
    },
    /// Python's server run by this `twist`: `wormhole-mailbox --port … [--channel-db …] ARGS`.
    Python {
        /// Path of `twist`.
        twist: PathBuf,
        /// Extra arguments.
        args: Vec<String>,
    },
}

/// Where the channel database lives.
#[derive(Debug, Clone, Default)]
pub enum ChannelDb {
    /// A fresh file in a fresh temporary directory, removed with the server.
    #[default]
    Fresh,
    /// This file (kept after the server ends, e.g. to restart on it); the server runs in its
    /// directory.
    At(PathBuf),
    /// No `--channel-db` from here: the spec's arguments give one (or the server's default).
    InArgs,
}

/// How to start a server beyond its [`ServerSpec`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Our server's `--listen` (default `127.0.0.1:0`); Python's always binds 127.0.0.1 port 0.
    pub listen: Option<String>,
    /// The channel database.
    pub channel_db: ChannelDb,
}

/// Which implementation a [`MailboxServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Our `wormhole-server mailbox`.
    Ours,
    /// Python `twist wormhole-mailbox` (magic-wormhole-mailbox-server 0.8.0).
    Python,
}

/// Why a server did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Setting up its directory or spawning it failed.
    #[error("cannot start the mailbox server: {0}")]
    Io(#[from] std::io::Error),
    /// It exited before it accepted connections.
    #[error("the mailbox server exited ({status}) before accepting connections; output:\n{output}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// What it printed.
        output: String,
    },
    /// Our server printed no `listening on ADDR` line in time.
    #[error(
        "the mailbox server printed no `listening on ADDR` line within {START_TIMEOUT:?}; output:\n{output}"
    )]
    NoAddress {
        /// What it printed.
        output: String,
    },
    /// It does not accept TCP connections on its address in time.
    #[error("the mailbox server does not accept on {addr} within {START_TIMEOUT:?}; output:\n{output}")]
    NotAccepting {
        /// The address it should accept on.
        addr: SocketAddr,
        /// What it printed.
        output: String,
    },
}

/// A running mailbox server. Dropping it kills (SIGKILL) and reaps the process.
#[derive(Debug)]
pub struct MailboxServer {
    /// Which implementation this is.
    pub kind: ServerKind,
    /// The bound address.
    pub addr: SocketAddr,
    /// The channel database file, when this module chose or was given it.
    pub channel_db: Option<PathBuf>,
    url: String,
    log: Log,
    guard: ChildGuard,
    dir: Option<tempfile::TempDir>,
}

impl MailboxServer {
    /// Start `spec` with the default [`StartOptions`] (loopback, a fresh channel DB).
    pub fn start(spec: &ServerSpec) -> Result<MailboxServer, StartError> {
        MailboxServer::start_with(spec, &StartOptions::default())
    }

    /// Start `spec` as `opts` say and wait until it accepts connections.
    pub fn start_with(spec: &ServerSpec, opts: &StartOptions) -> Result<MailboxServer, StartError> {
        let dir = match opts.channel_db {
            ChannelDb::Fresh => Some(
                tempfile::Builder::new()
                    .prefix("wormhole-testkit-mailbox-")
                    .tempdir()?,
            ),
            _ => None,
        };
        let channel_db = match &opts.channel_db {
            ChannelDb::Fresh => dir.as_ref().map(|d| d.path().join("channel.sqlite")),
            ChannelDb::At(path) => Some(path.clone()),
            ChannelDb::InArgs => None,
        };
        let workdir = dir.as_ref().map(|d| d.path().to_path_buf()).or_else(|| {
            channel_db
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
        });
        let (mut cmd, kind) = match spec {
            ServerSpec::Ours { bin, args } => {
                let mut cmd = clean_command(bin);
                let listen = opts.listen.as_deref().unwrap_or("127.0.0.1:0");
                cmd.args(["mailbox", "--listen", listen]);
                if let Some(db) = &channel_db {
                    cmd.arg("--channel-db").arg(db);
                }
                cmd.args(args);
                (cmd, ServerKind::Ours)
            }
            ServerSpec::Python { twist, args } => {
                // Port 0: Twisted binds a free port itself and logs `… starting on PORT` (no
                // window in which another test could take a port picked for it beforehand).
                let mut cmd = clean_command(twist);
                cmd.arg("wormhole-mailbox")
                    .arg("--port")
                    .arg("tcp:0:interface=127.0.0.1");
                if let Some(db) = &channel_db {
                    cmd.arg("--channel-db").arg(db);
                }
                cmd.args(args);
                (cmd, ServerKind::Python)
            }
        };
        if let Some(w) = workdir.as_deref().filter(|w| !w.as_os_str().is_empty()) {
            cmd.current_dir(w);
        }
        let (tx, rx) = channel();
        let name = match kind {
            ServerKind::Ours => "wormhole-server mailbox",
            ServerKind::Python => "twist wormhole-mailbox",
        };
        let (mut guard, log) = spawn_logged(cmd, name, Some(tx))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = wait_for_address(&mut guard, &rx, &log, deadline)?;
        loop {
            if wait_until_accepting(addr, Duration::from_millis(250)) {
                break;
            }
            check_alive(&mut guard, &log)?;
            if Instant::now() >= deadline {
                return Err(StartError::NotAccepting {
                    addr,
                    output: log.text(),
                });
            }
        }
        Ok(MailboxServer {
            kind,
            url: format!("ws://{addr}/v1"),
            addr,
            channel_db,
            log,
            guard,
            dir,
        })
    }

    /// The WebSocket URL, `ws://ADDR/v1`.
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

    /// The fresh directory holding its channel DB, if this module made one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Everything the server printed so far (bounded).
    pub fn logs(&self) -> String {
        self.log.text()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.is_running()
    }

    /// Kill (SIGKILL) and reap the server now, keeping its database (e.g. for restart tests).
    pub fn kill(&mut self) {
        self.guard.kill();
    }
}

fn wait_for_address(
    guard: &mut ChildGuard,
    rx: &Receiver<SocketAddr>,
    log: &Log,
    deadline: Instant,
) -> Result<SocketAddr, StartError> {
    loop {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
            return Ok(addr);
        }
        check_alive(guard, log)?;
        if Instant::now() >= deadline {
            return Err(StartError::NoAddress { output: log.text() });
        }
    }
}

fn check_alive(guard: &mut ChildGuard, log: &Log) -> Result<(), StartError> {
    match guard.try_wait() {
        Some(status) => {
            // Give the drain threads a moment to collect the last words (for the message only).
            std::thread::sleep(Duration::from_millis(100));
            Err(StartError::Exited {
                status,
                output: log.text(),
            })
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes an executable script from a child process. Written here, its file descriptor is
    /// open in this process while it is written, and a child that another test thread forks
    /// meanwhile holds a copy until it execs: executing the script then fails with ETXTBSY
    /// ("Text file busy"), which failed a CI run. A file written by another process cannot leak.
    fn write_executable(path: &std::path::Path, body: &str) {
        use std::io::Write;
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        sh.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        assert!(sh.wait().unwrap().success());
    }

    /// A fake "server": prints a listen line for a port a listener of this test holds.
    #[test]
    fn reads_the_address_and_waits_until_accepting() {
        let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let script = std::env::temp_dir().join(format!("testkit-fake-server-{}", std::process::id()));
        let body = format!(
            "#!/bin/sh\necho \"args: $*\"\necho 'listening on 127.0.0.1:{port}' >&2\nexec sleep 60\n"
        );
        write_executable(&script, &body);
        let spec = ServerSpec::Ours {
            bin: script.clone(),
            args: vec!["--extra".into()],
        };
        let mut s = MailboxServer::start(&spec).unwrap();
        assert_eq!(s.port(), port);
        assert_eq!(s.url(), format!("ws://127.0.0.1:{port}/v1"));
        assert!(s.is_running());
        let db = s.channel_db.clone().unwrap();
        assert!(db.starts_with(s.dir().unwrap()));
        let deadline = Instant::now() + START_TIMEOUT;
        while !s.logs().contains("--extra") {
            assert!(Instant::now() < deadline, "{}", s.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            s.logs().contains("mailbox --listen 127.0.0.1:0 --channel-db"),
            "{}",
            s.logs()
        );
        s.kill();
        assert!(!s.is_running());
        let _ = std::fs::remove_file(&script);
    }

    #[test]
    fn a_server_that_exits_is_reported_with_its_output() {
        let spec = ServerSpec::Ours {
            bin: "sh".into(),
            args: vec![],
        };
        // `sh mailbox …` fails at once: no such script.
        match MailboxServer::start(&spec) {
            Err(StartError::Exited { output, .. }) => assert!(output.contains("mailbox"), "{output}"),
            other => panic!("expected Exited, got {other:?}"),
        }
    }
}
