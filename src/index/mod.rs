//! The metric-name index: the tree of every known metric path, for graphite's glob find
//! (`/metrics/find`, render targets).
//!
//! Owns: the names (loaded from `LOCAL_DATA_DIR` at start-up, then added by the writers as
//! they create files or cache new names), graphite-web's glob grammar (`glob.rs`), the search
//! and its order (`tree.rs`), the start-up walk (`load.rs`), and the tag index of tagged series
//! (`tags.rs`: their files are named by a hash, so the tree cannot hold them; `tag_log.rs`
//! keeps it on disk). Leaves out: output formats, time ranges and intervals (a leaf's file says
//! those), and removal of plain names (a deleted file stays listed until the next start, as a
//! name carbon still caches would; tagged series are removed with [`Index::delete_tagged`], as
//! graphite-web's `/tags/delSeries` removes them from its TagDB).
//!
//! ```text
//!  writer threads ──insert(name)──► fast path: present in the current snapshot? done
//!                                   else: inbox (Mutex<HashSet>, O(1) push, never held by a reader)
//!                                          │ wake (at most one notify per empty→non-empty)
//!                                          ▼
//!  index thread: [walk LOCAL_DATA_DIR, one directory at a time] then, forever:
//!                take the inbox ─► Tree::insert (copy-on-write) ─► publish Arc<Snapshot>
//!                (at most every PUBLISH_INTERVAL_MS, at once for sync(); every
//!                 LOAD_PUBLISH_INTERVAL_MS while loading)
//!                                          ▼
//!  query threads ──find(pattern)──► clone the current Arc<Snapshot> ─► search it, no lock held
//! ```
//!
//! **Architecture Invariant:** no thread ever waits on a find. A find holds no lock while it
//! searches: it clones the current snapshot's `Arc` under a read lock held for that clone only,
//! and a snapshot never changes. Writers only push into the inbox (a mutex that readers never
//! take, held for one hash-set insert) and the index thread alone changes the tree; it takes
//! the snapshot lock for writing only to swap one pointer. An inserted name is never dropped:
//! it stays in the inbox until the index thread has published a snapshot that holds it.
//!
//! Why this design rather than the alternatives:
//! - a `RwLock` over one mutable tree makes an insert wait for the slowest find in progress (a
//!   find returning 500 000 of a million nodes takes about half a second) and, since std's
//!   lock prefers writers, every find behind that insert too; sharding by first element only
//!   shrinks that;
//! - a bounded channel to the index thread needs a rule for a full channel, and the writer would
//!   have to keep the name and retry: the inbox set holds each pending name once, so it is
//!   bounded by the number of names not yet published, i.e. by the tree's own growth;
//! - persistent (copy-on-write) child maps make a snapshot a pointer copy, and publishing a
//!   batch copies only the child maps on the changed paths, once per batch. The cost that
//!   remains is a node with a huge fan-out (a flat root of a million names): each publish that
//!   adds one of its children copies its map, which is why publishing is batched.
//!
//! Visibility: an inserted name can be found within about `PUBLISH_INTERVAL_MS` (50 ms);
//! [`Index::sync`] waits for it, for tests and for callers that need read-after-write.
//!
//! Names: a name with a `;` (tagged) goes to the tag index, and a name under `_tagged` is part
//! of neither (on disk those are the tagged series' files); a name with an empty element or
//! longer than [`MAX_NAME_BYTES`] is refused and counted (`IndexStats::refused`), since the
//! protocol layer never lets one through.
//!
//! Tagged series take the same road: a writer's insert checks a set of known series (a lock
//! that finds never take) and puts a new one in the inbox; the index thread adds it to the tag
//! index (a `RwLock` that tag queries read; only the index thread writes it, so a slow tag query
//! can delay the index thread, never a writer) and appends it to the tag log. At start-up the
//! index thread replays the tag log before it walks the directory.

