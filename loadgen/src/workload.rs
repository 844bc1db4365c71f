//! The workload: which metrics get which timestamps and values, and which connection sends which
//! metrics. Pure: no I/O, no clock (the caller passes "now" in).
//!
//! Point `p` of metric `m` (`0 <= m < n_metrics`, `0 <= p < n_points`) has
//!
//! - name: the [`NamePattern`] applied to `m`;
//! - timestamp: `start_ts + p * interval_s` (Unix seconds);
//! - value: by the [`ValuePattern`] (`--values`):
//!   - `random` (the default): output number `k = m * n_points + p` of SplitMix64 seeded with
//!     `seed`, mapped to `[0, 1)` by its top 53 bits and scaled to `[0, VALUE_SPAN)`: fractional,
//!     with up to 17 significant digits;
//!   - `constant:V`: `V` for every point (`constant` alone: 1);
//!   - `sequence`: `p`, a counter that rises by one per point of each metric;
//!   - `sine:N`: `500 + 500 * sin(2 pi * ((p + m) mod N) / N)`, a wave of `N` points (`sine`
//!     alone: 60), each metric a point later in phase than the one before.
//!
//! The encoders print the shortest decimal that parses back to the very same `f64` (pickle
//! sends the double itself), so a server that stores doubles (whisper does) must return them bit
//! for bit. A value depends only on `(seed, m, p)`, `n_points` and the pattern: not on
//! connections, batching or pacing, so `--verify` recomputes any value alone.

use std::fmt;
use std::ops::Range;

use crate::name::NamePattern;
use crate::rng::{nth_output, unit_f64};

/// Random values lie in `[0, VALUE_SPAN)`, sine values in `[0, VALUE_SPAN]`.
pub const VALUE_SPAN: f64 = 1000.0;

/// Points per wave of `sine` without a number.
pub const SINE_PERIOD_DEFAULT: u64 = 60;

/// How a point's value is made; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValuePattern {
    /// Seeded SplitMix64 values in `[0, VALUE_SPAN)`.
    Random,
    /// The same finite value for every point.
    Constant(f64),
    /// The point index.
    Sequence,
    /// A sine wave of `period_points` points (at least 1), shifted one point per metric.
    Sine { period_points: u64 },
}

impl ValuePattern {
    /// Parses `random`, `constant[:V]`, `sequence` or `sine[:N]`.
    pub fn parse(text: &str) -> Result<ValuePattern, String> {
        let (kind, arg) = match text.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (text, None),
        };
        match (kind, arg) {
            ("random", None) => Ok(ValuePattern::Random),
            ("sequence", None) => Ok(ValuePattern::Sequence),
            ("constant", None) => Ok(ValuePattern::Constant(1.0)),
            ("constant", Some(v)) => match v.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(ValuePattern::Constant(v)),
                _ => Err(format!("constant:{v}: the value must be a finite number")),
            },
            ("sine", None) => Ok(ValuePattern::Sine { period_points: SINE_PERIOD_DEFAULT }),
            ("sine", Some(n)) => match n.parse::<u64>() {
                Ok(n) if n > 0 => Ok(ValuePattern::Sine { period_points: n }),
                _ => Err(format!("sine:{n}: the period must be a whole number of points, at least 1")),
            },
            _ => Err(format!("unknown value pattern {text:?} (known: random, constant[:V], sequence, sine[:N])")),
        }
    }
}

impl fmt::Display for ValuePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValuePattern::Random => f.write_str("random"),
            ValuePattern::Constant(v) => write!(f, "constant:{v}"),
            ValuePattern::Sequence => f.write_str("sequence"),
            ValuePattern::Sine { period_points } => write!(f, "sine:{period_points}"),
        }
    }
}

/// The numbers that shape a workload; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadSpec {
    /// Distinct metrics (cardinality).
    pub n_metrics: u64,
    /// Points per metric.
    pub n_points: u64,
    /// Timestamp of point 0, Unix seconds.
    pub start_ts: u64,
    /// Seconds between a metric's consecutive points.
    pub interval_s: u64,
    /// Seed of the value generator.
    pub seed: u64,
    /// How values are made.
    pub values: ValuePattern,
}

/// A validated workload: every timestamp and point index fits in a `u64`.
#[derive(Debug, Clone)]
pub struct Workload {
    names: NamePattern,
    spec: WorkloadSpec,
    /// `n_metrics * n_points`, checked not to overflow.
    n_total_points: u64,
}

