//! The public `Wormhole` API end to end against our own mailbox server (in process, on
//! 127.0.0.1:0, in-memory channel DB): both API modes, input helper, errors, timing dump.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tokio::time::timeout;
use wormhole::{Event, Mood, Timing, Wormhole, WormholeError, WormholeOptions};
use wormhole_server::{MailboxArgs, MailboxServer, bind};

const APPID: &str = "example.com/wormhole-api-test";
const T: Duration = Duration::from_secs(20);

async fn server(tweak: impl FnOnce(&mut MailboxArgs)) -> String {
    let mut args = MailboxArgs::defaults();
    args.listen = "127.0.0.1:0".into();
    args.channel_db = ":memory:".into();
    tweak(&mut args);
    let srv = MailboxServer::start(&args).unwrap();
    let listener = bind(&args.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(srv.serve(listener));
    format!("ws://{addr}/v1")
}

/// Wait until `timing` has recorded a received server message of type `ty` (callers bound it).
async fn received(timing: &Timing, ty: &str) {
    while !timing
        .events()
        .iter()
        .any(|e| e.name == "ws_receive" && e.details.get("message").is_some_and(|m| m["type"] == ty))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn opts(versions: serde_json::Value) -> WormholeOptions {
    WormholeOptions {
        versions,
        ..WormholeOptions::default()
    }
}

#[tokio::test]
async fn awaiting_mode_full_exchange() {
    let url = server(|a| a.motd = Some("hello motd".into())).await;
    let timing = Timing::new();
    let a = Wormhole::create(
        APPID,
        &url,
        WormholeOptions {
            versions: json!({"who": "a"}),
            timing: Some(timing.clone()),
            ..Default::default()
        },
    );
    let b = Wormhole::create(APPID, &url, opts(json!({"who": "b"})));
    assert_eq!(a.derive_key("x", 32), Err(WormholeError::NoKey));
    assert_eq!(a.get_welcome().await.unwrap().motd.as_deref(), Some("hello motd"));
    a.allocate_code(2).await.unwrap();
    let code = timeout(T, a.get_code()).await.unwrap().unwrap();
    assert_eq!(a.allocate_code(2).await, Err(WormholeError::OnlyOneCode));
    b.set_code(&code).await.unwrap();
    assert_eq!(b.get_code().await.unwrap(), code);

    // Send before verification (queued), receive concurrently.
    for i in 0..3 {
        a.send_message(format!("a{i}").into_bytes()).await.unwrap();
    }
    let (va, vb) = tokio::join!(a.get_verifier(), b.get_verifier());
    assert_eq!(va.unwrap(), vb.unwrap());
    assert_eq!(
        a.get_unverified_key().await.unwrap(),
        b.get_unverified_key().await.unwrap()
    );
    assert_eq!(a.get_versions().await.unwrap(), json!({"who": "b"}));
    assert_eq!(b.get_versions().await.unwrap(), json!({"who": "a"}));
    let recv_b = async {
        let mut got = vec![];
        for _ in 0..3 {
            got.push(String::from_utf8(b.get_message().await.unwrap()).unwrap());
        }
        got
    };
    let send_b = async {
        for i in 0..3 {
            b.send_message(format!("b{i}").into_bytes()).await.unwrap();
        }
    };
    let (got_b, ()) = timeout(T, async { tokio::join!(recv_b, send_b) }).await.unwrap();
    assert_eq!(got_b, ["a0", "a1", "a2"]);
    for i in 0..3 {
        assert_eq!(a.get_message().await.unwrap(), format!("b{i}").into_bytes());
    }
    let ka = a.derive_key("purpose", 17).unwrap();
    assert_eq!(ka.len(), 17);
    assert_eq!(ka, b.derive_key("purpose", 17).unwrap());
    let (ca, cb) = tokio::join!(a.close(), b.close());
    assert_eq!(ca, Ok(Mood::Happy));
    assert_eq!(cb, Ok(Mood::Happy));
    assert_eq!(a.close().await, Ok(Mood::Happy), "close is idempotent");
    assert_eq!(a.get_message().await, Err(WormholeError::Closed));
    assert_eq!(a.send_message(vec![1]).await, Err(WormholeError::Closed));

    let dump = timing.to_json();
    let names: Vec<_> = dump
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.iter().any(|n| n == "ws_send") && names.iter().any(|n| n == "ws_receive"));
    // The first thing sent is the bind (it now waits for the welcome, which may ask for a
    // proof of work, so a ws_receive can come first).
    let first_send = dump
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ws_send")
        .unwrap();
    assert_eq!(first_send["details"]["type"], "bind");
    assert_eq!(first_send["details"]["_side"], a.side());
    let dir = tempfile::tempdir().unwrap();
    timing.write(&dir.path().join("t.json")).unwrap();
    let back: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("t.json")).unwrap()).unwrap();
    assert_eq!(back.as_array().unwrap().len(), dump.as_array().unwrap().len());
    assert_eq!(back[0]["details"], dump[0]["details"]);
}

