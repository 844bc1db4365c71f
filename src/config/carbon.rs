//! carbon.conf's `[cache]` and `[cache:<instance>]` sections, read as carbon-cache reads them.
//!
//! carbon reads `[cache]`, then, when the section exists, `[cache:<instance>]` over it (instance
//! `a` by default). Each read takes *every* key the section sees, `[DEFAULT]`'s included, so a
//! `[DEFAULT]` key also overrides a `[cache]` value whenever an instance section exists; we keep
//! that quirk. Keys are upper-cased; the type comes from carbon's code default.
//!
//! Each key ends up in one of three places: a typed field of [`CacheSettings`] (keys Carbyne acts
//! on), the ignored list (recognised carbon keys Carbyne does not act on, see `keys.rs`), or the
//! unknown list. The two lists carry file and line so the caller can report them once.
//!
//! Where carbon would keep a mistyped value and fail later (a port of `abc`), we refuse at load
//! time with the file and line. Two refusals go beyond type errors: `DATABASE` other than
//! `whisper`, and an unknown `CACHE_WRITE_STRATEGY` (carbon logs it and then writes nothing).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, Problem};
use super::ini::{Ini, Item};
use super::keys;
use super::paths::{DirKeys, Dirs, Environment};
use super::value::{
    parse_bool, parse_limit, parse_optional_rate, parse_port, parse_rate, parse_seconds, parse_timeout,
};
use crate::whisper::{Allocation, WriteOptions};

/// The order in which the writer drains the cache (`CACHE_WRITE_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WriteStrategy {
    /// Snapshot, sort metrics by point count (most first), write each once per pass (carbon's default).
    #[default]
    Sorted,
    /// Always the metric with the most points.
    Max,
    /// Unordered.
    Naive,
    /// Oldest data first; honours `MIN_TIMESTAMP_LAG`.
    TimeSorted,
    /// Like `max`, through buckets of point counts.
    BucketMax,
}

impl WriteStrategy {
    /// Every strategy, in carbon's documentation order.
    pub const ALL: [WriteStrategy; 5] = [Self::Sorted, Self::Max, Self::Naive, Self::TimeSorted, Self::BucketMax];

    /// carbon's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sorted => "sorted",
            Self::Max => "max",
            Self::Naive => "naive",
            Self::TimeSorted => "timesorted",
            Self::BucketMax => "bucketmax",
        }
    }

    /// The strategy carbon calls `name` (exact, lower-case, as carbon compares it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for WriteStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[cache]` settings Carbyne acts on, with carbon's code defaults (`Default`), not the
