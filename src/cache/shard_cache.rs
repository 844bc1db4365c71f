//! `ShardCache`: one shard's metric → pending points map and its drain strategy, owned by
//! exactly one writer thread (no locks, no atomics).
//!
//! Layout: metrics live in a slab (`slots`), addressed by a `u32` slot index with a generation
//! counter; a `hashbrown::HashTable<u32>` maps a name to its slot, so each name is stored once
//! (in the slab) and lookups hash the borrowed bytes. The table's hasher is foldhash, randomly
//! seeded per cache, so hostile names cannot force collisions. Strategy snapshots ("passes")
//! are vectors of `(slot, generation)` reused across passes, so they do not clone names.
//!
//! A metric whose points were taken keeps its slot, name and point buffer, so a metric that
//! keeps reporting costs no allocation per write. Sweeps (at each new pass, or every
//! `slots.len()` pops for `max`) evict empty metrics idle for `EVICT_IDLE_S`, and any empty
//! metrics beyond `max(EMPTY_KEEP_MIN, metrics with points)`, which bounds the memory held for
//! metrics that stopped reporting.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::batch::Batch;
use super::points::MetricPoints;

/// Seconds an emptied metric keeps its slot (and buffers) without new points.
pub const EVICT_IDLE_S: i64 = 300;
/// Empty metrics always allowed, whatever the number with points.
const EMPTY_KEEP_MIN: usize = 1024;

/// The order in which a writer drains its shards: carbon's `CACHE_WRITE_STRATEGY`
/// (carbon `lib/carbon/cache.py`, the `DrainStrategy` subclasses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrainStrategy {
    /// Snapshot the metrics, order them by point count (most first), write each once per pass.
    #[default]
    Sorted,
    /// Always the metric with the most points (ties: the oldest slot). Costs a scan of the
    /// shard per choice, as carbon's does; rare metrics may wait until shutdown.
    Max,
    /// Any order: each metric once per pass, in slab order.
    Naive,
    /// Oldest first by each metric's earliest pending timestamp, once per pass. With a lag, a
    /// metric is eligible only when `now - earliest > min_timestamp_lag_s` (carbon's strict
    /// comparison); when none is, `pop_next` returns `None` so the writer can sleep.
    TimeSorted {
        /// MIN_TIMESTAMP_LAG in seconds (0: every metric is eligible).
        min_timestamp_lag_s: u64,
    },
    /// carbon's `bucketmax` approximates `max` with buckets of point counts to make it cheaper;
    /// here it is exactly `Max` (the scan is over a compact slab, not a Python dict).
    BucketMax,
}

/// A metric just taken by `pop_next`: its name, and how many points to release from the
/// global size once they are written (or dropped).
///
/// `entries` can exceed the points handed out: it includes out-of-order duplicates merged away
/// by the take. A writer that puts the points back instead of writing them (a throttled create)
/// releases `entries - points.len()` and re-absorbs the points, whose reservations it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped<'a> {
    /// The metric's name.
    pub name: &'a [u8],
    /// Entries the cache held for it (the points taken plus duplicates merged away): pass this
    /// to `CacheSize::release` after the write.
    pub entries: u64,
}

#[derive(Debug)]
struct Metric {
    name: Box<[u8]>,
    points: MetricPoints,
    /// `now` when the points were last taken (for idle eviction).
    emptied_at: i64,
}

#[derive(Debug, Default)]
struct Slot {
    /// Incremented each time the slot is vacated, so stale pass entries are recognised.
    generation: u32,
    metric: Option<Metric>,
}

#[derive(Debug, Clone, Copy)]
struct PassEntry {
    /// Sort key: larger is written first (point count, or minus the oldest timestamp).
    key: i64,
    slot: u32,
    generation: u32,
}

/// Most new names a shard remembers between two `take_new_names`.
const NEW_NAMES_MAX: usize = 1 << 20;

