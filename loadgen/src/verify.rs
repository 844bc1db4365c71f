//! `--verify URL`: after a run, reads every series it sent back through the server's render API
//! and compares each point with the value sent, so that loss is measured, not guessed.
//!
//! **What is expected.** Exactly the points that left ([`Sent`]): the workload is regenerated from
//! its seed metric by metric, so nothing sent is kept in memory, whatever the run's size.
//!
//! **Requests.** `GET URL/render?target=N1&target=N2...&from=F&until=U&format=json`, one `target`
//! per metric name (no globs, so an answer names exactly what was asked), up to `batch_names`
//! names per request and a query string of at most [`QUERY_BYTES_MAX`] bytes (web servers commonly
//! refuse request lines over 8 KiB), over `n_connections` keep-alive connections, one request in
//! flight on each. `F` is one second before the first timestamp (graphite's `from` is exclusive)
//! and `U` the last timestamp. Tagged names (`a.b;k=v`) are asked for by that plain name, which
//! graphite-web 1.1 resolves through the tagged series' hashed path; a series whose answer is
//! named in carbon's canonical form (tags sorted) matches too.
//!
//! **Verdicts**, per expected point: *found* (the series has a value at its timestamp, equal to
//! the value sent, or within the relative `tolerance` that float formatting may cost: those are
//! also counted *inexact*), *wrong* (a value that differs more), or *missing* (no series, or `null`
//! there). Non-null values at timestamps of the run's window that no sent point explains are
//! counted *unexpected* (another run's points, a point cut in half by a deadline): reported, not a
//! failure. A batch with missing points is asked again every [`RETRY_PAUSE`] until `wait` has
//! passed since the verification started, so points still on their way (a UDP socket's buffer, a
//! server's write queue) are not counted missing; a request that fails is retried
//! [`ATTEMPTS`] times, then its points are *unverified*.
//!
//! **Retention.** The answer comes from the archive whose retention covers `from`: verification
//! assumes a storage schema whose finest archive covers the whole run at a step that divides the
//! interval (timestamps near now, as the default `--start` gives). An answer with a coarser step
//! holds aggregates, not the points sent: it is reported as a problem, and its points read as
//! wrong. Future timestamps are not visible until their time comes.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{build_request, push_form_encoded, BaseUrl, Method, RenderForm};
use crate::http_client::HttpClient;
use crate::json::JsonObject;
use crate::name::{canonical, NamePattern};
use crate::progress::{Progress, Ticker};
use crate::render_json::{self, RenderedSeries};
use crate::run::collect;
use crate::sent::{Sent, SentPart};
use crate::workload::Workload;

/// Default `--verify-batch`: names per request.
pub const BATCH_NAMES_DEFAULT: usize = 100;

/// Default `--verify-connections`.
pub const CONNECTIONS_DEFAULT: usize = 4;

/// Most `--verify-connections`.
pub const CONNECTIONS_MAX: usize = 256;

/// Longest query string of one request.
pub const QUERY_BYTES_MAX: usize = 6 * 1024;

/// Values one request may ask for, counting one value per second of the window per name (the
/// finest step a server can have), so that answers stay a few tens of MiB.
pub const VALUES_PER_REQUEST_MAX: u64 = 1_000_000;

/// Longest answer body read.
pub const BODY_BYTES_MAX: usize = 256 << 20;

/// Tries per request before its points count as unverified.
pub const ATTEMPTS: u32 = 3;

/// Pause before asking a batch again.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Examples of missing and wrong points kept for the report.
const EXAMPLES_MAX: usize = 10;

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The base URL as given, for the report.
    pub url: String,
    pub base: BaseUrl,
    /// The address `base` resolved to.
    pub addr: SocketAddr,
    /// Concurrent requests (connections), at least 1.
    pub n_connections: usize,
    /// Most names per request, at least 1.
    pub batch_names: usize,
    /// Longest one request may take.
    pub timeout: Duration,
    /// How long missing points are asked for again, from the start of the verification.
    pub wait: Duration,
    /// Relative difference still counted as found.
    pub tolerance: f64,
    /// No progress lines on stderr.
    pub quiet: bool,
}

