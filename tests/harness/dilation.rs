//! Dilation peers for tests: our `dilation-peer` bench binary and the Python driver
//! `tests/drivers/py_dilation_peer.py` take the same flags and print the same final JSON line, so
//! a test picks the implementation of each side ([`DilationImpl`]) and starts a pair
//! ([`DilationPair::spawn`]): side A allocates the code, side B joins with it.
//!
//! Process plumbing only; what the JSON must say is for the tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ours::{our_bin, workspace_root};
use crate::peers::Peers;
use crate::process::{PeerCommand, PeerOutput, RunningPeer};

/// Which implementation runs a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DilationImpl {
    /// Our `dilation-peer`.
    Ours,
    /// Python 0.24 through `py_dilation_peer.py`.
    Python,
}

/// The Dilation side that leads (greatest) and the one that follows.
pub const LEADER_SIDE: &str = "ffffffffffffffff";
/// See [`LEADER_SIDE`].
pub const FOLLOWER_SIDE: &str = "0000000000000000";

/// The command that runs `imp` with `args` (plus `--timeout`).
pub fn dilation_command(imp: DilationImpl, args: &[String], timeout: Duration) -> PeerCommand {
    let limit = ["--timeout".to_owned(), timeout.as_secs().to_string()];
    let cmd = match imp {
        DilationImpl::Ours => PeerCommand::new(our_bin("dilation-peer")).name("dilation-peer (ours)"),
        DilationImpl::Python => PeerCommand::new(Peers::locate().python)
            .name("py_dilation_peer.py")
            .arg(workspace_root().join("tests/drivers/py_dilation_peer.py")),
    };
    cmd.args(args)
        .args(limit)
        .timeout(timeout + Duration::from_secs(15))
}

/// Two running Dilation peers.
#[derive(Debug)]
pub struct DilationPair {
    /// Side A (allocated the code).
    pub a: RunningPeer,
    /// Side B (joined with it).
    pub b: RunningPeer,
    _dir: tempfile::TempDir,
}

impl DilationPair {
    /// Starts A with `a_args` (plus `--allocate --code-file …`), waits for its code, then B with
    /// `b_args` (plus `--code …`); both against `mailbox` and with `timeout`.
    pub fn spawn(
        mailbox: &str,
        (a_imp, a_args): (DilationImpl, &[&str]),
        (b_imp, b_args): (DilationImpl, &[&str]),
        timeout: Duration,
    ) -> DilationPair {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let code_file = dir.path().join("code");
        let mut a = base(mailbox, a_args);
        a.extend(["--allocate".into(), "--code-file".into(), path_arg(&code_file)]);
        let a = dilation_command(a_imp, &a, timeout).spawn();
        let code = wait_for_code(&code_file, Duration::from_secs(60));
        let mut b = base(mailbox, b_args);
        b.extend(["--code".into(), code]);
        let b = dilation_command(b_imp, &b, timeout).spawn();
        DilationPair { a, b, _dir: dir }
    }

    /// Waits for both and returns their outputs with their final JSON lines.
    pub fn wait(self) -> (DilationResult, DilationResult) {
        let a = DilationResult::from(self.a.wait());
        let b = DilationResult::from(self.b.wait());
        (a, b)
    }
}

fn base(mailbox: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["--mailbox".to_owned(), mailbox.to_owned()];
    v.extend(args.iter().map(|s| (*s).to_owned()));
    v
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

fn wait_for_code(path: &PathBuf, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(c) = std::fs::read_to_string(path)
            && !c.trim().is_empty()
        {
            return c.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no code in {} within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One side's end: its output and its JSON line (`Value::Null` when it printed none).
#[derive(Debug)]
pub struct DilationResult {
    /// Everything it printed.
    pub output: PeerOutput,
    /// The last stdout line, parsed.
    pub json: Value,
}

impl From<PeerOutput> for DilationResult {
    fn from(output: PeerOutput) -> Self {
        let json = output
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        DilationResult { output, json }
    }
}

impl DilationResult {
    /// Panics with the output unless `ok` is true.
    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert!(
            self.json["ok"] == true,
            "dilation peer failed: {}\n{}",
            self.json,
            self.output
        );
        &self.json
    }

    /// A number field.
    #[track_caller]
    pub fn u64(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {}", self.json))
    }
}

/// The bench stream's first `n` bytes (see `dilation-peer`'s docs).
pub fn bench_stream(n: usize) -> Vec<u8> {
    let mut block = Vec::with_capacity(1 << 20);
    for j in 0u32..32768 {
        let mut h = Sha256::new();
        h.update(b"dilation-bench");
        h.update(j.to_be_bytes());
        block.extend_from_slice(&h.finalize());
    }
    block.iter().copied().cycle().take(n).collect()
}

/// `sha256_received` of `streams` subchannels that each carried `data`.
pub fn expected_digest(data: &[u8], streams: usize) -> String {
    let one = Sha256::digest(data);
    if streams == 1 {
        return hex::encode(one);
    }
    let mut all = Sha256::new();
    for _ in 0..streams {
        all.update(one);
    }
    hex::encode(all.finalize())
}

/// `sha256_received` of one subchannel that carried the bench stream's first `n` bytes,
/// computed block by block (a 1 GiB stream costs 1 MiB here).
pub fn bench_digest(n: u64) -> String {
    let block = bench_stream(1 << 20);
    let mut h = Sha256::new();
    let mut left = n;
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        h.update(&block[..take]);
        left -= take as u64;
    }
    hex::encode(h.finalize())
}

/// Established TCP connections in this network namespace (`ss -Htnp`) whose local end belongs
/// to one of `pids`, as (local port, peer port) pairs, leaving out those with an end on one of
/// `except` (the mailbox, say). Tests run in parallel in one namespace: the PIDs keep each to
/// its own peers' connections.
pub fn established_tcp(pids: &[u32], except: &[u16]) -> Vec<(u16, u16)> {
    let out = std::process::Command::new("ss")
        .args(["-Htnp", "state", "established"])
        .output()
        .unwrap_or_else(|e| panic!("running ss: {e}"));
    let port = |s: &str| s.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let owned = |l: &str| pids.iter().any(|p| l.contains(&format!("pid={p},")));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| owned(l))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = (port(f.get(2)?)?, port(f.get(3)?)?);
            (!except.contains(&a) && !except.contains(&b)).then_some((a, b))
        })
        .collect()
}

/// Destroys (`ss -K`, the kernel aborts it and the peer gets a reset) every TCP socket whose
/// local port is `port`.
pub fn destroy_tcp(port: u16) {
    let status = std::process::Command::new("ss")
        .args(["-K", "-tn", "sport", "=", &format!(":{port}")])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running ss -K: {e}"));
    assert!(status.success(), "ss -K sport :{port} failed: {status}");
}
