//! Render evaluation micro-benchmarks: what `/render` does after the data is read, on series
//! held in memory. Each case is one request's work through the library's public API (target
//! parsed, evaluated against a [`Store`], then consolidated and written out), swept over the
//! number of series the glob matches (10, 100, 1000) and reported in values per second (series
//! x values in the window).
//!
//! Cases: `fetch` (a bare glob: the store's slicing and copying, the floor under every other
//! case), `sumSeries`, `averageSeries`, `movingAverage` (10 points, which reads a look-back
//! window), `summarize` (1 h buckets, sum), `perSecond`, `aliasByNode`, `maxDataPoints`
//! (graphite-web's consolidation of already fetched series to 100 points, as Grafana asks) and
//! `json` (the JSON formatter over already fetched series).
//!
//! Leaves out: whisper reads and the writers' cached points (`benches/whisper.rs` and
//! `benches/cache.rs` time those; `tuning/experiments/render-*` times the whole server), HTTP.
//!
//! Data: `bench.host<i>.cpu`, one value a minute, 24 h in the window (1440 values) and 24 h of
//! look-back before it; one value in 50 is a gap (null), as a collector that misses a beat
//! leaves. Run: `cargo bench --bench render`.

use std::hint::black_box;
use std::time::Duration;

use carbyne::index::Pattern;
use carbyne::render::consolidate::{datapoints, max_data_points};
use carbyne::render::format::{json, JsonOptions};
use carbyne::render::{parse, Ctx, RenderError, Series, Spent, Store};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Seconds between values.
const STEP: i64 = 60;
/// Values in the request's window (24 h).
const WINDOW_POINTS: i64 = 1440;
/// The request's "now" and `until`, on the step grid.
const NOW: i64 = 1_700_000_040;
/// The request's `from` (exclusive, as whisper's fetch).
const FROM: i64 = NOW - WINDOW_POINTS * STEP;
/// First value the store holds: 24 h of look-back before the window.
const STORED_START: i64 = FROM - WINDOW_POINTS * STEP;
/// Values the store holds per series.
const STORED_POINTS: usize = 3 * WINDOW_POINTS as usize;
/// The swept number of series.
const SERIES_COUNTS: [usize; 3] = [10, 100, 1000];
/// maxDataPoints of the consolidation case (a narrow Grafana panel).
const MAX_DATA_POINTS: u64 = 100;

/// Series in memory, sorted by name, every one on the same grid from [`STORED_START`].
struct MemStore {
    series: Vec<(String, Vec<Option<f64>>)>,
}

impl MemStore {
    fn new(n_series: usize) -> MemStore {
        let mut series: Vec<(String, Vec<Option<f64>>)> = (0..n_series)
            .map(|i| {
                let values = (0..STORED_POINTS)
                    .map(|p| {
                        // A deterministic wave per host, a gap every 50 values.
                        let gap = (p + i) % 50 == 0;
                        (!gap).then(|| 50.0 + 40.0 * ((p as f64 / 90.0) + i as f64).sin())
                    })
                    .collect();
                (format!("bench.host{i}.cpu"), values)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        MemStore { series }
    }
}

impl Store for MemStore {
    fn find_leaves(&self, pattern: &str, limit: usize) -> Result<Vec<String>, RenderError> {
        let pattern = Pattern::parse(pattern).map_err(|e| RenderError::bad(e.to_string()))?;
        Ok(self.series.iter().map(|(name, _)| name).filter(|name| pattern.matches(name)).take(limit).cloned().collect())
    }

    /// Whisper's fetch rule: values for the intervals from the first step boundary after
    /// `from` to the first one after `until`, clipped to what is held.
    fn fetch(&self, path: &str, from: i64, until: i64, _now: i64) -> Result<Option<Series>, RenderError> {
        let Ok(found) = self.series.binary_search_by(|(name, _)| name.as_str().cmp(path)) else {
            return Ok(None);
        };
        let stored_end = STORED_START + STORED_POINTS as i64 * STEP;
        let first = (from - from.rem_euclid(STEP) + STEP).max(STORED_START);
        let end = (until - until.rem_euclid(STEP) + STEP).min(stored_end);
        if first >= end {
            return Ok(None);
        }
        let idx = |t: i64| ((t - STORED_START) / STEP) as usize;
        let values = self.series[found].1[idx(first)..idx(end)].to_vec();
        Ok(Some(Series::new(path, first, STEP, values)))
    }

    fn find_tagged(&self, _exprs: &[String], _limit: usize) -> Result<Vec<String>, RenderError> {
        Ok(Vec::new())
    }
}

/// Parses and evaluates `target` over the window, as one request does.
fn evaluate(store: &MemStore, target: &str) -> Vec<Series> {
    let expr = parse(target).expect("the bench's targets parse");
    let spent = Spent::default();
    let ctx = Ctx::new(store, FROM, NOW, NOW, &spent);
    ctx.eval(&expr).expect("the bench's targets evaluate")
}

/// The evaluated cases: (name, target).
const TARGETS: [(&str, &str); 7] = [
    ("fetch", "bench.host*.cpu"),
    ("sumSeries", "sumSeries(bench.host*.cpu)"),
    ("averageSeries", "averageSeries(bench.host*.cpu)"),
    ("movingAverage", "movingAverage(bench.host*.cpu,10)"),
    ("summarize", "summarize(bench.host*.cpu,'1h','sum')"),
    ("perSecond", "perSecond(bench.host*.cpu)"),
    ("aliasByNode", "aliasByNode(bench.host*.cpu,1)"),
];

fn functions(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n_series in SERIES_COUNTS {
        let store = MemStore::new(n_series);
        group.throughput(Throughput::Elements(n_series as u64 * WINDOW_POINTS as u64));
        for (name, target) in TARGETS {
            // Check once, outside the timing, that the case does what it says.
            let out = evaluate(&store, target);
            let expected_series = if name.ends_with("Series") { 1 } else { n_series };
            assert_eq!(out.len(), expected_series, "{target}");
            group.bench_with_input(BenchmarkId::new(name, n_series), &target, |b, target| {
                b.iter(|| evaluate(&store, black_box(target)))
            });
        }
    }
    group.finish();
}

fn output(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for n_series in SERIES_COUNTS {
        let store = MemStore::new(n_series);
        let fetched = evaluate(&store, "bench.host*.cpu");
        group.throughput(Throughput::Elements(n_series as u64 * WINDOW_POINTS as u64));

        let mut check = fetched.clone();
        max_data_points(&mut check, MAX_DATA_POINTS);
        assert!(check.iter().all(|s| datapoints(s).len() as u64 <= MAX_DATA_POINTS + 1));
        group.bench_with_input(BenchmarkId::new("maxDataPoints", n_series), &fetched, |b, fetched| {
            b.iter_batched(
                || fetched.clone(),
                |mut series| {
                    max_data_points(&mut series, MAX_DATA_POINTS);
                    series.iter().map(|s| datapoints(s).len()).sum::<usize>()
                },
                BatchSize::LargeInput,
            )
        });

        let opts = JsonOptions::default();
        assert!(json(&fetched, &opts).contains("\"target\":\"bench.host"));
        group.bench_with_input(BenchmarkId::new("json", n_series), &fetched, |b, fetched| {
            b.iter(|| json(black_box(fetched), &opts).len())
        });
    }
    group.finish();
}

criterion_group!(benches, functions, output);
criterion_main!(benches);
