//! Carbon's plaintext protocol: one line `name value timestamp` becomes a [`Point`] or a
//! [`Reject`] reason that the caller counts.
//!
//! Owns: splitting a line into fields, Python's `float()` for the value and the timestamp, and
//! the per-point rules carbon-cache applies before caching (NaN dropped, `-1` meaning now,
//! `MIN_TIMESTAMP_RESOLUTION`). Leaves out: finding lines in a byte stream ([`super::lines`]),
//! checking the name ([`super::name`]), and anything that does I/O or reads the clock.
//!
//! Carbon (`protocols.py`, `MetricLineReceiver.lineReceived` and `MetricReceiver.metricReceived`)
//! does, per line: `line.decode('utf-8')`, `metric, value, timestamp = line.strip().split()`,
//! `float(timestamp)`, `float(value)`; drops NaN values; replaces a timestamp whose `int()` is
//! `-1` by the current time; then, when `MIN_TIMESTAMP_RESOLUTION` is set,
//! `int(ts) // res * res`. This module does the same, with these decisions where carbon's
//! behaviour is an accident rather than a contract:
//!
//! - Fields are separated by runs of Python's whitespace (`str.split()` with no argument): the
//!   ASCII set ` \t\n\v\f\r` and `\x1c`-`\x1f`, and, in lines that hold non-ASCII bytes, the
//!   Unicode spaces as well (U+0085, U+00A0, U+2000-U+200A, ...). A line is accepted only with
//!   exactly three fields, as carbon's tuple unpacking requires; an empty (or all-blank) line is
//!   counted as [`Reject::Empty`].
//! - A line that is not UTF-8 is [`Reject::InvalidUtf8`]. Carbon's `decode` raises outside its
//!   `try`, which makes Twisted drop the whole connection; here only the line is lost.
//! - Numbers are Python's `float()` over ASCII: optional sign, digits with an optional fraction
//!   and exponent, `inf`/`infinity`/`nan` in any case, and PEP 515 underscores between two digits
//!   (`1_000` is 1000.0; `_1`, `1_`, `1__0`, `1_.5` are rejected, as Python rejects them). Python
//!   also accepts non-ASCII decimal digits (`float('١')` is 1.0); those lines are rejected here.
//!   Results are bit-identical to Python's: both round correctly.
//! - A timestamp is a Python float truncated toward zero (`int(float(ts))`). An infinite or NaN
//!   timestamp, or one outside `i64`, is [`Reject::BadTimestamp`]: carbon's `int()` raises outside
//!   its `try` there too, and the connection is dropped.
//! - `resolution` truncates with Python's floor division (`-7 // 5 * 5 == -10`).

use std::fmt;

/// One point from one line. The name is the raw first field, not yet checked: see
/// [`super::name::validate`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point<'a> {
    /// The first field, borrowed from the line.
    pub name: &'a [u8],
    /// Never NaN (NaN values are rejected); may be infinite, as in carbon.
    pub value: f64,
    /// Seconds since the epoch: `-1` already replaced by `now`, and truncated to a multiple of
    /// the resolution when the resolution is not 0.
    pub timestamp: i64,
}

/// Why a line gave no point. Every variant is counted by the caller under
/// [`Reject::as_str`]; none of them costs more than the line itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The line is empty or holds only whitespace.
    Empty,
    /// Not exactly three fields.
    FieldCount,
    /// The value is not a Python float.
    BadValue,
    /// The value is NaN: carbon drops these.
    NanValue,
    /// The timestamp is not a Python float, or is infinite, NaN or outside `i64`.
    BadTimestamp,
    /// The line is not UTF-8.
    InvalidUtf8,
    /// The line is longer than the line limit (reported by [`super::lines`]).
    TooLong,
    /// The connection closed in the middle of a line (reported by [`super::lines`]).
    Incomplete,
}

