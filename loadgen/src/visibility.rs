//! `--visibility N`: end-to-end visibility latency, the time from sending a point until the
//! render API shows it. About `N` points of the run are followed ([`sampler`](crate::sampler)
//! says which, and stamps each with the time its batch or datagram left); a probe thread polls
//! `/render` for them while the run goes on and records, for each, the time from its send until
//! the first answer that holds a value at its timestamp, into an HdrHistogram.
//!
//! **Resolution.** The probe asks for every point still waiting in one request (up to
//! `batch_names` metrics), then waits until [`POLL_INTERVAL`] has passed since that request
//! started, and asks again. A point is timed at the end of the answer that first shows it, so a
//! measurement is late by up to one poll interval plus one render round trip: read the
//! histogram with that resolution in mind. Polling is itself load on the server (about
//! `1 / POLL_INTERVAL` requests per second while points wait).
//!
//! **Bounds.** A point not visible within `timeout` of its send is counted *not visible* and no
//! longer asked for; the probe ends once the run has ended and no point waits, so it ends at most
//! `timeout` after the run.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::{build_request, BaseUrl, Method, RenderForm};
use crate::http_client::HttpClient;
use crate::json::JsonObject;
use crate::name::canonical;
use crate::render_json::{self, RenderedSeries};
use crate::sampler::{Sample, Sampler};
use crate::sender::new_latency_histogram;
use crate::verify::BODY_BYTES_MAX;
use crate::workload::Workload;

/// Shortest time between the starts of two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Default `--visibility-timeout`.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Most `--visibility` samples.
pub const SAMPLES_MAX: u64 = 1_000_000;

/// How to probe.
#[derive(Debug, Clone)]
pub struct VisibilityConfig {
    pub base: BaseUrl,
    pub addr: std::net::SocketAddr,
    /// Points to follow, about; at least 1.
    pub n_samples: u64,
    /// How long a point may take to show before it counts as not visible.
    pub timeout: Duration,
    /// Most metrics per poll.
    pub batch_names: usize,
    /// Longest one request may take.
    pub request_timeout: Duration,
}

/// A probe running beside a run.
#[derive(Debug)]
pub struct Probe {
    handle: thread::JoinHandle<VisibilityReport>,
}

impl Probe {
    /// Starts the probe for `workload` (of which `n_total` points are to be sent); the sources
    /// of the run get clones of the returned sampler. The probe ends once every clone is dropped
    /// and no point waits.
    pub fn start(workload: &Workload, n_total: u64, cfg: VisibilityConfig) -> (Probe, Sampler) {
        let (tx, rx) = mpsc::channel();
        let sampler = Sampler::new(workload.spec().n_metrics, n_total, cfg.n_samples, tx);
        let workload = workload.clone();
        let handle = thread::spawn(move || Prober::new(workload, cfg).run(&rx));
        (Probe { handle }, sampler)
    }

    /// Waits for the probe to end (the run's sources must be gone) and returns its report.
    pub fn finish(self) -> VisibilityReport {
        match self.handle.join() {
            Ok(report) => report,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The probe thread's state.
struct Prober {
    workload: Workload,
    cfg: VisibilityConfig,
    client: HttpClient,
    /// Points that left and are not shown yet: (metric, point, sent at), in send order.
    waiting: Vec<Sample>,
    latency_ns: Histogram<u64>,
    report: VisibilityReport,
}

impl Prober {
    fn new(workload: Workload, cfg: VisibilityConfig) -> Prober {
        let client = HttpClient::new(cfg.addr, cfg.request_timeout);
        let report = VisibilityReport { n_samples: cfg.n_samples, timeout: cfg.timeout, ..VisibilityReport::default() };
        Prober { workload, cfg, client, waiting: Vec::new(), latency_ns: new_latency_histogram(), report }
    }

    fn run(mut self, rx: &Receiver<Sample>) -> VisibilityReport {
        let mut run_over = false;
        loop {
            if self.waiting.is_empty() {
                if run_over {
                    break;
                }
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(sample) => self.arrived(sample),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(sample) => self.arrived(sample),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        run_over = true;
                        break;
                    }
                }
            }
            self.expire();
            if self.waiting.is_empty() {
                continue;
            }
            let started = Instant::now();
            self.poll();
            thread::sleep(POLL_INTERVAL.saturating_sub(started.elapsed()));
        }
        self.report.latency_ns = Some(self.latency_ns);
        self.report
    }

    fn arrived(&mut self, sample: Sample) {
        self.report.n_sent += 1;
        self.waiting.push(sample);
    }

    /// Gives up on points waiting longer than the timeout.
    fn expire(&mut self) {
        let timeout = self.cfg.timeout;
        let before = self.waiting.len();
        self.waiting.retain(|s| s.sent_at.elapsed() < timeout);
        self.report.n_not_visible += (before - self.waiting.len()) as u64;
    }

    /// One request for the metrics of the longest-waiting points; times the points it shows.
    fn poll(&mut self) {
        let mut metrics = BTreeSet::new();
        for sample in &self.waiting {
            if metrics.len() >= self.cfg.batch_names {
                break;
            }
            metrics.insert(sample.metric_idx);
        }
        let w = &self.workload;
        let asked = self.waiting.iter().filter(|s| metrics.contains(&s.metric_idx));
        let first_ts = asked.clone().map(|s| w.timestamp(s.point_idx)).min().unwrap_or(0);
        let last_ts = asked.map(|s| w.timestamp(s.point_idx)).max().unwrap_or(0);
        let names: Vec<String> = metrics.iter().map(|&m| w.names().render(m)).collect();
        let form = RenderForm {
            targets: names.clone(),
            from: Some(first_ts.saturating_sub(1).to_string()),
            until: Some(last_ts.to_string()),
            format: Some("json".to_owned()),
            max_data_points: None,
        };
        let request = build_request(Method::Get, &self.cfg.base, "/render", &form.encode());
        let mut body = Vec::new();
        self.report.n_polls += 1;
        let answer = match self.client.fetch(&request, &mut body, BODY_BYTES_MAX) {
            Ok(200) => render_json::parse(&body).map_err(|err| format!("the answer is not render JSON: {err}")),
            Ok(status) => Err(format!("status {status}")),
            Err(err) => Err(err.to_string()),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                self.report.n_failed_polls += 1;
                self.report.first_failure.get_or_insert(failure);
                return;
            }
        };
        let shown_at = Instant::now();
        let by_target: HashMap<&str, &RenderedSeries> = answer.iter().map(|s| (s.target.as_str(), s)).collect();
        let by_metric: HashMap<u64, &RenderedSeries> = metrics
            .iter()
            .zip(&names)
            .filter_map(|(&m, name)| {
                let series = by_target.get(name.as_str()).or_else(|| by_target.get(canonical(name).as_ref()))?;
                Some((m, *series))
            })
            .collect();
        let workload = &self.workload;
        let latency_ns = &mut self.latency_ns;
        self.waiting.retain(|sample| {
            let Some(series) = by_metric.get(&sample.metric_idx) else { return true };
            let ts = workload.timestamp(sample.point_idx) as i64;
            // Render answers are in time order.
            let at = series.points.partition_point(|&(t, _)| t < ts);
            if !series.points.get(at).is_some_and(|&(t, value)| t == ts && value.is_some()) {
                return true;
            }
            let took = shown_at.saturating_duration_since(sample.sent_at);
            latency_ns.saturating_record(took.as_nanos().try_into().unwrap_or(u64::MAX));
            false
        });
    }
}

