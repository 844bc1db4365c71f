//! Tagged series end to end: sent over plaintext, pickle and statsd (DogStatsD tags), stored at
//! carbon's hashed `_tagged/` paths, found through the tag index by `seriesByTag` and the
//! `/tags` API, before and after a restart.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{enc, form, http};
use crate::server::{now, pickle_frame, send_tcp, Appliance};

fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = http(addr, "GET", path, &[], b"");
    let value = serde_json::from_slice(&body).unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
    (status, value)
}

fn find_series(addr: SocketAddr, exprs: &[&str]) -> Value {
    let query: Vec<String> = exprs.iter().map(|e| format!("expr={}", enc(e))).collect();
    let (status, value) = get(addr, &format!("/tags/findSeries?{}", query.join("&")));
    assert_eq!(status, 200, "{value}");
    value
}

/// Asks until `want` comes (the index publishes within ~50 ms of a write; a restart replays the
/// tag log first), for at most 30 s.
fn wait_for(addr: SocketAddr, exprs: &[&str], want: Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = find_series(addr, exprs);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{exprs:?}: {got} never became {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A rendered series: its name and (value, timestamp) datapoints.
type Rendered = (String, Vec<(Option<f64>, i64)>);

/// The series of a JSON render of `target` over the last ten minutes.
fn render(addr: SocketAddr, target: &str) -> Vec<Rendered> {
    let (status, value) = form(addr, "/render", &format!("target={}&from=-10min&until=now&format=json", enc(target)));
    assert_eq!(status, 200, "{target}: {value}");
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let points = s["datapoints"].as_array().unwrap().iter().map(|p| (p[0].as_f64(), p[1].as_i64().unwrap()));
            (s["target"].as_str().unwrap().to_string(), points.collect())
        })
        .collect()
}

/// The value at `t` of the one series `target` renders to, with its name.
fn value_at(addr: SocketAddr, target: &str, t: i64) -> (String, Option<f64>) {
    let got = render(addr, target);
    assert_eq!(got.len(), 1, "{target}: {got:?}");
    let value = got[0].1.iter().find(|(_, ts)| *ts == t).and_then(|(v, _)| *v);
    (got[0].0.clone(), value)
}

const CPU_A: &str = "cpu.load;dc=east;host=a";
const CPU_B: &str = "cpu.load;dc=west;host=b";
const DISK: &str = "disk.used;host=a;mount=root";
const REQ_RATE: &str = "stats.req;env=prod;role=web";
const REQ: &str = "stats_counts.req;env=prod;role=web";

