//! One carbonlink request: the unpickled dict in, the reply dict out, as carbon's
//! `CacheManagementHandler.stringReceived` answers it.
//!
//! | `type` | reply |
//! |---|---|
//! | `cache-query` (`metric`) | `{'datapoints': [(ts, value), ...]}` |
//! | `cache-query-bulk` (`metrics`) | `{'datapointsByMetric': {metric: [(ts, value), ...]}}` |
//! | `get-metadata` (`metric`, `key`) | `{'value': 'average'}` |
//! | `set-metadata` (`metric`, `key`, `value`) | `{'old_value': ..., 'new_value': ...}` |
//! | anything else | `{'error': 'Invalid request type "<type>"'}` |
//!
//! Failures are replies too: `{'error': text}`, the text being the last line of the traceback
//! carbon would send (`KeyError: 'metric'`, `ValueError: Unsupported metadata key "x"`), or the
//! whisper engine's message. Only a request that is not a dict at all is refused
//! ([`NotADict`]): carbon's handler raises on it and Twisted drops the connection.
//!
//! Differences from carbon 1.1, deliberate:
//! - names are normalised as the receivers normalise them before caching (leading `~`s
//!   stripped, tags sorted), so `a;z=1;b=2` finds what was received under that name; a name
//!   the receivers would refuse has nothing cached (`[]`), and no file (an error);
//! - datapoints come sorted by timestamp, one per timestamp (carbon gives cache insertion
//!   order); the timestamps are floats as carbon's receivers make them, or ints when
//!   MIN_TIMESTAMP_RESOLUTION is set (as carbon then stores them);
//! - a `metric` that is not a `str` is a `TypeError` reply (carbon looks it up and finds
//!   nothing); a bulk query names each metric once in its reply even if asked twice (Python's
//!   dict would hold it once too);
//! - when the writers do not answer within [`CACHE_TIMEOUT`] the reply is an error, not an
//!   empty list, so that the client does not take "not asked" for "nothing cached".

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use crate::cache::{shard_of, CacheQuery, PointLists};
use crate::protocol::name::validate;
use crate::protocol::unpickle::Value;
use crate::render::format::pickle::Value as Reply;
use crate::render::store::Files;
use crate::whisper::{AggregationMethod, Whisper, WriteOptions};

/// How long a request waits for the writers' cached points: graphite-web's own
/// CARBONLINK_TIMEOUT (1 s), past which the client has given up anyway.
pub const CACHE_TIMEOUT: Duration = crate::render::store::CACHE_ANSWER_TIMEOUT;

/// The only metadata key whisper has.
const AGGREGATION_METHOD: &str = "aggregationMethod";
/// Longest rendering of a client's value quoted back in an error.
const QUOTED_MAX: usize = 200;

/// The writers did not answer within the timeout (or are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUnanswered;

/// Where cached, not yet written points come from.
pub trait CachedPoints: Send + Sync + fmt::Debug {
    /// The cached points of each (canonical) name, in the order asked, each sorted by
    /// timestamp with one point per timestamp.
    fn points_many(&self, names: &[Box<[u8]>]) -> Result<PointLists, CacheUnanswered>;
}

/// The writers' caches, asked by message: one `PointsMany` per writer owning a name asked.
#[derive(Debug, Clone)]
pub struct WriterCache {
    /// One query channel per writer; writer `w` owns the shards `s` with `s % W == w`.
    queries: Vec<flume::Sender<CacheQuery>>,
    n_shards: usize,
    timeout: Duration,
}

impl WriterCache {
    /// The caches behind `queries` (one per writer) over `n_shards` shards.
    pub fn new(queries: Vec<flume::Sender<CacheQuery>>, n_shards: usize, timeout: Duration) -> WriterCache {
        WriterCache { queries, n_shards: n_shards.max(1), timeout }
    }
}

impl CachedPoints for WriterCache {
    fn points_many(&self, names: &[Box<[u8]>]) -> Result<PointLists, CacheUnanswered> {
        let mut out = vec![Vec::new(); names.len()];
        if names.is_empty() || self.queries.is_empty() {
            return Ok(out);
        }
        let deadline = Instant::now() + self.timeout;
        let mut by_writer: Vec<Vec<usize>> = vec![Vec::new(); self.queries.len()];
        for (i, name) in names.iter().enumerate() {
            by_writer[shard_of(name, self.n_shards) % self.queries.len()].push(i);
        }
        // Every question first, then every answer: the writers work in parallel.
        let mut pending = Vec::new();
        for (writer, idxs) in by_writer.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let asked = idxs.iter().map(|&i| names[i].clone()).collect();
            let (query, answer) = CacheQuery::points_many(asked);
            self.queries[writer].send_deadline(query, deadline).map_err(|_| CacheUnanswered)?;
            pending.push((idxs, answer));
        }
        for (idxs, answer) in pending {
            let lists = answer.recv_deadline(deadline).map_err(|_| CacheUnanswered)?;
            for (i, points) in idxs.into_iter().zip(lists) {
                out[i] = points;
            }
        }
        Ok(out)
    }
}

