//! graphite-web 1.1.8 (Debian's package) as a cluster frontend over three Carbyne instances,
//! the way an operator scales reads past one machine: `CLUSTER_SERVERS` names the instances,
//! each holding part of the metrics (sent to it over plaintext), and graphite-web itself has an
//! empty whisper directory, so that every node and every value it answers with came from
//! Carbyne over the cluster protocol.
//!
//! graphite-web runs in-process through `tests/reference/graphite_web_http.py` (Django's test
//! client: its real URL configuration, views, finders and readers); with
//! `GRAPHITE_CLUSTER_SERVERS` set, its RemoteFinder asks the instances over real HTTP. The
//! entries use the spellings graphite-web accepts: `host:port` (pickle, its default),
//! `host:port?format=pickle`, and a URL with `?format=pickle&local=1`. Two frontends ask the same
//! questions: one with graphite-web's default GET requests, one with REMOTE_STORE_USE_POST
//! (POSTs whose fields travel as a `multipart/form-data` body, urllib3's encoding).
//!
//! Not `format=msgpack`: graphite-web 1.1.8 on Debian 12 (Python 3.11) cannot read msgpack from
//! any node. Without python3-msgpack its bundled umsgpack 2.4.1 fails on every map
//! (`collections.Hashable`, gone since Python 3.10); with it (1.0.3) graphite-web's
//! `msgpack.load(stream, encoding='utf-8')` fails (msgpack 1.0 removed `encoding`). Either way the
//! frontend marks the node failed and drops it. Our msgpack answers are checked instead by
//! `cluster::graphite_web_finds_and_renders_in_pickle_and_msgpack` (decoded by msgpack-rust,
//! key for key the same as the pickle answers Python reads).
//!
//! What is checked: a find over a glob spanning the instances lists every node, once, with the
//! leaves' intervals graphite-web took from our answers; a render of globs spanning the
//! instances returns every series with exactly the values sent, a combiner over series of two
//! instances computes on both, `/metrics/expand` and `/metrics/index.json` list every instance's
//! leaves. A node that answered anything but 200 would be dropped by graphite-web for 60 s
//! (REMOTE_RETRY_DELAY), which the checks would see as a missing node or series.
//!
//! `#[ignore]`d (it needs Python 3 and graphite-web): `cargo test --test it reference_cluster --
//! --ignored`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::{expected, send_and_wait, METRICS};
use crate::server::{now, Appliance};

/// graphite-web's views in a Python process of their own, as a cluster frontend.
struct Frontend {
    child: Child,
    /// Closed on drop: the driver then ends and removes its temporary directory.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Its (empty) whisper directory, removed last.
    _empty: tempfile::TempDir,
}

impl Frontend {
    fn start(cluster_servers: &[String], use_post: bool) -> Frontend {
        let empty = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/graphite_web_http.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(empty.path())
            .env("TZ", "UTC")
            .env("GRAPHITE_CLUSTER_SERVERS", cluster_servers.join(","))
            .env("GRAPHITE_REMOTE_STORE_USE_POST", if use_post { "1" } else { "0" })
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
        Frontend { child, stdin: Some(stdin), stdout, _empty: empty }
    }

    /// GET `path` with `params`: the JSON body of a 200, else a failing test.
    fn get(&mut self, path: &str, params: &[(&str, String)]) -> Value {
        let params: Vec<Value> = params.iter().map(|(k, v)| json!([k, v])).collect();
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({ "method": "GET", "path": path, "params": params })).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver answer {line:?}: {e}"));
        assert_eq!(answer["status"], 200, "{path} {params:?}: {answer}");
        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Frontend {
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

/// A series as graphite-web's JSON shows it: its name and its (value or None, timestamp) pairs.
type Shown = (String, Vec<(Option<f64>, i64)>);

/// The series of a graphite-web JSON render.
fn series_of(render: &Value) -> Vec<Shown> {
    render
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let points = s["datapoints"].as_array().unwrap().iter().map(|p| (p[0].as_f64(), p[1].as_i64().unwrap()));
            (s["target"].as_str().unwrap().to_string(), points.collect())
        })
        .collect()
}

/// `values` stamped t0, t0 + 1, ...
fn stamped(values: &[Option<f64>], t0: i64) -> Vec<(Option<f64>, i64)> {
    values.iter().enumerate().map(|(i, v)| (*v, t0 + i as i64)).collect()
}

