//! The carbon plaintext protocol, written from its description and not from the `carbyne` crate,
//! so that a misreading in our server's parser is caught here instead of shared.
//!
//! One point per line: `<name> <value> <timestamp>\n`, fields separated by one ASCII space, the
//! value a decimal number and the timestamp whole Unix seconds. Carbon listens for it on TCP
//! 2003. A connection sends its metrics point by point in time order (every metric's point 0,
//! then every metric's point 1, ...), the way a collector reports each interval, so each metric's
//! own timestamps always increase on the wire.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;

use crate::decimal::{push_f64, push_u64};
use crate::report::{Report, RunInfo};
use crate::run::{connect_all, run_tcp, RunConfig};
use crate::sampler::{SampleBuf, Sampler};
use crate::sender::BatchSource;
use crate::sent::{Sent, SentPart};
use crate::workload::{partition_range, PointCursor, Workload};

/// Appends the line for point `point_idx` of metric `metric_idx`.
pub fn write_line(buf: &mut Vec<u8>, workload: &Workload, metric_idx: u64, point_idx: u64) {
    workload.names().write(buf, metric_idx);
    buf.push(b' ');
    push_f64(buf, workload.value(metric_idx, point_idx));
    buf.push(b' ');
    push_u64(buf, workload.timestamp(point_idx));
    buf.push(b'\n');
}

/// The lines of one connection: all points of a range of metrics, point-major.
#[derive(Debug, Clone)]
pub struct PlaintextSource<'w> {
    workload: &'w Workload,
    cursor: PointCursor,
    /// Sampled points of the batch being filled, for the visibility probe.
    samples: SampleBuf,
    /// Every line, formatted ahead of the run by [`PlaintextSource::record`]; `None` formats
    /// each batch as it is filled.
    recorded: Option<Recorded>,
}

/// A connection's whole stream, formatted before the clock starts, and how much of it was
/// handed out.
#[derive(Debug, Clone)]
struct Recorded {
    bytes: Vec<u8>,
    /// Bytes handed out so far: always just after a `\n` (or 0).
    pos: usize,
}

