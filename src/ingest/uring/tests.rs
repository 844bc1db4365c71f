//! The io_uring backend end to end: `run_uring` in a thread on real sockets (127.0.0.1, ports
//! the kernel picks), a test sink, the receivers' counters. Every run ends with the drain's own
//! assertions: no op in flight, every buffer back in its ring.
//!
//! This machine supports io_uring: if the probe fails here, the tests fail (loudly) rather than
//! skip.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{probe, run_uring};
use crate::ingest::{
    bind_tcp, bind_udp, receiver_counters, resolve, Limits, Listeners, PointCounters, PointSink, Refused, Shared,
    VecSink,
};
use crate::telemetry::{names, Registry};

type Point = (Vec<u8>, i64, f64);

/// A `VecSink` whose pause the test switches.
struct TestSink {
    inner: VecSink,
    pause: Arc<AtomicBool>,
}

impl PointSink for TestSink {
    fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> Result<(), Refused> {
        self.inner.push(name, timestamp, value)
    }

    fn flush(&mut self) {
        self.inner.flush();
    }

    fn paused(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }
}

/// One `run_uring` thread and its sockets.
struct Server {
    line: SocketAddr,
    pickle: SocketAddr,
    udp: SocketAddr,
    statsd_udp: SocketAddr,
    statsd_tcp: SocketAddr,
    shared: Shared,
    registry: Arc<Registry>,
    pause: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Point>, std::io::Result<()>)>,
    statsd: crate::statsd::Flusher,
}

impl Server {
    fn start(max_connections: Option<usize>) -> Server {
        if let Err(e) = probe() {
            panic!("io_uring must work on this machine, but the probe says: {e}");
        }
        let any = resolve("127.0.0.1", 0).unwrap();
        let (line, pickle, (udp, _)) =
            (bind_tcp(any).unwrap(), bind_tcp(any).unwrap(), bind_udp(any, 1 << 20).unwrap());
        let addrs = (line.local_addr().unwrap(), pickle.local_addr().unwrap(), udp.local_addr().unwrap());
        let (statsd_udp, _) = bind_udp(any, 1 << 20).unwrap();
        let statsd_tcp = bind_tcp(any).unwrap();
        let statsd_addrs = (statsd_udp.local_addr().unwrap(), statsd_tcp.local_addr().unwrap());
        let listeners = Listeners {
            line: Some(line),
            pickle: Some(pickle),
            udp: Some(udp),
            statsd_udp: Some(statsd_udp),
            statsd_tcp: Some(statsd_tcp),
        };
        let (statsd, mut cores) = crate::statsd::channels(Arc::new(crate::config::StatsdOptions::default()), 1);
        let core = cores.pop();
        let shared = Shared {
            stop: Arc::new(AtomicBool::new(false)),
            hard_stop: Arc::new(AtomicBool::new(false)),
            active_connections: Arc::new(AtomicUsize::new(0)),
            max_connections,
            filter: None,
            spread: None,
        };
        let mut all: Vec<&'static str> = names::ALL.to_vec();
        all.extend(receiver_counters());
        let registry = Arc::new(Registry::new(&all));
        let counters = PointCounters::new(&registry, "ingest0");
        let pause = Arc::new(AtomicBool::new(false));
        let mut sink = TestSink { inner: VecSink::default(), pause: Arc::clone(&pause) };
        let thread_shared = shared.clone();
        let thread = std::thread::spawn(move || {
            let result = run_uring(listeners, Limits::default(), thread_shared, &mut sink, counters, core);
            (sink.inner.points, result)
        });
        Server {
            line: addrs.0,
            pickle: addrs.1,
            udp: addrs.2,
            statsd_udp: statsd_addrs.0,
            statsd_tcp: statsd_addrs.1,
            shared,
            registry,
            pause,
            thread,
            statsd,
        }
    }

    fn counter(&self, name: &str) -> u64 {
        let idx = self.registry.names().iter().position(|n| *n == name).unwrap_or_else(|| panic!("no counter {name}"));
        self.registry.snapshot().0[idx]
    }

