//! Child processes for tests: a builder that runs a peer CLI with a timeout, optional stdin bytes and
//! captured output, on top of `wormhole-testkit`'s [`ChildGuard`] (kill + reap on drop) and
//! [`clean_command`].
//!
//! Every child is started with all `WORMHOLE_*` variables removed from its environment (they mean
//! different things to different peers). Nothing here waits without a deadline.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default time a [`PeerCommand`] may run before it is killed.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(60);

pub use wormhole_testkit::{ChildGuard, clean_command};

/// Builder for one run of a peer CLI (or any program): arguments, working directory, stdin bytes,
/// extra environment, timeout. Output is captured; the environment has no `WORMHOLE_*` variables.
#[derive(Debug, Clone)]
pub struct PeerCommand {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    name: String,
}

impl PeerCommand {
    /// A command running `program`; its name (for messages) is the file name of `program`.
    pub fn new(program: impl AsRef<Path>) -> PeerCommand {
        let program = program.as_ref().to_path_buf();
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        PeerCommand {
            program,
            args: Vec::new(),
            cwd: None,
            stdin: None,
            env: Vec::new(),
            timeout: DEFAULT_PEER_TIMEOUT,
            name,
        }
    }

    /// A label used in failure messages (e.g. `"go sender"`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Run in `dir` (peers write received files into their working directory).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Write these bytes to the child's stdin, then close it (default: stdin is `/dev/null`).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Set one environment variable (applied after the `WORMHOLE_*` variables are removed).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Kill the child if it runs longer than this (default [`DEFAULT_PEER_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Start the child and return at once; collect the result with [`RunningPeer::wait`].
    pub fn spawn(self) -> RunningPeer {
        let mut cmd = clean_command(&self.program);
        cmd.args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut guard = ChildGuard::spawn(cmd, &self.name);
        let child = guard.child_mut();
        if let (Some(bytes), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A thread, so a child that does not read its stdin cannot block us.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stdout = child.stdout.take().map(reader_thread);
        let stderr = child.stderr.take().map(reader_thread);
        RunningPeer {
            guard,
            stdout,
            stderr,
            started,
            deadline: started + self.timeout,
            command: self.describe(),
            name: self.name,
        }
    }

    /// Run to completion (or timeout) and return the captured result.
    pub fn run(self) -> PeerOutput {
        self.spawn().wait()
    }

    fn describe(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

fn reader_thread<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// A peer started by [`PeerCommand::spawn`]; killed on drop if not waited for.
#[derive(Debug)]
pub struct RunningPeer {
    guard: ChildGuard,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
    deadline: Instant,
    command: String,
    name: String,
}

impl RunningPeer {
    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Wait until the child exits or its timeout passes (then it is killed and
    /// [`PeerOutput::timed_out`] is set), and return everything it printed.
    pub fn wait(mut self) -> PeerOutput {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let status = self.guard.wait_timeout(remaining);
        let timed_out = status.is_none();
        if timed_out {
            self.guard.kill();
        }
        let elapsed = self.started.elapsed();
        let join = |h: Option<JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        PeerOutput {
            name: self.name.clone(),
            command: self.command.clone(),
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
            timed_out,
            elapsed,
        }
    }
}

/// What a finished (or killed) peer printed, and how it ended.
#[derive(Debug, Clone)]
pub struct PeerOutput {
    /// The label of the command.
    pub name: String,
    /// The command line, for messages.
    pub command: String,
    /// Exit status; `None` if it was killed on timeout.
    pub status: Option<ExitStatus>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
    /// True if the timeout expired and the child was killed.
    pub timed_out: bool,
    /// Wall time from spawn to exit (or kill).
    pub elapsed: Duration,
}

impl PeerOutput {
    /// An output as a process that exited with `code` leaves it, for the signature matchers' tests.
    #[cfg(test)]
    pub(crate) fn exited(code: i32, stdout: &str, stderr: &str) -> PeerOutput {
        use std::os::unix::process::ExitStatusExt;
        PeerOutput {
            name: "peer".into(),
            command: "peer".into(),
            status: Some(ExitStatus::from_raw(code << 8)),
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out: false,
            elapsed: Duration::ZERO,
        }
    }

    /// Exited on its own with status 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// Panics with the full command, status and output unless [`success`](Self::success).
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if !self.success() {
            panic!("peer failed:\n{self}");
        }
        self
    }

    /// stdout and stderr together (some peers print results on stderr).
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for PeerOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.timed_out {
            "killed after timeout".to_owned()
        } else {
            match self.status {
                Some(s) => s.to_string(),
                None => "unknown".to_owned(),
            }
        };
        writeln!(f, "--- {} ({how}, {:.2?})", self.name, self.elapsed)?;
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "--- stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr:\n{}", self.stderr.trim_end())
    }
}
