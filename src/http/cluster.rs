//! The cluster read protocols: what a frontend that treats Carbyne as one storage node among
//! several asks, and how it is answered.
//!
//! - **graphite-web** (`CLUSTER_SERVERS`): `/metrics/find?local=1&format=pickle|msgpack` answers
//!   graphite-web's `pickle_nodes`/`msgpack_nodes` list, `{path, is_leaf}` plus, for a leaf,
//!   `intervals` as a list of `(start, end)` float pairs (graphite-web's frontend turns a plain
//!   list into its `IntervalSet`); `/render?local=1&format=pickle|msgpack` answers the
//!   `getInfo()` dicts of `format::series_info`. A frontend marks a node that answers anything
//!   but 200 as failed for REMOTE_RETRY_DELAY (60 s), so "nothing matched" is a 200 with `[]`.
//! - **carbonapi** (go-carbon's protocols, as its zipper sends them): `format=protobuf` (also
//!   `protobuf3`, `carbonapi_v2_pb`) with the targets or query in the query string, and
//!   `format=carbonapi_v3_pb` (or the header `Accept: application/x-carbonapi-v3-pb`) with a
//!   `MultiFetchRequest` or `MultiGlobRequest` protobuf body sent with GET; when that body is
//!   empty, `target`/`from`/`until` or `query` in the query string are read instead.
//!   `/_internal/capabilities/` answers a `CapabilityResponse` (carbonapi's `auto` protocol
//!   picks the first protocol listed: `carbonapi_v3_pb`).
//!
//! A frontend with REMOTE_STORE_USE_POST sends its fields as a `multipart/form-data` body
//! (urllib3's default for a POST): `form_params` reads it.
//!
//! graphite-web 1.1.8 itself cannot read msgpack on Python 3.10 and later (its bundled umsgpack
//! uses `collections.Hashable`; with python3-msgpack 1.0 installed it passes the removed
//! `encoding` argument), so on Debian 12 a CLUSTER_SERVERS entry must keep the default pickle;
//! the msgpack answers are graphite-web's format for the frontends that can read it.
//!
//! Answers follow go-carbon's carbonserver: a protobuf find or render that matches nothing is a
//! 404 `Not Found` (what carbonapi gets from go-carbon for the same question); a body
//! that is not the expected message, too many globs or targets, or a bad target is a 400 with
//! the reason; our own failures are 500s. Bodies are bounded by the server's request body limit
//! (`Settings::max_body_bytes`) before they are decoded, and the number of globs or targets one
//! body may carry by [`MAX_ITEMS`].
//!
//! Intervals are graphite-web's whisper reader's: `(now - maxRetention, max(file mtime, that
//! start))` with `now` the wall clock in fractional seconds. A name the writers hold but have
//! not written yet (no file) gets `(oldest cached point, now)`, or `(now, now)` when the cache
//! no longer holds it either: graphite-web never lists such names, and with its default
//! REMOTE_STORE_MERGE_RESULTS it fetches every remote leaf whatever its intervals.
//!
//! A v3 series fetched from a plain path carries its file's aggregation method as
//! `consolidationFunc` and its file's xFilesFactor, as go-carbon sends them; a series made by a
//! function carries its own (`average` unless consolidateBy said otherwise). A v3
//! `FetchRequest`'s `maxDataPoints` and `filterFunctions` are not applied, as go-carbon applies
//! neither: the capability answer says filtering functions are unsupported, and carbonapi
//! consolidates to maxDataPoints itself.
//!
//! Leaves out: the render engine (`crate::render`), the message types and the conversion of
//! series (`render::format::carbonapi`), graphite-web's JSON formats (`metrics.rs`).

use std::fs::File;
use std::path::Path;

use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::{error_response, params, text, Api, DiskBackend, FoundNode, Params};
use crate::render::format::carbonapi::{v2, v2_series, v3, v3_series, SUPPORTED_PROTOCOLS};
use crate::render::format::{msgpack, pickle};
use crate::render::{parse, time, Ctx, Expr, RenderError, Spent};
use crate::whisper::AggregationMethod;

/// Content type of carbonapi_v2_pb answers (go-carbon's).
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf";
/// Content type of carbonapi_v3_pb answers, and the `Accept` value that asks for them.
pub const CONTENT_TYPE_V3: &str = "application/x-carbonapi-v3-pb";
/// Most globs (find) or targets (render) one request may carry.
pub const MAX_ITEMS: usize = 10_000;
/// Latest time a v3 request may name (the end of year 9999); later times are read as it, and
/// negative ones as 0, so that no window arithmetic can overflow.
const TIME_MAX: i64 = 253_402_300_799;

