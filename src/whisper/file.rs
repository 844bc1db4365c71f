//! An open whisper file and the operations on it: create, update, update_many, fetch and the
//! metadata setters, with whisper.py 1.1's semantics.
//!
//! A [`Whisper`] keeps its descriptor, its parsed header and scratch buffers, so a writer that
//! caches handles does no allocation per update in steady state. `now` is an argument of every
//! time-dependent operation; nothing here reads the clock.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::aggregate::AggregationMethod;
use super::error::{Result, WhisperError};
use super::format::{decode_point, encode_point, ArchiveInfo, Header, METADATA_SIZE, POINT_SIZE};
use super::io::{self, Allocation, Mapping, WriteLock, WriteOptions};
use super::retention::{parse_retention_def, validate_archive_list, ArchiveSpec};

/// A point to write: (timestamp in epoch seconds, value).
pub type Point = (i64, f64);

/// What `fetch` returns: the time range actually covered and one value per step.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResult {
    /// Timestamp of the first value.
    pub from: i64,
    /// One past the timestamp of the last value (exclusive end), as whisper's timeInfo.
    pub until: i64,
    /// Seconds between values.
    pub step: i64,
    /// None for slots with no point for that interval.
    pub values: Vec<Option<f64>>,
}

impl FetchResult {
    /// (timestamp, value) pairs, timestamps from `from` in steps of `step`.
    pub fn points(&self) -> impl Iterator<Item = (i64, Option<f64>)> + '_ {
        self.values.iter().enumerate().map(|(i, v)| (self.from + i as i64 * self.step, *v))
    }
}

/// What `update_many` did with the points it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateReport {
    /// Points written to some archive (duplicates of one interval count each).
    pub points_accepted: usize,
    /// Points older than the file's retention, dropped as whisper drops them.
    pub points_too_old: usize,
}

/// Parameters of a new file.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Aggregation method of the new file.
    pub aggregation: AggregationMethod,
    /// xFilesFactor in [0, 1]; stored as f32.
    pub x_files_factor: f64,
    /// How the data area is allocated.
    pub allocation: Allocation,
    /// Lock, fsync and fadvise behaviour while creating.
    pub write: WriteOptions,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            aggregation: AggregationMethod::Average,
            x_files_factor: 0.5,
            allocation: Allocation::Zeroed,
            write: WriteOptions::default(),
        }
    }
}

/// Reusable buffers, so that steady-state updates allocate nothing.
#[derive(Debug, Default)]
struct Scratch {
    /// Input points sorted newest first.
    sorted: Vec<Point>,
    /// One archive's points aligned, deduplicated, oldest first.
    aligned: Vec<Point>,
    /// Encoded bytes of one contiguous run, or a read span.
    bytes: Vec<u8>,
    /// Buffers of propagation.
    prop: PropagationScratch,
    /// (archive index, start, end) slices of `sorted` per archive.
    segments: Vec<(usize, usize, usize)>,
}

/// Buffers of one propagation step.
#[derive(Debug, Default)]
struct PropagationScratch {
    /// The higher archive's slots covering the windows.
    span: Vec<u8>,
    /// One window's values.
    window: Vec<Option<f64>>,
    /// Lower intervals to propagate, ascending.
    intervals: Vec<i64>,
    /// (interval, aggregate) to write to the lower archive.
    results: Vec<Point>,
    /// Encoded bytes of one run of results.
    out: Vec<u8>,
}

/// An open whisper file.
#[derive(Debug)]
pub struct Whisper {
    path: PathBuf,
    file: File,
    header: Header,
    write_opts: WriteOptions,
    /// Per archive, the base interval once known (0: not read yet, or the archive was empty).
    /// Invariant: a non-zero entry is congruent, modulo the archive's lap (`points * step`),
    /// to the timestamp in the archive's first slot. Slot 0 only ever receives intervals of that
    /// class, so the slot arithmetic computed from the cached value never goes stale.
    bases: Vec<Cell<u32>>,
    /// (device, inode) of the open file, to notice when the path is replaced (resize, restore).
    identity: (u64, u64),
    /// The whole file mapped, when `write_opts.mmap` asked for it and it is safe (see `io.rs`):
    /// reads and writes of points then copy memory instead of calling `pread`/`pwrite`.
    map: Option<Mapping>,
    scratch: Scratch,
}

