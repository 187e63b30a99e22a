//! Usage summaries written when a nameplate or mailbox is retired (docs/protocol.md §1.8), with the
//! meaning of the Python server 0.8.0: `started` is the first side's arrival (blurred),
//! `waiting_time` the gap to the second side, `total_time` the lifetime, `result` a mood.
//!
//! Pure functions over side lists; no storage and no clock here.

use crate::storage::{Outcome, UsageRow};

/// Round `t` down to a multiple of `blur` seconds (no rounding without `--blur-usage`).
pub fn blur(t: f64, blur: Option<u64>) -> f64 {
    match blur {
        Some(b) if b > 0 => {
            let b = b as f64;
            b * (t / b).floor()
        }
        _ => t,
    }
}

/// Common part: sorted arrival times → started / waiting / total.
fn times(app_id: &str, mut added: Vec<f64>, delete_time: f64, blur_secs: Option<u64>) -> (UsageRow, usize) {
    added.sort_by(f64::total_cmp);
    let first = added.first().copied().unwrap_or(delete_time);
    let waiting_time = added.get(1).map(|second| second - first);
    let row = UsageRow {
        app_id: app_id.to_owned(),
        started: blur(first, blur_secs),
        waiting_time,
        total_time: delete_time - first,
        result: Outcome::Quiet,
    };
    (row, added.len())
}

/// Summary of a retired nameplate: `lonely`, `happy` (2 sides), `pruney`, `crowded` (>2).
pub fn nameplate_usage(
    app_id: &str,
    added: Vec<f64>,
    delete_time: f64,
    pruned: bool,
    blur_secs: Option<u64>,
) -> UsageRow {
    let (mut row, n) = times(app_id, added, delete_time, blur_secs);
    let mut result = if n == 2 { Outcome::Happy } else { Outcome::Lonely };
    if pruned {
        result = Outcome::Pruney;
    }
    if n > 2 {
        result = Outcome::Crowded;
    }
    row.result = result;
    row
}

/// Summary of a retired mailbox: by side count (`quiet`/`lonely`/`happy`), then overridden by
/// moods `lonely`, `errory`, `scary` (in that order), then `pruney`, then `crowded`.
pub fn mailbox_usage(
    app_id: &str,
    sides: &[(f64, Option<&str>)],
    delete_time: f64,
    pruned: bool,
    blur_secs: Option<u64>,
) -> UsageRow {
    let added = sides.iter().map(|(a, _)| *a).collect();
    let (mut row, n) = times(app_id, added, delete_time, blur_secs);
    let mut result = match n {
        0 => Outcome::Quiet,
        1 => Outcome::Lonely,
        _ => Outcome::Happy,
    };
    let has = |m: &str| sides.iter().any(|(_, mood)| *mood == Some(m));
    if has("lonely") {
        result = Outcome::Lonely;
    }
    if has("errory") {
        result = Outcome::Errory;
    }
    if has("scary") {
        result = Outcome::Scary;
    }
    if pruned {
        result = Outcome::Pruney;
    }
    if n > 2 {
        result = Outcome::Crowded;
    }
    row.result = result;
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blurring() {
        assert_eq!(blur(1234.5, None), 1234.5);
        assert_eq!(blur(1234.5, Some(100)), 1200.0);
        assert_eq!(blur(1234.5, Some(0)), 1234.5);
    }

    #[test]
    fn nameplate_results() {
        let r = nameplate_usage("a", vec![5.0, 2.0], 10.0, false, None);
        assert_eq!((r.started, r.waiting_time, r.total_time), (2.0, Some(3.0), 8.0));
        assert_eq!(r.result, Outcome::Happy);
        assert_eq!(
            nameplate_usage("a", vec![1.0], 2.0, false, None).result,
            Outcome::Lonely
        );
        assert_eq!(
            nameplate_usage("a", vec![1.0], 2.0, true, None).result,
            Outcome::Pruney
        );
        assert_eq!(
            nameplate_usage("a", vec![1.0, 2.0, 3.0], 4.0, true, None).result,
            Outcome::Crowded
        );
    }

    #[test]
    fn mailbox_results() {
        let happy = [(1.0, Some("happy")), (2.0, Some("happy"))];
        assert_eq!(
            mailbox_usage("a", &happy, 3.0, false, None).result,
            Outcome::Happy
        );
        let scary = [(1.0, Some("lonely")), (2.0, Some("scary"))];
        assert_eq!(
            mailbox_usage("a", &scary, 3.0, false, None).result,
            Outcome::Scary
        );
        let errory = [(1.0, Some("errory")), (2.0, Some("lonely"))];
        assert_eq!(
            mailbox_usage("a", &errory, 3.0, false, None).result,
            Outcome::Errory
        );
        assert_eq!(mailbox_usage("a", &[], 3.0, false, None).result, Outcome::Quiet);
        assert_eq!(
            mailbox_usage("a", &[(1.0, None)], 3.0, false, None).result,
            Outcome::Lonely
        );
        assert_eq!(
            mailbox_usage("a", &happy, 3.0, true, None).result,
            Outcome::Pruney
        );
        let three = [(1.0, None), (2.0, None), (2.5, Some("happy"))];
        assert_eq!(
            mailbox_usage("a", &three, 3.0, false, Some(10)).result,
            Outcome::Crowded
        );
        assert_eq!(mailbox_usage("a", &three, 3.0, false, Some(10)).started, 0.0);
    }
}
