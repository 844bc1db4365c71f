//! Whisper engine micro-benchmarks: update_many on 1-, 3- and 5-archive files (1, 10 and 100 points
//! per call), through a cached handle with `pread`/`pwrite` (`handle`), through a cached handle
//! that maps the file (`mapped`: what the writer pool does with WRITER_MMAP on ext4 or tmpfs),
//! and opening the file per call (`open`: what whisper.py's `update_many(path, ...)` does), and a
//! fetch of one day at 10 s.
//!
//! Files live in a temporary directory, so they are in the page cache: this measures the
//! engine, not the disk. `benches/whisper_vs_python.sh` runs this and the same operations in
//! whisper.py in one go and writes the ratios to BENCHMARKS.md.

use std::path::{Path, PathBuf};

use carbyne::whisper::{create, parse_retentions, CreateOptions, Point, Whisper, WriteOptions};

const MAPPED: WriteOptions = WriteOptions { lock_writes: false, autoflush: false, fadvise_random: false, mmap: true };

/// Opens a file mapped, and stops the bench if this file system refuses mappings (a `mapped`
/// row that measured `pwrite` would be a lie).
fn open_mapped(path: &Path) -> Whisper {
    let file = Whisper::open(path, MAPPED).expect("open");
    assert!(file.is_mapped(), "{} is not mapped: run the bench on ext4 or tmpfs", path.display());
    file
}
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// The schemas of the comparison; the same strings are in benches/reference/whisper_bench.py.
const SCHEMAS: [(&str, &str); 3] =
    [("1-archive", "10s:1d"), ("3-archive", "10s:6h,1m:7d,10m:5y"), ("5-archive", "10s:6h,1m:1d,5m:7d,1h:90d,1d:5y")];
const T0: i64 = 1_700_000_000;
const STEP: i64 = 10;
/// The bench clock wraps after ten years: criterion runs millions of calls, and timestamps must
/// stay below 2106 (whisper's u32). Going back in time is fine for the engine: slots are reused.
const WRAP: i64 = 10 * 365 * 86400;

fn advance(now: i64, by: i64) -> i64 {
    T0 + (now - T0 + by) % WRAP
}

fn make_file(dir: &Path, name: &str, schema: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wsp"));
    let archives = parse_retentions(schema).expect("valid schema");
    create(&path, &archives, &CreateOptions::default()).expect("create");
    path
}

/// Fills `points` with the next `n` consecutive 10 s points ending at `now`.
fn next_points(points: &mut Vec<Point>, now: i64, n: i64) {
    points.clear();
    points.extend((0..n).map(|i| (now - STEP * (n - 1 - i), (now % 1000) as f64 + i as f64 * 0.5)));
}

fn update_many(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("update_many");
    for (name, schema) in SCHEMAS {
        for n in [1i64, 10, 100] {
            group.throughput(Throughput::Elements(n as u64));
            let mut points = Vec::with_capacity(n as usize);
            for (variant, opts) in [("handle", WriteOptions::default()), ("mapped", MAPPED)] {
                let path = make_file(dir.path(), &format!("{name}-{n}-{variant}"), schema);
                let mut file = if opts.mmap { open_mapped(&path) } else { Whisper::open(&path, opts).expect("open") };
                let mut now = T0;
                group.bench_function(BenchmarkId::new(format!("{name}/{variant}"), n), |b| {
                    b.iter(|| {
                        now = advance(now, STEP * n);
                        next_points(&mut points, now, n);
                        file.update_many(&points, now).expect("update")
                    })
                });
            }
            let path = make_file(dir.path(), &format!("{name}-{n}-p"), schema);
            let mut now = T0;
            group.bench_function(BenchmarkId::new(format!("{name}/open"), n), |b| {
                b.iter(|| {
                    now = advance(now, STEP * n);
                    next_points(&mut points, now, n);
                    Whisper::open(&path, WriteOptions::default())
                        .and_then(|mut f| f.update_many(&points, now))
                        .expect("update")
                })
            });
        }
    }
    group.finish();
}

fn fetch_day(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_file(dir.path(), "day", "10s:1d");
    let mut file = Whisper::open(&path, WriteOptions::default()).expect("open");
    let now = T0 + 86400;
    let points: Vec<Point> = (0..8640).map(|i| (T0 + STEP * (i + 1), i as f64)).collect();
    file.update_many(&points, now).expect("fill");
    let mut group = c.benchmark_group("fetch");
    group.throughput(Throughput::Elements(8640));
    group.bench_function(BenchmarkId::new("1-archive/handle", "1d"), |b| {
        b.iter(|| file.fetch(now - 86400, Some(now), now, None).expect("fetch").expect("in range"))
    });
    let mut mapped = open_mapped(&path);
    group.bench_function(BenchmarkId::new("1-archive/mapped", "1d"), |b| {
        b.iter(|| mapped.fetch(now - 86400, Some(now), now, None).expect("fetch").expect("in range"))
    });
    group.bench_function(BenchmarkId::new("1-archive/open", "1d"), |b| {
        b.iter(|| {
            Whisper::open_read_only(&path).and_then(|mut f| f.fetch(now - 86400, Some(now), now, None)).expect("fetch")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = update_many, fetch_day
}
criterion_main!(benches);
