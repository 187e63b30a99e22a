//! Starting servers for tests: our mailbox (`wormhole-server mailbox`) and the Python mailbox
//! (`twist wormhole-mailbox`) through the workspace's one spawner (`wormhole-testkit`'s
//! [`MailboxServer`], here with our binary and the peers' `twist` located and failures turned into
//! panics), the Python transit relay (`twist transitrelay`), and the lock for the fixed port 4001.
//!
//! Servers are owned by their handle: dropping it kills and reaps the process. Their output is drained
//! into a bounded in-memory log ([`MailboxServer::logs`]) so a chatty server can never block on a full
//! pipe. Nothing here binds anything but loopback.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc::channel;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wormhole_testkit::{ChannelDb, Log, ServerSpec, StartOptions, spawn_logged};
pub use wormhole_testkit::{MailboxServer, ServerKind, free_port, refusing_port, wait_until_accepting};

use crate::ours::our_bin;
use crate::peers::Peers;
use crate::process::{ChildGuard, clean_command};

/// How long a server may take to start accepting connections.
pub const SERVER_START_TIMEOUT: Duration = wormhole_testkit::mailbox::START_TIMEOUT;

fn args(extra: &[&str]) -> Vec<String> {
    extra.iter().map(|a| (*a).to_owned()).collect()
}

fn started(what: &str, r: Result<MailboxServer, wormhole_testkit::StartError>) -> MailboxServer {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Start our `wormhole-server mailbox --listen 127.0.0.1:0` with a fresh channel DB in a temporary
/// directory, plus `extra_args`. The bound address is read from the server's output (a line containing
/// `listening on ADDR`). Panics (with the server's output) if it does not come up.
pub fn start_our_mailbox(extra_args: &[&str]) -> MailboxServer {
    let spec = ServerSpec::Ours {
        bin: our_bin("wormhole-server"),
        args: args(extra_args),
    };
    started("our mailbox server", MailboxServer::start(&spec))
}

/// Like [`start_our_mailbox`] but on the given channel DB path (kept after the server ends), so a test
/// can restart the server on the same database.
pub fn start_our_mailbox_on_db(channel_db: &Path, extra_args: &[&str]) -> MailboxServer {
    let spec = ServerSpec::Ours {
        bin: our_bin("wormhole-server"),
        args: args(extra_args),
    };
    let opts = StartOptions {
        listen: None,
        channel_db: ChannelDb::At(channel_db.to_path_buf()),
    };
    started("our mailbox server", MailboxServer::start_with(&spec, &opts))
}

/// Start the Python mailbox server (`twist wormhole-mailbox`) on a free 127.0.0.1 port (its own pick) with a fresh
/// channel DB, plus `extra_args` (e.g. `["--usage-db", "u.sqlite"]`, relative to its directory).
pub fn start_python_mailbox(extra_args: &[&str]) -> MailboxServer {
    let spec = ServerSpec::Python {
        twist: Peers::locate().twist,
        args: args(extra_args),
    };
    started("the Python mailbox server", MailboxServer::start(&spec))
}

/// A running Python transit relay on 127.0.0.1. Dropping it kills the process.
#[derive(Debug)]
pub struct TransitRelay {
    /// The bound address.
    pub addr: SocketAddr,
    log: Log,
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
        self.log.text()
    }
}

/// Pass to [`start_python_relay`] to let the relay bind a free port itself (read back from its log).
pub const ANY_PORT: u16 = 0;

/// Start the Python transit relay (`twist transitrelay`) on 127.0.0.1:`port`: [`ANY_PORT`] (the relay
/// binds a free port and announces it, so no other test can take it in between), or 4001 under
/// [`lock_port_4001`] when Go peers are involved. Waits for the relay's `starting on PORT` line, then
/// until it accepts; panics with its output if it exits first (e.g. the port is taken).
pub fn start_python_relay(port: u16) -> TransitRelay {
    let peers = Peers::locate();
    let dir = tempdir();
    let mut cmd = clean_command(&peers.twist);
    cmd.arg("transitrelay")
        .arg("--port")
        .arg(format!("tcp:{port}:interface=127.0.0.1"))
        .current_dir(dir.path());
    let name = "twist transitrelay";
    let (tx, rx) = channel();
    let (mut guard, log) = spawn_logged(cmd, name, Some(tx)).unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    let exited = |guard: &mut ChildGuard| {
        guard.try_wait().map(|status| {
            // Let the drain threads collect the last words (for the message only).
            std::thread::sleep(Duration::from_millis(100));
            format!(
                "{name} exited ({status}) before accepting; output:\n{}",
                log.text()
            )
        })
    };
    let addr = loop {
        if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
            break addr;
        }
        if let Some(msg) = exited(&mut guard) {
            panic!("{msg}");
        }
        if Instant::now() >= deadline {
            panic!(
                "{name} announced no port after {SERVER_START_TIMEOUT:?}; output:\n{}",
                log.text()
            );
        }
    };
    assert!(
        port == ANY_PORT || addr.port() == port,
        "{name} announced {addr}, not port {port}"
    );
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Some(msg) = exited(&mut guard) {
            panic!("{msg}");
        }
        if Instant::now() >= deadline {
            panic!(
                "{name} does not accept on {addr} after {SERVER_START_TIMEOUT:?}; output:\n{}",
                log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    TransitRelay {
        addr,
        log,
        guard,
        _dir: dir,
    }
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