mod glob;
mod load;
mod tag_log;
mod tags;
mod tree;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use glob::{GlobError, Pattern, MAX_ALTERNATIVES, MAX_BRACE_DEPTH, MAX_EXPANDED_CHARS, MAX_PATTERN_BYTES};
pub use load::LoadCounts;
pub use tag_log::{Replay, TagLog, TAG_LOG_FILE};
pub use tags::TagError;
pub use tree::{Node, Snapshot};

use load::Walk;
pub(crate) use tags::TagData;
use tree::{Kind, Tree};

/// The longest name the index holds, in bytes: the protocol's `MAX_NAME_BYTES` (Linux's
/// `PATH_MAX`), repeated here because the index depends on nothing of ours.
pub const MAX_NAME_BYTES: usize = 4096;

/// The shortest time between two publications after start-up: how stale a find may be.
pub const PUBLISH_INTERVAL_MS: u64 = 50;
/// The time between publications while the data directory is being walked.
pub const LOAD_PUBLISH_INTERVAL_MS: u64 = 250;

/// Why a find failed. Both are the client's doing: answer 400 with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// The pattern is not acceptable.
    Pattern(GlobError),
    /// The pattern matches more than `limit` entries (a path both leaf and branch counts
    /// twice). graphite-web's `METRICS_FIND_FAILURE_THRESHOLD` counts leaves only; counting
    /// every entry bounds the memory of a result.
    TooManyNodes {
        /// The limit the caller gave.
        limit: usize,
    },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Pattern(e) => write!(f, "bad pattern: {e}"),
            IndexError::TooManyNodes { limit } => write!(f, "the pattern matches more than {limit} nodes"),
        }
    }
}

impl std::error::Error for IndexError {}

impl From<GlobError> for IndexError {
    fn from(e: GlobError) -> Self {
        IndexError::Pattern(e)
    }
}

/// Where the index stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Distinct paths in the published snapshot.
    pub nodes: usize,
    /// Metrics in the published snapshot.
    pub leaves: usize,
    /// Branches in the published snapshot.
    pub branches: usize,
    /// Names inserted and not yet published.
    pub pending: usize,
    /// Whether the start-up walk is still running.
    pub loading: bool,
    /// Names refused by `insert` (empty element, too long): a bug upstream.
    pub refused: u64,
    /// The start-up walk so far.
    pub load: LoadCounts,
    /// Tagged series in the tag index.
    pub tagged_series: usize,
    /// Tag log writes that failed (the series stay indexed until the next start).
    pub tag_log_errors: u64,
}

/// The index: a cheap handle, cloned into every thread that inserts or finds.
#[derive(Clone)]
pub struct Index {
    shared: Arc<Shared>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index").field("stats", &self.stats()).finish()
    }
}

/// The state the handles and the index thread share.
struct Shared {
    /// The latest published version. Locked only to clone or swap the `Arc`, or for an
    /// insert's short presence check.
    current: RwLock<Arc<Snapshot>>,
    /// Names waiting for the index thread. Never locked by a find.
    inbox: Mutex<Inbox>,
    /// Wakes the index thread (with `inbox`).
    inbox_changed: Condvar,
    /// What has been published (with `status_changed`).
    status: Mutex<Status>,
    status_changed: Condvar,
    refused: AtomicU64,
    /// The tag index. Written by the index thread only; read by tag queries.
    tags: RwLock<TagData>,
    /// Every tagged series inserted or loaded, for a writer's cheap "already known?". Never
    /// locked by a query.
    tag_known: RwLock<hashbrown::HashSet<Arc<str>>>,
    tag_log_errors: AtomicU64,
}

/// A change to the tag index, in the order asked.
enum TagChange {
    Add(Arc<str>),
    Remove(Box<str>),
}

struct Inbox {
    names: hashbrown::HashSet<Box<str>>,
    /// Tagged series to add or remove, in order.
    tag_changes: Vec<TagChange>,
    /// Names added to the inbox since the start: `sync` waits until this many are published.
    /// Invariant: `seq >= Status::published_seq`.
    seq: u64,
    /// Publish now, without waiting out the interval (`sync` is waiting).
    urgent: bool,
    /// The index thread is to publish what it has and exit.
    stop: bool,
}

