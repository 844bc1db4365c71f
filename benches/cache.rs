//! Cache micro-benchmarks: the lock-free hand-off (points/s from 1 and 2 producer threads to
//! one consumer thread, through 4 shard queues, consumer popping and recycling batches), one
//! thread's whole path (push, flush, drain into the shard caches, write out), and a
//! `ShardCache` absorbing batches and handing every metric out by strategy.
//!
//! Run: `cargo bench --bench cache`. Names are 1000 metrics of ~25 bytes, as statsd and
//! collectd produce; batches are the default 1024 points.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use carbyne::cache::{Batch, CacheConfig, DrainStrategy, HandOff, Producer, ShardCache, MAX_NAME_BYTES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const N_SHARDS: usize = 4;
const N_METRICS: usize = 1000;

fn names() -> Vec<Vec<u8>> {
    (0..N_METRICS).map(|i| format!("servers.host{:02}.cpu{}.user", i / 10, i % 10).into_bytes()).collect()
}

fn config(n_producers: usize) -> CacheConfig {
    CacheConfig { n_shards: N_SHARDS, n_producers, ..CacheConfig::default() }
}

/// Pushes `n_points` round-robin over `names`, flushing every 256 points as an ingest loop
/// turn would, yielding and retrying (after a flush) when the consumer is behind.
fn produce(producer: &mut Producer, names: &[Vec<u8>], n_points: u64) {
    for i in 0..n_points {
        let name = &names[i as usize % names.len()];
        while producer.push(name, i as i64, 1.0).is_err() {
            // The consumer is behind: end the "loop turn" as an ingest thread would.
            let _ = producer.flush();
            std::thread::yield_now();
        }
        if i % 256 == 255 {
            let _ = producer.flush();
        }
    }
    while producer.flush().is_err() {
        std::thread::yield_now();
    }
}

/// `n_producers` threads push `per_producer` points each; the calling thread consumes. Returns
/// the time from the start barrier until the consumer has received every point.
fn handoff_run(n_producers: usize, per_producer: u64) -> Duration {
    let handoff = Arc::new(HandOff::new(&config(n_producers)).expect("valid config"));
    let barrier = Arc::new(Barrier::new(n_producers + 1));
    let threads: Vec<_> = (0..n_producers)
        .map(|_| {
            let (handoff, barrier) = (handoff.clone(), barrier.clone());
            std::thread::spawn(move || {
                let names = names();
                let mut producer = Producer::new(handoff).expect("producer");
                barrier.wait();
                produce(&mut producer, &names, per_producer);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let total = n_producers as u64 * per_producer;
    let mut received = 0;
    while received < total {
        let before = received;
        for shard_idx in 0..N_SHARDS {
            while let Some(batch) = handoff.pop_full(shard_idx) {
                received += batch.len() as u64;
                handoff.size().release(batch.len() as u64);
                handoff.recycle(shard_idx, batch);
            }
        }
        if received == before {
            // Nothing queued: back off rather than keep the queues' cache lines bouncing.
            std::thread::yield_now();
        }
    }
    let elapsed = start.elapsed();
    threads.into_iter().for_each(|t| t.join().expect("producer thread"));
    elapsed
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("handoff");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    const PER_PRODUCER: u64 = 2_000_000;
    for n_producers in [1usize, 2] {
        group.throughput(Throughput::Elements(n_producers as u64 * PER_PRODUCER));
        group.bench_function(BenchmarkId::new("producers_to_1_consumer", n_producers), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| handoff_run(n_producers, PER_PRODUCER)).sum())
        });
    }
    group.finish();
}

/// One thread does everything for one loop turn of 10 points per metric: push, flush, drain
/// into the shard caches, pop every metric and release.
fn single_thread_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("single_thread");
    let handoff = Arc::new(HandOff::new(&CacheConfig { queue_depth: 64, ..config(1) }).expect("valid config"));
    let mut producer = Producer::new(handoff.clone()).expect("producer");
    let mut caches: Vec<ShardCache> =
        (0..N_SHARDS).map(|s| ShardCache::new(s, N_SHARDS, DrainStrategy::Sorted)).collect();
    let names = names();
    let (mut out, mut ts) = (Vec::new(), 0i64);
    group.throughput(Throughput::Elements(10 * N_METRICS as u64));
    group.bench_function("push_flush_absorb_pop", |b| {
        b.iter(|| {
            for _ in 0..10 {
                ts += 1;
                for name in &names {
                    producer.push(name, ts, 1.0).expect("room");
                }
            }
            producer.flush().expect("room");
            for cache in &mut caches {
                handoff.drain_into(cache.shard_idx(), cache, usize::MAX);
                while let Some(popped) = cache.pop_next(0, &mut out) {
                    handoff.size().release(popped.entries);
                }
            }
        })
    });
    group.finish();
}

/// Batches of 1024 points over 1000 metrics, `points_per_metric` points each, in time order
/// (consecutive points of a metric adjacent when `runs`, as pickle sends them).
fn batches(points_per_metric: i64, runs: bool) -> Vec<Batch> {
    let names = names();
    let mut all = Vec::new();
    let mut batch = Batch::new(1024, 64 * 1024);
    let mut push = |name: &[u8], ts: i64| {
        if !batch.push(name, ts, 1.0) {
            all.push(std::mem::replace(&mut batch, Batch::new(1024, 64 * 1024.max(MAX_NAME_BYTES))));
            assert!(batch.push(name, ts, 1.0));
        }
    };
    if runs {
        names.iter().for_each(|n| (0..points_per_metric).for_each(|ts| push(n, ts)));
    } else {
        (0..points_per_metric).for_each(|ts| names.iter().for_each(|n| push(n, ts)));
    }
    all.push(batch);
    all
}

fn shard_cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_cache");
    for (label, runs) in [("interleaved", false), ("runs", true)] {
        let input = batches(10, runs);
        group.throughput(Throughput::Elements(10 * N_METRICS as u64));
        for strategy in [DrainStrategy::Sorted, DrainStrategy::Max] {
            let mut cache = ShardCache::new(0, 1, strategy);
            let mut out = Vec::new();
            let id = BenchmarkId::new(format!("absorb_take/{label}"), format!("{strategy:?}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    for batch in &input {
                        cache.absorb(batch);
                    }
                    let mut points = 0;
                    while cache.pop_next(0, &mut out).is_some() {
                        points += out.len();
                    }
                    points
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, handoff, single_thread_path, shard_cache);
criterion_main!(benches);