impl Reject {
    /// Every reason, in a fixed order: for telemetry tables.
    pub const ALL: [Reject; 8] = [
        Reject::Empty,
        Reject::FieldCount,
        Reject::BadValue,
        Reject::NanValue,
        Reject::BadTimestamp,
        Reject::InvalidUtf8,
        Reject::TooLong,
        Reject::Incomplete,
    ];

    /// A name usable as a metric suffix, such as `rejected.bad_value`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Empty => "empty_line",
            Reject::FieldCount => "field_count",
            Reject::BadValue => "bad_value",
            Reject::NanValue => "nan_value",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::InvalidUtf8 => "invalid_utf8",
            Reject::TooLong => "line_too_long",
            Reject::Incomplete => "incomplete_line",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Reject {}

impl From<super::lines::LineTooLong> for Reject {
    fn from(_: super::lines::LineTooLong) -> Self {
        Reject::TooLong
    }
}

impl From<super::lines::IncompleteLine> for Reject {
    fn from(_: super::lines::IncompleteLine) -> Self {
        Reject::Incomplete
    }
}

/// Parses one line (without its `\n`; a trailing `\r` is whitespace and may stay) as carbon's
/// `MetricLineReceiver` does. `now` replaces a timestamp of `-1`; `resolution` is
/// `MIN_TIMESTAMP_RESOLUTION` in seconds (0: keep the timestamp as sent). Allocates nothing
/// (except for a number with underscores longer than 64 bytes).
pub fn parse_line(line: &[u8], now: i64, resolution: u64) -> Result<Point<'_>, Reject> {
    let [name, value, timestamp] = match split_ascii(line)? {
        Some(fields) => fields,
        None => split_unicode(line)?,
    };
    let value = parse_float(value).ok_or(Reject::BadValue)?;
    let timestamp = parse_timestamp(timestamp).ok_or(Reject::BadTimestamp)?;
    if value.is_nan() {
        return Err(Reject::NanValue);
    }
    let timestamp = apply_rules(timestamp, now, resolution).ok_or(Reject::BadTimestamp)?;
    Ok(Point { name, value, timestamp })
}

/// Python's `str.isspace()` over ASCII: ` \t\n\v\f\r` and the separators `\x1c`-`\x1f`.
fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f)
}

/// Python's `str.isspace()`: Rust's `char::is_whitespace` (the Unicode White_Space property)
/// plus the ASCII information separators `\x1c`-`\x1f`, which Python also counts (bidi class
/// B or S). A unit test checks the two sets against Python's list.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Splits a line into exactly three fields separated by runs of ASCII whitespace; `Ok(None)`
/// when the line holds a non-ASCII byte, which needs [`split_unicode`].
fn split_ascii(line: &[u8]) -> Result<Option<[&[u8]; 3]>, Reject> {
    let mut fields: [&[u8]; 3] = [&[]; 3];
    let mut n_fields = 0usize;
    let mut i = 0usize;
    loop {
        while i < line.len() && is_ascii_py_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let start = i;
        // Every separator is at most 0x20, so only such bytes (and non-ASCII ones) can end a
        // field; a control byte that is not a separator stays in the field.
        loop {
            i = find_stop(line, i);
            match line.get(i) {
                Some(&b) if b >= 0x80 => return Ok(None),
                Some(&b) if !is_ascii_py_space(b) => i += 1,
                _ => break,
            }
        }
        if n_fields == 3 {
            // A fourth field: rejected whatever follows (more spaces only add fields), but an
            // invalid UTF-8 tail is reported as such, as the slow path would.
            return if line[i..].is_ascii() { Err(Reject::FieldCount) } else { Ok(None) };
        }
        fields[n_fields] = &line[start..i];
        n_fields += 1;
    }
    match n_fields {
        0 => Err(Reject::Empty),
        3 => Ok(Some(fields)),
        _ => Err(Reject::FieldCount),
    }
}