/// example file's. Field names are carbon's keys in lower case; units are in the docs.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// The instance whose section was read (`a` by default; "" for none).
    pub instance: String,
    /// GRAPHITE_ROOT (see the module doc of `paths.rs` for how it is found).
    pub graphite_root: PathBuf,
    /// CONF_DIR: where storage-schemas.conf and storage-aggregation.conf are read from.
    pub conf_dir: PathBuf,
    /// STORAGE_DIR.
    pub storage_dir: PathBuf,
    /// LOCAL_DATA_DIR: the whisper tree.
    pub local_data_dir: PathBuf,
    /// WHITELISTS_DIR: whitelist.conf and blacklist.conf (with USE_WHITELIST).
    pub whitelists_dir: PathBuf,
    /// PID_DIR.
    pub pid_dir: PathBuf,
    /// The pid file carbon would write: `PID_DIR/carbon-cache-<instance>.pid`.
    pub pid_file: PathBuf,
    /// LOG_DIR, with `carbon-cache-<instance>` appended as carbon does.
    pub log_dir: PathBuf,
    /// USER to drop privileges to; empty: stay who we are.
    pub user: String,
    /// ENABLE_LOGROTATION: rotate log files daily.
    pub enable_logrotation: bool,
    /// MAX_CACHE_SIZE in points; None: unlimited (`inf`).
    pub max_cache_size: Option<u64>,
    /// USE_FLOW_CONTROL: pause receivers when the cache is full (else drop and count).
    pub use_flow_control: bool,
    /// MAX_UPDATES_PER_SECOND: whisper update operations per second; may be `inf`.
    pub max_updates_per_second: f64,
    /// MAX_UPDATES_PER_SECOND_ON_SHUTDOWN: the rate while draining on stop; None: unchanged.
    pub max_updates_per_second_on_shutdown: Option<f64>,
    /// MAX_CREATES_PER_MINUTE: new files per minute; may be `inf`.
    pub max_creates_per_minute: f64,
    /// MIN_TIMESTAMP_RESOLUTION in seconds; timestamps are truncated to it (0: off).
    pub min_timestamp_resolution: u64,
    /// MIN_TIMESTAMP_LAG in seconds: minimum age of a point before it is written (timesorted).
    pub min_timestamp_lag: u64,
    /// CACHE_WRITE_STRATEGY.
    pub cache_write_strategy: WriteStrategy,
    /// LINE_RECEIVER_INTERFACE (plaintext TCP).
    pub line_receiver_interface: String,
    /// LINE_RECEIVER_PORT; 0 disables the listener.
    pub line_receiver_port: u16,
    /// ENABLE_UDP_LISTENER (plaintext UDP).
    pub enable_udp_listener: bool,
    /// UDP_RECEIVER_INTERFACE.
    pub udp_receiver_interface: String,
    /// UDP_RECEIVER_PORT.
    pub udp_receiver_port: u16,
    /// ENABLE_STATSD (Carbyne's, default True): the statsd server on UDP STATSD_PORT.
    pub enable_statsd: bool,
    /// ENABLE_STATSD_TCP (Carbyne's, default False): statsd lines over TCP on STATSD_PORT too.
    pub enable_statsd_tcp: bool,
    /// STATSD_INTERFACE (default 0.0.0.0), for the statsd port and its admin port.
    pub statsd_interface: String,
    /// STATSD_PORT (default 8125).
    pub statsd_port: u16,
    /// STATSD_ADMIN_PORT (default 8126); 0 disables the admin interface.
    pub statsd_admin_port: u16,
    /// PICKLE_RECEIVER_INTERFACE.
    pub pickle_receiver_interface: String,
    /// PICKLE_RECEIVER_PORT; 0 disables the listener.
    pub pickle_receiver_port: u16,
    /// PICKLE_RECEIVER_MAX_LENGTH in bytes per frame; `inf` and larger values are capped at
    /// u32::MAX, the most a 4-byte length prefix can announce.
    pub pickle_receiver_max_length: u32,
    /// MAX_RECEIVER_CONNECTIONS; None: unlimited (`inf`).
    pub max_receiver_connections: Option<u64>,
    /// METRIC_CLIENT_IDLE_TIMEOUT: close receiver connections idle this long; None: never.
    pub metric_client_idle_timeout: Option<Duration>,
    /// CACHE_QUERY_INTERFACE (carbonlink).
    pub cache_query_interface: String,
    /// CACHE_QUERY_PORT; 0 disables the listener.
    pub cache_query_port: u16,
    /// HTTP_INTERFACE (Carbyne's, default 0.0.0.0): the Graphite HTTP API.
    pub http_interface: String,
    /// HTTP_PORT (default 8080); 0 disables the HTTP API.
    pub http_port: u16,
    /// HTTP_HTPASSWD_FILE: when set, HTTP basic auth against this htpasswd file (bcrypt,
    /// apr1 and {SHA} entries, as nginx accepts).
    pub http_htpasswd_file: Option<std::path::PathBuf>,
    /// HTTP_THREADS (default 2): threads serving HTTP and rendering (never the ingest cores').
    pub http_threads: usize,
    /// HTTP_PRIORITY (default `adaptive`): how the HTTP work is scheduled. `adaptive`: at the
    /// ingest's priority while the ingest and writer threads use less than a quarter of the
    /// CPUs, on SCHED_IDLE threads while they use more (decided per request; see
    /// `http::priority`). `idle` (SCHED_IDLE always): renders run only when receiving and
    /// writing leave a CPU free, and wait behind any other process too. A number from 0 to 19:
    /// every HTTP thread at that nice value (0: the same priority as ingest).
    pub http_priority: ThreadPriority,
    /// HTTP_MAX_REQUESTS (default 64): requests handled at once; more wait.
    pub http_max_requests: usize,
    /// HTTP_TIMEOUT in seconds (default 30): longest a request may take.
    pub http_timeout: Duration,
    /// WHISPER_AUTOFLUSH: fsync after every update.
    pub whisper_autoflush: bool,
    /// Carbyne's own knobs (not carbon's): threads, queues and buffers. See [`Tuning`].
    pub tuning: Tuning,
    /// WHISPER_SPARSE_CREATE: create sparse files.
    pub whisper_sparse_create: bool,
    /// WHISPER_FALLOCATE_CREATE: fallocate new files (wins over sparse, as in whisper).
    pub whisper_fallocate_create: bool,
    /// WHISPER_LOCK_WRITES: flock each file while writing it.
    pub whisper_lock_writes: bool,
    /// WHISPER_FADVISE_RANDOM: disable read-ahead on files opened for writing.
    pub whisper_fadvise_random: bool,
    /// USE_WHITELIST: apply whitelist.conf / blacklist.conf.
    pub use_whitelist: bool,
    /// CARBON_METRIC_PREFIX of the self-metrics.
    pub carbon_metric_prefix: String,
    /// CARBON_METRIC_INTERVAL in seconds; 0 disables self-metrics.
    pub carbon_metric_interval: u64,
    /// ENABLE_TAGS: accept and index tagged series.
    pub enable_tags: bool,
    /// TAG_HASH_FILENAMES: tagged series files named by hash only.
    pub tag_hash_filenames: bool,
    /// LOG_UPDATES.
    pub log_updates: bool,
    /// LOG_CREATES.
    pub log_creates: bool,
    /// LOG_CACHE_HITS.
    pub log_cache_hits: bool,
    /// LOG_CACHE_QUEUE_SORTS.
    pub log_cache_queue_sorts: bool,
    /// LOG_LISTENER_CONN_SUCCESS.
    pub log_listener_conn_success: bool,
    /// LOG_LISTENER_CONN_LOST.
    pub log_listener_conn_lost: bool,
}

