//! The workload: which metrics get which timestamps and values, and which connection sends which
//! metrics. Pure: no I/O, no clock (the caller passes "now" in).
//!
//! Point `p` of metric `m` (`0 <= m < n_metrics`, `0 <= p < n_points`) has
//!
//! - name: the [`NamePattern`] applied to `m`;
//! - timestamp: `start_ts + p * interval_s` (Unix seconds);
//! - value: output number `k = m * n_points + p` of SplitMix64 seeded with `seed`, mapped to
//!   `[0, 1)` by its top 53 bits and scaled to `[0, VALUE_SPAN)`. Values are fractional with up to
//!   17 significant digits, and the encoders print the shortest decimal that parses back to the
//!   very same `f64`, so a server that stores doubles (whisper does) must return them bit for bit.
//!
//! A value depends only on `(seed, m, p)` and `n_points`: not on connections, batching or pacing.

use std::fmt;
use std::ops::Range;

use crate::name::NamePattern;
use crate::rng::{nth_output, unit_f64};

/// Values lie in `[0, VALUE_SPAN)`.
pub const VALUE_SPAN: f64 = 1000.0;

/// The numbers that shape a workload; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Value of point `point_idx` of metric `metric_idx`.
    pub fn value(&self, metric_idx: u64, point_idx: u64) -> f64 {
        debug_assert!(metric_idx < self.spec.n_metrics && point_idx < self.spec.n_points);
        let k = metric_idx * self.spec.n_points + point_idx;
        unit_f64(nth_output(self.spec.seed, k)) * VALUE_SPAN
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::DEFAULT_PATTERN;

    fn spec(n_metrics: u64, n_points: u64) -> WorkloadSpec {
        WorkloadSpec { n_metrics, n_points, start_ts: 1_000, interval_s: 10, seed: 1 }
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