/// What a request asked, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cache-query`.
    CacheQuery,
    /// `cache-query-bulk`.
    BulkQuery,
    /// `get-metadata`.
    GetMetadata,
    /// `set-metadata`.
    SetMetadata,
    /// No `type`, or one carbon does not know.
    Invalid,
}

/// A request's reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What was asked.
    pub kind: Kind,
    /// The dict to send back.
    pub reply: Reply,
    /// Whether the reply is `{'error': ...}`.
    pub is_error: bool,
    /// Whether the error is the writers not answering in time.
    pub cache_unanswered: bool,
}

/// The request is not a dict: the connection is closed, as carbon's would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotADict;

/// Answers requests: cached points from the writers, metadata from the files.
#[derive(Debug)]
pub struct Handler {
    cache: Box<dyn CachedPoints>,
    files: Files,
    write_opts: WriteOptions,
    integer_timestamps: bool,
}

/// A failed request: the text of its `{'error': ...}` reply.
struct Failure {
    text: String,
    cache_unanswered: bool,
}

impl Failure {
    fn new(text: impl Into<String>) -> Failure {
        Failure { text: text.into(), cache_unanswered: false }
    }
}

impl Handler {
    /// A handler over `cache` and the whisper files of `files`, rewriting headers with
    /// `write_opts` (WHISPER_LOCK_WRITES, WHISPER_AUTOFLUSH). `integer_timestamps`: reply
    /// with int timestamps (MIN_TIMESTAMP_RESOLUTION is set) instead of floats.
    pub fn new(
        cache: Box<dyn CachedPoints>,
        files: Files,
        write_opts: WriteOptions,
        integer_timestamps: bool,
    ) -> Handler {
        Handler { cache, files, write_opts, integer_timestamps }
    }

    /// The reply to `request`.
    pub fn answer(&self, request: &Value) -> Result<Answer, NotADict> {
        if !matches!(request, Value::Dict(_)) {
            return Err(NotADict);
        }
        let (kind, result) = match request.get("type") {
            None => (Kind::Invalid, Err(Failure::new("KeyError: 'type'"))),
            Some(Value::Str(t)) if t == "cache-query" => (Kind::CacheQuery, self.cache_query(request)),
            Some(Value::Str(t)) if t == "cache-query-bulk" => (Kind::BulkQuery, self.bulk_query(request)),
            Some(Value::Str(t)) if t == "get-metadata" => (Kind::GetMetadata, self.get_metadata(request)),
            Some(Value::Str(t)) if t == "set-metadata" => (Kind::SetMetadata, self.set_metadata(request)),
            Some(other) => {
                (Kind::Invalid, Err(Failure::new(format!("Invalid request type \"{}\"", python_str(other)))))
            }
        };
        Ok(match result {
            Ok(reply) => Answer { kind, reply, is_error: false, cache_unanswered: false },
            Err(failure) => Answer {
                kind,
                reply: dict([("error", Reply::Str(failure.text))]),
                is_error: true,
                cache_unanswered: failure.cache_unanswered,
            },
        })
    }

    fn cache_query(&self, request: &Value) -> Result<Reply, Failure> {
        let metric = str_field(request, "metric")?;
        let lists = self.cached(&[metric])?;
        let points = lists.into_iter().next().unwrap_or_default();
        Ok(dict([("datapoints", self.datapoints(points))]))
    }

    fn bulk_query(&self, request: &Value) -> Result<Reply, Failure> {
        let metrics = match request.get("metrics") {
            None => return Err(Failure::new("KeyError: 'metrics'")),
            Some(v) => v.as_items().ok_or_else(|| type_error("metrics", "a list", v))?,
        };
        let mut seen = HashSet::new();
        let mut asked = Vec::new();
        for m in metrics {
            let name = m.as_str().ok_or_else(|| type_error("metrics", "a list of str", m))?;
            if seen.insert(name) {
                asked.push(name);
            }
        }
        let lists = self.cached(&asked)?;
        let by_metric =
            asked.iter().zip(lists).map(|(m, points)| (Reply::Str((*m).to_string()), self.datapoints(points)));
        Ok(dict([("datapointsByMetric", Reply::Dict(by_metric.collect()))]))
    }

