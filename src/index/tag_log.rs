//! The tag index on disk: an append-only log of the tagged series, so that the index of series
//! whose files carry only a hash (`_tagged/abc/def/<sha256>.wsp`) survives a restart without an
//! external TagDB.
//!
//! Owns: the file `<LOCAL_DATA_DIR>/_tagged/carbyne-tag-index.log`, its format, its replay at
//! start-up and its compaction. Leaves out: what the records mean (the index thread applies
//! them to `TagData`) and when they are written.
//!
//! Format: one record per line, `+<series>` (added) or `-<series>` (deleted), series names in
//! canonical form (they never hold a newline). Replay applies the records in order. A last
//! line without its newline is a write cut short by a crash: it is dropped (the file is cut
//! back to the last whole record before anything is appended).
//!
//! Why this is enough for consistency: the index thread appends a series when it first learns
//! it (a writer caches or creates it), and every writer tells the index again whenever a series
//! enters its cache after a restart. A series whose record a crash lost is therefore indexed
//! again as soon as it receives a point; a record whose file never came to be (a create that
//! failed) names a series that renders as no data, as a graphite-web TagDB entry would. Writes
//! are not fsynced one by one for that reason; a compaction is (write, fsync, rename).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The log's file name, under `_tagged/`.
pub const TAG_LOG_FILE: &str = "carbyne-tag-index.log";

/// Compact at start-up when the log holds more than this many records beyond twice the live
/// series (deleted series and repeats).
const COMPACT_SLACK: u64 = 4096;

/// What replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Whole records read.
    pub records: u64,
    /// Records that were not `+` or `-` followed by a name (skipped).
    pub bad_records: u64,
    /// A torn last record was cut off.
    pub torn_tail: bool,
}

/// The open log. Owned by the index thread.
#[derive(Debug)]
pub struct TagLog {
    path: PathBuf,
    /// None until the first record of a data directory that had no log: nothing (not even
    /// `_tagged/`) is created for a store without tagged series.
    file: Option<File>,
    /// Records in the file: replayed plus appended since.
    records: u64,
}

impl TagLog {
    /// The log's path for a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("_tagged").join(TAG_LOG_FILE)
    }

    /// Opens the log at `path` and replays it: `apply` gets (added, name) for every record in
    /// order. A missing log is an empty one, created (with `_tagged/`) at the first append.
    pub fn open(path: PathBuf, mut apply: impl FnMut(bool, &str)) -> io::Result<(TagLog, Replay)> {
        let mut file = match OpenOptions::new().read(true).append(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((TagLog { path, file: None, records: 0 }, Replay::default()));
            }
            Err(e) => return Err(e),
        };
        let mut replay = Replay::default();
        let mut whole_bytes = 0u64;
        {
            let mut reader = BufReader::new(&mut file);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    replay.torn_tail = true;
                    break;
                }
                whole_bytes += n as u64;
                replay.records += 1;
                match (line.first(), std::str::from_utf8(&line[1..line.len() - 1])) {
                    (Some(b'+'), Ok(name)) if !name.is_empty() => apply(true, name),
                    (Some(b'-'), Ok(name)) if !name.is_empty() => apply(false, name),
                    _ => replay.bad_records += 1,
                }
            }
        }
        if replay.torn_tail {
            file.set_len(whole_bytes)?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((TagLog { path, file: Some(file), records: replay.records }, replay))
    }

    /// Appends a record.
    pub fn append(&mut self, added: bool, name: &str) -> io::Result<()> {
        debug_assert!(!name.contains('\n'), "series names never hold a newline");
        let mut record = Vec::with_capacity(name.len() + 2);
        record.push(if added { b'+' } else { b'-' });
        record.extend_from_slice(name.as_bytes());
        record.push(b'\n');
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                self.file.insert(OpenOptions::new().append(true).create(true).open(&self.path)?)
            }
        };
        file.write_all(&record)?;
        self.records += 1;
        Ok(())
    }

    /// Whether the log is worth rewriting for `live` series.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.records > 2 * live as u64 + COMPACT_SLACK
    }

    /// Rewrites the log as one `+` record per series of `live`: written to a temporary file,
    /// synced, then renamed over the log, so that a crash leaves the old or the new one whole.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a str>) -> io::Result<()> {
        let tmp = self.path.with_extension("log.tmp");
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        let mut records = 0;
        for name in live {
            out.write_all(b"+")?;
            out.write_all(name.as_bytes())?;
            out.write_all(b"\n")?;
            records += 1;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.records = records;
        Ok(())
    }

    /// Records in the file.
    pub fn records(&self) -> u64 {
        self.records
    }
}

/// The whole log's text (tests).
#[cfg(test)]
fn read_all(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(path: &Path) -> (Vec<(bool, String)>, Replay, TagLog) {
        let mut seen = Vec::new();
        let (log, r) = TagLog::open(path.to_path_buf(), |added, name| seen.push((added, name.to_string()))).unwrap();
        (seen, r, log)
    }

    #[test]
    fn records_replay_in_order_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = TagLog::path_in(dir.path());
        let (seen, r, mut log) = replay(&path);
        assert!(seen.is_empty() && r == Replay::default());
        assert!(!path.parent().unwrap().exists(), "nothing is created before the first record");
        log.append(true, "a;k=v").unwrap();
        log.append(true, "b;k=w").unwrap();
        log.append(false, "a;k=v").unwrap();
        drop(log);
        let (seen, r, log) = replay(&path);
        assert_eq!(seen, [(true, "a;k=v".into()), (true, "b;k=w".into()), (false, "a;k=v".into())]);
        assert_eq!((r.records, r.bad_records, r.torn_tail, log.records()), (3, 0, false, 3));
    }

    #[test]
    fn a_torn_tail_is_cut_off_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = TagLog::path_in(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "+a;k=v\nxyz\n+b;k=").unwrap();
        let (seen, r, mut log) = replay(&path);
        assert_eq!(seen, [(true, "a;k=v".into())]);
        assert_eq!((r.records, r.bad_records, r.torn_tail), (2, 1, true));
        log.append(true, "c;k=v").unwrap();
        assert_eq!(read_all(&path), "+a;k=v\nxyz\n+c;k=v\n");
    }

    #[test]
    fn compaction_keeps_only_the_live_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = TagLog::path_in(dir.path());
        let (_, _, mut log) = replay(&path);
        for i in 0..10 {
            log.append(true, &format!("m;i={i}")).unwrap();
            log.append(false, &format!("m;i={i}")).unwrap();
        }
        assert!(!log.wants_compaction(0), "small logs are left alone");
        log.compact(["x;a=b", "y;a=c"].into_iter()).unwrap();
        log.append(true, "z;a=d").unwrap();
        assert_eq!(read_all(&path), "+x;a=b\n+y;a=c\n+z;a=d\n");
        assert_eq!(log.records(), 3);
        assert!(!path.with_extension("log.tmp").exists());
    }
}
