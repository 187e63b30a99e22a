//! Command lines of the peer CLIs for the common jobs (send text, send a file or directory, receive),
//! with each peer's quirks from `docs/testing.md` applied, so test files only say *who* sends *what*.
//!
//! This module builds [`PeerCommand`]s; it does not run them or judge their output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::peers::Peers;
use crate::process::PeerCommand;

/// Which CLI plays a role in a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// Python magic-wormhole 0.24 (`wormhole`).
    Python,
    /// wormhole-william (Go).
    Go,
    /// wormhole-rs 0.8.1 (no text; directories as `.tar`/`.zip` files).
    Rust,
}

impl PeerKind {
    /// Short lowercase name (`python`, `go`, `rust`).
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Python => "python",
            PeerKind::Go => "go",
            PeerKind::Rust => "rust",
        }
    }

    /// Whether this CLI can send and receive text messages.
    pub fn supports_text(self) -> bool {
        !matches!(self, PeerKind::Rust)
    }
}

/// Where the peers meet: the mailbox URL and, optionally, a transit relay on loopback.
///
/// wormhole-william has no relay flag: it always uses `transit.magic-wormhole.io:4001`, so with Go
/// peers the relay must be the one started on port 4001 (see `lock_port_4001`).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `ws://127.0.0.1:PORT/v1`.
    pub mailbox_url: String,
    /// The transit relay address, if any.
    pub relay: Option<SocketAddr>,
}

impl Endpoints {
    /// Endpoints with a mailbox and an optional relay.
    pub fn new(mailbox_url: &str, relay: Option<SocketAddr>) -> Endpoints {
        Endpoints {
            mailbox_url: mailbox_url.to_owned(),
            relay,
        }
    }
}

impl Peers {
    fn binary(&self, kind: PeerKind) -> &Path {
        match kind {
            PeerKind::Python => &self.python_wormhole,
            PeerKind::Go => &self.go_wormhole,
            PeerKind::Rust => &self.rs_wormhole,
        }
    }

    /// The command start with the global flags pointing `kind` at `ep` (Python and Go take the mailbox as
    /// a global `--relay-url`; wormhole-rs takes per-subcommand flags, added by the callers below).
    fn base(&self, kind: PeerKind, ep: &Endpoints, role: &str) -> PeerCommand {
        let cmd = PeerCommand::new(self.binary(kind)).name(&format!("{} {role}", kind.name()));
        match kind {
            PeerKind::Python => {
                let cmd = cmd.args(["--relay-url", &ep.mailbox_url]);
                match ep.relay {
                    Some(relay) => cmd.args([
                        "--transit-helper".to_owned(),
                        format!("tcp:{}:{}", relay.ip(), relay.port()),
                    ]),
                    None => cmd,
                }
            }
            PeerKind::Go => cmd.args(["--relay-url", &ep.mailbox_url]),
            PeerKind::Rust => cmd,
        }
    }

    fn rs_server_flags(ep: &Endpoints) -> Vec<String> {
        let mut v = vec!["--rendezvous-server".to_owned(), ep.mailbox_url.clone()];
        if let Some(relay) = ep.relay {
            v.push("--relay-server".to_owned());
            v.push(format!("tcp://{relay}"));
        }
        v
    }

    /// `kind` sends `text` with `code`. Panics for wormhole-rs (it has no text mode).
    pub fn send_text(&self, kind: PeerKind, ep: &Endpoints, code: &str, text: &str) -> PeerCommand {
        let cmd = self.base(kind, ep, "text sender");
        match kind {
            PeerKind::Python => cmd.args([
                "send",
                "--code",
                code,
                "--hide-progress",
                "--no-qr",
                "--text",
                text,
            ]),
            PeerKind::Go => cmd.args(["send", "--code", code, "--hide-progress", "--text", text]),
            PeerKind::Rust => panic!("wormhole-rs cannot send text"),
        }
    }

    /// `kind` sends the file or directory `path` with `code` (run in `path`'s parent directory, with the
    /// bare file name as argument, as a user would).
    pub fn send_path(&self, kind: PeerKind, ep: &Endpoints, code: &str, path: &Path) -> PeerCommand {
        let parent = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let name = path
            .file_name()
            .map_or_else(|| path.as_os_str().to_owned(), |n| n.to_owned());
        let cmd = self.base(kind, ep, "sender").current_dir(parent);
        match kind {
            PeerKind::Python => cmd
                .args(["send", "--code", code, "--hide-progress", "--no-qr"])
                .arg(name),
            PeerKind::Go => cmd.args(["send", "--code", code, "--hide-progress"]).arg(name),
            PeerKind::Rust => cmd
                .arg("send")
                .args(Self::rs_server_flags(ep))
                .args(["--code", code, "--no-qr"])
                .arg(name),
        }
    }

    /// `kind` receives whatever is sent with `code`, accepting files without asking, writing into
    /// `out_dir` (which must exist). Go gets `y` on stdin (it always asks).
    pub fn receive(&self, kind: PeerKind, ep: &Endpoints, code: &str, out_dir: &Path) -> PeerCommand {
        let cmd = self.base(kind, ep, "receiver").current_dir(out_dir);
        match kind {
            PeerKind::Python => cmd.args(["receive", "--accept-file", "--hide-progress", code]),
            PeerKind::Go => cmd.args(["receive", "--hide-progress", code]).stdin("y\n"),
            PeerKind::Rust => cmd
                .args(["receive", "--noconfirm"])
                .args(Self::rs_server_flags(ep))
                .arg("--out-dir")
                .arg(out_dir)
                .arg(code),
        }
    }
}