/// Counts, summed over batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Series asked for (metrics with at least one point sent).
    pub series: u64,
    /// Series the answer did not hold at all.
    pub series_missing: u64,
    pub expected: u64,
    pub found: u64,
    /// Found, but not bit for bit.
    pub inexact: u64,
    pub missing: u64,
    pub wrong: u64,
    pub unexpected: u64,
    /// Points of batches whose requests all failed.
    pub unverified: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Batches whose every attempt failed.
    pub failed_batches: u64,
    /// The coarsest step an answer had, seconds.
    pub step_max_s: Option<i64>,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    /// A few missing and wrong points, for the report.
    pub examples: Vec<String>,
}

impl Tally {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Tally) {
        self.series += other.series;
        self.series_missing += other.series_missing;
        self.expected += other.expected;
        self.found += other.found;
        self.inexact += other.inexact;
        self.missing += other.missing;
        self.wrong += other.wrong;
        self.unexpected += other.unexpected;
        self.unverified += other.unverified;
        self.requests += other.requests;
        self.failed_batches += other.failed_batches;
        self.step_max_s = self.step_max_s.max(other.step_max_s);
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        let room = EXAMPLES_MAX.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text());
        }
    }
}

/// Characters that make a name something else than itself as a render target: graphite's target
/// grammar (calls, arguments, quotes, escapes, pipes) and glob wildcards.
pub const TARGET_SPECIAL: [char; 13] = ['(', ')', '{', '}', ',', '\'', '"', '\\', '|', '*', '?', '[', ']'];

/// Refuses a name template whose names could not be asked for as plain targets. Template fields
/// expand to digits, so checking the template and the prefix checks every name.
pub fn check_names(names: &NamePattern) -> Result<(), String> {
    let text = names.render(0);
    match text.chars().find(|c| TARGET_SPECIAL.contains(c)) {
        Some(c) => Err(format!(
            "the names hold {c:?}, which a render target reads as grammar or a wildcard: --verify needs names \
             without any of ( ) {{ }} , ' \" \\ | * ? [ ]"
        )),
        None => Ok(()),
    }
}

/// Reads back what `sent` says left of `workload`, as the module documentation says.
pub fn verify(workload: &Workload, sent: &Sent, cfg: &VerifyConfig) -> VerifyReport {
    let clock = Instant::now();
    let batch = batch_names(workload, cfg.batch_names);
    let jobs: Vec<(&SentPart, Range<u64>)> = sent
        .parts
        .iter()
        .flat_map(|part| {
            let m = part.metrics.clone();
            (m.start..m.end).step_by(batch).map(move |first| (part, first..(first + batch as u64).min(m.end)))
        })
        .collect();
    let checker = Checker { workload, cfg, clock };
    let next = AtomicUsize::new(0);
    let progress = Progress::default();
    let n_workers = cfg.n_connections.clamp(1, jobs.len().max(1));
    let (tx, rx) = mpsc::channel();
    let tallies = thread::scope(|scope| {
        for worker_idx in 0..n_workers {
            let (tx, checker, jobs, next, progress) = (tx.clone(), &checker, &jobs, &next, &progress);
            scope.spawn(move || {
                let mut client = HttpClient::new(checker.cfg.addr, checker.cfg.timeout);
                let mut tally = Tally::default();
                while let Some((part, metrics)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let batch = checker.batch(&mut client, part, metrics.clone());
                    progress.add(metrics.end - metrics.start, 0);
                    tally.add(batch);
                }
                // The receiver outlives every worker inside this scope.
                let _ = tx.send((worker_idx, tally));
            });
        }
        drop(tx);
        collect(&rx, n_workers, &progress, clock, cfg.quiet, Ticker::with_verb("series", "checked"))
    });
    let mut tally = Tally::default();
    for t in tallies {
        tally.add(t);
    }
    VerifyReport::new(cfg, workload, tally, clock.elapsed())
}

/// Names per request: `wanted`, or fewer so that the query and the answer stay bounded.
fn batch_names(workload: &Workload, wanted: usize) -> usize {
    // Names grow with the metric index: the last one is the longest.
    let mut longest = String::new();
    push_form_encoded(&mut longest, &workload.names().render(workload.spec().n_metrics - 1));
    let by_query = QUERY_BYTES_MAX / (longest.len() + "&target=".len());
    let window_s = workload.last_timestamp() - workload.spec().start_ts;
    let by_values = VALUES_PER_REQUEST_MAX / (window_s + 1);
    wanted.min(by_query).min(usize::try_from(by_values).unwrap_or(usize::MAX)).max(1)
}

