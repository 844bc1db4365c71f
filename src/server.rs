//! The running appliance: configuration, cache, ingest threads, writer pool and self-metrics,
//! started together and stopped in the order that loses nothing.
//!
//! Stop order: ingest threads stop accepting, read what the kernel already holds and hand every
//! point off (and their statsd partials to the statsd flush thread); then the statsd flush thread
//! flushes a last time into the cache; then the writers drain their queues and caches to whisper
//! (at MAX_UPDATES_PER_SECOND_ON_SHUTDOWN) and exit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cache::{CacheConfig, CacheQuery, HandOff, Producer};
use crate::config::{Config, ConfigError};
use crate::ingest::{self, CacheSink, Limits, Listeners, OnRefused, PointCounters, PointSink, Shared};
use crate::render::store::CacheClient;
use crate::telemetry::{agent_prefix, hostname, names, Registry, Reporter};
use crate::writer::{self, WriterSetup, WRITER_COUNTERS};

/// Command-line overrides of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// INGEST_THREADS.
    pub ingest_threads: Option<usize>,
    /// WRITER_THREADS.
    pub writer_threads: Option<usize>,
    /// Bind every enabled listener on an ephemeral port (the kernel picks; see
    /// `Server::addresses`) instead of the configured one: for tests and side-by-side runs.
    pub ephemeral_ports: bool,
}

/// Where the receivers listen (ports resolved when the configuration said 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Addresses {
    /// Plaintext TCP.
    pub line: Option<SocketAddr>,
    /// Pickle TCP.
    pub pickle: Option<SocketAddr>,
    /// Plaintext UDP.
    pub udp: Option<SocketAddr>,
    /// Statsd UDP.
    pub statsd_udp: Option<SocketAddr>,
    /// Statsd TCP.
    pub statsd_tcp: Option<SocketAddr>,
    /// Statsd admin TCP.
    pub statsd_admin: Option<SocketAddr>,
    /// The Graphite HTTP API.
    pub http: Option<SocketAddr>,
    /// Carbonlink (carbon-cache's cache-query port).
    pub carbonlink: Option<SocketAddr>,
}

/// A started server.
#[derive(Debug)]
pub struct Server {
    /// Where the receivers listen.
    pub addresses: Addresses,
    config: Arc<RwLock<Config>>,
    registry: Arc<Registry>,
    handoff: Arc<HandOff>,
    stop: Arc<AtomicBool>,
    hard_stop: Arc<AtomicBool>,
    ingest_done: Arc<AtomicBool>,
    /// Stops the self-metrics thread (after the receivers, so that their last counts are reported).
    telemetry_stop: Arc<AtomicBool>,
    /// Tells the statsd flush thread that every ingest thread has handed over its last partial.
    statsd_stop: Arc<AtomicBool>,
    statsd: Option<JoinHandle<()>>,
    statsd_admin: Option<JoinHandle<()>>,
    http: Option<crate::http::HttpServer>,
    carbonlink: Option<crate::carbonlink::Carbonlink>,
    index_thread: Option<crate::index::IndexThread>,
    ingest: Vec<JoinHandle<std::io::Result<()>>>,
    writers: Vec<JoinHandle<()>>,
    telemetry: Option<JoinHandle<()>>,
    queries: Vec<flume::Sender<CacheQuery>>,
    /// (ingest threads, writer threads, shards).
    pub threads: (usize, usize, usize),
    /// The UDP receive buffer the kernel granted (0 without UDP).
    pub udp_buffer_granted: usize,
    filter: Option<Arc<ingest::SharedFilter>>,
    /// The receivers' I/O backend.
    pub backend: Backend,
}

/// The I/O backend the receivers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: multishot accept/recv/recvmsg with provided buffer rings.
    IoUring,
    /// Readiness loops (epoll).
    Epoll,
}

