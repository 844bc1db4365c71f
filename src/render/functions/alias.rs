//! graphite-web's `Alias` group: functions that rename series (`alias`, `aliasSub`,
//! `aliasByNode`, `aliasByMetric`, `aliasByTags`, `aliasQuery`, `legendValue`).
//!
//! Also home to two readers the renames need and other groups reuse: [`pyre`], Python's `re`
//! on top of the regex crate (aliasSub, grep, exclude, useSeriesAbove), and graphite-web's
//! node-or-tag keys ([`agg_key`], with the first path expression of a call-shaped name found
//! as graphite-web's own grammar finds it).
//!
//! Names matter more than anywhere else here: Grafana ≥ 11.6 wraps every target in
//! `aliasSub(<target>, "(^.*$)", "\1 <refId>")` and takes the last word of the name as the
//! refId, so `re.sub`'s semantics are followed to the letter.

use super::aggregate::Agg;
use super::{FunctionSpec, Param, ParamKind};
use crate::pyfmt::py_repr;
use crate::render::eval::{Args, Ctx};
use crate::render::grammar::{parse, Expr};
use crate::render::series::Series;
use crate::render::RenderError;

pub(crate) use pyre::PyRegex;

/// Longest name a rename may produce, in bytes.
const NAME_BYTES_MAX: usize = 64 * 1024;
/// Bytes of new names one call may produce over all its series.
const NAMES_BYTES_MAX: usize = 64 * 1024 * 1024;

const SERIES_LIST: Param = Param::required("seriesList", ParamKind::SeriesList);

/// `legendValue`'s value types: graphite-web's aggregation names, their deprecated `…Series`
/// forms and the unit systems, sorted as it sorts them.
const LEGEND_OPTIONS: &[&str] = &[
    "average",
    "averageSeries",
    "avg",
    "avgSeries",
    "avg_zero",
    "avg_zeroSeries",
    "binary",
    "count",
    "countSeries",
    "current",
    "currentSeries",
    "diff",
    "diffSeries",
    "last",
    "lastSeries",
    "max",
    "maxSeries",
    "median",
    "medianSeries",
    "min",
    "minSeries",
    "multiply",
    "multiplySeries",
    "range",
    "rangeOf",
    "rangeOfSeries",
    "rangeSeries",
    "si",
    "stddev",
    "stddevSeries",
    "sum",
    "sumSeries",
    "total",
    "totalSeries",
];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "alias",
        group: "Alias",
        description: "Shows every series of the list under the given name.",
        params: &[SERIES_LIST, Param::required("newName", ParamKind::String)],
        imp: alias,
    },
    FunctionSpec {
        name: "aliasByMetric",
        group: "Alias",
        description: "Names each series by the last node of its metric path.",
        params: &[SERIES_LIST],
        imp: alias_by_metric,
    },
    FunctionSpec {
        name: "aliasByNode",
        group: "Alias",
        description: "Names each series by the given nodes of its path (negative counts from the end) or tags, \
                      joined by dots.",
        params: &[SERIES_LIST, Param::required("nodes", ParamKind::NodeOrTag).multiple()],
        imp: alias_by_node,
    },
    FunctionSpec {
        name: "aliasByTags",
        group: "Alias",
        description: "Names each series by the given tags (or nodes), joined by dots.",
        params: &[SERIES_LIST, Param::required("tags", ParamKind::NodeOrTag).multiple()],
        imp: alias_by_node,
    },
    FunctionSpec {
        name: "aliasQuery",
        group: "Alias",
        description: "Names each series after the last value of another query, made from its name by a regular \
                      expression replacement, formatted with a printf-style newName.",
        params: &[
            SERIES_LIST,
            Param::required("search", ParamKind::String),
            Param::required("replace", ParamKind::String),
            Param::required("newName", ParamKind::String),
        ],
        imp: alias_query,
    },
    FunctionSpec {
        name: "aliasSub",
        group: "Alias",
        description: "Renames each series by a regular expression search and replace (Python syntax, \\1 and \
                      \\g<name> back-references in the replacement).",
        params: &[
            SERIES_LIST,
            Param::required("search", ParamKind::String),
            Param::required("replace", ParamKind::String),
        ],
        imp: alias_sub,
    },
    FunctionSpec {
        name: "legendValue",
        group: "Alias",
        description: "Appends aggregates of each series (last, avg, total, min, max...) to its name, optionally \
                      in si or binary units.",
        params: &[
            SERIES_LIST,
            Param::optional("valuesTypes", ParamKind::String, None).multiple().options(LEGEND_OPTIONS),
        ],
        imp: legend_value,
    },
];

fn bad(args: &Args<'_>, message: impl std::fmt::Display) -> RenderError {
    RenderError::bad(format!("{}: {message}", args.name))
}

/// A Python pattern argument, compiled.
pub(super) fn regex_arg(args: &Args<'_>, i: usize, key: &str) -> Result<PyRegex, RenderError> {
    PyRegex::new(args.string(i, key)?).map_err(|e| bad(args, e))
}

/// Renames each series by `rename`, bounding the new names' size.
fn rename_all(
    args: &Args<'_>,
    list: &mut [Series],
    mut rename: impl FnMut(&Series, usize) -> Result<Option<String>, RenderError>,
) -> Result<(), RenderError> {
    let mut budget = NAMES_BYTES_MAX;
    for series in list {
        let name = rename(series, NAME_BYTES_MAX.min(budget))?.ok_or_else(|| {
            bad(args, format!("the new name of {} would be longer than {NAME_BYTES_MAX} bytes", series.name))
        })?;
        budget = budget.saturating_sub(name.len());
        series.name = name;
    }
    Ok(())
}

fn alias(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let name = args.string(1, "newName")?;
    for series in &mut list {
        series.name = name.to_string();
    }
    Ok(list)
}

/// `re.sub(search, replace, name)` on each name.
fn alias_sub(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let regex = regex_arg(args, 1, "search")?;
    let template = regex.template(args.string(2, "replace")?).map_err(|e| bad(args, e))?;
    rename_all(args, &mut list, |series, bytes_max| Ok(regex.sub(&template, &series.name, bytes_max)))?;
    Ok(list)
}

/// Each name made into a query by `re.sub`; the query's first series' last value, formatted
/// by `newName` with Python's `%`, is the new name.
fn alias_query(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let regex = regex_arg(args, 1, "search")?;
    let template = regex.template(args.string(2, "replace")?).map_err(|e| bad(args, e))?;
    let new_name = args.string(3, "newName")?;
    rename_all(args, &mut list, |series, bytes_max| {
        let Some(query) = regex.sub(&template, &series.name, bytes_max) else { return Ok(None) };
        let expr = parse(&query).map_err(|e| bad(args, format!("query {query:?}: {e}")))?;
        let found = ctx.eval(&expr)?;
        let first = found.first().ok_or_else(|| bad(args, format!("no series found with query: {query}")))?;
        let current = Agg::Last
            .apply(&first.values)
            .ok_or_else(|| bad(args, format!("cannot get the last value of series {}", first.name)))?;
        percent_format(new_name, current).map(Some).map_err(|e| bad(args, format!("newName {new_name:?}: {e}")))
    })?;
    Ok(list)
}

/// graphite-web's `substr(seriesList, -1)`: the last node of the innermost argument list,
/// cut at its first comma.
fn alias_by_metric(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    for series in &mut list {
        series.name = metric_of(&series.name);
    }
    Ok(list)
}

