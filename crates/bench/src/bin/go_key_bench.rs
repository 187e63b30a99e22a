//! `go-key-bench`: how often a text exchange with wormhole-william (Go) fails key confirmation —
//! Go's SPAKE2 key bug, `tests/harness/go_key_bug.rs` — for our CLI in both directions, with
//! Go → Python as the reference (Python does not work around the bug; about 1 in 150 fails there).
//!
//! Runs N text exchanges ours → Go and N Go → ours (default 500 each), and M Go → Python (default
//! 150: Python's CLI costs ~0.4 s an exchange), interleaved so that all directions share the
//! machine's conditions, each with a distinct code, on our `wormhole-server mailbox` on a free
//! 127.0.0.1 port. Prints per direction: exchanges, successes, key-confirmation failures, other
//! failures (with the first few error texts), wall time; then one `RESULT` line per direction.
//!
//! Real CLIs only: our `wormhole` (next to this binary unless `--ours`), `/usr/bin/wormhole-william`,
//! the peers' venv `wormhole`. Bounded: each process is killed after `--timeout` seconds, and no
//! exchange starts after `--max-seconds`. Text needs no transit, but run it under
//! `scripts/netns-run` anyway (`scripts/bench-go-key` does).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use wormhole_testkit::{ChannelDb, ChildGuard, MailboxServer, ServerSpec, StartOptions, clean_command};