impl Backend {
    /// A name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// The backend IO_BACKEND asks for: `auto` probes io_uring once and falls back to epoll saying
/// why; `io_uring` refuses to start without it.
fn choose_backend(wanted: crate::config::IoBackend) -> Result<Backend> {
    use crate::config::IoBackend;
    match wanted {
        IoBackend::Epoll => Ok(Backend::Epoll),
        IoBackend::IoUring => {
            ingest::probe().map_err(|e| anyhow::anyhow!("IO_BACKEND = io_uring, but io_uring is unavailable: {e}"))?;
            Ok(Backend::IoUring)
        }
        IoBackend::Auto => match ingest::probe() {
            Ok(()) => Ok(Backend::IoUring),
            Err(e) => {
                eprintln!("carbyne: io_uring unavailable ({e}): running on the epoll backend");
                Ok(Backend::Epoll)
            }
        },
    }
}

fn registry() -> Arc<Registry> {
    let mut all: Vec<&'static str> = names::ALL.to_vec();
    all.extend(ingest::receiver_counters());
    all.extend(WRITER_COUNTERS);
    all.extend(crate::carbonlink::COUNTERS);
    Arc::new(Registry::new(&all))
}

impl Server {
    /// Binds every listener and starts every thread.
    pub fn start(config: Config, overrides: &Overrides) -> Result<Server> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let tuning = &config.cache.tuning;
        let (mut n_ingest, mut n_writers, n_shards) = tuning.resolve_threads(cores);
        n_ingest = overrides.ingest_threads.unwrap_or(n_ingest).max(1);
        n_writers = overrides.writer_threads.unwrap_or(n_writers).max(1);
        let n_shards = n_shards.max(n_writers);
        std::fs::create_dir_all(&config.cache.local_data_dir)
            .with_context(|| format!("creating LOCAL_DATA_DIR {}", config.cache.local_data_dir.display()))?;
        let cache_config = CacheConfig {
            n_shards,
            queue_depth: tuning.cache_queue_depth,
            // Ingest threads, the self-metrics thread and the statsd flush thread.
            n_producers: n_ingest + 2,
            max_points: config.cache.max_cache_size,
            flow_control: config.cache.use_flow_control,
            ..CacheConfig::default()
        };
        let handoff = Arc::new(HandOff::new(&cache_config).context("cache configuration")?);
        let backend = choose_backend(config.cache.tuning.io_backend)?;
        let (listeners, addresses, udp_buffer_granted) = bind_all(&config, n_ingest, overrides.ephemeral_ports)?;
        // Clones of the UDP sockets, to read the kernel's drop counts for the self-metrics.
        let clones = |pick: fn(&Listeners) -> Option<&std::net::UdpSocket>| -> Vec<std::net::UdpSocket> {
            listeners.iter().filter_map(|l| pick(l).and_then(|u| u.try_clone().ok())).collect()
        };
        let udp_sockets = clones(|l| l.udp.as_ref());
        let statsd_udp_sockets = clones(|l| l.statsd_udp.as_ref());
        let registry = registry();
        let stop = Arc::new(AtomicBool::new(false));
        let hard_stop = Arc::new(AtomicBool::new(false));
        let ingest_done = Arc::new(AtomicBool::new(false));
        let telemetry_stop = Arc::new(AtomicBool::new(false));
        let statsd_stop = Arc::new(AtomicBool::new(false));
        let filter = if config.cache.use_whitelist {
            let (filter, problems) = ingest::SharedFilter::load(config.cache.whitelists_dir.clone());
            for p in problems {
                eprintln!("carbyne: {p}");
            }
            Some(filter)
        } else {
            None
        };
        let shared = Shared {
            stop: Arc::clone(&stop),
            hard_stop: Arc::clone(&hard_stop),
            active_connections: Arc::new(AtomicUsize::new(0)),
            max_connections: config.cache.max_receiver_connections.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            filter: filter.clone(),
            spread: None,
        };
        let limits = Limits {
            max_line_bytes: tuning.max_line_length,
            max_pickle_frame_bytes: config.cache.pickle_receiver_max_length as usize,
            timestamp_resolution: config.cache.min_timestamp_resolution,
        };
        // CARBON_METRIC_INTERVAL = 0 turns the self-metrics off, as in carbon.
        let self_metrics_on = config.cache.carbon_metric_interval > 0;
        let interval = Duration::from_secs(config.cache.carbon_metric_interval.max(1));
        let prefix = agent_prefix(&config.cache.carbon_metric_prefix, &hostname(), &config.cache.instance);
        let open_files = tuning.writer_open_files;
        let mut addresses = addresses;
        let statsd_enabled = config.cache.enable_statsd;
        let (statsd, statsd_admin, mut statsd_cores) = if statsd_enabled {
            let (flusher, cores) = crate::statsd::channels(Arc::new(config.statsd.clone()), n_ingest);
            let (admin, queries) = match bind_statsd_admin(&config, overrides.ephemeral_ports)? {
                Some(listener) => {
                    addresses.statsd_admin = listener.local_addr().ok();
                    let (tx, rx) = flume::bounded(64);
                    let stop = Arc::clone(&statsd_stop);
                    let thread = std::thread::Builder::new().name("statsd-admin".into()).spawn(move || {
                        if let Err(e) = crate::statsd::admin::serve(listener, tx, stop) {
                            eprintln!("carbyne: statsd admin interface stopped: {e}");
                        }
                    })?;
                    (Some(thread), Some(rx))
                }
                None => (None, None),
            };
            let job = StatsdJob {
                flusher,
                queries,
                producer: Producer::new(Arc::clone(&handoff)).context("no producer slot left")?,
                counters: PointCounters::new(&registry, "statsd"),
                shared: shared.clone(),
                stop: Arc::clone(&statsd_stop),
                resolution: config.cache.min_timestamp_resolution,
            };
            let thread = std::thread::Builder::new().name("statsd".into()).spawn(move || job.run())?;
            (Some(thread), admin, cores.into_iter().map(Some).collect())
        } else {
            (None, None, (0..n_ingest).map(|_| None).collect::<Vec<_>>())
        };
        let config = Arc::new(RwLock::new(config));
        let mut ingest = Vec::with_capacity(n_ingest);
        let mut spreads = ingest::Spread::handles(n_ingest).into_iter();
        for (k, l) in listeners.into_iter().enumerate() {
            let statsd_core = statsd_cores[k].take();
            let producer = Producer::new(Arc::clone(&handoff)).context("no producer slot left")?;
            let (mut shared, counters) = (shared.clone(), PointCounters::new(&registry, &format!("ingest{k}")));
            shared.spread = spreads.next().filter(|_| n_ingest > 1);
            let queue_full = registry.id(names::QUEUE_FULL);
            let thread = std::thread::Builder::new().name(format!("ingest{k}")).spawn(move || {
                pin_to_core(k, cores);
                let mut sink = CacheSink::new(producer).count_queue_full(Arc::clone(&counters.thread), queue_full);
                let result = match backend {
                    Backend::IoUring => ingest::run_uring(l, limits, shared, &mut sink, counters, statsd_core),
                    Backend::Epoll => ingest::run(l, limits, shared, &mut sink, counters, statsd_core),
                };
                sink.flush_fully(Duration::from_secs(60));
                result
            })?;
            ingest.push(thread);
        }
        let local_data_dir =
            config.read().unwrap_or_else(std::sync::PoisonError::into_inner).cache.local_data_dir.clone();
        let (index, index_thread) =
            crate::index::Index::load_from_disk(&local_data_dir).context("starting the metric index")?;
        let mut writers = Vec::with_capacity(n_writers);
        let mut queries = Vec::with_capacity(n_writers);
        for w in 0..n_writers {
            let (tx, rx) = flume::bounded(1024);
            queries.push(tx);
            let setup = WriterSetup {
                writer_idx: w,
                n_writers,
                handoff: Arc::clone(&handoff),
                config: Arc::clone(&config),
                queries: rx,
                ingest_done: Arc::clone(&ingest_done),
                registry: Arc::clone(&registry),
                open_files_max: open_files,
                index: Some(index.clone()),
            };
            writers.push(std::thread::Builder::new().name(format!("writer{w}")).spawn(move || writer::run(setup))?);
        }
        let telemetry = SelfMetrics {
            registry: Arc::clone(&registry),
            producer: Producer::new(Arc::clone(&handoff)).context("no producer slot left")?,
            prefix,
            interval,
            stop: Arc::clone(&telemetry_stop),
            hard_stop: Arc::clone(&hard_stop),
            active_connections: Arc::clone(&shared.active_connections),
            queries: queries.clone(),
            udp_sockets,
            statsd_udp_sockets,
            index: index.clone(),
        };
        let telemetry = if self_metrics_on {
            Some(std::thread::Builder::new().name("telemetry".into()).spawn(move || telemetry.run())?)
        } else {
            None
        };
        let http = {
            let c = config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut watched = crate::http::priority::WatchedThreads::default();
            ingest.iter().for_each(|t| watched.add(t));
            writers.iter().for_each(|t| watched.add(t));
            start_http(&c, overrides.ephemeral_ports, index, CacheClient::new(queries.clone(), n_shards), watched)?
        };
        addresses.http = http.as_ref().map(|h| h.address);
        let carbonlink = {
            let c = config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            start_carbonlink(&c, overrides.ephemeral_ports, queries.clone(), n_shards, &registry)?
        };
        addresses.carbonlink = carbonlink.as_ref().map(crate::carbonlink::Carbonlink::address);
        Ok(Server {
            addresses,
            config,
            registry,
            handoff,
            stop,
            hard_stop,
            ingest_done,
            telemetry_stop,
            statsd_stop,
            statsd,
            statsd_admin,
            http,
            carbonlink,
            index_thread: Some(index_thread),
            ingest,
            writers,
            telemetry,
            queries,
            threads: (n_ingest, n_writers, n_shards),
            udp_buffer_granted,
            filter,
            backend,
        })
    }

