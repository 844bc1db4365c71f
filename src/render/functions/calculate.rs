//! graphite-web's `Calculate` group (moving windows, percentiles, standard deviation, linear
//! regression) and the value filters of its `Filter Data` group (`removeBelowValue` and kin),
//! which compute a threshold per series the same way.
//!
//! The moving windows reproduce graphite-web 1.1.8 exactly: the argument is evaluated again
//! from `from` minus the window's length, so that the first points have full windows; the
//! value at point i aggregates the `windowPoints` points *before* it (point i itself is left
//! out); a window of N points is N × the largest step of the list, an interval window is
//! interval ÷ each series' step points; the result starts at the re-fetched series' start plus
//! the look-back. `exponentialMovingAverage` is one point longer than the window, as in
//! graphite-web (its first value is the plain average of the look-back).
//!
//! Bounded: a moving window costs its length for every output point (times log2 of it for a
//! median, which sorts); a call whose windows would cost more than [`WINDOW_WORK_MAX`] (about
//! two seconds of one core) is a 400. Percentiles outside what graphite-web can index, NaN
//! arguments and negative windows are 400s too.

use super::aggregate::{percentile, py_sum, Agg};
use super::transform::{agg_named, g, interval_seconds, py_round, py_str, retitle, tag, xff};
use super::{FunctionSpec, Param, ParamKind};
use crate::pyfmt::py_repr;
use crate::render::eval::{Args, Ctx};
use crate::render::grammar::Expr;
use crate::render::series::{Consolidation, Series};
use crate::render::RenderError;

/// Most values one moving-window call may visit (output points × window length).
pub const WINDOW_WORK_MAX: u64 = 1_000_000_000;

const SERIES: Param = Param::required("seriesList", ParamKind::SeriesList);
const WINDOW: Param = Param::required("windowSize", ParamKind::IntOrInterval);
const XFF: Param = Param::optional("xFilesFactor", ParamKind::Float, None);
const N: Param = Param::required("n", ParamKind::Float);

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "exponentialMovingAverage",
        group: "Calculate",
        description: "The exponential moving average over a number of points or an interval.",
        params: &[SERIES, WINDOW],
        imp: exponential_moving_average,
    },
    FunctionSpec {
        name: "linearRegression",
        group: "Calculate",
        description: "The least-squares line through the series (or through it over another range).",
        params: &[
            SERIES,
            Param::optional("startSourceAt", ParamKind::Date, None),
            Param::optional("endSourceAt", ParamKind::Date, None),
        ],
        imp: linear_regression,
    },
    FunctionSpec {
        name: "movingAverage",
        group: "Calculate",
        description: "The average of the preceding points (a count or an interval).",
        params: &[SERIES, WINDOW, XFF],
        imp: moving_average,
    },
    FunctionSpec {
        name: "movingMax",
        group: "Calculate",
        description: "The maximum of the preceding points (a count or an interval).",
        params: &[SERIES, WINDOW, XFF],
        imp: moving_max,
    },
    FunctionSpec {
        name: "movingMedian",
        group: "Calculate",
        description: "The median of the preceding points (a count or an interval).",
        params: &[SERIES, WINDOW, XFF],
        imp: moving_median,
    },
    FunctionSpec {
        name: "movingMin",
        group: "Calculate",
        description: "The minimum of the preceding points (a count or an interval).",
        params: &[SERIES, WINDOW, XFF],
        imp: moving_min,
    },
    FunctionSpec {
        name: "movingSum",
        group: "Calculate",
        description: "The sum of the preceding points (a count or an interval).",
        params: &[SERIES, WINDOW, XFF],
        imp: moving_sum,
    },
    FunctionSpec {
        name: "movingWindow",
        group: "Calculate",
        description: "An aggregation of the preceding points (a count or an interval).",
        params: &[
            SERIES,
            WINDOW,
            Param::optional("func", ParamKind::AggFunc, Some("\"average\"")).options(Agg::NAMES),
            XFF,
        ],
        imp: moving_window,
    },
    FunctionSpec {
        name: "nPercentile",
        group: "Calculate",
        description: "A constant line at each series' n-th percentile.",
        params: &[SERIES, N],
        imp: n_percentile,
    },
    FunctionSpec {
        name: "removeAbovePercentile",
        group: "Filter Data",
        description: "Nulls the values above the series' n-th percentile.",
        params: &[SERIES, N],
        imp: remove_above_percentile,
    },
    FunctionSpec {
        name: "removeAboveValue",
        group: "Filter Data",
        description: "Nulls the values above n.",
        params: &[SERIES, N],
        imp: remove_above_value,
    },
    FunctionSpec {
        name: "removeBelowPercentile",
        group: "Filter Data",
        description: "Nulls the values below the series' n-th percentile (and keeps nulls null).",
        params: &[SERIES, N],
        imp: remove_below_percentile,
    },
    FunctionSpec {
        name: "removeBelowValue",
        group: "Filter Data",
        description: "Nulls the values below n.",
        params: &[SERIES, N],
        imp: remove_below_value,
    },
    FunctionSpec {
        name: "stdev",
        group: "Calculate",
        description: "The standard deviation over a moving window of points.",
        params: &[
            SERIES,
            Param::required("points", ParamKind::Integer),
            Param::optional("windowTolerance", ParamKind::Float, Some("0.1")),
        ],
        imp: stdev,
    },
];