#[tokio::test]
async fn delegated_mode_events_in_order() {
    let url = server(|_| {}).await;
    let (a, mut ea) = Wormhole::create_delegated(APPID, &url, opts(json!({})));
    let (b, mut eb) = Wormhole::create_delegated(APPID, &url, opts(json!({"v": 1})));
    a.set_code("77-delegated-mode").await.unwrap();
    b.set_code("77-delegated-mode").await.unwrap();
    a.send_message(b"ping".to_vec()).await.unwrap();
    let mut seen = vec![];
    while let Some(ev) = timeout(T, eb.recv()).await.unwrap() {
        match &ev {
            Event::Message(m) => {
                assert_eq!(m, b"ping");
                b.send_message(b"pong".to_vec()).await.unwrap();
                seen.push("message");
                break;
            }
            Event::Welcome(_) => seen.push("welcome"),
            Event::Code(_) => seen.push("code"),
            Event::Key(_) => seen.push("key"),
            Event::Verifier(_) => seen.push("verifier"),
            Event::Versions(v) => {
                assert_eq!(v, &json!({}));
                seen.push("versions");
            }
            Event::Closed(r) => panic!("closed early: {r:?}"),
            _ => {}
        }
    }
    assert!(seen.contains(&"code") && seen.contains(&"welcome"), "{seen:?}");
    assert!(seen.contains(&"key") && seen.contains(&"verifier"));
    let pos = |name: &str| seen.iter().position(|s| *s == name).unwrap();
    assert!(pos("key") < pos("verifier"));
    assert!(pos("verifier") < pos("versions"));
    assert!(pos("versions") < pos("message"));
    loop {
        match timeout(T, ea.recv()).await.unwrap().unwrap() {
            Event::Message(m) => {
                assert_eq!(m, b"pong");
                break;
            }
            Event::Closed(r) => panic!("closed early: {r:?}"),
            _ => {}
        }
    }
    assert_eq!(
        a.get_message().await,
        Err(WormholeError::Closed),
        "delegated: messages go to events"
    );
    let (ca, cb) = tokio::join!(a.close(), b.close());
    assert_eq!((ca, cb), (Ok(Mood::Happy), Ok(Mood::Happy)));
    let mut last = None;
    while let Some(ev) = ea.recv().await {
        last = Some(ev);
    }
    assert_eq!(last, Some(Event::Closed(Ok(Mood::Happy))));
}

#[tokio::test]
async fn wrong_code_both_sides() {
    let url = server(|_| {}).await;
    let a = Wormhole::create(APPID, &url, opts(json!({})));
    let b = Wormhole::create(APPID, &url, opts(json!({})));
    a.set_code("5-purple-sausages").await.unwrap();
    b.set_code("5-purple-sausagez").await.unwrap();
    let (va, vb) = timeout(T, async { tokio::join!(a.get_verifier(), b.get_verifier()) })
        .await
        .unwrap();
    assert_eq!(va, Err(WormholeError::WrongPassword));
    assert_eq!(vb, Err(WormholeError::WrongPassword));
    assert_eq!(a.close().await, Err(WormholeError::WrongPassword));
    assert_eq!(b.get_message().await, Err(WormholeError::WrongPassword));
}

#[tokio::test]
async fn lonely_close() {
    let url = server(|_| {}).await;
    let a = Wormhole::create(APPID, &url, opts(json!({})));
    a.allocate_code(2).await.unwrap();
    a.get_code().await.unwrap();
    assert_eq!(timeout(T, a.close()).await.unwrap(), Err(WormholeError::Lonely));
}

#[tokio::test]
async fn welcome_error() {
    let url = server(|a| a.signal_error = Some("go away".into())).await;
    let a = Wormhole::create(APPID, &url, opts(json!({})));
    a.set_code("3-a-b").await.unwrap();
    let e = timeout(T, a.get_verifier()).await.unwrap();
    assert_eq!(e, Err(WormholeError::Welcome("go away".into())));
    assert_eq!(a.close().await, Err(WormholeError::Welcome("go away".into())));
}

#[tokio::test]
async fn first_connection_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a = Wormhole::create(APPID, &format!("ws://127.0.0.1:{port}/v1"), opts(json!({})));
    let e = timeout(T, a.get_welcome()).await.unwrap();
    assert!(matches!(e, Err(WormholeError::ServerConnection(_))), "{e:?}");
    assert!(matches!(a.close().await, Err(WormholeError::ServerConnection(_))));
}