/// Why a workload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadError {
    /// `n_metrics` is 0.
    NoMetrics,
    /// `n_points` is 0.
    NoPoints,
    /// `interval_s` is 0: a metric's points would share a timestamp and overwrite each other.
    ZeroInterval,
    /// `n_metrics * n_points` overflows a `u64`.
    TooManyPoints,
    /// The last timestamp overflows a `u64`.
    TimestampOverflow,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadError::NoMetrics => "at least one metric is needed",
            WorkloadError::NoPoints => "at least one point per metric is needed",
            WorkloadError::ZeroInterval => "the interval must be at least 1 second",
            WorkloadError::TooManyPoints => "metrics x points overflows 64 bits",
            WorkloadError::TimestampOverflow => "start + points x interval overflows 64 bits",
        })
    }
}

impl std::error::Error for WorkloadError {}

impl Workload {
    /// Validates `spec` and pairs it with its names.
    pub fn new(names: NamePattern, spec: WorkloadSpec) -> Result<Workload, WorkloadError> {
        if spec.n_metrics == 0 {
            return Err(WorkloadError::NoMetrics);
        }
        if spec.n_points == 0 {
            return Err(WorkloadError::NoPoints);
        }
        if spec.interval_s == 0 {
            return Err(WorkloadError::ZeroInterval);
        }
        let n_total_points = spec.n_metrics.checked_mul(spec.n_points).ok_or(WorkloadError::TooManyPoints)?;
        (spec.n_points - 1)
            .checked_mul(spec.interval_s)
            .and_then(|span| span.checked_add(spec.start_ts))
            .ok_or(WorkloadError::TimestampOverflow)?;
        Ok(Workload { names, spec, n_total_points })
    }

    /// The name template.
    pub fn names(&self) -> &NamePattern {
        &self.names
    }

    /// The numbers this workload was built from.
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// Points in the whole workload: `n_metrics * n_points`.
    pub fn n_total_points(&self) -> u64 {
        self.n_total_points
    }

    /// Timestamp of point `point_idx` (of any metric).
    pub fn timestamp(&self, point_idx: u64) -> u64 {
        debug_assert!(point_idx < self.spec.n_points);
        self.spec.start_ts + point_idx * self.spec.interval_s
    }

    /// Timestamp of the last point (of any metric).
    pub fn last_timestamp(&self) -> u64 {
        self.timestamp(self.spec.n_points - 1)
    }

    /// Value of point `point_idx` of metric `metric_idx`.
    pub fn value(&self, metric_idx: u64, point_idx: u64) -> f64 {
        debug_assert!(metric_idx < self.spec.n_metrics && point_idx < self.spec.n_points);
        match self.spec.values {
            ValuePattern::Random => {
                let k = metric_idx * self.spec.n_points + point_idx;
                unit_f64(nth_output(self.spec.seed, k)) * VALUE_SPAN
            }
            ValuePattern::Constant(v) => v,
            ValuePattern::Sequence => point_idx as f64,
            ValuePattern::Sine { period_points } => {
                // The phase is reduced to one period in integers first, so the argument of `sin`
                // stays small and exact whatever the indexes.
                let n = period_points.max(1);
                let phase = (point_idx % n + metric_idx % n) % n;
                let half = VALUE_SPAN / 2.0;
                half + half * (std::f64::consts::TAU * phase as f64 / n as f64).sin()
            }
        }
    }
}

/// The default first timestamp: `n_points` intervals before `now_ts`, rounded down to a multiple
/// of the interval, so the last point lands within one interval before now and each point falls
/// on its own whisper slot for a retention of that interval.
pub fn default_start_ts(now_ts: u64, n_points: u64, interval_s: u64) -> u64 {
    let interval_s = interval_s.max(1);
    let back = n_points.saturating_mul(interval_s);
    now_ts.saturating_sub(back) / interval_s * interval_s
}

/// Splits metrics `0..n_metrics` into `n_parts` contiguous ranges, in order, whose sizes differ by
/// at most one; every metric is in exactly one range. With more parts than metrics some ranges
/// are empty.
pub fn partition(n_metrics: u64, n_parts: usize) -> Vec<Range<u64>> {
    let bound = |part: usize| -> u64 {
        // u128 so that n_metrics * part cannot overflow; the quotient is <= n_metrics.
        (u128::from(n_metrics) * part as u128 / n_parts as u128) as u64
    };
    (0..n_parts).map(|part| bound(part)..bound(part + 1)).collect()
}

