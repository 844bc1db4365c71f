//! Behaviour tests of the engine: whisper.py's documented and verified cases, each with its
//! numbers. Differential tests against whisper.py itself live in tests/it/reference_whisper.rs,
//! model-based property tests in tests/it/whisper_model.rs.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;

const NOW: i64 = 1_700_000_000;

fn spec(seconds_per_point: u32, points: u32) -> ArchiveSpec {
    ArchiveSpec { seconds_per_point, points }
}

fn new_file(dir: &Path, archives: &[ArchiveSpec], method: AggregationMethod, xff: f64) -> Whisper {
    let path = dir.join("m.wsp");
    let opts = CreateOptions { aggregation: method, x_files_factor: xff, ..CreateOptions::default() };
    create(&path, archives, &opts).unwrap();
    Whisper::open(&path, WriteOptions::default()).unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn fetch_all(w: &mut Whisper, from: i64, until: i64) -> FetchResult {
    w.fetch(from, Some(until), NOW, None).unwrap().unwrap()
}

#[test]
fn create_lays_out_whisper_bytes_for_every_allocation() {
    let dir = tmp();
    let mut contents = Vec::new();
    for (i, allocation) in [Allocation::Zeroed, Allocation::Sparse, Allocation::Fallocate].into_iter().enumerate() {
        let path = dir.path().join(format!("{i}.wsp"));
        let opts = CreateOptions { allocation, ..CreateOptions::default() };
        create(&path, &[spec(300, 10), spec(60, 10)], &opts).unwrap();
        contents.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(contents[0].len(), 280);
    assert!(contents.iter().all(|c| *c == contents[0]));
    let expected_header: Vec<u8> =
        [1u32, 3000, 0.5f32.to_bits(), 2, 40, 60, 10, 160, 300, 10].iter().flat_map(|w| w.to_be_bytes()).collect();
    assert_eq!(&contents[0][..40], &expected_header[..]);
    assert!(contents[0][40..].iter().all(|&b| b == 0));
}

#[test]
fn create_open_writes_the_same_file_and_keeps_it_open_for_updates() {
    let dir = tmp();
    let (kept, closed) = (dir.path().join("kept.wsp"), dir.path().join("closed.wsp"));
    let archives = [spec(60, 10), spec(300, 10)];
    let opts = CreateOptions::default();
    create(&closed, &archives, &opts).unwrap();
    let mut w = Whisper::create_open(&kept, &archives, &opts, WriteOptions::default()).unwrap();
    assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&closed).unwrap());
    assert_eq!(w.header(), &read_header(&std::fs::File::open(&closed).unwrap(), &closed).unwrap());
    w.update_many(&[(NOW - 60, 4.5)], NOW).unwrap();
    let mut again = Whisper::open(&kept, WriteOptions::default()).unwrap();
    assert_eq!(fetch_all(&mut again, NOW - 600, NOW).values.iter().flatten().copied().collect::<Vec<f64>>(), [4.5]);
    assert!(matches!(
        Whisper::create_open(&kept, &archives, &opts, WriteOptions::default()),
        Err(WhisperError::AlreadyExists(_))
    ));
}

#[test]
fn create_refuses_existing_files_and_bad_parameters() {
    let dir = tmp();
    let path = dir.path().join("x.wsp");
    create(&path, &[spec(60, 10)], &CreateOptions::default()).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(create(&path, &[spec(60, 20)], &CreateOptions::default()), Err(WhisperError::AlreadyExists(_))));
    assert_eq!(std::fs::read(&path).unwrap(), before, "existing file untouched");
    let bad_xff = CreateOptions { x_files_factor: 1.5, ..CreateOptions::default() };
    let other = dir.path().join("y.wsp");
    assert!(matches!(create(&other, &[spec(60, 10)], &bad_xff), Err(WhisperError::InvalidXFilesFactor(_))));
    assert!(matches!(
        create(&other, &[spec(60, 10), spec(90, 10)], &CreateOptions::default()),
        Err(WhisperError::InvalidConfiguration(_))
    ));
    assert!(!other.exists(), "no file left behind by a refused create");
}

