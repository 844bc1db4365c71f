//! Values read the way carbon reads them: Python's `int()` and `float()`, ConfigParser's
//! `getboolean`, plus the typed shapes Carbyne needs (ports, counts with `inf`, rates, seconds).
//!
//! carbon decides a key's type from its code default: booleans through `getboolean`, everything
//! else tried as `int`, then `float`, then kept as a string. So `MAX_CACHE_SIZE = inf` is the
//! float infinity and `1e6` is a float. Each typed parser here returns what it expected on
//! failure; the caller turns that into an error naming the key, the value, the file and the line.

use std::time::Duration;

/// ConfigParser's `getboolean`: 1/yes/true/on and 0/no/false/off, any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Removes the underscores Python allows between digits (`1_000`); None when one is misplaced.
fn without_underscores(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_digit) || !after.is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// Python's `int()` on a string: surrounding blanks, an optional sign, decimal digits.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let t = without_underscores(s.trim())?;
    let digits = t.strip_prefix(['+', '-']).unwrap_or(&t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Python's `float()` on a string: decimals, exponents, `inf`/`infinity`/`nan` in any case.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let t = without_underscores(s.trim())?;
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(&t);
    let word = unsigned.to_ascii_lowercase();
    if matches!(word.as_str(), "inf" | "infinity" | "nan") {
        let magnitude = if word == "nan" { f64::NAN } else { f64::INFINITY };
        return Some(if t.starts_with('-') { -magnitude } else { magnitude });
    }
    // Rust accepts the same decimal syntax as Python here; the words were handled above so that
    // spellings Rust might take (`+inf`) and Python might not never differ silently.
    if !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse().ok()
}

/// A TCP/UDP port (0 disables the listener in carbon).
pub(crate) fn parse_port(s: &str) -> Result<u16, &'static str> {
    const EXPECTED: &str = "a port number 0-65535 (0 disables the listener)";
    parse_int(s).and_then(|n| u16::try_from(n).ok()).ok_or(EXPECTED)
}

/// A whole number, or `inf` for "no limit" (None).
pub(crate) fn parse_limit(s: &str) -> Result<Option<u64>, &'static str> {
    const EXPECTED: &str = "a whole number >= 0, or inf for no limit";
    match parse_float(s) {
        Some(v) if v == f64::INFINITY => Ok(None),
        Some(v) => whole(v).map(Some).ok_or(EXPECTED),
        None => Err(EXPECTED),
    }
}

/// A rate or count that may be fractional or `inf` (token-bucket settings).
pub(crate) fn parse_rate(s: &str) -> Result<f64, &'static str> {
    const EXPECTED: &str = "a number >= 0, or inf for no limit";
    parse_float(s).filter(|v| *v >= 0.0).ok_or(EXPECTED)
}

/// Like [`parse_rate`], with `None` (Python's literal, as the example file shows) for unset.
pub(crate) fn parse_optional_rate(s: &str) -> Result<Option<f64>, &'static str> {
    const EXPECTED: &str = "a number >= 0, inf, or None for unset";
    if s == "None" {
        return Ok(None);
    }
    parse_float(s).filter(|v| *v >= 0.0).map(Some).ok_or(EXPECTED)
}

/// A whole number of seconds.
pub(crate) fn parse_seconds(s: &str) -> Result<u64, &'static str> {
    const EXPECTED: &str = "a whole number of seconds >= 0";
    parse_float(s).and_then(whole).ok_or(EXPECTED)
}

/// A timeout in seconds; `None`, `0` and `inf` all mean no timeout, as in carbon.
pub(crate) fn parse_timeout(s: &str) -> Result<Option<Duration>, &'static str> {
    const EXPECTED: &str = "a number of seconds >= 0, or None for no timeout";
    if s == "None" {
        return Ok(None);
    }
    match parse_float(s) {
        Some(v) if v == 0.0 || v == f64::INFINITY => Ok(None),
        Some(v) if v > 0.0 => Duration::try_from_secs_f64(v).map(Some).map_err(|_| EXPECTED),
        _ => Err(EXPECTED),
    }
}