// ---------------------------------------------------------------------------------------------
// Moving windows.

/// A `windowSize` argument: a number of points or an interval string.
enum Window {
    /// N points; `shown` is the argument as Python's `str()` prints it.
    Points { n: i64, shown: String },
    /// An interval; `seconds` is its absolute length.
    Interval { text: String, seconds: i64 },
}

impl Window {
    fn read(args: &Args<'_>) -> Result<Window, RenderError> {
        let bad = |what: String| RenderError::bad(format!("{}: windowSize {what}", args.name));
        let n = match args.get(1, "windowSize") {
            Some(Expr::Str(text)) => {
                let seconds = interval_seconds(args, "windowSize", text)?.unsigned_abs();
                let seconds = i64::try_from(seconds).map_err(|_| bad(format!("{text:?} is too long")))?;
                return Ok(Window::Interval { text: text.clone(), seconds });
            }
            // Python's int() of a float truncates it.
            Some(Expr::Float(v)) if v.is_finite() && v.abs() < 9.0e18 => v.trunc() as i64,
            Some(Expr::Int(v)) => *v,
            Some(other) => return Err(bad(format!("must be a number of points or an interval, not {other}"))),
            None => return Err(bad("is missing".to_string())),
        };
        if n < 0 {
            return Err(bad(format!("must not be negative, not {n}")));
        }
        Ok(Window::Points { n, shown: py_str(args.get(1, "windowSize").unwrap_or(&Expr::None)) })
    }

    /// The look-back in seconds for a list whose largest step is `max_step`.
    fn preview_s(&self, max_step: i64) -> Option<i64> {
        match self {
            Window::Points { n, .. } => n.checked_mul(max_step),
            Window::Interval { seconds, .. } => Some(*seconds),
        }
    }

    /// Points in one window of a series of step `step`.
    fn points(&self, step: i64) -> i64 {
        match self {
            Window::Points { n, .. } => *n,
            Window::Interval { seconds, .. } => seconds / step,
        }
    }

    /// `f(x,5)` or `f(x,"5min")`, as graphite-web names the result.
    fn name(&self, function: &str, series: &str) -> String {
        match self {
            Window::Points { shown, .. } => format!("{function}({series},{shown})"),
            Window::Interval { text, .. } => format!("{function}({series},\"{text}\")"),
        }
    }

    /// The tag value: Python's `str()` of the argument.
    fn tag(&self) -> String {
        match self {
            Window::Points { shown, .. } => shown.clone(),
            Window::Interval { text, .. } => text.clone(),
        }
    }
}

/// Evaluates argument 0 and, when it has series, evaluates it again with the window's
/// look-back before `from`. Returns the look-back and the re-fetched list.
fn fetch_with_look_back(ctx: &Ctx<'_>, args: &Args<'_>, window: &Window) -> Result<(i64, Vec<Series>), RenderError> {
    let original = args.series(ctx, 0, "seriesList")?;
    let Some(max_step) = original.iter().map(|s| s.step).max() else { return Ok((0, Vec::new())) };
    let too_far = || RenderError::bad(format!("{}: windowSize reaches too far back", args.name));
    let preview = window.preview_s(max_step).ok_or_else(too_far)?;
    let from = ctx.from.checked_sub(preview).ok_or_else(too_far)?;
    let expr =
        args.get(0, "seriesList").ok_or_else(|| RenderError::bad(format!("{}: seriesList is missing", args.name)))?;
    Ok((preview, ctx.shifted(from, ctx.until).eval(expr)?))
}