/// What every worker shares.
struct Checker<'a> {
    workload: &'a Workload,
    cfg: &'a VerifyConfig,
    /// The start of the verification.
    clock: Instant,
}

impl Checker<'_> {
    /// Checks the metrics `metrics` of `part`: asks, compares, asks again while points are
    /// missing and the wait lasts.
    fn batch(&self, client: &mut HttpClient, part: &SentPart, metrics: Range<u64>) -> Tally {
        let n_points = self.workload.spec().n_points;
        let names: Vec<(u64, String)> = metrics
            .filter(|&m| (0..n_points).any(|p| part.is_sent(m, p)))
            .map(|m| (m, self.workload.names().render(m)))
            .collect();
        if names.is_empty() {
            return Tally::default();
        }
        let request = self.request(&names);
        let mut body = Vec::new();
        let (mut requests, mut failures) = (0, 0);
        loop {
            requests += 1;
            match self.fetch(client, &request, &mut body) {
                Ok(series) => {
                    let mut tally = self.compare(part, &names, &series);
                    if tally.missing > 0 && self.clock.elapsed() + RETRY_PAUSE < self.cfg.wait {
                        thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                    tally.requests = requests;
                    return tally;
                }
                Err(failure) => {
                    failures += 1;
                    if failures < ATTEMPTS {
                        thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                    let expected: u64 =
                        names.iter().map(|(m, _)| (0..n_points).filter(|&p| part.is_sent(*m, p)).count() as u64).sum();
                    return Tally {
                        series: names.len() as u64,
                        expected,
                        unverified: expected,
                        requests,
                        failed_batches: 1,
                        first_failure: Some(failure),
                        ..Tally::default()
                    };
                }
            }
        }
    }

    /// The GET request for `names` over the run's window.
    fn request(&self, names: &[(u64, String)]) -> Vec<u8> {
        let w = self.workload;
        let form = RenderForm {
            targets: names.iter().map(|(_, name)| name.clone()).collect(),
            from: Some(w.spec().start_ts.saturating_sub(1).to_string()),
            until: Some(w.last_timestamp().to_string()),
            format: Some("json".to_owned()),
            max_data_points: None,
        };
        build_request(Method::Get, &self.cfg.base, "/render", &form.encode())
    }

    /// One request; the answer's series, or why there is none.
    fn fetch(
        &self,
        client: &mut HttpClient,
        request: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<Vec<RenderedSeries>, String> {
        let status = client.fetch(request, body, BODY_BYTES_MAX).map_err(|err| err.to_string())?;
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!("status {status}: {}", text.trim()));
        }
        render_json::parse(body).map_err(|err| format!("the answer is not render JSON: {err}"))
    }

    /// Compares the answer with what was sent.
    fn compare(&self, part: &SentPart, names: &[(u64, String)], answer: &[RenderedSeries]) -> Tally {
        let mut by_name: HashMap<&str, &RenderedSeries> = HashMap::with_capacity(answer.len());
        for series in answer {
            by_name.entry(series.target.as_str()).or_insert(series);
        }
        let mut tally = Tally::default();
        for (metric_idx, name) in names {
            tally.series += 1;
            let series = by_name.get(name.as_str()).or_else(|| by_name.get(canonical(name).as_ref()));
            match series {
                Some(series) => self.compare_series(part, *metric_idx, name, series, &mut tally),
                None => {
                    let n = (0..self.workload.spec().n_points).filter(|&p| part.is_sent(*metric_idx, p)).count() as u64;
                    tally.series_missing += 1;
                    tally.expected += n;
                    tally.missing += n;
                    tally.example(|| format!("{name}: no series in the answer ({n} points)"));
                }
            }
        }
        tally
    }

    fn compare_series(&self, part: &SentPart, metric_idx: u64, name: &str, series: &RenderedSeries, tally: &mut Tally) {
        let w = self.workload;
        let mut points = series.points.clone();
        if !points.is_sorted_by_key(|&(ts, _)| ts) {
            points.sort_by_key(|&(ts, _)| ts);
        }
        let step = match points.as_slice() {
            [a, b, ..] => b.0 - a.0,
            _ => 0,
        };
        if step > 0 {
            tally.step_max_s = tally.step_max_s.max(Some(step));
        }
        let mut matched = vec![false; points.len()];
        for point_idx in (0..w.spec().n_points).filter(|&p| part.is_sent(metric_idx, p)) {
            tally.expected += 1;
            let ts = w.timestamp(point_idx) as i64;
            let want = w.value(metric_idx, point_idx);
            // The last datapoint at or before `ts`, if `ts` is its timestamp or in its step.
            let at = points.partition_point(|&(t, _)| t <= ts).checked_sub(1).filter(|&i| {
                let t = points[i].0;
                t == ts || ts < t.saturating_add(step)
            });
            let Some(i) = at else {
                tally.missing += 1;
                tally.example(|| format!("{name} at {ts}: missing (no datapoint there)"));
                continue;
            };
            matched[i] = true;
            match points[i].1 {
                None => {
                    tally.missing += 1;
                    tally.example(|| format!("{name} at {ts}: missing (null)"));
                }
                Some(got) if got == want => tally.found += 1,
                Some(got) if (got - want).abs() <= self.cfg.tolerance * want.abs() => {
                    tally.found += 1;
                    tally.inexact += 1;
                }
                Some(got) => {
                    tally.wrong += 1;
                    tally.example(|| format!("{name} at {ts}: sent {want}, read {got}"));
                }
            }
        }
        let window = w.spec().start_ts as i64..=w.last_timestamp() as i64;
        tally.unexpected += points
            .iter()
            .zip(&matched)
            .filter(|((ts, value), matched)| !**matched && value.is_some() && window.contains(ts))
            .count() as u64;
    }
}