#[test]
fn tagged_series_from_every_receiver_are_found_before_and_after_a_restart() {
    let mut app = Appliance::start("[statsd]\nflushInterval = 1000\n");
    let http = app.http.unwrap();
    let t = now() - 5;
    // Tags in any order: carbon's canonical form sorts them.
    send_tcp(app.line, format!("cpu.load;host=a;dc=east 1.5 {t}\ncpu.load;dc=west;host=b 2.5 {t}\n").as_bytes());
    send_tcp(app.pickle, &pickle_frame(&[("disk.used;mount=root;host=a", t, 7.0)]));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(b"req:3|c|#env:prod,role:web", app.statsd_udp.unwrap()).unwrap();

    wait_for(http, &["name=cpu.load"], json!([CPU_A, CPU_B]));
    wait_for(http, &["host=a"], json!([CPU_A, DISK]));
    wait_for(http, &["env=prod"], json!([REQ_RATE, REQ]));
    assert_eq!(find_series(http, &["name=~cpu", "dc!=east"]), json!([CPU_B]));

    assert_eq!(value_at(http, "seriesByTag('name=cpu.load', 'dc=east')", t), (CPU_A.to_string(), Some(1.5)));
    assert_eq!(value_at(http, "seriesByTag('mount=root')", t), (DISK.to_string(), Some(7.0)));
    // A tagged name as written is a target of its own (graphite-web hashes it to the file).
    assert_eq!(value_at(http, CPU_B, t), (CPU_B.to_string(), Some(2.5)));
    let summed = render(http, "sumSeries(seriesByTag('name=cpu.load'))");
    assert!(summed[0].1.iter().any(|&(v, ts)| ts == t && v == Some(4.0)), "{summed:?}");
    let grouped = render(http, "groupByTags(seriesByTag('name=cpu.load'), 'sum', 'host')");
    assert_eq!(grouped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["cpu.load;host=a", "cpu.load;host=b"]);
    let aliased = render(http, "aliasByTags(seriesByTag('name=cpu.load'), 'host', 'dc')");
    assert_eq!(aliased.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["a.east", "b.west"]);

    assert_eq!(get(http, "/tags/autoComplete/tags?expr=name%3Dcpu.load").1, json!(["dc", "host"]));
    assert_eq!(get(http, "/tags/autoComplete/tags?tagPrefix=m").1, json!(["mount"]));
    assert_eq!(get(http, "/tags/autoComplete/values?tag=host&expr=name%3Dcpu.load").1, json!(["a", "b"]));
    assert_eq!(get(http, "/tags/autoComplete/values?tag=dc&valuePrefix=w").1, json!(["west"]));
    assert_eq!(
        get(http, "/tags/dc").1,
        json!({"tag": "dc", "values": [{"value": "east", "count": 1}, {"value": "west", "count": 1}]})
    );
    let tags = get(http, "/tags?filter=^(host|role)").1;
    assert_eq!(tags, json!([{"tag": "host"}, {"tag": "role"}]));
    // The files are where carbon puts them: nothing tagged in the metric tree.
    assert_eq!(
        get(http, "/metrics/find?query=*").1.as_array().unwrap().iter().filter(|n| n["text"] == "_tagged").count(),
        0
    );
    app.stop();

    // A restart replays the tag log: the same answers, values read from the files.
    let mut again = Appliance::start_on(&app.data(), "");
    let http = again.http.unwrap();
    wait_for(http, &["name=cpu.load"], json!([CPU_A, CPU_B]));
    assert_eq!(find_series(http, &["host=a"]), json!([CPU_A, DISK]));
    assert_eq!(find_series(http, &["role=web", "name=~stats_counts"]), json!([REQ]));
    assert_eq!(value_at(http, "seriesByTag('host=b')", t), (CPU_B.to_string(), Some(2.5)));
    assert_eq!(value_at(http, "seriesByTag('name=disk.used')", t), (DISK.to_string(), Some(7.0)));
    assert_eq!(get(http, "/tags/autoComplete/values?tag=env").1, json!(["prod"]));

    // delSeries takes any tag order; the removal survives the next restart too.
    let (status, ok) = form(http, "/tags/delSeries", &format!("path={}", enc("cpu.load;host=b;dc=west")));
    assert_eq!((status, ok), (200, json!(true)));
    assert_eq!(find_series(http, &["name=cpu.load"]), json!([CPU_A]));
    again.stop();
    let mut third = Appliance::start_on(&app.data(), "");
    let http = third.http.unwrap();
    wait_for(http, &["name=cpu.load"], json!([CPU_A]));
    third.stop();
}

