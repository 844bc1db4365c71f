//! Unit tests of the cache and a multi-threaded stress test of the hand-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

fn config(n_shards: usize, queue_depth: usize, batch_points: usize) -> CacheConfig {
    CacheConfig {
        n_shards,
        queue_depth,
        batch_points,
        name_bytes_per_batch: MAX_NAME_BYTES,
        n_producers: 2,
        max_points: None,
        flow_control: true,
        reserve_chunk_points: 1,
    }
}

fn batch_of(points: &[(&str, i64, f64)]) -> Batch {
    let mut batch = Batch::new(points.len().max(1), MAX_NAME_BYTES);
    for &(name, ts, value) in points {
        assert!(batch.push(name.as_bytes(), ts, value));
    }
    batch
}

/// Pops every metric in strategy order: (name, points).
fn drain_all(cache: &mut ShardCache, now: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(popped) = cache.pop_next(now, &mut buf) {
        out.push((String::from_utf8(popped.name.to_vec()).expect("test names are UTF-8"), buf.clone()));
    }
    out
}

fn names(drained: &[(String, Vec<(i64, f64)>)]) -> Vec<&str> {
    drained.iter().map(|(n, _)| n.as_str()).collect()
}

// ---------------------------------------------------------------- Batch

#[test]
fn batch_refuses_when_points_are_full_and_never_grows() {
    let mut batch = Batch::new(3, MAX_NAME_BYTES);
    let caps = (batch.points_max(), batch.name_bytes_max());
    assert!(batch.push(b"a", 1, 1.0));
    assert!(batch.push(b"b", 2, 2.0));
    assert!(batch.push(b"c", 3, 3.0));
    assert!(batch.is_full());
    assert!(!batch.push(b"d", 4, 4.0), "a fourth point does not fit");
    assert_eq!(batch.len(), 3);
    assert_eq!((batch.points_max(), batch.name_bytes_max()), caps);
    let got: Vec<_> = batch.iter().map(|(n, t, v)| (n.to_vec(), t, v)).collect();
    assert_eq!(got, vec![(b"a".to_vec(), 1, 1.0), (b"b".to_vec(), 2, 2.0), (b"c".to_vec(), 3, 3.0)]);
    batch.clear();
    assert!(batch.is_empty());
    assert!(batch.push(b"d", 4, 4.0), "room again after clear");
}

#[test]
fn batch_refuses_when_the_name_arena_is_full() {
    let mut batch = Batch::new(100, 10);
    assert!(batch.push(b"abcdef", 1, 1.0));
    assert!(!batch.has_room_for(b"ghijk"));
    assert!(!batch.push(b"ghijk", 2, 2.0), "6 + 5 bytes > 10");
    assert!(batch.push(b"ghij", 2, 2.0), "6 + 4 bytes fit exactly");
    // The same name as the last one costs no arena bytes.
    assert!(batch.has_room_for(b"ghij"));
    assert!(batch.push(b"ghij", 3, 3.0));
    assert!(!batch.push(b"x", 4, 4.0));
    assert_eq!(batch.len(), 3);
}

// ---------------------------------------------------------------- ShardCache

#[test]
fn absorb_deduplicates_last_write_wins() {
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    let replaced = cache.absorb(&batch_of(&[("a", 10, 1.0), ("a", 20, 2.0), ("a", 10, 3.0), ("b", 10, 4.0)]));
    assert_eq!(replaced, 1, "the second a@10 replaced the first");
    let replaced = cache.absorb(&batch_of(&[("a", 20, 5.0), ("b", 5, 6.0)]));
    assert_eq!(replaced, 1);
    assert_eq!((cache.len_points(), cache.len_metrics()), (4, 2));
    let mut q = Vec::new();
    cache.query_into(b"a", &mut q);
    assert_eq!(q, vec![(10, 3.0), (20, 5.0)]);
    let mut out = Vec::new();
    assert_eq!(cache.take(b"b", &mut out), Some(2));
    assert_eq!(out, vec![(5, 6.0), (10, 4.0)]);
    assert_eq!(cache.take(b"b", &mut out), None, "nothing pending any more");
    assert_eq!((cache.len_points(), cache.len_metrics()), (2, 1));
}

