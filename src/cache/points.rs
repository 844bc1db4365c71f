//! `MetricPoints`: one metric's pending points, deduplicated by timestamp, last write wins.
//!
//! Points usually arrive in time order, so the common case is an append (a newer timestamp) or
//! an overwrite of the last point (the same timestamp). The store is a sorted prefix, strictly
//! increasing by timestamp, followed by an unsorted tail for points that arrive out of order:
//!
//! - newer than everything and no tail: append to the prefix (grows the size);
//! - a timestamp present in the prefix (binary search): overwrite in place (does not grow it);
//! - anything else: append to the tail (grows it). Tail points are checked against the prefix
//!   but not against each other, so two tail points with the same timestamp both count until
//!   the tail is merged: the size counts stored entries, i.e. memory, exactly.
//!
//! The tail is merged (stable sort, then keep the last of equal timestamps) when it outgrows
//! `max(TAIL_MIN, prefix)`, so the merge costs O(log n) per point amortised even for points in
//! reverse order, and on `take`. Merging returns how many entries it removed, so the caller can
//! release them from the global size. `query` merges a copy and leaves the store alone.

/// Tail length below which out-of-order points are not merged yet.
const TAIL_MIN: usize = 32;

/// The pending points of one metric.
#[derive(Debug, Default)]
pub(super) struct MetricPoints {
    /// Invariant: `points[..sorted_len]` strictly increasing by timestamp; no timestamp of
    /// `points[sorted_len..]` occurs in `points[..sorted_len]`; the tail is in arrival order.
    points: Vec<(i64, f64)>,
    sorted_len: usize,
    /// The smallest timestamp stored (meaningless when empty), for the timesorted strategy.
    min_timestamp: i64,
}

/// What an insert did to the stored entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Inserted {
    /// True when the point was stored as a new entry (false: it replaced one).
    pub(super) grew: bool,
    /// Entries removed by a merge of the tail (duplicates within it).
    pub(super) merged_away: u64,
}

impl MetricPoints {
    /// Stored entries (pending points, counting tail duplicates not merged yet).
    pub(super) fn len(&self) -> usize {
        self.points.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub(super) fn min_timestamp(&self) -> Option<i64> {
        (!self.points.is_empty()).then_some(self.min_timestamp)
    }

    /// Stores one point, last write wins on an equal timestamp.
    #[inline]
    pub(super) fn insert(&mut self, timestamp: i64, value: f64) -> Inserted {
        if self.points.is_empty() || timestamp < self.min_timestamp {
            self.min_timestamp = timestamp;
        }
        let tail_empty = self.sorted_len == self.points.len();
        if tail_empty {
            match self.points.last_mut() {
                Some(last) if last.0 == timestamp => {
                    last.1 = value;
                    return Inserted { grew: false, merged_away: 0 };
                }
                Some(last) if last.0 > timestamp => {}
                _ => {
                    self.points.push((timestamp, value));
                    self.sorted_len += 1;
                    return Inserted { grew: true, merged_away: 0 };
                }
            }
        }
        self.insert_out_of_order(timestamp, value)
    }

    #[cold]
    fn insert_out_of_order(&mut self, timestamp: i64, value: f64) -> Inserted {
        if let Ok(i) = self.points[..self.sorted_len].binary_search_by_key(&timestamp, |p| p.0) {
            self.points[i].1 = value;
            return Inserted { grew: false, merged_away: 0 };
        }
        self.points.push((timestamp, value));
        let tail_len = self.points.len() - self.sorted_len;
        let merged_away = if tail_len > TAIL_MIN.max(self.sorted_len) { self.merge() } else { 0 };
        Inserted { grew: true, merged_away }
    }

    /// Sorts and deduplicates everything into the prefix; returns the entries removed.
    fn merge(&mut self) -> u64 {
        let before = self.points.len();
        if self.sorted_len < before {
            merge_sorted(&mut self.points);
            self.sorted_len = self.points.len();
        }
        self.debug_check();
        (before - self.points.len()) as u64
    }

    /// Moves every point, sorted and deduplicated, into `out` (cleared first); returns the
    /// entries this metric held (points handed out plus duplicates merged away), which is what
    /// the caller releases from the global size.
    pub(super) fn take_into(&mut self, out: &mut Vec<(i64, f64)>) -> u64 {
        let entries = self.points.len() as u64;
        self.merge();
        out.clear();
        out.extend_from_slice(&self.points);
        self.points.clear();
        self.sorted_len = 0;
        // Keep the allocation for the next round unless a burst left it much larger than the
        // usual load: bounded memory per idle metric, no allocation in a steady state.
        if self.points.capacity() > 64 && self.points.capacity() > 4 * out.len() {
            self.points.shrink_to(out.len());
        }
        entries
    }

    /// The points, sorted and deduplicated, appended to `out`; the store is not changed.
    pub(super) fn query_into(&self, out: &mut Vec<(i64, f64)>) {
        let start = out.len();
        out.extend_from_slice(&self.points);
        if self.sorted_len < self.points.len() {
            let mut copy = out.split_off(start);
            merge_sorted(&mut copy);
            out.append(&mut copy);
        }
    }

    fn debug_check(&self) {
        debug_assert!(self.sorted_len <= self.points.len());
        debug_assert!(self.points[..self.sorted_len].windows(2).all(|w| w[0].0 < w[1].0));
    }
}

/// Sorts `points` by timestamp (stable: arrival order among equals) and keeps the last of each
/// run of equal timestamps.
fn merge_sorted(points: &mut Vec<(i64, f64)>) {
    // Stable sort (driftsort) finds the sorted prefix as one run: O(n + t log t) for a tail of t.
    points.sort_by_key(|p| p.0);
    // dedup_by(a, b): `a` is the later element, `b` the one kept; copy the later value back.
    points.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = later.1;
        }
        same
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(m: &mut MetricPoints) -> (Vec<(i64, f64)>, u64) {
        let mut out = Vec::new();
        let entries = m.take_into(&mut out);
        (out, entries)
    }

