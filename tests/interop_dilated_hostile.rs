//! A hostile sender speaking transfer-v2 (scripted here over our Dilation API) against our
//! `wormhole receive`: traversal names, a directory whose files exceed its declared size, a
//! resume offset beyond what the receiver holds, a data record over the size limit, data after
//! the end of an offer, bundles of small files that break the same rules or nest. Each is
//! refused with a clear message and nothing is written outside the target directory (nor left
//! inside it). Also two library sessions in `connect` mode, each offering a file to the other at
//! once, and a library sender without the `bundle` feature (as an earlier version of ours) whose
//! small files our receiver takes record by record.
//!
//! Runs inside `scripts/netns-run`; needs `cargo build -p wormhole-cli -p wormhole-server`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use blake2::Digest;
use wormhole::Wormhole;
use wormhole::dilation::{Dilated, DilationOptions, Subchannel};
use wormhole::transfer::dilated::{self, Features, Incoming, Mode, OfferItem, SessionOptions};
use wormhole_interop::*;
use wormhole_proto::dilated_transfer::msg::Hash32;
use wormhole_proto::dilated_transfer::{
    DataStart, DirectoryOffer, FileAck, FileOffer, Record, SUBPROTOCOL_CONTROL, SUBPROTOCOL_OFFER,
};

const APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The hostile side, dilated, with its offer subchannel open.
struct Hostile {
    _w: Wormhole,
    _d: Dilated,
    _control: Subchannel,
    sub: Subchannel,
}

async fn hostile(url: &str, code: &str) -> Hostile {
    let w = Wormhole::create(APPID, url, dilated::wormhole_options(Mode::Send, Features::all()));
    w.set_code(code).await.unwrap();
    w.get_verifier().await.unwrap();
    let d = w.dilate(DilationOptions::default()).await.unwrap();
    let _listen = d.listen(SUBPROTOCOL_CONTROL).await.unwrap();
    let control = d.open(SUBPROTOCOL_CONTROL).await.unwrap();
    let sub = d.open(SUBPROTOCOL_OFFER).await.unwrap();
    Hostile {
        _w: w,
        _d: d,
        _control: control,
        sub,
    }
}

async fn put(sub: &mut Subchannel, r: Record) {
    // The receiver may already have given up: later writes may fail.
    let _ = sub.send_record(r.encode()).await;
}

async fn get(sub: &mut Subchannel) -> Option<Record> {
    let r = tokio::time::timeout(Duration::from_secs(60), sub.recv_record())
        .await
        .ok()?
        .ok()??;
    Record::decode(&r).ok()
}

fn file_offer(name: &str, bytes: u64) -> Record {
    Record::FileOffer(FileOffer {
        filename: name.into(),
        timestamp: 0,
        bytes,
        stream: false,
    })
}

fn ack_of(data: &[u8]) -> Record {
    let blake = blake2::Blake2b::<blake2::digest::consts::U32>::digest(data);
    let sha = sha2::Sha256::digest(data);
    Record::FileAck(FileAck {
        bytes: data.len() as u64,
        hash: Hash32(blake.into()),
        sha256: Some(Hash32(sha.into())),
    })
}

/// Our `wormhole receive --accept-file` of `code`, in `dir`.
fn our_receiver(server: &MailboxServer, code: &str, dir: &Path) -> RunningPeer {
    PeerCommand::new(our_bin("wormhole"))
        .name("our receiver")
        .args([
            "--relay-url",
            server.url(),
            "receive",
            "--accept-file",
            "--hide-progress",
        ])
        .arg(code)
        .current_dir(dir)
        .timeout(Duration::from_secs(120))
        .spawn()
}

/// A library session of ours: `mode` with `features` against a peer in `peer_mode`, offering
/// `items`, receiving into `cwd` (every offer accepted); its report once the wormhole closed.
async fn library_session(
    (url, code): (&str, &str),
    (mode, peer_mode, features): (Mode, Mode, Features),
    cwd: &Path,
    items: Vec<OfferItem>,
) -> dilated::SessionReport {
    let w = Wormhole::create(APPID, url, dilated::wormhole_options(mode, features));
    w.set_code(code).await.unwrap();
    w.get_verifier().await.unwrap();
    let peer = dilated::peer_transfer(&w.get_versions().await.unwrap(), features)
        .expect("the peer speaks transfer-v2");
    assert_eq!(peer.mode, peer_mode);
    let opts = SessionOptions {
        mode,
        features,
        dilation: DilationOptions::default(),
        cwd: cwd.to_owned(),
        output: None,
        events: None,
        peer_gone_after: None,
    };
    let report = dilated::run_session(&w, peer, opts, items, async |_: &Incoming| true)
        .await
        .unwrap();
    w.close().await.unwrap();
    report
}