#[test]
fn sorted_writes_most_points_first_each_once_per_pass() {
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    cache.absorb(&batch_of(&[("one", 1, 0.0), ("three", 1, 0.0), ("three", 2, 0.0), ("three", 3, 0.0)]));
    cache.absorb(&batch_of(&[("two", 1, 0.0), ("two", 2, 0.0), ("also-one", 1, 0.0)]));
    let mut buf = Vec::new();
    assert_eq!(cache.pop_next(0, &mut buf).map(|p| p.name.to_vec()), Some(b"three".to_vec()));
    // New points during a pass wait for the next pass, even for a metric already written.
    cache.absorb(&batch_of(&[("three", 4, 0.0), ("three", 5, 0.0), ("three", 6, 0.0), ("three", 7, 0.0)]));
    let drained = drain_all(&mut cache, 0);
    // Equal counts keep slab (first-seen) order.
    assert_eq!(names(&drained), vec!["two", "one", "also-one", "three"]);
    assert_eq!(drained[3].1.len(), 4);
    assert_eq!(cache.len_points(), 0);
}

#[test]
fn max_always_takes_the_biggest() {
    for strategy in [DrainStrategy::Max, DrainStrategy::BucketMax] {
        let mut cache = ShardCache::new(0, 1, strategy);
        cache.absorb(&batch_of(&[("a", 1, 0.0), ("b", 1, 0.0), ("b", 2, 0.0), ("c", 1, 0.0)]));
        let mut buf = Vec::new();
        assert_eq!(cache.pop_next(0, &mut buf).unwrap().name, b"b");
        cache.absorb(&batch_of(&[("c", 2, 0.0), ("c", 3, 0.0)]));
        // Unlike sorted, max looks at the cache as it is now.
        assert_eq!(names(&drain_all(&mut cache, 0)), vec!["c", "a"]);
    }
}

#[test]
fn naive_writes_each_metric_once() {
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Naive);
    cache.absorb(&batch_of(&[("x", 1, 0.0), ("y", 1, 0.0), ("y", 2, 0.0), ("z", 1, 0.0)]));
    let mut got = names(&drain_all(&mut cache, 0)).into_iter().map(String::from).collect::<Vec<_>>();
    got.sort();
    assert_eq!(got, vec!["x", "y", "z"]);
}

#[test]
fn timesorted_oldest_first_and_honours_the_lag() {
    let strategy = DrainStrategy::TimeSorted { min_timestamp_lag_s: 60 };
    let mut cache = ShardCache::new(0, 1, strategy);
    cache.absorb(&batch_of(&[("new", 1000, 0.0), ("old", 900, 0.0), ("old", 990, 0.0), ("mid", 950, 0.0)]));
    let mut buf = Vec::new();
    // At 1010 only "old" (oldest point 900, 110 s old) is past the 60 s lag; "mid" is exactly 60.
    assert_eq!(cache.pop_next(1010, &mut buf).unwrap().name, b"old");
    assert_eq!(buf, vec![(900, 0.0), (990, 0.0)]);
    assert!(cache.pop_next(1010, &mut buf).is_none(), "nothing else is old enough");
    assert_eq!(names(&drain_all(&mut cache, 1011)), vec!["mid"]);
    assert!(cache.pop_next(1011, &mut buf).is_none());
    // Shutdown: no lag any more, everything is written.
    cache.set_strategy(DrainStrategy::TimeSorted { min_timestamp_lag_s: 0 });
    assert_eq!(names(&drain_all(&mut cache, 1011)), vec!["new"]);

    let mut cache = ShardCache::new(0, 1, DrainStrategy::TimeSorted { min_timestamp_lag_s: 0 });
    cache.absorb(&batch_of(&[("c", 30, 0.0), ("a", 10, 0.0), ("b", 20, 0.0), ("a", 40, 0.0)]));
    assert_eq!(names(&drain_all(&mut cache, 0)), vec!["a", "b", "c"], "no lag: everything, oldest first");
}

#[test]
fn names_with_prefix_and_limit() {
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    cache.absorb(&batch_of(&[("web.a", 1, 0.0), ("web.b", 1, 0.0), ("db.a", 1, 0.0)]));
    let mut out = Vec::new();
    assert!(!cache.names_with_prefix(b"web.", 10, &mut out));
    let mut got: Vec<_> = out.iter().map(|n| n.to_vec()).collect();
    got.sort();
    assert_eq!(got, vec![b"web.a".to_vec(), b"web.b".to_vec()]);
    out.clear();
    assert!(cache.names_with_prefix(b"", 2, &mut out), "three names, limit two");
    assert_eq!(out.len(), 2);
    let mut buf = Vec::new();
    cache.take(b"web.a", &mut buf);
    out.clear();
    assert!(!cache.names_with_prefix(b"web.", 10, &mut out));
    assert_eq!(out, vec![Box::from(&b"web.b"[..])], "written metrics are no longer cached names");
}

