//! The Python library as a test peer: `tests/drivers/py_client.py` (one side of an exchange with
//! `wormhole.create`, Deferred API) started as a child process, its JSON-lines report read one line
//! at a time.
//!
//! Process plumbing only: what the lines must say is for the test to assert. Every read and the final
//! wait have a deadline ([`PY_CLIENT_TIMEOUT`]); the child is killed when the handle is dropped.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::ours::workspace_root;
use crate::peers::Peers;
use crate::process::clean_command;

/// How long one report line (or the final exit) may take.
pub const PY_CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `py_client.py`.
#[derive(Debug)]
pub struct PyClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyClient {
    /// Start the driver against the mailbox at `url` with `appid` and `versions` (JSON text): with
    /// `Some(code)` it sets that code, with `None` it allocates one. Its stderr goes to the test's.
    /// Must be called inside a tokio runtime.
    pub fn spawn(url: &str, appid: &str, code: Option<&str>, versions: &str) -> PyClient {
        let peers = Peers::locate();
        let script = workspace_root().join("tests/drivers/py_client.py");
        let mut cmd = clean_command(&peers.python);
        cmd.arg(script)
            .args(["--url", url, "--appid", appid, "--versions", versions]);
        match code {
            Some(c) => cmd.args(["--code", c]),
            None => cmd.arg("--allocate"),
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the python driver: {e}"));
        let Some(stdout) = child.stdout.take() else {
            panic!("the python driver's stdout is not piped");
        };
        PyClient {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next JSON line; panics on timeout, read error, EOF or a line that is not JSON.
    pub async fn next(&mut self) -> Value {
        let line = match tokio::time::timeout(PY_CLIENT_TIMEOUT, self.lines.next_line()).await {
            Err(_) => panic!("python driver timed out after {PY_CLIENT_TIMEOUT:?}"),
            Ok(Err(e)) => panic!("cannot read the python driver's output: {e}"),
            Ok(Ok(None)) => panic!("python driver ended early"),
            Ok(Ok(Some(line))) => line,
        };
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("python driver printed a line that is not JSON ({e}): {line}"))
    }

    /// Wait for the driver to exit; panics unless it exits successfully within the timeout.
    pub async fn finish(mut self) {
        let status = match tokio::time::timeout(PY_CLIENT_TIMEOUT, self.child.wait()).await {
            Err(_) => panic!("python driver did not exit within {PY_CLIENT_TIMEOUT:?}"),
            Ok(Err(e)) => panic!("cannot wait for the python driver: {e}"),
            Ok(Ok(status)) => status,
        };
        assert!(status.success(), "python driver exited with {status}");
    }
}