fn check_xff(xff: f64) -> Result<f32> {
    if !(0.0..=1.0).contains(&xff) {
        return Err(WhisperError::InvalidXFilesFactor(xff));
    }
    Ok(xff as f32)
}

/// Reads and validates the header of an open file.
pub fn read_header(file: &File, path: &Path) -> Result<Header> {
    let file_len = file.metadata().map_err(|e| WhisperError::io(path, e))?.len();
    let mut meta = [0u8; METADATA_SIZE];
    let n = io::read_full_at(file, &mut meta, 0).map_err(|e| WhisperError::io(path, e))?;
    let count = Header::archive_count(&meta[..n]).map_err(|r| WhisperError::corrupt(path, r))?;
    let mut bytes = vec![0u8; METADATA_SIZE + 12 * count as usize];
    let n = io::read_full_at(file, &mut bytes, 0).map_err(|e| WhisperError::io(path, e))?;
    Header::parse(&bytes[..n], file_len).map_err(|r| WhisperError::corrupt(path, r))
}

/// Reads the header of the file at `path` (whisper's `info`).
pub fn info(path: &Path) -> Result<Header> {
    let file = File::open(path).map_err(|e| WhisperError::io(path, e))?;
    read_header(&file, path)
}

/// Creates a new file at `path` for `archives` (validated and sorted first). A file that exists
/// is refused; a file half made when an error strikes is removed.
pub fn create(path: &Path, archives: &[ArchiveSpec], opts: &CreateOptions) -> Result<Header> {
    let header = new_header(archives, opts)?;
    create_with(path, |file| write_new_file(file, &header, opts))?;
    Ok(header)
}

/// The header of a new file, from its archives and options.
fn new_header(archives: &[ArchiveSpec], opts: &CreateOptions) -> Result<Header> {
    let xff = check_xff(opts.x_files_factor)?;
    let mut specs = archives.to_vec();
    validate_archive_list(&mut specs)?;
    Ok(Header::for_archives(&specs, opts.aggregation, xff))
}

/// Creates `path` (refusing an existing file) and fills it with `fill`; on any error of `fill`
/// or of closing, the half-made file is removed before the error is returned.
pub(crate) fn create_with(path: &Path, fill: impl FnOnce(&File) -> std::io::Result<()>) -> Result<()> {
    create_kept(path, false, fill).map(drop)
}

/// [`create_with`], returning the new file still open (for reading too when `read`).
fn create_kept(path: &Path, read: bool, fill: impl FnOnce(&File) -> std::io::Result<()>) -> Result<File> {
    let file = OpenOptions::new().read(read).write(true).create_new(true).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            WhisperError::AlreadyExists(path.to_path_buf())
        } else {
            WhisperError::io(path, e)
        }
    })?;
    if let Err(e) = fill(&file) {
        drop(file);
        // Better no file than a half-made one that later reads as corrupt.
        let _ = std::fs::remove_file(path);
        return Err(WhisperError::io(path, e));
    }
    Ok(file)
}

fn write_new_file(file: &File, header: &Header, opts: &CreateOptions) -> std::io::Result<()> {
    let _lock = WriteLock::acquire(file, opts.write.lock_writes)?;
    io::advise_random(file, &opts.write)?;
    let head = header.encode();
    io::write_all_at(file, &head, 0)?;
    let data_len = header.file_size() - head.len() as u64;
    io::allocate(file, head.len() as u64, data_len, opts.allocation)?;
    io::finish_write(file, &opts.write)
}