/// What a find tells about a leaf beyond its name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leaf {
    /// A whisper file.
    File {
        /// Seconds of history the file keeps.
        max_retention: u32,
        /// Its modification time, Unix seconds.
        modified: f64,
        /// How its archives aggregate.
        aggregation: AggregationMethod,
        /// Its xFilesFactor.
        x_files_factor: f32,
    },
    /// No readable file (yet): the time of the oldest point the writers hold for it, if any.
    NoFile {
        /// Oldest cached timestamp.
        oldest_cached: Option<i64>,
    },
}

impl Leaf {
    /// graphite-web's interval of this leaf at `now` (see the module documentation).
    pub fn interval(&self, now: f64) -> (f64, f64) {
        match *self {
            Leaf::File { max_retention, modified, .. } => {
                let start = now - f64::from(max_retention);
                (start, modified.max(start))
            }
            Leaf::NoFile { oldest_cached: Some(t) } => ((t as f64).min(now), now),
            Leaf::NoFile { oldest_cached: None } => (now, now),
        }
    }
}

/// The leaves' files, as the cluster protocols describe them.
pub trait LeafInfo: Send + Sync {
    /// For each of `paths`, in order, what its file (or the cache) says.
    fn leaf_info(&self, paths: &[String]) -> Vec<Leaf>;
}

impl LeafInfo for DiskBackend {
    fn leaf_info(&self, paths: &[String]) -> Vec<Leaf> {
        let mut out: Vec<Option<Leaf>> =
            paths.iter().map(|p| self.files.path_of(p).and_then(|file| file_leaf(&file))).collect();
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|&i| paths[i].clone()).collect();
            for (i, points) in missing.into_iter().zip(self.cache.points_many(&names)) {
                out[i] = Some(Leaf::NoFile { oldest_cached: points.iter().map(|(t, _)| *t).min() });
            }
        }
        out.into_iter().map(|l| l.unwrap_or(Leaf::NoFile { oldest_cached: None })).collect()
    }
}

/// A file's header and mtime; None when it cannot be opened or read as whisper.
fn file_leaf(path: &Path) -> Option<Leaf> {
    let file = File::open(path).ok()?;
    let modified = file.metadata().ok()?.modified().ok()?;
    let modified = match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    let header = crate::whisper::read_header(&file, path).ok()?;
    Some(Leaf::File {
        max_retention: header.max_retention,
        modified,
        aggregation: header.aggregation,
        x_files_factor: header.x_files_factor,
    })
}

fn wall_clock_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn wall_clock() -> i64 {
    wall_clock_f64() as i64
}

/// Whether the request speaks carbonapi_v3_pb: `format=carbonapi_v3_pb` in the query string, or
/// `Accept: application/x-carbonapi-v3-pb` (what carbonapi's zipper sends).
pub(super) fn wants_v3(query: Option<&str>, headers: &HeaderMap) -> bool {
    let accepts = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| item.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(CONTENT_TYPE_V3)))
    });
    accepts || Params::parse(query, None).get("format") == Some("carbonapi_v3_pb")
}

/// The request's parameters as `super::params` reads them, and a `multipart/form-data` body
/// too (what a graphite-web frontend with REMOTE_STORE_USE_POST sends); a multipart body that
/// cannot be read is the request's fault (a 400).
pub(super) fn form_params(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Result<Params, RenderError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    match super::params::multipart_boundary(content_type) {
        Some(boundary) => {
            Params::parse_multipart(query, body, boundary).map_err(|e| RenderError::bad(format!("Bad request ({e})")))
        }
        None => Ok(params(query, headers, body)),
    }
}

/// Whether `format` names carbonapi's v2 protocol.
pub(super) fn is_v2(format: &str) -> bool {
    matches!(format, "protobuf" | "protobuf3" | "carbonapi_v2_pb")
}

fn protobuf(content_type: &'static str, message: &impl Message) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], message.encode_to_vec()).into_response()
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found")
}

// ---------------------------------------------------------------------------------------------
// Find.

/// The interval of each node: Some for leaves (see the module documentation), None for
/// branches.
fn intervals(api: &Api, nodes: &[FoundNode]) -> Vec<Option<(f64, f64)>> {
    let leaves: Vec<String> = nodes.iter().filter(|n| n.is_leaf).map(|n| n.path.clone()).collect();
    let now = wall_clock_f64();
    let mut info = api.backend.leaf_info(&leaves).into_iter();
    nodes.iter().map(|n| if n.is_leaf { info.next().map(|l| l.interval(now)) } else { None }).collect()
}

