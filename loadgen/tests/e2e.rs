//! End to end: the sender against a tiny carbon-like server on 127.0.0.1:0, in-process and through
//! the built binary (and the statsd mode against a UDP socket that keeps every datagram, and the
//! render mode against a tiny HTTP server that answers in every body framing). The server reads each connection to EOF, keeps the bytes, then closes (which
//! is what the sender's "accepted" waits for). Every check is on counts and contents, none on time.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use carbyne_loadgen::http::{build_request, BaseUrl, Method, RenderForm};
use carbyne_loadgen::name::DEFAULT_PATTERN;
use carbyne_loadgen::render_report::RenderInfo;
use carbyne_loadgen::report::Stop;
use carbyne_loadgen::sender::{SendConfig, BATCH_BYTES};
use carbyne_loadgen::statsd::{Kind, Mix};
use carbyne_loadgen::{plaintext, udp, NamePattern, Report, RunConfig, ValuePattern, Workload, WorkloadSpec};
use carbyne_loadgen::{render, RenderConfig, RenderReport};
use carbyne_loadgen::{StatsdSpec, StatsdWorkload, UdpConfig};

/// A test server that accepts `n_conns` connections and returns each one's bytes once every
/// connection has reached EOF. Each connection is closed right after its EOF, or, with `hold`,
/// only once `hold` receives (or its sender is dropped).
fn serve(n_conns: usize, hold: Option<mpsc::Receiver<()>>) -> (SocketAddr, JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let readers: Vec<JoinHandle<_>> = (0..n_conns)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                thread::spawn(move || {
                    let mut bytes = Vec::new();
                    stream.read_to_end(&mut bytes).unwrap();
                    (bytes, stream)
                })
            })
            .collect();
        let conns: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        if let Some(hold) = hold {
            let _ = hold.recv();
        }
        conns.into_iter().map(|(bytes, _stream)| bytes).collect()
    });
    (addr, handle)
}

fn workload(n_metrics: u64, n_points: u64) -> Workload {
    let names = NamePattern::parse(DEFAULT_PATTERN, "e2e").unwrap();
    let spec = WorkloadSpec {
        n_metrics,
        n_points,
        start_ts: 1_600_000_000,
        interval_s: 10,
        seed: 42,
        values: ValuePattern::Random,
    };
    Workload::new(names, spec).unwrap()
}

fn config(n_connections: usize, rate_per_s: Option<f64>, deadline: Option<Duration>) -> RunConfig {
    RunConfig {
        n_connections,
        send: SendConfig { batch_bytes: BATCH_BYTES, rate_per_s, deadline, accept_timeout: Duration::from_secs(30) },
        quiet: true,
        progress_unit: "points",
    }
}

/// One received line, parsed as `name value timestamp`.
fn parse_line(line: &str) -> (String, f64, u64) {
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 3, "{line:?}");
    let value: f64 = fields[1].parse().unwrap();
    let ts: u64 = fields[2].parse().unwrap();
    (fields[0].to_owned(), value, ts)
}

/// Checks what the server got: whole lines only, every point at most once and exactly as the
/// workload defines it, each metric on one connection in timestamp order. Returns the points.
fn check_received(w: &Workload, conns: &[Vec<u8>]) -> HashSet<(String, u64)> {
    let spec = w.spec();
    let expected: HashMap<(String, u64), f64> = (0..spec.n_metrics)
        .flat_map(|m| (0..spec.n_points).map(move |p| (m, p)))
        .map(|(m, p)| ((w.names().render(m), w.timestamp(p)), w.value(m, p)))
        .collect();
    let mut seen = HashSet::new();
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (conn_idx, bytes) in conns.iter().enumerate() {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "partial last line");
        let mut last_ts: HashMap<String, u64> = HashMap::new();
        for line in text.lines() {
            let (name, value, ts) = parse_line(line);
            assert_eq!(expected[&(name.clone(), ts)].to_bits(), value.to_bits(), "{line}");
            assert_eq!(*owner.entry(name.clone()).or_insert(conn_idx), conn_idx, "{name} split");
            let last = last_ts.insert(name.clone(), ts);
            assert!(last.is_none_or(|last| last < ts), "{name} out of order");
            assert!(seen.insert((name, ts)), "{line} twice");
        }
    }
    seen
}

