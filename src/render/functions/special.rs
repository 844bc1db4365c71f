//! graphite-web's `Special` group and the series made from nothing that graphite-web files
//! elsewhere: `constantLine`, `threshold` (Graph), `identity` (Calculate), `timeFunction` and
//! `sinFunction` (Transform), `randomWalkFunction`; plus `setXFilesFactor` and
//! `fallbackSeries`, which act on a whole list.
//!
//! Generated series span the request's window from its start, one value per step while the
//! timestamp is before its end (graphite-web's `while when < endTime`), and are counted against
//! the request's limits before they are allocated.

use std::hash::{BuildHasher, Hasher};

use super::{FunctionSpec, Param, ParamKind};
use crate::pyfmt::py_repr;
use crate::render::eval::{Args, Ctx};
use crate::render::series::Series;
use crate::render::RenderError;

const NAME: Param = Param::required("name", ParamKind::String);
const STEP: Param = Param::optional("step", ParamKind::Integer, Some("60"));
const SIN_PARAMS: &[Param] = &[NAME, Param::optional("amplitude", ParamKind::Integer, Some("1")), STEP];
const XFF_PARAMS: &[Param] =
    &[Param::required("seriesList", ParamKind::SeriesList), Param::required("xFilesFactor", ParamKind::Float)];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "constantLine",
        group: "Special",
        description: "A horizontal line at the given value over the whole time range.",
        params: &[Param::required("value", ParamKind::Float)],
        imp: constant_line,
    },
    FunctionSpec {
        name: "fallbackSeries",
        group: "Special",
        description: "The series list, or the fallback list when the series list is empty.",
        params: &[
            Param::required("seriesList", ParamKind::SeriesList),
            Param::required("fallback", ParamKind::SeriesList),
        ],
        imp: fallback_series,
    },
    FunctionSpec {
        name: "identity",
        group: "Calculate",
        description: "A series whose value is its own timestamp, every 60 seconds.",
        params: &[NAME],
        imp: identity,
    },
    FunctionSpec {
        name: "randomWalk",
        group: "Special",
        description: "A random walk starting at 0 (each step adds a random value in [-0.5, 0.5)).",
        params: &[NAME, STEP],
        imp: random_walk,
    },
    FunctionSpec {
        name: "randomWalkFunction",
        group: "Special",
        description: "A random walk starting at 0 (each step adds a random value in [-0.5, 0.5)).",
        params: &[NAME, STEP],
        imp: random_walk,
    },
    FunctionSpec {
        name: "seriesByTag",
        group: "Special",
        description: "The tagged series matching every tag expression: 'tag=value', 'tag!=value', 'tag=~regex', \
                      'tag!=~regex' (regexes anchored at the start; at least one expression must need a value).",
        params: &[Param::required("tagExpressions", ParamKind::String).multiple()],
        imp: series_by_tag,
    },
    FunctionSpec {
        name: "setXFilesFactor",
        group: "Special",
        description: "Sets the fraction of non-null values a consolidated interval needs (also tagged \
                      xFilesFactor).",
        params: XFF_PARAMS,
        imp: set_x_files_factor,
    },
    FunctionSpec {
        name: "sin",
        group: "Transform",
        description: "The sine of the timestamp times the amplitude, every step seconds.",
        params: SIN_PARAMS,
        imp: sin_function,
    },
    FunctionSpec {
        name: "sinFunction",
        group: "Transform",
        description: "The sine of the timestamp times the amplitude, every step seconds.",
        params: SIN_PARAMS,
        imp: sin_function,
    },
    FunctionSpec {
        name: "threshold",
        group: "Graph",
        description: "A horizontal line at the given value, named by the label if given.",
        params: &[
            Param::required("value", ParamKind::Float),
            Param::optional("label", ParamKind::String, None),
            Param::optional("color", ParamKind::String, None),
        ],
        imp: threshold,
    },
    FunctionSpec {
        name: "time",
        group: "Transform",
        description: "A series whose value is its own timestamp, every step seconds.",
        params: &[NAME, STEP],
        imp: time_function,
    },
    FunctionSpec {
        name: "timeFunction",
        group: "Transform",
        description: "A series whose value is its own timestamp, every step seconds.",
        params: &[NAME, STEP],
        imp: time_function,
    },
    FunctionSpec {
        name: "xFilesFactor",
        group: "Special",
        description: "Sets the fraction of non-null values a consolidated interval needs (also tagged \
                      xFilesFactor).",
        params: XFF_PARAMS,
        imp: set_x_files_factor,
    },
];
/// graphite-web's constantLine: three points, at the start, the middle and the end of the
/// window (step = half the window), named after the value as Python prints it.
fn constant_line(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let value = args.number(0, "value")?;
    let (start, end) = (ctx.from, ctx.until);
    let step = ((end - start) / 2).max(1);
    let name = crate::pyfmt::py_repr(value);
    let mut series = Series::new(&name, start, step, vec![Some(value); 3]);
    series.path_expression = format!("constantLine({name})");
    ctx.spend(1, 3)?;
    Ok(vec![series])
}

