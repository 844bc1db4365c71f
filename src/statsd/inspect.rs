//! Node.js's `util.inspect` with its default options, for the one shape of value the admin
//! interface dumps: a plain object whose keys are strings and whose values are numbers, arrays
//! of numbers or arrays of strings. etsy statsd answers `counters`, `timers` and `gauges` with
//! `util.inspect(obj)`, and the scripts people wrote around port 8126 read that text, so the
//! layout here is node's to the character.
//!
//! Owns what inspect does to such a value: JavaScript's property order (integer-like keys
//! first, ascending), key quoting and string escaping (with node's choice of quote), number
//! rendering (`-0` stays `-0`), the 100-item and 10 000-character caps, node's line breaking
//! (`breakLength` 80, `compact` 3), the grouping of long arrays into aligned columns, and the
//! output budget (2²⁷ characters at one nesting level) past which node prints `[Array]`.
//!
//! Leaves out everything else inspect can print (nested objects, colours, `Map`s, classes...).
//!
//! Lengths are JavaScript's: UTF-16 code units, as `String.prototype.length` counts them.
//! Column alignment uses display width instead, as node's ICU-based `getStringWidth` computes
//! it; the width table below was taken from node 20 (ICU 78.2, Unicode 17), one code point at a
//! time after NFC. node normalises whole strings to NFC before measuring: here, adjacent pairs
//! that compose to a character of another width (kana with a voicing mark, Hangul jamo, a few
//! Indic vowel signs) are composed, but marks that NFC would first reorder are not.
//!
//! Every rule here was checked against node 20: see the `reference_` tests, which compare
//! random objects with the installed node.

use super::number::js_to_string;

/// inspect's `breakLength`: the widest line it puts several entries on.
const BREAK_LENGTH: usize = 80;
/// inspect's `maxArrayLength`: items shown before `... N more items`.
const MAX_ARRAY_LENGTH: usize = 100;
/// inspect's `maxStringLength`, in UTF-16 code units.
const MAX_STRING_LENGTH: usize = 10_000;
/// inspect's `compact`: limits the columns of a grouped array to `4 * COMPACT`.
const COMPACT: usize = 3;
/// Characters of output at one indentation level after which node stops descending (its guard
/// against building strings past V8's maximum length).
const BUDGET: usize = 1 << 27;
/// Indentation of the object's values (the arrays).
const VALUE_INDENT: usize = 2;
/// Indentation of array items.
const ITEM_INDENT: usize = 4;
/// Width added to each grouped array cell by `", "`.
const SEPARATOR_SPACE: usize = 2;

/// One property value of the dumped object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A number (counters, gauges).
    Number(f64),
    /// An array of numbers (timer samples).
    Numbers(&'a [f64]),
    /// An array of strings (set members).
    Strings(&'a [&'a str]),
}

