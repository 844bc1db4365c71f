//! graphite-web's `Transform` group: functions that change the values of each series on its
//! own (scale, derivative, summarize, timeShift…), plus `changed` and `consolidateBy`, which
//! graphite-web files under `Special` but which transform one series at a time all the same.
//!
//! Every result is named as graphite-web 1.1.8 names it (`scale(a.b,2)` with C's `%g`,
//! `summarize(a.b, "1h", "sum")`, `integralByInterval(a.b,'1d')`…): Grafana shows these names,
//! and `aliasByNode` and friends parse them. Tags are added as graphite-web adds them, with the
//! value as Python's `str()` prints the (validated) argument: `scale(a.b,2)` tags `scale=2.0`
//! because graphite-web turns a `float` parameter into a float first. `pathExpression` becomes
//! the new name, except for `timeShift` and `timeSlice`, which keep it, as graphite-web does.
//!
//! Leaves out: the functions of several series at once (`functions/combine…`), filters of whole
//! series, and the moving windows (`calculate.rs`, graphite-web's `Calculate` group).
//!
//! Bounded: a function whose output size comes from an argument (summarize's and hitcount's
//! buckets) counts it against the request's points before allocating; an interval of 0 or less,
//! an overflowing time, or a NaN where graphite-web would raise is a 400, never a panic.

use super::aggregate::{py_min, Agg};
use super::{FunctionSpec, Param, ParamKind};
use crate::pyfmt::{c_g, py_repr};
use crate::render::eval::{Args, Ctx};
use crate::render::grammar::Expr;
use crate::render::series::{Consolidation, Series};
use crate::render::RenderError;

const SERIES: Param = Param::required("seriesList", ParamKind::SeriesList);

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "absolute",
        group: "Transform",
        description: "The absolute value of each point.",
        params: &[SERIES],
        imp: absolute,
    },
    FunctionSpec {
        name: "changed",
        group: "Special",
        description: "1 where the value differs from the previous non-null value, else 0.",
        params: &[SERIES],
        imp: changed,
    },
    FunctionSpec {
        name: "consolidateBy",
        group: "Special",
        description: "Sets how maxDataPoints consolidation reduces each series.",
        params: &[
            SERIES,
            Param::required("consolidationFunc", ParamKind::String)
                .options(&["average", "avg", "avg_zero", "first", "last", "max", "min", "sum"]),
        ],
        imp: consolidate_by,
    },
    FunctionSpec {
        name: "delay",
        group: "Transform",
        description: "Shifts the values later by a number of steps, padding with nulls.",
        params: &[SERIES, Param::required("steps", ParamKind::Integer)],
        imp: delay,
    },
    FunctionSpec {
        name: "derivative",
        group: "Transform",
        description: "The difference between each point and the one before it.",
        params: &[SERIES],
        imp: derivative,
    },
    FunctionSpec {
        name: "hitcount",
        group: "Transform",
        description: "Integrates per-second rates into hits per interval, buckets aligned to the end.",
        params: &[
            SERIES,
            Param::required("intervalString", ParamKind::Interval),
            Param::optional("alignToInterval", ParamKind::Boolean, Some("false")),
        ],
        imp: hitcount,
    },
    FunctionSpec {
        name: "integral",
        group: "Transform",
        description: "The running sum of the values.",
        params: &[SERIES],
        imp: integral,
    },
    FunctionSpec {
        name: "integralByInterval",
        group: "Transform",
        description: "The running sum of the values, restarting at every interval counted from `from`.",
        params: &[SERIES, Param::required("intervalUnit", ParamKind::String)],
        imp: integral_by_interval,
    },
    FunctionSpec {
        name: "invert",
        group: "Transform",
        description: "1/x for each point.",
        params: &[SERIES],
        imp: invert,
    },
    FunctionSpec {
        name: "isNonNull",
        group: "Transform",
        description: "1 where a value exists, 0 where it is null.",
        params: &[SERIES],
        imp: is_non_null,
    },
    FunctionSpec {
        name: "keepLastValue",
        group: "Transform",
        description: "Fills runs of at most `limit` nulls with the last value before them.",
        params: &[SERIES, Param::optional("limit", ParamKind::IntOrInf, Some("1e9999"))],
        imp: keep_last_value,
    },
    FunctionSpec {
        name: "log",
        group: "Transform",
        description: "The logarithm of each point in the given base (nulls for values <= 0).",
        params: &[SERIES, Param::optional("base", ParamKind::Integer, Some("10"))],
        imp: log,
    },
    FunctionSpec {
        name: "nonNegativeDerivative",
        group: "Transform",
        description: "The derivative, with counter wraps and resets handled.",
        params: &[
            SERIES,
            Param::optional("maxValue", ParamKind::Float, None),
            Param::optional("minValue", ParamKind::Float, None),
        ],
        imp: non_negative_derivative,
    },
    FunctionSpec {
        name: "offset",
        group: "Transform",
        description: "Adds a constant to each point.",
        params: &[SERIES, Param::required("factor", ParamKind::Float)],
        imp: offset,
    },
    FunctionSpec {
        name: "offsetToZero",
        group: "Transform",
        description: "Subtracts the series' minimum from each point.",
        params: &[SERIES],
        imp: offset_to_zero,
    },
    FunctionSpec {
        name: "perSecond",
        group: "Transform",
        description: "The non-negative derivative divided by the step: a rate per second.",
        params: &[
            SERIES,
            Param::optional("maxValue", ParamKind::Float, None),
            Param::optional("minValue", ParamKind::Float, None),
        ],
        imp: per_second,
    },
    FunctionSpec {
        name: "pow",
        group: "Transform",
        description: "Raises each point to a power.",
        params: &[SERIES, Param::required("factor", ParamKind::Float)],
        imp: pow,
    },
    FunctionSpec {
        name: "round",
        group: "Transform",
        description: "Rounds each point to a number of decimals.",
        params: &[SERIES, Param::optional("precision", ParamKind::Integer, Some("0"))],
        imp: round,
    },
    FunctionSpec {
        name: "scale",
        group: "Transform",
        description: "Multiplies each point by a constant.",
        params: &[SERIES, Param::required("factor", ParamKind::Float)],
        imp: scale,
    },
    FunctionSpec {
        name: "scaleToSeconds",
        group: "Transform",
        description: "Rescales per-step values to per-`seconds` values.",
        params: &[SERIES, Param::required("seconds", ParamKind::Float)],
        imp: scale_to_seconds,
    },
    FunctionSpec {
        name: "squareRoot",
        group: "Transform",
        description: "The square root of each point.",
        params: &[SERIES],
        imp: square_root,
    },
    FunctionSpec {
        name: "summarize",
        group: "Transform",
        description: "Re-buckets the values into fixed intervals with an aggregation.",
        params: &[
            SERIES,
            Param::required("intervalString", ParamKind::Interval),
            Param::optional("func", ParamKind::AggFunc, Some("\"sum\"")).options(Agg::NAMES),
            Param::optional("alignToFrom", ParamKind::Boolean, Some("false")),
        ],
        imp: summarize,
    },
    FunctionSpec {
        name: "timeShift",
        group: "Transform",
        description: "The series over a window shifted back (or forward) in time, drawn over this one.",
        params: &[
            SERIES,
            Param::required("timeShift", ParamKind::Interval),
            Param::optional("resetEnd", ParamKind::Boolean, Some("true")),
            Param::optional("alignDst", ParamKind::Boolean, Some("false")),
        ],
        imp: time_shift,
    },
    FunctionSpec {
        name: "timeSlice",
        group: "Transform",
        description: "Nulls the values outside [startSliceAt, endSliceAt].",
        params: &[
            SERIES,
            Param::required("startSliceAt", ParamKind::Date),
            Param::optional("endSliceAt", ParamKind::Date, Some("\"now\"")),
        ],
        imp: time_slice,
    },
    FunctionSpec {
        name: "transformNull",
        group: "Transform",
        description: "Replaces nulls with a default, optionally only where reference series have data.",
        params: &[
            SERIES,
            Param::optional("default", ParamKind::Float, Some("0")),
            Param::optional("referenceSeries", ParamKind::SeriesList, None),
        ],
        imp: transform_null,
    },
];

