//! The run report: what was sent, how fast, how long the server took to accept it, and how long
//! each batch write took. Text for people (`Display`), one JSON object for scripts (`to_json`).
//!
//! Definitions (all times from the common start, when every connection was open):
//!
//! - **send time**: until the last connection finished its last write;
//! - **sent rate**: points sent / send time;
//! - **offered rate**: the `--rate` asked for (none in closed loop);
//! - **accepted after**: until the last connection saw the server close after its half-close,
//!   i.e. the server had read every byte sent; only when every connection saw that close;
//! - **accepted rate**: points sent / accepted after;
//! - **batch latency**: duration of each complete batch write (one `write` loop of about
//!   64 KiB), in microseconds: how long the kernel took to take the batch, back-pressure included.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::json::JsonObject;
use crate::pickle::Framing;
use crate::run::RunConfig;
use crate::sender::{new_latency_histogram, ConnReport, Drain, SendEnd};
use crate::workload::{Workload, WorkloadSpec};

/// What was asked for.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Wire protocol, as its subcommand is named.
    pub protocol: &'static str,
    pub target: SocketAddr,
    pub n_connections: usize,
    pub workload: WorkloadSpec,
    /// The metrics this run sent: all of the workload's, or a part of them (a mixed run).
    pub metrics: Range<u64>,
    pub name_pattern: String,
    pub prefix: String,
    /// Offered points per second; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    pub duration: Option<Duration>,
    pub accept_timeout: Duration,
    /// How points were framed (pickle); `None` for plaintext.
    pub framing: Option<Framing>,
    /// Every line was formatted before the clock started (plaintext `--pregenerate`).
    pub recorded: bool,
}

impl RunInfo {
    /// The description of a run of `workload` with `cfg`.
    pub fn new(protocol: &'static str, target: SocketAddr, workload: &Workload, cfg: &RunConfig) -> RunInfo {
        RunInfo {
            protocol,
            target,
            n_connections: cfg.n_connections,
            workload: *workload.spec(),
            metrics: 0..workload.spec().n_metrics,
            name_pattern: workload.names().pattern().to_owned(),
            prefix: workload.names().prefix().to_owned(),
            rate_per_s: cfg.send.rate_per_s,
            duration: cfg.send.deadline,
            accept_timeout: cfg.send.accept_timeout,
            framing: None,
            recorded: false,
        }
    }

    /// The same, for the part `metrics` of the workload.
    pub fn with_metrics(mut self, metrics: Range<u64>) -> RunInfo {
        self.metrics = metrics;
        self
    }

    /// The same, saying whether the lines were formatted before the clock started.
    pub fn with_recorded(mut self, recorded: bool) -> RunInfo {
        self.recorded = recorded;
        self
    }

    /// The same, with points framed as `framing` says.
    pub fn with_framing(mut self, framing: Framing) -> RunInfo {
        self.framing = Some(framing);
        self
    }

    /// Points this run was to send: its metrics x points.
    pub fn points_planned(&self) -> u64 {
        (self.metrics.end - self.metrics.start).saturating_mul(self.workload.n_points)
    }

    /// Whether the run sent only a part of the workload's metrics.
    pub fn is_partial(&self) -> bool {
        self.metrics != (0..self.workload.n_metrics)
    }
}

/// Why the run stopped sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Every connection sent all its points.
    AllSent,
    /// The duration ran out first, on at least one connection.
    Duration,
    /// At least one connection stalled or failed.
    Error,
}

impl Stop {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::AllSent => "all_sent",
            Stop::Duration => "duration",
            Stop::Error => "error",
        }
    }
}

/// Send-latency quantiles, microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyUs {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl LatencyUs {
    /// The quantiles of a histogram of nanoseconds, in microseconds; `None` when it is empty.
    pub fn of_ns(h: &Histogram<u64>) -> Option<LatencyUs> {
        let us = |ns: u64| ns as f64 / 1_000.0;
        (!h.is_empty()).then(|| LatencyUs {
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }

    /// The `send_latency_us` object of a JSON report: `p50`, `p99`, `p99_9` and `max`, each
    /// `null` when there is no sample.
    pub fn to_json_object(latency: Option<LatencyUs>) -> JsonObject {
        JsonObject::default()
            .f64("p50", latency.map(|l| l.p50), 3)
            .f64("p99", latency.map(|l| l.p99), 3)
            .f64("p99_9", latency.map(|l| l.p99_9), 3)
            .f64("max", latency.map(|l| l.max), 3)
    }
}

/// `p50 1.5 us, p99 ... us, p99.9 ... us, max ... us`, as the text reports print it.
impl fmt::Display for LatencyUs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us", self.p50, self.p99, self.p99_9, self.max)
    }
}

