//! The Graphite HTTP API of the real binary, with the requests Grafana's Graphite data source
//! sends, byte for byte where it matters (a raw, unencoded `/metrics/find` body; targets wrapped
//! in aliasSub as Grafana ≥ 11.6 wraps them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::server::{now, send_tcp, Appliance};

/// One HTTP/1.1 exchange on a fresh connection: (status, headers, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

/// The body of a chunked HTTP/1.1 response.
pub(crate) fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let len = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if len == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + len]);
        b = &b[line_end + 4 + len..];
    }
}

pub(crate) fn form(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, _, body) =
        http(addr, "POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes());
    let value =
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    (status, value)
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn grafana_save_and_test_panels_and_the_metric_tree() {
    let mut app = Appliance::start("");
    let api = app.http.expect("HTTP is on by default");
    let t = now() - 120;
    let mut lines = String::new();
    for i in 0..10 {
        lines.push_str(&format!("servers.web1.cpu {} {}\nservers.web2.cpu {} {}\n", i, t + i, 10 * i, t + i));
    }
    send_tcp(app.line, lines.as_bytes());

    // Save & test, as Grafana 11.6 sends it (wrapped in aliasSub with the refId).
    let target = enc(r#"aliasSub(constantLine(100), "(^.*$)", "\1 A")"#);
    let (status, v) =
        form(api, "/render", &format!("target={target}&from=-1h&until=now&format=json&maxDataPoints=300"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v[0]["target"], "100.0 A");
    assert_eq!(v[0]["datapoints"].as_array().unwrap().len(), 3);

    // A panel: aliasSub(sumSeries(...)), epoch seconds, maxDataPoints.
    let target = enc(r#"aliasSub(sumSeries(servers.*.cpu), "(^.*$)", "\1 B")"#);
    let body = format!("target={target}&from={}&until={}&format=json&maxDataPoints=1000", t - 1, t + 20);
    let mut got = serde_json::Value::Null;
    // Points may still be in flight to the cache; the render overlays what the writers hold.
    for _ in 0..100 {
        got = form(api, "/render", &body).1;
        let total: f64 = got[0]["datapoints"].as_array().map_or(0.0, |d| d.iter().filter_map(|p| p[0].as_f64()).sum());
        if total == 495.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got[0]["target"], "sumSeries(servers.*.cpu) B");
    let values: Vec<f64> = got[0]["datapoints"].as_array().unwrap().iter().filter_map(|p| p[0].as_f64()).collect();
    assert_eq!(values, (0..10).map(|i| (11 * i) as f64).collect::<Vec<_>>());
    assert_eq!(got[0]["tags"]["aggregatedBy"], "sum");

    // The metric tree: POST /metrics/find with a raw body, from/until in the URL.
    let (status, _, body) =
        http(api, "POST", &format!("/metrics/find?from={}&until={}", t, t + 60), &[], b"query=servers.*");
    assert_eq!(status, 200);
    let tree: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tree[0]["text"], "web1");
    assert_eq!(tree[0]["id"], "servers.web1");
    assert_eq!((tree[0]["expandable"].as_i64(), tree[0]["leaf"].as_i64()), (Some(1), Some(0)));
    let (_, _, body) = http(api, "GET", "/metrics/find?query=servers.web1.*", &[], b"");
    let leaf: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((leaf[0]["text"].as_str(), leaf[0]["leaf"].as_i64()), (Some("cpu"), Some(1)));

    // Template variables: expand(...).
    let (_, _, body) = http(api, "GET", "/metrics/expand?query=servers.*.cpu", &[], b"");
    let expanded: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(expanded["results"], serde_json::json!(["servers.web1.cpu", "servers.web2.cpu"]));

    // The function list, parsed as Grafana parses it, and the version.
    let (status, _, body) = http(api, "GET", "/functions", &[], b"");
    assert_eq!(status, 200);
    let functions: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON, no bare Infinity");
    for name in ["aliasSub", "constantLine", "alias", "sumSeries", "averageSeries", "aliasByNode", "perSecond"] {
        assert!(functions[name]["params"].is_array(), "{name} in /functions");
    }
    assert!(functions.as_object().unwrap().len() >= 45);
    let (_, _, body) = http(api, "GET", "/version", &[], b"");
    assert_eq!(String::from_utf8(body).unwrap(), "1.1.8");
    app.stop();
}

/// (thread name, nice value, scheduling policy) of every thread of process `pid`.
fn thread_priorities(pid: u32) -> Vec<(String, i64, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(task.path().join("comm")), std::fs::read_to_string(task.path().join("stat")))
        else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name: state is field 3, nice 19, policy 41.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        out.push((comm.trim().to_string(), fields[16].parse().unwrap(), fields[38].parse().unwrap()));
    }
    out
}

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// The HTTP threads of an appliance started with `extra`, after one render, as (name, nice,
/// policy), and checks that the receivers and writers kept the normal priority.
fn http_thread_priorities(extra: &str) -> Vec<(String, i64, u32)> {
    let mut app = Appliance::start(extra);
    let api = app.http.expect("HTTP is on by default");
    let (status, _) = form(api, "/render", "target=constantLine(1)&from=-1h");
    assert_eq!(status, 200);
    let threads = thread_priorities(app.child.id());
    app.stop();
    let others: Vec<_> =
        threads.iter().filter(|(name, ..)| name.starts_with("ingest") || name.starts_with("writer")).collect();
    assert!(others.len() >= 4, "2 ingest threads and 2 writers: {threads:?}");
    assert!(others.iter().all(|(_, nice, policy)| (*nice, *policy) == (0, SCHED_OTHER)), "{threads:?}");
    let http: Vec<_> = threads.into_iter().filter(|(name, ..)| name.starts_with("http")).collect();
    assert!(http.len() >= 2, "the runtime's workers and its main thread: {http:?}");
    http
}

#[test]
fn http_threads_run_below_ingest_and_writers() {
    // Adaptive (the default): the server's threads at the ingest's priority, and a pool of
    // SCHED_IDLE threads for work while the ingest and writers are busy.
    let adaptive = http_thread_priorities("");
    let (pool, server): (Vec<_>, Vec<_>) = adaptive.iter().partition(|(name, ..)| name == "http-idle");
    assert!(!pool.is_empty() && pool.iter().all(|(_, _, policy)| *policy == SCHED_IDLE), "{adaptive:?}");
    assert!(server.len() >= 2 && server.iter().all(|(_, nice, policy)| (*nice, *policy) == (0, SCHED_OTHER)));
    let idle = http_thread_priorities("HTTP_PRIORITY = idle\n");
    assert!(idle.iter().all(|&(ref name, _, policy)| policy == SCHED_IDLE && name != "http-idle"), "{idle:?}");
    let niced = http_thread_priorities("HTTP_PRIORITY = 7\n");
    assert!(niced.iter().all(|(_, nice, policy)| (*nice, *policy) == (7, SCHED_OTHER)), "{niced:?}");
}

#[test]
fn points_only_in_the_cache_are_rendered_and_found() {
    // One create a minute: the second metric's file cannot exist yet; its points are cached.
    let mut app = Appliance::start("MAX_CREATES_PER_MINUTE = 1\n");
    let api = app.http.unwrap();
    let t = now() - 30;
    send_tcp(app.line, format!("first.metric 1 {t}\n").as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    send_tcp(app.line, format!("cached.only 7 {t}\ncached.only 8 {}\n", t + 1).as_bytes());
    let mut got = serde_json::Value::Null;
    for _ in 0..100 {
        got = form(api, "/render", &format!("target=cached.only&from={}&until={}", t - 5, t + 5)).1;
        if got[0]["datapoints"].is_array() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!app.data().join("cached/only.wsp").exists(), "the create is throttled");
    let points: Vec<(f64, i64)> = got[0]["datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_i64()?)))
        .collect();
    assert_eq!(points, vec![(7.0, t), (8.0, t + 1)]);
    let (_, _, body) = http(api, "GET", "/metrics/find?query=cached.*", &[], b"");
    let tree: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tree[0]["id"], "cached.only");
    app.stop();
}

#[test]
fn bad_requests_are_400_with_a_message_never_500() {
    let mut app = Appliance::start("");
    let api = app.http.unwrap();
    for target in ["sumSeries(a.b", "noSuchFunction(a.b)", "scale(a.b, \"x\")", "movingAverage(a.b, -5)", "a.{b"] {
        let (status, body) = form(api, "/render", &format!("target={}&from=-1h", enc(target)));
        assert_eq!(status, 400, "{target}: {body}");
    }
    let deep = format!("{}a{}", "absolute(".repeat(200), ")".repeat(200));
    assert_eq!(form(api, "/render", &format!("target={}", enc(&deep))).0, 400);
    assert_eq!(form(api, "/render", "target=a&from=tomorrowish").0, 400);
    assert_eq!(form(api, "/render", "target=a&from=-1h&until=-1h").0, 400, "an empty range");
    assert_eq!(http(api, "GET", "/metrics/find", &[], b"").0, 400, "query is required");
    assert_eq!(http(api, "GET", &format!("/metrics/find?query={}", enc(&"{a,b}".repeat(30))), &[], b"").0, 400);
    let (status, _, _) = http(api, "GET", "/render?target=constantLine(1)&format=json&jsonp=alert(1)%3B", &[], b"");
    assert_eq!(status, 400, "a jsonp callback that is not a name");
    // Bad encodings and enormous ranges: an answer, never a 500.
    for path in ["/render?target=%FF%FE.%C0", "/metrics/find?query=%C0%AF.*", "/render?target=sumSeries(**)&from=-100y"]
    {
        let (status, _, body) = http(api, "GET", path, &[], b"");
        assert!(status == 200 || status == 400, "{path}: {status} {}", String::from_utf8_lossy(&body));
    }
    app.stop();
}

#[test]
fn basic_auth_from_an_htpasswd_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    // `openssl passwd -apr1 -salt abcdefgh secret`
    std::fs::write(&file, "grafana:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n").unwrap();
    let mut app = Appliance::start(&format!("HTTP_HTPASSWD_FILE = {}\n", file.display()));
    let api = app.http.unwrap();
    let (status, head, _) = http(api, "GET", "/render?target=constantLine(1)", &[], b"");
    assert_eq!(status, 401);
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic"));
    let good = "Basic Z3JhZmFuYTpzZWNyZXQ="; // grafana:secret
    assert_eq!(http(api, "GET", "/render?target=constantLine(1)", &[("Authorization", good)], b"").0, 200);
    let bad = "Basic Z3JhZmFuYTp3cm9uZw=="; // grafana:wrong
    assert_eq!(http(api, "GET", "/render?target=constantLine(1)", &[("Authorization", bad)], b"").0, 401);
    let (status, head, body) = http(
        api,
        "GET",
        "/render?target=constantLine(1)",
        &[("Authorization", good), ("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    app.stop();
}