impl<'w> PlaintextSource<'w> {
    /// The lines for `metrics`, a range of the workload's metric indexes.
    pub fn new(workload: &'w Workload, metrics: Range<u64>) -> PlaintextSource<'w> {
        PlaintextSource::sampled(workload, metrics, None)
    }

    /// The lines for `metrics`, telling `sampler` when its points leave.
    pub fn sampled(workload: &'w Workload, metrics: Range<u64>, sampler: Option<Sampler>) -> PlaintextSource<'w> {
        PlaintextSource {
            workload,
            cursor: PointCursor::new(workload, metrics),
            samples: SampleBuf::new(sampler),
            recorded: None,
        }
    }

    /// The lines for `metrics`, all formatted now (about 50 bytes a point), so that sending
    /// them later costs a copy instead of formatting every number: a closed-loop run then
    /// measures how fast the server reads rather than how fast this process formats floats.
    /// The bytes are exactly those [`PlaintextSource::new`] would send. No visibility samples.
    pub fn recorded(workload: &'w Workload, metrics: Range<u64>) -> PlaintextSource<'w> {
        let mut live = PlaintextSource::new(workload, metrics);
        let mut bytes = Vec::new();
        live.fill(&mut bytes, u64::MAX, usize::MAX);
        bytes.shrink_to_fit();
        PlaintextSource { recorded: Some(Recorded { bytes, pos: 0 }), ..live }
    }
}

impl Recorded {
    /// Hands out whole lines as [`BatchSource::fill`] says: while fewer than `max_points` were
    /// appended and `buf` is shorter than `max_bytes`, one more line.
    fn fill(&mut self, buf: &mut Vec<u8>, max_points: u64, max_bytes: usize) -> u64 {
        let rest = &self.bytes[self.pos..];
        let room = max_bytes.saturating_sub(buf.len());
        if rest.is_empty() || room == 0 || max_points == 0 {
            return 0;
        }
        // The first line ending at or past `room` bytes closes the batch.
        let mut end = match rest.get(room - 1..).and_then(|tail| tail.iter().position(|&b| b == b'\n')) {
            Some(at) => room + at,
            None => rest.len(),
        };
        let mut n = count_lines(&rest[..end]);
        if n > max_points {
            end = nth_line_end(rest, max_points);
            n = max_points;
        }
        buf.extend_from_slice(&rest[..end]);
        self.pos += end;
        n
    }
}

/// Lines (`\n`) in `bytes`.
fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The offset just past the `n`-th `\n` of `bytes` (`n` at least 1), or `bytes.len()`.
fn nth_line_end(bytes: &[u8], n: u64) -> usize {
    let mut seen = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    bytes.len()
}

impl BatchSource for PlaintextSource<'_> {
    fn n_points(&self) -> u64 {
        self.cursor.n_total()
    }

    fn fill(&mut self, buf: &mut Vec<u8>, max_points: u64, max_bytes: usize) -> u64 {
        if let Some(recorded) = &mut self.recorded {
            return recorded.fill(buf, max_points, max_bytes);
        }
        self.samples.start_batch();
        let mut n = 0;
        while n < max_points && buf.len() < max_bytes {
            let Some((metric_idx, point_idx)) = self.cursor.peek() else { break };
            write_line(buf, self.workload, metric_idx, point_idx);
            self.samples.note(metric_idx, point_idx);
            self.cursor.advance();
            n += 1;
        }
        n
    }

    fn complete_points(&self, bytes: &[u8]) -> u64 {
        count_lines(bytes)
    }

    fn batch_written(&mut self) {
        self.samples.written();
    }
}

/// Sends the whole `workload` to `target` as plaintext over TCP, the metrics split among
/// `cfg.n_connections` connections. Fails only if a connection cannot be opened; everything that
/// goes wrong later is in the report.
pub fn run(target: SocketAddr, workload: &Workload, cfg: &RunConfig) -> io::Result<Report> {
    let all = 0..workload.spec().n_metrics;
    run_range(target, workload, all, cfg, Lines::Sampled(None)).map(|(report, _)| report)
}

/// When a run's lines are formatted.
#[derive(Debug, Clone)]
pub enum Lines {
    /// Batch by batch while sending, telling the sampler (if any) when its points leave.
    Sampled(Option<Sampler>),
    /// All of them before the clock starts ([`PlaintextSource::recorded`]), each connection's on
    /// its own thread.
    Recorded,
}

/// Sends the points of `metrics` (a range of `workload`'s metrics) to `target` as plaintext over
/// TCP, split among `cfg.n_connections` connections, the lines formatted as `lines` says.
/// Returns the report and what each connection sent, for `--verify`.
pub fn run_range(
    target: SocketAddr,
    workload: &Workload,
    metrics: Range<u64>,
    cfg: &RunConfig,
    lines: Lines,
) -> io::Result<(Report, Sent)> {
    let streams = connect_all(target, cfg.n_connections)?;
    let ranges = partition_range(metrics.clone(), cfg.n_connections);
    let recorded = matches!(lines, Lines::Recorded);
    let sources = match lines {
        Lines::Sampled(sampler) => {
            ranges.iter().map(|range| PlaintextSource::sampled(workload, range.clone(), sampler.clone())).collect()
        }
        Lines::Recorded => std::thread::scope(|scope| {
            let handles: Vec<_> =
                ranges.iter().map(|range| scope.spawn(|| PlaintextSource::recorded(workload, range.clone()))).collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        }),
    };
    let conns = run_tcp(streams, sources, cfg);
    let sent = Sent {
        parts: ranges.into_iter().zip(&conns).map(|(range, conn)| SentPart::prefix(range, conn.points_sent)).collect(),
    };
    let info = RunInfo::new("plaintext", target, workload, cfg).with_metrics(metrics).with_recorded(recorded);
    Ok((Report::new(info, conns), sent))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::{NamePattern, DEFAULT_PATTERN};
    use crate::workload::{ValuePattern, WorkloadSpec};

    fn tiny() -> Workload {
        let names = NamePattern::parse(DEFAULT_PATTERN, "t").unwrap();
        let spec = WorkloadSpec {
            n_metrics: 2,
            n_points: 2,
            start_ts: 1_000,
            interval_s: 10,
            seed: 1_234_567,
            values: ValuePattern::Random,
        };
        Workload::new(names, spec).unwrap()
    }

    fn all_bytes(source: &mut PlaintextSource<'_>) -> Vec<u8> {
        let mut buf = Vec::new();
        source.fill(&mut buf, u64::MAX, usize::MAX);
        buf
    }

    #[test]
    fn tiny_workload_exact_bytes() {
        // Values: outputs 0..4 of SplitMix64(1234567) (the reference vector), top 53 bits / 2^53
        // * 1000, printed by Python's repr (an independent shortest-round-trip printer). Output
        // k belongs to metric k / 2, point k % 2.
        let expected = "t.host0.cpu00 350.07954202140814 1000\n\
                        t.host0.cpu01 532.2073040624192 1000\n\
                        t.host0.cpu00 173.64409667091263 1010\n\
                        t.host0.cpu01 249.00765738229137 1010\n";
        let w = tiny();
        let mut source = PlaintextSource::new(&w, 0..2);
        assert_eq!(source.n_points(), 4);
        assert_eq!(String::from_utf8(all_bytes(&mut source)).unwrap(), expected);
        assert_eq!(source.fill(&mut Vec::new(), u64::MAX, usize::MAX), 0);
    }

    #[test]
    fn a_range_sends_only_its_metrics() {
        let w = tiny();
        let bytes = all_bytes(&mut PlaintextSource::new(&w, 1..2));
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|line| line.starts_with("t.host0.cpu01 ")));
        assert_eq!(all_bytes(&mut PlaintextSource::new(&w, 1..1)), b"");
    }