/// Count key-confirmation failures of text exchanges with wormhole-william.
#[derive(Debug, Parser)]
struct Args {
    /// Exchanges ours → Go and, as many again, Go → ours.
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Exchanges Go → Python (the reference; 0 leaves Python out).
    #[arg(long, default_value_t = 150)]
    python_count: usize,
    /// Our `wormhole` (default: next to this binary).
    #[arg(long)]
    ours: Option<PathBuf>,
    /// Our `wormhole-server` (default: next to this binary).
    #[arg(long)]
    server: Option<PathBuf>,
    /// wormhole-william.
    #[arg(long, default_value = "/usr/bin/wormhole-william")]
    go: PathBuf,
    /// Python magic-wormhole's `wormhole` (default: $WORMHOLE_PEERS or ~/.cache/wormhole-peers,
    /// then venv/bin/wormhole).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Seconds one process may run before it is killed (counted as an other failure).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Start no exchange after this many seconds.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
    /// Error texts (and key-confirmation failure samples) kept per direction.
    #[arg(long, default_value_t = 3)]
    show_errors: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cli {
    Ours,
    Go,
    Python,
}

/// One direction: who sends, who receives, how many exchanges, and what happened.
struct Direction {
    from: Cli,
    to: Cli,
    want: usize,
    done: usize,
    ok: usize,
    key_failures: usize,
    other_failures: usize,
    errors: Vec<String>,
    key_samples: Vec<String>,
    wall: Duration,
}

impl Direction {
    fn new(from: Cli, to: Cli, want: usize) -> Direction {
        Direction {
            from,
            to,
            want,
            done: 0,
            ok: 0,
            key_failures: 0,
            other_failures: 0,
            errors: Vec::new(),
            key_samples: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    fn label(&self) -> String {
        format!("{:?}->{:?}", self.from, self.to).to_lowercase()
    }
}

/// A finished (or killed) process: status text, success, output.
struct Ended {
    ok: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// A process started with piped output, drained by two threads.
struct Running {
    guard: ChildGuard,
    out: JoinHandle<String>,
    err: JoinHandle<String>,
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn start(mut cmd: Command, name: &str) -> Result<Running> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::try_spawn(cmd, name)?;
    let child = guard.child_mut();
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    Ok(Running { guard, out, err })
}

impl Running {
    fn wait(mut self, deadline: Instant) -> Ended {
        let status = self
            .guard
            .wait_timeout(deadline.saturating_duration_since(Instant::now()));
        if status.is_none() {
            self.guard.kill();
        }
        let join = |h: JoinHandle<String>| h.join().unwrap_or_default();
        Ended {
            ok: status.is_some_and(|s| s.success()),
            status: status.map_or_else(|| "killed after timeout".to_owned(), |s| s.to_string()),
            stdout: join(self.out),
            stderr: join(self.err),
        }
    }
}

struct Bins {
    ours: PathBuf,
    go: PathBuf,
    python: PathBuf,
}

impl Bins {
    fn of(&self, cli: Cli) -> &Path {
        match cli {
            Cli::Ours => &self.ours,
            Cli::Go => &self.go,
            Cli::Python => &self.python,
        }
    }
}

fn send_cmd(cli: Cli, bin: &Path, url: &str, code: &str, text: &str) -> Command {
    let mut c = clean_command(bin);
    c.args(["--relay-url", url, "send", "--code", code, "--hide-progress"]);
    if cli != Cli::Go {
        c.arg("--no-qr");
    }
    c.args(["--text", text]);
    c
}

fn receive_cmd(bin: &Path, url: &str, code: &str) -> Command {
    let mut c = clean_command(bin);
    c.args(["--relay-url", url, "receive", "--hide-progress", code]);
    c
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// How one exchange ended.
enum Verdict {
    Ok,
    KeyConfirmation,
    Other(String),
}

/// A key-confirmation failure: the non-Go side says so, or Go could not open the peer's
/// `version` message (`decrypt message failed` as its last words, before any transfer).
fn is_key_failure(cli: Cli, end: &Ended) -> bool {
    match cli {
        Cli::Go => end
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim_end().ends_with("decrypt message failed")),
        Cli::Ours | Cli::Python => {
            format!("{}{}", end.stdout, end.stderr).contains("Key confirmation failed")
        }
    }
}

fn judge(d: &Direction, sender: &Ended, receiver: &Ended, text: &str) -> Verdict {
    if sender.ok && receiver.ok && receiver.stdout.contains(text) {
        return Verdict::Ok;
    }
    if !sender.ok && !receiver.ok && (is_key_failure(d.from, sender) || is_key_failure(d.to, receiver)) {
        return Verdict::KeyConfirmation;
    }
    let tail = |e: &Ended| {
        let last: Vec<&str> = e.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let n = last.len().saturating_sub(3);
        last[n..].join(" | ")
    };
    Verdict::Other(format!(
        "sender {:?} ({}): {} / receiver {:?} ({}): {} [stdout {:?}]",
        d.from,
        sender.status,
        tail(sender),
        d.to,
        receiver.status,
        tail(receiver),
        receiver.stdout.trim_end()
    ))
}

fn one_exchange(
    d: &mut Direction,
    bins: &Bins,
    url: &str,
    code: &str,
    timeout: Duration,
    keep: usize,
) -> Result<()> {
    let text = format!("go-key-bench {code}");
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let sender = start(send_cmd(d.from, bins.of(d.from), url, code, &text), "sender")?;
    let receiver = start(receive_cmd(bins.of(d.to), url, code), "receiver")?;
    let receiver = receiver.wait(deadline);
    let sender = sender.wait(deadline);
    d.wall += t0.elapsed();
    d.done += 1;
    match judge(d, &sender, &receiver, &text) {
        Verdict::Ok => d.ok += 1,
        Verdict::KeyConfirmation => {
            d.key_failures += 1;
            if d.key_samples.len() < keep {
                d.key_samples.push(format!(
                    "{code}: sender stderr {:?} / receiver stderr {:?}",
                    last_line(&sender.stderr),
                    last_line(&receiver.stderr)
                ));
            }
        }
        Verdict::Other(e) => {
            d.other_failures += 1;
            if d.errors.len() < keep {
                d.errors.push(format!("{code}: {e}"));
            }
        }
    }
    Ok(())
}

fn python_default() -> PathBuf {
    let peers = std::env::var_os("WORMHOLE_PEERS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/wormhole-peers")
        });
    peers.join("venv/bin/wormhole")
}

fn start_server(bin: PathBuf) -> Result<MailboxServer> {
    let spec = ServerSpec::Ours {
        bin,
        args: vec!["--channel-db".into(), ":memory:".into()],
    };
    let opts = StartOptions {
        listen: None,
        channel_db: ChannelDb::InArgs,
    };
    MailboxServer::start_with(&spec, &opts).context("starting our mailbox server")
}

fn report(d: &Direction) {
    let per = if d.done > 0 {
        d.wall.as_secs_f64() * 1000.0 / d.done as f64
    } else {
        0.0
    };
    println!(
        "{:<14} exchanges {:>4}  successes {:>4}  key-confirmation failures {:>3}  other failures {:>3}  wall {:>7.1} s ({per:.0} ms each)",
        d.label(),
        d.done,
        d.ok,
        d.key_failures,
        d.other_failures,
        d.wall.as_secs_f64()
    );
    for e in &d.errors {
        println!("    {e}");
    }
    for k in &d.key_samples {
        println!("    key-confirmation failure {k}");
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let exe = std::env::current_exe()?;
    let bins = Bins {
        ours: args
            .ours
            .clone()
            .unwrap_or_else(|| exe.with_file_name("wormhole")),
        go: args.go.clone(),
        python: args.python.clone().unwrap_or_else(python_default),
    };
    let mut dirs = vec![
        Direction::new(Cli::Ours, Cli::Go, args.count),
        Direction::new(Cli::Go, Cli::Ours, args.count),
    ];
    if args.python_count > 0 {
        dirs.push(Direction::new(Cli::Go, Cli::Python, args.python_count));
    }
    for d in &dirs {
        for cli in [d.from, d.to] {
            if !bins.of(cli).is_file() {
                bail!("{cli:?} CLI not found at {}", bins.of(cli).display());
            }
        }
    }
    let server = start_server(
        args.server
            .clone()
            .unwrap_or_else(|| exe.with_file_name("wormhole-server")),
    )?;
    let url = server.url().to_owned();
    println!(
        "go-key-bench: mailbox {url}; {} exchanges ours->go and go->ours, {} go->python, interleaved",
        args.count, args.python_count
    );
    let started = Instant::now();
    let bound = Duration::from_secs(args.max_seconds);
    let timeout = Duration::from_secs(args.timeout);
    // Distinct nameplates for every exchange of this run (and unlikely to meet another run's).
    let base = 10_000 + (std::process::id() % 1000) as usize * 1000;
    let mut n = 0usize;
    let mut stopped_early = false;
    let mut round = 0usize;
    while dirs.iter().any(|d| d.done < d.want) {
        if started.elapsed() >= bound {
            stopped_early = true;
            break;
        }
        for d in dirs.iter_mut().filter(|d| d.done < d.want) {
            let code = format!("{}-purple-sausages", base + n);
            n += 1;
            one_exchange(d, &bins, &url, &code, timeout, args.show_errors)?;
        }
        round += 1;
        if round.is_multiple_of(50) {
            let line: Vec<String> = dirs
                .iter()
                .map(|d| format!("{} {}/{} ({} key)", d.label(), d.done, d.want, d.key_failures))
                .collect();
            eprintln!("[{:>5.0} s] {}", started.elapsed().as_secs_f64(), line.join(", "));
        }
    }
    println!();
    for d in &dirs {
        report(d);
    }
    if stopped_early {
        println!(
            "stopped after --max-seconds {}: not every exchange ran",
            args.max_seconds
        );
    }
    for d in &dirs {
        println!(
            "RESULT direction={} exchanges={} successes={} key_failures={} other_failures={} wall_s={:.1}",
            d.label(),
            d.done,
            d.ok,
            d.key_failures,
            d.other_failures,
            d.wall.as_secs_f64()
        );
    }
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(ok: bool, stdout: &str, stderr: &str) -> Ended {
        Ended {
            ok,
            status: if ok { "exit status: 0" } else { "exit status: 1" }.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    // Output shapes of the real CLIs on a key-confirmation failure (a wrong code on one side).
    const OURS: &str = "ERROR: Key confirmation failed. Either you or your correspondent typed\n";
    const PY: &str = "ERROR:  Key confirmation failed. Either you or your correspondent\n";
    const GO_SEND: &str = "2026/12/03 05:34:40 Send error: decrypt message failed\n";
    const GO_RECV: &str = "2026/12/03 05:34:41 decrypt message failed\n";

    #[test]
    fn classifies_key_confirmation_failures_and_the_rest() {
        let text = "go-key-bench 1-x-y";
        let ours_go = Direction::new(Cli::Ours, Cli::Go, 1);
        let go_ours = Direction::new(Cli::Go, Cli::Ours, 1);
        let go_py = Direction::new(Cli::Go, Cli::Python, 1);
        let ok = judge(&ours_go, &ended(true, "", ""), &ended(true, text, ""), text);
        assert!(matches!(ok, Verdict::Ok));
        let key =
            |d: &Direction, s: Ended, r: Ended| matches!(judge(d, &s, &r, text), Verdict::KeyConfirmation);
        assert!(key(&ours_go, ended(false, "", OURS), ended(false, "", GO_RECV)));
        assert!(key(&go_ours, ended(false, "", GO_SEND), ended(false, "", OURS)));
        assert!(key(&go_py, ended(false, "", GO_SEND), ended(false, "", PY)));
        // A wrong text, a lone failure, a timeout: other failures, with their words kept.
        assert!(matches!(
            judge(&ours_go, &ended(true, "", ""), &ended(true, "other", ""), text),
            Verdict::Other(_)
        ));
        assert!(!key(&ours_go, ended(false, "", OURS), ended(true, text, "")));
        match judge(
            &go_ours,
            &ended(false, "", "boom\n"),
            &ended(false, "", "ERROR: timeout\n"),
            text,
        ) {
            Verdict::Other(e) => assert!(e.contains("boom") && e.contains("ERROR: timeout"), "{e}"),
            _ => panic!("not an other failure"),
        }
    }
}