/// One file of a directory offer: its header, its data in one record, its ack.
fn whole_file(name: &str, data: &[u8]) -> [Record; 3] {
    [
        file_offer(name, data.len() as u64),
        Record::Data(data.to_vec().into()),
        ack_of(data),
    ]
}

/// Runs our receiver in `outer/dst` against `script`; returns its output. Afterwards `outer`
/// must hold only `dst`, and `dst` only what `keep` names.
fn against<F, Fut>(prepare: impl FnOnce(&Path), script: F, keep: &[&str]) -> PeerOutput
where
    F: FnOnce(Hostile) -> Fut,
    Fut: std::future::Future<Output = Hostile>,
{
    require_netns();
    let outer = tempfile::tempdir().unwrap();
    let dst = outer.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    prepare(&dst);
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let r = our_receiver(&server, &code, &dst);
    let rt = rt();
    let h = rt.block_on(async { script(hostile(server.url(), &code).await).await });
    let out = r.wait();
    drop(h);
    drop(rt);
    let outside: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("dst")], "written outside");
    let mut inside: Vec<String> = std::fs::read_dir(&dst)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, keep, "left in the target:\n{out}");
    assert!(!out.success(), "the receiver must fail:\n{out}");
    eprintln!("receiver: {}", out.stderr.lines().last().unwrap_or(""));
    out
}

#[test]
fn traversal_names_are_refused() {
    for name in ["../evil", "/tmp/evil", "..", "a/b", "x\u{1b}[2J"] {
        let out = against(
            |_| {},
            |mut h| async move {
                put(&mut h.sub, file_offer(name, 4)).await;
                let answer = get(&mut h.sub).await;
                assert!(matches!(answer, Some(Record::Reject(_))), "{answer:?}");
                h
            },
            &[],
        );
        assert!(out.stderr.contains("unsafe name"), "{name:?}:\n{out}");
    }
    let out = against(
        |_| {},
        |mut h| async move {
            let offer = DirectoryOffer {
                base: "d".into(),
                size: 4,
                files: vec![vec!["ok".into(), "..".into(), "..".into(), "evil".into()]],
                directories: vec![],
            };
            put(&mut h.sub, Record::DirectoryOffer(offer)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Reject(_))));
            h
        },
        &[],
    );
    assert!(out.stderr.contains("unsafe name \"..\""), "{out}");
}

#[test]
fn directory_files_exceeding_the_declared_size_are_refused() {
    let out = against(
        |_| {},
        |mut h| async move {
            put(&mut h.sub, two_file_dir(10)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Accept(_))));
            for r in whole_file("a", b"aaaaaa") {
                put(&mut h.sub, r).await;
            }
            put(&mut h.sub, file_offer("b", 6)).await;
            put(&mut h.sub, Record::Data(b"bbbbbb".to_vec().into())).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(out.stderr.contains(EXCEEDS_10), "{out}");
}

/// How our receiver refuses files beyond a directory offer's declared 10 bytes.
const EXCEEDS_10: &str = "exceed the 10 bytes its directory offer declared";

/// A bundle (feature `bundle`) of `records`.
fn bundle(records: &[Record]) -> Record {
    Record::Bundle(records.iter().map(|r| r.encode().into()).collect())
}

fn two_file_dir(size: u64) -> Record {
    Record::DirectoryOffer(DirectoryOffer {
        base: "d".into(),
        size,
        files: vec![vec!["a".into()], vec!["b".into()]],
        directories: vec![],
    })
}

#[test]
fn files_in_a_bundle_exceeding_the_declared_size_are_refused() {
    let out = against(
        |_| {},
        |mut h| async move {
            put(&mut h.sub, two_file_dir(10)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Accept(_))));
            let both = [whole_file("a", b"aaaaaa"), whole_file("b", b"bbbbbb")].concat();
            put(&mut h.sub, bundle(&both)).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(out.stderr.contains(EXCEEDS_10), "{out}");
}

#[test]
fn nested_bundles_are_refused() {
    let out = against(
        |_| {},
        |mut h| async move {
            put(&mut h.sub, two_file_dir(2)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Accept(_))));
            let a = bundle(&whole_file("a", b"a"));
            put(&mut h.sub, bundle(&[a])).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(out.stderr.contains("bundles do not nest"), "{out}");
}