fn bad(args: &Args<'_>, message: impl std::fmt::Display) -> RenderError {
    RenderError::bad(format!("{}: {message}", args.name))
}

/// A series named `name` with `value(t)` at t = from, from + step, … < until.
fn generated(
    ctx: &Ctx<'_>,
    args: &Args<'_>,
    name: &str,
    step: i64,
    value: impl Fn(i64) -> f64,
) -> Result<Series, RenderError> {
    if step <= 0 {
        return Err(bad(args, format!("step must be a positive number of seconds, not {step}")));
    }
    let span = i128::from(ctx.until) - i128::from(ctx.from);
    let n = usize::try_from((span.max(0) + i128::from(step) - 1) / i128::from(step)).unwrap_or(usize::MAX);
    ctx.spend(1, n)?;
    let values = (0..n as i64).map(|k| Some(value(ctx.from + k * step))).collect();
    let mut series = Series::new(name, ctx.from, step, values);
    series.x_files_factor = ctx.x_files_factor;
    Ok(series)
}

/// graphite-web's `identity`: timestamps as values, every 60 s, path expression
/// `identity("name")`.
fn identity(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let name = args.string(0, "name")?;
    let mut series = generated(ctx, args, name, 60, |t| t as f64)?;
    series.path_expression = format!("identity(\"{name}\")");
    Ok(vec![series])
}

/// graphite-web's `timeFunction`. graphite-web computes the values with `time.mktime` of the
/// request's wall-clock time, which is the timestamp only when the request's time zone is the
/// server's; here it is always the timestamp.
fn time_function(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let name = args.string(0, "name")?;
    let step = args.int_or(1, "step", 60)?;
    Ok(vec![generated(ctx, args, name, step, |t| t as f64)?])
}

/// graphite-web's `sinFunction`: `sin(t) * amplitude` (same caveat as [`time_function`]).
fn sin_function(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let name = args.string(0, "name")?;
    let amplitude = args.number_or(1, "amplitude", 1.0)?;
    let step = args.int_or(2, "step", 60)?;
    Ok(vec![generated(ctx, args, name, step, |t| (t as f64).sin() * amplitude)?])
}

/// graphite-web's `randomWalkFunction`: 0, then each value the previous plus a uniform
/// random number in [-0.5, 0.5).
fn random_walk(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let name = args.string(0, "name")?;
    let step = args.int_or(1, "step", 60)?;
    let mut series = generated(ctx, args, name, step, |_| 0.0)?;
    let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
    series.values = random_walk_values(series.values.len(), seed);
    Ok(vec![series])
}

fn random_walk_values(n: usize, seed: u64) -> Vec<Option<f64>> {
    let mut state = seed;
    let mut current = 0.0;
    (0..n)
        .map(|_| {
            let value = current;
            current += unit_random(&mut state) - 0.5;
            Some(value)
        })
        .collect()
}