    /// Re-reads storage-schemas.conf and storage-aggregation.conf (SIGHUP, and every 60 s as
    /// carbon does); on an error the rules in force stay.
    pub fn reload_storage_rules(&self) -> Result<(), ConfigError> {
        self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner).reload_storage_rules()
    }

    /// Re-reads whitelist.conf and blacklist.conf if they changed (USE_WHITELIST; every 10 s,
    /// as carbon does). Returns the patterns skipped.
    pub fn reload_lists(&self) -> Vec<String> {
        self.filter.as_ref().map(|f| f.reload_if_changed()).unwrap_or_default()
    }

    /// Total of every counter now, by name (for tests and `check` tooling).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let (totals, _) = self.registry.snapshot();
        self.registry.names().iter().copied().zip(totals).collect()
    }

    /// Points currently held in the cache (queues included).
    pub fn cached_points(&self) -> u64 {
        self.handoff.size().points()
    }

    /// The cached points of `name` (asked of its writer), sorted by timestamp.
    pub fn cached(&self, name: &[u8]) -> Vec<(i64, f64)> {
        let shard = crate::cache::shard_of(name, self.threads.2);
        let (query, answer) = CacheQuery::points(name);
        if self.queries[shard % self.queries.len()].send(query).is_err() {
            return Vec::new();
        }
        answer.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    /// Stops without losing anything accepted: receivers drain the kernel's buffers and hand
    /// everything off, then writers write every cached point. Waits at most `patience` for the
    /// writers before giving up on a full cache (a hard stop).
    pub fn shutdown(mut self, patience: Duration) {
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        if let Some(carbonlink) = self.carbonlink.take() {
            carbonlink.shutdown();
        }
        self.stop.store(true, Ordering::Release);
        let deadline = Instant::now() + patience;
        for h in self.ingest.drain(..) {
            if let Ok(Err(e)) = h.join() {
                eprintln!("carbyne: receiver stopped with an error: {e}");
            }
        }
        self.statsd_stop.store(true, Ordering::Release);
        for t in [self.statsd.take(), self.statsd_admin.take()].into_iter().flatten() {
            let _ = t.join();
        }
        self.telemetry_stop.store(true, Ordering::Release);
        if let Some(t) = self.telemetry.take() {
            let _ = t.join();
        }
        self.ingest_done.store(true, Ordering::Release);
        for h in std::mem::take(&mut self.writers) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !h.is_finished() {
                self.hard_stop.store(true, Ordering::Release);
                eprintln!(
                    "carbyne: writers did not finish within {patience:?}; {} points unwritten",
                    self.cached_points()
                );
                return;
            }
            let _ = h.join();
        }
        if let Some(t) = self.index_thread.take() {
            let _ = t.stop();
        }
    }
}