impl Default for CacheSettings {
    /// carbon's code defaults, laid out under carbon's conventional root `/opt/graphite`.
    fn default() -> Self {
        let env = Environment::default();
        let dirs = DirKeys::start(Path::new("/opt/graphite/conf/carbon.conf"), &env).finish("a", &env);
        CacheSettings::with_dirs("a", dirs)
    }
}

impl CacheSettings {
    /// carbon's code defaults with the given directories.
    pub(crate) fn with_dirs(instance: &str, dirs: Dirs) -> Self {
        CacheSettings {
            instance: instance.to_string(),
            graphite_root: dirs.graphite_root,
            conf_dir: dirs.conf_dir,
            storage_dir: dirs.storage_dir,
            local_data_dir: dirs.local_data_dir,
            whitelists_dir: dirs.whitelists_dir,
            pid_dir: dirs.pid_dir,
            pid_file: dirs.pid_file,
            log_dir: dirs.log_dir,
            user: String::new(),
            enable_logrotation: true,
            max_cache_size: None,
            use_flow_control: true,
            max_updates_per_second: 500.0,
            max_updates_per_second_on_shutdown: None,
            max_creates_per_minute: f64::INFINITY,
            min_timestamp_resolution: 0,
            min_timestamp_lag: 0,
            cache_write_strategy: WriteStrategy::Sorted,
            line_receiver_interface: "0.0.0.0".into(),
            line_receiver_port: 2003,
            enable_udp_listener: false,
            udp_receiver_interface: "0.0.0.0".into(),
            udp_receiver_port: 2003,
            enable_statsd: true,
            enable_statsd_tcp: false,
            statsd_interface: "0.0.0.0".into(),
            statsd_port: 8125,
            statsd_admin_port: 8126,
            pickle_receiver_interface: "0.0.0.0".into(),
            pickle_receiver_port: 2004,
            pickle_receiver_max_length: 1 << 20,
            max_receiver_connections: None,
            metric_client_idle_timeout: None,
            cache_query_interface: "0.0.0.0".into(),
            cache_query_port: 7002,
            http_interface: "0.0.0.0".into(),
            http_port: 8080,
            http_htpasswd_file: None,
            http_threads: 2,
            http_priority: ThreadPriority::Adaptive,
            http_max_requests: 64,
            http_timeout: Duration::from_secs(30),
            whisper_autoflush: false,
            whisper_sparse_create: false,
            whisper_fallocate_create: false,
            whisper_lock_writes: false,
            whisper_fadvise_random: false,
            use_whitelist: false,
            carbon_metric_prefix: "carbon".into(),
            carbon_metric_interval: 60,
            enable_tags: true,
            tag_hash_filenames: true,
            log_updates: true,
            log_creates: true,
            log_cache_hits: true,
            log_cache_queue_sorts: true,
            log_listener_conn_success: true,
            log_listener_conn_lost: false,
            tuning: Tuning::default(),
        }
    }

