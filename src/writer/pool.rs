//! One writer thread: owns the shard caches `{s | s mod W == w}`, drains their queues, and writes
//! each metric's pending points to its whisper file, creating files with the storage rules.
//!
//! Loop turn: move queued batches into the shard caches; answer queries; then write up to
//! `WRITES_PER_TURN` metrics in the strategy's order, each under MAX_UPDATES_PER_SECOND (the
//! writer sleeps for a token, as carbon's does). A metric without a file is created under
//! MAX_CREATES_PER_MINUTE; when no create token is left its points go back into the cache (still
//! counted, still visible to queries) instead of being dropped as carbon drops them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::files::OpenFiles;
use super::throttle::TokenBucket;
use crate::cache::{serve_queries, Batch, CacheQuery, DrainStrategy, HandOff, ShardCache};
use crate::config::Config;
use crate::protocol::name::{validate, TagFileNames};
use crate::telemetry::{names, CounterId, Registry, ThreadCounters};
use crate::whisper::WhisperError;

/// Metrics written per loop turn before the queues are drained again.
const WRITES_PER_TURN: usize = 256;
/// The longest a loop turn writes before it answers queries again: a burst of new metrics
/// (each a file create) must not keep a render waiting for cached points.
const WRITE_TURN_MAX: Duration = Duration::from_millis(20);
/// Batches moved per shard per loop turn.
const BATCHES_PER_TURN: usize = 64;
/// Queries answered per loop turn.
const QUERIES_PER_TURN: usize = 64;

/// Everything one writer thread needs.
#[derive(Debug)]
pub struct WriterSetup {
    /// This writer's index and the number of writers.
    pub writer_idx: usize,
    /// Writers in the pool.
    pub n_writers: usize,
    /// The hand-off shared with the ingest threads.
    pub handoff: Arc<HandOff>,
    /// Configuration (storage rules reloaded in place on SIGHUP).
    pub config: Arc<RwLock<Config>>,
    /// Queries for this writer's shards.
    pub queries: flume::Receiver<CacheQuery>,
    /// Set when the ingest threads have stopped and handed everything off: drain and exit.
    pub ingest_done: Arc<AtomicBool>,
    /// Counter registry.
    pub registry: Arc<Registry>,
    /// Most files kept open.
    pub open_files_max: usize,
    /// The metric index: every name this writer caches or creates is added to it.
    pub index: Option<crate::index::Index>,
}

struct Ids {
    committed: CounterId,
    updates: CounterId,
    update_micros: CounterId,
    creates: CounterId,
    dropped_creates: CounterId,
    errors: CounterId,
    too_old: CounterId,
}

/// Counter names the writers add to the registry besides carbon's.
pub const WRITER_COUNTERS: [&str; 1] = ["pointsTooOld"];

/// Runs one writer until the ingest side is done and every point it owns is written.
pub fn run(setup: WriterSetup) {
    let WriterSetup { writer_idx, n_writers, handoff, config, queries, ingest_done, registry, open_files_max, index } =
        setup;
    let n_shards = handoff.config().n_shards;
    let shards: Vec<usize> = (0..n_shards).filter(|s| s % n_writers == writer_idx).collect();
    let (settings, strategy) = {
        let c = config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let strategy = drain_strategy(c.cache.cache_write_strategy.name(), c.cache.min_timestamp_lag);
        (c.cache.clone(), strategy)
    };
    let mut caches: Vec<ShardCache> = shards.iter().map(|&s| ShardCache::new(s, n_shards, strategy)).collect();
    let capacity = std::num::NonZeroUsize::new(open_files_max.max(1)).expect("max(1) is non-zero");
    let mut w = Writer {
        files: OpenFiles::new(settings.local_data_dir.clone(), capacity, settings.whisper_write_options(), 10.0),
        tag_files: if settings.tag_hash_filenames { TagFileNames::Hashed } else { TagFileNames::Readable },
        clock: Instant::now(),
        updates: TokenBucket::per_second(settings.max_updates_per_second, 0.0),
        creates: TokenBucket::per_minute(settings.max_creates_per_minute, 0.0),
        counters: registry.thread(format!("writer{writer_idx}")),
        ids: Ids {
            committed: registry.id(names::COMMITTED_POINTS),
            updates: registry.id(names::UPDATE_OPERATIONS),
            update_micros: registry.id(names::UPDATE_MICROS),
            creates: registry.id(names::CREATES),
            dropped_creates: registry.id(names::DROPPED_CREATES),
            errors: registry.id(names::ERRORS),
            too_old: registry.id("pointsTooOld"),
        },
        config,
        handoff,
        points: Vec::new(),
        put_back: Batch::new(4096, crate::cache::MAX_NAME_BYTES * 2),
        path: PathBuf::new(),
        name: Vec::new(),
        errors_logged: 0,
        shutdown_rate_set: false,
        first_cache: 0,
        index,
    };
    let mut new_names = Vec::new();
    loop {
        let done = ingest_done.load(Ordering::Acquire);
        if done && !w.shutdown_rate_set {
            let rate = settings.max_updates_per_second_on_shutdown.unwrap_or(settings.max_updates_per_second);
            let now = w.now_s();
            w.updates.set_per_second(rate, now);
            // At a clean stop nothing accepted may be lost: metrics whose create was throttled
            // are created now, whatever MAX_CREATES_PER_MINUTE says (carbon would drop them).
            w.creates.set_per_second(f64::INFINITY, now);
            // As carbon zeroes MIN_TIMESTAMP_LAG at stop: recent points are written too.
            for cache in caches.iter_mut() {
                if let DrainStrategy::TimeSorted { min_timestamp_lag_s } = cache.strategy() {
                    if min_timestamp_lag_s > 0 {
                        cache.set_strategy(DrainStrategy::TimeSorted { min_timestamp_lag_s: 0 });
                    }
                }
            }
            w.shutdown_rate_set = true;
        }
        let moved: u64 =
            shards.iter().zip(caches.iter_mut()).map(|(&s, c)| w.handoff.drain_into(s, c, BATCHES_PER_TURN)).sum();
        caches.iter_mut().for_each(|c| c.take_new_names(&mut new_names));
        w.index_names(&mut new_names);
        serve_queries(&caches, &queries, QUERIES_PER_TURN);
        let written = w.write_some(&mut caches);
        let pending: u64 = caches.iter().map(ShardCache::len_points).sum();
        let queued = w.handoff.stats().batches_queued > 0;
        if done && pending == 0 && !queued && moved == 0 {
            break;
        }
        if written == 0 && moved == 0 {
            // Idle: wait for a question rather than sleep, so that renders are answered at once.
            let wait = Duration::from_millis(if pending == 0 { 5 } else { 1 });
            crate::cache::wait_and_serve_queries(&caches, &queries, QUERIES_PER_TURN, wait);
        }
    }
    w.files.clear();
}

