//! The data behind render: whisper files read with the engine, overlaid with the points the
//! writers still hold (asked by message, as graphite-web asks carbon-cache over carbonlink), and
//! the metric index for globs.
//!
//! The overlay is graphite-web's `merge_with_cache`: when the file's finest archive has more
//! than one second per point, cached points are first reduced to the last one per interval (as
//! whisper will store them); when the fetched step is coarser than that (an older range read
//! from a lower archive), cached points are grouped per step and aggregated with the file's
//! aggregation method; each then overwrites the file's value at its slot; points before the
//! range are ignored, points past it dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::series::Series;
use super::RenderError;
use crate::cache::CacheQuery;
use crate::whisper::{AggregationMethod, Whisper, WhisperError};

/// How long a render waits for a writer's answer about cached points (graphite-web's
/// CARBONLINK_TIMEOUT is 1 s); past it, the file's points alone are shown.
pub const CACHE_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks the writers for cached points.
#[derive(Debug, Clone)]
pub struct CacheClient {
    /// One query channel per writer.
    queries: Vec<flume::Sender<CacheQuery>>,
    /// Shards of the cache (a metric's shard picks its writer).
    n_shards: usize,
}

impl CacheClient {
    /// A client of the writers behind `queries`.
    pub fn new(queries: Vec<flume::Sender<CacheQuery>>, n_shards: usize) -> CacheClient {
        CacheClient { queries, n_shards: n_shards.max(1) }
    }

    /// The cached points of `name`, sorted by timestamp; empty when none or when the writer
    /// does not answer in time.
    pub fn points(&self, name: &str) -> Vec<(i64, f64)> {
        if self.queries.is_empty() {
            return Vec::new();
        }
        let shard = crate::cache::shard_of(name.as_bytes(), self.n_shards);
        let (query, answer) = CacheQuery::points(name.as_bytes());
        if self.queries[shard % self.queries.len()].send_timeout(query, CACHE_ANSWER_TIMEOUT).is_err() {
            return Vec::new();
        }
        answer.recv_timeout(CACHE_ANSWER_TIMEOUT).unwrap_or_default()
    }

    /// The cached points of every name, in order: one question per writer for the lot.
    pub fn points_many(&self, names: &[String]) -> Vec<Vec<(i64, f64)>> {
        let mut out = vec![Vec::new(); names.len()];
        if self.queries.is_empty() {
            return out;
        }
        // Which writer owns each name; one PointsMany per writer with names.
        let mut by_writer: Vec<Vec<usize>> = vec![Vec::new(); self.queries.len()];
        for (i, name) in names.iter().enumerate() {
            let shard = crate::cache::shard_of(name.as_bytes(), self.n_shards);
            by_writer[shard % self.queries.len()].push(i);
        }
        let mut pending = Vec::new();
        for (writer, idxs) in by_writer.into_iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            let asked: Vec<Box<[u8]>> = idxs.iter().map(|&i| names[i].as_bytes().into()).collect();
            let (query, answer) = CacheQuery::points_many(asked);
            if self.queries[writer].send_timeout(query, CACHE_ANSWER_TIMEOUT).is_ok() {
                pending.push((idxs, answer));
            }
        }
        for (idxs, answer) in pending {
            if let Ok(lists) = answer.recv_timeout(CACHE_ANSWER_TIMEOUT) {
                for (i, points) in idxs.into_iter().zip(lists) {
                    out[i] = points;
                }
            }
        }
        out
    }

    /// Names of cached metrics (for the index: cached but not yet written).
    pub fn names(&self, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for q in &self.queries {
            let (query, answer) = CacheQuery::names_with_prefix(b"", limit);
            if q.send_timeout(query, CACHE_ANSWER_TIMEOUT).is_ok() {
                if let Ok(a) = answer.recv_timeout(CACHE_ANSWER_TIMEOUT) {
                    out.extend(a.names.iter().map(|n| String::from_utf8_lossy(n).into_owned()));
                }
            }
        }
        out
    }
}

/// Reads one metric: its file (at `path` under the data directory) over (from, until] at
/// `now`, with `cached` points overlaid. None when the range is wholly outside retention, or
/// when there is no file and nothing cached.
pub fn read_metric(
    name: &str,
    file: &std::path::Path,
    from: i64,
    until: i64,
    now: i64,
    cached: &[(i64, f64)],
) -> Result<Option<Series>, RenderError> {
    let mut w = match Whisper::open_read_only(file) {
        Ok(w) => w,
        Err(WhisperError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
            return Ok(cached_only(name, from, until, cached));
        }
        Err(e) => return Err(RenderError::Internal(format!("{}: {e}", file.display()))),
    };
    let header = w.header().clone();
    let Some(result) =
        w.fetch(from, Some(until), now, None).map_err(|e| RenderError::Internal(format!("{}: {e}", file.display())))?
    else {
        return Ok(None);
    };
    let raw_step = header.archives.first().map_or(1, |a| i64::from(a.seconds_per_point));
    let mut values = result.values;
    overlay(&mut values, result.from, result.step, raw_step, header.aggregation, cached);
    Ok(Some(Series::new(name, result.from, result.step, values)))
}