    fn get_metadata(&self, request: &Value) -> Result<Reply, Failure> {
        let metric = str_field(request, "metric")?;
        check_key(request)?;
        let path = self.path_of(metric)?;
        let header = crate::whisper::info(&path).map_err(|e| Failure::new(e.to_string()))?;
        Ok(dict([("value", Reply::Str(header.aggregation.name().to_string()))]))
    }

    fn set_metadata(&self, request: &Value) -> Result<Reply, Failure> {
        let metric = str_field(request, "metric")?;
        check_key(request)?;
        let value = str_field(request, "value")?;
        let method: AggregationMethod =
            value.parse().map_err(|e: crate::whisper::WhisperError| Failure::new(e.to_string()))?;
        let path = self.path_of(metric)?;
        // Only the header is written: a mapping would cost more than it saves.
        let opts = WriteOptions { mmap: false, ..self.write_opts };
        let mut file = Whisper::open(&path, opts).map_err(|e| Failure::new(e.to_string()))?;
        let (old, _) = file.set_aggregation(Some(method), None).map_err(|e| Failure::new(e.to_string()))?;
        Ok(dict([("old_value", Reply::Str(old.name().to_string())), ("new_value", Reply::Str(value.to_string()))]))
    }

    /// The cached points of each metric as asked; a name the receivers would refuse has none.
    fn cached(&self, metrics: &[&str]) -> Result<PointLists, Failure> {
        let canonical: Vec<Option<Box<[u8]>>> =
            metrics.iter().map(|m| validate(m.as_bytes()).ok().map(|v| v.canonical().as_bytes().into())).collect();
        let valid: Vec<Box<[u8]>> = canonical.iter().flatten().cloned().collect();
        let mut found = self
            .cache
            .points_many(&valid)
            .map_err(|_| Failure {
                text: format!("cache did not answer within {} ms", CACHE_TIMEOUT.as_millis()),
                cache_unanswered: true,
            })?
            .into_iter();
        Ok(canonical.iter().map(|c| if c.is_some() { found.next().unwrap_or_default() } else { Vec::new() }).collect())
    }

    fn datapoints(&self, points: Vec<(i64, f64)>) -> Reply {
        let ts = |t: i64| if self.integer_timestamps { Reply::Int(t) } else { Reply::Float(t as f64) };
        Reply::List(points.into_iter().map(|(t, v)| Reply::Tuple(vec![ts(t), Reply::Float(v)])).collect())
    }

    fn path_of(&self, metric: &str) -> Result<std::path::PathBuf, Failure> {
        self.files.path_of(metric).ok_or_else(|| Failure::new(format!("ValueError: invalid metric name {metric:?}")))
    }
}

fn dict<const N: usize>(entries: [(&str, Reply); N]) -> Reply {
    Reply::Dict(entries.into_iter().map(|(k, v)| (Reply::Str(k.to_string()), v)).collect())
}

/// `request[key]`, which must be a `str`.
fn str_field<'r>(request: &'r Value, key: &str) -> Result<&'r str, Failure> {
    match request.get(key) {
        None => Err(Failure::new(format!("KeyError: '{key}'"))),
        Some(v) => v.as_str().ok_or_else(|| type_error(key, "a str", v)),
    }
}

fn type_error(key: &str, wanted: &str, got: &Value) -> Failure {
    Failure::new(format!("TypeError: '{key}' must be {wanted}, not {}", got.type_name()))
}

/// whisper's only metadata key; anything else is carbon's `ValueError`.
fn check_key(request: &Value) -> Result<(), Failure> {
    match str_field(request, "key")? {
        AGGREGATION_METHOD => Ok(()),
        other => Err(Failure::new(format!("ValueError: Unsupported metadata key \"{}\"", cap(other.to_string())))),
    }
}

/// Python's `str()` of a client's value, for quoting it back in an error (at most
/// [`QUOTED_MAX`] bytes).
fn python_str(v: &Value) -> String {
    match v {
        Value::Str(s) => cap(s.clone()),
        other => {
            let mut out = String::new();
            python_repr(other, &mut out);
            cap(out)
        }
    }
}