/// The verification's results.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub url: String,
    pub n_connections: usize,
    pub batch_names: usize,
    pub tolerance: f64,
    pub wait: Duration,
    pub tally: Tally,
    pub elapsed: Duration,
    /// Explanations that are not failures.
    pub notes: Vec<String>,
    /// One sentence per thing that makes the verification fail or doubtful.
    pub problems: Vec<String>,
}

impl VerifyReport {
    fn new(cfg: &VerifyConfig, workload: &Workload, tally: Tally, elapsed: Duration) -> VerifyReport {
        let mut notes = Vec::new();
        let mut problems = Vec::new();
        let interval = workload.spec().interval_s as i64;
        if let Some(step) = tally.step_max_s.filter(|&step| step > interval || interval % step != 0) {
            problems.push(format!(
                "the server answered with a step of {step} s for points {interval} s apart: its storage schema \
                 aggregates them, so values cannot be compared (verification needs a finest archive that covers \
                 the whole run at a step dividing the interval)"
            ));
        }
        if tally.missing > 0 {
            problems.push(format!("{} of {} points missing", tally.missing, tally.expected));
        }
        if tally.wrong > 0 {
            problems.push(format!("{} of {} points with another value", tally.wrong, tally.expected));
        }
        if tally.failed_batches > 0 {
            problems.push(format!(
                "{} requests failed {ATTEMPTS} times each ({} points unverified); first failure: {}",
                tally.failed_batches,
                tally.unverified,
                tally.first_failure.as_deref().unwrap_or("")
            ));
        }
        if workload.names().is_tagged() && tally.series_missing > 0 {
            notes.push(
                "tagged names were asked for by their plain name (a.b;k=v), as graphite-web 1.1 resolves them; a \
                 server without a tag index finds none"
                    .to_owned(),
            );
        }
        if tally.unexpected > 0 {
            notes.push(format!(
                "{} values in the run's window that no sent point explains (an earlier run's points, or a line cut \
                 off by the duration)",
                tally.unexpected
            ));
        }
        VerifyReport {
            url: cfg.url.clone(),
            n_connections: cfg.n_connections,
            batch_names: batch_names(workload, cfg.batch_names),
            tolerance: cfg.tolerance,
            wait: cfg.wait,
            tally,
            elapsed,
            notes,
            problems,
        }
    }