// ---------------------------------------------------------------------------------------------
// Shared helpers (calculate.rs uses them too).

/// Sets the name and, as graphite-web does after nearly every transform, the path expression.
pub(super) fn retitle(series: &mut Series, name: String) {
    series.path_expression.clone_from(&name);
    series.name = name;
}

/// Adds or replaces one tag.
pub(super) fn tag(series: &mut Series, key: &str, value: String) {
    series.tags.insert(key.to_string(), value);
}

/// C's `%g`, as graphite-web's names print a float argument.
pub(super) fn g(v: f64) -> String {
    c_g(v, 6)
}

/// Python's `str()` of an argument as written: `2` for an integer, `2.0` for a float.
pub(super) fn py_str(expr: &Expr) -> String {
    match expr {
        Expr::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Python's `"%d" % v` of a float: truncated toward zero; NaN and infinities are errors.
pub(super) fn percent_d(args: &Args<'_>, key: &str, v: f64) -> Result<String, RenderError> {
    if !v.is_finite() {
        return Err(RenderError::bad(format!("{}: {key} must be finite, not {}", args.name, py_repr(v))));
    }
    let t = v.trunc();
    Ok(if t == 0.0 { "0".to_string() } else { format!("{t:.0}") })
}

/// `round(x, ndigits)` without formatting, when the answer is certain: `x · 10^n` computed in
/// floating point is within half an ulp of the exact product, so when that product is farther
/// than a few ulps from a half-integer, rounding it picks the same integer `m` as exact decimal
/// rounding would; `m / 10^n` (both exact, `m < 2^53`, one correctly rounded division) is then
/// the double nearest to the decimal `m·10^-n`, which is what reading the decimal back gives.
/// None near a tie or out of range (the caller formats then).
fn round_fast(x: f64, ndigits: i64) -> Option<f64> {
    if !(0..=15).contains(&ndigits) {
        return None;
    }
    let scale = 10f64.powi(ndigits as i32); // exact for 10^0..10^15
    let y = x * scale;
    if y.is_nan() || y.abs() >= 4.0e15 {
        return None;
    }
    let distance_to_tie = ((y - y.trunc()).abs() - 0.5).abs();
    if distance_to_tie <= y.abs() * 8.0 * f64::EPSILON + f64::MIN_POSITIVE {
        return None;
    }
    // f64::round rounds halves away from zero, but no half reaches here.
    let m = y.round();
    let r = m / scale;
    Some(if r == 0.0 { 0.0 * x } else { r })
}

/// Python's `round(x, ndigits)` for a float: the decimal nearest to the exact binary value,
/// ties to even (Rust's exact formatting rounds the same way), read back.
pub(super) fn py_round(x: f64, ndigits: i64) -> f64 {
    // CPython's limits: past them the answer is x itself, or a signed zero.
    const NDIGITS_MAX: i64 = 323;
    const NDIGITS_MIN: i64 = -308;
    if !x.is_finite() || x == 0.0 || ndigits > NDIGITS_MAX {
        return x;
    }
    if ndigits < NDIGITS_MIN {
        return 0.0 * x;
    }
    if ndigits >= 0 {
        // Every float of magnitude ≥ 2^52 is an integer already.
        if x.abs() >= 4_503_599_627_370_496.0 {
            return x;
        }
        if let Some(fast) = round_fast(x, ndigits) {
            return fast;
        }
        return format!("{x:.*}", ndigits as usize).parse().unwrap_or(x);
    }
    // Rounding to a multiple of 10^k, k > 0: keep the significant digits above 10^k.
    let k = -ndigits;
    let exponent: i64 = format!("{x:e}").rsplit_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    let kept = exponent - k + 1;
    if kept >= 1 {
        return format!("{x:.*e}", (kept - 1) as usize).parse().unwrap_or(x);
    }
    let rounds_up = kept == 0 && {
        // |x| is in [10^(k-1), 10^k): it rounds away from zero only past 5·10^(k-1), a tie
        // going to the even 0. The exact expansion has at most 767 significant digits.
        let exact = format!("{:.800e}", x.abs());
        let digits = exact.split('e').next().unwrap_or("").replace('.', "");
        let (first, rest) = digits.split_at(1);
        first > "5" || (first == "5" && rest.bytes().any(|c| c != b'0'))
    };
    let magnitude = if rounds_up { format!("1e{k}").parse().unwrap_or(f64::INFINITY) } else { 0.0 };
    magnitude.copysign(x)
}

/// graphite-web's `safePow` (`math.pow`, with its errors as None): None for a None base, and
/// for finite arguments whose result is not finite (0 to a negative power, overflow, a
/// negative base to a fractional power).
pub(super) fn safe_pow(x: Option<f64>, y: f64) -> Option<f64> {
    let x = x?;
    let r = x.powf(y);
    if x.is_finite() && y.is_finite() && !r.is_finite() {
        return None;
    }
    Some(r)
}

/// graphite-web's `xff(nonNull, total, xFilesFactor)`.
pub(super) fn xff(non_null: usize, total: f64, x_files_factor: f64) -> bool {
    non_null > 0 && total != 0.0 && non_null as f64 / total >= x_files_factor
}

/// An aggregation named exactly as graphite-web's `getAggFunc` accepts it (no `…Series`
/// suffix: graphite-web refuses those in summarize and the moving windows).
pub(super) fn agg_named(args: &Args<'_>, func: &str) -> Result<Agg, RenderError> {
    Agg::NAMES
        .contains(&func)
        .then(|| Agg::from_name(func))
        .flatten()
        .ok_or_else(|| RenderError::bad(format!("{}: unsupported aggregation function {func:?}", args.name)))
}

/// An interval string in seconds, as graphite-web's `parseTimeOffset` reads it (signed).
pub(super) fn interval_seconds(args: &Args<'_>, key: &str, text: &str) -> Result<i64, RenderError> {
    crate::render::time::parse_interval(text).map_err(|e| RenderError::bad(format!("{}: {key}: {e}", args.name)))
}

/// An interval argument that must be positive (a bucket or period length), in seconds.
fn positive_interval(args: &Args<'_>, i: usize, key: &str) -> Result<(String, i64), RenderError> {
    let text = args.string(i, key)?;
    let seconds = interval_seconds(args, key, text)?;
    if seconds <= 0 {
        return Err(RenderError::bad(format!("{}: {key} must be a positive interval, not {text:?}", args.name)));
    }
    Ok((text.to_string(), seconds))
}

/// `f` applied to every value of every series of argument 0, each series renamed by `name`
/// and tagged `key=value`.
fn map_values(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    tag_kv: Option<(&str, String)>,
    name: impl Fn(&str) -> String,
    f: impl Fn(Option<f64>) -> Option<f64>,
) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        if let Some((k, v)) = &tag_kv {
            tag(s, k, v.clone());
        }
        let new_name = name(&s.name);
        retitle(s, new_name);
        for v in &mut s.values {
            *v = f(*v);
        }
    }
    Ok(list)
}

/// Like [`map_values`], with the whole value vector rewritten at once (for stateful passes).
fn rewrite_values(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    tag_kv: Option<(&str, String)>,
    name: impl Fn(&str) -> String,
    f: impl Fn(&Series) -> Vec<Option<f64>>,
) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        if let Some((k, v)) = &tag_kv {
            tag(s, k, v.clone());
        }
        let values = f(s);
        debug_assert_eq!(values.len(), s.values.len());
        s.values = values;
        let new_name = name(&s.name);
        retitle(s, new_name);
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Pointwise arithmetic.

fn scale(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let factor = args.number(1, "factor")?;
    let tag_kv = Some(("scale", py_repr(factor)));
    map_values(ctx, args, tag_kv, |n| format!("scale({n},{})", g(factor)), |v| v.map(|v| v * factor))
}

fn offset(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let factor = args.number(1, "factor")?;
    let tag_kv = Some(("offset", py_repr(factor)));
    map_values(ctx, args, tag_kv, |n| format!("offset({n},{})", g(factor)), |v| v.map(|v| v + factor))
}

