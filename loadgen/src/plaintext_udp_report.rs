//! The report of a carbon plaintext run over UDP: what was sent, in how many datagrams, how fast.
//! Text for people (`Display`), one JSON object for scripts (`to_json`), in the shape of the TCP
//! and statsd reports.
//!
//! There is no "accepted" (UDP has no acknowledgement): loss is measured by `--verify`, which
//! reads every series back. In place of the TCP report's batch latency there is the **send latency
//! per datagram** (`send_latency_us`, the same keys): how long each `send` took, merged over the
//! senders (see [`udp`](crate::udp)). A `send` copies the datagram into the kernel, but waits while
//! the socket's send buffer is full, so this is what limits the rate a sender can offer.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::json::JsonObject;
use crate::plaintext_udp::PlaintextUdpConfig;
use crate::report::{carbon_workload_json, merge_latency, rate, LatencyUs, Stop};
use crate::udp::{SenderReport, UdpStop};
use crate::workload::{Workload, WorkloadSpec};

/// What was asked for.
#[derive(Debug, Clone)]
pub struct PlaintextUdpInfo {
    pub target: SocketAddr,
    pub n_senders: usize,
    pub workload: WorkloadSpec,
    /// The metrics this run sent.
    pub metrics: Range<u64>,
    pub name_pattern: String,
    pub prefix: String,
    pub lines_per_datagram: usize,
    pub datagram_bytes_max: usize,
    /// Offered points per second; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    pub duration: Option<Duration>,
}

impl PlaintextUdpInfo {
    /// The description of a run of the `metrics` of `workload` with `cfg`.
    pub fn new(
        target: SocketAddr,
        workload: &Workload,
        metrics: Range<u64>,
        cfg: &PlaintextUdpConfig,
    ) -> PlaintextUdpInfo {
        PlaintextUdpInfo {
            target,
            n_senders: cfg.n_senders,
            workload: *workload.spec(),
            metrics,
            name_pattern: workload.names().pattern().to_owned(),
            prefix: workload.names().prefix().to_owned(),
            lines_per_datagram: cfg.lines_per_datagram,
            datagram_bytes_max: cfg.datagram_bytes_max,
            rate_per_s: cfg.rate_per_s,
            duration: cfg.deadline,
        }
    }

    /// Points this run was to send.
    pub fn points_planned(&self) -> u64 {
        (self.metrics.end - self.metrics.start).saturating_mul(self.workload.n_points)
    }
}

/// The whole run, summed over senders.
#[derive(Debug)]
pub struct PlaintextUdpReport {
    pub info: PlaintextUdpInfo,
    /// Points in datagrams the kernel took.
    pub points_sent: u64,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams whose `send` failed, and their points.
    pub send_errors: u64,
    pub points_not_sent: u64,
    /// `AllSent` or `Duration`.
    pub stop: Stop,
    /// From the start to the end of the last send.
    pub send_elapsed: Duration,
    /// Nanoseconds per datagram `send`, all senders: one sample per datagram sent.
    pub latency_ns: Histogram<u64>,
    /// One sentence per sender that had send errors; empty for a clean run.
    pub problems: Vec<String>,
}

impl PlaintextUdpReport {
    /// Sums the senders' reports (in sender order).
    pub fn new(info: PlaintextUdpInfo, senders: Vec<SenderReport>) -> PlaintextUdpReport {
        let problems = senders
            .iter()
            .enumerate()
            .filter(|(_, s)| s.send_errors > 0)
            .map(|(idx, s)| {
                let first = s.first_error.as_ref().map_or_else(String::new, |err| format!("; first error: {err}"));
                format!("sender {idx}: {} datagrams ({} points) not sent{first}", s.send_errors, s.lines_not_sent)
            })
            .collect();
        let deadline = senders.iter().any(|s| s.stop == Some(UdpStop::Deadline));
        PlaintextUdpReport {
            points_sent: senders.iter().map(|s| s.lines_sent).sum(),
            datagrams_sent: senders.iter().map(|s| s.datagrams_sent).sum(),
            bytes_sent: senders.iter().map(|s| s.bytes_sent).sum(),
            send_errors: senders.iter().map(|s| s.send_errors).sum(),
            points_not_sent: senders.iter().map(|s| s.lines_not_sent).sum(),
            stop: if deadline { Stop::Duration } else { Stop::AllSent },
            send_elapsed: senders.iter().map(|s| s.send_elapsed).max().unwrap_or_default(),
            latency_ns: merge_latency(senders.iter().map(|s| &s.latency_ns)),
            problems,
            info,
        }
    }

