//! The cluster read protocols of the real binary: what graphite-web (CLUSTER_SERVERS) and
//! carbonapi ask a storage node, answered over points sent here over plaintext and decoded by
//! independent readers: Python's own pickle module with every global refused (as graphite-web's
//! restricted unpickler refuses them), the msgpack-rust project's `rmpv`, and the protobuf types
//! generated from the `.proto` files.
//!
//! The pickle tests run `/usr/bin/python3` (standard library only).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use carbyne::render::format::carbonapi::{v2, v3};
use carbyne::whisper::Whisper;
use prost::Message;
use serde_json::{json, Value};

use crate::server::{now, send_tcp, Appliance};

/// One HTTP answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 exchange on a fresh connection (a GET may carry a body, as carbonapi sends).
pub(crate) fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let (status, head, body) = crate::http::http(addr, method, target, headers, body);
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim()))
        .unwrap_or("")
        .to_string();
    Answer { status, content_type, body }
}

fn get(addr: SocketAddr, target: &str) -> Answer {
    request(addr, "GET", target, &[], b"")
}

/// `bytes` unpickled by Python's own pickle module, refusing every global (as graphite-web's
/// restricted unpickler refuses all but its own classes), as JSON (tuples become lists). Floats
/// travel as their Python `repr` and are parsed here with Rust's correctly rounded parser (a
/// JSON number read by serde_json may be one ulp off), so they compare exactly.
pub(crate) fn unpickle(bytes: &[u8]) -> Value {
    const SCRIPT: &str = r#"
import io, json, pickle, sys
class Plain(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))
def exact(o):
    if isinstance(o, float):
        return {"$float": repr(o)}
    if isinstance(o, (list, tuple)):
        return [exact(x) for x in o]
    if isinstance(o, dict):
        return {k: exact(v) for k, v in o.items()}
    return o
print(json.dumps(exact(Plain(io.BytesIO(sys.stdin.buffer.read())).load())))
"#;
    fn floats(v: Value) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 && m.contains_key("$float") => {
                json!(m["$float"].as_str().unwrap().parse::<f64>().unwrap())
            }
            Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, floats(v))).collect()),
            Value::Array(items) => Value::Array(items.into_iter().map(floats).collect()),
            other => other,
        }
    }
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 could not unpickle: {}", String::from_utf8_lossy(&out.stderr));
    floats(serde_json::from_slice(&out.stdout).unwrap())
}

/// msgpack as JSON-like values (maps keep their order; floats stay floats).
fn unpack(bytes: &[u8]) -> Value {
    fn convert(v: rmpv::Value) -> Value {
        match v {
            rmpv::Value::Nil => Value::Null,
            rmpv::Value::Boolean(b) => json!(b),
            rmpv::Value::Integer(i) => i.as_i64().map_or(json!(i.as_u64()), |i| json!(i)),
            rmpv::Value::F64(f) => json!(f),
            rmpv::Value::F32(f) => json!(f),
            rmpv::Value::String(s) => json!(s.into_str().expect("msgpack str is UTF-8")),
            rmpv::Value::Array(items) => Value::Array(items.into_iter().map(convert).collect()),
            rmpv::Value::Map(entries) => Value::Object(
                entries.into_iter().map(|(k, v)| (k.as_str().expect("str keys").to_string(), convert(v))).collect(),
            ),
            other => panic!("unexpected msgpack value {other:?}"),
        }
    }
    let mut rest = bytes;
    let v = rmpv::decode::read_value(&mut rest).unwrap();
    assert!(rest.is_empty(), "one value, nothing after it");
    convert(v)
}

/// What the tests send over plaintext: name → (offset from t0, value). Gaps on purpose.
pub(crate) const METRICS: [(&str, &[(i64, f64)]); 3] = [
    ("clu.a.x", &[(0, 1.5), (1, 2.5), (2, 3.5), (3, 4.5), (4, 5.5)]),
    ("clu.a.y", &[(0, -1.25), (2, 0.0), (4, 1e6)]),
    ("clu.b.z", &[(1, 42.0)]),
];