/// Python's `str.capitalize` for ASCII names: `average` → `Average`, `rangeOf` → `Rangeof`.
fn capitalize(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars.next().map_or_else(String::new, |c| c.to_ascii_uppercase().to_string() + chars.as_str())
}

/// graphite-web's `movingWindow`, shared by movingAverage & co. (`func` given) and by
/// movingWindow itself (`func` read from argument 2).
fn moving(ctx: &Ctx<'_>, args: &Args<'_>, func: Option<&'static str>) -> Result<Vec<Series>, RenderError> {
    let window = Window::read(args)?;
    let (func, xff_idx) = match func {
        Some(f) => (f, 2),
        None => (args.string_or(2, "func", "average")?, 3),
    };
    let agg = agg_named(args, func)?;
    let x_files_factor = args.opt_number(xff_idx, "xFilesFactor")?;
    let (preview, mut list) = fetch_with_look_back(ctx, args, &window)?;
    let tag_name = format!("moving{}", capitalize(func));
    let mut work: u64 = 0;
    for s in &mut list {
        let w = usize::try_from(window.points(s.step)).unwrap_or(usize::MAX);
        let outputs = s.values.len().saturating_sub(w);
        // A median sorts its window: w·log2(w) comparisons.
        let per_output =
            if agg == Agg::Median { (w as u64).saturating_mul(u64::from(w.max(2).ilog2())) } else { w as u64 };
        work = work.saturating_add((outputs as u64).saturating_mul(per_output));
        if work > WINDOW_WORK_MAX {
            return Err(RenderError::bad(format!(
                "{}: windows of {w} points over {} points are more work than one call may do",
                args.name,
                s.values.len()
            )));
        }
        let xff_used = x_files_factor.unwrap_or(s.x_files_factor);
        let mut known: Vec<Option<f64>> = Vec::with_capacity(w.min(s.values.len()));
        let values = (w..s.values.len())
            .map(|i| {
                known.clear();
                known.extend(s.values[i - w..i].iter().filter(|v| v.is_some()));
                let keep = !known.is_empty() && xff(known.len(), w as f64, xff_used);
                if keep {
                    agg.apply(&known)
                } else {
                    None
                }
            })
            .collect();
        tag(s, &tag_name, window.tag());
        let name = window.name(&tag_name, &s.name);
        retitle(s, name);
        let end = s.end;
        s.start += preview;
        s.values = values;
        keep_shown(s, end);
    }
    Ok(list)
}

/// Keeps the values graphite-web shows of a series it moved forward by a look-back but whose
/// `end` it left alone: those with a timestamp in [start, end] (its JSON pairs values with
/// `range(start, end + 1, step)`). They are all of them unless the look-back is not a whole
/// number of this series' windows (a list of mixed steps, an interval that is not a multiple of
/// the step): then the rest would lie past the request's window.
fn keep_shown(s: &mut Series, end: i64) {
    let shown = if end < s.start { 0 } else { (end - s.start) / s.step + 1 };
    s.values.truncate(usize::try_from(shown).unwrap_or(usize::MAX));
    s.end = s.start + s.step * s.values.len() as i64;
    s.overhang = (s.end - end).max(0);
}

fn moving_window(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, None)
}

fn moving_average(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, Some("average"))
}

fn moving_sum(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, Some("sum"))
}

fn moving_min(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, Some("min"))
}

fn moving_max(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, Some("max"))
}

fn moving_median(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    moving(ctx, args, Some("median"))
}

