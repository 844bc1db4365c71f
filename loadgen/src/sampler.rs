//! Which points the visibility probe follows, and the hand-over of their send times from the
//! sending threads to the probe. The probe itself (polling the render API) is
//! [`visibility`](crate::visibility); this module does no I/O.
//!
//! **Which points.** Point `p` of metric `m` is sampled when its point-major index in the whole
//! workload, `k = p * n_metrics + m` (the order in which the points of all metrics are sent,
//! timestamp by timestamp), is a multiple of the stride. With a stride of
//! `ceil(points / samples)` about `samples` points are followed, spread evenly over the run's
//! time; the choice depends only on the workload, so two runs follow the same points.
//!
//! **When sent.** A source notes the sampled points it puts into a batch (TCP) or datagram
//! (UDP); once that batch has left whole (the kernel took every byte), [`SampleBuf::written`]
//! stamps them with the time and sends them to the probe. Points of a batch cut off or lost to
//! a send error are forgotten at the next fill: they never left, so nothing waits for them.

use std::sync::mpsc::Sender;
use std::time::Instant;

/// A sampled point that left, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub metric_idx: u64,
    pub point_idx: u64,
    /// When the write or send that carried it returned.
    pub sent_at: Instant,
}

/// Decides which points are sampled and hands the ones that left to the probe; one clone per
/// sending thread.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// Metrics in the workload.
    n_metrics: u64,
    /// A point is sampled when its workload index is a multiple of this; at least 1.
    stride: u64,
    tx: Sender<Sample>,
}

impl Sampler {
    /// About `n_samples` (at least 1) of the `n_total` points of a workload of `n_metrics`
    /// metrics, sent to `tx`.
    pub fn new(n_metrics: u64, n_total: u64, n_samples: u64, tx: Sender<Sample>) -> Sampler {
        let stride = n_total.div_ceil(n_samples.max(1)).max(1);
        Sampler { n_metrics, stride, tx }
    }

    /// Whether point `point_idx` of metric `metric_idx` is followed.
    pub fn is_sampled(&self, metric_idx: u64, point_idx: u64) -> bool {
        // The workload was checked: metrics x points fits in a u64.
        (point_idx * self.n_metrics + metric_idx) % self.stride == 0
    }

    /// The stride: one point in this many is followed.
    pub fn stride(&self) -> u64 {
        self.stride
    }
}

/// The sampled points of the batch a source is filling.
#[derive(Debug, Clone, Default)]
pub struct SampleBuf {
    /// `None`: no probe, nothing is noted.
    sampler: Option<Sampler>,
    /// `(metric, point)` of the sampled points in the current batch.
    pending: Vec<(u64, u64)>,
}

impl SampleBuf {
    /// Notes points for `sampler`, or nothing with `None`.
    pub fn new(sampler: Option<Sampler>) -> SampleBuf {
        SampleBuf { sampler, pending: Vec::new() }
    }

    /// A new batch starts: the previous one's points either left (and were handed over) or never
    /// will.
    pub fn start_batch(&mut self) {
        self.pending.clear();
    }

    /// Point `point_idx` of metric `metric_idx` went into the current batch.
    pub fn note(&mut self, metric_idx: u64, point_idx: u64) {
        if self.sampler.as_ref().is_some_and(|s| s.is_sampled(metric_idx, point_idx)) {
            self.pending.push((metric_idx, point_idx));
        }
    }

    /// The point noted last is not in the batch after all (it did not fit).
    pub fn unnote(&mut self, metric_idx: u64, point_idx: u64) {
        if self.pending.last() == Some(&(metric_idx, point_idx)) {
            self.pending.pop();
        }
    }

    /// The current batch left whole: its sampled points go to the probe, stamped now.
    pub fn written(&mut self) {
        let Some(sampler) = &self.sampler else { return };
        if self.pending.is_empty() {
            return;
        }
        let sent_at = Instant::now();
        for (metric_idx, point_idx) in self.pending.drain(..) {
            // A probe that has stopped (it gave up) no longer listens; the run goes on.
            let _ = sampler.tx.send(Sample { metric_idx, point_idx, sent_at });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn stride_spreads_samples_over_the_workload() {
        let (tx, _rx) = mpsc::channel();
        // 100 metrics x 10 points, 25 samples: every 40th point in sending order, so every
        // timestamp has some.
        let s = Sampler::new(100, 1_000, 25, tx.clone());
        assert_eq!(s.stride(), 40);
        let sampled: Vec<(u64, u64)> =
            (0..10).flat_map(|p| (0..100).map(move |m| (m, p))).filter(|&(m, p)| s.is_sampled(m, p)).collect();
        assert_eq!(sampled.len(), 25);
        assert_eq!(&sampled[..4], [(0, 0), (40, 0), (80, 0), (20, 1)]);
        assert!((0..10).all(|p| sampled.iter().any(|&(_, q)| q == p)));
        // More samples than points: every point. A non-divisible count rounds the stride up.
        assert_eq!(Sampler::new(10, 50, 1_000, tx.clone()).stride(), 1);
        assert_eq!(Sampler::new(10, 1_000, 300, tx).stride(), 4);
    }

    #[test]
    fn only_batches_that_left_hand_their_samples_over() {
        let (tx, rx) = mpsc::channel();
        // One point per metric: every second metric is sampled.
        let mut buf = SampleBuf::new(Some(Sampler::new(100, 100, 50, tx)));
        buf.start_batch();
        for m in 0..4 {
            buf.note(m, 0);
        }
        buf.unnote(3, 0); // odd: not sampled, nothing to take back
        buf.unnote(2, 0);
        buf.written();
        let got: Vec<(u64, u64)> = rx.try_iter().map(|s| (s.metric_idx, s.point_idx)).collect();
        assert_eq!(got, [(0, 0)]);
        // A batch that never left is forgotten at the next one.
        buf.start_batch();
        buf.note(4, 0);
        buf.start_batch();
        buf.note(6, 0);
        buf.written();
        let got: Vec<(u64, u64)> = rx.try_iter().map(|s| (s.metric_idx, s.point_idx)).collect();
        assert_eq!(got, [(6, 0)]);
        // Without a sampler nothing is noted.
        let mut none = SampleBuf::new(None);
        none.note(0, 0);
        none.written();
    }
}
