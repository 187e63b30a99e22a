//! Nameplate allocation (docs/protocol.md §1.5): a uniformly random free number among 1–9, else
//! 10–99, else 100–999; after that up to 1000 random tries in 1000–999999.
//!
//! [`Occupancy`] counts the taken names of each short class so the common case is a few
//! random probes instead of a scan. Pure logic: the caller supplies the RNG and the lookup.

use rand::Rng;

/// The three "short" classes: 1–9, 10–99, 100–999.
const CLASSES: [(u32, u32); 3] = [(1, 10), (10, 100), (100, 1000)];

/// How many names of each short class an app currently uses.
#[derive(Debug, Clone, Default)]
pub struct Occupancy {
    taken: [u32; 3],
}

/// The class index of `name` if it is the canonical decimal form of a number in 1–999.
fn class_of(name: &str) -> Option<usize> {
    if name.is_empty() || name.len() > 3 || name.starts_with('0') {
        return None;
    }
    if !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(name.len() - 1)
}

impl Occupancy {
    /// Note that `name` became used.
    pub fn insert(&mut self, name: &str) {
        if let Some(c) = class_of(name)
            && let Some(t) = self.taken.get_mut(c)
        {
            *t += 1;
        }
    }

    /// Note that `name` is no longer used.
    pub fn remove(&mut self, name: &str) {
        if let Some(c) = class_of(name)
            && let Some(t) = self.taken.get_mut(c)
        {
            *t = t.saturating_sub(1);
        }
    }

    /// Pick a free nameplate, or `None` if even the random long tries all hit used names.
    pub fn choose(&self, rng: &mut impl Rng, is_taken: impl Fn(&str) -> bool) -> Option<String> {
        for (i, (lo, hi)) in CLASSES.iter().enumerate() {
            let size = hi - lo;
            let taken = self.taken.get(i).copied().unwrap_or(0);
            if taken >= size {
                continue;
            }
            // Rejection sampling is uniform over the free members of the class.
            for _ in 0..64 {
                let name = rng.gen_range(*lo..*hi).to_string();
                if !is_taken(&name) {
                    return Some(name);
                }
            }
            // Nearly full: enumerate the free ones and pick one.
            let free: Vec<String> = (*lo..*hi)
                .map(|n| n.to_string())
                .filter(|n| !is_taken(n))
                .collect();
            if !free.is_empty() {
                let k = rng.gen_range(0..free.len());
                return free.into_iter().nth(k);
            }
        }
        for _ in 0..1000 {
            let name = rng.gen_range(1000..1_000_000u32).to_string();
            if !is_taken(&name) {
                return Some(name);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn classes() {
        assert_eq!(class_of("7"), Some(0));
        assert_eq!(class_of("42"), Some(1));
        assert_eq!(class_of("999"), Some(2));
        assert_eq!(class_of("07"), None);
        assert_eq!(class_of("1000"), None);
        assert_eq!(class_of(""), None);
    }

    #[test]
    fn shortest_class_first_and_all_distinct() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut occ = Occupancy::default();
        let mut used = HashSet::new();
        // "07" must not count as 7 being used.
        used.insert("07".to_string());
        occ.insert("07");
        for i in 0..999 {
            let n = occ.choose(&mut rng, |n| used.contains(n)).unwrap();
            let expected_len = if i < 9 {
                1
            } else if i < 99 {
                2
            } else {
                3
            };
            assert_eq!(n.len(), expected_len, "allocation {i} gave {n}");
            occ.insert(&n);
            assert!(used.insert(n));
        }
        let n = occ.choose(&mut rng, |n| used.contains(n)).unwrap();
        assert!(n.len() >= 4);
        // Freeing a short one makes it the next choice.
        used.remove("5");
        occ.remove("5");
        assert_eq!(occ.choose(&mut rng, |n| used.contains(n)).unwrap(), "5");
    }

    #[test]
    fn random_not_lowest() {
        let occ = Occupancy::default();
        let mut seen = HashSet::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..200 {
            seen.insert(occ.choose(&mut rng, |_| false).unwrap());
        }
        assert_eq!(seen.len(), 9);
    }
}
