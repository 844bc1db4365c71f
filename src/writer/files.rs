//! The writer's bounded cache of open whisper files (an LRU keyed by metric name).
//!
//! Keeping files open saves an `open`, `fstat`, header read and `close` per update (about 4 µs,
//! see BENCHMARKS.md); a file the writer creates is kept open from its creation on. The bound keeps descriptors within the process limit. A cached handle
//! keeps writing to the inode it opened, so every `revalidate_s` seconds of use the path is
//! checked again: a file replaced by rename (whisper-resize, a restore) is reopened, a deleted
//! one is reported missing so that the writer creates it anew, as carbon would, and the
//! metadata of the same file is read again (an aggregation method changed in place by
//! `whisper-set-aggregation-method` or carbonlink's set-metadata applies from then on).
//!
//! With WRITER_MMAP a handle is mapped when it is used a second time, not when it is opened: a
//! working set larger than the cache would otherwise pay `mmap`, page faults on a fresh mapping
//! and `munmap` (with its TLB shootdown) for every update, several times what the `pwrite`s it
//! saves cost. A mapping that cannot be made (see `whisper/io.rs`) is not tried again.

use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lru::LruCache;

use crate::whisper::{Whisper, WhisperError, WriteOptions};

struct Entry {
    file: Whisper,
    /// When the path was last seen to name this handle's inode.
    checked_s: f64,
    /// Whether mapping was tried (WRITER_MMAP): once per open handle.
    map_tried: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("path", &self.file.path()).field("checked_s", &self.checked_s).finish()
    }
}

/// Open whisper files of one writer, at most `capacity` of them.
#[derive(Debug)]
pub struct OpenFiles {
    lru: LruCache<Box<[u8]>, Entry>,
    data_dir: PathBuf,
    write_opts: WriteOptions,
    revalidate_s: f64,
    /// Handles closed to make room (a sign the capacity is too small for the working set).
    pub evictions: u64,
    /// Handles reopened because their path named another file.
    pub reopened: u64,
}

impl OpenFiles {
    /// A cache of at most `capacity` open files under `data_dir`.
    pub fn new(data_dir: PathBuf, capacity: NonZeroUsize, write_opts: WriteOptions, revalidate_s: f64) -> OpenFiles {
        OpenFiles { lru: LruCache::new(capacity), data_dir, write_opts, revalidate_s, evictions: 0, reopened: 0 }
    }

    /// Options a file is opened with: mapped later, on reuse.
    fn open_opts(&self) -> WriteOptions {
        WriteOptions { mmap: false, ..self.write_opts }
    }

