//! The mailbox server under test for a benchmark, under the names the bench binaries use: a
//! [`ServerProc`] is `wormhole-testkit`'s [`MailboxServer`], the workspace's one server spawner
//! (ours or Python's, loopback, a fresh channel DB, killed on drop), with an owned URL.
//!
//! Holds no spawning code of its own; must not grow a second spawner.

use std::net::SocketAddr;

pub use wormhole_testkit::{MailboxServer, ServerSpec, StartError};

/// A running mailbox server; killed on drop.
#[derive(Debug)]
pub struct ServerProc(MailboxServer);

impl ServerProc {
    /// Start the server (loopback, fresh channel DB) and wait until it accepts TCP connections.
    pub fn start(spec: &ServerSpec) -> Result<ServerProc, StartError> {
        MailboxServer::start(spec).map(ServerProc)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// `ws://ADDR/v1`.
    pub fn url(&self) -> String {
        self.0.url().to_owned()
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// The tail of the server's output.
    pub fn logs(&self) -> String {
        self.0.logs()
    }
}
