//! A time series as graphite-web's render functions see it (its `TimeSeries`): a name, the
//! path expression it came from, tags, a regular time grid and one value (or None) per step.

use std::collections::BTreeMap;

/// How maxDataPoints consolidation reduces a bucket of this series (`consolidateBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consolidation {
    /// Mean of the non-null values (`average`, `avg`).
    #[default]
    Average,
    /// Mean with nulls counted as 0 (`avg_zero`).
    AvgZero,
    /// Sum of the non-null values.
    Sum,
    /// Smallest non-null value.
    Min,
    /// Largest non-null value.
    Max,
    /// First non-null value.
    First,
    /// Last non-null value.
    Last,
}

impl Consolidation {
    /// The name graphite-web uses (and `consolidateBy` accepts).
    pub fn name(self) -> &'static str {
        match self {
            Consolidation::Average => "average",
            Consolidation::AvgZero => "avg_zero",
            Consolidation::Sum => "sum",
            Consolidation::Min => "min",
            Consolidation::Max => "max",
            Consolidation::First => "first",
            Consolidation::Last => "last",
        }
    }

    /// From a `consolidateBy` argument (`avg` is `average`).
    pub fn from_name(name: &str) -> Option<Consolidation> {
        Some(match name {
            "average" | "avg" => Consolidation::Average,
            "avg_zero" => Consolidation::AvgZero,
            "sum" => Consolidation::Sum,
            "min" => Consolidation::Min,
            "max" => Consolidation::Max,
            "first" => Consolidation::First,
            "last" => Consolidation::Last,
            _ => return None,
        })
    }
}

/// One series. Invariant: `values.len() == (end - start) / step` and `step > 0`; value `i` is
/// for the interval starting at `start + i * step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name shown (`target` in JSON).
    pub name: String,
    /// The target pattern the series came from (cluster protocol's `pathExpression`).
    pub path_expression: String,
    /// Tags; `name` is always present (the metric path for plain series).
    pub tags: BTreeMap<String, String>,
    /// Timestamp of the first value.
    pub start: i64,
    /// One step past the timestamp of the last value.
    pub end: i64,
    /// Seconds by which `end` lies past the end graphite-web keeps for this series, which is
    /// what its output shows (JSON timestamps, maxDataPoints' time range, raw and pickle `end`):
    /// a series moved forward by a look-back that is not a whole number of steps keeps the
    /// request's end there while its values end on the step grid. 0 for every other series;
    /// functions that put a series on a new grid reset it.
    pub overhang: i64,
    /// Seconds between values.
    pub step: i64,
    /// Values; None is a gap (null). A Some may hold NaN or ±inf after arithmetic.
    pub values: Vec<Option<f64>>,
    /// maxDataPoints consolidation of this series.
    pub consolidation: Consolidation,
    /// Values each output point stands for after consolidation (1 before).
    pub values_per_point: usize,
    /// The xFilesFactor consolidation applies (the request's, or `setXFilesFactor`).
    pub x_files_factor: f64,
}

impl Series {
    /// A series named `name` (also its path expression and `name` tag, with `a;k=v` tags
    /// parsed) over `start`, `step` and `values`.
    pub fn new(name: &str, start: i64, step: i64, values: Vec<Option<f64>>) -> Series {
        let step = step.max(1);
        Series {
            name: name.to_string(),
            path_expression: name.to_string(),
            tags: tags_of(name),
            start,
            end: start + step * values.len() as i64,
            overhang: 0,
            step,
            values,
            consolidation: Consolidation::default(),
            values_per_point: 1,
            x_files_factor: 0.0,
        }
    }

    /// A series with this one's grid and attributes but other values and name; tags copied.
    pub fn derive(&self, name: String, values: Vec<Option<f64>>) -> Series {
        debug_assert_eq!(values.len(), self.values.len());
        Series { name, values, ..self.clone_meta() }
    }

    /// A copy without the values (cheap for long series).
    pub fn clone_meta(&self) -> Series {
        Series {
            name: self.name.clone(),
            path_expression: self.path_expression.clone(),
            tags: self.tags.clone(),
            start: self.start,
            end: self.end,
            overhang: self.overhang,
            step: self.step,
            values: Vec::new(),
            consolidation: self.consolidation,
            values_per_point: self.values_per_point,
            x_files_factor: self.x_files_factor,
        }
    }

    /// The end graphite-web shows for this series (see `overhang`).
    pub fn shown_end(&self) -> i64 {
        self.end - self.overhang
    }

    /// (timestamp, value) pairs.
    pub fn points(&self) -> impl Iterator<Item = (i64, Option<f64>)> + '_ {
        self.values.iter().enumerate().map(move |(i, v)| (self.start + i as i64 * self.step, *v))
    }

    /// Whether any value is not None.
    pub fn has_data(&self) -> bool {
        self.values.iter().any(Option::is_some)
    }
}

/// graphite-web's tags of a series name: `name;k=v;k2=v2` gives {name, k, k2}; a plain name
/// gives {name}.
pub fn tags_of(name: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let mut parts = name.split(';');
    let metric = parts.next().unwrap_or("");
    let mut tagged = false;
    for part in parts {
        if let Some((k, v)) = part.split_once('=') {
            if !k.is_empty() {
                tags.insert(k.to_string(), v.to_string());
                tagged = true;
            }
        }
    }
    tags.insert("name".to_string(), if tagged { metric.to_string() } else { name.to_string() });
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_tags() {
        let t = tags_of("cpu.load;host=a;dc=x");
        assert_eq!(t.get("name").map(String::as_str), Some("cpu.load"));
        assert_eq!(t.get("host").map(String::as_str), Some("a"));
        assert_eq!(tags_of("a.b").len(), 1);
    }

    #[test]
    fn a_series_keeps_its_grid() {
        let s = Series::new("a", 60, 60, vec![Some(1.0), None, Some(3.0)]);
        assert_eq!((s.start, s.end, s.step), (60, 240, 60));
        assert_eq!(s.points().collect::<Vec<_>>(), vec![(60, Some(1.0)), (120, None), (180, Some(3.0))]);
        assert!(s.has_data());
    }
}
