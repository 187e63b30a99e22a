//! Our sender to our receiver over an in-memory wormhole and real loopback transit: text, a file
//! (with progress and hash), a directory (streamed STORED zip, modes kept, empty dirs), a deflated
//! zip like Go sends, and refusals answered with `transfer rejected`. Run inside scripts/netns-run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod transfer_support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;
use transfer_support::*;
use wormhole::transfer::*;
use wormhole_proto::transfer::{AppMsg, DirectoryOffer, FinalAck, Offer};
use wormhole_proto::transit::{Role, TransitMsg};

fn opts_in(dir: &std::path::Path) -> ReceiveOptions {
    ReceiveOptions {
        cwd: dir.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn text_roundtrip() {
    require_netns();
    let (a, b) = MemPipe::pair();
    let text = "it's a\ttab\nand \\ é \"q\"";
    let s = tokio::spawn(async move { send_text(&*a, text).await });
    let got = receive(&*b, ReceiveOptions::default(), |_| Decision::Reject)
        .await
        .unwrap();
    s.await.unwrap().unwrap();
    assert_eq!(got, Received::Text(text.into()));
    assert_eq!(python_repr_text(text), "it\\'s a\\ttab\\nand \\\\ é \"q\"");
}

#[tokio::test]
async fn file_roundtrip_with_progress() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_001u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let path = src.path().join("data.bin");
    std::fs::write(&path, &data).unwrap();
    let (a, b) = MemPipe::pair();
    let item = SendItem::prepare(&path, false).unwrap();
    assert!(
        matches!(item.offer(), Offer::File { ref filename, filesize: 3_000_001 } if filename == "data.bin")
    );
    let sent = Arc::new(AtomicU64::new(0));
    let sent2 = sent.clone();
    let sopts = SendOptions {
        progress: Some(Arc::new(move |d, _| sent2.store(d, Ordering::SeqCst))),
        ..Default::default()
    };
    let s = tokio::spawn(async move { send_item(&*a, &item, sopts).await });
    let mut seen = None;
    let got = receive(&*b, opts_in(dst.path()), |info| {
        seen = Some(info.clone());
        Decision::Accept
    })
    .await
    .unwrap();
    let report = s.await.unwrap().unwrap();
    let want: [u8; 32] = sha2::Sha256::digest(&data).into();
    assert_eq!(report.sha256, want);
    assert_eq!(sent.load(Ordering::SeqCst), 3_000_001);
    let info = seen.unwrap();
    assert_eq!(info.destination.path, dst.path().join("data.bin"));
    assert!(!info.destination.overwrite);
    assert_eq!(
        got,
        Received::File {
            path: dst.path().join("data.bin"),
            bytes: 3_000_001,
            sha256: want
        }
    );
    assert_eq!(std::fs::read(dst.path().join("data.bin")).unwrap(), data);
    assert_eq!(tree(dst.path()), ["data.bin"], "no temporary files left");
}

#[tokio::test]
async fn empty_file_sends_no_records() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("empty"), b"").unwrap();
    let (a, b) = MemPipe::pair();
    let item = SendItem::prepare(&src.path().join("empty"), false).unwrap();
    let s = tokio::spawn(async move { send_item(&*a, &item, SendOptions::default()).await });
    receive(&*b, opts_in(dst.path()), |_| Decision::Accept)
        .await
        .unwrap();
    s.await.unwrap().unwrap();
    assert_eq!(std::fs::read(dst.path().join("empty")).unwrap(), b"");
}

#[tokio::test]
async fn directory_roundtrip() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("photos");
    std::fs::create_dir_all(root.join("2024/jan")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("a.txt"), b"alpha").unwrap();
    std::fs::write(root.join("2024/jan/b.raw"), vec![9u8; 250_000]).unwrap();
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (a, b) = MemPipe::pair();
    let item = SendItem::prepare(&root, false).unwrap();
    let Offer::Directory(d) = item.offer() else {
        panic!()
    };
    assert_eq!(
        (d.dirname.as_str(), d.numfiles, d.numbytes, d.mode.as_str()),
        ("photos", 3, 250_015, "zipfile/deflated")
    );
    let s = tokio::spawn(async move { send_item(&*a, &item, SendOptions::default()).await });
    let got = receive(&*b, opts_in(dst.path()), |_| Decision::Accept)
        .await
        .unwrap();
    s.await.unwrap().unwrap();
    assert_eq!(
        got,
        Received::Directory {
            path: dst.path().join("photos"),
            files: 3,
            bytes: 250_015
        }
    );
    assert_eq!(
        tree(dst.path()),
        [
            "photos",
            "photos/2024",
            "photos/2024/jan",
            "photos/2024/jan/b.raw",
            "photos/a.txt",
            "photos/empty",
            "photos/run.sh"
        ]
    );
    let mode = std::fs::metadata(dst.path().join("photos/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read(dst.path().join("photos/2024/jan/b.raw")).unwrap(),
        vec![9u8; 250_000]
    );
}