#[test]
fn create_removes_a_half_made_file() {
    let dir = tmp();
    let path = dir.path().join("half.wsp");
    let err = super::file::create_with(&path, |file| {
        std::io::Write::write_all(&mut &*file, b"partial header")?;
        Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(!path.exists(), "the half-made file is removed");
    // Refused up front, nothing made: a file over whisper's 32-bit offsets.
    let err = create(&path, &[spec(1, u32::MAX)], &CreateOptions::default()).unwrap_err();
    assert!(err.to_string().contains("32-bit"), "{err}");
    assert!(!path.exists());
}

#[test]
fn header_reads_back_with_f32_xff() {
    let dir = tmp();
    let w = new_file(dir.path(), &[spec(60, 1440), spec(3600, 24 * 30)], AggregationMethod::Max, 0.2);
    let h = w.header();
    assert_eq!(h.aggregation, AggregationMethod::Max);
    assert_eq!(h.max_retention, 3600 * 24 * 30);
    assert_eq!(h.xff(), 0.20000000298023224);
    assert_eq!(h.archives[1].offset, 16 + 24 + 1440 * 12);
    assert_eq!(info(w.path()).unwrap(), *h);
}

#[test]
fn fetch_excludes_an_aligned_from_and_includes_until() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 100)], AggregationMethod::Average, 0.5);
    let base = NOW - NOW % 60;
    w.update_many(&[(base - 60, 1.0), (base - 120, 2.0)], NOW).unwrap();
    let r = fetch_all(&mut w, base - 120, base - 60);
    assert_eq!((r.from, r.until, r.step), (base - 60, base, 60));
    assert_eq!(r.values, vec![Some(1.0)]);
}

#[test]
fn fetch_clamps_to_now_and_returns_one_point_for_a_zero_length_range() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(1, 60)], AggregationMethod::Average, 0.5);
    let r = w.fetch(NOW, Some(NOW + 200), NOW, None).unwrap().unwrap();
    assert_eq!((r.from, r.until, r.step), (NOW + 1, NOW + 2, 1));
    assert_eq!(r.values, vec![None]);
}

#[test]
fn fetch_none_for_future_or_expired_ranges_and_errors_for_inverted_ones() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10)], AggregationMethod::Average, 0.5);
    assert_eq!(w.fetch(NOW + 1, Some(NOW + 100), NOW, None).unwrap(), None);
    assert_eq!(w.fetch(NOW - 10_000, Some(NOW - 601), NOW, None).unwrap(), None);
    assert!(w.fetch(NOW - 600, Some(NOW - 600), NOW, None).unwrap().is_some());
    assert!(matches!(w.fetch(NOW, Some(NOW - 1), NOW, None), Err(WhisperError::InvalidTimeInterval { .. })));
}

#[test]
fn fetch_selects_archives_by_age_or_by_name() {
    let dir = tmp();
    let mut w = new_file(
        dir.path(),
        &[spec(1, 60), spec(60, 60), spec(3600, 24), spec(86400, 7)],
        AggregationMethod::Average,
        0.5,
    );
    assert_eq!(fetch_all(&mut w, NOW - 30, NOW).step, 1);
    assert_eq!(fetch_all(&mut w, NOW - 61, NOW).step, 60);
    let whole = fetch_all(&mut w, 0, NOW);
    assert_eq!(whole.step, 86400);
    assert_eq!(whole.values.len(), 7);
    for (name, step) in [("1s", 1), ("1m", 60), ("1h", 3600), ("1d", 86400), ("3600", 3600)] {
        let r = w.fetch(NOW - 100, Some(NOW), NOW, Some(name)).unwrap().unwrap();
        assert_eq!(r.step, step, "{name}");
    }
    assert!(matches!(w.fetch(NOW - 100, Some(NOW), NOW, Some("2s")), Err(WhisperError::InvalidGranularity(_))));
    assert!(matches!(w.fetch(NOW - 100, Some(NOW), NOW, Some("x")), Err(WhisperError::InvalidGranularity(_))));
}

