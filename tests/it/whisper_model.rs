//! Property tests of the whisper engine against an in-memory model of whisper's semantics.
//!
//! The model stores each archive as a map from slot class (`interval / step mod points`) to the
//! (interval, value) last written there. That is what whisper's ring means to every reader, with
//! none of the engine's machinery: no base interval, no byte offsets, no runs split at the end of
//! the ring, no wrapped window reads. Any disagreement is a bug in that machinery (or the model).

use std::collections::HashMap;

use carbyne::whisper::{create, AggregationMethod, ArchiveSpec, CreateOptions, Point, Whisper, WriteOptions};
use proptest::prelude::*;

struct ModelArchive {
    step: i64,
    points: i64,
    slots: HashMap<i64, (i64, f64)>,
}

impl ModelArchive {
    fn class(&self, t: i64) -> i64 {
        t.div_euclid(self.step).rem_euclid(self.points)
    }
    fn get(&self, t: i64) -> Option<f64> {
        self.slots.get(&self.class(t)).filter(|(ts, _)| *ts == t).map(|(_, v)| *v)
    }
    fn put(&mut self, t: i64, v: f64) {
        let class = self.class(t);
        self.slots.insert(class, (t, v));
    }
    fn align(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.step)
    }
    fn retention(&self) -> i64 {
        self.step * self.points
    }
}

struct Model {
    archives: Vec<ModelArchive>,
    method: AggregationMethod,
    xff: f64,
}

impl Model {
    fn new(specs: &[ArchiveSpec], method: AggregationMethod, xff: f64) -> Model {
        let mut specs = specs.to_vec();
        specs.sort_by_key(|s| s.seconds_per_point);
        let archives = specs
            .iter()
            .map(|s| ModelArchive {
                step: i64::from(s.seconds_per_point),
                points: i64::from(s.points),
                slots: HashMap::new(),
            })
            .collect();
        Model { archives, method, xff: f64::from(xff as f32) }
    }

    /// whisper's update_many: newest first through the archives, each taking what it covers.
    fn update_many(&mut self, points: &[Point], now: i64) {
        let mut sorted = points.to_vec();
        sorted.sort_by_key(|p| std::cmp::Reverse(p.0));
        let mut idx = 0;
        let mut batch: Vec<Point> = Vec::new();
        for p in sorted {
            while self.archives[idx].retention() < now - p.0 {
                self.write_archive(idx, &batch);
                batch.clear();
                idx += 1;
                if idx == self.archives.len() {
                    return;
                }
            }
            batch.push(p);
        }
        self.write_archive(idx, &batch);
    }

    fn write_archive(&mut self, idx: usize, newest_first: &[Point]) {
        if newest_first.is_empty() {
            return;
        }
        // Chronological order; for one interval the last in that order wins.
        let mut by_interval: Vec<(i64, f64)> = Vec::new();
        for &(ts, v) in newest_first.iter().rev() {
            let t = self.archives[idx].align(ts);
            match by_interval.last_mut() {
                Some(last) if last.0 == t => last.1 = v,
                _ => by_interval.push((t, v)),
            }
        }
        for &(t, v) in &by_interval {
            self.archives[idx].put(t, v);
        }
        let mut higher = idx;
        for lower in idx + 1..self.archives.len() {
            let mut intervals: Vec<i64> = by_interval.iter().map(|p| self.archives[lower].align(p.0)).collect();
            intervals.dedup();
            let mut any = false;
            for t in intervals {
                any |= self.propagate(t, higher, lower);
            }
            if !any {
                break;
            }
            higher = lower;
        }
    }

    fn propagate(&mut self, t: i64, higher: usize, lower: usize) -> bool {
        let (h, l) = (&self.archives[higher], &self.archives[lower]);
        let n = l.step / h.step;
        let window: Vec<Option<f64>> = (0..n).map(|i| h.get(t + i * h.step)).collect();
        let known = window.iter().flatten().count();
        if known == 0 || (known as f64 / n as f64) < self.xff {
            return false;
        }
        let value = self.method.aggregate(&window);
        self.archives[lower].put(t, value);
        true
    }

    fn fetch_archive(&self, idx: usize, from: i64, until: i64) -> (i64, i64, Vec<Option<f64>>) {
        let a = &self.archives[idx];
        let from_i = a.align(from) + a.step;
        let mut until_i = a.align(until) + a.step;
        if from_i == until_i {
            until_i += a.step;
        }
        let values = (0..(until_i - from_i) / a.step).map(|i| a.get(from_i + i * a.step)).collect();
        (from_i, until_i, values)
    }
}

fn bits(values: &[Option<f64>]) -> Vec<Option<u64>> {
    values.iter().map(|v| v.map(f64::to_bits)).collect()
}

/// A valid archive list: steps multiply up, enough points to consolidate, retention growing.
fn archives() -> impl Strategy<Value = Vec<ArchiveSpec>> {
    (prop::sample::select(vec![1u32, 5, 10, 60]), prop::collection::vec((2u32..=6, 0u32..=12), 0..=3), 2u32..=16)
        .prop_map(|(first_step, rest, first_points)| {
            let mut specs = vec![ArchiveSpec { seconds_per_point: first_step, points: first_points }];
            for (factor, extra) in rest {
                let prev = *specs.last().unwrap_or(&specs[0]);
                // Retention must grow: points > prev.points / factor; and prev must hold a window.
                let points = prev.points / factor + 1 + extra;
                if let Some(p) = specs.last_mut() {
                    p.points = p.points.max(factor);
                }
                specs.push(ArchiveSpec { seconds_per_point: prev.seconds_per_point * factor, points });
            }
            specs
        })
}

