//! `--verify` and `--visibility` end to end, against a fake Graphite written here: plaintext over
//! TCP and UDP and pickle over TCP into an in-memory store, and `/render?format=json` out of it
//! at a one-second step, with faults to inject (points hidden or changed at render time). Each
//! test runs a real send, then reads it back, and checks the counts exactly; none checks time.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use carbyne_loadgen::http::BaseUrl;
use carbyne_loadgen::mixed::{self, MixedConfig, Shares, Targets};
use carbyne_loadgen::name::canonical;
use carbyne_loadgen::sender::{SendConfig, BATCH_BYTES};
use carbyne_loadgen::statsd::{Mix, DEFAULT_PATTERN as STATSD_PATTERN};
use carbyne_loadgen::{pickle, plaintext, plaintext_udp, verify};
use carbyne_loadgen::{Checks, ValuePattern, VerifyConfig, VerifyReport, VisibilityConfig, Workload, WorkloadSpec};
use carbyne_loadgen::{Framing, NamePattern, PlaintextUdpConfig, RunConfig, Sent, StatsdSpec, StatsdWorkload};

/// Points by canonical name, then timestamp.
type Store = Arc<Mutex<HashMap<String, BTreeMap<i64, f64>>>>;

/// What the fake gets wrong on purpose, at render time.
#[derive(Default)]
struct Faults {
    /// Points shown as `null`.
    hide: HashSet<(String, i64)>,
    /// Points shown one more than stored.
    shift: HashSet<(String, i64)>,
}

struct Fake {
    store: Store,
    faults: Arc<Mutex<Faults>>,
    line: SocketAddr,
    pickle: SocketAddr,
    udp: SocketAddr,
    http: SocketAddr,
}

impl Fake {
    fn start() -> Fake {
        let store: Store = Arc::default();
        let faults: Arc<Mutex<Faults>> = Arc::default();
        let line = listen(store.clone(), |stream, store| {
            let mut text = Vec::new();
            BufReader::new(&stream).read_to_end(&mut text).unwrap();
            // A last line without its newline was cut off: carbon drops it too.
            let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            store_lines(&store, &text[..whole]);
        });
        let pickle = listen(store.clone(), |mut stream, store| loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).is_err() {
                return;
            }
            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut frame).unwrap();
            for (name, ts, value) in unpickle(&frame) {
                insert(&store, &name, ts, value);
            }
        });
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp = socket.local_addr().unwrap();
        let udp_store = store.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = socket.recv(&mut buf) {
                store_lines(&udp_store, &buf[..n]);
            }
        });
        let http = serve_render(store.clone(), faults.clone());
        Fake { store, faults, line, pickle, udp, http }
    }

    fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    fn n_points(&self) -> usize {
        self.store.lock().unwrap().values().map(BTreeMap::len).sum()
    }
}

/// Accepts connections on 127.0.0.1:0; each is handled by `handle` on its own thread and closed
/// when it returns (after the sender's end of stream: what the loadgen's "accepted" waits for).
fn listen(store: Store, handle: fn(TcpStream, Store)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let store = store.clone();
            thread::spawn(move || handle(stream.unwrap(), store));
        }
    });
    addr
}

fn store_lines(store: &Store, text: &[u8]) {
    for line in std::str::from_utf8(text).unwrap().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line:?}");
        insert(store, fields[0], fields[2].parse().unwrap(), fields[1].parse().unwrap());
    }
}

fn insert(store: &Store, name: &str, ts: i64, value: f64) {
    store.lock().unwrap().entry(canonical(name).into_owned()).or_default().insert(ts, value);
}

