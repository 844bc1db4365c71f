//! The statsd line protocol as etsy statsd 0.9 reads it: `key:value|type[|@rate][|#tags]`, a
//! key with several `value|type` parts (`a:1|c:2|ms`), DogStatsD tags turned into Graphite tags,
//! and etsy's key sanitising. Pure: no I/O, no allocation once the key buffer has grown.
//!
//! Faithfulness notes (each one is etsy's behaviour, tested below):
//! - a datagram splits on `\n` only (a `\r` stays in the line, where `Number()` and `trim()`
//!   ignore it); empty lines are skipped and not counted;
//! - validation looks at the type as written (`"ms "` is not `"ms"`, so a negative value
//!   passes), dispatch at the trimmed type; unknown types (`h`, `""`) are counters;
//! - the sample rate must be `@` and a non-negative `Number()`; the rate used is `Number()` of
//!   its leading `[0-9.]` run (`@1e-1` is a rate of 1, `@0x10` of 0: an infinite count). Where
//!   that run is empty (`@+0.5`, `@ 1`, `@Infinity`) etsy's handler throws; we count a bad line;
//! - tags: the first `;` of each becomes `_`, its first `:` becomes `=`, and they are appended to
//!   the key before sanitising.

use super::number::{is_js_space, is_number, js_number, js_trim};
use crate::protocol::plaintext::parse_decimal_fast;

/// What one `value|type` part adds to the aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<'a> {
    /// `c` (and every unknown type): `value × (1 / rate)` added to the counter.
    Counter(f64),
    /// `ms`: one sample, and `1 / rate` added to the timer's count.
    Timer { value: f64, count: f64 },
    /// `g`: an absolute value, or with a leading `+`/`-` a delta (applied only to a gauge that
    /// is set and not 0: etsy's `gauges[key] && ...`).
    Gauge { value: f64, delta: bool },
    /// `s`: one member (the value as written; an empty value is `"0"`).
    Set(&'a str),
}

/// Parses one line (not empty), writing its key into `key` and handing each valid part to
/// `on_sample`. Returns how many parts were bad (each counts as a bad line, as in etsy).
///
/// Splits on bytes (`|#`, `:`, `|` are ASCII, so every cut is a character boundary).
pub fn parse_line<'l>(
    line: &'l str,
    sanitize: bool,
    key: &mut String,
    mut on_sample: impl FnMut(&str, Sample<'l>),
) -> u32 {
    let (metric, tags) = match tags_marker(line) {
        Some(at) => {
            let rest = &line[at + 2..];
            (&line[..at], &rest[..tags_marker(rest).unwrap_or(rest.len())])
        }
        None => (line, ""),
    };
    let (raw_key, mut parts) = split_at_byte(metric, b':');
    key.clear();
    if sanitize {
        sanitize_into(raw_key, key);
    } else {
        key.push_str(raw_key);
    }
    if !tags.is_empty() {
        for tag in tags.split(',') {
            push_tag(tag, sanitize, key);
        }
    }
    // etsy: no value at all reads as "1" with no type: a bad line.
    let mut bad = u32::from(parts.is_none());
    while let Some(rest) = parts {
        let (part, next) = split_at_byte(rest, b':');
        parts = next;
        match parse_part(part) {
            Some(sample) => on_sample(key, sample),
            None => bad += 1,
        }
    }
    bad
}

/// The line almost every client sends, in one pass: `key:value|type` or `key:value|type|@rate`
/// with a key that keyNameSanitize leaves alone, a type of exactly `c`, `ms`, `g` or `s`, a rate
/// of digits and `.`, and a value the plaintext parser's exact decimal fast path takes (digits
/// with an optional sign and point, within 2^53; any member for a set). Gives the key and its
/// sample, exactly what [`parse_line`] gives for such a line (tested against it); None for every
/// other line, which `parse_line` then reads.
pub fn parse_plain(line: &str) -> Option<(&str, Sample<'_>)> {
    match parse_plain_prefix(line)? {
        (key, sample, len) if len == line.len() => Some((key, sample)),
        _ => None,
    }
}

