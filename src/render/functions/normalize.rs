//! graphite-web's `normalize`, which puts several series on one time grid before they are
//! combined row by row, and the naming and tagging every combiner shares
//! (`formatPathExpressions`, the tags `aggregate` gives its result).
//!
//! What normalize does, as graphite-web 1.1.8 does it (`render/functions.py`, `datalib.py`):
//! the common step is the least common multiple of the steps; each series is consolidated to it
//! (`valuesPerPoint = step / its step`) with its own consolidation function and xFilesFactor,
//! as `TimeSeries.__consolidatingGenerator` does: a bucket of `valuesPerPoint` values gives a
//! value when it holds some non-null and `nonNull / valuesPerPoint >= xFilesFactor`, and a
//! trailing partial bucket is still emitted; a series already at the common step keeps its
//! values untouched. The start is the earliest start. Rows are then aligned **by index**, not
//! by time: row `i` holds value `i` of every consolidated series, None past a series' end (so
//! series starting at different times are combined shifted, as graphite-web combines them).
//!
//! One deliberate difference: graphite-web sets the end to the latest end moved back to a whole
//! number of steps from the start, which can disagree with the number of rows (its JSON output
//! then shows as many points as there are values); a [`Series`] must hold exactly
//! `(end - start) / step` values, so a combined series ends `rows × step` after its start.
//! Every point graphite-web shows, with its timestamp, is the same.
//!
//! Leaves out: the row aggregations themselves ([`super::aggregate::Agg`]).
//!
//! Bounded: a common step that overflows, or that is longer than both the largest step and the
//! time the series span together (steps of 60 and 70 s over two minutes), is a bad request:
//! such a grid would hold a single meaningless row.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::render::consolidate::bucket;
use crate::render::series::{tags_of, Series};
use crate::render::RenderError;

/// Several series on one grid, ready to be combined row by row.
#[derive(Debug)]
pub(super) struct Normalized<'a> {
    /// The earliest start of the inputs.
    pub start: i64,
    /// The common step: the least common multiple of the inputs' steps; `step > 0`.
    pub step: i64,
    /// Each input's values consolidated to `step`, in input order (borrowed when the input is
    /// already at `step`). Lengths may differ.
    pub columns: Vec<Cow<'a, [Option<f64>]>>,
    /// Rows: the longest column's length.
    pub len: usize,
}

impl Normalized<'_> {
    /// Row `i`: value `i` of every column, None where a column is shorter.
    pub fn row_into(&self, i: usize, row: &mut Vec<Option<f64>>) {
        row.clear();
        row.extend(self.columns.iter().map(|c| c.get(i).copied().flatten()));
    }

    /// Per row: the sum of its values in column order (exactly the row-wise Python sum, but
    /// read column by column, which keeps memory access sequential) and how many it has.
    pub fn sums_and_counts(&self) -> (Vec<f64>, Vec<u32>) {
        let mut sums = vec![0.0; self.len];
        let mut counts = vec![0u32; self.len];
        for column in &self.columns {
            for ((sum, count), v) in sums.iter_mut().zip(counts.iter_mut()).zip(column.iter()) {
                if let Some(v) = v {
                    *sum += v;
                    *count += 1;
                }
            }
        }
        (sums, counts)
    }

    /// `f` of every row, in order (one row buffer for all of them).
    pub fn map_rows(&self, mut f: impl FnMut(&[Option<f64>]) -> Option<f64>) -> Vec<Option<f64>> {
        let mut row = Vec::with_capacity(self.columns.len());
        (0..self.len)
            .map(|i| {
                self.row_into(i, &mut row);
                f(&row)
            })
            .collect()
    }
}

/// graphite-web's `normalize` of `series` (see the module documentation); None for no series
/// (graphite-web's `NormalizeEmptyResultError`, which makes the calling function return nothing).
pub(super) fn normalize<'a>(series: &[&'a Series]) -> Result<Option<Normalized<'a>>, RenderError> {
    let Some(first) = series.first() else { return Ok(None) };
    let mut step = first.step;
    for s in series {
        if s.step <= 0 {
            return Err(RenderError::Internal(format!("{} has step {}", s.name, s.step)));
        }
        step = lcm(step, s.step).ok_or_else(|| too_long(series, None))?;
    }
    let start = series.iter().map(|s| s.start).min().unwrap_or(first.start);
    let end_max = series.iter().map(|s| s.end).max().unwrap_or(first.end);
    let step_max = series.iter().map(|s| s.step).max().unwrap_or(step);
    let span = end_max.saturating_sub(start);
    if step > step_max && step > span {
        return Err(too_long(series, Some((step, span))));
    }
    let columns: Vec<Cow<'a, [Option<f64>]>> =
        series.iter().map(|s| consolidate(s, (step / s.step) as usize)).collect();
    let len = columns.iter().map(|c| c.len()).max().unwrap_or(0);
    Ok(Some(Normalized { start, step, columns, len }))
}