fn drain_strategy(name: &str, min_timestamp_lag: u64) -> DrainStrategy {
    match name {
        "max" => DrainStrategy::Max,
        "naive" => DrainStrategy::Naive,
        "timesorted" => DrainStrategy::TimeSorted { min_timestamp_lag_s: min_timestamp_lag },
        "bucketmax" => DrainStrategy::BucketMax,
        _ => DrainStrategy::Sorted,
    }
}

struct Writer {
    files: OpenFiles,
    tag_files: TagFileNames,
    clock: Instant,
    updates: TokenBucket,
    creates: TokenBucket,
    counters: Arc<ThreadCounters>,
    ids: Ids,
    config: Arc<RwLock<Config>>,
    handoff: Arc<HandOff>,
    /// The points of the metric being written (reused).
    points: Vec<(i64, f64)>,
    /// Points of a metric whose create was throttled, on their way back into its cache.
    put_back: Batch,
    /// The relative path of the metric being written (reused).
    path: PathBuf,
    /// The name of the metric being written (reused).
    name: Vec<u8>,
    errors_logged: u64,
    shutdown_rate_set: bool,
    /// The cache a turn starts with, rotated every turn, so that a turn cut short by
    /// `WRITE_TURN_MAX` does not always leave the same shards for later.
    first_cache: usize,
    index: Option<crate::index::Index>,
}

enum Outcome {
    Written,
    /// No create token: the points must go back into the cache.
    Deferred,
    /// Dropped and counted (the name cannot be stored, or the file is unusable).
    Failed,
}

impl Writer {
    /// Adds names first cached (or created) to the index, so that they are findable before
    /// their file exists; empties `names`.
    fn index_names(&self, names: &mut Vec<Box<[u8]>>) {
        if let Some(index) = &self.index {
            for raw in names.iter() {
                if let Ok(valid) = crate::protocol::name::validate(raw) {
                    index.insert(&valid.canonical());
                }
            }
        }
        names.clear();
    }

