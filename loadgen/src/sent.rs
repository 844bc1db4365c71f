//! What a run actually sent of its workload, so that `--verify` knows which points to expect
//! without keeping them: each sending unit (a TCP connection, a UDP socket) owns a range of
//! metrics and sends their points in point-major order ([`PointCursor`](crate::workload::PointCursor)
//! offsets); what left is a set of offset ranges. Pure.
//!
//! A TCP connection sends a prefix of its offsets: the complete points the kernel took (a point
//! cut off by the deadline did not leave whole and is not expected). A UDP socket sends its
//! offsets in order too, less the datagrams whose `send` failed.

use std::ops::Range;

/// One sending unit's metrics and the offsets of its points that left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    /// The metrics this unit owned.
    pub metrics: Range<u64>,
    /// Offsets that left: sorted, disjoint, not empty, not adjacent.
    sent: Vec<Range<u64>>,
}

impl SentPart {
    /// A unit that sent the first `n_sent` offsets of `metrics`.
    pub fn prefix(metrics: Range<u64>, n_sent: u64) -> SentPart {
        let mut sent = Vec::new();
        if n_sent > 0 {
            sent.push(0..n_sent);
        }
        SentPart { metrics, sent }
    }

    /// A unit that tried the first `n_tried` offsets of `metrics` and lost `failed` (sorted,
    /// disjoint ranges within `0..n_tried`).
    pub fn with_gaps(metrics: Range<u64>, n_tried: u64, failed: &[Range<u64>]) -> SentPart {
        let mut sent = Vec::new();
        let mut from = 0;
        for gap in failed {
            debug_assert!(from <= gap.start && gap.end <= n_tried, "{failed:?} within 0..{n_tried}");
            if gap.start > from {
                sent.push(from..gap.start);
            }
            from = from.max(gap.end);
        }
        if n_tried > from {
            sent.push(from..n_tried);
        }
        SentPart { metrics, sent }
    }

    /// Whether point `point_idx` of metric `metric_idx` (one of this unit's) left.
    pub fn is_sent(&self, metric_idx: u64, point_idx: u64) -> bool {
        debug_assert!(self.metrics.contains(&metric_idx));
        let width = self.metrics.end - self.metrics.start;
        // At most metrics x points, which the workload checked fits in a u64.
        let offset = point_idx * width + (metric_idx - self.metrics.start);
        let idx = self.sent.partition_point(|r| r.end <= offset);
        self.sent.get(idx).is_some_and(|r| r.start <= offset)
    }

    /// Points that left.
    pub fn n_sent(&self) -> u64 {
        self.sent.iter().map(|r| r.end - r.start).sum()
    }
}

/// Everything a run sent: its units, in metric order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub parts: Vec<SentPart>,
}

impl Sent {
    /// Points that left, all units.
    pub fn n_sent(&self) -> u64 {
        self.parts.iter().map(SentPart::n_sent).sum()
    }

    /// Adds another run's units (a mixed run's plaintext and pickle halves).
    pub fn extend(&mut self, other: Sent) {
        self.parts.extend(other.parts);
        self.parts.sort_by_key(|part| part.metrics.start);
    }
}

/// Records the offsets of a unit whose sends can fail one by one (UDP): ranges of consecutive
/// failures are merged, so a socket that fails every datagram costs one range.
#[derive(Debug, Clone, Default)]
pub struct GapRecorder {
    /// Sorted, disjoint; adjacent failures merged.
    gaps: Vec<Range<u64>>,
}

impl GapRecorder {
    /// Offsets `lost` did not leave; ranges come in increasing order.
    pub fn lost(&mut self, lost: Range<u64>) {
        if lost.is_empty() {
            return;
        }
        match self.gaps.last_mut() {
            Some(last) if last.end == lost.start => last.end = lost.end,
            _ => self.gaps.push(lost),
        }
    }

    /// The gaps so far.
    pub fn gaps(&self) -> &[Range<u64>] {
        &self.gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_expects_the_first_offsets_in_point_major_order() {
        // Metrics 10..13, 7 offsets: points 0 and 1 of every metric, point 2 of metric 10.
        let part = SentPart::prefix(10..13, 7);
        let sent: Vec<(u64, u64)> =
            (10..13).flat_map(|m| (0..4).map(move |p| (m, p))).filter(|&(m, p)| part.is_sent(m, p)).collect();
        assert_eq!(sent, [(10, 0), (10, 1), (10, 2), (11, 0), (11, 1), (12, 0), (12, 1)]);
        assert_eq!(part.n_sent(), 7);
        assert!(!SentPart::prefix(0..2, 0).is_sent(0, 0));
    }

    #[test]
    fn gaps_are_left_out() {
        let mut gaps = GapRecorder::default();
        gaps.lost(2..4);
        gaps.lost(4..5);
        gaps.lost(5..5);
        gaps.lost(8..9);
        assert_eq!(gaps.gaps(), [2..5, 8..9]);
        let part = SentPart::with_gaps(0..1, 10, gaps.gaps());
        let sent: Vec<u64> = (0..12).filter(|&p| part.is_sent(0, p)).collect();
        assert_eq!(sent, [0, 1, 5, 6, 7, 9]);
        assert_eq!(part.n_sent(), 6);
        let mut all_lost = GapRecorder::default();
        all_lost.lost(0..3);
        assert_eq!(SentPart::with_gaps(0..1, 3, all_lost.gaps()).n_sent(), 0);
        assert_eq!(SentPart::with_gaps(0..1, 3, &[]), SentPart::prefix(0..1, 3));
    }

    #[test]
    fn runs_combine_in_metric_order() {
        let mut sent = Sent { parts: vec![SentPart::prefix(5..9, 3)] };
        sent.extend(Sent { parts: vec![SentPart::prefix(0..5, 4)] });
        assert_eq!(sent.parts.iter().map(|p| p.metrics.start).collect::<Vec<_>>(), [0, 5]);
        assert_eq!(sent.n_sent(), 7);
    }
}
