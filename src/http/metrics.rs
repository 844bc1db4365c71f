//! `/metrics/find`, `/metrics/expand`, `/metrics/index.json` and `/functions`, as graphite-web
//! 1.1.8 answers them (C.10 and C.12 of the read-side reference). The find formats of the
//! cluster protocols (pickle, msgpack, carbonapi's protobuf) are answered by `cluster.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{blocking, cluster, error_response, json_response, params, text, Api, FoundNode, Params};
use crate::render::functions::{self, FunctionSpec};
use crate::render::{time, RenderError};

/// Most nodes one find may return (over all its globs, for carbonapi's v3 find).
const FIND_LIMIT: usize = 100_000;
/// Most leaves `/metrics/index.json` lists.
const INDEX_LIMIT: usize = 10_000_000;

pub(super) async fn find(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // carbonapi_v3_pb sends a protobuf body with GET: it is not a form.
    let mut response = if cluster::wants_v3(q.as_deref(), &headers) {
        let p = Params::parse(q.as_deref(), None);
        blocking(api, move |api| cluster::find_v3(api, &p, &body, FIND_LIMIT)).await
    } else {
        match cluster::form_params(q.as_deref(), &headers, &body) {
            Ok(p) => blocking(api, move |api| find_response(api, &p)).await,
            Err(e) => Err(error_response(&e)),
        }
    }
    .unwrap_or_else(|r| r);
    no_cache(&mut response);
    response
}