/// graphite-web's `pickle_nodes` / `msgpack_nodes` list for `nodes`, in their order.
pub(super) fn find_nodes(api: &Api, nodes: &[FoundNode], format: &str) -> Result<Response, RenderError> {
    use pickle::Value as V;
    let items = nodes
        .iter()
        .zip(intervals(api, nodes))
        .map(|(n, interval)| {
            let mut entry =
                vec![(V::Str("path".into()), V::Str(n.path.clone())), (V::Str("is_leaf".into()), V::Bool(n.is_leaf))];
            if let Some((start, end)) = interval {
                let pair = V::Tuple(vec![V::Float(start), V::Float(end)]);
                entry.push((V::Str("intervals".into()), V::List(vec![pair])));
            }
            V::Dict(entry)
        })
        .collect();
    let list = V::List(items);
    Ok(if format == "msgpack" {
        let body = msgpack::dumps(&list).ok_or_else(|| RenderError::bad("the answer is too large for msgpack"))?;
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-msgpack")], body).into_response()
    } else {
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/pickle")], pickle::dumps(&list)).into_response()
    })
}

fn glob_matches_v2(nodes: &[FoundNode]) -> Vec<v2::GlobMatch> {
    nodes.iter().map(|n| v2::GlobMatch { path: n.path.clone(), is_leaf: n.is_leaf }).collect()
}

/// carbonapi_v2_pb's `GlobResponse` for `query`; 404 when nothing matched (go-carbon's answer).
pub(super) fn find_v2(query: &str, nodes: &[FoundNode]) -> Response {
    if nodes.is_empty() {
        return not_found();
    }
    protobuf(CONTENT_TYPE_V2, &v2::GlobResponse { name: query.to_string(), matches: glob_matches_v2(nodes) })
}

/// The globs of a v3 find: the body's `MultiGlobRequest`, else the query string's `query`s.
fn globs_asked(p: &Params, body: &[u8]) -> Result<Vec<String>, RenderError> {
    let request = v3::MultiGlobRequest::decode(body)
        .map_err(|e| RenderError::bad(format!("Bad request (malformed MultiGlobRequest body: {e})")))?;
    let mut globs = request.metrics;
    if globs.is_empty() {
        globs = p.all("query").into_iter().map(str::to_string).collect();
    }
    globs.retain(|g| !g.is_empty());
    if globs.is_empty() {
        return Err(RenderError::bad("Bad request (no query)"));
    }
    if globs.len() > MAX_ITEMS {
        return Err(RenderError::bad(format!("Bad request (more than {MAX_ITEMS} globs in one find)")));
    }
    Ok(globs)
}

/// `/metrics/find/?format=carbonapi_v3_pb`: one `GlobResponse` per glob, in the order asked;
/// 404 when no glob matched anything.
pub(super) fn find_v3(api: &Api, p: &Params, body: &[u8], limit: usize) -> Response {
    let globs = match globs_asked(p, body) {
        Ok(g) => g,
        Err(e) => return error_response(&e),
    };
    let mut answer = v3::MultiGlobResponse::default();
    let mut found = 0usize;
    for glob in globs {
        let mut nodes = match api.backend.find(&glob, limit - found) {
            Ok(n) => n,
            Err(e) => return error_response(&e),
        };
        found += nodes.len();
        nodes.sort_by(|a, b| a.name().cmp(b.name()));
        let matches = nodes.iter().map(|n| v3::GlobMatch { path: n.path.clone(), is_leaf: n.is_leaf }).collect();
        answer.metrics.push(v3::GlobResponse { name: glob, matches });
    }
    if found == 0 {
        return not_found();
    }
    protobuf(CONTENT_TYPE_V3, &answer)
}

// ---------------------------------------------------------------------------------------------
// Render.

/// carbonapi_v2_pb's `MultiFetchResponse`; 404 when no series came out (go-carbon's answer).
pub(super) fn render_v2(series: &[crate::render::Series]) -> Response {
    if series.is_empty() {
        return not_found();
    }
    protobuf(CONTENT_TYPE_V2, &v2::MultiFetchResponse { metrics: series.iter().map(v2_series).collect() })
}