/// One histogram holding every sample of `histograms`, all made by
/// [`new_latency_histogram`] (so they share its bounds and adding cannot fail).
pub(crate) fn merge_latency<'h>(histograms: impl IntoIterator<Item = &'h Histogram<u64>>) -> Histogram<u64> {
    let mut merged = new_latency_histogram();
    for h in histograms {
        merged.add(h).expect("latency histograms share their bounds");
    }
    merged
}

/// The whole run, summed over connections.
#[derive(Debug)]
pub struct Report {
    pub info: RunInfo,
    /// Complete points written, all connections.
    pub points_sent: u64,
    /// Bytes written, all connections.
    pub bytes_sent: u64,
    /// Complete batch writes, all connections.
    pub batches: u64,
    pub stop: Stop,
    /// From the start to the end of the last write.
    pub send_elapsed: Duration,
    /// From the start to the last server close; `None` unless every connection saw its close.
    pub accepted_after: Option<Duration>,
    /// Nanoseconds per complete batch write, all connections.
    pub latency_ns: Histogram<u64>,
    /// One sentence per thing that went wrong; empty for a clean run.
    pub problems: Vec<String>,
    /// Wall-clock time of the start; `None` when no connection ran.
    pub started_at: Option<SystemTime>,
}

impl Report {
    /// Sums the connections' reports (in connection order).
    pub fn new(info: RunInfo, conns: Vec<ConnReport>) -> Report {
        let latency_ns = merge_latency(conns.iter().map(|conn| &conn.latency_ns));
        let closes: Option<Vec<Duration>> = conns
            .iter()
            .map(|conn| match conn.drain {
                Drain::Closed { after } => Some(after),
                _ => None,
            })
            .collect();
        let problems = conns
            .iter()
            .enumerate()
            .flat_map(|(conn_idx, conn)| conn_problems(conn_idx, conn, info.accept_timeout))
            .collect();
        Report {
            points_sent: conns.iter().map(|conn| conn.points_sent).sum(),
            bytes_sent: conns.iter().map(|conn| conn.bytes_sent).sum(),
            batches: conns.iter().map(|conn| conn.batches).sum(),
            stop: stop_of(&conns),
            send_elapsed: conns.iter().map(|conn| conn.send_elapsed).max().unwrap_or_default(),
            accepted_after: closes.and_then(|closes| closes.into_iter().max()),
            latency_ns,
            problems,
            started_at: conns.iter().map(|conn| conn.started_at).min(),
            info,
        }
    }

    /// Nothing went wrong: every connection sent what it was allowed to and saw the server close.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Points per second over the send time.
    pub fn sent_rate_per_s(&self) -> Option<f64> {
        rate(self.points_sent, self.send_elapsed)
    }

    /// Points per second until the server had read everything.
    pub fn accepted_rate_per_s(&self) -> Option<f64> {
        self.accepted_after.and_then(|after| rate(self.points_sent, after))
    }

    /// Batch-write latency quantiles; `None` before any complete batch.
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
        let latency_json = LatencyUs::to_json_object(self.latency_us());
        let mut json = JsonObject::default()
            .str("protocol", info.protocol)
            .str("target", &info.target.to_string())
            .u64("connections", info.n_connections as u64)
            .object("workload", workload_json(info));
        if let Some(framing) = &info.framing {
            json = json.object("framing", framing.to_json_object());
        }
        let started_unix_s =
            self.started_at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64());
        json.bool("pregenerated", info.recorded)
            .f64("started_unix_s", started_unix_s, 6)
            .f64("duration_s", info.duration.map(|d| d.as_secs_f64()), 3)
            .f64("accept_timeout_s", Some(info.accept_timeout.as_secs_f64()), 3)
            .str("stop", self.stop.as_str())
            .u64("points_planned", info.points_planned())
            .u64("points_sent", self.points_sent)
            .u64("bytes_sent", self.bytes_sent)
            .u64("batches", self.batches)
            .f64("send_elapsed_s", Some(self.send_elapsed.as_secs_f64()), 6)
            .f64("offered_points_per_s", info.rate_per_s, 1)
            .f64("sent_points_per_s", self.sent_rate_per_s(), 1)
            .bool("accepted", self.accepted_after.is_some())
            .f64("accepted_s", self.accepted_after.map(|d| d.as_secs_f64()), 6)
            .f64("accepted_points_per_s", self.accepted_rate_per_s(), 1)
            .object("send_latency_us", latency_json)
            .strs("problems", &self.problems)
    }
}

fn workload_json(info: &RunInfo) -> JsonObject {
    carbon_workload_json(&info.workload, &info.metrics, &info.name_pattern, &info.prefix)
}

