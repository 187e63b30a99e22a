//! Journal mode and serialization across processes (docs/journal.md), with `journal-peer`
//! (tests/drivers/journal_peer.rs) as the process that exits or is killed:
//!
//! - offline: two of our sides that are never running at the same time finish an exchange
//!   through the mailbox alone (five sessions, each ending with a suspend), on our mailbox
//!   server and on Python's;
//! - crash: our side in journal mode against a Python 0.24 peer that stays online (either side
//!   allocating the code), SIGKILLed
//!   (by itself, at a chosen checkpoint: before writing it, or after writing it and before
//!   anything it accounts for leaves) at every checkpoint of the exchange in turn, and at random
//!   ones for several seeds; restarted each time from its last checkpoint, the exchange
//!   completes with every message delivered exactly once, in order, on both sides;
//! - crash with Go: our side in journal mode sends a text offer to wormhole-william's `receive`
//!   (which stays online), killed at every checkpoint in turn; Go prints the text once and our
//!   side gets Go's one answer. wormhole-william rejects a second copy of any phase, so this shows
//!   a restored side never re-adds a message the mailbox already holds.
//!
//! Run inside `scripts/netns-run`; needs `cargo build -p wormhole-server` and the Python peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use wormhole_interop::{
    PeerCommand, Peers, PyClient, require_netns, start_our_mailbox, start_python_mailbox,
};

const APPID: &str = "lothar.com/wormhole/interop-journal-test";
/// A safety net for one `journal-peer` run (a run takes well under a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Most runs one exchange may take (the walks need one per checkpoint, about 20).
const MAX_RUNS: usize = 200;

struct Run {
    killed: bool,
    lines: Vec<Value>,
}

