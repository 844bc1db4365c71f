//! The listener over real sockets on 127.0.0.1, with a fixed cache instead of the writers:
//! persistent connections, every refusal closing only its own connection and counted, the
//! connection bound, the timeouts and the shutdown.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cache::PointLists;
use crate::protocol::name::TagFileNames;
use crate::protocol::unpickle::{loads, UnpickleError, UnpickleLimits, Value};
use crate::render::format::pickle::{dumps, Value as Out};
use crate::render::store::Files;
use crate::telemetry::{names, Registry};

#[derive(Debug)]
struct Fixed(HashMap<Vec<u8>, Vec<(i64, f64)>>);

impl CachedPoints for Fixed {
    fn points_many(&self, names: &[Box<[u8]>]) -> Result<PointLists, CacheUnanswered> {
        Ok(names.iter().map(|n| self.0.get(&n[..]).cloned().unwrap_or_default()).collect())
    }
}

struct Fixture {
    link: Option<Carbonlink>,
    registry: Arc<Registry>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start(settings: Settings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cache = Fixed([(b"a.b".to_vec(), vec![(100, 1.5), (160, 2.5)])].into_iter().collect());
        let files = Files { data_dir: dir.path().to_path_buf(), tag_files: TagFileNames::Hashed };
        let handler = Handler::new(Box::new(cache), files, crate::whisper::WriteOptions::default(), false);
        let mut all = names::ALL.to_vec();
        all.extend(COUNTERS);
        let registry = Arc::new(Registry::new(&all));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let link = Carbonlink::start(listener, handler, Arc::clone(&registry), settings).unwrap();
        Fixture { link: Some(link), registry, _dir: dir }
    }

    fn addr(&self) -> SocketAddr {
        self.link.as_ref().unwrap().address()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    fn total(&self, name: &str) -> u64 {
        let (totals, _) = self.registry.snapshot();
        totals[self.registry.names().iter().position(|n| *n == name).unwrap()]
    }

    /// Waits (bounded) until counter `name` reaches `want`: a connection thread counts a
    /// refusal just before it closes, which the client may see first.
    fn wait_total(&self, name: &str, want: u64) {
        for _ in 0..3000 {
            if self.total(name) >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.total(name), want, "{name}");
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn request(entries: &[(&str, &str)]) -> Vec<u8> {
    let dict = Out::Dict(entries.iter().map(|(k, v)| (Out::Str((*k).into()), Out::Str((*v).into()))).collect());
    framed(&dumps(&dict))
}

/// One reply read from `s`, unpickled.
fn reply(s: &mut TcpStream) -> Value {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..2], b"\x80\x02", "replies are protocol 2");
    loads(&body, &UnpickleLimits::default()).unwrap()
}

/// Whether the server closed `s` (reads the end of the stream, or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn datapoints(points: &[(f64, f64)]) -> Value {
    let items = points.iter().map(|&(t, v)| Value::Tuple(vec![Value::Float(t), Value::Float(v)])).collect();
    Value::Dict(vec![(Value::Str("datapoints".into()), Value::List(items))])
}

/// CPython 3.11.2: `pickle.dumps({'type': 'cache-query', 'metric': 'a.b'}, protocol=5)`.
const PROTOCOL_5_QUERY: &str =
    "80059529000000000000007d94288c0474797065948c0b63616368652d7175657279948c066d6574726963948c03612e6294752e";

