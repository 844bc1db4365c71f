//! The lock-free hand-off of point batches from ingest threads to writer threads.
//!
//! Per shard, two bounded queues of batches (crossbeam's `ArrayQueue`, see `sync.rs`): `full`
//! (producers → the shard's writer) and `free` (the writer → producers). Every batch is
//! allocated once in `HandOff::new` and then moves around forever; the pool per shard is sized
//! so that `free` never overflows and a producer that finds `free` empty knows the queue is
//! full (see `CacheConfig::pool_batches_per_shard`).
//!
//! Ownership: a batch is owned by exactly one of: the `free` queue, one producer (its current
//! batch for that shard), the `full` queue, or the writer between `pop_full` and `recycle`.
//! Moving a batch through a queue moves its ownership; there is no shared mutable batch.

use std::sync::Arc;

use thiserror::Error;

use super::batch::Batch;
use super::config::{CacheConfig, CacheConfigError, MAX_NAME_BYTES};
use super::shard::{name_hash, reduce, shard_of};
use super::shard_cache::ShardCache;
use super::size::CacheSize;
use super::sync::{AtomicUsize, BoundedQueue, Ordering};

/// Why a point was not accepted. Nothing was stored; the caller decides what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refused {
    /// The cache holds its hard cap of points. TCP: stop reading, retry later; UDP: drop and
    /// `CacheSize::record_dropped`.
    #[error("cache full")]
    CacheFull,
    /// The shard's queue is full (its writer is behind). Same handling as `CacheFull`.
    #[error("shard queue full")]
    QueueFull,
    /// The name is longer than `MAX_NAME_BYTES`: never retry, count it as a malformed point.
    #[error("metric name longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
}

/// Counters of batches moved (monotonic, relaxed): for telemetry and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandOffStats {
    /// Full or partly full batches handed to writers.
    pub batches_handed: u64,
    /// Batches currently queued for writers, all shards.
    pub batches_queued: u64,
}

#[derive(Debug)]
struct ShardQueues {
    /// Batches with points, oldest first. Capacity `queue_depth`.
    full: BoundedQueue<Batch>,
    /// Empty batches. Capacity: the shard's whole pool, so `recycle` never fails.
    free: BoundedQueue<Batch>,
}

/// The queues between all producers and all writers, shared through an `Arc`.
#[derive(Debug)]
pub struct HandOff {
    config: CacheConfig,
    shards: Box<[ShardQueues]>,
    size: Arc<CacheSize>,
    /// Live `Producer`s. Invariant: `<= config.n_producers`.
    producers: AtomicUsize,
    /// Batches handed to writers since start (relaxed counter).
    handed: AtomicUsize,
    /// `config.reserve_chunk()`, computed once.
    reserve_chunk: u64,
}

impl HandOff {
    /// Validates `config` and allocates the whole batch pool, once.
    pub fn new(config: &CacheConfig) -> Result<Self, CacheConfigError> {
        config.validate()?;
        let per_shard = config.pool_batches_per_shard();
        let shards = (0..config.n_shards)
            .map(|shard_idx| {
                let queues =
                    ShardQueues { full: BoundedQueue::new(config.queue_depth), free: BoundedQueue::new(per_shard) };
                for i in 0..per_shard {
                    let id = (shard_idx * per_shard + i) as u32;
                    let batch = Batch::with_id(config.batch_points, config.name_bytes_per_batch, id);
                    let pushed = queues.free.push(batch);
                    debug_assert!(pushed.is_ok(), "the free list holds the whole pool");
                }
                queues
            })
            .collect();
        Ok(Self {
            config: config.clone(),
            shards,
            size: Arc::new(CacheSize::new(config.max_points, config.flow_control)),
            producers: AtomicUsize::new(0),
            handed: AtomicUsize::new(0),
            reserve_chunk: config.reserve_chunk(),
        })
    }

    /// The configuration the pool was built from.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The global size and flow-control state.
    pub fn size(&self) -> &Arc<CacheSize> {
        &self.size
    }

    /// The oldest full batch of shard `shard_idx`, for its writer. Hand it back with `recycle`.
    pub fn pop_full(&self, shard_idx: usize) -> Option<Batch> {
        self.shards[shard_idx].full.pop()
    }

    /// Returns a batch the writer has absorbed to its shard's free list (it is cleared here).
    pub fn recycle(&self, shard_idx: usize, mut batch: Batch) {
        let per_shard = self.config.pool_batches_per_shard();
        let owner = batch.id() as usize / per_shard;
        assert!(owner == shard_idx, "batch {} belongs to shard {owner}, not {shard_idx}", batch.id());
        batch.clear();
        let pushed = self.shards[shard_idx].free.push(batch);
        assert!(pushed.is_ok(), "shard {shard_idx}: free list over its pool size");
    }

