//! End to end against graphite-web 1.1.8: the real binary and graphite-web's real Django views
//! (`tests/reference/graphite_web_http.py`, no server: Django's test client) read the SAME
//! whisper directory, written here with the engine, and answer the same `/render`,
//! `/metrics/find` and `/metrics/expand` requests; the answers are compared.
//!
//! The directory: ~30 metrics in a small tree (`servers.web{1..4}.{cpu,mem,net.rx,net.tx}`,
//! `apps.*.requests.count`, `misc.*`) under two schemas (`10s:6h,1m:7d` and `60s:30d`, so that
//! combiners normalize mixed steps), all eight aggregation methods, a file xFilesFactor of 0.5,
//! gaps, negative values, values near the largest double (sums overflow to infinity), a counter
//! with a reset, a metric whose only data is days old, one that never got a point, and a
//! directory with the same name as a metric. `now` is fixed and given to both (`now=`), so the
//! answers do not depend on the clock.
//!
//! What is compared: same status; on 200 the same series in the same order, with the same
//! names (`target`), tags and timestamps, values within 1e-9 relative, nulls at the same
//! places. graphite-web writes `1e9999` for an infinite value where we write null (Grafana's Go
//! backend cannot parse `1e9999`): accepted. csv and raw bodies row by row, values the same way.
//! Every corpus entry where graphite-web fails (a Python exception is a 500) or where we differ
//! on purpose says so and why, and the test checks our answer instead (a 400 with a message, or
//! graphite-web's answer to what we read the request to mean); nothing is skipped silently.
//!
//! Three tests: the target corpus (every function we implement, the grammar, malformed
//! targets; each target once as is and once as Grafana ≥ 11.6 sends it, wrapped in `aliasSub`
//! with maxDataPoints; graphite-web's functions we lack must answer 400), globs / times /
//! maxDataPoints / xFilesFactor / noNullPoints / csv / raw, and find / expand.
//!
//! Left out: graphite-web's `/functions` answers 500 on Python 3.11 (`inspect.getargspec` is
//! gone), so it cannot be compared; `/metrics/find?format=json` gives each leaf's `intervals`
//! from the clock and the file's mtime (see [`without_intervals`]).
//!
//! `#[ignore]`d (they need Python 3 and graphite-web): `cargo test --test it reference_render --
//! --ignored`. `reference_render_corpus_covers_every_function` runs always: a function added to
//! the table without a corpus entry fails it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use carbyne::render::{parse, Expr};
use carbyne::whisper::{create, parse_retentions, AggregationMethod, CreateOptions, Point, Whisper, WriteOptions};
use serde_json::{json, Value};

use crate::http::dechunk;
use crate::server::Appliance;

/// The fixed "now" of every request and of every write: 2023-11-14 22:13:57 UTC.
const NOW: i64 = 1_700_000_037;
/// Schemas of the store.
const FINE: &str = "10s:6h,1m:7d";
const COARSE: &str = "60s:30d";

// ---------------------------------------------------------------------------------------------
// The whisper directory.

/// How a metric's values go.
#[derive(Clone, Copy)]
enum Shape {
    /// base + amp × a slow wave, plus a fractional wobble.
    Gauge(f64, f64),
    /// A gauge with holes: every 7th step, and a 20-minute gap ending 20 minutes ago.
    Gappy,
    /// A counter going up by about `rate` per 10 s, reset to 0 half an hour ago.
    Counter(f64),
    /// Around -10, often below 0.
    Negative,
    /// Between 3e307 and 9e307: a sum of two, or a scale by 2, often overflows to infinity.
    Huge,
    /// Whole counts per step, a null every 13th step.
    Count,
    /// Data only from three days ago (none in any recent window).
    Stale,
    /// No point at all.
    Empty,
}

struct Metric {
    name: &'static str,
    retentions: &'static str,
    method: AggregationMethod,
    xff: f64,
    shape: Shape,
}

const fn m(name: &'static str, retentions: &'static str, method: AggregationMethod, shape: Shape) -> Metric {
    Metric { name, retentions, method, xff: 0.0, shape }
}

use AggregationMethod as A;

const METRICS: &[Metric] = &[
    m("servers.web1.cpu", FINE, A::Average, Shape::Gauge(50.0, 30.0)),
    m("servers.web2.cpu", FINE, A::Average, Shape::Gappy),
    m("servers.web3.cpu", FINE, A::Average, Shape::Gauge(20.0, 15.0)),
    m("servers.web4.cpu", COARSE, A::Average, Shape::Gauge(70.0, 20.0)),
    m("servers.web1.mem", FINE, A::Max, Shape::Gauge(4.0e9, 1.0e9)),
    m("servers.web2.mem", FINE, A::Max, Shape::Gauge(2.0e9, 5.0e8)),
    m("servers.web3.mem", FINE, A::Min, Shape::Gauge(8.0e9, 1.0e9)),
    m("servers.web4.mem", COARSE, A::Max, Shape::Gauge(1.0e9, 2.0e8)),
    m("servers.web1.net.rx", FINE, A::Last, Shape::Counter(1000.0)),
    m("servers.web2.net.rx", FINE, A::Last, Shape::Counter(250.0)),
    m("servers.web3.net.rx", FINE, A::Last, Shape::Counter(4000.0)),
    m("servers.web4.net.rx", COARSE, A::Last, Shape::Counter(600.0)),
    m("servers.web1.net.tx", FINE, A::Sum, Shape::Gauge(300.0, 200.0)),
    m("servers.web2.net.tx", FINE, A::AbsMax, Shape::Gauge(100.0, 120.0)),
    m("servers.web3.net.tx", FINE, A::AbsMin, Shape::Negative),
    m("servers.web4.net.tx", COARSE, A::Average, Shape::Gauge(10.0, 5.0)),
    m("apps.api.requests.count", FINE, A::Sum, Shape::Count),
    m("apps.web.requests.count", FINE, A::Sum, Shape::Count),
    m("apps.worker.requests.count", FINE, A::Sum, Shape::Count),
    m("apps.batch.requests.count", COARSE, A::Sum, Shape::Count),
    m("apps.api.latency.p99", FINE, A::Last, Shape::Gauge(0.25, 0.2)),
    m("misc.stale", FINE, A::Average, Shape::Stale),
    m("misc.empty", FINE, A::Average, Shape::Empty),
    m("misc.both", FINE, A::Average, Shape::Gauge(5.0, 1.0)),
    m("misc.both.child", FINE, A::Average, Shape::Gauge(6.0, 2.0)),
    m("misc.negative", FINE, A::AbsMax, Shape::Negative),
    m("misc.avgzero", FINE, A::AvgZero, Shape::Gappy),
    Metric { name: "misc.xff", retentions: FINE, method: A::Average, xff: 0.5, shape: Shape::Gappy },
    m("misc.huge", FINE, A::Max, Shape::Huge),
    m("misc.minimal", COARSE, A::Min, Shape::Gauge(3.0, 3.0)),
];

/// The value of metric number `idx` at `t`, None for a hole.
fn value_at(idx: usize, shape: Shape, t: i64) -> Option<f64> {
    let wave = ((t as f64) / 900.0 + idx as f64).sin();
    // A fractional wobble that differs per metric and per step (three decimals).
    let wobble = ((t / 10 * 7919 + idx as i64 * 104_729).rem_euclid(1000)) as f64 / 1000.0;
    let step = t / 10;
    match shape {
        Shape::Gauge(base, amp) => Some(base + amp * wave + wobble),
        Shape::Gappy => {
            let hole = step % 7 == 3 || (NOW - 2400..NOW - 1200).contains(&t);
            (!hole).then_some(40.0 + 25.0 * wave + wobble)
        }
        Shape::Counter(rate) => {
            let reset = NOW - 1800;
            let since = if t >= reset { t - reset } else { t - (NOW - 9 * 86_400) };
            Some((rate * since as f64 / 10.0).floor() + wobble.floor())
        }
        Shape::Negative => Some(-10.0 + 30.0 * wave - wobble),
        Shape::Huge => Some(1.0e308 * (0.6 + 0.3 * wave)),
        Shape::Count => (step % 13 != 5).then_some(((step * 31 + idx as i64) % 17) as f64),
        Shape::Stale => {
            let age = NOW - t;
            (3 * 86_400 - 7200..=3 * 86_400).contains(&age).then_some(100.0 + wave)
        }
        Shape::Empty => None,
    }
}

