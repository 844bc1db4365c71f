//! `/render`: graphite-web's parameters (C.2 of the read-side reference) and formats, and the
//! cluster protocols' render formats (graphite-web's `pickle` and `msgpack`; carbonapi's
//! `protobuf` and `carbonapi_v3_pb`, answered by `cluster.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{blocking, cluster, error_response, jsonp, Api, Params};
use crate::render::format::{self, JsonOptions};
use crate::render::{consolidate, parse, time, Ctx, RenderError, Series, Spent};

pub(super) async fn render(
    State(api): State<Arc<Api>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // carbonapi_v3_pb sends a protobuf body with GET: it is not a form.
    if cluster::wants_v3(query.as_deref(), &headers) {
        let params = Params::parse(query.as_deref(), None);
        return blocking(api, move |api| cluster::render_v3(api, &params, &body)).await.unwrap_or_else(|r| r);
    }
    match cluster::form_params(query.as_deref(), &headers, &body) {
        Ok(params) => blocking(api, move |api| respond(api, &params)).await.unwrap_or_else(|r| r),
        Err(e) => error_response(&e),
    }
}

/// What was asked for, parsed.
#[derive(Debug)]
struct Request {
    targets: Vec<String>,
    from: i64,
    until: i64,
    now: i64,
    tz: chrono_tz::Tz,
    x_files_factor: f64,
    max_data_points: Option<u64>,
    format: String,
}

fn parse_request(p: &Params) -> Result<Request, RenderError> {
    // graphite-web: an unknown time zone is ignored (UTC).
    let tz = p.get("tz").and_then(|name| time::parse_tz(name).ok()).unwrap_or(chrono_tz::UTC);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let time::Window { from, until, now } = time::window(p.get("from"), p.get("until"), p.get("now"), tz, clock)
        .map_err(|e| RenderError::bad(e.to_string()))?;
    let mut targets: Vec<String> = p.all("target").into_iter().map(str::to_string).collect();
    if targets.is_empty() {
        targets = p.all("target[]").into_iter().map(str::to_string).collect();
    }
    let x_files_factor = match p.get("xFilesFactor") {
        None => 0.0,
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| (0.0..=1.0).contains(x))
            .ok_or_else(|| RenderError::bad(format!("xFilesFactor must be a number from 0 to 1, not {v:?}")))?,
    };
    // graphite-web takes maxDataPoints only when it is all digits.
    let max_data_points = p.get("maxDataPoints").filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    let max_data_points = max_data_points.map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    let mut format = "json";
    if p.has("pickle") {
        format = "pickle";
    }
    if p.has("rawData") {
        format = "raw";
    }
    if let Some(f) = p.get("format") {
        format = f;
    }
    Ok(Request { targets, from, until, now, tz, x_files_factor, max_data_points, format: format.to_string() })
}

fn respond(api: &Api, p: &Params) -> Response {
    let request = match parse_request(p) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let mut series = match evaluate(api, &request) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    match request.format.as_str() {
        "json" => {
            if let Some(max) = request.max_data_points {
                consolidate::max_data_points(&mut series, max);
            }
            let opts = JsonOptions {
                no_null_points: p.has("noNullPoints"),
                pretty: p.get("pretty").is_some_and(|v| !v.is_empty()),
            };
            let body = format::json(&series, &opts);
            match p.get("jsonp").filter(|cb| !cb.is_empty()) {
                Some(cb) => jsonp(cb, &body),
                None => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
            }
        }
        "csv" => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv")], format::csv(&series, request.tz)).into_response()
        }
        "raw" => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], format::raw(&series)).into_response(),
        "pickle" => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/pickle")], format::pickle(&series)).into_response()
        }
        "msgpack" => match format::msgpack(&series) {
            Some(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-msgpack")], body).into_response(),
            None => error_response(&RenderError::bad("the answer is too large for msgpack")),
        },
        f if cluster::is_v2(f) => cluster::render_v2(&series),
        other => error_response(&RenderError::bad(format!(
            "format {other:?} is not supported (json, csv, raw, pickle, msgpack, protobuf, carbonapi_v3_pb; \
             images are not rendered)"
        ))),
    }
}

/// Every target, in order, each evaluated over the request's window.
fn evaluate(api: &Api, r: &Request) -> Result<Vec<Series>, RenderError> {
    let spent = Spent::default();
    let mut ctx = Ctx::new(api.backend.as_ref(), r.from, r.until, r.now, &spent);
    ctx.x_files_factor = r.x_files_factor;
    ctx.tz = r.tz;
    ctx.limits = api.limits;
    let mut out = Vec::new();
    for target in &r.targets {
        if target.trim().is_empty() {
            continue;
        }
        let expr = parse(target)?;
        out.extend(ctx.eval(&expr)?);
    }
    Ok(out)
}