fn pow(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let factor = args.number(1, "factor")?;
    let tag_kv = Some(("pow", py_repr(factor)));
    map_values(ctx, args, tag_kv, |n| format!("pow({n},{})", g(factor)), |v| safe_pow(v, factor))
}

fn absolute(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    map_values(ctx, args, Some(("absolute", "1".into())), |n| format!("absolute({n})"), |v| v.map(f64::abs))
}

fn invert(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    map_values(ctx, args, Some(("invert", "1".into())), |n| format!("invert({n})"), |v| safe_pow(v, -1.0))
}

fn square_root(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    map_values(ctx, args, Some(("squareRoot", "1".into())), |n| format!("squareRoot({n})"), |v| safe_pow(v, 0.5))
}

fn is_non_null(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let f = |v: Option<f64>| Some(if v.is_some() { 1.0 } else { 0.0 });
    map_values(ctx, args, Some(("isNonNull", "1".into())), |n| format!("isNonNull({n})"), f)
}

/// `scaleToSeconds`: value × seconds / step, rounded to 6 decimals as graphite-web rounds it.
fn scale_to_seconds(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let seconds = args.number(1, "seconds")?;
    let shown = percent_d(args, "seconds", seconds)?;
    let tag_kv = Some(("scaleToSeconds", py_repr(seconds)));
    rewrite_values(
        ctx,
        args,
        tag_kv,
        |n| format!("scaleToSeconds({n},{shown})"),
        |s| {
            let factor = seconds / s.step as f64;
            s.values.iter().map(|v| v.map(|v| py_round(v * factor, 6))).collect()
        },
    )
}

/// `log(seriesList, base=10)`: None for values ≤ 0, as graphite-web's `math.log(v, base)`.
fn log(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let base = args.number_or(1, "base", 10.0)?;
    let shown = match args.get(1, "base") {
        None | Some(Expr::None) => "10".to_string(),
        Some(e) => py_str(e),
    };
    if base <= 0.0 || base == 1.0 || base.is_nan() {
        return Err(RenderError::bad(format!("{}: base must be positive and not 1, not {shown}", args.name)));
    }
    let den = base.ln();
    let tag_kv = Some(("log", shown.clone()));
    let f = |v: Option<f64>| v.filter(|v| v.is_nan() || *v > 0.0).map(|v| v.ln() / den);
    map_values(ctx, args, tag_kv, |n| format!("log({n}, {shown})"), f)
}

/// `round(seriesList, precision=None)`.
fn round(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let precision = match args.get(1, "precision") {
        None | Some(Expr::None) => None,
        Some(_) => Some(args.int(1, "precision")?),
    };
    let digits = precision.unwrap_or(0);
    let tag_kv = Some(("round", digits.to_string()));
    let name = |n: &str| match precision {
        None => format!("round({n})"),
        Some(p) => format!("round({n},{})", g(p as f64)),
    };
    map_values(ctx, args, tag_kv, name, |v| v.map(|v| py_round(v, digits)))
}

/// `offsetToZero`: subtracts the minimum (tagged, `None` for a series without values).
fn offset_to_zero(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        let minimum = py_min(s.values.iter().flatten().copied());
        tag(s, "offsetToZero", minimum.map_or_else(|| "None".to_string(), py_repr));
        let name = format!("offsetToZero({})", s.name);
        retitle(s, name);
        if let Some(m) = minimum {
            for v in s.values.iter_mut().flatten() {
                *v -= m;
            }
        }
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Differences and sums over time.

fn derivative(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    rewrite_values(
        ctx,
        args,
        Some(("derivative", "1".into())),
        |n| format!("derivative({n})"),
        |s| {
            let mut prev = None;
            s.values
                .iter()
                .map(|&v| {
                    let delta = match (prev, v) {
                        (Some(p), Some(v)) => Some(v - p),
                        _ => None,
                    };
                    prev = v;
                    delta
                })
                .collect()
        },
    )
}

/// graphite-web's `_nonNegativeDelta`: (delta, new previous value). A None value is a
/// reading missing: no delta, and the next one has no previous value. (graphite-web 1.1.8
/// raises a TypeError comparing None with maxValue/minValue; we treat it as without bounds.)
fn non_negative_delta(
    v: Option<f64>,
    prev: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let Some(val) = v else { return (None, None) };
    if max.is_some_and(|m| val > m) || min.is_some_and(|m| val < m) {
        return (None, None);
    }
    let Some(p) = prev else { return (None, Some(val)) };
    if val >= p {
        return (Some(val - p), Some(val));
    }
    if let Some(m) = max {
        return (Some(m + 1.0 + val - p - min.unwrap_or(0.0)), Some(val));
    }
    if let Some(m) = min {
        return (Some(val - m), Some(val));
    }
    (None, Some(val))
}

fn non_negative_deltas(s: &Series, max: Option<f64>, min: Option<f64>) -> Vec<Option<f64>> {
    let mut prev = None;
    s.values
        .iter()
        .map(|&v| {
            let (delta, p) = non_negative_delta(v, prev, max, min);
            prev = p;
            delta
        })
        .collect()
}

fn non_negative_derivative(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let (max, min) = (args.opt_number(1, "maxValue")?, args.opt_number(2, "minValue")?);
    let tag_kv = Some(("nonNegativeDerivative", "1".into()));
    rewrite_values(ctx, args, tag_kv, |n| format!("nonNegativeDerivative({n})"), |s| non_negative_deltas(s, max, min))
}

/// `perSecond`: the non-negative delta over the step, rounded to 6 decimals.
fn per_second(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let (max, min) = (args.opt_number(1, "maxValue")?, args.opt_number(2, "minValue")?);
    rewrite_values(
        ctx,
        args,
        Some(("perSecond", "1".into())),
        |n| format!("perSecond({n})"),
        |s| {
            let step = s.step as f64;
            non_negative_deltas(s, max, min).into_iter().map(|d| d.map(|d| py_round(d / step, 6))).collect()
        },
    )
}

/// `integral`: the running sum; a None stays None without resetting the sum.
fn integral(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    rewrite_values(
        ctx,
        args,
        Some(("integral", "1".into())),
        |n| format!("integral({n})"),
        |s| {
            let mut current = 0.0;
            s.values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        current += v;
                        current
                    })
                })
                .collect()
        },
    )
}

/// `integralByInterval`: the running sum, back to 0 at each boundary of `intervalUnit`
/// counted from the request's `from`. graphite-web shows the sum so far (not None) at a None.
fn integral_by_interval(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let unit = args.string(1, "intervalUnit")?;
    let duration = interval_seconds(args, "intervalUnit", unit)?.unsigned_abs();
    let duration = i64::try_from(duration)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| RenderError::bad(format!("{}: intervalUnit must not be empty, not {unit:?}", args.name)))?;
    let origin = ctx.from;
    let tag_kv = Some(("integralByInterval", unit.to_string()));
    rewrite_values(
        ctx,
        args,
        tag_kv,
        |n| format!("integralByInterval({n},'{unit}')"),
        |s| {
            let mut current = 0.0;
            s.points()
                .map(|(t, v)| {
                    let since = t.saturating_sub(origin);
                    if since.div_euclid(duration) != since.saturating_sub(s.step).div_euclid(duration) {
                        current = 0.0;
                    }
                    if let Some(v) = v {
                        current += v;
                    }
                    Some(current)
                })
                .collect()
        },
    )
}

