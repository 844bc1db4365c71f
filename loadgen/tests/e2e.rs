//! End to end: the sender against a tiny carbon-like server on 127.0.0.1:0, in-process and through
//! the built binary. The server reads each connection to EOF, keeps the bytes, then closes (which
//! is what the sender's "accepted" waits for). Every check is on counts and contents, none on time.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use carbyne_loadgen::name::DEFAULT_PATTERN;
use carbyne_loadgen::report::Stop;
use carbyne_loadgen::sender::{SendConfig, BATCH_BYTES};
use carbyne_loadgen::{plaintext, NamePattern, Report, RunConfig, Workload, WorkloadSpec};

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
    let spec = WorkloadSpec { n_metrics, n_points, start_ts: 1_600_000_000, interval_s: 10, seed: 42 };
    Workload::new(names, spec).unwrap()
}

fn config(n_connections: usize, rate_per_s: Option<f64>, deadline: Option<Duration>) -> RunConfig {
    RunConfig {
        n_connections,
        send: SendConfig { batch_bytes: BATCH_BYTES, rate_per_s, deadline, accept_timeout: Duration::from_secs(30) },
        quiet: true,
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
fn binary_refuses_a_bad_pattern() {
    let output = Command::new(env!("CARGO_BIN_EXE_carbyne-loadgen"))
        .args(["plaintext", "--target=127.0.0.1:9", "--name-pattern={prefix}.{h}", "--quiet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--name-pattern") && stderr.contains("{h} and {m}"), "{stderr}");
}