/// The values of `name` over t0..t0+5 at 1 s, None where nothing was sent.
pub(crate) fn expected(name: &str) -> Vec<Option<f64>> {
    let points = METRICS.iter().find(|(n, _)| *n == name).unwrap().1;
    (0..5).map(|i| points.iter().find(|(o, _)| *o == i).map(|(_, v)| *v)).collect()
}

/// Sends `names` over plaintext and waits (bounded) until every point is in its whisper file
/// and the index lists every name (it publishes what writers add every 50 ms).
pub(crate) fn send_and_wait(app: &Appliance, names: &[&str], t0: i64) {
    let mut lines = String::new();
    for (name, points) in METRICS.iter().filter(|(n, _)| names.contains(n)) {
        for (offset, value) in points.iter() {
            lines.push_str(&format!("{name} {value} {}\n", t0 + offset));
        }
    }
    send_tcp(app.line, lines.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        let path = app.data().join(format!("{}.wsp", name.replace('.', "/")));
        let want: Vec<f64> = expected(name).into_iter().flatten().collect();
        loop {
            let got: Vec<f64> = Whisper::open_read_only(&path)
                .ok()
                .and_then(|mut w| w.fetch(t0 - 1, Some(t0 + 4), now(), None).ok().flatten())
                .map(|r| r.values.into_iter().flatten().collect())
                .unwrap_or_default();
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{name} never reached its file: {got:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let api = app.http.unwrap();
        while get(api, &format!("/metrics/find?format=json&query={name}")).body.len() <= 2 {
            assert!(Instant::now() < deadline, "{name} never reached the index");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn mtime(path: &Path) -> f64 {
    let m = std::fs::metadata(path).unwrap().modified().unwrap();
    m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn wall_clock() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The test schema's retention (`1s:1h,1m:1d`).
const MAX_RETENTION: f64 = 86_400.0;

/// The wall clock and every file's mtime at one moment (a writer may still be finishing a
/// file's lower archives while the find reads its mtime: the request is bracketed).
struct Moment {
    clock: f64,
    mtimes: Vec<(PathBuf, f64)>,
}

impl Moment {
    fn now(app: &Appliance) -> Moment {
        let files = METRICS.iter().map(|(name, _)| app.data().join(format!("{}.wsp", name.replace('.', "/"))));
        let mtimes = files.filter(|f| f.exists()).map(|f| (f.clone(), mtime(&f))).collect();
        Moment { clock: wall_clock(), mtimes }
    }

    fn mtime(&self, file: &Path) -> f64 {
        self.mtimes.iter().find(|(f, _)| f == file).unwrap().1
    }
}

/// A find answer as graphite-web's frontend reads it: leaves with one interval,
/// `(now - maxRetention, max(mtime, that))`, branches without; `before`/`after` bracket the
/// request.
fn check_nodes(nodes: &Value, app: &Appliance, want: &[(&str, bool)], before: &Moment, after: &Moment) {
    let got: Vec<(&str, bool)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["path"].as_str().unwrap(), n["is_leaf"].as_bool().unwrap()))
        .collect();
    assert_eq!(got, want, "{nodes}");
    for node in nodes.as_array().unwrap() {
        let keys: Vec<&str> = node.as_object().unwrap().keys().map(String::as_str).collect();
        if !node["is_leaf"].as_bool().unwrap() {
            assert_eq!(keys, ["path", "is_leaf"], "a branch has no intervals");
            continue;
        }
        assert_eq!(keys, ["path", "is_leaf", "intervals"]);
        let intervals = node["intervals"].as_array().unwrap();
        assert_eq!(intervals.len(), 1, "{node}");
        let (start, end) = (&intervals[0][0], &intervals[0][1]);
        assert!(start.is_f64() && end.is_f64(), "floats, as graphite-web's Interval: {node}");
        let (start, end) = (start.as_f64().unwrap(), end.as_f64().unwrap());
        assert!(before.clock - MAX_RETENTION <= start && start <= after.clock - MAX_RETENTION, "{node}");
        let file = app.data().join(format!("{}.wsp", node["path"].as_str().unwrap().replace('.', "/")));
        assert!(before.mtime(&file).max(start) <= end && end <= after.mtime(&file).max(start), "{node}");
    }
}

/// A render answer as graphite-web's frontend reads it: graphite-web's `getInfo()` keys in
/// order, pathExpression = the target asked, the values sent.
fn check_series(list: &Value, target: &str, names: &[&str], t0: i64) {
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), names.len(), "{list:?}");
    for (series, name) in list.iter().zip(names) {
        let keys: Vec<&str> = series.as_object().unwrap().keys().map(String::as_str).collect();
        let info = [
            "name",
            "start",
            "end",
            "step",
            "values",
            "pathExpression",
            "valuesPerPoint",
            "consolidationFunc",
            "xFilesFactor",
        ];
        assert_eq!(keys, info);
        assert_eq!(series["name"], *name);
        assert_eq!(series["pathExpression"], target, "filed under the pattern asked");
        assert_eq!(
            (series["start"].as_i64(), series["end"].as_i64(), series["step"].as_i64()),
            (Some(t0), Some(t0 + 5), Some(1))
        );
        let values: Vec<Option<f64>> = series["values"].as_array().unwrap().iter().map(Value::as_f64).collect();
        assert_eq!(values, expected(name), "{name}");
        assert_eq!(series["valuesPerPoint"], 1);
        assert_eq!(series["consolidationFunc"], "average");
        assert!(series["xFilesFactor"].is_f64());
    }
}

#[test]
fn graphite_web_finds_and_renders_in_pickle_and_msgpack() {
    let mut app = Appliance::start("");
    let api = app.http.unwrap();
    let t0 = now() - 60;
    send_and_wait(&app, &["clu.a.x", "clu.a.y", "clu.b.z"], t0);

    // find: what graphite-web's RemoteFinder asks, leaves and branches.
    for (format, content_type) in [("pickle", "application/pickle"), ("msgpack", "application/x-msgpack")] {
        let decode = |a: &Answer| if format == "pickle" { unpickle(&a.body) } else { unpack(&a.body) };
        let before = Moment::now(&app);
        let a =
            get(api, &format!("/metrics/find/?local=1&format={format}&query=clu.a.*&from={}&until={}", t0, t0 + 60));
        let after = Moment::now(&app);
        assert_eq!((a.status, a.content_type.as_str()), (200, content_type), "{}", a.text());
        check_nodes(&decode(&a), &app, &[("clu.a.x", true), ("clu.a.y", true)], &before, &after);
        let a = get(api, &format!("/metrics/find/?local=1&format={format}&query=clu.*"));
        check_nodes(&decode(&a), &app, &[("clu.a", false), ("clu.b", false)], &before, &after);
        let a = get(api, &format!("/metrics/find/?local=1&format={format}&query=nothing.here.*"));
        assert_eq!((a.status, decode(&a)), (200, json!([])), "no match is an empty list, not an error");

        // render: the bulk fetch graphite-web's RemoteReader sends.
        let window = format!("from={}&until={}", t0 - 1, t0 + 4);
        let a = get(api, &format!("/render/?format={format}&local=1&noCache=1&{window}&target=clu.a.*&target=clu.b.z"));
        assert_eq!((a.status, a.content_type.as_str()), (200, content_type), "{}", a.text());
        let list = decode(&a);
        let list = list.as_array().unwrap();
        check_series(&json!(list[..2]), "clu.a.*", &["clu.a.x", "clu.a.y"], t0);
        check_series(&json!(list[2..]), "clu.b.z", &["clu.b.z"], t0);
        let a = get(api, &format!("/render/?format={format}&local=1&{window}&target=nothing.*"));
        assert_eq!((a.status, decode(&a)), (200, json!([])));
    }

    // REMOTE_STORE_USE_POST: the same fields as a multipart form body (urllib3's encoding).
    let form = |fields: &[(&str, String)]| {
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!("--b0undary\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
        }
        body + "--b0undary--\r\n"
    };
    let multipart = [("Content-Type", "multipart/form-data; boundary=b0undary")];
    let body = form(&[("local", "1".into()), ("format", "pickle".into()), ("query", "clu.b.*".into())]);
    let a = request(api, "POST", "/metrics/find/", &multipart, body.as_bytes());
    assert_eq!(unpickle(&a.body)[0]["path"], "clu.b.z", "{}", a.text());
    let body = form(&[
        ("format", "pickle".into()),
        ("from", (t0 - 1).to_string()),
        ("until", (t0 + 4).to_string()),
        ("target", "clu.b.z".into()),
    ]);
    let a = request(api, "POST", "/render/", &multipart, body.as_bytes());
    check_series(&unpickle(&a.body), "clu.b.z", &["clu.b.z"], t0);
    let a = request(
        api,
        "POST",
        "/render/",
        &multipart,
        b"--b0undary\r\nContent-Disposition: form-data; name=\"target\"\r\n\r\nx",
    );
    assert_eq!(a.status, 400, "a form cut short: {}", a.text());

    app.stop();
}

/// A protobuf answer: 200 with `content_type`, decoded as `M`.
fn decoded<M: Message + Default>(a: &Answer, content_type: &str) -> M {
    assert_eq!((a.status, a.content_type.as_str()), (200, content_type), "{}", a.text());
    M::decode(&a.body[..]).unwrap()
}

const V3: &str = "application/x-carbonapi-v3-pb";

#[test]
fn carbonapi_protobuf_v2_and_v3_find_render_and_capabilities() {
    let mut app = Appliance::start("");
    let api = app.http.unwrap();
    let t0 = now() - 60;
    send_and_wait(&app, &["clu.a.x", "clu.a.y", "clu.b.z"], t0);
    let window = format!("from={}&until={}", t0 - 1, t0 + 4);

    // carbonapi_v2_pb, as carbonapi's v2 group asks.
    let g: v2::GlobResponse =
        decoded(&get(api, "/metrics/find/?format=protobuf&query=clu.a.*"), "application/x-protobuf");
    assert_eq!(g.name, "clu.a.*");
    let matches: Vec<(&str, bool)> = g.matches.iter().map(|m| (m.path.as_str(), m.is_leaf)).collect();
    assert_eq!(matches, [("clu.a.x", true), ("clu.a.y", true)]);
    let r: v2::MultiFetchResponse = decoded(
        &get(api, &format!("/render/?format=protobuf&target=clu.a.*&target=clu.b.z&{window}")),
        "application/x-protobuf",
    );
    let names: Vec<&str> = r.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["clu.a.x", "clu.a.y", "clu.b.z"]);
    for m in &r.metrics {
        assert_eq!((i64::from(m.start_time), i64::from(m.stop_time), m.step_time), (t0, t0 + 5, 1));
        let values: Vec<Option<f64>> =
            m.values.iter().zip(&m.is_absent).map(|(v, absent)| (!absent).then_some(*v)).collect();
        assert_eq!(values, expected(&m.name), "{}", m.name);
        assert!(m.values.iter().zip(&m.is_absent).all(|(v, absent)| !absent || *v == 0.0), "absent values are 0");
    }
    // Nothing found is go-carbon's 404.
    assert_eq!(get(api, "/metrics/find/?format=protobuf&query=nothing.*").status, 404);
    assert_eq!(get(api, &format!("/render/?format=protobuf&target=nothing.*&{window}")).status, 404);

    // carbonapi_v3_pb: protobuf bodies sent with GET and the Accept header, as carbonapi's zipper.
    let accept = [("Accept", V3)];
    let body = v3::MultiGlobRequest {
        metrics: vec!["clu.*".into(), "clu.b.*".into(), "none.*".into()],
        start_time: t0,
        stop_time: t0 + 5,
    };
    let g: v3::MultiGlobResponse = decoded(&request(api, "GET", "/metrics/find/", &accept, &body.encode_to_vec()), V3);
    let globs: Vec<(&str, Vec<(&str, bool)>)> = g
        .metrics
        .iter()
        .map(|r| (r.name.as_str(), r.matches.iter().map(|m| (m.path.as_str(), m.is_leaf)).collect()))
        .collect();
    assert_eq!(
        globs,
        [("clu.*", vec![("clu.a", false), ("clu.b", false)]), ("clu.b.*", vec![("clu.b.z", true)]), ("none.*", vec![])]
    );
    let fetch = |name: &str, path_expression: &str| v3::FetchRequest {
        name: name.into(),
        start_time: t0 - 1,
        stop_time: t0 + 4,
        path_expression: path_expression.into(),
        ..Default::default()
    };
    let body = v3::MultiFetchRequest { metrics: vec![fetch("clu.a.*", "sumSeries(clu.a.*)"), fetch("clu.b.z", "")] };
    let r: v3::MultiFetchResponse =
        decoded(&request(api, "GET", "/render/?format=carbonapi_v3_pb", &[], &body.encode_to_vec()), V3);
    let got: Vec<(&str, &str)> = r.metrics.iter().map(|m| (m.name.as_str(), m.path_expression.as_str())).collect();
    assert_eq!(got, [("clu.a.x", "sumSeries(clu.a.*)"), ("clu.a.y", "sumSeries(clu.a.*)"), ("clu.b.z", "clu.b.z")]);
    for m in &r.metrics {
        assert_eq!((m.start_time, m.stop_time, m.step_time), (t0, t0 + 5, 1));
        assert_eq!((m.request_start_time, m.request_stop_time), (t0 - 1, t0 + 4));
        // The file's aggregation method and xFilesFactor (carbon's defaults), as go-carbon sends.
        assert_eq!((m.consolidation_func.as_str(), m.x_files_factor), ("average", 0.5));
        let values: Vec<Option<f64>> = m.values.iter().map(|v| (!v.is_nan()).then_some(*v)).collect();
        assert_eq!(values, expected(&m.name), "{}", m.name);
    }
    // An empty body: the query string's targets (and queries) instead.
    let r: v3::MultiFetchResponse =
        decoded(&request(api, "GET", &format!("/render/?target=clu.b.*&{window}"), &accept, b""), V3);
    assert_eq!((r.metrics.len(), r.metrics[0].path_expression.as_str()), (1, "clu.b.*"));
    let g: v3::MultiGlobResponse = decoded(&get(api, "/metrics/find/?format=carbonapi_v3_pb&query=clu.a.x"), V3);
    assert_eq!(g.metrics[0].matches[0].path, "clu.a.x");
    // Nothing found: 404; a body that is not the message: 400, never a 500 or a guess.
    let nothing = v3::MultiFetchRequest { metrics: vec![fetch("none.*", "none.*")] };
    assert_eq!(request(api, "GET", "/render/", &accept, &nothing.encode_to_vec()).status, 404);
    let none = v3::MultiGlobRequest { metrics: vec!["none.*".into()], ..Default::default() };
    assert_eq!(request(api, "GET", "/metrics/find/", &accept, &none.encode_to_vec()).status, 404);
    for garbage in [&b"\xff\xff\xff\xff"[..], b"\x0a\x10short", b"target=clu.a.x&format=json"] {
        for path in ["/render/", "/metrics/find/"] {
            let a = request(api, "GET", path, &accept, garbage);
            assert_eq!(a.status, 400, "{path} {garbage:?}: {}", a.text());
        }
    }
    let bad_target = v3::MultiFetchRequest { metrics: vec![fetch("sumSeries(clu.a.*", "")] };
    assert_eq!(request(api, "GET", "/render/", &accept, &bad_target.encode_to_vec()).status, 400);
    let empty_range = v3::MultiFetchRequest {
        metrics: vec![v3::FetchRequest { name: "clu.a.x".into(), start_time: t0, stop_time: t0, ..Default::default() }],
    };
    assert_eq!(request(api, "GET", "/render/", &accept, &empty_range.encode_to_vec()).status, 400);

    // Capabilities, as carbonapi's auto protocol asks them.
    let caps = v3::CapabilityRequest::default().encode_to_vec();
    let c: v3::CapabilityResponse = decoded(&request(api, "GET", "/_internal/capabilities/", &accept, &caps), V3);
    assert_eq!(c.supported_protocols[0], "carbonapi_v3_pb", "carbonapi's auto protocol takes the first");
    assert!(c.supported_protocols.iter().any(|p| p == "carbonapi_v2_pb"));
    assert!(c.like_splitted_requests && !c.support_filtering_functions && !c.name.is_empty());
    assert_eq!(request(api, "GET", "/_internal/capabilities/", &accept, b"\xff").status, 400);
    app.stop();
}