/// A metric with no file yet: its cached points on a 1-second grid (no schema is known before
/// the file exists; whisper's finest step is at least 1 s), or None when nothing is cached.
fn cached_only(name: &str, from: i64, until: i64, cached: &[(i64, f64)]) -> Option<Series> {
    let inside: Vec<&(i64, f64)> = cached.iter().filter(|(t, _)| *t > from && *t <= until).collect();
    let first = inside.first()?.0;
    let last = inside.last()?.0;
    let mut values = vec![None; (last - first + 1) as usize];
    for (t, v) in inside {
        values[(t - first) as usize] = Some(*v);
    }
    Some(Series::new(name, first, 1, values))
}

/// graphite-web's `merge_with_cache` (see the module documentation).
pub fn overlay(
    values: &mut [Option<f64>],
    start: i64,
    step: i64,
    raw_step: i64,
    method: AggregationMethod,
    cached: &[(i64, f64)],
) {
    if cached.is_empty() || step <= 0 {
        return;
    }
    // Last value per raw interval, as whisper keeps it.
    let mut per_raw: BTreeMap<i64, f64> = BTreeMap::new();
    for &(t, v) in cached {
        let t = if raw_step > 1 { t - t.rem_euclid(raw_step) } else { t };
        per_raw.insert(t, v);
    }
    let points: Vec<(i64, f64)> = if step != raw_step {
        let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (t, v) in per_raw {
            groups.entry(t - t.rem_euclid(step)).or_default().push(v);
        }
        groups.into_iter().filter_map(|(t, vs)| Some((t, aggregate(method, &vs)?))).collect()
    } else {
        per_raw.into_iter().collect()
    };
    for (t, v) in points {
        let offset = t - start;
        if offset < 0 {
            continue;
        }
        if let Some(slot) = values.get_mut((offset / step) as usize) {
            *slot = Some(v);
        }
    }
}

fn aggregate(method: AggregationMethod, vs: &[f64]) -> Option<f64> {
    let opts: Vec<Option<f64>> = vs.iter().copied().map(Some).collect();
    (!opts.is_empty()).then(|| method.aggregate(&opts))
}

/// Where the files are.
#[derive(Debug, Clone)]
pub struct Files {
    /// LOCAL_DATA_DIR.
    pub data_dir: PathBuf,
    /// TAG_HASH_FILENAMES.
    pub tag_files: crate::protocol::name::TagFileNames,
}

impl Files {
    /// The file of metric `name` (tagged names under `_tagged/`, as carbon stores them); None
    /// for a name no file may have (`..`, NUL...).
    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        let valid = crate::protocol::name::validate(name.as_bytes()).ok()?;
        let mut rel = PathBuf::new();
        valid.write_relative_path(self.tag_files, &mut rel).ok()?;
        Some(self.data_dir.join(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_points_overwrite_file_values_at_their_slot() {
        let mut values = vec![Some(1.0), None, Some(3.0), None];
        overlay(&mut values, 100, 10, 10, AggregationMethod::Average, &[(95, 9.0), (112, 7.0), (118, 8.0), (145, 5.0)]);
        assert_eq!(values, vec![Some(1.0), Some(8.0), Some(3.0), None], "last per interval; before and after ignored");
    }

    #[test]
    fn a_coarser_fetch_aggregates_cached_points_with_the_files_method() {
        let mut values = vec![None, None];
        overlay(&mut values, 0, 60, 10, AggregationMethod::Sum, &[(0, 1.0), (10, 2.0), (15, 5.0), (60, 4.0)]);
        assert_eq!(values, vec![Some(1.0 + 5.0), Some(4.0)]);
    }

    #[test]
    fn a_metric_only_in_the_cache_is_shown() {
        let s = cached_only("a", 100, 200, &[(90, 1.0), (150, 2.0), (152, 3.0)]).unwrap();
        assert_eq!((s.start, s.step, s.values.clone()), (150, 1, vec![Some(2.0), None, Some(3.0)]));
        assert!(cached_only("a", 100, 200, &[(90, 1.0)]).is_none());
    }
}