fn too_long(series: &[&Series], step_span: Option<(i64, i64)>) -> RenderError {
    let mut steps: Vec<i64> = series.iter().map(|s| s.step).collect();
    steps.sort_unstable();
    steps.dedup();
    let steps: Vec<String> = steps.iter().map(i64::to_string).collect();
    let why = match step_span {
        Some((step, span)) => format!("is {step} s, longer than the {span} s they span"),
        None => "overflows".to_string(),
    };
    RenderError::bad(format!("the common step of series with steps {} s {why}", steps.join(", ")))
}

/// graphite-web's `lcm` (None on overflow).
fn lcm(a: i64, b: i64) -> Option<i64> {
    if a == b {
        return Some(a);
    }
    (a / gcd(a, b)).checked_mul(b)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `s` as graphite-web iterates it with `valuesPerPoint = vpp` (see the module documentation).
fn consolidate(s: &Series, vpp: usize) -> Cow<'_, [Option<f64>]> {
    if vpp <= 1 {
        return Cow::Borrowed(&s.values);
    }
    Cow::Owned(s.values.chunks(vpp).map(|chunk| bucket(s.consolidation, chunk, vpp, s.x_files_factor)).collect())
}

/// graphite-web's `xffValues`: whether a row has enough non-null values to be aggregated
/// (`nonNull / len(row) >= xFilesFactor`; a row with no value never has).
pub(super) fn xff_allows(row: &[Option<f64>], xff: f64) -> bool {
    let non_null = row.iter().flatten().count();
    non_null > 0 && non_null as f64 / row.len() as f64 >= xff
}

/// graphite-web's `formatPathExpressions`: the distinct path expressions, in first-seen order,
/// joined by `,`.
pub(super) fn format_path_expressions<'s>(series: impl IntoIterator<Item = &'s Series>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in series {
        if !seen.contains(&s.path_expression.as_str()) {
            seen.push(&s.path_expression);
        }
    }
    seen.join(",")
}

/// The tags `aggregate` gives its result: those every input has with the same value, `name`
/// set to `name` when the inputs disagree on it, and `aggregatedBy` = `func` (the aggregation
/// name as called, `Series` suffix stripped: `avg` stays `avg`).
pub(super) fn aggregated_tags(series: &[&Series], func: &str, name: &str) -> BTreeMap<String, String> {
    let mut tags = series.first().map(|s| s.tags.clone()).unwrap_or_default();
    for s in series.iter().skip(1) {
        tags.retain(|k, v| s.tags.get(k) == Some(v));
    }
    tags.entry("name".to_string()).or_insert_with(|| name.to_string());
    tags.insert("aggregatedBy".to_string(), func.to_string());
    tags
}

/// The tags graphite-web's `TimeSeries` gives a new series named `name` when none are given:
/// `{name}` alone for a function-wrapped name (`^[a-z]+\(.+\)$`, any case), the tags parsed
/// from the name otherwise.
pub(super) fn default_tags(name: &str) -> BTreeMap<String, String> {
    if looks_like_a_call(name) {
        BTreeMap::from([("name".to_string(), name.to_string())])
    } else {
        tags_of(name)
    }
}

fn looks_like_a_call(name: &str) -> bool {
    let Some(open) = name.find('(') else { return false };
    let (head, rest) = name.split_at(open);
    !head.is_empty()
        && head.bytes().all(|c| c.is_ascii_alphabetic())
        && rest.len() >= 3
        && rest.ends_with(')')
        && !rest.contains('\n')
}