    /// Moves up to `max_batches` queued batches of `shard_idx` into `cache` (its owner's), recycles
    /// them, and releases the points that replaced cached ones from the global size. Returns the
    /// points absorbed. The writer's usual first step in each loop turn.
    pub fn drain_into(&self, shard_idx: usize, cache: &mut ShardCache, max_batches: usize) -> u64 {
        debug_assert_eq!(cache.shard_idx(), shard_idx);
        let mut points = 0;
        for _ in 0..max_batches {
            let Some(batch) = self.pop_full(shard_idx) else { break };
            points += batch.len() as u64;
            let replaced = cache.absorb(&batch);
            self.size.release(replaced);
            self.recycle(shard_idx, batch);
        }
        points
    }

    /// Batch counters.
    pub fn stats(&self) -> HandOffStats {
        HandOffStats {
            batches_handed: self.handed.load(Ordering::Relaxed) as u64,
            batches_queued: self.shards.iter().map(|s| s.full.len() as u64).sum(),
        }
    }

    /// Checks the pool at a quiescent point (no live producer, queues drained, writer holding
    /// nothing): every batch is back in its shard's free list exactly once, empty. For shutdown
    /// and tests; takes the batches out and puts them back, so nothing may run concurrently.
    pub fn check_quiescent(&self) -> Result<(), String> {
        let live = self.producers.load(Ordering::SeqCst);
        if live != 0 {
            return Err(format!("{live} producers still alive"));
        }
        let per_shard = self.config.pool_batches_per_shard();
        for (shard_idx, queues) in self.shards.iter().enumerate() {
            if queues.full.len() != 0 {
                return Err(format!("shard {shard_idx}: {} batches still queued", queues.full.len()));
            }
            let mut batches: Vec<Batch> = std::iter::from_fn(|| queues.free.pop()).collect();
            batches.sort_by_key(Batch::id);
            let ids: Vec<usize> = batches.iter().map(|b| b.id() as usize).collect();
            let expected: Vec<usize> = (shard_idx * per_shard..(shard_idx + 1) * per_shard).collect();
            let all_empty = batches.iter().all(Batch::is_empty);
            for batch in batches {
                let _ = queues.free.push(batch);
            }
            if ids != expected || !all_empty {
                return Err(format!(
                    "shard {shard_idx}: free batches {ids:?}, expected {expected:?}, empty {all_empty}"
                ));
            }
        }
        Ok(())
    }

    /// Hands `batch` to its shard's writer, or gives it back when the queue is full.
    fn hand(&self, shard_idx: usize, batch: Batch) -> Result<(), Batch> {
        debug_assert!(!batch.is_empty());
        self.shards[shard_idx].full.push(batch)?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// One ingest thread's end of the hand-off: a current batch per shard, and a reservation of
/// points taken from the global size in chunks.
///
/// Every point given to `push` is either accepted (it will reach the shard's writer once the
/// batch is handed off: when it fills, or at `flush`) or refused to the caller with the reason;
/// the cache layer never drops an accepted point. Call `flush` at the end of every loop turn,
/// always before blocking (it hands partial batches over and returns unused reservations, which
/// other producers may need), and until it returns `Ok` before dropping the producer: a
/// producer dropped with points it could not hand off counts them with
/// `CacheSize::record_dropped` (never silently).
#[derive(Debug)]
pub struct Producer {
    handoff: Arc<HandOff>,
    /// Per shard, the batch being filled. Invariant: a `Some` batch came from that shard's pool.
    current: Box<[Option<Batch>]>,
    /// Points reserved from `CacheSize` and not yet used. Invariant: `<= config.reserve_chunk()`.
    credit: u64,
}

impl Producer {
    /// A producer on `handoff`; `None` when `n_producers` producers are already alive (the pool
    /// is sized for that many).
    pub fn new(handoff: Arc<HandOff>) -> Option<Self> {
        let limit = handoff.config.n_producers;
        let registered = handoff
            .producers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1))
            .is_ok();
        if !registered {
            return None;
        }
        let current = (0..handoff.config.n_shards).map(|_| None).collect();
        Some(Self { handoff, current, credit: 0 })
    }

    /// The hand-off this producer feeds.
    pub fn handoff(&self) -> &Arc<HandOff> {
        &self.handoff
    }