/// `exponentialMovingAverage(seriesList, windowSize)`: the first value (at the re-fetched
/// start plus the look-back) is the average of the look-back's points (0 without any), then
/// each point moves it by constant = 2 / (window + 1), rounded to 6 decimals; a None point
/// gives None and leaves the average as it was. For an interval the window in the constant is
/// its length in seconds, as in graphite-web.
fn exponential_moving_average(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let window = Window::read(args)?;
    let constant = 2.0
        / match &window {
            Window::Points { n, .. } => *n as f64 + 1.0,
            Window::Interval { seconds, .. } => *seconds as f64 + 1.0,
        };
    let (preview, mut list) = fetch_with_look_back(ctx, args, &window)?;
    for s in &mut list {
        let w = usize::try_from(window.points(s.step)).unwrap_or(usize::MAX);
        let head = &s.values[..w.min(s.values.len())];
        let mut ema = Agg::Average.apply(head).unwrap_or(0.0);
        let mut values = Vec::with_capacity(1 + s.values.len().saturating_sub(w));
        values.push(Some(py_round(ema, 6)));
        for v in s.values.iter().skip(w) {
            values.push(v.map(|v| {
                ema = constant * v + (1.0 - constant) * ema;
                py_round(ema, 6)
            }));
        }
        tag(s, "exponentialMovingAverage", window.tag());
        let name = window.name("exponentialMovingAverage", &s.name);
        retitle(s, name);
        let end = s.end;
        s.start += preview;
        s.values = values;
        keep_shown(s, end);
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Percentiles and thresholds.

/// The `n` argument of the percentile functions: a number, not 0 (graphite-web asserts it).
fn percent_arg(args: &Args<'_>) -> Result<f64, RenderError> {
    let n = args.number(1, "n")?;
    if n == 0.0 || n.is_nan() {
        return Err(RenderError::bad(format!(
            "{}: n must be a percentage greater than 0, not {}",
            args.name,
            py_repr(n)
        )));
    }
    Ok(n)
}

/// `nPercentile(seriesList, n)`: each series becomes a constant line at its own n-th
/// percentile; a series without values is left out.
fn n_percentile(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let n = percent_arg(args)?;
    let list = args.series(ctx, 0, "seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for mut s in list {
        let value = percentile(&s.values, n, false)
            .map_err(|()| RenderError::bad(format!("{}: no {}th percentile of {}", args.name, g(n), s.name)))?;
        let Some(value) = value else { continue };
        tag(&mut s, "nPercentile", py_repr(n));
        let name = format!("nPercentile({}, {})", s.name, g(n));
        retitle(&mut s, name);
        s.values.fill(Some(value));
        out.push(s);
    }
    Ok(out)
}

/// removeAbove/BelowPercentile: each series renamed, then its values outside its own
/// percentile set to None (`remove(value, percentile)`). Like graphite-web, a series whose
/// percentile cannot be had (no values, or n out of range) is left as it is, and one whose
/// percentile is had gets the `nPercentile` tag too (graphite-web computes it through
/// nPercentile on a copy sharing the tags).
fn remove_by_percentile(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    remove: impl Fn(Option<f64>, f64) -> bool,
) -> Result<Vec<Series>, RenderError> {
    let n = percent_arg(args)?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        let name = format!("{}({}, {})", args.name, s.name, g(n));
        retitle(s, name);
        let Ok(Some(threshold)) = percentile(&s.values, n, false) else { continue };
        tag(s, "nPercentile", py_repr(n));
        for v in &mut s.values {
            if remove(*v, threshold) {
                *v = None;
            }
        }
    }
    Ok(list)
}

fn remove_above_percentile(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    remove_by_percentile(ctx, args, |v, p| v.is_some_and(|v| v > p))
}

fn remove_below_percentile(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    remove_by_percentile(ctx, args, |v, p| v.is_none_or(|v| v < p))
}

/// removeAbove/BelowValue: values for which `remove(value, n)` holds become None.
fn remove_by_value(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    remove: impl Fn(Option<f64>, f64) -> bool,
) -> Result<Vec<Series>, RenderError> {
    let n = args.number(1, "n")?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        let name = format!("{}({}, {})", args.name, s.name, g(n));
        retitle(s, name);
        for v in &mut s.values {
            if remove(*v, n) {
                *v = None;
            }
        }
    }
    Ok(list)
}

fn remove_above_value(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    remove_by_value(ctx, args, |v, n| v.is_some_and(|v| v > n))
}

fn remove_below_value(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    remove_by_value(ctx, args, |v, n| v.is_none_or(|v| v < n))
}

