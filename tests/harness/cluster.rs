//! A throwaway mailbox cluster for tests: `scripts/cluster-up start N` (PostgreSQL 15, N of our
//! `wormhole-server mailbox` nodes on it, HAProxy in front), driven through that script so the
//! tests start the cluster exactly as people do. Dropping the handle runs `cluster-up stop`.
//!
//! Owns: running the script and reading its endpoints. Must not: start or end any process
//! itself (the script ends only what it started, by its PID files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ours::{our_bin, workspace_root};

/// Whether the cluster can run here (PostgreSQL 15 and HAProxy installed); prints a loud SKIP
/// line naming the install command when not.
pub fn cluster_available(test: &str) -> bool {
    let ok =
        Path::new("/usr/lib/postgresql/15/bin/initdb").exists() && Path::new("/usr/sbin/haproxy").exists();
    if !ok {
        eprintln!(
            "\n!!!!! SKIPPED {test}: PostgreSQL 15 or HAProxy missing; \
             `scripts/install-peers postgres` and `scripts/install-peers haproxy` install them !!!!!\n"
        );
    }
    ok
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    endpoints: HashMap<String, String>,
    nodes: usize,
}

fn script() -> PathBuf {
    workspace_root().join("scripts/cluster-up")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .env("WORMHOLE_SERVER", our_bin("wormhole-server"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/cluster-up: {e}"));
    assert!(
        out.status.success(),
        "scripts/cluster-up {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// Start PostgreSQL, `nodes` mailbox nodes and HAProxy.
    pub fn start(nodes: usize) -> Cluster {
        let out = run(&["start", &nodes.to_string()]);
        let mut lines = out.lines();
        let Some(dir) = lines.next().map(PathBuf::from) else {
            panic!("scripts/cluster-up printed no directory");
        };
        let endpoints = lines
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Cluster {
            dir,
            endpoints,
            nodes,
        }
    }

    fn endpoint(&self, name: &str) -> &str {
        self.endpoints
            .get(name)
            .unwrap_or_else(|| panic!("cluster-up printed no {name} endpoint"))
    }

    /// The one URL clients use (HAProxy, all nodes).
    pub fn lb_url(&self) -> &str {
        self.endpoint("lb")
    }

    /// Through HAProxy to node `k` (1-based) while it is up, else to another node.
    pub fn pinned_url(&self, k: usize) -> &str {
        self.endpoint(&format!("pin-{k}"))
    }

    /// Node `k` directly.
    pub fn node_url(&self, k: usize) -> &str {
        self.endpoint(&format!("node-{k}"))
    }

    /// The database URL.
    pub fn database_url(&self) -> &str {
        self.endpoint("db")
    }

    /// SIGKILL node `k`.
    pub fn kill_node(&self, k: usize) {
        run(&["kill-node", &self.dir.display().to_string(), &k.to_string()]);
    }

    /// Start node `k` again.
    pub fn start_node(&self, k: usize) {
        run(&["start-node", &self.dir.display().to_string(), &k.to_string()]);
    }

    /// `pg_ctl restart -m immediate`.
    pub fn pg_restart(&self) {
        run(&["pg-restart", &self.dir.display().to_string()]);
    }

    /// Node `k`'s log so far.
    pub fn node_log(&self, k: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{k}.log"))).unwrap_or_default()
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.dir.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}
