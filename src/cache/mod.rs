//! The cache between ingest and the whisper writers: batches, shard routing, the lock-free
//! hand-off, the per-shard caches with carbon's write strategies, the global size with
//! carbon's flow control, and the query messages.
//!
//! Owns: points from the moment an ingest thread accepts them until a writer takes them to
//! write. Leaves out: sockets, parsing, files, the writer loop and rate limits (`writer`), and
//! the clock (`now` is always an argument).
//!
//! ```text
//!  ingest thread k: Producer ──push(name, ts, value)──► current Batch of shard_of(name)
//!        │ batch full / flush() at the end of each loop turn
//!        ▼
//!  HandOff, per shard s: full: ArrayQueue<Batch> (queue_depth) ──► writer owning s
//!                        free: ArrayQueue<Batch> (the pool)    ◄── recycle(s, batch)
//!  writer w: drain_into(s, ShardCache) → pop_next(now, &mut buf) → whisper → size.release(n)
//!            serve_queries(&caches, &rx, k) between writes       (CacheQuery over flume)
//!  CacheSize: points accepted and not yet written, MAX_CACHE_SIZE, pause/resume (95 %)
//! ```
//!
//! **Architecture Invariant:** a point given to `Producer::push` is either refused to the caller
//! (`Refused`, which says why) or accepted, and an accepted point reaches its shard's writer
//! exactly once; the cache layer never drops one silently (a producer dropped with points it
//! could not hand off counts them in `CacheSize::record_dropped`).
//!
//! **Architecture Invariant:** nothing grows without bound. The batch pool is allocated once
//! (`CacheConfig::pool_bytes`); `push`, hand-off and `absorb` of known metrics allocate nothing
//! (proved by `tests/alloc_cache.rs`); points held (in batches, queues and caches) never exceed
//! the hard cap (`max_points`, or 1.05 × with flow control); idle metrics are evicted.
//!
//! **Architecture Invariant:** each `ShardCache` has one owner, its writer thread; everyone
//! else asks by message. The only shared state is the `HandOff` queues and `CacheSize`.
//!
//! The hand-off uses crossbeam's `ArrayQueue` (Dmitry Vyukov's bounded MPMC queue) and
//! 128-byte cache padding from `crossbeam-utils`; every atomic goes through `sync.rs`, so loom
//! checks the protocol. Check it with:
//!
//! ```text
//! RUSTFLAGS="--cfg carbyne_loom" cargo test --release --lib cache::loom_tests
//! ```
//!
//! Decisions worth knowing:
//! - The size is counted when a producer accepts a point (in chunks of
//!   `reserve_chunk_points`, returned unused at `flush`), so MAX_CACHE_SIZE bounds the points in
//!   queues too. A duplicate timestamp is released as soon as the writer absorbs it, so once
//!   absorbed the size follows carbon's rule (a duplicate does not grow it); out-of-order
//!   duplicates count until merged (they occupy memory until then; see `points.rs`).
//! - Routing is XXH3-64 (fixed by its specification) reduced with Lemire's multiply-shift
//!   (`shard.rs`); the shard tables use a randomly seeded foldhash.
//! - `bucketmax` is `max` (see `DrainStrategy::BucketMax`).

mod batch;
mod config;
mod handoff;
mod points;
mod query;
mod shard;
mod shard_cache;
mod size;
mod sync;

#[cfg(all(test, carbyne_loom))]
mod loom_tests;
#[cfg(all(test, not(carbyne_loom)))]
mod tests;

pub use batch::Batch;
pub use config::{CacheConfig, CacheConfigError, MAX_NAME_BYTES, WRITER_SLACK_BATCHES};
pub use handoff::{HandOff, HandOffStats, Producer, Refused};
pub use query::{
    serve_queries, wait_and_serve_queries, CacheQuery, CacheSizes, NamesAnswer, PointLists, NAMES_LIMIT_MAX,
};
pub use shard::shard_of;
pub use shard_cache::{DrainStrategy, Popped, ShardCache, EVICT_IDLE_S};
pub use size::{CacheSize, CacheSizeStats};
