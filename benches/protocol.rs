//! Carbon plaintext parsing micro-benchmarks: `parse_line` on typical lines, `LineSplitter`
//! plus `parse_line` over a 1 MiB buffer read in 64 KiB chunks (what an ingest core does per
//! connection), `validate` on the names, and the value parser against `f64::from_str`.
//!
//! Each is swept over three line shapes (short, medium and long names) and reported twice:
//! in lines per second and in bytes per second. Run with `cargo bench --bench protocol`.

use std::hint::black_box;

use carbyne::protocol::{parse_float, parse_line, validate, LineSplitter};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const NOW: i64 = 1_700_000_000;
const BUFFER_BYTES: usize = 1 << 20;
const READ_BYTES: usize = 64 << 10;
const LINES_PER_BATCH: usize = 1024;

/// The swept shapes: a name template (`{}` becomes a host number) of increasing length.
const SHAPES: [(&str, &str); 3] = [
    ("short", "cpu{}.user"),
    ("medium", "servers.web{}.cpu.user"),
    ("long", "datacenter-eu-west-1.rack-17.servers.web{}.applications.checkout-service.http.requests.p99"),
];

/// Values as collectors send them: integers, short decimals, a longer decimal.
const VALUES: [&str; 4] = ["12.5", "1234", "0.25", "98.0625"];

fn line(shape: &str, i: usize) -> String {
    let name = shape.replace("{}", &format!("{:03}", i % 1000));
    format!("{name} {} {}\n", VALUES[i % VALUES.len()], NOW + (i % 60) as i64)
}

/// `n` lines of one shape, joined, each ending in `\n`.
fn lines(shape: &str, n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| line(shape, i).into_bytes()).collect()
}

/// About 1 MiB of whole lines.
fn buffer(shape: &str) -> (Vec<u8>, u64) {
    let mut out = Vec::with_capacity(BUFFER_BYTES + 256);
    let mut n_lines = 0u64;
    while out.len() < BUFFER_BYTES {
        out.extend_from_slice(line(shape, n_lines as usize).as_bytes());
        n_lines += 1;
    }
    (out, n_lines)
}

fn parse_batch(batch: &[&[u8]]) -> f64 {
    let mut sum = 0.0;
    for line in batch {
        if let Ok(point) = parse_line(line, NOW, 1) {
            sum += point.value;
        }
    }
    sum
}

fn bench_parse_line(c: &mut Criterion) {
    for (unit, bytes) in [("lines", false), ("bytes", true)] {
        let mut group = c.benchmark_group(format!("parse_line/{unit}"));
        for (label, shape) in SHAPES {
            let text = lines(shape, LINES_PER_BATCH);
            let batch: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
            let n_bytes = text.len() as u64;
            group.throughput(if bytes { Throughput::Bytes(n_bytes) } else { Throughput::Elements(batch.len() as u64) });
            group.bench_with_input(BenchmarkId::from_parameter(label), &batch, |b, batch| {
                b.iter(|| parse_batch(black_box(batch)))
            });
        }
        group.finish();
    }
}

/// Splits and parses `buffer` in reads of `READ_BYTES`, as an ingest core would.
fn split_and_parse(splitter: &mut LineSplitter, buffer: &[u8]) -> (f64, u64) {
    let (mut sum, mut n_points) = (0.0, 0u64);
    for read in buffer.chunks(READ_BYTES) {
        splitter.feed(read, |line| {
            if let Ok(point) = line.map_err(Into::into).and_then(|line| parse_line(line, NOW, 1)) {
                sum += point.value;
                n_points += 1;
            }
        });
    }
    (sum, n_points)
}

fn bench_split_parse(c: &mut Criterion) {
    for (unit, bytes) in [("lines", false), ("bytes", true)] {
        let mut group = c.benchmark_group(format!("split_parse_1MiB/{unit}"));
        for (label, shape) in SHAPES {
            let (buffer, n_lines) = buffer(shape);
            group.throughput(if bytes {
                Throughput::Bytes(buffer.len() as u64)
            } else {
                Throughput::Elements(n_lines)
            });
            let mut splitter = LineSplitter::new(16 << 10);
            group.bench_with_input(BenchmarkId::from_parameter(label), &buffer, |b, buffer| {
                b.iter(|| {
                    let (sum, n_points) = split_and_parse(&mut splitter, black_box(buffer));
                    assert_eq!(n_points, n_lines);
                    sum
                })
            });
        }
        group.finish();
    }
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_name/lines");
    for (label, shape) in SHAPES {
        let names: Vec<String> =
            (0..LINES_PER_BATCH).map(|i| shape.replace("{}", &format!("{:03}", i % 1000))).collect();
        group.throughput(Throughput::Elements(names.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &names, |b, names| {
            b.iter(|| black_box(names).iter().filter(|n| validate(n.as_bytes()).is_ok()).count())
        });
    }
    group.finish();
}

/// The hand-written decimal fast path against the standard library's parser, on the values
/// of the lines above: is the fast path worth its code?
fn bench_value(c: &mut Criterion) {
    let values: Vec<&str> = (0..LINES_PER_BATCH).map(|i| VALUES[i % VALUES.len()]).collect();
    let mut group = c.benchmark_group("value/lines");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("parse_float", |b| {
        b.iter(|| black_box(&values).iter().map(|v| parse_float(v.as_bytes()).unwrap_or(0.0)).sum::<f64>())
    });
    group.bench_function("f64_from_str", |b| {
        b.iter(|| black_box(&values).iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum::<f64>())
    });
    group.finish();

    // Shortest round-trip renderings of random doubles (16 to 17 significant digits, as the
    // load generator's random values and many collectors' ratios): too long for the fast path.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let long: Vec<String> = (0..LINES_PER_BATCH)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 1000.0).to_string()
        })
        .collect();
    let mut group = c.benchmark_group("value_long/lines");
    group.throughput(Throughput::Elements(long.len() as u64));
    group.bench_function("parse_float", |b| {
        b.iter(|| black_box(&long).iter().map(|v| parse_float(v.as_bytes()).unwrap_or(0.0)).sum::<f64>())
    });
    group.bench_function("f64_from_str", |b| {
        b.iter(|| black_box(&long).iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum::<f64>())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_parse_line, bench_split_parse, bench_validate, bench_value
}
criterion_main!(benches);
