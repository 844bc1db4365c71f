//! Pickle receiver micro-benchmarks, in points per second: decoding a 1000-entry frame as
//! Python's `pickle.dumps(entries, protocol=2)` writes it (carbon-relay, graphite clients) and
//! as etsy statsd's pickle backend writes it (protocol 0, `LONG` timestamps, string values);
//! and, in bytes per second, the frame splitter cutting a stream of such frames read in 64 KiB
//! chunks.
//!
//! The frames are built here by a few lines that write the same opcodes as those senders; the
//! decoder's tests check it against CPython's own output.

use carbyne::protocol::pickle::{FrameSplitter, PickleDecoder, PickleLimits};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const ENTRIES: usize = 1000;
const T0: u32 = 1_700_000_000;

fn name(i: usize) -> String {
    format!("stats.timers.service-{:02}.endpoint_{i:04}.upper_90", i % 17)
}

fn value(i: usize) -> f64 {
    i as f64 * 0.25 + 0.125
}

/// `BINPUT`, or `LONG_BINPUT` past 255, with the next memo index: protocol 2 memoizes every
/// string and tuple.
fn memoize(out: &mut Vec<u8>, next: &mut u32) {
    match u8::try_from(*next) {
        Ok(idx) => out.extend_from_slice(&[b'q', idx]),
        Err(_) => {
            out.push(b'r');
            out.extend_from_slice(&next.to_le_bytes());
        }
    }
    *next += 1;
}

/// What `pickle.dumps([(name, (ts, value)), ...], protocol=2)` writes: `BINUNICODE` names,
/// `BININT` timestamps, `BINFLOAT` values, `TUPLE2`, and `APPENDS` in batches of 1000.
fn protocol_2_frame(n: usize) -> Vec<u8> {
    let mut out = vec![0x80, 2, b']'];
    let mut next = 0;
    memoize(&mut out, &mut next);
    for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
        out.push(b'(');
        for &i in batch {
            let name = name(i);
            out.push(b'X');
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            memoize(&mut out, &mut next);
            out.push(b'J');
            out.extend_from_slice(&(T0 + i as u32).to_le_bytes());
            out.push(b'G');
            out.extend_from_slice(&value(i).to_be_bytes());
            out.push(0x86);
            memoize(&mut out, &mut next);
            out.push(0x86);
            memoize(&mut out, &mut next);
        }
        out.push(b'e');
    }
    out.push(b'.');
    out
}

/// What statsd's `backends/graphite.js` writes with `graphiteProtocol: 'pickle'`.
fn statsd_frame(n: usize) -> Vec<u8> {
    let mut out = b"(l".to_vec();
    for i in 0..n {
        let entry = format!("(S'{}'\n(L{}L\nS'{}'\ntta", name(i), T0, value(i));
        out.extend_from_slice(entry.as_bytes());
    }
    out.push(b'.');
    out
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("pickle_decode");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    for (label, frame) in [("protocol-2", protocol_2_frame(ENTRIES)), ("statsd-protocol-0", statsd_frame(ENTRIES))] {
        let mut decoder = PickleDecoder::default();
        let mut sum = 0.0;
        let stats = decoder.decode(&frame, |_, ts, v| sum += ts + v).expect("frame decodes");
        assert_eq!((stats.points, stats.bad_entries), (ENTRIES, 0));
        group.bench_function(BenchmarkId::new(label, ENTRIES), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                let stats = decoder.decode(&frame, |name, ts, v| sum += ts + v + name.len() as f64);
                (stats, sum)
            })
        });
    }
    group.finish();
}

fn split(c: &mut Criterion) {
    let frame = protocol_2_frame(ENTRIES);
    let mut stream = Vec::new();
    for _ in 0..16 {
        stream.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        stream.extend_from_slice(&frame);
    }
    let mut group = c.benchmark_group("pickle_split");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    let mut splitter = FrameSplitter::new(PickleLimits::default().frame_len_max);
    group.bench_function(BenchmarkId::new("64KiB-reads", frame.len()), |b| {
        b.iter(|| {
            let mut frames = 0;
            for chunk in stream.chunks(64 * 1024) {
                splitter.feed(chunk, |f| frames += usize::from(f.is_ok()));
            }
            frames
        })
    });
    group.finish();
}

criterion_group!(benches, decode, split);
criterion_main!(benches);