/// The index of the first byte at or after `from` that is at most 0x20 or at least 0x80 (a
/// possible field end), or `line.len()`. Eight bytes at a time: names are a few dozen bytes.
fn find_stop(line: &[u8], from: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(word) = line.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        // A byte below 0x21 borrows and sets its high bit; a byte of 0x80 or more has it set.
        // Borrows only run upward, so the lowest flagged byte is exact.
        let stops = (x.wrapping_sub(LO * 0x21) | x) & HI;
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    line[i..].iter().position(|&b| b <= 0x20 || b >= 0x80).map_or(line.len(), |at| i + at)
}

/// The slow path for lines with non-ASCII bytes: UTF-8 is required (carbon decodes the line),
/// and Unicode spaces separate fields too, as `str.split()` does.
fn split_unicode(line: &[u8]) -> Result<[&[u8]; 3], Reject> {
    let text = std::str::from_utf8(line).map_err(|_| Reject::InvalidUtf8)?;
    let mut parts = text.split(is_py_space).filter(|field| !field.is_empty());
    let (Some(name), value, timestamp) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Reject::Empty);
    };
    match (value, timestamp, parts.next()) {
        (Some(value), Some(timestamp), None) => Ok([name.as_bytes(), value.as_bytes(), timestamp.as_bytes()]),
        _ => Err(Reject::FieldCount),
    }
}

/// Python's `float()` of one field (no surrounding whitespace): `None` where Python raises
/// `ValueError`. The common case, a plain decimal such as `12.5` or `-3`, takes a short exact
/// path; everything else goes through the full grammar check and `f64::from_str`, which rounds
/// correctly, as Python does.
pub fn parse_float(field: &[u8]) -> Option<f64> {
    match scan_plain_decimal(field) {
        PlainDecimal::Exact(value) => Some(value),
        // Valid in Python's grammar and in Rust's as it is (no underscores, no exponent): one
        // correctly rounded parse, without the full grammar check.
        PlainDecimal::Long => {
            // SAFETY: `Long` means every byte is an ASCII sign, digit or dot, so `field` is
            // UTF-8.
            unsafe { std::str::from_utf8_unchecked(field) }.parse().ok()
        }
        PlainDecimal::Other => parse_float_slow(field),
    }
}

/// Exact powers of ten: every one up to 1e22 is representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// What [`scan_plain_decimal`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PlainDecimal {
    /// A plain decimal whose value Clinger's fast path gave exactly.
    Exact(f64),
    /// A plain decimal (`[+-]?digits[.digits]`, at least one digit, ASCII only) too long for
    /// the fast path: more than 19 digits, an integer value above 2^53 or 23 fraction digits.
    Long,
    /// Anything else: exponent, underscores, special values, or not a number.
    Other,
}

/// Clinger's fast path: `[+-]?digits[.digits]` with at most 19 digits whose integer value fits
/// in 53 bits and at most 22 fraction digits. The mantissa and the power of ten are exact, so
/// one IEEE division is correctly rounded: the same bits as any correct parser. `None` means
/// "not handled here", not "invalid". Python's `float()` and JavaScript's `Number()` agree on
/// every string this takes (statsd's parser uses it too).
pub fn parse_decimal_fast(field: &[u8]) -> Option<f64> {
    match scan_plain_decimal(field) {
        PlainDecimal::Exact(value) => Some(value),
        PlainDecimal::Long | PlainDecimal::Other => None,
    }
}

/// One pass over `field`: the value when Clinger's fast path applies, else whether the field is
/// still a plain decimal.
fn scan_plain_decimal(field: &[u8]) -> PlainDecimal {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, field),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0usize;
    let mut n_fraction = 0usize;
    let mut seen_dot = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                n_digits += 1;
                // Only read with at most 19 digits, which cannot overflow.
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                n_fraction += usize::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return PlainDecimal::Other,
        }
    }
    if n_digits == 0 {
        return PlainDecimal::Other;
    }
    if n_digits > 19 || mantissa > 1 << 53 || n_fraction >= POW10.len() {
        return PlainDecimal::Long;
    }
    let magnitude = mantissa as f64 / POW10[n_fraction];
    PlainDecimal::Exact(if negative { -magnitude } else { magnitude })
}