    /// The file of metric `name` stored at `relative` under the data directory: from the cache,
    /// or opened. `Ok(None)` when the file does not exist (the caller creates it).
    pub fn get(&mut self, name: &[u8], relative: &Path, now_s: f64) -> Result<Option<&mut Whisper>, WhisperError> {
        let stale = match self.lru.get_mut(name) {
            Some(entry) if now_s - entry.checked_s < self.revalidate_s => false,
            Some(entry) => match std::fs::metadata(self.data_dir.join(relative)) {
                // Same file: its metadata may have been rewritten in place (set-aggregation,
                // carbonlink's set-metadata); a header that no longer reads is opened anew.
                Ok(meta) if (meta.dev(), meta.ino()) == entry.file.identity() => entry.file.refresh_metadata().is_err(),
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.lru.pop(name);
                    return Ok(None);
                }
                Err(e) => return Err(WhisperError::Io { path: self.data_dir.join(relative), cause: e }),
            },
            None => true,
        };
        if stale {
            let was_cached = self.lru.pop(name).is_some();
            let file = match Whisper::open(&self.data_dir.join(relative), self.open_opts()) {
                Ok(f) => f,
                Err(WhisperError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            self.reopened += u64::from(was_cached);
            self.keep(name, file, now_s);
        } else if self.write_opts.mmap {
            let entry = self.lru.get_mut(name).expect("present: not stale");
            if !entry.map_tried {
                entry.map_tried = true;
                // Not mapping only costs system calls; the handle keeps working either way.
                let _ = entry.file.map_if_safe();
            }
        }
        let entry = self.lru.get_mut(name).expect("present: found or just inserted");
        if now_s - entry.checked_s >= self.revalidate_s {
            entry.checked_s = now_s;
        }
        Ok(Some(&mut entry.file))
    }

    /// Creates the file of metric `name` at `relative` (see [`Whisper::create_open`]) and keeps
    /// it open, so that the update that follows needs no open of its own.
    pub fn create(
        &mut self,
        name: &[u8],
        relative: &Path,
        archives: &[crate::whisper::ArchiveSpec],
        opts: &crate::whisper::CreateOptions,
        now_s: f64,
    ) -> Result<(), WhisperError> {
        let file = Whisper::create_open(&self.data_dir.join(relative), archives, opts, self.open_opts())?;
        self.keep(name, file, now_s);
        Ok(())
    }

    /// Caches `file` as metric `name`'s open handle, closing the least recently used one if full.
    fn keep(&mut self, name: &[u8], file: Whisper, now_s: f64) {
        let evicted = self.lru.push(name.into(), Entry { file, checked_s: now_s, map_tried: false });
        if evicted.is_some_and(|(k, _)| *k != *name) {
            self.evictions += 1;
        }
    }

    /// Full path of `relative` under the data directory.
    pub fn path_of(&self, relative: &Path) -> PathBuf {
        self.data_dir.join(relative)
    }

    /// Closes every file (at shutdown, or when the data directory changes).
    pub fn clear(&mut self) {
        self.lru.clear();
    }

    /// Number of open files.
    pub fn len(&self) -> usize {
        self.lru.len()
    }

    /// Whether no file is open.
    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::{create, ArchiveSpec, CreateOptions};

    const NOW: i64 = 1_700_000_000;

    fn make(dir: &Path, rel: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        create(&path, &[ArchiveSpec { seconds_per_point: 60, points: 10 }], &CreateOptions::default()).unwrap();
    }

    fn files(dir: &Path, capacity: usize) -> OpenFiles {
        OpenFiles::new(dir.to_path_buf(), NonZeroUsize::new(capacity).unwrap(), WriteOptions::default(), 10.0)
    }

    #[test]
    fn opens_caches_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        for m in ["a", "b", "c"] {
            make(dir.path(), &format!("{m}.wsp"));
        }
        let mut open = files(dir.path(), 2);
        assert!(open.get(b"missing", Path::new("missing.wsp"), 0.0).unwrap().is_none());
        for m in ["a", "b", "a", "c"] {
            open.get(m.as_bytes(), Path::new(&format!("{m}.wsp")), 0.0).unwrap().unwrap();
        }
        assert_eq!((open.len(), open.evictions), (2, 1));
        assert!(open.lru.contains(b"a".as_slice()) && !open.lru.contains(b"b".as_slice()));
    }