#[tokio::test]
async fn input_code_helper() {
    let url = server(|_| {}).await;
    let a = Wormhole::create(APPID, &url, opts(json!({})));
    let b = Wormhole::create(APPID, &url, opts(json!({})));
    a.allocate_code(2).await.unwrap();
    let code = a.get_code().await.unwrap();
    let (np, words) = code.split_once('-').unwrap();
    let h = b.input_code().await.unwrap();
    assert_eq!(b.set_code("1-a").await, Err(WormholeError::OnlyOneCode));
    assert_eq!(
        h.get_word_completions("pu"),
        Err(WormholeError::MustChooseNameplateFirst)
    );
    assert_eq!(
        h.choose_words("x-y").await,
        Err(WormholeError::MustChooseNameplateFirst)
    );
    h.refresh_nameplates().await.unwrap();
    assert!(
        h.get_nameplate_completions("")
            .unwrap()
            .contains(&format!("{np}-"))
    );
    h.choose_nameplate(np).await.unwrap();
    assert_eq!(
        h.choose_nameplate(np).await,
        Err(WormholeError::AlreadyChoseNameplate)
    );
    assert_eq!(
        h.get_nameplate_completions(""),
        Err(WormholeError::AlreadyChoseNameplate)
    );
    timeout(T, h.when_wordlist_is_available()).await.unwrap().unwrap();
    let first = words.split('-').next().unwrap();
    let comps = h.get_word_completions(&first[..2]).unwrap();
    assert!(comps.contains(&format!("{first}-")), "{comps:?}");
    h.choose_words(words).await.unwrap();
    assert_eq!(h.choose_words(words).await, Err(WormholeError::AlreadyChoseWords));
    assert_eq!(b.get_code().await.unwrap(), code);
    let (va, vb) = tokio::join!(a.get_verifier(), b.get_verifier());
    assert_eq!(va.unwrap(), vb.unwrap());
    assert_eq!(
        tokio::join!(a.close(), b.close()),
        (Ok(Mood::Happy), Ok(Mood::Happy))
    );
}

#[tokio::test]
async fn crowded() {
    let url = server(|_| {}).await;
    let timing_a = Timing::new();
    let ws: Vec<_> = (0..3)
        .map(|i| {
            let timing = (i == 0).then(|| timing_a.clone());
            Wormhole::create(
                APPID,
                &url,
                WormholeOptions {
                    timing,
                    ..opts(json!({}))
                },
            )
        })
        .collect();
    for w in &ws {
        w.get_welcome().await.unwrap();
    }
    // A claims alone (no peer message, so no release) and the server has answered `claimed`. Then
    // B and C claim at once: the later claim is the third side and is refused with `crowded`.
    ws[0].set_code("9-crowded-code").await.unwrap();
    timeout(T, received(&timing_a, "claimed")).await.unwrap();
    ws[1].set_code("9-crowded-code").await.unwrap();
    ws[2].set_code("9-crowded-code").await.unwrap();
    let crowded = Err(WormholeError::Crowded);
    let rb = timeout(T, ws[1].get_verifier()).await.unwrap();
    let rc = timeout(T, ws[2].get_verifier()).await.unwrap();
    assert!(rb == crowded || rc == crowded, "{rb:?} {rc:?}");
    assert!(rb.is_ok() || rb == crowded, "{rb:?}");
    assert!(rc.is_ok() || rc == crowded, "{rc:?}");
    if let Ok(v) = rb.clone().or(rc.clone()) {
        assert_eq!(ws[0].get_verifier().await.unwrap(), v);
    }
    let closed = timeout(T, ws[0].close()).await.unwrap();
    assert!(
        matches!(closed, Ok(Mood::Happy) | Err(WormholeError::Lonely)),
        "{closed:?}"
    );
}

#[test]
fn handle_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wormhole>();
    check::<wormhole::CodeInputHelper>();
    check::<wormhole::Events>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_sends_while_another_receives() {
    use std::sync::Arc;
    let url = server(|_| {}).await;
    let a = Arc::new(Wormhole::create(APPID, &url, opts(json!({}))));
    let b = Arc::new(Wormhole::create(APPID, &url, opts(json!({}))));
    a.set_code("31-two-tasks").await.unwrap();
    b.set_code("31-two-tasks").await.unwrap();
    const N: usize = 50;
    let reader = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..N {
                got.push(b.get_message().await.unwrap());
            }
            got
        })
    };
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..N {
                a.send_message(i.to_string().into_bytes()).await.unwrap();
            }
        })
    };
    writer.await.unwrap();
    let got = timeout(T, reader).await.unwrap().unwrap();
    let want: Vec<Vec<u8>> = (0..N).map(|i| i.to_string().into_bytes()).collect();
    assert_eq!(got, want, "every message once, whole, in order");
    assert_eq!(
        tokio::join!(a.close(), b.close()),
        (Ok(Mood::Happy), Ok(Mood::Happy))
    );
}
