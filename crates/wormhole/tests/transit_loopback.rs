//! Transit over real loopback sockets: direct (both roles dial and listen), Go-style fixed roles,
//! relay only (an in-test relay speaking the relay protocol), wrong keys (the typed key-mismatch
//! error, fast, and only with proof), and bulk data with hashes. Must run inside `scripts/netns-run` (it listens on and dials every local address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wormhole::transit::{ConnectionKind, DirectHint, Role, Transit, TransitConfig, TransitError, TransitMsg};

fn require_netns() {
    assert!(
        std::env::var_os("WORMHOLE_TEST_NETNS").is_some(),
        "transit tests open listeners and dial local addresses: run them inside scripts/netns-run"
    );
}

/// A minimal transit relay: pairs two connections with the same token and splices them.
async fn mini_relay() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let mut waiting: std::collections::HashMap<String, tokio::net::TcpStream> = Default::default();
        loop {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            let token = line.split_whitespace().nth(2).unwrap_or("").to_owned();
            let s = r.into_inner();
            if let Some(mut other) = waiting.remove(&token) {
                let mut s = s;
                other.write_all(b"ok\n").await.unwrap();
                s.write_all(b"ok\n").await.unwrap();
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut other).await;
                });
            } else {
                waiting.insert(token, s);
            }
        }
    });
    (port, h)
}

/// Bounds a wait that a correct implementation ends far sooner, and a wrong one only after the much
/// longer timeout or delay the test configures (a hang guard, not a speed check).
const HANG_GUARD: Duration = Duration::from_secs(60);

fn relay_hint(port: u16) -> DirectHint {
    DirectHint {
        hostname: "127.0.0.1".into(),
        port,
        priority: 0.0,
    }
}

async fn pair(
    scfg: TransitConfig,
    rcfg: TransitConfig,
    skey: &[u8],
    rkey: &[u8],
    receiver_sends_hints: bool,
) -> (
    Result<wormhole::transit::TransitConnection, TransitError>,
    Result<wormhole::transit::TransitConnection, TransitError>,
) {
    let s = Transit::new(Role::Sender, scfg).unwrap();
    let r = Transit::new(Role::Receiver, rcfg).unwrap();
    let smsg = s.message();
    let rmsg = if receiver_sends_hints {
        r.message()
    } else {
        TransitMsg::new(vec![])
    };
    let (skey, rkey) = (skey.to_vec(), rkey.to_vec());
    let st = tokio::spawn(async move { s.connect(&skey, &rmsg).await });
    let rt = tokio::spawn(async move { r.connect(&rkey, &smsg).await });
    (st.await.unwrap(), rt.await.unwrap())
}

#[tokio::test]
async fn direct_both_dial_and_listen_bulk_and_ack() {
    require_netns();
    // No relay is configured: the connection can only be direct.
    let (s, r) = pair(
        TransitConfig::default(),
        TransitConfig::default(),
        b"k1",
        b"k1",
        true,
    )
    .await;
    let (mut s, mut r) = (s.unwrap(), r.unwrap());
    assert_ne!(s.kind(), ConnectionKind::Relay);
    assert_ne!(r.kind(), ConnectionKind::Relay);
    let data: Vec<u8> = (0..5_000_037u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let expect_hash: [u8; 32] = sha2::Sha256::digest(&data).into();
    let d2 = data.clone();
    let sender = tokio::spawn(async move {
        let h = s.send_from(Cursor::new(d2), 5_000_037, None).await.unwrap();
        let ack = s.receive_record().await.unwrap();
        (h, ack)
    });
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen2 = seen.clone();
    let progress: wormhole::transit::Progress = std::sync::Arc::new(move |d, t| {
        assert_eq!(t, 5_000_037);
        seen2.store(d, std::sync::atomic::Ordering::SeqCst);
    });
    let (h, out) = r
        .receive_into(Vec::new(), 5_000_037, Some(progress))
        .await
        .unwrap();
    r.send_record(b"ack!").await.unwrap();
    let (sh, ack) = sender.await.unwrap();
    assert_eq!(h, expect_hash);
    assert_eq!(sh, expect_hash);
    assert_eq!(out, data);
    assert_eq!(ack, b"ack!");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 5_000_037);
}

