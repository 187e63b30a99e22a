//! The `wormhole` CLI against wormhole-rs 0.8.1, both directions, on the Python mailbox server and
//! on ours: a file (direct, and forced through the Python transit relay), and directories as far
//! as wormhole-rs goes (it sends a directory as a `NAME.tar` file offer and saves a received
//! directory as the raw `NAME.zip`; both are unpacked here and compared by content hash).
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_cli_common.rs"]
mod common;

use common::{Cli, Payload, Server, transfer};
use wormhole_interop::*;

macro_rules! matrix {
    ($server:ident, $kind:expr) => {
        mod $server {
            use super::*;

            #[test]
            fn ours_to_rs_file() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                transfer(
                    Cli::Ours,
                    Cli::Rs,
                    Payload::File,
                    $kind,
                    Some(&relay),
                    false,
                );
            }
            #[test]
            fn rs_to_ours_file() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                transfer(
                    Cli::Rs,
                    Cli::Ours,
                    Payload::File,
                    $kind,
                    Some(&relay),
                    false,
                );
            }
            #[test]
            fn ours_to_rs_file_via_relay() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                let out = transfer(Cli::Ours, Cli::Rs, Payload::File, $kind, Some(&relay), true);
                assert!(
                    out.sender.stderr.contains("relay"),
                    "not relayed:\n{}",
                    out.sender
                );
            }
            #[test]
            fn rs_to_ours_file_via_relay() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                let out = transfer(Cli::Rs, Cli::Ours, Payload::File, $kind, Some(&relay), true);
                // wormhole-rs names the connection it used (`Connecting via relay (…)`).
                assert!(
                    out.sender.all_output().contains("Connecting via relay"),
                    "not relayed:\n{}",
                    out.sender
                );
            }
            #[test]
            fn ours_to_rs_dir_as_zip() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                transfer(Cli::Ours, Cli::Rs, Payload::Dir, $kind, Some(&relay), false);
            }
            #[test]
            fn rs_to_ours_dir_as_tar() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                transfer(Cli::Rs, Cli::Ours, Payload::Dir, $kind, Some(&relay), false);
            }
        }
    };
}

matrix!(python_server, Server::Python);
matrix!(our_server, Server::Ours);