/// Decodes the pickle opcodes the loadgen writes (the encoder is checked against CPython in its
/// unit tests): a list of `(name, (ts, value))`.
fn unpickle(frame: &[u8]) -> Vec<(String, i64, f64)> {
    assert_eq!(&frame[..3], [0x80, 2, b']']);
    let (mut out, mut i) = (Vec::new(), 3);
    let (mut name, mut ts) = (String::new(), 0i64);
    loop {
        let op = frame[i];
        i += 1;
        match op {
            b'(' | b'e' | 0x86 => {}
            b'.' => return out,
            b'X' => {
                let n = u32::from_le_bytes(frame[i..i + 4].try_into().unwrap()) as usize;
                name = String::from_utf8(frame[i + 4..i + 4 + n].to_vec()).unwrap();
                i += 4 + n;
            }
            b'K' => (ts, i) = (i64::from(frame[i]), i + 1),
            b'M' => (ts, i) = (i64::from(u16::from_le_bytes([frame[i], frame[i + 1]])), i + 2),
            b'J' => (ts, i) = (i64::from(i32::from_le_bytes(frame[i..i + 4].try_into().unwrap())), i + 4),
            b'G' => {
                let value = f64::from_be_bytes(frame[i..i + 8].try_into().unwrap());
                i += 8;
                out.push((name.clone(), ts, value));
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

/// `/render` over HTTP/1.1 keep-alive: every `target` that is a stored name, from `from`
/// (exclusive) to `until`, one-second step.
fn serve_render(store: Store, faults: Arc<Mutex<Faults>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let (store, faults) = (store.clone(), faults.clone());
            thread::spawn(move || {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header == "\r\n" {
                            break;
                        }
                    }
                    let path = request_line.split(' ').nth(1).unwrap();
                    let query = path.strip_prefix("/render?").expect("a GET of /render");
                    let body = render(&store, &faults.lock().unwrap(), query);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                }
            });
        }
    });
    addr
}

fn render(store: &Store, faults: &Faults, query: &str) -> String {
    let (mut targets, mut from, mut until) = (Vec::new(), 0i64, 0i64);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap();
        let value = form_decode(value);
        match key {
            "target" => targets.push(value),
            "from" => from = value.parse().unwrap(),
            "until" => until = value.parse().unwrap(),
            "format" => assert_eq!(value, "json"),
            other => panic!("unexpected parameter {other}"),
        }
    }
    let store = store.lock().unwrap();
    let mut series = Vec::new();
    for target in targets {
        let Some(points) = store.get(canonical(&target).as_ref()) else { continue };
        let datapoints: Vec<String> = (from + 1..=until)
            .map(|ts| {
                let key = (target.clone(), ts);
                match points.get(&ts) {
                    Some(_) if faults.hide.contains(&key) => format!("[null,{ts}]"),
                    Some(v) if faults.shift.contains(&key) => format!("[{},{ts}]", v + 1.0),
                    Some(v) => format!("[{v},{ts}]"),
                    None => format!("[null,{ts}]"),
                }
            })
            .collect();
        // Named as carbon stores it: tags sorted.
        let name = canonical(&target).replace('"', "\\\"");
        series.push(format!(
            r#"{{"target":"{name}","tags":{{"name":"{name}"}},"datapoints":[{}]}}"#,
            datapoints.join(",")
        ));
    }
    format!("[{}]", series.join(","))
}

fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn workload(pattern: &str, n_metrics: u64, n_points: u64, values: ValuePattern) -> Workload {
    let names = NamePattern::parse(pattern, "vf").unwrap();
    let spec = WorkloadSpec { n_metrics, n_points, start_ts: 1_600_000_000, interval_s: 10, seed: 11, values };
    Workload::new(names, spec).unwrap()
}

fn run_config(n_connections: usize, rate_per_s: Option<f64>, deadline: Option<Duration>) -> RunConfig {
    RunConfig {
        n_connections,
        send: SendConfig { batch_bytes: BATCH_BYTES, rate_per_s, deadline, accept_timeout: Duration::from_secs(30) },
        quiet: true,
        progress_unit: "points",
    }
}