use sha2::Digest;

#[tokio::test]
async fn go_style_fixed_roles_receiver_dials_only() {
    require_netns();
    // Receiver: no listener, sends no hints (wormhole-william receiver).
    let rcfg = TransitConfig {
        listen: false,
        ..Default::default()
    };
    let (s, r) = pair(TransitConfig::default(), rcfg, b"k2", b"k2", false).await;
    let (mut s, mut r) = (s.unwrap(), r.unwrap());
    assert_eq!(s.kind(), ConnectionKind::DirectInbound);
    assert_eq!(r.kind(), ConnectionKind::DirectOutbound);
    s.send_record(b"hello").await.unwrap();
    assert_eq!(r.receive_record().await.unwrap(), b"hello");
    r.send_record(b"back").await.unwrap();
    assert_eq!(s.receive_record().await.unwrap(), b"back");
}

#[tokio::test]
async fn relay_only_no_listen_both() {
    require_netns();
    let (port, relay) = mini_relay().await;
    // A relay delay of an hour: only dialling the relay at once (no direct hints to wait for) ends
    // this before the hang guard.
    let cfg = TransitConfig {
        listen: false,
        relays: vec![relay_hint(port)],
        relay_delay: Duration::from_secs(3600),
        ..Default::default()
    };
    let (s, r) = tokio::time::timeout(HANG_GUARD, pair(cfg.clone(), cfg, b"k3", b"k3", true))
        .await
        .expect("no direct hints, yet the relay waited for the relay delay");
    let (mut s, mut r) = (s.unwrap(), r.unwrap());
    assert_eq!(s.kind(), ConnectionKind::Relay);
    let data = vec![42u8; 100_000];
    let d2 = data.clone();
    let st = tokio::spawn(async move { s.send_from(Cursor::new(d2), 100_000, None).await.unwrap() });
    let (h, out) = r.receive_into(Vec::new(), 100_000, None).await.unwrap();
    assert_eq!(st.await.unwrap(), h);
    assert_eq!(out, data);
    relay.abort();
}

#[tokio::test]
async fn relay_after_delay_when_direct_hints_fail() {
    require_netns();
    let (port, relay) = mini_relay().await;
    // Advertise a direct hint nobody listens on (port 1 on loopback refuses).
    let scfg = TransitConfig {
        advertise: Some(vec![]),
        relays: vec![relay_hint(port)],
        relay_delay: Duration::from_millis(300),
        ..Default::default()
    };
    let rcfg = TransitConfig {
        listen: false,
        relays: vec![relay_hint(port)],
        ..scfg.clone()
    };
    let s = Transit::new(Role::Sender, scfg).unwrap();
    let r = Transit::new(Role::Receiver, rcfg).unwrap();
    let mut smsg = s.message();
    smsg.hints.push(wormhole::transit::Hint::DirectTcp(DirectHint {
        hostname: "127.0.0.1".into(),
        port: 1,
        priority: 0.0,
    }));
    let rmsg = r.message();
    let t0 = Instant::now();
    let st = tokio::spawn(async move { s.connect(b"k4", &rmsg).await });
    let rt = tokio::spawn(async move { r.connect(b"k4", &smsg).await });
    let (s, r) = (st.await.unwrap().unwrap(), rt.await.unwrap().unwrap());
    assert_eq!(r.kind(), ConnectionKind::Relay);
    assert_eq!(s.kind(), ConnectionKind::Relay);
    assert!(
        t0.elapsed() >= Duration::from_millis(290),
        "receiver had a direct hint: relay waits"
    );
    relay.abort();
}

