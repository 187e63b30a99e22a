//! Child processes of tests and benchmarks: a `Command` without the caller's `WORMHOLE_*`
//! variables, a guard that kills (SIGKILL) and reaps its child on drop, and a child whose stdout and
//! stderr are drained into one bounded in-memory [`Log`], so a chatty child never blocks on a full
//! pipe.
//!
//! Owns only processes it started, by their handle (hence their PID); must not signal anything
//! else, and never waits without a deadline (except the reaping wait after SIGKILL).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::listen::parse_listen_line;

/// A `Command` for `program` with every `WORMHOLE_*` environment variable removed (they mean
/// different things to different implementations). `TESTKIT_CHILD_LOG`, when set, becomes the
/// child's `WORMHOLE_LOG` (our CLI's diagnostics filter), for debugging a failing test.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WORMHOLE_") {
            cmd.env_remove(&key);
        }
    }
    if let Some(filter) = std::env::var_os("TESTKIT_CHILD_LOG") {
        cmd.env("WORMHOLE_LOG", filter);
    }
    cmd
}

/// Owns a child process: on drop it is killed (SIGKILL) and reaped, so a failing test never leaks
/// a server or peer. Only the process this guard started is touched, by its PID.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Spawn `cmd`, naming it `name` in messages.
    pub fn try_spawn(mut cmd: Command, name: &str) -> std::io::Result<ChildGuard> {
        let child = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {name} ({cmd:?}): {e}")))?;
        Ok(ChildGuard::new(child, name))
    }

    /// [`try_spawn`](Self::try_spawn), panicking with `name` and the error (for tests).
    pub fn spawn(cmd: Command, name: &str) -> ChildGuard {
        match ChildGuard::try_spawn(cmd, name) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// Take ownership of an already spawned child.
    pub fn new(child: Child, name: &str) -> ChildGuard {
        ChildGuard {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// The child's PID (0 once reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The name given at spawn time (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mutable access to the child (e.g. to take its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        match self.child.as_mut() {
            Some(c) => c,
            None => panic!("{}: child already reaped", self.name),
        }
    }

    /// `Some(status)` if the child has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// True while the child runs (false once it exited or was killed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything a child printed on stdout and stderr, interleaved by line, bounded: past
/// [`Log::CAP`] bytes the oldest half is dropped, so the start-up and the latest lines of a
/// long-running server are what remains.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    /// Bytes kept at most.
    pub const CAP: usize = 256 * 1024;

    /// The text so far.
    pub fn text(&self) -> String {
        self.lock().clone()
    }

    fn push(&self, line: &str) {
        let mut log = self.lock();
        if log.len() + line.len() > Self::CAP {
            let cut = log.len().saturating_sub(Self::CAP / 2);
            let cut = (cut..=log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(0);
            log.drain(..cut);
        }
        log.push_str(line);
    }

    fn lock(&self) -> MutexGuard<'_, String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Spawn `cmd` (stdin empty) with stdout and stderr drained into one [`Log`]; every line that
/// announces `listening on ADDR` is also reported on `announce`, if given.
pub fn spawn_logged(
    mut cmd: Command,
    name: &str,
    announce: Option<Sender<SocketAddr>>,
) -> std::io::Result<(ChildGuard, Log)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::try_spawn(cmd, name)?;
    let log = Log::default();
    let child = guard.child_mut();
    if let Some(out) = child.stdout.take() {
        drain_lines(out, log.clone(), announce.clone());
    }
    if let Some(err) = child.stderr.take() {
        drain_lines(err, log.clone(), announce);
    }
    Ok((guard, log))
}

fn drain_lines<R: Read + Send + 'static>(pipe: R, log: Log, announce: Option<Sender<SocketAddr>>) {
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
            log.push(&text);
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn guard_kills_and_reaps_on_drop() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(ChildGuard::new(child, "sleep"));
        // Killed and reaped: no `sleep` (running or zombie) under that PID any more.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !stat.starts_with(&format!("{pid} (sleep)")),
            "child still there: {stat}"
        );
    }

    #[test]
    fn clean_command_drops_inherited_wormhole_variables() {
        let mut cmd = clean_command("env");
        cmd.env("WORMHOLE_SET_HERE", "1");
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.lines().any(|l| l == "WORMHOLE_SET_HERE=1"), "{text}");
        // Inside `scripts/netns-run` at least WORMHOLE_TEST_NETNS is inherited and must go.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WORMHOLE_")) {
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{key}="))),
                "{key} inherited"
            );
        }
    }

    #[test]
    fn logged_child_reports_its_listen_line_and_output() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo 'listening on 127.0.0.1:40123' >&2"]);
        let (mut guard, log) = spawn_logged(cmd, "sh", Some(tx)).unwrap();
        let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(addr.port(), 40123);
        assert!(guard.wait_timeout(Duration::from_secs(30)).is_some());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !log.text().contains("hello") {
            assert!(Instant::now() < deadline, "log: {}", log.text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn log_stays_bounded() {
        let log = Log::default();
        let line = format!("{}\n", "x".repeat(999));
        for _ in 0..1000 {
            log.push(&line);
        }
        assert!(log.text().len() <= Log::CAP);
        assert!(log.text().len() >= Log::CAP / 2);
    }
}