/// `util.inspect(obj)` for the object with these properties, in insertion order (keys are
/// expected to be distinct, as in any JavaScript object).
pub fn inspect_object(entries: &[(&str, Value<'_>)]) -> String {
    inspect_with_budget(entries, BUDGET)
}

/// `inspect_object` with node's output budget set to `limit` characters.
fn inspect_with_budget(entries: &[(&str, Value<'_>)], limit: usize) -> String {
    if entries.is_empty() {
        return "{}".into();
    }
    let mut budget = Budget { used: 0, limit };
    let output: Vec<String> = property_order(entries)
        .into_iter()
        .map(|(key, value)| format!("{}: {}", key_name(key), budget.value(*value)))
        .collect();
    reduce_to_single_string(output, 0, ("{", "}"), true)
}

/// JavaScript's own-property order: array indices ascending, then the other keys as inserted.
fn property_order<'e, 'a>(entries: &'e [(&'a str, Value<'a>)]) -> Vec<&'e (&'a str, Value<'a>)> {
    let mut indices: Vec<(u32, &(&str, Value<'_>))> =
        entries.iter().filter_map(|e| array_index(e.0).map(|i| (i, e))).collect();
    indices.sort_unstable_by_key(|(i, _)| *i);
    let mut ordered: Vec<&(&str, Value<'_>)> = indices.into_iter().map(|(_, e)| e).collect();
    ordered.extend(entries.iter().filter(|e| array_index(e.0).is_none()));
    ordered
}

/// The key as an array index: the canonical decimal form of 0 ..= 2³² − 2.
fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    let canonical =
        !b.is_empty() && b.len() <= 10 && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    let n: u64 = if canonical { key.parse().ok()? } else { return None };
    u32::try_from(n).ok().filter(|n| *n != u32::MAX)
}

/// How inspect writes a property name: bare when it is an identifier, quoted otherwise.
fn key_name(key: &str) -> String {
    if key == "__proto__" {
        // An own `__proto__` property, as opposed to the prototype.
        return "['__proto__']".into();
    }
    let b = key.as_bytes();
    let identifier = !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if identifier {
        key.to_string()
    } else {
        let units: Vec<u16> = key.encode_utf16().collect();
        quote(&units)
    }
}

/// What node has printed so far at the arrays' nesting level, and what it does past `BUDGET`.
#[derive(Debug)]
struct Budget {
    /// UTF-16 code units of the arrays formatted so far. Once above `limit`, non-empty arrays
    /// print as `[Array]`.
    used: usize,
    /// `BUDGET`, except in tests.
    limit: usize,
}

impl Budget {
    fn value(&mut self, value: Value<'_>) -> String {
        match value {
            Value::Number(n) => number(n),
            Value::Numbers(ns) => self.array(ns.len(), |i| number(ns[i]), true),
            Value::Strings(ss) => self.array(ss.len(), |i| string(ss[i], ITEM_INDENT), false),
        }
    }

    /// inspect's `formatRaw` for an array of `len` items, `item(i)` formatting one.
    fn array(&mut self, len: usize, item: impl Fn(usize) -> String, numbers: bool) -> String {
        if len == 0 {
            return "[]".into();
        }
        if self.used > self.limit {
            return "[Array]".into();
        }
        let shown = len.min(MAX_ARRAY_LENGTH);
        let mut output: Vec<String> = (0..shown).map(item).collect();
        if len > shown {
            let remaining = len - shown;
            output.push(format!("... {remaining} more item{}", if remaining > 1 { "s" } else { "" }));
        }
        let n_entries = output.len();
        if n_entries > 6 {
            output = group_array_elements(output, len > shown, numbers, VALUE_INDENT);
        }
        // A grouped array is never put on one line.
        let ungrouped = n_entries == output.len();
        let res = reduce_to_single_string(output, VALUE_INDENT, ("[", "]"), ungrouped);
        self.used += js_len(&res);
        res
    }
}

/// A number as inspect writes it: `Number.prototype.toString`, except that `-0` stays `-0`.
fn number(n: f64) -> String {
    if n == 0.0 && n.is_sign_negative() {
        "-0".into()
    } else {
        js_to_string(n)
    }
}

/// inspect's `formatPrimitive` for a string at `indentation`: cut at `MAX_STRING_LENGTH` code
/// units (which may split a surrogate pair), and, when long, broken after each newline into
/// quoted pieces joined with ` +`.
fn string(s: &str, indentation: usize) -> String {
    let all: Vec<u16> = s.encode_utf16().collect();
    let (units, trailer) = if all.len() > MAX_STRING_LENGTH {
        let remaining = all.len() - MAX_STRING_LENGTH;
        let plural = if remaining > 1 { "s" } else { "" };
        (&all[..MAX_STRING_LENGTH], format!("... {remaining} more character{plural}"))
    } else {
        (&all[..], String::new())
    };
    let long = units.len() > 16 && units.len() + indentation + 4 > BREAK_LENGTH;
    let mut out = if long {
        let joint = format!(" +\n{}", " ".repeat(indentation + 2));
        units.split_inclusive(|u| *u == u16::from(b'\n')).map(quote).collect::<Vec<String>>().join(&joint)
    } else {
        quote(units)
    };
    out.push_str(&trailer);
    out
}

/// inspect's `strEscape`: single quotes, unless the text holds a single quote, then double
/// quotes, or backticks when it also holds a double quote (but no backtick or `${`), or
/// single quotes with `\'` when it holds all three. Control characters, the backslash and
/// unpaired surrogates are escaped.
fn quote(units: &[u16]) -> String {
    let has = |c: u8| units.contains(&u16::from(c));
    let template = units.windows(2).any(|w| w == [u16::from(b'$'), u16::from(b'{')]);
    let q = if !has(b'\'') {
        '\''
    } else if !has(b'"') {
        '"'
    } else if !has(b'`') && !template {
        '`'
    } else {
        '\''
    };
    let mut out = String::with_capacity(units.len() + 2);
    out.push(q);
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok('\'') if q == '\'' => out.push_str("\\'"),
            Ok('\\') => out.push_str("\\\\"),
            Ok('\u{8}') => out.push_str("\\b"),
            Ok('\t') => out.push_str("\\t"),
            Ok('\n') => out.push_str("\\n"),
            Ok('\u{c}') => out.push_str("\\f"),
            Ok('\r') => out.push_str("\\r"),
            Ok(c) if c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) => out.push_str(&format!("\\x{:02X}", c as u32)),
            Ok(c) => out.push(c),
            Err(e) => out.push_str(&format!("\\u{:x}", e.unpaired_surrogate())),
        }
    }
    out.push(q);
    out
}

/// `String.prototype.length`.
fn js_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// inspect's `reduceToSingleString` with `compact` 3, for an object or array at `indentation`
/// whose formatted entries are `output`: on one line when they fit in `BREAK_LENGTH` (and the
/// entries were not grouped), else one entry per line.
fn reduce_to_single_string(output: Vec<String>, indentation: usize, braces: (&str, &str), may_join: bool) -> String {
    let (open, close) = braces;
    if may_join {
        let start = output.len() + indentation + open.len() + 10;
        if is_below_break_length(&output, start) {
            let joined = output.join(", ");
            if !joined.contains('\n') {
                return format!("{open} {joined} {close}");
            }
        }
    }
    let indent = format!("\n{}", " ".repeat(indentation));
    format!("{open}{indent}  {}{indent}{close}", output.join(&format!(",{indent}  ")))
}

/// inspect's `isBelowBreakLength`: a comma per entry plus `start`, plus the entries' lengths.
fn is_below_break_length(output: &[String], start: usize) -> bool {
    let mut total = output.len() + start;
    if total + output.len() > BREAK_LENGTH {
        return false;
    }
    for entry in output {
        total += js_len(entry);
        if total > BREAK_LENGTH {
            return false;
        }
    }
    true
}

/// inspect's `groupArrayElements`: the entries of an array at `indentation` set out in aligned
/// columns (numbers right-aligned, strings left-aligned) when at least three fit on a line and
/// none is much wider than the rest. `has_more`: the last entry is `... N more items`.
fn group_array_elements(output: Vec<String>, has_more: bool, numbers: bool, indentation: usize) -> Vec<String> {
    let n_items = output.len() - usize::from(has_more);
    let data_len: Vec<usize> = output[..n_items].iter().map(|s| width(s)).collect();
    let total_length: usize = data_len.iter().map(|w| w + SEPARATOR_SPACE).sum();
    let max_length = data_len.iter().copied().max().unwrap_or(0);
    let actual_max = max_length + SEPARATOR_SPACE;
    let fits_three = actual_max * 3 + indentation < BREAK_LENGTH;
    if !(fits_three && (total_length as f64 / actual_max as f64 > 5.0 || max_length <= 6)) {
        return output;
    }
    // node's heuristic, in its floating-point order: about as many columns as make a square of
    // cells 2.5 times as high as wide, a few more for short entries.
    let average_bias = (actual_max as f64 - total_length as f64 / output.len() as f64).sqrt();
    let biased_max = (actual_max as f64 - 3.0 - average_bias).max(1.0);
    let square = js_round((2.5 * biased_max * n_items as f64).sqrt() / biased_max);
    let fitting = ((BREAK_LENGTH - indentation) as f64 / actual_max as f64).floor();
    let columns = square.min(fitting).min((COMPACT * 4) as f64).min(15.0) as usize;
    if columns <= 1 {
        return output;
    }
    let column_width: Vec<usize> = (0..columns)
        .map(|i| data_len.iter().skip(i).step_by(columns).copied().max().unwrap_or(0) + SEPARATOR_SPACE)
        .collect();
    let mut rows = Vec::with_capacity(n_items / columns + 2);
    for first in (0..n_items).step_by(columns) {
        let last = (first + columns).min(n_items) - 1;
        let mut row = String::new();
        for j in first..=last {
            // Padding is counted in code units; the cell is `column_width` wide on screen.
            let target = column_width[j - first] + js_len(&output[j]) - data_len[j];
            if j < last {
                pad(&mut row, &format!("{}, ", output[j]), target, numbers);
            } else if numbers {
                pad(&mut row, &output[j], target - SEPARATOR_SPACE, true);
            } else {
                row.push_str(&output[j]);
            }
        }
        rows.push(row);
    }
    if has_more {
        rows.extend(output.into_iter().last());
    }
    rows
}

/// `padStart` (`start`) or `padEnd` of `cell` with spaces to `target` code units, onto `row`.
fn pad(row: &mut String, cell: &str, target: usize, start: bool) {
    let spaces = " ".repeat(target.saturating_sub(js_len(cell)));
    if start {
        row.push_str(&spaces);
        row.push_str(cell);
    } else {
        row.push_str(cell);
        row.push_str(&spaces);
    }
}

/// JavaScript's `Math.round` for non-negative values: halves go up.
fn js_round(x: f64) -> f64 {
    let r = x.floor();
    if x - r >= 0.5 {
        r + 1.0
    } else {
        r
    }
}

/// node's `getStringWidth(s, false)`: columns on a terminal. ASCII controls are 0, other ASCII
/// 1, the rest from `WIDTHS`, after composing adjacent pairs as NFC would.
fn width(s: &str) -> usize {
    let mut total: isize = 0;
    let mut prev: Option<u32> = None;
    for c in s.chars() {
        let cp = c as u32;
        if let Some(composed) = prev.and_then(|p| compose(p, cp).map(|t| (p, t))) {
            let (p, t) = composed;
            total += code_point_width(t) as isize - code_point_width(p) as isize;
            prev = Some(t);
            continue;
        }
        total += code_point_width(cp) as isize;
        prev = Some(cp);
    }
    total.max(0) as usize
}

/// The width of one code point (after NFC) in node's ICU: 0 for controls, format characters,
/// enclosing and non-spacing marks; 2 for East Asian wide and full-width characters and emoji
/// presented as emoji; 1 otherwise.
fn code_point_width(cp: u32) -> usize {
    if cp < 0x7f {
        return usize::from(cp >= 0x20);
    }
    match WIDTHS.binary_search_by(|&(lo, hi, _)| {
        if hi < cp {
            std::cmp::Ordering::Less
        } else if lo > cp {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => usize::from(WIDTHS[i].2),
        Err(_) => 1,
    }
}

/// NFC's composition of `first` followed by `second`, where it changes the width: Hangul
/// syllables (by Unicode's algorithm) and the pairs of `COMPOSITIONS`.
fn compose(first: u32, second: u32) -> Option<u32> {
    const S_BASE: u32 = 0xac00;
    const L_BASE: u32 = 0x1100;
    const V_BASE: u32 = 0x1161;
    const T_BASE: u32 = 0x11a7;
    const L_COUNT: u32 = 19;
    const V_COUNT: u32 = 21;
    const T_COUNT: u32 = 28;
    if (L_BASE..L_BASE + L_COUNT).contains(&first) && (V_BASE..V_BASE + V_COUNT).contains(&second) {
        return Some(S_BASE + ((first - L_BASE) * V_COUNT + (second - V_BASE)) * T_COUNT);
    }
    let lv = (S_BASE..S_BASE + L_COUNT * V_COUNT * T_COUNT).contains(&first) && (first - S_BASE) % T_COUNT == 0;
    if lv && (T_BASE + 1..T_BASE + T_COUNT).contains(&second) {
        return Some(first + (second - T_BASE));
    }
    COMPOSITIONS.binary_search_by_key(&(first, second), |&(a, b, _)| (a, b)).ok().map(|i| COMPOSITIONS[i].2)
}

/// Code points of width other than 1 (from 0x7f; surrogates never occur), as `(first, last,
/// width)`, sorted; generated from node 20 (ICU 78.2): `getStringWidth(String.fromCodePoint(c))`.
#[rustfmt::skip]
const WIDTHS: &[(u32, u32, u8)] = &[
    (0x7f, 0x9f, 0), (0x300, 0x36f, 0), (0x483, 0x489, 0), (0x591, 0x5bd, 0), (0x5bf, 0x5bf, 0), (0x5c1, 0x5c2, 0),
    (0x5c4, 0x5c5, 0), (0x5c7, 0x5c7, 0), (0x600, 0x605, 0), (0x610, 0x61a, 0), (0x61c, 0x61c, 0), (0x64b, 0x65f, 0),
    (0x670, 0x670, 0), (0x6d6, 0x6dd, 0), (0x6df, 0x6e4, 0), (0x6e7, 0x6e8, 0), (0x6ea, 0x6ed, 0), (0x70f, 0x70f, 0),
    (0x711, 0x711, 0), (0x730, 0x74a, 0), (0x7a6, 0x7b0, 0), (0x7eb, 0x7f3, 0), (0x7fd, 0x7fd, 0), (0x816, 0x819, 0),
    (0x81b, 0x823, 0), (0x825, 0x827, 0), (0x829, 0x82d, 0), (0x859, 0x85b, 0), (0x890, 0x891, 0), (0x897, 0x89f, 0),
    (0x8ca, 0x902, 0), (0x93a, 0x93a, 0), (0x93c, 0x93c, 0), (0x941, 0x948, 0), (0x94d, 0x94d, 0), (0x951, 0x957, 0),
    (0x962, 0x963, 0), (0x981, 0x981, 0), (0x9bc, 0x9bc, 0), (0x9c1, 0x9c4, 0), (0x9cd, 0x9cd, 0), (0x9e2, 0x9e3, 0),
    (0x9fe, 0x9fe, 0), (0xa01, 0xa02, 0), (0xa3c, 0xa3c, 0), (0xa41, 0xa42, 0), (0xa47, 0xa48, 0), (0xa4b, 0xa4d, 0),
    (0xa51, 0xa51, 0), (0xa70, 0xa71, 0), (0xa75, 0xa75, 0), (0xa81, 0xa82, 0), (0xabc, 0xabc, 0), (0xac1, 0xac5, 0),
    (0xac7, 0xac8, 0), (0xacd, 0xacd, 0), (0xae2, 0xae3, 0), (0xafa, 0xaff, 0), (0xb01, 0xb01, 0), (0xb3c, 0xb3c, 0),
    (0xb3f, 0xb3f, 0), (0xb41, 0xb44, 0), (0xb4d, 0xb4d, 0), (0xb55, 0xb56, 0), (0xb62, 0xb63, 0), (0xb82, 0xb82, 0),
    (0xbc0, 0xbc0, 0), (0xbcd, 0xbcd, 0), (0xc00, 0xc00, 0), (0xc04, 0xc04, 0), (0xc3c, 0xc3c, 0), (0xc3e, 0xc40, 0),
    (0xc46, 0xc48, 0), (0xc4a, 0xc4d, 0), (0xc55, 0xc56, 0), (0xc62, 0xc63, 0), (0xc81, 0xc81, 0), (0xcbc, 0xcbc, 0),
    (0xcbf, 0xcbf, 0), (0xcc6, 0xcc6, 0), (0xccc, 0xccd, 0), (0xce2, 0xce3, 0), (0xd00, 0xd01, 0), (0xd3b, 0xd3c, 0),
    (0xd41, 0xd44, 0), (0xd4d, 0xd4d, 0), (0xd62, 0xd63, 0), (0xd81, 0xd81, 0), (0xdca, 0xdca, 0), (0xdd2, 0xdd4, 0),
    (0xdd6, 0xdd6, 0), (0xe31, 0xe31, 0), (0xe34, 0xe3a, 0), (0xe47, 0xe4e, 0), (0xeb1, 0xeb1, 0), (0xeb4, 0xebc, 0),
    (0xec8, 0xece, 0), (0xf18, 0xf19, 0), (0xf35, 0xf35, 0), (0xf37, 0xf37, 0), (0xf39, 0xf39, 0), (0xf71, 0xf7e, 0),
    (0xf80, 0xf84, 0), (0xf86, 0xf87, 0), (0xf8d, 0xf97, 0), (0xf99, 0xfbc, 0), (0xfc6, 0xfc6, 0),
    (0x102d, 0x1030, 0), (0x1032, 0x1037, 0), (0x1039, 0x103a, 0), (0x103d, 0x103e, 0), (0x1058, 0x1059, 0),
    (0x105e, 0x1060, 0), (0x1071, 0x1074, 0), (0x1082, 0x1082, 0), (0x1085, 0x1086, 0), (0x108d, 0x108d, 0),
    (0x109d, 0x109d, 0), (0x1100, 0x115f, 2), (0x135d, 0x135f, 0), (0x1712, 0x1714, 0), (0x1732, 0x1733, 0),
    (0x1752, 0x1753, 0), (0x1772, 0x1773, 0), (0x17b4, 0x17b5, 0), (0x17b7, 0x17bd, 0), (0x17c6, 0x17c6, 0),
    (0x17c9, 0x17d3, 0), (0x17dd, 0x17dd, 0), (0x180b, 0x180f, 0), (0x1885, 0x1886, 0), (0x18a9, 0x18a9, 0),
    (0x1920, 0x1922, 0), (0x1927, 0x1928, 0), (0x1932, 0x1932, 0), (0x1939, 0x193b, 0), (0x1a17, 0x1a18, 0),
    (0x1a1b, 0x1a1b, 0), (0x1a56, 0x1a56, 0), (0x1a58, 0x1a5e, 0), (0x1a60, 0x1a60, 0), (0x1a62, 0x1a62, 0),
    (0x1a65, 0x1a6c, 0), (0x1a73, 0x1a7c, 0), (0x1a7f, 0x1a7f, 0), (0x1ab0, 0x1add, 0), (0x1ae0, 0x1aeb, 0),
    (0x1b00, 0x1b03, 0), (0x1b34, 0x1b34, 0), (0x1b36, 0x1b3a, 0), (0x1b3c, 0x1b3c, 0), (0x1b42, 0x1b42, 0),
    (0x1b6b, 0x1b73, 0), (0x1b80, 0x1b81, 0), (0x1ba2, 0x1ba5, 0), (0x1ba8, 0x1ba9, 0), (0x1bab, 0x1bad, 0),
    (0x1be6, 0x1be6, 0), (0x1be8, 0x1be9, 0), (0x1bed, 0x1bed, 0), (0x1bef, 0x1bf1, 0), (0x1c2c, 0x1c33, 0),
    (0x1c36, 0x1c37, 0), (0x1cd0, 0x1cd2, 0), (0x1cd4, 0x1ce0, 0), (0x1ce2, 0x1ce8, 0), (0x1ced, 0x1ced, 0),
    (0x1cf4, 0x1cf4, 0), (0x1cf8, 0x1cf9, 0), (0x1dc0, 0x1dff, 0), (0x200b, 0x200f, 0), (0x202a, 0x202e, 0),
    (0x2060, 0x2064, 0), (0x2066, 0x206f, 0), (0x20d0, 0x20f0, 0), (0x231a, 0x231b, 2), (0x2329, 0x232a, 2),
    (0x23e9, 0x23ec, 2), (0x23f0, 0x23f0, 2), (0x23f3, 0x23f3, 2), (0x25fd, 0x25fe, 2), (0x2614, 0x2615, 2),
    (0x2630, 0x2637, 2), (0x2648, 0x2653, 2), (0x267f, 0x267f, 2), (0x268a, 0x268f, 2), (0x2693, 0x2693, 2),
    (0x26a1, 0x26a1, 2), (0x26aa, 0x26ab, 2), (0x26bd, 0x26be, 2), (0x26c4, 0x26c5, 2), (0x26ce, 0x26ce, 2),
    (0x26d4, 0x26d4, 2), (0x26ea, 0x26ea, 2), (0x26f2, 0x26f3, 2), (0x26f5, 0x26f5, 2), (0x26fa, 0x26fa, 2),
    (0x26fd, 0x26fd, 2), (0x2705, 0x2705, 2), (0x270a, 0x270b, 2), (0x2728, 0x2728, 2), (0x274c, 0x274c, 2),
    (0x274e, 0x274e, 2), (0x2753, 0x2755, 2), (0x2757, 0x2757, 2), (0x2795, 0x2797, 2), (0x27b0, 0x27b0, 2),
    (0x27bf, 0x27bf, 2), (0x2b1b, 0x2b1c, 2), (0x2b50, 0x2b50, 2), (0x2b55, 0x2b55, 2), (0x2cef, 0x2cf1, 0),
    (0x2d7f, 0x2d7f, 0), (0x2de0, 0x2dff, 0), (0x2e80, 0x2e99, 2), (0x2e9b, 0x2ef3, 2), (0x2f00, 0x2fd5, 2),
    (0x2ff0, 0x303e, 2), (0x3041, 0x3096, 2), (0x3099, 0x30ff, 2), (0x3105, 0x312f, 2), (0x3131, 0x318e, 2),
    (0x3190, 0x31e5, 2), (0x31ef, 0x321e, 2), (0x3220, 0x3247, 2), (0x3250, 0xa48c, 2), (0xa490, 0xa4c6, 2),
    (0xa66f, 0xa672, 0), (0xa674, 0xa67d, 0), (0xa69e, 0xa69f, 0), (0xa6f0, 0xa6f1, 0), (0xa802, 0xa802, 0),
    (0xa806, 0xa806, 0), (0xa80b, 0xa80b, 0), (0xa825, 0xa826, 0), (0xa82c, 0xa82c, 0), (0xa8c4, 0xa8c5, 0),
    (0xa8e0, 0xa8f1, 0), (0xa8ff, 0xa8ff, 0), (0xa926, 0xa92d, 0), (0xa947, 0xa951, 0), (0xa960, 0xa97c, 2),
    (0xa980, 0xa982, 0), (0xa9b3, 0xa9b3, 0), (0xa9b6, 0xa9b9, 0), (0xa9bc, 0xa9bd, 0), (0xa9e5, 0xa9e5, 0),
    (0xaa29, 0xaa2e, 0), (0xaa31, 0xaa32, 0), (0xaa35, 0xaa36, 0), (0xaa43, 0xaa43, 0), (0xaa4c, 0xaa4c, 0),
    (0xaa7c, 0xaa7c, 0), (0xaab0, 0xaab0, 0), (0xaab2, 0xaab4, 0), (0xaab7, 0xaab8, 0), (0xaabe, 0xaabf, 0),
    (0xaac1, 0xaac1, 0), (0xaaec, 0xaaed, 0), (0xaaf6, 0xaaf6, 0), (0xabe5, 0xabe5, 0), (0xabe8, 0xabe8, 0),
    (0xabed, 0xabed, 0), (0xac00, 0xd7a3, 2), (0xf900, 0xfaff, 2), (0xfb1e, 0xfb1e, 0), (0xfe00, 0xfe0f, 0),
    (0xfe10, 0xfe19, 2), (0xfe20, 0xfe2f, 0), (0xfe30, 0xfe52, 2), (0xfe54, 0xfe66, 2), (0xfe68, 0xfe6b, 2),
    (0xfeff, 0xfeff, 0), (0xff01, 0xff60, 2), (0xffe0, 0xffe6, 2), (0xfff9, 0xfffb, 0), (0x101fd, 0x101fd, 0),
    (0x102e0, 0x102e0, 0), (0x10376, 0x1037a, 0), (0x10a01, 0x10a03, 0), (0x10a05, 0x10a06, 0), (0x10a0c, 0x10a0f, 0),
    (0x10a38, 0x10a3a, 0), (0x10a3f, 0x10a3f, 0), (0x10ae5, 0x10ae6, 0), (0x10d24, 0x10d27, 0), (0x10d69, 0x10d6d, 0),
    (0x10eab, 0x10eac, 0), (0x10efa, 0x10eff, 0), (0x10f46, 0x10f50, 0), (0x10f82, 0x10f85, 0), (0x11001, 0x11001, 0),
    (0x11038, 0x11046, 0), (0x11070, 0x11070, 0), (0x11073, 0x11074, 0), (0x1107f, 0x11081, 0), (0x110b3, 0x110b6, 0),
    (0x110b9, 0x110ba, 0), (0x110bd, 0x110bd, 0), (0x110c2, 0x110c2, 0), (0x110cd, 0x110cd, 0), (0x11100, 0x11102, 0),
    (0x11127, 0x1112b, 0), (0x1112d, 0x11134, 0), (0x11173, 0x11173, 0), (0x11180, 0x11181, 0), (0x111b6, 0x111be, 0),
    (0x111c9, 0x111cc, 0), (0x111cf, 0x111cf, 0), (0x1122f, 0x11231, 0), (0x11234, 0x11234, 0), (0x11236, 0x11237, 0),
    (0x1123e, 0x1123e, 0), (0x11241, 0x11241, 0), (0x112df, 0x112df, 0), (0x112e3, 0x112ea, 0), (0x11300, 0x11301, 0),
    (0x1133b, 0x1133c, 0), (0x11340, 0x11340, 0), (0x11366, 0x1136c, 0), (0x11370, 0x11374, 0), (0x113bb, 0x113c0, 0),
    (0x113ce, 0x113ce, 0), (0x113d0, 0x113d0, 0), (0x113d2, 0x113d2, 0), (0x113e1, 0x113e2, 0), (0x11438, 0x1143f, 0),
    (0x11442, 0x11444, 0), (0x11446, 0x11446, 0), (0x1145e, 0x1145e, 0), (0x114b3, 0x114b8, 0), (0x114ba, 0x114ba, 0),
    (0x114bf, 0x114c0, 0), (0x114c2, 0x114c3, 0), (0x115b2, 0x115b5, 0), (0x115bc, 0x115bd, 0), (0x115bf, 0x115c0, 0),
    (0x115dc, 0x115dd, 0), (0x11633, 0x1163a, 0), (0x1163d, 0x1163d, 0), (0x1163f, 0x11640, 0), (0x116ab, 0x116ab, 0),
    (0x116ad, 0x116ad, 0), (0x116b0, 0x116b5, 0), (0x116b7, 0x116b7, 0), (0x1171d, 0x1171d, 0), (0x1171f, 0x1171f, 0),
    (0x11722, 0x11725, 0), (0x11727, 0x1172b, 0), (0x1182f, 0x11837, 0), (0x11839, 0x1183a, 0), (0x1193b, 0x1193c, 0),
    (0x1193e, 0x1193e, 0), (0x11943, 0x11943, 0), (0x119d4, 0x119d7, 0), (0x119da, 0x119db, 0), (0x119e0, 0x119e0, 0),
    (0x11a01, 0x11a0a, 0), (0x11a33, 0x11a38, 0), (0x11a3b, 0x11a3e, 0), (0x11a47, 0x11a47, 0), (0x11a51, 0x11a56, 0),
    (0x11a59, 0x11a5b, 0), (0x11a8a, 0x11a96, 0), (0x11a98, 0x11a99, 0), (0x11b60, 0x11b60, 0), (0x11b62, 0x11b64, 0),
    (0x11b66, 0x11b66, 0), (0x11c30, 0x11c36, 0), (0x11c38, 0x11c3d, 0), (0x11c3f, 0x11c3f, 0), (0x11c92, 0x11ca7, 0),
    (0x11caa, 0x11cb0, 0), (0x11cb2, 0x11cb3, 0), (0x11cb5, 0x11cb6, 0), (0x11d31, 0x11d36, 0), (0x11d3a, 0x11d3a, 0),
    (0x11d3c, 0x11d3d, 0), (0x11d3f, 0x11d45, 0), (0x11d47, 0x11d47, 0), (0x11d90, 0x11d91, 0), (0x11d95, 0x11d95, 0),
    (0x11d97, 0x11d97, 0), (0x11ef3, 0x11ef4, 0), (0x11f00, 0x11f01, 0), (0x11f36, 0x11f3a, 0), (0x11f40, 0x11f40, 0),
    (0x11f42, 0x11f42, 0), (0x11f5a, 0x11f5a, 0), (0x13430, 0x13440, 0), (0x13447, 0x13455, 0), (0x1611e, 0x16129, 0),
    (0x1612d, 0x1612f, 0), (0x16af0, 0x16af4, 0), (0x16b30, 0x16b36, 0), (0x16f4f, 0x16f4f, 0), (0x16f8f, 0x16f92, 0),
    (0x16fe0, 0x16fe4, 2), (0x16ff0, 0x16ff6, 2), (0x17000, 0x18cd5, 2), (0x18cff, 0x18d1e, 2), (0x18d80, 0x18df2, 2),
    (0x1aff0, 0x1aff3, 2), (0x1aff5, 0x1affb, 2), (0x1affd, 0x1affe, 2), (0x1b000, 0x1b122, 2), (0x1b132, 0x1b132, 2),
    (0x1b150, 0x1b152, 2), (0x1b155, 0x1b155, 2), (0x1b164, 0x1b167, 2), (0x1b170, 0x1b2fb, 2), (0x1bc9d, 0x1bc9e, 0),
    (0x1bca0, 0x1bca3, 0), (0x1cf00, 0x1cf2d, 0), (0x1cf30, 0x1cf46, 0), (0x1d15e, 0x1d15f, 2), (0x1d160, 0x1d164, 3),
    (0x1d167, 0x1d169, 0), (0x1d173, 0x1d182, 0), (0x1d185, 0x1d18b, 0), (0x1d1aa, 0x1d1ad, 0), (0x1d1bb, 0x1d1bc, 2),
    (0x1d1bd, 0x1d1c0, 3), (0x1d242, 0x1d244, 0), (0x1d300, 0x1d356, 2), (0x1d360, 0x1d376, 2), (0x1da00, 0x1da36, 0),
    (0x1da3b, 0x1da6c, 0), (0x1da75, 0x1da75, 0), (0x1da84, 0x1da84, 0), (0x1da9b, 0x1da9f, 0), (0x1daa1, 0x1daaf, 0),
    (0x1e000, 0x1e006, 0), (0x1e008, 0x1e018, 0), (0x1e01b, 0x1e021, 0), (0x1e023, 0x1e024, 0), (0x1e026, 0x1e02a, 0),
    (0x1e08f, 0x1e08f, 0), (0x1e130, 0x1e136, 0), (0x1e2ae, 0x1e2ae, 0), (0x1e2ec, 0x1e2ef, 0), (0x1e4ec, 0x1e4ef, 0),
    (0x1e5ee, 0x1e5ef, 0), (0x1e6e3, 0x1e6e3, 0), (0x1e6e6, 0x1e6e6, 0), (0x1e6ee, 0x1e6ef, 0), (0x1e6f5, 0x1e6f5, 0),
    (0x1e8d0, 0x1e8d6, 0), (0x1e944, 0x1e94a, 0), (0x1f004, 0x1f004, 2), (0x1f0cf, 0x1f0cf, 2), (0x1f18e, 0x1f18e, 2),
    (0x1f191, 0x1f19a, 2), (0x1f1e6, 0x1f202, 2), (0x1f210, 0x1f23b, 2), (0x1f240, 0x1f248, 2), (0x1f250, 0x1f251, 2),
    (0x1f260, 0x1f265, 2), (0x1f300, 0x1f320, 2), (0x1f32d, 0x1f335, 2), (0x1f337, 0x1f37c, 2), (0x1f37e, 0x1f393, 2),
    (0x1f3a0, 0x1f3ca, 2), (0x1f3cf, 0x1f3d3, 2), (0x1f3e0, 0x1f3f0, 2), (0x1f3f4, 0x1f3f4, 2), (0x1f3f8, 0x1f43e, 2),
    (0x1f440, 0x1f440, 2), (0x1f442, 0x1f4fc, 2), (0x1f4ff, 0x1f53d, 2), (0x1f54b, 0x1f54e, 2), (0x1f550, 0x1f567, 2),
    (0x1f57a, 0x1f57a, 2), (0x1f595, 0x1f596, 2), (0x1f5a4, 0x1f5a4, 2), (0x1f5fb, 0x1f64f, 2), (0x1f680, 0x1f6c5, 2),
    (0x1f6cc, 0x1f6cc, 2), (0x1f6d0, 0x1f6d2, 2), (0x1f6d5, 0x1f6d8, 2), (0x1f6dc, 0x1f6df, 2), (0x1f6eb, 0x1f6ec, 2),
    (0x1f6f4, 0x1f6fc, 2), (0x1f7e0, 0x1f7eb, 2), (0x1f7f0, 0x1f7f0, 2), (0x1f90c, 0x1f93a, 2), (0x1f93c, 0x1f945, 2),
    (0x1f947, 0x1f9ff, 2), (0x1fa70, 0x1fa7c, 2), (0x1fa80, 0x1fa8a, 2), (0x1fa8e, 0x1fac6, 2), (0x1fac8, 0x1fac8, 2),
    (0x1facd, 0x1fadc, 2), (0x1fadf, 0x1faea, 2), (0x1faef, 0x1faf8, 2), (0x20000, 0x2fffd, 2), (0x30000, 0x3fffd, 2),
    (0xe0001, 0xe0001, 0), (0xe0020, 0xe007f, 0), (0xe0100, 0xe01ef, 0),
];
/// NFC's compositions `(first, second, composed)` whose width is not the sum of the parts'
/// (and those leading to one), sorted, Hangul apart; generated from node 20 as for `WIDTHS`.
#[rustfmt::skip]
const COMPOSITIONS: &[(u32, u32, u32)] = &[
    (0x9c7, 0x9be, 0x9cb), (0x9c7, 0x9d7, 0x9cc), (0xb47, 0xb3e, 0xb4b), (0xb47, 0xb57, 0xb4c), (0xb92, 0xbd7, 0xb94),
    (0xbc6, 0xbbe, 0xbca), (0xbc6, 0xbd7, 0xbcc), (0xbc7, 0xbbe, 0xbcb), (0xcc6, 0xcc2, 0xcca), (0xcca, 0xcd5, 0xccb),
    (0xd46, 0xd3e, 0xd4a), (0xd46, 0xd57, 0xd4c), (0xd47, 0xd3e, 0xd4b), (0xdd9, 0xdcf, 0xddc), (0xdd9, 0xddf, 0xdde),
    (0x1b05, 0x1b35, 0x1b06), (0x1b07, 0x1b35, 0x1b08), (0x1b09, 0x1b35, 0x1b0a), (0x1b0b, 0x1b35, 0x1b0c),
    (0x1b0d, 0x1b35, 0x1b0e), (0x1b11, 0x1b35, 0x1b12), (0x1b3e, 0x1b35, 0x1b40), (0x1b3f, 0x1b35, 0x1b41),
    (0x3046, 0x3099, 0x3094), (0x304b, 0x3099, 0x304c), (0x304d, 0x3099, 0x304e), (0x304f, 0x3099, 0x3050),
    (0x3051, 0x3099, 0x3052), (0x3053, 0x3099, 0x3054), (0x3055, 0x3099, 0x3056), (0x3057, 0x3099, 0x3058),
    (0x3059, 0x3099, 0x305a), (0x305b, 0x3099, 0x305c), (0x305d, 0x3099, 0x305e), (0x305f, 0x3099, 0x3060),
    (0x3061, 0x3099, 0x3062), (0x3064, 0x3099, 0x3065), (0x3066, 0x3099, 0x3067), (0x3068, 0x3099, 0x3069),
    (0x306f, 0x3099, 0x3070), (0x306f, 0x309a, 0x3071), (0x3072, 0x3099, 0x3073), (0x3072, 0x309a, 0x3074),
    (0x3075, 0x3099, 0x3076), (0x3075, 0x309a, 0x3077), (0x3078, 0x3099, 0x3079), (0x3078, 0x309a, 0x307a),
    (0x307b, 0x3099, 0x307c), (0x307b, 0x309a, 0x307d), (0x309d, 0x3099, 0x309e), (0x30a6, 0x3099, 0x30f4),
    (0x30ab, 0x3099, 0x30ac), (0x30ad, 0x3099, 0x30ae), (0x30af, 0x3099, 0x30b0), (0x30b1, 0x3099, 0x30b2),
    (0x30b3, 0x3099, 0x30b4), (0x30b5, 0x3099, 0x30b6), (0x30b7, 0x3099, 0x30b8), (0x30b9, 0x3099, 0x30ba),
    (0x30bb, 0x3099, 0x30bc), (0x30bd, 0x3099, 0x30be), (0x30bf, 0x3099, 0x30c0), (0x30c1, 0x3099, 0x30c2),
    (0x30c4, 0x3099, 0x30c5), (0x30c6, 0x3099, 0x30c7), (0x30c8, 0x3099, 0x30c9), (0x30cf, 0x3099, 0x30d0),
    (0x30cf, 0x309a, 0x30d1), (0x30d2, 0x3099, 0x30d3), (0x30d2, 0x309a, 0x30d4), (0x30d5, 0x3099, 0x30d6),
    (0x30d5, 0x309a, 0x30d7), (0x30d8, 0x3099, 0x30d9), (0x30d8, 0x309a, 0x30da), (0x30db, 0x3099, 0x30dc),
    (0x30db, 0x309a, 0x30dd), (0x30ef, 0x3099, 0x30f7), (0x30f0, 0x3099, 0x30f8), (0x30f1, 0x3099, 0x30f9),
    (0x30f2, 0x3099, 0x30fa), (0x30fd, 0x3099, 0x30fe), (0x11347, 0x1133e, 0x1134b), (0x11347, 0x11357, 0x1134c),
    (0x11382, 0x113c9, 0x11383), (0x1138b, 0x113c2, 0x1138e), (0x11390, 0x113c9, 0x11391),
    (0x113c2, 0x113b8, 0x113c7), (0x113c2, 0x113c2, 0x113c5), (0x113c2, 0x113c9, 0x113c8),
    (0x114b9, 0x114b0, 0x114bc), (0x114b9, 0x114bd, 0x114be), (0x115b8, 0x115af, 0x115ba),
    (0x115b9, 0x115af, 0x115bb), (0x11935, 0x11930, 0x11938), (0x16d63, 0x16d67, 0x16d69),
    (0x16d67, 0x16d67, 0x16d68), (0x16d69, 0x16d67, 0x16d6a),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that inspect gives `expected` (written line by line) for `entries`.
    fn check(entries: &[(&str, Value<'_>)], expected: &[&str]) {
        assert_eq!(inspect_object(entries), expected.join("\n"), "{entries:?}");
    }

    // The expectations below are node 20's output for the same objects.

    #[test]
    fn keys_in_property_order_and_quoted_as_node_quotes_them() {
        use Value::Number as N;
        check(&[], &["{}"]);
        check(&[("a", N(1.0)), ("b_2", N(2.0))], &["{ a: 1, b_2: 2 }"]);
        check(
            &[
                ("b", N(1.0)),
                ("a.b", N(2.5)),
                ("10", N(3.0)),
                ("2", N(-0.0)),
                ("_x", N(f64::NAN)),
                ("01", N(f64::INFINITY)),
                ("4294967295", N(f64::NEG_INFINITY)),
            ],
            &[
                "{",
                "  '2': -0,",
                "  '10': 3,",
                "  b: 1,",
                "  'a.b': 2.5,",
                "  _x: NaN,",
                "  '01': Infinity,",
                "  '4294967295': -Infinity",
                "}",
            ],
        );
        check(
            &[
                ("it's", N(1.0)),
                ("say \"hi\" it's", N(2.0)),
                ("a'b\"c`d", N(3.0)),
                ("a'b\"${x}", N(4.0)),
                ("tab\there\\", N(5.0)),
                ("nul\u{0}\u{7f}\u{85}", N(6.0)),
                ("é", N(7.0)),
                ("__proto__", N(8.0)),
                ("", N(9.0)),
            ],
            &[
                "{",
                r#"  "it's": 1,"#,
                r#"  `say "hi" it's`: 2,"#,
                r#"  'a\'b"c`d': 3,"#,
                r#"  'a\'b"${x}': 4,"#,
                r"  'tab\there\\': 5,",
                r"  'nul\x00\x7F\x85': 6,",
                "  'é': 7,",
                "  ['__proto__']: 8,",
                "  '': 9",
                "}",
            ],
        );
    }

    #[test]
    fn numbers_as_javascript_writes_them() {
        use Value::Number as N;
        check(
            &[("big", N(1e21)), ("tiny", N(1.5e-7)), ("f", N(0.1 + 0.2)), ("n", N(-12345.678)), ("c", N(1e20))],
            &[
                "{",
                "  big: 1e+21,",
                "  tiny: 1.5e-7,",
                "  f: 0.30000000000000004,",
                "  n: -12345.678,",
                "  c: 100000000000000000000",
                "}",
            ],
        );
    }

    #[test]
    fn an_object_breaks_when_its_entries_pass_80_columns() {
        use Value::Number as N;
        check(
            &[
                ("statsd.bad_lines_seen", N(0.0)),
                ("statsd.packets_received", N(1.0)),
                ("statsd.metrics_received", N(7.0)),
                ("a", N(1.0)),
            ],
            &[
                "{",
                "  'statsd.bad_lines_seen': 0,",
                "  'statsd.packets_received': 1,",
                "  'statsd.metrics_received': 7,",
                "  a: 1",
                "}",
            ],
        );
    }

    #[test]
    fn arrays_of_more_than_six_numbers_are_grouped_in_right_aligned_columns() {
        let seven = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        check(
            &[
                ("e", Value::Numbers(&[])),
                ("one", Value::Numbers(&[1.0])),
                ("six", Value::Numbers(&seven[..6])),
                ("seven", Value::Numbers(&seven)),
            ],
            &[
                "{",
                "  e: [],",
                "  one: [ 1 ],",
                "  six: [ 1, 2, 3, 4, 5, 6 ],",
                "  seven: [",
                "    1, 2, 3, 4,",
                "    5, 6, 7",
                "  ]",
                "}",
            ],
        );
        let squares: Vec<f64> = (0..26).map(|i| f64::from(i * i)).collect();
        check(
            &[("t", Value::Numbers(&squares))],
            &[
                "{",
                "  t: [",
                "      0,   1,   4,   9,  16,  25,  36,",
                "     49,  64,  81, 100, 121, 144, 169,",
                "    196, 225, 256, 289, 324, 361, 400,",
                "    441, 484, 529, 576, 625",
                "  ]",
                "}",
            ],
        );
        // One entry much wider than the rest: not grouped, and short enough for one line.
        check(
            &[("t", Value::Numbers(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1234567.891]))],
            &["{ t: [ 1, 2, 3, 4, 5, 6, 1234567.891 ] }"],
        );
    }

    #[test]
    fn arrays_show_100_items_then_a_count() {
        let digits: Vec<f64> = (0..103).map(|i| f64::from(i % 10)).collect();
        let row = |first: u32| (first..first + 12).map(|i| (i % 10).to_string()).collect::<Vec<String>>().join(", ");
        let mut expected = vec!["{".to_string(), "  t: [".to_string()];
        expected.extend((0..8).map(|r| format!("    {},", row(r * 12))));
        expected.extend(["    6, 7, 8, 9,", "    ... 3 more items", "  ]", "}"].map(String::from));
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        check(&[("t", Value::Numbers(&digits))], &expected);
    }

    #[test]
    fn strings_are_left_aligned_and_long_ones_broken_after_newlines() {
        check(
            &[("s", Value::Strings(&["a", "bb", "ccc", "it's", "x\ny", "é", "z"]))],
            &["{", "  s: [", "    'a',    'bb',", r#"    'ccc',  "it's","#, r"    'x\ny', 'é',", "    'z'", "  ]", "}"],
        );
        let long = format!("{}\n{}", "x".repeat(70), "y".repeat(5));
        check(
            &[("s", Value::Strings(&[&long]))],
            &["{", "  s: [", &format!(r"    '{}\n' +", "x".repeat(70)), "      'yyyyy'", "  ]", "}"],
        );
    }

    #[test]
    fn strings_are_cut_at_10000_code_units() {
        let s = format!("a{}", "\u{1F600}".repeat(5001));
        let out = string(&s, ITEM_INDENT);
        // The cut falls inside a surrogate pair: node prints the lone half escaped.
        assert!(out.ends_with(r"😀\ud83d'... 3 more characters"), "{}", &out[out.len() - 40..]);
        assert_eq!(string(&"b".repeat(10_001), ITEM_INDENT), format!("'{}'... 1 more character", "b".repeat(10_000)));
    }

    #[test]
    fn width_counts_terminal_columns() {
        for (s, w) in [
            ("abc", 3),
            ("'\\n'", 4),
            ("漢字", 4),
            ("か\u{3099}", 2),
            ("\u{1100}\u{1161}\u{11a8}", 2),
            ("e\u{301}", 1),
            ("\u{ad}\u{200b}", 1),
            ("😀", 2),
            ("\u{9c7}\u{9be}", 1),
        ] {
            assert_eq!(width(s), w, "{s:?}");
        }
        assert!(WIDTHS.windows(2).all(|w| w[0].1 < w[1].0), "WIDTHS sorted, disjoint");
        assert!(COMPOSITIONS.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)), "COMPOSITIONS sorted");
    }

    #[test]
    fn past_the_budget_arrays_print_as_array() {
        let items = ["x".repeat(50), "y".repeat(50)];
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&str, Value<'_>)> = keys.iter().map(|k| (k.as_str(), Value::Strings(&items))).collect();
        let array = Budget { used: 0, limit: BUDGET }.value(entries[0].1);
        assert!(array.starts_with("[\n    'xx") && array.ends_with("yy'\n  ]"), "{array}");
        // Three arrays are past a budget of two and a half; the fourth is not printed.
        let out = inspect_with_budget(&entries, js_len(&array) * 5 / 2);
        assert!(out.contains(&format!("  k2: {array},")), "{out}");
        assert!(out.contains("  k3: [Array],"), "{out}");
        assert!(out.ends_with("  k9: [Array]\n}"), "{out}");
    }

    /// A small deterministic generator (xorshift64*), so that a failing case can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }
    }

    /// An owned property value for the generated objects.
    #[derive(Debug, Clone)]
    enum Owned {
        Number(f64),
        Numbers(Vec<f64>),
        Strings(Vec<String>),
    }

    const KEY_PARTS: &[&str] = &[
        "foo",
        "_a1",
        "stats",
        ".",
        "bar.baz",
        "-",
        " ",
        "0",
        "7",
        "10",
        "4294967294",
        "4294967295",
        "01",
        "1.5",
        "'",
        "\"",
        "`",
        "${",
        "\\",
        "\t",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "é",
        "日本",
        "😀",
        "__proto__",
        "x;tag=1",
        "counter",
    ];
    const STRING_PARTS: &[&str] = &[
        "a",
        "bb",
        "user42",
        "10.0.0.1",
        " ",
        "'",
        "\"",
        "`",
        "${",
        "\\",
        "\n",
        "\r",
        "\u{1}",
        "\u{9f}",
        "漢字",
        "か",
        "\u{3099}",
        "か\u{3099}",
        "\u{1100}",
        "\u{1161}",
        "\u{11a8}",
        "😀",
        "👍🏽",
        "👩‍💻",
        "e\u{301}",
        "\u{9c7}\u{9be}",
        "\u{ad}",
        "\u{200b}",
        "Ａ",
        "\u{1d160}",
        "\u{fffd}",
        "x",
    ];

    fn random_number(rng: &mut Rng) -> f64 {
        match rng.below(10) {
            0 => *rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, 1e21, 1e-7, 0.1 + 0.2, 5e-324]),
            1 => f64::from_bits(rng.next()),
            2 => (rng.next() % 1_000_000_000_000) as f64 / 1000.0,
            3 => -((rng.next() % 100_000) as f64),
            _ => (rng.next() % 1000) as f64,
        }
    }

    fn text(rng: &mut Rng, parts: &[&str], n_max: usize) -> String {
        let n = rng.below(n_max + 1);
        let mut s: String = (0..n).map(|_| *rng.pick(parts)).collect();
        if rng.below(12) == 0 {
            s = s.repeat(1 + rng.below(30));
        }
        s
    }

    fn array_len(rng: &mut Rng) -> usize {
        if rng.below(2) == 0 {
            *rng.pick(&[0, 1, 2, 5, 6, 7, 8, 12, 26, 99, 100, 101, 102, 150])
        } else {
            rng.below(40)
        }
    }

    fn object(rng: &mut Rng) -> Vec<(String, Owned)> {
        let n_keys = match rng.below(20) {
            0 => 0,
            1..=8 => 1 + rng.below(3),
            9..=15 => 4 + rng.below(7),
            _ => 11 + rng.below(30),
        };
        let mut entries: Vec<(String, Owned)> = Vec::new();
        while entries.len() < n_keys {
            let key = text(rng, KEY_PARTS, 3);
            if entries.iter().any(|(k, _)| *k == key) {
                continue;
            }
            // Arrays whose numbers are alike (small counts) or not, to cover both sides of
            // node's grouping test.
            let small = rng.below(2) == 0;
            let value = match rng.below(3) {
                0 => Owned::Number(random_number(rng)),
                1 => Owned::Numbers(
                    (0..array_len(rng))
                        .map(|_| if small { rng.below(200) as f64 } else { random_number(rng) })
                        .collect(),
                ),
                _ => Owned::Strings(
                    (0..array_len(rng)).map(|_| text(rng, STRING_PARTS, if small { 2 } else { 6 })).collect(),
                ),
            };
            entries.push((key, value));
        }
        entries
    }

    /// Objects on either side of node's thresholds: one line or several (80 columns), strings
    /// broken or not (72 code units at the items' indentation), arrays grouped or not.
    fn edge_objects() -> Vec<Vec<(String, Owned)>> {
        let mut objects = Vec::new();
        for n in 1..=75 {
            objects.push(vec![("k".repeat(n), Owned::Number(1.0))]);
            objects.push(vec![("a".into(), Owned::Number(2.0)), ("b".repeat(n), Owned::Numbers(vec![1.0, 22.0]))]);
            let line = format!("{}\n{}", "s".repeat(n / 2), "t".repeat(n - n / 2));
            objects.push(vec![("s".into(), Owned::Strings(vec![line.clone(), "x".into()]))]);
            let wide = "w".repeat(n / 3);
            let strings = (0..7).map(|i| if i == 3 { wide.clone() } else { "v".into() }).collect();
            objects.push(vec![("g".into(), Owned::Strings(strings))]);
            let digits = (0..=n % 25).map(|i| 10f64.powi(i as i32)).collect();
            objects.push(vec![("d".into(), Owned::Numbers(digits))]);
        }
        objects
    }

    /// A number as JavaScript source `Number()` reads back exactly.
    fn js_source(v: f64) -> String {
        match v {
            v if v.is_nan() => "NaN".into(),
            v if v.is_infinite() => if v > 0.0 { "Infinity" } else { "-Infinity" }.into(),
            v if v == 0.0 && v.is_sign_negative() => "-0".into(),
            v => format!("{v:e}"),
        }
    }

    fn ours(entries: &[(String, Owned)]) -> String {
        let strings: Vec<Vec<&str>> = entries
            .iter()
            .map(|(_, v)| match v {
                Owned::Strings(ss) => ss.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            })
            .collect();
        let values: Vec<(&str, Value<'_>)> = entries
            .iter()
            .zip(&strings)
            .map(|((k, v), ss)| {
                let value = match v {
                    Owned::Number(n) => Value::Number(*n),
                    Owned::Numbers(ns) => Value::Numbers(ns),
                    Owned::Strings(_) => Value::Strings(ss),
                };
                (k.as_str(), value)
            })
            .collect();
        inspect_object(&values)
    }

    /// Runs node's `util.inspect` on each object (sent as JSON; numbers as strings so that NaN,
    /// the infinities and -0 survive), returning its outputs.
    fn node_inspect(objects: &[Vec<(String, Owned)>]) -> Vec<String> {
        use std::io::{Read, Write};
        use std::process::{Command, Stdio};
        const SCRIPT: &str = r#"
            const util = require('util');
            const chunks = [];
            process.stdin.on('data', (c) => chunks.push(c));
            process.stdin.on('end', () => {
              const out = JSON.parse(Buffer.concat(chunks).toString('utf8')).map((entries) => {
                const obj = {};
                for (const [key, kind, v] of entries) {
                  const value = kind === 'n' ? Number(v) : kind === 'a' ? v.map(Number) : v;
                  // defineProperty: an own `__proto__` property, not the prototype.
                  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
                }
                return util.inspect(obj);
              });
              process.stdout.write(out.join('\n\u0000\n'));
            });
        "#;
        let json: Vec<serde_json::Value> = objects
            .iter()
            .map(|entries| {
                entries
                    .iter()
                    .map(|(k, v)| match v {
                        Owned::Number(n) => serde_json::json!([k, "n", js_source(*n)]),
                        Owned::Numbers(ns) => {
                            serde_json::json!([k, "a", ns.iter().map(|n| js_source(*n)).collect::<Vec<_>>()])
                        }
                        Owned::Strings(ss) => serde_json::json!([k, "s", ss]),
                    })
                    .collect()
            })
            .collect();
        let input = serde_json::to_vec(&json).unwrap();
        let mut child = Command::new("node")
            .args(["-e", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node (v20) on PATH: the reference_ tests compare with it");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        writer.join().unwrap().unwrap();
        assert!(child.wait().unwrap().success(), "node failed");
        out.split("\n\u{0}\n").map(String::from).collect()
    }

    #[test]
    #[ignore = "needs node; CI runs `cargo test reference_ -- --ignored`"]
    fn reference_inspect_matches_node_on_random_objects() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut objects: Vec<Vec<(String, Owned)>> = (0..400).map(|_| object(&mut rng)).collect();
        objects.extend(edge_objects());
        // A string cut inside a surrogate pair, and one cut between pairs.
        for s in [format!("a{}", "😀".repeat(5001)), "😀".repeat(5001)] {
            objects.push(vec![("cut".into(), Owned::Strings(vec![s, "b".repeat(10_001)]))]);
        }
        let theirs = node_inspect(&objects);
        assert_eq!(theirs.len(), objects.len());
        for (i, (entries, theirs)) in objects.iter().zip(&theirs).enumerate() {
            assert_eq!(ours(entries), *theirs, "object {i}: {entries:?}");
        }
    }

    #[test]
    #[ignore = "needs node; CI runs `cargo test reference_ -- --ignored`"]
    fn reference_inspect_budget_matches_node() {
        let n_keys = BUDGET / (7 * 1000) + 50;
        let objects: Vec<Vec<(String, Owned)>> = vec![(0..n_keys)
            .map(|i| (format!("k{i}"), Owned::Strings(vec![format!("{i}{}", "x".repeat(1000)); 7])))
            .collect()];
        let theirs = node_inspect(&objects);
        let ours = ours(&objects[0]);
        assert!(ours.contains("[Array]"));
        assert!(
            ours == theirs[0],
            "outputs differ from byte {:?}",
            ours.bytes().zip(theirs[0].bytes()).position(|(a, b)| a != b)
        );
    }
}
