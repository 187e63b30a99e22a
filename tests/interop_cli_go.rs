//! The `wormhole` CLI against wormhole-william (Go), both directions, on the Python mailbox server
//! and on ours: text, file, directory, and a file through the transit relay. Each result is checked
//! by content hash.
//!
//! wormhole-william always offers `transit.magic-wormhole.io:4001` as its relay and never
//! advertises 127.x addresses, so the relay cases take the port-4001 lock, run the Python transit
//! relay there, and re-run themselves in a nested `scripts/netns-run` without the 198.18.0.1
//! address: with no direct hint left, both sides must meet at the relay.
//!
//! Runs inside `scripts/netns-run`; needs `cargo build --workspace` first (see the harness docs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "interop_cli_common.rs"]
mod common;

use common::{Cli, Payload, Server, rerun_without_test_addr, transfer, without_test_addr};
use wormhole_interop::*;

fn via_relay(test_name: &str, sender: Cli, receiver: Cli, server: Server) {
    require_netns();
    if !without_test_addr() {
        rerun_without_test_addr(test_name);
        return;
    }
    let _lock = lock_port_4001();
    let relay = start_python_relay(4001);
    let out = transfer(sender, receiver, Payload::File, server, Some(&relay), false);
    let ours = if sender == Cli::Ours {
        &out.sender
    } else {
        &out.receiver
    };
    assert!(ours.stderr.contains("relay"), "not relayed:\n{ours}");
}

macro_rules! matrix {
    ($server:ident, $kind:expr) => {
        mod $server {
            use super::*;

            #[test]
            fn ours_to_go_text() {
                transfer(Cli::Ours, Cli::Go, Payload::Text, $kind, None, false);
            }
            #[test]
            fn go_to_ours_text() {
                transfer(Cli::Go, Cli::Ours, Payload::Text, $kind, None, false);
            }
            #[test]
            fn ours_to_go_file() {
                transfer(Cli::Ours, Cli::Go, Payload::File, $kind, None, false);
            }
            #[test]
            fn go_to_ours_file() {
                transfer(Cli::Go, Cli::Ours, Payload::File, $kind, None, false);
            }
            #[test]
            fn ours_to_go_dir() {
                transfer(Cli::Ours, Cli::Go, Payload::Dir, $kind, None, false);
            }
            #[test]
            fn go_to_ours_dir() {
                transfer(Cli::Go, Cli::Ours, Payload::Dir, $kind, None, false);
            }
            #[test]
            fn ours_to_go_file_via_relay() {
                via_relay(
                    concat!(stringify!($server), "::ours_to_go_file_via_relay"),
                    Cli::Ours,
                    Cli::Go,
                    $kind,
                );
            }
            #[test]
            fn go_to_ours_file_via_relay() {
                via_relay(
                    concat!(stringify!($server), "::go_to_ours_file_via_relay"),
                    Cli::Go,
                    Cli::Ours,
                    $kind,
                );
            }
        }
    };
}

matrix!(python_server, Server::Python);
matrix!(our_server, Server::Ours);
