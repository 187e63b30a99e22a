//! Test: the writes of the real channel state, over a long seeded run of claims, releases,
//! messages, closes and prunes that reuse the same few nameplates, all commit on SQLite (no
//! nameplate the backend cannot place), and a restart reads back the same channels.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{SqliteStorage, SyncMode};
use crate::mailbox::state::{State, StoredMessage, UsageSettings};
use crate::storage::{Storage, Write};

const APPS: [&str; 2] = ["a", "b"];
const NAMES: [&str; 4] = ["1", "2", "3", "4"];
const SIDES: [&str; 4] = ["s1", "s2", "s3", "s4"];

/// One random step on `st`; its writes go to `w`.
fn step(st: &mut State, rng: &mut StdRng, now: f64, mailboxes: &mut Vec<String>, w: &mut Vec<Write>) {
    let app = APPS[rng.gen_range(0..APPS.len())];
    let name = NAMES[rng.gen_range(0..NAMES.len())];
    let side = SIDES[rng.gen_range(0..SIDES.len())];
    match rng.gen_range(0..10) {
        0..=3 => {
            if let Ok(mb) = st.claim_nameplate(app, name, side, now, rng, w) {
                mailboxes.push(mb);
            }
        }
        4..=5 => st.release_nameplate(app, name, side, now, w),
        6 if !mailboxes.is_empty() => {
            let mb = &mailboxes[rng.gen_range(0..mailboxes.len())];
            let msg = StoredMessage {
                side: side.into(),
                phase: "p".into(),
                body: "00".into(),
                server_rx: now,
                msg_id: None,
            };
            st.add_message(mb, msg, w);
        }
        7..=8 if !mailboxes.is_empty() => {
            let mb = mailboxes[rng.gen_range(0..mailboxes.len())].clone();
            st.close_mailbox(app, &mb, side, Some("happy"), now, w);
        }
        _ => {
            st.prune(now, now - 30.0, w);
        }
    }
}

#[test]
fn seeded_run_commits_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let usage_db = dir.path().join("u.sqlite");
    let path = dir.path().join("c.sqlite");
    let path = path.to_str().unwrap();
    let usage = UsageSettings {
        enabled: true,
        blur: None,
    };
    let mut store = SqliteStorage::open(path, Some(&usage_db), SyncMode::Normal).unwrap();
    let mut st = State::from_snapshot(store.load().unwrap(), usage);
    let mut rng = StdRng::seed_from_u64(10);
    let mut mailboxes = Vec::new();
    let mut writes = 0;
    for i in 0..3000 {
        let mut w = Vec::new();
        // A few commands per batch, as the engine groups them.
        for _ in 0..rng.gen_range(1..4) {
            step(&mut st, &mut rng, f64::from(i), &mut mailboxes, &mut w);
        }
        writes += w.len();
        store
            .commit(&w)
            .unwrap_or_else(|e| panic!("batch {i}: {e}: {w:?}"));
        if i % 1000 == 999 {
            // A restart mid-run: the state rebuilt from disk carries on where memory was.
            drop(store);
            store = SqliteStorage::open(path, Some(&usage_db), SyncMode::Normal).unwrap();
            let reloaded = State::from_snapshot(store.load().unwrap(), usage);
            for app in APPS {
                assert_eq!(
                    reloaded.nameplate_names(app),
                    st.nameplate_names(app),
                    "app {app}"
                );
            }
            assert_eq!(reloaded.mailbox_count(), st.mailbox_count());
            for mb in &mailboxes {
                assert_eq!(reloaded.message_count(mb), st.message_count(mb), "mailbox {mb}");
            }
            st = reloaded;
        }
    }
    assert!(writes > 5000, "the run exercised the store ({writes} writes)");
}