#[derive(Debug, Clone)]
struct Batch {
    now_advance: i64,
    points: Vec<(i64, i16)>,
}

fn batches() -> impl Strategy<Value = Vec<Batch>> {
    let point = (-1200i64..=40, -20i16..=20);
    let batch = (0i64..=400, prop::collection::vec(point, 0..40))
        .prop_map(|(now_advance, points)| Batch { now_advance, points });
    prop::collection::vec(batch, 1..6)
}

fn method() -> impl Strategy<Value = AggregationMethod> {
    prop::sample::select(AggregationMethod::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn update_many_and_fetch_match_the_model(
        specs in archives(),
        method in method(),
        xff in prop::sample::select(vec![0.0, 0.3, 0.5, 1.0]),
        scale in prop::sample::select(vec![1i64, 7, 60]),
        batches in batches(),
        mmap in any::<bool>(),
    ) {
        let mut sorted = specs.clone();
        prop_assume!(carbyne::whisper::validate_archive_list(&mut sorted).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wsp");
        let opts = CreateOptions { aggregation: method, x_files_factor: xff, ..CreateOptions::default() };
        create(&path, &specs, &opts).unwrap();
        let mut file = Whisper::open(&path, WriteOptions { mmap, ..WriteOptions::default() }).unwrap();
        let mut model = Model::new(&specs, method, xff);
        let mut now = 1_700_000_000i64;
        for batch in &batches {
            now += batch.now_advance * scale;
            // Offsets scaled so that small and large archives both see wrap-around and drops.
            let points: Vec<Point> = batch.points.iter().map(|&(off, v)| (now + off * scale, f64::from(v) / 4.0)).collect();
            file.update_many(&points, now).unwrap();
            model.update_many(&points, now);
            for (idx, a) in model.archives.iter().enumerate() {
                let from = now - a.retention() + a.step;
                let got = file.fetch(from, Some(now), now, Some(&a.step.to_string())).unwrap().unwrap();
                let (f, u, values) = model.fetch_archive(idx, from, now);
                prop_assert_eq!((got.from, got.until), (f, u), "archive {} time range", idx);
                prop_assert_eq!(bits(&got.values), bits(&values), "archive {} values", idx);
            }
        }
    }

    #[test]
    fn fetch_picks_the_archive_and_range_as_whisper(
        specs in archives(),
        points in prop::collection::vec((-1200i64..=0, -20i16..=20), 1..60),
        from_age in 0i64..5000,
        span in 0i64..5000,
    ) {
        let mut sorted = specs.clone();
        prop_assume!(carbyne::whisper::validate_archive_list(&mut sorted).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wsp");
        create(&path, &specs, &CreateOptions::default()).unwrap();
        let mut file = Whisper::open(&path, WriteOptions::default()).unwrap();
        let mut model = Model::new(&specs, AggregationMethod::Average, 0.5);
        let now = 1_700_000_123i64;
        let pts: Vec<Point> = points.iter().map(|&(off, v)| (now + off * 7, f64::from(v))).collect();
        file.update_many(&pts, now).unwrap();
        model.update_many(&pts, now);
        let (from, until) = (now - from_age, now - from_age + span);
        let max_retention = model.archives.iter().map(ModelArchive::retention).max().unwrap();
        let got = file.fetch(from, Some(until), now, None).unwrap();
        if from > now || until < now - max_retention {
            prop_assert!(got.is_none());
        } else {
            let got = got.unwrap();
            let (cf, cu) = (from.max(now - max_retention), until.min(now));
            let idx = model.archives.iter().position(|a| a.retention() >= now - cf).unwrap();
            let (f, u, values) = model.fetch_archive(idx, cf, cu);
            prop_assert_eq!((got.from, got.until, got.step), (f, u, model.archives[idx].step));
            prop_assert_eq!(bits(&got.values), bits(&values));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..400), from_age in 0i64..100_000, mmap in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.wsp");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(mut w) = Whisper::open(&path, WriteOptions { mmap, ..WriteOptions::default() }) {
            let now = 1_700_000_000;
            let _ = w.fetch(now - from_age, None, now, None);
            let _ = w.update_many(&[(now - from_age, 1.0), (now, 2.0)], now);
            let _ = w.update(3.0, Some(now - from_age), now);
            prop_assert!(std::fs::metadata(&path).unwrap().len() <= bytes.len().max(400) as u64, "no write beyond the archives");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Valid files with a few header bytes changed: every operation returns a value or a typed
    /// error, and nothing is written past the file's end (the header is validated first).
    #[test]
    fn mutated_headers_never_panic_or_grow_the_file(
        edits in prop::collection::vec((0usize..64, any::<u8>()), 1..6),
        from_age in 0i64..200_000,
        mmap in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wsp");
        let specs = [ArchiveSpec { seconds_per_point: 1, points: 4 }, ArchiveSpec { seconds_per_point: 2, points: 4 }, ArchiveSpec { seconds_per_point: 4, points: 4 }];
        create(&path, &specs, &CreateOptions::default()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, b) in edits {
            bytes[at] = b;
        }
        std::fs::write(&path, &bytes).unwrap();
        let now = 1_700_000_000;
        if let Ok(mut w) = Whisper::open(&path, WriteOptions { mmap, ..WriteOptions::default() }) {
            let _ = w.fetch(now - from_age, None, now, None);
            let _ = w.fetch(now - from_age, None, now, Some("2s"));
            let _ = w.update_many(&[(now - from_age, 1.0), (now, 2.0), (now - 1, 3.0)], now);
            let _ = w.update(3.0, Some(now - from_age), now);
        }
        prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }
}
