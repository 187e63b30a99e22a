//! The `wormhole` CLI against Python magic-wormhole 0.24, both directions, on the Python mailbox
//! server and on ours: text, file, directory, and a file forced through the Python transit relay
//! (`--no-listen` on both sides). Each result is checked by content hash.
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
            fn ours_to_python_text() {
                transfer(Cli::Ours, Cli::Python, Payload::Text, $kind, None, false);
            }
            #[test]
            fn python_to_ours_text() {
                transfer(Cli::Python, Cli::Ours, Payload::Text, $kind, None, false);
            }
            #[test]
            fn ours_to_python_file() {
                transfer(Cli::Ours, Cli::Python, Payload::File, $kind, None, false);
            }
            #[test]
            fn python_to_ours_file() {
                transfer(Cli::Python, Cli::Ours, Payload::File, $kind, None, false);
            }
            #[test]
            fn ours_to_python_dir() {
                transfer(Cli::Ours, Cli::Python, Payload::Dir, $kind, None, false);
            }
            #[test]
            fn python_to_ours_dir() {
                transfer(Cli::Python, Cli::Ours, Payload::Dir, $kind, None, false);
            }
            #[test]
            fn ours_to_python_file_via_relay() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                let out = transfer(
                    Cli::Ours,
                    Cli::Python,
                    Payload::File,
                    $kind,
                    Some(&relay),
                    true,
                );
                assert!(
                    out.receiver.stderr.contains("relay"),
                    "not relayed:\n{}",
                    out.receiver
                );
            }
            #[test]
            fn python_to_ours_file_via_relay() {
                require_netns();
                let relay = start_python_relay(ANY_PORT);
                let out = transfer(
                    Cli::Python,
                    Cli::Ours,
                    Payload::File,
                    $kind,
                    Some(&relay),
                    true,
                );
                assert!(
                    out.sender.stderr.contains("relay"),
                    "not relayed:\n{}",
                    out.sender
                );
            }
        }
    };
}

matrix!(python_server, Server::Python);
matrix!(our_server, Server::Ours);
