//! Benchmark helpers shared by the bench binaries.
//!
//! - [`mailbox_client`]: a minimal mailbox-protocol client and the life of one client pair, for
//!   `mailbox-load`.
//! - [`latency`]: latency histograms and their summaries.
//! - [`flood`]: a client flooding the mailbox server with connections and commands, for
//!   `mailbox-load --flood`.
//! - [`ws_connect`]: a load client's WebSocket connection, optionally from a chosen loopback
//!   source address.
//! - [`sys`]: peak/current RSS of a process, own CPU time, open-file limit.
//! - [`server_proc`]: the mailbox server under test (ours or Python), from `wormhole-testkit`, the
//!   workspace's test kit (which also holds the commands, guards and ports the binaries use).
//!
//! This crate has no `unsafe` (system facts come through `rustix`).
//!
//! This crate measures and prints; it holds no protocol logic of the product and must not be used by it.

#![forbid(unsafe_code)]

pub mod flood;
pub mod latency;
pub mod mailbox_client;
pub mod server_proc;
pub mod sys;
pub mod ws_connect;
