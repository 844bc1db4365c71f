//! Carbon plaintext over UDP (carbon's `ENABLE_UDP_LISTENER`, port 2003): the same lines as over
//! TCP ([`plaintext::write_line`](crate::plaintext::write_line)), packed into datagrams.
//!
//! Each sender owns a contiguous range of the metrics and sends their points point-major, as a
//! TCP connection does. A datagram carries up to `lines_per_datagram` whole lines, each ending in
//! `\n`, and never more than `datagram_bytes_max` bytes: a line that would not fit starts the next
//! datagram (a single line longer than that goes alone, and a send the kernel refuses is counted
//! as an error). Sending, pacing and send errors are [`udp`](crate::udp)'s.
//!
//! UDP has no acknowledgement, so "sent" means the kernel took the datagram. What the server
//! received is for `--verify` to measure: each sender records which of its points were lost to a
//! failed `send` ([`GapRecorder`]), so the points expected back are exactly those that left.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use crate::plaintext::write_line;
use crate::plaintext_udp_report::{PlaintextUdpInfo, PlaintextUdpReport};
use crate::sampler::{SampleBuf, Sampler};
use crate::sent::{GapRecorder, Sent, SentPart};
use crate::statsd::KindCounts;
use crate::udp::{bind_all, run_datagrams, Datagrams, SENDERS_MAX};
use crate::workload::{partition_range, PointCursor, Workload};

/// How to send plaintext over UDP.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaintextUdpConfig {
    /// Sender threads, each with its own socket; 1 ..= `SENDERS_MAX`.
    pub n_senders: usize,
    /// Most lines per datagram, at least 1.
    pub lines_per_datagram: usize,
    /// Most bytes per datagram, 1 ..= `DATAGRAM_BYTES_MAX`.
    pub datagram_bytes_max: usize,
    /// Points per second for all senders together; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    /// Stop sending this long after the start; `None` sends every point.
    pub deadline: Option<Duration>,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// What the progress lines count.
    pub progress_unit: &'static str,
}

/// One sender's datagrams: all points of a range of metrics, point-major.
#[derive(Debug, Clone)]
pub struct PlaintextDatagrams<'w> {
    workload: &'w Workload,
    cursor: PointCursor,
    lines_per_datagram: usize,
    datagram_bytes_max: usize,
    samples: SampleBuf,
    /// Offsets of the datagram filled last.
    last: Range<u64>,
    /// Offsets up to here were sent or lost; the datagram filled last is past it until then.
    n_tried: u64,
    /// Offsets lost to failed sends.
    gaps: GapRecorder,
}

impl<'w> PlaintextDatagrams<'w> {
    /// The datagrams for `metrics` (a range of `workload`'s metric indexes), telling `sampler`
    /// when its points leave.
    pub fn new(
        workload: &'w Workload,
        metrics: Range<u64>,
        lines_per_datagram: usize,
        datagram_bytes_max: usize,
        sampler: Option<Sampler>,
    ) -> PlaintextDatagrams<'w> {
        assert!(lines_per_datagram > 0, "a datagram needs a line");
        PlaintextDatagrams {
            workload,
            cursor: PointCursor::new(workload, metrics),
            lines_per_datagram,
            datagram_bytes_max,
            samples: SampleBuf::new(sampler),
            last: 0..0,
            n_tried: 0,
            gaps: GapRecorder::default(),
        }
    }

    /// Points this sender has in all.
    pub fn n_points(&self) -> u64 {
        self.cursor.n_total()
    }

    /// What left: every offset tried, less those lost to send errors.
    pub fn sent_part(&self) -> SentPart {
        SentPart::with_gaps(self.cursor.metrics(), self.n_tried, self.gaps.gaps())
    }
}

impl Datagrams for PlaintextDatagrams<'_> {
    fn fill(&mut self, buf: &mut Vec<u8>, _kinds: &mut KindCounts) -> usize {
        buf.clear();
        self.samples.start_batch();
        let first = self.cursor.offset();
        let mut n_lines = 0;
        while n_lines < self.lines_per_datagram {
            let Some((metric_idx, point_idx)) = self.cursor.peek() else { break };
            let mark = buf.len();
            write_line(buf, self.workload, metric_idx, point_idx);
            if n_lines > 0 && buf.len() > self.datagram_bytes_max {
                buf.truncate(mark);
                break;
            }
            self.samples.note(metric_idx, point_idx);
            self.cursor.advance();
            n_lines += 1;
        }
        self.last = first..self.cursor.offset();
        n_lines
    }

    fn sent(&mut self, ok: bool) {
        if ok {
            self.samples.written();
        } else {
            self.gaps.lost(self.last.clone());
        }
        self.n_tried = self.last.end;
    }
}