    /// 13 metrics x 5 points with three-level names.
    fn thirteen_by_five() -> Workload {
        let names = NamePattern::parse("{prefix}.{h}.{m}", "lg").unwrap();
        let spec = WorkloadSpec {
            n_metrics: 13,
            n_points: 5,
            start_ts: 0,
            interval_s: 60,
            seed: 9,
            values: ValuePattern::Random,
        };
        Workload::new(names, spec).unwrap()
    }

    #[test]
    fn recorded_batches_are_the_live_batches() {
        let w = thirteen_by_five();
        // (max_points, max_bytes, bytes already in the buffer) for each fill, cycled.
        let asks =
            [(1, usize::MAX, 0), (7, usize::MAX, 0), (u64::MAX, 1, 0), (u64::MAX, 100, 0), (3, 90, 40), (0, 99, 0)];
        let mut live = PlaintextSource::new(&w, 3..11);
        let mut recorded = PlaintextSource::recorded(&w, 3..11);
        assert_eq!(recorded.n_points(), live.n_points());
        let mut n_total = 0;
        for (k, &(max_points, max_bytes, prefix)) in asks.iter().cycle().enumerate().take(200) {
            let (mut a, mut b) = (vec![b'x'; prefix], vec![b'x'; prefix]);
            let n_live = live.fill(&mut a, max_points, max_bytes);
            let n_recorded = recorded.fill(&mut b, max_points, max_bytes);
            assert_eq!((n_recorded, &b), (n_live, &a), "fill {k}");
            assert_eq!(recorded.complete_points(&b[prefix..]), n_live);
            n_total += n_live;
        }
        assert_eq!(n_total, live.n_points());
        assert_eq!(recorded.fill(&mut Vec::new(), u64::MAX, usize::MAX), 0);
    }

    #[test]
    fn batches_concatenate_to_the_whole() {
        let w = thirteen_by_five();
        let whole = all_bytes(&mut PlaintextSource::new(&w, 3..11));
        for (max_points, max_bytes) in [(1, usize::MAX), (7, usize::MAX), (u64::MAX, 1), (u64::MAX, 100)] {
            let mut source = PlaintextSource::new(&w, 3..11);
            let (mut joined, mut n_total) = (Vec::new(), 0);
            loop {
                let mut batch = Vec::new();
                let n = source.fill(&mut batch, max_points, max_bytes);
                if n == 0 {
                    break;
                }
                assert!(n <= max_points);
                assert_eq!(source.complete_points(&batch), n);
                joined.extend_from_slice(&batch);
                n_total += n;
            }
            assert_eq!(joined, whole, "{max_points} points / {max_bytes} bytes");
            assert_eq!(n_total, source.n_points());
        }
    }
}