#[derive(Default)]
struct Status {
    /// `Inbox::seq` as of the last publication: every name counted up to there is visible.
    published_seq: u64,
    loading: bool,
    /// The index thread has exited: nothing will be published any more.
    stopped: bool,
    load: LoadCounts,
}

/// The index thread. Dropping it (or [`IndexThread::stop`]) stops the thread, which publishes
/// the inserts it holds first.
#[derive(Debug)]
pub struct IndexThread {
    index: Index,
    thread: Option<JoinHandle<()>>,
}

impl IndexThread {
    /// Stops the index thread and waits for it. Later inserts are kept but not published.
    pub fn stop(mut self) -> std::thread::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> std::thread::Result<()> {
        self.index.shared.lock_inbox().stop = true;
        self.index.shared.inbox_changed.notify_one();
        self.thread.take().map_or(Ok(()), JoinHandle::join)
    }
}

impl Drop for IndexThread {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

impl Shared {
    fn lock_inbox(&self) -> MutexGuard<'_, Inbox> {
        // A panic elsewhere leaves the inbox consistent (every change is one statement).
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn read_tags(&self) -> std::sync::RwLockReadGuard<'_, TagData> {
        self.tags.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_known(&self) -> std::sync::RwLockReadGuard<'_, hashbrown::HashSet<Arc<str>>> {
        self.tag_known.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A `filter=` regular expression, anchored as graphite-web anchors it.
fn tag_filter(filter: &str) -> Result<regex::Regex, TagError> {
    tags::anchored_regex(filter).map_err(|e| TagError::BadRegex { expr: filter.to_string(), message: e.to_string() })
}

impl Index {
    /// An empty index and its thread, which applies inserts.
    pub fn start() -> std::io::Result<(Index, IndexThread)> {
        Index::spawn(None)
    }

    /// An index that first loads every metric under `data_dir`, in the background: finds
    /// answer from what is known so far, and [`Index::loading`] says whether the walk is done.
    /// A missing directory is an empty one; unreadable parts are counted in
    /// [`IndexStats::load`] and logged (the first few). Fails only when the thread cannot be
    /// started.
    pub fn load_from_disk(data_dir: impl Into<PathBuf>) -> std::io::Result<(Index, IndexThread)> {
        Index::spawn(Some(data_dir.into()))
    }

    fn spawn(data_dir: Option<PathBuf>) -> std::io::Result<(Index, IndexThread)> {
        let shared = Arc::new(Shared {
            current: RwLock::new(Arc::new(Snapshot::empty())),
            inbox: Mutex::new(Inbox {
                names: hashbrown::HashSet::new(),
                tag_changes: Vec::new(),
                seq: 0,
                urgent: false,
                stop: false,
            }),
            inbox_changed: Condvar::new(),
            status: Mutex::new(Status { loading: data_dir.is_some(), ..Status::default() }),
            status_changed: Condvar::new(),
            refused: AtomicU64::new(0),
            tags: RwLock::new(TagData::default()),
            tag_known: RwLock::new(hashbrown::HashSet::new()),
            tag_log_errors: AtomicU64::new(0),
        });
        let index = Index { shared };
        let worker = Maintainer {
            shared: Arc::clone(&index.shared),
            tree: Tree::new(),
            last_publish: Instant::now(),
            spare: hashbrown::HashSet::new(),
            tag_log: None,
        };
        let thread = std::thread::Builder::new().name("index".into()).spawn(move || worker.run(data_dir))?;
        Ok((index.clone(), IndexThread { index, thread: Some(thread) }))
    }