/// `delay(seriesList, steps)`: values moved `steps` later (earlier if negative), Nones in the
/// gap. graphite-web's `delay(x, 0)` leaves no values at all (its slice `series[:-0]` is
/// empty); so does ours, with the series' end brought back to its start.
fn delay(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let steps = args.int(1, "steps")?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        tag(s, "delay", steps.to_string());
        let n = s.values.len();
        let k = usize::try_from(steps.unsigned_abs()).unwrap_or(usize::MAX).min(n);
        s.values = match steps {
            0 => Vec::new(),
            1.. => std::iter::repeat_n(None, k).chain(s.values[..n - k].iter().copied()).collect(),
            _ => s.values[k..].iter().copied().chain(std::iter::repeat_n(None, k)).collect(),
        };
        s.end = s.start + s.step * s.values.len() as i64;
        s.name = format!("delay({},{steps})", s.name);
        s.path_expression.clone_from(&s.name);
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Nulls.

/// `keepLastValue(seriesList, limit=inf)`: runs of at most `limit` Nones (a trailing run too)
/// take the last value before them; leading Nones stay.
fn keep_last_value(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let limit = args.number_or(1, "limit", f64::INFINITY)?;
    rewrite_values(
        ctx,
        args,
        None,
        |n| format!("keepLastValue({n})"),
        |s| {
            let mut values = s.values.clone();
            let fillable = |nones: usize| nones > 0 && nones as f64 <= limit;
            let (mut nones, mut last) = (0usize, None);
            for i in 0..values.len() {
                match values[i] {
                    None => nones += 1,
                    Some(v) => {
                        if fillable(nones) && last.is_some() {
                            values[i - nones..i].fill(last);
                        }
                        nones = 0;
                        last = Some(v);
                    }
                }
            }
            if fillable(nones) && last.is_some() {
                let n = values.len();
                values[n - nones..].fill(last);
            }
            values
        },
    )
}

/// `transformNull(seriesList, default=0, referenceSeries=None)`.
///
/// With reference series, a None is replaced only where some reference series has a value at
/// the same index. graphite-web pairs the two with `izip_longest`, so a longer reference list
/// lengthens the series; we keep the series' own length (graphite-web's JSON could show one
/// extra point, at the series' end).
fn transform_null(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let (default, shown) = match args.get(1, "default") {
        None | Some(Expr::None) => (0.0, "0".to_string()),
        Some(_) => {
            let d = args.number(1, "default")?;
            (d, py_repr(d))
        }
    };
    let reference = match args.get(2, "referenceSeries") {
        None | Some(Expr::None) => Vec::new(),
        Some(_) => args.series(ctx, 2, "referenceSeries")?,
    };
    let rows = reference.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let has_data = |i: usize| reference.iter().any(|r| r.values.get(i).copied().flatten().is_some());
    let defaults: Vec<Option<f64>> = (0..rows).map(|i| has_data(i).then_some(default)).collect();
    let suffix = if reference.is_empty() { "" } else { ",referenceSeries" };
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        tag(s, "transformNull", shown.clone());
        if !reference.is_empty() {
            tag(s, "referenceSeries", "1".into());
        }
        let name = format!("transformNull({},{}{suffix})", s.name, g(default));
        retitle(s, name);
        for (i, v) in s.values.iter_mut().enumerate() {
            if v.is_none() {
                *v = if defaults.is_empty() { Some(default) } else { defaults.get(i).copied().flatten() };
            }
        }
    }
    Ok(list)
}

/// `changed`: 1 where a value differs from the last value seen (None included as "seen"
/// until a value comes), else 0.
fn changed(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    rewrite_values(
        ctx,
        args,
        None,
        |n| format!("changed({n})"),
        |s| {
            let mut previous: Option<f64> = None;
            s.values
                .iter()
                .map(|&v| {
                    let Some(p) = previous else {
                        previous = v;
                        return Some(0.0);
                    };
                    match v {
                        Some(v) if p != v => {
                            previous = Some(v);
                            Some(1.0)
                        }
                        _ => Some(0.0),
                    }
                })
                .collect()
        },
    )
}

/// `consolidateBy(seriesList, func)`: how maxDataPoints consolidation reduces the series.
fn consolidate_by(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let func = args.string(1, "consolidationFunc")?;
    let consolidation = Consolidation::from_name(func)
        .ok_or_else(|| RenderError::bad(format!("{}: invalid consolidation function {func:?}", args.name)))?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        s.consolidation = consolidation;
        tag(s, "consolidateBy", func.to_string());
        let name = format!("consolidateBy({},\"{func}\")", s.name);
        retitle(s, name);
    }
    Ok(list)
}

// ---------------------------------------------------------------------------------------------
// Re-bucketing.

/// `summarize(seriesList, intervalString, func='sum', alignToFrom=False)`.
///
/// Buckets are aligned to multiples of the interval (since the epoch) unless alignToFrom, when
/// they start at the series' start and the last one may reach past its end. A bucket gets a
/// value if its non-null share, counted against interval/step points, passes the series'
/// xFilesFactor.
fn summarize(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let (text, interval) = positive_interval(args, 1, "intervalString")?;
    let func = args.string_or(2, "func", "sum")?;
    let agg = agg_named(args, func)?;
    let align_to_from = args.bool_or(3, "alignToFrom", false)?;
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        let (start, end) = if align_to_from {
            (s.start, s.end)
        } else {
            (s.start - s.start.rem_euclid(interval), s.end - s.end.rem_euclid(interval) + interval)
        };
        let buckets = (end - start + interval - 1).div_euclid(interval).max(0);
        ctx.spend(0, usize::try_from(buckets).unwrap_or(usize::MAX))?;
        let (values, aligned_end) = summarize_values(s, agg, interval, start, end);
        tag(s, "summarize", text.clone());
        tag(s, "summarizeFunction", func.to_string());
        let flag = if align_to_from { ", true" } else { "" };
        let name = format!("summarize({}, \"{text}\", \"{func}\"{flag})", s.name);
        retitle(s, name);
        s.start = start;
        s.step = interval;
        s.end = if align_to_from { aligned_end } else { end };
        s.overhang = 0;
        s.values = values;
        debug_assert_eq!(s.values.len() as i64, (s.end - s.start) / s.step);
    }
    Ok(list)
}

/// graphite-web's `_summarizeValues`: one value per bucket [t, t + interval) from `start` while
/// t < `end`; returns the values and the first t not bucketed.
fn summarize_values(s: &Series, agg: Agg, interval: i64, start: i64, end: i64) -> (Vec<Option<f64>>, i64) {
    let points_per_interval = interval as f64 / s.step as f64;
    let ts = |i: usize| s.start + i as i64 * s.step;
    let n = s.values.len();
    let (mut i, mut t) = (0usize, start);
    let mut out = Vec::new();
    while t < end {
        let (mut first, mut non_null) = (i, 0usize);
        while i < n && ts(i) < t + interval {
            if ts(i) <= t {
                first = i;
            }
            if ts(i) >= t && s.values[i].is_some() {
                non_null += 1;
            }
            i += 1;
        }
        let keep = xff(non_null, points_per_interval, s.x_files_factor);
        out.push(if keep { agg.apply(&s.values[first..i]) } else { None });
        t += interval;
    }
    (out, t)
}

/// `hitcount(seriesList, intervalString, alignToInterval=False)`: values are hits per second;
/// each one's step is spread over the buckets it overlaps. Buckets end at the series' end,
/// unless alignToInterval, when the series is fetched again from `from` truncated to the day,
/// hour or minute (in the request's time zone) and buckets start there.
fn hitcount(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let (text, interval) = positive_interval(args, 1, "intervalString")?;
    let align = args.bool_or(2, "alignToInterval", false)?;
    let mut list = if align {
        let from = truncate_local(ctx.from, interval, ctx.tz);
        let expr =
            args.get(0, "seriesList").ok_or_else(|| RenderError::bad("hitcount: argument seriesList is missing"))?;
        let mut list = ctx.shifted(from, ctx.until).eval(expr)?;
        for s in &mut list {
            s.end = s.start + (s.end - s.start).div_euclid(interval) * interval + interval;
        }
        list
    } else {
        args.series(ctx, 0, "seriesList")?
    };
    for s in &mut list {
        let span = s.end - s.start;
        let buckets = span.div_euclid(interval) + i64::from(span.rem_euclid(interval) != 0);
        ctx.spend(0, usize::try_from(buckets).unwrap_or(usize::MAX))?;
        let start = s.end - buckets * interval;
        s.values = hit_buckets(s, start, interval, buckets.max(0) as usize);
        tag(s, "hitcount", text.clone());
        let flag = if align { ", true" } else { "" };
        let name = format!("hitcount({}, \"{text}\"{flag})", s.name);
        retitle(s, name);
        s.start = start;
        s.step = interval;
        s.end = start + interval * s.values.len() as i64;
        s.overhang = 0;
    }
    Ok(list)
}