/// Python's grammar in full: sign, then `inf`, `infinity` or `nan` in any case, or a decimal
/// with optional fraction and exponent in which `_` may stand between two digits.
fn parse_float_slow(field: &[u8]) -> Option<f64> {
    let (negative, body) = match field.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, field),
    };
    let special = if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        Some(f64::INFINITY)
    } else if body.eq_ignore_ascii_case(b"nan") {
        Some(f64::NAN)
    } else {
        None
    };
    if let Some(value) = special {
        return Some(if negative { -value } else { value });
    }
    if !is_python_decimal(body) {
        return None;
    }
    if !field.contains(&b'_') {
        return std::str::from_utf8(field).ok()?.parse().ok();
    }
    // PEP 515 underscores: Rust's parser does not take them, so copy the field without them.
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let cleaned: &[u8] = if field.len() <= stack.len() {
        let mut n = 0;
        for &b in field.iter().filter(|&&b| b != b'_') {
            stack[n] = b;
            n += 1;
        }
        &stack[..n]
    } else {
        heap.extend(field.iter().copied().filter(|&b| b != b'_'));
        &heap
    };
    std::str::from_utf8(cleaned).ok()?.parse().ok()
}

/// `(digits ['.' [digits]] | '.' digits) [('e'|'E') ['+'|'-'] digits]`, where `digits` is
/// `digit ('_'? digit)*`: Python's `float()` grammar without sign and special values.
fn is_python_decimal(body: &[u8]) -> bool {
    let (int_len, rest) = digit_run(body);
    let (frac_len, rest) = match rest.split_first() {
        Some((b'.', after)) => digit_run(after),
        _ => (0, rest),
    };
    // A lone '.' (or nothing at all) has no digits on either side.
    if int_len == 0 && frac_len == 0 {
        return false;
    }
    if int_len == usize::MAX || frac_len == usize::MAX {
        return false;
    }
    match rest.split_first() {
        None => true,
        Some((b'e' | b'E', exponent)) => {
            let exponent = match exponent.split_first() {
                Some((b'+' | b'-', after)) => after,
                _ => exponent,
            };
            let (exp_len, tail) = digit_run(exponent);
            exp_len != 0 && exp_len != usize::MAX && tail.is_empty()
        }
        Some(_) => false,
    }
}

/// Length of a leading run of digits with single underscores between digits, and the rest.
/// `usize::MAX` as the length marks a misplaced underscore (`1__0`, `1_`).
fn digit_run(s: &[u8]) -> (usize, &[u8]) {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'0'..=b'9' => i += 1,
            b'_' if i > 0 && s[i - 1].is_ascii_digit() => {
                if !s.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return (usize::MAX, s);
                }
                i += 1;
            }
            b'_' => return (usize::MAX, s),
            _ => break,
        }
    }
    (i, &s[i..])
}

/// The timestamp field as carbon's `int(float(ts))`: truncated toward zero, finite, in `i64`.
fn parse_timestamp(field: &[u8]) -> Option<i64> {
    // Plain integers of at most 15 digits are below 2^53, so going through f64 would give the
    // same number: skip it.
    let digits = field.strip_prefix(b"-").unwrap_or(field);
    if !digits.is_empty() && digits.len() <= 15 {
        let mut magnitude = 0i64;
        for &b in digits {
            if !b.is_ascii_digit() {
                return parse_float_timestamp(field);
            }
            magnitude = magnitude * 10 + i64::from(b - b'0');
        }
        return Some(if digits.len() < field.len() { -magnitude } else { magnitude });
    }
    parse_float_timestamp(field)
}

fn parse_float_timestamp(field: &[u8]) -> Option<i64> {
    let seconds = parse_float(field)?.trunc();
    // i64::MIN is exactly -2^63; i64::MAX + 1 is exactly 2^63. NaN fails both comparisons.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_POW_63..TWO_POW_63).contains(&seconds) {
        Some(seconds as i64)
    } else {
        None
    }
}