/// Runs `w` against a fresh test server and checks the report against what arrived.
fn run_and_check(w: &Workload, cfg: &RunConfig) -> (Report, HashSet<(String, u64)>) {
    let (addr, server) = serve(cfg.n_connections, None);
    let report = plaintext::run(addr, w, cfg).unwrap();
    let conns = server.join().unwrap();
    let points = check_received(w, &conns);
    assert_eq!(report.points_sent, points.len() as u64);
    assert_eq!(report.bytes_sent, conns.iter().map(|c| c.len() as u64).sum::<u64>());
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(report.accepted_after.is_some());
    (report, points)
}

#[test]
fn every_point_arrives_exactly_once() {
    let w = workload(1_234, 7);
    let (report, points) = run_and_check(&w, &config(4, None, None));
    assert_eq!(points.len() as u64, w.n_total_points());
    assert_eq!(report.stop, Stop::AllSent);
    assert!(report.batches >= 1);
    assert_eq!(report.latency_ns.len(), report.batches);
}

#[test]
fn a_pregenerated_run_sends_the_same_bytes() {
    let w = workload(1_234, 7);
    let cfg = config(3, None, None);
    let (addr, server) = serve(3, None);
    let live = plaintext::run(addr, &w, &cfg).unwrap();
    let live_conns = server.join().unwrap();
    let (addr, server) = serve(3, None);
    let (recorded, _) = plaintext::run_range(addr, &w, 0..1_234, &cfg, plaintext::Lines::Recorded).unwrap();
    let recorded_conns = server.join().unwrap();
    assert!(recorded.is_clean(), "{:?}", recorded.problems);
    assert_eq!(check_received(&w, &recorded_conns).len() as u64, w.n_total_points());
    // The server may accept the connections in any order: compare the sets of streams.
    let mut a = live_conns.clone();
    let mut b = recorded_conns.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!((recorded.points_sent, recorded.bytes_sent), (live.points_sent, live.bytes_sent));
    assert!(recorded.info.recorded && !live.info.recorded);
}

#[test]
fn a_pregenerated_paced_run_sends_everything() {
    let w = workload(50, 20);
    let (addr, server) = serve(2, None);
    let (report, _) =
        plaintext::run_range(addr, &w, 0..50, &config(2, Some(1_000.0), None), plaintext::Lines::Recorded).unwrap();
    let conns = server.join().unwrap();
    assert_eq!(check_received(&w, &conns).len(), 1000);
    assert_eq!(report.points_sent, 1000);
    // Unpaced, each connection's 500 points (about 25 KiB) would leave in one batch. Paced over
    // about a second, the first batch carries only the points due at the start.
    assert!(report.batches >= 4, "{} batches", report.batches);
}

#[test]
fn more_connections_than_metrics() {
    let w = workload(3, 2);
    let (report, points) = run_and_check(&w, &config(5, None, None));
    assert_eq!(points.len(), 6);
    assert_eq!(report.stop, Stop::AllSent);
}

#[test]
fn paced_run_sends_everything() {
    let w = workload(50, 4);
    let (report, points) = run_and_check(&w, &config(3, Some(4_000.0), None));
    assert_eq!(points.len(), 200);
    assert_eq!(report.stop, Stop::AllSent);
}

#[test]
fn duration_stops_a_slow_run() {
    // 20 points/s for a 10 000-point workload: only the duration can end this run.
    let w = workload(100, 100);
    let cfg = config(2, Some(20.0), Some(Duration::from_millis(300)));
    let (report, points) = run_and_check(&w, &cfg);
    assert_eq!(report.stop, Stop::Duration);
    assert!(!points.is_empty());
    assert!((points.len() as u64) < w.n_total_points());
}

#[test]
fn a_server_that_does_not_close_is_reported() {
    let w = workload(10, 3);
    let mut cfg = config(2, None, None);
    cfg.send.accept_timeout = Duration::from_millis(200);
    let (release, hold) = mpsc::channel();
    let (addr, server) = serve(2, Some(hold));
    let report = plaintext::run(addr, &w, &cfg).unwrap();
    release.send(()).unwrap();
    let conns = server.join().unwrap();
    assert_eq!(check_received(&w, &conns).len(), 30);
    assert_eq!(report.points_sent, 30);
    assert_eq!(report.accepted_after, None);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(!report.is_clean());
}