/// A new series as graphite-web's combiners build one: named `name` (also its path
/// expression), on the grid (`start`, `step`) with `values`, `tags`, the given xFilesFactor and
/// the default consolidation.
pub(super) fn combined(
    name: String,
    tags: BTreeMap<String, String>,
    start: i64,
    step: i64,
    values: Vec<Option<f64>>,
    x_files_factor: f64,
) -> Series {
    let mut series = Series::new("", start, step, values);
    series.path_expression.clone_from(&name);
    series.name = name;
    series.tags = tags;
    series.x_files_factor = x_files_factor;
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::functions::aggregate::Agg;
    use crate::render::series::Consolidation;

    fn s(name: &str, start: i64, step: i64, values: &[Option<f64>]) -> Series {
        Series::new(name, start, step, values.to_vec())
    }

    #[test]
    fn one_step_keeps_values_and_aligns_rows_by_index() {
        let a = s("a", 60, 60, &[Some(1.0), None, Some(3.0)]);
        let b = s("b", 120, 60, &[Some(10.0)]);
        let n = normalize(&[&a, &b]).unwrap().unwrap();
        assert_eq!((n.start, n.step, n.len), (60, 60, 3));
        assert!(matches!(n.columns[0], Cow::Borrowed(_)));
        assert_eq!(n.map_rows(|row| Agg::Sum.apply(row)), vec![Some(11.0), None, Some(3.0)]);
    }

    #[test]
    fn mixed_steps_consolidate_to_the_lcm_with_each_series_function_and_xff() {
        // graphite-web: 7 values at 60 s and 3 at 120 s give 4 rows at 120 s, the trailing
        // partial bucket included.
        let a = s("m.x", 0, 60, &[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), Some(6.0), Some(7.0)]);
        let b = s("m.y", 0, 120, &[Some(10.0), None, Some(30.0)]);
        let n = normalize(&[&a, &b]).unwrap().unwrap();
        assert_eq!((n.start, n.step, n.len), (0, 120, 4));
        assert_eq!(n.columns[0].as_ref(), &[Some(1.5), Some(3.5), Some(5.5), Some(7.0)]);
        assert_eq!(n.map_rows(|row| Agg::Sum.apply(row)), vec![Some(11.5), Some(3.5), Some(35.5), Some(7.0)]);

        let mut c = s("c", 0, 20, &[Some(1.0), None, Some(5.0), None, None, None, Some(2.0)]);
        let d = s("d", 0, 30, &[Some(0.0)]);
        let mut want = |func, xff, values: &[Option<f64>]| {
            c.consolidation = func;
            c.x_files_factor = xff;
            assert_eq!(normalize(&[&c, &d]).unwrap().unwrap().columns[0].as_ref(), values, "{func:?} {xff}");
        };
        want(Consolidation::Average, 0.0, &[Some(3.0), None, Some(2.0)]);
        want(Consolidation::Sum, 0.0, &[Some(6.0), None, Some(2.0)]);
        want(Consolidation::AvgZero, 0.0, &[Some(2.0), None, Some(2.0)]);
        want(Consolidation::Min, 0.0, &[Some(1.0), None, Some(2.0)]);
        want(Consolidation::Max, 0.0, &[Some(5.0), None, Some(2.0)]);
        want(Consolidation::First, 0.0, &[Some(1.0), None, Some(2.0)]);
        want(Consolidation::Last, 0.0, &[Some(5.0), None, Some(2.0)]);
        // 2 of 3 pass 0.6; the trailing 1 of (a full bucket of) 3 does not.
        want(Consolidation::Average, 0.6, &[Some(3.0), None, None]);
        want(Consolidation::Average, f64::NAN, &[None, None, None]);
    }

    #[test]
    fn empty_input_and_absurd_steps() {
        assert!(normalize(&[]).unwrap().is_none());
        let a = s("a", 0, 60, &[Some(1.0), Some(2.0)]);
        let b = s("b", 0, 70, &[Some(1.0), Some(2.0)]);
        let err = normalize(&[&a, &b]).unwrap_err();
        assert!(err.is_bad_request() && err.to_string().contains("420 s"), "{err}");
        let big = s("big", 0, i64::MAX / 2, &[]);
        let odd = s("odd", 0, 7, &[]);
        assert!(normalize(&[&big, &odd]).unwrap_err().to_string().contains("overflows"));
        // A single step longer than the span (an empty series) is not an error.
        assert_eq!(normalize(&[&big]).unwrap().unwrap().len, 0);
    }

    #[test]
    fn names_and_tags() {
        let mut a = s("cpu;host=a;dc=x", 0, 60, &[]);
        let mut b = s("cpu;host=b;dc=x", 0, 60, &[]);
        a.path_expression = "cpu;host=*".into();
        b.path_expression = "cpu;host=*".into();
        let c = s("mem", 0, 60, &[]);
        assert_eq!(format_path_expressions([&a, &b, &c]), "cpu;host=*,mem");
        let tags = aggregated_tags(&[&a, &b], "sum", "sumSeries(cpu;host=*)");
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [("aggregatedBy", "sum"), ("dc", "x"), ("name", "cpu")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let tags = aggregated_tags(&[&a, &c], "avg", "avgSeries(cpu;host=*,mem)");
        assert_eq!(tags.get("name").map(String::as_str), Some("avgSeries(cpu;host=*,mem)"));
        assert_eq!(default_tags("divideSeries(a;x=1,b)").len(), 1);
        assert_eq!(default_tags("a;x=1").get("x").map(String::as_str), Some("1"));
        assert_eq!(default_tags("f()").get("name").map(String::as_str), Some("f()"));
        assert!(!looks_like_a_call("a.b(c)") && looks_like_a_call("sumSeries(a)"));
    }

    #[test]
    fn xff_of_rows() {
        assert!(xff_allows(&[Some(1.0), None], 0.5));
        assert!(!xff_allows(&[Some(1.0), None, None], 0.5));
        assert!(!xff_allows(&[None], 0.0));
        assert!(!xff_allows(&[], 0.0));
    }
}
