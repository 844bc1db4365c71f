//! The statsd run report: what was sent, in how many datagrams, how fast. Text for people
//! (`Display`), one JSON object for scripts (`to_json`), in the shape of the plaintext report.
//!
//! There is no "accepted": UDP has no acknowledgement. To measure loss, compare `lines_sent`
//! with the lines the server says it received (etsy's `statsd.metrics_received`, summed over the
//! flushes that cover the run) and `datagrams_sent` with its `statsd.packets_received`.
//!
//! The **send latency per datagram** (`send_latency_us`, the keys of the TCP report's batch
//! latency) is how long each `send` took, merged over the senders (see [`udp`](crate::udp)): the
//! time a sender spends per datagram, back-pressure from a full socket send buffer included. A
//! mixed run's statsd part reports it the same way.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::json::JsonObject;
use crate::report::{merge_latency, LatencyUs, Stop};
use crate::statsd::{Kind, KindCounts, StatsdSpec, StatsdWorkload};
use crate::udp::{SenderReport, UdpConfig, UdpStop};

/// What was asked for.
#[derive(Debug, Clone)]
pub struct StatsdInfo {
    pub target: SocketAddr,
    pub n_senders: usize,
    pub spec: StatsdSpec,
    pub name_pattern: String,
    pub prefix: String,
    /// Lines in the run; `None`: until the duration.
    pub n_lines: Option<u64>,
    /// Offered lines per second; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    pub duration: Option<Duration>,
    /// Pregenerated runs: the lines of one lap of every sender's datagrams (then repeated).
    pub pregenerated_lines: Option<u64>,
}

impl StatsdInfo {
    /// The description of a run of `workload` with `cfg` (`pregenerated_lines`: see the field).
    pub fn new(
        target: SocketAddr,
        workload: &StatsdWorkload,
        cfg: &UdpConfig,
        pregenerated_lines: Option<u64>,
    ) -> StatsdInfo {
        StatsdInfo {
            target,
            n_senders: cfg.n_senders,
            spec: *workload.spec(),
            name_pattern: workload.names().pattern().to_owned(),
            prefix: workload.names().prefix().to_owned(),
            n_lines: cfg.n_lines,
            rate_per_s: cfg.rate_per_s,
            duration: cfg.deadline,
            pregenerated_lines,
        }
    }
}

/// The whole run, summed over senders.
#[derive(Debug)]
pub struct StatsdReport {
    pub info: StatsdInfo,
    /// Lines in datagrams the kernel took, all senders.
    pub lines_sent: u64,
    /// `lines_sent` by kind ([`Kind::idx`]).
    pub lines_by_kind: KindCounts,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams whose `send` failed, and their lines.
    pub send_errors: u64,
    pub lines_not_sent: u64,
    /// `AllSent` or `Duration`.
    pub stop: Stop,
    /// From the start to the end of the last send.
    pub send_elapsed: Duration,
    /// Nanoseconds per datagram `send`, all senders: one sample per datagram sent.
    pub latency_ns: Histogram<u64>,
    /// One sentence per sender that had send errors; empty for a clean run.
    pub problems: Vec<String>,
}

