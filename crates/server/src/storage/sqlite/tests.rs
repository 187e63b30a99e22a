//! Tests of the SQLite backend: round trips, rollback, keys across restarts, errors.

use super::*;
use crate::storage::{
    MailboxRow, MailboxSideRow, MessageRow, NameplateRow, NameplateSideRow, Snapshot, UsageRow,
};
use rusqlite::Connection;

fn sample_batch() -> Vec<Write> {
    vec![
        Write::InsertMailbox(MailboxRow {
            id: "mb1".into(),
            app_id: "app".into(),
            updated: 10.5,
            for_nameplate: true,
        }),
        Write::InsertNameplate(NameplateRow {
            app_id: "app".into(),
            name: "7".into(),
            mailbox_id: "mb1".into(),
        }),
        Write::InsertNameplateSide(NameplateSideRow {
            app_id: "app".into(),
            name: "7".into(),
            side: "s1".into(),
            claimed: true,
            added: 10.5,
        }),
        Write::InsertMailboxSide(MailboxSideRow {
            mailbox_id: "mb1".into(),
            side: "s1".into(),
            opened: true,
            added: 10.5,
            mood: None,
        }),
        Write::InsertMessage(MessageRow {
            app_id: "app".into(),
            mailbox_id: "mb1".into(),
            side: "s1".into(),
            phase: "pake".into(),
            body: "00ff".into(),
            server_rx: 11.0,
            msg_id: Some("ab12".into()),
        }),
    ]
}

#[test]
fn commit_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let path = path.to_str().unwrap();
    {
        let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
        s.commit(&sample_batch()).unwrap();
    }
    let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
    let snap = s.load().unwrap();
    assert_eq!(snap.nameplates.len(), 1);
    assert_eq!(snap.nameplate_sides[0].side, "s1");
    assert_eq!(snap.mailboxes[0].updated, 10.5);
    assert_eq!(snap.messages[0].msg_id.as_deref(), Some("ab12"));
    s.commit(&[
        Write::ReleaseNameplateSide {
            app_id: "app".into(),
            name: "7".into(),
            side: "s1".into(),
        },
        Write::CloseMailboxSide {
            mailbox_id: "mb1".into(),
            side: "s1".into(),
            mood: Some("happy".into()),
        },
    ])
    .unwrap();
    let snap = s.load().unwrap();
    assert!(!snap.nameplate_sides[0].claimed);
    assert_eq!(snap.mailbox_sides[0].mood.as_deref(), Some("happy"));
    s.commit(&[
        Write::DeleteNameplate {
            app_id: "app".into(),
            name: "7".into(),
        },
        Write::DeleteMailbox { id: "mb1".into() },
    ])
    .unwrap();
    assert_eq!(s.load().unwrap(), Snapshot::default());
}

#[test]
fn failed_batch_is_rolled_back() {
    let mut s = SqliteStorage::open(":memory:", None, SyncMode::Full).unwrap();
    let mut batch = sample_batch();
    // The same nameplate inserted twice makes the batch fail.
    batch.push(Write::InsertNameplate(NameplateRow {
        app_id: "app".into(),
        name: "7".into(),
        mailbox_id: "mb1".into(),
    }));
    let err = s.commit(&batch).unwrap_err();
    assert!(matches!(err, StorageError::Commit { writes: 6, .. }), "{err}");
    assert_eq!(s.load().unwrap(), Snapshot::default());
    // The failed batch left no keys behind: the good part commits and reads back.
    batch.pop();
    s.commit(&batch).unwrap();
    let snap = s.load().unwrap();
    assert_eq!(snap.nameplate_sides.len(), 1);
    assert_eq!(
        (&*snap.nameplate_sides[0].app_id, &*snap.nameplate_sides[0].name),
        ("app", "7")
    );
}

#[test]
fn sides_find_their_nameplate_by_name_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let path = path.to_str().unwrap();
    {
        let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
        s.commit(&sample_batch()).unwrap();
    }
    // A new process knows the nameplate only by its name: a second side and a release reach
    // the row written by the first process, and a side of an unknown nameplate is refused.
    let mut s = SqliteStorage::open(path, None, SyncMode::Full).unwrap();
    s.commit(&[
        Write::InsertNameplateSide(NameplateSideRow {
            app_id: "app".into(),
            name: "7".into(),
            side: "s2".into(),
            claimed: true,
            added: 12.0,
        }),
        Write::ReleaseNameplateSide {
            app_id: "app".into(),
            name: "7".into(),
            side: "s1".into(),
        },
    ])
    .unwrap();
    let snap = s.load().unwrap();
    let sides: Vec<(&str, bool)> = snap
        .nameplate_sides
        .iter()
        .map(|r| (r.side.as_str(), r.claimed))
        .collect();
    assert_eq!(sides, [("s1", false), ("s2", true)]);
    let orphan = Write::InsertNameplateSide(NameplateSideRow {
        app_id: "other".into(),
        name: "7".into(),
        side: "s3".into(),
        claimed: true,
        added: 13.0,
    });
    let err = s.commit(&[orphan]).unwrap_err();
    assert!(matches!(err, StorageError::Commit { writes: 1, .. }));
    let raw = Connection::open(path).unwrap();
    let ids: Vec<i64> = raw
        .prepare("SELECT nameplates_id FROM nameplate_sides")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [1, 1], "0.8.0 layout: sides point at nameplates.id");
}

#[test]
fn open_errors_name_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/c.sqlite");
    let err = SqliteStorage::open(missing.to_str().unwrap(), None, SyncMode::Full).unwrap_err();
    assert!(matches!(err, StorageError::Open { .. }), "{err}");
    let source = std::error::Error::source(&err).unwrap();
    assert!(
        source.is::<rusqlite::Error>(),
        "the backend error is kept as the source"
    );
}

#[test]
fn usage_rows_go_to_attached_db() {
    let dir = tempfile::tempdir().unwrap();
    let usage = dir.path().join("u.sqlite");
    let mut s = SqliteStorage::open(":memory:", Some(&usage), SyncMode::Normal).unwrap();
    s.commit(&[
        Write::UsageNameplate(UsageRow {
            app_id: "a".into(),
            started: 1.0,
            waiting_time: None,
            total_time: 2.0,
            result: crate::storage::Outcome::Lonely,
        }),
        Write::UsageCurrent {
            rebooted: 1.0,
            updated: 2.0,
            blur_time: None,
            connections_websocket: 3,
        },
    ])
    .unwrap();
    drop(s);
    let u = Connection::open(&usage).unwrap();
    let result: String = u
        .query_row("SELECT result FROM nameplates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "lonely");
    let v: i64 = u
        .query_row("SELECT version FROM version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

#[test]
fn wrong_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE version (version INTEGER); INSERT INTO version VALUES (7);")
            .unwrap();
    }
    let err = SqliteStorage::open(path.to_str().unwrap(), None, SyncMode::Full).unwrap_err();
    assert!(matches!(err, StorageError::Version { version: 7, .. }));
}
