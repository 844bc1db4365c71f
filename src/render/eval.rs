//! Evaluation of target expressions: paths become series through a [`Store`], calls go to the
//! function table ([`super::functions`]) with their arguments behind [`Args`].
//!
//! Every function has the same signature, `fn(&Ctx, &Args) -> Result<Vec<Series>>`, and reads
//! its arguments through `Args`, by position or keyword name as graphite-web allows, so that
//! argument errors read the same everywhere ("scale: factor must be a number"). A function that
//! needs its series over another window (movingAverage's look-back, timeShift) evaluates its
//! argument expression again with [`Ctx::shifted`].
//!
//! Bounded: a request may fetch at most `Limits::series_max` series and `Limits::points_max`
//! points in all (counted in [`Ctx`]); past that the request fails with a 400, never an
//! unbounded allocation.

use std::cell::Cell;

use super::grammar::{Call, Expr};
use super::series::Series;
use super::RenderError;

/// Where series come from: the metric index, whisper files and the writers' caches.
pub trait Store: Sync {
    /// Leaf paths matching the glob `pattern`, sorted by name, at most `limit` (more is an
    /// error the caller reports).
    fn find_leaves(&self, pattern: &str, limit: usize) -> Result<Vec<String>, RenderError>;
    /// The series of one leaf over (from, until] at `now`, cached points overlaid; None when
    /// the range lies wholly outside the file's retention (graphite-web then omits it).
    fn fetch(&self, path: &str, from: i64, until: i64, now: i64) -> Result<Option<Series>, RenderError>;
    /// Tagged series matching every tag expression (`seriesByTag`'s arguments, graphite-web's
    /// TagDB rules), sorted, at most `limit` (more is an error the caller reports).
    fn find_tagged(&self, exprs: &[String], limit: usize) -> Result<Vec<String>, RenderError>;
    /// [`Store::fetch`] of every path, in order; a store may do it in fewer round trips.
    fn fetch_many(
        &self,
        paths: &[String],
        from: i64,
        until: i64,
        now: i64,
    ) -> Result<Vec<Option<Series>>, RenderError> {
        paths.iter().map(|p| self.fetch(p, from, until, now)).collect()
    }
}

/// What one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Series fetched, over every target of the request.
    pub series_max: usize,
    /// Values fetched, over every target of the request.
    pub points_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { series_max: 100_000, points_max: 50_000_000 }
    }
}

/// The evaluation context of one request.
pub struct Ctx<'a> {
    /// The data.
    pub store: &'a dyn Store,
    /// Start of the window (exclusive, as whisper's fetch), Unix seconds.
    pub from: i64,
    /// End of the window (inclusive), Unix seconds.
    pub until: i64,
    /// The request's "now".
    pub now: i64,
    /// The request's xFilesFactor (default 0).
    pub x_files_factor: f64,
    /// The request's time zone (`tz`), for functions that align to calendar boundaries.
    pub tz: chrono_tz::Tz,
    /// Bounds of the request.
    pub limits: Limits,
    /// Series and points fetched so far (shared by shifted contexts).
    spent: &'a Spent,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("from", &self.from).field("until", &self.until).field("now", &self.now).finish()
    }
}

/// What a request has fetched (see [`Limits`]).
#[derive(Debug, Default)]
pub struct Spent {
    series: Cell<usize>,
    points: Cell<usize>,
}