/// The hits of each bucket [start + k·interval, …), summed in the order graphite-web adds them.
fn hit_buckets(s: &Series, start: i64, interval: i64, n_buckets: usize) -> Vec<Option<f64>> {
    let mut sums: Vec<Option<f64>> = vec![None; n_buckets];
    let last = n_buckets as i64 - 1;
    let mut add = |bucket: i64, hits: f64| {
        if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| sums.get_mut(b)) {
            *slot = Some(slot.unwrap_or(0.0) + hits);
        }
    };
    for (t, v) in s.points() {
        let Some(v) = v else { continue };
        let (start_bucket, start_mod) = ((t - start).div_euclid(interval), (t - start).rem_euclid(interval));
        let (mut end_bucket, mut end_mod) =
            ((t + s.step - start).div_euclid(interval), (t + s.step - start).rem_euclid(interval));
        if end_bucket > last {
            (end_bucket, end_mod) = (last, interval);
        }
        if start_bucket == end_bucket {
            if start_bucket >= 0 {
                add(start_bucket, v * (end_mod - start_mod) as f64);
            }
            continue;
        }
        if start_bucket >= 0 {
            add(start_bucket, v * (interval - start_mod) as f64);
        }
        for j in (start_bucket + 1).max(0)..end_bucket {
            add(j, v * interval as f64);
        }
        if end_mod > 0 {
            add(end_bucket, v * end_mod as f64);
        }
    }
    sums
}

/// `t` truncated to the start of its local day (interval ≥ 1 day), hour (≥ 1 hour) or minute
/// (≥ 1 minute) in `tz`, at `t`'s own UTC offset (as graphite-web rebuilds the datetime with
/// the original tzinfo); unchanged for shorter intervals.
fn truncate_local(t: i64, interval: i64, tz: chrono_tz::Tz) -> i64 {
    let unit = match interval {
        86_400.. => 86_400,
        3_600.. => 3_600,
        60.. => 60,
        _ => return t,
    };
    let local = t + utc_offset(t, tz);
    t - local.rem_euclid(unit)
}

/// `tz`'s offset from UTC at `t`, in seconds.
fn utc_offset(t: i64, tz: chrono_tz::Tz) -> i64 {
    use chrono::{Offset, TimeZone};
    chrono::DateTime::from_timestamp(t, 0)
        .map_or(0, |dt| i64::from(tz.offset_from_utc_datetime(&dt.naive_utc()).fix().local_minus_utc()))
}

/// Whether `t` falls in daylight-saving time in `tz`.
fn is_dst(t: i64, tz: chrono_tz::Tz) -> bool {
    use chrono::TimeZone;
    use chrono_tz::OffsetComponents;
    chrono::DateTime::from_timestamp(t, 0)
        .is_some_and(|dt| !tz.offset_from_utc_datetime(&dt.naive_utc()).dst_offset().is_zero())
}

// ---------------------------------------------------------------------------------------------
// Other windows.

/// `timeShift(seriesList, timeShift, resetEnd=True, alignDST=False)`: the argument evaluated
/// again over the window moved by `timeShift` (back when it has no sign), relabelled onto the
/// first series of this window. With alignDST, a shift from a window wholly in DST to one
/// wholly outside (or back) is corrected by an hour, in the request's time zone (graphite-web
/// asks the process's local zone, the same one where TIME_ZONE is the server's).
fn time_shift(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let written = args.string(1, "timeShift")?;
    if written.is_empty() {
        return Err(RenderError::bad(format!("{}: timeShift must not be empty", args.name)));
    }
    let shift =
        if written.starts_with(|c: char| c.is_ascii_digit()) { format!("-{written}") } else { written.to_string() };
    let delta = crate::render::time::parse_shift(written)
        .map_err(|e| RenderError::bad(format!("{}: timeShift: {e}", args.name)))?;
    let reset_end = args.bool_or(2, "resetEnd", true)?;
    let align_key = if args.get(3, "alignDST").is_some() { "alignDST" } else { "alignDst" };
    let align_dst = args.bool_or(3, align_key, false)?;
    let out_of_range = || RenderError::bad(format!("{}: shifting by {shift} leaves the time range", args.name));
    let mut from = ctx.from.checked_add(delta).ok_or_else(out_of_range)?;
    let mut until = ctx.until.checked_add(delta).ok_or_else(out_of_range)?;
    if align_dst {
        let request = (is_dst(ctx.from, ctx.tz), is_dst(ctx.until, ctx.tz));
        let shifted = (is_dst(from, ctx.tz), is_dst(until, ctx.tz));
        let hours = match (request, shifted) {
            ((true, true), (false, false)) => 1,
            ((false, false), (true, true)) => -1,
            _ => 0,
        };
        from += hours * 3600;
        until += hours * 3600;
    }
    let original = args.series(ctx, 0, "seriesList")?;
    let Some(first) = original.first() else { return Ok(Vec::new()) };
    let expr =
        args.get(0, "seriesList").ok_or_else(|| RenderError::bad("timeShift: argument seriesList is missing"))?;
    let mut list = ctx.shifted(from, until).eval(expr)?;
    for s in &mut list {
        tag(s, "timeShift", shift.clone());
        s.name = format!("timeShift({}, \"{shift}\")", s.name);
        let end = if reset_end { first.end } else { s.end - s.start + first.start };
        s.start = first.start;
        // graphite-web shows the values that have a timestamp in [start, end] (its JSON pairs
        // them with range(start, end + 1, step)); keep those, and the grid exact.
        let shown = if end < s.start { 0 } else { (end - s.start) / s.step + 1 };
        s.values.truncate(usize::try_from(shown).unwrap_or(usize::MAX));
        s.end = s.start + s.step * s.values.len() as i64;
    }
    Ok(list)
}

