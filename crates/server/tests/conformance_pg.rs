//! Conformance of the mailbox server with server 0.8.0 on one PostgreSQL node: the cases in
//! `conformance_cases/`, each on a fresh database of a throwaway PostgreSQL 15.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pg_nodes;
mod postgres_kit;
#[path = "common/mod.rs"]
mod ws_common;
use pg_nodes as common;
mod conformance_cases;

/// Mailbox nodes per case.
const NODES: usize = 1;
