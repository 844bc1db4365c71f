//! The start-up walk of `LOCAL_DATA_DIR`: every `a/b/c.wsp` is the metric `a.b.c`, every
//! directory a branch.
//!
//! The walk is incremental (one directory per [`Walk::step`]) so that the index thread can
//! publish what it has found, and apply the writers' inserts, between directories; a directory
//! is read as a stream, so only one descriptor is open at a time, however deep the tree.
//!
//! Skipped: dot-files and dot-directories; files other than `<element>.wsp` (`.wsp.gz`, `.rrd`,
//! a stem with a `.` in it, which carbon never writes); names that are not UTF-8, hold a `;`, or
//! would make a metric name longer than [`MAX_NAME_BYTES`]. Tagged series live under
//! `_tagged/<h[0:3]>/<h[3:6]>/<sha256>.wsp`, and a hash cannot be turned back into a name: the
//! tag index (fed with the names as carbon's writers see them) provides those, so the
//! `_tagged` directory at the top is skipped and is no node of this tree.
//!
//! Symbolic links are followed only inside the data directory: a link whose target (resolved
//! fully) lies outside it is skipped, as is a link to a directory that is already on the path
//! from the top (a loop). Two links to one directory inside the data directory give two names
//! for its metrics, as graphite-web would show them; the name length bound keeps that finite.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::tree::Kind;
use super::MAX_NAME_BYTES;

/// What the walk found and skipped, for the log line at the end and for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadCounts {
    /// Directories read (the data directory included).
    pub directories: u64,
    /// Whisper files indexed as metrics.
    pub metrics: u64,
    /// Files that are not `<element>.wsp`.
    pub other_files: u64,
    /// Entries whose name cannot be part of a metric name (not UTF-8, a `;`, a `.` in a
    /// directory name, too long).
    pub bad_names: u64,
    /// Symbolic links to something outside the data directory, or to a dot-entry, `_tagged`,
    /// a socket or a device.
    pub links_refused: u64,
    /// Symbolic links to a directory already on the path from the top.
    pub link_loops: u64,
    /// Symbolic links to nothing.
    pub dangling_links: u64,
    /// Entries that could not be read (permissions, I/O errors).
    pub errors: u64,
    /// Whether a `_tagged` directory was skipped.
    pub tagged_skipped: bool,
}

/// Errors reported one line each, at most; the rest are only counted.
const ERRORS_LOGGED_MAX: u64 = 10;

/// A directory waiting to be read.
struct PendingDir {
    path: PathBuf,
    /// Its metric prefix, empty for the data directory.
    prefix: String,
    /// (device, inode) of every directory from the top down to this one, itself included.
    ancestors: Vec<(u64, u64)>,
}

/// The walk in progress.
pub(crate) struct Walk {
    /// The data directory, fully resolved.
    root: PathBuf,
    pending: Vec<PendingDir>,
    pub(crate) counts: LoadCounts,
}

impl std::fmt::Debug for Walk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk").field("root", &self.root).field("pending", &self.pending.len()).finish()
    }
}