#[test]
#[ignore = "reference: needs graphite-web (apt-get install graphite-web) and /usr/bin/python3"]
fn reference_cluster_graphite_web() {
    // Three instances, each with its own part of the metrics.
    let mut apps: Vec<Appliance> = (0..3).map(|_| Appliance::start("CARBON_METRIC_INTERVAL = 86400\n")).collect();
    let t0 = now() - 60;
    let parts: [&[&str]; 3] = [&["clu.a.x"], &["clu.a.y"], &["clu.b.z"]];
    for (app, names) in apps.iter().zip(parts) {
        send_and_wait(app, names, t0);
    }
    assert_eq!(METRICS.len(), 3, "every metric is on exactly one instance");
    let http = |i: usize| apps[i].http.expect("HTTP is on");
    let servers = [
        format!("{}", http(0)),
        format!("{}?format=pickle", http(1)),
        format!("http://{}?format=pickle&local=1", http(2)),
    ];
    for use_post in [false, true] {
        let mut web = Frontend::start(&servers, use_post);
        check_frontend(&mut web, t0);
    }
    for app in &mut apps {
        app.stop();
    }
}

/// Every question, asked of graphite-web over the instances holding the data sent at `t0`.
fn check_frontend(web: &mut Frontend, t0: i64) {
    // find: a glob spanning the instances, in graphite-web's tree and JSON formats.
    let tree = web.get("/metrics/find", &[("query", "clu.*".into())]);
    let texts: Vec<(&str, i64)> =
        tree.as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n["leaf"].as_i64().unwrap())).collect();
    assert_eq!(texts, [("clu.a", 0), ("clu.b", 0)], "{tree}");
    let nodes = web.get("/metrics/find", &[("query", "clu.*.*".into()), ("format", "json".into())]);
    let paths: Vec<&str> = nodes.as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["clu.a.x", "clu.a.y", "clu.b.z"], "{nodes}");
    for node in nodes.as_array().unwrap() {
        assert_eq!(node["is_leaf"], true);
        // graphite-web rebuilt its IntervalSet from our (start, end) pairs.
        let interval = &node["intervals"][0];
        let (start, end) = (interval["start"].as_f64().unwrap(), interval["end"].as_f64().unwrap());
        assert!(start <= t0 as f64 && t0 as f64 <= end, "{node}");
    }

    // render: globs spanning the instances, every series with the values sent.
    let window = [("from", (t0 - 1).to_string()), ("until", (t0 + 4).to_string()), ("format", "json".into())];
    let mut params = window.to_vec();
    params.push(("target", "clu.*.*".into()));
    let got = series_of(&web.get("/render", &params));
    let want: Vec<Shown> = METRICS.iter().map(|(name, _)| (name.to_string(), stamped(&expected(name), t0))).collect();
    assert_eq!(got, want);

    // A combiner over series held by two instances, and two targets in one request.
    let mut params = window.to_vec();
    params.push(("target", "sumSeries(clu.a.*)".into()));
    params.push(("target", "clu.*.{y,z}".into()));
    let got = series_of(&web.get("/render", &params));
    let sum: Vec<Option<f64>> = expected("clu.a.x")
        .into_iter()
        .zip(expected("clu.a.y"))
        .map(|(x, y)| match (x, y) {
            (None, None) => None,
            (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
        })
        .collect();
    assert_eq!(got[0], ("sumSeries(clu.a.*)".to_string(), stamped(&sum, t0)));
    assert_eq!(
        got[1..],
        [
            ("clu.a.y".to_string(), stamped(&expected("clu.a.y"), t0)),
            ("clu.b.z".to_string(), stamped(&expected("clu.b.z"), t0))
        ]
    );

    // The leaves of every instance, through graphite-web's expand and index views.
    let expanded = web.get("/metrics/expand", &[("query", "clu.*.*".into())]);
    assert_eq!(expanded["results"], json!(["clu.a.x", "clu.a.y", "clu.b.z"]));
    let index = web.get("/metrics/index.json", &[]);
    let index: Vec<&str> = index.as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for (name, _) in METRICS {
        assert!(index.contains(&name), "{name} in {index:?}");
    }
}