/// Binds each ingest thread's listeners (port 0 resolved once and shared).
/// A configured port of 0 disables that listener, as in carbon.
fn bind_all(config: &Config, n: usize, ephemeral: bool) -> Result<(Vec<Listeners>, Addresses, usize)> {
    let c = &config.cache;
    let tcp = |iface: &str, port: u16, what: &str| -> Result<Option<Vec<std::net::TcpListener>>> {
        if port == 0 {
            return Ok(None);
        }
        let port = if ephemeral { 0 } else { port };
        let addr = ingest::resolve(iface, port).with_context(|| format!("{what} {iface}:{port}"))?;
        Ok(Some(ingest::bind_tcp_group(addr, n).with_context(|| format!("binding {what} on {addr}"))?))
    };
    let line = tcp(&c.line_receiver_interface, c.line_receiver_port, "LINE_RECEIVER")?;
    let pickle = tcp(&c.pickle_receiver_interface, c.pickle_receiver_port, "PICKLE_RECEIVER")?;
    let (udp, granted) = if c.enable_udp_listener && c.udp_receiver_port != 0 {
        let port = if ephemeral { 0 } else { c.udp_receiver_port };
        let addr = ingest::resolve(&c.udp_receiver_interface, port)?;
        let (sockets, granted) = ingest::bind_udp_group(addr, n, c.tuning.udp_receive_buffer)
            .with_context(|| format!("binding UDP_RECEIVER on {addr}"))?;
        (Some(sockets), granted)
    } else {
        (None, 0)
    };
    let statsd_on = c.enable_statsd && c.statsd_port != 0;
    let statsd_port = if ephemeral { 0 } else { c.statsd_port };
    let statsd_udp = if statsd_on {
        let addr = ingest::resolve(&c.statsd_interface, statsd_port)?;
        let (sockets, _) = ingest::bind_udp_group(addr, n, c.tuning.udp_receive_buffer)
            .with_context(|| format!("binding STATSD_PORT (UDP) on {addr}"))?;
        Some(sockets)
    } else {
        None
    };
    // With an ephemeral UDP port, TCP takes the same number when it is free.
    let statsd_tcp = match (&statsd_udp, statsd_on && c.enable_statsd_tcp) {
        (Some(udp), true) => {
            let port = udp[0].local_addr()?.port();
            tcp(&c.statsd_interface, port, "STATSD_PORT (TCP)")?
        }
        _ => None,
    };
    let addr_of = |v: &Option<Vec<std::net::TcpListener>>| v.as_ref().and_then(|l| l[0].local_addr().ok());
    let udp_addr_of = |v: &Option<Vec<std::net::UdpSocket>>| v.as_ref().and_then(|s| s[0].local_addr().ok());
    let addresses = Addresses {
        line: addr_of(&line),
        pickle: addr_of(&pickle),
        udp: udp_addr_of(&udp),
        statsd_udp: udp_addr_of(&statsd_udp),
        statsd_tcp: addr_of(&statsd_tcp),
        statsd_admin: None,
        http: None,
        carbonlink: None,
    };
    let mut line = line.map(Vec::into_iter);
    let mut pickle = pickle.map(Vec::into_iter);
    let mut udp = udp.map(Vec::into_iter);
    let mut statsd_udp = statsd_udp.map(Vec::into_iter);
    let mut statsd_tcp = statsd_tcp.map(Vec::into_iter);
    let listeners = (0..n)
        .map(|_| Listeners {
            line: line.as_mut().and_then(Iterator::next),
            pickle: pickle.as_mut().and_then(Iterator::next),
            udp: udp.as_mut().and_then(Iterator::next),
            statsd_udp: statsd_udp.as_mut().and_then(Iterator::next),
            statsd_tcp: statsd_tcp.as_mut().and_then(Iterator::next),
        })
        .collect();
    Ok((listeners, addresses, granted))
}