/// Carbon's per-point timestamp rules: `-1` means now, then floor to the resolution.
fn apply_rules(timestamp: i64, now: i64, resolution: u64) -> Option<i64> {
    let timestamp = if timestamp == -1 { now } else { timestamp };
    match resolution {
        0 | 1 => Some(timestamp),
        // Python's `//` floors, as `div_euclid` does for a positive divisor.
        _ => match i64::try_from(resolution) {
            Ok(resolution) => timestamp.div_euclid(resolution).checked_mul(resolution),
            Err(_) => (timestamp >= 0).then_some(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::lines::LineSplitter;

    const NOW: i64 = 1_700_000_003;

    /// Parses `line` directly, and again after a trip through a [`LineSplitter`] with the line
    /// (plus `\n`) split at every byte offset, and checks both against `expected`: the name, the
    /// value's bits and the timestamp.
    fn check(line: &[u8], expected: Result<(&[u8], u64, i64), Reject>) {
        check_with(line, 0, expected);
    }

    fn check_with(line: &[u8], resolution: u64, expected: Result<(&[u8], u64, i64), Reject>) {
        let got = parse_line(line, NOW, resolution).map(|p| (p.name, p.value.to_bits(), p.timestamp));
        assert_eq!(got, expected, "line {:?}", String::from_utf8_lossy(line));
        let mut framed = line.to_vec();
        framed.push(b'\n');
        for at in 0..=framed.len() {
            let mut splitter = LineSplitter::new(framed.len());
            let mut lines = Vec::new();
            for part in [&framed[..at], &framed[at..]] {
                splitter.feed(part, |l| lines.push(l.expect("fits").to_vec()));
            }
            assert_eq!(lines.len(), 1, "split at {at}");
            let got = parse_line(&lines[0], NOW, resolution).map(|p| (p.value.to_bits(), p.timestamp));
            assert_eq!(got, expected.map(|(_, v, t)| (v, t)), "split at {at}");
        }
    }

    const ONE: u64 = 0x3ff0_0000_0000_0000;

    #[test]
    fn lines_as_carbon_reads_them() {
        check(b"a.b.c 1 1700000000", Ok((b"a.b.c", ONE, 1_700_000_000)));
        check(b"  a.b.c\t 1.5   1700000000 \r", Ok((b"a.b.c", 0x3ff8_0000_0000_0000, 1_700_000_000)));
        check(b"a\x0b1\x0c2", Ok((b"a", ONE, 2)));
        check(b"a\x1c1\x1f2", Ok((b"a", ONE, 2)));
        check(b"a 1 2\r", Ok((b"a", ONE, 2)));
        check(b"a 1 2\r\r", Ok((b"a", ONE, 2)));
        check(b"a inf 2", Ok((b"a", 0x7ff0_0000_0000_0000, 2)));
        check(b"a -inf 2", Ok((b"a", 0xfff0_0000_0000_0000, 2)));
        check(b"a;t=v 1 2", Ok((b"a;t=v", ONE, 2)));
        check(b"", Err(Reject::Empty));
        check(b"   \t\r", Err(Reject::Empty));
        check(b"a", Err(Reject::FieldCount));
        check(b"a 1", Err(Reject::FieldCount));
        check(b"a 1 2 3", Err(Reject::FieldCount));
        check(b"a 1 2 3 4 5 6", Err(Reject::FieldCount));
        check(b"a b 1 2", Err(Reject::FieldCount));
        check(b"a nan 1", Err(Reject::NanValue));
        check(b"a -NaN 1", Err(Reject::NanValue));
        check(b"a x 1", Err(Reject::BadValue));
        check(b"a x y", Err(Reject::BadValue));
        check(b"a 1 x", Err(Reject::BadTimestamp));
        check(b"a nan x", Err(Reject::BadTimestamp));
        check(b"a 1 2\x00", Err(Reject::BadTimestamp));
        check(b"a 1\x00 2", Err(Reject::BadValue));
        check(b"a\x00 1 2", Ok((b"a\x00", ONE, 2)));
    }

    #[test]
    fn non_ascii_lines_split_on_python_whitespace() {
        check("a\u{a0}1\u{2000}2".as_bytes(), Ok((b"a", ONE, 2)));
        check("a 1\u{3000} 2\u{85}".as_bytes(), Ok((b"a", ONE, 2)));
        check("é.ü 1 2".as_bytes(), Ok(("é.ü".as_bytes(), ONE, 2)));
        check("a\u{a0}b 1 2".as_bytes(), Err(Reject::FieldCount));
        check("\u{2028}".as_bytes(), Err(Reject::Empty));
        check(b"\xff 1 2", Err(Reject::InvalidUtf8));
        check(b"a 1 2 \xc3", Err(Reject::InvalidUtf8));
        // Python takes any Unicode decimal digit (float('١') == 1.0); we take ASCII only.
        check("a \u{661} 2".as_bytes(), Err(Reject::BadValue));
    }

    /// Python's `[c for c in map(chr, range(0x110000)) if c.isspace()]` (3.11), hard-coded.
    const PYTHON_SPACES: &[u32] = &[
        0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
        0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
    ];

    #[test]
    fn whitespace_is_pythons() {
        let ours: Vec<u32> =
            (0..=0x10ffff).filter_map(char::from_u32).filter(|&c| is_py_space(c)).map(u32::from).collect();
        assert_eq!(ours, PYTHON_SPACES);
        for b in 0..=0x7fu8 {
            assert_eq!(is_ascii_py_space(b), is_py_space(char::from(b)), "byte {b:#x}");
        }
    }

    const NAN: Option<u64> = Some(u64::MAX);

    /// Expected bits from Python 3.11: `struct.unpack('<Q', struct.pack('<d', float(s)))[0]`,
    /// `None` where `float(s)` raises, `NAN` for any NaN.
    const FLOATS: &[(&str, Option<u64>)] = &[
        ("1", Some(0x3ff0000000000000)),
        ("1.5", Some(0x3ff8000000000000)),
        ("-2e3", Some(0xc09f400000000000)),
        ("inf", Some(0x7ff0000000000000)),
        ("nan", NAN),
        ("+1", Some(0x3ff0000000000000)),
        (".5", Some(0x3fe0000000000000)),
        ("1.", Some(0x3ff0000000000000)),
        ("1_000", Some(0x408f400000000000)),
        ("1__000", None),
        ("_1", None),
        ("1_", None),
        ("1_.5", None),
        ("1._5", None),
        ("1e1_0", Some(0x4202a05f20000000)),
        ("1e_1", None),
        ("1_e1", None),
        ("1.e5", Some(0x40f86a0000000000)),
        ("+.5", Some(0x3fe0000000000000)),
        ("-.5e-3", Some(0xbf40624dd2f1a9fc)),
        ("Infinity", Some(0x7ff0000000000000)),
        ("-iNfInItY", Some(0xfff0000000000000)),
        ("+nan", NAN),
        ("-nan", NAN),
        ("infinit", None),
        ("in_f", None),
        ("0x10", None),
        ("1e", None),
        ("e1", None),
        (".", None),
        ("", None),
        ("+", None),
        ("-", None),
        ("+-1", None),
        ("1.2.3", None),
        ("1e5.0", None),
        ("1,5", None),
        ("1.0_1", Some(0x3ff028f5c28f5c29)),
        ("00012", Some(0x4028000000000000)),
        ("1E5", Some(0x40f86a0000000000)),
        ("1e+05", Some(0x40f86a0000000000)),
        ("1e-400", Some(0x0000000000000000)),
        ("1e400", Some(0x7ff0000000000000)),
        ("-1e400", Some(0xfff0000000000000)),
        ("4.9e-324", Some(0x0000000000000001)),
        ("2.2250738585072011e-308", Some(0x000fffffffffffff)),
        ("9007199254740993", Some(0x4340000000000000)),
        ("0.1", Some(0x3fb999999999999a)),
        ("0.3", Some(0x3fd3333333333333)),
        ("-0", Some(0x8000000000000000)),
        ("-0.0", Some(0x8000000000000000)),
        ("123456789012345678901234567890", Some(0x45f8ee90ff6c373e)),
        ("1234567890123456789", Some(0x43b12210f47de981)),
        ("12345678901234567890", Some(0x43e56a95319d63e1)),
        ("0.1234567890123456789", Some(0x3fbf9add3746f65f)),
        ("1.7976931348623157e308", Some(0x7fefffffffffffff)),
        ("1.7976931348623159e308", Some(0x7ff0000000000000)),
        ("12.5", Some(0x4029000000000000)),
        ("-3", Some(0xc008000000000000)),
        ("0_0", Some(0x0000000000000000)),
        ("1_0.0_1e-0_1", Some(0x3ff004189374bc6a)),
        ("1_000_000.000_001", Some(0x412e84800000218e)),
        ("3.14159265358979323846264338327950288419716939937510", Some(0x400921fb54442d18)),
        ("1e-22", Some(0x3b5e392010175ee6)),
        ("1e22", Some(0x4480f0cf064dd592)),
        ("1e23", Some(0x44b52d02c7e14af6)),
        ("9007199254740992", Some(0x4340000000000000)),
        ("9007199254740993.0", Some(0x4340000000000000)),
        ("0.000000000000000000001", Some(0x3b92e3b40a0e9b4f)),
        ("12_345_678_901_234_567_890.5", Some(0x43e56a95319d63e1)),
        ("1111111111111111111111111111111111111111111111111111111111111111111111", Some(0x4e449b50befe066f)),
        ("1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1_1", Some(0x484053891488fa94)),
    ];

    #[test]
    fn floats_are_pythons() {
        for &(text, expected) in FLOATS {
            let got = parse_float(text.as_bytes()).map(|v| if v.is_nan() { u64::MAX } else { v.to_bits() });
            assert_eq!(got, expected, "float({text:?})");
        }
    }

    #[test]
    fn fast_path_agrees_with_std() {
        for text in ["0", "12.5", "-0.25", "9007199254740992", "0.1", "123.456", "99999999.99", "1.", ".5"] {
            let fast = parse_decimal_fast(text.as_bytes()).expect("fast path takes it");
            assert_eq!(fast.to_bits(), text.parse::<f64>().expect("valid").to_bits(), "{text}");
        }
        for text in ["9007199254740993", "1e5", "1_0", "0.00000000000000000001", "inf", "1.2.3", "-", ""] {
            assert_eq!(parse_decimal_fast(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn plain_decimals_are_told_apart() {
        use PlainDecimal::{Exact, Long, Other};
        for (text, want) in [
            ("12.5", Exact(12.5)),
            ("-3", Exact(-3.0)),
            ("+.5", Exact(0.5)),
            ("350.07954202140814", Long),
            ("9007199254740993", Long),
            ("-12345678901234567890123", Long),
            ("0.00000000000000000000001", Long),
            ("1.", Exact(1.0)),
            (".", Other),
            ("+", Other),
            ("", Other),
            ("1e5", Other),
            ("1_0", Other),
            ("1.2.3", Other),
            ("inf", Other),
            ("12345678901234567890x", Other),
            ("١", Other),
        ] {
            assert_eq!(scan_plain_decimal(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn timestamps_as_carbon_truncates_them() {
        let ts = |text: &str| parse_line(format!("a 1 {text}").as_bytes(), NOW, 0).map(|p| p.timestamp);
        assert_eq!(ts("1700000000"), Ok(1_700_000_000));
        assert_eq!(ts("1700000000.9"), Ok(1_700_000_000));
        assert_eq!(ts("1.7e9"), Ok(1_700_000_000));
        assert_eq!(ts("1_700_000_000"), Ok(1_700_000_000));
        assert_eq!(ts("+1700000000"), Ok(1_700_000_000));
        assert_eq!(ts("-1"), Ok(NOW));
        assert_eq!(ts("-1.0"), Ok(NOW));
        // int(-1.5) == -1 in Python, so carbon reads this as "now" too.
        assert_eq!(ts("-1.5"), Ok(NOW));
        assert_eq!(ts("-2"), Ok(-2));
        assert_eq!(ts("-0.5"), Ok(0));
        assert_eq!(ts("-0"), Ok(0));
        assert_eq!(ts("123456789012345"), Ok(123_456_789_012_345));
        // Above 2^53 Python goes through a float and rounds.
        assert_eq!(ts("9007199254740993"), Ok(9_007_199_254_740_992));
        assert_eq!(ts("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(ts("9223372036854775807"), Err(Reject::BadTimestamp));
        assert_eq!(ts("1e19"), Err(Reject::BadTimestamp));
        assert_eq!(ts("inf"), Err(Reject::BadTimestamp));
        assert_eq!(ts("nan"), Err(Reject::BadTimestamp));
        assert_eq!(ts("--1"), Err(Reject::BadTimestamp));
        assert_eq!(ts("0x10"), Err(Reject::BadTimestamp));
    }

    #[test]
    fn resolution_floors_as_python() {
        check_with(b"a 1 1700000007", 5, Ok((b"a", ONE, 1_700_000_005)));
        check_with(b"a 1 1700000007.9", 1, Ok((b"a", ONE, 1_700_000_007)));
        check_with(b"a 1 -7", 5, Ok((b"a", ONE, -10)));
        check_with(b"a 1 -1", 10, Ok((b"a", ONE, 1_700_000_000)));
        check_with(b"a 1 5", u64::MAX, Ok((b"a", ONE, 0)));
        check_with(b"a 1 -5", u64::MAX, Err(Reject::BadTimestamp));
    }

    #[test]
    fn reject_names_are_distinct() {
        let names: std::collections::HashSet<_> = Reject::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reject::ALL.len());
        assert_eq!(Reject::from(crate::protocol::lines::LineTooLong), Reject::TooLong);
        assert_eq!(Reject::from(crate::protocol::lines::IncompleteLine { bytes: 1 }), Reject::Incomplete);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(point) = parse_line(&line, NOW, 10) {
                proptest::prop_assert!(!point.value.is_nan());
                proptest::prop_assert_eq!(point.timestamp % 10, 0);
            }
        }

        #[test]
        fn decimals_round_trip(value in proptest::prelude::any::<f64>(), ts in 0i64..4_000_000_000) {
            let line = format!("x {value:?} {ts}");
            let got = parse_line(line.as_bytes(), NOW, 0);
            if value.is_nan() {
                proptest::prop_assert_eq!(got, Err(Reject::NanValue));
            } else {
                let point = got.expect("valid");
                proptest::prop_assert_eq!(point.value.to_bits(), value.to_bits());
                proptest::prop_assert_eq!(point.timestamp, ts);
            }
        }

        #[test]
        fn fast_path_equals_std(mantissa in 0u64..(1 << 53), n_fraction in 0usize..20, negative: bool) {
            let digits = mantissa.to_string();
            let text = if n_fraction == 0 || n_fraction >= digits.len() {
                digits
            } else {
                format!("{}.{}", &digits[..digits.len() - n_fraction], &digits[digits.len() - n_fraction..])
            };
            let text = if negative { format!("-{text}") } else { text };
            let std: f64 = text.parse().expect("valid");
            let ours = parse_float(text.as_bytes()).expect("valid");
            proptest::prop_assert_eq!(ours.to_bits(), std.to_bits(), "{}", text);
        }

        #[test]
        fn long_decimals_equal_std(int in 0u64..u64::MAX, frac in 0u64..u64::MAX, n_zeros in 0usize..30, negative: bool) {
            // Up to 20 integer digits and up to 49 fraction digits: mostly the `Long` path.
            let text = format!("{}{int}.{}{frac}", if negative { "-" } else { "" }, "0".repeat(n_zeros));
            let std: f64 = text.parse().expect("valid");
            let ours = parse_float(text.as_bytes()).expect("valid");
            proptest::prop_assert_eq!(ours.to_bits(), std.to_bits(), "{}", text);
        }
    }
}