fn metric_of(name: &str) -> String {
    let left = name.rfind('(').map_or(0, |i| i + 1);
    let right = name.find(')').unwrap_or(name.len());
    let inner = if right > left { &name[left..right] } else { "" };
    let last = inner.rsplit('.').next().unwrap_or("");
    strip_from_comma(last).to_string()
}

/// `re.sub(',.*$', '', s)`: from the first comma whose rest of line ends the text (or comes
/// just before a final newline) to that end.
fn strip_from_comma(s: &str) -> String {
    for (p, _) in s.match_indices(',') {
        let end = s[p..].find('\n').map_or(s.len(), |i| p + i);
        if end == s.len() || end + 1 == s.len() {
            return format!("{}{}", &s[..p], &s[end..]);
        }
    }
    s.to_string()
}

/// A node index or a tag name (graphite-web's `nodeOrTag`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeOrTag {
    /// A node of the metric path; negative counts from the end.
    Node(i64),
    /// A tag name.
    Tag(String),
}

/// Every positional argument from `from` on as a node or tag, as graphite-web's
/// `getNodeOrTag` reads it: integers (and booleans) are nodes, strings are tags, a float with a
/// fraction is the tag its repr names; an integral float fails as it does in Python.
pub(crate) fn nodes_or_tags(args: &Args<'_>, from: usize) -> Result<Vec<NodeOrTag>, RenderError> {
    let nodes = args
        .rest(from)
        .iter()
        .map(|e| match e {
            Expr::Int(i) => Ok(NodeOrTag::Node(*i)),
            Expr::Bool(b) => Ok(NodeOrTag::Node(i64::from(*b))),
            Expr::Str(s) => Ok(NodeOrTag::Tag(s.clone())),
            Expr::Float(v) if v.is_nan() || (v.is_finite() && v.fract() != 0.0) => Ok(NodeOrTag::Tag(py_repr(*v))),
            other => Err(bad(args, format!("a node must be an integer or a tag name, not {other}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err(bad(args, "at least one node or tag is required"));
    }
    Ok(nodes)
}

/// graphite-web's `aggKey`: the given nodes of the series' path (the first path expression
/// of its name if the name ends with `)`, tags cut off) or its tags, joined by dots. A node
/// out of range falls back to a tag of that number, as in Python; a missing tag is empty.
pub(crate) fn agg_key(series: &Series, nodes: &[NodeOrTag]) -> Result<String, String> {
    let first = if series.name.ends_with(')') { first_path::first_path_expression(&series.name)? } else { None };
    let path = first.as_deref().unwrap_or(&series.name);
    let metric = path.split(';').next().unwrap_or("");
    let parts: Vec<&str> = metric.split('.').collect();
    let tag = |name: &str| series.tags.get(name).cloned().unwrap_or_default();
    let keys: Vec<String> = nodes
        .iter()
        .map(|n| match n {
            NodeOrTag::Node(i) => {
                let index = if *i < 0 { parts.len() as i64 + i } else { *i };
                usize::try_from(index)
                    .ok()
                    .and_then(|k| parts.get(k))
                    .map_or_else(|| tag(&i.to_string()), |p| p.to_string())
            }
            NodeOrTag::Tag(t) => tag(t),
        })
        .collect();
    Ok(keys.join("."))
}

fn alias_by_node(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let nodes = nodes_or_tags(args, 1)?;
    for series in &mut list {
        series.name = agg_key(series, &nodes).map_err(|e| bad(args, e))?;
    }
    Ok(list)
}

/// Appends ` (type: value)` per value type, or, with a trailing `si`/`binary`, rewrites the
/// name as `%-20s%-5s%-10s` of name, type and the value in units (graphite-web's layout).
/// An unknown type shows `(?)`, as graphite-web shows it.
fn legend_value(ctx: &Ctx<'_>, args: &Args<'_>) -> Result<Vec<Series>, RenderError> {
    let mut list = args.series(ctx, 0, "seriesList")?;
    let mut types = Vec::new();
    for e in args.rest(1) {
        match e {
            Expr::Str(s) => types.push(s.as_str()),
            other => return Err(bad(args, format!("a value type must be a string, not {other}"))),
        }
    }
    let system = match types.last() {
        None => return Err(bad(args, "at least one value type is required")),
        Some(&s) if s == "si" || s == "binary" => {
            types.pop();
            Some(s)
        }
        Some(_) => None,
    };
    for value_type in types {
        let agg = super::filter::agg_strict(value_type);
        for series in &mut list {
            let value = agg.and_then(|a| a.apply(&series.values));
            let text = match (agg, value, system) {
                (None, _, _) => "(?)".to_string(),
                (Some(_), None, _) => "None".to_string(),
                (Some(_), Some(v), Some(system)) => format_units(v, system).map_err(|e| bad(args, e))?,
                (Some(Agg::Count), Some(v), None) => format!("{v:.0}"),
                (Some(_), Some(v), None) => py_repr(v),
            };
            series.name = match system {
                None => format!("{} ({value_type}: {text})", series.name),
                Some(_) => format!("{:<20}{value_type:<5}{text:<10}", series.name),
            };
        }
    }
    Ok(list)
}

/// graphite-web's `format_units` then `"%.2f%s"`: the value scaled to the largest unit it
/// reaches (si: k M G T P; binary: Ki Mi Gi Ti Pi), whole numbers above 1 kept whole.
fn format_units(v: f64, system: &str) -> Result<String, String> {
    const SI: [(&str, f64); 5] = [("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    const BINARY: [(&str, f64); 5] = [
        ("Pi", 1_125_899_906_842_624.0),
        ("Ti", 1_099_511_627_776.0),
        ("Gi", 1_073_741_824.0),
        ("Mi", 1_048_576.0),
        ("Ki", 1024.0),
    ];
    if !v.is_finite() {
        return Err(format!("cannot format {} in units", py_repr(v)));
    }
    let units = if system == "binary" { BINARY } else { SI };
    let (scaled, prefix) = units.iter().find(|(_, size)| v.abs() >= *size).map_or((v, ""), |(p, size)| (v / size, *p));
    let whole = if scaled - scaled.floor() < 1e-11 && v > 1.0 { scaled.floor() } else { scaled };
    Ok(format!("{whole:.2}{prefix}"))
}

/// Python's `format % value` for one float: `%d %i %u %f %F %e %E %g %G %s %r` with the
/// flags `- + space 0`, a width and a precision, and `%%`. Anything else fails as Python
/// fails (no conversion, two conversions, a mapping key) or is refused (`#`, `*`, `%x`...).
fn percent_format(format: &str, v: f64) -> Result<String, String> {
    let mut out = String::new();
    let mut converted = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek().filter(|f| "-+ #0".contains(**f)) {
            flags.push(f);
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        let width = number(&mut chars).unwrap_or(0);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        while chars.peek().is_some_and(|m| "hlL".contains(*m)) {
            chars.next();
        }
        let conversion = chars.next().ok_or("incomplete format")?;
        if conversion == '%' {
            out.push('%');
            continue;
        }
        if converted {
            return Err("not enough arguments for format string".into());
        }
        converted = true;
        if width > NAME_BYTES_MAX || precision.is_some_and(|p| p > 1000) {
            return Err("width or precision too large".into());
        }
        if flags.contains('#') || matches!(conversion, '(' | '*') {
            return Err(format!("the format %{flags}{conversion} is not supported"));
        }
        let (sign, body) = match conversion {
            's' | 'r' | 'a' => {
                let text = py_repr(v);
                let text: String = match precision {
                    Some(p) => text.chars().take(p).collect(),
                    None => text,
                };
                pad(&mut out, "", &text, width, flags.contains('-'), false);
                continue;
            }
            'd' | 'i' | 'u' => {
                if !v.is_finite() {
                    return Err(format!("cannot convert float {} to integer", py_repr(v)));
                }
                let t = v.trunc();
                let digits = format!("{:.0}", t.abs());
                let digits = match precision {
                    Some(p) if p > digits.len() => format!("{}{digits}", "0".repeat(p - digits.len())),
                    _ => digits,
                };
                (number_sign(t < 0.0, &flags), digits)
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let body = float_body(v.abs(), conversion, precision.unwrap_or(6));
                (number_sign(v.is_sign_negative() && !v.is_nan(), &flags), body)
            }
            other => return Err(format!("unsupported format character {other:?} for a float")),
        };
        pad(&mut out, sign, &body, width, flags.contains('-'), flags.contains('0'));
    }
    if !converted {
        return Err("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

fn number_sign(negative: bool, flags: &str) -> &'static str {
    if negative {
        "-"
    } else if flags.contains('+') {
        "+"
    } else if flags.contains(' ') {
        " "
    } else {
        ""
    }
}

/// A non-negative float (or inf/nan) in C's `%f`, `%e` or `%g` with `precision`.
fn float_body(v: f64, conversion: char, precision: usize) -> String {
    let body = if !v.is_finite() {
        if v.is_nan() { "nan" } else { "inf" }.to_string()
    } else {
        match conversion.to_ascii_lowercase() {
            'f' => format!("{v:.precision$}"),
            'e' => {
                let text = format!("{v:.precision$e}");
                let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
                let exp: i32 = exp.parse().unwrap_or(0);
                format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
            }
            _ => crate::pyfmt::c_g(v, precision),
        }
    };
    if conversion.is_ascii_uppercase() {
        body.to_ascii_uppercase()
    } else {
        body
    }
}

/// Pads `sign` + `body` to `width`: left-justified, zero-filled after the sign, or
/// right-justified.
fn pad(out: &mut String, sign: &str, body: &str, width: usize, left: bool, zeros: bool) {
    let len = sign.chars().count() + body.chars().count();
    let fill = width.saturating_sub(len);
    if left {
        out.push_str(sign);
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if zeros {
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(body);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(sign);
        out.push_str(body);
    }
}
/// Python's `re` as graphite-web uses it (`re.sub`, `re.search`), on top of the `regex` crate.
///
/// A Python pattern is read the way Python 3.11's `re._parser` reads it and written out in the
/// regex crate's syntax, construct by construct: literals become `\x{…}` escapes, classes are
/// rebuilt item by item (so that `[[]`, `&&` or `--`, literal in Python, stay literal), `\Z` is
/// `\z`, `\s` gains Python's `\x1c`–`\x1f`, `\w` is Python's `[\p{L}\p{N}_]`. What the regex
/// crate cannot express (look-around, back-references, atomic groups, possessive quantifiers,
/// conditionals, the ASCII and LOCALE flags, `\N{…}`) is refused with a message, never
/// approximated; what Python refuses is refused too.
///
/// `sub` walks the matches as Python's `sre` does, not as the crate's `replace_all`: an empty
/// match right after a non-empty one counts (`re.sub('x*', '-', 'abxd')` is `-a-b--d-`), and
/// after an empty match the next one must not be empty at the same place.
///
/// Known differences, all about patterns nobody writes for series names: after an empty match
/// Python may take a lower-priority non-empty match at the same position (`re.sub('|a', '-',
/// 'a')` is `---`; here `-a-`); `$` without `(?m)` does not match before a final newline; `\b`
/// uses the crate's idea of a word character; `(?i)` folds case as Unicode simple folding does.
pub(crate) mod pyre {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    /// Longest pattern or replacement accepted, in bytes.
    pub(crate) const PATTERN_BYTES_MAX: usize = 4096;
    /// Deepest nesting of groups accepted.
    const NESTING_MAX: usize = 64;
    /// Size limit of the compiled program, handed to the regex crate.
    const COMPILED_BYTES_MAX: usize = 1 << 20;
    /// Python's `MAXREPEAT`: a repeat count must stay below it.
    const MAX_REPEAT: u64 = 4_294_967_295;

    /// A compiled Python pattern.
    #[derive(Debug, Clone)]
    pub(crate) struct PyRegex {
        regex: regex::Regex,
        /// Capturing groups, group 0 not counted (the same numbering in both syntaxes).
        n_groups: usize,
        /// Named groups and their numbers.
        names: HashMap<String, usize>,
    }

    /// A parsed `re.sub` replacement (Python's `parse_template`).
    #[derive(Debug, Clone)]
    pub(crate) struct Template {
        pieces: Vec<Piece>,
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Piece {
        Text(String),
        Group(usize),
    }

    impl PyRegex {
        /// Compiles `pattern` with Python's syntax and rules, or says why not.
        pub(crate) fn new(pattern: &str) -> Result<PyRegex, String> {
            if pattern.len() > PATTERN_BYTES_MAX {
                return Err(format!("a regular expression may have at most {PATTERN_BYTES_MAX} bytes"));
            }
            let mut t = Translator {
                tokens: tokenize(pattern)?,
                pos: 0,
                out: String::new(),
                n_groups: 0,
                names: HashMap::new(),
            };
            t.alternation(0, false, true)?;
            if t.pos != t.tokens.len() {
                return Err(format!("unbalanced parenthesis in {pattern:?}"));
            }
            let regex = regex::RegexBuilder::new(&t.out)
                .size_limit(COMPILED_BYTES_MAX)
                .build()
                .map_err(|e| format!("regular expression {pattern:?} is too large or not supported: {e}"))?;
            debug_assert_eq!(regex.captures_len(), t.n_groups + 1, "{pattern:?} became {:?}", t.out);
            Ok(PyRegex { regex, n_groups: t.n_groups, names: t.names })
        }

        /// Python's `search`: whether the pattern matches anywhere in `text`.
        pub(crate) fn search(&self, text: &str) -> bool {
            self.regex.is_match(text)
        }

        /// Parses a replacement for this pattern as Python's `re.sub` does.
        pub(crate) fn template(&self, replacement: &str) -> Result<Template, String> {
            if replacement.len() > PATTERN_BYTES_MAX {
                return Err(format!("a replacement may have at most {PATTERN_BYTES_MAX} bytes"));
            }
            parse_template(replacement, self)
        }

        /// Python's `re.sub(pattern, template, text)`; None if the result would pass
        /// `bytes_max` bytes.
        pub(crate) fn sub(&self, template: &Template, text: &str, bytes_max: usize) -> Option<String> {
            let mut out = String::new();
            let mut locs = self.regex.capture_locations();
            // `copied` is the end of the text already copied or replaced; `pos` is where the
            // next search starts; `must_advance` forbids an empty match at `pos`.
            let (mut copied, mut pos, mut must_advance) = (0usize, 0usize, false);
            while pos <= text.len() {
                let Some(mut found) = self.regex.captures_read_at(&mut locs, text, pos) else { break };
                if must_advance && found.start() == pos && found.end() == pos {
                    let Some(next) = text[pos..].chars().next().map(|c| pos + c.len_utf8()) else { break };
                    match self.regex.captures_read_at(&mut locs, text, next) {
                        Some(m) => found = m,
                        None => break,
                    }
                }
                out.push_str(&text[copied..found.start()]);
                for piece in &template.pieces {
                    match piece {
                        Piece::Text(s) => out.push_str(s),
                        Piece::Group(i) => {
                            if let Some((a, b)) = locs.get(*i) {
                                out.push_str(&text[a..b]);
                            }
                        }
                    }
                }
                if out.len() > bytes_max {
                    return None;
                }
                copied = found.end();
                must_advance = found.start() == found.end();
                pos = found.end();
            }
            out.push_str(&text[copied..]);
            (out.len() <= bytes_max).then_some(out)
        }
    }

    /// One token of Python's `re` tokenizer: a character, or a backslash and the next one.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tok {
        Char(char),
        Esc(char),
    }

    fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
        let mut out = Vec::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.push(Tok::Esc(chars.next().ok_or("bad escape (end of pattern)")?));
            } else {
                out.push(Tok::Char(c));
            }
        }
        Ok(out)
    }

    fn is_identifier(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
    }

    fn is_octal(t: Option<Tok>) -> bool {
        matches!(t, Some(Tok::Char('0'..='7')))
    }

    fn is_digit(t: Option<Tok>) -> bool {
        matches!(t, Some(Tok::Char('0'..='9')))
    }

    /// A control escape shared by patterns, classes and replacements (`\n`, `\t`...); `\b` is
    /// a backspace here (in a pattern, outside a class, it is a word boundary).
    fn control_escape(c: char) -> Option<char> {
        Some(match c {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            _ => return None,
        })
    }

    /// What the last item of a sequence was, for Python's "nothing to repeat" and "multiple
    /// repeat" errors.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Last {
        Nothing,
        Anchor,
        Repeat,
        Atom,
    }

    /// An item of a character class.
    enum ClassItem {
        Char(char),
        Range(char, char),
        /// A category (`\d`...), already in the regex crate's class syntax.
        Category(&'static str),
    }

    const SPACE: &str = r"\s\x{1C}-\x{1F}";
    const NOT_SPACE: &str = r"[^\s\x{1C}-\x{1F}]";
    const WORD: &str = r"\p{L}\p{N}_";
    const NOT_WORD: &str = r"[^\p{L}\p{N}_]";

    struct Translator {
        tokens: Vec<Tok>,
        /// Next token; `pos ≤ tokens.len()`.
        pos: usize,
        /// The pattern in the regex crate's syntax so far.
        out: String,
        n_groups: usize,
        names: HashMap<String, usize>,
    }

    impl Translator {
        fn peek(&self) -> Option<Tok> {
            self.tokens.get(self.pos).copied()
        }

        fn next(&mut self) -> Option<Tok> {
            let t = self.peek()?;
            self.pos += 1;
            Some(t)
        }

        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(Tok::Char(c)) {
                self.pos += 1;
                return true;
            }
            false
        }

        fn literal(&mut self, c: char) {
            push_literal(&mut self.out, c);
        }

        /// Tokens up to `terminator` (consumed), as Python's `getuntil`.
        fn until(&mut self, terminator: char, what: &str) -> Result<String, String> {
            let mut s = String::new();
            loop {
                match self.next() {
                    None if s.is_empty() => return Err(format!("missing {what}")),
                    None => return Err(format!("missing {terminator}, unterminated name")),
                    Some(Tok::Char(c)) if c == terminator => {
                        if s.is_empty() {
                            return Err(format!("missing {what}"));
                        }
                        return Ok(s);
                    }
                    Some(Tok::Char(c)) => s.push(c),
                    Some(Tok::Esc(c)) => {
                        s.push('\\');
                        s.push(c);
                    }
                }
            }
        }

        /// Up to `n` hexadecimal digits.
        fn hex(&mut self, n: usize) -> String {
            let mut s = String::new();
            while s.len() < n {
                match self.peek() {
                    Some(Tok::Char(c)) if c.is_ascii_hexdigit() => {
                        s.push(c);
                        self.pos += 1;
                    }
                    _ => break,
                }
            }
            s
        }

        /// `\x`, `\u`, `\U` (exactly 2, 4, 8 hex digits), shared by patterns and classes.
        fn hex_escape(&mut self, c: char) -> Result<char, String> {
            let n = match c {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let digits = self.hex(n);
            if digits.len() != n {
                return Err(format!("incomplete escape \\{c}{digits}"));
            }
            let code = u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())?;
            char::from_u32(code)
                .ok_or_else(|| format!("escape \\{c}{digits} is not a character the regex crate supports"))
        }

        /// Octal digits after a first one (`\0`, `\012`, `\177`), at most `more` of them.
        fn octal(&mut self, first: char, more: usize) -> Result<char, String> {
            let mut value = first.to_digit(8).unwrap_or(0);
            let mut text = first.to_string();
            for _ in 0..more {
                if !is_octal(self.peek()) {
                    break;
                }
                let Some(Tok::Char(d)) = self.next() else { break };
                value = value * 8 + d.to_digit(8).unwrap_or(0);
                text.push(d);
            }
            if value > 0o377 {
                return Err(format!("octal escape value \\{text} outside of range 0-0o377"));
            }
            Ok(char::from_u32(value).unwrap_or('\0'))
        }

        /// alternation := sequence ('|' sequence)*
        fn alternation(&mut self, depth: usize, verbose: bool, top: bool) -> Result<(), String> {
            let mut verbose = self.sequence(depth, verbose, top)?;
            while self.eat('|') {
                self.out.push('|');
                verbose = self.sequence(depth, verbose, false)?;
            }
            Ok(())
        }

        /// A sequence of items up to `|`, `)` or the end. Returns whether verbose mode is on
        /// at its end (a global `(?x)` turns it on for the rest of the pattern).
        fn sequence(&mut self, depth: usize, mut verbose: bool, first: bool) -> Result<bool, String> {
            let mut last = Last::Nothing;
            while let Some(tok) = self.peek() {
                if matches!(tok, Tok::Char('|' | ')')) {
                    break;
                }
                self.pos += 1;
                let c = match tok {
                    Tok::Esc(c) => {
                        last = self.escape(c)?;
                        continue;
                    }
                    Tok::Char(c) => c,
                };
                if verbose && matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                    continue;
                }
                if verbose && c == '#' {
                    while !matches!(self.next(), None | Some(Tok::Char('\n'))) {}
                    continue;
                }
                match c {
                    '[' => {
                        self.class()?;
                        last = Last::Atom;
                    }
                    '*' | '+' | '?' | '{' => last = self.repeat(c, last)?,
                    '.' => {
                        self.out.push('.');
                        last = Last::Atom;
                    }
                    '(' => match self.group(depth, verbose, first && last == Last::Nothing)? {
                        Group::Item => last = Last::Atom,
                        Group::Nothing => {}
                        Group::Verbose => verbose = true,
                    },
                    '^' | '$' => {
                        self.out.push(c);
                        last = Last::Anchor;
                    }
                    _ => {
                        self.literal(c);
                        last = Last::Atom;
                    }
                }
            }
            Ok(verbose)
        }

        /// A quantifier after `last`; a `{` that does not start one is a literal.
        fn repeat(&mut self, c: char, last: Last) -> Result<Last, String> {
            let (min, max) = match c {
                '*' => (0, None),
                '+' => (1, None),
                '?' => (0, Some(1)),
                _ => {
                    let here = self.pos;
                    let bounds = if self.peek() == Some(Tok::Char('}')) { None } else { self.braces()? };
                    let Some(bounds) = bounds else {
                        self.pos = here;
                        self.literal('{');
                        return Ok(Last::Atom);
                    };
                    bounds
                }
            };
            match last {
                Last::Nothing | Last::Anchor => return Err("nothing to repeat".into()),
                Last::Repeat => return Err("multiple repeat".into()),
                Last::Atom => {}
            }
            match (c, min, max) {
                ('*' | '+' | '?', _, _) => self.out.push(c),
                (_, min, Some(max)) if min == max => write!(self.out, "{{{min}}}").unwrap_or(()),
                (_, min, Some(max)) => write!(self.out, "{{{min},{max}}}").unwrap_or(()),
                (_, min, None) => write!(self.out, "{{{min},}}").unwrap_or(()),
            }
            if self.eat('?') {
                self.out.push('?');
            } else if self.peek() == Some(Tok::Char('+')) {
                return Err("possessive quantifiers (*+, ++, ?+, {m,n}+) are not supported".into());
            }
            Ok(Last::Repeat)
        }

        /// `{m,n}` after the `{`: Some(bounds), or None when Python reads a literal `{`.
        fn braces(&mut self) -> Result<Option<(u64, Option<u64>)>, String> {
            let digits = |t: &mut Translator| {
                let mut s = String::new();
                while let Some(Tok::Char(d @ '0'..='9')) = t.peek() {
                    s.push(d);
                    t.pos += 1;
                }
                s
            };
            let lo = digits(self);
            let hi = if self.eat(',') { digits(self) } else { lo.clone() };
            if !self.eat('}') {
                return Ok(None);
            }
            let parse = |s: &str| -> Result<Option<u64>, String> {
                if s.is_empty() {
                    return Ok(None);
                }
                match s.parse::<u64>() {
                    Ok(v) if v < MAX_REPEAT => Ok(Some(v)),
                    _ => Err("the repetition number is too large".into()),
                }
            };
            let (min, max) = (parse(&lo)?.unwrap_or(0), parse(&hi)?);
            if max.is_some_and(|max| max < min) {
                return Err("min repeat greater than max repeat".into());
            }
            Ok(Some((min, max)))
        }

        /// An escape outside a class.
        fn escape(&mut self, c: char) -> Result<Last, String> {
            let (text, last) = match c {
                'A' => (r"\A", Last::Anchor),
                'Z' => (r"\z", Last::Anchor),
                'b' => (r"\b", Last::Anchor),
                'B' => (r"\B", Last::Anchor),
                'd' => (r"\d", Last::Atom),
                'D' => (r"\D", Last::Atom),
                's' => (r"[\s\x{1C}-\x{1F}]", Last::Atom),
                'S' => (NOT_SPACE, Last::Atom),
                'w' => (r"[\p{L}\p{N}_]", Last::Atom),
                'W' => (NOT_WORD, Last::Atom),
                _ => {
                    let ch = self.escaped_char(c, false)?;
                    self.literal(ch);
                    return Ok(Last::Atom);
                }
            };
            self.out.push_str(text);
            Ok(last)
        }

        /// The character an escape stands for (not a category); `in_class` selects Python's
        /// class rules (`\1` is octal there, not a back-reference).
        fn escaped_char(&mut self, c: char, in_class: bool) -> Result<char, String> {
            if let Some(ch) = control_escape(c) {
                return Ok(ch);
            }
            match c {
                'x' | 'u' | 'U' => self.hex_escape(c),
                'N' => Err(r"\N{...} escapes are not supported".into()),
                '0' => self.octal('0', 2),
                '1'..='7' if in_class => self.octal(c, 2),
                '1'..='9' if !in_class => {
                    if is_digit(self.peek()) {
                        let second = self.tokens[self.pos];
                        let next = self.tokens.get(self.pos + 1).copied();
                        if matches!(c, '1'..='7') && is_octal(Some(second)) && is_octal(next) {
                            return self.octal(c, 2);
                        }
                    }
                    Err(format!("back-references (\\{c}...) are not supported"))
                }
                c if c.is_ascii_alphanumeric() => Err(format!("bad escape \\{c}")),
                c => Ok(c),
            }
        }

        /// A character class after its `[`.
        fn class(&mut self) -> Result<(), String> {
            let negate = self.eat('^');
            let mut items: Vec<ClassItem> = Vec::new();
            loop {
                let tok = self.next().ok_or("unterminated character set")?;
                if tok == Tok::Char(']') && !items.is_empty() {
                    break;
                }
                let first = self.class_item(tok)?;
                if !self.eat('-') {
                    items.push(first);
                    continue;
                }
                let tok = self.next().ok_or("unterminated character set")?;
                if tok == Tok::Char(']') {
                    items.push(first);
                    items.push(ClassItem::Char('-'));
                    break;
                }
                let (ClassItem::Char(lo), ClassItem::Char(hi)) = (first, self.class_item(tok)?) else {
                    return Err("bad character range".into());
                };
                if hi < lo {
                    return Err(format!("bad character range {lo}-{hi}"));
                }
                items.push(ClassItem::Range(lo, hi));
            }
            self.out.push('[');
            if negate {
                self.out.push('^');
            }
            for item in items {
                match item {
                    ClassItem::Char(c) => push_escaped(&mut self.out, c),
                    ClassItem::Range(lo, hi) => {
                        push_escaped(&mut self.out, lo);
                        self.out.push('-');
                        push_escaped(&mut self.out, hi);
                    }
                    ClassItem::Category(text) => self.out.push_str(text),
                }
            }
            self.out.push(']');
            Ok(())
        }

        fn class_item(&mut self, tok: Tok) -> Result<ClassItem, String> {
            let c = match tok {
                Tok::Char(c) => return Ok(ClassItem::Char(c)),
                Tok::Esc(c) => c,
            };
            Ok(match c {
                'd' => ClassItem::Category(r"\d"),
                'D' => ClassItem::Category(r"\D"),
                's' => ClassItem::Category(SPACE),
                'S' => ClassItem::Category(NOT_SPACE),
                'w' => ClassItem::Category(WORD),
                'W' => ClassItem::Category(NOT_WORD),
                '8' | '9' => return Err(format!("bad escape \\{c}")),
                _ => ClassItem::Char(self.escaped_char(c, true)?),
            })
        }

        /// A group after its `(`.
        fn group(&mut self, depth: usize, verbose: bool, may_set_global: bool) -> Result<Group, String> {
            if depth >= NESTING_MAX {
                return Err(format!("groups nested deeper than {NESTING_MAX}"));
            }
            let mut sub_verbose = verbose;
            if !self.eat('?') {
                self.n_groups += 1;
                self.out.push('(');
            } else {
                let c = match self.next() {
                    None => return Err("unexpected end of pattern".into()),
                    Some(Tok::Esc(c)) => return Err(format!("unknown extension ?\\{c}")),
                    Some(Tok::Char(c)) => c,
                };
                match c {
                    'P' if self.eat('<') => {
                        let name = self.until('>', "group name")?;
                        if !is_identifier(&name) {
                            return Err(format!("bad character in group name {name:?}"));
                        }
                        self.n_groups += 1;
                        if self.names.insert(name.clone(), self.n_groups).is_some() {
                            return Err(format!("redefinition of group name {name:?}"));
                        }
                        write!(self.out, "(?P<{name}>").unwrap_or(());
                    }
                    'P' if self.eat('=') => return Err("named back-references (?P=name) are not supported".into()),
                    'P' => return Err("unknown extension ?P".into()),
                    ':' => self.out.push_str("(?:"),
                    '#' => {
                        while self.next().ok_or("missing ), unterminated comment")? != Tok::Char(')') {}
                        return Ok(Group::Nothing);
                    }
                    '=' | '!' => return Err("look-ahead assertions (?=...) (?!...) are not supported".into()),
                    '<' if self.eat('=') || self.eat('!') => {
                        return Err("look-behind assertions (?<=...) (?<!...) are not supported".into())
                    }
                    '<' => return Err("unknown extension ?<".into()),
                    '(' => return Err("conditional groups (?(...)...) are not supported".into()),
                    '>' => return Err("atomic groups (?>...) are not supported".into()),
                    c if FLAGS.contains(c) || c == '-' => match self.flags(c)? {
                        Flags::Global { on } => {
                            if !may_set_global {
                                return Err("global flags not at the start of the expression".into());
                            }
                            let crate_flags: String = on.chars().filter(|f| "ims".contains(*f)).collect();
                            if !crate_flags.is_empty() {
                                write!(self.out, "(?{crate_flags})").unwrap_or(());
                            }
                            return Ok(if on.contains('x') { Group::Verbose } else { Group::Nothing });
                        }
                        Flags::Scoped { on, off } => {
                            sub_verbose = (verbose || on.contains('x')) && !off.contains('x');
                            let keep = |s: &str| -> String { s.chars().filter(|f| "ims".contains(*f)).collect() };
                            let (on, off) = (keep(&on), keep(&off));
                            if off.is_empty() {
                                write!(self.out, "(?{on}:").unwrap_or(());
                            } else {
                                write!(self.out, "(?{on}-{off}:").unwrap_or(());
                            }
                        }
                    },
                    c => return Err(format!("unknown extension ?{c}")),
                }
            }
            self.alternation(depth + 1, sub_verbose, false)?;
            if !self.eat(')') {
                return Err("missing ), unterminated subpattern".into());
            }
            self.out.push(')');
            Ok(Group::Item)
        }

        /// Python's `_parse_flags` after `(?` and the first flag character `first`.
        fn flags(&mut self, first: char) -> Result<Flags, String> {
            let next_flag = |t: &mut Translator, missing: &str| -> Result<char, String> {
                match t.next() {
                    Some(Tok::Char(c)) => Ok(c),
                    Some(Tok::Esc(_)) | None => Err(missing.to_string()),
                }
            };
            let (mut on, mut off) = (String::new(), String::new());
            let mut c = first;
            if c != '-' {
                loop {
                    if c == 'L' {
                        return Err("bad inline flags: cannot use 'L' flag with a str pattern".into());
                    }
                    on.push(c);
                    if on.contains('a') && on.contains('u') {
                        return Err("bad inline flags: flags 'a', 'u' and 'L' are incompatible".into());
                    }
                    c = next_flag(self, "missing -, : or )")?;
                    if ")-:".contains(c) {
                        break;
                    }
                    if !FLAGS.contains(c) {
                        return Err(if c.is_alphabetic() { "unknown flag" } else { "missing -, : or )" }.into());
                    }
                }
            }
            if on.contains('a') {
                return Err("the ASCII flag (?a) is not supported".into());
            }
            if c == ')' {
                if on.contains('t') {
                    return Err("the TEMPLATE flag (?t) is not supported".into());
                }
                return Ok(Flags::Global { on });
            }
            if on.contains('t') {
                return Err("bad inline flags: cannot turn on global flag".into());
            }
            if c == '-' {
                c = next_flag(self, "missing flag")?;
                if !FLAGS.contains(c) {
                    return Err(if c.is_alphabetic() { "unknown flag" } else { "missing flag" }.into());
                }
                loop {
                    if "auL".contains(c) {
                        return Err("bad inline flags: cannot turn off flags 'a', 'u' and 'L'".into());
                    }
                    off.push(c);
                    c = next_flag(self, "missing :")?;
                    if c == ':' {
                        break;
                    }
                    if !FLAGS.contains(c) {
                        return Err(if c.is_alphabetic() { "unknown flag" } else { "missing :" }.into());
                    }
                }
            }
            if off.contains('t') {
                return Err("bad inline flags: cannot turn off global flag".into());
            }
            if on.chars().any(|f| off.contains(f)) {
                return Err("bad inline flags: flag turned on and off".into());
            }
            Ok(Flags::Scoped { on, off })
        }
    }

    /// Python's inline flag letters.
    const FLAGS: &str = "iLmsxatu";

    /// What a group turned out to be.
    enum Group {
        /// A group: an item a quantifier may follow.
        Item,
        /// A comment or global flags: nothing.
        Nothing,
        /// Global flags that turn verbose mode on.
        Verbose,
    }

    /// The result of `_parse_flags`.
    enum Flags {
        /// `(?imsx)`: for the whole pattern.
        Global { on: String },
        /// `(?i-s:...)`: for the group.
        Scoped { on: String, off: String },
    }

    /// `c` as a literal outside a class.
    fn push_literal(out: &mut String, c: char) {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            push_escaped(out, c);
        }
    }

    /// `c` as a `\x{…}` escape, a literal anywhere in the regex crate's syntax.
    fn push_escaped(out: &mut String, c: char) {
        write!(out, "\\x{{{:X}}}", c as u32).unwrap_or(());
    }

    /// Python's `parse_template` for `re.sub`'s replacement.
    fn parse_template(replacement: &str, regex: &PyRegex) -> Result<Template, String> {
        let tokens = tokenize(replacement)?;
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        let group = |text: &mut String, pieces: &mut Vec<Piece>, index: usize| -> Result<(), String> {
            if index > regex.n_groups {
                return Err(format!("invalid group reference {index}"));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(text)));
            }
            pieces.push(Piece::Group(index));
            Ok(())
        };
        while let Some(&tok) = tokens.get(i) {
            i += 1;
            let c = match tok {
                Tok::Char(c) => {
                    text.push(c);
                    continue;
                }
                Tok::Esc(c) => c,
            };
            match c {
                'g' => {
                    if tokens.get(i) != Some(&Tok::Char('<')) {
                        return Err("missing <".into());
                    }
                    let mut name = String::new();
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            None if name.is_empty() => return Err("missing group name".into()),
                            None => return Err("missing >, unterminated name".into()),
                            Some(Tok::Char('>')) if name.is_empty() => return Err("missing group name".into()),
                            Some(Tok::Char('>')) => break,
                            Some(Tok::Char(c)) => name.push(*c),
                            Some(Tok::Esc(c)) => {
                                name.push('\\');
                                name.push(*c);
                            }
                        }
                        i += 1;
                    }
                    i += 1;
                    let index = if is_identifier(&name) {
                        *regex.names.get(&name).ok_or_else(|| format!("unknown group name {name:?}"))?
                    } else {
                        py_group_number(&name).ok_or_else(|| format!("bad character in group name {name:?}"))?
                    };
                    group(&mut text, &mut pieces, index)?;
                }
                '0' => {
                    let mut value = 0u32;
                    for _ in 0..2 {
                        match tokens.get(i) {
                            Some(Tok::Char(d @ '0'..='7')) => {
                                value = value * 8 + d.to_digit(8).unwrap_or(0);
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    text.push(char::from_u32(value & 0xff).unwrap_or('\0'));
                }
                '1'..='9' => {
                    let digit = |t: Option<&Tok>| match t {
                        Some(Tok::Char(d @ '0'..='9')) => Some(*d),
                        _ => None,
                    };
                    let mut number = c.to_string();
                    if let Some(second) = digit(tokens.get(i)) {
                        i += 1;
                        number.push(second);
                        let third = digit(tokens.get(i)).filter(|d| d.is_digit(8));
                        if let (true, true, Some(third)) = (c.is_digit(8), second.is_digit(8), third) {
                            i += 1;
                            number.push(third);
                            let value = u32::from_str_radix(&number, 8).unwrap_or(0);
                            if value > 0o377 {
                                return Err(format!("octal escape value \\{number} outside of range 0-0o377"));
                            }
                            text.push(char::from_u32(value).unwrap_or('\0'));
                            continue;
                        }
                    }
                    group(&mut text, &mut pieces, number.parse().unwrap_or(usize::MAX))?;
                }
                c => match control_escape(c) {
                    Some(ch) => text.push(ch),
                    None if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c}")),
                    None => {
                        text.push('\\');
                        text.push(c);
                    }
                },
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// Python's `int(name)` for `\g<…>`: optional white space and sign, ASCII digits with
    /// single underscores between them; None if that fails or is negative.
    fn py_group_number(name: &str) -> Option<usize> {
        let s = name.trim_matches(|c: char| c.is_whitespace());
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let valid = !digits.is_empty()
            && !digits.starts_with('_')
            && !digits.ends_with('_')
            && !digits.contains("__")
            && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
        if !valid {
            return None;
        }
        let digits: String = digits.chars().filter(|c| *c != '_').collect();
        let value: usize = digits.parse().unwrap_or(usize::MAX);
        (!negative || value == 0).then_some(value)
    }
}
/// graphite-web's `_getFirstPathExpression`: the first path expression of a name that looks
/// like a call (`sumSeries(a.b.c,d.e)` → `a.b.c`), as its pyparsing grammar finds it.
///
/// The name is read with that grammar's rules, not ours, because graphite-web reads it that
/// way: parsing stops at the first thing it cannot read without an error (`CPU (total)` is the
/// call `CPU(total)`, so `total`), white space is allowed between tokens, escapes are removed
/// from paths (`a\(b` → `a(b`), only ASCII characters make paths, and a failed alternative
/// backs off to the next one (PEG order: template, call, path; in arguments boolean, number,
/// none, string, inf, expression). The answer is the path at the head of the expression,
/// following first arguments of calls; None when that first argument is a literal or the name
/// is a `template(…)`; an error when nothing parses or a call has no argument (graphite-web
/// fails there too).
///
/// Bounded: pyparsing's backtracking is exponential on some inputs (nested keyword
/// arguments); the walk gives up after `STEPS_MAX` steps or `DEPTH_MAX` nested expressions.
mod first_path {
    /// Steps of the walk allowed for one name.
    const STEPS_MAX: usize = 200_000;
    /// Nested expressions allowed.
    const DEPTH_MAX: usize = 128;
    /// Characters that are not path characters (`symbols` in graphite's grammar).
    const SYMBOLS: &[u8] = b"(){},.'\"\\|";

    /// The first path expression of `name` (see the module).
    pub(super) fn first_path_expression(name: &str) -> Result<Option<String>, String> {
        let mut p = Parser { s: name.as_bytes(), steps: 0 };
        let Some((_, mut head)) = p.expression(0, 0)? else {
            return Err(format!("graphite-web's grammar cannot read the name {name:?}"));
        };
        loop {
            match head {
                Head::Path(path) => return Ok(Some(path)),
                Head::Template | Head::Call(Some(Arg::Literal)) => return Ok(None),
                Head::Call(None) => return Err(format!("the name {name:?} is a call without arguments")),
                Head::Call(Some(Arg::Expression(inner))) => head = *inner,
            }
        }
    }

    /// What an expression starts with.
    enum Head {
        Template,
        Path(String),
        /// A call and its first argument, if any.
        Call(Option<Arg>),
    }

    enum Arg {
        Literal,
        Expression(Box<Head>),
    }

    /// Ok(None): no match here; Err: the walk gave up.
    type Found<T> = Result<Option<T>, String>;

    struct Parser<'a> {
        s: &'a [u8],
        /// Steps taken; `steps ≤ STEPS_MAX` while the walk goes on.
        steps: usize,
    }

    fn is_path_char(b: u8) -> bool {
        (33..=126).contains(&b) && !SYMBOLS.contains(&b)
    }

    impl Parser<'_> {
        fn at(&self, i: usize) -> Option<u8> {
            self.s.get(i).copied()
        }

        fn step(&mut self, depth: usize) -> Result<(), String> {
            self.steps += 1;
            if self.steps > STEPS_MAX || depth > DEPTH_MAX {
                return Err("the name is too complex to find its first path expression".into());
            }
            Ok(())
        }

        /// pyparsing's default white space.
        fn ws(&self, mut i: usize) -> usize {
            while matches!(self.at(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            i
        }

        /// `Word(alphas + '_', alphanums + '_')`: the end of the word at `i`, if any.
        fn word(&self, i: usize) -> Option<usize> {
            if !self.at(i).is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') {
                return None;
            }
            let mut j = i + 1;
            while self.at(j).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                j += 1;
            }
            Some(j)
        }

        /// expression := (template | call | path) ('|' call)*
        fn expression(&mut self, i: usize, depth: usize) -> Found<(usize, Head)> {
            self.step(depth)?;
            let (mut end, head) = if let Some(end) = self.template(i, depth)? {
                (end, Head::Template)
            } else if let Some((end, first)) = self.call(i, depth)? {
                (end, Head::Call(first))
            } else if let Some((end, path)) = self.path(i) {
                (end, Head::Path(path))
            } else {
                return Ok(None);
            };
            loop {
                let bar = self.ws(end);
                if self.at(bar) != Some(b'|') {
                    break;
                }
                match self.call(bar + 1, depth)? {
                    Some((e, _)) => end = e,
                    None => break,
                }
            }
            Ok(Some((end, head)))
        }

        /// `template(call | path [, literal args])`.
        fn template(&mut self, i: usize, depth: usize) -> Found<usize> {
            let i = self.ws(i);
            if !self.s[i..].starts_with(b"template") {
                return Ok(None);
            }
            let open = self.ws(i + 8);
            if self.at(open) != Some(b'(') {
                return Ok(None);
            }
            let inner = match self.call(open + 1, depth + 1)? {
                Some((end, _)) => Some(end),
                None => self.path(open + 1).map(|(end, _)| end),
            };
            let Some(mut end) = inner else { return Ok(None) };
            let comma = self.ws(end);
            if self.at(comma) == Some(b',') {
                if let Some(e) = self.literal_args(comma + 1) {
                    end = e;
                }
            }
            let close = self.ws(end);
            Ok((self.at(close) == Some(b')')).then_some(close + 1))
        }

        /// `litargs | litkwargs` of a template.
        fn literal_args(&mut self, i: usize) -> Option<usize> {
            let keyword = |p: &mut Self, i: usize| -> Option<usize> {
                let name = p.ws(i);
                let eq = p.ws(p.word(name)?);
                (p.at(eq) == Some(b'=')).then_some(())?;
                p.literal_arg(eq + 1)
            };
            let positional = |p: &mut Self, i: usize| -> Option<usize> {
                if keyword(p, i).is_some() {
                    return None;
                }
                p.literal_arg(i)
            };
            let list = |p: &mut Self, i: usize, item: &dyn Fn(&mut Self, usize) -> Option<usize>| -> Option<usize> {
                let mut end = item(p, i)?;
                loop {
                    let comma = p.ws(end);
                    match (p.at(comma) == Some(b',')).then(|| item(p, comma + 1)).flatten() {
                        Some(e) => end = e,
                        None => return Some(end),
                    }
                }
            };
            list(self, i, &positional).or_else(|| list(self, i, &keyword))
        }

        fn literal_arg(&mut self, i: usize) -> Option<usize> {
            self.number(i).or_else(|| self.quoted(i))
        }

        /// `name(args [, kwargs])`; the end and the first argument's kind.
        fn call(&mut self, i: usize, depth: usize) -> Found<(usize, Option<Arg>)> {
            self.step(depth)?;
            let name = self.ws(i);
            let Some(after_name) = self.word(name) else { return Ok(None) };
            let open = self.ws(after_name);
            if self.at(open) != Some(b'(') {
                return Ok(None);
            }
            let mut end = open + 1;
            let mut first = None;
            if let Some((e, arg)) = self.args(open + 1, depth)? {
                end = e;
                first = Some(arg);
                let comma = self.ws(end);
                if self.at(comma) == Some(b',') {
                    if let Some(e) = self.kwargs(comma + 1, depth)? {
                        end = e;
                    }
                }
            }
            let close = self.ws(end);
            Ok((self.at(close) == Some(b')')).then_some((close + 1, first)))
        }

        /// Positional arguments (each not a keyword argument); the first one's kind.
        fn args(&mut self, i: usize, depth: usize) -> Found<(usize, Arg)> {
            if self.kwarg(i, depth)?.is_some() {
                return Ok(None);
            }
            let Some((mut end, first)) = self.arg(i, depth)? else { return Ok(None) };
            loop {
                let comma = self.ws(end);
                if self.at(comma) != Some(b',') || self.kwarg(comma + 1, depth)?.is_some() {
                    break;
                }
                match self.arg(comma + 1, depth)? {
                    Some((e, _)) => end = e,
                    None => break,
                }
            }
            Ok(Some((end, first)))
        }

        fn kwargs(&mut self, i: usize, depth: usize) -> Found<usize> {
            let Some(mut end) = self.kwarg(i, depth)? else { return Ok(None) };
            loop {
                let comma = self.ws(end);
                if self.at(comma) != Some(b',') {
                    break;
                }
                match self.kwarg(comma + 1, depth)? {
                    Some(e) => end = e,
                    None => break,
                }
            }
            Ok(Some(end))
        }

        fn kwarg(&mut self, i: usize, depth: usize) -> Found<usize> {
            self.step(depth)?;
            let name = self.ws(i);
            let Some(after_name) = self.word(name) else { return Ok(None) };
            let eq = self.ws(after_name);
            if self.at(eq) != Some(b'=') {
                return Ok(None);
            }
            Ok(self.arg(eq + 1, depth)?.map(|(end, _)| end))
        }

        /// arg := boolean | number | none | string | inf | expression
        fn arg(&mut self, i: usize, depth: usize) -> Found<(usize, Arg)> {
            self.step(depth)?;
            let literal = self
                .keyword(i, b"true")
                .or_else(|| self.keyword(i, b"false"))
                .or_else(|| self.number(i))
                .or_else(|| self.keyword(i, b"none"))
                .or_else(|| self.quoted(i))
                .or_else(|| self.keyword(i, b"inf"));
            if let Some(end) = literal {
                return Ok(Some((end, Arg::Literal)));
            }
            Ok(self.expression(i, depth + 1)?.map(|(end, head)| (end, Arg::Expression(Box::new(head)))))
        }

        /// `CaselessKeyword(word)`: not followed by a keyword character.
        fn keyword(&self, i: usize, word: &[u8]) -> Option<usize> {
            let i = self.ws(i);
            let end = i + word.len();
            let text = self.s.get(i..end)?;
            let next_is_ident = self.at(end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
            (text.eq_ignore_ascii_case(word) && !next_is_ident).then_some(end)
        }

        /// `-?\d+`, ending where it ends.
        fn integer(&self, i: usize) -> Option<usize> {
            let start = if self.at(i) == Some(b'-') { i + 1 } else { i };
            let mut j = start;
            while self.at(j).is_some_and(|b| b.is_ascii_digit()) {
                j += 1;
            }
            (j > start).then_some(j)
        }

        /// `-?\d+\.\d+`.
        fn float(&self, i: usize) -> Option<usize> {
            let dot = self.integer(i)?;
            if self.at(dot) != Some(b'.') {
                return None;
            }
            let mut j = dot + 1;
            while self.at(j).is_some_and(|b| b.is_ascii_digit()) {
                j += 1;
            }
            (j > dot + 1).then_some(j)
        }

        /// A number followed (after white space) by `,`, `)` or the end of a line.
        fn number(&self, i: usize) -> Option<usize> {
            let i = self.ws(i);
            let scientific = || {
                let mantissa = self.float(i).or_else(|| self.integer(i))?;
                matches!(self.at(mantissa), Some(b'e' | b'E')).then_some(())?;
                self.integer(mantissa + 1)
            };
            [scientific(), self.float(i), self.integer(i)].into_iter().flatten().find(|end| self.after_number(*end))
        }

        fn after_number(&self, i: usize) -> bool {
            let next = self.ws(i);
            if matches!(self.at(next), Some(b',' | b')')) {
                return true;
            }
            let mut j = i;
            while matches!(self.at(j), Some(b' ' | b'\t' | b'\r')) {
                j += 1;
            }
            matches!(self.at(j), None | Some(b'\n'))
        }

        /// pyparsing's `quotedString`: doubled quotes and backslash escapes inside.
        fn quoted(&self, i: usize) -> Option<usize> {
            let i = self.ws(i);
            let quote = self.at(i).filter(|q| matches!(q, b'"' | b'\''))?;
            let mut j = i + 1;
            loop {
                match self.at(j)? {
                    q if q == quote && self.at(j + 1) == Some(quote) => j += 2,
                    q if q == quote => return Some(j + 1),
                    b'\n' | b'\r' => return None,
                    b'\\' => match self.at(j + 1)? {
                        b'x' => {
                            let mut k = j + 2;
                            while self.at(k).is_some_and(|b| b.is_ascii_hexdigit()) {
                                k += 1;
                            }
                            if k == j + 2 {
                                return None;
                            }
                            j = k;
                        }
                        _ => j += 2,
                    },
                    _ => j += 1,
                }
            }
        }

        /// A path expression: elements joined by `.`, escapes removed.
        fn path(&self, i: usize) -> Option<(usize, String)> {
            let i = self.ws(i);
            let mut text = Vec::new();
            let mut end = self.element(i, &mut text)?;
            while self.at(end) == Some(b'.') {
                let mut element = Vec::new();
                let Some(e) = self.element(end + 1, &mut element) else { break };
                text.push(b'.');
                text.extend_from_slice(&element);
                end = e;
            }
            Some((end, String::from_utf8_lossy(&text).into_owned()))
        }

        /// One or more of: path characters or escapes, `{a,b}` groups.
        fn element(&self, i: usize, text: &mut Vec<u8>) -> Option<usize> {
            let mut j = i;
            loop {
                if let Some(e) = self.partial(j, text) {
                    j = e;
                } else if self.at(j) == Some(b'{') {
                    let mut inner = vec![b'{'];
                    let Some(mut e) = self.partial(j + 1, &mut inner) else { break };
                    while self.at(e) == Some(b',') {
                        inner.push(b',');
                        match self.partial(e + 1, &mut inner) {
                            Some(e2) => e = e2,
                            None => {
                                inner.pop();
                                break;
                            }
                        }
                    }
                    if self.at(e) != Some(b'}') {
                        break;
                    }
                    inner.push(b'}');
                    text.extend_from_slice(&inner);
                    j = e + 1;
                } else {
                    break;
                }
            }
            (j > i).then_some(j)
        }

        /// Path characters and escaped symbols, at least one.
        fn partial(&self, i: usize, text: &mut Vec<u8>) -> Option<usize> {
            let mut j = i;
            loop {
                match self.at(j) {
                    Some(b'\\') if self.at(j + 1).is_some_and(|b| SYMBOLS.contains(&b) || b == b'=') => {
                        text.push(self.s[j + 1]);
                        j += 2;
                    }
                    Some(b) if is_path_char(b) => {
                        text.push(b);
                        j += 1;
                    }
                    _ => break,
                }
            }
            (j > i).then_some(j)
        }
    }
}
