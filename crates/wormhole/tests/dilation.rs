//! Dilation between two of our wormholes through our own mailbox server (in process, on
//! 127.0.0.1), with direct hints on loopback only: subchannels both ways, half-close, record
//! boundaries, the typed errors of misuse, and a connection that breaks and is replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use wormhole::dilation::{Dilated, DilationError, DilationOptions, Role};
use wormhole::{Wormhole, WormholeOptions};
use wormhole_server::{MailboxArgs, MailboxServer, bind};

const APPID: &str = "example.com/wormhole-dilation-test";
const T: Duration = Duration::from_secs(60);

async fn server() -> String {
    let mut args = MailboxArgs::defaults();
    args.listen = "127.0.0.1:0".into();
    args.channel_db = ":memory:".into();
    let srv = MailboxServer::start(&args).unwrap();
    let listener = bind(&args.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(srv.serve(listener));
    format!("ws://{addr}/v1")
}

fn opts(dilation: bool) -> WormholeOptions {
    WormholeOptions {
        dilation,
        ..WormholeOptions::default()
    }
}

fn dopts(side: &str) -> DilationOptions {
    DilationOptions {
        side: Some(side.into()),
        advertise: Some(vec!["127.0.0.1".into()]),
        ..DilationOptions::default()
    }
}

/// Two wormholes joined by one code.
async fn pair(url: &str, a_dilation: bool, b_dilation: bool) -> (Wormhole, Wormhole) {
    let a = Wormhole::create(APPID, url, opts(a_dilation));
    let b = Wormhole::create(APPID, url, opts(b_dilation));
    a.allocate_code(2).await.unwrap();
    let code = timeout(T, a.get_code()).await.unwrap().unwrap();
    b.set_code(&code).await.unwrap();
    (a, b)
}

async fn dilated_pair() -> (Wormhole, Wormhole, Dilated, Dilated) {
    let url = server().await;
    let (a, b) = pair(&url, true, true).await;
    let da = a.dilate(dopts("ffffffffffffffff")).await.unwrap();
    let db = b.dilate(dopts("0000000000000000")).await.unwrap();
    assert_eq!(
        timeout(T, da.when_dilated()).await.unwrap().unwrap(),
        Role::Leader
    );
    assert_eq!(
        timeout(T, db.when_dilated()).await.unwrap().unwrap(),
        Role::Follower
    );
    (a, b, da, db)
}

#[tokio::test]
async fn subchannels_both_ways_with_half_close() {
    let (_a, _b, da, db) = dilated_pair().await;
    let mut lb = db.listen("upper").await.unwrap();
    let server = tokio::spawn(async move {
        let mut n = 0;
        while let Some(mut ch) = lb.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                ch.read_to_end(&mut buf).await.unwrap();
                ch.write_all(&buf.to_ascii_uppercase()).await.unwrap();
                ch.shutdown().await.unwrap();
            });
            n += 1;
            if n == 4 {
                break;
            }
        }
    });
    let mut clients = Vec::new();
    for i in 0..4u8 {
        let mut ch = da.open("upper").await.unwrap();
        clients.push(tokio::spawn(async move {
            let msg = vec![b'a' + i; 100_000 * usize::from(i)];
            ch.write_all(&msg).await.unwrap();
            ch.shutdown().await.unwrap();
            let mut back = Vec::new();
            ch.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, msg.to_ascii_uppercase());
        }));
    }
    for c in clients {
        timeout(T, c).await.unwrap().unwrap();
    }
    timeout(T, server).await.unwrap().unwrap();
    // The Follower opens too (even ids).
    let mut la = da.listen("ping").await.unwrap();
    let mut ch = db.open("ping").await.unwrap();
    assert_eq!(ch.id() % 2, 0);
    ch.send_record(b"hi".to_vec()).await.unwrap();
    let mut got = timeout(T, la.accept()).await.unwrap().unwrap();
    assert_eq!(got.id() % 2, 0);
    assert_eq!(got.recv_record().await.unwrap().unwrap(), &b"hi"[..]);
    assert_eq!(da.status().connections, 1);
    da.close().await.unwrap();
}

#[tokio::test]
async fn each_write_is_one_record() {
    let (_a, _b, da, db) = dilated_pair().await;
    let mut l = db.listen("records").await.unwrap();
    let mut ch = da.open("records").await.unwrap();
    for i in 0..2000u32 {
        ch.write_all(&[(i % 251) as u8]).await.unwrap();
    }
    ch.send_record(Vec::new()).await.unwrap();
    ch.shutdown().await.unwrap();
    let mut r = timeout(T, l.accept()).await.unwrap().unwrap();
    let mut n = 0u32;
    while let Some(rec) = timeout(T, r.recv_record()).await.unwrap().unwrap() {
        if n < 2000 {
            assert_eq!(rec, &[(n % 251) as u8][..]);
        } else {
            assert!(rec.is_empty());
        }
        n += 1;
    }
    assert_eq!(n, 2001);
}

#[tokio::test]
async fn zero_byte_subchannel() {
    let (_a, _b, da, db) = dilated_pair().await;
    let mut l = da.listen("empty").await.unwrap();
    let mut ch = db.open("empty").await.unwrap();
    ch.shutdown().await.unwrap();
    let mut r = timeout(T, l.accept()).await.unwrap().unwrap();
    let mut buf = Vec::new();
    timeout(T, r.read_to_end(&mut buf)).await.unwrap().unwrap();
    assert!(buf.is_empty());
    r.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(T, ch.read_to_end(&mut back)).await.unwrap().unwrap();
    assert!(back.is_empty());
}

#[tokio::test]
async fn misuse_gives_typed_errors() {
    let url = server().await;
    let (a, b) = pair(&url, false, true).await;
    assert_eq!(
        a.dilate(DilationOptions::default()).await.err(),
        Some(DilationError::NotEnabled)
    );
    let bad = DilationOptions {
        side: Some("XYZ".into()),
        ..DilationOptions::default()
    };
    assert!(matches!(
        b.dilate(bad).await.err(),
        Some(DilationError::BadSide(_))
    ));
    // The failed call above did not count as the one dilate().
    let db = b.dilate(dopts("0123456789abcdef")).await.unwrap();
    assert_eq!(
        b.dilate(DilationOptions::default()).await.err(),
        Some(DilationError::AlreadyDilated)
    );
    // `a` offers no Dilation: b learns it as a typed error.
    b.send_message(b"x".to_vec()).await.unwrap();
    assert_eq!(
        timeout(T, db.when_dilated()).await.unwrap().err(),
        Some(DilationError::PeerCannotDilate)
    );
    let relay = DilationOptions {
        relays: vec!["not a relay".into()],
        ..DilationOptions::default()
    };
    let url2 = server().await;
    let (c, _d) = pair(&url2, true, true).await;
    assert!(matches!(
        c.dilate(relay).await.err(),
        Some(DilationError::BadRelay(_))
    ));
}