    /// The per-write whisper options (WHISPER_LOCK_WRITES, WHISPER_AUTOFLUSH, WHISPER_FADVISE_RANDOM).
    pub fn whisper_write_options(&self) -> WriteOptions {
        WriteOptions {
            lock_writes: self.whisper_lock_writes,
            autoflush: self.whisper_autoflush,
            fadvise_random: self.whisper_fadvise_random,
            mmap: self.tuning.writer_mmap,
        }
    }

    /// How new files are allocated: fallocate wins over sparse, as in whisper's `create`.
    pub fn whisper_allocation(&self) -> Allocation {
        if self.whisper_fallocate_create {
            Allocation::Fallocate
        } else if self.whisper_sparse_create {
            Allocation::Sparse
        } else {
            Allocation::Zeroed
        }
    }

    fn set_dirs(&mut self, dirs: Dirs) {
        self.graphite_root = dirs.graphite_root;
        self.conf_dir = dirs.conf_dir;
        self.storage_dir = dirs.storage_dir;
        self.local_data_dir = dirs.local_data_dir;
        self.whitelists_dir = dirs.whitelists_dir;
        self.pid_dir = dirs.pid_dir;
        self.pid_file = dirs.pid_file;
        self.log_dir = dirs.log_dir;
    }
}

/// A key reported rather than acted on: where it was set and to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedKey {
    /// Upper-case key, as carbon names it.
    pub key: String,
    /// The value after interpolation.
    pub value: String,
    /// The section it was written in (`DEFAULT` when inherited).
    pub section: String,
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// Why it is ignored (empty for unknown keys).
    pub reason: &'static str,
}

impl fmt::Display for ReportedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: [{}] {} = {}", self.path.display(), self.line, self.section, self.key, self.value)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

/// What became of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Acted,
    Ignored(&'static str),
    Unknown,
}

/// carbon.conf as read for one instance.
#[derive(Debug, Clone)]
pub(crate) struct CarbonConf {
    pub(crate) settings: CacheSettings,
    pub(crate) ignored_keys: Vec<ReportedKey>,
    pub(crate) unknown_keys: Vec<ReportedKey>,
    /// Sections of the file other than `[cache]` and `[cache:<instance>]`, in file order.
    pub(crate) other_sections: Vec<String>,
}

