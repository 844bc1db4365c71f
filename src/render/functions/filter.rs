//! graphite-web's `Filter Series` group: functions that keep some series of a list and drop
//! the others, by an aggregate of their values (`highest…`, `lowest…`, `…Above`, `…Below`,
//! `filterSeries`, `mostDeviant`, `removeEmptySeries`), by position (`limit`), by name
//! (`grep`, `exclude`, `unique`) or by another query (`useSeriesAbove`).
//!
//! Aggregates are graphite-web's `getAggFunc` names through [`Agg`]; ranking sorts as
//! Python's `list.sort` does (stable, None lowest: see [`super::sort`]). Counts follow
//! Python's slicing: `highest(x, -1)` keeps all but the last.

use super::aggregate::py_sum;
use super::aggregate::Agg;
use super::alias::regex_arg;
use super::sort::{sort_by_key, sort_key, sort_keyed};
use super::{FunctionSpec, Param, ParamKind};
use crate::render::eval::{Args, Ctx};
use crate::render::grammar::{parse, Expr};
use crate::render::series::Series;
use crate::render::RenderError;

/// graphite-web's aggregation names (`aggFunc` options), sorted as it sorts them.
pub(super) const AGG_FUNC_OPTIONS: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min", "multiply", "range",
    "rangeOf", "stddev", "sum", "total",
];

const SERIES_LIST: Param = Param::required("seriesList", ParamKind::SeriesList);
const N_INTEGER: Param = Param::required("n", ParamKind::Integer);
const N_FLOAT: Param = Param::required("n", ParamKind::Float);

/// A spec of this group.
const fn spec(
    name: &'static str,
    description: &'static str,
    params: &'static [Param],
    imp: super::Imp,
) -> FunctionSpec {
    FunctionSpec { name, group: "Filter Series", description, params, imp }
}

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    spec("averageAbove", "Keeps the series whose average is above n.", &[SERIES_LIST, N_FLOAT], average_above),
    spec(
        "averageBelow",
        "Keeps the series whose average is at most n (or that have no value).",
        &[SERIES_LIST, N_FLOAT],
        average_below,
    ),
    spec("currentAbove", "Keeps the series whose last value is above n.", &[SERIES_LIST, N_FLOAT], current_above),
    spec(
        "currentBelow",
        "Keeps the series whose last value is at most n (or that have no value).",
        &[SERIES_LIST, N_FLOAT],
        current_below,
    ),
    spec(
        "exclude",
        "Drops the series whose name matches the regular expression (Python syntax, searched anywhere).",
        &[SERIES_LIST, Param::required("pattern", ParamKind::String)],
        exclude,
    ),
    spec(
        "filterSeries",
        "Keeps the series whose aggregate compares to the threshold as the operator says.",
        &[
            SERIES_LIST,
            Param::required("func", ParamKind::AggFunc).options(AGG_FUNC_OPTIONS),
            Param::required("operator", ParamKind::String).options(&["!=", "<", "<=", "=", ">", ">="]),
            Param::required("threshold", ParamKind::Float),
        ],
        filter_series,
    ),
    spec(
        "grep",
        "Keeps the series whose name matches the regular expression (Python syntax, searched anywhere).",
        &[SERIES_LIST, Param::required("pattern", ParamKind::String)],
        grep,
    ),
    spec(
        "highest",
        "Keeps the n series with the highest aggregate.",
        &[
            SERIES_LIST,
            N_INTEGER,
            Param::optional("func", ParamKind::AggFunc, Some("\"average\"")).options(AGG_FUNC_OPTIONS),
        ],
        highest,
    ),
    spec("highestAverage", "Keeps the n series with the highest average.", &[SERIES_LIST, N_INTEGER], highest_average),
    spec(
        "highestCurrent",
        "Keeps the n series with the highest last value.",
        &[SERIES_LIST, N_INTEGER],
        highest_current,
    ),
    spec("highestMax", "Keeps the n series with the highest maximum.", &[SERIES_LIST, N_INTEGER], highest_max),
    spec("limit", "Keeps the first n series.", &[SERIES_LIST, N_INTEGER], limit),
    spec(
        "lowest",
        "Keeps the n series with the lowest aggregate.",
        &[
            SERIES_LIST,
            N_INTEGER,
            Param::optional("func", ParamKind::AggFunc, Some("\"average\"")).options(AGG_FUNC_OPTIONS),
        ],
        lowest,
    ),
    spec("lowestAverage", "Keeps the n series with the lowest average.", &[SERIES_LIST, N_INTEGER], lowest_average),
    spec("lowestCurrent", "Keeps the n series with the lowest last value.", &[SERIES_LIST, N_INTEGER], lowest_current),
    spec("maximumAbove", "Keeps the series whose maximum is above n.", &[SERIES_LIST, N_FLOAT], maximum_above),
    spec(
        "maximumBelow",
        "Keeps the series whose maximum is at most n (or that have no value).",
        &[SERIES_LIST, N_FLOAT],
        maximum_below,
    ),
    spec("minimumAbove", "Keeps the series whose minimum is above n.", &[SERIES_LIST, N_FLOAT], minimum_above),
    spec(
        "minimumBelow",
        "Keeps the series whose minimum is at most n (or that have no value).",
        &[SERIES_LIST, N_FLOAT],
        minimum_below,
    ),
    spec(
        "mostDeviant",
        "Keeps the n series whose values vary most (largest variance), most deviant first.",
        &[SERIES_LIST, N_INTEGER],
        most_deviant,
    ),
    spec(
        "removeEmptySeries",
        "Drops the series with no value, or with fewer non-null values than the xFilesFactor fraction.",
        &[SERIES_LIST, Param::optional("xFilesFactor", ParamKind::Float, None)],
        remove_empty_series,
    ),
    spec(
        "unique",
        "Concatenates the lists, keeping the first series of each name.",
        &[Param::required("seriesLists", ParamKind::SeriesList).multiple()],
        unique,
    ),
    spec(
        "useSeriesAbove",
        "For each series whose maximum is above value, draws the series named by a regular expression \
         replacement of its name.",
        &[
            SERIES_LIST,
            Param::required("value", ParamKind::Float),
            Param::required("search", ParamKind::String),
            Param::required("replace", ParamKind::String),
        ],
        use_series_above,
    ),
];