impl StatsdReport {
    /// Sums the senders' reports (in sender order).
    pub fn new(info: StatsdInfo, senders: Vec<SenderReport>) -> StatsdReport {
        let mut lines_by_kind = KindCounts::default();
        for sender in &senders {
            for (total, n) in lines_by_kind.iter_mut().zip(sender.lines_by_kind) {
                *total += n;
            }
        }
        let problems = senders
            .iter()
            .enumerate()
            .filter(|(_, s)| s.send_errors > 0)
            .map(|(idx, s)| {
                let first = s.first_error.as_ref().map_or_else(String::new, |err| format!("; first error: {err}"));
                format!("sender {idx}: {} datagrams ({} lines) not sent{first}", s.send_errors, s.lines_not_sent)
            })
            .collect();
        let deadline = senders.iter().any(|s| s.stop == Some(UdpStop::Deadline));
        StatsdReport {
            lines_sent: senders.iter().map(|s| s.lines_sent).sum(),
            lines_by_kind,
            datagrams_sent: senders.iter().map(|s| s.datagrams_sent).sum(),
            bytes_sent: senders.iter().map(|s| s.bytes_sent).sum(),
            send_errors: senders.iter().map(|s| s.send_errors).sum(),
            lines_not_sent: senders.iter().map(|s| s.lines_not_sent).sum(),
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

    /// Lines per second over the send time.
    pub fn sent_lines_per_s(&self) -> Option<f64> {
        per_second(self.lines_sent, self.send_elapsed)
    }

    /// Datagrams per second over the send time.
    pub fn sent_datagrams_per_s(&self) -> Option<f64> {
        per_second(self.datagrams_sent, self.send_elapsed)
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
        let by_kind = Kind::ALL
            .iter()
            .fold(JsonObject::default(), |obj, kind| obj.u64(kind.code(), self.lines_by_kind[kind.idx()]));
        JsonObject::default()
            .str("protocol", "statsd")
            .str("transport", "udp")
            .str("target", &info.target.to_string())
            .u64("senders", info.n_senders as u64)
            .object("workload", workload_json(info))
            .f64("duration_s", info.duration.map(|d| d.as_secs_f64()), 3)
            .str("stop", self.stop.as_str())
            .u64_or_null("lines_planned", info.n_lines)
            .u64_or_null("pregenerated_lines", info.pregenerated_lines)
            .u64("lines_sent", self.lines_sent)
            .object("lines_by_type", by_kind)
            .u64("datagrams_sent", self.datagrams_sent)
            .u64("bytes_sent", self.bytes_sent)
            .u64("send_errors", self.send_errors)
            .u64("lines_not_sent", self.lines_not_sent)
            .f64("send_elapsed_s", Some(self.send_elapsed.as_secs_f64()), 6)
            .f64("offered_lines_per_s", info.rate_per_s, 1)
            .f64("sent_lines_per_s", self.sent_lines_per_s(), 1)
            .f64("sent_datagrams_per_s", self.sent_datagrams_per_s(), 1)
            .object("send_latency_us", LatencyUs::to_json_object(self.latency_us()))
            .strs("problems", &self.problems)
    }
}

fn workload_json(info: &StatsdInfo) -> JsonObject {
    let s = &info.spec;
    let mix =
        Kind::ALL.iter().fold(JsonObject::default(), |obj, kind| obj.u64(kind.code(), u64::from(s.mix.weight(*kind))));
    JsonObject::default()
        .u64("keys", s.n_keys)
        .str("name_pattern", &info.name_pattern)
        .str("prefix", &info.prefix)
        .u64("seed", s.seed)
        .object("mix", mix)
        .number("sampled_fraction", s.sampled_fraction)
        .number("sample_rate", s.sample_rate)
        .number("gauge_delta_fraction", s.gauge_delta_fraction)
        .u64("set_members", s.n_set_members)
        .u64("lines_per_datagram", s.lines_per_datagram as u64)
        .u64("datagram_bytes_max", s.datagram_bytes_max as u64)
}

fn per_second(n: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| n as f64 / secs)
}

impl fmt::Display for StatsdReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        let s = &info.spec;
        writeln!(f, "statsd to {} (UDP), {} senders", info.target, info.n_senders)?;
        writeln!(
            f,
            "workload        {} keys, names {} (prefix {}), seed {}",
            s.n_keys, info.name_pattern, info.prefix, s.seed
        )?;
        writeln!(
            f,
            "                mix {}; {} of counters at @{}; {} of gauges +/- deltas; {} members per set",
            s.mix,
            percent(s.sampled_fraction),
            s.sample_rate,
            percent(s.gauge_delta_fraction),
            s.n_set_members
        )?;
        writeln!(f, "datagrams       at most {} lines and {} bytes each", s.lines_per_datagram, s.datagram_bytes_max)?;
        let stop = match self.stop {
            Stop::Duration => "duration reached",
            Stop::AllSent | Stop::Error => "all lines sent",
        };
        writeln!(f, "stopped         {stop}")?;
        let planned = info.n_lines.map_or_else(|| "unbounded".to_owned(), |n| n.to_string());
        let by_kind: Vec<String> =
            Kind::ALL.iter().map(|k| format!("{} {}", k.code(), self.lines_by_kind[k.idx()])).collect();
        writeln!(f, "lines sent      {} of {planned} ({})", self.lines_sent, by_kind.join(", "))?;
        writeln!(f, "datagrams sent  {}", self.datagrams_sent)?;
        let mib = self.bytes_sent as f64 / (1024.0 * 1024.0);
        writeln!(f, "bytes sent      {} ({mib:.1} MiB)", self.bytes_sent)?;
        if self.send_errors > 0 {
            writeln!(f, "send errors     {} datagrams ({} lines) not sent", self.send_errors, self.lines_not_sent)?;
        }
        writeln!(f, "send time       {:.6} s", self.send_elapsed.as_secs_f64())?;
        match info.rate_per_s {
            Some(rate) => writeln!(f, "offered rate    {rate:.0} lines/s (open loop)")?,
            None => writeln!(f, "offered rate    unlimited (closed loop)")?,
        }
        if let Some(lines) = info.pregenerated_lines {
            writeln!(f, "pregenerated    {lines} lines, sent over and over")?;
        }
        match (self.sent_lines_per_s(), self.sent_datagrams_per_s()) {
            (Some(lines), Some(datagrams)) => {
                writeln!(f, "sent rate       {lines:.0} lines/s, {datagrams:.0} datagrams/s")?
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

/// `0.1` as `10%`, to four decimals (so that 0.1 x 100 does not print as 10.000000000000002).
fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 1e6).round() / 1e4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::statsd::{Mix, DATAGRAM_BYTES_DEFAULT, DEFAULT_PATTERN};

    fn info() -> StatsdInfo {
        StatsdInfo {
            target: "127.0.0.1:8125".parse().unwrap(),
            n_senders: 2,
            spec: StatsdSpec {
                n_keys: 10,
                mix: Mix::default(),
                sampled_fraction: 0.1,
                sample_rate: 0.5,
                gauge_delta_fraction: 0.25,
                n_set_members: 10,
                seed: 1,
                lines_per_datagram: 1,
                datagram_bytes_max: DATAGRAM_BYTES_DEFAULT,
            },
            name_pattern: DEFAULT_PATTERN.to_owned(),
            prefix: "lg".to_owned(),
            n_lines: Some(4),
            rate_per_s: None,
            duration: None,
            pregenerated_lines: None,
        }
    }

    /// A sender that sent one one-line datagram per entry of `send_ns`, each `send` taking that
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
        // Values below 2048 ns are exact in a 3-significant-digit histogram.
        let report = StatsdReport::new(info(), vec![sender(&[1_000, 1_000, 1_000]), sender(&[2_000])]);
        assert_eq!(report.latency_ns.len(), report.datagrams_sent);
        assert_eq!(report.latency_ns.len(), 4);
        let latency = report.latency_us().unwrap();
        assert_eq!((latency.p50, latency.p99, latency.p99_9, latency.max), (1.0, 2.0, 2.0, 2.0));
        let json = report.to_json();
        let want = r#""send_latency_us":{"p50":1.000,"p99":2.000,"p99_9":2.000,"max":2.000},"problems":[]"#;
        assert!(json.contains(want), "{json}");
        let text = report.to_string();
        let want = "send latency    per datagram p50 1.0 us, p99 2.0 us, p99.9 2.0 us, max 2.0 us\n";
        assert!(text.contains(want), "{text}");
    }

    #[test]
    fn no_datagram_sent_has_null_latency() {
        let report = StatsdReport::new(info(), vec![sender(&[]), sender(&[])]);
        assert_eq!(report.latency_us(), None);
        let json = report.to_json();
        assert!(json.contains(r#""send_latency_us":{"p50":null,"p99":null,"p99_9":null,"max":null}"#), "{json}");
        assert!(report.to_string().contains("send latency    per datagram: none sent\n"));
    }
}