    fn active(&self) -> usize {
        self.shared.active_connections.load(Ordering::SeqCst)
    }

    /// Stops the thread (which drains) and returns the points, sorted.
    fn stop(self) -> (Vec<Point>, Arc<Registry>, usize) {
        let (mut points, registry, active) = self.stop_in_arrival_order();
        points.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (points, registry, active)
    }

    fn stop_in_arrival_order(self) -> (Vec<Point>, Arc<Registry>, usize) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let (points, result) = self.thread.join().expect("the ingest thread panicked");
        result.expect("run_uring failed");
        (points, self.registry, self.shared.active_connections.load(Ordering::SeqCst))
    }

    /// Stops, then flushes statsd once with what the thread handed over.
    fn stop_with_statsd(self) -> crate::statsd::Flush {
        self.shared.stop.store(true, Ordering::SeqCst);
        let (_, result) = self.thread.join().expect("the ingest thread panicked");
        result.expect("run_uring failed");
        let mut flushes = Vec::new();
        let stop = AtomicBool::new(true);
        self.statsd.run(
            &stop,
            None::<flume::Receiver<()>>,
            |_, _| {},
            |f, _| {
                flushes.push(f.clone());
                true
            },
        );
        flushes.pop().expect("a final flush")
    }
}

/// Waits until `cond` holds; the limit only keeps a broken build from hanging.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < give_up, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn lines(prefix: &str, n: usize) -> (Vec<u8>, Vec<Point>) {
    let mut text = Vec::new();
    let mut points = Vec::new();
    for i in 0..n {
        text.extend_from_slice(format!("{prefix}.m{i} {i} 1700000000\n").as_bytes());
        points.push((format!("{prefix}.m{i}").into_bytes(), 1_700_000_000, i as f64));
    }
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (text, points)
}

/// Half-closes and waits for the server's close: everything sent was read by then.
fn finish(mut stream: TcpStream) {
    stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the receiver never writes");
}

fn pickle_frame(points: &[(&str, i64, f64)]) -> Vec<u8> {
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

#[test]
fn the_probe_passes_on_this_machine() {
    if let Err(e) = probe() {
        panic!("io_uring must work on this machine, but the probe says: {e}");
    }
}

#[test]
fn lines_split_across_many_writes_land_exactly_once() {
    let server = Server::start(None);
    let (text, expected) = lines("split", 500);
    let mut stream = TcpStream::connect(server.line).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut at = 0;
    for size in (1..=7).cycle() {
        let end = (at + size).min(text.len());
        stream.write_all(&text[at..end]).unwrap();
        at = end;
        if at == text.len() {
            break;
        }
    }
    finish(stream);
    let (points, _, active) = server.stop();
    assert_eq!(points, expected);
    assert_eq!(active, 0);
}

#[test]
fn fifty_concurrent_connections_each_land_exactly_once() {
    let server = Server::start(None);
    let clients: Vec<_> = (0..50)
        .map(|k| {
            let addr = server.line;
            std::thread::spawn(move || {
                let (text, points) = lines(&format!("conc.c{k}"), 200);
                let mut stream = TcpStream::connect(addr).unwrap();
                for chunk in text.chunks(1000) {
                    stream.write_all(chunk).unwrap();
                }
                finish(stream);
                points
            })
        })
        .collect();
    let mut expected: Vec<Point> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (points, _, active) = server.stop();
    assert_eq!(points.len(), 50 * 200);
    assert_eq!(points, expected);
    assert_eq!(active, 0);
}

#[test]
fn fast_senders_outrunning_the_buffer_group_lose_nothing() {
    // 8 × 2 MiB at once: far more than the 64 × 64 KiB group, so receives run dry (ENOBUFS)
    // and are armed again while the loop decodes.
    let server = Server::start(None);
    let clients: Vec<_> = (0..8)
        .map(|k| {
            let addr = server.line;
            std::thread::spawn(move || {
                let (text, points) = lines(&format!("fast.c{k}"), 70_000);
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(&text).unwrap();
                finish(stream);
                points
            })
        })
        .collect();
    let mut expected: Vec<Point> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut points, _, _) = server.stop_in_arrival_order();
    // Each connection's points arrive in the order they were sent (values count up).
    for k in 0..8 {
        let prefix = format!("fast.c{k}.");
        let values: Vec<f64> = points.iter().filter(|p| p.0.starts_with(prefix.as_bytes())).map(|p| p.2).collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "connection {k} reordered");
    }
    points.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(points.len(), expected.len());
    assert!(points == expected, "points lost or duplicated");
}