fn bad(args: &Args<'_>, message: impl std::fmt::Display) -> RenderError {
    RenderError::bad(format!("{}: {message}", args.name))
}

/// graphite-web 1.1.8's `getAggFunc`: a name or alias, without the `…Series` suffix that
/// `aggregate` strips (here it is unknown, as in graphite-web).
pub(super) fn agg_strict(name: &str) -> Option<Agg> {
    if name.ends_with("Series") {
        return None;
    }
    Agg::from_name(name)
}

/// An aggregation argument (`default` when absent), by [`agg_strict`].
pub(super) fn agg_arg(args: &Args<'_>, i: usize, key: &str, default: Option<&str>) -> Result<Agg, RenderError> {
    let name = match default {
        Some(d) => args.string_or(i, key, d)?,
        None => args.string(i, key)?,
    };
    agg_strict(name).ok_or_else(|| bad(args, format!("unsupported aggregation function: {name}")))
}

/// How many of `len` items Python's `list[:n]` keeps.
pub(super) fn py_prefix_len(len: usize, n: i64) -> usize {
    if n >= 0 {
        usize::try_from(n).unwrap_or(usize::MAX).min(len)
    } else {
        usize::try_from(len as i64 + n).unwrap_or(0)
    }
}

/// filterSeries' operators, with graphite-web's treatment of a series without value (None):
/// it passes `!=`, `<` and `<=`, and fails the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    fn keeps(self, value: Option<f64>, threshold: f64) -> bool {
        match (self, value) {
            (Op::Eq, v) => v.is_some_and(|v| v == threshold),
            (Op::Ne, v) => v.is_none_or(|v| v != threshold),
            (Op::Gt, v) => v.is_some_and(|v| v > threshold),
            (Op::Ge, v) => v.is_some_and(|v| v >= threshold),
            (Op::Lt, v) => v.is_none_or(|v| v < threshold),
            (Op::Le, v) => v.is_none_or(|v| v <= threshold),
        }
    }
}