    /// Every datagram was taken by the kernel.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Points per second over the send time.
    pub fn sent_points_per_s(&self) -> Option<f64> {
        rate(self.points_sent, self.send_elapsed)
    }

    /// Datagrams per second over the send time.
    pub fn sent_datagrams_per_s(&self) -> Option<f64> {
        rate(self.datagrams_sent, self.send_elapsed)
    }

    /// Send-latency quantiles per datagram; `None` before any datagram was sent.
    pub fn latency_us(&self) -> Option<LatencyUs> {
        LatencyUs::of_ns(&self.latency_ns)
    }

    /// The report as one JSON object (keys described in the crate README).
    pub fn to_json(&self) -> String {
        self.to_json_object().finish()
    }

    /// The report as a JSON object, for a caller to add to.
    pub fn to_json_object(&self) -> JsonObject {
        let info = &self.info;
        let datagrams = JsonObject::default()
            .u64("lines_per_datagram", info.lines_per_datagram as u64)
            .u64("datagram_bytes_max", info.datagram_bytes_max as u64);
        JsonObject::default()
            .str("protocol", "plaintext")
            .str("transport", "udp")
            .str("target", &info.target.to_string())
            .u64("senders", info.n_senders as u64)
            .object("workload", carbon_workload_json(&info.workload, &info.metrics, &info.name_pattern, &info.prefix))
            .object("datagrams", datagrams)
            .f64("duration_s", info.duration.map(|d| d.as_secs_f64()), 3)
            .str("stop", self.stop.as_str())
            .u64("points_planned", info.points_planned())
            .u64("points_sent", self.points_sent)
            .u64("datagrams_sent", self.datagrams_sent)
            .u64("bytes_sent", self.bytes_sent)
            .u64("send_errors", self.send_errors)
            .u64("points_not_sent", self.points_not_sent)
            .f64("send_elapsed_s", Some(self.send_elapsed.as_secs_f64()), 6)
            .f64("offered_points_per_s", info.rate_per_s, 1)
            .f64("sent_points_per_s", self.sent_points_per_s(), 1)
            .f64("sent_datagrams_per_s", self.sent_datagrams_per_s(), 1)
            .object("send_latency_us", LatencyUs::to_json_object(self.latency_us()))
            .strs("problems", &self.problems)
    }
}

