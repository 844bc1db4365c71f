//! The Graphite HTTP API (what Grafana's Graphite data source and graphite-web's cluster
//! frontends call): `/render`, `/metrics/find`, `/metrics/expand`, `/metrics/index.json`,
//! `/functions`, `/version`, served with axum on threads of their own (HTTP_THREADS; never the
//! ingest cores'), with gzip when asked, request size and time limits, a bound on requests in
//! flight and optional basic auth.
//!
//! Handlers parse parameters (`params.rs`), then run the work in `block_in_place`: rendering
//! reads files and asks the writers for cached points by message, so it may take milliseconds
//! and must not stall the other connection tasks, which the worker hands on first. With
//! HTTP_PRIORITY = adaptive (the default), work goes instead to a pool of SCHED_IDLE threads
//! while the ingest and writer threads are busy (`priority.rs`). Errors in the request are 400
//! with a message, ours 500; a panic would be a bug (none is expected: every input path
//! returns errors).
//!
//! **Architecture Invariant:** the HTTP side reads only: it writes no file and never blocks a
//! writer (cached points are asked for by message, with a timeout).

pub mod auth;
mod backend;
pub mod cluster;
mod metrics;
pub mod params;
pub mod priority;
mod render;
pub mod tags;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ThreadPriority;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use priority::{lower_priority, IdlePool, Lanes, WatchedThreads};

pub use auth::Htpasswd;
pub use backend::DiskBackend;
pub use params::Params;

use crate::render::{RenderError, Store};

/// One node found by a glob: a metric (leaf) or a directory (branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNode {
    /// The full dotted path.
    pub path: String,
    /// A metric (true) or a branch.
    pub is_leaf: bool,
}

impl FoundNode {
    /// The last path element.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// The metric tree, as `/metrics/*` needs it.
pub trait Finder: Send + Sync {
    /// Nodes matching `pattern` (leaves and branches), at most `limit` (more is an error).
    fn find(&self, pattern: &str, limit: usize) -> Result<Vec<FoundNode>, RenderError>;
    /// Every leaf, sorted, at most `limit`.
    fn all_leaves(&self, limit: usize) -> Result<Vec<String>, RenderError>;
}

/// What the handlers need: the data behind both render and find (and the leaves' files, for
/// the cluster protocols).
pub trait Backend: Store + Finder + cluster::LeafInfo + tags::Tags {}
impl<T: Store + Finder + cluster::LeafInfo + tags::Tags> Backend for T {}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker threads of its runtime.
    pub threads: usize,
    /// How the server's work is scheduled (HTTP_PRIORITY): below the ingest and writer
    /// threads unless `Nice(0)`; `Adaptive`: below them only while `watched` are busy.
    pub priority: ThreadPriority,
    /// The ingest and writer threads, whose load `Adaptive` follows.
    pub watched: WatchedThreads,
    /// Requests handled at once (more wait for a slot).
    pub max_requests: usize,
    /// Longest a request may take (then 503... as tower answers, with a message).
    pub timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Basic auth, when configured.
    pub auth: Option<Htpasswd>,
    /// Bounds of each render.
    pub limits: crate::render::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threads: 2,
            priority: ThreadPriority::Nice(0),
            watched: WatchedThreads::default(),
            max_requests: 64,
            timeout: Duration::from_secs(30),
            max_body_bytes: 4 << 20,
            auth: None,
            limits: crate::render::Limits::default(),
        }
    }
}