fn find_response(api: &Api, p: &Params) -> Response {
    match find_body(api, p) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn find_body(api: &Api, p: &Params) -> Result<Response, RenderError> {
    let format = p.get("format").unwrap_or("treejson");
    let bad = |e: String| RenderError::bad(e);
    let leaves_only = p.int("leavesOnly", 0).map_err(bad)? != 0;
    let wildcards = p.int("wildcards", 0).map_err(bad)? != 0;
    let position = p.int("position", -1).map_err(bad)?;
    let automatic_variants = p.int("automatic_variants", 0).map_err(bad)? != 0;
    // from/until are accepted (and checked) as graphite-web does; the index has no time.
    let tz = p.get("tz").and_then(|n| time::parse_tz(n).ok()).unwrap_or(chrono_tz::UTC);
    let now = match p.get("now") {
        Some(v) => time::parse_at_time(v, tz, wall_clock())
            .map_err(|e| RenderError::bad(format!("Invalid value {v:?} for param now: {e}")))?,
        None => wall_clock(),
    };
    for key in ["from", "until"] {
        if let Some(v) = p.get(key).filter(|v| *v != "-1") {
            time::parse_at_time(v, tz, now)
                .map_err(|e| RenderError::bad(format!("Invalid value {v:?} for param {key}: {e}")))?;
        }
    }
    let mut query = p.get("query").ok_or_else(|| bad("Missing required parameter 'query'".into()))?.to_string();
    if query.is_empty() {
        return Err(bad("Required parameter 'query' is empty".into()));
    }
    let base_path = query.rsplit_once('.').map_or(String::new(), |(base, _)| format!("{base}."));
    if format == "completer" {
        query = completer_query(&query, automatic_variants);
    }
    let mut nodes = api.backend.find(&query, FIND_LIMIT)?;
    if leaves_only {
        nodes.retain(|n| n.is_leaf);
    }
    nodes.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(match format {
        "treejson" => json_response(&tree_json(&nodes, &base_path, wildcards), p),
        "completer" => json_response(&completer(&nodes, wildcards), p),
        "nodelist" => {
            let mut found: Vec<String> = nodes.iter().filter_map(|n| element(&n.path, position)).collect();
            found.sort();
            found.dedup();
            json_response(&json!({ "nodes": found }), p)
        }
        "json" => {
            let mut list: Vec<&FoundNode> = nodes.iter().collect();
            list.sort_by(|a, b| a.path.cmp(&b.path));
            let items: Vec<Value> = list
                .into_iter()
                .map(|n| {
                    if n.is_leaf {
                        json!({ "path": n.path, "is_leaf": true, "intervals": [] })
                    } else {
                        json!({ "path": n.path, "is_leaf": false })
                    }
                })
                .collect();
            json_response(&Value::Array(items), p)
        }
        "pickle" | "msgpack" => cluster::find_nodes(api, &nodes, format)?,
        f if cluster::is_v2(f) => cluster::find_v2(&query, &nodes),
        _ => return Err(bad("Invalid value for 'format' parameter".into())),
    })
}

/// The completer's rewrite: `..` becomes `*.`, a `*` is appended, and with automatic_variants
/// a comma list in an element becomes a brace group.
fn completer_query(query: &str, automatic_variants: bool) -> String {
    let mut q = query.replace("..", "*.");
    if !q.ends_with('*') {
        q.push('*');
    }
    if automatic_variants {
        let parts: Vec<String> = q
            .split('.')
            .map(|p| if p.contains(',') && !p.contains('{') { format!("{{{p}}}") } else { p.to_string() })
            .collect();
        q = parts.join(".");
    }
    q
}

/// The path element at `position` (negative from the end, as Python indexes).
fn element(path: &str, position: i64) -> Option<String> {
    let parts: Vec<&str> = path.split('.').collect();
    let idx = if position < 0 { parts.len() as i64 + position } else { position };
    usize::try_from(idx).ok().and_then(|i| parts.get(i)).map(|s| s.to_string())
}

/// graphite-web's tree JSON: an optional `*` entry, then branches, then leaves; a name seen
/// twice (a metric and a directory) is listed once, first one wins.
fn tree_json(nodes: &[FoundNode], base_path: &str, wildcards: bool) -> Value {
    let flags = |leaf: bool| {
        if leaf {
            json!({ "allowChildren": 0, "expandable": 0, "leaf": 1 })
        } else {
            json!({ "allowChildren": 1, "expandable": 1, "leaf": 0 })
        }
    };
    let entry = |text: &str, id: String, leaf: bool| {
        let mut m = Map::new();
        m.insert("text".into(), Value::String(text.to_string()));
        m.insert("id".into(), Value::String(id));
        if let Value::Object(f) = flags(leaf) {
            m.extend(f);
        }
        Value::Object(m)
    };
    let mut out = Vec::new();
    if nodes.len() > 1 && wildcards {
        let all_leaves = nodes.iter().all(|n| n.is_leaf);
        out.push(entry("*", format!("{base_path}*"), all_leaves));
    }
    let mut seen = std::collections::HashSet::new();
    let (mut branches, mut leaves) = (Vec::new(), Vec::new());
    for n in nodes {
        if !seen.insert(n.name()) {
            continue;
        }
        let text = unquote_plus(n.name());
        let e = entry(&text, format!("{base_path}{}", n.name()), n.is_leaf);
        if n.is_leaf {
            leaves.push(e);
        } else {
            branches.push(e);
        }
    }
    out.extend(branches);
    out.extend(leaves);
    Value::Array(out)
}

fn completer(nodes: &[FoundNode], wildcards: bool) -> Value {
    let mut metrics: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let path = if n.is_leaf { n.path.clone() } else { format!("{}.", n.path) };
            json!({ "path": path, "name": n.name(), "is_leaf": if n.is_leaf { "1" } else { "0" } })
        })
        .collect();
    if metrics.len() > 1 && wildcards {
        metrics.push(json!({ "name": "*" }));
    }
    json!({ "metrics": metrics })
}