async fn journal_peer(state: &Path, url: &str, extra: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_journal-peer"));
    cmd.arg("--state")
        .arg(state)
        .args(["--url", url])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("journal-peer {extra:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("journal-peer runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let killed = out.status.signal() == Some(9);
    assert!(
        killed || out.status.success(),
        "journal-peer {extra:?} failed with {}: {text}",
        out.status
    );
    Run { killed, lines }
}

fn saved(state: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap()
}

fn has(lines: &[Value], want: &Value) -> bool {
    lines.iter().any(|l| l == want)
}

/// One session that must end as `want` says (suspended or closed), not killed.
async fn session(state: &Path, url: &str, args: &[&str], want: Value) -> Vec<Value> {
    let r = journal_peer(state, url, args).await;
    assert!(!r.killed);
    assert!(has(&r.lines, &want), "{args:?}: wanted {want}, got {:?}", r.lines);
    r.lines
}

/// A and B never run at the same time: A1 allocates and queues a0; B1 sets the code (its pake
/// and version reach the mailbox) and queues b0; A2 is verified and sends version and a0; B2
/// reads a0 (b0 goes out); A3 reads b0 and closes; B3 closes.
async fn offline(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let common = |p: &'static str| vec!["--prefix", p, "--send", "1", "--expect", "1"];
    let mut a1 = common("a");
    a1.extend(["--allocate", "--stop-after", "code"]);
    let lines = session(&a, url, &a1, json!({"suspended": true})).await;
    let code = lines
        .iter()
        .find_map(|l| l["code"].as_str())
        .expect("A1 printed the code")
        .to_owned();
    let mut b1 = common("b");
    b1.extend(["--code", &code, "--stop-after", "key"]);
    session(&b, url, &b1, json!({"suspended": true})).await;
    let mut a2 = common("a");
    a2.extend(["--stop-after", "verified"]);
    session(&a, url, &a2, json!({"suspended": true})).await;
    let mut b2 = common("b");
    b2.extend(["--stop-after", "received:1"]);
    let lines = session(&b, url, &b2, json!({"suspended": true})).await;
    assert!(has(&lines, &json!({"received": "a0"})), "{lines:?}");
    let lines = session(&a, url, &common("a"), json!({"closed": "happy"})).await;
    assert!(has(&lines, &json!({"received": "b0"})), "{lines:?}");
    session(&b, url, &common("b"), json!({"closed": "happy"})).await;
    assert_eq!(saved(&a)["received"], json!(["b0"]));
    assert_eq!(saved(&b)["received"], json!(["a0"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_exchange_on_our_mailbox() {
    require_netns();
    let server = start_our_mailbox(&[]);
    offline(server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_exchange_on_python_mailbox() {
    require_netns();
    let server = start_python_mailbox(&[]);
    offline(server.url()).await;
}

/// Where each run of one exchange kills itself (`None`: it is not killed).
type Plan<'a> = &'a mut dyn FnMut(usize) -> Option<String>;

/// One exchange with a Python peer (three messages each way), our side restarted after every
/// kill. With `python_allocates` the Python side starts first and allocates; otherwise ours
/// allocates (killed and restarted like any other step) and Python starts, and then stays
/// online, as soon as our saved state holds the code. Returns how many runs were killed.
async fn crash_exchange(url: &str, python_allocates: bool, plan: Plan<'_>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ours.json");
    let mut py = None;
    let mut code = None;
    if python_allocates {
        let mut p = PyClient::spawn(url, APPID, None, r#"{"py": true}"#);
        code = Some(p.next().await["code"].as_str().unwrap().to_owned());
        py = Some(p);
    }
    let mut kills = 0;
    let mut done = false;
    for run in 0..MAX_RUNS {
        let crash = plan(run);
        let mut args = vec!["--prefix", "rs", "--send", "3", "--expect", "3"];
        match &code {
            Some(c) if python_allocates => args.extend(["--code", c.as_str()]),
            _ => args.push("--allocate"),
        }
        if let Some(c) = &crash {
            args.extend(["--crash", c.as_str()]);
        }
        let r = journal_peer(&state, url, &args).await;
        if py.is_none()
            && state.exists()
            && let Some(c) = saved(&state)["code"].as_str()
        {
            let mut p = PyClient::spawn(url, APPID, Some(c), r#"{"py": true}"#);
            assert_eq!(p.next().await["code"], json!(c));
            code = Some(c.to_owned());
            py = Some(p);
        }
        if r.killed {
            kills += 1;
            continue;
        }
        assert!(has(&r.lines, &json!({"closed": "happy"})), "{:?}", r.lines);
        done = true;
        break;
    }
    assert!(done, "the exchange did not finish in {MAX_RUNS} runs");
    let mut py = py.expect("the Python peer ran");
    let ours = saved(&state);
    assert_eq!(
        ours["received"],
        json!(["py0", "py1", "py2"]),
        "ours: each once, in order"
    );
    assert_eq!(ours["closed"], json!("happy"));
    assert!(py.next().await.get("verifier").is_some());
    assert_eq!(py.next().await, json!({"versions": {"journal-peer": "rs"}}));
    assert_eq!(
        py.next().await,
        json!({"received": ["rs0", "rs1", "rs2"]}),
        "Python: each once, in order"
    );
    assert_eq!(py.next().await, json!({"closed": "happy"}));
    py.finish().await;
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_checkpoint_with_python_peer() {
    require_netns();
    let ours = start_our_mailbox(&[]);
    let python = start_python_mailbox(&[]);
    // Every run dies right after writing its first checkpoint, before anything it accounts
    // for leaves: each run moves the exchange on by exactly one checkpoint.
    let after = crash_exchange(python.url(), true, &mut |_| Some("after:1".into())).await;
    // Every run dies just before writing its second checkpoint, after the first one's frames
    // left: again one checkpoint per run, this time the unsaved one is lost.
    let before = crash_exchange(ours.url(), true, &mut |_| Some("before:2".into())).await;
    // The same two walks with our side allocating the code.
    let after_alloc = crash_exchange(ours.url(), false, &mut |_| Some("after:1".into())).await;
    let before_alloc = crash_exchange(python.url(), false, &mut |_| Some("before:2".into())).await;
    eprintln!(
        "kill points: Python allocates: {after} after-write (Python mailbox), {before} before-write \
         (our mailbox); ours allocates: {after_alloc} after-write (our mailbox), {before_alloc} \
         before-write (Python mailbox)"
    );
    for n in [after, before, after_alloc, before_alloc] {
        assert!(n >= 10, "a full exchange has many checkpoints");
    }
    // Seeds: random points (checkpoint 1..=3 of a run, before or after writing it); one run
    // in ten is not killed (and then finishes the exchange).
    let mut total = 0;
    for seed in 0..16u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let url = if seed % 2 == 0 { ours.url() } else { python.url() };
        let kills = crash_exchange(url, seed % 4 < 2, &mut |_| {
            (rng.gen_range(0..10) != 0).then(|| {
                let when = if rng.gen_bool(0.5) { "before" } else { "after" };
                format!("{when}:{}", rng.gen_range(1..=3))
            })
        })
        .await;
        total += kills;
    }
    eprintln!("16 seeds: {total} kills");
    assert!(total >= 16, "the seeded runs were killed often");
}

/// The appid of the file-transfer CLIs (what wormhole-william's `receive` uses).
const CLI_APPID: &str = "lothar.com/wormhole/text-or-file-xfer";

/// Our journaled side allocates and offers `text`; wormhole-william receives it, starting as
/// soon as our saved state holds the code. Our side is killed wherever `plan` says and restarted
/// from its last checkpoint. Returns how many runs were killed.
async fn crash_text_to_go(url: &str, text: &str, plan: Plan<'_>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ours.json");
    let mut go = None;
    let mut kills = 0;
    let mut done = false;
    for run in 0..MAX_RUNS {
        let crash = plan(run);
        let mut args = vec!["--prefix", "rs", "--send", "1", "--expect", "1"];
        args.extend(["--allocate", "--appid", CLI_APPID, "--text", text]);
        if let Some(c) = &crash {
            args.extend(["--crash", c.as_str()]);
        }
        let r = journal_peer(&state, url, &args).await;
        if go.is_none()
            && state.exists()
            && let Some(c) = saved(&state)["code"].as_str()
        {
            let cmd = PeerCommand::new(Peers::locate().go_wormhole)
                .name("wormhole-william receive")
                .args(["--relay-url", url, "receive", "--hide-progress", c])
                .timeout(Duration::from_secs(120));
            go = Some(cmd.spawn());
        }
        if r.killed {
            kills += 1;
            continue;
        }
        assert!(has(&r.lines, &json!({"closed": "happy"})), "{:?}", r.lines);
        done = true;
        break;
    }
    assert!(done, "the exchange did not finish in {MAX_RUNS} runs");
    let out = go.expect("wormhole-william ran").wait();
    assert!(out.success(), "{}", out.all_output());
    assert_eq!(out.stdout.trim_end(), text, "{}", out.all_output());
    let ours = saved(&state);
    assert_eq!(
        ours["received"],
        json!([r#"{"answer":{"message_ack":"ok"}}"#]),
        "ours: Go's answer, once"
    );
    assert_eq!(ours["closed"], json!("happy"));
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_checkpoint_with_go_receiver() {
    require_netns();
    let ours = start_our_mailbox(&[]);
    let python = start_python_mailbox(&[]);
    let after = crash_text_to_go(ours.url(), "journal to go", &mut |_| Some("after:1".into())).await;
    let before = crash_text_to_go(python.url(), "journal to go, again", &mut |_| {
        Some("before:2".into())
    })
    .await;
    eprintln!(
        "kill points with Go: {after} after-write (our mailbox), {before} before-write (Python mailbox)"
    );
    for n in [after, before] {
        assert!(n >= 5, "an exchange has several checkpoints ({n})");
    }
}