#[test]
fn update_many_resolves_duplicates_as_whisper_py() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 100)], AggregationMethod::Average, 0.5);
    let t = NOW - NOW % 60 - 600;
    // Same interval: the largest raw timestamp wins, whatever the input order.
    // Equal raw timestamps: the first one given wins.
    let points = [(t + 50, 1.0), (t + 10, 2.0), (t + 120, 3.0), (t + 120, 4.0), (t + 180, 5.0)];
    w.update_many(&points, NOW).unwrap();
    let r = fetch_all(&mut w, t - 1, t + 180);
    assert_eq!(r.from, t);
    assert_eq!(r.values, vec![Some(1.0), None, Some(3.0), Some(5.0)]);
}

#[test]
fn update_many_writes_future_points_and_drops_too_old_ones() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10)], AggregationMethod::Average, 0.5);
    let report = w.update_many(&[(NOW + 120, 7.0), (NOW - 600, 1.0), (NOW - 601, 2.0)], NOW).unwrap();
    assert_eq!(report, UpdateReport { points_accepted: 2, points_too_old: 1 });
    let later = NOW + 180;
    let r = w.fetch(NOW + 60, Some(later), later, None).unwrap().unwrap();
    assert_eq!(r.values.iter().flatten().copied().collect::<Vec<_>>(), vec![7.0]);
}

#[test]
fn update_many_keeps_only_the_newest_lap_of_a_long_batch() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10)], AggregationMethod::Average, 0.5);
    let aligned = NOW - NOW % 60;
    let points: Vec<Point> = (0..=10).map(|i| (aligned - 600 + 60 * i, i as f64)).collect();
    w.update_many(&points, aligned).unwrap();
    let r = w.fetch(aligned - 600, Some(aligned), aligned, None).unwrap().unwrap();
    assert_eq!((r.from, r.until), (aligned - 540, aligned + 60));
    let expected: Vec<_> = (1..=10).map(|i| Some(i as f64)).collect();
    assert_eq!(r.values, expected);
}

#[test]
fn propagation_honours_xff_and_method() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 60), spec(300, 24)], AggregationMethod::Sum, 0.5);
    let t = NOW - NOW % 300 - 900;
    // 3 of 5 slots known in the first window (>= 0.5): propagates; 2 of 5 in the next: does not.
    w.update_many(&[(t, 1.0), (t + 60, 2.0), (t + 120, 4.0), (t + 300, 8.0), (t + 360, 16.0)], NOW).unwrap();
    let r = w.fetch(NOW - 5000, Some(NOW), NOW, None).unwrap().unwrap();
    assert_eq!(r.step, 300);
    let known: Vec<(i64, f64)> = r.points().filter_map(|(ts, v)| Some((ts, v?))).collect();
    assert_eq!(known, vec![(t, 7.0)]);
}

#[test]
fn propagation_stops_at_the_first_failed_archive() {
    let dir = tmp();
    let archives = [spec(60, 60), spec(120, 60), spec(600, 60)];
    let mut w = new_file(dir.path(), &archives, AggregationMethod::Average, 1.0);
    let t = NOW - NOW % 600 - 1200;
    // Every 120 s window is full, but each 600 s window of 120 s slots misses one: the third
    // archive receives nothing.
    let points: Vec<Point> = (0..8).map(|i| (t + 60 * i, 1.0)).collect();
    w.update_many(&points, NOW).unwrap();
    let mid = w.fetch(NOW - 3600 * 2, Some(NOW), NOW, Some("120")).unwrap().unwrap();
    assert_eq!(mid.values.iter().flatten().count(), 4);
    let low = w.fetch(NOW - 3600 * 9, Some(NOW), NOW, None).unwrap().unwrap();
    assert_eq!(low.step, 600);
    assert_eq!(low.values.iter().flatten().count(), 0);
}

