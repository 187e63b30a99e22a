//! A second network namespace ("inside") hanging off the test's namespace by one veth pair, for
//! tests that must control exactly what one peer can reach: the Tor tests (only a SOCKS proxy) and
//! the WebSocket-transit tests (only a relay's WebSocket port, enforced with iptables).
//!
//! Owns: creating and deleting the namespace and its link, running commands inside, iptables rules
//! and their counters there, and the listening sockets inside. Must not: start servers or peers of
//! its own (the tests do).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::require_netns;
use crate::process::PeerCommand;

static NEXT: AtomicU32 = AtomicU32::new(1);

/// The inside namespace and its veth link; deleted on drop.
#[derive(Debug)]
pub struct InsideNetns {
    /// The namespace's name (for `ip netns exec`).
    pub name: String,
    /// The test namespace's end of the link (`10.K.N.1`): bind servers here to make them reachable
    /// from inside.
    pub outer: String,
    /// The inside end of the link (`10.K.N.2`).
    pub inner: String,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(st.success(), "ip {args:?}: {st}");
}

impl InsideNetns {
    /// A fresh inside namespace. `tag` (a few letters) names it and its interfaces; `subnet` (the
    /// second octet, one per test binary) keeps the link addresses of different binaries apart.
    pub fn new(tag: &str, subnet: u8) -> InsideNetns {
        require_netns();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("wh{tag}{}x{n}", std::process::id());
        let (outer_if, inner_if) = (format!("v{tag}o{n}"), format!("v{tag}i{n}"));
        let (outer, inner) = (format!("10.{subnet}.{n}.1"), format!("10.{subnet}.{n}.2"));
        ip(&["netns", "add", &name]);
        let inside = InsideNetns { name, outer, inner };
        ip(&[
            "link", "add", &outer_if, "type", "veth", "peer", "name", &inner_if,
        ]);
        ip(&["link", "set", &inner_if, "netns", &inside.name]);
        ip(&["addr", "add", &format!("{}/30", inside.outer), "dev", &outer_if]);
        ip(&["link", "set", &outer_if, "up"]);
        let addr = format!("{}/30", inside.inner);
        inside.ip(&["addr", "add", &addr, "dev", &inner_if]);
        inside.ip(&["link", "set", &inner_if, "up"]);
        inside.ip(&["link", "set", "lo", "up"]);
        inside
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program` run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> PeerCommand {
        PeerCommand::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(program)
    }

    /// Run `iptables ARGS` inside; panics (naming `scripts/install-peers iptables`) on failure.
    pub fn iptables(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables"])
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("iptables (scripts/install-peers iptables): {e}"));
        assert!(
            st.success(),
            "iptables {args:?}: {st} (iptables missing? scripts/install-peers iptables)"
        );
    }

    /// Allow inside only TCP to `outer`'s `ports` (and replies); every other TCP connection, out or
    /// in, is refused with a reset (so a blocked dial fails at once instead of timing out).
    pub fn allow_only_tcp_to(&self, ports: &[u16]) {
        let est = [
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ];
        for chain in ["OUTPUT", "INPUT"] {
            let lo = if chain == "OUTPUT" { "-o" } else { "-i" };
            self.iptables(&["-A", chain, lo, "lo", "-j", "ACCEPT"]);
            let mut rule = vec!["-A", chain];
            rule.extend_from_slice(&est);
            self.iptables(&rule);
        }
        for port in ports {
            let port = port.to_string();
            self.iptables(&[
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                &self.outer,
                "--dport",
                &port,
                "-j",
                "ACCEPT",
            ]);
        }
        for chain in ["OUTPUT", "INPUT"] {
            self.iptables(&[
                "-A",
                chain,
                "-p",
                "tcp",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ]);
        }
    }

    /// How many TCP packets the rules of [`InsideNetns::allow_only_tcp_to`] refused (out and in).
    pub fn refused_packets(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables", "-L", "-v", "-n", "-x"])
            .output()
            .unwrap_or_else(|e| panic!("iptables -L: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("REJECT"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Listening TCP sockets inside, one per line (empty when there are none).
    pub fn listeners(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "ss", "-Htln"])
            .output()
            .unwrap_or_else(|e| panic!("ss: {e}"));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for InsideNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