/// The `workload` object of a carbon run's JSON report (TCP or UDP): the workload's numbers,
/// and the range of metrics the run sent when it is not all of them.
pub(crate) fn carbon_workload_json(
    w: &WorkloadSpec,
    metrics: &Range<u64>,
    name_pattern: &str,
    prefix: &str,
) -> JsonObject {
    let json = JsonObject::default()
        .u64("metrics", w.n_metrics)
        .u64("points_per_metric", w.n_points)
        .u64("start_ts", w.start_ts)
        .u64("interval_s", w.interval_s)
        .u64("seed", w.seed)
        .str("values", &w.values.to_string())
        .str("name_pattern", name_pattern)
        .str("prefix", prefix);
    if *metrics != (0..w.n_metrics) {
        json.u64("metric_first", metrics.start).u64("metric_end", metrics.end)
    } else {
        json
    }
}

pub(crate) fn rate(points: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0).then(|| points as f64 / secs)
}

fn stop_of(conns: &[ConnReport]) -> Stop {
    let ended = |f: fn(&SendEnd) -> bool| conns.iter().any(|conn| f(&conn.send_end));
    if ended(|end| matches!(end, SendEnd::Stalled | SendEnd::Failed(_))) {
        Stop::Error
    } else if ended(|end| matches!(end, SendEnd::Deadline)) {
        Stop::Duration
    } else {
        Stop::AllSent
    }
}

fn conn_problems(conn_idx: usize, conn: &ConnReport, accept_timeout: Duration) -> Vec<String> {
    let timeout_s = accept_timeout.as_secs_f64();
    let mut problems = Vec::new();
    match &conn.send_end {
        SendEnd::Stalled => problems
            .push(format!("connection {conn_idx}: no write progress for {timeout_s} s; the server stopped reading")),
        SendEnd::Failed(err) => problems.push(format!("connection {conn_idx}: write failed: {err}")),
        SendEnd::AllSent | SendEnd::Deadline => {}
    }
    match &conn.drain {
        Drain::TimedOut => problems
            .push(format!("connection {conn_idx}: the server did not close within {timeout_s} s of the half-close")),
        Drain::Failed(err) => problems.push(format!("connection {conn_idx}: waiting for the server to close: {err}")),
        Drain::Closed { .. } | Drain::Skipped => {}
    }
    problems
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        let w = &info.workload;
        writeln!(f, "{} to {}, {} connections", info.protocol, info.target, info.n_connections)?;
        writeln!(
            f,
            "workload        {} metrics x {} points, names {} (prefix {})",
            w.n_metrics, w.n_points, info.name_pattern, info.prefix
        )?;
        if info.is_partial() {
            writeln!(f, "                this run: metrics {}..{} of them", info.metrics.start, info.metrics.end)?;
        }
        writeln!(
            f,
            "                timestamps {} + k x {} s, values {}, seed {}",
            w.start_ts, w.interval_s, w.values, w.seed
        )?;
        if let Some(framing) = &info.framing {
            writeln!(f, "framing         {framing}")?;
        }
        if info.recorded {
            writeln!(f, "pregenerated    every line formatted before the clock started")?;
        }
        let stop = match self.stop {
            Stop::AllSent => "all points sent",
            Stop::Duration => "duration reached",
            Stop::Error => "on error (see problems)",
        };
        writeln!(f, "stopped         {stop}")?;
        writeln!(f, "points sent     {} of {}", self.points_sent, info.points_planned())?;
        let mib = self.bytes_sent as f64 / (1024.0 * 1024.0);
        writeln!(f, "bytes sent      {} ({mib:.1} MiB) in {} batches", self.bytes_sent, self.batches)?;
        writeln!(f, "send time       {:.6} s", self.send_elapsed.as_secs_f64())?;
        match info.rate_per_s {
            Some(rate) => writeln!(f, "offered rate    {rate:.0} points/s (open loop)")?,
            None => writeln!(f, "offered rate    unlimited (closed loop)")?,
        }
        writeln!(f, "sent rate       {}", per_s(self.sent_rate_per_s()))?;
        match self.accepted_after {
            Some(after) => {
                writeln!(f, "accepted after  {:.6} s, {}", after.as_secs_f64(), per_s(self.accepted_rate_per_s()))?
            }
            None => writeln!(f, "accepted after  not confirmed (see problems)")?,
        }
        match self.latency_us() {
            Some(latency) => writeln!(f, "batch latency   {latency}")?,
            None => writeln!(f, "batch latency   no complete batch")?,
        }
        for problem in &self.problems {
            writeln!(f, "problem         {problem}")?;
        }
        Ok(())
    }
}

fn per_s(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |rate| format!("{rate:.0} points/s"))
}
