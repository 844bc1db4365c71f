//! Differential tests of the statsd aggregation against etsy statsd 0.9.0 under node, the
//! reference `src/statsd/` follows: the same datagrams must flush the same Graphite points.
//!
//! Every test here is ignored by default so that a plain `cargo test` needs no node. CI runs them
//! with `cargo test --workspace reference_ -- --ignored` after `.ci/run` has installed etsy statsd
//! into `target/reference/etsy`; `CARBYNE_ETSY_STATSD=/path/to/node_modules/statsd/stats.js`
//! points at another copy and `CARBYNE_REFERENCE_NODE` names the node binary (default `node`).
//! When they are asked for and etsy statsd cannot be found or started, they fail and say so: a
//! differential test that passes without its reference would prove nothing.
//!
//! One case. etsy runs with its graphite backend pointed at a TCP socket this test listens on;
//! each flush is one connection carrying `name value timestamp` lines. We take its first flush
//! (nothing received yet: the baseline), send a whole generated stream to its UDP port at once,
//! and take the next flush; cases with more streams repeat that. Carbyne gets the same datagrams
//! through its library, in the same shape: one empty flush first, so that what etsy's first flush
//! leaves behind (its own counters reset to 0 and kept, the flush time from which
//! `timestamp_lag` is reported from the second flush on) is left behind in ours too, then one
//! merge and one flush per stream. Every flush is compared, the baseline included.
//!
//! "The same" means the same names, each as often, with values equal within 1e-9 relative (NaN
//! equal to NaN; etsy writes JavaScript number text, `NaN` and `Infinity` included). Values in
//! the streams are integers and halves, so no sum depends on the order of additions. Four kinds
//! of names are compared by name only, because their values measure the run rather than the
//! data: `<prefixStats>.processing_time` and `graphiteStats.calculationtime` (milliseconds of
//! wall clock spent flushing), the other `graphiteStats.*` (etsy's previous TCP hand-over: its
//! wall-clock time, duration and byte length, which includes timestamps; Carbyne reports its
//! hand-over to the cache there), and `<prefixStats>.timestamp_lag` (the wall-clock distance
//! between two flushes minus the interval: 0 for our synthetic clock, 0 or ±1 for etsy's timer).
//!
//! The one timing assumption: a stream reaches etsy well within one flush interval (2 s; sending
//! takes milliseconds, paced so that loopback UDP does not overflow node's receive buffer). A
//! stream split across two flushes, or a datagram lost, shows as a disagreement in
//! `packets_received`, and the failure says so.
//!
//! Streams come from a seeded generator (`CARBYNE_REFERENCE_SEED` replays another seed; each test
//! draws its own stream from (seed, case number)). On failure the streams, both sides' flushes,
//! etsy's config and log are kept in a directory the message names.
//!
//! Inputs kept out of the streams, where Carbyne deliberately differs from etsy:
//! - a sample rate whose `[0-9.]` run after `@` is empty although etsy validated it as a number
//!   (`@+0.5`, `@ 1`, `@Infinity`, `@\t1`, and a bare `@` ending a `\r\n` line: `@\r` is `@` and
//!   a number to etsy, `Number("\r")` being 0): etsy's handler throws on the failed match and node
//!   exits; Carbyne counts a bad line (so the bare `@` below is followed by a field);
//! - keys and set members named after `Object.prototype` properties (`__proto__`, `toString`,
//!   `constructor`, `valueOf`, ...): etsy keeps its metrics in plain objects, so `toString:1|c`
//!   flushes the text `function toString() { [native code] }1`, a timer of that name throws, and
//!   `__proto__` is dropped (as a key and as a set member); Carbyne treats them as any name.
//!
//! Names that Carbyne would refuse as Graphite names are not a concern here: this compares
//! `State::flush`, before names reach the cache's validation.

use std::fmt::Write as _;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};

use crate::rng::Rng;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carbyne::config::{HistogramRule, StatsdOptions};
use carbyne::statsd::{Partial, State};

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