/// Python's `repr()`, written until the output passes [`QUOTED_MAX`] bytes.
fn python_repr(v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    if out.len() > QUOTED_MAX {
        return;
    }
    let seq = |items: &[Value], open: &str, close: &str, out: &mut String| {
        out.push_str(open);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            python_repr(item, out);
        }
        if items.len() == 1 && open == "(" {
            out.push(',');
        }
        out.push_str(close);
    };
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&crate::pyfmt::py_repr(*f)),
        Value::Str(s) => {
            let _ = write!(out, "'{}'", s.escape_default());
        }
        Value::Bytes(b) => {
            let _ = write!(out, "b'{}'", b.escape_ascii());
        }
        Value::List(items) => seq(items, "[", "]", out),
        Value::Tuple(items) => seq(items, "(", ")", out),
        Value::Dict(entries) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_repr(k, out);
                out.push_str(": ");
                python_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// `text` cut to [`QUOTED_MAX`] bytes at a character boundary, with `...` when cut.
fn cap(mut text: String) -> String {
    if text.len() > QUOTED_MAX {
        let mut end = QUOTED_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::protocol::name::TagFileNames;
    use crate::whisper::{ArchiveSpec, CreateOptions};

    /// A cache of fixed points under canonical names, or one that never answers.
    #[derive(Debug, Default)]
    struct FakeCache {
        points: HashMap<Vec<u8>, Vec<(i64, f64)>>,
        unanswered: bool,
    }

    impl CachedPoints for FakeCache {
        fn points_many(&self, names: &[Box<[u8]>]) -> Result<PointLists, CacheUnanswered> {
            if self.unanswered {
                return Err(CacheUnanswered);
            }
            Ok(names.iter().map(|n| self.points.get(&n[..]).cloned().unwrap_or_default()).collect())
        }
    }

    fn handler(dir: &Path, cache: FakeCache, integer_timestamps: bool) -> Handler {
        let files = Files { data_dir: dir.to_path_buf(), tag_files: TagFileNames::Hashed };
        Handler::new(Box::new(cache), files, WriteOptions::default(), integer_timestamps)
    }

    fn request(entries: &[(&str, Value)]) -> Value {
        Value::Dict(entries.iter().map(|(k, v)| (Value::Str((*k).into()), v.clone())).collect())
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn r(text: &str) -> Reply {
        Reply::Str(text.into())
    }

    fn error(answer: &Answer) -> &str {
        assert!(answer.is_error, "{answer:?}");
        match &answer.reply {
            Reply::Dict(entries) if entries.len() == 1 && entries[0].0 == r("error") => match &entries[0].1 {
                Reply::Str(text) => text,
                other => panic!("error is {other:?}"),
            },
            other => panic!("not an error reply: {other:?}"),
        }
    }

    fn cache_with(entries: &[(&str, &[(i64, f64)])]) -> FakeCache {
        let points = entries.iter().map(|(n, p)| (n.as_bytes().to_vec(), p.to_vec())).collect();
        FakeCache { points, ..FakeCache::default() }
    }

    #[test]
    fn cache_query_answers_the_cached_points_as_float_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), cache_with(&[("a.b", &[(100, 1.5), (110, -2.0)])]), false);
        let answer = h.answer(&request(&[("type", s("cache-query")), ("metric", s("a.b"))])).unwrap();
        let want = |t: f64, v: f64| Reply::Tuple(vec![Reply::Float(t), Reply::Float(v)]);
        assert_eq!(
            answer.reply,
            Reply::Dict(vec![(r("datapoints"), Reply::List(vec![want(100.0, 1.5), want(110.0, -2.0)]))])
        );
        assert_eq!((answer.kind, answer.is_error), (Kind::CacheQuery, false));
        let nothing = h.answer(&request(&[("type", s("cache-query")), ("metric", s("x.y"))])).unwrap();
        assert_eq!(nothing.reply, Reply::Dict(vec![(r("datapoints"), Reply::List(vec![]))]));
    }

    #[test]
    fn integer_timestamps_with_a_timestamp_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), cache_with(&[("a", &[(100, 1.0)])]), true);
        let answer = h.answer(&request(&[("metric", s("a")), ("type", s("cache-query"))])).unwrap();
        let point = Reply::Tuple(vec![Reply::Int(100), Reply::Float(1.0)]);
        assert_eq!(answer.reply, Reply::Dict(vec![(r("datapoints"), Reply::List(vec![point]))]));
    }

    #[test]
    fn names_are_normalised_as_the_receivers_cache_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with(&[("cpu;a=1;z=2", &[(5, 5.0)]), ("plain.name", &[(6, 6.0)])]);
        let h = handler(dir.path(), cache, false);
        let asked =
            |metric: &str| h.answer(&request(&[("type", s("cache-query")), ("metric", s(metric))])).unwrap().reply;
        let one = |t: f64, v: f64| {
            Reply::Dict(vec![(
                r("datapoints"),
                Reply::List(vec![Reply::Tuple(vec![Reply::Float(t), Reply::Float(v)])]),
            )])
        };
        assert_eq!(asked("cpu;z=2;a=1"), one(5.0, 5.0), "tags sorted");
        assert_eq!(asked("~plain.name"), one(6.0, 6.0), "leading ~ stripped");
        assert_eq!(asked("../escape"), Reply::Dict(vec![(r("datapoints"), Reply::List(vec![]))]));
    }

    #[test]
    fn bulk_queries_key_by_the_names_asked_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), cache_with(&[("a", &[(1, 1.0)]), ("t;k=v", &[(2, 2.0)])]), false);
        let metrics = Value::List(vec![s("a"), s("missing"), s("a"), s("t;k=v"), s("bad..name")]);
        let answer = h.answer(&request(&[("type", s("cache-query-bulk")), ("metrics", metrics)])).unwrap();
        let pts = |t: f64, v: f64| Reply::List(vec![Reply::Tuple(vec![Reply::Float(t), Reply::Float(v)])]);
        let want = Reply::Dict(vec![(
            r("datapointsByMetric"),
            Reply::Dict(vec![
                (r("a"), pts(1.0, 1.0)),
                (r("missing"), Reply::List(vec![])),
                (r("t;k=v"), pts(2.0, 2.0)),
                (r("bad..name"), Reply::List(vec![])),
            ]),
        )]);
        assert_eq!(answer.reply, want);
        assert_eq!(answer.kind, Kind::BulkQuery);
        let tuple = Value::Tuple(vec![s("a")]);
        assert!(!h.answer(&request(&[("type", s("cache-query-bulk")), ("metrics", tuple)])).unwrap().is_error);
        let bad = h.answer(&request(&[("type", s("cache-query-bulk")), ("metrics", Value::List(vec![Value::Int(1)]))]));
        assert_eq!(error(&bad.unwrap()), "TypeError: 'metrics' must be a list of str, not int");
        let missing = h.answer(&request(&[("type", s("cache-query-bulk"))])).unwrap();
        assert_eq!(error(&missing), "KeyError: 'metrics'");
    }

    #[test]
    fn writers_not_answering_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), FakeCache { unanswered: true, ..FakeCache::default() }, false);
        let answer = h.answer(&request(&[("type", s("cache-query")), ("metric", s("a"))])).unwrap();
        assert!(answer.cache_unanswered);
        assert_eq!(error(&answer), "cache did not answer within 1000 ms");
    }

    #[test]
    fn writer_cache_asks_each_writer_owning_a_name_and_keeps_the_order() {
        let (tx0, rx0) = flume::bounded(4);
        let (tx1, rx1) = flume::bounded(4);
        let cache = WriterCache::new(vec![tx0, tx1], 8, Duration::from_secs(5));
        let names: Vec<Box<[u8]>> = (0..20).map(|i| format!("m{i}").into_bytes().into()).collect();
        let serve = |rx: flume::Receiver<CacheQuery>, writer: usize| {
            std::thread::spawn(move || {
                if let Ok(CacheQuery::PointsMany { names, reply }) = rx.recv_timeout(Duration::from_secs(5)) {
                    for n in &names {
                        assert_eq!(shard_of(n, 8) % 2, writer, "asked the writer that owns it");
                    }
                    let lists = names.iter().map(|n| vec![(n.len() as i64, writer as f64)]).collect();
                    reply.send(lists).unwrap();
                }
            })
        };
        let (a, b) = (serve(rx0, 0), serve(rx1, 1));
        let lists = cache.points_many(&names).unwrap();
        a.join().unwrap();
        b.join().unwrap();
        for (name, points) in names.iter().zip(&lists) {
            assert_eq!(points, &vec![(name.len() as i64, (shard_of(name, 8) % 2) as f64)]);
        }
        // A writer that never answers: an error within the timeout, not a hang.
        let (tx, _rx) = flume::bounded(4);
        let silent = WriterCache::new(vec![tx], 1, Duration::from_millis(20));
        assert_eq!(silent.points_many(&names[..1]), Err(CacheUnanswered));
        assert_eq!(WriterCache::new(vec![], 1, Duration::ZERO).points_many(&names[..2]), Ok(vec![vec![], vec![]]));
    }

    fn make_file(dir: &Path, rel: &str) -> std::path::PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        crate::whisper::create(&path, &[ArchiveSpec { seconds_per_point: 60, points: 10 }], &CreateOptions::default())
            .unwrap();
        path
    }

    #[test]
    fn metadata_reads_and_rewrites_the_files_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = make_file(dir.path(), "a/b.wsp");
        let h = handler(dir.path(), FakeCache::default(), false);
        let get = request(&[("type", s("get-metadata")), ("metric", s("a.b")), ("key", s("aggregationMethod"))]);
        assert_eq!(h.answer(&get).unwrap().reply, Reply::Dict(vec![(r("value"), r("average"))]));
        let set = |v: &str| {
            let req =
                [("type", s("set-metadata")), ("metric", s("a.b")), ("key", s("aggregationMethod")), ("value", s(v))];
            h.answer(&request(&req)).unwrap()
        };
        assert_eq!(set("max").reply, Reply::Dict(vec![(r("old_value"), r("average")), (r("new_value"), r("max"))]));
        assert_eq!(crate::whisper::info(&path).unwrap().aggregation, AggregationMethod::Max);
        assert_eq!(set("sum").reply, Reply::Dict(vec![(r("old_value"), r("max")), (r("new_value"), r("sum"))]));
        assert_eq!(h.answer(&get).unwrap().reply, Reply::Dict(vec![(r("value"), r("sum"))]));
        assert_eq!(error(&set("median")), "unrecognized aggregation method: median");
        assert_eq!(crate::whisper::info(&path).unwrap().aggregation, AggregationMethod::Sum, "unchanged");
    }

    #[test]
    fn metadata_errors_are_replies() {
        let dir = tempfile::tempdir().unwrap();
        make_file(dir.path(), "a.wsp");
        let h = handler(dir.path(), FakeCache::default(), false);
        let ask = |entries: &[(&str, Value)]| h.answer(&request(entries)).unwrap();
        let key = ("key", s("aggregationMethod"));
        let unsupported = ask(&[("type", s("get-metadata")), ("metric", s("a")), ("key", s("xFilesFactor"))]);
        assert_eq!(error(&unsupported), "ValueError: Unsupported metadata key \"xFilesFactor\"");
        let missing = ask(&[("type", s("get-metadata")), ("metric", s("no.file")), key.clone()]);
        assert!(error(&missing).contains("No such file"), "{}", error(&missing));
        assert_eq!(error(&ask(&[("type", s("get-metadata")), key.clone()])), "KeyError: 'metric'");
        assert_eq!(error(&ask(&[("type", s("get-metadata")), ("metric", s("a"))])), "KeyError: 'key'");
        let no_value = ask(&[("type", s("set-metadata")), ("metric", s("a")), key.clone()]);
        assert_eq!(error(&no_value), "KeyError: 'value'");
        let escape = ask(&[("type", s("get-metadata")), ("metric", s("../a")), key]);
        assert!(error(&escape).starts_with("ValueError: invalid metric name"));
        let not_str = ask(&[("type", s("cache-query")), ("metric", Value::Int(3))]);
        assert_eq!(error(&not_str), "TypeError: 'metric' must be a str, not int");
    }

    #[test]
    fn unknown_types_and_missing_types_are_carbons_errors() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), FakeCache::default(), false);
        let ask = |entries: &[(&str, Value)]| h.answer(&request(entries)).unwrap();
        let bogus = ask(&[("type", s("bogus"))]);
        assert_eq!((error(&bogus), bogus.kind), ("Invalid request type \"bogus\"", Kind::Invalid));
        assert_eq!(error(&ask(&[("type", Value::Int(5))])), "Invalid request type \"5\"");
        let tuple = Value::Tuple(vec![Value::Bytes(b"x\x00".to_vec()), Value::Float(0.5), Value::None]);
        assert_eq!(error(&ask(&[("type", tuple)])), "Invalid request type \"(b'x\\x00', 0.5, None)\"");
        assert_eq!(error(&ask(&[("type", s(&"x".repeat(1000)))])).len(), "Invalid request type \"\"".len() + 203);
        assert_eq!(error(&ask(&[("metric", s("a"))])), "KeyError: 'type'");
        assert_eq!(h.answer(&Value::List(vec![])), Err(NotADict));
        assert_eq!(h.answer(&s("cache-query")), Err(NotADict));
    }
}