/// The series of `list` whose `agg` passes `op threshold`, in order.
fn keep_where(list: Vec<Series>, agg: Agg, op: Op, threshold: f64) -> Vec<Series> {
    list.into_iter().filter(|s| op.keeps(agg.apply(&s.values), threshold)).collect()
}

fn filter_series(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let agg = agg_arg(args, 1, "func", None)?;
    let operator = args.string(2, "operator")?;
    let op = Op::from_name(operator).ok_or_else(|| bad(args, format!("unsupported operator: {operator}")))?;
    let threshold = args.number(3, "threshold")?;
    Ok(keep_where(list, agg, op, threshold))
}

/// The `…Above` / `…Below` shorthands of filterSeries.
fn filter_by(ctx: &Ctx<'_>, args: &Args<'_>, agg: Agg, op: Op) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let n = args.number(1, "n")?;
    Ok(keep_where(list, agg, op, n))
}

fn average_above(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Average, Op::Gt)
}

fn average_below(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Average, Op::Le)
}

fn current_above(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Last, Op::Gt)
}

fn current_below(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Last, Op::Le)
}

fn maximum_above(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Max, Op::Gt)
}

fn maximum_below(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Max, Op::Le)
}

fn minimum_above(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Min, Op::Gt)
}

fn minimum_below(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    filter_by(ctx, args, Agg::Min, Op::Le)
}

/// graphite-web's `highest`/`lowest`: sort by the aggregate (stable, None lowest), keep `n`.
fn ranked(ctx: &Ctx<'_>, args: &Args<'_>, agg: Option<Agg>, highest: bool) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    // `highest` and `lowest` default n to 1; the named rankings (`highestAverage`...) require
    // it, as their spec says and graphite-web 1.1.8 does (a missing n is a TypeError there).
    let (n, agg) = match agg {
        Some(agg) => (args.int(1, "n")?, agg),
        None => (args.int_or(1, "n", 1)?, agg_arg(args, 2, "func", Some("average"))?),
    };
    sort_by_key(&mut list, |s| agg.apply(&s.values), highest);
    list.truncate(py_prefix_len(list.len(), n));
    Ok(list)
}

fn highest(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, None, true)
}

fn lowest(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, None, false)
}

fn highest_average(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, Some(Agg::Average), true)
}

fn highest_current(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, Some(Agg::Last), true)
}

fn highest_max(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, Some(Agg::Max), true)
}

fn lowest_average(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, Some(Agg::Average), false)
}

fn lowest_current(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    ranked(ctx, args, Some(Agg::Last), false)
}

fn limit(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let n = args.int(1, "n")?;
    list.truncate(py_prefix_len(list.len(), n));
    Ok(list)
}