/// `v` as a u64 when it is a whole, non-negative, finite number in range.
fn whole(v: f64) -> Option<u64> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    ((0.0..TWO_POW_64).contains(&v) && v.fract() == 0.0).then_some(v as u64)
}

/// Formats a number as carbon would print it: `inf`, `500`, `0.5`.
pub(crate) fn format_number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    format!("{v}")
}

/// Formats a bool as Python does (`True`/`False`), the spelling carbon.conf files use.
pub(crate) fn format_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: PartialEq + std::fmt::Debug>(f: impl Fn(&str) -> T, cases: &[(&str, T)]) {
        for (input, expected) in cases {
            assert_eq!(f(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn booleans_as_getboolean() {
        check(
            parse_bool,
            &[
                ("1", Some(true)),
                ("yes", Some(true)),
                ("TRUE", Some(true)),
                ("On", Some(true)),
                ("0", Some(false)),
                ("No", Some(false)),
                ("false", Some(false)),
                ("OFF", Some(false)),
                ("", None),
                ("2", None),
                ("y", None),
                ("truee", None),
            ],
        );
    }

    #[test]
    fn ints_and_floats_as_python() {
        check(
            parse_int,
            &[("2003", Some(2003)), (" +7 ", Some(7)), ("-3", Some(-3)), ("1_000", Some(1000)), ("1__0", None)],
        );
        check(parse_int, &[("", None), ("1.0", None), ("_1", None), ("1_", None), ("0x10", None), ("inf", None)]);
        check(
            parse_float,
            &[
                ("inf", Some(f64::INFINITY)),
                ("Infinity", Some(f64::INFINITY)),
                ("-INF", Some(f64::NEG_INFINITY)),
                ("1e6", Some(1e6)),
                (".5", Some(0.5)),
                ("5.", Some(5.0)),
                ("1_0.5", Some(10.5)),
                ("", None),
                ("abc", None),
                ("in f", None),
                ("1e", None),
            ],
        );
        assert!(parse_float("nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn typed_shapes() {
        check(parse_port, &[("2003", Ok(2003)), ("0", Ok(0)), ("65535", Ok(65535))]);
        assert!(parse_port("65536").is_err() && parse_port("-1").is_err() && parse_port("20.5").is_err());
        check(parse_limit, &[("inf", Ok(None)), ("1000", Ok(Some(1000))), ("1e6", Ok(Some(1_000_000)))]);
        assert!(parse_limit("-1").is_err() && parse_limit("1.5").is_err() && parse_limit("nan").is_err());
        check(parse_rate, &[("500", Ok(500.0)), ("0.5", Ok(0.5)), ("inf", Ok(f64::INFINITY)), ("0", Ok(0.0))]);
        assert!(parse_rate("-1").is_err() && parse_rate("nan").is_err() && parse_rate("x").is_err());
        check(parse_optional_rate, &[("None", Ok(None)), ("1000", Ok(Some(1000.0)))]);
        check(parse_seconds, &[("60", Ok(60)), ("0", Ok(0))]);
        assert!(parse_seconds("1.5").is_err() && parse_seconds("inf").is_err());
        check(
            parse_timeout,
            &[("None", Ok(None)), ("0", Ok(None)), ("inf", Ok(None)), ("1.5", Ok(Some(Duration::from_millis(1500))))],
        );
        assert!(parse_timeout("-1").is_err() && parse_timeout("1e300").is_err() && parse_timeout("soon").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for v in [f64::INFINITY, 500.0, 0.5, 0.0, 1e20, 1.25] {
            assert_eq!(parse_float(&format_number(v)), Some(v), "{v}");
        }
        assert_eq!(format_number(500.0), "500");
        assert_eq!(parse_bool(format_bool(true)), Some(true));
        assert_eq!(parse_bool(format_bool(false)), Some(false));
    }
}
