//! The render run report: what was asked, how many responses of which status, how fast, and the
//! latency distribution. Text for people (`Display`), one JSON object for scripts (`to_json`), in
//! the shape of the plaintext report.
//!
//! Definitions (times from the common start, when the clients were started):
//!
//! - **responses**: complete responses, whatever their status; **failures**: requests without
//!   one (connect, write or read errors, malformed responses, timeouts);
//! - **elapsed**: until the last client's last request ended;
//! - **requests/s**: responses / elapsed;
//! - **latency**: request to complete response of the status-200 responses, in milliseconds
//!   (HdrHistogram, 3 significant digits), a TCP connect included when one was needed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::http::{Method, RenderForm};
use crate::json::JsonObject;
use crate::render::{ClientReport, ClientStop, RenderConfig, CONSECUTIVE_FAILURES_MAX};
use crate::report::Stop;
use crate::sender::new_latency_histogram;

/// What was asked for.
#[derive(Debug, Clone)]
pub struct RenderInfo {
    /// The base URL as given.
    pub url: String,
    /// The address it resolved to.
    pub target: SocketAddr,
    pub method: Method,
    /// The request path, the URL's prefix included.
    pub path: String,
    pub form: RenderForm,
    pub n_connections: usize,
    /// Requests in the run; `None`: until the duration.
    pub n_requests: Option<u64>,
    pub duration: Option<Duration>,
    pub timeout: Duration,
}

impl RenderInfo {
    /// The description of a run with `cfg`.
    pub fn new(
        url: &str,
        target: SocketAddr,
        method: Method,
        path: String,
        form: RenderForm,
        cfg: &RenderConfig,
    ) -> RenderInfo {
        RenderInfo {
            url: url.to_owned(),
            target,
            method,
            path,
            form,
            n_connections: cfg.n_connections,
            n_requests: cfg.n_requests,
            duration: cfg.deadline,
            timeout: cfg.timeout,
        }
    }
}

/// Latency quantiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyMs {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// The whole run, summed over clients.
#[derive(Debug)]
pub struct RenderReport {
    pub info: RenderInfo,
    /// Complete responses, all statuses.
    pub responses: u64,
    /// Complete responses by status.
    pub status_counts: BTreeMap<u16, u64>,
    /// Requests without a complete response.
    pub failures: u64,
    pub body_bytes: u64,
    pub wire_bytes: u64,
    /// TCP connections opened.
    pub connects: u64,
    /// `AllSent` (the request budget was spent), `Duration` or `Error` (a client gave up).
    pub stop: Stop,
    /// From the start to the end of the last request.
    pub elapsed: Duration,
    /// Nanoseconds per status-200 response.
    pub latency_ns: Histogram<u64>,
    /// One sentence per client that failed; empty for a clean run.
    pub problems: Vec<String>,
}

impl RenderReport {
    /// Sums the clients' reports (in client order).
    pub fn new(info: RenderInfo, clients: Vec<ClientReport>) -> RenderReport {
        let mut latency_ns = new_latency_histogram();
        let mut status_counts = BTreeMap::new();
        for client in &clients {
            latency_ns.add(&client.latency_ns).expect("latency histograms share their bounds");
            for (&status, &n) in &client.status_counts {
                *status_counts.entry(status).or_default() += n;
            }
        }
        let problems = clients.iter().enumerate().filter_map(|(idx, client)| client_problem(idx, client)).collect();
        let stop = if clients.iter().any(|c| c.stop == ClientStop::GaveUp) {
            Stop::Error
        } else if clients.iter().any(|c| c.stop == ClientStop::Deadline) {
            Stop::Duration
        } else {
            Stop::AllSent
        };
        RenderReport {
            responses: clients.iter().map(|c| c.responses).sum(),
            failures: clients.iter().map(|c| c.failures).sum(),
            body_bytes: clients.iter().map(|c| c.body_bytes).sum(),
            wire_bytes: clients.iter().map(|c| c.wire_bytes).sum(),
            connects: clients.iter().map(|c| c.connects).sum(),
            elapsed: clients.iter().map(|c| c.elapsed).max().unwrap_or_default(),
            status_counts,
            stop,
            latency_ns,
            problems,
            info,
        }
    }

    /// Status-200 responses.
    pub fn responses_ok(&self) -> u64 {
        self.status_counts.get(&200).copied().unwrap_or(0)
    }

    /// Complete responses with another status.
    pub fn non_200(&self) -> u64 {
        self.responses - self.responses_ok()
    }

    /// Every request got a 200.
    pub fn is_clean(&self) -> bool {
        self.failures == 0 && self.non_200() == 0
    }