    /// Accepts one point for the shard of `name`, or refuses it (nothing stored). Allocates
    /// nothing; touches the shared size counter once per `reserve_chunk_points` points.
    #[inline]
    pub fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> Result<(), Refused> {
        if name.len() > MAX_NAME_BYTES {
            return Err(Refused::NameTooLong);
        }
        if self.credit == 0 {
            self.credit = self.handoff.size.reserve_up_to(self.handoff.reserve_chunk);
            if self.credit == 0 {
                return Err(Refused::CacheFull);
            }
        }
        let hash = name_hash(name);
        let shard_idx = reduce(hash, self.current.len());
        debug_assert_eq!(shard_idx, shard_of(name, self.current.len()));
        let fast =
            self.current[shard_idx].as_mut().is_some_and(|batch| batch.push_hashed(name, hash, timestamp, value));
        if !fast {
            self.refill(shard_idx)?;
            let batch = self.current[shard_idx].as_mut().expect("refill leaves a current batch");
            let pushed = batch.push_hashed(name, hash, timestamp, value);
            // An empty batch takes any name up to MAX_NAME_BYTES (<= name_bytes_per_batch).
            debug_assert!(pushed, "an empty batch refused a point");
        }
        self.credit -= 1;
        if self.current[shard_idx].as_ref().is_some_and(Batch::is_full) {
            // Hand it off now so the writer sees it early; if the queue is full, keep it: the
            // next push to this shard or the next flush tries again.
            self.try_hand(shard_idx);
        }
        Ok(())
    }

    /// Hands every non-empty current batch to its writer and returns unused reservations.
    /// `Err(QueueFull)` when some shard's queue had no room: those points stay here, accepted;
    /// call `flush` again later (the TCP loop keeps turning while paused, so it will).
    pub fn flush(&mut self) -> Result<(), Refused> {
        let mut pending = false;
        for shard_idx in 0..self.current.len() {
            pending |= !self.try_hand(shard_idx);
        }
        self.handoff.size.release(std::mem::take(&mut self.credit));
        if pending {
            Err(Refused::QueueFull)
        } else {
            Ok(())
        }
    }

    /// Points accepted but not yet handed off (in this producer's current batches).
    pub fn pending_points(&self) -> usize {
        self.current.iter().flatten().map(Batch::len).sum()
    }

    /// Makes the current batch of `shard_idx` an empty one: hands off the one without room (if
    /// the queue takes it) and takes a fresh one from the free list.
    #[cold]
    fn refill(&mut self, shard_idx: usize) -> Result<(), Refused> {
        if !self.try_hand(shard_idx) {
            return Err(Refused::QueueFull);
        }
        match &self.current[shard_idx] {
            // try_hand keeps an empty batch; it has room for any accepted name.
            Some(batch) => {
                debug_assert!(batch.is_empty());
                Ok(())
            }
            None => self.take_free(shard_idx),
        }
    }

    /// Takes an empty batch for `shard_idx` from the free list.
    fn take_free(&mut self, shard_idx: usize) -> Result<(), Refused> {
        // The pool holds queue_depth + n_producers + slack batches: an empty free list means
        // the queue is full or the writer is holding batches; either way, retry later.
        let batch = self.handoff.shards[shard_idx].free.pop().ok_or(Refused::QueueFull)?;
        debug_assert!(batch.is_empty());
        self.current[shard_idx] = Some(batch);
        Ok(())
    }

    /// Hands off the current batch of `shard_idx` if it has points; false if the queue is full.
    fn try_hand(&mut self, shard_idx: usize) -> bool {
        let Some(batch) = self.current[shard_idx].take() else { return true };
        if batch.is_empty() {
            self.current[shard_idx] = Some(batch);
            return true;
        }
        match self.handoff.hand(shard_idx, batch) {
            Ok(()) => true,
            Err(batch) => {
                self.current[shard_idx] = Some(batch);
                false
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.flush();
        for (shard_idx, slot) in self.current.iter_mut().enumerate() {
            let Some(batch) = slot.take() else { continue };
            if !batch.is_empty() {
                // The queue stayed full to the end: these accepted points cannot reach the
                // writer. Count them; the caller was told to flush until Ok before dropping.
                let lost = batch.len() as u64;
                self.handoff.size.record_dropped(lost);
                self.handoff.size.release(lost);
            }
            self.handoff.recycle(shard_idx, batch);
        }
        self.handoff.producers.fetch_sub(1, Ordering::SeqCst);
    }
}