/// The HTTP API (HTTP_PORT on HTTP_INTERFACE; 0 turns it off).
fn start_http(
    config: &Config,
    ephemeral: bool,
    index: crate::index::Index,
    cache: CacheClient,
    watched: crate::http::priority::WatchedThreads,
) -> Result<Option<crate::http::HttpServer>> {
    let c = &config.cache;
    if c.http_port == 0 {
        return Ok(None);
    }
    let port = if ephemeral { 0 } else { c.http_port };
    let addr = ingest::resolve(&c.http_interface, port)?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding HTTP_PORT on {addr}"))?;
    let auth = match &c.http_htpasswd_file {
        Some(path) => Some(crate::http::Htpasswd::load(path).map_err(|e| anyhow::anyhow!("HTTP_HTPASSWD_FILE {e}"))?),
        None => None,
    };
    let settings = crate::http::Settings {
        threads: c.http_threads,
        priority: c.http_priority,
        watched,
        max_requests: c.http_max_requests,
        timeout: c.http_timeout,
        auth,
        ..crate::http::Settings::default()
    };
    let tag_files = if c.tag_hash_filenames {
        crate::protocol::name::TagFileNames::Hashed
    } else {
        crate::protocol::name::TagFileNames::Readable
    };
    let files = crate::render::store::Files { data_dir: c.local_data_dir.clone(), tag_files };
    let backend = Arc::new(crate::http::DiskBackend { index, files, cache });
    Ok(Some(crate::http::HttpServer::start(listener, backend, settings)?))
}