impl Walk {
    /// Starts a walk of `data_dir`. A missing data directory is an empty one (carbon creates
    /// it on the first write); any other problem is counted and logged.
    pub(crate) fn new(data_dir: &Path) -> Walk {
        let mut walk = Walk { root: data_dir.to_path_buf(), pending: Vec::new(), counts: LoadCounts::default() };
        let resolved = fs::canonicalize(data_dir).and_then(|root| Ok((fs::metadata(&root)?, root)));
        match resolved {
            Ok((meta, root)) => {
                walk.pending.push(PendingDir {
                    path: root.clone(),
                    prefix: String::new(),
                    ancestors: vec![(meta.dev(), meta.ino())],
                });
                walk.root = root;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => walk.error(data_dir, &e),
        }
        walk
    }

    /// The data directory as resolved.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Reads one directory, giving each name found to `found`. Returns false once every
    /// directory has been read.
    pub(crate) fn step(&mut self, found: &mut dyn FnMut(&str, Kind)) -> bool {
        let Some(dir) = self.pending.pop() else {
            return false;
        };
        self.counts.directories += 1;
        let entries = match fs::read_dir(&dir.path) {
            Ok(entries) => entries,
            Err(e) => {
                self.error(&dir.path, &e);
                return true;
            }
        };
        for entry in entries {
            match entry {
                Ok(entry) => self.entry(&dir, &entry, found),
                Err(e) => self.error(&dir.path, &e),
            }
        }
        true
    }

    /// One directory entry.
    fn entry(&mut self, dir: &PendingDir, entry: &fs::DirEntry, found: &mut dyn FnMut(&str, Kind)) {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            self.counts.bad_names += 1;
            return;
        };
        if name.starts_with('.') {
            return;
        }
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) => return self.error(&entry.path(), &e),
        };
        if file_type.is_dir() {
            match entry.metadata() {
                Ok(meta) => self.directory(dir, name, entry.path(), &meta, found),
                Err(e) => self.error(&entry.path(), &e),
            }
        } else if file_type.is_file() {
            self.file(dir, name, found);
        } else if file_type.is_symlink() {
            self.link(dir, name, entry.path(), found);
        } else {
            self.counts.other_files += 1;
        }
    }

    /// A directory (or a link to one, already checked to be inside): a branch, read later.
    fn directory(
        &mut self,
        dir: &PendingDir,
        name: &str,
        path: PathBuf,
        meta: &fs::Metadata,
        found: &mut dyn FnMut(&str, Kind),
    ) {
        if dir.prefix.is_empty() && name == "_tagged" {
            self.counts.tagged_skipped = true;
            return;
        }
        let Some(full) = metric_name(&dir.prefix, name) else {
            self.counts.bad_names += 1;
            return;
        };
        let id = (meta.dev(), meta.ino());
        if dir.ancestors.contains(&id) {
            self.counts.link_loops += 1;
            return;
        }
        found(&full, Kind::Branch);
        let mut ancestors = dir.ancestors.clone();
        ancestors.push(id);
        self.pending.push(PendingDir { path, prefix: full, ancestors });
    }

    /// A file: a metric when it is `<element>.wsp`.
    fn file(&mut self, dir: &PendingDir, name: &str, found: &mut dyn FnMut(&str, Kind)) {
        let Some(stem) = name.strip_suffix(".wsp").filter(|stem| !stem.is_empty() && !stem.contains('.')) else {
            self.counts.other_files += 1;
            return;
        };
        match metric_name(&dir.prefix, stem) {
            Some(full) => {
                self.counts.metrics += 1;
                found(&full, Kind::Leaf);
            }
            None => self.counts.bad_names += 1,
        }
    }

    /// A symbolic link: followed when its target is inside the data directory.
    fn link(&mut self, dir: &PendingDir, name: &str, path: PathBuf, found: &mut dyn FnMut(&str, Kind)) {
        let target = match fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.counts.dangling_links += 1;
                return;
            }
            Err(e) => return self.error(&path, &e),
        };
        if !self.inside(&target) {
            self.counts.links_refused += 1;
            return;
        }
        match fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => self.directory(dir, name, path, &meta, found),
            Ok(meta) if meta.is_file() => self.file(dir, name, found),
            Ok(_) => self.counts.links_refused += 1,
            Err(e) => self.error(&path, &e),
        }
    }

    /// Whether a resolved path lies inside the data directory, and not in a part of it the
    /// index leaves out (dot-entries, `_tagged`).
    fn inside(&self, target: &Path) -> bool {
        let Ok(relative) = target.strip_prefix(&self.root) else {
            return false;
        };
        let tagged = relative.components().next().is_some_and(|c| c.as_os_str() == "_tagged");
        let hidden = relative.components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."));
        !tagged && !hidden
    }

    fn error(&mut self, path: &Path, e: &io::Error) {
        self.counts.errors += 1;
        if self.counts.errors <= ERRORS_LOGGED_MAX {
            eprintln!("carbyne: index: cannot read {}: {e}", path.display());
        }
    }
}

/// `prefix.element`, or None when `element` cannot be one element of a metric name or the
/// result would be too long.
fn metric_name(prefix: &str, element: &str) -> Option<String> {
    if element.is_empty() || element.contains(['.', ';']) {
        return None;
    }
    let len = if prefix.is_empty() { element.len() } else { prefix.len() + 1 + element.len() };
    if len > MAX_NAME_BYTES {
        return None;
    }
    let mut full = String::with_capacity(len);
    if !prefix.is_empty() {
        full.push_str(prefix);
        full.push('.');
    }
    full.push_str(element);
    Some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded() {
        assert_eq!(metric_name("", "a").as_deref(), Some("a"));
        assert_eq!(metric_name("a.b", "c").as_deref(), Some("a.b.c"));
        assert_eq!(metric_name("a", "b.c"), None);
        assert_eq!(metric_name("a", "b;c=d"), None);
        assert_eq!(metric_name("a", ""), None);
        let long = "x".repeat(MAX_NAME_BYTES - 2);
        assert_eq!(metric_name(&long, "y").map(|n| n.len()), Some(MAX_NAME_BYTES));
        assert_eq!(metric_name(&long, "yz"), None);
    }

    #[test]
    fn a_missing_data_directory_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut walk = Walk::new(&dir.path().join("absent"));
        assert!(!walk.step(&mut |_, _| panic!("nothing to find")));
        assert_eq!(walk.counts, LoadCounts::default());
    }
}
