//! JavaScript's number conversions, as etsy statsd (Node.js) applies them to packet fields and
//! metric names: `Number(string)` (ECMAScript's StringToNumber), `isNaN`-based validation, and
//! `Number.prototype.toString()` for the percentiles and bins that end up in metric names.
//!
//! Being exact here is what makes "the same packets give the same metrics" true for odd input:
//! `" 12 "`, `"0x1f"`, `"1e3"`, `"Infinity"` and `"   "` (zero!) are numbers to etsy; `"inf"`,
//! `"1_0"` and `"+0x1"` are not.

use crate::protocol::plaintext::parse_decimal_fast;

/// ECMAScript's white space and line terminators, which `Number()` and `trim()` strip.
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// `String.prototype.trim()`.
pub fn js_trim(s: &str) -> &str {
    // Every JS space is a control byte, a space or starts with a byte above ASCII: a string that
    // begins and ends with a printable ASCII byte has nothing to trim.
    match s.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => s,
        [only] if only.is_ascii_graphic() => s,
        _ => s.trim_matches(is_js_space),
    }
}

/// `Number(s)` for a string: NaN when it is not a numeric literal. An empty (or all-space)
/// string is 0.
pub fn js_number(s: &str) -> f64 {
    let t = js_trim(s);
    if t.is_empty() {
        return 0.0;
    }
    let b = t.as_bytes();
    if let Some(v) = parse_decimal_fast(b) {
        return v;
    }
    if b.len() > 2 && b[0] == b'0' {
        let radix = match b[1] {
            b'x' | b'X' => Some(16),
            b'o' | b'O' => Some(8),
            b'b' | b'B' => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            return radix_integer(&t[2..], radix);
        }
    }
    let (sign, body) = match b[0] {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(body.as_bytes()) {
        return f64::NAN;
    }
    // The grammar is checked: Rust's parser is correctly rounded, as ECMAScript requires.
    body.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// etsy's `isNumber`: a non-empty string that `Number()` does not make NaN.
pub fn is_number(s: &str) -> bool {
    !s.is_empty() && !js_number(s).is_nan()
}

/// StrUnsignedDecimalLiteral without `Infinity`: `1`, `1.`, `1.5`, `.5`, each with an optional
/// exponent `e[+-]digits`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        i += 1 + frac;
    }
    if int == 0 && frac == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = digits(i);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

/// `0x…`, `0o…`, `0b…` digits (no sign, no separators). Exact up to 2^64; beyond, the digits are
/// folded into a double one at a time (within an ulp of the correctly rounded value).
fn radix_integer(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut exact: u64 = 0;
    let mut approx = 0.0f64;
    let mut overflowed = false;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { return f64::NAN };
        if !overflowed {
            match exact.checked_mul(u64::from(radix)).and_then(|v| v.checked_add(u64::from(d))) {
                Some(v) => exact = v,
                None => {
                    overflowed = true;
                    approx = exact as f64;
                }
            }
        }
        if overflowed {
            approx = approx * f64::from(radix) + f64::from(d);
        }
    }
    if overflowed {
        approx
    } else {
        exact as f64
    }
}

/// `Number.prototype.toString()` (radix 10): the shortest digits that round-trip, written
/// without an exponent from 1e-6 up to 1e21 and with one (`1e+21`, `1.5e-7`) outside.
pub fn js_to_string(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddde±x" or "de±x".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let e: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = e + 1; // the decimal point sits after `n` digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n > 0 { "+" } else { "-" };
        let rest = if k > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        format!("{}{rest}e{sign}{}", &digits[..1], (n - 1).abs())
    };
    if v < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_follows_ecmascript() {
        let cases: &[(&str, f64)] = &[
            ("12", 12.0),
            (" 12 ", 12.0),
            ("\u{a0}7\r", 7.0),
            ("-3.5", -3.5),
            ("+4", 4.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E-2", 0.01),
            ("0x1f", 31.0),
            ("0B101", 5.0),
            ("0o17", 15.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("", 0.0),
            ("   ", 0.0),
            ("0.1", 0.1),
            ("00012", 12.0),
            ("0x10000000000000001", 18446744073709551616.0),
        ];
        for (s, want) in cases {
            assert_eq!(js_number(s), *want, "Number({s:?})");
        }
        for bad in
            ["inf", "nan", "NaN", "1_0", "+0x1", "-0x1", "0x", "1e", "e5", ".", "-", "1.2.3", "12a", "infinity", "1 2"]
        {
            assert!(js_number(bad).is_nan(), "Number({bad:?}) is NaN");
        }
        assert!(!is_number(""));
        assert!(is_number("  "), "etsy takes an all-space value for 0");
    }

    #[test]
    fn fast_decimals_are_correctly_rounded() {
        // Up to 15 digits the fast path answers (and up to 2^53 beyond); past it the general
        // parser does: both must be the correctly rounded double (what Rust's parser gives).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 17 + 1) as usize;
            let text = format!("{:0>width$}", x % 10u64.pow(digits.min(19) as u32), width = digits);
            let point = (x >> 20) as usize % (digits + 1);
            let sign = ["", "-", "+"][(x >> 40) as usize % 3];
            let s = format!("{sign}{}.{}", &text[..point], &text[point..]);
            let want: f64 = s.parse().unwrap();
            assert_eq!(js_number(&s).to_bits(), want.to_bits(), "Number({s:?})");
            if digits <= 15 {
                assert!(parse_decimal_fast(s.as_bytes()).is_some(), "{s:?} takes the fast path");
            }
        }
    }

    #[test]
    fn to_string_follows_ecmascript() {
        let cases: &[(f64, &str)] = &[
            (90.0, "90"),
            (99.9, "99.9"),
            (-10.0, "-10"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "Infinity"),
            (-0.0, "0"),
            (2.5e25, "2.5e+25"),
        ];
        for (v, want) in cases {
            assert_eq!(js_to_string(*v), *want, "String({v})");
        }
    }
}