/// [`parse_plain`] of the first line of `text` (the bytes before its first `\n`, or all of it),
/// read without looking for the `\n` first: a datagram's lines are read one after the other
/// this way, each in one pass. Gives the key, the sample and the line's length (without the
/// `\n`); None when that line is not one `parse_plain` takes.
pub fn parse_plain_prefix(text: &str) -> Option<(&str, Sample<'_>, usize)> {
    enum Kind {
        Counter,
        Timer,
        Gauge,
        Set,
    }
    let b = text.as_bytes();
    // The key ends at its first byte keyNameSanitize would change, which must be the `:`: no
    // `|#`, no second part and no sanitising can start inside it (and no `\n`: the line goes on).
    let key_end = kept_prefix_len(b);
    if b.get(key_end) != Some(&b':') {
        return None;
    }
    let value_start = key_end + 1;
    let value_end = value_start + value_len(&b[value_start..])?;
    if b[value_end] != b'|' || value_end == value_start {
        return None;
    }
    let (kind, after) = match &b[value_end + 1..] {
        [b'm', b's', after @ ..] => (Kind::Timer, after),
        [b'c', after @ ..] => (Kind::Counter, after),
        [b'g', after @ ..] => (Kind::Gauge, after),
        [b's', after @ ..] => (Kind::Set, after),
        _ => return None,
    };
    let (inverse_rate, rest) = match after {
        [b'|', b'@', rate @ ..] => {
            let rate_len = rate.iter().position(|c| !(c.is_ascii_digit() || *c == b'.')).unwrap_or(rate.len());
            (1.0 / parse_decimal_fast(&rate[..rate_len])?, &rate[rate_len..])
        }
        _ => (1.0, after),
    };
    if !matches!(rest, [] | [b'\n', ..]) {
        return None;
    }
    let value = &text[value_start..value_end];
    let sample = match kind {
        Kind::Set => Sample::Set(value),
        Kind::Counter => Sample::Counter(parse_decimal_fast(value.as_bytes())? * inverse_rate),
        Kind::Gauge => {
            Sample::Gauge { value: parse_decimal_fast(value.as_bytes())?, delta: value.starts_with(['+', '-']) }
        }
        Kind::Timer => {
            let value = parse_decimal_fast(value.as_bytes())?;
            if value < 0.0 {
                return None;
            }
            Sample::Timer { value, count: inverse_rate }
        }
    };
    Some((&text[..key_end], sample, b.len() - rest.len()))
}

/// How many bytes `b` starts with that keyNameSanitize keeps (`[a-zA-Z0-9_\-.;=]`): 16 at a
/// time while 16 are left, then one at a time. The key scan was most of the line's parse.
fn kept_prefix_len(b: &[u8]) -> usize {
    let found = |c: u8| !KEY_BYTE_KEPT[usize::from(c)];
    // SAFETY: SSE2, which `kept_mask_16` needs, is part of x86_64 itself: every CPU this code
    // runs on has it.
    #[cfg(target_arch = "x86_64")]
    let mask_16 = |chunk: &[u8; 16]| !unsafe { kept_mask_16(chunk) } & 0xFFFF;
    #[cfg(not(target_arch = "x86_64"))]
    let mask_16 = |chunk: &[u8; 16]| mask_of(chunk, found);
    first_byte(b, mask_16, found).unwrap_or(b.len())
}

/// Where the value at the start of `b` ends: its first `|`, `:` or `\n`; None when there is
/// none. A value mostly is shorter than 16 bytes: one vector step, no loop.
fn value_len(b: &[u8]) -> Option<usize> {
    let found = |c: u8| matches!(c, b'|' | b':' | b'\n');
    // SAFETY: as in `kept_prefix_len`: SSE2 is part of x86_64.
    #[cfg(target_arch = "x86_64")]
    let mask_16 = |chunk: &[u8; 16]| unsafe { value_end_mask_16(chunk) };
    #[cfg(not(target_arch = "x86_64"))]
    let mask_16 = |chunk: &[u8; 16]| mask_of(chunk, found);
    first_byte(b, mask_16, found)
}

/// The first byte of `b` that `found` takes: 16 at a time while 16 are left, `mask_16` giving
/// bit `i` for each byte `i` of a chunk that `found` takes; then one at a time.
#[inline(always)]
fn first_byte(b: &[u8], mask_16: impl Fn(&[u8; 16]) -> u32, found: impl Fn(u8) -> bool) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = b.get(at..at + 16) {
        let bits = mask_16(chunk.try_into().expect("16 bytes"));
        if bits != 0 {
            return Some(at + bits.trailing_zeros() as usize);
        }
        at += 16;
    }
    b[at..].iter().position(|&c| found(c)).map(|len| at + len)
}

/// `mask_16` without vector instructions: bit `i` for each byte `i` `found` takes.
#[cfg(not(target_arch = "x86_64"))]
fn mask_of(chunk: &[u8; 16], found: impl Fn(u8) -> bool) -> u32 {
    chunk.iter().enumerate().fold(0, |bits, (i, &c)| bits | (u32::from(found(c)) << i))
}