impl<'a> Ctx<'a> {
    /// A context over (from, until] at `now`.
    pub fn new(store: &'a dyn Store, from: i64, until: i64, now: i64, spent: &'a Spent) -> Ctx<'a> {
        Ctx { store, from, until, now, x_files_factor: 0.0, tz: chrono_tz::UTC, limits: Limits::default(), spent }
    }

    /// The same request over another window (look-backs, time shifts).
    pub fn shifted(&self, from: i64, until: i64) -> Ctx<'a> {
        Ctx { from, until, ..*self }
    }

    /// Evaluates `expr` to a series list.
    pub fn eval(&self, expr: &Expr) -> Result<Vec<Series>, RenderError> {
        match expr {
            Expr::Path(pattern) => self.fetch_pattern(pattern),
            Expr::Call(call) => {
                let spec = super::functions::lookup(&call.name)
                    .ok_or_else(|| RenderError::bad(format!("unknown function {}()", call.name)))?;
                (spec.imp)(self, &Args { call, name: spec.name })
            }
            other => Err(RenderError::bad(format!("{other} is not a series list"))),
        }
    }

    /// Every leaf matching `pattern`, fetched, sorted by name, `path_expression` = `pattern`.
    fn fetch_pattern(&self, pattern: &str) -> Result<Vec<Series>, RenderError> {
        let leaves = self.store.find_leaves(pattern, self.room().saturating_add(1))?;
        self.fetch_leaves(&leaves, pattern)
    }

    /// `seriesByTag`: every tagged series matching `exprs`, fetched, sorted by name, with the
    /// call's text (`raw`) as `path_expression`, as graphite-web fetches it.
    pub fn fetch_tagged(&self, exprs: &[String], raw: &str) -> Result<Vec<Series>, RenderError> {
        let leaves = self.store.find_tagged(exprs, self.room().saturating_add(1))?;
        self.fetch_leaves(&leaves, raw)
    }

    /// Series the request may still fetch.
    fn room(&self) -> usize {
        self.limits.series_max.saturating_sub(self.spent.series.get())
    }

    /// `leaves` (found for `pattern`) fetched, sorted by name; an error past the room left.
    fn fetch_leaves(&self, leaves: &[String], pattern: &str) -> Result<Vec<Series>, RenderError> {
        if leaves.len() > self.room() {
            return Err(RenderError::bad(format!(
                "{pattern} matches more series than a request may fetch ({})",
                self.limits.series_max
            )));
        }
        let mut out = Vec::with_capacity(leaves.len());
        for fetched in self.store.fetch_many(leaves, self.from, self.until, self.now)? {
            let Some(mut series) = fetched else { continue };
            self.spend(1, series.values.len())?;
            series.path_expression = pattern.to_string();
            series.x_files_factor = self.x_files_factor;
            out.push(series);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Counts `series` and `points` against the request's limits.
    pub fn spend(&self, series: usize, points: usize) -> Result<(), RenderError> {
        self.spent.series.set(self.spent.series.get() + series);
        self.spent.points.set(self.spent.points.get().saturating_add(points));
        if self.spent.points.get() > self.limits.points_max {
            return Err(RenderError::bad(format!(
                "the request needs more than {} values; narrow the time range or the targets",
                self.limits.points_max
            )));
        }
        Ok(())
    }
}

/// The arguments of one call, read by position or keyword (graphite-web's Python calling
/// convention: `f(a, 2)` and `f(a, factor=2)` are the same call).
#[derive(Debug)]
pub struct Args<'c> {
    /// The call.
    pub call: &'c Call,
    /// The canonical function name (aliases resolved), for messages.
    pub name: &'static str,
}

impl<'c> Args<'c> {
    /// Positional arguments given.
    pub fn len(&self) -> usize {
        self.call.args.len()
    }

    /// Whether no positional argument was given.
    pub fn is_empty(&self) -> bool {
        self.call.args.is_empty()
    }