    /// Every expected point was found, with its value.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as a JSON object (keys described in the crate README).
    pub fn to_json_object(&self) -> JsonObject {
        let t = &self.tally;
        JsonObject::default()
            .str("url", &self.url)
            .u64("connections", self.n_connections as u64)
            .u64("batch_names", self.batch_names as u64)
            .number("tolerance", self.tolerance)
            .f64("wait_s", Some(self.wait.as_secs_f64()), 3)
            .u64("series", t.series)
            .u64("series_missing", t.series_missing)
            .u64("points_expected", t.expected)
            .u64("points_found", t.found)
            .u64("points_inexact", t.inexact)
            .u64("points_missing", t.missing)
            .u64("points_wrong", t.wrong)
            .u64("points_unexpected", t.unexpected)
            .u64("points_unverified", t.unverified)
            .u64("requests", t.requests)
            .u64("failed_requests", t.failed_batches)
            .u64_or_null("server_step_s", t.step_max_s.map(|s| s as u64))
            .f64("elapsed_s", Some(self.elapsed.as_secs_f64()), 3)
            .strs("examples", &t.examples)
            .strs("notes", &self.notes)
            .strs("problems", &self.problems)
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        writeln!(
            f,
            "verify          {}: {} series ({} missing) in {} requests over {} connections, {:.3} s",
            self.url,
            t.series,
            t.series_missing,
            t.requests,
            self.n_connections,
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "points          expected {}, found {}, missing {}, wrong {} (inexact {}, unexpected {}, unverified {})",
            t.expected, t.found, t.missing, t.wrong, t.inexact, t.unexpected, t.unverified
        )?;
        for example in &t.examples {
            writeln!(f, "example         {example}")?;
        }
        for note in &self.notes {
            writeln!(f, "note            {note}")?;
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
    use crate::workload::{ValuePattern, WorkloadSpec};

    fn workload(pattern: &str) -> Workload {
        let names = NamePattern::parse(pattern, "v").unwrap();
        let spec = WorkloadSpec {
            n_metrics: 3,
            n_points: 4,
            start_ts: 1_000,
            interval_s: 10,
            seed: 8,
            values: ValuePattern::Random,
        };
        Workload::new(names, spec).unwrap()
    }

    fn config() -> VerifyConfig {
        VerifyConfig {
            url: "http://127.0.0.1:1".to_owned(),
            base: BaseUrl::parse("http://127.0.0.1:1").unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
            n_connections: 1,
            batch_names: 100,
            timeout: Duration::from_secs(1),
            wait: Duration::ZERO,
            tolerance: 1e-9,
            quiet: true,
        }
    }

    /// The answer a faithful server gives for `metrics`: every point sent at a 1 s step over the
    /// run's window (timestamps 999 + 1 .. 1030), `null` elsewhere.
    fn faithful(w: &Workload, part: &SentPart, metrics: Range<u64>) -> Vec<RenderedSeries> {
        metrics
            .map(|m| RenderedSeries {
                target: w.names().render(m),
                points: (1_000..=1_030)
                    .map(|ts: i64| {
                        let p = (ts - 1_000) as u64 / 10;
                        let sent = (ts - 1_000) % 10 == 0 && part.is_sent(m, p);
                        (ts, sent.then(|| w.value(m, p)))
                    })
                    .collect(),
            })
            .collect()
    }

    fn compare(w: &Workload, part: &SentPart, answer: &[RenderedSeries]) -> Tally {
        let cfg = config();
        let checker = Checker { workload: w, cfg: &cfg, clock: Instant::now() };
        let names: Vec<(u64, String)> = (0..3).map(|m| (m, w.names().render(m))).collect();
        checker.compare(part, &names, answer)
    }

    #[test]
    fn a_faithful_answer_finds_everything_sent() {
        let w = workload("{prefix}.m{i}");
        // 10 of 12 points left: metrics 1 and 2 lack their last point.
        let part = SentPart::prefix(0..3, 10);
        let t = compare(&w, &part, &faithful(&w, &part, 0..3));
        assert_eq!((t.series, t.expected, t.found, t.missing, t.wrong, t.unexpected), (3, 10, 10, 0, 0, 0));
        assert_eq!(t.step_max_s, Some(1));
        assert!(t.examples.is_empty());
    }

    #[test]
    fn missing_wrong_inexact_and_unexpected_are_told_apart() {
        let w = workload("{prefix}.m{i}");
        let part = SentPart::prefix(0..3, 10);
        let mut answer = faithful(&w, &part, 0..3);
        answer.remove(1); // v.m1: 3 points, no series
        let m0 = &mut answer[0].points;
        m0[0].1 = None; // missing at 1000
        m0[10].1 = Some(m0[10].1.unwrap() + 1.0); // wrong at 1010
        let v = m0[20].1.unwrap();
        m0[20].1 = Some(v * (1.0 + 1e-12)); // within the tolerance at 1020
        m0[5].1 = Some(7.0); // a value nobody sent, at 1005
        let m2 = &mut answer[1].points;
        m2.retain(|&(ts, _)| ts != 1_020); // no datapoint at all at 1020
        m2.truncate(28); // v.m2's point at 1030 never left: nothing is lost
        let t = compare(&w, &part, &answer);
        assert_eq!((t.series, t.series_missing, t.expected), (3, 1, 10));
        assert_eq!((t.found, t.inexact, t.missing, t.wrong, t.unexpected), (4, 1, 5, 1, 1));
        assert_eq!(t.examples.len(), 4, "{:?}", t.examples);
        assert!(t.examples[0].starts_with("v.m0 at 1000: missing"), "{:?}", t.examples);
        assert!(t.examples[1].starts_with("v.m0 at 1010: sent "), "{:?}", t.examples);
        assert!(t.examples.iter().any(|e| e.starts_with("v.m1: no series")), "{:?}", t.examples);
    }

    #[test]
    fn tagged_names_match_their_canonical_form_and_coarse_steps_are_seen() {
        let w = workload("{prefix}.m{i};z=1;a=2");
        let part = SentPart::prefix(0..3, 12);
        let mut answer = faithful(&w, &part, 0..3);
        for series in &mut answer {
            series.target = canonical(&series.target).into_owned();
            assert!(series.target.ends_with(";a=2;z=1"));
        }
        let t = compare(&w, &part, &answer);
        assert_eq!((t.found, t.missing, t.series_missing), (12, 0, 0));
        // A 60 s archive: one bucket per metric holding an average; every point reads as wrong.
        let coarse: Vec<RenderedSeries> = (0..3)
            .map(|m| RenderedSeries { target: w.names().render(m), points: vec![(960, Some(1.0)), (1_020, Some(2.0))] })
            .collect();
        let t = compare(&w, &part, &coarse);
        assert_eq!((t.expected, t.found, t.wrong, t.missing, t.step_max_s), (12, 0, 12, 0, Some(60)));
        let report = VerifyReport::new(&config(), &w, t, Duration::ZERO);
        assert!(report.problems[0].contains("step of 60 s"), "{:?}", report.problems);
        assert!(!report.is_clean());
    }

    #[test]
    fn batches_stay_within_the_query_and_answer_bounds() {
        let w = workload("{prefix}.m{i}");
        assert_eq!(batch_names(&w, 100), 100);
        assert_eq!(batch_names(&w, 1), 1);
        let long = format!("{}.{{i}};k=v", "x".repeat(3_000));
        assert_eq!(batch_names(&workload(&long), 100), 2, "6 KiB of query holds two 3 KiB names");
        let names = NamePattern::parse("{prefix}.{i}", "a").unwrap();
        let spec = WorkloadSpec {
            n_metrics: 1,
            n_points: 100_000,
            start_ts: 0,
            interval_s: 60,
            seed: 1,
            values: ValuePattern::Random,
        };
        assert_eq!(batch_names(&Workload::new(names, spec).unwrap(), 100), 1, "a long window: one name a request");
    }

    #[test]
    fn names_a_target_would_misread_are_refused() {
        assert!(check_names(&NamePattern::parse("{prefix}.m{i};k=v", "a-b_c").unwrap()).is_ok());
        for bad in ["a*", "a?", "a[1]", "f(x)", "a,b", "a|b", "it's", "a\"b", "a\\b"] {
            let names = NamePattern::parse("{prefix}.{i}", bad).unwrap();
            assert!(check_names(&names).is_err(), "{bad}");
        }
    }
}