#[test]
fn a_half_closing_client_sees_the_close_after_everything_was_read() {
    let server = Server::start(None);
    let (text, expected) = lines("half", 3000);
    let mut stream = TcpStream::connect(server.line).unwrap();
    stream.write_all(&text).unwrap();
    finish(stream);
    // The close came after the last line was decoded and counted.
    assert_eq!(server.counter(names::METRICS_RECEIVED), 3000);
    wait_until("the connection is released", || server.active() == 0);
    let (points, _, _) = server.stop();
    assert_eq!(points, expected);
}

#[test]
fn udp_datagrams_are_decoded_each_on_its_own() {
    let server = Server::start(None);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"u.a 1 1700000000\nu.b 2 1700000000", server.udp).unwrap();
    client.send_to(b"u.c 3 1700000000\n", server.udp).unwrap();
    // A line cut between two datagrams is two bad lines, never joined.
    client.send_to(b"u.d 4", server.udp).unwrap();
    client.send_to(b" 1700000000\n", server.udp).unwrap();
    let (points, registry, _) = server.stop();
    let names: Vec<&[u8]> = points.iter().map(|p| p.0.as_slice()).collect();
    assert_eq!(names, [&b"u.a"[..], b"u.b", b"u.c"]);
    assert_eq!(points.iter().map(|p| p.2).sum::<f64>(), 6.0);
    let (totals, _) = registry.snapshot();
    let rejected: u64 =
        registry.names().iter().zip(&totals).filter(|(n, _)| n.starts_with("rejected.")).map(|(_, v)| v).sum();
    assert_eq!(rejected, 2);
}

#[test]
fn a_pickle_frame_split_in_two_writes() {
    let server = Server::start(None);
    let frame = pickle_frame(&[("p.a", 1_700_000_000, 1.5), ("p.b", 1_700_000_001, 2.5)]);
    let mut stream = TcpStream::connect(server.pickle).unwrap();
    stream.set_nodelay(true).unwrap();
    let (head, tail) = frame.split_at(7);
    stream.write_all(head).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    stream.write_all(tail).unwrap();
    finish(stream);
    let (points, _, _) = server.stop();
    assert_eq!(points, [(b"p.a".to_vec(), 1_700_000_000, 1.5), (b"p.b".to_vec(), 1_700_000_001, 2.5)]);
}

#[test]
fn garbage_lines_are_counted_and_cost_only_themselves() {
    let server = Server::start(None);
    let mut stream = TcpStream::connect(server.line).unwrap();
    stream.write_all(b"garbage\ng.a notanumber 1700000000\ng.b 7 1700000000\ng.c 1 1700").unwrap();
    finish(stream);
    let fields = server.counter("rejected.field_count");
    let values = server.counter("rejected.bad_value");
    let (points, _, _) = server.stop();
    assert_eq!(points, [(b"g.b".to_vec(), 1_700_000_000, 7.0)]);
    assert_eq!((fields, values), (1, 1));
}