/// One shard's pending points, for its writer. See the module documentation.
#[derive(Debug)]
pub struct ShardCache {
    shard_idx: usize,
    n_shards: usize,
    strategy: DrainStrategy,
    hasher: DefaultHashBuilder,
    /// Slot of every live metric, keyed by the metric's name.
    table: HashTable<u32>,
    /// Invariant: `table` holds exactly the indexes of slots with `metric: Some`.
    slots: Vec<Slot>,
    /// Indexes of slots with `metric: None`.
    vacant: Vec<u32>,
    /// Pending entries per slot, dense, so that `max` scans 4 bytes per metric.
    /// Invariant: `lens[i] == slots[i].metric.points.len()` (saturated at `u32::MAX`), 0 if vacant.
    lens: Vec<u32>,
    /// Invariant: the sum of `points.len()` over live metrics.
    n_points: u64,
    /// Invariant: live metrics with at least one point.
    n_nonempty: usize,
    /// The current pass, consumed from the end.
    pass: Vec<PassEntry>,
    pops_since_sweep: usize,
    /// The latest `now` seen by `pop_next`.
    now: i64,
    /// Names of metrics that got a slot since the last `take_new_names` (for the metric
    /// index: names cached but not yet written are findable). At most `NEW_NAMES_MAX`; past
    /// that a name becomes findable when its file is created.
    new_names: Vec<Box<[u8]>>,
}

impl ShardCache {
    /// An empty cache for shard `shard_idx` of `n_shards`, drained in `strategy`'s order.
    pub fn new(shard_idx: usize, n_shards: usize, strategy: DrainStrategy) -> Self {
        assert!(shard_idx < n_shards, "shard {shard_idx} of {n_shards}");
        Self {
            shard_idx,
            n_shards,
            strategy,
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            slots: Vec::new(),
            vacant: Vec::new(),
            lens: Vec::new(),
            n_points: 0,
            n_nonempty: 0,
            pass: Vec::new(),
            pops_since_sweep: 0,
            now: i64::MIN,
            new_names: Vec::new(),
        }
    }

    /// The shard this cache holds.
    pub fn shard_idx(&self) -> usize {
        self.shard_idx
    }

    /// Shards in total (to route a name with `shard_of`).
    pub fn n_shards(&self) -> usize {
        self.n_shards
    }

    /// The drain strategy.
    pub fn strategy(&self) -> DrainStrategy {
        self.strategy
    }

    /// Changes the drain order from the next choice on, e.g. to `TimeSorted` with no lag at
    /// shutdown (carbon zeroes MIN_TIMESTAMP_LAG then), so that everything gets written.
    pub fn set_strategy(&mut self, strategy: DrainStrategy) {
        self.strategy = strategy;
        self.pass.clear();
    }

    /// Pending points (stored entries; see `points.rs` on out-of-order duplicates).
    pub fn len_points(&self) -> u64 {
        self.n_points
    }

    /// Metrics with pending points.
    pub fn len_metrics(&self) -> usize {
        self.n_nonempty
    }

    /// Merges a batch's points, last write wins on equal timestamps. Returns the points that
    /// did not grow the cache (they replaced a cached point, or were merged away): release them
    /// from the global size now. Allocates only for a metric the shard does not know yet.
    pub fn absorb(&mut self, batch: &Batch) -> u64 {
        let mut replaced = 0;
        // Consecutive points of one metric share their name's arena offset: one lookup for all.
        let mut previous: Option<(u32, u32)> = None;
        for entry in batch.entries() {
            let slot = match previous {
                Some((name_off, slot)) if name_off == entry.name_off => slot,
                _ => self.slot_for(batch.name_at(entry)),
            };
            previous = Some((entry.name_off, slot));
            let metric = self.slots[slot as usize].metric.as_mut().expect("slot_for returns a live slot");
            if metric.points.is_empty() {
                self.n_nonempty += 1;
            }
            let inserted = metric.points.insert(entry.timestamp, entry.value);
            self.lens[slot as usize] = saturate(metric.points.len());
            self.n_points = self.n_points + u64::from(inserted.grew) - inserted.merged_away;
            replaced += u64::from(!inserted.grew) + inserted.merged_away;
        }
        self.debug_check();
        replaced
    }