/// Shared by every handler.
pub struct Api {
    /// The data.
    pub backend: Arc<dyn Backend>,
    /// Bounds of each render.
    pub limits: crate::render::Limits,
    auth: Option<Htpasswd>,
    lanes: Lanes,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("limits", &self.limits).field("auth", &self.auth.is_some()).finish()
    }
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    /// Where it listens.
    pub address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Serves on `listener` until [`HttpServer::shutdown`].
    pub fn start(
        listener: std::net::TcpListener,
        backend: Arc<dyn Backend>,
        settings: Settings,
    ) -> std::io::Result<HttpServer> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let priority = settings.priority;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads.max(1))
            .max_blocking_threads(settings.max_requests.max(1))
            .on_thread_start(move || lower_priority(priority))
            .thread_name("http")
            .enable_io()
            .enable_time()
            .build()?;
        // Adaptive: a pool of SCHED_IDLE threads and the watcher that says when to use it.
        let idle =
            (priority == ThreadPriority::Adaptive).then(|| IdlePool::start(settings.max_requests)).transpose()?;
        let lanes = idle.as_ref().map_or_else(Lanes::default, IdlePool::lanes);
        let watcher = idle.as_ref().and_then(|pool| pool.watcher(settings.watched.clone()));
        let api = Arc::new(Api { backend, limits: settings.limits, auth: settings.auth.clone(), lanes });
        let app = router(api, &settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("http-main".into()).spawn(move || {
            lower_priority(priority);
            runtime.block_on(async move {
                if let Some(watcher) = watcher {
                    tokio::spawn(watcher);
                }
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stopped.await;
                });
                if let Err(e) = serve.await {
                    eprintln!("carbyne: HTTP server stopped: {e}");
                }
            });
            // In-flight renders (on workers turned blocking) are not waited for past a second.
            runtime.shutdown_timeout(Duration::from_secs(1));
            if let Some(idle) = idle {
                idle.shutdown();
            }
        })?;
        Ok(HttpServer { address, stop: Some(stop), thread: Some(thread) })
    }

    /// Stops accepting, lets requests in flight finish (bounded by the request timeout).
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(api: Arc<Api>, settings: &Settings) -> Router {
    use tower::ServiceBuilder;
    let routes = Router::new()
        .route("/render", get(render::render).post(render::render))
        .route("/render/", get(render::render).post(render::render))
        .route("/metrics/find", get(metrics::find).post(metrics::find))
        .route("/metrics/find/", get(metrics::find).post(metrics::find))
        .route("/metrics", get(metrics::find).post(metrics::find))
        .route("/metrics/expand", get(metrics::expand).post(metrics::expand))
        .route("/metrics/expand/", get(metrics::expand).post(metrics::expand))
        .route("/metrics/index.json", get(metrics::index_json).post(metrics::index_json))
        .route("/functions", get(metrics::functions))
        .route("/functions/", get(metrics::functions))
        .route("/functions/{name}", get(metrics::function))
        .route("/tags", get(tags::tag_list).post(tags::tag_list))
        .route("/tags/", get(tags::tag_list).post(tags::tag_list))
        .route("/tags/findSeries", get(tags::find_series).post(tags::find_series))
        .route("/tags/tagSeries", get(tags::tag_series).post(tags::tag_series))
        .route("/tags/tagMultiSeries", get(tags::tag_multi_series).post(tags::tag_multi_series))
        .route("/tags/delSeries", get(tags::del_series).post(tags::del_series))
        .route("/tags/autoComplete/tags", get(tags::auto_complete_tags).post(tags::auto_complete_tags))
        .route("/tags/autoComplete/values", get(tags::auto_complete_values).post(tags::auto_complete_values))
        .route("/tags/{*tag}", get(tags::tag_details).post(tags::tag_details))
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/_internal/capabilities", get(cluster::capabilities).post(cluster::capabilities))
        .route("/_internal/capabilities/", get(cluster::capabilities).post(cluster::capabilities))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&api), authorize))
        .with_state(api);
    // Outermost first: a request waiting for a slot counts against its timeout too.
    routes.layer(
        ServiceBuilder::new()
            .layer(tower_http::compression::CompressionLayer::new().gzip(true))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(settings.max_body_bytes))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                settings.timeout,
            ))
            .concurrency_limit(settings.max_requests.max(1)),
    )
}

/// Basic auth, when configured; `/version` stays open (health checks).
async fn authorize(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let Some(auth) = &api.auth else { return next.run(request).await };
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if request.uri().path().trim_end_matches('/') == "/version" || auth.check_header(header) {
        return next.run(request).await;
    }
    let mut response = text(StatusCode::UNAUTHORIZED, "authentication required");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"carbyne\""));
    response
}

/// graphite-web's version string (Grafana accepts it as semver).
pub const GRAPHITE_VERSION: &str = "1.1.8";

async fn version() -> Response {
    text(StatusCode::OK, GRAPHITE_VERSION)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found")
}

/// A plain-text response.
fn text(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.to_string()).into_response()
}

/// The response to a failed request: 400 with the message for the caller's mistakes, 500 for
/// ours.
fn error_response(e: &RenderError) -> Response {
    let status = if e.is_bad_request() { StatusCode::BAD_REQUEST } else { StatusCode::INTERNAL_SERVER_ERROR };
    text(status, &e.to_string())
}

/// The request's parameters: query string and, for a form (or untyped) body, the body.
fn params(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let form = content_type.is_empty() || content_type.starts_with("application/x-www-form-urlencoded");
    Params::parse(query, (form && !body.is_empty()).then_some(&body[..]))
}

/// A JSON (or JSONP) response, as graphite-web's `json_response_for`.
fn json_response(value: &serde_json::Value, params: &Params) -> Response {
    let pretty = params.get("pretty").is_some_and(|p| !p.is_empty());
    let body = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) }
        .unwrap_or_else(|_| "null".into());
    match params.get("jsonp").filter(|cb| !cb.is_empty()) {
        Some(cb) => jsonp(cb, &body),
        None => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
    }
}

/// `cb(body)` as JavaScript, the callback name checked so that it cannot inject script.
fn jsonp(callback: &str, body: &str) -> Response {
    let safe = callback.len() <= 128 && callback.chars().all(|c| c.is_ascii_alphanumeric() || "_$.[]".contains(c));
    if !safe {
        return text(StatusCode::BAD_REQUEST, "invalid jsonp callback name");
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/javascript")], format!("{callback}({body})")).into_response()
}

/// Runs `work` (reads files, waits on writers) where it may block: on this worker thread, which
/// hands its other connection tasks to a fresh worker first (`block_in_place`), so that they stay
/// free and the request pays no hop to another thread and back; or, with HTTP_PRIORITY =
/// adaptive while the ingest and writer threads are busy, on the SCHED_IDLE pool.
async fn blocking<T: Send + 'static>(
    api: Arc<Api>,
    work: impl FnOnce(&Api) -> T + Send + 'static,
) -> Result<T, Response> {
    let lanes = api.lanes.clone();
    lanes
        .run(move || work(&api))
        .await
        .map_err(|()| text(StatusCode::INTERNAL_SERVER_ERROR, "the request failed unexpectedly"))
}
