//! The one test kit of the workspace: process plumbing shared by the interop tests
//! (`tests/harness`), the server's integration tests (`crates/server/tests`) and the benchmarks
//! (`crates/bench`).
//!
//! Owns: commands without the caller's `WORMHOLE_*` variables ([`clean_command`]), a child that
//! is killed and reaped on drop ([`ChildGuard`]), loopback ports ([`free_port`], [`refusing_port`],
//! [`wait_until_accepting`]), reading a server's `listening on ADDR` line ([`parse_listen_line`]),
//! draining a child's output into a bounded log ([`spawn_logged`]), and starting a mailbox server,
//! ours or Python's, and waiting until it accepts ([`MailboxServer`]).
//!
//! Must not: contain protocol logic or judge a peer's behaviour (that is the tests' job), touch a
//! process it did not start (only by its own handle, hence PID), bind anything but loopback, or
//! wait without a deadline. Nothing here is part of the product; the product must not depend on it.
//!
//! Map: [`process`] (commands, guards, logged children), [`net`] (ports), [`listen`] (the
//! `listening on` line), [`mailbox`] (server spawner), [`tls`] (a throwaway CA and server
//! certificates).
#![forbid(unsafe_code)]

pub mod listen;
pub mod mailbox;
pub mod net;
pub mod process;
pub mod tls;

pub use listen::parse_listen_line;
pub use mailbox::{ChannelDb, MailboxServer, ServerKind, ServerSpec, StartError, StartOptions};
pub use net::{free_port, refusing_port, try_free_port, wait_until_accepting};
pub use process::{ChildGuard, Log, clean_command, spawn_logged};