    #[test]
    fn a_created_file_is_kept_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut open = files(dir.path(), 2);
        let archives = [ArchiveSpec { seconds_per_point: 60, points: 10 }];
        open.create(b"n", Path::new("n.wsp"), &archives, &CreateOptions::default(), 0.0).unwrap();
        assert_eq!(open.len(), 1);
        // Removing the path does not touch the kept handle before revalidation: it was not reopened.
        std::fs::rename(dir.path().join("n.wsp"), dir.path().join("moved.wsp")).unwrap();
        let w = open.get(b"n", Path::new("n.wsp"), 1.0).unwrap().expect("the kept handle");
        w.update_many(&[(NOW - 60, 2.0)], NOW).unwrap();
        assert_eq!(open.reopened, 0);
        let mut moved = Whisper::open(&dir.path().join("moved.wsp"), WriteOptions::default()).unwrap();
        let fetched = moved.fetch(NOW - 600, Some(NOW), NOW, None).unwrap().unwrap();
        assert_eq!(fetched.values.iter().flatten().copied().collect::<Vec<f64>>(), [2.0]);
        let err = open.create(b"m", Path::new("moved.wsp"), &archives, &CreateOptions::default(), 0.0);
        assert!(matches!(err, Err(WhisperError::AlreadyExists(_))));
    }

    #[test]
    fn with_mmap_a_handle_is_mapped_when_reused_not_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "m.wsp");
        let mapped = WriteOptions { mmap: true, ..WriteOptions::default() };
        let mut open = OpenFiles::new(dir.path().to_path_buf(), NonZeroUsize::new(4).unwrap(), mapped, 10.0);
        let rel = Path::new("m.wsp");
        assert!(!open.get(b"m", rel, 0.0).unwrap().unwrap().is_mapped(), "not on first use");
        let probe = crate::whisper::Whisper::open(&dir.path().join(rel), mapped).unwrap();
        // Mapped from the second use on wherever this file system allows mapping at all.
        assert_eq!(open.get(b"m", rel, 1.0).unwrap().unwrap().is_mapped(), probe.is_mapped());
        assert_eq!(open.get(b"m", rel, 2.0).unwrap().unwrap().is_mapped(), probe.is_mapped());
        let mut plain = files(dir.path(), 4);
        plain.get(b"m", rel, 0.0).unwrap().unwrap();
        assert!(!plain.get(b"m", rel, 1.0).unwrap().unwrap().is_mapped(), "never without WRITER_MMAP");
    }

    #[test]
    fn metadata_rewritten_in_place_applies_after_revalidation() {
        use crate::whisper::AggregationMethod;
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "m.wsp");
        let rel = Path::new("m.wsp");
        let mut open = files(dir.path(), 4);
        let before = open.get(b"m", rel, 0.0).unwrap().unwrap().header().aggregation;
        let mut other = Whisper::open(&dir.path().join(rel), WriteOptions::default()).unwrap();
        other.set_aggregation(Some(AggregationMethod::Max), Some(0.25)).unwrap();
        assert_ne!(before, AggregationMethod::Max);
        assert_eq!(open.get(b"m", rel, 5.0).unwrap().unwrap().header().aggregation, before, "no re-read per write");
        let w = open.get(b"m", rel, 11.0).unwrap().unwrap();
        assert_eq!((w.header().aggregation, w.header().x_files_factor), (AggregationMethod::Max, 0.25));
        assert_eq!(open.reopened, 0, "the same file, not reopened");
    }

    #[test]
    fn a_replaced_file_is_reopened_and_a_deleted_one_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "x/m.wsp");
        let rel = Path::new("x/m.wsp");
        let mut open = files(dir.path(), 4);
        open.get(b"m", rel, 0.0).unwrap().unwrap().update_many(&[(NOW, 1.0)], NOW).unwrap();
        // Replace the file as whisper-resize does: a new file renamed over the old path.
        make(dir.path(), "x/new.wsp");
        std::fs::rename(dir.path().join("x/new.wsp"), dir.path().join(rel)).unwrap();
        // Within the revalidation interval the old handle is used (no stat per write)...
        let old_identity = open.get(b"m", rel, 5.0).unwrap().unwrap().identity();
        // ...after it, the new file is found and written.
        let w = open.get(b"m", rel, 11.0).unwrap().unwrap();
        assert_ne!(w.identity(), old_identity);
        w.update_many(&[(NOW, 2.0)], NOW).unwrap();
        assert_eq!(open.reopened, 1);
        let mut check = Whisper::open_read_only(&dir.path().join(rel)).unwrap();
        assert_eq!(check.fetch(NOW - 60, Some(NOW), NOW, None).unwrap().unwrap().values, vec![Some(2.0)]);
        std::fs::remove_file(dir.path().join(rel)).unwrap();
        assert!(open.get(b"m", rel, 30.0).unwrap().is_none());
        assert!(open.is_empty());
    }
}
