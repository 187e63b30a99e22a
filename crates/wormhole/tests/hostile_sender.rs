//! A hostile sender against our receiver (and a hostile receiver against our sender): a scripted
//! peer speaks the wormhole messages in memory and the transit protocol by hand over loopback,
//! and lies. Every case must end in a clear error (path tricks and escapes in names included), with
//! nothing written outside the target directory and no temporary
//! files left behind. Run inside scripts/netns-run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod transfer_support;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use sha2::Digest;
use transfer_support::*;
use wormhole::transfer::*;
use wormhole_proto::transfer::{Answer, AppMsg, DirectoryOffer, FinalAck, Offer};
use wormhole_proto::transit::{Role, TransitMsg};

struct Outcome {
    result: Result<Received, TransferError>,
    /// What the peer got instead of an answer (`{"error": …}`), if anything.
    peer_error: Option<String>,
    /// Everything under the base directory (the target is `target/`).
    tree: Vec<String>,
    /// Keeps the base directory alive until the assertions are done.
    _base: tempfile::TempDir,
}

async fn hostile<F, Fut>(offer: Offer, script: F) -> Outcome
where
    F: FnOnce(RawTransit) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    require_netns();
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let (peer, ours) = MemPipe::pair();
    let peer_task = tokio::spawn(async move {
        peer.send_msg(&AppMsg::Transit(TransitMsg::new(vec![]))).await;
        peer.send_msg(&AppMsg::Offer(offer)).await;
        match peer.recv_msg().await {
            AppMsg::Error(e) => Some(e),
            AppMsg::Transit(t) => {
                assert_eq!(
                    peer.recv_msg().await,
                    AppMsg::Answer(Answer::FileAck("ok".into()))
                );
                let raw = RawTransit::dial(&t, &peer.transit_keys(), Role::Sender).await;
                script(raw).await;
                None
            }
            other => panic!("unexpected {other:?}"),
        }
    });
    let opts = ReceiveOptions {
        cwd: target.clone(),
        ..Default::default()
    };
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        receive(&*ours, opts, |_| Decision::Accept),
    )
    .await
    .expect("receiver must not hang");
    let peer_error = tokio::time::timeout(Duration::from_secs(10), peer_task)
        .await
        .unwrap()
        .unwrap();
    let tree = tree(base.path());
    Outcome {
        result,
        peer_error,
        tree,
        _base: base,
    }
}

fn file_offer(name: &str, size: u64) -> Offer {
    Offer::File {
        filename: name.into(),
        filesize: size,
    }
}

fn dir_offer(zip: &[u8], numbytes: u64, numfiles: u64) -> Offer {
    Offer::Directory(DirectoryOffer {
        mode: "zipfile/deflated".into(),
        dirname: "d".into(),
        zipsize: zip.len() as u64,
        numbytes,
        numfiles,
    })
}

async fn send_all(mut t: RawTransit, data: Vec<u8>) {
    for c in data.chunks(16384) {
        t.send_record(c).await;
    }
    let _ = t.recv_record().await;
}

/// Keep the transit connection open, reading and dropping whatever comes, until the other side
/// closes it (bounded by the caller's hang guards).
async fn hold_until_peer_hangs_up(mut t: RawTransit) {
    use tokio::io::AsyncReadExt;
    let mut sink = Vec::new();
    let _ = t.stream.read_to_end(&mut sink).await;
}

