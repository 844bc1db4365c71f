//! `CacheSize`: the global count of cached points, MAX_CACHE_SIZE and carbon's flow control.

use super::sync::{AtomicU64, CachePadded, Ordering};

/// Points currently held by the cache layer across all shards, with carbon's limits.
///
/// **Counted at accept time.** A point counts from the moment a producer accepts it (it is then
/// in a batch, a queue, a writer's hands or a shard cache) until the writer releases it after
/// writing it, or as soon as it turns out to replace a cached point with the same timestamp.
/// So `max_points` bounds everything the cache layer holds, not just the shard caches, and a
/// duplicate timestamp does not grow the size once absorbed (carbon's rule).
///
/// **Limits** (carbon `cache.py` `_MetricCache.store`, `conf.py`): with flow control, receivers
/// pause when the size reaches `max_points` (`is_paused`), resume below 95 % of it, and points are
/// still accepted up to the hard cap of 1.05 × `max_points` (what was read before the pause took
/// effect); without flow control the hard cap is `max_points` and receivers never pause. Past
/// the hard cap `try_reserve` refuses: a TCP caller keeps the point and retries, a UDP or
/// non-flow-control caller drops it and counts it with `record_dropped`.
///
/// **Pause flag.** The flag and the count share one atomic word (bit 63 and bits 0..63), so
/// every reservation and release computes the new flag from the new count in the same
/// compare-and-swap: the flag can never disagree with the history of the count, whatever the
/// interleaving (checked by the loom model).
#[derive(Debug)]
pub struct CacheSize {
    /// Bit 63: receivers should stop reading. Bits 0..63: points reserved.
    /// Invariant: `points <= hard_cap`; `paused` set when an update reaches `pause_at`, cleared
    /// when one goes below `resume_below`, unchanged otherwise; never set without flow control.
    state: CachePadded<AtomicU64>,
    /// Points callers dropped because the cache was full (carbon's `cache.overflow`).
    dropped: CachePadded<AtomicU64>,
    /// Reservations refused at the hard cap (a TCP caller may retry the same point: a count of
    /// refusals, not of distinct points).
    refusals: CachePadded<AtomicU64>,
    /// `max_points`, or `POINTS_MAX` when unlimited.
    pause_at: u64,
    /// ⌈0.95 × max_points⌉: `points < resume_below` ⇔ `points < 0.95 × max_points`.
    resume_below: u64,
    /// Most points ever reserved at once (≤ `POINTS_MAX`).
    hard_cap: u64,
    flow_control: bool,
}

/// The pause bit of `CacheSize::state`.
const PAUSED: u64 = 1 << 63;
/// The largest count `CacheSize::state` holds.
const POINTS_MAX: u64 = PAUSED - 1;

/// A snapshot of the counters, for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheSizeStats {
    /// Points held now (reserved, queued or cached).
    pub points: u64,
    /// Points dropped by callers because the cache was full.
    pub dropped: u64,
    /// Reservations refused at the hard cap.
    pub refusals: u64,
    /// Whether receivers are paused now.
    pub paused: bool,
}

impl CacheSize {
    /// The size for MAX_CACHE_SIZE = `max_points` (`None`: unlimited) and USE_FLOW_CONTROL.
    pub fn new(max_points: Option<u64>, flow_control: bool) -> Self {
        let (pause_at, resume_below, hard_cap) = match max_points {
            None => (POINTS_MAX, POINTS_MAX, POINTS_MAX),
            Some(max) => {
                let max = max.min(POINTS_MAX);
                let resume_below = (u128::from(max) * 95).div_ceil(100) as u64;
                let hard_cap = if flow_control { max.saturating_add(max / 20).min(POINTS_MAX) } else { max };
                (max, resume_below, hard_cap)
            }
        };
        debug_assert!(resume_below <= pause_at && pause_at <= hard_cap && hard_cap <= POINTS_MAX);
        Self {
            state: CachePadded::new(AtomicU64::new(0)),
            dropped: CachePadded::new(AtomicU64::new(0)),
            refusals: CachePadded::new(AtomicU64::new(0)),
            pause_at,
            resume_below,
            hard_cap,
            flow_control: flow_control && max_points.is_some(),
        }
    }

    /// Reserves exactly `n` points, or nothing (false, counted as a refusal) past the hard cap.
    pub fn try_reserve(&self, n: u64) -> bool {
        n == 0 || self.reserve(n, n) == n
    }

    /// Reserves between 1 and `want` points, as many as fit under the hard cap; 0 (counted as a
    /// refusal) when none fits. Producers use it to take their points in chunks.
    pub fn reserve_up_to(&self, want: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        self.reserve(want, 1)
    }

    fn reserve(&self, want: u64, at_least: u64) -> u64 {
        debug_assert!(at_least >= 1 && at_least <= want);
        let mut current = self.state.load(Ordering::SeqCst);
        loop {
            let points = current & POINTS_MAX;
            let room = self.hard_cap - points;
            if room < at_least {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                return 0;
            }
            let granted = want.min(room);
            let pause = self.flow_control && points + granted >= self.pause_at;
            let next = (points + granted) | (current & PAUSED) | if pause { PAUSED } else { 0 };
            match self.state.compare_exchange_weak(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back `n` points: written (or dropped by the writer), replaced by a duplicate, or
    /// an unused reservation.
    pub fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut current = self.state.load(Ordering::SeqCst);
        loop {
            let points = current & POINTS_MAX;
            assert!(points >= n, "cache size underflow: releasing {n} of {points} points");
            let left = points - n;
            let next = if left < self.resume_below { left } else { left | (current & PAUSED) };
            match self.state.compare_exchange_weak(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// True while TCP receivers should stop reading (flow control only): set when the size
    /// reaches `max_points`, cleared when it falls below 95 % of it.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.state.load(Ordering::Relaxed) & PAUSED != 0
    }

    /// Points held now.
    pub fn points(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & POINTS_MAX
    }

    /// Counts `n` points a caller dropped because `try_reserve`/`Producer::push` refused them.
    pub fn record_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// All counters at once.
    pub fn stats(&self) -> CacheSizeStats {
        let state = self.state.load(Ordering::Relaxed);
        CacheSizeStats {
            points: state & POINTS_MAX,
            dropped: self.dropped.load(Ordering::Relaxed),
            refusals: self.refusals.load(Ordering::Relaxed),
            paused: state & PAUSED != 0,
        }
    }

    /// The size at which receivers pause (`2^63 - 1` when unlimited).
    pub fn pause_at(&self) -> u64 {
        self.pause_at
    }

    /// Receivers resume when the size falls below this.
    pub fn resume_below(&self) -> u64 {
        self.resume_below
    }

    /// The most points the cache layer ever holds.
    pub fn hard_cap(&self) -> u64 {
        self.hard_cap
    }
}