/// `timeSlice(seriesList, startSliceAt, endSliceAt="now")`: values outside the slice become
/// None. The times are read as `from`/`until` are (the request's zone and `now`; graphite-web
/// uses the server's clock). As in graphite-web, the first value is taken to be at the
/// request's `from`, not at the series' start, so the slice is off by up to one step when
/// they differ.
fn time_slice(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let time = |i: usize, key: &str, default: Option<&str>| -> Result<i64, RenderError> {
        let text = match args.get(i, key) {
            None | Some(Expr::None) => match default {
                Some(d) => d.to_string(),
                None => args.string(i, key)?.to_string(),
            },
            Some(Expr::Int(v)) => v.to_string(),
            Some(_) => args.string(i, key)?.to_string(),
        };
        crate::render::time::parse_at_time(&text, ctx.tz, ctx.now)
            .map_err(|e| RenderError::bad(format!("{}: {key}: {e}", args.name)))
    };
    let (start, end) = (time(1, "startSliceAt", None)?, time(2, "endSliceAt", Some("now"))?);
    let mut list = args.series(ctx, 0, "seriesList")?;
    for s in &mut list {
        tag(s, "timeSliceStart", start.to_string());
        tag(s, "timeSliceEnd", end.to_string());
        s.name = format!("timeSlice({}, {start}, {end})", s.name);
        let mut t = ctx.from;
        for v in &mut s.values {
            if t < start || t > end {
                *v = None;
            }
            t = t.saturating_add(s.step);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::functions::testutil::TestStore;

    const NAN: f64 = f64::NAN;

    fn store() -> TestStore {
        let v = |xs: &[f64]| xs.iter().map(|x| if x.is_nan() { None } else { Some(*x) }).collect::<Vec<_>>();
        TestStore::new(vec![
            // 10 points at 60 s from t = 600.
            Series::new("a.b", 600, 60, v(&[1.0, 2.0, NAN, 4.0, -5.0, 6.5, NAN, NAN, 9.0, 10.0])),
            Series::new("a.c", 600, 60, v(&[0.0, 3.0, 1.0, NAN, 2.5, 2.5, 100.0, 4.0, 5.0, NAN])),
            Series::new("counter", 600, 60, v(&[10.0, 20.0, 5.0, 15.0, NAN, 25.0, 30.0, 2.0, 8.0, 9.0])),
            Series::new("rate", 0, 10, (0..300).map(|i| Some((i % 7) as f64)).collect()),
        ])
    }

    /// One expected series: name, path expression, added tags (key, value), start, step, values.
    struct Want<'a> {
        name: &'a str,
        tags: &'a [(&'a str, &'a str)],
        start: i64,
        step: i64,
        values: &'a [f64],
    }

    fn same(a: Option<f64>, b: f64) -> bool {
        match a {
            None => b.is_nan(),
            Some(a) => a == b || (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        }
    }

    /// Evaluates `target` over (540, 1140] (the ten points of a.b) and compares.
    fn check(target: &str, want: &[Want<'_>]) {
        let got = store().eval(target, 540, 1140, 2000).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(got.len(), want.len(), "{target}: {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.name, w.name, "{target}");
            assert_eq!((g.start, g.step), (w.start, w.step), "{target}: grid");
            assert_eq!(g.end, g.start + g.step * g.values.len() as i64, "{target}: end");
            assert_eq!(g.values.len(), w.values.len(), "{target}: {:?}", g.values);
            for (i, (a, b)) in g.values.iter().zip(w.values).enumerate() {
                assert!(same(*a, *b), "{target}: value {i} is {a:?}, want {b}");
            }
            for (k, v) in w.tags {
                assert_eq!(g.tags.get(*k).map(String::as_str), Some(*v), "{target}: tag {k}");
            }
        }
    }

    fn one<'a>(name: &'a str, tags: &'a [(&'a str, &'a str)], values: &'a [f64]) -> [Want<'a>; 1] {
        [Want { name, tags, start: 600, step: 60, values }]
    }

    #[test]
    fn pointwise_arithmetic() {
        check(
            "scale(a.b,2)",
            &one(
                "scale(a.b,2)",
                &[("scale", "2.0"), ("name", "a.b")],
                &[2., 4., NAN, 8., -10., 13., NAN, NAN, 18., 20.],
            ),
        );
        check(
            "scale(a.b,0.1)",
            &one("scale(a.b,0.1)", &[("scale", "0.1")], &[0.1, 0.2, NAN, 0.4, -0.5, 0.65, NAN, NAN, 0.9, 1.0]),
        );
        check(
            "offset(a.b,-1.5)",
            &one("offset(a.b,-1.5)", &[("offset", "-1.5")], &[-0.5, 0.5, NAN, 2.5, -6.5, 5., NAN, NAN, 7.5, 8.5]),
        );
        check(
            "absolute(a.b)",
            &one("absolute(a.b)", &[("absolute", "1")], &[1., 2., NAN, 4., 5., 6.5, NAN, NAN, 9., 10.]),
        );
        check(
            "invert(a.c)",
            &one("invert(a.c)", &[("invert", "1")], &[NAN, 1. / 3., 1., NAN, 0.4, 0.4, 0.01, 0.25, 0.2, NAN]),
        );
        check(
            "pow(a.b,2)",
            &one("pow(a.b,2)", &[("pow", "2.0")], &[1., 4., NAN, 16., 25., 42.25, NAN, NAN, 81., 100.]),
        );
        check(
            "pow(a.b,0.5)",
            &one("pow(a.b,0.5)", &[], &[1., 2f64.sqrt(), NAN, 2., NAN, 6.5f64.sqrt(), NAN, NAN, 3., 10f64.sqrt()]),
        );
        check(
            "squareRoot(a.c)",
            &one(
                "squareRoot(a.c)",
                &[("squareRoot", "1")],
                &[0., 3f64.sqrt(), 1., NAN, 2.5f64.sqrt(), 2.5f64.sqrt(), 10., 2., 5f64.sqrt(), NAN],
            ),
        );
        check(
            "log(a.c)",
            &one(
                "log(a.c, 10)",
                &[("log", "10")],
                &[NAN, 3f64.log10(), 0., NAN, 2.5f64.log10(), 2.5f64.log10(), 2., 4f64.log10(), 5f64.log10(), NAN],
            ),
        );
        check(
            "log(a.c, 2)",
            &one(
                "log(a.c, 2)",
                &[("log", "2")],
                &[NAN, 3f64.log2(), 0., NAN, 2.5f64.log2(), 2.5f64.log2(), 100f64.log2(), 2., 5f64.log2(), NAN],
            ),
        );
        check(
            "isNonNull(a.b)",
            &one("isNonNull(a.b)", &[("isNonNull", "1")], &[1., 1., 0., 1., 1., 1., 0., 0., 1., 1.]),
        );
        check(
            "offsetToZero(a.b)",
            &one("offsetToZero(a.b)", &[("offsetToZero", "-5.0")], &[6., 7., NAN, 9., 0., 11.5, NAN, NAN, 14., 15.]),
        );
        check(
            "round(scale(a.b,0.37))",
            &one("round(scale(a.b,0.37))", &[("round", "0")], &[0., 1., NAN, 1., -2., 2., NAN, NAN, 3., 4.]),
        );
        check(
            "round(scale(a.b,0.37),1)",
            &one("round(scale(a.b,0.37),1)", &[("round", "1")], &[0.4, 0.7, NAN, 1.5, -1.9, 2.4, NAN, NAN, 3.3, 3.7]),
        );
        check(
            "scaleToSeconds(a.b,1)",
            &one(
                "scaleToSeconds(a.b,1)",
                &[("scaleToSeconds", "1.0")],
                &[0.016667, 0.033333, NAN, 0.066667, -0.083333, 0.108333, NAN, NAN, 0.15, 0.166667],
            ),
        );
        check(
            "scaleToSeconds(a.b,90.9)",
            &one("scaleToSeconds(a.b,90)", &[], &[1.515, 3.03, NAN, 6.06, -7.575, 9.8475, NAN, NAN, 13.635, 15.15]),
        );
    }

    #[test]
    fn derivatives_and_integrals() {
        check(
            "derivative(a.b)",
            &one("derivative(a.b)", &[("derivative", "1")], &[NAN, 1., NAN, NAN, -9., 11.5, NAN, NAN, NAN, 1.]),
        );
        let c = "nonNegativeDerivative(counter)";
        check(c, &one(c, &[("nonNegativeDerivative", "1")], &[NAN, 10., NAN, 10., NAN, NAN, 5., NAN, 6., 1.]));
        let c = "nonNegativeDerivative(counter,30)";
        check(c, &one("nonNegativeDerivative(counter)", &[], &[NAN, 10., 16., 10., NAN, NAN, 5., 3., 6., 1.]));
        let c = "nonNegativeDerivative(counter,minValue=1)";
        check(c, &one("nonNegativeDerivative(counter)", &[], &[NAN, 10., 4., 10., NAN, NAN, 5., 1., 6., 1.]));
        let c = "nonNegativeDerivative(counter,29,3)";
        check(c, &one("nonNegativeDerivative(counter)", &[], &[NAN, 10., 12., 10., NAN, NAN, NAN, NAN, NAN, 1.]));
        let c = "perSecond(counter)";
        check(
            c,
            &one(c, &[("perSecond", "1")], &[NAN, 0.166667, NAN, 0.166667, NAN, NAN, 0.083333, NAN, 0.1, 0.016667]),
        );
        check(
            "integral(a.b)",
            &one("integral(a.b)", &[("integral", "1")], &[1., 3., NAN, 7., 2., 8.5, NAN, NAN, 17.5, 27.5]),
        );
        // Boundaries every 3 min from `from` = 540: at 720, 900 and 1080; a null shows the sum.
        let c = "integralByInterval(a.b,'3min')";
        check(
            c,
            &one(
                "integralByInterval(a.b,'3min')",
                &[("integralByInterval", "3min")],
                &[1., 3., 0., 4., -1., 6.5, 6.5, 6.5, 9., 19.],
            ),
        );
    }

    #[test]
    fn delays_and_nulls() {
        check(
            "delay(a.b,2)",
            &one("delay(a.b,2)", &[("delay", "2")], &[NAN, NAN, 1., 2., NAN, 4., -5., 6.5, NAN, NAN]),
        );
        check("delay(a.b,-3)", &one("delay(a.b,-3)", &[], &[4., -5., 6.5, NAN, NAN, 9., 10., NAN, NAN, NAN]));
        check("delay(a.b,100)", &one("delay(a.b,100)", &[], &[NAN; 10]));
        check("delay(a.b,0)", &one("delay(a.b,0)", &[], &[]));
        check("keepLastValue(a.b)", &one("keepLastValue(a.b)", &[], &[1., 2., 2., 4., -5., 6.5, 6.5, 6.5, 9., 10.]));
        check("keepLastValue(a.b,1)", &one("keepLastValue(a.b)", &[], &[1., 2., 2., 4., -5., 6.5, NAN, NAN, 9., 10.]));
        check("keepLastValue(a.c)", &one("keepLastValue(a.c)", &[], &[0., 3., 1., 1., 2.5, 2.5, 100., 4., 5., 5.]));
        check(
            "transformNull(a.b)",
            &one("transformNull(a.b,0)", &[("transformNull", "0")], &[1., 2., 0., 4., -5., 6.5, 0., 0., 9., 10.]),
        );
        check(
            "transformNull(a.b,-1)",
            &one(
                "transformNull(a.b,-1)",
                &[("transformNull", "-1.0")],
                &[1., 2., -1., 4., -5., 6.5, -1., -1., 9., 10.],
            ),
        );
        let c = "transformNull(a.b,7,a.c)";
        check(
            c,
            &one(
                "transformNull(a.b,7,referenceSeries)",
                &[("referenceSeries", "1")],
                &[1., 2., 7., 4., -5., 6.5, 7., 7., 9., 10.],
            ),
        );
        let c = "transformNull(a.c,7,referenceSeries=a.b)";
        check(c, &one("transformNull(a.c,7,referenceSeries)", &[], &[0., 3., 1., 7., 2.5, 2.5, 100., 4., 5., 7.]));
        check("changed(a.c)", &one("changed(a.c)", &[], &[0., 1., 1., 0., 1., 0., 1., 1., 1., 0.]));
        let c = "consolidateBy(a.b,'max')";
        check(
            c,
            &one(
                "consolidateBy(a.b,\"max\")",
                &[("consolidateBy", "max")],
                &[1., 2., NAN, 4., -5., 6.5, NAN, NAN, 9., 10.],
            ),
        );
    }

    #[test]
    fn summarize_buckets() {
        // Buckets of 5 min aligned to the epoch: [600, 900), [900, 1200) and, as graphite-web
        // always adds one past the end, [1200, 1500).
        let c = "summarize(a.b,'5min')";
        check(
            c,
            &[Want {
                name: "summarize(a.b, \"5min\", \"sum\")",
                tags: &[("summarize", "5min"), ("summarizeFunction", "sum")],
                start: 600,
                step: 300,
                values: &[2., 25.5, NAN],
            }],
        );
        let c = "summarize(a.b,'4min','avg')";
        check(
            c,
            &[Want {
                name: "summarize(a.b, \"4min\", \"avg\")",
                tags: &[],
                start: 480,
                step: 240,
                values: &[1.5, 5.5 / 3., 9.5, NAN],
            }],
        );
        let c = "summarize(a.b,'4min','max',true)";
        check(
            c,
            &[Want {
                name: "summarize(a.b, \"4min\", \"max\", true)",
                tags: &[],
                start: 600,
                step: 240,
                values: &[4., 6.5, 10.],
            }],
        );
        let c = "summarize(a.b,'4min','count',alignToFrom=true)";
        check(
            c,
            &[Want {
                name: "summarize(a.b, \"4min\", \"count\", true)",
                tags: &[],
                start: 600,
                step: 240,
                values: &[3., 2., 2.],
            }],
        );
    }

    #[test]
    fn hitcount_spreads_rates_over_buckets() {
        // rate: 10 s steps, value (t / 10) % 7. Over (540, 1140] the fetch holds 550..1140, so
        // the four 3-minute buckets end at 1150 and start at 430; each point adds value × 10.
        let bucket = |lo: i64, hi: i64| (lo..hi).step_by(10).map(|t| ((t / 10) % 7) as f64 * 10.0).sum::<f64>();
        let want = [bucket(550, 610), bucket(610, 790), bucket(790, 970), bucket(970, 1150)];
        let c = "hitcount(rate,'3min')";
        check(
            c,
            &[Want {
                name: "hitcount(rate, \"3min\")",
                tags: &[("hitcount", "3min")],
                start: 430,
                step: 180,
                values: &want,
            }],
        );
    }

    #[test]
    fn time_shift_fetches_the_earlier_window() {
        let c = "timeShift(a.b,'2min')";
        let got = store().eval(c, 660, 1140, 2000).unwrap();
        assert_eq!(got[0].name, "timeShift(a.b, \"-2min\")");
        assert_eq!(got[0].path_expression, "a.b");
        assert_eq!(got[0].tags.get("timeShift").map(String::as_str), Some("-2min"));
        assert_eq!((got[0].start, got[0].end), (720, 1200));
        assert_eq!(got[0].values, vec![Some(1.0), Some(2.0), None, Some(4.0), Some(-5.0), Some(6.5), None, None]);
    }

    #[test]
    fn time_slice_counts_from_the_request_start() {
        // graphite-web takes the first value to be at `from` (545 here), not at 600: the value
        // at 600 is taken for 545 and leaves the slice [600, 900]; 900's is taken for 845 and
        // stays; 960's, taken for 905, leaves.
        let got = store().eval("timeSlice(a.c,'600','900')", 545, 1140, 2000).unwrap();
        assert_eq!(got[0].name, "timeSlice(a.c, 600, 900)");
        assert_eq!(got[0].path_expression, "a.c");
        assert_eq!(got[0].tags.get("timeSliceEnd").map(String::as_str), Some("900"));
        assert_eq!(got[0].values, vec![None, Some(3.0), Some(1.0), None, Some(2.5), Some(2.5), None, None, None, None]);
    }

    #[test]
    fn hostile_arguments_are_bad_requests() {
        for target in [
            "summarize(a.b,'0min')",
            "summarize(a.b,'-1h')",
            "summarize(a.b,'1h','sumSeries')",
            "summarize(a.b,'1x')",
            "hitcount(a.b,'0s')",
            "integralByInterval(a.b,'')",
            "scaleToSeconds(a.b,inf)",
            "log(a.b,1)",
            "consolidateBy(a.b,'median')",
            "timeShift(a.b,'')",
            "timeShift(a.b,'9999999999999999y')",
            "summarize(a.b,'1s')",
        ] {
            let store = store();
            let spent = crate::render::eval::Spent::default();
            let mut ctx = Ctx::new(&store, 540, 1140, 2000, &spent);
            ctx.limits.points_max = 1000;
            let got = ctx.eval(&crate::render::grammar::parse(target).unwrap());
            if target == "summarize(a.b,'1s')" {
                assert!(got.is_ok(), "600 one-second buckets fit");
                continue;
            }
            assert!(got.unwrap_err().is_bad_request(), "{target}");
        }
        let huge = store().eval("delay(a.b,-9223372036854775808)", 540, 1140, 2000).unwrap();
        assert!(huge[0].values.iter().all(Option::is_none));
        let nan = store().eval("scale(a.b,nan)", 540, 1140, 2000);
        assert!(nan.is_err(), "nan is not a number literal");
    }

    #[test]
    fn the_rounding_fast_path_agrees_with_exact_decimal_rounding() {
        // A spread of magnitudes, near-ties included (x.xxxxx5 written in decimal is rarely exact
        // in binary: exactly the cases the fast path must leave to the exact one).
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for i in 0..200_000u64 {
            let mantissa = (next() % 10_000_000_000) as f64;
            let x = match i % 4 {
                0 => mantissa / 10f64.powi((next() % 16) as i32),
                1 => (mantissa + 0.5) / 10f64.powi((next() % 12) as i32 + 1),
                2 => f64::from_bits(next() >> 2) % 1.0e9,
                _ => -(mantissa / 1.0e7),
            };
            let n = (next() % 9) as i64;
            if let Some(fast) = round_fast(x, n) {
                let exact: f64 = format!("{x:.*}", n as usize).parse().unwrap();
                assert_eq!(fast.to_bits(), exact.to_bits(), "round({x:?}, {n})");
                checked += 1;
            }
        }
        assert!(checked > 150_000, "the fast path is taken almost always ({checked})");
    }

    #[test]
    fn python_rounding() {
        for (x, n, want) in [
            (0.125, 2, 0.12),
            (0.375, 2, 0.38),
            (2.5, 0, 2.0),
            (-0.4, 0, -0.0),
            (2.675, 2, 2.67),
            (1234.5, -2, 1200.0),
            (1250.0, -2, 1200.0),
            (1350.0, -2, 1400.0),
            (50.0, -2, 0.0),
            (51.0, -2, 100.0),
            (-3.0, -2, -0.0),
            (1e300, 6, 1e300),
            (0.1, 400, 0.1),
        ] {
            let got = py_round(x, n);
            if let Some(fast) = round_fast(x, n) {
                let slow: f64 = format!("{x:.*}", n.max(0) as usize).parse().unwrap_or(x);
                assert_eq!(fast.to_bits(), slow.to_bits(), "round({x:?}, {n}): fast path {fast:?}, exact {slow:?}");
            }
            assert!(got == want && got.is_sign_negative() == want.is_sign_negative(), "round({x}, {n}) = {got}");
        }
        assert_eq!(safe_pow(Some(0.0), -1.0), None);
        assert_eq!(safe_pow(Some(-8.0), 1.0 / 3.0), None);
        assert_eq!(safe_pow(Some(f64::INFINITY), -1.0), Some(0.0));
    }

    /// The reference store: the unit tests' series, a longer one for look-backs and shifts,
    /// a wrapping counter without gaps, a series of nulls and one with NaN and -0.0.
    pub(in crate::render::functions) fn reference_store() -> TestStore {
        let mut store = store();
        let long = (0..40).map(|i| if i % 9 == 4 { None } else { Some((i * i % 17) as f64 - 3.0) }).collect();
        store.series.push(Series::new("long.x", 0, 60, long));
        let wrap = [10.0, 20.0, 5.0, 15.0, 29.0, 2.0, 30.0, 2.0, 8.0, 9.0];
        store.series.push(Series::new("wrap", 600, 60, wrap.iter().map(|v| Some(*v)).collect()));
        store.series.push(Series::new("nulls", 600, 60, vec![None; 10]));
        let odd = vec![
            Some(1.0),
            Some(f64::NAN),
            Some(-0.0),
            Some(1e300),
            None,
            Some(-2.5),
            Some(0.1),
            Some(0.2),
            None,
            Some(3.0),
        ];
        store.series.push(Series::new("odd", 600, 60, odd));
        store.series.push(Series::new("slow", 0, 120, (0..20).map(|i| Some(i as f64 * 10.0)).collect()));
        store
    }

    /// Targets run through both implementations, over each of `REFERENCE_WINDOWS`.
    const REFERENCE_CORPUS: &[&str] = &[
        "scale(a.*,2)",
        "scale(a.b,-0.5)",
        "scale(a.b,1e-7)",
        "scale(a.b,1e20)",
        "scale(odd,3)",
        "offset(a.b,3)",
        "offset(a.b,0.25)",
        "offset(odd,-1)",
        "offsetToZero(a.*)",
        "offsetToZero(nulls)",
        "offsetToZero(odd)",
        "absolute(a.b)",
        "absolute(odd)",
        "invert(a.c)",
        "invert(odd)",
        "pow(a.b,2)",
        "pow(a.b,0.5)",
        "pow(a.c,-1)",
        "pow(odd,2)",
        "squareRoot(a.b)",
        "squareRoot(odd)",
        "log(a.c)",
        "log(a.c,2)",
        "log(odd)",
        "isNonNull(odd)",
        "isNonNull(nulls)",
        "changed(a.c)",
        "changed(odd)",
        "changed(wrap)",
        "derivative(a.b)",
        "derivative(odd)",
        "nonNegativeDerivative(counter)",
        "nonNegativeDerivative(wrap)",
        "nonNegativeDerivative(wrap,30)",
        "nonNegativeDerivative(wrap,minValue=1)",
        "nonNegativeDerivative(wrap,29,3)",
        "nonNegativeDerivative(wrap,maxValue=25)",
        "perSecond(counter)",
        "perSecond(wrap,30)",
        "perSecond(wrap,minValue=3)",
        "perSecond(odd)",
        "integral(a.b)",
        "integral(odd)",
        "integralByInterval(a.b,'3min')",
        "integralByInterval(a.b,'1h')",
        "integralByInterval(long.x,'-2min')",
        "delay(a.b,2)",
        "delay(a.b,-3)",
        "delay(a.b,0)",
        "delay(a.b,100)",
        "delay(a.b,-100)",
        "summarize(a.b,'5min')",
        "summarize(a.b,'4min','avg')",
        "summarize(a.b,'4min','max',true)",
        "summarize(a.*,'2min','last')",
        "summarize(rate,'1min','median')",
        "summarize(a.b,'30s')",
        "summarize(a.b,'1h','avg_zero')",
        "summarize(a.b,'7min','stddev',true)",
        "summarize(a.b,'3min','multiply')",
        "summarize(a.b,'3min','diff')",
        "summarize(a.b,'3min','range')",
        "summarize(a.b,'3min','count')",
        "summarize(odd,'2min','sum')",
        "summarize(nulls,'2min','count')",
        "summarize(long.x,'150s','min',true)",
        "hitcount(rate,'3min')",
        "hitcount(a.b,'5min')",
        "hitcount(a.b,'45s')",
        "hitcount(a.b,'2min',true)",
        "hitcount(rate,'1h',true)",
        "hitcount(long.x,'5min',true)",
        "hitcount(long.x,'7min')",
        "hitcount(odd,'2min')",
        "keepLastValue(a.*)",
        "keepLastValue(a.b,1)",
        "keepLastValue(a.b,2)",
        "keepLastValue(odd)",
        "keepLastValue(nulls)",
        "transformNull(a.*)",
        "transformNull(a.b,-1)",
        "transformNull(a.b,7,a.c)",
        "transformNull(a.c,default=2.5)",
        "transformNull(a.b,1,nulls)",
        "transformNull(nulls,1,a.*)",
        "consolidateBy(a.b,'max')",
        "consolidateBy(a.b,'sum')",
        "timeShift(long.x,'2min')",
        "timeShift(long.x,'-5min')",
        "timeShift(long.x,'+1min')",
        "timeShift(long.x,'3min',false)",
        "timeShift(long.x,'1h')",
        "timeShift(a.*,'1min')",
        "round(scale(a.b,0.37))",
        "round(scale(a.b,0.37),1)",
        "round(scale(a.b,123.456),-1)",
        "round(odd,2)",
        "round(scale(long.x,1.2345),3)",
        "scaleToSeconds(a.b,1)",
        "scaleToSeconds(a.b,90.9)",
        "scaleToSeconds(odd,30)",
        "perSecond(scaleToSeconds(rate,7))",
    ];

    /// Windows (from, until] at now = 2000: aligned to the step, unaligned, short.
    pub(in crate::render::functions) const REFERENCE_WINDOWS: &[(i64, i64)] = &[(540, 1140), (545, 1199), (1000, 1130)];

    #[test]
    #[ignore = "needs graphite-web 1.1.8 (Debian's graphite-web) under /usr/bin/python3"]
    fn reference_functions_transform() {
        let store = reference_store();
        let mut reference = crate::render::functions::testutil::Reference::start();
        let mut failures = Vec::new();
        let calculate = crate::render::functions::calculate::tests::REFERENCE_CORPUS;
        for target in REFERENCE_CORPUS.iter().chain(calculate) {
            for &(from, until) in REFERENCE_WINDOWS {
                let ours = store.eval(target, from, until, 2000);
                let theirs = reference.eval(&store, target, from, until, 2000);
                let answered = theirs["series"].as_array().is_some_and(|l| !l.is_empty());
                if from == REFERENCE_WINDOWS[0].0 && !answered {
                    failures.push(format!("{target}: graphite-web answers no series ({theirs}), a useless case"));
                }
                if let Some(d) = crate::render::functions::testutil::differs(&ours, &theirs) {
                    failures.push(format!("{target} over ({from}, {until}]: {d}"));
                }
            }
        }
        assert!(failures.is_empty(), "{} differences from graphite-web:\n{}", failures.len(), failures.join("\n\n"));
    }
}