/// Bit `i` set when `chunk[i]` is `|`, `:` or `\n` (SSE2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn value_end_mask_16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    // SAFETY: `chunk` is 16 readable bytes, exactly what the unaligned load reads.
    let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
    let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(is(b'|'), is(b':')), is(b'\n'))) as u32
}

/// Bit `i` set when `chunk[i]` is a byte keyNameSanitize keeps (SSE2, which every x86_64 has).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn kept_mask_16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: `chunk` is 16 readable bytes, exactly what the unaligned load reads.
    let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
    // Signed compares: bytes from 0x80 are negative, below every bound here, so never kept.
    let within = |x: __m128i, lo: u8, hi: u8| {
        _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8(hi as i8 + 1)))
    };
    let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
    // `| 0x20` folds `A-Z` onto `a-z`, and moves no other kept-or-not byte into that range
    // (`@[\\]^_` land on `` `{|}~\x7f``).
    let letter = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
    let digit = within(v, b'0', b'9');
    let punct = _mm_or_si128(_mm_or_si128(within(v, b'-', b'.'), is(b'_')), _mm_or_si128(is(b';'), is(b'=')));
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), punct)) as u32
}

/// Where the first `|#` (etsy's tags marker) starts.
fn tags_marker(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    memchr::memchr_iter(b'#', b).find(|&at| at > 0 && b[at - 1] == b'|').map(|at| at - 1)
}

/// `s` before the first `sep` and, when there is one, what follows it. A plain loop: the fields
/// are a few bytes long, shorter than a vector search pays for.
fn split_at_byte(s: &str, sep: u8) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == sep) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

/// `;tag` with etsy's single replacements, sanitised as part of the key.
fn push_tag(tag: &str, sanitize: bool, key: &mut String) {
    key.push(';');
    let (mut semi, mut colon) = (false, false);
    let start = key.len();
    for c in tag.chars() {
        let c = match c {
            ';' if !semi => {
                semi = true;
                '_'
            }
            ':' if !colon => {
                colon = true;
                '='
            }
            c => c,
        };
        key.push(c);
    }
    if sanitize {
        let raw: String = key.split_off(start);
        // Whitespace runs spanning the `;` boundary cannot happen: `;` is kept.
        sanitize_into(&raw, key);
    }
}

/// The bytes keyNameSanitize keeps as they are: `[a-zA-Z0-9_\-.;=]`.
const KEY_BYTE_KEPT: [bool; 256] = {
    let mut kept = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        kept[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b';' | b'=');
        b += 1;
    }
    kept
};

