//! Loom models of the hand-off protocol and the size accounting (`--cfg carbyne_loom` only).
//!
//! Run: `RUSTFLAGS="--cfg carbyne_loom" cargo test --release --lib cache::loom_tests`
//!
//! Loom explores every interleaving of the atomics and locks in `sync.rs` (up to the
//! preemption bound below). The shard queues are a `Mutex<VecDeque>` model with `ArrayQueue`'s
//! API here, so what is checked is *our* protocol on top of a correct bounded queue: points
//! accepted or refused, batches handed, drained and recycled, the global size reserved and
//! released, the pause flag. `ArrayQueue` itself is crossbeam's, checked by their own tests;
//! the multi-threaded stress test in `tests.rs` runs this protocol on the real `ArrayQueue`.

use std::sync::Arc;

use loom::thread;

use super::*;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Pops every queued batch of shard 0, records its values, recycles it, releases its points.
fn drain(handoff: &HandOff, received: &mut Vec<u64>) {
    while let Some(batch) = handoff.pop_full(0) {
        received.extend(batch.iter().map(|(_, _, v)| v as u64));
        handoff.size().release(batch.len() as u64);
        handoff.recycle(0, batch);
    }
}

/// Two producers and one consumer on one shard, with a queue of one batch, batches of one
/// point, a pool of five batches and a cache of three points: every point pushed is either
/// received exactly once or refused to its producer; every batch ends back in the free list
/// exactly once; the size returns to zero.
#[test]
fn two_producers_one_consumer_every_point_once() {
    model(|| {
        let config = CacheConfig {
            n_shards: 1,
            queue_depth: 1,
            batch_points: 1,
            name_bytes_per_batch: MAX_NAME_BYTES,
            n_producers: 2,
            max_points: Some(3),
            flow_control: false,
            reserve_chunk_points: 1,
        };
        let handoff = Arc::new(HandOff::new(&config).expect("valid config"));
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let handoff = handoff.clone();
                thread::spawn(move || {
                    let mut producer = Producer::new(handoff).expect("two producers allowed");
                    let mut accepted = Vec::new();
                    for i in 0..2u64 {
                        let id = p * 10 + i;
                        match producer.push(b"m", id as i64, id as f64) {
                            Ok(()) => accepted.push(id),
                            Err(refused) => assert_ne!(refused, Refused::NameTooLong),
                        }
                    }
                    let _ = producer.flush();
                    (producer, accepted)
                })
            })
            .collect();
        let consumer = {
            let handoff = handoff.clone();
            thread::spawn(move || {
                let mut received = Vec::new();
                for _ in 0..2 {
                    match handoff.pop_full(0) {
                        Some(batch) => {
                            received.extend(batch.iter().map(|(_, _, v)| v as u64));
                            handoff.size().release(batch.len() as u64);
                            handoff.recycle(0, batch);
                        }
                        None => thread::yield_now(),
                    }
                }
                received
            })
        };
        let mut received = consumer.join().expect("consumer");
        let mut accepted = Vec::new();
        for p in producers {
            let (mut producer, a) = p.join().expect("producer");
            accepted.extend(a);
            // Shutdown: drain and flush until everything accepted has been handed over.
            loop {
                drain(&handoff, &mut received);
                if producer.flush().is_ok() {
                    break;
                }
            }
        }
        drain(&handoff, &mut received);
        accepted.sort_unstable();
        received.sort_unstable();
        assert_eq!(received, accepted, "each accepted point received exactly once");
        assert_eq!(handoff.size().points(), 0);
        assert_eq!(handoff.size().stats().dropped, 0);
        handoff.check_quiescent().expect("every batch recycled exactly once");
    });
}

/// The pause flag follows the count whatever the interleaving: a release from full to empty
/// races a reservation that fits only before or after it.
#[test]
fn pause_flag_follows_the_size() {
    model(|| {
        let size = Arc::new(CacheSize::new(Some(20), true));
        assert!(size.try_reserve(20));
        assert!(size.is_paused());
        let releaser = {
            let size = size.clone();
            thread::spawn(move || size.release(20))
        };
        let reserver = {
            let size = size.clone();
            thread::spawn(move || {
                let first = size.try_reserve(19);
                let second = size.try_reserve(1);
                (first, second)
            })
        };
        releaser.join().expect("releaser");
        let (first, second) = reserver.join().expect("reserver");
        let points = size.points();
        let expected = u64::from(first) * 19 + u64::from(second);
        assert_eq!(points, expected);
        // Either the release came first (0, then 19 from below the band, then 20: paused) or
        // the 19 was refused at the hard cap of 21 (then 1 point left: resumed).
        match points {
            20 => assert!(size.is_paused()),
            _ => assert!(!size.is_paused(), "{points} points, paused"),
        }
    });
}

/// The reservation chunks of two producers never exceed the hard cap together, and flush
/// returns what was not used.
#[test]
fn chunked_reservations_respect_the_cap() {
    model(|| {
        let size = Arc::new(CacheSize::new(Some(5), false));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let size = size.clone();
                thread::spawn(move || {
                    let got = size.reserve_up_to(4);
                    assert!(got <= 4);
                    size.release(got / 2);
                    got - got / 2
                })
            })
            .collect();
        let kept: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert!(kept <= 5);
        assert_eq!(size.points(), kept);
    });
}