/// Python's `unquote_plus`: `+` is a space, `%XX` escapes decoded (invalid ones kept).
fn unquote_plus(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

pub(super) async fn expand(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    let mut response = blocking(api, move |api| match expand_body(api, &p) {
        Ok(v) => json_response(&v, &p),
        Err(e) => error_response(&e),
    })
    .await
    .unwrap_or_else(|r| r);
    no_cache(&mut response);
    response
}

fn expand_body(api: &Api, p: &Params) -> Result<Value, RenderError> {
    let leaves_only = p.int("leavesOnly", 0).map_err(RenderError::bad)? != 0;
    let group_by_expr = p.int("groupByExpr", 0).map_err(RenderError::bad)? != 0;
    let mut grouped = BTreeMap::new();
    for query in p.all("query") {
        let mut paths: Vec<String> = api
            .backend
            .find(query, FIND_LIMIT)?
            .into_iter()
            .filter(|n| n.is_leaf || !leaves_only)
            .map(|n| n.path)
            .collect();
        paths.sort();
        paths.dedup();
        grouped.insert(query.to_string(), paths);
    }
    if group_by_expr {
        let map: Map<String, Value> = grouped.into_iter().map(|(k, v)| (k, json!(v))).collect();
        return Ok(json!({ "results": map }));
    }
    let mut all: Vec<String> = grouped.into_values().flatten().collect();
    all.sort();
    all.dedup();
    Ok(json!({ "results": all }))
}

pub(super) async fn index_json(
    State(api): State<Arc<Api>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(q.as_deref(), &headers, &body);
    blocking(api, move |api| match api.backend.all_leaves(INDEX_LIMIT) {
        Ok(leaves) => json_response(&json!(leaves), &p),
        Err(e) => error_response(&e),
    })
    .await
    .unwrap_or_else(|r| r)
}

pub(super) async fn functions(RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref(), None);
    let grouped = p.get("grouped").is_some_and(|g| matches!(g.to_ascii_lowercase().as_str(), "1" | "true"));
    let group = p.get("group");
    let mut flat = Map::new();
    let mut by_group: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    if p.get("type") != Some("pie") {
        for f in functions::all().filter(|f| group.is_none_or(|g| g == f.group)) {
            if grouped {
                by_group.entry(f.group).or_default().insert(f.name.to_string(), function_info(f));
            } else {
                flat.insert(f.name.to_string(), function_info(f));
            }
        }
    }
    let value = if grouped {
        Value::Object(by_group.into_iter().map(|(g, m)| (g.to_string(), Value::Object(m))).collect())
    } else {
        Value::Object(flat)
    };
    json_response(&value, &p)
}

pub(super) async fn function(Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref(), None);
    match functions::lookup(&name) {
        Some(f) => json_response(&function_info(f), &p),
        None => text(StatusCode::NOT_FOUND, &format!("Function not found: {name}")),
    }
}

/// graphite-web's `functionInfo`: name, signature, description, module, group, params.
fn function_info(f: &FunctionSpec) -> Value {
    let signature: Vec<String> = f
        .params
        .iter()
        .map(|p| match (p.multiple, p.default) {
            (true, _) => format!("*{}", p.name),
            (false, Some(d)) => format!("{}={d}", p.name),
            (false, None) => p.name.to_string(),
        })
        .collect();
    let params: Vec<Value> = f
        .params
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert("name".into(), json!(p.name));
            m.insert("type".into(), json!(p.kind.name()));
            if p.required {
                m.insert("required".into(), json!(true));
            }
            if let Some(d) = p.default.and_then(|d| serde_json::from_str::<Value>(d).ok()) {
                m.insert("default".into(), d);
            }
            if p.multiple {
                m.insert("multiple".into(), json!(true));
            }
            if !p.options.is_empty() {
                m.insert("options".into(), json!(p.options));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "name": f.name,
        "function": format!("{}({})", f.name, signature.join(", ")),
        "description": f.description,
        "module": "graphite.render.functions",
        "group": f.group,
        "params": params,
    })
}

fn no_cache(response: &mut Response) {
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn wall_clock() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, is_leaf: bool) -> FoundNode {
        FoundNode { path: path.into(), is_leaf }
    }

    #[test]
    fn tree_json_lists_branches_first_and_a_name_once() {
        let nodes = [node("a.x", true), node("a.x", false), node("a.b", true), node("a.c", false)];
        let mut sorted = nodes.to_vec();
        sorted.sort_by(|a, b| a.name().cmp(b.name()));
        let v = tree_json(&sorted, "a.", true);
        let texts: Vec<&str> = v.as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["*", "c", "b", "x"]);
        assert_eq!(v[0]["leaf"], 0, "some match is a branch");
        assert_eq!(v[3]["id"], "a.x");
    }

    #[test]
    fn completer_rewrites_and_elements() {
        assert_eq!(completer_query("a..b", false), "a*.b*");
        assert_eq!(completer_query("a.x,y", true), "a.{x,y*}");
        assert_eq!(element("a.b.c", -1).as_deref(), Some("c"));
        assert_eq!(element("a.b.c", 1).as_deref(), Some("b"));
        assert_eq!(element("a.b.c", 5), None);
        assert_eq!(unquote_plus("a+b%20c%zz"), "a b c%zz");
    }
}
