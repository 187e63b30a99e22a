//! Shared test harness of the `wormhole-interop` package: everything an interop test needs to locate,
//! start and drive the real peers (Python, Go, Rust CLIs and the Python servers) and our own binaries.
//!
//! It owns process plumbing only: it must not contain protocol logic or assertions about protocol
//! behaviour (those live in the test files), and it never talks to anything but loopback.
//!
//! # Requirements
//! - The real peers, installed by `scripts/install-peers` (see [`peers`]). Missing peers make the
//!   harness panic with a message naming that script.
//! - Our own binaries (`wormhole-server`, `wormhole`) already built in the same target directory and
//!   profile as the test binary: run `cargo build --workspace` (or `cargo build -p wormhole-server -p
//!   wormhole-cli`) before `cargo test` (see [`ours`]).
//! - Tests in which peers may connect directly must run inside `scripts/netns-run` and call
//!   [`require_netns`] first.
//!
//! # Map
//! - [`peers`]: where the peer binaries live ([`Peers::locate`]).
//! - [`ours`]: where our own binaries live ([`our_bin`]).
//! - [`process`]: [`ChildGuard`] (kill + wait on drop), [`PeerCommand`] (run a CLI with a timeout,
//!   stdin, captured output).
//! - [`live`]: [`LiveChild`], a running child whose output lines are read while it runs (wait for
//!   a line, signal it, wait for its exit).
//! - [`servers`]: start mailbox servers (ours, Python) and the Python transit relay, wait until they
//!   accept ([`ANY_PORT`]: the relay binds its own); [`free_port`], [`refusing_port`]; [`lock_port_4001`]
//!   for tests that need the fixed Go relay port.
//! - [`cluster`]: [`Cluster`], a throwaway PostgreSQL + mailbox nodes + HAProxy started by
//!   `scripts/cluster-up`.
//! - [`netns`]: the network-namespace guard [`require_netns`].
//! - [`files`]: sha256 of files and directory trees, deterministic test data.
//! - [`codes`]: [`unique_code`], distinct wormhole codes per test.
//! - [`clis`]: [`PeerKind`], [`Endpoints`] and the peers' command lines for send/receive
//!   (`Peers::send_text`, `Peers::send_path`, `Peers::receive`), quirks applied.
//! - [`go_key_bug`]: wormhole-william's SPAKE2 key bug: its exact failure signature and
//!   [`GoKeyBugRetries`], the bounded, logged retry for Go ⇄ Python / wormhole-rs exchanges.
//! - [`go_relay_race`]: wormhole-william's sender closing its own winning relay connection:
//!   [`GoRelayRace`], the bounded, logged retry for Go senders facing Python or wormhole-rs.
//! - [`dilation`]: [`DilationPair`], our `dilation-peer` or the Python driver on either side.
//! - [`forward`]: `wormhole forward`, `fowl` and `fowld` on either side of a forward session, the
//!   local services behind it and the checks a local client makes through it.
//! - [`py_client`]: [`PyClient`], the Python library as a peer (`tests/drivers/py_client.py`).
//!
//! # Example
//! ```no_run
//! use wormhole_interop::*;
//! require_netns();
//! let peers = Peers::locate();
//! let server = start_our_mailbox(&[]);
//! let code = unique_code();
//! let sender = PeerCommand::new(&peers.python_wormhole)
//!     .args(["--relay-url", server.url(), "send", "--code", &code, "--text", "hi"])
//!     .spawn();
//! let out = PeerCommand::new(&peers.go_wormhole)
//!     .args(["--relay-url", server.url(), "receive", &code])
//!     .run();
//! out.assert_success();
//! sender.wait().assert_success();
//! ```

#![forbid(unsafe_code)]

pub mod clis;
pub mod cluster;
pub mod codes;
pub mod dilation;
pub mod files;
pub mod forward;
pub mod go_key_bug;
pub mod go_relay_race;
pub mod inside;
pub mod live;
pub mod netns;
pub mod ours;
pub mod peers;
pub mod process;
pub mod py_client;
pub mod python_listen_race;
pub mod ram_dir;
pub mod servers;

pub use clis::{Endpoints, PeerKind};
pub use cluster::{Cluster, cluster_available};
pub use codes::unique_code;
pub use dilation::{
    DilationImpl, DilationPair, DilationResult, FOLLOWER_SIDE, LEADER_SIDE, bench_digest, bench_stream,
    destroy_tcp, dilation_command, established_tcp, expected_digest,
};
pub use files::{
    TreeEntry, dir_tree, make_test_tree, sha256_bytes, sha256_dir, sha256_file, write_test_file,
};
pub use go_key_bug::{GO_KEY_BUG_RETRIES, GoKeyBugRetries, GoRole, go_key_bug_signature};
pub use go_relay_race::{GO_RELAY_RACE_RETRIES, GoRelayRace, go_relay_race_signature};
pub use inside::InsideNetns;
pub use live::LiveChild;
pub use netns::{in_netns, require_netns};
pub use ours::{our_bin, target_profile_dir, workspace_root};
pub use peers::Peers;
pub use process::{ChildGuard, PeerCommand, PeerOutput, RunningPeer, clean_command};
pub use py_client::{PY_CLIENT_TIMEOUT, PyClient};
pub use python_listen_race::{
    KnownPeerBugs, PYTHON_LISTEN_RACE_RETRIES, PythonListenRace, python_listen_race_signature,
};
pub use ram_dir::RamDir;
pub use servers::{
    ANY_PORT, MailboxServer, Port4001Lock, ServerKind, TransitRelay, free_port, lock_port_4001,
    refusing_port, start_our_mailbox, start_our_mailbox_on_db, start_python_mailbox, start_python_relay,
    wait_until_accepting,
};
