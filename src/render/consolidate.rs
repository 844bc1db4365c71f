//! maxDataPoints: graphite-web's consolidation of the JSON output, reproduced exactly (what
//! Grafana users see today), its off-by-one included.
//!
//! With n = (latest end − earliest start) / step values per series and maxDataPoints < n, each
//! series gets valuesPerPoint = ⌈n / maxDataPoints⌉. Its start is "nudged" by
//! `bucket + start mod step − start mod bucket` (bucket = valuesPerPoint × step), but only
//! `nudge / step − 1` leading values are dropped: each output point is labelled one raw step
//! later than its first value, and an aligned start still loses a whole bucket.
//! maxDataPoints = 1 reduces the whole series to one value; 0 (which makes graphite-web divide
//! by zero) means no limit.

use std::cmp::Ordering;

use super::series::{Consolidation, Series};
use crate::render::functions::aggregate::Agg;

/// Applies maxDataPoints to every series of a response, as graphite-web's JSON view does.
pub fn max_data_points(series: &mut [Series], max_points: u64) {
    if max_points == 0 || series.is_empty() {
        return;
    }
    let start = series.iter().map(|s| s.start).min().unwrap_or(0);
    let end = series.iter().map(Series::shown_end).max().unwrap_or(0);
    let time_range = (end - start) as f64;
    for s in series.iter_mut() {
        if max_points == 1 {
            s.values_per_point = s.values.len().max(1);
            continue;
        }
        let n = time_range / s.step as f64;
        if (max_points as f64) < n {
            let per_point = (n / max_points as f64).ceil() as i64;
            let bucket = per_point * s.step;
            let nudge = bucket + s.start.rem_euclid(s.step) - s.start.rem_euclid(bucket);
            s.start += nudge;
            let lose = (nudge / s.step - 1).clamp(0, s.values.len() as i64) as usize;
            s.values.drain(..lose);
            s.values_per_point = per_point as usize;
        }
    }
}

/// The values of `s` as graphite-web iterates them: consolidated by `values_per_point` with
/// the series' function and xFilesFactor (a trailing partial bucket still gives a value).
pub fn consolidated(s: &Series) -> Vec<Option<f64>> {
    let per = s.values_per_point.max(1);
    if per == 1 {
        return s.values.clone();
    }
    s.values.chunks(per).map(|chunk| bucket(s.consolidation, chunk, per, s.x_files_factor)).collect()
}

/// One bucket of `per` values consolidated with `f`, as graphite-web's consolidating generator
/// does: None unless `nonNull / per >= xff` (a NaN xFilesFactor refuses every bucket, as
/// Python's comparison does); the short last bucket is still judged against `per`.
pub(crate) fn bucket(f: Consolidation, chunk: &[Option<f64>], per: usize, xff: f64) -> Option<f64> {
    let non_null = chunk.iter().flatten().count();
    let ratio = non_null as f64 / per as f64;
    if non_null == 0 || !matches!(ratio.partial_cmp(&xff), Some(Ordering::Greater | Ordering::Equal)) {
        return None;
    }
    let agg = match f {
        Consolidation::First => return chunk.iter().flatten().next().copied(),
        Consolidation::Average => Agg::Average,
        Consolidation::AvgZero => Agg::AvgZero,
        Consolidation::Sum => Agg::Sum,
        Consolidation::Min => Agg::Min,
        Consolidation::Max => Agg::Max,
        Consolidation::Last => Agg::Last,
    };
    agg.apply(chunk)
}

/// graphite-web's `datapoints()`: (value, timestamp) pairs, timestamps from `start` by
/// `step × valuesPerPoint` up to `end` inclusive, zipped with the consolidated values (the
/// shorter one ends the list).
pub fn datapoints(s: &Series) -> Vec<(Option<f64>, i64)> {
    let stride = s.step * s.values_per_point.max(1) as i64;
    let stamps = (0..).map(|i| s.start + i * stride).take_while(|t| *t <= s.shown_end());
    consolidated(s).into_iter().zip(stamps).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, start: i64, step: i64) -> Series {
        Series::new("s", start, step, (0..n).map(|i| Some(i as f64)).collect())
    }

    #[test]
    fn the_reference_example_with_its_off_by_one() {
        // values 0..19 at step 60 from t=0, maxDataPoints 4 → (6,300), (11,600), (16,900), (19,1200)
        let mut all = vec![series(20, 0, 60)];
        max_data_points(&mut all, 4);
        let got = datapoints(&all[0]);
        assert_eq!(got, vec![(Some(6.0), 300), (Some(11.0), 600), (Some(16.0), 900), (Some(19.0), 1200)]);
    }

    #[test]
    fn averages_by_default_and_honours_xff() {
        let mut s = Series::new("s", 0, 10, vec![Some(1.0), None, Some(3.0), None, None, None, Some(5.0)]);
        s.values_per_point = 2;
        assert_eq!(consolidated(&s), vec![Some(1.0), Some(3.0), None, Some(5.0)]);
        s.x_files_factor = 0.6;
        assert_eq!(consolidated(&s), vec![None, None, None, None], "the last bucket counts as a full one");
        s.consolidation = Consolidation::AvgZero;
        s.x_files_factor = 0.0;
        assert_eq!(consolidated(&s), vec![Some(0.5), Some(1.5), None, Some(5.0)]);
    }

    #[test]
    fn one_point_and_no_limit() {
        let mut all = vec![series(10, 0, 60)];
        max_data_points(&mut all, 1);
        assert_eq!(datapoints(&all[0]), vec![(Some(4.5), 0)]);
        let mut all = vec![series(10, 0, 60)];
        max_data_points(&mut all, 0);
        assert_eq!(datapoints(&all[0]).len(), 10);
        let mut all = vec![series(10, 0, 60)];
        max_data_points(&mut all, 100);
        assert_eq!(datapoints(&all[0]).len(), 10, "fewer values than the limit: untouched");
    }
}