#[test]
fn a_resume_offset_beyond_what_the_receiver_holds_is_refused() {
    let out = against(
        |dst| std::fs::write(dst.join(".r.bin.wormhole-partial"), vec![1u8; 500]).unwrap(),
        |mut h| async move {
            put(&mut h.sub, file_offer("r.bin", 1000)).await;
            match get(&mut h.sub).await {
                Some(Record::Accept(a)) => assert_eq!(a.resume.unwrap().bytes, 500),
                other => panic!("{other:?}"),
            }
            put(&mut h.sub, Record::DataStart(DataStart { offset: 800 })).await;
            put(&mut h.sub, Record::Data(vec![2u8; 200].into())).await;
            let _ = get(&mut h.sub).await;
            h
        },
        // The partial file is the receiver's own and stays for a later, honest resume.
        &[".r.bin.wormhole-partial"],
    );
    assert!(
        out.stderr.contains("resumes at byte 800, but we hold 500"),
        "{out}"
    );
}

#[test]
fn a_resume_claim_is_never_made_for_a_shorter_offer() {
    // The partial file is longer than the file now offered: no claim; data starts at 0.
    let out = against(
        |dst| std::fs::write(dst.join(".s.bin.wormhole-partial"), vec![1u8; 500]).unwrap(),
        |mut h| async move {
            put(&mut h.sub, file_offer("s.bin", 100)).await;
            match get(&mut h.sub).await {
                Some(Record::Accept(a)) => assert_eq!(a.resume, None),
                other => panic!("{other:?}"),
            }
            // A hostile sender pretends to resume anyway.
            put(&mut h.sub, Record::DataStart(DataStart { offset: 500 })).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(out.stderr.contains("kind 7"), "{out}");
}

#[test]
fn records_over_the_size_limit_are_refused() {
    let out = against(
        |_| {},
        |mut h| async move {
            put(&mut h.sub, file_offer("big.bin", 1 << 20)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Accept(_))));
            put(&mut h.sub, Record::Data(vec![0u8; 65536].into())).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(
        out.stderr.contains("65537 bytes, over the limit of 65536 bytes"),
        "{out}"
    );
}

#[test]
fn data_after_the_end_of_an_offer_is_refused() {
    let out = against(
        |_| {},
        |mut h| async move {
            put(&mut h.sub, file_offer("end.bin", 3)).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::Accept(_))));
            put(&mut h.sub, Record::Data(b"abc".to_vec().into())).await;
            put(&mut h.sub, ack_of(b"abc")).await;
            assert!(matches!(get(&mut h.sub).await, Some(Record::FileAck(_))));
            put(&mut h.sub, Record::Data(b"more".to_vec().into())).await;
            let _ = get(&mut h.sub).await;
            h
        },
        &[],
    );
    assert!(out.stderr.contains("after the end of its offer"), "{out}");
}

#[test]
fn both_sides_offer_in_connect_mode() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a_sha = write_test_file(a_dir.path().join("from-a.bin"), 300_000, 21);
    let b_sha = write_test_file(b_dir.path().join("from-b.bin"), 200_000, 22);
    let rt = rt();
    let side = |dir: &Path, file: &str, code: String| {
        let url = server.url().to_owned();
        let dir = dir.to_owned();
        let file = dir.join(file);
        async move {
            let items = vec![OfferItem::prepare(&file, false).unwrap()];
            let modes = (Mode::Connect, Mode::Connect, Features::all());
            library_session((&url, &code), modes, &dir, items).await
        }
    };
    let (ra, rb) = rt.block_on(async {
        tokio::join!(
            side(a_dir.path(), "from-a.bin", code.clone()),
            side(b_dir.path(), "from-b.bin", code.clone())
        )
    });
    assert_eq!(ra.written.len(), 1);
    assert_eq!(rb.written.len(), 1);
    assert_eq!(ra.bytes_sent, 300_000);
    assert_eq!(rb.bytes_sent, 200_000);
    assert_eq!(sha256_file(b_dir.path().join("from-a.bin")), a_sha);
    assert_eq!(sha256_file(a_dir.path().join("from-b.bin")), b_sha);
}

#[test]
fn a_sender_without_bundles_is_answered_record_by_record() {
    require_netns();
    let server = start_our_mailbox(&[]);
    let code = unique_code();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let tree = src.path().join("small");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..50u32 {
        std::fs::write(tree.join(format!("f{i}")), i.to_string().repeat(i as usize)).unwrap();
    }
    let r = our_receiver(&server, &code, dst.path());
    let features = Features {
        bundle: false,
        ..Features::all()
    };
    // Each file goes record by record, and each ack comes back alone (kind 8 would be a
    // protocol error here: it was not negotiated).
    let items = vec![OfferItem::prepare(&tree, false).unwrap()];
    let modes = (Mode::Send, Mode::Receive, features);
    let report = rt().block_on(library_session((server.url(), &code), modes, src.path(), items));
    let out = r.wait();
    out.assert_success();
    assert_eq!(
        report.bytes_sent,
        (0..50u64).map(|i| i * i.to_string().len() as u64).sum::<u64>()
    );
    assert_eq!(dir_tree(dst.path().join("small")), dir_tree(&tree));
}
