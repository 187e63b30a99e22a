//! Serialization and journal mode (docs/journal.md) against our mailbox server in process:
//! round trips of the JSON form, the checked-in version-1 fixture, every refusal (awaiting mode,
//! dilated, future version, not a state, too large, restored twice: by a foreign echo and by the
//! mailbox audit), a suspend/restore exchange, and the journal's hold rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::timeout;
use wormhole::dilation::DilationOptions;
use wormhole::{
    Checkpoint, Event, Events, Journal, Mood, STATE_VERSION, SerializedWormholeWithKeys, StateError,
    Wormhole, WormholeError, WormholeOptions,
};
use wormhole_server::{MailboxArgs, MailboxServer, bind};

const APPID: &str = "example.com/wormhole-journal-test";
const T: Duration = Duration::from_secs(30);
const FIXTURE_V1: &str = include_str!("fixtures/state_v1.json");

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

fn opts(who: &str) -> WormholeOptions {
    WormholeOptions {
        versions: json!({ "who": who }),
        ..WormholeOptions::default()
    }
}

/// The next event matching `pick`, skipping others; panics on timeout or end of stream.
async fn until<T>(ev: &mut Events, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    loop {
        let e = timeout(T, ev.recv())
            .await
            .expect("event timeout")
            .expect("events ended");
        if let Some(v) = pick(&e) {
            return v;
        }
        if let Event::Closed(r) = &e {
            panic!("closed early: {r:?}");
        }
    }
}

async fn message(ev: &mut Events) -> Vec<u8> {
    until(ev, |e| match e {
        Event::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await
}

async fn closed(ev: &mut Events) -> Result<Mood, WormholeError> {
    loop {
        match timeout(T, ev.recv()).await.expect("event timeout") {
            Some(Event::Closed(r)) => return r,
            Some(_) => {}
            None => panic!("events ended without Closed"),
        }
    }
}

/// Wait until the server echoed everything `w` sent, then suspend it (the mailbox then holds
/// all of it, so the next side may run while this one is gone).
async fn suspend_when_echoed(w: &Wormhole) -> SerializedWormholeWithKeys {
    timeout(T, async {
        while w.serialize().await.unwrap().machine().unechoed() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("echoes within the timeout");
    w.suspend().await.unwrap()
}

/// A allocates and sends `m0` before B exists, then suspends: the state and B's code.
async fn a_sends_and_suspends(url: &str) -> (SerializedWormholeWithKeys, String) {
    let (a, mut aev) = Wormhole::create_delegated(APPID, url, opts("a"));
    a.allocate_code(2).await.unwrap();
    let code = until(&mut aev, |e| match e {
        Event::Code(c) => Some(c.clone()),
        _ => None,
    })
    .await;
    a.send_message(b"m0".to_vec()).await.unwrap();
    let state = suspend_when_echoed(&a).await;
    (state, code)
}

fn restore(s: &SerializedWormholeWithKeys) -> (Wormhole, Events) {
    let text = s.to_json();
    Wormhole::from_serialized(SerializedWormholeWithKeys::from_json(&text).unwrap(), None).unwrap()
}

#[tokio::test]
async fn json_round_trip_and_debug_redacts() {
    let url = server().await;
    let (state, code) = a_sends_and_suspends(&url).await;
    let text = state.to_json();
    let back = SerializedWormholeWithKeys::from_json(&text).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.to_json(), text, "serialization is stable");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], json!(STATE_VERSION));
    assert_eq!(v["format"], json!(wormhole_proto::machine::STATE_FORMAT));
    assert_eq!(back.machine().code(), Some(code.as_str()));
    assert_eq!(back.machine().messages_sent(), 1);
    let dbg = format!("{state:?}");
    assert!(!dbg.contains(&code), "Debug must not show the code: {dbg}");
    let secret = v["machine"]["key"]["pake"]["secret"].as_str().unwrap();
    assert!(!dbg.contains(secret), "Debug must not show the SPAKE2 secret");
}

#[tokio::test]
async fn fixture_v1_keeps_loading() {
    let s = SerializedWormholeWithKeys::from_json(FIXTURE_V1).unwrap();
    assert_eq!(s.version(), 1);
    assert_eq!(s.machine().side(), "0123456789");
    assert_eq!(s.machine().appid(), APPID);
    assert_eq!(s.machine().code(), Some("7-guitarist-revenge"));
    assert_eq!(s.machine().messages_sent(), 1);
    assert!(!s.machine().is_verified());
    // And it restores into a running machine.
    let m = wormhole_proto::machine::Boss::restore(
        s.machine().clone(),
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1)),
    )
    .unwrap();
    assert_eq!(m.code(), Some("7-guitarist-revenge"));
    assert_eq!(m.unechoed_outbound(), 1);
}