#[test]
fn idle_metrics_are_evicted_and_come_back() {
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    cache.absorb(&batch_of(&[("a", 1, 1.0), ("b", 1, 1.0)]));
    assert_eq!(drain_all(&mut cache, 1000).len(), 2);
    cache.absorb(&batch_of(&[("b", 2, 2.0)]));
    // A new pass at now + EVICT_IDLE_S evicts "a" (empty and idle), keeps "b" (pending).
    assert_eq!(names(&drain_all(&mut cache, 1000 + EVICT_IDLE_S)), vec!["b"]);
    cache.absorb(&batch_of(&[("a", 3, 3.0)]));
    let drained = drain_all(&mut cache, 1000 + EVICT_IDLE_S);
    assert_eq!(drained, vec![("a".to_string(), vec![(3, 3.0)])]);
}

// ---------------------------------------------------------------- CacheSize

#[test]
fn flow_control_pauses_at_max_and_resumes_below_95_percent() {
    let size = CacheSize::new(Some(100), true);
    assert_eq!((size.pause_at(), size.resume_below(), size.hard_cap()), (100, 95, 105));
    assert!(size.try_reserve(99));
    assert!(!size.is_paused());
    assert!(size.try_reserve(1));
    assert!(size.is_paused(), "paused at 100");
    assert!(size.try_reserve(5), "accepted up to the 1.05 hard cap");
    assert!(!size.try_reserve(1));
    assert_eq!(size.stats().refusals, 1);
    size.release(10);
    assert!(size.is_paused(), "95 is not below 95 %");
    size.release(1);
    assert!(!size.is_paused(), "resumed at 94");
    assert!(size.try_reserve(5));
    assert!(!size.is_paused(), "99: inside the band, still running");
    assert_eq!(size.reserve_up_to(10), 6, "partial reservation up to the hard cap");
    assert!(size.is_paused());
    assert_eq!(size.points(), 105);
}

#[test]
fn without_flow_control_max_is_the_hard_cap() {
    let size = CacheSize::new(Some(10), false);
    assert!(size.try_reserve(10));
    assert!(!size.is_paused(), "receivers never pause without flow control");
    assert!(!size.try_reserve(1));
    size.record_dropped(1);
    assert_eq!(size.stats(), CacheSizeStats { points: 10, dropped: 1, refusals: 1, paused: false });

    let unlimited = CacheSize::new(None, true);
    assert!(unlimited.try_reserve(1 << 40));
    assert!(!unlimited.is_paused());
}

// ---------------------------------------------------------------- HandOff and Producer

#[test]
fn config_validation() {
    assert_eq!(CacheConfig::default().validate(), Ok(()));
    let c = CacheConfig { n_shards: 0, ..CacheConfig::default() };
    assert_eq!(c.validate(), Err(CacheConfigError::Zero { field: "n_shards" }));
    let c = CacheConfig { name_bytes_per_batch: 100, ..CacheConfig::default() };
    assert_eq!(c.validate(), Err(CacheConfigError::NameArenaTooSmall { value: 100 }));
    let c = CacheConfig { max_points: Some(0), ..CacheConfig::default() };
    assert!(c.validate().is_err());
    let c = CacheConfig { batch_points: 1 << 40, ..CacheConfig::default() };
    assert!(matches!(c.validate(), Err(CacheConfigError::TooLarge { field: "batch_points", .. })));
    // Reservation chunks: at most 5 % of the cache held unused by all producers together.
    assert_eq!(CacheConfig::default().reserve_chunk(), 64);
    assert_eq!(CacheConfig { max_points: Some(1000), n_producers: 4, ..CacheConfig::default() }.reserve_chunk(), 12);
    assert_eq!(CacheConfig { max_points: Some(10), ..CacheConfig::default() }.reserve_chunk(), 1);
}