    /// Adds the metric `name`. Cheap when the name is already known (a walk of the current
    /// snapshot, no allocation); otherwise one hash-set insert under a mutex no find takes.
    /// Never blocks on a find. The name becomes findable at the next publication.
    ///
    /// Tagged names (with a `;`, in canonical form as the protocol layer makes them) go to
    /// the tag index, at the same cost; names under `_tagged` are ignored. A name with an empty
    /// element, a newline or over [`MAX_NAME_BYTES`] is refused and counted.
    pub fn insert(&self, name: &str) {
        if name.len() > MAX_NAME_BYTES || name.contains('\n') {
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if name.contains(';') {
            self.insert_tagged(name);
            return;
        }
        if name == "_tagged" || name.starts_with("_tagged.") {
            return;
        }
        if name.split('.').any(str::is_empty) {
            self.shared.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        {
            // Walked under the read lock rather than on a cloned `Arc`, so that a writer is
            // never the last owner of an old snapshot (and never pays for freeing it).
            let current = self.shared.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.contains(name) {
                return;
            }
        }
        let mut inbox = self.shared.lock_inbox();
        if inbox.names.contains(name) {
            return;
        }
        let was_empty = inbox.names.is_empty();
        inbox.names.insert(Box::from(name));
        inbox.seq += 1;
        drop(inbox);
        if was_empty {
            self.shared.inbox_changed.notify_one();
        }
    }

    fn insert_tagged(&self, name: &str) {
        if self.shared.read_known().contains(name) {
            return;
        }
        let series: Arc<str> = Arc::from(name);
        if !self.shared.tag_known.write().unwrap_or_else(PoisonError::into_inner).insert(Arc::clone(&series)) {
            return;
        }
        self.push_tag_change(TagChange::Add(series));
    }

    fn push_tag_change(&self, change: TagChange) {
        let mut inbox = self.shared.lock_inbox();
        let was_empty = inbox.names.is_empty() && inbox.tag_changes.is_empty();
        inbox.tag_changes.push(change);
        inbox.seq += 1;
        drop(inbox);
        if was_empty {
            self.shared.inbox_changed.notify_one();
        }
    }

    /// Removes tagged series (canonical names) from the tag index, as graphite-web's
    /// `/tags/delSeries` removes them from its TagDB: their files stay, and a series that
    /// receives points again is indexed again. Visible after the next publication
    /// ([`Index::sync`] waits for it).
    pub fn delete_tagged(&self, names: &[String]) {
        for name in names {
            self.push_tag_change(TagChange::Remove(Box::from(name.as_str())));
        }
    }

    /// Whether the tagged series `name` (canonical) is in the tag index.
    pub fn contains_tagged(&self, name: &str) -> bool {
        self.shared.read_tags().contains(name)
    }

    /// The tagged series matching every tag expression (graphite-web's `find_series`), sorted;
    /// more than `limit` is an error.
    pub fn find_tagged<S: AsRef<str>>(&self, exprs: &[S], limit: usize) -> Result<Vec<String>, TagError> {
        self.shared.read_tags().find_series(exprs, limit)
    }

    /// Tag names, sorted; `filter` is a regular expression anchored at the start (graphite-web's
    /// `/tags?filter=`).
    pub fn list_tags(&self, filter: Option<&str>, limit: Option<usize>) -> Result<Vec<String>, TagError> {
        let filter = filter.filter(|f| !f.is_empty()).map(tag_filter).transpose()?;
        Ok(self.shared.read_tags().list_tags(filter.as_ref(), limit))
    }

    /// The values of `tag` with their series counts, sorted (graphite-web's `/tags/<tag>`);
    /// None when no series has the tag.
    pub fn tag_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Option<Vec<(String, usize)>>, TagError> {
        let filter = filter.filter(|f| !f.is_empty()).map(tag_filter).transpose()?;
        let tags = self.shared.read_tags();
        Ok(tags.has_tag(tag).then(|| tags.list_values(tag, filter.as_ref(), limit)))
    }

    /// graphite-web's `/tags/autoComplete/tags`.
    pub fn auto_complete_tags<S: AsRef<str>>(
        &self,
        exprs: &[S],
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError> {
        self.shared.read_tags().auto_complete_tags(exprs, prefix, limit)
    }

    /// graphite-web's `/tags/autoComplete/values`.
    pub fn auto_complete_values<S: AsRef<str>>(
        &self,
        exprs: &[S],
        tag: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError> {
        self.shared.read_tags().auto_complete_values(exprs, tag, prefix, limit)
    }

    /// The entries `pattern` matches in the current snapshot, sorted as graphite-web sorts
    /// find results: by name (the last element); among equal names branches first, then by
    /// path (see [`Node`] for a path both leaf and branch). An error for a bad pattern or more
    /// than `limit` entries.
    pub fn find(&self, pattern: &str, limit: usize) -> Result<Vec<Node>, IndexError> {
        let pattern = Pattern::parse(pattern)?;
        self.snapshot().find(&pattern, limit)
    }

    /// The current version, to run several finds against one consistent view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current()
    }

    /// Whether the metric `name` is in the current snapshot.
    pub fn contains(&self, name: &str) -> bool {
        self.shared.current.read().unwrap_or_else(PoisonError::into_inner).contains(name)
    }

    /// Whether the start-up walk of the data directory is still running.
    pub fn loading(&self) -> bool {
        self.shared.lock_status().loading
    }

    /// Waits until the start-up walk is done (or the index thread has stopped).
    pub fn wait_loaded(&self) {
        let status = self.shared.lock_status();
        let _done = self
            .shared
            .status_changed
            .wait_while(status, |s| s.loading && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Waits until every name inserted before this call is findable (or the index thread has
    /// stopped). For tests, and for a caller that needs read-after-write.
    pub fn sync(&self) {
        let target = {
            let mut inbox = self.shared.lock_inbox();
            inbox.urgent = true;
            inbox.seq
        };
        self.shared.inbox_changed.notify_one();
        let status = self.shared.lock_status();
        let _done = self
            .shared
            .status_changed
            .wait_while(status, |s| s.published_seq < target && !s.stopped)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Counts, for self-metrics and logs.
    pub fn stats(&self) -> IndexStats {
        let counts = self.snapshot().counts();
        let pending = self.shared.lock_inbox().names.len();
        let status = self.shared.lock_status();
        IndexStats {
            nodes: counts.nodes,
            leaves: counts.leaves,
            branches: counts.branches,
            pending,
            loading: status.loading,
            refused: self.shared.refused.load(Ordering::Relaxed),
            load: status.load,
            tagged_series: self.shared.read_tags().len(),
            tag_log_errors: self.shared.tag_log_errors.load(Ordering::Relaxed),
        }
    }
}

/// The most pending names whose room the inbox keeps between publications (about 1 MiB of
/// table), so that writers rarely grow it under its mutex, and a storm of new names does not
/// hold memory afterwards.
const INBOX_KEPT_CAPACITY: usize = 1 << 16;

/// The index thread's state: the only owner of the mutable tree.
struct Maintainer {
    shared: Arc<Shared>,
    tree: Tree,
    last_publish: Instant,
    /// An empty set swapped into the inbox for the names taken out, keeping its capacity.
    spare: hashbrown::HashSet<Box<str>>,
    /// The tag index on disk, once replayed (None without a data directory or when it could
    /// not be opened: the tag index then lives in memory only, and says so once).
    tag_log: Option<TagLog>,
}

/// What the index thread takes out of the inbox at once.
struct Taken {
    names: hashbrown::HashSet<Box<str>>,
    tag_changes: Vec<TagChange>,
    /// `Inbox::seq` when taken.
    seq: u64,
    /// `sync` or `stop` asked for a publication now.
    asked: bool,
    stop: bool,
}

impl Maintainer {
    fn run(mut self, data_dir: Option<PathBuf>) {
        let _stopped = StoppedOnExit(Arc::clone(&self.shared));
        if let Some(data_dir) = data_dir {
            self.open_tag_log(&data_dir);
            self.load(&data_dir);
        }
        loop {
            let taken = self.wait_for_names();
            let (seq, stop) = (taken.seq, taken.stop);
            self.apply(taken);
            self.publish(seq);
            if stop {
                break;
            }
        }
    }

    /// Waits for names (then for the rest of the publication interval, unless urgent) and
    /// takes them.
    fn wait_for_names(&mut self) -> Taken {
        let interval = Duration::from_millis(PUBLISH_INTERVAL_MS);
        let shared = Arc::clone(&self.shared);
        let inbox = shared.lock_inbox();
        let inbox = shared
            .inbox_changed
            .wait_while(inbox, |i| i.names.is_empty() && i.tag_changes.is_empty() && !i.urgent && !i.stop)
            .unwrap_or_else(PoisonError::into_inner);
        let wait = interval.saturating_sub(self.last_publish.elapsed());
        let (inbox, _) = shared
            .inbox_changed
            .wait_timeout_while(inbox, wait, |i| !i.urgent && !i.stop)
            .unwrap_or_else(PoisonError::into_inner);
        take(inbox, &mut self.spare)
    }

    /// Takes what the inbox holds without waiting.
    fn take_inbox(&mut self) -> Taken {
        take(self.shared.lock_inbox(), &mut self.spare)
    }

    /// Adds names taken from the inbox to the tree and the tag changes to the tag index (and
    /// its log), and keeps the names' set as the next spare.
    fn apply(&mut self, taken: Taken) {
        let Taken { mut names, tag_changes, .. } = taken;
        for name in names.drain() {
            self.tree.insert(&name, Kind::Leaf);
        }
        names.shrink_to(INBOX_KEPT_CAPACITY);
        self.spare = names;
        if !tag_changes.is_empty() {
            self.apply_tag_changes(tag_changes);
        }
    }

    fn apply_tag_changes(&mut self, changes: Vec<TagChange>) {
        let mut logged = Vec::new();
        {
            let mut tags = self.shared.tags.write().unwrap_or_else(PoisonError::into_inner);
            for change in changes {
                match change {
                    TagChange::Add(series) => {
                        if tags.insert(Arc::clone(&series)) {
                            logged.push((true, series));
                        }
                    }
                    TagChange::Remove(series) => {
                        if tags.remove(&series) {
                            logged.push((false, Arc::from(series)));
                        }
                    }
                }
            }
        }
        let removed: Vec<&Arc<str>> = logged.iter().filter(|(added, _)| !added).map(|(_, s)| s).collect();
        if !removed.is_empty() {
            let mut known = self.shared.tag_known.write().unwrap_or_else(PoisonError::into_inner);
            for series in removed {
                known.remove(series);
            }
        }
        if let Some(log) = &mut self.tag_log {
            for (added, series) in &logged {
                if let Err(e) = log.append(*added, series) {
                    if self.shared.tag_log_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("carbyne: index: writing the tag log failed (counted; the series stay indexed until a restart): {e}");
                    }
                }
            }
        }
    }

    /// Replays the tag log into the tag index, compacting it when it is mostly dead records.
    fn open_tag_log(&mut self, data_dir: &std::path::Path) {
        let started = Instant::now();
        let path = TagLog::path_in(data_dir);
        let mut data = TagData::default();
        let opened = TagLog::open(path.clone(), |added, name| {
            if added {
                data.insert(Arc::from(name));
            } else {
                data.remove(name);
            }
        });
        let (mut log, replay) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                eprintln!("carbyne: index: cannot open the tag log {} ({e}): tagged series are indexed in memory only until a restart", path.display());
                return;
            }
        };
        if log.wants_compaction(data.len()) {
            if let Err(e) = log.compact(data.series().map(|s| &**s)) {
                eprintln!("carbyne: index: compacting the tag log {} failed: {e}", path.display());
            }
        }
        {
            let mut known = self.shared.tag_known.write().unwrap_or_else(PoisonError::into_inner);
            known.extend(data.series().cloned());
        }
        let n = data.len();
        // Inserts that came in meanwhile are still in the inbox: applied after this.
        *self.shared.tags.write().unwrap_or_else(PoisonError::into_inner) = data;
        let mut notes = String::new();
        if replay.bad_records > 0 {
            notes.push_str(&format!("; skipped {} bad records", replay.bad_records));
        }
        if replay.torn_tail {
            notes.push_str("; cut off a torn last record");
        }
        eprintln!(
            "carbyne: index: {n} tagged series from {} ({} records) in {:.1} s{notes}",
            path.display(),
            replay.records,
            started.elapsed().as_secs_f64()
        );
        self.tag_log = Some(log);
    }

    /// Makes the tree as it is the current snapshot, with every name counted up to `seq`.
    fn publish(&mut self, seq: u64) {
        let snapshot = Arc::new(self.tree.snapshot());
        let old =
            std::mem::replace(&mut *self.shared.current.write().unwrap_or_else(PoisonError::into_inner), snapshot);
        // Freed here, outside the lock, unless a find still holds it.
        drop(old);
        self.last_publish = Instant::now();
        let mut status = self.shared.lock_status();
        debug_assert!(status.published_seq <= seq, "publications go forward");
        status.published_seq = seq;
        drop(status);
        self.shared.status_changed.notify_all();
    }

    /// Walks the data directory, publishing (with the inbox applied) every
    /// `LOAD_PUBLISH_INTERVAL_MS`, at once when `sync` or `stop` asks, and at the end.
    fn load(&mut self, data_dir: &std::path::Path) {
        let started = Instant::now();
        let mut walk = Walk::new(data_dir);
        let interval = Duration::from_millis(LOAD_PUBLISH_INTERVAL_MS);
        loop {
            let tree = &mut self.tree;
            let more = walk.step(&mut |name, kind| {
                tree.insert(name, kind);
            });
            let taken = self.take_inbox();
            let (seq, asked) = (taken.seq, taken.asked);
            self.apply(taken);
            if !more || asked || self.last_publish.elapsed() >= interval {
                let mut status = self.shared.lock_status();
                status.load = walk.counts;
                status.loading = more;
                drop(status);
                self.publish(seq);
            }
            if !more || self.shared.lock_inbox().stop {
                break;
            }
        }
        log_load(&walk, started.elapsed());
    }
}

/// Empties the inbox into a [`Taken`], leaving `spare` (an empty set) in its place.
fn take(mut inbox: MutexGuard<'_, Inbox>, spare: &mut hashbrown::HashSet<Box<str>>) -> Taken {
    let asked = inbox.urgent || inbox.stop;
    inbox.urgent = false;
    Taken {
        names: std::mem::replace(&mut inbox.names, std::mem::take(spare)),
        tag_changes: std::mem::take(&mut inbox.tag_changes),
        seq: inbox.seq,
        asked,
        stop: inbox.stop,
    }
}

/// Marks the index thread stopped when it exits, a panic included, so that nobody waits for
/// a publication that will not come.
struct StoppedOnExit(Arc<Shared>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        self.0.lock_status().stopped = true;
        self.0.status_changed.notify_all();
    }
}

/// One line at the end of the walk, with what was skipped.
fn log_load(walk: &Walk, elapsed: Duration) {
    let c = walk.counts;
    let mut skipped = Vec::new();
    for (n, what) in [
        (c.other_files, "other files"),
        (c.bad_names, "names that are no metric names"),
        (c.links_refused, "links leading out of the data directory"),
        (c.link_loops, "link loops"),
        (c.dangling_links, "dangling links"),
        (c.errors, "unreadable entries"),
    ] {
        if n > 0 {
            skipped.push(format!("{n} {what}"));
        }
    }
    if c.tagged_skipped {
        skipped.push("_tagged (named by the tag index)".into());
    }
    let skipped = if skipped.is_empty() { String::new() } else { format!("; skipped {}", skipped.join(", ")) };
    eprintln!(
        "carbyne: index: {} metrics in {} directories under {} in {:.1} s{skipped}",
        c.metrics,
        c.directories,
        walk.root().display(),
        elapsed.as_secs_f64()
    );
}
