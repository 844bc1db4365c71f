//! graphite-web's `Sorting` group: `sortBy`, `sortByName`, `sortByTotal`, `sortByMaxima`,
//! `sortByMinima`; also the sort the `Filter Series` rankings use.
//!
//! Sorting is Python's `list.sort(key=…, reverse=…)`: stable, and `reverse` keeps equal keys
//! in their original order (it is not a reversed ascending sort). Keys are graphite-web's
//! `keyFunc`: a series whose aggregate is None sorts as `-inf`, which is how graphite-web
//! avoids comparing None on Python 3. A NaN key (an aggregate of NaN values) makes Python's
//! sort order depend on the list's history; here it sorts as `-inf` too, a total order.

use std::sync::OnceLock;

use super::aggregate::Agg;
use super::filter::{agg_arg, AGG_FUNC_OPTIONS};
use super::{FunctionSpec, Param, ParamKind};
use crate::render::eval::{Args, Ctx};
use crate::render::series::Series;
use crate::render::RenderError;

const SERIES_LIST: Param = Param::required("seriesList", ParamKind::SeriesList);

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "sortBy",
        group: "Sorting",
        description: "Sorts the series by an aggregate of their values, ascending unless reverse.",
        params: &[
            SERIES_LIST,
            Param::optional("func", ParamKind::AggFunc, Some("\"average\"")).options(AGG_FUNC_OPTIONS),
            Param::optional("reverse", ParamKind::Boolean, Some("false")),
        ],
        imp: sort_by,
    },
    FunctionSpec {
        name: "sortByMaxima",
        group: "Sorting",
        description: "Sorts the series by their maximum, highest first.",
        params: &[SERIES_LIST],
        imp: sort_by_maxima,
    },
    FunctionSpec {
        name: "sortByMinima",
        group: "Sorting",
        description: "Keeps the series whose maximum is above 0 and sorts them by their minimum, lowest first.",
        params: &[SERIES_LIST],
        imp: sort_by_minima,
    },
    FunctionSpec {
        name: "sortByName",
        group: "Sorting",
        description: "Sorts the series by name, alphabetically or naturally (numbers by value).",
        params: &[
            SERIES_LIST,
            Param::optional("natural", ParamKind::Boolean, Some("false")),
            Param::optional("reverse", ParamKind::Boolean, Some("false")),
        ],
        imp: sort_by_name,
    },
    FunctionSpec {
        name: "sortByTotal",
        group: "Sorting",
        description: "Sorts the series by the sum of their values, highest first.",
        params: &[SERIES_LIST],
        imp: sort_by_total,
    },
];

/// graphite-web's `keyFunc`: None (and NaN, see the module) is `-inf`.
pub(super) fn sort_key(value: Option<f64>) -> f64 {
    value.filter(|v| !v.is_nan()).unwrap_or(f64::NEG_INFINITY)
}

/// Python's stable sort of `(key, item)` pairs by key; `reverse` sorts descending with equal
/// keys in their original order. Keys come from [`sort_key`] (no NaN), so the order is total.
pub(super) fn sort_keyed<T>(items: &mut [(f64, T)], reverse: bool) {
    let cmp = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal);
    if reverse {
        items.sort_by(|a, b| cmp(b.0, a.0));
    } else {
        items.sort_by(|a, b| cmp(a.0, b.0));
    }
}

/// `list.sort(key=keyFunc(key), reverse=reverse)`, each key computed once.
pub(super) fn sort_by_key(list: &mut Vec<Series>, key: impl Fn(&Series) -> Option<f64>, reverse: bool) {
    let mut keyed: Vec<(f64, Series)> = list.drain(..).map(|s| (sort_key(key(&s)), s)).collect();
    sort_keyed(&mut keyed, reverse);
    list.extend(keyed.into_iter().map(|(_, s)| s));
}

fn sort_by(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let agg = agg_arg(args, 1, "func", Some("average"))?;
    let reverse = args.bool_or(2, "reverse", false)?;
    sort_by_key(&mut list, |s| agg.apply(&s.values), reverse);
    Ok(list)
}

fn sort_by_total(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    sort_by_key(&mut list, |s| Agg::Sum.apply(&s.values), true);
    Ok(list)
}

fn sort_by_maxima(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    sort_by_key(&mut list, |s| Agg::Max.apply(&s.values), true);
    Ok(list)
}

/// graphite-web's `sortByMinima`: only series whose maximum (0 without values) is above 0,
/// by minimum ascending.
fn sort_by_minima(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    list.retain(|s| Agg::Max.apply(&s.values).unwrap_or(0.0) > 0.0);
    sort_by_key(&mut list, |s| Agg::Min.apply(&s.values), false);
    Ok(list)
}

