//! Conformance of the mailbox server with server 0.8.0 on two PostgreSQL nodes sharing one
//! database: the cases in `conformance_cases/`, with consecutive clients on different nodes
//! (so the two clients of every pair talk to different nodes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pg_nodes;
mod postgres_kit;
#[path = "common/mod.rs"]
mod ws_common;
use pg_nodes as common;
mod conformance_cases;

/// Mailbox nodes per case.
const NODES: usize = 2;
