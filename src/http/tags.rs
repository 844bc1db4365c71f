//! graphite-web's tag HTTP API (`/tags...`, C.11 of the read-side reference), answered from
//! Carbyne's own tag index instead of a TagDB that carbon feeds: `/tags` (list),
//! `/tags/<tag>` (values with counts), `/tags/findSeries`, `/tags/tagSeries`,
//! `/tags/tagMultiSeries`, `/tags/delSeries`, `/tags/autoComplete/tags` and
//! `/tags/autoComplete/values`.
//!
//! Shapes and errors as graphite-web's `jsonResponse` views: JSON bodies (`pretty` indents and
//! sorts keys), errors as `{"error": message}` with status 400 for the caller's mistakes (bad
//! expression, missing parameter, bad limit) and 405 for a wrong method. Differences: listed
//! tags and values carry no database `id` (there is no database), a tag is listed only while a
//! series has it (graphite-web keeps a deleted series' tag names), and errors graphite-web
//! answers with a 500 (a path it cannot parse in tagSeries) are 400 here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{blocking, params, Api, Params};
use crate::index::TagError;

/// graphite-web's TAGDB_AUTOCOMPLETE_LIMIT.
const AUTOCOMPLETE_LIMIT: usize = 100;
/// Most series one findSeries lists.
const FIND_SERIES_LIMIT: usize = 1_000_000;
/// Most paths one tagMultiSeries or delSeries takes.
const PATHS_MAX: usize = 10_000;

/// The tag index, as these handlers need it.
pub trait Tags: Send + Sync {
    /// Tagged series matching every expression, sorted; more than `limit` is an error.
    fn find_series(&self, exprs: &[String], limit: usize) -> Result<Vec<String>, TagError>;
    /// Tag names, sorted (`filter`: regex anchored at the start).
    fn list_tags(&self, filter: Option<&str>, limit: Option<usize>) -> Result<Vec<String>, TagError>;
    /// A tag's values and counts, None for an unknown tag.
    fn tag_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Option<Vec<(String, usize)>>, TagError>;
    /// `/tags/autoComplete/tags`.
    fn auto_complete_tags(&self, exprs: &[String], prefix: &str, limit: usize) -> Result<Vec<String>, TagError>;
    /// `/tags/autoComplete/values`.
    fn auto_complete_values(
        &self,
        exprs: &[String],
        tag: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError>;
    /// Adds series (as given) to the index and answers their canonical names, visible to the
    /// next query; Err names the first path that is no metric name.
    fn tag_series(&self, paths: &[&str]) -> Result<Vec<String>, String>;
    /// Removes series (as given) from the tag index, visible to the next query.
    fn del_series(&self, paths: &[&str]);
}

/// A failed tag request: status and message.
struct Failure(StatusCode, String);

impl From<TagError> for Failure {
    fn from(e: TagError) -> Self {
        Failure(StatusCode::BAD_REQUEST, e.to_string())
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

type Answer = Result<Value, Failure>;

/// graphite-web's `_jsonResponse`.
fn respond(answer: Answer, p: &Params) -> Response {
    let (status, value) = match answer {
        Ok(v) => (StatusCode::OK, v),
        Err(Failure(status, message)) => (status, json!({ "error": message })),
    };
    let body = if p.get("pretty").is_some_and(|v| !v.is_empty()) {
        // serde_json keeps insertion order here: sort as Python's sort_keys does.
        serde_json::to_string_pretty(&sorted(value))
    } else {
        serde_json::to_string(&value)
    }
    .unwrap_or_else(|_| "null".into());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// `expr` values, or the `expr[]` form.
fn list<'p>(p: &'p Params, key: &str) -> Vec<&'p str> {
    let plain = p.all(key);
    if !plain.is_empty() {
        return plain;
    }
    p.all(&format!("{key}[]"))
}

/// `path` values (or `path[]`), at least one (else `missing`, graphite-web's words differ
/// between its views), at most `PATHS_MAX`.
fn paths<'p>(p: &'p Params, missing: &str) -> Result<Vec<&'p str>, Failure> {
    let paths = list(p, "path");
    if paths.is_empty() {
        return Err(bad(missing));
    }
    if paths.len() > PATHS_MAX {
        return Err(bad(format!("at most {PATHS_MAX} paths per request")));
    }
    Ok(paths)
}

fn exprs(p: &Params) -> Vec<String> {
    list(p, "expr").into_iter().map(str::to_string).collect()
}