#[test]
fn producers_pause_at_max_and_resume_below_95_percent() {
    let cfg = CacheConfig { max_points: Some(100), flow_control: true, reserve_chunk_points: 8, ..config(1, 64, 16) };
    let handoff = Arc::new(HandOff::new(&cfg).unwrap());
    let size = handoff.size().clone();
    let mut producer = Producer::new(handoff.clone()).unwrap();
    let mut ts = 0;
    while !size.is_paused() {
        producer.push(b"m", ts, 1.0).unwrap();
        ts += 1;
    }
    // Chunks of 100 / (20 × 2 producers) = 2 points: the 99th point reserved points 99 and 100.
    assert_eq!((ts, size.points()), (99, 100), "paused when 100 points were reserved");
    // What was read before the pause still fits, up to the hard cap of 105.
    while producer.push(b"m", ts, 1.0).is_ok() {
        ts += 1;
    }
    assert_eq!((ts, size.points()), (105, 105));
    producer.flush().unwrap();
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    handoff.drain_into(0, &mut cache, usize::MAX);
    let mut out = Vec::new();
    assert_eq!(cache.take(b"m", &mut out), Some(105));
    size.release(10);
    assert!(size.is_paused(), "95 points: not below 95 %");
    size.release(1);
    assert!(!size.is_paused());
    size.release(94);
    assert_eq!(size.points(), 0);
}