/// Reads `[cache]` and `[cache:<instance>]` of `ini` ("" instance: `[cache]` only).
pub(crate) fn read_cache_sections(ini: &Ini, instance: &str, env: &Environment) -> Result<CarbonConf, ConfigError> {
    let instance_section = format!("cache:{instance}");
    let mut conf = CarbonConf {
        settings: CacheSettings::default(),
        ignored_keys: Vec::new(),
        unknown_keys: Vec::new(),
        other_sections: Vec::new(),
    };
    let mut dirs = DirKeys::start(ini.path(), env);
    if let Some(section) = ini.section("cache") {
        conf.apply_items(ini.path(), &ini.items(section)?, &mut dirs)?;
    }
    dirs.fill_from_storage_dir();
    if let Some(section) = ini.section(&instance_section).filter(|_| !instance.is_empty()) {
        conf.apply_items(ini.path(), &ini.items(section)?, &mut dirs)?;
    }
    conf.settings.instance = instance.to_string();
    conf.settings.set_dirs(dirs.finish(instance, env));
    conf.other_sections = ini
        .sections()
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| n != "cache" && (instance.is_empty() || *n != instance_section))
        .collect();
    Ok(conf)
}

impl CarbonConf {
    fn apply_items(&mut self, path: &Path, items: &[Item], dirs: &mut DirKeys) -> Result<(), ConfigError> {
        for item in items {
            let key = item.key.to_uppercase();
            let outcome =
                apply(&mut self.settings, dirs, &key, &item.value).map_err(|p| ConfigError::at(path, item.line, p))?;
            let report = |reason| ReportedKey {
                key: key.clone(),
                value: item.value.clone(),
                section: item.section.clone(),
                path: path.to_path_buf(),
                line: item.line,
                reason,
            };
            match outcome {
                Outcome::Acted => {}
                Outcome::Ignored(reason) => upsert(&mut self.ignored_keys, report(reason)),
                Outcome::Unknown => upsert(&mut self.unknown_keys, report("")),
            }
        }
        Ok(())
    }
}

/// Adds `report`, replacing an earlier report of the same key (the instance section wins).
fn upsert(list: &mut Vec<ReportedKey>, report: ReportedKey) {
    match list.iter_mut().find(|r| r.key == report.key) {
        Some(existing) => *existing = report,
        None => list.push(report),
    }
}

/// Applies one upper-case `key` to `settings` (or `dirs`), as carbon would type it.
pub(crate) fn apply(
    settings: &mut CacheSettings,
    dirs: &mut DirKeys,
    key: &str,
    value: &str,
) -> Result<Outcome, Problem> {
    let invalid = |expected| Problem::InvalidValue { key: key.to_string(), value: value.to_string(), expected };
    if dirs.apply(key, value) {
        return Ok(Outcome::Acted);
    }
    match key {
        "DATABASE" if value == "whisper" => return Ok(Outcome::Acted),
        "DATABASE" => return Err(Problem::UnsupportedDatabase(value.to_string())),
        "CACHE_WRITE_STRATEGY" => {
            let expected = "one of sorted, max, naive, timesorted, bucketmax";
            settings.cache_write_strategy = WriteStrategy::from_name(value).ok_or_else(|| invalid(expected))?;
            return Ok(Outcome::Acted);
        }
        _ => {}
    }
    let applied = apply_listener_key(settings, key, value).map_err(invalid)?
        || apply_writer_key(settings, key, value).map_err(invalid)?
        || apply_tuning_key(&mut settings.tuning, key, value).map_err(invalid)?
        || apply_flag_key(settings, key, value).map_err(invalid)?;
    if applied {
        return Ok(Outcome::Acted);
    }
    Ok(match keys::ignored(key) {
        Some(reason) => Outcome::Ignored(reason),
        None => Outcome::Unknown,
    })
}

/// A whole number above 0.
fn positive(value: &str) -> Result<usize, &'static str> {
    parse_limit(value)?.and_then(|n| usize::try_from(n).ok()).filter(|n| *n > 0).ok_or("a whole number above 0")
}