fn verify_config(fake: &Fake, wait: Duration, batch_names: usize) -> VerifyConfig {
    VerifyConfig {
        url: fake.url(),
        base: BaseUrl::parse(&fake.url()).unwrap(),
        addr: fake.http,
        n_connections: 3,
        batch_names,
        timeout: Duration::from_secs(30),
        wait,
        tolerance: 1e-9,
        quiet: true,
    }
}

fn counts(report: &VerifyReport) -> (u64, u64, u64, u64, u64) {
    let t = &report.tally;
    (t.expected, t.found, t.missing, t.wrong, t.unverified)
}

#[test]
fn plaintext_and_pickle_read_back_whole() {
    let fake = Fake::start();
    let w = workload("{prefix}.host{h}.cpu{m}", 250, 6, ValuePattern::Random);
    let (report, sent) =
        plaintext::run_range(fake.line, &w, 0..120, &run_config(3, None, None), plaintext::Lines::Sampled(None))
            .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let framing = Framing { batch_points: 7, frame_bytes_max: 1 << 20 };
    let (report, more) =
        pickle::run_range(fake.pickle, &w, 120..250, framing, &run_config(2, None, None), None).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let mut all = sent;
    all.extend(more);
    assert_eq!(fake.n_points(), 1_500);
    // Several batches of 16 names over 3 connections, so the work is shared out.
    let v = verify::verify(&w, &all, &verify_config(&fake, Duration::ZERO, 16));
    assert_eq!(counts(&v), (1_500, 1_500, 0, 0, 0));
    assert_eq!((v.tally.series, v.tally.series_missing, v.tally.inexact, v.tally.unexpected), (250, 0, 0, 0));
    assert_eq!(v.tally.requests, 3 * 3 + 2 * 5, "a batch never spans two connections' metrics: 3 x 40, 2 x 65");
    assert!(v.is_clean(), "{v}");
}

#[test]
fn hidden_and_changed_points_are_counted_exactly() {
    let fake = Fake::start();
    let w = workload("{prefix}.m{i}", 20, 5, ValuePattern::Sine { period_points: 7 });
    let (_, sent) =
        plaintext::run_range(fake.line, &w, 0..20, &run_config(2, None, None), plaintext::Lines::Sampled(None))
            .unwrap();
    {
        let mut faults = fake.faults.lock().unwrap();
        for m in [3, 4, 17] {
            faults.hide.insert((w.names().render(m), w.timestamp(2) as i64));
        }
        faults.shift.insert((w.names().render(14), w.timestamp(0) as i64));
    }
    // Missing points are asked for again for a while; they stay missing.
    let v = verify::verify(&w, &sent, &verify_config(&fake, Duration::from_millis(500), 100));
    assert_eq!(counts(&v), (100, 96, 3, 1, 0));
    assert!(v.tally.requests > 1, "asked again while points were missing");
    assert!(!v.is_clean());
    assert!(v.tally.examples.iter().any(|e| e.starts_with("vf.m14 at 1600000000: sent 500, read 501")), "{v}");
    assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
}

#[test]
fn a_run_cut_by_its_duration_expects_only_what_left() {
    let fake = Fake::start();
    let w = workload("{prefix}.m{i}", 50, 100, ValuePattern::Sequence);
    let cfg = run_config(2, Some(400.0), Some(Duration::from_millis(300)));
    let (report, sent) = plaintext::run_range(fake.line, &w, 0..50, &cfg, plaintext::Lines::Sampled(None)).unwrap();
    assert!(report.points_sent > 0 && report.points_sent < 5_000);
    assert_eq!(sent.n_sent(), report.points_sent);
    let v = verify::verify(&w, &sent, &verify_config(&fake, Duration::ZERO, 100));
    assert_eq!(counts(&v), (report.points_sent, report.points_sent, 0, 0, 0));
    assert!(v.is_clean(), "{v}");
}

