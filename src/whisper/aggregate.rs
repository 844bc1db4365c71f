//! The eight aggregation methods of whisper, bit-exact with whisper.py.
//!
//! Python details that matter for bit-exactness: `sum()` adds left to right starting from the
//! integer 0 (so a sum of `-0.0`s is `+0.0`); `max`/`min` keep the first of equal candidates and
//! compare with `>`/`<`; `max(key=abs)` keeps the first value of largest magnitude.

use super::error::WhisperError;

/// How a lower-precision archive summarises the points of a higher one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregationMethod {
    /// Mean of the known values (code 1).
    Average,
    /// Sum of the known values (code 2).
    Sum,
    /// The latest known value (code 3).
    Last,
    /// Largest known value (code 4).
    Max,
    /// Smallest known value (code 5).
    Min,
    /// Sum of the window with unknown values as 0, divided by the window length (code 6).
    AvgZero,
    /// Value of largest magnitude, sign kept (code 7).
    AbsMax,
    /// Value of smallest magnitude, sign kept (code 8).
    AbsMin,
}

impl AggregationMethod {
    /// All methods in code order.
    pub const ALL: [AggregationMethod; 8] =
        [Self::Average, Self::Sum, Self::Last, Self::Max, Self::Min, Self::AvgZero, Self::AbsMax, Self::AbsMin];

    /// The u32 stored in the file header.
    pub fn code(self) -> u32 {
        self as u32 + 1
    }

    /// The method for a header code, if it is one of whisper's eight.
    pub fn from_code(code: u32) -> Option<Self> {
        let idx = usize::try_from(code.checked_sub(1)?).ok()?;
        Self::ALL.get(idx).copied()
    }

    /// whisper's name for the method (`average`, `avg_zero`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Average => "average",
            Self::Sum => "sum",
            Self::Last => "last",
            Self::Max => "max",
            Self::Min => "min",
            Self::AvgZero => "avg_zero",
            Self::AbsMax => "absmax",
            Self::AbsMin => "absmin",
        }
    }

    /// Aggregates one propagation window. `window` holds a slot each of the higher archive, None
    /// where the slot has no valid point; the caller guarantees at least one known value.
    pub fn aggregate(self, window: &[Option<f64>]) -> f64 {
        let known = window.iter().filter_map(|v| *v);
        match self {
            Self::Average => {
                let (sum, n) = known.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
                sum / f64::from(n.max(1))
            }
            Self::Sum => known.fold(0.0, |s, v| s + v),
            Self::Last => window.iter().rev().find_map(|v| *v).unwrap_or(f64::NAN),
            Self::Max => known.reduce(|best, v| if v > best { v } else { best }).unwrap_or(f64::NAN),
            Self::Min => known.reduce(|best, v| if v < best { v } else { best }).unwrap_or(f64::NAN),
            Self::AvgZero => {
                // Python's `x or 0` maps None, 0.0 and -0.0 to the integer 0, which adds as +0.0.
                let sum = window.iter().fold(0.0, |s, v| s + v.unwrap_or(0.0));
                sum / window.len().max(1) as f64
            }
            Self::AbsMax => known.reduce(|best, v| if v.abs() > best.abs() { v } else { best }).unwrap_or(f64::NAN),
            Self::AbsMin => known.reduce(|best, v| if v.abs() < best.abs() { v } else { best }).unwrap_or(f64::NAN),
        }
    }
}

impl std::str::FromStr for AggregationMethod {
    type Err = WhisperError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| WhisperError::InvalidAggregationMethod(s.to_string()))
    }
}

impl std::fmt::Display for AggregationMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::AggregationMethod::{self, *};

    fn check(method: AggregationMethod, window: &[Option<f64>], expected: f64) {
        let got = method.aggregate(window);
        assert_eq!(got.to_bits(), expected.to_bits(), "{method} of {window:?}: {got} != {expected}");
    }

    #[test]
    fn each_method_as_whisper_py() {
        let w = [Some(1.0), None, Some(3.0), Some(-4.0)];
        check(Average, &w, 0.0);
        check(Sum, &w, 0.0);
        check(Last, &w, -4.0);
        check(Max, &w, 3.0);
        check(Min, &w, -4.0);
        check(AvgZero, &w, 0.0);
        check(AbsMax, &w, -4.0);
        check(AbsMin, &w, 1.0);
        check(Average, &[Some(1.0), Some(2.0)], 1.5);
        check(AvgZero, &[Some(1.0), None, None, Some(3.0)], 1.0);
    }

    #[test]
    fn ties_and_signed_zeros_follow_python() {
        check(AbsMax, &[Some(-3.0), Some(3.0)], -3.0);
        check(AbsMin, &[Some(2.0), Some(-2.0)], 2.0);
        check(Sum, &[Some(-0.0), Some(-0.0)], 0.0);
        check(Average, &[Some(-0.0)], 0.0);
        check(Max, &[Some(-0.0), Some(0.0)], -0.0);
        check(Min, &[Some(0.0), Some(-0.0)], 0.0);
        check(AvgZero, &[Some(-0.0), None], 0.0);
    }

    #[test]
    fn codes_and_names_round_trip() {
        for m in AggregationMethod::ALL {
            assert_eq!(AggregationMethod::from_code(m.code()), Some(m));
            assert_eq!(m.name().parse::<AggregationMethod>().unwrap(), m);
        }
        assert_eq!(AggregationMethod::from_code(0), None);
        assert_eq!(AggregationMethod::from_code(9), None);
        assert!("median".parse::<AggregationMethod>().is_err());
    }
}
