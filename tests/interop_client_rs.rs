//! Our client library at the API level against wormhole-rs 0.8.1's CLI, which speaks the
//! file-transfer protocol over this API: it sends `transit` then a file offer
//! (`{"offer":{"file":{"filename","filesize"}}}`); our side reads both through `get_message`
//! and declines with `{"error":"transfer rejected"}` (docs/protocol.md §5.1), so no transit
//! connection is made. Checks key agreement, versions and the ordered message pipe with the Rust
//! peer, on our mailbox server and on Python's.
//!
//! wormhole-rs may open listening sockets as a sender, so this runs only inside
//! `scripts/netns-run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wormhole::{DEFAULT_APPID, Mood, Wormhole, WormholeOptions};
use wormhole_interop::{
    Endpoints, MailboxServer, PeerKind, Peers, require_netns, start_our_mailbox, start_python_mailbox,
    unique_code,
};

const T: Duration = Duration::from_secs(60);

async fn rs_offers_file_we_decline(server: &MailboxServer) {
    require_netns();
    let peers = Peers::locate();
    let code = unique_code();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offered.bin");
    std::fs::write(&file, vec![7u8; 1234]).unwrap();
    let ep = Endpoints::new(server.url(), None);
    let rs = peers.send_path(PeerKind::Rust, &ep, &code, &file).spawn();
    let w = Wormhole::create(DEFAULT_APPID, server.url(), WormholeOptions::default());
    w.set_code(&code).await.unwrap();
    tokio::time::timeout(T, w.get_verifier()).await.unwrap().unwrap();
    let versions = w.get_versions().await.unwrap();
    assert!(
        versions.get("abilities").is_some(),
        "wormhole-rs app_versions: {versions}"
    );
    let mut offer = None;
    for _ in 0..4 {
        let m: Value =
            serde_json::from_slice(&tokio::time::timeout(T, w.get_message()).await.unwrap().unwrap())
                .unwrap();
        if m.get("offer").is_some() {
            offer = Some(m);
            break;
        }
        assert!(
            m.get("transit").is_some(),
            "unexpected message before the offer: {m}"
        );
    }
    let offer = offer.expect("no offer from wormhole-rs");
    assert_eq!(offer["offer"]["file"]["filename"], "offered.bin");
    assert_eq!(offer["offer"]["file"]["filesize"], 1234);
    w.send_message(json!({"error": "transfer rejected"}).to_string().into_bytes())
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || rs.wait()).await.unwrap();
    assert!(!out.timed_out, "{}", out.all_output());
    assert!(
        !out.success(),
        "wormhole-rs should report the rejection: {}",
        out.all_output()
    );
    assert!(
        out.all_output().to_lowercase().contains("reject"),
        "{}",
        out.all_output()
    );
    assert_eq!(tokio::time::timeout(T, w.close()).await.unwrap(), Ok(Mood::Happy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_file_offer_declined_our_server() {
    rs_offers_file_we_decline(&start_our_mailbox(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_file_offer_declined_python_server() {
    rs_offers_file_we_decline(&start_python_mailbox(&[])).await;
}