#[test]
fn update_enforces_strict_age_and_propagates() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10), spec(600, 10)], AggregationMethod::Last, 0.0);
    assert!(matches!(w.update(1.0, Some(NOW + 1), NOW), Err(WhisperError::TimestampNotCovered { .. })));
    assert!(matches!(w.update(1.0, Some(NOW - 6000), NOW), Err(WhisperError::TimestampNotCovered { .. })));
    w.update(3.5, Some(NOW - 700), NOW).unwrap();
    w.update(4.5, None, NOW).unwrap();
    let recent = fetch_all(&mut w, NOW - 60, NOW);
    assert_eq!(recent.values, vec![Some(4.5)]);
    let old = fetch_all(&mut w, NOW - 5000, NOW);
    assert_eq!(old.step, 600);
    assert!(old.values.contains(&Some(3.5)));
    assert!(old.values.contains(&Some(4.5)));
}

#[test]
fn timestamps_that_do_not_fit_u32_are_refused_before_any_write() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10)], AggregationMethod::Average, 0.5);
    let before = std::fs::read(w.path()).unwrap();
    let huge = i64::from(u32::MAX) + 60;
    assert!(matches!(w.update_many(&[(NOW, 1.0), (huge, 2.0)], NOW), Err(WhisperError::TimestampOutOfRange(_))));
    assert_eq!(std::fs::read(w.path()).unwrap(), before);
}

#[test]
fn set_aggregation_rewrites_only_the_metadata() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(60, 10)], AggregationMethod::Average, 0.5);
    w.update_many(&[(NOW, 1.0)], NOW).unwrap();
    let before = std::fs::read(w.path()).unwrap();
    assert_eq!(w.set_aggregation(Some(AggregationMethod::Max), Some(0.2)).unwrap(), (AggregationMethod::Average, 0.5));
    let after = std::fs::read(w.path()).unwrap();
    assert_eq!(before[16..], after[16..]);
    let h = info(w.path()).unwrap();
    assert_eq!((h.aggregation, h.xff()), (AggregationMethod::Max, 0.20000000298023224));
    assert!(matches!(w.set_aggregation(None, Some(-0.1)), Err(WhisperError::InvalidXFilesFactor(_))));
    assert_eq!(w.set_aggregation(None, None).unwrap().0, AggregationMethod::Max);
}

