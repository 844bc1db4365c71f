//! The data behind the HTTP API in a running server: the metric index for globs, whisper
//! files for values, and the writers' caches for points not yet written.

use super::tags::Tags;
use super::{Finder, FoundNode};
use crate::index::Index;
use crate::index::TagError;
use crate::protocol::name::normalize_tagged;
use crate::render::store::{read_metric, CacheClient, Files};
use crate::render::{RenderError, Series, Store};

/// Globs with fewer series than this are read on the request's thread.
const PARALLEL_FETCH_MIN: usize = 64;
/// Most threads one request reads files on.
const FETCH_THREADS_MAX: usize = 4;

/// Threads a big glob's files are read on: the CPUs, at most [`FETCH_THREADS_MAX`]. Asked
/// once: `available_parallelism` reads the cgroup's files each time (8 % of a one-series
/// render's CPU when it was asked per request).
fn fetch_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from).min(FETCH_THREADS_MAX))
}

/// Index + files + caches.
#[derive(Debug, Clone)]
pub struct DiskBackend {
    /// The metric index.
    pub index: Index,
    /// Where the files are.
    pub files: Files,
    /// The writers, asked for cached points.
    pub cache: CacheClient,
}

fn find_error(e: crate::index::IndexError) -> RenderError {
    RenderError::bad(e.to_string())
}

fn tag_error(e: crate::index::TagError) -> RenderError {
    RenderError::bad(e.to_string())
}

impl Store for DiskBackend {
    fn find_leaves(&self, pattern: &str, limit: usize) -> Result<Vec<String>, RenderError> {
        // A tagged name is no glob: graphite-web looks its file up as written (hashed), so it is
        // found when the tag index knows it or its file exists.
        if pattern.contains(';') && !pattern.starts_with("_tagged.") {
            let known = self.index.contains_tagged(pattern) || self.files.path_of(pattern).is_some_and(|f| f.is_file());
            return Ok(if known && limit > 0 { vec![pattern.to_string()] } else { Vec::new() });
        }
        // Branches count against the index's limit too: ask for room for both.
        let nodes = self.index.find(pattern, limit.saturating_mul(2)).map_err(find_error)?;
        let mut leaves: Vec<String> = nodes.into_iter().filter(|n| n.is_leaf).map(|n| n.path).collect();
        leaves.sort();
        leaves.dedup();
        Ok(leaves)
    }

    fn find_tagged(&self, exprs: &[String], limit: usize) -> Result<Vec<String>, RenderError> {
        self.index.find_tagged(exprs, limit).map_err(tag_error)
    }

    fn fetch(&self, path: &str, from: i64, until: i64, now: i64) -> Result<Option<Series>, RenderError> {
        let Some(file) = self.files.path_of(path) else { return Ok(None) };
        let cached = self.cache.points(path);
        read_metric(path, &file, from, until, now, &cached)
    }

    fn fetch_many(
        &self,
        paths: &[String],
        from: i64,
        until: i64,
        now: i64,
    ) -> Result<Vec<Option<Series>>, RenderError> {
        let cached = self.cache.points_many(paths);
        let read = |(path, cached): (&String, &Vec<(i64, f64)>)| match self.files.path_of(path) {
            Some(file) => read_metric(path, &file, from, until, now, cached),
            None => Ok(None),
        };
        // A big glob reads its files on a few scoped threads (the reads are independent; the
        // results keep the order asked).
        if paths.len() < PARALLEL_FETCH_MIN || fetch_threads() < 2 {
            return paths.iter().zip(&cached).map(read).collect();
        }
        let threads = fetch_threads();
        let chunk = paths.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Option<Series>>, RenderError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = paths
                .chunks(chunk)
                .zip(cached.chunks(chunk))
                .map(|(p, c)| scope.spawn(move || p.iter().zip(c).map(read).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(RenderError::Internal("a file read failed".into()))))
                .collect()
        });
        let mut out = Vec::with_capacity(paths.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}

impl Finder for DiskBackend {
    fn find(&self, pattern: &str, limit: usize) -> Result<Vec<FoundNode>, RenderError> {
        let nodes = self.index.find(pattern, limit).map_err(find_error)?;
        Ok(nodes.into_iter().map(|n| FoundNode { path: n.path, is_leaf: n.is_leaf }).collect())
    }

    fn all_leaves(&self, limit: usize) -> Result<Vec<String>, RenderError> {
        self.find_leaves("**", limit)
    }
}

impl Tags for DiskBackend {
    fn find_series(&self, exprs: &[String], limit: usize) -> Result<Vec<String>, TagError> {
        self.index.find_tagged(exprs, limit)
    }

    fn list_tags(&self, filter: Option<&str>, limit: Option<usize>) -> Result<Vec<String>, TagError> {
        self.index.list_tags(filter, limit)
    }

    fn tag_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Option<Vec<(String, usize)>>, TagError> {
        self.index.tag_values(tag, filter, limit)
    }

    fn auto_complete_tags(&self, exprs: &[String], prefix: &str, limit: usize) -> Result<Vec<String>, TagError> {
        self.index.auto_complete_tags(exprs, prefix, limit)
    }

    fn auto_complete_values(
        &self,
        exprs: &[String],
        tag: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError> {
        self.index.auto_complete_values(exprs, tag, prefix, limit)
    }

    /// Canonical names as carbon makes them; plain names join the metric tree.
    fn tag_series(&self, paths: &[&str]) -> Result<Vec<String>, String> {
        let canonical: Vec<String> = paths
            .iter()
            .map(|p| normalize_tagged(p.as_bytes()).map_err(|e| format!("Cannot parse path {p}: {e}")))
            .collect::<Result<_, _>>()?;
        for name in &canonical {
            self.index.insert(name);
        }
        self.index.sync();
        Ok(canonical)
    }

    fn del_series(&self, paths: &[&str]) {
        let canonical: Vec<String> = paths.iter().filter_map(|p| normalize_tagged(p.as_bytes()).ok()).collect();
        self.index.delete_tagged(&canonical);
        self.index.sync();
    }
}