#[test]
fn stop_drains_what_was_sent_just_before_it() {
    let server = Server::start(None);
    let mut stream = TcpStream::connect(server.line).unwrap();
    wait_until("the connection is accepted", || server.active() == 1);
    // Small enough to sit whole in the receiver's socket buffer once written.
    let (text, mut expected) = lines("drain", 400);
    stream.write_all(&text).unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"drain.udp 1 1700000000\n", server.udp).unwrap();
    let (points, _, active) = server.stop();
    expected.push((b"drain.udp".to_vec(), 1_700_000_000, 1.0));
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(points, expected);
    assert_eq!(active, 0);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the drain closed the connection");
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let server = Server::start(Some(1));
    let mut first = TcpStream::connect(server.line).unwrap();
    wait_until("the first connection is accepted", || server.active() == 1);
    let mut second = TcpStream::connect(server.line).unwrap();
    // Closed by the server at once: an end of stream, or a reset if our bytes raced the close.
    let _ = second.write_all(b"refused.a 1 1700000000\n");
    let mut rest = Vec::new();
    let _ = second.read_to_end(&mut rest);
    assert_eq!(server.counter("connectionsRefused"), 1);
    first.write_all(b"kept.a 1 1700000000\n").unwrap();
    finish(first);
    let (points, _, active) = server.stop();
    assert_eq!(points, [(b"kept.a".to_vec(), 1_700_000_000, 1.0)]);
    assert_eq!(active, 0);
}

#[test]
fn while_paused_nothing_is_decoded_and_the_sender_is_pushed_back() {
    let server = Server::start(None);
    server.pause.store(true, Ordering::SeqCst);
    let mut stream = TcpStream::connect(server.line).unwrap();
    wait_until("the connection is accepted", || server.active() == 1);
    let line = b"bp.metric 1 1700000000\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(line.len() * 2000).collect();
    // Write until the socket takes nothing for a while: the held buffers (2 MiB), then the
    // receive and send buffers, are full and the window is closed. (How long "a while" is only
    // decides when to stop writing; nothing below depends on it.)
    stream.set_nonblocking(true).unwrap();
    let mut written = 0usize;
    let mut refusals = 0;
    while refusals < 100 {
        let at = written % chunk.len();
        #[allow(clippy::disallowed_methods, reason = "a short write is what this loop counts")]
        match stream.write(&chunk[at..]) {
            Ok(n) => (written, refusals) = (written + n, 0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                refusals += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write failed: {e}"),
        }
        assert!(written < 1 << 30, "1 GiB written and the sender was never pushed back");
    }
    // Nothing was decoded while paused.
    assert_eq!(server.counter(names::METRICS_RECEIVED), 0);
    assert_eq!(server.counter(names::FLOW_CONTROL_PAUSES), 1);
    server.pause.store(false, Ordering::SeqCst);
    stream.set_nonblocking(false).unwrap();
    let at = written % chunk.len();
    if at != 0 {
        stream.write_all(&chunk[at..]).unwrap();
        written += chunk.len() - at;
    }
    finish(stream);
    let (points, _, _) = server.stop();
    assert_eq!(points.len(), written / line.len());
    assert!(points.iter().all(|p| p.0 == b"bp.metric"));
}

#[test]
fn statsd_datagrams_and_tcp_lines_reach_the_partial_even_at_the_drain() {
    let server = Server::start(None);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50 {
        udp.send_to(b"hits:1|c\nlat:5|ms", server.statsd_udp).unwrap();
    }
    let mut tcp = std::net::TcpStream::connect(server.statsd_tcp).unwrap();
    tcp.write_all(b"hits:10|c\ngauge:7|g\nsplit:").unwrap();
    tcp.write_all(b"2|c\nunterminated:1|c").unwrap();
    tcp.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = tcp.read_to_end(&mut rest);
    // Sent, not awaited: the drain at stop reads what the kernel holds.
    let flush = server.stop_with_statsd();
    let value = |name: &str| flush.points.iter().find(|(n, _)| n == name).map(|p| p.1);
    assert_eq!(value("stats_counts.hits"), Some(60.0));
    assert_eq!(value("stats.timers.lat.count"), Some(50.0));
    assert_eq!(value("stats.gauges.gauge"), Some(7.0));
    assert_eq!(value("stats_counts.split"), Some(2.0), "a line split across reads is whole");
    assert_eq!(
        value("stats_counts.unterminated"),
        None,
        "an unterminated last line is dropped, as etsy's TCP server does"
    );
    assert_eq!(value("stats_counts.statsd.metrics_received"), Some(100.0 + 3.0));
}