fn corrupt_copy(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("corrupt.wsp");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn truncated_and_corrupt_files_are_typed_errors() {
    let dir = tmp();
    let w = new_file(dir.path(), &[spec(60, 10), spec(600, 10)], AggregationMethod::Average, 0.5);
    let good = std::fs::read(w.path()).unwrap();
    for cut in [0, 5, 16, 30, 40, 100, good.len() - 1] {
        let path = corrupt_copy(dir.path(), &good[..cut]);
        let err = Whisper::open(&path, WriteOptions::default()).unwrap_err();
        assert!(matches!(err, WhisperError::Corrupt { .. }), "cut at {cut}: {err}");
    }
    assert!(matches!(info(&dir.path().join("missing.wsp")), Err(WhisperError::Io { .. })));
}

#[test]
fn resize_keeps_data_and_aggregates_into_coarser_archives() {
    let dir = tmp();
    let mut w = new_file(dir.path(), &[spec(10, 360)], AggregationMethod::Average, 0.5);
    let t = NOW - NOW % 60 - 600;
    let points: Vec<Point> = (0..30).map(|i| (t + 10 * i, i as f64)).collect();
    w.update_many(&points, NOW).unwrap();
    let path = w.path().to_path_buf();
    drop(w);

    let plain = dir.path().join("plain.wsp");
    let opts = ResizeOptions { new_file: Some(plain.clone()), ..ResizeOptions::default() };
    resize(&path, &[spec(10, 360), spec(60, 120)], &opts, NOW).unwrap();
    let mut p = Whisper::open_read_only(&plain).unwrap();
    assert_eq!(fetch_all(&mut p, t - 1, t + 290).values, (0..30).map(|i| Some(i as f64)).collect::<Vec<_>>());
    let coarse = p.fetch(t - 1, Some(t + 240), NOW, Some("1m")).unwrap().unwrap();
    assert_eq!(coarse.values[..4], [Some(2.5), Some(8.5), Some(14.5), Some(20.5)]);

    // Into a coarser first archive: the default keeps the last point of each minute, the
    // aggregate mode averages them.
    resize(&path, &[spec(60, 60)], &ResizeOptions::default(), NOW).unwrap();
    let mut last = Whisper::open_read_only(&path).unwrap();
    assert_eq!(fetch_all(&mut last, t - 1, t + 120).values[..2], [Some(5.0), Some(11.0)]);
    assert!(dir.path().join("m.wsp.bak").exists());
    let opts = ResizeOptions { aggregate: true, no_backup: true, ..ResizeOptions::default() };
    std::fs::rename(dir.path().join("m.wsp.bak"), &path).unwrap();
    resize(&path, &[spec(60, 60)], &opts, NOW).unwrap();
    let mut avg = Whisper::open_read_only(&path).unwrap();
    assert_eq!(fetch_all(&mut avg, t - 1, t + 120).values[..2], [Some(2.5), Some(8.5)]);
    assert!(!dir.path().join("m.wsp.bak").exists());
}

#[test]
fn lock_autoflush_and_fadvise_options_write_the_same_data_and_release_the_lock() {
    use rustix::fs::{flock, FlockOperation};
    let dir = tmp();
    let path = dir.path().join("locked.wsp");
    let all = WriteOptions { lock_writes: true, autoflush: true, fadvise_random: true, mmap: true };
    create(&path, &[spec(60, 10), spec(300, 10)], &CreateOptions { write: all, ..CreateOptions::default() }).unwrap();
    let mut w = Whisper::open(&path, all).unwrap();
    w.update_many(&[(NOW - 60, 1.0), (NOW, 2.0)], NOW).unwrap();
    w.update(3.0, Some(NOW - 120), NOW).unwrap();
    w.set_aggregation(Some(AggregationMethod::Sum), None).unwrap();
    let values = fetch_all(&mut w, NOW - 180, NOW).values;
    assert_eq!(values.iter().flatten().count(), 3);
    // Each operation released its lock: another descriptor can take it without waiting.
    let other = std::fs::File::open(&path).unwrap();
    flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
    // While that descriptor holds the lock, a locked write waits for it.
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        w.update_many(&[(NOW - 240, 4.0)], NOW).unwrap();
        tx.send(()).unwrap();
    });
    let waited = rx.recv_timeout(std::time::Duration::from_millis(200));
    assert!(waited.is_err(), "the write went ahead while another process held the lock");
    flock(&other, FlockOperation::Unlock).unwrap();
    rx.recv().unwrap();
    writer.join().unwrap();
}

/// Runs the same operations through a mapped and an unmapped handle on two copies of a file.
fn mapped_and_unmapped(dir: &Path, archives: &[ArchiveSpec]) -> (Whisper, Whisper) {
    let opts = CreateOptions { aggregation: AggregationMethod::Max, ..CreateOptions::default() };
    let (a, b) = (dir.join("mapped.wsp"), dir.join("plain.wsp"));
    create(&a, archives, &opts).unwrap();
    create(&b, archives, &opts).unwrap();
    let mapped = Whisper::open(&a, WriteOptions { mmap: true, ..WriteOptions::default() }).unwrap();
    let plain = Whisper::open(&b, WriteOptions::default()).unwrap();
    assert!(!plain.is_mapped(), "mapping is only ever asked for");
    let here = io::overwrites_in_place(&std::fs::File::open(&a).unwrap());
    assert_eq!(mapped.is_mapped(), here, "a zero-filled file is mapped exactly where overwrites are in place");
    (mapped, plain)
}