impl fmt::Display for PlaintextUdpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        let w = &info.workload;
        writeln!(f, "plaintext to {} (UDP), {} senders", info.target, info.n_senders)?;
        writeln!(
            f,
            "workload        {} metrics x {} points, names {} (prefix {})",
            w.n_metrics, w.n_points, info.name_pattern, info.prefix
        )?;
        if info.metrics != (0..w.n_metrics) {
            writeln!(f, "                this run: metrics {}..{} of them", info.metrics.start, info.metrics.end)?;
        }
        writeln!(
            f,
            "                timestamps {} + k x {} s, values {}, seed {}",
            w.start_ts, w.interval_s, w.values, w.seed
        )?;
        writeln!(
            f,
            "datagrams       at most {} lines and {} bytes each",
            info.lines_per_datagram, info.datagram_bytes_max
        )?;
        let stop = match self.stop {
            Stop::Duration => "duration reached",
            Stop::AllSent | Stop::Error => "all points sent",
        };
        writeln!(f, "stopped         {stop}")?;
        writeln!(f, "points sent     {} of {}", self.points_sent, info.points_planned())?;
        writeln!(f, "datagrams sent  {}", self.datagrams_sent)?;
        let mib = self.bytes_sent as f64 / (1024.0 * 1024.0);
        writeln!(f, "bytes sent      {} ({mib:.1} MiB)", self.bytes_sent)?;
        if self.send_errors > 0 {
            writeln!(f, "send errors     {} datagrams ({} points) not sent", self.send_errors, self.points_not_sent)?;
        }
        writeln!(f, "send time       {:.6} s", self.send_elapsed.as_secs_f64())?;
        match info.rate_per_s {
            Some(rate) => writeln!(f, "offered rate    {rate:.0} points/s (open loop)")?,
            None => writeln!(f, "offered rate    unlimited (closed loop)")?,
        }
        match (self.sent_points_per_s(), self.sent_datagrams_per_s()) {
            (Some(points), Some(datagrams)) => {
                writeln!(f, "sent rate       {points:.0} points/s, {datagrams:.0} datagrams/s")?
            }
            _ => writeln!(f, "sent rate       n/a")?,
        }
        match self.latency_us() {
            Some(latency) => writeln!(f, "send latency    per datagram {latency}")?,
            None => writeln!(f, "send latency    per datagram: none sent")?,
        }
        for problem in &self.problems {
            writeln!(f, "problem         {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::name::DEFAULT_PATTERN;
    use crate::workload::ValuePattern;

    fn info() -> PlaintextUdpInfo {
        PlaintextUdpInfo {
            target: "127.0.0.1:2003".parse().unwrap(),
            n_senders: 2,
            workload: WorkloadSpec {
                n_metrics: 3,
                n_points: 1,
                start_ts: 1_700_000_000,
                interval_s: 10,
                seed: 1,
                values: ValuePattern::Sequence,
            },
            metrics: 0..3,
            name_pattern: DEFAULT_PATTERN.to_owned(),
            prefix: "lg".to_owned(),
            lines_per_datagram: 1,
            datagram_bytes_max: 1432,
            rate_per_s: None,
            duration: None,
        }
    }

    /// A sender that sent one one-point datagram per entry of `send_ns`, each `send` taking that
    /// many nanoseconds.
    fn sender(send_ns: &[u64]) -> SenderReport {
        let mut report = SenderReport { stop: Some(UdpStop::AllSent), ..SenderReport::default() };
        for &ns in send_ns {
            report.latency_ns.record(ns).unwrap();
            report.datagrams_sent += 1;
            report.lines_sent += 1;
        }
        report.send_elapsed = Duration::from_millis(1);
        report
    }

    #[test]
    fn send_latency_is_merged_over_senders() {
        let report = PlaintextUdpReport::new(info(), vec![sender(&[500, 1_500]), sender(&[500])]);
        assert_eq!((report.points_sent, report.datagrams_sent, report.latency_ns.len()), (3, 3, 3));
        let json = report.to_json();
        let want = r#""send_latency_us":{"p50":0.500,"p99":1.500,"p99_9":1.500,"max":1.500},"problems":[]"#;
        assert!(json.contains(want), "{json}");
        let text = report.to_string();
        let want = "send latency    per datagram p50 0.5 us, p99 1.5 us, p99.9 1.5 us, max 1.5 us\n";
        assert!(text.contains(want), "{text}");
    }

    #[test]
    fn no_datagram_sent_has_null_latency() {
        let report = PlaintextUdpReport::new(info(), vec![sender(&[])]);
        let json = report.to_json();
        assert!(json.contains(r#""send_latency_us":{"p50":null,"p99":null,"p99_9":null,"max":null}"#), "{json}");
        assert!(report.to_string().contains("send latency    per datagram: none sent\n"));
    }
}