/// Carbonlink (CACHE_QUERY_PORT on CACHE_QUERY_INTERFACE; 0 turns it off): its own threads,
/// asking the writers for cached points by message.
fn start_carbonlink(
    config: &Config,
    ephemeral: bool,
    queries: Vec<flume::Sender<CacheQuery>>,
    n_shards: usize,
    registry: &Arc<Registry>,
) -> Result<Option<crate::carbonlink::Carbonlink>> {
    use crate::carbonlink::{Carbonlink, Handler, Settings, WriterCache, CACHE_TIMEOUT};
    let c = &config.cache;
    if c.cache_query_port == 0 {
        return Ok(None);
    }
    let port = if ephemeral { 0 } else { c.cache_query_port };
    let addr = ingest::resolve(&c.cache_query_interface, port)?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding CACHE_QUERY_PORT on {addr}"))?;
    let tag_files = if c.tag_hash_filenames {
        crate::protocol::name::TagFileNames::Hashed
    } else {
        crate::protocol::name::TagFileNames::Readable
    };
    let files = crate::render::store::Files { data_dir: c.local_data_dir.clone(), tag_files };
    let cache = WriterCache::new(queries, n_shards, CACHE_TIMEOUT);
    let handler = Handler::new(Box::new(cache), files, c.whisper_write_options(), c.min_timestamp_resolution > 0);
    let carbonlink = Carbonlink::start(listener, handler, Arc::clone(registry), Settings::default())
        .with_context(|| format!("starting carbonlink on {addr}"))?;
    Ok(Some(carbonlink))
}

/// The statsd admin listener (STATSD_ADMIN_PORT on STATSD_INTERFACE; 0 turns it off).
fn bind_statsd_admin(config: &Config, ephemeral: bool) -> Result<Option<std::net::TcpListener>> {
    let c = &config.cache;
    if c.statsd_admin_port == 0 {
        return Ok(None);
    }
    let port = if ephemeral { 0 } else { c.statsd_admin_port };
    let addr = ingest::resolve(&c.statsd_interface, port)?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding STATSD_ADMIN_PORT on {addr}"))?;
    Ok(Some(listener))
}

/// The statsd flush thread: flushes into the cache through its own producer, with flushed names
/// validated as received ones are.
struct StatsdJob {
    flusher: crate::statsd::Flusher,
    queries: Option<flume::Receiver<crate::statsd::AdminRequest>>,
    producer: Producer,
    counters: PointCounters,
    shared: Shared,
    stop: Arc<AtomicBool>,
    resolution: u64,
}

impl StatsdJob {
    fn run(self) {
        let StatsdJob { flusher, queries, producer, counters, shared, stop, resolution } = self;
        let mut sink = CacheSink::new(producer);
        let mut filter = shared.filter.as_ref().map(ingest::SharedFilter::handle);
        // The admin interface's commands, answered between flushes.
        let answer = |request: crate::statsd::AdminRequest, state: &mut crate::statsd::State| {
            let now_s = (crate::statsd::flusher::unix_ms() as f64 / 1000.0).round() as i64;
            let _ = request.reply.send(crate::statsd::admin::execute(&request.line, state, now_s));
        };
        flusher.run(&stop, queries, answer, |flush, dropped| {
            counters.add(names::STATSD_SAMPLES_DROPPED, dropped);
            if let Some(f) = filter.as_mut() {
                f.refresh();
            }
            let ts = ingest::normalize_timestamp(flush.timestamp, flush.timestamp, resolution);
            let mut out = ingest::Output {
                sink: &mut sink,
                counters: &counters,
                on_refused: OnRefused::Wait,
                hard_stop: &shared.hard_stop,
                now: ts,
                filter: filter.as_ref().map(ingest::FilterHandle::filter),
                statsd: None,
            };
            for (name, value) in &flush.points {
                ingest::named_point(name.as_bytes(), ts, *value, &mut out);
            }
            sink.flush();
            true
        });
        sink.flush_fully(Duration::from_secs(60));
    }
}

