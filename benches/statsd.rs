//! statsd micro-benchmarks: what an ingest thread does per datagram (`Partial::datagram`), and
//! what the flush thread does per interval (`State::merge` of the threads' partials, then
//! `State::flush`).
//!
//! - `datagram/1-line/<keys>` and `datagram/20-lines/<keys>`: a batch of 20 000 lines in
//!   datagrams of 1 or 20 lines, over 10 or 10 000 keys, fed to one `Partial`, which is then
//!   cleared as an ingest thread's hand-over clears it (the clear is inside the timing: keys are
//!   re-inserted every batch, as after every flush). Throughput in lines.
//! - `merge_flush/10k-keys`: two partials (two ingest threads) holding 10 000 keys between them,
//!   five lines per key, merged into a long-running `State` and flushed. Throughput in keys.
//!
//! The lines are a fixed mix: counters (a tenth with `@0.1`), timers, gauges (a quarter as
//! `+`/`-` deltas) and sets, each key keeping one type. Run with `cargo bench --bench statsd`.

use std::hint::black_box;
use std::sync::Arc;

use carbyne::config::StatsdOptions;
use carbyne::statsd::{Partial, State};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const NOW_S: i64 = 1_700_000_000;
const LINES_PER_BATCH: usize = 20_000;
const LINES_PER_KEY_FLUSHED: usize = 5;
/// The bound the server uses by default (maxPendingSamples): never reached here.
const MAX_HELD: usize = 4 << 20;

const _: () = assert!(LINES_PER_BATCH % 20 == 0, "whole 20-line datagrams");

/// A small deterministic generator (64-bit LCG, high bits), so every run sends the same lines.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// Line for key `key` (its type is `key % 4`), with values from `rng`.
fn line(key: usize, rng: &mut Lcg) -> String {
    let name = format!("app.server{:02}.metric{key}", key % 100);
    let r = rng.next();
    match key % 4 {
        0 if r % 10 == 0 => format!("{name}:{}|c|@0.1", r % 100),
        0 => format!("{name}:{}|c", 1 + r % 100),
        1 => format!("{name}:{}.{:03}|ms", r % 1000, (r >> 10) % 1000),
        2 if r % 4 == 0 => format!("{name}:{}{}|g", if r & 16 == 0 { '+' } else { '-' }, 1 + (r >> 5) % 10),
        2 => format!("{name}:{}|g", r % 1000),
        _ => format!("{name}:user{}|s", r % 50),
    }
}

/// `n_lines` lines over `n_keys` keys picked at random, joined `per_datagram` to a datagram.
fn datagrams(n_keys: usize, n_lines: usize, per_datagram: usize) -> Vec<Vec<u8>> {
    let mut rng = Lcg(n_keys as u64);
    let lines: Vec<String> = (0..n_lines)
        .map(|_| {
            let key = rng.next() as usize % n_keys;
            line(key, &mut rng)
        })
        .collect();
    lines.chunks(per_datagram).map(|chunk| chunk.join("\n").into_bytes()).collect()
}

fn bench_datagram(c: &mut Criterion) {
    for (label, per_datagram) in [("1-line", 1), ("20-lines", 20)] {
        let mut group = c.benchmark_group(format!("datagram/{label}"));
        group.throughput(Throughput::Elements(LINES_PER_BATCH as u64));
        for (keys_label, n_keys) in [("10", 10), ("10k", 10_000)] {
            let batch = datagrams(n_keys, LINES_PER_BATCH, per_datagram);
            let mut partial = Partial::new(MAX_HELD, true);
            group.bench_with_input(BenchmarkId::from_parameter(keys_label), &batch, |b, batch| {
                b.iter(|| {
                    for d in black_box(batch) {
                        partial.datagram(d, NOW_S);
                    }
                    assert_eq!(partial.lines, LINES_PER_BATCH as u64);
                    partial.clear();
                })
            });
        }
        group.finish();
    }
}

/// Two partials holding `n_keys` keys between them (even keys in one, odd in the other), each
/// key `LINES_PER_KEY_FLUSHED` times.
fn filled_partials(n_keys: usize) -> [Partial; 2] {
    let mut rng = Lcg(7);
    let mut partials = [Partial::new(MAX_HELD, true), Partial::new(MAX_HELD, true)];
    for _ in 0..LINES_PER_KEY_FLUSHED {
        for key in 0..n_keys {
            partials[key % 2].datagram(line(key, &mut rng).as_bytes(), NOW_S);
        }
    }
    partials
}

fn bench_merge_flush(c: &mut Criterion) {
    const N_KEYS: usize = 10_000;
    let mut group = c.benchmark_group("merge_flush");
    group.throughput(Throughput::Elements(N_KEYS as u64));
    // A state that has seen every key before, as in a long-running server (counters and timers
    // stay at 0 between flushes, gauges keep their values).
    let mut state = State::new(Arc::new(StatsdOptions::default()), NOW_S);
    let [mut a, mut b] = filled_partials(N_KEYS);
    state.merge(&mut [&mut a, &mut b]);
    let mut now_ms = (NOW_S + 10) * 1000;
    let _ = state.flush(now_ms);
    group.bench_function(BenchmarkId::from_parameter("10k-keys"), |bench| {
        bench.iter_batched(
            || filled_partials(N_KEYS),
            |[mut a, mut b]| {
                state.merge(&mut [&mut a, &mut b]);
                now_ms += 10_000;
                state.flush(now_ms)
            },
            BatchSize::LargeInput,
        )
    });
    // The shape of a flat-out sender's flush (tuning's statsd-full-speed): 300 timers with
    // 16,000 samples each, about 2 s of one sender at 8M lines/s, 30 % of them timers. The
    // sort and the running sums dominate.
    const N_TIMERS: usize = 300;
    const SAMPLES: usize = 16_000;
    let mut rng = Lcg(11);
    let lines: Vec<Vec<u8>> = (0..SAMPLES * N_TIMERS)
        .map(|i| format!("t.{}:{}.{:03}|ms", i % N_TIMERS, rng.next() % 1000, rng.next() % 1000).into_bytes())
        .collect();
    let timer_partial = || {
        let mut p = Partial::new(MAX_HELD, true);
        lines.iter().for_each(|line| p.line(line));
        p
    };
    group.throughput(Throughput::Elements((N_TIMERS * SAMPLES) as u64));
    group.sample_size(10);
    let mut state = State::new(Arc::new(StatsdOptions::default()), NOW_S);
    group.bench_function(BenchmarkId::from_parameter("300-timers-16k-samples"), |bench| {
        bench.iter_batched(
            timer_partial,
            |mut p| {
                state.merge(&mut [&mut p]);
                now_ms += 10_000;
                (state.flush(now_ms), p)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_datagram, bench_merge_flush
}
criterion_main!(benches);