/// etsy's flushInterval and ours, in milliseconds.
const INTERVAL_MS: u64 = 2000;

/// One comparison: etsy's config (JavaScript properties added to the ports and backend) and the
/// same options as Carbyne's [`StatsdOptions`], and which streams are sent, one per data flush.
struct Case {
    number: u64,
    etsy_config: &'static str,
    opts: StatsdOptions,
    streams: &'static [Keys],
}

fn options() -> StatsdOptions {
    StatsdOptions { flush_interval_ms: INTERVAL_MS, ..StatsdOptions::default() }
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_defaults() {
    run_case(Case { number: 0, etsy_config: "", opts: options(), streams: &[Keys::All] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_graphite_namespaces() {
    let opts = StatsdOptions {
        prefix_stats: "mystats".into(),
        legacy_namespace: false,
        global_prefix: "gp".into(),
        prefix_counter: "cnt".into(),
        prefix_timer: String::new(),
        prefix_set: "st".into(),
        global_suffix: Some("sfx".into()),
        ..options()
    };
    let etsy_config = "prefixStats: 'mystats', graphite: { legacyNamespace: false, globalPrefix: 'gp', \
                       prefixCounter: 'cnt', prefixTimer: '', prefixSet: 'st', globalSuffix: 'sfx' }";
    run_case(Case { number: 1, etsy_config, opts, streams: &[Keys::All] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_percent_thresholds() {
    // -100 selects every value, where etsy reads cumulative[-1] (NaN); 0.5 selects none of a
    // timer with fewer than 100 samples (skipped) but the one sample of a single-sample timer.
    let opts = StatsdOptions { percent_thresholds: vec![90.0, 99.9, -10.0, -100.0, 0.5], ..options() };
    let etsy_config = "percentThreshold: [90, 99.9, -10, -100, 0.5]";
    run_case(Case { number: 2, etsy_config, opts, streams: &[Keys::All] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_histogram() {
    // The first rule whose metric occurs in the key wins: `t.lat.*` get the first, the other
    // `t.*` timers the second (whose last bin leaves larger values uncounted), `m.*` none.
    let opts = StatsdOptions {
        histogram: vec![
            HistogramRule { metric: "t.lat".into(), bins: vec![10.0, 100.5, f64::INFINITY] },
            HistogramRule { metric: "t.".into(), bins: vec![1.0, 50.0, 250.0] },
        ],
        ..options()
    };
    let etsy_config =
        "histogram: [ { metric: 't.lat', bins: [10, 100.5, 'inf'] }, { metric: 't.', bins: [1, 50, 250] } ]";
    run_case(Case { number: 3, etsy_config, opts, streams: &[Keys::All] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_calculated_timer_metrics() {
    // `upper_99_9` is `upper_99_percent` to etsy's filter (only the last `_digits` become
    // `_percent`). flush_counts false drops the counters' counts: the other filter on output.
    let keep = [
        "count",
        "count_ps",
        "upper_percent",
        "lower_percent",
        "mean_percent",
        "sum",
        "median",
        "histogram",
        "upper_99_percent",
    ];
    let opts = StatsdOptions {
        percent_thresholds: vec![90.0, 99.9, -10.0],
        calculated_timer_metrics: Some(keep.iter().map(|k| k.to_string()).collect()),
        histogram: vec![HistogramRule { metric: "t.lat".into(), bins: vec![10.0, 100.5, f64::INFINITY] }],
        flush_counts: false,
        ..options()
    };
    let etsy_config = "percentThreshold: [90, 99.9, -10], flush_counts: false, \
                       calculatedTimerMetrics: ['count', 'count_ps', 'upper_percent', 'lower_percent', 'mean_percent', \
                       'sum', 'median', 'histogram', 'upper_99_percent'], \
                       histogram: [ { metric: 't.lat', bins: [10, 100.5, 'inf'] } ]";
    run_case(Case { number: 4, etsy_config, opts, streams: &[Keys::All] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_delete_idle_stats() {
    // Keys only in A are deleted after A's flush; statsd's own counters and a user counter
    // named `*packets_received*` are kept at 0; gauge deltas in B apply to what A left.
    let opts = StatsdOptions {
        delete_counters: true,
        delete_timers: true,
        delete_gauges: true,
        delete_sets: true,
        ..options()
    };
    run_case(Case { number: 5, etsy_config: "deleteIdleStats: true", opts, streams: &[Keys::A, Keys::B] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_keep_idle_stats() {
    // Keys only in A are flushed again after B: counters and timers at 0, sets empty, gauges
    // with their last value.
    run_case(Case { number: 6, etsy_config: "deleteIdleStats: false", opts: options(), streams: &[Keys::A, Keys::B] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_delete_overrides_and_gauge_ttl() {
    // deleteIdleStats switches the four deletes on, deleteCounters switches one off again; with
    // gaugesMaxTTL 2 a gauge of A survives B's flush and is gone after the next.
    let opts =
        StatsdOptions { delete_timers: true, delete_gauges: true, delete_sets: true, gauges_max_ttl: 2, ..options() };
    let etsy_config = "deleteIdleStats: true, deleteCounters: false, gaugesMaxTTL: 2";
    run_case(Case { number: 7, etsy_config, opts, streams: &[Keys::A, Keys::B, Keys::B] });
}

#[test]
#[ignore = "needs node and etsy statsd 0.9.0 (see the module doc)"]
fn reference_statsd_key_name_sanitize_off() {
    // Keys are kept as received; the graphite backend cleans the name part but not the tags, so
    // spaces, `\r`, non-ASCII and U+FFFD (decoded from invalid UTF-8) reach the flushed names.
    let opts = StatsdOptions { key_name_sanitize: false, ..options() };
    run_case(Case { number: 8, etsy_config: "keyNameSanitize: false", opts, streams: &[Keys::All] });
}

/// Runs one case on both sides and fails with every disagreeing flush.
fn run_case(case: Case) {
    let seed = env_u64("CARBYNE_REFERENCE_SEED").unwrap_or(DEFAULT_SEED);
    let mut rng = Rng::for_case(seed, case.number);
    let streams: Vec<Vec<Vec<u8>>> = case.streams.iter().map(|keys| generate(&mut rng, *keys)).collect();
    let dir = KeptOnPanic(Some(tempfile::tempdir().unwrap()));
    for (i, stream) in streams.iter().enumerate() {
        let text: String = stream.iter().map(|d| format!("{}\n", d.escape_ascii())).collect();
        std::fs::write(dir.path().join(format!("stream_{}.txt", i + 1)), text).unwrap();
    }
    let theirs = etsy_flushes(dir.path(), case.etsy_config, &streams);
    let ours = carbyne_flushes(&case.opts, &streams);
    let failures: Vec<String> = theirs
        .iter()
        .zip(&ours)
        .enumerate()
        .filter_map(|(i, (t, o))| compare(t, o).err().map(|e| format!("--- flush {i} ({}):\n{e}", flush_label(i))))
        .collect();
    for (i, o) in ours.iter().enumerate() {
        std::fs::write(dir.path().join(format!("carbyne_flush_{i}.txt")), points_text(o)).unwrap();
    }
    assert!(
        failures.is_empty(),
        "case {} disagrees with etsy statsd 0.9.0 (seed {seed:#x}):\n{}",
        case.number,
        failures.join("\n")
    );
}

/// The case's directory (streams, both sides' flushes, etsy's config and log), kept and named
/// when the test fails.
struct KeptOnPanic(Option<tempfile::TempDir>);

impl KeptOnPanic {
    fn path(&self) -> &Path {
        self.0.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }
}

impl Drop for KeptOnPanic {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take().filter(|_| std::thread::panicking()) {
            eprintln!("streams, flushes, etsy's config and log kept in {}", dir.keep().display());
        }
    }
}

fn flush_label(i: usize) -> &'static str {
    if i == 0 {
        "the baseline, nothing received"
    } else {
        "after a stream"
    }
}

// ---------------------------------------------------------------------------------------------
// Both sides
// ---------------------------------------------------------------------------------------------

/// One flush: names and values in the order written.
type Points = Vec<(String, f64)>;

/// Carbyne: an empty flush, then one merge and flush per stream, on a synthetic clock exactly
/// one interval apart.
fn carbyne_flushes(opts: &StatsdOptions, streams: &[Vec<Vec<u8>>]) -> Vec<Points> {
    let interval_ms = opts.flush_interval_ms as i64;
    let first_ms: i64 = 1_700_000_000_000;
    let mut state = State::new(Arc::new(opts.clone()), (first_ms - interval_ms) / 1000);
    let mut flushes = vec![state.flush(first_ms).points];
    for (i, stream) in streams.iter().enumerate() {
        let now_ms = first_ms + (i as i64 + 1) * interval_ms;
        let mut partial = Partial::new(usize::MAX, opts.key_name_sanitize);
        for datagram in stream {
            partial.datagram(datagram, now_ms / 1000 - 1);
        }
        state.merge(&mut [&mut partial]);
        flushes.push(state.flush(now_ms).points);
    }
    flushes
}

/// etsy: its first flush, then each stream sent and the flush after it taken. Each flush's text
/// is kept in `dir` as written.
fn etsy_flushes(dir: &Path, etsy_config: &str, streams: &[Vec<Vec<u8>>]) -> Vec<Points> {
    let (mut etsy, first) = Etsy::start(dir, etsy_config);
    let mut texts = vec![first];
    for stream in streams {
        etsy.send(stream);
        texts.push(etsy.next_flush(Duration::from_millis(2 * INTERVAL_MS) + SLACK).unwrap_or_else(|e| panic!("{e}")));
    }
    drop(etsy);
    let mut flushes = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        std::fs::write(dir.join(format!("etsy_flush_{i}.txt")), text).unwrap();
        flushes.push(parse_flush(text).unwrap_or_else(|e| panic!("etsy's flush {i}: {e}\n{text}")));
    }
    flushes
}

/// How a name's value is compared.
#[derive(Debug, PartialEq)]
enum Compared {
    Value,
    /// Present on both sides; the value measures the run (see the module doc).
    NameOnly,
}

fn compared(name: &str) -> Compared {
    let untagged = name.split(';').next().unwrap_or(name);
    let timing = ["processing_time", "graphiteStats", "timestamp_lag"];
    if untagged.split('.').any(|part| timing.contains(&part)) {
        Compared::NameOnly
    } else {
        Compared::Value
    }
}

/// Same names, each as often, values within 1e-9 relative (NaN equal to NaN).
fn compare(theirs: &Points, ours: &Points) -> Result<(), String> {
    let group = |points: &Points| {
        let mut map: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        for (name, value) in points {
            map.entry(name.clone()).or_default().push(*value);
        }
        map
    };
    let (theirs, ours) = (group(theirs), group(ours));
    let mut problems = Vec::new();
    for (name, t) in &theirs {
        match ours.get(name) {
            None => problems.push(format!("{name:?}: etsy {t:?}, Carbyne has no such name")),
            Some(o) if t.len() != o.len() => {
                problems.push(format!("{name:?}: etsy writes it {} times, Carbyne {}", t.len(), o.len()))
            }
            Some(o) if compared(name) == Compared::Value && !t.iter().zip(o).all(|(a, b)| same_value(*a, *b)) => {
                problems.push(format!("{name:?}: etsy {t:?}, Carbyne {o:?}"));
            }
            Some(_) => {}
        }
    }
    for (name, o) in &ours {
        if !theirs.contains_key(name) {
            problems.push(format!("{name:?}: Carbyne {o:?}, etsy has no such name"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort();
    let mut text = format!("{} disagreements (etsy {} names, Carbyne {}):\n", problems.len(), theirs.len(), ours.len());
    if problems.iter().any(|p| p.contains("packets_received")) {
        text.push_str(
            "  (packets_received differs: etsy did not get the stream within one flush; a datagram lost \
             on loopback or a stream split across two flushes, not an aggregation difference)\n",
        );
    }
    for p in problems.iter().take(30) {
        let _ = writeln!(text, "  {p}");
    }
    Err(text)
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// etsy's plaintext: `name value timestamp` per line; the value in JavaScript number text.
fn parse_flush(text: &str) -> Result<Points, String> {
    let mut points = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.rsplitn(3, ' ');
        let (_timestamp, value, name) = (fields.next(), fields.next(), fields.next());
        let (Some(value), Some(name)) = (value, name) else {
            return Err(format!("not `name value timestamp`: {line:?}"));
        };
        let value = match value {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            text => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("value {text:?} in {line:?}"))?,
        };
        points.push((name.to_string(), value));
    }
    Ok(points)
}

fn points_text(points: &Points) -> String {
    points.iter().map(|(name, value)| format!("{name} {value}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference process
// ---------------------------------------------------------------------------------------------

const NEEDS: &str = "the statsd reference tests need node and etsy statsd 0.9.0: set \
                     CARBYNE_ETSY_STATSD=/path/to/node_modules/statsd/stats.js, or run \
                     `npm install --prefix target/reference/etsy statsd@0.9.0` (.ci/run does); \
                     CARBYNE_REFERENCE_NODE names the node binary (default `node`)";

/// Beyond the flush interval, how long to wait for node to start and connect.
const SLACK: Duration = Duration::from_secs(10);

/// Where etsy's stats.js is: CARBYNE_ETSY_STATSD, else where .ci/run installs it. Checks that it
/// is 0.9.0.
fn etsy_stats_js() -> PathBuf {
    let path = match std::env::var_os("CARBYNE_ETSY_STATSD") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reference/etsy/node_modules/statsd/stats.js"),
    };
    if !path.is_file() {
        panic!("{NEEDS}: {} is not there", path.display());
    }
    let package = path.with_file_name("package.json");
    let version = std::fs::read_to_string(&package)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| json["version"].as_str().map(str::to_string));
    assert_eq!(version.as_deref(), Some("0.9.0"), "{NEEDS}: {} is not etsy statsd 0.9.0", package.display());
    path
}

/// etsy statsd under node, its graphite backend writing to `sink`.
struct Etsy {
    child: Child,
    sink: TcpListener,
    sender: UdpSocket,
    udp: SocketAddr,
    log: PathBuf,
}

impl Etsy {
    /// Starts etsy and returns it with its first flush's text. Its UDP and management ports are
    /// picked free and then released, so another process can take one first: node then exits
    /// with EADDRINUSE, and we try again on other ports.
    fn start(dir: &Path, etsy_config: &str) -> (Etsy, String) {
        let stats_js = etsy_stats_js();
        let wait = Duration::from_millis(3 * INTERVAL_MS) + SLACK;
        let mut attempt = 1;
        loop {
            let mut etsy = Etsy::spawn(dir, &stats_js, etsy_config);
            match etsy.next_flush(wait) {
                Ok(text) => return (etsy, text),
                Err(e) if e.contains("EADDRINUSE") && attempt < 5 => attempt += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn spawn(dir: &Path, stats_js: &Path, etsy_config: &str) -> Etsy {
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        sink.set_nonblocking(true).unwrap();
        let udp = SocketAddr::from(([127, 0, 0, 1], free_port(|a| UdpSocket::bind(a).map(drop))));
        let mgmt_port = free_port(|a| TcpListener::bind(a).map(drop));
        // etsy's own `port || 8125` makes port 0 mean 8125: the ports must be real ones.
        let config = format!(
            "{{\n  port: {}, address: '127.0.0.1', mgmt_port: {mgmt_port}, mgmt_address: '127.0.0.1',\n  \
             graphiteHost: '127.0.0.1', graphitePort: {}, flushInterval: {INTERVAL_MS},\n  {etsy_config}\n}}\n",
            udp.port(),
            sink.local_addr().unwrap().port(),
        );
        let config_path = dir.join("config.js");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.join("etsy.log");
        let out = std::fs::File::create(&log).unwrap();
        let node = std::env::var("CARBYNE_REFERENCE_NODE").unwrap_or_else(|_| "node".into());
        let child = Command::new(&node)
            .arg(stats_js)
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{NEEDS}: cannot start {node}: {e}"));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        Etsy { child, sink, sender, udp, log }
    }

    /// Sends a stream, datagram by datagram, pausing a millisecond every 8 so that node's
    /// receive buffer keeps up.
    fn send(&self, stream: &[Vec<u8>]) {
        for (i, datagram) in stream.iter().enumerate() {
            let sent = self.sender.send_to(datagram, self.udp).unwrap();
            assert_eq!(sent, datagram.len(), "a short UDP send");
            if i % 8 == 7 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// The next flush's text: one connection to the sink, read to its end.
    fn next_flush(&mut self, wait: Duration) -> Result<String, String> {
        let deadline = Instant::now() + wait;
        loop {
            match self.sink.accept() {
                Ok((stream, _)) => return read_flush(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("accepting etsy's graphite connection: {e}")),
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("etsy statsd exited ({status}); its output:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("etsy statsd did not flush within {wait:?}; its output:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Etsy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_flush(mut stream: TcpStream) -> Result<String, String> {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(SLACK)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|e| format!("reading etsy's flush: {e}"))?;
    Ok(text)
}

/// A port that `bind` (UDP or TCP) could take on 127.0.0.1 a moment ago.
fn free_port(bind: impl Fn(SocketAddr) -> std::io::Result<()>) -> u16 {
    loop {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generated streams
// ---------------------------------------------------------------------------------------------

/// Which keys of each pool a stream uses: all, or two overlapping thirds, so that A and B share
/// keys and each has keys of its own (idle in the other's flush).
#[derive(Debug, Clone, Copy)]
enum Keys {
    All,
    A,
    B,
}

impl Keys {
    fn allows(self, index: usize) -> bool {
        match self {
            Keys::All => true,
            Keys::A => index % 3 != 2,
            Keys::B => index % 3 != 0,
        }
    }

    fn pick<'p>(self, rng: &mut Rng, pool: &[&'p [u8]]) -> &'p [u8] {
        loop {
            let i = rng.below(pool.len() as u64) as usize;
            if self.allows(i) {
                return pool[i];
            }
        }
    }
}

/// Keys by kind (a prefix per kind, so that no two kinds flush the same name), with keys that
/// etsy's sanitising changes: whitespace runs, `/`, characters outside `[a-zA-Z0-9_.;=-]`,
/// non-ASCII, invalid UTF-8, a `;` (a tag written into the key).
const COUNTERS: &[&[u8]] = &[
    b"c.api.requests",
    b"c.api.errors",
    b"c.web hits",
    b"c.path/to/page",
    b"c.w\xc3\xa9!rd$chars",
    b"c.tab\tand  spaces",
    b"c.nbsp\xc2\xa0key",
    b"c.brackets[0](1){2}",
    b"c.my.packets_received.total",
    b"c.semi;legacy=tag",
    b"c.raw\xff\xc3bytes",
    b"",
];
const TIMERS: &[&[u8]] =
    &[b"t.lat.api", b"t.lat.db", b"t.db query", b"t.render/page", b"t.odd#chars%", b"t.e\xcc\x81accent"];
const GAUGES: &[&[u8]] = &[b"g.temp", b"g.queue", b"g.mem used", b"g.disk/root", b"g.zero", b"g.odd*chars"];
const SETS: &[&[u8]] = &[b"s.users", b"s.ips", b"s.spaced set", b"s.a/b"];
const MULTI: &[&[u8]] = &[b"m.multi", b"m.multi two", b"m.multi/three"];
const MEMBERS: &[&[u8]] = &[b"alice", b"bob", b"carol", b"", b"0", b"a b", b"\xc3\xa9", b"123", b"dup", b"DUP"];
/// DogStatsD tags: `k:v`, bare, several `:` and `;` (only the first of each is replaced), empty,
/// and characters that sanitising changes (invalid UTF-8 included).
const TAGS: &[&[u8]] = &[
    b"env:prod",
    b"host:web-1",
    b"k2",
    b"a:b:c",
    b"x;y;z",
    b"spaced tag:v 1",
    b"r/s:t",
    b"",
    b"e:\xc3\xa9",
    b"raw\xffbyte",
];
const RATES: &[&[u8]] = &[b"@0.5", b"@0.1", b"@0.25", b"@1", b"@2", b"@.5"];
/// Numbers etsy reads with `Number()`, all integers or halves.
const ODD_NUMBERS: &[&[u8]] = &[b"1e1", b"0x10", b" 3", b"+2", b"5.", b".5", b"0b11", b"0o7", b"1E0", b"\xc2\xa04"];

/// Lines that every stream gets once (where its key range allows): bad lines of each kind, the
/// unknown types, and etsy's quirks that Carbyne keeps. An entry of several lines stays in
/// order (one datagram or consecutive ones).
const FIXED: &[&[u8]] = &[
    b"nocolon",
    b"c.bad:",
    b"c.bad:1",
    b"c.bad:x|c",
    b"c.bad:|c",
    b"t.bad:-1|ms",
    b"g.bad:x|g",
    b"c.bad:1|c|0.5",
    b"c.bad:1|c|@|x",
    b"c.bad:1|c|@-0.5",
    b"c.bad:1|c|@x",
    b"c.bad:1|c|",
    b"c.bad:x|c:y|c",
    b"c.bad|#k:v:1|c",
    b"s.bad:x|s\r",
    b"c.mixed:1|c:bad|c:2|c",
    b"c.h:7|h",
    b"c.unknown:3|x",
    b"c.empty_type:2|",
    b"c.upper:2|C",
    b"c.spacetype:2| c",
    b"t.space: |ms",
    b"t.quirk:-3|ms \nt.quirk:4| ms",
    b"c.rate.exp:1|c|@1e-1",
    b"c.rate.hex:1|c|@0x10",
    b"c.rate.extra:1|c|@0.5|extra",
    b"c.inf:Infinity|c\nc.inf:-Infinity|c\nc.inf:2|c",
    b"c.nan:Infinity|c\nc.nan:-Infinity|c",
    b"t.inf:Infinity|ms\nt.inf:3|ms",
    b"g.inf:5|g\ng.inf:+Infinity|g",
    b"s.empty:|s\ns.empty:0|s",
    b"c.tagged:1|c|@0.5|#env:prod,host:web-1|#ignored",
    b"c.tagged:1|c|#",
    b"g.zero:0|g\ng.zero:+3|g",
    b"g.zero.deltas:+2|g\ng.zero.deltas:-2|g\ng.zero.deltas:+5|g",
    b"g.neg: -2|g\ng.neg:+1|g",
    b"g.nan:+Infinity|g\ng.nan:-Infinity|g\ng.nan:+2|g",
    b"g.nan.kept:+Infinity|g\ng.nan.kept:-Infinity|g",
];

/// Random lines per stream (besides [`FIXED`]).
const N_LINES: usize = 320;

/// One stream: datagrams of one line or several (`\n` or `\r\n`, sometimes a trailing newline
/// or an empty line), one empty datagram and one of a lone newline.
fn generate(rng: &mut Rng, keys: Keys) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = (0..N_LINES).map(|_| line(rng, keys)).collect();
    for (i, fixed) in FIXED.iter().enumerate() {
        if keys.allows(i) {
            let at = rng.below(lines.len() as u64 + 1) as usize;
            lines.insert(at, fixed.to_vec());
        }
    }
    let mut datagrams = Vec::new();
    let mut rest = &lines[..];
    while !rest.is_empty() {
        let n = if rng.chance(40) { 1 } else { rng.range(2, 8) as usize }.min(rest.len());
        let newline: &[u8] = if rng.chance(10) { b"\r\n" } else { b"\n" };
        let mut datagram = Vec::new();
        for (i, line) in rest[..n].iter().enumerate() {
            if i > 0 {
                datagram.extend_from_slice(newline);
                if rng.chance(5) {
                    datagram.extend_from_slice(newline);
                }
            }
            datagram.extend_from_slice(line);
        }
        if rng.chance(20) {
            datagram.extend_from_slice(newline);
        }
        datagrams.push(datagram);
        rest = &rest[n..];
    }
    for special in [&b""[..], b"\n"] {
        let at = rng.below(datagrams.len() as u64 + 1) as usize;
        datagrams.insert(at, special.to_vec());
    }
    datagrams
}

/// One random line: a counter, timer, gauge, set, unknown type or several values for one key,
/// sometimes with DogStatsD tags.
fn line(rng: &mut Rng, keys: Keys) -> Vec<u8> {
    let mut out = Vec::new();
    let kind = rng.below(100);
    let pool = match kind {
        0..=29 | 80..=84 => COUNTERS,
        30..=54 => TIMERS,
        55..=69 => GAUGES,
        70..=79 => SETS,
        _ => MULTI,
    };
    out.extend_from_slice(keys.pick(rng, pool));
    match kind {
        0..=29 => part(rng, &mut out, b"c"),
        30..=54 => part(rng, &mut out, b"ms"),
        55..=69 => part(rng, &mut out, b"g"),
        70..=79 => part(rng, &mut out, b"s"),
        80..=84 => {
            let kind = rng.pick(&[&b"h"[..], b"x", b"", b" c", b"C"]);
            part(rng, &mut out, kind);
        }
        _ => {
            for _ in 0..rng.range(2, 4) {
                let kind = rng.pick(&[&b"c"[..], b"ms", b"g", b"s"]);
                part(rng, &mut out, kind);
            }
        }
    }
    if rng.chance(15) {
        out.extend_from_slice(b"|#");
        for i in 0..rng.range(1, 3) {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(rng.pick(TAGS));
        }
    }
    out
}

/// `:value|kind[|@rate]` with a value that suits the kind.
fn part(rng: &mut Rng, out: &mut Vec<u8>, kind: &[u8]) {
    out.push(b':');
    match kind {
        b"ms" if rng.chance(5) => out.extend_from_slice(rng.pick(ODD_NUMBERS)),
        b"ms" => {
            let max = if rng.chance(10) { 5000 } else { 500 };
            push_value(rng, out, max);
        }
        b"g" => {
            let sign: &[u8] = rng.pick(&[&b""[..], b"", b"", b"+", b"+", b"-", b"-", b" -"]);
            out.extend_from_slice(sign);
            if rng.chance(10) {
                out.push(b'0');
            } else {
                push_value(rng, out, 100);
            }
        }
        b"s" => out.extend_from_slice(rng.pick(MEMBERS)),
        _ if rng.chance(15) => out.extend_from_slice(rng.pick(ODD_NUMBERS)),
        _ => {
            if rng.chance(15) {
                out.push(b'-');
            }
            push_value(rng, out, 20);
        }
    }
    out.push(b'|');
    out.extend_from_slice(kind);
    if kind != b"g" && kind != b"s" && rng.chance(40) {
        out.push(b'|');
        out.extend_from_slice(rng.pick(RATES));
    }
}

/// An integer or a half in `0..=max`.
fn push_value(rng: &mut Rng, out: &mut Vec<u8>, max: i64) {
    let halves = rng.range(0, 2 * max);
    let text = if halves % 2 == 0 { format!("{}", halves / 2) } else { format!("{}.5", halves / 2) };
    out.extend_from_slice(text.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

const DEFAULT_SEED: u64 = 0x5EED_57A7_5D00_0001;

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}")))
}