/// Receiver and carbonlink keys; Ok(false) when `key` is not one.
fn apply_listener_key(s: &mut CacheSettings, key: &str, value: &str) -> Result<bool, &'static str> {
    let text = || value.to_string();
    match key {
        "LINE_RECEIVER_INTERFACE" => s.line_receiver_interface = text(),
        "LINE_RECEIVER_PORT" => s.line_receiver_port = parse_port(value)?,
        "UDP_RECEIVER_INTERFACE" => s.udp_receiver_interface = text(),
        "UDP_RECEIVER_PORT" => s.udp_receiver_port = parse_port(value)?,
        "STATSD_INTERFACE" => s.statsd_interface = text(),
        "STATSD_PORT" => s.statsd_port = parse_port(value)?,
        "STATSD_ADMIN_PORT" => s.statsd_admin_port = parse_port(value)?,
        "PICKLE_RECEIVER_INTERFACE" => s.pickle_receiver_interface = text(),
        "PICKLE_RECEIVER_PORT" => s.pickle_receiver_port = parse_port(value)?,
        "PICKLE_RECEIVER_MAX_LENGTH" => {
            let bytes = parse_limit(value)?.unwrap_or(u64::MAX);
            s.pickle_receiver_max_length = u32::try_from(bytes).unwrap_or(u32::MAX);
        }
        "CACHE_QUERY_INTERFACE" => s.cache_query_interface = text(),
        "CACHE_QUERY_PORT" => s.cache_query_port = parse_port(value)?,
        "HTTP_INTERFACE" => s.http_interface = text(),
        "HTTP_PORT" => s.http_port = parse_port(value)?,
        // Unset, as carbon prints an unset key: empty or None.
        "HTTP_HTPASSWD_FILE" => s.http_htpasswd_file = (!value.is_empty() && value != "None").then(|| value.into()),
        "HTTP_THREADS" => s.http_threads = positive(value)?,
        "HTTP_PRIORITY" => {
            s.http_priority = ThreadPriority::parse(value).ok_or("adaptive, idle, or a nice value from 0 to 19")?
        }
        "HTTP_MAX_REQUESTS" => s.http_max_requests = positive(value)?,
        "HTTP_TIMEOUT" => s.http_timeout = Duration::from_secs(parse_seconds(value)?.max(1)),
        "MAX_RECEIVER_CONNECTIONS" => s.max_receiver_connections = parse_limit(value)?,
        "METRIC_CLIENT_IDLE_TIMEOUT" => s.metric_client_idle_timeout = parse_timeout(value)?,
        "USER" => s.user = text(),
        "CARBON_METRIC_PREFIX" => s.carbon_metric_prefix = text(),
        "CARBON_METRIC_INTERVAL" => s.carbon_metric_interval = parse_seconds(value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Carbyne's own keys (see [`Tuning`]); Ok(false) when `key` is not one.
fn apply_tuning_key(t: &mut Tuning, key: &str, value: &str) -> Result<bool, &'static str> {
    let count = |v: &str| -> Result<usize, &'static str> {
        let n = parse_limit(v)?.ok_or("a whole number (0 for automatic)")?;
        usize::try_from(n).map_err(|_| "a smaller number")
    };
    match key {
        "INGEST_THREADS" => t.ingest_threads = count(value)?,
        "WRITER_THREADS" => t.writer_threads = count(value)?,
        "CACHE_SHARDS" => t.cache_shards = count(value)?,
        "CACHE_QUEUE_DEPTH" => t.cache_queue_depth = count(value)?.max(1),
        "WRITER_OPEN_FILES" => t.writer_open_files = count(value)?.max(1),
        "WRITER_MMAP" => t.writer_mmap = boolean(value)?,
        "UDP_RECEIVE_BUFFER" => t.udp_receive_buffer = count(value)?,
        "MAX_LINE_LENGTH" => t.max_line_length = count(value)?.max(64),
        "IO_BACKEND" => {
            t.io_backend = match value.to_ascii_lowercase().as_str() {
                "auto" => IoBackend::Auto,
                "epoll" => IoBackend::Epoll,
                "io_uring" | "uring" => IoBackend::IoUring,
                _ => return Err("auto, io_uring or epoll"),
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// How a group of threads is scheduled against the ingest and writer threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadPriority {
    /// The same priority while the others leave CPU to spare, SCHED_IDLE while they are busy.
    Adaptive,
    /// SCHED_IDLE: only CPU time nothing else wants.
    Idle,
    /// SCHED_OTHER at this nice value (0 to 19).
    Nice(u8),
}

impl ThreadPriority {
    /// `adaptive` or `idle` (any case), or a nice value from 0 to 19.
    pub fn parse(value: &str) -> Option<ThreadPriority> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("adaptive") {
            return Some(ThreadPriority::Adaptive);
        }
        if value.eq_ignore_ascii_case("idle") {
            return Some(ThreadPriority::Idle);
        }
        value.parse::<u8>().ok().filter(|n| *n <= 19).map(ThreadPriority::Nice)
    }
}

impl fmt::Display for ThreadPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadPriority::Adaptive => f.write_str("adaptive"),
            ThreadPriority::Idle => f.write_str("idle"),
            ThreadPriority::Nice(n) => write!(f, "{n}"),
        }
    }
}

