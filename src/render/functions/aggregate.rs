//! graphite-web's aggregation functions (`aggfuncs`): what `aggregate`, the `…Series`
//! combiners, `summarize`, `groupByNode`, the moving windows and the sorts apply to a row of
//! values. Null-safe as graphite-web's `safe*` functions are: None values are skipped, and a
//! row with no value gives None (except `count`, which gives 0, and `avg_zero`, which counts
//! None as 0).
//!
//! Python's semantics are kept where they show: `sum` starts from integer 0 (so a sum of
//! `-0.0` is `0.0`), `min`/`max` keep the first of equal values and compare with `<`/`>` (NaN
//! never replaces a value, and a leading NaN is never replaced).

/// One aggregation, by graphite-web's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// `average` (`avg`).
    Average,
    /// `avg_zero`.
    AvgZero,
    /// `median`.
    Median,
    /// `sum` (`total`).
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `diff`: the first value minus the others.
    Diff,
    /// `stddev` (population).
    Stddev,
    /// `count`: values that are not None.
    Count,
    /// `range` (`rangeOf`): max − min.
    Range,
    /// `multiply`: the product, None if any value is None.
    Multiply,
    /// `last` (`current`).
    Last,
}

impl Agg {
    /// graphite-web's `getAggFunc`: a name or one of its aliases; a `…Series` suffix is
    /// stripped first (`sumSeries` → `sum`), as the functions taking a callback allow.
    pub fn from_name(name: &str) -> Option<Agg> {
        let name = name.strip_suffix("Series").unwrap_or(name);
        Some(match name {
            "average" | "avg" => Agg::Average,
            "avg_zero" => Agg::AvgZero,
            "median" => Agg::Median,
            "sum" | "total" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "diff" => Agg::Diff,
            "stddev" => Agg::Stddev,
            "count" => Agg::Count,
            "range" | "rangeOf" => Agg::Range,
            "multiply" => Agg::Multiply,
            "last" | "current" => Agg::Last,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Average => "average",
            Agg::AvgZero => "avg_zero",
            Agg::Median => "median",
            Agg::Sum => "sum",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Diff => "diff",
            Agg::Stddev => "stddev",
            Agg::Count => "count",
            Agg::Range => "range",
            Agg::Multiply => "multiply",
            Agg::Last => "last",
        }
    }

    /// Every name `from_name` accepts without a suffix, for `/functions` options.
    pub const NAMES: &'static [&'static str] = &[
        "average", "avg", "avg_zero", "median", "sum", "total", "min", "max", "diff", "stddev", "count", "range",
        "rangeOf", "multiply", "last", "current",
    ];