#[test]
fn a_lost_tag_log_heals_as_series_receive_points() {
    let mut app = Appliance::start("");
    let http = app.http.unwrap();
    let t = now() - 5;
    send_tcp(app.line, format!("{CPU_A} 1 {t}\n{CPU_B} 2 {t}\n").as_bytes());
    wait_for(http, &["name=cpu.load"], json!([CPU_A, CPU_B]));
    app.stop();
    let log = app.data().join("_tagged").join("carbyne-tag-index.log");
    assert!(std::fs::read_to_string(&log).unwrap().lines().any(|l| l == format!("+{CPU_A}")));
    std::fs::remove_file(&log).unwrap();

    let mut again = Appliance::start_on(&app.data(), "");
    let http = again.http.unwrap();
    // The files are named by a hash: without the log nothing names them...
    assert_eq!(find_series(http, &["name=cpu.load"]), json!([]));
    // ...until a series receives a point again.
    send_tcp(again.line, format!("{CPU_B} 3 {}\n", t + 1).as_bytes());
    wait_for(http, &["name=cpu.load"], json!([CPU_B]));
    assert_eq!(value_at(http, "seriesByTag('host=b')", t), (CPU_B.to_string(), Some(2.0)));
    again.stop();
}

#[test]
fn the_tag_api_answers_as_graphite_web() {
    let mut app = Appliance::start("");
    let http = app.http.unwrap();
    let (status, canonical) = form(http, "/tags/tagSeries", &format!("path={}", enc("net.rx;iface=eth0;host=x")));
    assert_eq!((status, canonical), (200, json!("net.rx;host=x;iface=eth0")));
    let body = format!("path={}&path={}", enc("net.tx;iface=eth1;host=x"), enc("net.tx;host=y;iface=eth0"));
    let (status, many) = form(http, "/tags/tagMultiSeries", &body);
    assert_eq!((status, many), (200, json!(["net.tx;host=x;iface=eth1", "net.tx;host=y;iface=eth0"])));
    assert_eq!(find_series(http, &["host=x"]), json!(["net.rx;host=x;iface=eth0", "net.tx;host=x;iface=eth1"]));
    let (status, many) = form(http, "/tags/tagMultiSeries", &format!("path[]={}", enc("a;k=v")));
    assert_eq!((status, many), (200, json!(["a;k=v"])));
    assert_eq!(
        get(http, "/tags/iface?filter=eth1").1,
        json!({"tag": "iface", "values": [{"value": "eth1", "count": 1}]})
    );
    assert_eq!(get(http, "/tags/nosuchtag").1, Value::Null);
    // The index's size is a self-metric.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = render(http, "carbon.agents.*.index.taggedSeries");
        let last = got.first().and_then(|s| s.1.iter().rev().find_map(|p| p.0));
        if last == Some(4.0) {
            break;
        }
        assert!(Instant::now() < deadline, "index.taggedSeries never showed the 4 series: {got:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(http, "/tags?limit=2").1, json!([{"tag": "host"}, {"tag": "iface"}]));

    // Errors: JSON {"error": ...} with the caller's status.
    let error = |(status, value): (u16, Value)| (status, value["error"].as_str().unwrap_or_default().to_string());
    assert_eq!(error(get(http, "/tags/findSeries")), (400, "no tag expressions specified".into()));
    assert_eq!(
        error(get(http, "/tags/findSeries?expr=host%21%3Dx")),
        (400, "At least one tagspec must not match the empty string".into())
    );
    assert_eq!(error(get(http, "/tags/findSeries?expr=nonsense")), (400, "Invalid tagspec nonsense".into()));
    assert_eq!(error(get(http, "/tags/autoComplete/values?expr=host%3Dx")), (400, "no tag specified".into()));
    assert_eq!(get(http, "/tags/autoComplete/tags?limit=x").0, 400);
    assert_eq!(error(form(http, "/tags/tagSeries", "")), (400, "no path specified".into()));
    assert_eq!(form(http, "/tags/tagSeries", &format!("path={}", enc("a;=v"))).0, 400);
    assert_eq!(get(http, "/tags/tagSeries?path=a%3Bb%3Dc").0, 405);
    assert_eq!(get(http, "/tags/findSeries?expr=name%3D~%28").0, 400);
    let (status, _, body) = http_render(http, "seriesByTag('host!=x')");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    app.stop();
}

fn http_render(addr: SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    http(addr, "GET", &format!("/render?target={}&format=json", enc(target)), &[], b"")
}
