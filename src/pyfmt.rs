//! Number and time formatting exactly as Python prints them: for the whisper tools (scripts
//! parse `whisper-info`, `whisper-fetch` or `whisper-dump` output) and for graphite-web's
//! series names and raw format, which print arguments and values with Python's `repr`.

/// Splits a finite, non-zero `v` rendered by `{:e}`-style formatting into (sign, digits, exponent):
/// `-1.25e-3` → ("-", "125", -3), meaning -1.25 × 10^-3.
fn split_scientific(rendered: &str) -> (&str, String, i32) {
    let (sign, rest) = rendered.strip_prefix('-').map_or(("", rendered), |r| ("-", r));
    let (mantissa, exp) = rest.split_once('e').unwrap_or((rest, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (sign, digits, exp.parse().unwrap_or(0))
}

fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("nan")
    } else if v == f64::INFINITY {
        Some("inf")
    } else if v == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

fn exponent_suffix(exp: i32) -> String {
    format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Places a decimal point in `digits` for a value d.ddd × 10^exp, without an exponent.
fn fixed_from_digits(digits: &str, exp: i32) -> (String, String) {
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        ("0".to_string(), format!("{zeros}{digits}"))
    } else {
        let point = exp as usize + 1;
        if digits.len() > point {
            (digits[..point].to_string(), digits[point..].to_string())
        } else {
            (format!("{digits}{}", "0".repeat(point - digits.len())), String::new())
        }
    }
}

/// Python's `repr(float)` (and `str`): the shortest digits that round-trip, fixed notation for
/// exponents in -4..16 with at least one decimal, scientific (`1e-05`, `1.5e+16`) otherwise.
pub fn py_repr(v: f64) -> String {
    if let Some(s) = non_finite(v) {
        return s.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let rendered = format!("{v:e}");
    let (sign, digits, exp) = split_scientific(&rendered);
    if (-4..16).contains(&exp) {
        let (int, frac) = fixed_from_digits(&digits, exp);
        let frac = if frac.is_empty() { "0".to_string() } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{sign}{first}{rest}{}", exponent_suffix(exp))
    }
}

/// C's `%.<precision>g` (as Python's `%` operator applies it), without a width.
pub fn c_g(v: f64, precision: usize) -> String {
    if let Some(s) = non_finite(v) {
        return s.to_string();
    }
    let p = precision.max(1);
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let rendered = format!("{:.*e}", p - 1, v);
    let (sign, digits, exp) = split_scientific(&rendered);
    if exp >= -4 && (exp as i64) < p as i64 {
        let fixed = format!("{:.*}", (p as i64 - 1 - exp as i64) as usize, v.abs());
        format!("{sign}{}", strip_fraction_zeros(&fixed))
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = strip_fraction_zeros(&format!("{first}.{rest}"));
        format!("{sign}{mantissa}{}", exponent_suffix(exp))
    }
}

fn strip_fraction_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// C's `%f`: six decimals.
pub fn c_f(v: f64) -> String {
    non_finite(v).map_or_else(|| format!("{v:.6}"), str::to_string)
}

/// Python's `str(list)` of optional floats, `None` for missing values.
pub fn py_list(values: &[Option<f64>]) -> String {
    let items: Vec<String> = values.iter().map(|v| v.map_or_else(|| "None".to_string(), py_repr)).collect();
    format!("[{}]", items.join(", "))
}

/// `time.ctime(t)` for UTC: `Wed Nov 25 22:19:54 2026`.
pub fn ctime_utc(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!("{weekday} {month} {d:>2} {:02}:{:02}:{:02} {y}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.2f32 as f64, "0.20000000298023224"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (100.0, "100.0"),
            (f64::NAN, "nan"),
        ];
        for &(v, expected) in cases {
            assert_eq!(py_repr(v), expected, "{v:?}");
        }
    }

    #[test]
    fn percent_g_matches_c() {
        let cases: &[(f64, usize, &str)] = &[
            (0.5, 6, "0.5"),
            (0.0, 35, "0"),
            (1.5, 35, "1.5"),
            (0.1, 35, "0.1000000000000000055511151231257827"),
            (100.0, 6, "100"),
            (1234567.0, 6, "1.23457e+06"),
            (0.00001234, 6, "1.234e-05"),
            (0.0001234, 6, "0.0001234"),
            (1e40, 35, "1.0000000000000000303786028427003667e+40"),
            (-3.0, 35, "-3"),
        ];
        for &(v, p, expected) in cases {
            assert_eq!(c_g(v, p), expected, "%.{p}g of {v:?}");
        }
    }

    #[test]
    fn ctime_and_f() {
        assert_eq!(ctime_utc(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime_utc(1_764_109_194), "Tue Nov 25 22:19:54 2025");
        assert_eq!(c_f(1.5), "1.500000");
        assert_eq!(py_list(&[Some(1.0), None]), "[1.0, None]");
    }
}