#[test]
fn udp_and_tagged_names_read_back_whole() {
    let fake = Fake::start();
    // Tags out of order: the fake names its series with the tags sorted, as carbon does.
    let w = workload("{prefix}.cpu{m};host=h{h};dc=dc{d}", 300, 3, ValuePattern::Random);
    let cfg = PlaintextUdpConfig {
        n_senders: 2,
        lines_per_datagram: 10,
        datagram_bytes_max: 1432,
        // Slow enough that the fake's socket buffer never overflows.
        rate_per_s: Some(20_000.0),
        deadline: None,
        quiet: true,
        progress_unit: "points",
    };
    let (report, sent) = plaintext_udp::run_range(fake.udp, &w, 0..300, &cfg, None).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.points_sent, report.datagrams_sent), (900, 90));
    assert_eq!(report.latency_ns.len(), 90, "every datagram's send is timed once");
    assert!(report.to_json().contains(r#""send_latency_us":{"p50":"#));
    let v = verify::verify(&w, &sent, &verify_config(&fake, Duration::from_secs(20), 50));
    assert_eq!(counts(&v), (900, 900, 0, 0, 0), "{v}");
    assert!(fake.store.lock().unwrap().contains_key("vf.cpu05;dc=dc0;host=h0"));
}

#[test]
fn mixed_sends_all_three_and_reads_the_carbon_part_back() {
    let fake = Fake::start();
    let statsd_sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let w = workload("{prefix}.mx{i}", 90, 4, ValuePattern::Constant(2.5));
    let statsd_spec = StatsdSpec {
        n_keys: 10,
        mix: Mix::default(),
        sampled_fraction: 0.1,
        sample_rate: 0.5,
        gauge_delta_fraction: 0.25,
        n_set_members: 10,
        seed: 1,
        lines_per_datagram: 1,
        datagram_bytes_max: 1432,
    };
    let statsd = StatsdWorkload::new(NamePattern::parse(STATSD_PATTERN, "vf").unwrap(), statsd_spec).unwrap();
    let targets = Targets {
        plaintext: Some(fake.line),
        pickle: Some(fake.pickle),
        statsd: Some(statsd_sink.local_addr().unwrap()),
    };
    let cfg = MixedConfig {
        shares: Shares { plaintext: 2, pickle: 1, statsd: 1 },
        run: run_config(2, None, None),
        framing: Framing::default(),
        n_senders: 1,
    };
    let (report, sent): (_, Sent) = mixed::run(targets, &w, &statsd, &cfg, None).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems());
    assert_eq!(report.plaintext.as_ref().unwrap().points_sent, 240);
    assert_eq!(report.pickle.as_ref().unwrap().points_sent, 120);
    assert_eq!(report.statsd.as_ref().unwrap().lines_sent, 120, "360 carbon points x 1 / 3");
    assert_eq!(report.statsd.as_ref().unwrap().latency_ns.len(), 120, "one line per datagram, each timed");
    assert!(report.to_string().contains("send latency    per datagram p50 "), "{report}");
    let v = verify::verify(&w, &sent, &verify_config(&fake, Duration::ZERO, 100));
    assert_eq!(counts(&v), (360, 360, 0, 0, 0));
    let json = report.to_json_object().finish();
    for field in [r#""protocol":"mixed""#, r#""shares":{"plaintext":2,"pickle":1,"statsd":1}"#, r#""framing":{"#] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    let statsd_json = &json[json.find(r#""statsd":{"protocol":"statsd""#).unwrap()..];
    assert!(statsd_json.contains(r#""send_latency_us":{"p50":"#), "{statsd_json}");
}

fn loadgen(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen")).args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.success(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn binary_verifies_and_follows_points_until_visible() {
    let fake = Fake::start();
    let url = fake.url();
    let target = fake.pickle.to_string();
    let (ok, stdout, stderr) = loadgen(&[
        "pickle",
        "--target",
        &target,
        "--metrics=40",
        "--points=5",
        "--start=1600000000",
        "--batch-points=9",
        "--verify",
        &url,
        "--visibility=20",
        "--json",
        "--quiet",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    for field in [
        r#""protocol":"pickle""#,
        r#""framing":{"batch_points":9,"frame_bytes_max":1048576}"#,
        r#""values":"random""#,
        r#""points_sent":200"#,
        r#""points_expected":200,"points_found":200,"points_inexact":0,"points_missing":0,"points_wrong":0"#,
        r#""samples":20,"sent":20,"visible":20,"not_visible":0"#,
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
}

#[test]
fn binary_exits_1_when_points_are_missing() {
    let fake = Fake::start();
    let w = workload("{prefix}.m{i}", 10, 3, ValuePattern::Random);
    fake.faults.lock().unwrap().hide.insert((w.names().render(4), w.timestamp(1) as i64));
    let (url, target) = (fake.url(), fake.line.to_string());
    let (ok, stdout, stderr) = loadgen(&[
        "plaintext",
        "--target",
        &target,
        "--metrics=10",
        "--points=3",
        "--start=1600000000",
        "--seed=11",
        "--prefix=vf",
        "--name-pattern={prefix}.m{i}",
        "--verify",
        &url,
        "--verify-wait=0",
        "--quiet",
    ]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("points          expected 30, found 29, missing 1, wrong 0"), "{stdout}");
    assert!(stdout.contains("example         vf.m4 at 1600000010: missing (null)"), "{stdout}");
    assert!(stderr.contains("verification: 1 missing, 0 wrong, 0 unverified of 30 points"), "{stderr}");
    // Names a render target would misread are refused before sending.
    let (ok, _, stderr) = loadgen(&["plaintext", "--target", &target, "--prefix=a*b", "--verify", &url, "--quiet"]);
    assert!(!ok && stderr.contains("--verify cannot read these names back"), "{stderr}");
    let (ok, _, stderr) = loadgen(&["plaintext", "--target", &target, "--visibility=5", "--quiet"]);
    assert!(!ok && stderr.contains("--verify"), "--visibility needs --verify: {stderr}");
}

#[test]
fn a_point_that_never_shows_is_counted_not_visible() {
    let fake = Fake::start();
    let w = workload("{prefix}.m{i}", 10, 2, ValuePattern::Random);
    fake.faults.lock().unwrap().hide.insert((w.names().render(3), w.timestamp(1) as i64));
    let visibility = VisibilityConfig {
        base: BaseUrl::parse(&fake.url()).unwrap(),
        addr: fake.http,
        n_samples: 20,
        timeout: Duration::from_millis(300),
        batch_names: 4,
        request_timeout: Duration::from_secs(30),
    };
    let checks = Checks::start(&w, 20, Some(verify_config(&fake, Duration::ZERO, 100)), Some(visibility));
    let (_, sent) = plaintext::run_range(
        fake.line,
        &w,
        0..10,
        &run_config(2, None, None),
        plaintext::Lines::Sampled(checks.sampler()),
    )
    .unwrap();
    let checked = checks.finish(&w, &sent);
    let v = checked.visibility.as_ref().unwrap();
    assert_eq!((v.n_sent, v.n_visible(), v.n_not_visible), (20, 19, 1));
    assert!(v.n_polls >= 3, "4 metrics a poll: at least 3 polls for 10 metrics");
    assert_eq!(counts(checked.verify.as_ref().unwrap()), (20, 19, 1, 0, 0));
    assert!(!checked.is_clean());
    let failure = checked.failure().unwrap();
    assert!(failure.contains("1 missing") && failure.contains("1 of 20 followed points not visible"), "{failure}");
    let json = checked.add_to(carbyne_loadgen::json::JsonObject::default()).finish();
    assert!(json.contains(r#""visibility":{"samples":20,"sent":20,"visible":19,"not_visible":1"#), "{json}");
}
