//! The cache's limits, computed once at start-up and checked by [`CacheConfig::validate`].

use thiserror::Error;

/// The longest metric name the cache accepts, in bytes. The protocol parsers reject longer names
/// first; the cache refuses them too ([`Refused::NameTooLong`](super::Refused)) rather than trust
/// that, because one batch's name arena must always be able to hold one name.
pub const MAX_NAME_BYTES: usize = 4096;

/// Batches each writer may hold out of a shard's pool at once (popped, not yet recycled), beyond
/// the queue and the producers' current batches. [`HandOff::drain_into`](super::HandOff) holds one.
pub const WRITER_SLACK_BATCHES: usize = 2;

// A batch's name arena must fit the longest name, and offsets into it are u32.
const _: () = assert!(MAX_NAME_BYTES <= u32::MAX as usize);

/// How the cache is sized. Every number here is a hard bound, enforced always.
///
/// Memory held by the hand-off, allocated once by `HandOff::new` and never grown:
/// `n_shards × pool_batches_per_shard() × (batch_points × 24 + name_bytes_per_batch)` bytes
/// ([`CacheConfig::pool_bytes`]). Memory held by the caches: about 16 bytes per point (at most
/// `max_points` of them) plus the metric names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Shards (independent caches, each owned by one writer thread). Default 16.
    pub n_shards: usize,
    /// Full batches each shard's queue holds before producers are refused. Default 8.
    pub queue_depth: usize,
    /// Points one batch holds. Default 1024.
    pub batch_points: usize,
    /// Bytes of metric names one batch holds (its name arena); at least [`MAX_NAME_BYTES`].
    /// Default 64 KiB (64 bytes per point at the default `batch_points`).
    pub name_bytes_per_batch: usize,
    /// Ingest threads that will each own one `Producer`; sizes the batch pool. Default 4.
    pub n_producers: usize,
    /// MAX_CACHE_SIZE in points across all shards, including points still in batches and queues;
    /// `None` is carbon's `inf`. Default `None`.
    pub max_points: Option<u64>,
    /// USE_FLOW_CONTROL: at `max_points`, TCP receivers pause (`CacheSize::is_paused`) and points
    /// are accepted up to 1.05 × `max_points`; without it, `max_points` is the hard cap. Default true.
    pub flow_control: bool,
    /// Points a producer reserves from the global size at once, so that the shared counter is
    /// touched once per this many points. Unused reservations return on `Producer::flush`.
    /// Capped so that all producers together hold at most 5 % of `max_points` unused
    /// ([`CacheConfig::reserve_chunk`]). Default 64.
    pub reserve_chunk_points: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            n_shards: 16,
            queue_depth: 8,
            batch_points: 1024,
            name_bytes_per_batch: 64 * 1024,
            n_producers: 4,
            max_points: None,
            flow_control: true,
            reserve_chunk_points: 64,
        }
    }
}

/// A [`CacheConfig`] that cannot work, with the numbers an operator needs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CacheConfigError {
    /// A count that must be at least one is zero.
    #[error("cache: {field} is 0, need at least 1")]
    Zero { field: &'static str },
    /// A count above the largest value the cache can index.
    #[error("cache: {field} is {value}, the most is {max}")]
    TooLarge { field: &'static str, value: u64, max: u64 },
    /// The name arena cannot hold the longest name.
    #[error("cache: name_bytes_per_batch is {value}, need at least {MAX_NAME_BYTES} (the longest name)")]
    NameArenaTooSmall { value: usize },
}

impl CacheConfig {
    /// Checks every relationship the cache relies on.
    pub fn validate(&self) -> Result<(), CacheConfigError> {
        let nonzero = [
            ("n_shards", self.n_shards as u64),
            ("queue_depth", self.queue_depth as u64),
            ("batch_points", self.batch_points as u64),
            ("n_producers", self.n_producers as u64),
            ("reserve_chunk_points", self.reserve_chunk_points),
            ("max_points", self.max_points.unwrap_or(1)),
        ];
        if let Some(&(field, _)) = nonzero.iter().find(|&&(_, value)| value == 0) {
            return Err(CacheConfigError::Zero { field });
        }
        let u32_max = u64::from(u32::MAX);
        let bounded = [
            ("n_shards", self.n_shards as u64, 1 << 16),
            ("queue_depth", self.queue_depth as u64, 1 << 16),
            ("n_producers", self.n_producers as u64, 1 << 12),
            ("batch_points", self.batch_points as u64, u32_max),
            ("name_bytes_per_batch", self.name_bytes_per_batch as u64, u32_max),
            ("reserve_chunk_points", self.reserve_chunk_points, u32_max),
        ];
        if let Some(&(field, value, max)) = bounded.iter().find(|&&(_, value, max)| value > max) {
            return Err(CacheConfigError::TooLarge { field, value, max });
        }
        if self.name_bytes_per_batch < MAX_NAME_BYTES {
            return Err(CacheConfigError::NameArenaTooSmall { value: self.name_bytes_per_batch });
        }
        // The bounds above keep every product below 2^64, but the pool must also fit in memory.
        let pool_max = 1u64 << 40;
        if self.pool_bytes() > pool_max {
            return Err(CacheConfigError::TooLarge {
                field: "batch pool bytes",
                value: self.pool_bytes(),
                max: pool_max,
            });
        }
        Ok(())
    }

    /// Batches allocated per shard: enough for a full queue, one current batch per producer and
    /// the writer's slack, so that a producer finding no free batch means the queue is full.
    pub fn pool_batches_per_shard(&self) -> usize {
        self.queue_depth + self.n_producers + WRITER_SLACK_BATCHES
    }

    /// The reservation chunk producers use: `reserve_chunk_points`, capped at
    /// `max_points / (20 × n_producers)` (at least 1), so that reservations held unused by
    /// idle producers never keep more than 5 % of the cache from the busy ones.
    pub fn reserve_chunk(&self) -> u64 {
        let cap = self.max_points.map_or(u64::MAX, |max| (max / (20 * self.n_producers.max(1) as u64)).max(1));
        self.reserve_chunk_points.min(cap)
    }

    /// Bytes the whole batch pool occupies (entries and name arenas), allocated once.
    pub fn pool_bytes(&self) -> u64 {
        let per_batch = self.batch_points as u64 * super::batch::ENTRY_BYTES as u64 + self.name_bytes_per_batch as u64;
        (self.n_shards as u64).saturating_mul(self.pool_batches_per_shard() as u64).saturating_mul(per_batch)
    }
}