/// How receivers wait for sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring when the kernel and the seccomp profile allow it (probed at start-up), else
    /// epoll, saying why once.
    Auto,
    /// io_uring, or refuse to start.
    IoUring,
    /// Readiness (epoll) loops.
    Epoll,
}

impl IoBackend {
    /// The configuration word for it.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::IoUring => "io_uring",
            IoBackend::Epoll => "epoll",
        }
    }
}

/// Carbyne's own `[cache]` keys. Each has a default sized for a 2-4 core machine; 0 means
/// "work it out from the number of cores" where stated.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// INGEST_THREADS: receiver threads, each with its own SO_REUSEPORT sockets. 0 (default):
    /// one per available core. More threads than cores only add context switches.
    pub ingest_threads: usize,
    /// WRITER_THREADS: whisper writer threads. 0 (default): one per two cores, at least one.
    /// Each costs a thread and `WRITER_OPEN_FILES` descriptors.
    pub writer_threads: usize,
    /// CACHE_SHARDS: shards the cache is split into (each owned by one writer). 0 (default):
    /// 8 per writer. More shards spread load better; each costs its batch pool (below).
    pub cache_shards: usize,
    /// CACHE_QUEUE_DEPTH: batches (1024 points each) queued per shard between receivers and its
    /// writer (default 16). Deeper queues absorb longer bursts; the batch pool is shards ×
    /// (depth + ingest threads + 3) batches of about 90 KiB.
    pub cache_queue_depth: usize,
    /// WRITER_OPEN_FILES: whisper files each writer keeps open (default 1024). More saves
    /// reopening (about 4 µs each) and costs descriptors.
    pub writer_open_files: usize,
    /// WRITER_MMAP: writers map the whisper files they keep open into memory (default false;
    /// from a handle's second use), which turns each `pread`/`pwrite` of an update into a memory
    /// copy: worth it when WRITER_OPEN_FILES holds every file written (the c3.xlarge profile),
    /// where updates of a few points each cost a tenth. When the open files churn (more series
    /// than open files), mapping and unmapping cost more than they save (about 10 % more writer
    /// CPU in a 10M-point burst), hence off by default. Only files on ext2/3/4 or tmpfs without
    /// holes are mapped (elsewhere a full disk would fault instead of failing a write), and at
    /// most a quarter of `vm.max_map_count` files. Keep it off if other tools truncate whisper
    /// files in place. Pages written through a mapping count in the process's resident set
    /// (they are page cache either way).
    pub writer_mmap: bool,
    /// UDP_RECEIVE_BUFFER: bytes of socket receive buffer asked for per UDP socket (default
    /// 128 MiB; the kernel grants at most net.core.rmem_max without CAP_NET_ADMIN). Bigger
    /// buffers ride out bursts: a statsd sender flat out at 20 lines per datagram queued up to
    /// 100 MB of buffer in 10 s on a 2-core machine (BENCHMARKS.md). Kernel memory, taken only
    /// while the ingest thread is behind.
    pub udp_receive_buffer: usize,
    /// MAX_LINE_LENGTH: longest plaintext line accepted (default 16384, as Twisted's line
    /// receiver); longer lines are counted and skipped.
    pub max_line_length: usize,
    /// IO_BACKEND: `auto` (default: io_uring where the kernel allows it, else epoll),
    /// `io_uring` (refuse to start without it) or `epoll`.
    pub io_backend: IoBackend,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            ingest_threads: 0,
            writer_threads: 0,
            cache_shards: 0,
            cache_queue_depth: 16,
            writer_open_files: 1024,
            writer_mmap: false,
            udp_receive_buffer: 128 << 20,
            max_line_length: 16 * 1024,
            io_backend: IoBackend::Auto,
        }
    }
}

