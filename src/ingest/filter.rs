//! USE_WHITELIST: carbon's whitelist.conf and blacklist.conf (in WHITELISTS_DIR), one regular
//! expression per line, matched anywhere in the metric name (Python's `re.search`).
//!
//! As carbon: a name matching the blacklist is refused (blacklistMatches); otherwise, when the
//! whitelist has patterns, a name matching none of them is refused (whitelistRejects). Lines
//! starting with `#` and blank lines are skipped; a pattern that does not compile is reported
//! and skipped. The files are re-read when their modification time changes (checked every 10 s,
//! as carbon does) or when one appears or disappears.
//!
//! Receivers never lock for this: each keeps an `Arc` of the current lists and swaps it when the
//! shared generation number changes (one relaxed load per loop turn).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use regex::RegexSet;

/// What the lists say about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Neither list refuses it.
    Accept,
    /// It matches the blacklist.
    Blacklisted,
    /// The whitelist has patterns and it matches none.
    NotWhitelisted,
}

/// One version of both lists.
#[derive(Debug, Default)]
pub struct MetricFilter {
    /// None when the file is missing or has no usable pattern.
    white: Option<RegexSet>,
    black: Option<RegexSet>,
}

impl MetricFilter {
    /// Reads `whitelist.conf` and `blacklist.conf` from `dir`; returns the lists and one line per
    /// pattern that was skipped.
    pub fn load(dir: &Path) -> (MetricFilter, Vec<String>) {
        let mut problems = Vec::new();
        let white = read_list(&dir.join("whitelist.conf"), &mut problems);
        let black = read_list(&dir.join("blacklist.conf"), &mut problems);
        (MetricFilter { white, black }, problems)
    }

    /// The verdict for `name`.
    pub fn check(&self, name: &str) -> Verdict {
        if self.black.as_ref().is_some_and(|b| b.is_match(name)) {
            return Verdict::Blacklisted;
        }
        if self.white.as_ref().is_some_and(|w| !w.is_match(name)) {
            return Verdict::NotWhitelisted;
        }
        Verdict::Accept
    }
}

fn read_list(path: &Path, problems: &mut Vec<String>) -> Option<RegexSet> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut patterns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let pattern = line.trim();
        if line.starts_with('#') || pattern.is_empty() {
            continue;
        }
        match regex::Regex::new(pattern) {
            Ok(_) => patterns.push(pattern.to_string()),
            Err(e) => problems.push(format!("{}:{}: pattern skipped: {e}", path.display(), i + 1)),
        }
    }
    if patterns.is_empty() {
        return None;
    }
    RegexSet::new(&patterns).ok()
}

/// The lists shared by all receivers, reloaded in place.
#[derive(Debug)]
pub struct SharedFilter {
    dir: PathBuf,
    current: RwLock<Arc<MetricFilter>>,
    /// Incremented at every reload that changed something.
    generation: AtomicU64,
    /// Modification times of (whitelist, blacklist) at the last read.
    mtimes: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtimes(dir: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |f: &str| std::fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok();
    (m("whitelist.conf"), m("blacklist.conf"))
}

impl SharedFilter {
    /// Reads the lists in `dir`; returns them and the skipped patterns.
    pub fn load(dir: PathBuf) -> (Arc<SharedFilter>, Vec<String>) {
        let stamps = mtimes(&dir);
        let (filter, problems) = MetricFilter::load(&dir);
        let shared = SharedFilter {
            dir,
            current: RwLock::new(Arc::new(filter)),
            generation: AtomicU64::new(0),
            mtimes: Mutex::new(stamps),
        };
        (Arc::new(shared), problems)
    }

    /// Re-reads the lists if either file changed; returns the skipped patterns of a reload.
    pub fn reload_if_changed(&self) -> Vec<String> {
        let stamps = mtimes(&self.dir);
        let mut last = self.mtimes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *last == stamps {
            return Vec::new();
        }
        let (filter, problems) = MetricFilter::load(&self.dir);
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(filter);
        *last = stamps;
        self.generation.fetch_add(1, Ordering::Release);
        problems
    }

    /// A receiver's handle on the lists.
    pub fn handle(self: &Arc<SharedFilter>) -> FilterHandle {
        let current = Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner));
        FilterHandle { shared: Arc::clone(self), seen: self.generation.load(Ordering::Acquire), current }
    }
}

/// One receiver's view of the lists.
#[derive(Debug)]
pub struct FilterHandle {
    shared: Arc<SharedFilter>,
    /// The generation `current` belongs to.
    seen: u64,
    current: Arc<MetricFilter>,
}

impl FilterHandle {
    /// Picks up a reload, if there was one (once per loop turn).
    pub fn refresh(&mut self) {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.current = Arc::clone(&self.shared.current.read().unwrap_or_else(std::sync::PoisonError::into_inner));
            self.seen = generation;
        }
    }

    /// The lists in force.
    pub fn filter(&self) -> &MetricFilter {
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blacklist_first_then_whitelist_as_carbon() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, problems) = SharedFilter::load(dir.path().to_path_buf());
        assert!(problems.is_empty());
        let mut h = shared.handle();
        assert_eq!(h.filter().check("anything"), Verdict::Accept, "no files: nothing refused");
        std::fs::write(dir.path().join("whitelist.conf"), "# comment\n^servers\\.\n\n(bad\n").unwrap();
        std::fs::write(dir.path().join("blacklist.conf"), "\\.secret\\.\n").unwrap();
        let problems = shared.reload_if_changed();
        assert_eq!(problems.len(), 1, "the bad pattern is reported: {problems:?}");
        assert!(problems[0].contains("whitelist.conf:4"), "{problems:?}");
        h.refresh();
        assert_eq!(h.filter().check("servers.web1.cpu"), Verdict::Accept);
        assert_eq!(h.filter().check("servers.web1.secret.key"), Verdict::Blacklisted);
        assert_eq!(h.filter().check("other.metric"), Verdict::NotWhitelisted);
        assert_eq!(h.filter().check("x.servers.y"), Verdict::NotWhitelisted, "anchored pattern");
        assert!(shared.reload_if_changed().is_empty(), "unchanged files are not re-read");
        std::fs::remove_file(dir.path().join("whitelist.conf")).unwrap();
        shared.reload_if_changed();
        h.refresh();
        assert_eq!(h.filter().check("other.metric"), Verdict::Accept, "whitelist gone");
        assert_eq!(h.filter().check("a.secret.b"), Verdict::Blacklisted);
    }
}
