//! Starting the mailbox server under test for a benchmark: ours (`wormhole-server mailbox`, address read
//! from its `listening on ADDR` line) or Python's (`twist wormhole-mailbox` on a free port), each on
//! 127.0.0.1 with a channel DB file in a fresh directory. The process is killed and reaped on drop, and
//! its directory removed.
//!
//! Must not touch any process it did not start. Server output is drained (never blocks the server) and
//! the tail kept for error messages.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::child::{clean_command, free_port};

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of server output kept for messages.
const LOG_CAP: usize = 64 * 1024;

/// Which server to start.
#[derive(Debug, Clone)]
pub enum ServerSpec {
    /// Our binary at this path, with these extra arguments after `mailbox --listen --channel-db`.
    Ours {
        /// Path of `wormhole-server`.
        bin: PathBuf,
        /// Extra arguments.
        args: Vec<String>,
    },
    /// Python's server run by this `twist`, with these extra arguments.
    Python {
        /// Path of `twist`.
        twist: PathBuf,
        /// Extra arguments.
        args: Vec<String>,
    },
}

/// A running server; killed on drop.
#[derive(Debug)]
pub struct ServerProc {
    child: Child,
    /// The bound address.
    pub addr: SocketAddr,
    dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl ServerProc {
    /// Start the server and wait until it accepts TCP connections.
    pub fn start(spec: &ServerSpec) -> Result<ServerProc, String> {
        let dir = std::env::temp_dir().join(format!(
            "mailbox-load-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let db = dir.join("channel.sqlite");
        let (mut cmd, fixed_port) = match spec {
            ServerSpec::Ours { bin, args } => {
                let mut cmd = clean_command(bin);
                cmd.arg("mailbox")
                    .args(["--listen", "127.0.0.1:0", "--channel-db"])
                    .arg(&db)
                    .args(args);
                (cmd, None)
            }
            ServerSpec::Python { twist, args } => {
                let port = free_port().map_err(|e| format!("no free port: {e}"))?;
                let mut cmd = clean_command(twist);
                cmd.arg("wormhole-mailbox")
                    .arg("--port")
                    .arg(format!("tcp:{port}:interface=127.0.0.1"))
                    .arg("--channel-db")
                    .arg(&db)
                    .args(args);
                (cmd, Some(port))
            }
        };
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            drain(out, log.clone(), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain(err, log.clone(), tx);
        }
        let mut proc = ServerProc {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, fixed_port.unwrap_or(0))),
            dir,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        if fixed_port.is_none() {
            loop {
                if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                    proc.addr = addr;
                    break;
                }
                proc.check_alive()?;
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no `listening on ADDR` line within {START_TIMEOUT:?}; output:\n{}",
                        proc.logs()
                    ));
                }
            }
        }
        while TcpStream::connect_timeout(&proc.addr, Duration::from_millis(200)).is_err() {
            proc.check_alive()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "server does not accept on {} within {START_TIMEOUT:?}; output:\n{}",
                    proc.addr,
                    proc.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proc)
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                std::thread::sleep(Duration::from_millis(100));
                Err(format!("server exited ({status}); output:\n{}", self.logs()))
            }
            _ => Ok(()),
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://ADDR/v1`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tail of the server's output.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn drain<R: Read + Send + 'static>(pipe: R, log: Arc<Mutex<String>>, tx: mpsc::Sender<SocketAddr>) {
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
            if let Some(addr) = parse_listen_line(&text) {
                let _ = tx.send(addr);
            }
            if let Ok(mut log) = log.lock() {
                if log.len() > LOG_CAP {
                    let cut = log.len() - LOG_CAP / 2;
                    let cut = (cut..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(0);
                    log.drain(..cut);
                }
                log.push_str(&text);
            }
        }
    });
}

/// Find `listening on ADDR` in a log line (ANSI colours, a `ws://` prefix and a path tolerated).
pub fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    let at = plain.to_ascii_lowercase().find("listening on")? + "listening on".len();
    let rest = plain.get(at..)?.trim_start_matches([' ', ':', '=']);
    let token = rest.split_whitespace().next()?;
    let token = token.trim_start_matches("ws://").trim_start_matches("http://");
    let token = token.split('/').next()?;
    token
        .trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | '.' | ';' | '(' | ')'))
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_lines() {
        let want: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(parse_listen_line("listening on 127.0.0.1:40123\n"), Some(want));
        assert_eq!(
            parse_listen_line("\u{1b}[2mINFO\u{1b}[0m listening on ws://127.0.0.1:40123/v1"),
            Some(want)
        );
        assert_eq!(parse_listen_line("ready"), None);
    }
}