#[tokio::test]
async fn refuses_future_version_foreign_text_and_oversize() {
    let mut v: Value = serde_json::from_str(FIXTURE_V1).unwrap();
    v["version"] = json!(2);
    v["machine"]["something_new"] = json!(true);
    assert_eq!(
        SerializedWormholeWithKeys::from_json(&v.to_string()),
        Err(StateError::FutureVersion {
            found: 2,
            supported: 1
        })
    );
    v["format"] = json!("another-program");
    assert!(matches!(
        SerializedWormholeWithKeys::from_json(&v.to_string()),
        Err(StateError::NotAState(_))
    ));
    assert!(matches!(
        SerializedWormholeWithKeys::from_json("[1,2]"),
        Err(StateError::NotAState(_))
    ));
    assert!(matches!(
        SerializedWormholeWithKeys::from_json("not json"),
        Err(StateError::Malformed(_))
    ));
    let mut bad: Value = serde_json::from_str(FIXTURE_V1).unwrap();
    bad["machine"]["key"]["key"] = json!("00");
    assert!(matches!(
        SerializedWormholeWithKeys::from_json(&bad.to_string()),
        Err(StateError::Malformed(_))
    ));
    let big = format!("\"{}\"", "a".repeat(wormhole_proto::machine::MAX_STATE_BYTES));
    assert!(matches!(
        SerializedWormholeWithKeys::from_json(&big),
        Err(StateError::TooLarge { .. })
    ));
}

#[tokio::test]
async fn refuses_awaiting_mode_and_dilated() {
    let url = server().await;
    let w = Wormhole::create(APPID, &url, opts("a"));
    assert_eq!(w.serialize().await, Err(StateError::AwaitingMode));
    assert_eq!(w.suspend().await, Err(StateError::AwaitingMode));
    let (d, _ev) = Wormhole::create_delegated(
        APPID,
        &url,
        WormholeOptions {
            dilation: true,
            ..opts("d")
        },
    );
    assert!(d.serialize().await.is_ok(), "before dilate() it may be saved");
    let _dilated = d.dilate(DilationOptions::default()).await.unwrap();
    assert_eq!(d.serialize().await, Err(StateError::Dilated));
    let journal = Journal::new_sync(|_c| Ok(()));
    assert!(matches!(
        Wormhole::create_journaled(
            APPID,
            &url,
            WormholeOptions {
                dilation: true,
                ..opts("j")
            },
            journal
        ),
        Err(StateError::JournalUnsupported(_))
    ));
}

/// Never online together: A1 allocates and queues m0; B1 sets the code (its pake and version
/// reach the mailbox); A2 is verified and sends version and m0; B2 reads m0 and replies; A3
/// reads the reply and closes; B3 closes. Each session ends with `suspend` (no close).
#[tokio::test]
async fn suspend_restore_exchange() {
    let url = server().await;
    let (a1, code) = a_sends_and_suspends(&url).await;
    let (b, mut bev) = Wormhole::create_delegated(APPID, &url, opts("b"));
    b.set_code(&code).await.unwrap();
    until(&mut bev, |e| matches!(e, Event::Key(_)).then_some(())).await;
    let b1 = suspend_when_echoed(&b).await;
    let (a, mut aev) = restore(&a1);
    assert_eq!(a.get_code().await.unwrap(), code);
    until(&mut aev, |e| matches!(e, Event::Versions(_)).then_some(())).await;
    let a2 = suspend_when_echoed(&a).await;
    assert_eq!(a2.machine().messages_sent(), 1);
    let (b, mut bev) = restore(&b1);
    assert_eq!(message(&mut bev).await, b"m0");
    b.send_message(b"r0".to_vec()).await.unwrap();
    let b2 = suspend_when_echoed(&b).await;
    assert_eq!(b2.machine().messages_received(), 1);
    let (a, mut aev) = restore(&a2);
    assert_eq!(message(&mut aev).await, b"r0");
    assert_eq!(a.get_versions().await.unwrap(), json!({"who": "b"}));
    let verifier = a.get_verifier().await.unwrap();
    assert_eq!(a.close().await, Ok(Mood::Happy));
    let (b, mut bev) = restore(&b2);
    assert_eq!(b.get_verifier().await.unwrap(), verifier);
    assert_eq!(b.close().await, Ok(Mood::Happy));
    assert_eq!(closed(&mut aev).await, Ok(Mood::Happy));
    assert_eq!(closed(&mut bev).await, Ok(Mood::Happy));
}

/// Restoring the same state twice: the second copy finds, in the mailbox, messages of ours
/// that its state never sent (the first copy's version and m0).
#[tokio::test]
async fn restore_twice_refused_by_foreign_echo() {
    let url = server().await;
    let (state, code) = a_sends_and_suspends(&url).await;
    let (b, mut bev) = Wormhole::create_delegated(APPID, &url, opts("b"));
    b.set_code(&code).await.unwrap();
    let (a1, _a1ev) = restore(&state);
    assert_eq!(message(&mut bev).await, b"m0");
    let _ = suspend_when_echoed(&a1).await;
    let (_a2, mut a2ev) = restore(&state);
    match closed(&mut a2ev).await {
        Err(WormholeError::StateReused(why)) => assert!(why.contains("never sent"), "{why}"),
        other => panic!("expected StateReused, got {other:?}"),
    }
}