#[test]
fn many_requests_on_one_connection_strictly_alternating() {
    let fx = Fixture::start(Settings::default());
    let mut s = fx.connect();
    let p5: Vec<u8> = (0..PROTOCOL_5_QUERY.len() / 2)
        .map(|i| u8::from_str_radix(&PROTOCOL_5_QUERY[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let want = datapoints(&[(100.0, 1.5), (160.0, 2.5)]);
    for round in 0..50 {
        if round % 2 == 0 {
            s.write_all(&framed(&p5)).unwrap();
        } else {
            s.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
        }
        assert_eq!(reply(&mut s), want, "round {round}");
    }
    // Two requests written at once are answered in order.
    let mut two = request(&[("type", "cache-query"), ("metric", "nothing")]);
    two.extend(request(&[("type", "bogus")]));
    s.write_all(&two).unwrap();
    assert_eq!(reply(&mut s), datapoints(&[]));
    let error = reply(&mut s);
    assert_eq!(error.get("error").and_then(Value::as_str), Some("Invalid request type \"bogus\""));
    assert_eq!(fx.total("carbonlink.requests"), 52);
    assert_eq!(fx.total(names::CACHE_QUERIES), 51);
    assert_eq!(fx.total("carbonlink.errors"), 1);
    assert_eq!(fx.total("carbonlink.connections"), 1);
}

#[test]
fn each_bad_frame_closes_only_its_connection_and_is_counted() {
    let fx = Fixture::start(Settings { frame_bytes_max: 4096, ..Settings::default() });
    let mut good = fx.connect();
    good.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
    reply(&mut good);
    let bad: [(&str, Vec<u8>); 6] = [
        ("too_large", vec![0xff, 0xff, 0xff, 0xf0, b'x']),
        ("truncated", framed(b"\x80\x02}q\x00(")),
        ("forbidden_opcode", framed(b"cos\nsystem\n(S'id'\ntR.")),
        ("unsupported_opcode", framed(b"\x00garbage")),
        ("not_a_dict", framed(&dumps(&Out::List(vec![Out::Str("cache-query".into())])))),
        ("incomplete_frame", b"\x00\x00\x00\x10abc".to_vec()),
    ];
    for (reason, bytes) in &bad {
        let mut s = fx.connect();
        s.write_all(bytes).unwrap();
        if *reason == "incomplete_frame" {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(closed(&mut s), "{reason}: closed");
        fx.wait_total(&format!("carbonlink.rejected.{reason}"), 1);
        // The first connection goes on.
        good.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
        assert_eq!(reply(&mut good), datapoints(&[(100.0, 1.5), (160.0, 2.5)]), "after {reason}");
    }
}

#[test]
fn every_unpickle_refusal_has_a_counter() {
    for reason in UnpickleError::REASONS {
        assert!(rejected_counter(reason).is_some(), "{reason}");
    }
    for reason in ["too_large", "read_timeout", "incomplete_frame", "not_a_dict"] {
        assert!(rejected_counter(reason).is_some(), "{reason}");
    }
}

#[test]
fn a_frame_too_slow_to_arrive_is_refused_and_an_idle_connection_closed() {
    let settings = Settings {
        frame_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(2),
        ..Settings::default()
    };
    let fx = Fixture::start(settings);
    let mut slow = fx.connect();
    slow.write_all(b"\x00\x00").unwrap();
    assert!(closed(&mut slow));
    fx.wait_total("carbonlink.rejected.read_timeout", 1);
    let mut idle = fx.connect();
    idle.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
    reply(&mut idle);
    assert!(closed(&mut idle), "closed once idle");
    assert_eq!(fx.total("carbonlink.rejected.read_timeout"), 1, "idleness is no refusal");
}

#[test]
fn connections_beyond_the_bound_are_closed_at_once() {
    let fx = Fixture::start(Settings { connections_max: 2, ..Settings::default() });
    let mut first = fx.connect();
    let mut second = fx.connect();
    for s in [&mut first, &mut second] {
        s.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
        reply(s);
    }
    let mut third = fx.connect();
    assert!(closed(&mut third));
    fx.wait_total("carbonlink.connectionsRefused", 1);
    // A slot freed is used again.
    drop(first);
    let mut again = None;
    for _ in 0..300 {
        let mut s = fx.connect();
        s.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_ok() {
            again = Some(len);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(again.is_some(), "a new connection is served once one closed");
    second.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
    reply(&mut second);
}

#[test]
fn shutdown_closes_open_connections_and_joins_their_threads() {
    let mut fx = Fixture::start(Settings::default());
    let mut idle = fx.connect();
    idle.write_all(&request(&[("type", "cache-query"), ("metric", "a.b")])).unwrap();
    reply(&mut idle);
    let mut partial = fx.connect();
    partial.write_all(b"\x00\x00\x00\x10ab").unwrap();
    let addr = fx.addr();
    fx.link.take().unwrap().shutdown();
    assert!(closed(&mut idle));
    assert!(closed(&mut partial));
    assert_eq!(fx.total("carbonlink.rejected.incomplete_frame"), 0, "our own stop is no refusal");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}