// ---------------------------------------------------------------------------------------------
// Standard deviation and regression.

/// `stdev(seriesList, points, windowTolerance=0.1)`: the population standard deviation of
/// the last `points` points (the current one included), from running sums as graphite-web
/// keeps them (so the same rounding), None while fewer than windowTolerance × points of the
/// window are non-null, or when rounding makes the variance negative.
fn stdev(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let points = args.int(1, "points")?;
    if points < 0 {
        return Err(RenderError::bad(format!("{}: points must not be negative, not {points}", args.name)));
    }
    let tolerance = args.number_or(2, "windowTolerance", 0.1)?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        s.values = running_stdev(&s.values, points, tolerance);
        tag(s, "stdev", points.to_string());
        let name = format!("stdev({},{points})", s.name);
        retitle(s, name);
    }
    Ok(list)
}

fn running_stdev(values: &[Option<f64>], points: i64, tolerance: f64) -> Vec<Option<f64>> {
    let (mut valid, mut sum, mut sum_of_squares) = (0i64, 0.0f64, 0.0f64);
    let window = usize::try_from(points).unwrap_or(usize::MAX);
    values
        .iter()
        .enumerate()
        .map(|(i, &new)| {
            // A window of 0 points drops each value as it comes (graphite-web's
            // series[index - 0]), so it never has a valid point.
            let dropped = if i < window { None } else { values[i - window] };
            if let Some(d) = dropped {
                valid -= 1;
                sum -= d;
                sum_of_squares -= d * d;
            }
            if let Some(v) = new {
                valid += 1;
                sum += v;
                sum_of_squares += v * v;
            }
            if valid > 0 && valid as f64 / points as f64 >= tolerance {
                let variance_n2 = valid as f64 * sum_of_squares - sum * sum;
                (variance_n2 >= 0.0 || variance_n2.is_nan()).then(|| variance_n2.sqrt() / valid as f64)
            } else {
                None
            }
        })
        .collect()
}

/// `linearRegression(seriesList, startSourceAt=None, endSourceAt=None)`: the least-squares
/// line of the argument evaluated over the source range (the request's window by default, the
/// times read as `from`/`until` are), drawn over each series of this window, paired by
/// position. A source whose points are all at one index (or missing) gives no series.
fn linear_regression(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let at = |i: usize, key: &str, default: i64| -> Result<i64, RenderError> {
        match args.get(i, key) {
            None | Some(Expr::None) => Ok(default),
            Some(Expr::Int(v)) => parse_time(args, key, &v.to_string(), ctx),
            Some(_) => parse_time(args, key, args.string(i, key)?, ctx),
        }
    };
    let (from, until) = (at(1, "startSourceAt", ctx.from)?, at(2, "endSourceAt", ctx.until)?);
    let list = args.series(ctx, 0, "seriesList")?;
    let expr = args.get(0, "seriesList").ok_or_else(|| RenderError::bad("linearRegression: seriesList is missing"))?;
    let sources = ctx.shifted(from, until).eval(expr)?;
    let mut out = Vec::new();
    for (source, s) in sources.iter().zip(list) {
        let Some((factor, offset)) = regression(source) else { continue };
        let mut line = s.clone_meta();
        tag(&mut line, "linearRegressions", format!("{from}, {until}"));
        retitle(&mut line, format!("linearRegression({}, {from}, {until})", s.name));
        line.consolidation = Consolidation::Average;
        line.values =
            (0..s.values.len() as i64).map(|i| Some(offset + (s.start + i * s.step) as f64 * factor)).collect();
        out.push(line);
    }
    Ok(out)
}

/// A time argument read as `from`/`until` are (in the request's zone, against its `now`).
pub(super) fn parse_time(args: &Args<'_>, key: &str, text: &str, ctx: &Ctx<'_>) -> Result<i64, RenderError> {
    crate::render::time::parse_at_time(text, ctx.tz, ctx.now)
        .map_err(|e| RenderError::bad(format!("{}: {key}: {e}", args.name)))
}