#[test]
fn binary_sends_and_reports_json() {
    let (addr, server) = serve(2, None);
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["plaintext", "--target", &addr.to_string(), "--connections=2", "--metrics=150"])
        .args(["--points=3", "--start=1600000000", "--seed=42", "--prefix=e2e", "--json", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let conns = server.join().unwrap();
    assert_eq!(check_received(&workload(150, 3), &conns).len(), 450);
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    for field in [
        r#""protocol":"plaintext""#,
        r#""stop":"all_sent""#,
        r#""points_planned":450"#,
        r#""points_sent":450"#,
        r#""accepted":true"#,
        r#""problems":[]"#,
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    let bytes: usize = conns.iter().map(Vec::len).sum();
    assert!(json.contains(&format!(r#""bytes_sent":{bytes}"#)), "{json}");
}

#[test]
fn binary_pregenerates_on_request() {
    let (addr, server) = serve(2, None);
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["plaintext", "--target", &addr.to_string(), "--connections=2", "--metrics=150", "--pregenerate"])
        .args(["--points=3", "--start=1600000000", "--seed=42", "--prefix=e2e", "--json", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(check_received(&workload(150, 3), &server.join().unwrap()).len(), 450);
    assert!(stdout.contains(r#""pregenerated":true"#), "{stdout}");
    let started: f64 = stdout
        .split(r#""started_unix_s":"#)
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(started > now - 60.0 && started <= now, "started {started}, now {now}");
}

#[test]
fn binary_refuses_a_bad_pattern() {
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["plaintext", "--target=127.0.0.1:9", "--name-pattern={prefix}.{h}", "--quiet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--name-pattern") && stderr.contains("{h} and {m}"), "{stderr}");
}

// ---- statsd over UDP ----

/// A UDP receiver on 127.0.0.1:0 that keeps every datagram until `stop` is set and the socket
/// has then been quiet for 100 ms. The runs below stay far below the default receive buffer
/// (about 200 KiB), so nothing is dropped even if this thread is slow to run.
fn udp_sink() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<Vec<Vec<u8>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(_) if stopping.load(Ordering::SeqCst) => return got,
                Err(_) => {}
            }
        }
    });
    (addr, stop, handle)
}

fn statsd_workload(lines_per_datagram: usize, datagram_bytes_max: usize) -> StatsdWorkload {
    let names = NamePattern::parse(carbyne_loadgen::statsd::DEFAULT_PATTERN, "e2e").unwrap();
    let spec = StatsdSpec {
        n_keys: 50,
        mix: Mix::default(),
        sampled_fraction: 0.2,
        sample_rate: 0.25,
        gauge_delta_fraction: 0.5,
        n_set_members: 10,
        seed: 9,
        lines_per_datagram,
        datagram_bytes_max,
    };
    StatsdWorkload::new(names, spec).unwrap()
}

fn udp_config(n_senders: usize, n_lines: u64, rate_per_s: Option<f64>) -> UdpConfig {
    UdpConfig {
        n_senders,
        n_lines: Some(n_lines),
        rate_per_s,
        deadline: None,
        pregenerate: false,
        quiet: true,
        progress_unit: "lines",
    }
}

/// Every line of the run, in line order.
fn statsd_lines(w: &StatsdWorkload, n_lines: u64) -> Vec<String> {
    (0..n_lines)
        .map(|j| {
            let mut buf = Vec::new();
            w.write_line(&mut buf, j);
            String::from_utf8(buf).unwrap()
        })
        .collect()
}

#[test]
fn statsd_lines_arrive_exactly_once_within_their_datagram_bounds() {
    for (senders, per_datagram, bytes_max, rate) in
        [(2, 20, 1432, None), (3, 1, 1432, Some(20_000.0)), (1, 50, 300, None)]
    {
        let w = statsd_workload(per_datagram, bytes_max);
        let (addr, stop, sink) = udp_sink();
        let report = udp::run(addr, &w, &udp_config(senders, 1_000, rate)).unwrap();
        stop.store(true, Ordering::SeqCst);
        let datagrams = sink.join().unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert_eq!(report.stop, Stop::AllSent);
        assert_eq!(report.datagrams_sent, datagrams.len() as u64);
        assert_eq!(report.latency_ns.len(), report.datagrams_sent, "every datagram's send is timed once");
        assert_eq!(report.bytes_sent, datagrams.iter().map(|d| d.len() as u64).sum::<u64>());
        let mut got: Vec<String> = Vec::new();
        for d in &datagrams {
            assert!(d.len() <= bytes_max && !d.ends_with(b"\n"));
            let lines: Vec<&str> = std::str::from_utf8(d).unwrap().split('\n').collect();
            assert!((1..=per_datagram).contains(&lines.len()));
            got.extend(lines.into_iter().map(str::to_owned));
        }
        let mut want = statsd_lines(&w, 1_000);
        got.sort();
        want.sort();
        assert_eq!(got, want, "{senders} senders, {per_datagram} lines / {bytes_max} bytes");
        assert_eq!(report.lines_sent, 1_000);
        assert_eq!(report.lines_by_kind.iter().sum::<u64>(), 1_000);
        let sets = want.iter().filter(|l| l.ends_with("|s")).count() as u64;
        assert_eq!(report.lines_by_kind[Kind::Set.idx()], sets);
    }
}

#[test]
fn statsd_duration_ends_an_unbounded_run() {
    let w = statsd_workload(5, 1432);
    let (addr, stop, sink) = udp_sink();
    let cfg = UdpConfig {
        n_senders: 2,
        n_lines: None,
        rate_per_s: Some(2_000.0),
        deadline: Some(Duration::from_millis(200)),
        pregenerate: false,
        quiet: true,
        progress_unit: "lines",
    };
    let report = udp::run(addr, &w, &cfg).unwrap();
    stop.store(true, Ordering::SeqCst);
    let datagrams = sink.join().unwrap();
    assert_eq!(report.stop, Stop::Duration);
    assert_eq!(report.datagrams_sent, datagrams.len() as u64);
    assert!(report.lines_sent > 0 && report.is_clean());
}

#[test]
fn statsd_pregenerated_sends_the_lines_an_unprepared_run_sends() {
    let w = statsd_workload(5, 1432);
    let (addr, stop, sink) = udp_sink();
    let cfg = UdpConfig {
        n_senders: 1,
        n_lines: None,
        rate_per_s: Some(2_000.0),
        deadline: Some(Duration::from_millis(200)),
        pregenerate: true,
        quiet: true,
        progress_unit: "lines",
    };
    let report = udp::run(addr, &w, &cfg).unwrap();
    stop.store(true, Ordering::SeqCst);
    let datagrams = sink.join().unwrap();
    assert_eq!((report.stop, report.datagrams_sent), (Stop::Duration, datagrams.len() as u64));
    assert!(report.info.pregenerated_lines.is_some_and(|n| n > report.lines_sent), "{:?}", report.info);
    // Far less than one lap: the datagrams are the run's first lines, in order, as without
    // --pregenerate.
    let lines: Vec<String> = datagrams
        .iter()
        .flat_map(|d| String::from_utf8_lossy(d).lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(lines, statsd_lines(&w, lines.len() as u64));
    assert_eq!(lines.len() as u64, report.lines_sent);
}

#[test]
fn statsd_to_a_closed_port_counts_send_errors() {
    let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The socket is closed: the kernel answers each datagram with a port unreachable, which
    // the next send on the connected socket reports as ECONNREFUSED.
    let w = statsd_workload(1, 1432);
    let report = udp::run(addr, &w, &udp_config(1, 200, None)).unwrap();
    assert_eq!(report.lines_sent + report.lines_not_sent, 200);
    assert!(report.send_errors > 0, "{report}");
    assert_eq!(report.latency_ns.len(), report.datagrams_sent, "failed sends are not timed");
    assert!(!report.is_clean());
    assert!(report.problems[0].contains("not sent"), "{:?}", report.problems);
}

#[test]
fn binary_sends_statsd_and_reports_json() {
    let (addr, stop, sink) = udp_sink();
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["statsd", "--target", &addr.to_string(), "--senders=2", "--keys=50", "--lines=200"])
        .args(["--mix=c=40,ms=30,g=20,s=10", "--sampled=0.2", "--sample-rate=0.25", "--gauge-deltas=0.5"])
        .args(["--set-members=10", "--seed=9", "--prefix=e2e", "--lines-per-datagram=1", "--json", "--quiet"])
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let datagrams = sink.join().unwrap();
    let mut got: Vec<String> = datagrams.iter().map(|d| String::from_utf8(d.clone()).unwrap()).collect();
    let mut want = statsd_lines(&statsd_workload(1, 1432), 200);
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    for field in [
        r#""protocol":"statsd""#,
        r#""stop":"all_sent""#,
        r#""lines_planned":200"#,
        r#""lines_sent":200"#,
        r#""datagrams_sent":200"#,
        r#""send_errors":0"#,
        r#""mix":{"c":40,"ms":30,"g":20,"s":10}"#,
        r#""send_latency_us":{"p50":"#,
        r#""problems":[]"#,
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    assert!(!json.contains(r#""p50":null"#), "200 datagrams sent, so there are quantiles: {json}");
}

/// How the tiny HTTP server answers.
#[derive(Clone, Copy, PartialEq)]
enum HttpMode {
    /// Request `k` (counting from 0 over the server's life) gets, by `k % 4`: a Content-Length
    /// body; a chunked body; a Content-Length body with `Connection: close` (then the server
    /// closes); a 500.
    Mixed,
    /// Always a 200 with a Content-Length body, then the server closes without saying so (as a
    /// server whose keep-alive timeout ran out while the client was idle).
    SilentClose,
}

/// The body of request `k`'s response in `HttpMode::Mixed`, and its status.
fn mixed_response(k: usize) -> (u16, Vec<u8>, String) {
    let body = format!("[{{\"target\":\"r{k}\",\"datapoints\":[[1.0,{k}]]}}]");
    match k % 4 {
        0 => (200, body.clone().into_bytes(), body),
        1 => {
            let (a, b) = body.split_at(5);
            let wire = format!("{:x}\r\n{a}\r\n{:x};ext\r\n{b}\r\n0\r\n\r\n", a.len(), b.len());
            (200, wire.into_bytes(), body)
        }
        2 => (200, body.clone().into_bytes(), body),
        _ => (500, b"oops".to_vec(), "oops".to_owned()),
    }
}

/// Every request a test server read: (request line, body), in arrival order.
type RequestLog = Arc<Mutex<Vec<(String, String)>>>;

/// Serves HTTP/1.1 on 127.0.0.1:0 until the test ends; every request's (request line, body) is
/// kept in arrival order.
fn http_server(mode: HttpMode) -> (SocketAddr, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let log = Arc::clone(&log);
            thread::spawn(move || serve_http(stream.unwrap(), mode, &log));
        }
    });
    (addr, seen)
}

fn serve_http(mut stream: TcpStream, mode: HttpMode, log: &Mutex<Vec<(String, String)>>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        while pending.len() < head_end + 4 + length {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed inside a request");
            pending.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8(pending[head_end + 4..head_end + 4 + length].to_vec()).unwrap();
        pending.drain(..head_end + 4 + length);
        let k = {
            let mut log = log.lock().unwrap();
            log.push((head.lines().next().unwrap().to_owned(), body));
            log.len() - 1
        };
        let (status, wire, _) = mixed_response(if mode == HttpMode::SilentClose { 0 } else { k });
        let (framing, close) = match (mode, k % 4) {
            (HttpMode::SilentClose, _) => (format!("Content-Length: {}\r\n", wire.len()), true),
            (HttpMode::Mixed, 1) => ("Transfer-Encoding: chunked\r\n".to_owned(), false),
            (HttpMode::Mixed, 2) => (format!("Content-Length: {}\r\nConnection: close\r\n", wire.len()), true),
            (HttpMode::Mixed, _) => (format!("Content-Length: {}\r\n", wire.len()), false),
        };
        let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{framing}\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&wire).unwrap();
        if close {
            return;
        }
    }
}

fn render_form() -> RenderForm {
    RenderForm {
        targets: vec!["sumSeries(bench.host*.cpu)".to_owned()],
        from: Some("-24h".to_owned()),
        until: Some("now".to_owned()),
        format: Some("json".to_owned()),
        max_data_points: Some(1000),
    }
}

fn render_run(addr: SocketAddr, cfg: &RenderConfig) -> RenderReport {
    let url = BaseUrl::parse(&format!("http://{addr}")).unwrap();
    let form = render_form();
    let request = build_request(Method::Post, &url, "/render", &form.encode());
    let info = RenderInfo::new(&format!("http://{addr}"), addr, Method::Post, "/render".to_owned(), form, cfg);
    RenderReport::new(info, render::run(addr, &request, cfg))
}

fn render_config(n_connections: usize, n_requests: Option<u64>, deadline: Option<Duration>) -> RenderConfig {
    RenderConfig { n_connections, n_requests, deadline, timeout: Duration::from_secs(30), quiet: true }
}

#[test]
fn render_counts_every_framing_and_status() {
    let (addr, seen) = http_server(HttpMode::Mixed);
    let report = render_run(addr, &render_config(3, Some(40), None));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 40);
    let form = render_form().encode();
    assert!(seen.iter().all(|(line, body)| line == "POST /render HTTP/1.1" && *body == form), "{seen:?}");
    assert_eq!((report.responses, report.failures, report.stop), (40, 0, Stop::AllSent));
    assert_eq!((report.responses_ok(), report.non_200()), (30, 10));
    assert_eq!(report.latency_ns.len(), 30, "only the 200s are timed");
    let body_bytes: usize = (0..40).map(|k| mixed_response(k).2.len()).sum();
    assert_eq!(report.body_bytes, body_bytes as u64, "chunked framing is not counted as body");
    // Every `Connection: close` ends a connection; the next request opens a new one.
    assert!(report.connects >= 10 && report.connects <= 10 + 3, "{} connects", report.connects);
    assert_eq!(report.problems.len(), 0, "{:?}", report.problems);
    assert!(!report.is_clean(), "500s make a run unclean");
}

#[test]
fn render_reopens_a_connection_the_server_closed_while_idle() {
    let (addr, seen) = http_server(HttpMode::SilentClose);
    let report = render_run(addr, &render_config(1, Some(6), None));
    assert_eq!(seen.lock().unwrap().len(), 6);
    // Every request after the first finds its connection closed, reopens it and is sent again,
    // without counting a failure.
    assert_eq!((report.responses_ok(), report.failures, report.connects), (6, 0, 6));
}

#[test]
fn render_gives_up_on_a_closed_port() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let report = render_run(addr, &render_config(1, None, Some(Duration::from_secs(60))));
    assert_eq!((report.responses, report.failures, report.stop), (0, 10, Stop::Error));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].contains("connect"), "{:?}", report.problems);
}