/// The fetches of a v3 render: the body's `MultiFetchRequest`, else the query string's targets
/// over its `from`/`until` (graphite-web's time syntax, as /render reads them).
fn fetches_asked(p: &Params, body: &[u8], now: i64) -> Result<Vec<v3::FetchRequest>, RenderError> {
    let request = v3::MultiFetchRequest::decode(body)
        .map_err(|e| RenderError::bad(format!("Bad request (malformed MultiFetchRequest body: {e})")))?;
    let mut fetches = request.metrics;
    if fetches.is_empty() {
        let tz = chrono_tz::UTC;
        let window = time::window(p.get("from"), p.get("until"), None, tz, now)
            .map_err(|e| RenderError::bad(format!("Bad request ({e})")))?;
        fetches = p
            .all("target")
            .into_iter()
            .map(|t| v3::FetchRequest {
                name: t.to_string(),
                start_time: window.from,
                stop_time: window.until,
                path_expression: t.to_string(),
                ..Default::default()
            })
            .collect();
    }
    fetches.retain(|f| !f.name.trim().is_empty());
    if fetches.len() > MAX_ITEMS {
        return Err(RenderError::bad(format!("Bad request (more than {MAX_ITEMS} targets in one render)")));
    }
    Ok(fetches)
}

/// The window of one fetch, bounded (see [`TIME_MAX`]); reversed bounds are swapped, as
/// /render's own window does, and an empty one is the request's fault.
fn fetch_window(f: &v3::FetchRequest) -> Result<(i64, i64), RenderError> {
    let (a, b) = (f.start_time.clamp(0, TIME_MAX), f.stop_time.clamp(0, TIME_MAX));
    if a == b {
        return Err(RenderError::bad(format!("Bad request (empty time range for {:?})", f.name)));
    }
    Ok((a.min(b), a.max(b)))
}

/// `/render/?format=carbonapi_v3_pb`.
pub(super) fn render_v3(api: &Api, p: &Params, body: &[u8]) -> Response {
    match fetch_v3(api, p, body) {
        Ok(answer) if answer.metrics.is_empty() => not_found(),
        Ok(answer) => protobuf(CONTENT_TYPE_V3, &answer),
        Err(e) => error_response(&e),
    }
}

fn fetch_v3(api: &Api, p: &Params, body: &[u8]) -> Result<v3::MultiFetchResponse, RenderError> {
    let now = match p.get("now") {
        Some(v) => time::parse_at_time(v, chrono_tz::UTC, wall_clock())
            .map_err(|e| RenderError::bad(format!("Bad request (now: {e})")))?,
        None => wall_clock(),
    };
    let spent = Spent::default();
    let mut answer = v3::MultiFetchResponse::default();
    for fetch in fetches_asked(p, body, now)? {
        let (from, until) = fetch_window(&fetch)?;
        let expr = parse(&fetch.name)?;
        let mut ctx = Ctx::new(api.backend.as_ref(), from, until, now, &spent);
        ctx.limits = api.limits;
        let series = ctx.eval(&expr)?;
        let path_expression = if fetch.path_expression.is_empty() { &fetch.name } else { &fetch.path_expression };
        let mut out: Vec<v3::FetchResponse> =
            series.iter().map(|s| v3_series(s, path_expression, fetch.start_time, fetch.stop_time)).collect();
        if matches!(expr, Expr::Path(_)) {
            let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
            for (m, leaf) in out.iter_mut().zip(api.backend.leaf_info(&names)) {
                if let Leaf::File { aggregation, x_files_factor, .. } = leaf {
                    m.consolidation_func = aggregation.name().to_string();
                    m.x_files_factor = x_files_factor;
                }
            }
        }
        answer.metrics.extend(out);
    }
    Ok(answer)
}

// ---------------------------------------------------------------------------------------------
// Capabilities.