#[test]
fn a_mapped_handle_writes_the_same_bytes_as_pwrite() {
    let dir = tmp();
    let (mut mapped, mut plain) = mapped_and_unmapped(dir.path(), &[spec(10, 30), spec(60, 20), spec(300, 10)]);
    let mut now = NOW;
    for round in 0..40i64 {
        now += 37;
        let points: Vec<Point> = (0..(round % 7 + 1)).map(|i| (now - i * 13, (round * 10 + i) as f64 / 3.0)).collect();
        mapped.update_many(&points, now).unwrap();
        plain.update_many(&points, now).unwrap();
        mapped.update(round as f64, Some(now - 5), now).unwrap();
        plain.update(round as f64, Some(now - 5), now).unwrap();
        let (m, p) = (fetch_all(&mut mapped, now - 3000, now), fetch_all(&mut plain, now - 3000, now));
        assert_eq!(format!("{:?}", m.values), format!("{:?}", p.values));
    }
    mapped.set_aggregation(Some(AggregationMethod::Min), Some(0.25)).unwrap();
    plain.set_aggregation(Some(AggregationMethod::Min), Some(0.25)).unwrap();
    let (a, b) = (mapped.path().to_path_buf(), plain.path().to_path_buf());
    drop((mapped, plain));
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "byte-identical files");
}

#[test]
fn a_mapped_handle_sees_writes_made_through_other_descriptors() {
    let dir = tmp();
    let (mut mapped, _) = mapped_and_unmapped(dir.path(), &[spec(60, 10)]);
    let mut other = Whisper::open(mapped.path(), WriteOptions::default()).unwrap();
    other.update_many(&[(NOW - 60, 1.5)], NOW).unwrap();
    assert_eq!(fetch_all(&mut mapped, NOW - 120, NOW).values, [Some(1.5), None]);
    mapped.update_many(&[(NOW, 2.5)], NOW).unwrap();
    assert_eq!(fetch_all(&mut other, NOW - 120, NOW).values, [Some(1.5), Some(2.5)]);
}

#[test]
fn files_with_holes_are_never_mapped() {
    let dir = tmp();
    let path = dir.path().join("sparse.wsp");
    let sparse = CreateOptions { allocation: Allocation::Sparse, ..CreateOptions::default() };
    create(&path, &[spec(60, 100_000)], &sparse).unwrap();
    let mut w = Whisper::open(&path, WriteOptions { mmap: true, ..WriteOptions::default() }).unwrap();
    assert!(!w.is_mapped());
    w.update_many(&[(NOW, 4.0)], NOW).unwrap();
    assert_eq!(fetch_all(&mut w, NOW - 60, NOW).values, [Some(4.0)]);
}

#[test]
fn a_file_truncated_under_its_mapping_gives_errors_not_faults() {
    let dir = tmp();
    let (mut mapped, _) = mapped_and_unmapped(dir.path(), &[spec(60, 1000)]);
    if !mapped.is_mapped() {
        return; // nothing to show on a file system where files are never mapped
    }
    mapped.update_many(&[(NOW, 1.0)], NOW).unwrap();
    std::fs::OpenOptions::new().write(true).open(mapped.path()).unwrap().set_len(100).unwrap();
    assert!(mapped.refresh_metadata().is_err(), "the header now claims bytes past the end");
    assert!(!mapped.is_mapped(), "the mapping is dropped once the file shrank");
    assert!(mapped.fetch(NOW - 600, Some(NOW), NOW, None).is_err(), "a read past the end is an error");
}
