//! The integer keys of SQLite's `nameplates` rows, kept by the backend so the core never sees
//! them.
//!
//! Owns: the map from a nameplate's `(app_id, name)` to its `nameplates.id`, and handing out new
//! ids (largest stored + 1, as before). Must not: touch the database. A commit works on a
//! [`Pending`] view and its changes are applied only once the transaction has committed, so a
//! failed commit leaves the map as it was and a retry of the same batch sees the same keys.

use std::collections::HashMap;

type Key = (String, String);

fn key(app_id: &str, name: &str) -> Key {
    (app_id.to_owned(), name.to_owned())
}

/// Committed nameplate ids.
#[derive(Debug, Default)]
pub(super) struct NameplateIds {
    ids: HashMap<Key, i64>,
    next: i64,
}

/// The id changes of one transaction, not yet committed.
#[derive(Debug)]
pub(super) struct Pending<'a> {
    base: &'a NameplateIds,
    changes: HashMap<Key, Option<i64>>,
    next: i64,
}

/// What a committed [`Pending`] changed.
#[derive(Debug)]
pub(super) struct Changes {
    changes: HashMap<Key, Option<i64>>,
    next: i64,
}

impl NameplateIds {
    /// The map of stored `(id, app_id, name)` rows.
    pub(super) fn new(rows: impl IntoIterator<Item = (i64, String, String)>) -> Self {
        let mut ids = HashMap::new();
        let mut next = 1;
        for (id, app_id, name) in rows {
            next = next.max(id.saturating_add(1));
            ids.insert((app_id, name), id);
        }
        NameplateIds { ids, next }
    }

    /// Start a transaction's view.
    pub(super) fn begin(&self) -> Pending<'_> {
        Pending {
            base: self,
            changes: HashMap::new(),
            next: self.next,
        }
    }

    /// Apply the changes of a committed transaction.
    pub(super) fn apply(&mut self, done: Changes) {
        for (k, v) in done.changes {
            match v {
                Some(id) => self.ids.insert(k, id),
                None => self.ids.remove(&k),
            };
        }
        self.next = done.next;
    }
}

impl Pending<'_> {
    /// The id of a nameplate, as of the writes seen so far.
    pub(super) fn get(&self, app_id: &str, name: &str) -> Option<i64> {
        let k = key(app_id, name);
        match self.changes.get(&k) {
            Some(v) => *v,
            None => self.base.ids.get(&k).copied(),
        }
    }

    /// A new id for a nameplate that has none (`None` if it already has one).
    pub(super) fn insert(&mut self, app_id: &str, name: &str) -> Option<i64> {
        if self.get(app_id, name).is_some() {
            return None;
        }
        let id = self.next;
        self.next = id.saturating_add(1);
        self.changes.insert(key(app_id, name), Some(id));
        Some(id)
    }

    /// Forget a nameplate; returns the id it had.
    pub(super) fn remove(&mut self, app_id: &str, name: &str) -> Option<i64> {
        let id = self.get(app_id, name)?;
        self.changes.insert(key(app_id, name), None);
        Some(id)
    }

    /// The changes, to [`NameplateIds::apply`] after the commit.
    pub(super) fn finish(self) -> Changes {
        Changes {
            changes: self.changes,
            next: self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_stored_rows() {
        let ids = NameplateIds::new([(4, "a".into(), "7".into())]);
        let mut p = ids.begin();
        assert_eq!(p.get("a", "7"), Some(4));
        assert_eq!(p.insert("a", "7"), None, "already stored");
        assert_eq!(p.insert("b", "7"), Some(5));
        assert_eq!(p.remove("a", "7"), Some(4));
        assert_eq!(p.get("a", "7"), None);
        assert_eq!(p.insert("a", "7"), Some(6), "re-created in the same batch");
    }

    #[test]
    fn uncommitted_changes_are_not_kept() {
        let mut ids = NameplateIds::new([(1, "a".into(), "1".into())]);
        let mut p = ids.begin();
        p.remove("a", "1");
        p.insert("a", "2");
        drop(p); // the transaction failed
        let mut p = ids.begin();
        assert_eq!(p.get("a", "1"), Some(1));
        assert_eq!(p.insert("a", "2"), Some(2), "the retry gets the same id");
        let done = p.finish();
        ids.apply(done);
        assert_eq!(ids.begin().get("a", "2"), Some(2));
        assert_eq!(ids.begin().insert("c", "3"), Some(3));
    }
}
