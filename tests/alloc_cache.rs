//! Proves that the cache's steady state allocates nothing per point: pushing points of known
//! metrics, handing batches off, absorbing them, writing them out (`pop_next` into a reused
//! buffer) and releasing them. Its own test binary, because it installs a counting global
//! allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use carbyne::cache::{CacheConfig, DrainStrategy, HandOff, Producer, ShardCache};

/// Counts allocations made by the thread that turned counting on.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments, so `System`'s contract
// is this allocator's; counting touches only an atomic and a const-initialised thread-local,
// neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// One loop turn of ingest and one of the writer: two points per metric, pushed, handed off,
/// absorbed, written out and released.
fn round(
    producer: &mut Producer,
    caches: &mut [ShardCache],
    names: &[Vec<u8>],
    round_idx: i64,
    out: &mut Vec<(i64, f64)>,
) -> u64 {
    for name in names {
        for k in 0..2 {
            producer.push(name, round_idx * 10 + k, 1.0).expect("room for every point");
        }
    }
    producer.flush().expect("the queues hold a whole round");
    let handoff = producer.handoff().clone();
    let mut written = 0;
    for cache in caches.iter_mut() {
        handoff.drain_into(cache.shard_idx(), cache, usize::MAX);
        while let Some(popped) = cache.pop_next(0, out) {
            written += out.len() as u64;
            handoff.size().release(popped.entries);
        }
    }
    written
}

#[test]
fn steady_state_allocates_nothing_per_point() {
    let config = CacheConfig {
        n_shards: 4,
        queue_depth: 16,
        batch_points: 128,
        n_producers: 1,
        max_points: Some(1_000_000),
        ..CacheConfig::default()
    };
    let handoff = Arc::new(HandOff::new(&config).expect("valid config"));
    let mut producer = Producer::new(handoff.clone()).expect("one producer");
    let strategies = [
        DrainStrategy::Sorted,
        DrainStrategy::Max,
        DrainStrategy::Naive,
        DrainStrategy::TimeSorted { min_timestamp_lag_s: 0 },
    ];
    let mut caches: Vec<ShardCache> = (0..4).map(|s| ShardCache::new(s, 4, strategies[s])).collect();
    let names: Vec<Vec<u8>> = (0..300).map(|i| format!("servers.host{i:03}.cpu.user").into_bytes()).collect();
    let mut out = Vec::with_capacity(64);

    // Warm up: metrics created, buffers and passes at their steady sizes.
    for round_idx in 0..3 {
        assert_eq!(round(&mut producer, &mut caches, &names, round_idx, &mut out), 600);
    }

    COUNTING.with(|c| c.set(true));
    let mut written = 0;
    for round_idx in 3..13 {
        written += round(&mut producer, &mut caches, &names, round_idx, &mut out);
    }
    COUNTING.with(|c| c.set(false));

    assert_eq!(written, 6000);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations in the steady state");
    assert_eq!(handoff.size().points(), 0);

    // The counter does see the cache's allocations: a metric the shard never saw costs its name.
    let mut more = names.clone();
    more.push(b"servers.new.cpu.user".to_vec());
    COUNTING.with(|c| c.set(true));
    round(&mut producer, &mut caches, &more, 13, &mut out);
    COUNTING.with(|c| c.set(false));
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > 0, "a new metric allocates");
}
