//! Locating the real peers installed by `scripts/install-peers`.
//!
//! Owns path discovery only; it never installs anything (that is the script's job) and never runs a peer.

use std::path::{Path, PathBuf};

/// Paths of every real peer binary the interop tests use.
///
/// The peer directory is `$WORMHOLE_PEERS` if set, else `~/.cache/wormhole-peers` (the default of
/// `scripts/install-peers`). wormhole-william is looked up at `/usr/bin/wormhole-william`, then on `PATH`.
#[derive(Debug, Clone)]
pub struct Peers {
    /// The peer directory (`$WORMHOLE_PEERS` or `~/.cache/wormhole-peers`).
    pub dir: PathBuf,
    /// Python magic-wormhole 0.24 CLI: `<dir>/venv/bin/wormhole`.
    pub python_wormhole: PathBuf,
    /// Twisted's `twist` runner from the same venv (runs `wormhole-mailbox` and `transitrelay`).
    pub twist: PathBuf,
    /// The venv's Python interpreter.
    pub python: PathBuf,
    /// wormhole-william (Go) CLI.
    pub go_wormhole: PathBuf,
    /// wormhole-rs 0.8.1 CLI: `<dir>/rs/bin/wormhole-rs`.
    pub rs_wormhole: PathBuf,
    /// fowl 26.8's CLI: `<dir>/fowl-venv/bin/fowl`.
    pub fowl: PathBuf,
    /// fowl 26.8's daemon (JSON lines): `<dir>/fowl-venv/bin/fowld`.
    pub fowld: PathBuf,
}

impl Peers {
    /// The peer directory: `$WORMHOLE_PEERS`, else `$HOME/.cache/wormhole-peers`.
    pub fn peer_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("WORMHOLE_PEERS").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        Path::new(&home).join(".cache").join("wormhole-peers")
    }

    /// Locate every peer; panics with a message naming `scripts/install-peers` if one is missing.
    pub fn locate() -> Peers {
        let dir = Self::peer_dir();
        let venv = dir.join("venv").join("bin");
        let peers = Peers {
            python_wormhole: venv.join("wormhole"),
            twist: venv.join("twist"),
            python: venv.join("python"),
            go_wormhole: find_go().unwrap_or_else(|| PathBuf::from("/usr/bin/wormhole-william")),
            rs_wormhole: dir.join("rs").join("bin").join("wormhole-rs"),
            fowl: dir.join("fowl-venv").join("bin").join("fowl"),
            fowld: dir.join("fowl-venv").join("bin").join("fowld"),
            dir,
        };
        for (what, path) in [
            ("Python magic-wormhole (`wormhole`)", &peers.python_wormhole),
            ("Twisted runner (`twist`)", &peers.twist),
            ("venv python", &peers.python),
            ("wormhole-william", &peers.go_wormhole),
            ("wormhole-rs", &peers.rs_wormhole),
            ("fowl", &peers.fowl),
            ("fowld", &peers.fowld),
        ] {
            if !is_executable(path) {
                panic!(
                    "real peer missing: {what} not found at {}. Install the peers with \
                     `scripts/install-peers` (set WORMHOLE_PEERS to use another directory than {}).",
                    path.display(),
                    peers.dir.display()
                );
            }
        }
        peers
    }

    /// The global arguments that point the Python CLI at a mailbox (`ws://…/v1`) and, optionally, a
    /// transit relay hint (`tcp:HOST:PORT`): `["--relay-url", url, "--transit-helper", hint]`.
    pub fn python_global_args(mailbox_url: &str, relay_hint: Option<&str>) -> Vec<String> {
        let mut args = vec!["--relay-url".to_owned(), mailbox_url.to_owned()];
        if let Some(hint) = relay_hint {
            args.push("--transit-helper".to_owned());
            args.push(hint.to_owned());
        }
        args
    }
}

fn find_go() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/wormhole-william");
    if is_executable(&fixed) {
        return Some(fixed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("wormhole-william"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