    /// Complete responses per second.
    pub fn requests_per_s(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| self.responses as f64 / secs)
    }

    /// Latency of the status-200 responses; `None` before any.
    pub fn latency_ms(&self) -> Option<LatencyMs> {
        let h = &self.latency_ns;
        let ms = |ns: u64| ns as f64 / 1e6;
        (!h.is_empty()).then(|| LatencyMs {
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }

    /// The report as one JSON object (keys described in the crate README).
    pub fn to_json(&self) -> String {
        let info = &self.info;
        let form = &info.form;
        let latency = self.latency_ms();
        let latency_json = JsonObject::default()
            .u64("count", self.latency_ns.len())
            .f64("mean", latency.map(|l| l.mean), 3)
            .f64("p50", latency.map(|l| l.p50), 3)
            .f64("p90", latency.map(|l| l.p90), 3)
            .f64("p99", latency.map(|l| l.p99), 3)
            .f64("p99_9", latency.map(|l| l.p99_9), 3)
            .f64("max", latency.map(|l| l.max), 3);
        let request_json = JsonObject::default()
            .strs("targets", &form.targets)
            .str("from", form.from.as_deref().unwrap_or(""))
            .str("until", form.until.as_deref().unwrap_or(""))
            .str("format", form.format.as_deref().unwrap_or(""))
            .u64_or_null("max_data_points", form.max_data_points)
            .str("form", &form.encode());
        let statuses =
            self.status_counts.iter().fold(JsonObject::default(), |obj, (status, &n)| obj.u64(&status.to_string(), n));
        JsonObject::default()
            .str("protocol", "render")
            .str("url", &info.url)
            .str("target", &info.target.to_string())
            .str("method", info.method.as_str())
            .str("path", &info.path)
            .u64("connections", info.n_connections as u64)
            .object("request", request_json)
            .u64_or_null("requests_planned", info.n_requests)
            .f64("duration_s", info.duration.map(|d| d.as_secs_f64()), 3)
            .f64("timeout_s", Some(info.timeout.as_secs_f64()), 3)
            .str("stop", self.stop.as_str())
            .u64("responses", self.responses)
            .u64("responses_200", self.responses_ok())
            .u64("non_200", self.non_200())
            .object("status_counts", statuses)
            .u64("failures", self.failures)
            .u64("connects", self.connects)
            .u64("body_bytes", self.body_bytes)
            .u64("wire_bytes", self.wire_bytes)
            .f64("elapsed_s", Some(self.elapsed.as_secs_f64()), 6)
            .f64("requests_per_s", self.requests_per_s(), 3)
            .object("latency_ms", latency_json)
            .strs("problems", &self.problems)
            .finish()
    }
}

fn client_problem(idx: usize, client: &ClientReport) -> Option<String> {
    let first = client.first_failure.as_deref().unwrap_or("");
    match (client.stop, client.failures) {
        (ClientStop::GaveUp, _) => Some(format!(
            "client {idx}: gave up after {CONSECUTIVE_FAILURES_MAX} failed requests in a row; first failure: {first}"
        )),
        (_, 0) => None,
        (_, n) => Some(format!("client {idx}: {n} failed requests; first failure: {first}")),
    }
}

impl fmt::Display for RenderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        writeln!(f, "render to {} ({}), {} connections", info.url, info.target, info.n_connections)?;
        writeln!(f, "request         {} {} {}", info.method.as_str(), info.path, info.form.encode())?;
        let stop = match self.stop {
            Stop::AllSent => "all requests made",
            Stop::Duration => "duration reached",
            Stop::Error => "a client gave up (see problems)",
        };
        writeln!(f, "stopped         {stop}")?;
        let planned = info.n_requests.map_or_else(|| "unbounded".to_owned(), |n| n.to_string());
        let statuses: Vec<String> = self.status_counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        writeln!(f, "responses       {} of {planned} ({})", self.responses, statuses.join(", "))?;
        if self.failures > 0 {
            writeln!(f, "failures        {}", self.failures)?;
        }
        let mib = self.body_bytes as f64 / (1024.0 * 1024.0);
        writeln!(f, "body bytes      {} ({mib:.1} MiB), {} on the wire", self.body_bytes, self.wire_bytes)?;
        writeln!(f, "connections     {} opened", self.connects)?;
        writeln!(f, "elapsed         {:.3} s", self.elapsed.as_secs_f64())?;
        match self.requests_per_s() {
            Some(rate) => writeln!(f, "rate            {rate:.2} requests/s")?,
            None => writeln!(f, "rate            n/a")?,
        }
        match self.latency_ms() {
            Some(l) => writeln!(
                f,
                "latency (200)   mean {:.2} ms, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                l.mean, l.p50, l.p90, l.p99, l.p99_9, l.max
            )?,
            None => writeln!(f, "latency (200)   no status-200 response")?,
        }
        for problem in &self.problems {
            writeln!(f, "problem         {problem}")?;
        }
        Ok(())
    }
}