fn err_text(o: &Outcome) -> String {
    match &o.result {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

#[tokio::test]
async fn dotdot_and_absolute_names_are_refused() {
    for name in ["../x", "/etc/x", "..\\..\\x", "a/b/../../../x"] {
        let o = hostile(file_offer(name, 5), |_| async {}).await;
        let e = err_text(&o);
        assert!(e.contains("not a usable file name"), "{name}: {e}");
        assert_eq!(o.peer_error.as_deref(), Some("transfer rejected"), "{name}");
        assert_eq!(o.tree, ["target"], "{name}: nothing written");
    }
}

#[tokio::test]
async fn unusable_names_are_refused() {
    for name in ["..", ".", "", "dir/"] {
        let o = hostile(file_offer(name, 5), |_| async {}).await;
        assert!(
            err_text(&o).contains("not a usable file name"),
            "{name}: {}",
            err_text(&o)
        );
        assert_eq!(o.peer_error.as_deref(), Some("transfer rejected"));
        assert_eq!(o.tree, ["target"]);
    }
}

#[tokio::test]
async fn names_with_escape_sequences_are_refused_and_shown_escaped() {
    let evil = "\x1b]0;pwned\x07evil\x1b[31m\u{202e}gpj.exe";
    let o = hostile(file_offer(evil, 3), |_| async {}).await;
    let e = err_text(&o);
    assert!(e.contains("not a usable file name"), "{e}");
    assert!(!e.chars().any(|c| c.is_control()), "error text is escaped: {e:?}");
    assert!(
        e.contains("\\x1b]0;pwned\\x07evil\\x1b[31m\\u{202e}gpj.exe"),
        "{e}"
    );
    assert_eq!(o.peer_error.as_deref(), Some("transfer rejected"));
    assert_eq!(o.tree, ["target"]);
    let shown = escape_control(evil);
    assert_eq!(shown, "\\x1b]0;pwned\\x07evil\\x1b[31m\\u{202e}gpj.exe");
}

#[tokio::test]
async fn zip_with_traversal_symlink_or_setuid_is_refused() {
    type Entries<'a> = Vec<(&'a str, u32, &'a [u8])>;
    let cases: Vec<(Entries, &str)> = vec![
        (
            vec![("ok.txt", 0o644, b"fine"), ("../../evil", 0o644, b"pwn")],
            "escapes the target",
        ),
        (vec![("/tmp/evil", 0o644, b"pwn")], "absolute"),
        (vec![("link", 0o120777, b"/etc/passwd")], "symlink"),
        (vec![("suid", 0o4755, b"#!/bin/sh")], "setuid"),
        (vec![("sgid", 0o2755, b"#!/bin/sh")], "setuid/setgid"),
    ];
    for (entries, want) in cases {
        let zip = raw_zip(&entries);
        let bytes: u64 = entries.iter().map(|e| e.2.len() as u64).sum();
        let z2 = zip.clone();
        let o = hostile(dir_offer(&zip, bytes, entries.len() as u64), move |t| {
            send_all(t, z2)
        })
        .await;
        let e = err_text(&o);
        assert!(
            e.contains("refusing received directory") && e.contains(want),
            "{e} / {want}"
        );
        assert_eq!(o.tree, ["target"], "nothing extracted, no temporaries: {want}");
    }
}

#[tokio::test]
async fn lying_numbytes_and_numfiles_are_refused() {
    let zip = raw_zip(&[("a", 0o644, &[1u8; 1000]), ("b", 0o644, b"x")]);
    let z = zip.clone();
    let o = hostile(dir_offer(&zip, 100, 2), move |t| send_all(t, z)).await;
    assert!(
        err_text(&o).contains("more than the 100 bytes the offer declared"),
        "{}",
        err_text(&o)
    );
    assert_eq!(o.tree, ["target"]);
    let z = zip.clone();
    let o = hostile(dir_offer(&zip, 1001, 1), move |t| send_all(t, z)).await;
    assert!(
        err_text(&o).contains("more than the 1 files the offer declared"),
        "{}",
        err_text(&o)
    );
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn lying_filesize_more_data_is_refused() {
    // one record bigger than the whole declared file
    let o = hostile(file_offer("f", 100), |mut t| async move {
        t.send_record(&[0u8; 110]).await
    })
    .await;
    assert!(
        err_text(&o).contains("more data than the 100 bytes it declared"),
        "{}",
        err_text(&o)
    );
    assert_eq!(o.tree, ["target"]);
    // two records, the second crossing the declared size
    let o = hostile(file_offer("f", 100), |mut t| async move {
        let mut wire = t.sealer.seal(&[0u8; 60]).unwrap();
        wire.extend(t.sealer.seal(&[0u8; 60]).unwrap());
        t.raw(&wire).await;
    })
    .await;
    assert!(err_text(&o).contains("more data"), "{}", err_text(&o));
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn lying_filesize_less_data_is_refused() {
    let o = hostile(file_offer("f", 100), |mut t| async move {
        t.send_record(&[0u8; 50]).await;
        // then hang up
    })
    .await;
    assert!(err_text(&o).contains("closed"), "{}", err_text(&o));
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn four_gib_length_prefix_is_an_error_not_an_allocation() {
    // The peer sends the prefix and then keeps the connection open until the receiver hangs up:
    // the receiver must refuse on the prefix alone, not wait for the body (that would end only in
    // `hostile`'s hang guard, never with this error).
    let o = hostile(file_offer("f", 1 << 30), |mut t| async move {
        t.raw(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
        hold_until_peer_hangs_up(t).await;
    })
    .await;
    let e = err_text(&o);
    assert!(e.contains("4294967295-byte transit record, over the"), "{e}");
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn replayed_or_forged_records_are_refused() {
    let o = hostile(file_offer("f", 100), |mut t| async move {
        let r = t.sealer.seal(&[0u8; 50]).unwrap();
        t.raw(&r).await;
        t.raw(&r).await; // replay of nonce 0
    })
    .await;
    assert!(err_text(&o).contains("out of order"), "{}", err_text(&o));
    let o = hostile(file_offer("f", 100), |mut t| async move {
        let mut r = t.sealer.seal(&[0u8; 100]).unwrap();
        let last = r.len() - 1;
        r[last] ^= 0x40;
        t.raw(&r).await;
    })
    .await;
    assert!(err_text(&o).contains("failed to decrypt"), "{}", err_text(&o));
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn huge_offer_fails_free_space_check() {
    let o = hostile(file_offer("big", u64::MAX / 4), |_| async {}).await;
    assert!(err_text(&o).contains("not enough free space"), "{}", err_text(&o));
    assert_eq!(o.peer_error.as_deref(), Some("transfer rejected"));
    assert_eq!(o.tree, ["target"]);
}

#[tokio::test]
async fn offer_without_transit_and_unknown_offers() {
    require_netns();
    let dst = tempfile::tempdir().unwrap();
    let (peer, ours) = MemPipe::pair();
    peer.send_msg(&AppMsg::Offer(file_offer("f", 1))).await;
    let e = receive(
        &*ours,
        ReceiveOptions {
            cwd: dst.path().into(),
            ..Default::default()
        },
        |_| Decision::Accept,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("without a transit message"), "{e}");
    assert_eq!(peer.recv_msg().await, AppMsg::Error("transfer rejected".into()));

    let (peer, ours) = MemPipe::pair();
    peer.send_msg(&AppMsg::Offer(Offer::Unknown("tarball".into())))
        .await;
    let e = receive(
        &*ours,
        ReceiveOptions {
            cwd: dst.path().into(),
            ..Default::default()
        },
        |_| Decision::Accept,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::UnknownOffer(ref k) if k == "tarball"));
    assert_eq!(peer.recv_msg().await, AppMsg::Error("unknown offer type".into()));
    assert!(tree(dst.path()).is_empty());
}

/// The other direction: a receiver that acknowledges a wrong hash (or not `ok`).
#[tokio::test]
async fn wrong_hash_from_receiver_fails_the_sender() {
    require_netns();
    for bad_ack in [
        FinalAck {
            ack: "ok".into(),
            sha256: Some("00".repeat(32)),
        },
        FinalAck {
            ack: "nope".into(),
            sha256: None,
        },
    ] {
        let src = tempfile::tempdir().unwrap();
        let path: PathBuf = src.path().join("f.txt");
        std::fs::write(&path, b"some data").unwrap();
        let (ours, peer) = MemPipe::pair();
        let item = SendItem::prepare(&path, false).unwrap();
        let s = tokio::spawn(async move { send_item(&*ours, &item, SendOptions::default()).await });
        let AppMsg::Transit(their) = peer.recv_msg().await else {
            panic!()
        };
        assert!(matches!(peer.recv_msg().await, AppMsg::Offer(_)));
        peer.send_msg(&AppMsg::Answer(Answer::FileAck("ok".into()))).await;
        let mut t = RawTransit::dial(&their, &peer.transit_keys(), Role::Receiver).await;
        let got = t.recv_record().await;
        assert_eq!(got, b"some data");
        assert_eq!(hex::encode(sha2::Sha256::digest(&got)).len(), 64);
        t.send_record(&bad_ack.to_bytes()).await;
        let e = s.await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains("hash mismatch") || e.contains("did not acknowledge"),
            "{e}"
        );
    }
}

/// A zip with arbitrary names and mode bits (built with our streaming writer, which writes
/// whatever it is given).
fn raw_zip(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    use std::io::Read;
    use wormhole::transfer::zip_out::{ZipEntry, ZipPlan, ZipStream};
    let d = tempfile::tempdir().unwrap();
    let mut plan = ZipPlan {
        entries: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, (name, mode, data)) in entries.iter().enumerate() {
        let src = d.path().join(i.to_string());
        std::fs::write(&src, data).unwrap();
        plan.entries.push(ZipEntry {
            name: name.to_string(),
            source: Some(src),
            size: data.len() as u64,
            mode: *mode,
            mtime: 0,
        });
    }
    let mut out = Vec::new();
    ZipStream::new(plan).read_to_end(&mut out).unwrap();
    out
}