fn sort_by_name(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let natural = args.bool_or(1, "natural", false)?;
    let reverse = args.bool_or(2, "reverse", false)?;
    let mut keyed: Vec<(String, Series)> =
        list.drain(..).map(|s| (if natural { natural_key(&s.name) } else { s.name.clone() }, s)).collect();
    if reverse {
        keyed.sort_by(|a, b| b.0.cmp(&a.0));
    } else {
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// graphite-web's natural sort key: every run of decimal digits (Python's `\d`: any Unicode
/// decimal digit) replaced by its value zero-padded to 10 digits (`{0:010}`; longer values
/// keep all their digits). Compared as Python compares strings: by code point.
fn natural_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len() + 16);
    let mut digits = String::new();
    let flush = |digits: &mut String, key: &mut String| {
        if digits.is_empty() {
            return;
        }
        let value = digits.trim_start_matches('0');
        let value = if value.is_empty() { "0" } else { value };
        key.extend(std::iter::repeat_n('0', 10usize.saturating_sub(value.len())));
        key.push_str(value);
        digits.clear();
    };
    for c in name.chars() {
        match decimal_value(c) {
            Some(d) => digits.push(char::from(b'0' + d)),
            None => {
                flush(&mut digits, &mut key);
                key.push(c);
            }
        }
    }
    flush(&mut digits, &mut key);
    key
}

/// The value of a Unicode decimal digit (general category Nd), None for other characters.
/// Nd digits come in runs of ten code points, 0 to 9, so the value is the offset from the
/// start of the run modulo 10.
fn decimal_value(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8 - b'0');
    }
    if c.is_ascii() {
        return None;
    }
    static DIGIT: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let digit = DIGIT.get_or_init(|| regex::Regex::new(r"^\d$").ok()).as_ref()?;
    let is_digit = |c: char| digit.is_match(c.encode_utf8(&mut [0; 4]));
    if !is_digit(c) {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32).filter(|p| is_digit(*p)) {
        start = prev as u32;
    }
    Some(((c as u32 - start) % 10) as u8)
}

#[cfg(test)]
mod tests {
    use super::natural_key;
    use crate::render::functions::filter::tests::{check_with, store};
    use crate::render::functions::testutil::TestStore;
    use crate::render::series::Series;

    /// Expected lists from graphite-web 1.1.8's functions on the same data.
    #[test]
    fn sorts_order_as_graphite_web() {
        let cases: &[(&str, &[&str])] = &[
            ("sortByTotal(s.*)", &["s.a", "s.e", "s.b", "s.d", "s.c"]),
            ("sortByMaxima(s.*)", &["s.d", "s.a", "s.b", "s.e", "s.c"]),
            ("sortByMinima(s.*)", &["s.d", "s.a", "s.b", "s.e"]),
            ("sortBy(s.*)", &["s.c", "s.a", "s.d", "s.e", "s.b"]),
            ("sortBy(s.*, 'max', true)", &["s.d", "s.a", "s.b", "s.e", "s.c"]),
            ("sortBy(s.*, 'last')", &["s.c", "s.b", "s.e", "s.a", "s.d"]),
            ("sortBy(s.*, 'sum', reverse=true)", &["s.a", "s.e", "s.b", "s.d", "s.c"]),
        ];
        let store = store();
        for (target, want) in cases {
            check_with(&store, target, want);
        }
    }

    #[test]
    fn sort_by_name_is_stable_and_natural_as_python() {
        let names = ["x.server1", "x.server10", "x.server2", "x.srv02", "x.server01", "x.a", "x.B", "x.server١"];
        let store = TestStore::new(names.iter().map(|n| Series::new(n, 60, 60, vec![Some(1.0)])).collect());
        let cases: &[(&str, &[&str])] = &[
            (
                "sortByName(x.*)",
                &["x.B", "x.a", "x.server01", "x.server1", "x.server10", "x.server2", "x.server١", "x.srv02"],
            ),
            (
                "sortByName(x.*, true)",
                &["x.B", "x.a", "x.server01", "x.server1", "x.server١", "x.server2", "x.server10", "x.srv02"],
            ),
            (
                "sortByName(x.*, false, true)",
                &["x.srv02", "x.server١", "x.server2", "x.server10", "x.server1", "x.server01", "x.a", "x.B"],
            ),
            (
                "sortByName(x.*, natural=true, reverse=true)",
                &["x.srv02", "x.server10", "x.server2", "x.server01", "x.server1", "x.server١", "x.a", "x.B"],
            ),
        ];
        for (target, want) in cases {
            check_with(&store, target, want);
        }
        assert_eq!(natural_key("a12b007c٣𝟗"), "a0000000012b0000000007c0000000039");
        assert_eq!(natural_key(&format!("n{}", "9".repeat(12))), format!("n{}", "9".repeat(12)));
    }
}