/// Every metric's file, written with the engine at `NOW`: 10 s points over the last 8 hours and
/// 1 min points before that (back 10 days: what is past a retention is dropped, as carbon
/// drops it).
fn build_store(dir: &Path) {
    let aligned = NOW - NOW % 60;
    for (idx, metric) in METRICS.iter().enumerate() {
        let path = dir.join(format!("{}.wsp", metric.name.replace('.', "/")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let specs = parse_retentions(metric.retentions).unwrap();
        let opts = CreateOptions { aggregation: metric.method, x_files_factor: metric.xff, ..CreateOptions::default() };
        create(&path, &specs, &opts).unwrap();
        let fine = metric.retentions == FINE;
        let mut times: Vec<i64> = (1..=10 * 1440).map(|k| aligned - 8 * 3600 - k * 60).collect();
        let recent_step = if fine { 10 } else { 60 };
        times.extend((0..8 * 3600 / recent_step).map(|k| (NOW - NOW % recent_step) - k * recent_step));
        let points: Vec<Point> = times.into_iter().filter_map(|t| Some((t, value_at(idx, metric.shape, t)?))).collect();
        let mut file = Whisper::open(&path, WriteOptions::default()).unwrap();
        file.update_many(&points, NOW).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The two servers.

/// One request, sent the same way to both.
#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    path: &'static str,
    params: Vec<(String, String)>,
    /// A raw form body (Grafana's unencoded `query=a.b.*`); `params` then go in the URL.
    body: Option<String>,
}

impl Req {
    fn post(path: &'static str, params: &[(&str, &str)]) -> Req {
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Req { method: "POST", path, params, body: None }
    }

    fn get(path: &'static str, params: &[(&str, &str)]) -> Req {
        Req { method: "GET", ..Req::post(path, params) }
    }

    fn describe(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let body = self.body.as_deref().map(|b| format!(" body {b:?}")).unwrap_or_default();
        format!("{} {} {}{body}", self.method, self.path, params.join("&"))
    }
}

/// One answer: status, content type (without parameters), body.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: String,
    /// graphite-web's exception, when a view raised.
    error: Option<String>,
}

impl Answer {
    fn summary(&self) -> String {
        let body: String = self.body.chars().take(600).collect();
        match &self.error {
            Some(e) => format!("{} ({e})", self.status),
            None => format!("{} {} {body}", self.status, self.content_type),
        }
    }
}

fn encode(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// Carbyne over HTTP/1.1, one connection per request.
fn carbyne(addr: SocketAddr, req: &Req) -> Answer {
    let query = encode(&req.params);
    let (target, body) = match (&req.body, req.method) {
        (Some(body), _) => (format!("{}?{query}", req.path), body.clone()),
        (None, "GET") => (format!("{}?{query}", req.path), String::new()),
        (None, _) => (req.path.to_string(), query),
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        req.method,
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = raw[split + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Answer {
        status,
        content_type: media_type(&header("content-type").unwrap_or_default()),
        body: String::from_utf8_lossy(&body).into_owned(),
        error: None,
    }
}

/// `text/csv; charset=utf-8` → `text/csv`.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// graphite-web's views, in a Python process of their own.
struct GraphiteWeb {
    child: Child,
    /// Closed on drop: the driver then ends and removes its temporary directory.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl GraphiteWeb {
    fn start(whisper_dir: &Path) -> GraphiteWeb {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/graphite_web_http.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(whisper_dir)
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 runs (the reference tests need Python 3 and graphite-web)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let hello: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        assert_eq!(hello["ready"], true, "graphite-web did not start: {line}");
        GraphiteWeb { child, stdin: Some(stdin), stdout }
    }

    fn ask(&mut self, req: &Req) -> Answer {
        let mut line = json!({
            "method": req.method,
            "path": req.path,
            "params": req.params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        });
        if let Some(body) = &req.body {
            line["body"] = json!(body);
        }
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("driver answer {answer:?}: {e}"));
        Answer {
            status: v["status"].as_u64().unwrap_or(0) as u16,
            content_type: media_type(v["content_type"].as_str().unwrap_or("")),
            body: v["body"].as_str().unwrap_or("").to_string(),
            error: v["error"].as_str().map(str::to_string),
        }
    }
}

impl Drop for GraphiteWeb {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..250 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both servers over one freshly written store.
struct Fixture {
    app: Appliance,
    http: SocketAddr,
    graphite: GraphiteWeb,
    /// Dropped last, after both servers.
    _store: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(build_store)
    }

    /// Both servers over a store `build` writes.
    fn start_with(build: fn(&Path)) -> Fixture {
        let store = tempfile::tempdir().unwrap();
        build(store.path());
        // Nothing of Carbyne's own may land in the shared directory while the answers are
        // compared: no statsd, and self-metrics only once a day (CARBON_METRIC_INTERVAL = 0 is
        // documented as "off" but reports every second; one last report at stop is harmless).
        let app = Appliance::start_on(store.path(), "CARBON_METRIC_INTERVAL = 86400\nENABLE_STATSD = False\n");
        let http = app.http.expect("HTTP is on");
        let graphite = GraphiteWeb::start(store.path());
        Fixture { app, http, graphite, _store: store }
    }

    /// Both answers.
    fn ask(&mut self, req: &Req) -> (Answer, Answer) {
        (carbyne(self.http, req), self.graphite.ask(req))
    }

    fn stop(mut self) {
        self.app.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing answers.

/// A value of a datapoint: null, a number, or graphite-web's infinity.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Datum {
    Null,
    Num(f64),
    Inf(bool),
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
}

/// graphite-web's JSON with its `1e9999` / `-1e9999` (infinity) made parseable.
fn parse_theirs(body: &str) -> Result<Value, String> {
    let text = body.replace("-1e9999", "\"-inf\"").replace("1e9999", "\"inf\"");
    serde_json::from_str(&text).map_err(|e| format!("graphite-web's body is not JSON ({e}): {body:.300}"))
}

fn datum(v: &Value) -> Result<Datum, String> {
    match v {
        Value::Null => Ok(Datum::Null),
        Value::Number(n) => Ok(Datum::Num(n.as_f64().unwrap())),
        Value::String(s) if s == "inf" => Ok(Datum::Inf(true)),
        Value::String(s) if s == "-inf" => Ok(Datum::Inf(false)),
        other => Err(format!("not a datapoint value: {other}")),
    }
}

/// How values are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Values {
    /// Within 1e-9 relative, nulls equal; our null for their infinity.
    Close,
    /// Only whether a value is there (random series).
    Presence,
}

/// The JSON series lists `ours` and `theirs` agree (see the module documentation).
fn same_json(ours: &str, theirs: &str, values: Values) -> Result<(), String> {
    let ours: Value = serde_json::from_str(ours).map_err(|e| format!("our body is not JSON ({e}): {ours:.300}"))?;
    let theirs = parse_theirs(theirs)?;
    let (o, t) = (ours.as_array().ok_or("ours is not a list")?, theirs.as_array().ok_or("theirs is not a list")?);
    let names = |l: &[Value]| l.iter().map(|s| s["target"].to_string()).collect::<Vec<_>>().join(", ");
    if o.len() != t.len() {
        return Err(format!("{} series [{}] vs graphite-web's {} [{}]", o.len(), names(o), t.len(), names(t)));
    }
    for (a, b) in o.iter().zip(t) {
        if a["target"] != b["target"] {
            return Err(format!("series names [{}] vs graphite-web's [{}]", names(o), names(t)));
        }
        let name = &a["target"];
        if a["tags"] != b["tags"] {
            return Err(format!("{name}: tags {} vs graphite-web's {}", a["tags"], b["tags"]));
        }
        let (pa, pb) = (a["datapoints"].as_array().unwrap(), b["datapoints"].as_array().unwrap());
        let stamps = |l: &[Value]| l.iter().map(|p| p[1].as_i64().unwrap_or(-1)).collect::<Vec<_>>();
        if stamps(pa) != stamps(pb) {
            let (sa, sb) = (stamps(pa), stamps(pb));
            return Err(format!(
                "{name}: {} timestamps {:?}..{:?} vs graphite-web's {} {:?}..{:?}",
                sa.len(),
                sa.first(),
                sa.last(),
                sb.len(),
                sb.first(),
                sb.last()
            ));
        }
        same_values(name, pa, pb, values)?;
    }
    Ok(())
}

/// The values of two datapoint lists with the same timestamps agree.
fn same_values(name: &Value, ours: &[Value], theirs: &[Value], values: Values) -> Result<(), String> {
    let mut bad = Vec::new();
    for (x, y) in ours.iter().zip(theirs) {
        let ok = match (datum(&x[0])?, datum(&y[0])?, values) {
            (Datum::Null, Datum::Null, _) => true,
            // Documented: null where graphite-web writes 1e9999.
            (Datum::Null, Datum::Inf(_), _) => true,
            (Datum::Num(p), Datum::Num(q), Values::Close) => close(p, q),
            (Datum::Num(_), Datum::Num(_), Values::Presence) => true,
            _ => false,
        };
        if !ok {
            let theirs = if bad.is_empty() { format!(" (graphite-web {})", y[0]) } else { String::new() };
            bad.push(format!("{} at {}{theirs}", x[0], x[1]));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!("{name}: {} values differ: {}", bad.len(), bad.iter().take(4).cloned().collect::<Vec<_>>().join("; ")))
}

/// A csv or raw value: Python's repr of a float (`nan`, `inf`, `None` or empty for null).
fn same_cell(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => close(x, y),
        _ => false,
    }
}

/// csv bodies: `name,YYYY-MM-DD HH:MM:SS,value` rows. The value is the last field (a name may
/// hold commas, quoted).
fn same_csv(ours: &str, theirs: &str) -> Result<(), String> {
    let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if o.len() != t.len() {
        return Err(format!("{} csv rows vs graphite-web's {}", o.len(), t.len()));
    }
    for (a, b) in o.iter().zip(&t) {
        let (ka, va) = a.rsplit_once(',').unwrap_or((a, ""));
        let (kb, vb) = b.rsplit_once(',').unwrap_or((b, ""));
        if ka != kb || !same_cell(va, vb) {
            return Err(format!("csv row {a:?} vs graphite-web's {b:?}"));
        }
    }
    Ok(())
}

/// raw bodies: `name,start,end,step|v1,v2,...` lines.
fn same_raw(ours: &str, theirs: &str) -> Result<(), String> {
    let (o, t): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if o.len() != t.len() {
        return Err(format!("{} raw lines vs graphite-web's {}", o.len(), t.len()));
    }
    for (a, b) in o.iter().zip(&t) {
        let (ha, va) = a.rsplit_once('|').unwrap_or((a, ""));
        let (hb, vb) = b.rsplit_once('|').unwrap_or((b, ""));
        let (va, vb): (Vec<&str>, Vec<&str>) = (va.split(',').collect(), vb.split(',').collect());
        if ha != hb || va.len() != vb.len() || va.iter().zip(&vb).any(|(x, y)| !same_cell(x, y)) {
            return Err(format!("raw line {a:.200} vs graphite-web's {b:.200}"));
        }
    }
    Ok(())
}

/// Compares one render answer pair: statuses, content types, bodies by format.
fn same_render(ours: &Answer, theirs: &Answer, format: &str, values: Values) -> Result<(), String> {
    if ours.status != theirs.status {
        return Err(format!("status {} vs graphite-web's {}", ours.summary(), theirs.summary()));
    }
    if ours.status != 200 {
        return Ok(());
    }
    if ours.content_type != theirs.content_type {
        return Err(format!("content type {} vs graphite-web's {}", ours.content_type, theirs.content_type));
    }
    match format {
        "csv" => same_csv(&ours.body, &theirs.body),
        "raw" => same_raw(&ours.body, &theirs.body),
        _ => same_json(&ours.body, &theirs.body, values),
    }
}

/// Whether our answer holds something (so that a corpus of empty answers would show): a 200
/// with a value in some datapoint, a csv or raw row, a found node or an expanded path.
fn substantive(ours: &Answer) -> bool {
    if ours.status != 200 {
        return false;
    }
    if ours.content_type != "application/json" {
        return !ours.body.trim().is_empty();
    }
    let json: Value = serde_json::from_str(&ours.body).unwrap_or(Value::Null);
    match &json {
        Value::Array(list) => list.iter().any(|s| match s["datapoints"].as_array() {
            Some(points) => points.iter().any(|p| p[0].is_number()),
            None => true,
        }),
        Value::Object(o) => o.values().any(|v| v.as_array().is_some_and(|l| !l.is_empty()) || v.is_object()),
        _ => false,
    }
}

/// Runs checks, collecting every failure; panics listing them all. With
/// `CARBYNE_REFERENCE_RENDER_SHOW=1` in the environment, every request and both answers are
/// printed too.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    checked: usize,
    /// Answers of ours with something in them (see [`substantive`]).
    with_values: usize,
}

impl Report {
    fn check(&mut self, req: &Req, ours: &Answer, theirs: &Answer, result: Result<(), String>) {
        self.checked += 1;
        self.with_values += usize::from(substantive(ours));
        if std::env::var_os("CARBYNE_REFERENCE_RENDER_SHOW").is_some() {
            eprintln!(
                "{}
  ours:         {}
  graphite-web: {}",
                req.describe(),
                ours.summary(),
                theirs.summary()
            );
        }
        if let Err(why) = result {
            self.failures.push(format!("{}\n    {why}", req.describe()));
        }
    }

    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} requests differ from graphite-web 1.1.8:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
        eprintln!(
            "{what}: {} requests ({} answered with values or nodes), all as graphite-web 1.1.8 answers them \
             or as documented",
            self.checked, self.with_values,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The function corpus.

/// What a corpus entry expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The same answer as graphite-web.
    Same,
    /// Random values (`randomWalk`): names, tags, timestamps and where values are compared.
    Random,
    /// graphite-web fails with `status` (500: a Python exception); we answer 400 with a message.
    Refused { theirs: u16, why: &'static str },
    /// We answer as graphite-web answers the target `theirs`, which says what we read the
    /// request to mean (graphite-web reads it otherwise, wrongly).
    SameAs { theirs: &'static str, why: &'static str },
}

struct Case {
    target: &'static str,
    expect: Expect,
}

const fn same(target: &'static str) -> Case {
    Case { target, expect: Expect::Same }
}

const fn refused(target: &'static str, theirs: u16, why: &'static str) -> Case {
    Case { target, expect: Expect::Refused { theirs, why } }
}

const fn same_as(target: &'static str, theirs: &'static str, why: &'static str) -> Case {
    Case { target, expect: Expect::SameAs { theirs, why } }
}

const fn random(target: &'static str) -> Case {
    Case { target, expect: Expect::Random }
}

/// Every function we implement, each at least once, over the last hour (10 s and 60 s series
/// mixed where a glob takes both schemas).
const FUNCTION_CASES: &[Case] = &[
    // Combine.
    same("sumSeries(servers.*.cpu)"),
    same("sumSeries(servers.web[1-3].cpu)"),
    same("sum(servers.web1.cpu, servers.web2.cpu)"),
    same("sumSeries(misc.huge, scale(misc.huge, 2))"),
    same("averageSeries(servers.*.cpu)"),
    same("avg(servers.web{1,2}.cpu)"),
    same("averageSeries(misc.avgzero, misc.xff)"),
    same("maxSeries(servers.*.mem)"),
    same("minSeries(servers.*.mem)"),
    same("diffSeries(servers.web1.net.tx, servers.web2.net.tx)"),
    same("diffSeries(servers.web2.cpu, servers.web1.cpu)"),
    same("multiplySeries(servers.web1.cpu, servers.web3.cpu)"),
    same("rangeOfSeries(servers.*.cpu)"),
    same("stddevSeries(servers.web[1-3].cpu)"),
    same("countSeries(servers.*.cpu)"),
    same("countSeries(no.such.metric)"),
    same("aggregate(servers.*.cpu, 'sum')"),
    same("aggregate(servers.web[12].cpu, 'avg_zero')"),
    same("aggregate(servers.*.cpu, 'median')"),
    same("aggregate(servers.*.cpu, 'count')"),
    same("aggregate(servers.web[12].cpu, 'last', 0.5)"),
    same("aggregate(servers.*.cpu, 'diff')"),
    same("aggregate(servers.*.cpu, 'multiply')"),
    same("aggregate(servers.*.cpu, 'range')"),
    same("aggregate(servers.*.cpu, 'stddev')"),
    same("aggregate(servers.*.cpu, 'avg')"),
    same("aggregate(servers.*.cpu, 'current')"),
    same("aggregateSeriesLists(servers.web[12].cpu, servers.web[12].mem, 'sum')"),
    same("aggregateWithWildcards(servers.*.cpu, 'sum', 1)"),
    same("aggregateWithWildcards(servers.*.net.*, 'max', 1, 3)"),
    same("sumSeriesWithWildcards(servers.*.net.*, 1)"),
    same("averageSeriesWithWildcards(servers.*.net.*, 1, 3)"),
    same("multiplySeriesWithWildcards(servers.web[12].net.*, 1)"),
    same("sumSeriesLists(servers.web[12].cpu, servers.web[12].mem)"),
    same("diffSeriesLists(servers.web[12].cpu, servers.web[12].mem)"),
    same("multiplySeriesLists(servers.web[12].cpu, servers.web[12].mem)"),
    same("divideSeriesLists(servers.web[12].net.tx, servers.web[12].cpu)"),
    same("divideSeries(servers.*.net.tx, servers.web1.cpu)"),
    same("divideSeries(servers.web1.cpu, no.such.metric)"),
    refused("divideSeries(servers.web1.cpu, servers.*.cpu)", 400, "the divisor must be exactly one series"),
    same("asPercent(servers.web[12].cpu)"),
    same("asPercent(servers.web1.cpu, 100)"),
    same("asPercent(servers.web[123].cpu, servers.web1.cpu)"),
    same("asPercent(servers.*.net.tx, None, 1)"),
    same("pct(servers.web[12].cpu)"),
    same("percentileOfSeries(servers.*.cpu, 50)"),
    same("percentileOfSeries(servers.web[1-3].cpu, 90, true)"),
    same("group(servers.web1.cpu, apps.*.requests.count)"),
    same("groupByNode(servers.*.net.*, 3, 'sum')"),
    same("groupByNode(servers.*.cpu, 1)"),
    same("groupByNode(servers.*.net.*, 3, 'sumSeries')"),
    same("groupByNodes(servers.*.net.*, 'max', 1, 3)"),
    // Special.
    same("constantLine(42.5)"),
    same("threshold(10, 'limit')"),
    same("identity('id.x')"),
    same("timeFunction('t.x', 120)"),
    same("time('t.x')"),
    same("sinFunction('s.x', 2, 30)"),
    same("sin('s.x')"),
    random("randomWalk('r.x')"),
    random("randomWalkFunction('r.x', 30)"),
    same("setXFilesFactor(misc.xff, 0.5)"),
    same("xFilesFactor(servers.web2.cpu, 1)"),
    same("fallbackSeries(no.such.*, servers.web1.cpu)"),
    same("fallbackSeries(servers.web1.cpu, servers.web2.cpu)"),
    // Filter Series.
    same("averageAbove(servers.*.cpu, 40)"),
    same("averageBelow(servers.*.cpu, 40)"),
    same("currentAbove(servers.*.cpu, 40)"),
    same("currentBelow(servers.*.cpu, 40)"),
    same("maximumAbove(servers.*.mem, 4e9)"),
    same("maximumBelow(servers.*.mem, 4e9)"),
    same("minimumAbove(servers.*.cpu, 10)"),
    same("minimumBelow(servers.*.cpu, 10)"),
    same("exclude(servers.*.*, 'mem')"),
    same("grep(servers.*.*, 'web[12]')"),
    same("filterSeries(servers.*.cpu, 'max', '>', 60)"),
    same("highest(servers.*.cpu, 2, 'max')"),
    same("highestAverage(servers.*.cpu, 2)"),
    same("highestCurrent(servers.*.cpu, 1)"),
    same("highestMax(servers.*.mem, 2)"),
    same("lowest(servers.*.cpu)"),
    same("lowestAverage(servers.*.cpu, 2)"),
    same("lowestCurrent(servers.*.cpu, 2)"),
    same("limit(servers.*.cpu, 2)"),
    same("mostDeviant(servers.*.cpu, 2)"),
    same("removeEmptySeries(misc.*)"),
    same("removeEmptySeries(misc.*, 0.9)"),
    same("unique(servers.web1.cpu, servers.*.cpu)"),
    same("useSeriesAbove(servers.web1.cpu, 10, 'cpu', 'mem')"),
    // Sorting.
    same("sortBy(servers.*.cpu, 'max')"),
    same("sortBy(servers.*.cpu, 'last', true)"),
    same("sortByMaxima(servers.*.mem)"),
    same("sortByMinima(servers.*.mem)"),
    same("sortByName(servers.*.*, true, true)"),
    same("sortByTotal(apps.*.requests.count)"),
    // Alias.
    same("alias(servers.web1.cpu, 'x')"),
    same("aliasByMetric(servers.*.net.rx)"),
    same("aliasByNode(servers.*.cpu, 1)"),
    same("aliasByNode(sumSeries(servers.*.cpu), 0, -1)"),
    same("aliasByTags(servers.web1.cpu, 'name', 1)"),
    same("aliasQuery(servers.web1.cpu, 'servers\\.(.*)\\.cpu', 'servers.\\1.mem', '%d bytes')"),
    same("aliasSub(servers.*.cpu, '^servers\\.([^.]*)\\.(.*)$', '\\2 on \\1')"),
    same("aliasSub(sumSeries(servers.*.cpu), \"(^.*$)\", \"\\1 A\")"),
    same("legendValue(servers.web1.cpu, 'avg', 'last')"),
    same("legendValue(servers.web1.mem, 'max', 'si')"),
    // Transform.
    same("absolute(misc.negative)"),
    same("changed(apps.api.requests.count)"),
    same("consolidateBy(servers.web1.cpu, 'max')"),
    same("delay(servers.web1.cpu, 3)"),
    same("delay(servers.web2.cpu, -2)"),
    same("derivative(servers.web1.net.rx)"),
    same("hitcount(apps.api.requests.count, '5min')"),
    same("hitcount(apps.*.requests.count, '5min', true)"),
    same("integral(apps.api.requests.count)"),
    same("integralByInterval(apps.api.requests.count, '10min')"),
    same("invert(servers.web1.cpu)"),
    same("isNonNull(servers.web2.cpu)"),
    same("keepLastValue(servers.web2.cpu)"),
    same("keepLastValue(servers.web2.cpu, 3)"),
    same("log(servers.web1.cpu)"),
    same("log(servers.web1.cpu, 2)"),
    same("log(misc.negative)"),
    same("nonNegativeDerivative(servers.web1.net.rx)"),
    same("nonNegativeDerivative(servers.*.net.rx, 1e9)"),
    same("offset(servers.web1.cpu, -50)"),
    same("offsetToZero(misc.negative)"),
    same("perSecond(servers.*.net.rx)"),
    same("perSecond(servers.web1.net.rx, maxValue=1e12)"),
    same("pow(servers.web1.cpu, 2)"),
    same("round(servers.web1.cpu)"),
    same("round(servers.web1.cpu, 1)"),
    same("round(servers.web1.cpu, -1)"),
    same("scale(servers.web1.cpu, 2.5)"),
    same("scale(misc.huge, 10)"),
    same("scaleToSeconds(apps.api.requests.count, 1)"),
    same("squareRoot(servers.web1.cpu)"),
    same("squareRoot(misc.negative)"),
    same("summarize(servers.web1.cpu, '10min')"),
    same("summarize(servers.web1.cpu, '10min', 'avg', true)"),
    same("summarize(servers.*.cpu, '15min', 'max')"),
    same("summarize(apps.api.requests.count, '1h', 'sum')"),
    same("timeShift(servers.web1.cpu, '1h')"),
    same("timeShift(servers.web1.cpu, '-1d')"),
    same("timeShift(servers.web1.cpu, '+30min', false)"),
    same("timeSlice(servers.web1.cpu, '1699998237', '1699999437')"),
    same_as(
        "timeSlice(servers.web1.cpu, '-30min', '-10min')",
        "timeSlice(servers.web1.cpu, '1699998237', '1699999437')",
        "graphite-web reads the slice's times against the server's clock, not the request's now",
    ),
    same("transformNull(servers.web2.cpu)"),
    same("transformNull(servers.web2.cpu, -1)"),
    same("transformNull(servers.web2.cpu, 0, servers.web1.cpu)"),
    // Calculate.
    same("exponentialMovingAverage(servers.web1.cpu, 10)"),
    same("exponentialMovingAverage(servers.web1.cpu, '5min')"),
    same("linearRegression(servers.web1.cpu)"),
    same("linearRegression(servers.web1.cpu, '1699992837', '1699996437')"),
    same_as(
        "linearRegression(servers.web1.cpu, '-2h', '-1h')",
        "linearRegression(servers.web1.cpu, '1699992837', '1699996437')",
        "graphite-web reads the source range against the server's clock, not the request's now",
    ),
    same("movingAverage(servers.web1.cpu, 10)"),
    same("movingAverage(servers.web2.cpu, '5min', 0.5)"),
    same("movingAverage(servers.*.cpu, 5)"),
    same("exponentialMovingAverage(servers.*.cpu, 5)"),
    same("movingSum(servers.web1.net.tx, '90s')"),
    same("movingMax(servers.web1.cpu, '2min')"),
    same("movingMedian(servers.web2.cpu, 7)"),
    same("movingMin(servers.web1.mem, 4)"),
    same("movingSum(apps.api.requests.count, '1min')"),
    same("movingWindow(servers.web1.cpu, '5min', 'median')"),
    same("movingWindow(servers.web2.cpu, 6, 'max', 0.5)"),
    same("nPercentile(servers.*.cpu, 75)"),
    same("removeAbovePercentile(servers.web1.cpu, 90)"),
    same("removeBelowPercentile(servers.web1.cpu, 10)"),
    same("removeAboveValue(servers.web1.cpu, 60)"),
    same("removeBelowValue(misc.negative, 0)"),
    same("stdev(servers.web1.cpu, 10)"),
    same("stdev(servers.web2.cpu, 5, 0.5)"),
    // The grammar: pipes, white space, literals, quotes.
    same("servers.web1.cpu|scale(2)|offset(1)|alias('x')"),
    same("constantLine(1)|scale(2)"),
    same(" servers.web1.cpu "),
    same("sumSeries( servers.web1.cpu , servers.web2.cpu )"),
    same("alias(servers.web1.cpu, \"a b\")"),
    same("alias(servers.web1.cpu, 'it\\'s')"),
    same("alias(servers.web1.cpu, \"say \\\"hi\\\"\")"),
    same("scale(servers.web1.cpu, 1e3)"),
    same("scale(servers.web1.cpu, INF)"),
    same("keepLastValue(servers.web2.cpu, inf)"),
    same("aliasByNode(servers.web1.cpu, 10)"),
    same("unique()"),
    same("group()"),
    same_as(
        "scale(servers.web1.cpu, -.5)",
        "scale(servers.web1.cpu, -0.5)",
        "graphite-web's grammar wants digits on both sides of a point: it reads -.5 as a metric path \
         and fails on the list (TypeError, a 500); we read Python's float syntax",
    ),
    same_as(
        "scale(servers.web1.cpu, 2.)",
        "scale(servers.web1.cpu, 2)",
        "graphite-web reads 2. as a metric path and scales by an empty list (no series)",
    ),
    // Malformed targets: graphite-web renders what its parser took (it ignores the rest) or
    // nothing; we say what is wrong.
    refused("sumSeries(servers.web1.cpu,)", 200, "a missing argument"),
    refused("sumSeries(servers.web1.cpu", 200, "an unclosed call"),
    refused("servers.web1.cpu)", 200, "an unbalanced parenthesis"),
    refused("scale(servers.web1.cpu,2)extra", 200, "text after the expression"),
    // Requests graphite-web fails on with a Python exception.
    refused("scale(servers.web1.cpu, 'x')", 500, "a string where a number is expected: ValueError in float()"),
    refused("highestAverage(servers.*.cpu)", 500, "n is required: TypeError"),
    refused("limit(servers.*.cpu)", 500, "n is required: TypeError"),
    refused("movingAverage(servers.web1.cpu, '5m')", 500, "'m' is no unit (Grafana rewrites it to 'min')"),
    refused("summarize(servers.web1.cpu, '5m')", 500, "'m' is no unit: ValueError"),
    refused("timeShift(servers.web1.cpu, '1m')", 500, "'m' is no unit: ValueError"),
];

/// graphite-web 1.1.8's functions (and its `template()`) that we do not implement: we answer
/// 400 "unknown function". A function implemented one day fails this list (and needs its
/// entry in [`FUNCTION_CASES`] or, for the tag functions, [`TAG_CASES`]).
const UNIMPLEMENTED: &[&str] = &[
    "template(servers.$host.cpu, host='web1')",
    "events('x')",
    "add(servers.web1.cpu, 1)",
    "aggregateLine(servers.web1.cpu)",
    "alpha(servers.web1.cpu, 0.5)",
    "applyByNode(servers.*.cpu, 1, 'sumSeries(%.*)')",
    "areaBetween(servers.web[12].cpu)",
    "averageOutsidePercentile(servers.*.cpu, 30)",
    "cactiStyle(servers.web1.cpu)",
    "color(servers.web1.cpu, 'red')",
    "cumulative(servers.web1.cpu)",
    "dashed(servers.web1.cpu)",
    "drawAsInfinite(servers.web1.cpu)",
    "exp(servers.web1.cpu)",
    "holtWintersAberration(servers.web1.cpu)",
    "holtWintersConfidenceArea(servers.web1.cpu)",
    "holtWintersConfidenceBands(servers.web1.cpu)",
    "holtWintersForecast(servers.web1.cpu)",
    "interpolate(servers.web2.cpu)",
    "lineWidth(servers.web1.cpu, 2)",
    "logit(servers.web1.cpu)",
    "map(servers.*.cpu, 1)",
    "mapSeries(servers.*.cpu, 1)",
    "minMax(servers.web1.cpu)",
    "powSeries(servers.web1.cpu, servers.web3.cpu)",
    "reduce(mapSeries(servers.*.net.*, 1), 'divideSeries', 3, 'rx', 'tx')",
    "reduceSeries(mapSeries(servers.*.net.*, 1), 'divideSeries', 3, 'rx', 'tx')",
    "removeBetweenPercentile(servers.*.cpu, 30)",
    "secondYAxis(servers.web1.cpu)",
    "sigmoid(servers.web1.cpu)",
    "smartSummarize(servers.web1.cpu, '10min')",
    "stacked(servers.*.cpu)",
    "substr(servers.web1.cpu, 1)",
    "timeStack(servers.web1.cpu, '10min', 0, 2)",
    "verticalLine('12:00_20231114')",
    "weightedAverage(servers.*.cpu, servers.*.mem, 1)",
];

/// The request of a function case: the last hour, as JSON.
fn function_request(target: &str) -> Req {
    let now = NOW.to_string();
    Req::post("/render", &[("target", target), ("from", "-1h"), ("until", "now"), ("now", &now), ("format", "json")])
}

/// The request of a function case as Grafana ≥ 11.6 sends a panel's query: the target wrapped
/// in `aliasSub(…, "(^.*$)", "\1 A")`, and maxDataPoints (300, fewer than the hour's 360
/// values at 10 s, so that they are consolidated).
fn grafana_request(target: &str) -> Req {
    let now = NOW.to_string();
    let wrapped = format!("aliasSub({target}, \"(^.*$)\", \"\\1 A\")");
    Req::post(
        "/render",
        &[
            ("target", &wrapped),
            ("from", "-1h"),
            ("until", "now"),
            ("now", &now),
            ("format", "json"),
            ("maxDataPoints", "300"),
        ],
    )
}

/// Every function name called in `expr`.
fn called(expr: &Expr, out: &mut BTreeSet<String>) {
    if let Expr::Call(call) = expr {
        out.insert(call.name.clone());
        call.args.iter().chain(call.kwargs.iter().map(|(_, v)| v)).for_each(|e| called(e, out));
    }
}

#[test]
fn reference_render_corpus_covers_every_function() {
    // A function counts as covered by an entry whose answer is compared (not only refused).
    let mut covered = BTreeSet::new();
    for case in FUNCTION_CASES.iter().chain(TAG_CASES).filter(|c| !matches!(c.expect, Expect::Refused { .. })) {
        called(&parse(case.target).unwrap_or_else(|e| panic!("{}: {e}", case.target)), &mut covered);
    }
    let missing: Vec<&str> =
        carbyne::render::functions::all().map(|f| f.name).filter(|n| !covered.contains(*n)).collect();
    assert!(missing.is_empty(), "functions without an entry in FUNCTION_CASES: {missing:?}");
}

/// What one request is checked for (the corpus entry's [`Expect`], with requests built).
enum Check {
    /// Same answer; graphite-web must answer 200 (else the corpus should say why it fails).
    Same(Values),
    /// Same answer, errors included (for requests both may refuse).
    SameStatus,
    /// graphite-web answers `theirs`; we answer 400 with a message.
    Refused { theirs: u16, why: &'static str },
    /// We answer as graphite-web answers `theirs` (what we read the request to mean).
    SameAs { theirs: Req, why: &'static str },
}

/// The parameter `key` of `req` (the last one, as Django reads it).
fn param<'r>(req: &'r Req, key: &str) -> Option<&'r str> {
    req.params.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A jsonp body `cb(...)` without its call.
fn unwrap_jsonp(answer: &Answer, callback: &str) -> Answer {
    let inner = answer.body.strip_prefix(&format!("{callback}(")).and_then(|b| b.strip_suffix(')'));
    Answer { body: inner.unwrap_or(&answer.body).to_string(), ..answer.clone() }
}

/// Sends `req` to both (or `theirs` to graphite-web) and checks the answers as `check` says.
fn run(fx: &mut Fixture, report: &mut Report, req: &Req, check: &Check) {
    let (mut ours, mut theirs) = match check {
        Check::SameAs { theirs, .. } => (carbyne(fx.http, req), fx.graphite.ask(theirs)),
        _ => fx.ask(req),
    };
    let format = param(req, "format").unwrap_or("json");
    if let (Some(cb), Some(_)) = (param(req, "jsonp"), param(req, "format")) {
        (ours, theirs) = (unwrap_jsonp(&ours, cb), unwrap_jsonp(&theirs, cb));
    }
    let result = match check {
        Check::Same(_) if theirs.status != 200 => {
            Err(format!("graphite-web answers {}: say so in the corpus", theirs.summary()))
        }
        Check::Same(values) => same_render(&ours, &theirs, format, *values),
        Check::SameStatus => same_render(&ours, &theirs, format, Values::Close),
        Check::Refused { theirs: status, why } => refusal(&ours, &theirs, *status, why),
        Check::SameAs { why, .. } => {
            same_render(&ours, &theirs, format, Values::Close).map_err(|e| format!("{e} (differs on purpose: {why})"))
        }
    };
    report.check(req, &ours, &theirs, result);
}

/// Our 400 with a message where graphite-web answers `status`.
fn refusal(ours: &Answer, theirs: &Answer, status: u16, why: &str) -> Result<(), String> {
    if theirs.status != status {
        return Err(format!("graphite-web now answers {} (expected {status}: {why})", theirs.summary()));
    }
    if ours.status != 400 || ours.body.trim().is_empty() {
        return Err(format!("ours {} (expected a 400 with a message: {why})", ours.summary()));
    }
    Ok(())
}

#[test]
#[ignore = "needs Python 3 and graphite-web 1.1.8 (Debian's graphite-web package)"]
fn reference_render_functions_match_graphite_web() {
    let mut fx = Fixture::start();
    let mut report = Report::default();
    for case in FUNCTION_CASES {
        let check = match case.expect {
            Expect::Same => Check::Same(Values::Close),
            Expect::Random => Check::Same(Values::Presence),
            Expect::Refused { theirs, why } => Check::Refused { theirs, why },
            Expect::SameAs { theirs, why } => Check::SameAs { theirs: function_request(theirs), why },
        };
        run(&mut fx, &mut report, &function_request(case.target), &check);
        // Again as Grafana ≥ 11.6 sends a panel's query: wrapped in aliasSub, with maxDataPoints.
        let check = match case.expect {
            Expect::Same => Check::Same(Values::Close),
            Expect::Random => Check::Same(Values::Presence),
            Expect::Refused { .. } => continue,
            Expect::SameAs { theirs, why } => Check::SameAs { theirs: grafana_request(theirs), why },
        };
        run(&mut fx, &mut report, &grafana_request(case.target), &check);
    }
    for target in UNIMPLEMENTED {
        let req = function_request(target);
        let (ours, theirs) = fx.ask(&req);
        let result = if ours.status == 400 && ours.body.contains("unknown function") {
            Ok(())
        } else {
            Err(format!("ours {}: implemented now? Move it to FUNCTION_CASES", ours.summary()))
        };
        report.check(&req, &ours, &theirs, result);
    }
    fx.stop();
    report.finish("functions");
}

// ---------------------------------------------------------------------------------------------
// Globs, times, maxDataPoints, xFilesFactor, noNullPoints, formats.

/// Path expressions with every kind of glob.
const GLOBS: &[&str] = &[
    "servers.web1.cpu",
    "servers.*.cpu",
    "servers.web?.mem",
    "servers.web[1-2].cpu",
    "servers.web[!1].net.rx",
    "servers.web[13].mem",
    "servers.{web1,web3}.cpu",
    "servers.web{1,2}.net.{rx,tx}",
    "servers.web*.c?u",
    "servers.web[1-3].{cpu,mem}",
    "servers.web1.*",
    "servers.*.net.*",
    "*.*.cpu",
    "apps.*.requests.*",
    "apps.[a-w]*.requests.count",
    "apps.{api,batch}.*.*",
    "misc.*",
    "misc.both",
    "misc.both.*",
    "misc.*.child",
    "no.such.metric",
    "servers.web[5-9].cpu",
    "**",
    "servers.**",
    "*",
    "servers.\\*.cpu",
    "servers..web1.cpu",
    "servers.web1.cpu;tag=x",
    "servers.web1.cpu.wsp",
];

/// A render request of the last 10 minutes at NOW, with `extra` parameters.
fn render(target: &str, extra: &[(&str, &str)]) -> Req {
    let now = NOW.to_string();
    let mut req = Req::post("/render", &[("target", target), ("now", &now)]);
    let has = |k: &str| extra.iter().any(|(key, _)| *key == k);
    if !has("from") {
        req.params.push(("from".into(), "-10min".into()));
    }
    req.params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if !has("format") {
        req.params.push(("format".into(), "json".into()));
    }
    req
}

/// Every request of the second test, with its check.
fn render_cases() -> Vec<(Req, Check)> {
    let same = Check::Same(Values::Close);
    let mut cases: Vec<(Req, Check)> = GLOBS.iter().map(|g| (render(g, &[]), Check::Same(Values::Close))).collect();
    // from/until as Grafana and people write them; the two schemas and a stale metric.
    let two = "servers.web{1,4}.cpu";
    let epoch = |offset: i64| (NOW + offset).to_string();
    let (hour_ago, unaligned) = (epoch(-3600), epoch(-7777));
    let times: &[(Option<&str>, Option<&str>)] = &[
        (Some(&hour_ago), Some("1700000037")),
        (Some(&unaligned), Some(&hour_ago)),
        (Some("-6h"), Some("now")),
        (Some("-1d"), None),
        (Some("-5min"), None),
        (Some("now-2h"), Some("now-1h")),
        (Some("-2h"), Some("-1h")),
        (Some("midnight"), Some("now")),
        (Some("12:00_20231114"), Some("18:30_20231114")),
        (Some("20231113"), Some("20231114")),
        (Some("noon yesterday"), Some("midnight")),
        (Some("yesterday"), Some("today")),
        (Some("-7d"), Some("-6d")),
        (Some("-4d"), Some("-2d")),
        (Some("-2w"), Some("-10d")),
        (Some("-30min"), Some("now+1h")),
        (Some("now"), Some("-1h")),
        (None, None),
    ];
    for (from, until) in times {
        let mut extra = Vec::new();
        extra.extend(from.map(|f| ("from", f)));
        extra.extend(until.map(|u| ("until", u)));
        let mut req = render(two, &extra);
        if from.is_none() {
            req.params.retain(|(k, _)| k != "from");
        }
        cases.push((req.clone(), same.clone_check()));
        req.params.retain(|(k, _)| k != "target");
        req.params.push(("target".into(), "misc.stale".into()));
        cases.push((req, same.clone_check()));
    }
    cases.push((
        render("servers.{web{1,2},web4}.cpu", &[]),
        Check::SameAs {
            theirs: render("servers.{web1,web2,web4}.cpu", &[]),
            why: "graphite-web's target grammar stops at a nested brace group and silently renders \
                  the prefix (`servers`, a branch: no series); its find expands them, as we do in both",
        },
    ));
    for (path, why) in [
        ("servers/web1/cpu", "graphite-web joins the path to the directory as is, slashes and all"),
        ("servers.web1.*.", "graphite-web lets an empty last element match the directory it is in"),
    ] {
        cases.push((render(path, &[]), Check::SameAs { theirs: render("no.such.metric", &[]), why }));
    }
    cases.push((render(two, &[("from", "-1h"), ("until", "-1h")]), Check::SameStatus));
    cases.push((render(two, &[("from", "-1m")]), Check::SameStatus));
    cases.push((render(two, &[("from", "midnight"), ("tz", "Europe/Paris")]), same.clone_check()));
    cases.push((render(two, &[("from", "-30min"), ("tz", "America/New_York"), ("format", "csv")]), same.clone_check()));
    // maxDataPoints over mixed steps, then with each consolidation function and xFilesFactor.
    let mixed = "servers.web{1,2,4}.cpu";
    for max in ["1", "2", "10", "100", "359", "360", "2160", "100000", "abc"] {
        cases.push((render(mixed, &[("from", "-6h"), ("maxDataPoints", max)]), same.clone_check()));
    }
    cases.push((render(mixed, &[("from", "-1h"), ("maxDataPoints", "7")]), same.clone_check()));
    // A look-back that is not a whole number of steps: the result starts off the grid and ends
    // 5 s past the window; graphite-web keeps the window's end as the series' end.
    let odd = "movingSum(servers.web1.net.tx, '95s')";
    cases.push((render(odd, &[("from", "-1h")]), same.clone_check()));
    // With maxDataPoints the buckets are labelled up to that end: one more point if we used ours.
    for max in ["300", "7", "59"] {
        cases.push((render(odd, &[("from", "-1h"), ("maxDataPoints", max)]), same.clone_check()));
        cases.push((render(odd, &[("from", "-1h"), ("maxDataPoints", max), ("format", "raw")]), same.clone_check()));
    }
    for f in ["sum", "average", "avg", "avg_zero", "min", "max", "first", "last"] {
        let target = format!("consolidateBy(servers.web{{1,2}}.cpu, '{f}')");
        cases.push((render(&target, &[("from", "-2h"), ("maxDataPoints", "50")]), same.clone_check()));
    }
    for (xff, max) in [("0.5", "30"), ("1", "30"), ("0.2", "1"), ("0", "45")] {
        for target in ["servers.web2.cpu", "misc.xff", "misc.avgzero", "sumSeries(servers.web[12].cpu)"] {
            let extra = [("from", "-1h"), ("xFilesFactor", xff), ("maxDataPoints", max)];
            cases.push((render(target, &extra), same.clone_check()));
        }
    }
    cases.push((render("aggregate(servers.web[12].cpu, 'sum')", &[("xFilesFactor", "1")]), same.clone_check()));
    cases.push((
        render(mixed, &[("from", "-6h"), ("maxDataPoints", "0")]),
        Check::SameAs {
            theirs: render(mixed, &[("from", "-6h")]),
            why: "maxDataPoints=0 divides by zero in graphite-web; it means no limit here",
        },
    ));
    // noNullPoints.
    for target in ["servers.web2.cpu", "misc.*", "misc.stale", "transformNull(misc.stale)"] {
        cases.push((render(target, &[("from", "-1h"), ("noNullPoints", "1")]), same.clone_check()));
    }
    cases.push((
        render("servers.web2.cpu", &[("from", "-1h"), ("noNullPoints", ""), ("maxDataPoints", "20")]),
        same.clone_check(),
    ));
    // csv, raw and jsonp; several targets, target[], GET, the pipe form.
    for format in ["csv", "raw"] {
        for target in ["servers.web{1,4}.cpu", "misc.*", "sumSeries(servers.*.cpu)", "scale(misc.huge, -10)"] {
            cases.push((render(target, &[("format", format)]), same.clone_check()));
        }
        let extra = [("format", format), ("maxDataPoints", "5")];
        cases.push((render("servers.web1.cpu", &extra), same.clone_check()));
    }
    cases.push((render("servers.web1.cpu", &[("jsonp", "cb")]), same.clone_check()));
    let mut several = render("servers.web1.cpu", &[]);
    several.params.push(("target".into(), "aliasByNode(apps.*.requests.count, 1)".into()));
    several.params.push(("target".into(), "servers.web1.cpu".into()));
    cases.push((several, same.clone_check()));
    let mut brackets = render("x", &[]);
    brackets.params.retain(|(k, _)| k != "target");
    brackets.params.push(("target[]".into(), "servers.web3.cpu".into()));
    cases.push((brackets, same.clone_check()));
    let mut get = render("servers.web1.mem|scale(2)|alias('doubled')", &[("from", "-20min"), ("until", "-5min")]);
    get.method = "GET";
    cases.push((get, same.clone_check()));
    cases
}

impl Check {
    /// A copy (Req is not Copy).
    fn clone_check(&self) -> Check {
        match self {
            Check::Same(v) => Check::Same(*v),
            Check::SameStatus => Check::SameStatus,
            Check::Refused { theirs, why } => Check::Refused { theirs: *theirs, why },
            Check::SameAs { theirs, why } => Check::SameAs { theirs: theirs.clone(), why },
        }
    }
}

#[test]
#[ignore = "needs Python 3 and graphite-web 1.1.8 (Debian's graphite-web package)"]
fn reference_render_globs_times_and_formats_match_graphite_web() {
    let mut fx = Fixture::start();
    let mut report = Report::default();
    for (req, check) in render_cases() {
        run(&mut fx, &mut report, &req, &check);
    }
    fx.stop();
    report.finish("globs, times and formats");
}

// ---------------------------------------------------------------------------------------------
// /metrics/find and /metrics/expand.

/// Find patterns: every glob kind, a name that is both a metric and a directory, leaves,
/// branches, nothing.
const FIND_PATTERNS: &[&str] = &[
    "*",
    "servers.*",
    "servers.web?",
    "servers.web[1-2].*",
    "servers.web[!1].net.*",
    "servers.{web1,web3}.*",
    "servers.web{1,{2,3}}.cpu",
    "servers.{web{1,2},web4}",
    "servers.*.net",
    "servers.*.*.*",
    "*.*.cpu",
    "apps.*.requests.*",
    "apps.[a-w]*",
    "misc.*",
    "misc.both",
    "misc.both.*",
    "misc.b*",
    "servers.web1.cpu",
    "servers.web1",
    "servers.web1.c",
    "no.such",
    "servers.web[5-9]",
];

/// graphite-web's `format=json` find answer without the leaves' `intervals`: it computes them
/// from the clock (`time.time() - maxRetention`) and the file's mtime, which nothing else can
/// reproduce; we answer `[]` (checked).
fn without_intervals(ours: &mut Value, theirs: &mut Value) -> Result<(), String> {
    for node in ours.as_array_mut().into_iter().flatten() {
        if node["is_leaf"] == true && node.as_object_mut().and_then(|o| o.remove("intervals")) != Some(json!([])) {
            return Err(format!("our leaf {} has no empty intervals", node["path"]));
        }
    }
    for node in theirs.as_array_mut().into_iter().flatten() {
        if let Some(o) = node.as_object_mut() {
            o.remove("intervals");
        }
    }
    Ok(())
}

/// graphite-web sorts the completer's nodes by name alone, after shuffling them (its store
/// merges finders' answers in random order), so nodes of the same name come in any order; we
/// order those by path (checked), and graphite-web's answer is compared in that order.
fn ties_by_path(ours: &mut Value, theirs: &mut Value) -> Result<(), String> {
    // A branch's path ends with a dot; of a branch and a metric of the same path, graphite-web
    // lists the branch first (its store yields a path's branches before its leaf).
    let key = |n: &Value| {
        let text = |k: &str| n[k].as_str().unwrap_or("").to_string();
        (text("name"), text("path").trim_end_matches('.').to_string(), text("is_leaf"))
    };
    let ours = ours["metrics"].as_array().ok_or("our completer answer has no metrics")?;
    if !ours.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return Err(format!("our completer nodes are not sorted by name, then path: {ours:?}"));
    }
    if let Some(list) = theirs["metrics"].as_array_mut() {
        list.sort_by_key(key);
    }
    Ok(())
}

/// The same JSON, status and content type (find's `json` format: see [`without_intervals`]).
fn same_find(ours: &Answer, theirs: &Answer, format: &str) -> Result<(), String> {
    if ours.status != theirs.status {
        return Err(format!("status {} vs graphite-web's {}", ours.summary(), theirs.summary()));
    }
    if theirs.status != 200 {
        return Ok(());
    }
    if ours.content_type != theirs.content_type {
        return Err(format!("content type {} vs graphite-web's {}", ours.content_type, theirs.content_type));
    }
    let mut o: Value = serde_json::from_str(&ours.body).map_err(|e| format!("our body is not JSON: {e}"))?;
    let mut t = parse_theirs(&theirs.body)?;
    if format == "json" {
        without_intervals(&mut o, &mut t)?;
    }
    if format == "completer" {
        ties_by_path(&mut o, &mut t)?;
    }
    if o != t {
        return Err(format!("ours {o}\n    graphite-web's {t}"));
    }
    Ok(())
}

/// Find requests we answer differently on purpose: the request, our body, why.
const FIND_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "servers.web1.",
        "[]",
        "graphite-web matches an empty last element to the directory itself and answers a branch \
         named \"\" (id \"servers.web1.\"); no metric has an empty name element, so nothing is found",
    ),
    ("servers.web1..", "[]", "graphite-web answers a branch named \"\" (id \"servers.web1..\"), as for a trailing dot"),
];

/// Every find and expand request, as Grafana and graphite-web's own UI send them.
fn find_cases() -> Vec<Req> {
    let now = NOW.to_string();
    let window = [("from", "-6h"), ("until", "now"), ("now", now.as_str())];
    let mut cases = Vec::new();
    for pattern in FIND_PATTERNS {
        for format in ["treejson", "completer", "json"] {
            cases.push(Req::get("/metrics/find", &[("query", pattern), ("format", format)]));
        }
        // Grafana: POST, from/until in the URL, an unencoded `query=` body.
        let mut grafana = Req::post("/metrics/find", &window);
        grafana.body = Some(format!("query={pattern}"));
        cases.push(grafana);
        cases.push(Req::get("/metrics/find", &[("query", pattern), ("wildcards", "1")]));
        cases.push(Req::get("/metrics/find", &[("query", pattern), ("leavesOnly", "1"), ("format", "completer")]));
        cases.push(Req::get("/metrics/expand", &[("query", pattern)]));
        cases.push(Req::get("/metrics/expand", &[("query", pattern), ("leavesOnly", "1")]));
    }
    cases.push(Req::get("/metrics", &[("query", "servers.*")]));
    cases.push(Req::get("/metrics/find/", &[("query", "apps.*"), ("format", "treejson"), ("wildcards", "1")]));
    cases.push(Req::get("/metrics/find", &[("query", "serv"), ("format", "completer")]));
    cases.push(Req::get("/metrics/find", &[("query", "")]));
    cases.push(Req::get("/metrics/find", &[]));
    cases.push(Req::get("/metrics/find", &[("query", "*"), ("format", "nodelist")]));
    cases.push(Req::get("/metrics/find", &[("query", "servers.*.*"), ("format", "nodelist"), ("position", "1")]));
    cases.push(Req::get("/metrics/find", &[("query", "*"), ("jsonp", "cb"), ("format", "treejson")]));
    cases.push(Req::get("/metrics/find", &[("query", "*"), ("leavesOnly", "x")]));
    cases.push(Req::get("/metrics/find", &[("query", "*"), ("from", "yesterdayish")]));
    let mut several = Req::get("/metrics/expand", &[("query", "servers.web1.*"), ("query", "apps.*")]);
    cases.push(several.clone());
    several.params.push(("groupByExpr".into(), "1".into()));
    cases.push(several);
    cases.push(Req::get("/metrics/index.json", &[]));
    cases
}

#[test]
#[ignore = "needs Python 3 and graphite-web 1.1.8 (Debian's graphite-web package)"]
fn reference_render_find_and_expand_match_graphite_web() {
    let mut fx = Fixture::start();
    let mut report = Report::default();
    for req in find_cases() {
        let (mut ours, mut theirs) = fx.ask(&req);
        if let Some(cb) = param(&req, "jsonp") {
            (ours, theirs) = (unwrap_jsonp(&ours, cb), unwrap_jsonp(&theirs, cb));
        }
        let result = same_find(&ours, &theirs, param(&req, "format").unwrap_or("treejson"));
        report.check(&req, &ours, &theirs, result);
    }
    for (query, body, why) in FIND_DIFFERENCES {
        let req = Req::get("/metrics/find", &[("query", query)]);
        let (ours, theirs) = fx.ask(&req);
        let ours_json: Value = serde_json::from_str(&ours.body).unwrap_or(Value::Null);
        let result = if theirs.status != 200 || parse_theirs(&theirs.body).ok() == Some(ours_json.clone()) {
            Err(format!("graphite-web now answers {} (the difference was: {why})", theirs.summary()))
        } else if ours.status != 200 || ours_json != serde_json::from_str::<Value>(body).unwrap() {
            Err(format!("ours {}, expected {body} ({why})", ours.summary()))
        } else {
            Ok(())
        };
        report.check(&req, &ours, &theirs, result);
    }
    // /functions cannot be compared: graphite-web 1.1.8 fails on Python 3.11. Ours is JSON.
    let req = Req::get("/functions", &[]);
    let (ours, theirs) = fx.ask(&req);
    let listed = serde_json::from_str::<Value>(&ours.body).ok().and_then(|v| v.as_object().map(|o| o.len()));
    let result = match (theirs.status, ours.status, listed) {
        (500, 200, Some(n)) if n > 100 => Ok(()),
        _ => {
            Err(format!("ours {}, graphite-web's {} (expected a 500 on Python 3.11)", ours.summary(), theirs.summary()))
        }
    };
    report.check(&req, &ours, &theirs, result);
    fx.stop();
    report.finish("find and expand");
}

// ---------------------------------------------------------------------------------------------
// Tagged series: a store of its own (graphite-web lists `_tagged` at the root of a find, which
// Carbyne hides as Grafana does, so the find corpus above keeps a store without it).

/// Tagged series, in the order carbon would canonicalise them.
const TAGGED: &[Metric] = &[
    m("cpu.usage;dc=east;host=web1", FINE, A::Average, Shape::Gauge(40.0, 20.0)),
    m("cpu.usage;dc=east;host=web2", FINE, A::Average, Shape::Gappy),
    m("cpu.usage;dc=west;host=web3", FINE, A::Average, Shape::Gauge(60.0, 10.0)),
    m("cpu.usage;dc=west;host=web4;rack=r2", COARSE, A::Average, Shape::Gauge(30.0, 5.0)),
    m("mem.free;dc=east;host=web1", FINE, A::Min, Shape::Gauge(2.0e9, 1.0e8)),
    m("mem.free;dc=west;host=web3", FINE, A::Min, Shape::Negative),
    m("disk.io;dc=east;host=db1;dev=sda", FINE, A::Sum, Shape::Count),
];

/// The tagged series' files at carbon's hashed `_tagged/` paths, written as [`build_store`]
/// writes its metrics.
fn build_tagged_store(dir: &Path) {
    let aligned = NOW - NOW % 60;
    for (idx, metric) in TAGGED.iter().enumerate() {
        let relative = carbyne::protocol::name::relative_path(
            metric.name.as_bytes(),
            carbyne::protocol::name::TagFileNames::Hashed,
        )
        .unwrap();
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let specs = parse_retentions(metric.retentions).unwrap();
        let opts = CreateOptions { aggregation: metric.method, x_files_factor: metric.xff, ..CreateOptions::default() };
        create(&path, &specs, &opts).unwrap();
        let step = if metric.retentions == FINE { 10 } else { 60 };
        let mut times: Vec<i64> = (1..=2 * 1440).map(|k| aligned - 8 * 3600 - k * 60).collect();
        times.extend((0..8 * 3600 / step).map(|k| (NOW - NOW % step) - k * step));
        let points: Vec<Point> = times.into_iter().filter_map(|t| Some((t, value_at(idx, metric.shape, t)?))).collect();
        Whisper::open(&path, WriteOptions::default()).unwrap().update_many(&points, NOW).unwrap();
    }
}

/// seriesByTag and the functions that read tags, over the tagged store.
const TAG_CASES: &[Case] = &[
    same("seriesByTag('name=cpu.usage')"),
    same("seriesByTag('name=cpu.usage', 'dc=east')"),
    same("seriesByTag(\"dc!=east\", \"name=~cpu\")"),
    same("seriesByTag('name=~^(cpu|mem)', 'host=~web[13]')"),
    same("seriesByTag('name=cpu.usage', 'rack=')"),
    same("seriesByTag('name=cpu.usage', 'host!=~web[12]')"),
    same("seriesByTag('dc=~(east)?', 'name=mem.free')"),
    same("seriesByTag('name=no.such')"),
    same("seriesByTag('host=web1')"),
    same("sumSeries(seriesByTag('name=cpu.usage'))"),
    same("seriesByTag('name=cpu.usage') | averageSeries()"),
    same("groupByTags(seriesByTag('name=cpu.usage'), 'sum', 'dc')"),
    same("groupByTags(seriesByTag('host=~web'), 'average', 'host')"),
    same("groupByTags(seriesByTag('name=cpu.usage'), 'maxSeries', 'name', 'dc')"),
    refused(
        "groupByTags(seriesByTag('dc=west'), 'sum', 'rack')",
        500,
        "a series lacks the tag: its key has an empty value",
    ),
    same("aliasByTags(seriesByTag('name=cpu.usage'), 'host', 'dc')"),
    same("aliasByTags(seriesByTag('name=mem.free'), 'name', 'dc')"),
    same("aliasByNode(seriesByTag('name=cpu.usage'), 1, 'host')"),
    same("scale(seriesByTag('name=cpu.usage', 'dc=west'), 2)"),
    same("cpu.usage;dc=east;host=web1"),
    same("sumSeries(cpu.usage;dc=east;host=web1, cpu.usage;dc=west;host=web3)"),
    refused("seriesByTag('dc!=east')", 500, "every expression matches the empty value"),
    refused("seriesByTag('name')", 500, "an expression without an operator"),
];

/// `/tags` answers with graphite-web's database ids left out (Carbyne has no database).
fn without_ids(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(k, _)| k != "id").map(|(k, v)| (k, without_ids(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_ids).collect()),
        other => other,
    }
}

/// The same status and, on 200, the same JSON (ids aside).
fn same_tag_json(ours: &Answer, theirs: &Answer) -> Result<(), String> {
    if ours.status != theirs.status {
        return Err(format!("status {} vs graphite-web's {}", ours.status, theirs.status));
    }
    if theirs.status != 200 {
        return Ok(());
    }
    let parse =
        |a: &Answer| serde_json::from_str::<Value>(&a.body).map(without_ids).map_err(|e| format!("{e}: {}", a.body));
    let (o, t) = (parse(ours)?, parse(theirs)?);
    if o == t {
        Ok(())
    } else {
        Err(format!("ours {o} vs graphite-web's {t}"))
    }
}

#[test]
#[ignore = "needs Python 3 and graphite-web 1.1.8 (Debian's graphite-web package)"]
fn reference_render_tags_match_graphite_web() {
    let mut fx = Fixture::start_with(build_tagged_store);
    let mut report = Report::default();
    // The files carry only hashes: both learn the names as carbon tells graphite-web's TagDB,
    // by tagMultiSeries (in another tag order than canonical, which both must sort).
    let mut register: Vec<(&str, String)> = TAGGED
        .iter()
        .map(|m| {
            let mut parts: Vec<&str> = m.name.split(';').collect();
            parts[1..].reverse();
            ("path", parts.join(";"))
        })
        .collect();
    register.push(("path", "plain.metric".to_string()));
    let params: Vec<(&str, &str)> = register.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let req = Req::post("/tags/tagMultiSeries", &params);
    let (ours, theirs) = fx.ask(&req);
    report.check(&req, &ours, &theirs, same_tag_json(&ours, &theirs));

    for case in TAG_CASES {
        let check = match case.expect {
            Expect::Same => Check::Same(Values::Close),
            Expect::Random => Check::Same(Values::Presence),
            Expect::Refused { theirs, why } => Check::Refused { theirs, why },
            Expect::SameAs { theirs, why } => Check::SameAs { theirs: function_request(theirs), why },
        };
        run(&mut fx, &mut report, &function_request(case.target), &check);
        if matches!(case.expect, Expect::Same) {
            run(&mut fx, &mut report, &grafana_request(case.target), &Check::Same(Values::Close));
        }
    }

    let requests = [
        Req::get("/tags/findSeries", &[("expr", "name=cpu.usage")]),
        Req::get("/tags/findSeries", &[("expr", "dc=west"), ("expr", "host!=web3")]),
        Req::post("/tags/findSeries", &[("expr[]", "name=~(cpu|disk)"), ("expr[]", "rack=")]),
        Req::get("/tags/findSeries", &[("expr", "dc!=west")]),
        Req::get("/tags/findSeries", &[]),
        Req::get("/tags/autoComplete/tags", &[]),
        Req::get("/tags/autoComplete/tags", &[("tagPrefix", "d")]),
        Req::get("/tags/autoComplete/tags", &[("limit", "2")]),
        Req::get("/tags/autoComplete/tags", &[("expr", "name=cpu.usage")]),
        Req::get("/tags/autoComplete/tags", &[("expr", "dc=west"), ("tagPrefix", "r")]),
        Req::post("/tags/autoComplete/tags", &[("expr", "name=disk.io"), ("limit", "2")]),
        Req::get("/tags/autoComplete/values", &[("tag", "host")]),
        Req::get("/tags/autoComplete/values", &[("tag", "host"), ("valuePrefix", "web")]),
        Req::get("/tags/autoComplete/values", &[("tag", "host"), ("expr", "dc=east")]),
        Req::get("/tags/autoComplete/values", &[("tag", "name"), ("expr", "host=~web[12]"), ("limit", "1")]),
        Req::get("/tags/autoComplete/values", &[("tag", "nosuch")]),
        Req::get("/tags/autoComplete/values", &[]),
        Req::get("/tags", &[]),
        Req::get("/tags", &[("filter", "d|h")]),
        Req::get("/tags", &[("limit", "3")]),
        Req::get("/tags/dc", &[]),
        Req::get("/tags/host", &[("filter", "web[23]")]),
        Req::get("/tags/nosuch", &[]),
        Req::post("/tags/delSeries", &[("path", "cpu.usage;host=web2;dc=east")]),
        Req::get("/tags/findSeries", &[("expr", "name=cpu.usage")]),
        Req::get("/tags/dc", &[]),
    ];
    for req in &requests {
        let (ours, theirs) = fx.ask(req);
        report.check(req, &ours, &theirs, same_tag_json(&ours, &theirs));
    }
    fx.stop();
    report.finish("tags");
}
