//! A child process whose stdout and stderr lines arrive, as they are printed, on a channel: for
//! tests that must act while a peer runs (answer a prompt, signal it, read a code it prints).
//! Owns only the reading and the waiting; what to run is the caller's. Every wait has a deadline.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::ChildGuard;

/// A running child (killed and reaped on drop) and the lines it has printed so far.
pub struct LiveChild {
    /// The child itself.
    pub guard: ChildGuard,
    /// Its stdout and stderr lines, in the order they were read.
    pub lines: mpsc::Receiver<String>,
    /// Every line taken from `lines` so far, each ending in `\n`.
    pub seen: String,
}

impl LiveChild {
    /// Start `cmd` (with `PYTHONUNBUFFERED=1`, so a Python child's lines are not held back) and read
    /// its piped stdout and stderr on two threads.
    pub fn spawn(mut cmd: Command, name: &str) -> LiveChild {
        cmd.env("PYTHONUNBUFFERED", "1");
        let mut guard = ChildGuard::spawn(cmd, name);
        let (tx, rx) = mpsc::channel();
        let child = guard.child_mut();
        let pipes = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for pipe in pipes.into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        LiveChild {
            guard,
            lines: rx,
            seen: String::new(),
        }
    }

    /// Record one line in `seen`.
    pub fn note(&mut self, line: &str) {
        self.seen.push_str(line);
        self.seen.push('\n');
    }

    /// Wait (at most `within`) for a line containing `needle`; return it. Panics with the output
    /// so far when none comes.
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.note(&line);
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; output so far:\n{}", self.seen),
            }
        }
    }

    /// Like [`LiveChild::wait_for`], but a line already seen counts too (for lines that may
    /// come in any order).
    pub fn wait_seen(&mut self, needle: &str, within: Duration) {
        if !self.seen.contains(needle) {
            self.wait_for(needle, within);
        }
    }

    /// Send signal `sig` (a name: `TERM`, `INT`…) to this child, by its PID, with kill(1).
    pub fn signal(&self, sig: &str) {
        let pid = self.guard.pid().to_string();
        let st = Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .unwrap_or_else(|e| panic!("kill -s {sig} {pid}: {e}"));
        assert!(st.success(), "kill -s {sig} {pid}");
    }

    /// Wait for the exit (hang guard `within`; panics with the output past it) and collect the
    /// rest of the output, for at most five seconds in all.
    pub fn exit(&mut self, within: Duration) -> ExitStatus {
        let st = self
            .guard
            .wait_timeout(within)
            .unwrap_or_else(|| panic!("{} did not exit; output:\n{}", self.guard.name(), self.seen));
        // The reader threads end at EOF; take what they have.
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.note(&l);
        }
        st
    }
}