    /// Applies the aggregation to `row`.
    pub fn apply(self, row: &[Option<f64>]) -> Option<f64> {
        let known = || row.iter().flatten().copied();
        let any = row.iter().any(Option::is_some);
        match self {
            Agg::Count => Some(known().count() as f64),
            Agg::AvgZero => (!row.is_empty()).then(|| py_sum(row.iter().map(|v| v.unwrap_or(0.0))) / row.len() as f64),
            Agg::Multiply => {
                if row.iter().any(Option::is_none) || row.is_empty() {
                    return None;
                }
                known().reduce(|a, b| a * b)
            }
            _ if !any => None,
            Agg::Average => Some(py_sum(known()) / known().count() as f64),
            Agg::Sum => Some(py_sum(known())),
            Agg::Min => py_min(known()),
            Agg::Max => py_max(known()),
            Agg::Last => known().last(),
            Agg::Diff => {
                let mut it = known();
                let first = it.next()?;
                Some(py_sum(std::iter::once(first).chain(it.map(|v| -v))))
            }
            Agg::Median => {
                let mut v: Vec<f64> = known().collect();
                v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                let mid = v.len() / 2;
                Some(if v.len() % 2 == 0 { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
            }
            Agg::Stddev => {
                let n = known().count() as f64;
                let avg = py_sum(known()) / n;
                let sq = known().fold(0.0, |acc, v| acc + (v - avg) * (v - avg));
                Some((sq / n).sqrt())
            }
            Agg::Range => Some(py_max(known())? - py_min(known())?),
        }
    }
}

/// Python's `sum()` of floats: starts from integer 0, so `-0.0` alone sums to `0.0`.
pub fn py_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

/// Python's `min()`: the first value that no later one is `<`.
pub fn py_min(mut values: impl Iterator<Item = f64>) -> Option<f64> {
    let first = values.next()?;
    Some(values.fold(first, |m, v| if v < m { v } else { m }))
}

/// Python's `max()`: the first value that no later one is `>`.
pub fn py_max(mut values: impl Iterator<Item = f64>) -> Option<f64> {
    let first = values.next()?;
    Some(values.fold(first, |m, v| if v > m { v } else { m }))
}

/// graphite-web's `_getPercentile` (NIST method) of the non-null `points`: None without any.
/// graphite-web indexes its sorted list with Python's rules, so a rank just below 0 wraps to
/// the end; a rank outside the list is an IndexError there and `Err` here.
pub(crate) fn percentile(points: &[Option<f64>], n: f64, interpolate: bool) -> Result<Option<f64>, ()> {
    let mut sorted: Vec<f64> = points.iter().flatten().copied().collect();
    if sorted.is_empty() {
        return Ok(None);
    }
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let len = sorted.len() as i64;
    let fractional_rank = (n / 100.0) * (len as f64 + 1.0);
    if !fractional_rank.is_finite() || fractional_rank.abs() >= 9.0e18 {
        return Err(());
    }
    let mut rank = fractional_rank.trunc() as i64;
    let rank_fraction = fractional_rank - rank as f64;
    if !interpolate {
        rank += rank_fraction.ceil() as i64;
    }
    let at = |i: i64| -> Result<f64, ()> {
        let i = if i < 0 { i + len } else { i };
        usize::try_from(i).ok().and_then(|i| sorted.get(i).copied()).ok_or(())
    };
    let mut value = if rank == 0 {
        sorted[0]
    } else if rank - 1 == len {
        sorted[sorted.len() - 1]
    } else {
        at(rank - 1)?
    };
    if interpolate && rank != len {
        value += rank_fraction * (at(rank)? - value);
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(agg: &str, row: &[Option<f64>], want: Option<f64>) {
        let got = Agg::from_name(agg).unwrap().apply(row);
        match (got, want) {
            (Some(g), Some(w)) if g.is_nan() && w.is_nan() => {}
            _ => assert_eq!(got, want, "{agg}({row:?})"),
        }
    }

    #[test]
    fn aggregations_follow_graphite_web() {
        let row = [Some(1.0), None, Some(4.0), Some(2.0)];
        check("average", &row, Some(7.0 / 3.0));
        check("avg_zero", &row, Some(7.0 / 4.0));
        check("median", &row, Some(2.0));
        check("median", &[Some(1.0), Some(4.0)], Some(2.5));
        check("sumSeries", &row, Some(7.0));
        check("total", &row, Some(7.0));
        check("min", &row, Some(1.0));
        check("max", &row, Some(4.0));
        check("diff", &row, Some(1.0 - 4.0 - 2.0));
        check("stddev", &[Some(2.0), Some(4.0)], Some(1.0));
        check("count", &row, Some(3.0));
        check("rangeOf", &row, Some(3.0));
        check("multiply", &row, None);
        check("multiply", &[Some(2.0), Some(3.0)], Some(6.0));
        check("current", &row, Some(2.0));
        let empty = [None, None];
        for agg in ["average", "median", "sum", "min", "max", "diff", "stddev", "range", "last"] {
            check(agg, &empty, None);
        }
        check("count", &empty, Some(0.0));
        check("avg_zero", &empty, Some(0.0));
        check("avg_zero", &[], None);
        assert!(Agg::from_name("nope").is_none());
    }

    #[test]
    fn python_quirks_are_kept() {
        assert!(Agg::Sum.apply(&[Some(-0.0)]).unwrap().is_sign_positive());
        assert!(Agg::Max.apply(&[Some(f64::NAN), Some(1.0)]).unwrap().is_nan(), "a leading NaN stays");
        assert_eq!(Agg::Max.apply(&[Some(1.0), Some(f64::NAN)]), Some(1.0));
    }
}