/// etsy's keyNameSanitize: whitespace runs become one `_`, `/` becomes `-`, and everything but
/// `[a-zA-Z0-9_\-.;=]` is removed.
pub fn sanitize_into(raw: &str, out: &mut String) {
    // The common case, a key that needs no change, in one copy.
    if raw.bytes().all(|b| KEY_BYTE_KEPT[usize::from(b)]) {
        out.push_str(raw);
        return;
    }
    let mut in_space = false;
    for c in raw.chars() {
        if is_js_space(c) {
            if !in_space {
                out.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        match c {
            '/' => out.push('-'),
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' | ';' | '=' => out.push(c),
            _ => {}
        }
    }
}

/// One `value|type[|@rate]` part; None when etsy's `is_valid_packet` refuses it.
fn parse_part(part: &str) -> Option<Sample<'_>> {
    let (value, rest) = split_at_byte(part, b'|');
    let (kind_text, rest) = split_at_byte(rest?, b'|');
    // etsy checks `fields[2] !== undefined`: an empty third field ("a:1|c|") is a bad rate;
    // fields after the third are ignored.
    let rate = match rest {
        Some(rest) => Some(sample_rate(split_at_byte(rest, b'|').0)?),
        None => None,
    };
    let kind = kind_text.as_bytes();
    // `is_number` is `Number()` not NaN on a non-empty string: parse once, test the result.
    let number = if kind == b"s" { f64::NAN } else { js_number(value) };
    let is_number = !value.is_empty() && !number.is_nan();
    let valid = match kind {
        b"s" => true,
        b"ms" => is_number && number >= 0.0,
        _ => is_number,
    };
    if !valid {
        return None;
    }
    let inverse_rate = 1.0 / rate.unwrap_or(1.0);
    // Validation looked at the type as written, dispatch looks at it trimmed.
    Some(match js_trim(kind_text).as_bytes() {
        b"ms" => Sample::Timer { value: number, count: inverse_rate },
        b"g" => Sample::Gauge { value: number, delta: value.starts_with(['+', '-']) },
        b"s" => Sample::Set(if value.is_empty() { "0" } else { value }),
        _ => Sample::Counter(number * inverse_rate),
    })
}

/// The rate of a third field (`@0.1`); None when etsy refuses it (the part is bad).
fn sample_rate(field: &str) -> Option<f64> {
    let rest = field.strip_prefix('@')?;
    if rest.is_empty() || !is_number(rest) || rest.starts_with('-') {
        return None;
    }
    let run = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    if run == 0 {
        return None; // etsy throws on the failed match; counted as a bad line here
    }
    Some(js_number(&rest[..run]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `line`, returning (key, samples) per call and the bad count.
    fn parse(line: &str) -> (Vec<(String, String)>, u32) {
        let mut key = String::new();
        let mut got = Vec::new();
        let bad = parse_line(line, true, &mut key, |k, s| got.push((k.to_string(), format!("{s:?}"))));
        (got, bad)
    }

    fn check(line: &str, want: &[(&str, &str)], want_bad: u32) {
        let (got, bad) = parse(line);
        let want: Vec<(String, String)> = want.iter().map(|(k, s)| (k.to_string(), s.to_string())).collect();
        assert_eq!((got, bad), (want, want_bad), "{line:?}");
    }

    #[test]
    fn lines_parse_as_etsy_reads_them() {
        check("a:1|c", &[("a", "Counter(1.0)")], 0);
        check("a:2|c|@0.5", &[("a", "Counter(4.0)")], 0);
        check("a:3|c|@0.1", &[("a", &format!("Counter({:?})", 3.0 * (1.0 / 0.1)))], 0);
        check("t:12|ms", &[("t", "Timer { value: 12.0, count: 1.0 }")], 0);
        check("t:12|ms|@0.25", &[("t", "Timer { value: 12.0, count: 4.0 }")], 0);
        check("g:5|g", &[("g", "Gauge { value: 5.0, delta: false }")], 0);
        check("g:-5|g", &[("g", "Gauge { value: -5.0, delta: true }")], 0);
        check("g:+5|g", &[("g", "Gauge { value: 5.0, delta: true }")], 0);
        check("g: +5|g", &[("g", "Gauge { value: 5.0, delta: false }")], 0);
        check("u:bob|s", &[("u", "Set(\"bob\")")], 0);
        check("u:|s", &[("u", "Set(\"0\")")], 0);
        check("h:7|h", &[("h", "Counter(7.0)")], 0);
        check("x:7|", &[("x", "Counter(7.0)")], 0);
        check(
            "m:1|c:2|ms:3|g",
            &[
                ("m", "Counter(1.0)"),
                ("m", "Timer { value: 2.0, count: 1.0 }"),
                ("m", "Gauge { value: 3.0, delta: false }"),
            ],
            0,
        );
        check("m:1|c:bad|c:2|c", &[("m", "Counter(1.0)"), ("m", "Counter(2.0)")], 1);
    }

    #[test]
    fn bad_parts_are_counted_one_each() {
        for (line, bad) in [
            ("nocolon", 1),
            ("a:", 1),
            ("a:1", 1),
            ("a:x|c", 1),
            ("a:|c", 1),
            ("a:-1|ms", 1),
            ("a:x|g", 1),
            ("a:1|c|0.5", 1),
            ("a:1|c|@", 1),
            ("a:1|c|@-0.5", 1),
            ("a:1|c|@x", 1),
            ("a:1|c|@+0.5", 1),
            ("a:1|c|", 1),
            ("a:x|c:y|c", 2),
        ] {
            let (got, n) = parse(line);
            assert_eq!((got.len(), n), (0, bad), "{line:?}");
        }
    }

    #[test]
    fn etsy_quirks_are_kept() {
        check("t:-3|ms ", &[("t", "Timer { value: -3.0, count: 1.0 }")], 0);
        check("a:1|c|@1e-1", &[("a", "Counter(1.0)")], 0);
        check("a:1|c|@0x10", &[("a", "Counter(inf)")], 0);
        check("a:1|c\r", &[("a", "Counter(1.0)")], 0);
        check("a:0x10|c", &[("a", "Counter(16.0)")], 0);
        check("a:1|c|@0.5|extra", &[("a", "Counter(2.0)")], 0);
    }

    #[test]
    fn the_fast_path_gives_what_the_full_parser_gives() {
        let keys = ["a.b-c_d", "", "a b", "a/b", "é", "a|b", "a#b", "a;k=v"];
        let values = [
            "1",
            "-1",
            "+2",
            "-0",
            "1.5",
            ".5",
            "5.",
            ".",
            "0x10",
            "1e3",
            " 1",
            "",
            "m7",
            "1.2.3",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "+",
            "Infinity",
        ];
        let kinds = ["c", "ms", "g", "s", "h", "ms ", "c\r", "", "m", "#x"];
        let rates =
            ["", "|@0.5", "|@", "|@.5", "|@5.", "|@1e-1", "|@-1", "|@+1", "|0.5", "|@0.5|x", "|#t:v", "|", "|@0x1"];
        let tails = ["", ":2|c", "|#env:prod", ":"];
        let (mut fast, mut lines) = (0, 0);
        for key in keys {
            for value in values {
                for kind in kinds {
                    for rate in rates {
                        for tail in tails {
                            let line = format!("{key}:{value}|{kind}{rate}{tail}");
                            lines += 1;
                            // Read as the first line of a datagram, the line gives the same.
                            let first = parse_plain_prefix(&format!("{line}\nx:1|c"))
                                .map(|(k, s, len)| (k.to_string(), format!("{s:?}"), len));
                            let alone = parse_plain(&line).map(|(k, s)| (k.to_string(), format!("{s:?}"), line.len()));
                            assert_eq!(first, alone, "{line:?}");
                            let Some((fast_key, fast_sample)) = parse_plain(&line) else { continue };
                            fast += 1;
                            let mut key_buf = String::new();
                            let mut full = Vec::new();
                            let bad = parse_line(&line, true, &mut key_buf, |k, s| full.push((k.to_string(), s)));
                            assert_eq!((full, bad), (vec![(fast_key.to_string(), fast_sample)], 0), "{line:?}");
                        }
                    }
                }
            }
        }
        assert!(fast > 400 && fast < lines / 4, "{fast} of {lines} lines took the fast path");
        for line in
            ["app.x:1|c", "app.x:3|c|@0.1", "t:12.5|ms", "t:1|ms|@0.25", "g:-3|g", "g:7|g", "u:m5|s", "u:x|s|@1"]
        {
            assert!(parse_plain(line).is_some(), "{line:?} takes the fast path");
        }
    }

    /// `fast` agrees with `slow` on `base` and its prefixes, and with every byte value put at
    /// every place of `base`: in the 16-byte steps and in the tail after them.
    fn agrees_at_every_byte<T: PartialEq + std::fmt::Debug>(base: &[u8], fast: fn(&[u8]) -> T, slow: fn(&[u8]) -> T) {
        for len in [0, 1, 15, 16, 17, 31, 32, 33, base.len()] {
            assert_eq!(fast(&base[..len]), slow(&base[..len]), "prefix of {len}");
        }
        for at in 0..base.len() {
            for c in 0..=255u8 {
                let mut b = base.to_vec();
                b[at] = c;
                assert_eq!(fast(&b), slow(&b), "byte {c:#04x} at {at}");
            }
        }
    }

    #[test]
    fn the_key_scan_stops_at_the_first_byte_sanitising_would_change() {
        let kept = b"abcXYZ019_-.;=wvutsrqponmlkjihgfedcbaMNOPQ";
        assert_eq!(kept_prefix_len(kept), kept.len());
        agrees_at_every_byte(kept, kept_prefix_len, |b| {
            b.iter().position(|&c| !KEY_BYTE_KEPT[usize::from(c)]).unwrap_or(b.len())
        });
    }

    #[test]
    fn the_value_ends_at_its_first_bar_colon_or_newline() {
        let plain = b"0123456789.+-abcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(value_len(plain), None);
        agrees_at_every_byte(plain, value_len, |b| b.iter().position(|c| matches!(c, b'|' | b':' | b'\n')));
    }

    #[test]
    fn keys_are_sanitised_and_tags_appended() {
        check("a b\t c/d:1|c", &[("a_b_c-d", "Counter(1.0)")], 0);
        check("wé!rd$:1|c", &[("wrd", "Counter(1.0)")], 0);
        check("req:1|c|#env:prod,host:web-1", &[("req;env=prod;host=web-1", "Counter(1.0)")], 0);
        check("req:1|c|#a:b:c,x;y;z", &[("req;a=bc;x_y;z", "Counter(1.0)")], 0);
        check("req:1|c|#", &[("req", "Counter(1.0)")], 0);
        check("req:1|c|#k:v|#ignored", &[("req;k=v", "Counter(1.0)")], 0);
        let mut key = String::new();
        let mut got = Vec::new();
        parse_line("a b/c:1|c", false, &mut key, |k, _| got.push(k.to_string()));
        assert_eq!(got, ["a b/c"], "keyNameSanitize = false keeps the key");
    }
}