/// graphite-web's `mostDeviant`: series without value are dropped; the others are ranked
/// by the population variance of their values (graphite-web calls it sigma), highest first.
fn most_deviant(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let n = args.int(1, "n")?;
    let mut keyed: Vec<(f64, Series)> = Vec::with_capacity(list.len());
    for series in list {
        let Some(mean) = Agg::Average.apply(&series.values) else { continue };
        let known: Vec<f64> = series.values.iter().flatten().copied().collect();
        let square_sum = py_sum(known.iter().map(|v| (v - mean) * (v - mean)));
        keyed.push((sort_key(Some(square_sum / known.len() as f64)), series));
    }
    sort_keyed(&mut keyed, true);
    keyed.truncate(py_prefix_len(keyed.len(), n));
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// graphite-web's `xffValues`: at least one value, and non-null / total ≥ xFilesFactor
/// (0 unless given; the request's xFilesFactor does not apply here).
fn remove_empty_series(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let xff = args.opt_number(1, "xFilesFactor")?.unwrap_or(0.0);
    Ok(list
        .into_iter()
        .filter(|s| {
            let known = s.values.iter().filter(|v| v.is_some()).count();
            known > 0 && known as f64 / s.values.len() as f64 >= xff
        })
        .collect())
}

fn unique(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series_lists(ctx, 0)?;
    let mut seen = std::collections::HashSet::new();
    Ok(list.into_iter().filter(|s| seen.insert(s.name.clone())).collect())
}

fn exclude(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let regex = regex_arg(args, 1, "pattern")?;
    Ok(list.into_iter().filter(|s| !regex.search(&s.name)).collect())
}

fn grep(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let regex = regex_arg(args, 1, "pattern")?;
    Ok(list.into_iter().filter(|s| regex.search(&s.name)).collect())
}

/// graphite-web's `useSeriesAbove`: the names of the series whose maximum is above `value`,
/// rewritten by `re.sub`, evaluated as `group(name,…)`; empty results dropped. graphite-web
/// 1.1.8 takes Python's `max()` of the raw values, which fails on Python 3 as soon as a value
/// is None; here None values are skipped (graphite-web's `safeMax`), which is what it means.
fn use_series_above(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let value = args.number(1, "value")?;
    let regex = regex_arg(args, 2, "search")?;
    let template = regex.template(args.string(3, "replace")?).map_err(|e| bad(args, e))?;
    let mut names = Vec::new();
    for series in &list {
        let name = regex
            .sub(&template, &series.name, crate::render::grammar::MAX_TARGET_BYTES)
            .ok_or_else(|| bad(args, "the new names are too long"))?;
        if Agg::Max.apply(&series.values).is_some_and(|max| max > value) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // graphite-web evaluates the text `group(name,…)`; reading that text (a name with a comma
    // is two arguments there too) and concatenating its arguments is the same.
    let target = format!("group({})", names.join(","));
    let parsed = parse(&target).map_err(|e| bad(args, format!("{target}: {e}")))?;
    let Expr::Call(call) = parsed else { return Err(bad(args, format!("{target} is not a call"))) };
    if !call.kwargs.is_empty() {
        return Err(bad(args, format!("{target}: group() takes no keyword arguments")));
    }
    let mut out = Vec::new();
    for expr in &call.args {
        match expr {
            Expr::Path(_) | Expr::Call(_) => out.extend(ctx.eval(expr)?),
            other => return Err(bad(args, format!("{target}: {other} is not a series list"))),
        }
    }
    out.retain(|s| !s.values.is_empty());
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use crate::render::functions::testutil::TestStore;
    use crate::render::series::Series;
    use crate::render::RenderError;

    /// s.a 1..5; s.b 5,_,5,_,1; s.c empty; s.d -1,0,10,_,_; s.e 3 five times.
    pub(in crate::render::functions) fn store() -> TestStore {
        let n = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
        TestStore::new(vec![
            Series::new("s.a", 60, 60, n(&[1.0, 2.0, 3.0, 4.0, 5.0])),
            Series::new("s.b", 60, 60, vec![Some(5.0), None, Some(5.0), None, Some(1.0)]),
            Series::new("s.c", 60, 60, vec![None; 5]),
            Series::new("s.d", 60, 60, vec![Some(-1.0), Some(0.0), Some(10.0), None, None]),
            Series::new("s.e", 60, 60, n(&[3.0; 5])),
        ])
    }

    fn eval(target: &str) -> Result<Vec<Series>, RenderError> {
        store().eval(target, 0, 300, 300)
    }

    pub(in crate::render::functions) fn check_with(store: &TestStore, target: &str, want: &[&str]) {
        let got = store.eval(target, 0, 300, 300).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(got.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), want, "{target}");
    }

    fn fails(target: &str, message: &str) {
        match eval(target) {
            Err(e) => assert!(e.is_bad_request() && e.to_string().contains(message), "{target}: {e}"),
            Ok(got) => panic!("{target} should fail, got {got:?}"),
        }
    }

    /// Expected lists from graphite-web 1.1.8's functions on the same data.
    #[test]
    fn filters_keep_what_graphite_web_keeps_in_its_order() {
        let cases: &[(&str, &[&str])] = &[
            ("highestCurrent(s.*, 2)", &["s.d", "s.a"]),
            ("highestMax(s.*, 2)", &["s.d", "s.a"]),
            ("highestAverage(s.*, 2)", &["s.b", "s.a"]),
            ("lowestCurrent(s.*, 2)", &["s.c", "s.b"]),
            ("lowestAverage(s.*, 3)", &["s.c", "s.a", "s.d"]),
            ("highest(s.*, 2, 'sum')", &["s.a", "s.e"]),
            ("highest(s.*, -1, 'max')", &["s.d", "s.a", "s.b", "s.e"]),
            ("highest(s.*)", &["s.b"]),
            ("lowest(s.*, 2, 'min')", &["s.c", "s.d"]),
            ("lowest(s.*, 10, 'count')", &["s.c", "s.b", "s.d", "s.a", "s.e"]),
            ("highest(s.*, 3, 'median')", &["s.b", "s.a", "s.e"]),
            ("currentAbove(s.*, 3)", &["s.a", "s.d"]),
            ("currentBelow(s.*, 3)", &["s.b", "s.c", "s.e"]),
            ("averageAbove(s.*, 3)", &["s.b"]),
            ("averageBelow(s.*, 3)", &["s.a", "s.c", "s.d", "s.e"]),
            ("maximumAbove(s.*, 5)", &["s.d"]),
            ("maximumBelow(s.*, 5)", &["s.a", "s.b", "s.c", "s.e"]),
            ("minimumAbove(s.*, 0)", &["s.a", "s.b", "s.e"]),
            ("minimumBelow(s.*, 1)", &["s.a", "s.b", "s.c", "s.d"]),
            ("filterSeries(s.*, 'sum', '=', 15)", &["s.a", "s.e"]),
            ("filterSeries(s.*, 'sum', '!=', 15)", &["s.b", "s.c", "s.d"]),
            ("filterSeries(s.*, 'last', '>=', 5)", &["s.a", "s.d"]),
            ("filterSeries(s.*, 'avg', '<', 3.5)", &["s.a", "s.c", "s.d", "s.e"]),
            ("filterSeries(s.*, 'stddev', '>', 1)", &["s.a", "s.b", "s.d"]),
            ("limit(s.*, 2)", &["s.a", "s.b"]),
            ("limit(s.*, -2)", &["s.a", "s.b", "s.c"]),
            ("limit(s.*, 99999999999)", &["s.a", "s.b", "s.c", "s.d", "s.e"]),
            ("mostDeviant(s.*, 2)", &["s.d", "s.b"]),
            ("mostDeviant(s.*, 10)", &["s.d", "s.b", "s.a", "s.e"]),
            ("removeEmptySeries(s.*)", &["s.a", "s.b", "s.d", "s.e"]),
            ("removeEmptySeries(s.*, 0.7)", &["s.a", "s.e"]),
            ("exclude(s.*, '[ab]$')", &["s.c", "s.d", "s.e"]),
            ("grep(s.*, 's\\.[a-c]')", &["s.a", "s.b", "s.c"]),
            ("unique(s.b, s.*, s.a)", &["s.b", "s.a", "s.c", "s.d", "s.e"]),
        ];
        let store = store();
        for (target, want) in cases {
            check_with(&store, target, want);
        }
    }

    #[test]
    fn use_series_above_draws_the_related_series() {
        check_with(&store(), "useSeriesAbove(s.*, 4, '\\.([ab])$', '.e')", &["s.e", "s.e", "s.d"]);
        check_with(&store(), "useSeriesAbove(s.*, 4, 's\\.', 's.')", &["s.a", "s.b", "s.d"]);
        check_with(&store(), "useSeriesAbove(s.*, 100, 's', 'x')", &[]);
    }

    #[test]
    fn bad_arguments_are_refused() {
        fails("highest(s.*, 2, 'sumSeries')", "unsupported aggregation");
        fails("filterSeries(s.*, 'max', '=>', 1)", "unsupported operator");
        fails("filterSeries(s.*, 'nope', '>', 1)", "unsupported aggregation");
        fails("limit(s.*, 'x')", "integer");
        fails("grep(s.*, '(?=a)')", "look-ahead");
        // Only highest/lowest default n to 1 (these once did too; graphite-web 1.1.8 fails).
        fails("highestAverage(s.*)", "n is missing");
        fails("lowestCurrent(s.*)", "n is missing");
    }
}