/// Sends the points of `metrics` (a range of `workload`'s metrics) to `target` as plaintext
/// datagrams from `cfg.n_senders` sockets, telling `sampler` when its points leave. Returns the
/// report and what each sender sent, for `--verify`. Fails only if a socket cannot be opened.
pub fn run_range(
    target: SocketAddr,
    workload: &Workload,
    metrics: Range<u64>,
    cfg: &PlaintextUdpConfig,
    sampler: Option<Sampler>,
) -> io::Result<(PlaintextUdpReport, Sent)> {
    assert!((1..=SENDERS_MAX).contains(&cfg.n_senders), "{} senders", cfg.n_senders);
    let sockets = bind_all(target, cfg.n_senders)?;
    let n_total = (metrics.end - metrics.start) * workload.spec().n_points;
    let sources =
        partition_range(metrics.clone(), cfg.n_senders)
            .into_iter()
            .map(|range| {
                let source = PlaintextDatagrams::new(
                    workload,
                    range,
                    cfg.lines_per_datagram,
                    cfg.datagram_bytes_max,
                    sampler.clone(),
                );
                let share = cfg.rate_per_s.map(|rate| {
                    if n_total == 0 {
                        rate
                    } else {
                        rate * source.n_points() as f64 / n_total as f64
                    }
                });
                (source, share)
            })
            .collect();
    drop(sampler);
    let senders = run_datagrams(sockets, sources, cfg.deadline, cfg.quiet, cfg.progress_unit);
    let sent = Sent { parts: senders.iter().map(|(_, source)| source.sent_part()).collect() };
    let info = PlaintextUdpInfo::new(target, workload, metrics, cfg);
    let reports = senders.into_iter().map(|(report, _)| report).collect();
    Ok((PlaintextUdpReport::new(info, reports), sent))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::{NamePattern, DEFAULT_PATTERN};
    use crate::workload::{ValuePattern, WorkloadSpec};

    fn workload() -> Workload {
        let names = NamePattern::parse(DEFAULT_PATTERN, "u").unwrap();
        let spec = WorkloadSpec {
            n_metrics: 6,
            n_points: 3,
            start_ts: 1_000,
            interval_s: 10,
            seed: 3,
            values: ValuePattern::Sequence,
        };
        Workload::new(names, spec).unwrap()
    }

    fn all_datagrams(source: &mut PlaintextDatagrams<'_>, fail: impl Fn(usize) -> bool) -> Vec<String> {
        let (mut out, mut buf) = (Vec::new(), Vec::new());
        loop {
            let n = source.fill(&mut buf, &mut KindCounts::default());
            if n == 0 {
                return out;
            }
            let text = String::from_utf8(buf.clone()).unwrap();
            assert_eq!(text.lines().count(), n);
            source.sent(!fail(out.len()));
            out.push(text);
        }
    }

    #[test]
    fn lines_pack_into_datagrams_by_count_and_bytes() {
        let w = workload();
        // "u.host0.cpu01 0 1000\n" is 21 bytes: two fit in 42, not in 41.
        let mut source = PlaintextDatagrams::new(&w, 1..3, 5, 42, None);
        let got = all_datagrams(&mut source, |_| false);
        assert_eq!(
            got,
            [
                "u.host0.cpu01 0 1000\nu.host0.cpu02 0 1000\n",
                "u.host0.cpu01 1 1010\nu.host0.cpu02 1 1010\n",
                "u.host0.cpu01 2 1020\nu.host0.cpu02 2 1020\n",
            ]
        );
        assert_eq!(source.sent_part(), SentPart::prefix(1..3, 6));
        let mut source = PlaintextDatagrams::new(&w, 1..3, 5, 41, None);
        assert_eq!(all_datagrams(&mut source, |_| false).len(), 6, "one line each");
        let mut source = PlaintextDatagrams::new(&w, 0..6, 4, 1432, None);
        let got = all_datagrams(&mut source, |_| false);
        assert_eq!(got.iter().map(|d| d.lines().count()).collect::<Vec<_>>(), [4, 4, 4, 4, 2]);
        // A line longer than the datagram goes alone.
        let mut source = PlaintextDatagrams::new(&w, 0..1, 3, 5, None);
        assert_eq!(all_datagrams(&mut source, |_| false).len(), 3);
    }

    #[test]
    fn failed_datagrams_are_not_expected() {
        let w = workload();
        let mut source = PlaintextDatagrams::new(&w, 0..6, 4, 1432, None);
        // Datagrams 1 and 2 (offsets 4..12) fail.
        all_datagrams(&mut source, |idx| idx == 1 || idx == 2);
        let part = source.sent_part();
        assert_eq!(part.n_sent(), 18 - 8);
        assert!(part.is_sent(3, 0) && !part.is_sent(4, 0) && !part.is_sent(5, 1) && part.is_sent(0, 2));
        // A datagram filled but never sent (the deadline came first) is not expected either.
        let mut source = PlaintextDatagrams::new(&w, 0..6, 4, 1432, None);
        source.fill(&mut Vec::new(), &mut KindCounts::default());
        source.sent(true);
        source.fill(&mut Vec::new(), &mut KindCounts::default());
        assert_eq!(source.sent_part(), SentPart::prefix(0..6, 4));
    }
}