    /// The argument at position `i`, or the keyword argument `key`.
    pub fn get(&self, i: usize, key: &str) -> Option<&'c Expr> {
        self.call.args.get(i).or_else(|| self.call.kwargs.iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    fn missing(&self, key: &str) -> RenderError {
        RenderError::bad(format!("{}: argument {key} is missing", self.name))
    }

    fn wrong(&self, key: &str, what: &str, found: &Expr) -> RenderError {
        RenderError::bad(format!("{}: {key} must be {what}, not {found}", self.name))
    }

    /// A series-list argument, evaluated.
    pub fn series(&self, ctx: &Ctx<'_>, i: usize, key: &str) -> Result<Vec<Series>, RenderError> {
        let expr = self.get(i, key).ok_or_else(|| self.missing(key))?;
        match expr {
            Expr::Path(_) | Expr::Call(_) => ctx.eval(expr),
            other => Err(self.wrong(key, "a series list", other)),
        }
    }

    /// Every positional argument from `i` on, each a series list, evaluated and concatenated
    /// (graphite-web's `*seriesLists`).
    pub fn series_lists(&self, ctx: &Ctx<'_>, from: usize) -> Result<Vec<Series>, RenderError> {
        let mut out = Vec::new();
        for (i, expr) in self.call.args.iter().enumerate().skip(from) {
            match expr {
                Expr::Path(_) | Expr::Call(_) => out.extend(ctx.eval(expr)?),
                other => return Err(self.wrong(&format!("argument {}", i + 1), "a series list", other)),
            }
        }
        Ok(out)
    }

    /// A number (integer or float).
    pub fn number(&self, i: usize, key: &str) -> Result<f64, RenderError> {
        match self.get(i, key).ok_or_else(|| self.missing(key))? {
            Expr::Int(v) => Ok(*v as f64),
            Expr::Float(v) => Ok(*v),
            other => Err(self.wrong(key, "a number", other)),
        }
    }

    /// A number, `default` when absent or None.
    pub fn number_or(&self, i: usize, key: &str, default: f64) -> Result<f64, RenderError> {
        match self.get(i, key) {
            None | Some(Expr::None) => Ok(default),
            Some(_) => self.number(i, key),
        }
    }

    /// An optional number (None when absent or `None`).
    pub fn opt_number(&self, i: usize, key: &str) -> Result<Option<f64>, RenderError> {
        match self.get(i, key) {
            None | Some(Expr::None) => Ok(None),
            Some(_) => self.number(i, key).map(Some),
        }
    }

    /// An integer (a float with no fraction is accepted, as Python's int() of it).
    pub fn int(&self, i: usize, key: &str) -> Result<i64, RenderError> {
        match self.get(i, key).ok_or_else(|| self.missing(key))? {
            Expr::Int(v) => Ok(*v),
            Expr::Float(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(*v as i64),
            other => Err(self.wrong(key, "an integer", other)),
        }
    }

    /// An integer, `default` when absent or None.
    pub fn int_or(&self, i: usize, key: &str, default: i64) -> Result<i64, RenderError> {
        match self.get(i, key) {
            None | Some(Expr::None) => Ok(default),
            Some(_) => self.int(i, key),
        }
    }

    /// A string.
    pub fn string(&self, i: usize, key: &str) -> Result<&'c str, RenderError> {
        match self.get(i, key).ok_or_else(|| self.missing(key))? {
            Expr::Str(s) => Ok(s),
            other => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A string, `default` when absent or None.
    pub fn string_or(&self, i: usize, key: &str, default: &'c str) -> Result<&'c str, RenderError> {
        match self.get(i, key) {
            None | Some(Expr::None) => Ok(default),
            Some(_) => self.string(i, key),
        }
    }

    /// A boolean, `default` when absent (numbers count as Python truthiness).
    pub fn bool_or(&self, i: usize, key: &str, default: bool) -> Result<bool, RenderError> {
        match self.get(i, key) {
            None | Some(Expr::None) => Ok(default),
            Some(Expr::Bool(b)) => Ok(*b),
            Some(Expr::Int(v)) => Ok(*v != 0),
            Some(Expr::Float(v)) => Ok(*v != 0.0),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }

    /// Every positional argument from `i` on (graphite-web's `*nodes`, `*tags`...).
    pub fn rest(&self, from: usize) -> &'c [Expr] {
        self.call.args.get(from..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::grammar::parse;

    /// A store of fixed series, each name matching itself or `*`.
    struct Fixed(Vec<Series>);

    impl Store for Fixed {
        fn find_leaves(&self, pattern: &str, limit: usize) -> Result<Vec<String>, RenderError> {
            let mut names: Vec<String> =
                self.0.iter().filter(|s| pattern == "*" || s.name == pattern).map(|s| s.name.clone()).collect();
            names.truncate(limit);
            Ok(names)
        }

        fn fetch(&self, path: &str, _: i64, _: i64, _: i64) -> Result<Option<Series>, RenderError> {
            Ok(self.0.iter().find(|s| s.name == path).cloned())
        }

        fn find_tagged(&self, _: &[String], _: usize) -> Result<Vec<String>, RenderError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn paths_fetch_sorted_series_with_their_pattern() {
        let store = Fixed(vec![Series::new("b", 0, 10, vec![Some(1.0)]), Series::new("a", 0, 10, vec![Some(2.0)])]);
        let spent = Spent::default();
        let ctx = Ctx::new(&store, 0, 10, 10, &spent);
        let got = ctx.eval(&parse("*").unwrap()).unwrap();
        assert_eq!(got.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(got.iter().all(|s| s.path_expression == "*"));
    }

    #[test]
    fn limits_refuse_a_request_before_it_grows() {
        let store = Fixed((0..10).map(|i| Series::new(&format!("m{i}"), 0, 10, vec![Some(1.0); 100])).collect());
        let spent = Spent::default();
        let mut ctx = Ctx::new(&store, 0, 10, 10, &spent);
        ctx.limits = Limits { series_max: 5, points_max: 1_000_000 };
        assert!(ctx.eval(&parse("*").unwrap()).unwrap_err().to_string().contains("more series"));
        let spent = Spent::default();
        let mut ctx = Ctx::new(&store, 0, 10, 10, &spent);
        ctx.limits = Limits { series_max: 100, points_max: 550 };
        assert!(ctx.eval(&parse("*").unwrap()).unwrap_err().to_string().contains("values"));
    }

    #[test]
    fn unknown_functions_and_literal_targets_are_bad_requests() {
        let store = Fixed(Vec::new());
        let spent = Spent::default();
        let ctx = Ctx::new(&store, 0, 10, 10, &spent);
        assert!(ctx.eval(&parse("noSuchFunction(a)").unwrap()).unwrap_err().is_bad_request());
        assert!(ctx.eval(&Expr::Int(3)).unwrap_err().is_bad_request());
    }
}