#[test]
fn producer_hands_full_batches_and_flush_hands_the_rest() {
    let handoff = Arc::new(HandOff::new(&config(1, 4, 2)).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    for ts in 0..3 {
        producer.push(b"m", ts, 1.0).unwrap();
    }
    let first = handoff.pop_full(0).expect("the full batch went at once");
    assert_eq!(first.len(), 2);
    handoff.recycle(0, first);
    assert!(handoff.pop_full(0).is_none(), "the third point waits for flush");
    assert_eq!(producer.pending_points(), 1);
    producer.flush().unwrap();
    assert_eq!(handoff.pop_full(0).map(|b| b.len()), Some(1));
}

#[test]
fn queue_full_refuses_without_losing_accepted_points() {
    let handoff = Arc::new(HandOff::new(&config(1, 1, 1)).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    producer.push(b"m", 1, 1.0).unwrap(); // handed at once (batch of one)
    producer.push(b"m", 2, 2.0).unwrap(); // full batch kept: the queue holds one
    assert_eq!(producer.push(b"m", 3, 3.0), Err(Refused::QueueFull));
    assert_eq!(producer.flush(), Err(Refused::QueueFull));
    assert_eq!(handoff.size().points(), 2, "two accepted, one refused");
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    assert_eq!(handoff.drain_into(0, &mut cache, 10), 1);
    producer.flush().unwrap();
    assert_eq!(handoff.drain_into(0, &mut cache, 10), 1);
    let mut out = Vec::new();
    assert_eq!(cache.take(b"m", &mut out), Some(2));
    assert_eq!(out, vec![(1, 1.0), (2, 2.0)]);
    handoff.size().release(2);
    drop(producer);
    handoff.check_quiescent().unwrap();
    assert_eq!(handoff.size().points(), 0);
}

#[test]
fn cache_full_and_name_too_long_are_refused() {
    let cfg = CacheConfig { max_points: Some(2), flow_control: false, ..config(2, 4, 8) };
    let handoff = Arc::new(HandOff::new(&cfg).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    producer.push(b"a", 1, 1.0).unwrap();
    producer.push(b"b", 1, 1.0).unwrap();
    assert_eq!(producer.push(b"c", 1, 1.0), Err(Refused::CacheFull));
    let long = vec![b'x'; MAX_NAME_BYTES + 1];
    assert_eq!(producer.push(&long, 1, 1.0), Err(Refused::NameTooLong));
    producer.push(&long[..MAX_NAME_BYTES], 1, 1.0).expect_err("the cache is still full");
}

#[test]
fn producers_are_limited_to_the_pool_size() {
    let handoff = Arc::new(HandOff::new(&config(1, 1, 1)).unwrap());
    let a = Producer::new(handoff.clone()).unwrap();
    let _b = Producer::new(handoff.clone()).unwrap();
    assert!(Producer::new(handoff.clone()).is_none(), "n_producers = 2");
    drop(a);
    assert!(Producer::new(handoff.clone()).is_some());
}

#[test]
fn dropping_a_producer_counts_what_it_could_not_hand_off() {
    let handoff = Arc::new(HandOff::new(&config(1, 1, 1)).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    producer.push(b"m", 1, 1.0).unwrap();
    producer.push(b"m", 2, 1.0).unwrap();
    drop(producer);
    let stats = handoff.size().stats();
    assert_eq!((stats.points, stats.dropped), (1, 1), "one queued, one counted as dropped");
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    handoff.drain_into(0, &mut cache, 1);
    handoff.check_quiescent().unwrap();
}

#[test]
fn duplicates_are_released_when_absorbed() {
    let handoff = Arc::new(HandOff::new(&config(1, 8, 4)).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    for value in 0..3 {
        producer.push(b"m", 60, f64::from(value)).unwrap();
    }
    producer.push(b"m", 120, 9.0).unwrap();
    producer.flush().unwrap();
    assert_eq!(handoff.size().points(), 4, "counted at accept time");
    let mut cache = ShardCache::new(0, 1, DrainStrategy::Sorted);
    handoff.drain_into(0, &mut cache, 8);
    assert_eq!(handoff.size().points(), 2, "carbon's size: duplicates do not count");
    let mut out = Vec::new();
    let popped = cache.pop_next(0, &mut out).unwrap();
    assert_eq!(popped.entries, 2);
    handoff.size().release(popped.entries);
    assert_eq!(out, vec![(60, 2.0), (120, 9.0)]);
    assert_eq!(handoff.size().points(), 0);
}

#[test]
fn points_route_to_their_shard() {
    let handoff = Arc::new(HandOff::new(&config(4, 8, 64)).unwrap());
    let mut producer = Producer::new(handoff.clone()).unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    for name in &names {
        producer.push(name.as_bytes(), 1, 1.0).unwrap();
    }
    producer.flush().unwrap();
    for shard_idx in 0..4 {
        while let Some(batch) = handoff.pop_full(shard_idx) {
            assert!(batch.iter().all(|(name, _, _)| shard_of(name, 4) == shard_idx));
            handoff.recycle(shard_idx, batch);
        }
    }
}

// ---------------------------------------------------------------- queries

#[test]
fn queries_are_answered_by_message() {
    let n_shards = 2;
    let mut caches: Vec<ShardCache> =
        (0..n_shards).map(|s| ShardCache::new(s, n_shards, DrainStrategy::Sorted)).collect();
    for name in ["web.a", "web.b", "db.a"] {
        let mut batch = Batch::new(4, MAX_NAME_BYTES);
        batch.push(name.as_bytes(), 20, 2.0);
        batch.push(name.as_bytes(), 10, 1.0);
        caches[shard_of(name.as_bytes(), n_shards)].absorb(&batch);
    }
    let (tx, rx) = flume::bounded(8);
    let (q1, a1) = CacheQuery::points(b"web.b");
    let (q2, a2) = CacheQuery::names_with_prefix(b"web.", 10);
    let (q3, a3) = CacheQuery::sizes();
    let (q4, a4) = CacheQuery::points(b"nothing");
    let (q5, a5) = CacheQuery::sizes();
    for q in [q1, q2, q3, q4, q5] {
        tx.send(q).unwrap();
    }
    drop(a5); // the asker gave up: answering must not fail
    assert_eq!(serve_queries(&caches, &rx, 3), 3, "at most max_queries per call");
    assert_eq!(serve_queries(&caches, &rx, 10), 2);
    assert_eq!(a1.recv().unwrap(), vec![(10, 1.0), (20, 2.0)]);
    let mut names = a2.recv().unwrap();
    names.names.sort();
    assert_eq!(names, NamesAnswer { names: vec![b"web.a"[..].into(), b"web.b"[..].into()], truncated: false });
    assert_eq!(a3.recv().unwrap(), CacheSizes { points: 6, metrics: 3 });
    assert_eq!(a4.recv().unwrap(), vec![]);

    // Several metrics in one round trip, in the order asked; an idle writer answers at once.
    let (q, a) = CacheQuery::points_many(vec![b"db.a"[..].into(), b"nothing"[..].into(), b"web.a"[..].into()]);
    tx.send(q).unwrap();
    assert_eq!(wait_and_serve_queries(&caches, &rx, 10, std::time::Duration::from_secs(5)), 1);
    assert_eq!(a.recv().unwrap(), vec![vec![(10, 1.0), (20, 2.0)], vec![], vec![(10, 1.0), (20, 2.0)]]);
    assert_eq!(wait_and_serve_queries(&caches, &rx, 10, std::time::Duration::from_millis(1)), 0);
}

// ---------------------------------------------------------------- stress

/// One point per id: a unique (name, timestamp), the id as the value.
fn point_of(producer_idx: u64, i: u64, name: &mut Vec<u8>) -> (i64, f64) {
    use std::io::Write as _;
    name.clear();
    write!(name, "stress.p{producer_idx}.m{}", i % 97).expect("writing to a Vec");
    ((i / 97) as i64, (producer_idx << 32 | i) as f64)
}

/// A producer thread: TCP-like ones (even index) retry refused points, UDP-like ones drop them.
fn stress_producer(handoff: Arc<HandOff>, producer_idx: u64, n_points: u64) -> (Vec<u64>, u64) {
    let mut producer = Producer::new(handoff.clone()).expect("four producers allowed");
    let (mut accepted, mut dropped) = (Vec::with_capacity(n_points as usize), 0);
    let mut name = Vec::new();
    for i in 0..n_points {
        let (ts, value) = point_of(producer_idx, i, &mut name);
        loop {
            match producer.push(&name, ts, value) {
                Ok(()) => accepted.push(value as u64),
                Err(_) if producer_idx % 2 == 0 => {
                    let _ = producer.flush();
                    std::thread::yield_now();
                    continue;
                }
                Err(_) => {
                    handoff.size().record_dropped(1);
                    dropped += 1;
                }
            }
            break;
        }
        if i % 256 == 255 {
            let _ = producer.flush();
        }
    }
    while producer.flush().is_err() {
        std::thread::yield_now();
    }
    (accepted, dropped)
}

/// A writer thread owning shards `{s | s % n_writers == writer_idx}`: drains, writes, releases.
fn stress_writer(handoff: Arc<HandOff>, writer_idx: usize, n_writers: usize, done: Arc<AtomicBool>) -> Vec<u64> {
    let n_shards = handoff.config().n_shards;
    let strategies = [DrainStrategy::Sorted, DrainStrategy::Max, DrainStrategy::Naive];
    let mut caches: Vec<ShardCache> = (writer_idx..n_shards)
        .step_by(n_writers)
        .map(|s| ShardCache::new(s, n_shards, strategies[s % strategies.len()]))
        .collect();
    let (mut written, mut buf) = (Vec::new(), Vec::new());
    loop {
        // Read `done` before draining: if it was set, every point is queued by now.
        let finished = done.load(Ordering::SeqCst);
        let mut progress = false;
        for cache in &mut caches {
            progress |= handoff.drain_into(cache.shard_idx(), cache, 4) > 0;
            for _ in 0..8 {
                let Some(popped) = cache.pop_next(0, &mut buf) else { break };
                written.extend(buf.iter().map(|&(_, v)| v as u64));
                handoff.size().release(popped.entries);
                progress = true;
            }
        }
        if finished && !progress && caches.iter().all(|c| c.len_points() == 0) {
            return written;
        }
        if !progress {
            std::thread::yield_now();
        }
    }
}

#[test]
fn stress_four_producers_two_writers_every_point_once() {
    const PER_PRODUCER: u64 = 250_000;
    let cfg = CacheConfig {
        n_shards: 8,
        queue_depth: 4,
        batch_points: 64,
        name_bytes_per_batch: MAX_NAME_BYTES,
        n_producers: 4,
        max_points: Some(20_000),
        flow_control: true,
        reserve_chunk_points: 16,
    };
    let handoff = Arc::new(HandOff::new(&cfg).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (h, d) = (handoff.clone(), done.clone());
            std::thread::spawn(move || stress_writer(h, w, 2, d))
        })
        .collect();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let h = handoff.clone();
            std::thread::spawn(move || stress_producer(h, p, PER_PRODUCER))
        })
        .collect();
    let (mut accepted, mut dropped) = (Vec::new(), 0);
    for p in producers {
        let (a, d) = p.join().unwrap();
        accepted.extend(a);
        dropped += d;
    }
    done.store(true, Ordering::SeqCst);
    let mut written: Vec<u64> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert_eq!(accepted.len() as u64 + dropped, 4 * PER_PRODUCER, "every point accepted or refused");
    accepted.sort_unstable();
    written.sort_unstable();
    assert_eq!(written.len(), accepted.len(), "every accepted point written once");
    assert!(written == accepted, "the written points are exactly the accepted ones");
    assert_eq!(handoff.size().points(), 0);
    assert_eq!(handoff.size().stats().dropped, dropped);
    handoff.check_quiescent().unwrap();
}