/// graphite-web's `_linearRegressionAnalysis`: (factor per second, offset at t = 0), with its
/// integer sums kept exact and its float sums in its order.
fn regression(source: &Series) -> Option<(f64, f64)> {
    let known = || source.values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as i128, v)));
    let n = known().count() as i128;
    let sum_i: i128 = known().map(|(i, _)| i).sum();
    let sum_ii: i128 = known().map(|(i, _)| i * i).sum();
    let sum_v = py_sum(known().map(|(_, v)| v));
    let sum_iv = py_sum(known().map(|(i, v)| i as f64 * v));
    let denominator = (n * sum_ii - sum_i * sum_i) as f64;
    if denominator == 0.0 {
        return None;
    }
    let factor = (n as f64 * sum_iv - sum_i as f64 * sum_v) / denominator / source.step as f64;
    let offset = (sum_ii as f64 * sum_v - sum_iv * sum_i as f64) / denominator - factor * source.start as f64;
    Some((factor, offset))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::render::functions::testutil::TestStore;

    const NAN: f64 = f64::NAN;

    /// a.b: 10 points at 60 s from 600 (nulls at 720, 960, 1020); long.x: 40 points from 0.
    fn store() -> TestStore {
        let v = |xs: &[f64]| xs.iter().map(|x| if x.is_nan() { None } else { Some(*x) }).collect::<Vec<_>>();
        TestStore::new(vec![
            Series::new("a.b", 600, 60, v(&[1.0, 2.0, NAN, 4.0, -5.0, 6.5, NAN, NAN, 9.0, 10.0])),
            Series::new("long.x", 0, 60, (0..40).map(|i| if i % 9 == 4 { None } else { Some(i as f64) }).collect()),
            Series::new("slow", 0, 120, (0..20).map(|i| Some(i as f64 * 10.0)).collect()),
        ])
    }

    fn check(target: &str, name: &str, start: i64, step: i64, want: &[f64]) {
        let got = store().eval(target, 540, 1140, 2000).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(got.len(), 1, "{target}: {got:?}");
        let s = &got[0];
        assert_eq!((s.name.as_str(), s.start, s.step), (name, start, step), "{target}");
        assert_eq!(s.end, s.start + s.step * s.values.len() as i64, "{target}: end");
        let same = |a: &Option<f64>, b: &f64| a.map_or(b.is_nan(), |a| a == *b || (a - b).abs() < 1e-9);
        assert!(
            s.values.len() == want.len() && s.values.iter().zip(want).all(|(a, b)| same(a, b)),
            "{target}: {:?}",
            s.values
        );
    }

    #[test]
    fn a_look_back_of_the_slowest_series_shows_nothing_past_the_window() {
        // The look-back is 2 points of `slow` (240 s), 4 of long.x's: graphite-web moves
        // long.x's start by 240 s but keeps its end, so it shows 11 of the 12 windows (it once
        // showed all 12 here, the last past the request's window).
        let got = store().eval("movingSum(group(long.x, slow), 2)", 540, 1140, 2000).unwrap();
        let s = &got[0];
        assert_eq!((s.name.as_str(), s.start, s.step, s.end), ("movingSum(long.x,2)", 600, 60, 1260));
        let want = [13., 15., 17., 19., 21., 23., 12., 14., 29., 31., 33.];
        assert_eq!(s.values, want.map(Some));
    }

    #[test]
    fn moving_windows_leave_the_current_point_out() {
        // long.x over (540, 1140]: points 10..19 (t = 600..1140), null at 13; the look-back
        // of 3 points brings 7, 8, 9 in.
        check(
            "movingAverage(long.x,3)",
            "movingAverage(long.x,3)",
            600,
            60,
            &[8., 9., 10., 11., 11.5, 13., 14.5, 15., 16., 17.],
        );
        check(
            "movingSum(long.x,'3min')",
            "movingSum(long.x,\"3min\")",
            600,
            60,
            &[24., 27., 30., 33., 23., 26., 29., 45., 48., 51.],
        );
        check(
            "movingMax(long.x,2)",
            "movingMax(long.x,2)",
            600,
            60,
            &[9., 10., 11., 12., 12., 14., 15., 16., 17., 18.],
        );
        check(
            "movingMin(long.x,2,1)",
            "movingMin(long.x,2)",
            600,
            60,
            &[8., 9., 10., 11., NAN, NAN, 14., 15., 16., 17.],
        );
        check(
            "movingMedian(long.x,4)",
            "movingMedian(long.x,4)",
            600,
            60,
            &[7.5, 8.5, 9.5, 10.5, 11., 12., 14., 15., 15.5, 16.5],
        );
        check(
            "movingWindow(long.x,2,'count')",
            "movingCount(long.x,2)",
            600,
            60,
            &[2., 2., 2., 2., 1., 1., 2., 2., 2., 2.],
        );
        check(
            "movingWindow(long.x,'2min','rangeOf')",
            "movingRangeof(long.x,\"2min\")",
            600,
            60,
            &[1., 1., 1., 1., 0., 0., 1., 1., 1., 1.],
        );
        // A list's window in points is measured with its largest step: "slow" has 120 s.
        check("movingAverage(slow,2)", "movingAverage(slow,2)", 600, 120, &[35., 45., 55., 65., 75.]);
        check("movingAverage(long.x,0)", "movingAverage(long.x,0)", 600, 60, &[NAN; 10]);
    }

    #[test]
    fn exponential_moving_average_is_one_point_longer() {
        let c = 2.0 / 4.0;
        let mut ema: f64 = (7.0 + 8.0 + 9.0) / 3.0;
        let mut want = vec![ema];
        for v in 10..20 {
            if v == 13 {
                want.push(NAN);
            } else {
                ema = c * v as f64 + (1.0 - c) * ema;
                want.push(ema);
            }
        }
        check("exponentialMovingAverage(long.x,3)", "exponentialMovingAverage(long.x,3)", 600, 60, &want);
    }

    #[test]
    fn percentiles_and_thresholds() {
        // a.b's values sorted: -5, 1, 2, 4, 6.5, 9, 10.
        check("nPercentile(a.b,50)", "nPercentile(a.b, 50)", 600, 60, &[4.; 10]);
        check("nPercentile(a.b,90)", "nPercentile(a.b, 90)", 600, 60, &[10.; 10]);
        check("nPercentile(a.b,10)", "nPercentile(a.b, 10)", 600, 60, &[-5.; 10]);
        check(
            "removeAbovePercentile(a.b,50)",
            "removeAbovePercentile(a.b, 50)",
            600,
            60,
            &[1., 2., NAN, 4., -5., NAN, NAN, NAN, NAN, NAN],
        );
        check(
            "removeBelowPercentile(a.b,50)",
            "removeBelowPercentile(a.b, 50)",
            600,
            60,
            &[NAN, NAN, NAN, 4., NAN, 6.5, NAN, NAN, 9., 10.],
        );
        check(
            "removeAboveValue(a.b,4)",
            "removeAboveValue(a.b, 4)",
            600,
            60,
            &[1., 2., NAN, 4., -5., NAN, NAN, NAN, NAN, NAN],
        );
        check(
            "removeBelowValue(a.b,2.5)",
            "removeBelowValue(a.b, 2.5)",
            600,
            60,
            &[NAN, NAN, NAN, 4., NAN, 6.5, NAN, NAN, 9., 10.],
        );
        assert_eq!(percentile(&[Some(1.0), Some(2.0)], 150.0, false), Err(()));
        assert_eq!(percentile(&[Some(3.0), Some(1.0), Some(2.0)], 50.0, true), Ok(Some(2.0)));
        assert_eq!(percentile(&[None], 50.0, false), Ok(None));
    }

    #[test]
    fn stdev_keeps_running_sums() {
        // Window of 2 over a.b: the population deviation of each pair, once both are known.
        check("stdev(a.b,2)", "stdev(a.b,2)", 600, 60, &[0., 0.5, 0., 0., 4.5, 5.75, 0., NAN, 0., 0.5]);
        check("stdev(a.b,2,1)", "stdev(a.b,2)", 600, 60, &[NAN, 0.5, NAN, NAN, 4.5, 5.75, NAN, NAN, NAN, 0.5]);
    }

    #[test]
    fn linear_regression_of_a_line_is_the_line() {
        let store =
            TestStore::new(vec![Series::new("line", 0, 60, (0..40).map(|i| Some(3.0 + 2.0 * i as f64)).collect())]);
        let got = store.eval("linearRegression(line)", 540, 1140, 2000).unwrap();
        assert_eq!(got[0].name, "linearRegression(line, 540, 1140)");
        assert_eq!(got[0].tags.get("linearRegressions").map(String::as_str), Some("540, 1140"));
        for (t, v) in got[0].points() {
            assert!((v.unwrap() - (3.0 + 2.0 * (t / 60) as f64)).abs() < 1e-9, "{t}");
        }
    }

    #[test]
    fn hostile_windows_are_bad_requests() {
        for target in [
            "movingAverage(long.x,-1)",
            "movingAverage(long.x,9223372036854775807)",
            "movingAverage(long.x,'1x')",
            "movingAverage(long.x,a.b)",
            "movingWindow(long.x,2,'sumSeries')",
            "nPercentile(a.b,0)",
            "nPercentile(a.b,150)",
            "stdev(a.b,-2)",
            "exponentialMovingAverage(long.x,-3)",
        ] {
            assert!(store().eval(target, 540, 1140, 2000).unwrap_err().is_bad_request(), "{target}");
        }
        // A huge window fetches only what the retention holds, and yields no points.
        let got = store().eval("movingAverage(long.x,1000000000000)", 540, 1140, 2000).unwrap();
        assert!(got[0].values.is_empty());
        let got = store().eval("removeAbovePercentile(a.b,150)", 540, 1140, 2000).unwrap();
        assert_eq!(got[0].values.iter().flatten().count(), 7, "left as it is");
    }

    /// Targets run through graphite-web too, by `transform`'s `reference_functions_transform`.
    pub(in crate::render::functions) const REFERENCE_CORPUS: &[&str] = &[
        "movingAverage(long.x,3)",
        "movingAverage(long.x,'3min')",
        "movingAverage(long.x,'90s')",
        "movingAverage(long.x,'-2min')",
        "movingAverage(long.x,0)",
        "movingAverage(long.x,100)",
        "movingAverage(long.x,2.7)",
        "movingAverage(slow,2)",
        "movingAverage(a.*,2)",
        "movingSum(long.x,5)",
        "movingSum(a.*,2)",
        "movingMin(long.x,4,0.8)",
        "movingMax(long.x,'5min',0.5)",
        "movingMedian(long.x,4)",
        "movingMedian(a.b,'3min')",
        "movingWindow(long.x,3,'avg_zero')",
        "movingWindow(long.x,3,'count')",
        "movingWindow(long.x,'3min','rangeOf')",
        "movingWindow(long.x,2,'multiply')",
        "movingWindow(long.x,3,'diff')",
        "movingWindow(long.x,3,'stddev',0.5)",
        "movingWindow(long.x,3,'last')",
        "movingWindow(odd,2,'sum')",
        "exponentialMovingAverage(long.x,3)",
        "exponentialMovingAverage(long.x,'3min')",
        "exponentialMovingAverage(a.b,2)",
        "exponentialMovingAverage(long.x,0)",
        "exponentialMovingAverage(nulls,2)",
        "nPercentile(a.*,50)",
        "nPercentile(a.b,90)",
        "nPercentile(a.b,10)",
        "nPercentile(a.b,99.9)",
        "nPercentile(a.b,-60)",
        "nPercentile(long.x,33.3)",
        "removeAbovePercentile(a.*,50)",
        "removeBelowPercentile(a.*,75)",
        "removeAbovePercentile(nulls,50)",
        "removeAbovePercentile(a.b,150)",
        "removeAboveValue(a.*,4)",
        "removeBelowValue(a.*,2.5)",
        "removeBelowValue(odd,0)",
        "removeAboveValue(odd,0.15)",
        "stdev(a.b,2)",
        "stdev(a.b,2,1)",
        "stdev(long.x,5)",
        "stdev(long.x,5,0.0)",
        "stdev(a.b,0)",
        "stdev(a.c,3,0.5)",
        "linearRegression(long.x)",
        "linearRegression(a.b)",
        "linearRegression(long.x,'0')",
        "linearRegression(long.x,'0','1200')",
        "linearRegression(a.*,'600')",
        "timeSlice(a.b,'700','1000')",
        "timeSlice(a.b,'700','1100')",
        "timeSlice(long.x,'600','900')",
        "timeSlice(long.x,endSliceAt='1000',startSliceAt='20')",
    ];
}
