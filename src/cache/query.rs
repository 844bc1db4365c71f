//! Questions to a writer about its shards' caches, asked by message (flume channels).
//!
//! A writer owns its caches, so nobody else may read them; query threads (carbonlink, render,
//! the index) send a `CacheQuery` carrying its own one-shot reply channel to the writer's
//! bounded query channel, and the writer answers with `serve_queries` between two writes. Who
//! to ask: `Points` goes to the writer owning `shard_of(name, n_shards)`; `NamesWithPrefix` and
//! `Sizes` go to every writer, and the asker merges the answers. A reply the asker stopped
//! waiting for is dropped silently (that is the asker's choice, not a loss of data).

use super::shard::shard_of;
use super::shard_cache::ShardCache;

/// Most names one `NamesWithPrefix` answer may carry, whatever the asker requests.
pub const NAMES_LIMIT_MAX: usize = 1 << 20;

/// The cached points of several metrics, in the order asked.
pub type PointLists = Vec<Vec<(i64, f64)>>;

/// A question for a writer; each carries the channel its answer goes back on.
#[derive(Debug)]
pub enum CacheQuery {
    /// The cached points of several metrics (one round trip for a whole glob), each sorted
    /// by timestamp, deduplicated; in the order asked.
    PointsMany {
        /// The metrics (all of this writer's shards).
        names: Vec<Box<[u8]>>,
        /// Where the answer goes.
        reply: flume::Sender<PointLists>,
    },
    /// The cached points of one metric, sorted by timestamp, deduplicated.
    Points {
        /// The metric.
        name: Box<[u8]>,
        /// Where the answer goes.
        reply: flume::Sender<Vec<(i64, f64)>>,
    },
    /// Names of the metrics with cached points that start with `prefix`.
    NamesWithPrefix {
        /// The prefix (empty: every cached name).
        prefix: Box<[u8]>,
        /// Most names wanted (capped at `NAMES_LIMIT_MAX`).
        limit: usize,
        /// Where the answer goes.
        reply: flume::Sender<NamesAnswer>,
    },
    /// Points and metrics cached in the writer's shards.
    Sizes {
        /// Where the answer goes.
        reply: flume::Sender<CacheSizes>,
    },
}

/// The answer to `NamesWithPrefix`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamesAnswer {
    /// Matching names, in no particular order.
    pub names: Vec<Box<[u8]>>,
    /// More names matched than `limit`.
    pub truncated: bool,
}

/// The answer to `Sizes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheSizes {
    /// Pending points in the writer's shard caches.
    pub points: u64,
    /// Metrics with pending points.
    pub metrics: u64,
}

impl CacheQuery {
    /// A `Points` question and the receiver of its answer.
    pub fn points(name: &[u8]) -> (Self, flume::Receiver<Vec<(i64, f64)>>) {
        let (reply, answer) = flume::bounded(1);
        (Self::Points { name: name.into(), reply }, answer)
    }

    /// A `PointsMany` question and the receiver of its answer.
    pub fn points_many(names: Vec<Box<[u8]>>) -> (Self, flume::Receiver<PointLists>) {
        let (reply, answer) = flume::bounded(1);
        (Self::PointsMany { names, reply }, answer)
    }

    /// A `NamesWithPrefix` question and the receiver of its answer.
    pub fn names_with_prefix(prefix: &[u8], limit: usize) -> (Self, flume::Receiver<NamesAnswer>) {
        let (reply, answer) = flume::bounded(1);
        (Self::NamesWithPrefix { prefix: prefix.into(), limit, reply }, answer)
    }

    /// A `Sizes` question and the receiver of its answer.
    pub fn sizes() -> (Self, flume::Receiver<CacheSizes>) {
        let (reply, answer) = flume::bounded(1);
        (Self::Sizes { reply }, answer)
    }
}

/// Answers up to `max_queries` waiting questions from `queries` about `caches` (the writer's
/// shards) without blocking; returns how many were answered. Call it between writes, with a
/// small `max_queries`, so questions neither wait long nor starve the writes.
pub fn serve_queries(caches: &[ShardCache], queries: &flume::Receiver<CacheQuery>, max_queries: usize) -> usize {
    let mut answered = 0;
    while answered < max_queries {
        let Ok(query) = queries.try_recv() else { break };
        answer(caches, query);
        answered += 1;
    }
    answered
}

/// Waits up to `timeout` for a question (instead of sleeping, so that an idle writer answers at
/// once), then answers it and up to `max_queries - 1` more waiting ones. Returns how many were
/// answered.
pub fn wait_and_serve_queries(
    caches: &[ShardCache],
    queries: &flume::Receiver<CacheQuery>,
    max_queries: usize,
    timeout: std::time::Duration,
) -> usize {
    match queries.recv_timeout(timeout) {
        Ok(query) => {
            answer(caches, query);
            1 + serve_queries(caches, queries, max_queries.saturating_sub(1))
        }
        Err(_) => 0,
    }
}

/// Answers one question; a send error means the asker gave up, which is its right.
fn answer(caches: &[ShardCache], query: CacheQuery) {
    let points_of = |name: &[u8]| {
        let mut points = Vec::new();
        if let Some(first) = caches.first() {
            let shard_idx = shard_of(name, first.n_shards());
            if let Some(cache) = caches.iter().find(|c| c.shard_idx() == shard_idx) {
                cache.query_into(name, &mut points);
            }
        }
        points
    };
    match query {
        CacheQuery::Points { name, reply } => {
            let _ = reply.send(points_of(&name));
        }
        CacheQuery::PointsMany { names, reply } => {
            let _ = reply.send(names.iter().map(|n| points_of(n)).collect());
        }
        CacheQuery::NamesWithPrefix { prefix, limit, reply } => {
            let limit = limit.min(NAMES_LIMIT_MAX);
            let mut answer = NamesAnswer::default();
            for cache in caches {
                let left = limit - answer.names.len();
                answer.truncated |= cache.names_with_prefix(&prefix, left, &mut answer.names);
            }
            let _ = reply.send(answer);
        }
        CacheQuery::Sizes { reply } => {
            let sizes = caches.iter().fold(CacheSizes::default(), |acc, c| CacheSizes {
                points: acc.points + c.len_points(),
                metrics: acc.metrics + c.len_metrics() as u64,
            });
            let _ = reply.send(sizes);
        }
    }
}