/// Both results must be the typed key-mismatch error, well before any timeout.
fn assert_key_mismatch(
    s: &Result<wormhole::transit::TransitConnection, TransitError>,
    r: &Result<wormhole::transit::TransitConnection, TransitError>,
) {
    for (side, res) in [("sender", s), ("receiver", r)] {
        match res {
            Err(e @ TransitError::KeyMismatch(_)) => {
                let text = e.to_string();
                assert!(text.contains("did not match"), "{side}: {text}");
                assert!(text.contains("different transit key"), "{side}: {text}");
            }
            other => panic!("{side}: expected KeyMismatch, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_key_fails_fast_both_dial_and_listen() {
    require_netns();
    // Default timeouts (60 s per handshake, 120 s overall): only the proof of a wrong key ends it.
    let (s, r) = pair(
        TransitConfig::default(),
        TransitConfig::default(),
        b"right",
        b"wrong",
        true,
    )
    .await;
    // A timeout would be another error: the variant shows the proof ended it.
    assert_key_mismatch(&s, &r);
}

#[tokio::test]
async fn wrong_key_fails_fast_with_fixed_roles() {
    require_netns();
    // Go-style: the sender only listens, the receiver only dials. The sender learns of the wrong
    // key only from the handshake the receiver still writes after seeing the sender's.
    let rcfg = TransitConfig {
        listen: false,
        ..Default::default()
    };
    let (s, r) = pair(TransitConfig::default(), rcfg, b"right", b"wrong", false).await;
    // A timeout would be another error: the variant shows the proof ended it.
    assert_key_mismatch(&s, &r);
}

#[tokio::test]
async fn wrong_key_with_a_relay_waits_only_the_grace_period() {
    require_netns();
    let (port, relay) = mini_relay().await;
    // The relay never pairs different keys, so that attempt would wait for its handshake timeout
    // (an hour here); after the direct proof of a wrong key it gets only the grace period, so only
    // the grace ends this before the hang guard.
    let cfg = TransitConfig {
        relays: vec![relay_hint(port)],
        relay_delay: Duration::from_millis(200),
        key_mismatch_grace: Duration::from_millis(1500),
        handshake_timeout: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(7200),
        ..Default::default()
    };
    let t0 = Instant::now();
    let (s, r) = tokio::time::timeout(HANG_GUARD, pair(cfg.clone(), cfg, b"right", b"wrong", true))
        .await
        .expect("the relay attempt was not cut short after the grace period");
    assert_key_mismatch(&s, &r);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "the grace period was not given: {took:?}"
    );
    relay.abort();
}

#[tokio::test]
async fn wrong_key_without_proof_keeps_waiting() {
    require_netns();
    // Relay only: different keys are never paired, no handshake is ever seen, so nothing proves
    // a wrong key and the configured timeout applies.
    let (port, relay) = mini_relay().await;
    let cfg = TransitConfig {
        listen: false,
        relays: vec![relay_hint(port)],
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let (s, r) = pair(cfg.clone(), cfg, b"right", b"wrong", true).await;
    assert!(matches!(s, Err(TransitError::ConnectTimeout(2))), "{s:?}");
    assert!(matches!(r, Err(TransitError::ConnectTimeout(2))), "{r:?}");
    relay.abort();
}

#[tokio::test]
async fn no_hints_at_all_fails_fast() {
    require_netns();
    let t = Transit::new(
        Role::Receiver,
        TransitConfig {
            listen: false,
            ..Default::default()
        },
    )
    .unwrap();
    // Default timeouts (minutes): `NoConnection` rather than a timeout shows it gave up at once.
    let e = tokio::time::timeout(HANG_GUARD, t.connect(b"k", &TransitMsg::new(vec![])))
        .await
        .expect("nothing to try, yet it waited")
        .unwrap_err();
    assert!(matches!(e, TransitError::NoConnection(_)), "{e:?}");
}