/// The self-metrics thread: every interval, carbon's `carbon.agents.*` points into the cache.
struct SelfMetrics {
    registry: Arc<Registry>,
    producer: Producer,
    prefix: String,
    interval: Duration,
    stop: Arc<AtomicBool>,
    hard_stop: Arc<AtomicBool>,
    active_connections: Arc<AtomicUsize>,
    queries: Vec<flume::Sender<CacheQuery>>,
    udp_sockets: Vec<std::net::UdpSocket>,
    statsd_udp_sockets: Vec<std::net::UdpSocket>,
    index: crate::index::Index,
}

impl SelfMetrics {
    fn run(self) {
        let SelfMetrics {
            registry,
            producer,
            prefix,
            interval,
            stop,
            hard_stop,
            active_connections,
            queries,
            udp_sockets,
            statsd_udp_sockets,
            index,
        } = self;
        let mut drops = [
            (registry.id(names::UDP_KERNEL_DROPS), ingest::KernelDrops::new(udp_sockets)),
            (registry.id(names::STATSD_UDP_KERNEL_DROPS), ingest::KernelDrops::new(statsd_udp_sockets)),
        ];
        let mut reporter = Reporter::new(prefix, &registry);
        let mut sink = CacheSink::new(producer);
        let counters = PointCounters::new(&registry, "telemetry");
        let mut next = Instant::now() + interval;
        let mut last_ts = i64::MIN;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let now = unix_now();
            // Each report in a second of its own: a second report in the same second would
            // overwrite the first in a 1 s archive. Late reports are not bunched up: the
            // counters' increase simply lands in the next one. At stop, one last report.
            if (!stopping && Instant::now() < next) || now <= last_ts {
                std::thread::sleep(Duration::from_millis(20).min(interval));
                continue;
            }
            next = Instant::now() + interval;
            last_ts = now;
            for (id, drops) in &mut drops {
                counters.thread.add(*id, drops.take_new());
            }
            let (points, metrics) = cache_sizes(&queries);
            let index_stats = index.stats();
            let gauges = [
                ("cache.size", points as f64),
                ("cache.queues", metrics as f64),
                ("activeConnections", active_connections.load(Ordering::Relaxed) as f64),
                ("index.metrics", index_stats.leaves as f64),
                ("index.taggedSeries", index_stats.tagged_series as f64),
                ("index.tagLogErrors", index_stats.tag_log_errors as f64),
            ];
            for (name, value) in reporter.collect(&registry, &gauges) {
                ingest::offer(&mut sink, &counters, name.as_bytes(), now, value, OnRefused::Drop, &hard_stop);
            }
            sink.flush();
            if stopping {
                break;
            }
        }
        sink.flush_fully(Duration::from_secs(5));
    }
}

/// Pins ingest thread `k` to core `k mod cores` (thread-per-core: its sockets, buffers and
/// cache lines stay on one core). A refusal (a restricted cpuset) leaves the thread unpinned.
fn pin_to_core(k: usize, cores: usize) {
    let Ok(allowed) = rustix::process::sched_getaffinity(None) else { return };
    let usable: Vec<usize> = (0..rustix::process::CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c)).collect();
    if usable.is_empty() || cores == 0 {
        return;
    }
    let mut set = rustix::process::CpuSet::new();
    set.set(usable[k % usable.len()]);
    let _ = rustix::process::sched_setaffinity(None, &set);
}

/// (points, metrics) cached across writers, asked of each.
fn cache_sizes(queries: &[flume::Sender<CacheQuery>]) -> (u64, u64) {
    let mut total = (0, 0);
    for q in queries {
        let (query, answer) = CacheQuery::sizes();
        if q.send(query).is_ok() {
            if let Ok(sizes) = answer.recv_timeout(Duration::from_secs(1)) {
                total.0 += sizes.points;
                total.1 += sizes.metrics;
            }
        }
    }
    total
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
