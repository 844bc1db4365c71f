//! The appliance as operators run it: `carbyne serve` on 127.0.0.1 with ephemeral ports, a temp
//! data directory and a carbon.conf; points sent over TCP, UDP and pickle; files read back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carbyne::whisper::Whisper;

pub(crate) struct Appliance {
    pub(crate) child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) line: SocketAddr,
    pub(crate) pickle: SocketAddr,
    udp: Option<SocketAddr>,
    pub(crate) statsd_udp: Option<SocketAddr>,
    statsd_tcp: Option<SocketAddr>,
    statsd_admin: Option<SocketAddr>,
    pub(crate) http: Option<SocketAddr>,
    carbonlink: Option<SocketAddr>,
    output: std::sync::mpsc::Receiver<String>,
}

const SCHEMAS: &str =
    "[carbon]\npattern = ^carbon\\.\nretentions = 1s:10m\n\n[all]\npattern = .*\nretentions = 1s:1h,1m:1d\n";

impl Appliance {
    /// Starts the binary with `[cache]` settings `extra` added to the test's carbon.conf; after
    /// a `[statsd]` line, `extra` is that section's.
    pub(crate) fn start(extra: &str) -> Appliance {
        let (extra, statsd) = extra.split_once("[statsd]\n").unwrap_or((extra, ""));
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("whisper").display().to_string();
        let mut keys: Vec<(String, String)> = [
            ("LOCAL_DATA_DIR", data.as_str()),
            ("LINE_RECEIVER_INTERFACE", "127.0.0.1"),
            ("PICKLE_RECEIVER_INTERFACE", "127.0.0.1"),
            ("UDP_RECEIVER_INTERFACE", "127.0.0.1"),
            ("ENABLE_UDP_LISTENER", "True"),
            ("MAX_UPDATES_PER_SECOND", "inf"),
            ("MAX_CREATES_PER_MINUTE", "inf"),
            ("CARBON_METRIC_INTERVAL", "1"),
            ("UDP_RECEIVE_BUFFER", "8388608"),
            ("STATSD_INTERFACE", "127.0.0.1"),
            ("HTTP_INTERFACE", "127.0.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // The test's own settings replace the defaults (a key twice is an error, as in carbon).
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            keys.retain(|(key, _)| key != k.trim());
            keys.push((k.trim().to_string(), v.trim().to_string()));
        }
        let body: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(dir.path().join("carbon.conf"), format!("[cache]\n{body}\n[statsd]\n{statsd}")).unwrap();
        std::fs::write(dir.path().join("storage-schemas.conf"), SCHEMAS).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_carbyne"))
            .args(["serve", "--ephemeral-ports", "--ingest-threads", "2", "--writer-threads", "2", "--config"])
            .arg(dir.path().join("carbon.conf"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, output) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let listening = loop {
            let line = output.recv_timeout(Duration::from_secs(30)).expect("carbyne printed its addresses");
            if line.contains("listening") {
                break line;
            }
        };
        let addr = |key: &str| {
            let v = listening.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap();
            (v != "off").then(|| v.parse::<SocketAddr>().unwrap())
        };
        Appliance {
            line: addr("plaintext-tcp=").unwrap(),
            pickle: addr("pickle-tcp=").unwrap(),
            udp: addr("plaintext-udp="),
            statsd_udp: addr("statsd-udp="),
            statsd_tcp: addr("statsd-tcp="),
            statsd_admin: addr("statsd-admin="),
            http: addr("http="),
            carbonlink: addr("carbonlink="),
            child,
            dir,
            output,
        }
    }

    /// Starts the binary as [`Appliance::start`] does, but on the pre-populated data directory
    /// `data` (its LOCAL_DATA_DIR) instead of an empty one in the temp dir. [`Appliance::data`]
    /// still names the temp dir's, unused, directory.
    pub(crate) fn start_on(data: &Path, extra: &str) -> Appliance {
        Appliance::start(&format!("LOCAL_DATA_DIR = {}\n{extra}", data.display()))
    }

    /// Where carbonlink listens, as a client connects to it (0.0.0.0, the default interface,
    /// as 127.0.0.1). Panics when CACHE_QUERY_PORT = 0 turned it off.
    pub(crate) fn carbonlink(&self) -> SocketAddr {
        let mut addr = self.carbonlink.expect("carbonlink listens (CACHE_QUERY_PORT is not 0)");
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("whisper")
    }

    /// The pickle receiver's address.
    pub(crate) fn pickle_addr(&self) -> SocketAddr {
        self.pickle
    }

    /// The plaintext UDP receiver's address (every test's carbon.conf turns it on).
    pub(crate) fn udp_addr(&self) -> SocketAddr {
        self.udp.expect("ENABLE_UDP_LISTENER is on in the test's carbon.conf")
    }

    /// The statsd UDP address, when statsd is on (the default).
    pub(crate) fn statsd_udp_addr(&self) -> Option<SocketAddr> {
        self.statsd_udp
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub(crate) fn stop(&mut self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "carbyne exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "carbyne did not stop within 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The process has exited; its last lines may still be on their way through the reader
        // thread: read until that thread sees the end of the output (bounded).
        let mut said = Vec::new();
        while let Ok(line) = self.output.recv_timeout(Duration::from_secs(10)) {
            said.push(line);
        }
        assert!(said.iter().any(|l| l.contains("stopped")), "{said:?}");
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `payload` on one connection, half-closes, and waits until the server closes: then
/// everything sent was read.
pub(crate) fn send_tcp(addr: SocketAddr, payload: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(payload).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
}

pub(crate) fn pickle_frame(points: &[(&str, i64, f64)]) -> Vec<u8> {
    // Protocol 2: PROTO 2, EMPTY_LIST, MARK, then per point (name, (ts, value)) as tuples, APPENDS, STOP.
    let mut p = vec![0x80, 2, b']', b'('];
    for (name, ts, value) in points {
        p.push(b'X');
        p.extend_from_slice(&(name.len() as u32).to_le_bytes());
        p.extend_from_slice(name.as_bytes());
        p.push(b'J');
        p.extend_from_slice(&(*ts as i32).to_le_bytes());
        p.push(b'G');
        p.extend_from_slice(&value.to_be_bytes());
        p.extend_from_slice(&[0x86, 0x86]); // TUPLE2 (ts, value), TUPLE2 (name, datapoint)
    }
    p.extend_from_slice(b"e.");
    let mut framed = (p.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&p);
    framed
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Known (timestamp, value) points of the metric `name` over the last hour at 1 s (and the next
/// seconds: statsd stamps a flush with the nearest second, which may be the next one).
fn points_of(data: &Path, name: &str) -> Vec<(i64, f64)> {
    let path = data.join(format!("{}.wsp", name.replace('.', "/")));
    let Ok(mut w) = Whisper::open_read_only(&path) else { return Vec::new() };
    let n = now() + 5;
    let r = w.fetch(n - 3500, Some(n), n, None).unwrap().unwrap();
    r.points().filter_map(|(t, v)| Some((t, v?))).collect()
}

fn tcp_udp_and_pickle_points_land_in_whisper_files(backend: &str) {
    let mut app = Appliance::start(&format!("IO_BACKEND = {backend}\n"));
    let t = now() - 100;
    send_tcp(app.line, format!("tcp.a 1.5 {t}\r\ntcp.b -2 {}\ntcp.a 3.25 {}\n", t + 1, t + 2).as_bytes());
    send_tcp(app.pickle, &pickle_frame(&[("pickled.x", t, 7.5), ("pickled.y", t + 5, -0.125)]));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(format!("udp.m 42 {t}\nudp.n 43 {t}").as_bytes(), app.udp.unwrap()).unwrap();
    app.stop();
    let data = app.data();
    assert_eq!(points_of(&data, "tcp.a"), vec![(t, 1.5), (t + 2, 3.25)]);
    assert_eq!(points_of(&data, "tcp.b"), vec![(t + 1, -2.0)]);
    assert_eq!(points_of(&data, "pickled.x"), vec![(t, 7.5)]);
    assert_eq!(points_of(&data, "pickled.y"), vec![(t + 5, -0.125)]);
    assert_eq!(points_of(&data, "udp.m"), vec![(t, 42.0)]);
    assert_eq!(points_of(&data, "udp.n"), vec![(t, 43.0)], "a datagram's last line needs no newline");
}

fn lines_split_at_every_offset_across_reads_arrive_whole(backend: &str) {
    let mut app = Appliance::start(&format!("IO_BACKEND = {backend}\n"));
    let t = now() - 60;
    let payload = format!("split.one 1 {t}\nsplit.two 2 {t}\nsplit.three 3 {}\n", t + 1);
    for k in 0..=payload.len() {
        let mut s = TcpStream::connect(app.line).unwrap();
        s.set_nodelay(true).unwrap();
        let (a, b) = payload.as_bytes().split_at(k);
        s.write_all(a).unwrap();
        // Give the server a chance to read the first part on its own.
        std::thread::sleep(Duration::from_millis(2));
        s.write_all(b).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    }
    app.stop();
    let data = app.data();
    assert_eq!(points_of(&data, "split.one"), vec![(t, 1.0)]);
    assert_eq!(points_of(&data, "split.two"), vec![(t, 2.0)]);
    assert_eq!(points_of(&data, "split.three"), vec![(t + 1, 3.0)]);
}

fn garbage_overlong_lines_bad_frames_and_escaping_names_cost_only_themselves(backend: &str) {
    let mut app = Appliance::start(&format!("{}IO_BACKEND = {backend}\n", "MAX_LINE_LENGTH = 256\n"));
    let t = now() - 30;
    let long = "x".repeat(5000);
    let mut payload = format!("good.one 1 {t}\n");
    for bad in [
        "garbage",
        "a b c d",
        "nan.value nan 1700000000",
        "../escape 1 1700000000",
        "/abs/path 1 1700000000",
        "a..b 1 1700000000",
        "dot.. 1 1700000000",
        "\u{0}nul 1 1700000000",
    ] {
        payload.push_str(bad);
        payload.push('\n');
    }
    payload.push_str(&format!("{long} 1 {t}\ngood.two 2 {t}\n"));
    send_tcp(app.line, payload.as_bytes());
    let mut frames = pickle_frame(&[("pickle.before", t, 1.0)]);
    frames.extend_from_slice(&[0, 0, 0, 5, b'c', b'o', b's', b'\n', b'.']); // GLOBAL: refused
    frames.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // oversize frame: skipped unread...
    send_tcp(app.pickle, &frames);
    send_tcp(app.pickle, &pickle_frame(&[("pickle.after", t, 2.0)]));
    // Let the self-metrics (every second) count the rejections.
    std::thread::sleep(Duration::from_millis(2500));
    app.stop();
    let data = app.data();
    assert_eq!(points_of(&data, "good.one"), vec![(t, 1.0)]);
    assert_eq!(points_of(&data, "good.two"), vec![(t, 2.0)]);
    assert_eq!(points_of(&data, "pickle.before"), vec![(t, 1.0)]);
    assert_eq!(points_of(&data, "pickle.after"), vec![(t, 2.0)]);
    let mut files = Vec::new();
    collect_files(app.dir.path(), &mut files);
    assert!(files.iter().all(|f| f.starts_with(app.dir.path())), "nothing outside the temp dir");
    let stored = |suffix: &str| files.iter().any(|f| f.to_string_lossy().ends_with(suffix));
    assert!(!stored("escape.wsp") && !stored("nan/value.wsp") && !stored("path.wsp") && !stored("nul.wsp"));
    let total = |metric: &str| agent_total(&data, metric);
    let field_count = total("rejected.field_count");
    assert!(field_count >= 2.0, "garbage lines are counted: {field_count}");
    assert!(total("rejected.line_too_long") >= 1.0, "over-long lines are counted");
    assert!(total("rejected.nan_value") >= 1.0);
    assert!(total("rejected.bad_name") >= 4.0, "escaping names are counted");
    assert!(total("rejected.pickle_unsupported_opcode") >= 1.0);
    assert!(total("metricsReceived") >= 6.0);
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `n_metrics` × `per_metric` points as plaintext lines, values encoding (metric, point).
fn workload(prefix: &str, n_metrics: usize, per_metric: usize, t0: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for p in 0..per_metric {
        for m in 0..n_metrics {
            out.extend_from_slice(format!("{prefix}.m{m} {} {}\n", m * 1000 + p, t0 + p as i64).as_bytes());
        }
    }
    out
}

fn assert_workload(data: &Path, prefix: &str, n_metrics: usize, per_metric: usize, t0: i64) {
    for m in 0..n_metrics {
        let got = points_of(data, &format!("{prefix}.m{m}"));
        let want: Vec<(i64, f64)> = (0..per_metric).map(|p| (t0 + p as i64, (m * 1000 + p) as f64)).collect();
        assert_eq!(got, want, "{prefix}.m{m}");
    }
}

/// The sum of every point of the self-metric `carbon.agents.<host>-<instance>.<metric>`.
fn agent_total(data: &Path, metric: &str) -> f64 {
    let host = std::fs::read_dir(data.join("carbon/agents")).unwrap().next().unwrap().unwrap().file_name();
    points_of(data, &format!("carbon.agents.{}.{metric}", host.to_string_lossy())).iter().map(|p| p.1).sum()
}

/// UDP has no back-pressure: a burst may overflow the socket's receive buffer in the kernel.
/// The contract is that nothing is lost silently: every point of the workload landed with its
/// value, or its datagram is counted in `udpKernelDrops` (a writer behind for a moment makes
/// the receivers wait, not drop: the cache has no MAX_CACHE_SIZE here).
fn assert_udp_workload_or_counted_drops(data: &Path, prefix: &str, n_metrics: usize, per_metric: usize, t0: i64) {
    let mut landed = 0;
    for m in 0..n_metrics {
        let got = points_of(data, &format!("{prefix}.m{m}"));
        for &(ts, value) in &got {
            let p = ts - t0;
            assert!((0..per_metric as i64).contains(&p), "{prefix}.m{m}: a point at {ts} was never sent");
            assert_eq!(value, (m * 1000) as f64 + p as f64, "{prefix}.m{m} at {ts}");
        }
        landed += got.len();
    }
    let missing = (n_metrics * per_metric - landed) as f64;
    let drops = agent_total(data, "udpKernelDrops");
    assert_eq!(agent_total(data, "cache.overflow"), 0.0);
    assert_eq!(missing, drops * UDP_LINES_PER_DATAGRAM as f64, "missing UDP points are exactly the dropped datagrams'");
}

const UDP_LINES_PER_DATAGRAM: usize = 50;

fn many_concurrent_connections_all_land(backend: &str) {
    let mut app = Appliance::start(&format!("IO_BACKEND = {backend}\n"));
    let t0 = now() - 600;
    let senders: Vec<_> = (0..40)
        .map(|c| {
            let (addr, payload) = (app.line, workload(&format!("conn{c}"), 5, 20, t0));
            std::thread::spawn(move || send_tcp(addr, &payload))
        })
        .collect();
    senders.into_iter().for_each(|h| h.join().unwrap());
    app.stop();
    for c in 0..40 {
        assert_workload(&app.data(), &format!("conn{c}"), 5, 20, t0);
    }
}

/// Four connections open at once on two ingest threads: whichever sockets the kernel puts them
/// on, each thread serves two (each thread's `ingest<k>.metricsReceived` counts its own).
fn connections_are_spread_evenly_over_the_ingest_threads(backend: &str) {
    let mut app = Appliance::start(&format!("IO_BACKEND = {backend}\n"));
    let t0 = now() - 600;
    let mut conns: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(app.line).unwrap()).collect();
    for (c, conn) in conns.iter_mut().enumerate() {
        conn.write_all(&workload(&format!("spread{c}"), 10, 100, t0)).unwrap();
    }
    // Every connection open until every one was accepted and read from (its metrics have
    // files): no close may change the counts before the last placement.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(0..4).all(|c| app.data().join(format!("spread{c}")).exists()) {
        assert!(Instant::now() < deadline, "not every connection was read within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    for conn in &conns {
        conn.shutdown(std::net::Shutdown::Write).unwrap();
    }
    for mut conn in conns {
        conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        conn.read_to_end(&mut Vec::new()).unwrap();
    }
    app.stop();
    for c in 0..4 {
        assert_workload(&app.data(), &format!("spread{c}"), 10, 100, t0);
    }
    let data = app.data();
    assert_eq!(
        (agent_total(&data, "ingest0.metricsReceived"), agent_total(&data, "ingest1.metricsReceived")),
        (2000.0, 2000.0)
    );
}

fn sigterm_right_after_sending_loses_nothing(backend: &str) {
    let mut app = Appliance::start(&format!("IO_BACKEND = {backend}\n"));
    let t0 = now() - 3000;
    // 100k points: 60k over TCP, 20k over UDP (50 lines a datagram), 20k pickled.
    send_tcp(app.line, &workload("term.tcp", 200, 300, t0));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let lines = workload("term.udp", 100, 200, t0);
    let lines: Vec<&[u8]> = lines.split_inclusive(|b| *b == b'\n').collect();
    for chunk in lines.chunks(UDP_LINES_PER_DATAGRAM) {
        udp.send_to(&chunk.concat(), app.udp.unwrap()).unwrap();
    }
    let mut frames = Vec::new();
    for m in 0..100 {
        let names: Vec<String> = (0..200).map(|_| format!("term.pickle.m{m}")).collect();
        let points: Vec<(&str, i64, f64)> =
            names.iter().enumerate().map(|(p, n)| (n.as_str(), t0 + p as i64, (m * 1000 + p) as f64)).collect();
        frames.extend(pickle_frame(&points));
    }
    send_tcp(app.pickle, &frames);
    app.stop();
    let data = app.data();
    assert_workload(&data, "term.tcp", 200, 300, t0);
    assert_udp_workload_or_counted_drops(&data, "term.udp", 100, 200, t0);
    assert_workload(&data, "term.pickle", 100, 200, t0);
}

fn flow_control_with_a_tiny_cache_and_a_slow_writer_loses_nothing(backend: &str) {
    let mut app = Appliance::start(&format!(
        "{}IO_BACKEND = {backend}\n",
        "MAX_CACHE_SIZE = 2000\nUSE_FLOW_CONTROL = True\nMAX_UPDATES_PER_SECOND = 400\n"
    ));
    let t0 = now() - 3000;
    send_tcp(app.line, &workload("flow", 100, 300, t0));
    app.stop();
    assert_workload(&app.data(), "flow", 100, 300, t0);
}

fn statsd_packets_become_etsy_named_points_in_whisper(backend: &str) {
    // One flush only, at stop: every value is exact.
    let mut app = Appliance::start(&format!(
        "IO_BACKEND = {backend}\nENABLE_STATSD_TCP = True\n[statsd]\nflushInterval = 3600000\npercentThreshold = 50\n"
    ));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let statsd = app.statsd_udp.expect("statsd listens by default");
    for i in 0..100 {
        udp.send_to(format!("hits:1|c\nlat:{i}|ms\nusers:u{}|s", i % 7).as_bytes(), statsd).unwrap();
    }
    udp.send_to(b"temp:20|g\ntemp:+2.5|g\nsampled:1|c|@0.1\nbad line\nmulti:1|c:3|ms", statsd).unwrap();
    send_tcp(app.statsd_tcp.expect("ENABLE_STATSD_TCP"), b"hits:900|c\nbytes rx/s:4|c\n");
    app.stop();
    let data = app.data();
    let last = |name: &str| points_of(&data, name).last().map(|p| p.1);
    assert_eq!(last("stats_counts.hits"), Some(1000.0));
    assert_eq!(last("stats.hits"), Some(1000.0 / 3600.0));
    assert_eq!(last("stats.timers.lat.count"), Some(100.0));
    assert_eq!(last("stats.timers.lat.upper"), Some(99.0));
    assert_eq!(last("stats.timers.lat.mean"), Some(49.5));
    assert_eq!(last("stats.timers.lat.upper_50"), Some(49.0));
    assert_eq!(last("stats.sets.users.count"), Some(7.0));
    assert_eq!(last("stats.gauges.temp"), Some(22.5));
    assert_eq!(last("stats_counts.sampled"), Some(10.0));
    assert_eq!(last("stats_counts.multi"), Some(1.0));
    assert_eq!(last("stats.timers.multi.upper"), Some(3.0));
    assert_eq!(last("stats_counts.bytes_rx-s"), Some(4.0), "keys are sanitised as etsy does");
    assert_eq!(last("stats_counts.statsd.bad_lines_seen"), Some(1.0));
    assert_eq!(last("stats_counts.statsd.packets_received"), Some(102.0));
    assert_eq!(last("stats_counts.statsd.metrics_received"), Some(300.0 + 5.0 + 2.0));
    assert_eq!(last("statsd.numStats"), Some(11.0));
}

#[test]
fn statsd_packets_become_etsy_named_points_in_whisper_on_io_uring() {
    statsd_packets_become_etsy_named_points_in_whisper("io_uring");
}

#[test]
fn statsd_packets_become_etsy_named_points_in_whisper_on_epoll() {
    statsd_packets_become_etsy_named_points_in_whisper("epoll");
}

/// Sends admin commands on one connection and returns everything read until the server closes
/// (after `quit`).
fn admin_session(addr: SocketAddr, commands: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(commands.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn statsd_admin_sees_what_the_ingest_threads_hold_and_deletes() {
    let mut app = Appliance::start("[statsd]\nflushInterval = 3600000\n");
    let admin = app.statsd_admin.expect("the admin interface is on by default");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"jobs.done:3|c\njobs.failed:1|c\nqueue:12|g\nlat:5|ms", app.statsd_udp.unwrap()).unwrap();
    // The datagram is in a socket buffer or an ingest thread's partial: `counters` collects them.
    let mut out = String::new();
    for _ in 0..100 {
        out = admin_session(admin, "counters\ngauges\nquit\n");
        if out.contains("'jobs.done': 3") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(out.contains("'jobs.done': 3") && out.contains("'jobs.failed': 1"), "{out}");
    assert!(out.contains("queue: 12") && out.matches("END\n\n").count() == 2, "{out}");
    let out = admin_session(admin, "health down\nhealth\ndelcounters jobs.*\nnonsense\nquit\n");
    assert_eq!(
        out, "health: down\nhealth: down\ndeleted: jobs.done\ndeleted: jobs.failed\nEND\n\nERROR\n",
        "as etsy answers"
    );
    app.stop();
    let data = app.data();
    assert!(points_of(&data, "stats_counts.jobs.done").is_empty(), "deleted before the flush");
    assert_eq!(points_of(&data, "stats.timers.lat.upper").last().map(|p| p.1), Some(5.0));
    assert_eq!(points_of(&data, "stats.gauges.queue").last().map(|p| p.1), Some(12.0));
}

#[test]
fn a_self_metric_interval_of_zero_turns_self_metrics_off() {
    let mut app = Appliance::start("CARBON_METRIC_INTERVAL = 0\n");
    send_tcp(app.line, format!("some.metric 1 {}\n", now() - 10).as_bytes());
    app.stop();
    assert_eq!(points_of(&app.data(), "some.metric").len(), 1);
    assert!(!app.data().join("carbon").exists(), "no carbon.agents.* files");
}

#[test]
fn throttled_creates_keep_their_points_until_created() {
    let mut app = Appliance::start("MAX_CREATES_PER_MINUTE = 600\n");
    let t0 = now() - 600;
    // 620 new metrics: 600 are created at once (the bucket's burst), 20 wait for tokens (10 a second).
    send_tcp(app.line, &workload("create", 620, 2, t0));
    app.stop();
    assert_workload(&app.data(), "create", 620, 2, t0);
}

#[test]
fn a_clean_stop_writes_points_younger_than_min_timestamp_lag() {
    // timesorted holds points younger than MIN_TIMESTAMP_LAG back; at stop, as carbon, no more.
    let mut app = Appliance::start("CACHE_WRITE_STRATEGY = timesorted\nMIN_TIMESTAMP_LAG = 3600\n");
    let t0 = now() - 60;
    send_tcp(app.line, &workload("lag", 20, 3, t0));
    app.stop();
    assert_workload(&app.data(), "lag", 20, 3, t0);
}

#[test]
fn whitelist_and_blacklist_refuse_and_count_as_carbon() {
    let lists = tempfile::tempdir().unwrap();
    std::fs::write(lists.path().join("whitelist.conf"), "# only these\n^keep\\.\n").unwrap();
    std::fs::write(lists.path().join("blacklist.conf"), "secret\n").unwrap();
    // Statsd's flushed points pass the lists too (as they would pass carbon's): off here, so
    // that only the lines below are counted.
    let extra = format!("USE_WHITELIST = True\nWHITELISTS_DIR = {}\nENABLE_STATSD = False\n", lists.path().display());
    let mut app = Appliance::start(&extra);
    let t = now() - 30;
    send_tcp(app.line, format!("keep.a 1 {t}\nkeep.secret.b 2 {t}\ndrop.c 3 {t}\n").as_bytes());
    std::thread::sleep(Duration::from_millis(2500));
    app.stop();
    let data = app.data();
    assert_eq!(points_of(&data, "keep.a"), vec![(t, 1.0)]);
    assert!(points_of(&data, "keep.secret.b").is_empty(), "blacklisted");
    assert!(points_of(&data, "drop.c").is_empty(), "not whitelisted");
    let total = |metric: &str| agent_total(&data, metric);
    assert_eq!(total("blacklistMatches"), 1.0);
    assert_eq!(total("whitelistRejects"), 1.0);
}

#[test]
fn connections_are_spread_evenly_over_the_ingest_threads_on_io_uring() {
    connections_are_spread_evenly_over_the_ingest_threads("io_uring");
}

#[test]
fn connections_are_spread_evenly_over_the_ingest_threads_on_epoll() {
    connections_are_spread_evenly_over_the_ingest_threads("epoll");
}

#[test]
fn tcp_udp_and_pickle_points_land_in_whisper_files_on_io_uring() {
    tcp_udp_and_pickle_points_land_in_whisper_files("io_uring");
}

#[test]
fn tcp_udp_and_pickle_points_land_in_whisper_files_on_epoll() {
    tcp_udp_and_pickle_points_land_in_whisper_files("epoll");
}

#[test]
fn lines_split_at_every_offset_across_reads_arrive_whole_on_io_uring() {
    lines_split_at_every_offset_across_reads_arrive_whole("io_uring");
}

#[test]
fn lines_split_at_every_offset_across_reads_arrive_whole_on_epoll() {
    lines_split_at_every_offset_across_reads_arrive_whole("epoll");
}

#[test]
fn garbage_overlong_lines_bad_frames_and_escaping_names_cost_only_themselves_on_io_uring() {
    garbage_overlong_lines_bad_frames_and_escaping_names_cost_only_themselves("io_uring");
}

#[test]
fn garbage_overlong_lines_bad_frames_and_escaping_names_cost_only_themselves_on_epoll() {
    garbage_overlong_lines_bad_frames_and_escaping_names_cost_only_themselves("epoll");
}

#[test]
fn many_concurrent_connections_all_land_on_io_uring() {
    many_concurrent_connections_all_land("io_uring");
}

#[test]
fn many_concurrent_connections_all_land_on_epoll() {
    many_concurrent_connections_all_land("epoll");
}

#[test]
fn sigterm_right_after_sending_loses_nothing_on_io_uring() {
    sigterm_right_after_sending_loses_nothing("io_uring");
}

#[test]
fn sigterm_right_after_sending_loses_nothing_on_epoll() {
    sigterm_right_after_sending_loses_nothing("epoll");
}

#[test]
fn flow_control_with_a_tiny_cache_and_a_slow_writer_loses_nothing_on_io_uring() {
    flow_control_with_a_tiny_cache_and_a_slow_writer_loses_nothing("io_uring");
}

#[test]
fn flow_control_with_a_tiny_cache_and_a_slow_writer_loses_nothing_on_epoll() {
    flow_control_with_a_tiny_cache_and_a_slow_writer_loses_nothing("epoll");
}

#[test]
fn sighup_reloads_the_storage_rules_for_new_metrics() {
    let mut app = Appliance::start("");
    let t = now() - 30;
    send_tcp(app.line, format!("before.reload 1 {t}\n").as_bytes());
    std::fs::write(app.dir.path().join("storage-schemas.conf"), "[all]\npattern = .*\nretentions = 5s:2h\n").unwrap();
    let status = Command::new("kill").args(["-HUP", &app.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The reload happens in the main loop within 50 ms; wait for it, then send a new metric.
    std::thread::sleep(Duration::from_millis(500));
    send_tcp(app.line, format!("after.reload 2 {t}\n").as_bytes());
    app.stop();
    let retention = |name: &str| {
        let h = carbyne::whisper::info(&app.data().join(format!("{}.wsp", name.replace('.', "/")))).unwrap();
        h.archives.iter().map(|a| (a.seconds_per_point, a.points)).collect::<Vec<_>>()
    };
    assert_eq!(retention("before.reload"), vec![(1, 3600), (60, 1440)]);
    assert_eq!(retention("after.reload"), vec![(5, 1440)]);
}

/// A stop signal right after "listening" must reach the handler and stop cleanly. (A stop signal
/// once could arrive before the handlers were installed and kill the process; that window was
/// microseconds wide and showed only under load, so this test exercises the path but cannot
/// catch that race reliably: the fix is the order in `cli/serve.rs`.)
#[test]
fn sigterm_the_moment_it_listens_still_stops_cleanly() {
    for _ in 0..5 {
        let mut app = Appliance::start("");
        app.stop();
    }
}