impl Tuning {
    /// (ingest threads, writer threads, shards) with the automatic values worked out for
    /// `cores` available cores.
    pub fn resolve_threads(&self, cores: usize) -> (usize, usize, usize) {
        let cores = cores.max(1);
        let ingest = if self.ingest_threads == 0 { cores } else { self.ingest_threads };
        let writers = if self.writer_threads == 0 { (cores / 2).max(1) } else { self.writer_threads };
        let shards = if self.cache_shards == 0 { writers * 8 } else { self.cache_shards.max(writers) };
        (ingest, writers, shards)
    }
}

/// Cache and writer keys; Ok(false) when `key` is not one.
fn apply_writer_key(s: &mut CacheSettings, key: &str, value: &str) -> Result<bool, &'static str> {
    match key {
        "MAX_CACHE_SIZE" => s.max_cache_size = parse_limit(value)?,
        "MAX_UPDATES_PER_SECOND" => s.max_updates_per_second = parse_rate(value)?,
        "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN" => s.max_updates_per_second_on_shutdown = parse_optional_rate(value)?,
        "MAX_CREATES_PER_MINUTE" => s.max_creates_per_minute = parse_rate(value)?,
        "MIN_TIMESTAMP_RESOLUTION" => s.min_timestamp_resolution = parse_seconds(value)?,
        "MIN_TIMESTAMP_LAG" => s.min_timestamp_lag = parse_seconds(value)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Boolean keys; Ok(false) when `key` is not one.
fn apply_flag_key(s: &mut CacheSettings, key: &str, value: &str) -> Result<bool, &'static str> {
    let field = match key {
        "ENABLE_LOGROTATION" => &mut s.enable_logrotation,
        "USE_FLOW_CONTROL" => &mut s.use_flow_control,
        "ENABLE_UDP_LISTENER" => &mut s.enable_udp_listener,
        "ENABLE_STATSD" => &mut s.enable_statsd,
        "ENABLE_STATSD_TCP" => &mut s.enable_statsd_tcp,
        "WHISPER_AUTOFLUSH" => &mut s.whisper_autoflush,
        "WHISPER_SPARSE_CREATE" => &mut s.whisper_sparse_create,
        "WHISPER_FALLOCATE_CREATE" => &mut s.whisper_fallocate_create,
        "WHISPER_LOCK_WRITES" => &mut s.whisper_lock_writes,
        "WHISPER_FADVISE_RANDOM" => &mut s.whisper_fadvise_random,
        "USE_WHITELIST" => &mut s.use_whitelist,
        "ENABLE_TAGS" => &mut s.enable_tags,
        "TAG_HASH_FILENAMES" => &mut s.tag_hash_filenames,
        "LOG_UPDATES" => &mut s.log_updates,
        "LOG_CREATES" => &mut s.log_creates,
        "LOG_CACHE_HITS" => &mut s.log_cache_hits,
        "LOG_CACHE_QUEUE_SORTS" => &mut s.log_cache_queue_sorts,
        "LOG_LISTENER_CONN_SUCCESS" => &mut s.log_listener_conn_success,
        "LOG_LISTENER_CONN_LOST" => &mut s.log_listener_conn_lost,
        _ => return Ok(false),
    };
    *field = boolean(value)?;
    Ok(true)
}

fn boolean(value: &str) -> Result<bool, &'static str> {
    parse_bool(value).ok_or("a boolean: 1, yes, true, on, 0, no, false or off")
}