    #[test]
    fn in_order_and_duplicates() {
        let mut m = MetricPoints::default();
        assert!(m.insert(10, 1.0).grew);
        assert!(m.insert(20, 2.0).grew);
        assert!(!m.insert(20, 3.0).grew, "same timestamp as the last: overwrite");
        assert!(!m.insert(10, 4.0).grew, "same timestamp as an older one: overwrite");
        assert_eq!(m.len(), 2);
        assert_eq!(m.min_timestamp(), Some(10));
        assert_eq!(taken(&mut m), (vec![(10, 4.0), (20, 3.0)], 2));
        assert!(m.is_empty());
        assert_eq!(m.min_timestamp(), None);
    }

    #[test]
    fn out_of_order_tail_is_merged_last_wins() {
        let mut m = MetricPoints::default();
        m.insert(100, 1.0);
        assert!(m.insert(50, 2.0).grew);
        assert!(m.insert(60, 3.0).grew);
        // A duplicate inside the tail is stored (and counted) until the merge.
        assert!(m.insert(50, 4.0).grew);
        assert_eq!(m.len(), 4);
        assert_eq!(m.min_timestamp(), Some(50));
        let mut q = Vec::new();
        m.query_into(&mut q);
        assert_eq!(q, vec![(50, 4.0), (60, 3.0), (100, 1.0)]);
        assert_eq!(m.len(), 4, "query leaves the store alone");
        assert_eq!(taken(&mut m), (vec![(50, 4.0), (60, 3.0), (100, 1.0)], 4));
    }

    #[test]
    fn reverse_order_merges_with_exact_accounting() {
        let mut m = MetricPoints::default();
        let mut stored: i64 = 0;
        for round in 0..2 {
            for ts in (0..1000).rev() {
                let r = m.insert(ts, f64::from(round));
                stored += i64::from(r.grew) - r.merged_away as i64;
                assert_eq!(stored, m.len() as i64);
            }
        }
        let (points, entries) = taken(&mut m);
        assert_eq!(entries as i64, stored);
        assert_eq!(points.len(), 1000);
        assert!(points.iter().enumerate().all(|(i, &(ts, v))| ts == i as i64 && v == 1.0));
    }
}