/// A scripted sender offering a real DEFLATE zip, as wormhole-william does.
#[tokio::test]
async fn receives_deflated_zip_like_go() {
    require_netns();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    w.start_file("x/y.txt", o).unwrap();
    w.write_all(&[b'z'; 10_000]).unwrap();
    let zipped = w.finish().unwrap().into_inner();
    let dst = tempfile::tempdir().unwrap();
    let (peer, b) = MemPipe::pair();
    let zsize = zipped.len() as u64;
    let script = tokio::spawn(async move {
        peer.send_msg(&AppMsg::Transit(TransitMsg::new(vec![]))).await;
        let offer = DirectoryOffer {
            mode: "zipfile/deflated".into(),
            dirname: "godir".into(),
            zipsize: zsize,
            numbytes: 10_000,
            numfiles: 1,
        };
        peer.send_msg(&AppMsg::Offer(Offer::Directory(offer))).await;
        let AppMsg::Transit(their) = peer.recv_msg().await else {
            panic!()
        };
        assert!(matches!(peer.recv_msg().await, AppMsg::Answer(_)));
        let mut t = RawTransit::dial(&their, &peer.transit_keys(), Role::Sender).await;
        for c in zipped.chunks(16368) {
            t.send_record(c).await;
        }
        let ack = FinalAck::parse(&t.recv_record().await).unwrap();
        assert_eq!(ack.sha256.unwrap(), hex::encode(sha2::Sha256::digest(&zipped)));
    });
    let got = receive(&*b, opts_in(dst.path()), |_| Decision::Accept)
        .await
        .unwrap();
    script.await.unwrap();
    assert!(matches!(
        got,
        Received::Directory {
            files: 1,
            bytes: 10_000,
            ..
        }
    ));
    assert_eq!(
        std::fs::read(dst.path().join("godir/x/y.txt")).unwrap(),
        vec![b'z'; 10_000]
    );
}

#[tokio::test]
async fn rejection_and_existing_target_are_answered() {
    require_netns();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"new").unwrap();
    // 1. the caller declines
    let (a, b) = MemPipe::pair();
    let item = SendItem::prepare(&src.path().join("f"), false).unwrap();
    let it = item.clone();
    let s = tokio::spawn(async move { send_item(&*a, &it, SendOptions::default()).await });
    let e = receive(&*b, opts_in(dst.path()), |_| Decision::Reject)
        .await
        .unwrap_err();
    assert!(matches!(e, TransferError::Rejected));
    let se = s.await.unwrap().unwrap_err();
    assert_eq!(se.to_string(), "peer reported an error: transfer rejected");
    // 2. the target exists: refused without asking, old content untouched
    std::fs::write(dst.path().join("f"), b"old").unwrap();
    let (a, b) = MemPipe::pair();
    let s = tokio::spawn(async move { send_item(&*a, &item, SendOptions::default()).await });
    let e = receive(&*b, opts_in(dst.path()), |_| panic!("must not ask"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    assert!(s.await.unwrap().is_err());
    assert_eq!(std::fs::read(dst.path().join("f")).unwrap(), b"old");
    // 3. -o naming it explicitly replaces it
    let item = SendItem::prepare(&src.path().join("f"), false).unwrap();
    let (a, b) = MemPipe::pair();
    let s = tokio::spawn(async move { send_item(&*a, &item, SendOptions::default()).await });
    let o = ReceiveOptions {
        output: Some("f".into()),
        ..opts_in(dst.path())
    };
    receive(&*b, o, |i| {
        assert!(i.destination.overwrite);
        Decision::Accept
    })
    .await
    .unwrap();
    s.await.unwrap().unwrap();
    assert_eq!(std::fs::read(dst.path().join("f")).unwrap(), b"new");
    assert_eq!(tree(dst.path()), ["f"]);
}

/// Record sizes other than ours (1 byte, larger than a socket read, Go's 16368) and split writes.
#[tokio::test]
async fn receives_any_record_sizes() {
    require_netns();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let dst = tempfile::tempdir().unwrap();
    let (peer, b) = MemPipe::pair();
    let d2 = data.clone();
    let script = tokio::spawn(async move {
        peer.send_msg(&AppMsg::Transit(TransitMsg::new(vec![]))).await;
        peer.send_msg(&AppMsg::Offer(Offer::File {
            filename: "odd".into(),
            filesize: 300_000,
        }))
        .await;
        let AppMsg::Transit(their) = peer.recv_msg().await else {
            panic!()
        };
        assert!(matches!(peer.recv_msg().await, AppMsg::Answer(_)));
        let mut t = RawTransit::dial(&their, &peer.transit_keys(), Role::Sender).await;
        let mut at = 0;
        for size in [1usize, 200_000, 16_368, 7, 0, 83_624] {
            let rec = t.sealer.seal(&d2[at..at + size]).unwrap();
            // dribble the record out in uneven pieces
            for piece in rec.chunks(40_000 + size % 3) {
                t.raw(piece).await;
                tokio::task::yield_now().await;
            }
            at += size;
        }
        assert_eq!(at, 300_000);
        let ack = FinalAck::parse(&t.recv_record().await).unwrap();
        assert_eq!(ack.ack, "ok");
    });
    let got = receive(&*b, opts_in(dst.path()), |_| Decision::Accept)
        .await
        .unwrap();
    script.await.unwrap();
    assert!(matches!(got, Received::File { bytes: 300_000, .. }));
    assert_eq!(std::fs::read(dst.path().join("odd")).unwrap(), data);
}