/// `/_internal/capabilities/`: carbonapi's `auto` protocol asks this (a `CapabilityRequest`
/// body, which has no fields) and speaks the first protocol listed. `format=json` answers the
/// same fields as JSON, as go-carbon does.
pub(super) async fn capabilities(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    if v3::CapabilityRequest::decode(&body[..]).is_err() {
        return text(StatusCode::BAD_REQUEST, "Bad request (malformed CapabilityRequest body)");
    }
    let answer = v3::CapabilityResponse {
        supported_protocols: SUPPORTED_PROTOCOLS.iter().map(|p| p.to_string()).collect(),
        name: crate::telemetry::hostname(),
        high_precision_timestamps: false,
        support_filtering_functions: false,
        like_splitted_requests: true,
        support_streaming: false,
    };
    let json = Params::parse(q.as_deref(), None).get("format") == Some("json");
    if json && !wants_v3(q.as_deref(), &headers) {
        let value = serde_json::json!({
            "supportedProtocols": answer.supported_protocols,
            "name": answer.name,
            "highPrecisionTimestamps": false,
            "supportFilteringFunctions": false,
            "likeSplittedRequests": true,
            "supportStreaming": false,
        });
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response();
    }
    protobuf(CONTENT_TYPE_V3, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn intervals_are_graphite_webs() {
        let file = Leaf::File {
            max_retention: 3600,
            modified: 1_000_050.5,
            aggregation: AggregationMethod::Average,
            x_files_factor: 0.5,
        };
        assert_eq!(file.interval(1_000_100.25), (996_500.25, 1_000_050.5));
        // A file not written since before its retention began: the interval is empty, not
        // reversed.
        let stale = Leaf::File {
            max_retention: 3600,
            modified: 10.0,
            aggregation: AggregationMethod::Average,
            x_files_factor: 0.5,
        };
        assert_eq!(stale.interval(1_000_100.25), (996_500.25, 996_500.25));
        assert_eq!(Leaf::NoFile { oldest_cached: Some(990) }.interval(1000.5), (990.0, 1000.5));
        assert_eq!(Leaf::NoFile { oldest_cached: None }.interval(1000.5), (1000.5, 1000.5));
    }

    #[test]
    fn v3_is_asked_by_format_or_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_v3(Some("format=pickle"), &h));
        assert!(wants_v3(Some("format=carbonapi_v3_pb"), &h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/x-carbonapi-v3-pb"));
        assert!(wants_v3(None, &h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/html, application/x-carbonapi-v3-pb;q=0.9"));
        assert!(wants_v3(Some("format=json"), &h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_v3(Some("format=protobuf"), &h));
        assert!(is_v2("protobuf") && is_v2("carbonapi_v2_pb") && !is_v2("pickle"));
    }

    #[test]
    fn v3_bodies_are_read_and_bounded() {
        let p = Params::parse(Some("query=a.*&query=b"), None);
        assert_eq!(globs_asked(&p, b"").unwrap(), ["a.*", "b"], "an empty body falls back to the query string");
        let body = v3::MultiGlobRequest { metrics: vec!["x.*".into()], start_time: 1, stop_time: 2 }.encode_to_vec();
        assert_eq!(globs_asked(&p, &body).unwrap(), ["x.*"]);
        assert!(globs_asked(&Params::default(), b"").unwrap_err().is_bad_request());
        // A truncated or garbage body is refused, not guessed at.
        assert!(globs_asked(&p, &body[..body.len() - 1]).unwrap_err().is_bad_request());
        assert!(globs_asked(&p, b"\xff\xff\xff").unwrap_err().is_bad_request());
        let many = v3::MultiGlobRequest { metrics: vec!["a".into(); MAX_ITEMS + 1], ..Default::default() };
        assert!(globs_asked(&p, &many.encode_to_vec()).unwrap_err().to_string().contains("more than"));

        let q = Params::parse(Some("target=a.b&target=c.*&from=100&until=200"), None);
        let fetches = fetches_asked(&q, b"", 1000).unwrap();
        assert_eq!(fetches.len(), 2);
        assert_eq!((fetches[1].name.as_str(), fetches[1].start_time, fetches[1].stop_time), ("c.*", 100, 200));
        let body = v3::MultiFetchRequest {
            metrics: vec![v3::FetchRequest { name: "z".into(), start_time: 5, stop_time: 9, ..Default::default() }],
        };
        assert_eq!(fetches_asked(&q, &body.encode_to_vec(), 1000).unwrap()[0].name, "z");
        assert!(fetches_asked(&q, b"\x0a\x05ab", 1000).unwrap_err().is_bad_request());
    }

    #[test]
    fn fetch_windows_are_bounded() {
        let f = |start_time, stop_time| v3::FetchRequest { start_time, stop_time, ..Default::default() };
        assert_eq!(fetch_window(&f(10, 20)).unwrap(), (10, 20));
        assert_eq!(fetch_window(&f(20, 10)).unwrap(), (10, 20));
        assert_eq!(fetch_window(&f(i64::MIN, i64::MAX)).unwrap(), (0, TIME_MAX));
        assert!(fetch_window(&f(7, 7)).unwrap_err().is_bad_request());
    }
}