/// Splits the metrics `range` into `n_parts` contiguous ranges as [`partition`] does.
pub fn partition_range(range: Range<u64>, n_parts: usize) -> Vec<Range<u64>> {
    partition(range.end - range.start, n_parts)
        .into_iter()
        .map(|r| r.start + range.start..r.end + range.start)
        .collect()
}

/// Walks the points of a range of metrics in the order a sender sends them: every metric's point
/// 0, then every metric's point 1, and so on ("point-major"). The position in that order is the
/// point's *offset*: point `p` of metric `m` is offset `p * width + (m - metrics.start)`, with
/// `width` the number of metrics in the range.
#[derive(Debug, Clone)]
pub struct PointCursor {
    /// The metrics walked.
    metrics: Range<u64>,
    /// Points per metric.
    n_points: u64,
    /// Next metric; within `metrics` unless `metrics` is empty.
    next_metric: u64,
    /// Next point index; `n_points` once exhausted.
    next_point: u64,
    /// Points passed so far: the offset of the next point.
    offset: u64,
}

impl PointCursor {
    /// The points of `metrics` (a range of `workload`'s metric indexes).
    pub fn new(workload: &Workload, metrics: Range<u64>) -> PointCursor {
        assert!(metrics.end <= workload.spec().n_metrics, "metrics outside the workload");
        let n_points = workload.spec().n_points;
        let next_point = if metrics.is_empty() { n_points } else { 0 };
        PointCursor { next_metric: metrics.start, metrics, n_points, next_point, offset: 0 }
    }

    /// Points in the whole range.
    pub fn n_total(&self) -> u64 {
        (self.metrics.end - self.metrics.start) * self.n_points
    }

    /// The next point as `(metric, point)`, without moving; `None` once every point is passed.
    pub fn peek(&self) -> Option<(u64, u64)> {
        (self.next_point < self.n_points).then_some((self.next_metric, self.next_point))
    }

    /// Moves past the next point (nothing once exhausted).
    pub fn advance(&mut self) {
        if self.next_point >= self.n_points {
            return;
        }
        self.offset += 1;
        self.next_metric += 1;
        if self.next_metric == self.metrics.end {
            self.next_metric = self.metrics.start;
            self.next_point += 1;
        }
    }