impl Whisper {
    /// Opens an existing file for reading and writing and reads its header.
    pub fn open(path: &Path, write_opts: WriteOptions) -> Result<Whisper> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| WhisperError::io(path, e))?;
        io::advise_random(&file, &write_opts).map_err(|e| WhisperError::io(path, e))?;
        let mut w = Self::from_file(path, file, write_opts)?;
        if write_opts.mmap {
            w.map_if_safe()?;
        }
        Ok(w)
    }

    /// Maps the file if it is not mapped yet and it is safe to (see `io.rs`), whatever
    /// `WriteOptions::mmap` said at open: for callers that map only the handles they reuse.
    /// Returns whether the handle is mapped now.
    pub fn map_if_safe(&mut self) -> Result<bool> {
        if self.map.is_none() {
            let len = self.file.metadata().map_err(|e| self.io_err(e))?.len();
            self.map = Mapping::map_if_safe(&self.file, len);
        }
        Ok(self.map.is_some())
    }

    /// Opens an existing file for reading only (fetch, info); writes will fail with an I/O error.
    pub fn open_read_only(path: &Path) -> Result<Whisper> {
        let file = File::open(path).map_err(|e| WhisperError::io(path, e))?;
        Self::from_file(path, file, WriteOptions::default())
    }

    /// Creates `path` as [`create`] does and returns it open for updates, as [`Whisper::open`]
    /// would (without mapping it): a writer that creates a file and writes to it at once saves
    /// opening it again and reading back the header it just wrote.
    pub fn create_open(
        path: &Path,
        archives: &[ArchiveSpec],
        opts: &CreateOptions,
        write_opts: WriteOptions,
    ) -> Result<Whisper> {
        let header = new_header(archives, opts)?;
        let file = create_kept(path, true, |file| write_new_file(file, &header, opts))?;
        Self::with_header(path, file, header, write_opts)
    }

    fn from_file(path: &Path, file: File, write_opts: WriteOptions) -> Result<Whisper> {
        let header = read_header(&file, path)?;
        Self::with_header(path, file, header, write_opts)
    }

    fn with_header(path: &Path, file: File, header: Header, write_opts: WriteOptions) -> Result<Whisper> {
        let bases = vec![Cell::new(0); header.archives.len()];
        let meta = file.metadata().map_err(|e| WhisperError::io(path, e))?;
        let identity = (meta.dev(), meta.ino());
        Ok(Whisper {
            path: path.to_path_buf(),
            file,
            header,
            write_opts,
            bases,
            identity,
            map: None,
            scratch: Scratch::default(),
        })
    }

    /// Whether reads and writes of points go through a mapping of the file (see `io.rs` for
    /// when a file is mapped).
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match &self.map {
            Some(map) => map.read(buf, offset),
            None => io::read_exact_at(&self.file, buf, offset),
        }
        .map_err(|e| self.io_err(e))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        match &self.map {
            Some(map) => map.write(buf, offset),
            None => io::write_all_at(&self.file, buf, offset),
        }
        .map_err(|e| self.io_err(e))
    }

    /// The header as read when the file was opened (and as changed by the setters since).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads the metadata (aggregation method, xFilesFactor) again from the file, for a handle
    /// kept open while another process or thread may have rewritten them in place
    /// (`whisper-set-aggregation-method`, carbonlink's set-metadata). A header whose archives
    /// changed under the same inode is corruption: an error, the handle left as it was. A file
    /// that shrank under a mapping (truncated in place by another tool) loses the mapping first,
    /// so that later accesses are errors rather than faults.
    pub fn refresh_metadata(&mut self) -> Result<()> {
        if let Some(map) = &self.map {
            let len = self.file.metadata().map_err(|e| self.io_err(e))?.len();
            if len < map.len() as u64 {
                self.map = None;
            }
        }
        let header = read_header(&self.file, &self.path)?;
        if header.archives != self.header.archives {
            return Err(WhisperError::Corrupt {
                path: self.path.clone(),
                reason: "the archive list changed under an open handle".into(),
            });
        }
        self.header = header;
        Ok(())
    }

    /// (device, inode) of the open file: differs from the path's when the file was replaced.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, e: std::io::Error) -> WhisperError {
        WhisperError::io(&self.path, e)
    }

    /// The base interval of archive `idx` (the timestamp in its first slot, up to whole laps):
    /// 0 means the archive is empty. Read from the file until it is known, then cached.
    fn base_interval(&self, idx: usize) -> Result<i64> {
        if self.bases[idx].get() == 0 {
            let mut slot = [0u8; POINT_SIZE];
            let offset = u64::from(self.header.archives[idx].offset);
            self.read_at(&mut slot, offset)?;
            self.bases[idx].set(decode_point(&slot).0);
        }
        Ok(i64::from(self.bases[idx].get()))
    }

    /// Writes many points, as whisper.py's `update_many`: newest first through the archives,
    /// each archive taking the points its retention covers, duplicates resolved (per interval the
    /// largest raw timestamp wins, on equal timestamps the first given), then propagated down.
    /// Points older than every archive are dropped and counted. Future points are written.
    pub fn update_many(&mut self, points: &[Point], now: i64) -> Result<UpdateReport> {
        if points.is_empty() {
            return Ok(UpdateReport::default());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.update_many_with(&mut scratch, points, now);
        self.scratch = scratch;
        result
    }

    fn update_many_with(&mut self, s: &mut Scratch, points: &[Point], now: i64) -> Result<UpdateReport> {
        s.sorted.clear();
        s.sorted.extend_from_slice(points);
        // Stable: equal timestamps keep their input order, which decides duplicate ties.
        s.sorted.sort_by_key(|p| std::cmp::Reverse(p.0));
        let report = split_by_archive(&self.header.archives, &s.sorted, now, &mut s.segments);
        for &(_, start, end) in &s.segments {
            if let Some(&(ts, _)) = s.sorted[start..end].iter().find(|p| !(0..=i64::from(u32::MAX)).contains(&p.0)) {
                return Err(WhisperError::TimestampOutOfRange(ts));
            }
        }
        let _lock = WriteLock::acquire(&self.file, self.write_opts.lock_writes).map_err(|e| self.io_err(e))?;
        for seg in 0..s.segments.len() {
            let (idx, start, end) = s.segments[seg];
            align_chronological(&self.header.archives[idx], &s.sorted[start..end], &mut s.aligned);
            self.write_runs(idx, &s.aligned, &mut s.bytes)?;
            self.propagate_all(idx, &s.aligned, &mut s.prop)?;
        }
        io::finish_write(&self.file, &self.write_opts).map_err(|e| self.io_err(e))?;
        Ok(report)
    }

    /// Writes points (chronological, one per interval of archive `idx`) into that archive only,
    /// with no propagation: for tools that compute every archive themselves (resize).
    pub fn write_archive(&mut self, idx: usize, points: &[Point]) -> Result<()> {
        let Some(a) = self.header.archives.get(idx).copied() else {
            return Ok(());
        };
        if points.is_empty() {
            return Ok(());
        }
        if let Some(&(ts, _)) = points.iter().find(|p| !(0..=i64::from(u32::MAX)).contains(&p.0)) {
            return Err(WhisperError::TimestampOutOfRange(ts));
        }
        let mut s = std::mem::take(&mut self.scratch);
        s.aligned.clear();
        for &(ts, v) in points {
            let interval = a.align(ts);
            match s.aligned.last_mut() {
                Some(last) if last.0 == interval => last.1 = v,
                _ => s.aligned.push((interval, v)),
            }
        }
        let result = {
            let _lock = WriteLock::acquire(&self.file, self.write_opts.lock_writes).map_err(|e| self.io_err(e))?;
            self.write_runs(idx, &s.aligned, &mut s.bytes)
                .and_then(|()| io::finish_write(&self.file, &self.write_opts).map_err(|e| self.io_err(e)))
        };
        self.scratch = s;
        result
    }

    /// Writes aligned, deduplicated, chronological points into archive `idx` as contiguous runs.
    fn write_runs(&self, idx: usize, aligned: &[Point], buf: &mut Vec<u8>) -> Result<()> {
        let a = self.header.archives[idx];
        let step = i64::from(a.seconds_per_point);
        let mut base = self.base_interval(idx)?;
        if base == 0 {
            base = aligned[0].0;
        }
        let mut run_start = 0;
        for i in 1..=aligned.len() {
            if i == aligned.len() || aligned[i].0 != aligned[i - 1].0 + step {
                self.write_run(&a, base, &aligned[run_start..i], buf)?;
                run_start = i;
            }
        }
        Ok(())
    }

    /// Writes one run of consecutive intervals at its slot, wrapping at the archive's end. A run
    /// longer than the ring keeps its newest `points` entries, which is what writing it slot by
    /// slot would leave (whisper.py instead writes past the archive's end in that case).
    fn write_run(&self, a: &ArchiveInfo, base: i64, run: &[Point], buf: &mut Vec<u8>) -> Result<()> {
        let run = &run[run.len().saturating_sub(a.points as usize)..];
        buf.clear();
        for &(ts, value) in run {
            buf.extend_from_slice(&encode_point(ts as u32, value));
        }
        let offset = a.slot_offset(base, run[0].0);
        let first_len = (a.end() - offset).min(buf.len() as u64) as usize;
        self.write_at(&buf[..first_len], offset)?;
        if first_len < buf.len() {
            self.write_at(&buf[first_len..], u64::from(a.offset))?;
        }
        Ok(())
    }

    /// Propagates the intervals touched in archive `idx` to every lower-precision archive, in
    /// time order, stopping below the first archive where no propagation succeeded.
    fn propagate_all(&self, idx: usize, aligned: &[Point], p: &mut PropagationScratch) -> Result<()> {
        let archives = &self.header.archives;
        let mut higher = idx;
        for lower in idx + 1..archives.len() {
            if archives[lower].seconds_per_point <= archives[idx].seconds_per_point {
                continue;
            }
            p.intervals.clear();
            for &(ts, _) in aligned {
                let interval = archives[lower].align(ts);
                if p.intervals.last() != Some(&interval) {
                    p.intervals.push(interval);
                }
            }
            if !self.propagate_intervals(higher, lower, p)? {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// For each of `p.intervals` (ascending, aligned to `lower`), aggregates the window of
    /// `higher` that covers it and, when enough of the window is known (xFilesFactor), writes the
    /// result to `lower`. Returns whether anything was written.
    ///
    /// Same result as whisper's one-interval-at-a-time `__propagate`, with fewer system calls:
    /// the higher archive's span covering every window is read once (when it fits in one lap),
    /// and consecutive results are written to `lower` as one run.
    fn propagate_intervals(&self, higher: usize, lower: usize, p: &mut PropagationScratch) -> Result<bool> {
        let (h, l) = (self.header.archives[higher], self.header.archives[lower]);
        let PropagationScratch { span, window, intervals, results, out } = p;
        // Files whisper made have spp dividing and enough points; a hostile header may not, and
        // then the window is clamped to one lap of the ring rather than read out of bounds.
        let n = ((l.seconds_per_point / h.seconds_per_point) as usize).clamp(1, h.points as usize);
        let step = i64::from(h.seconds_per_point);
        let h_base = self.base_interval(higher)?;
        let (first, last) = (intervals[0], intervals[intervals.len() - 1]);
        let span_slots = ((last - first) / step) as usize + n;
        let one_read = h_base != 0 && span_slots <= h.points as usize;
        if one_read {
            self.read_ring(&h, h.slot_offset(h_base, first), span_slots, span)?;
        }
        results.clear();
        for &t in intervals.iter() {
            let bytes: &[u8] = if one_read {
                let at = ((t - first) / step) as usize * POINT_SIZE;
                &span[at..at + n * POINT_SIZE]
            } else {
                let first_slot = if h_base == 0 { u64::from(h.offset) } else { h.slot_offset(h_base, t) };
                self.read_ring(&h, first_slot, n, span)?;
                &span[..]
            };
            window.clear();
            window.extend(bytes.chunks_exact(POINT_SIZE).enumerate().map(|(i, slot)| {
                let (slot_ts, value) = decode_point(slot);
                (i64::from(slot_ts) == t + i as i64 * step).then_some(value)
            }));
            let known = window.iter().filter(|v| v.is_some()).count();
            if known > 0 && (known as f64 / n as f64) >= self.header.xff() {
                results.push((t, self.header.aggregation.aggregate(window)));
            }
        }
        if results.is_empty() {
            return Ok(false);
        }
        self.write_runs(lower, results, out)?;
        Ok(true)
    }

    /// Reads `n` slots (n ≤ points) of archive `a` starting at byte `first`, wrapping at its end.
    fn read_ring(&self, a: &ArchiveInfo, first: u64, n: usize, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.resize(n * POINT_SIZE, 0);
        let first_len = (a.end() - first).min(buf.len() as u64) as usize;
        self.read_at(&mut buf[..first_len], first)?;
        if first_len < buf.len() {
            self.read_at(&mut buf[first_len..], u64::from(a.offset))?;
        }
        Ok(())
    }

    /// Writes one point, as whisper.py's `update`: the timestamp must be within
    /// `[now - maxRetention + 1, now]` (stricter than `update_many`), the highest-precision archive
    /// that covers it takes it, and propagation stops at the first archive it fails for.
    pub fn update(&mut self, value: f64, timestamp: Option<i64>, now: i64) -> Result<()> {
        let ts = timestamp.unwrap_or(now);
        let age = now - ts;
        let not_covered = WhisperError::TimestampNotCovered { timestamp: ts, now };
        if !(0..i64::from(self.header.max_retention)).contains(&age) {
            return Err(not_covered);
        }
        let idx = self.header.archives.iter().position(|a| a.retention() >= age).ok_or(not_covered)?;
        if !(0..=i64::from(u32::MAX)).contains(&ts) {
            return Err(WhisperError::TimestampOutOfRange(ts));
        }
        let _lock = WriteLock::acquire(&self.file, self.write_opts.lock_writes).map_err(|e| self.io_err(e))?;
        let interval = self.header.archives[idx].align(ts);
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = self.update_one(idx, interval, value, &mut scratch);
        self.scratch = scratch;
        outcome?;
        io::finish_write(&self.file, &self.write_opts).map_err(|e| self.io_err(e))
    }

    /// Writes one aligned point into archive `idx` and propagates it down, stopping at the first
    /// archive it does not reach (whisper's `update` propagates each level from the one above).
    fn update_one(&self, idx: usize, interval: i64, value: f64, s: &mut Scratch) -> Result<()> {
        s.aligned.clear();
        s.aligned.push((interval, value));
        self.write_runs(idx, &s.aligned, &mut s.bytes)?;
        let mut higher = idx;
        for lower in idx + 1..self.header.archives.len() {
            s.prop.intervals.clear();
            s.prop.intervals.push(self.header.archives[lower].align(interval));
            if !self.propagate_intervals(higher, lower, &mut s.prop)? {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Reads a time range, as whisper.py's `fetch`. Returns None when the range lies wholly in
    /// the future or wholly beyond the retention. `archive` selects a precision by name (`1m`,
    /// `60`), as `archiveToSelect` does.
    pub fn fetch(
        &mut self,
        from: i64,
        until: Option<i64>,
        now: i64,
        archive: Option<&str>,
    ) -> Result<Option<FetchResult>> {
        let until = until.unwrap_or(now);
        if from > until {
            return Err(WhisperError::InvalidTimeInterval { from, until });
        }
        let oldest = now - i64::from(self.header.max_retention);
        if from > now || until < oldest {
            return Ok(None);
        }
        let (from, until) = (from.max(oldest), until.min(now));
        let idx = self.select_archive(now - from, archive)?;
        let mut buf = std::mem::take(&mut self.scratch.bytes);
        let result = self.fetch_archive(idx, from, until, &mut buf);
        self.scratch.bytes = buf;
        result.map(Some)
    }

    fn select_archive(&self, age: i64, archive: Option<&str>) -> Result<usize> {
        let archives = &self.header.archives;
        let Some(name) = archive else {
            // As whisper: the first archive that covers the age, else the last one.
            return Ok(archives.iter().position(|a| a.retention() >= age).unwrap_or(archives.len() - 1));
        };
        let invalid = || WhisperError::InvalidGranularity(name.to_string());
        let precision = parse_retention_def(&format!("{name}:1")).map_err(|_| invalid())?.seconds_per_point;
        archives.iter().position(|a| a.seconds_per_point == precision).ok_or_else(invalid)
    }

    fn fetch_archive(&self, idx: usize, from: i64, until: i64, buf: &mut Vec<u8>) -> Result<FetchResult> {
        let a = &self.header.archives[idx];
        let step = i64::from(a.seconds_per_point);
        let from_interval = a.align(from) + step;
        let mut until_interval = a.align(until) + step;
        if from_interval == until_interval {
            // A zero-length range still returns the next point.
            until_interval += step;
        }
        let base = self.base_interval(idx)?;
        let n_range = ((until_interval - from_interval) / step) as usize;
        if base == 0 {
            // A range longer than the archive (explicit selection only) gets one lap, as below.
            let values = vec![None; n_range.min(a.points as usize)];
            return Ok(FetchResult { from: from_interval, until: until_interval, step, values });
        }
        let from_offset = a.slot_offset(base, from_interval);
        let until_offset = a.slot_offset(base, until_interval);
        // Like whisper, read from `from` to `until` around the ring: equal offsets mean a whole
        // lap. Only a range longer than the archive (an explicit archive selection) reads less
        // than the range, and then the values are one lap long, as whisper's are.
        let span = (until_offset + a.size_bytes() - from_offset - 1) % a.size_bytes() + 1;
        let n_read = (span / POINT_SIZE as u64) as usize;
        self.read_ring(a, from_offset, n_read, buf)?;
        let values = buf
            .chunks_exact(POINT_SIZE)
            .enumerate()
            .map(|(i, slot)| {
                let (ts, value) = decode_point(slot);
                (i64::from(ts) == from_interval + i as i64 * step).then_some(value)
            })
            .collect();
        Ok(FetchResult { from: from_interval, until: until_interval, step, values })
    }

    /// Rewrites the metadata with a new aggregation method and/or xFilesFactor, as whisper's
    /// `setAggregationMethod` / `setXFilesFactor`. Returns the old (method, xFilesFactor).
    pub fn set_aggregation(
        &mut self,
        method: Option<AggregationMethod>,
        xff: Option<f64>,
    ) -> Result<(AggregationMethod, f32)> {
        let old = (self.header.aggregation, self.header.x_files_factor);
        let new_xff = match xff {
            Some(x) => check_xff(x)?,
            None => old.1,
        };
        let _lock = WriteLock::acquire(&self.file, self.write_opts.lock_writes).map_err(|e| self.io_err(e))?;
        let mut header = self.header.clone();
        header.aggregation = method.unwrap_or(old.0);
        header.x_files_factor = new_xff;
        io::write_all_at(&self.file, &header.encode_metadata(), 0).map_err(|e| self.io_err(e))?;
        io::finish_write(&self.file, &self.write_opts).map_err(|e| self.io_err(e))?;
        self.header = header;
        Ok(old)
    }
}

/// Splits points sorted newest first into per-archive slices, as whisper walks them: each point
/// goes to the first archive (from the current one on) whose retention covers its age. Points
/// past the last archive are dropped; the report counts them.
fn split_by_archive(
    archives: &[ArchiveInfo],
    sorted: &[Point],
    now: i64,
    segments: &mut Vec<(usize, usize, usize)>,
) -> UpdateReport {
    segments.clear();
    let (mut idx, mut start) = (0, 0);
    for (i, &(ts, _)) in sorted.iter().enumerate() {
        let age = now.saturating_sub(ts);
        while archives[idx].retention() < age {
            if i > start {
                segments.push((idx, start, i));
            }
            start = i;
            idx += 1;
            if idx == archives.len() {
                return UpdateReport { points_accepted: i, points_too_old: sorted.len() - i };
            }
        }
    }
    if start < sorted.len() {
        segments.push((idx, start, sorted.len()));
    }
    UpdateReport { points_accepted: sorted.len(), points_too_old: 0 }
}

/// Aligns points (given newest first) to the archive's step in chronological order, keeping for
/// each interval the last point in that order: the largest raw timestamp, and among equal raw
/// timestamps the one given first.
fn align_chronological(a: &ArchiveInfo, newest_first: &[Point], out: &mut Vec<Point>) {
    out.clear();
    for &(ts, value) in newest_first.iter().rev() {
        let interval = a.align(ts);
        match out.last_mut() {
            Some(last) if last.0 == interval => last.1 = value,
            _ => out.push((interval, value)),
        }
    }
}