#[test]
fn render_duration_ends_an_unbounded_run() {
    let (addr, _seen) = http_server(HttpMode::Mixed);
    let report = render_run(addr, &render_config(2, None, Some(Duration::from_millis(200))));
    assert_eq!(report.stop, Stop::Duration);
    assert!(report.responses > 0 && report.failures == 0);
}

#[test]
fn binary_renders_and_reports_json() {
    let (addr, seen) = http_server(HttpMode::Mixed);
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["render", "--url", &format!("http://{addr}/graphite/"), "--query=a.b", "--query=sumSeries(c.*)"])
        .args(["--from=-1h", "--max-data-points=300", "--method=get", "--requests=3", "--json", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let form = "target=a.b&target=sumSeries%28c.*%29&from=-1h&until=now&format=json&maxDataPoints=300";
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|(line, body)| *line == format!("GET /graphite/render?{form} HTTP/1.1") && body.is_empty()));
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}') && json.lines().count() == 1, "{json}");
    for field in [
        r#""protocol":"render""#.to_owned(),
        r#""method":"GET""#.to_owned(),
        r#""path":"/graphite/render""#.to_owned(),
        format!(r#""form":"{form}""#),
        r#""requests_planned":3"#.to_owned(),
        r#""stop":"all_sent""#.to_owned(),
        r#""responses":3"#.to_owned(),
        r#""responses_200":3"#.to_owned(),
        r#""status_counts":{"200":3}"#.to_owned(),
        r#""failures":0"#.to_owned(),
        r#""latency_ms":{"count":3,"#.to_owned(),
        r#""problems":[]"#.to_owned(),
    ] {
        assert!(json.contains(&field), "{field} missing from {json}");
    }
}