    /// The offset of the next point: how many were passed.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The metrics walked.
    pub fn metrics(&self) -> Range<u64> {
        self.metrics.clone()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::DEFAULT_PATTERN;

    fn spec(n_metrics: u64, n_points: u64) -> WorkloadSpec {
        WorkloadSpec { n_metrics, n_points, start_ts: 1_000, interval_s: 10, seed: 1, values: ValuePattern::Random }
    }

    fn workload(spec: WorkloadSpec) -> Result<Workload, WorkloadError> {
        Workload::new(NamePattern::parse(DEFAULT_PATTERN, "t").unwrap(), spec)
    }

    #[test]
    fn partition_covers_every_metric_exactly_once() {
        let cases = [(1, 1), (10, 1), (10, 3), (10_001, 4), (7, 7), (3, 5), (100, 64), (1, 1024)];
        for (n_metrics, n_parts) in cases {
            let parts = partition(n_metrics, n_parts);
            assert_eq!(parts.len(), n_parts);
            let mut seen = vec![0u32; n_metrics as usize];
            for range in &parts {
                for m in range.clone() {
                    seen[m as usize] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{n_metrics} metrics / {n_parts}");
            let sizes: Vec<u64> = parts.iter().map(|r| r.end - r.start).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n_metrics} / {n_parts}: {sizes:?}");
        }
    }

    #[test]
    fn cursor_walks_point_major_with_offsets() {
        let w = workload(spec(5, 3)).unwrap();
        let mut cursor = PointCursor::new(&w, 1..4);
        assert_eq!(cursor.n_total(), 9);
        let mut seen = Vec::new();
        while let Some((m, p)) = cursor.peek() {
            assert_eq!(cursor.offset(), p * 3 + (m - 1), "offset of ({m}, {p})");
            seen.push((m, p));
            cursor.advance();
        }
        assert_eq!(seen, [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)]);
        cursor.advance();
        assert_eq!((cursor.offset(), cursor.peek()), (9, None));
        assert_eq!(PointCursor::new(&w, 2..2).peek(), None);
        assert_eq!(partition_range(10..20, 3), [10..13, 13..16, 16..20]);
    }

    #[test]
    fn partition_of_huge_counts_does_not_overflow() {
        let parts = partition(u64::MAX, 3);
        assert_eq!(parts[0].start, 0);
        assert_eq!(parts[2].end, u64::MAX);
        assert_eq!(parts[0].end, parts[1].start);
        assert_eq!(parts[1].end, parts[2].start);
    }

    #[test]
    fn timestamps_and_values() {
        let w = workload(spec(3, 4)).unwrap();
        let ts: Vec<u64> = (0..4).map(|p| w.timestamp(p)).collect();
        assert_eq!(ts, [1_000, 1_010, 1_020, 1_030]);
        let again = workload(spec(3, 4)).unwrap();
        for m in 0..3 {
            for p in 0..4 {
                let v = w.value(m, p);
                assert!((0.0..VALUE_SPAN).contains(&v));
                assert_eq!(v.to_bits(), again.value(m, p).to_bits());
            }
        }
        assert_ne!(w.value(0, 0), w.value(0, 1));
        let other_seed = workload(WorkloadSpec { seed: 2, ..spec(3, 4) }).unwrap();
        assert_ne!(w.value(0, 0), other_seed.value(0, 0));
    }

    #[test]
    fn value_patterns() {
        let with = |values| workload(WorkloadSpec { values, ..spec(3, 120) }).unwrap();
        let w = with(ValuePattern::Constant(-2.5));
        assert!((0..3).all(|m| (0..120).all(|p| w.value(m, p) == -2.5)));
        let w = with(ValuePattern::Sequence);
        assert_eq!([w.value(0, 0), w.value(2, 0), w.value(1, 7), w.value(2, 119)], [0.0, 0.0, 7.0, 119.0]);
        let w = with(ValuePattern::Sine { period_points: 4 });
        let wave: Vec<f64> = (0..5).map(|p| w.value(0, p)).collect();
        assert_eq!(wave[0], 500.0);
        assert_eq!(wave[1], 1000.0);
        assert!((wave[2] - 500.0).abs() < 1e-9 && wave[3].abs() < 1e-9);
        assert_eq!(wave[4], wave[0], "one period");
        assert_eq!(w.value(1, 0), w.value(0, 1), "each metric one point later in phase");
        let all: Vec<f64> = (0..120).map(|p| with(ValuePattern::Sine { period_points: 60 }).value(2, p)).collect();
        assert!(all.iter().all(|v| (0.0..=VALUE_SPAN).contains(v)));
    }

    #[test]
    fn value_pattern_flags() {
        let ok = |text: &str| ValuePattern::parse(text).unwrap();
        assert_eq!(ok("random"), ValuePattern::Random);
        assert_eq!(ok("constant"), ValuePattern::Constant(1.0));
        assert_eq!(ok("constant:-0.125"), ValuePattern::Constant(-0.125));
        assert_eq!(ok("sequence"), ValuePattern::Sequence);
        assert_eq!(ok("sine"), ValuePattern::Sine { period_points: 60 });
        assert_eq!(ok("sine:7"), ValuePattern::Sine { period_points: 7 });
        for text in ["random", "constant:-0.125", "sequence", "sine:7"] {
            assert_eq!(ok(text).to_string(), text);
        }
        for bad in
            ["", "walk", "constant:", "constant:nan", "constant:inf", "sine:0", "sine:-1", "sequence:2", "random:1"]
        {
            assert!(ValuePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_workloads() {
        assert_eq!(workload(spec(0, 1)).err(), Some(WorkloadError::NoMetrics));
        assert_eq!(workload(spec(1, 0)).err(), Some(WorkloadError::NoPoints));
        let zero = WorkloadSpec { interval_s: 0, ..spec(1, 1) };
        assert_eq!(workload(zero).err(), Some(WorkloadError::ZeroInterval));
        assert_eq!(workload(spec(u64::MAX, 2)).err(), Some(WorkloadError::TooManyPoints));
        let late = WorkloadSpec { start_ts: u64::MAX - 5, ..spec(1, 2) };
        assert_eq!(workload(late).err(), Some(WorkloadError::TimestampOverflow));
    }

    #[test]
    fn default_start_is_aligned_and_in_the_past() {
        assert_eq!(default_start_ts(1_700_000_005, 100, 10), 1_699_999_000);
        assert_eq!(default_start_ts(1_700_000_000, 100, 10), 1_699_999_000);
        assert_eq!(default_start_ts(5, 100, 10), 0);
    }
}