    /// The next metric to write by the strategy, its points moved into `out` (cleared first;
    /// sorted by timestamp, deduplicated). `None` when nothing is pending (or, for `TimeSorted`
    /// with a lag, nothing is old enough yet): the writer may sleep. `now` is Unix seconds.
    pub fn pop_next(&mut self, now: i64, out: &mut Vec<(i64, f64)>) -> Option<Popped<'_>> {
        self.now = self.now.max(now);
        let slot = self.choose(now)?;
        self.pops_since_sweep += 1;
        let entries = self.take_slot(slot, out);
        let name = &self.slots[slot as usize].metric.as_ref().expect("chosen slot is live").name;
        Some(Popped { name, entries })
    }

    /// Takes the points of `name` into `out` (cleared first; sorted, deduplicated) and returns
    /// the entries to release from the global size; `None` if the metric has no pending point.
    pub fn take(&mut self, name: &[u8], out: &mut Vec<(i64, f64)>) -> Option<u64> {
        let slot = self.find(name)?;
        if self.slots[slot as usize].metric.as_ref()?.points.is_empty() {
            return None;
        }
        Some(self.take_slot(slot, out))
    }

    /// The pending points of `name` appended to `out`, sorted and deduplicated (carbonlink's
    /// `cache-query`, the render overlay). Leaves the cache unchanged.
    pub fn query_into(&self, name: &[u8], out: &mut Vec<(i64, f64)>) {
        if let Some(metric) = self.find(name).and_then(|slot| self.slots[slot as usize].metric.as_ref()) {
            metric.points.query_into(out);
        }
    }

    /// Names of metrics with pending points that start with `prefix`, at most `limit` of them
    /// appended to `out`; returns true if more matched (the answer was cut at `limit`).
    pub fn names_with_prefix(&self, prefix: &[u8], limit: usize, out: &mut Vec<Box<[u8]>>) -> bool {
        let mut found = 0;
        for metric in self.slots.iter().filter_map(|s| s.metric.as_ref()) {
            if metric.points.is_empty() || !metric.name.starts_with(prefix) {
                continue;
            }
            if found == limit {
                return true;
            }
            out.push(metric.name.clone());
            found += 1;
        }
        false
    }

    /// The slot of `name`, created (allocating its name once) if the shard does not know it.
    fn slot_for(&mut self, name: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(name);
        let Self { table, slots, hasher, vacant, lens, now, new_names, .. } = self;
        if let Some(&slot) = table.find(hash, |&i| slots[i as usize].metric.as_ref().is_some_and(|m| &*m.name == name))
        {
            return slot;
        }
        let metric = Metric { name: name.into(), points: MetricPoints::default(), emptied_at: *now };
        if new_names.len() < NEW_NAMES_MAX {
            new_names.push(name.into());
        }
        let slot = match vacant.pop() {
            Some(slot) => slot,
            None => {
                assert!(slots.len() < u32::MAX as usize, "more than 2^32 metrics in one shard");
                slots.push(Slot::default());
                lens.push(0);
                (slots.len() - 1) as u32
            }
        };
        debug_assert!(slots[slot as usize].metric.is_none());
        slots[slot as usize].metric = Some(metric);
        table.insert_unique(hash, slot, |&i| hasher.hash_one(slot_name(slots, i)));
        slot
    }

    /// Moves the names of metrics first cached since the last call into `out`.
    pub fn take_new_names(&mut self, out: &mut Vec<Box<[u8]>>) {
        out.append(&mut self.new_names);
    }

    fn find(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table.find(hash, |&i| slot_name(&self.slots, i) == name).copied()
    }

    fn take_slot(&mut self, slot: u32, out: &mut Vec<(i64, f64)>) -> u64 {
        let metric = self.slots[slot as usize].metric.as_mut().expect("taking a live slot");
        debug_assert!(!metric.points.is_empty());
        let entries = metric.points.take_into(out);
        metric.emptied_at = self.now;
        self.lens[slot as usize] = 0;
        self.n_points -= entries;
        self.n_nonempty -= 1;
        self.debug_check();
        entries
    }

    /// The slot to write next by the strategy, if any.
    fn choose(&mut self, now: i64) -> Option<u32> {
        if self.n_nonempty == 0 {
            return None;
        }
        match self.strategy {
            DrainStrategy::Max | DrainStrategy::BucketMax => {
                if self.pops_since_sweep >= self.slots.len() {
                    self.sweep(now);
                }
                self.max_slot()
            }
            DrainStrategy::Sorted | DrainStrategy::Naive | DrainStrategy::TimeSorted { .. } => {
                if let Some(slot) = self.next_in_pass() {
                    return Some(slot);
                }
                self.start_pass(now);
                self.next_in_pass()
            }
        }
    }

    /// The next entry of the current pass that still has points.
    fn next_in_pass(&mut self) -> Option<u32> {
        while let Some(entry) = self.pass.pop() {
            let slot = &self.slots[entry.slot as usize];
            let live =
                slot.generation == entry.generation && slot.metric.as_ref().is_some_and(|m| !m.points.is_empty());
            if live {
                return Some(entry.slot);
            }
        }
        None
    }

    /// Snapshots the metrics with points in the strategy's order (consumed from the end).
    fn start_pass(&mut self, now: i64) {
        self.sweep(now);
        self.pass.clear();
        let strategy = self.strategy;
        let lag = match strategy {
            DrainStrategy::TimeSorted { min_timestamp_lag_s } => i64::try_from(min_timestamp_lag_s).unwrap_or(i64::MAX),
            _ => 0,
        };
        // Reverse slab order, so that popping from the end yields slab order among equal keys.
        for (i, slot) in self.slots.iter().enumerate().rev() {
            let Some(metric) = slot.metric.as_ref().filter(|m| !m.points.is_empty()) else { continue };
            let key = match strategy {
                DrainStrategy::TimeSorted { .. } => {
                    let oldest = metric.points.min_timestamp().unwrap_or(i64::MAX);
                    if lag > 0 && now.saturating_sub(oldest) <= lag {
                        continue;
                    }
                    // Oldest last, so that it is popped first.
                    oldest.saturating_neg()
                }
                _ => metric.points.len() as i64,
            };
            self.pass.push(PassEntry { key, slot: i as u32, generation: slot.generation });
        }
        if strategy != DrainStrategy::Naive {
            // Stable: equal keys keep reverse slab order. Largest key last, popped first.
            self.pass.sort_by_key(|e| e.key);
        }
    }

    /// The live metric with the most points (lowest slot on ties).
    fn max_slot(&self) -> Option<u32> {
        let mut best: (u32, usize) = (0, 0);
        for (i, &len) in self.lens.iter().enumerate() {
            if len > best.0 {
                best = (len, i);
            }
        }
        (best.0 > 0).then_some(best.1 as u32)
    }

    /// Evicts empty metrics idle for `EVICT_IDLE_S`, and the oldest-emptied beyond the bound.
    fn sweep(&mut self, now: i64) {
        self.pops_since_sweep = 0;
        let live = self.slots.len() - self.vacant.len();
        let empties = live - self.n_nonempty;
        let keep = EMPTY_KEEP_MIN.max(self.n_nonempty);
        let mut excess = empties.saturating_sub(keep);
        for i in 0..self.slots.len() {
            let Some(metric) = self.slots[i].metric.as_ref() else { continue };
            if !metric.points.is_empty() {
                continue;
            }
            let idle = now.saturating_sub(metric.emptied_at) >= EVICT_IDLE_S;
            if idle || excess > 0 {
                excess = excess.saturating_sub(1);
                self.evict(i as u32);
            }
        }
        self.debug_check();
    }

    fn evict(&mut self, slot: u32) {
        let hash = self.hasher.hash_one(slot_name(&self.slots, slot));
        let removed = self.table.find_entry(hash, |&i| i == slot).map(|entry| entry.remove());
        debug_assert!(removed.is_ok(), "a live slot is in the table");
        debug_assert_eq!(self.lens[slot as usize], 0, "only empty metrics are evicted");
        let s = &mut self.slots[slot as usize];
        s.metric = None;
        s.generation = s.generation.wrapping_add(1);
        self.vacant.push(slot);
    }

    fn debug_check(&self) {
        debug_assert_eq!(self.table.len() + self.vacant.len(), self.slots.len());
        debug_assert_eq!(self.lens.len(), self.slots.len());
        #[cfg(debug_assertions)]
        if self.slots.len() <= 64 {
            let live = self.slots.iter().filter_map(|s| s.metric.as_ref());
            let points: u64 = live.clone().map(|m| m.points.len() as u64).sum();
            let nonempty = live.filter(|m| !m.points.is_empty()).count();
            debug_assert_eq!((points, nonempty), (self.n_points, self.n_nonempty));
            let lens_ok = self
                .slots
                .iter()
                .zip(&self.lens)
                .all(|(s, &len)| len == s.metric.as_ref().map_or(0, |m| saturate(m.points.len())));
            debug_assert!(lens_ok, "lens out of step with the slots");
        }
    }
}

/// A point count as stored in `lens`.
fn saturate(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The name in slot `i` (empty for a vacant slot, which the table never holds).
fn slot_name(slots: &[Slot], i: u32) -> &[u8] {
    slots[i as usize].metric.as_ref().map_or(&[], |m| &m.name)
}
