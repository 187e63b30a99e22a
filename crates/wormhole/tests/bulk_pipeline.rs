//! The bulk pipelines' failure paths over a real loopback connection: a source that ends early, a
//! destination that fails mid-transfer, a receiver that stops reading. Each must end with the
//! failing stage's own error (not a generic "closed" from a stage behind it) and never hang.
//! Must run inside `scripts/netns-run` (transit listens on and dials local addresses).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use wormhole::transit::{Role, Transit, TransitConfig, TransitConnection, TransitError};

fn require_netns() {
    assert!(
        std::env::var_os("WORMHOLE_TEST_NETNS").is_some(),
        "transit tests open listeners and dial local addresses: run them inside scripts/netns-run"
    );
}

async fn connected() -> (TransitConnection, TransitConnection) {
    let s = Transit::new(Role::Sender, TransitConfig::default()).unwrap();
    let r = Transit::new(Role::Receiver, TransitConfig::default()).unwrap();
    let (sm, rm) = (s.message(), r.message());
    let key = b"bulk-pipeline-test".to_vec();
    let k2 = key.clone();
    let st = tokio::spawn(async move { s.connect(&key, &rm).await });
    let rt = tokio::spawn(async move { r.connect(&k2, &sm).await });
    (st.await.unwrap().unwrap(), rt.await.unwrap().unwrap())
}

/// Endless bytes that stop after `left`.
struct Source {
    left: u64,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(0x5a);
        self.left -= n as u64;
        Ok(n)
    }
}

/// A destination that accepts `room` bytes, then fails like a full disk.
#[derive(Debug)]
struct Sink {
    room: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("disk full (test)"));
        }
        let n = (buf.len() as u64).min(self.room) as usize;
        self.room -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const LEN: u64 = 8 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_transfer_hashes_match() {
    require_netns();
    let (mut s, mut r) = connected().await;
    let send = tokio::spawn(async move { s.send_from(Source { left: LEN }, LEN, None).await });
    let (got, _) = r.receive_into(Sink { room: LEN }, LEN, None).await.unwrap();
    let sent = send.await.unwrap().unwrap();
    assert_eq!(got, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ending_early_is_the_senders_error() {
    require_netns();
    let (mut s, mut r) = connected().await;
    r.set_idle_timeout(Duration::from_secs(5));
    let send = tokio::spawn(async move {
        let res = s.send_from(Source { left: LEN / 2 }, LEN, None).await;
        drop(s); // what a failed sender does: close the connection
        res
    });
    // The receiver sees the connection end short of the declared size.
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        r.receive_into(Sink { room: LEN }, LEN, None),
    )
    .await
    .expect("receiver hung")
    .unwrap_err();
    assert!(matches!(e, TransitError::Closed(_)), "{e}");
    let e = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("sender hung")
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("ended"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_destination_is_the_receivers_error() {
    require_netns();
    let (mut s, mut r) = connected().await;
    s.set_idle_timeout(Duration::from_secs(5));
    // Whatever the socket buffers absorbed, the sender learns of the failure at the latest when
    // it waits for the receiver's ack.
    let send = tokio::spawn(async move {
        s.send_from(Source { left: LEN }, LEN, None).await?;
        s.receive_record().await
    });
    let e = tokio::time::timeout(
        Duration::from_secs(20),
        r.receive_into(Sink { room: LEN / 3 }, LEN, None),
    )
    .await
    .expect("receiver hung")
    .unwrap_err();
    assert!(e.to_string().contains("disk full (test)"), "{e}");
    drop(r);
    let res = tokio::time::timeout(Duration::from_secs(20), send)
        .await
        .expect("sender hung")
        .unwrap();
    assert!(res.is_err(), "the sender must fail, got {res:?}");
}
