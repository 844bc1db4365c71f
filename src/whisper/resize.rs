//! Changing a file's retentions while keeping its data (the `whisper-resize` equivalent).
//!
//! The old file is read archive by archive, a new file is created next to it (`<path>.tmp`, or
//! a path of the caller's choosing), the data is written into it, and the new file replaces the
//! old one, which is kept as `<path>.bak` unless asked otherwise.
//!
//! Two ways to carry data over:
//! - default, as whisper-resize: every known point of every old archive, coarsest first, goes
//!   through `update_many`, so the finest data wins where archives overlap and propagation
//!   aggregates it into the new coarser archives;
//! - `aggregate`: every new archive is computed directly from the finest old data that covers
//!   each of its intervals, aggregated with the file's method and gated by its xFilesFactor, so
//!   that moving to a coarser first archive (10s → 1m) averages rather than keeps the last point.
//!   (whisper-resize's own `--aggregate` does not run on Python 3; this is what it set out to do.)

use std::path::{Path, PathBuf};

use super::aggregate::AggregationMethod;
use super::error::{Result, WhisperError};
use super::file::{create, CreateOptions, Point, Whisper};
use super::io::WriteOptions;
use super::retention::ArchiveSpec;

/// Options of [`resize`].
#[derive(Debug, Clone, Default)]
pub struct ResizeOptions {
    /// New xFilesFactor; the old one when None.
    pub x_files_factor: Option<f64>,
    /// New aggregation method; the old one when None.
    pub aggregation: Option<AggregationMethod>,
    /// Compute each new archive by aggregating old data (see the module documentation).
    pub aggregate: bool,
    /// Write the new file here and leave the old one untouched.
    pub new_file: Option<PathBuf>,
    /// Remove `<path>.bak` once the new file is in place.
    pub no_backup: bool,
    /// Lock and fsync behaviour of the writes.
    pub write: WriteOptions,
}

/// Resizes the file at `path` to `archives`; returns the path the new data was written to.
pub fn resize(path: &Path, archives: &[ArchiveSpec], opts: &ResizeOptions, now: i64) -> Result<PathBuf> {
    let mut old = Whisper::open_read_only(path)?;
    let old_header = old.header().clone();
    let old_data = read_all_archives(&mut old, now)?;
    let target = match &opts.new_file {
        Some(p) => p.clone(),
        None => with_suffix(path, ".tmp"),
    };
    if opts.new_file.is_none() && target.exists() {
        std::fs::remove_file(&target).map_err(|e| WhisperError::io(&target, e))?;
    }
    let create_opts = CreateOptions {
        aggregation: opts.aggregation.unwrap_or(old_header.aggregation),
        x_files_factor: opts.x_files_factor.unwrap_or(old_header.xff()),
        write: opts.write,
        ..CreateOptions::default()
    };
    create(&target, archives, &create_opts)?;
    let filled = Whisper::open(&target, opts.write).and_then(|mut new| {
        if opts.aggregate {
            write_aggregated(&mut new, &old_data, now)
        } else {
            write_coarsest_first(&mut new, &old_data, now)
        }
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_file(&target);
        return Err(e);
    }
    if opts.new_file.is_some() {
        return Ok(target);
    }
    swap_in(path, &target, opts.no_backup)?;
    Ok(path.to_path_buf())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Moves the old file to `.bak` and the new one into its place, restoring on failure.
fn swap_in(path: &Path, new: &Path, no_backup: bool) -> Result<()> {
    let backup = with_suffix(path, ".bak");
    std::fs::rename(path, &backup).map_err(|e| WhisperError::io(path, e))?;
    if let Err(e) = std::fs::rename(new, path) {
        let _ = std::fs::rename(&backup, path);
        return Err(WhisperError::io(new, e));
    }
    if no_backup {
        std::fs::remove_file(&backup).map_err(|e| WhisperError::io(&backup, e))?;
    }
    Ok(())
}

/// Known points of each old archive's time span, finest first, with the step they came at.
struct ArchiveData {
    step: i64,
    points: Vec<Point>,
}

/// Reads each old archive's span as whisper-resize does: a plain fetch from one step inside the
/// archive's retention to now. whisper's archive selection answers it from the first archive
/// that covers that age, which is a finer one when retentions are close.
fn read_all_archives(old: &mut Whisper, now: i64) -> Result<Vec<ArchiveData>> {
    let archives = old.header().archives.clone();
    let mut out = Vec::with_capacity(archives.len());
    for a in archives {
        let from = now - a.retention() + i64::from(a.seconds_per_point);
        let Some(fetched) = old.fetch(from, Some(now), now, None)? else {
            continue;
        };
        let points = fetched.points().filter_map(|(t, v)| Some((t, v?))).collect();
        out.push(ArchiveData { step: fetched.step, points });
    }
    Ok(out)
}

fn write_coarsest_first(new: &mut Whisper, old: &[ArchiveData], now: i64) -> Result<()> {
    for archive in old.iter().rev() {
        new.update_many(&archive.points, now)?;
    }
    Ok(())
}

/// The finest known data at every time: each old archive contributes the points older than
/// everything the finer archives returned. Sorted by time, with the step they came from.
fn finest_timeline(old: &[ArchiveData]) -> Vec<(i64, f64, i64)> {
    let mut timeline = Vec::new();
    let mut cutoff = i64::MAX;
    for archive in old {
        let covered_from = archive.points.first().map(|p| p.0);
        timeline.extend(archive.points.iter().filter(|p| p.0 < cutoff).map(|&(t, v)| (t, v, archive.step)));
        if let Some(first) = covered_from {
            cutoff = cutoff.min(first);
        }
    }
    timeline.sort_by_key(|p| p.0);
    timeline
}

fn write_aggregated(new: &mut Whisper, old: &[ArchiveData], now: i64) -> Result<()> {
    let timeline = finest_timeline(old);
    let header = new.header().clone();
    let mut window = Vec::new();
    for (idx, a) in header.archives.iter().enumerate() {
        let step = i64::from(a.seconds_per_point);
        let oldest = now - a.retention();
        let mut points = Vec::new();
        let mut i = timeline.partition_point(|p| p.0 < a.align(oldest) + step);
        while i < timeline.len() {
            let bucket = a.align(timeline[i].0);
            let end = timeline[i..].partition_point(|p| p.0 < bucket + step) + i;
            let source_step = timeline[i].2;
            let expected = (step / source_step).max(1) as usize;
            window.clear();
            window.extend(timeline[i..end].iter().map(|p| Some(p.1)));
            let known = window.len().min(expected);
            window.resize(expected.max(window.len()), None);
            if known as f64 / expected as f64 >= header.xff() {
                points.push((bucket, header.aggregation.aggregate(&window)));
            }
            i = end;
        }
        new.write_archive(idx, &points)?;
    }
    Ok(())
}