/// Restoring a state whose mailbox a previous restore closed: the reopened mailbox lacks our
/// earlier messages (the audit after restore).
#[tokio::test]
async fn restore_after_close_refused_by_audit() {
    let url = server().await;
    let (state, code) = a_sends_and_suspends(&url).await;
    let (b, mut bev) = Wormhole::create_delegated(APPID, &url, opts("b"));
    b.set_code(&code).await.unwrap();
    let (a1, mut a1ev) = restore(&state);
    assert_eq!(message(&mut bev).await, b"m0");
    b.send_message(b"r0".to_vec()).await.unwrap();
    assert_eq!(message(&mut a1ev).await, b"r0");
    let echoed = timeout(T, async {
        loop {
            let s = a1.serialize().await.unwrap();
            if s.machine().unechoed() == 0 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(a1.close().await, Ok(Mood::Happy));
    assert_eq!(b.close().await, Ok(Mood::Happy));
    let (_a2, mut a2ev) = restore(&echoed);
    match closed(&mut a2ev).await {
        Err(WormholeError::StateReused(why)) => assert!(why.contains("gone"), "{why}"),
        other => panic!("expected StateReused, got {other:?}"),
    }
}

/// One checkpoint as the test's callback saw it: `messages_sent()` of its state (`None`:
/// closed) and its events.
type Logged = (Option<u64>, Vec<Event>);

/// Journal mode: the reply to `send_message` comes after a checkpoint that counts the message,
/// every event reaches a checkpoint before the stream, and a failing checkpoint ends the
/// wormhole with `Checkpoint` and sends nothing more.
#[tokio::test]
async fn journal_holds_until_checkpoint() {
    let url = server().await;
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let l = log.clone();
    let journal = Journal::new_async(move |c: Checkpoint| {
        let l = l.clone();
        async move {
            tokio::task::yield_now().await;
            l.lock()
                .unwrap()
                .push((c.state.map(|s| s.machine().messages_sent()), c.events));
            Ok(())
        }
    });
    let (a, mut aev) = Wormhole::create_journaled(APPID, &url, opts("a"), journal).unwrap();
    a.allocate_code(2).await.unwrap();
    let code = until(&mut aev, |e| match e {
        Event::Code(c) => Some(c.clone()),
        _ => None,
    })
    .await;
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|(_, evs)| evs.contains(&Event::Code(code.clone()))),
        "the code event was checkpointed before it was delivered"
    );
    a.send_message(b"j0".to_vec()).await.unwrap();
    assert_eq!(log.lock().unwrap().last().unwrap().0, Some(1));
    let (b, mut bev) = Wormhole::create_delegated(APPID, &url, opts("b"));
    b.set_code(&code).await.unwrap();
    assert_eq!(message(&mut bev).await, b"j0");
    b.send_message(b"k0".to_vec()).await.unwrap();
    assert_eq!(message(&mut aev).await, b"k0");
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|(_, evs)| evs.contains(&Event::Message(b"k0".to_vec()))),
        "the message was checkpointed before it was delivered"
    );
    assert_eq!(a.close().await, Ok(Mood::Happy));
    assert_eq!(b.close().await, Ok(Mood::Happy));
    let last = log.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.0, None, "the final checkpoint says: closed");
    assert!(last.1.contains(&Event::Closed(Ok(Mood::Happy))));

    let failing = Journal::new_sync(|_c| Err("disk full".into()));
    let (f, mut fev) = Wormhole::create_journaled(APPID, &url, opts("f"), failing).unwrap();
    let _ = f.allocate_code(2).await;
    match closed(&mut fev).await {
        Err(WormholeError::Checkpoint(why)) => assert!(why.contains("disk full")),
        other => panic!("expected Checkpoint, got {other:?}"),
    }
}

/// Regenerate the fixture (run with `--ignored` and copy the printed JSON): a wormhole with a
/// side fixed by hand, a code set and one queued message.
#[tokio::test]
#[ignore]
async fn print_fixture() {
    let url = server().await;
    let (w, _ev) = Wormhole::create_delegated(APPID, &url, opts("fixture"));
    w.set_code("7-guitarist-revenge").await.unwrap();
    w.send_message(b"hello".to_vec()).await.unwrap();
    let s = w.serialize().await.unwrap();
    let mut v: Value = serde_json::from_str(&s.to_json()).unwrap();
    v["machine"]["side"] = json!("0123456789");
    v["mailbox_url"] = json!("ws://127.0.0.1:4000/v1");
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
}