/// Visibility latency quantiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisibilityMs {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// What the probe saw.
#[derive(Debug, Clone, Default)]
pub struct VisibilityReport {
    /// Points asked to follow.
    pub n_samples: u64,
    pub timeout: Duration,
    /// Followed points that left.
    pub n_sent: u64,
    /// Of those, points not shown within the timeout.
    pub n_not_visible: u64,
    /// Render requests made, and those that failed.
    pub n_polls: u64,
    pub n_failed_polls: u64,
    pub first_failure: Option<String>,
    /// Send-to-visible times of the points shown; `None` only while probing.
    pub latency_ns: Option<Histogram<u64>>,
}

impl VisibilityReport {
    /// Points shown within the timeout.
    pub fn n_visible(&self) -> u64 {
        self.latency_ns.as_ref().map_or(0, Histogram::len)
    }

    /// The quantiles; `None` before any point was shown.
    pub fn latency_ms(&self) -> Option<VisibilityMs> {
        let h = self.latency_ns.as_ref().filter(|h| !h.is_empty())?;
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(VisibilityMs {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }

    /// Every followed point showed within the timeout. (A failed poll alone is not a failure:
    /// the next poll asks again; it is reported.)
    pub fn is_clean(&self) -> bool {
        self.n_not_visible == 0
    }

    /// The report as a JSON object (keys described in the crate README).
    pub fn to_json_object(&self) -> JsonObject {
        let l = self.latency_ms();
        let latency = JsonObject::default()
            .f64("p50", l.map(|l| l.p50), 3)
            .f64("p99", l.map(|l| l.p99), 3)
            .f64("p99_9", l.map(|l| l.p99_9), 3)
            .f64("max", l.map(|l| l.max), 3);
        JsonObject::default()
            .u64("samples", self.n_samples)
            .u64("sent", self.n_sent)
            .u64("visible", self.n_visible())
            .u64("not_visible", self.n_not_visible)
            .f64("timeout_s", Some(self.timeout.as_secs_f64()), 3)
            .f64("poll_interval_ms", Some(POLL_INTERVAL.as_secs_f64() * 1e3), 3)
            .u64("polls", self.n_polls)
            .u64("failed_polls", self.n_failed_polls)
            .object("latency_ms", latency)
    }
}

impl fmt::Display for VisibilityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "visibility      {} of {} followed points shown, {} not within {} s; {} polls ({} failed), every {} ms",
            self.n_visible(),
            self.n_sent,
            self.n_not_visible,
            self.timeout.as_secs_f64(),
            self.n_polls,
            self.n_failed_polls,
            POLL_INTERVAL.as_millis()
        )?;
        match self.latency_ms() {
            Some(l) => writeln!(
                f,
                "visible after   p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
                l.p50, l.p99, l.p99_9, l.max
            )?,
            None => writeln!(f, "visible after   no point shown")?,
        }
        if let Some(failure) = &self.first_failure {
            writeln!(
                f,
                "note            {} polls failed (asked again at the next); first: {failure}",
                self.n_failed_polls
            )?;
        }
        if self.n_not_visible > 0 {
            writeln!(f, "problem         {} followed points not visible within the timeout", self.n_not_visible)?;
        }
        Ok(())
    }
}
