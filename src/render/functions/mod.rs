//! The function library, by graphite-web's groups: each file holds the functions of one group
//! and a `FUNCTIONS` table of their specs (name, group, parameters for `/functions`, and the
//! implementation). Aliases (`sum` for `sumSeries`) are specs of their own sharing an
//! implementation, as graphite-web lists them.
//!
//! Shared helpers live here too: the naming of results (graphite-web's formats, which Grafana
//! shows) and argument formatting.

pub mod aggregate;
mod alias;
mod calculate;
mod combine;
mod filter;
mod normalize;
mod sort;
mod special;
#[cfg(test)]
mod testutil;
mod transform;

use super::eval::{Args, Ctx};
use super::series::Series;
use super::RenderError;

/// A function's implementation.
pub type Imp = fn(&Ctx<'_>, &Args<'_>) -> Result<Vec<Series>, RenderError>;

/// The type of a parameter, as graphite-web's `/functions` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `seriesList`.
    SeriesList,
    /// `seriesLists` (several lists).
    SeriesLists,
    /// `integer`.
    Integer,
    /// `float`.
    Float,
    /// `string`.
    String,
    /// `boolean`.
    Boolean,
    /// `node` (a path element index).
    Node,
    /// `nodeOrTag`.
    NodeOrTag,
    /// `tag`.
    Tag,
    /// `interval` (`1h`, `-5min`).
    Interval,
    /// `intOrInf` (an integer, or infinity).
    IntOrInf,
    /// `date` (a time as `from`/`until` take it).
    Date,
    /// `intOrInterval`.
    IntOrInterval,
    /// `aggFunc` (an aggregation name).
    AggFunc,
    /// `aggOrSeriesFunc`.
    AggOrSeriesFunc,
    /// `any`.
    Any,
}

impl ParamKind {
    /// graphite-web's type name.
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::SeriesList => "seriesList",
            ParamKind::SeriesLists => "seriesLists",
            ParamKind::Integer => "integer",
            ParamKind::Float => "float",
            ParamKind::String => "string",
            ParamKind::Boolean => "boolean",
            ParamKind::Node => "node",
            ParamKind::NodeOrTag => "nodeOrTag",
            ParamKind::Tag => "tag",
            ParamKind::Interval => "interval",
            ParamKind::IntOrInf => "intOrInf",
            ParamKind::Date => "date",
            ParamKind::IntOrInterval => "intOrInterval",
            ParamKind::AggFunc => "aggFunc",
            ParamKind::AggOrSeriesFunc => "aggOrSeriesFunc",
            ParamKind::Any => "any",
        }
    }
}

/// One parameter of a function.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name (also the keyword argument's).
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
    /// Whether it must be given.
    pub required: bool,
    /// Its default as a JSON literal (`"0"`, `"\"average\""`, `"1e9999"` for infinity).
    pub default: Option<&'static str>,
    /// Whether it takes any number of values (`*nodes`).
    pub multiple: bool,
    /// Allowed values, for the editor's drop-down.
    pub options: &'static [&'static str],
}

impl Param {
    /// A required parameter.
    pub const fn required(name: &'static str, kind: ParamKind) -> Param {
        Param { name, kind, required: true, default: None, multiple: false, options: &[] }
    }

    /// An optional parameter with a default (a JSON literal).
    pub const fn optional(name: &'static str, kind: ParamKind, default: Option<&'static str>) -> Param {
        Param { name, kind, required: false, default, multiple: false, options: &[] }
    }

    /// The same parameter taking any number of values.
    pub const fn multiple(self) -> Param {
        Param { multiple: true, ..self }
    }

    /// The same parameter with a list of allowed values.
    pub const fn options(self, options: &'static [&'static str]) -> Param {
        Param { options, ..self }
    }
}

/// Everything known about one function name.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// The name called.
    pub name: &'static str,
    /// graphite-web's group (`Combine`, `Transform`, `Calculate`, `Filter Series`,
    /// `Filter Data`, `Sorting`, `Alias`, `Special`).
    pub group: &'static str,
    /// What it does (our words), for `/functions`.
    pub description: &'static str,
    /// Its parameters, in order.
    pub params: &'static [Param],
    /// The implementation.
    pub imp: Imp,
}

/// Every table, in group order.
fn tables() -> [&'static [FunctionSpec]; 7] {
    [
        combine::FUNCTIONS,
        special::FUNCTIONS,
        filter::FUNCTIONS,
        sort::FUNCTIONS,
        alias::FUNCTIONS,
        transform::FUNCTIONS,
        calculate::FUNCTIONS,
    ]
}

/// Every function we implement, aliases included.
pub fn all() -> impl Iterator<Item = &'static FunctionSpec> {
    tables().into_iter().flatten()
}

/// The function called `name`.
pub fn lookup(name: &str) -> Option<&'static FunctionSpec> {
    all().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parameters_well_formed() {
        let mut names: Vec<&str> = all().map(|f| f.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a function name is registered twice");
        for f in all() {
            let mut optional_seen = false;
            for p in f.params {
                assert!(!(optional_seen && p.required), "{}: required {} after an optional one", f.name, p.name);
                optional_seen |= !p.required;
                if let Some(d) = p.default {
                    // 1e9999 (infinity, as graphite-web writes it) is JSON that serde_json reads as out of range.
                    let json = d == "1e9999" || serde_json::from_str::<serde_json::Value>(d).is_ok();
                    assert!(json, "{}: default {d} is JSON", f.name);
                }
            }
        }
    }
}
