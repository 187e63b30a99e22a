//! Conformance of the mailbox server with server 0.8.0 on SQLite (in memory): the cases in
//! `conformance_cases/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance_cases;