/// `limit`, as Python's `int()` reads it.
fn limit(p: &Params) -> Result<Option<usize>, Failure> {
    match p.get("limit").map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| bad(format!("invalid literal for int() with base 10: '{v}'")))?;
            Ok(Some(usize::try_from(n).unwrap_or(0)))
        }
    }
}

/// Runs `work` where it may block (see `blocking`) with the request's parameters, if the method
/// is allowed.
async fn handle(
    api: Arc<Api>,
    method: Method,
    allowed: &[Method],
    p: Params,
    work: impl FnOnce(&dyn Tags, &Params) -> Answer + Send + 'static,
) -> Response {
    if !allowed.contains(&method) {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    blocking(api, move |api| {
        let tags: &dyn Tags = &*api.backend;
        let answer = work(tags, &p);
        respond(answer, &p)
    })
    .await
    .unwrap_or_else(|r| r)
}

/// What the form-reading handlers take: graphite-web reads their parameters from the query
/// string and a form body alike.
pub(super) struct FormRequest {
    api: Arc<Api>,
    method: Method,
    params: Params,
}

impl FromRequest<Arc<Api>> for FormRequest {
    type Rejection = Response;

    async fn from_request(req: Request, api: &Arc<Api>) -> Result<Self, Response> {
        let method = req.method().clone();
        let query = req.uri().query().map(str::to_string);
        let headers = req.headers().clone();
        // The body extractor keeps the router's body limit.
        let body = Bytes::from_request(req, api).await.map_err(IntoResponse::into_response)?;
        Ok(FormRequest { api: Arc::clone(api), method, params: params(query.as_deref(), &headers, &body) })
    }
}

pub(super) async fn tag_list(State(api): State<Arc<Api>>, method: Method, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref(), None);
    handle(api, method, &[Method::GET], p, |tags, p| {
        let found = tags.list_tags(p.get("filter"), limit(p)?)?;
        Ok(Value::Array(found.into_iter().map(|t| json!({ "tag": t })).collect()))
    })
    .await
}

pub(super) async fn tag_details(
    State(api): State<Arc<Api>>,
    method: Method,
    Path(tag): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::parse(q.as_deref(), None);
    handle(api, method, &[Method::GET], p, move |tags, p| {
        let Some(values) = tags.tag_values(&tag, p.get("filter"), limit(p)?)? else { return Ok(Value::Null) };
        let values: Vec<Value> = values.into_iter().map(|(v, n)| json!({ "value": v, "count": n })).collect();
        Ok(json!({ "tag": tag, "values": values }))
    })
    .await
}

pub(super) async fn find_series(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::GET, Method::POST], r.params, |tags, p| {
        let exprs = exprs(p);
        if exprs.is_empty() {
            return Err(bad("no tag expressions specified"));
        }
        Ok(json!(tags.find_series(&exprs, FIND_SERIES_LIMIT)?))
    })
    .await
}

pub(super) async fn tag_series(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::POST], r.params, |tags, p| {
        let path = p.get("path").filter(|v| !v.is_empty()).ok_or_else(|| bad("no path specified"))?;
        let mut canonical = tags.tag_series(&[path]).map_err(bad)?;
        Ok(json!(canonical.pop()))
    })
    .await
}

pub(super) async fn tag_multi_series(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::POST], r.params, |tags, p| {
        let paths = paths(p, "no paths specified")?;
        Ok(json!(tags.tag_series(&paths).map_err(bad)?))
    })
    .await
}

pub(super) async fn del_series(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::POST], r.params, |tags, p| {
        let paths = paths(p, "no path specified")?;
        tags.del_series(&paths);
        Ok(Value::Bool(true))
    })
    .await
}

pub(super) async fn auto_complete_tags(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::GET, Method::POST], r.params, |tags, p| {
        let limit = limit(p)?.unwrap_or(AUTOCOMPLETE_LIMIT);
        Ok(json!(tags.auto_complete_tags(&exprs(p), p.get("tagPrefix").unwrap_or(""), limit)?))
    })
    .await
}

pub(super) async fn auto_complete_values(r: FormRequest) -> Response {
    handle(r.api, r.method, &[Method::GET, Method::POST], r.params, |tags, p| {
        let tag = p.get("tag").filter(|t| !t.is_empty()).ok_or_else(|| bad("no tag specified"))?;
        let limit = limit(p)?.unwrap_or(AUTOCOMPLETE_LIMIT);
        Ok(json!(tags.auto_complete_values(&exprs(p), tag, p.get("valuePrefix").unwrap_or(""), limit)?))
    })
    .await
}