/// splitmix64, as a float in [0, 1) with 53 random bits (as Python's `random()`).
fn unit_random(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// graphite-web's `threshold`: `constantLine(value)` named `label` when a label is given,
/// with constantLine's path expression as graphite-web gives it (`constantLine(5.0)`); the
/// color only matters to PNG output, which we do not draw.
fn threshold(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = constant_line(ctx, args)?;
    let label = args.string_or(1, "label", "")?;
    args.string_or(2, "color", "")?;
    for series in &mut list {
        series.path_expression = format!("constantLine({})", series.name);
        if !label.is_empty() {
            series.name = label.to_string();
        }
    }
    Ok(list)
}

/// graphite-web's `setXFilesFactor`: on each series and as its `xFilesFactor` tag (a JSON
/// number in graphite-web's output, the same number as a string here). graphite-web also
/// makes it the request's default for the functions evaluated after it; our context is not
/// mutable, so only these series carry it.
fn set_x_files_factor(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let xff = args.number(1, "xFilesFactor")?;
    for series in &mut list {
        series.x_files_factor = xff;
        series.tags.insert("xFilesFactor".to_string(), py_repr(xff));
    }
    Ok(list)
}

/// graphite-web's `fallbackSeries`; both lists are evaluated, as graphite-web evaluates every
/// argument (an error in the fallback is an error even when the list has series).
/// graphite-web resolves the call in its store: the string arguments are the expressions (other
/// arguments are ignored, as there), the series carry the call's text as path expression.
fn series_by_tag(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let exprs: Vec<String> = args
        .rest(0)
        .iter()
        .filter_map(|e| match e {
            crate::render::grammar::Expr::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    ctx.fetch_tagged(&exprs, &args.call.raw)
}

fn fallback_series(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let list = args.series(ctx, 0, "seriesList")?;
    let fallback = args.series(ctx, 1, "fallback")?;
    Ok(if list.is_empty() { fallback } else { list })
}
#[cfg(test)]
mod tests {
    use crate::render::eval::{Ctx, Spent, Store};
    use crate::render::grammar::parse;
    use crate::render::series::Series;
    use crate::render::RenderError;

    struct Empty;

    impl Store for Empty {
        fn find_leaves(&self, _: &str, _: usize) -> Result<Vec<String>, RenderError> {
            Ok(Vec::new())
        }

        fn fetch(&self, _: &str, _: i64, _: i64, _: i64) -> Result<Option<Series>, RenderError> {
            Ok(None)
        }

        fn find_tagged(&self, _: &[String], _: usize) -> Result<Vec<String>, RenderError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn constant_line_is_three_points_named_as_python_prints_the_value() {
        let spent = Spent::default();
        let ctx = Ctx::new(&Empty, 1000, 4600, 4600, &spent);
        let got = ctx.eval(&parse("constantLine(100)").unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "100.0");
        assert_eq!(
            got[0].points().collect::<Vec<_>>(),
            vec![(1000, Some(100.0)), (2800, Some(100.0)), (4600, Some(100.0))]
        );
    }

    fn eval(target: &str) -> Result<Vec<Series>, RenderError> {
        let spent = Spent::default();
        let ctx = Ctx::new(&Empty, 1000, 1200, 1200, &spent);
        ctx.eval(&parse(target)?)
    }

    fn points(series: &Series) -> Vec<(i64, Option<f64>)> {
        series.points().collect()
    }

    #[test]
    fn generated_series_cover_the_window_as_graphite_web() {
        let got = eval("identity('x')").unwrap();
        assert_eq!((got[0].name.as_str(), got[0].path_expression.as_str()), ("x", "identity(\"x\")"));
        assert_eq!(
            points(&got[0]),
            vec![(1000, Some(1000.0)), (1060, Some(1060.0)), (1120, Some(1120.0)), (1180, Some(1180.0))]
        );
        let got = eval("time('t.x', 120)").unwrap();
        assert_eq!((got[0].name.as_str(), got[0].path_expression.as_str()), ("t.x", "t.x"));
        assert_eq!(points(&got[0]), vec![(1000, Some(1000.0)), (1120, Some(1120.0))]);
        // math.sin(t) * 2 in Python 3.11, bit for bit.
        let got = eval("sinFunction('s', 2)").unwrap();
        let want = [1.653759081064005, -1.9178998463629193, 1.9995063365605517, -1.8908117323623317];
        assert_eq!(got[0].values, want.iter().map(|v| Some(*v)).collect::<Vec<_>>());
        assert_eq!(eval("sin('s', step=100)").unwrap()[0].values.len(), 2);
        let walk = eval("randomWalk('w')").unwrap();
        assert_eq!((walk[0].values.len(), walk[0].values[0]), (4, Some(0.0)));
    }

    #[test]
    fn random_walks_start_at_zero_and_move_by_less_than_half() {
        let values = super::random_walk_values(1000, 42);
        assert_eq!(values[0], Some(0.0));
        for pair in values.windows(2) {
            let step = pair[1].unwrap() - pair[0].unwrap();
            assert!((-0.5..0.5).contains(&step), "{step}");
        }
        assert_ne!(values, super::random_walk_values(1000, 43));
    }

    #[test]
    fn generated_series_are_bounded() {
        for target in ["time('t', 0)", "sin('s', 1, -60)", "randomWalk('w', 0)"] {
            assert!(eval(target).unwrap_err().to_string().contains("positive"), "{target}");
        }
        let spent = Spent::default();
        let ctx = Ctx::new(&Empty, 0, i64::MAX / 2, 0, &spent);
        let err = ctx.eval(&parse("time('t', 1)").unwrap()).unwrap_err();
        assert!(err.is_bad_request() && err.to_string().contains("values"), "{err}");
    }

    #[test]
    fn threshold_xff_and_fallback() {
        let got = eval("threshold(5, 'limit', 'red')").unwrap();
        assert_eq!(got[0].name, "limit");
        assert_eq!(got[0].values, vec![Some(5.0); 3]);
        assert_eq!(eval("threshold(5)").unwrap()[0].name, "5.0");
        let got = eval("xFilesFactor(constantLine(1), 0.5)").unwrap();
        assert_eq!(got[0].x_files_factor, 0.5);
        assert_eq!(got[0].tags.get("xFilesFactor").map(String::as_str), Some("0.5"));
        let got = eval("setXFilesFactor(constantLine(1), 1)").unwrap();
        assert_eq!(got[0].tags.get("xFilesFactor").map(String::as_str), Some("1.0"));
        assert_eq!(eval("fallbackSeries(no.such.*, constantLine(1))").unwrap()[0].name, "1.0");
        assert_eq!(eval("fallbackSeries(constantLine(2), constantLine(1))").unwrap()[0].name, "2.0");
        assert!(eval("fallbackSeries(constantLine(2), nope())").unwrap_err().is_bad_request());
    }
}