    fn now_s(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// Writes up to WRITES_PER_TURN metrics across the shards; returns how many were written.
    fn write_some(&mut self, caches: &mut [ShardCache]) -> usize {
        let mut written = 0;
        let mut deferred = 0;
        let per_cache = (WRITES_PER_TURN / caches.len().max(1)).max(1);
        let turn_started = Instant::now();
        let n_caches = caches.len();
        self.first_cache = (self.first_cache + 1) % n_caches.max(1);
        let (later, earlier) = caches.split_at_mut(self.first_cache);
        for cache in earlier.iter_mut().chain(later.iter_mut()) {
            for _ in 0..per_cache {
                if turn_started.elapsed() >= WRITE_TURN_MAX {
                    break;
                }
                let now = unix_now();
                let mut points = std::mem::take(&mut self.points);
                let Some(popped) = cache.pop_next(now, &mut points) else {
                    self.points = points;
                    break;
                };
                let entries = popped.entries;
                let mut name = std::mem::take(&mut self.name);
                name.clear();
                name.extend_from_slice(popped.name);
                match self.write_metric(&name, &points, now) {
                    Outcome::Written | Outcome::Failed => {
                        self.handoff.size().release(entries);
                        written += 1;
                    }
                    Outcome::Deferred => {
                        // The take merged duplicates away (entries - points): those are gone for
                        // good and leave the size now; the points go back and stay counted.
                        self.handoff.size().release(entries - points.len() as u64);
                        self.put_back(cache, &name, &points);
                        deferred += 1;
                    }
                }
                self.points = points;
                self.name = name;
                if deferred > 0 && deferred >= cache.len_metrics() {
                    break;
                }
            }
        }
        if written == 0 && deferred > 0 {
            // Only throttled creates are left: wait for the next create token.
            let wait = self.creates.wait_s(self.now_s()).min(0.1);
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
        written
    }

    fn write_metric(&mut self, name: &[u8], points: &[(i64, f64)], now: i64) -> Outcome {
        let mut path = std::mem::take(&mut self.path);
        let outcome = self.write_metric_at(name, points, now, &mut path);
        self.path = path;
        outcome
    }

    /// `write_metric` with the reused relative-path buffer `path`.
    fn write_metric_at(&mut self, name: &[u8], points: &[(i64, f64)], now: i64, path: &mut PathBuf) -> Outcome {
        let metric = match validate(name) {
            Ok(m) => m,
            Err(_) => return self.fail(name, "name cannot be stored", None),
        };
        path.clear();
        if metric.write_relative_path(self.tag_files, path).is_err() {
            return self.fail(name, "name cannot be stored", None);
        }
        let now_s = self.now_s();
        let exists = match self.files.get(name, path, now_s) {
            Ok(file) => file.is_some(),
            Err(e) => return self.fail(name, "open failed", Some(e)),
        };
        if !exists {
            if !self.creates.try_take(now_s) {
                self.counters.incr(self.ids.dropped_creates);
                return Outcome::Deferred;
            }
            if let Err(e) = self.create(name, &metric.canonical(), path) {
                return self.fail(name, "create failed", Some(e));
            }
            self.counters.incr(self.ids.creates);
            if let Some(index) = &self.index {
                index.insert(&metric.canonical());
            }
        }
        self.wait_update_token();
        let started = Instant::now();
        let result = match self.files.get(name, path, self.now_s()) {
            Ok(Some(file)) => file.update_many(points, now),
            Ok(None) => return self.fail(name, "file vanished", None),
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                let c = &self.counters;
                c.add(self.ids.committed, report.points_accepted as u64);
                c.add(self.ids.too_old, report.points_too_old as u64);
                c.incr(self.ids.updates);
                c.add(self.ids.update_micros, started.elapsed().as_micros() as u64);
                Outcome::Written
            }
            Err(e) => self.fail(name, "update failed", Some(e)),
        }
    }

    /// Creates the file of `name` (canonical form `metric`) at `relative`; the open handle stays
    /// in the file cache for the update that follows.
    fn create(&mut self, name: &[u8], metric: &str, relative: &std::path::Path) -> Result<(), WhisperError> {
        let full = self.files.path_of(relative);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| WhisperError::Io { path: parent.to_path_buf(), cause: e })?;
        }
        let (archives, options) = {
            let config = self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let plan = config.create_plan(metric);
            (plan.schema.archives.clone(), plan.options)
        };
        match self.files.create(name, relative, &archives, &options, self.now_s()) {
            // Created meanwhile by someone else: the update opens it.
            Ok(()) | Err(WhisperError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wait_update_token(&mut self) {
        while !self.updates.try_take(self.now_s()) {
            let wait = self.updates.wait_s(self.now_s()).min(0.1);
            std::thread::sleep(Duration::from_secs_f64(wait.max(0.0001)));
        }
    }

    /// Counts a metric's points as lost to an error and logs at a bounded rate.
    fn fail(&mut self, name: &[u8], what: &str, error: Option<WhisperError>) -> Outcome {
        self.counters.incr(self.ids.errors);
        // Bounded: the first 100 errors, then one in 1000.
        if self.errors_logged < 100 || self.errors_logged % 1000 == 0 {
            let detail = error.map(|e| format!(": {e}")).unwrap_or_default();
            eprintln!("carbyne: writer: {what} for {}{detail}", String::from_utf8_lossy(name));
        }
        self.errors_logged += 1;
        Outcome::Failed
    }

    /// Puts a metric's points back into its cache after a throttled create.
    fn put_back(&mut self, cache: &mut ShardCache, name: &[u8], points: &[(i64, f64)]) {
        for chunk in points.chunks(self.put_back.points_max()) {
            self.put_back.clear();
            for &(ts, v) in chunk {
                let pushed = self.put_back.push(name, ts, v);
                debug_assert!(pushed, "a chunk fits the put-back batch");
            }
            let replaced = cache.absorb(&self.put_back);
            self.handoff.size().release(replaced);
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
