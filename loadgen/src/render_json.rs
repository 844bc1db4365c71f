//! Reading a Graphite `/render?format=json` body: `[{"target": NAME, "datapoints": [[VALUE|null,
//! TS], ...], ...}, ...]`, as graphite-web, graphite-api and Carbyne write it. Pure.
//!
//! Written from RFC 8259 for the syntax and graphite-web's `render/views.py` for the shape. Keys
//! other than `target` and `datapoints` (`tags`, carbonapi's extras) are skipped whatever they
//! hold; `1e9999`, graphite-web's spelling of infinity, reads as infinity. The body comes from a
//! server under test, so it is hostile: every malformed input is a [`JsonError`] with the byte
//! offset, nesting is bounded ([`DEPTH_MAX`]), and nothing is allocated beyond the series and
//! points the body holds.

use std::fmt;

/// Deepest nesting of arrays and objects accepted.
pub const DEPTH_MAX: usize = 64;

/// One series of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedSeries {
    /// The `target` key: the series name for a plain path target.
    pub target: String,
    /// `(timestamp, value)` in the order given; `None` for `null`.
    pub points: Vec<(i64, Option<f64>)>,
}

/// A body that is not a render answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where reading stopped.
    pub offset: usize,
    /// What was wrong there.
    pub what: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Reads a whole render answer.
pub fn parse(body: &[u8]) -> Result<Vec<RenderedSeries>, JsonError> {
    let mut reader = Reader { input: body, pos: 0 };
    let mut out = Vec::new();
    reader.expect(b'[')?;
    if !reader.eat(b']')? {
        loop {
            out.push(reader.series()?);
            if reader.eat(b']')? {
                break;
            }
            reader.expect(b',')?;
        }
    }
    reader.skip_ws();
    if reader.pos != body.len() {
        return Err(reader.error("bytes after the answer"));
    }
    Ok(out)
}

struct Reader<'a> {
    input: &'a [u8],
    /// Next byte to read; at most `input.len()`.
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, what: &'static str) -> JsonError {
        JsonError { offset: self.pos, what }
    }

    fn skip_ws(&mut self) {
        while self.input.get(self.pos).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Result<u8, JsonError> {
        self.skip_ws();
        self.input.get(self.pos).copied().ok_or_else(|| self.error("unexpected end"))
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> Result<bool, JsonError> {
        let found = self.peek()? == byte;
        if found {
            self.pos += 1;
        }
        Ok(found)
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.eat(byte)? {
            Ok(())
        } else {
            Err(self.error(match byte {
                b'[' => "expected '['",
                b'{' => "expected '{'",
                b':' => "expected ':'",
                b',' => "expected ','",
                _ => "unexpected byte",
            }))
        }
    }

    /// `{"target": ..., "datapoints": [...], ...}`.
    fn series(&mut self) -> Result<RenderedSeries, JsonError> {
        self.expect(b'{')?;
        let (mut target, mut points) = (None, None);
        if !self.eat(b'}')? {
            loop {
                let key = self.string()?;
                self.expect(b':')?;
                match key.as_str() {
                    "target" => target = Some(self.string()?),
                    "datapoints" => points = Some(self.datapoints()?),
                    _ => self.skip_value(1)?,
                }
                if self.eat(b'}')? {
                    break;
                }
                self.expect(b',')?;
            }
        }
        match (target, points) {
            (Some(target), Some(points)) => Ok(RenderedSeries { target, points }),
            _ => Err(self.error("a series without \"target\" or \"datapoints\"")),
        }
    }

    /// `[[value, ts], ...]`.
    fn datapoints(&mut self) -> Result<Vec<(i64, Option<f64>)>, JsonError> {
        self.expect(b'[')?;
        let mut points = Vec::new();
        if self.eat(b']')? {
            return Ok(points);
        }
        loop {
            self.expect(b'[')?;
            let value = if self.peek()? == b'n' { self.literal(b"null").map(|()| None)? } else { Some(self.number()?) };
            self.expect(b',')?;
            let ts = self.number()?;
            if !(ts.fract() == 0.0 && ts.abs() < 9.0e15) {
                return Err(self.error("a timestamp that is not a whole number of seconds"));
            }
            if !self.eat(b']')? {
                return Err(self.error("a datapoint that is not [value, timestamp]"));
            }
            // Whole and within ±9e15: exactly an i64.
            points.push((ts as i64, value));
            if self.eat(b']')? {
                return Ok(points);
            }
            self.expect(b',')?;
        }
    }

    /// Skips one value of any kind; `depth` is the nesting it is at.
    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > DEPTH_MAX {
            return Err(self.error("nested too deeply"));
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let close = if self.input[self.pos] == b'{' { b'}' } else { b']' };
                let object = close == b'}';
                self.pos += 1;
                if self.eat(close)? {
                    return Ok(());
                }
                loop {
                    if object {
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    if self.eat(close)? {
                        return Ok(());
                    }
                    self.expect(b',')?;
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        self.skip_ws();
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("unknown literal"))
        }
    }

    /// A JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<f64, JsonError> {
        self.skip_ws();
        let start = self.pos;
        let digits = |r: &mut Self| {
            let from = r.pos;
            while r.input.get(r.pos).is_some_and(u8::is_ascii_digit) {
                r.pos += 1;
            }
            r.pos - from
        };
        if self.input.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n_int = digits(self);
        if n_int == 0 || (n_int > 1 && self.input[int_start] == b'0') {
            self.pos = start;
            return Err(self.error("expected a number"));
        }
        if self.input.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.error("no digits after the decimal point"));
            }
        }
        if matches!(self.input.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.input.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("no digits in the exponent"));
            }
        }
        // Only ASCII digits, signs, '.' and 'e' were consumed: valid UTF-8 and a valid Rust float.
        std::str::from_utf8(&self.input[start..self.pos])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| self.error("expected a number"))
    }

    /// A string, escapes decoded.
    fn string(&mut self) -> Result<String, JsonError> {
        if self.peek()? != b'"' {
            return Err(self.error("expected a string"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.input.get(self.pos) else { return Err(self.error("unterminated string")) };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0..=0x1f => return Err(self.error("a control character in a string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("a string that is not UTF-8"))
    }

    /// The escape after a backslash, appended to `out` as UTF-8.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let Some(&b) = self.input.get(self.pos) else { return Err(self.error("unterminated string")) };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = if (0xd800..0xdc00).contains(&first) {
                    // A high surrogate must be followed by an escaped low one.
                    if !self.input[self.pos..].starts_with(b"\\u") {
                        return Err(self.error("a lone surrogate"));
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xdc00..0xe000).contains(&second) {
                        return Err(self.error("a lone surrogate"));
                    }
                    0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                } else {
                    first
                };
                char::from_u32(code).ok_or_else(|| self.error("a lone surrogate"))?
            }
            _ => return Err(self.error("unknown escape")),
        };
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.input.get(self.pos..self.pos + 4).ok_or_else(|| self.error("short \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("bad \\u escape"));
        }
        let code = u32::from_str_radix(text, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn series(target: &str, points: &[(i64, Option<f64>)]) -> RenderedSeries {
        RenderedSeries { target: target.to_owned(), points: points.to_vec() }
    }

    /// Parses `input`, and every prefix of it short of its last bracket (each must fail, never
    /// panic).
    fn check(input: &str, expected: Result<Vec<RenderedSeries>, JsonError>) {
        assert_eq!(parse(input.as_bytes()), expected, "{input}");
        if expected.is_ok() {
            for cut in 0..input.trim_end().len() {
                assert!(parse(&input.as_bytes()[..cut]).is_err(), "prefix {cut} of {input}");
            }
        }
    }

    #[test]
    fn render_answers() {
        check("[]", Ok(vec![]));
        check(
            r#"[{"target":"a.b","tags":{"name":"a.b","k":["x",{"y":null}]},"datapoints":[[1.5,1700000000],[null,1700000010],[-2e3,1700000020]]}]"#,
            Ok(vec![series(
                "a.b",
                &[(1_700_000_000, Some(1.5)), (1_700_000_010, None), (1_700_000_020, Some(-2000.0))],
            )]),
        );
        // Whitespace anywhere, keys in any order, escapes, an empty series, two series.
        check(
            " [ { \"datapoints\" : [ ] , \"target\" : \"a\\\"\\u00e9\\ud83d\\ude00;k=v\\/\" } ,\n{\"target\":\"b\",\"datapoints\":[[0,0]],\"x\":true} ] \n",
            Ok(vec![series("a\"é😀;k=v/", &[]), series("b", &[(0, Some(0.0))])]),
        );
        // graphite-web's infinity, exact doubles, float timestamps that are whole.
        let got = parse(br#"[{"target":"i","datapoints":[[1e9999,1.0],[350.07954202140814,2E1],[-0.0,3]]}]"#).unwrap();
        assert_eq!(got[0].points[0], (1, Some(f64::INFINITY)));
        assert_eq!(got[0].points[1].1.unwrap().to_bits(), 350.079_542_021_408_14f64.to_bits());
        assert_eq!(got[0].points[2], (3, Some(-0.0)));
    }

    #[test]
    fn malformed_answers_are_errors() {
        let deep = format!("[{{\"target\":\"a\",\"datapoints\":[],\"x\":{}1{}}}]", "[".repeat(100), "]".repeat(100));
        for bad in [
            "",
            "{}",
            "[{}]",
            "[{\"target\":\"a\"}]",
            "[{\"target\":1,\"datapoints\":[]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1,2,3]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1,2.5]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1,1e300]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[nan,2]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[01,2]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1.,2]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[-,2]]}]",
            "[{\"target\":\"a\",\"datapoints\":[[1e,2]]}]",
            "[{\"target\":\"a\\q\",\"datapoints\":[]}]",
            "[{\"target\":\"a\\ud800\",\"datapoints\":[]}]",
            "[{\"target\":\"a\\u12\",\"datapoints\":[]}]",
            "[{\"target\":\"a\nb\",\"datapoints\":[]}]",
            "[{\"target\":\"a\",\"datapoints\":[]},]",
            "[{\"target\":\"a\",\"datapoints\":[]}] x",
            "[{\"target\":\"a\",\"datapoints\":[],\"x\":tru}]",
            deep.as_str(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(parse(b"[{\"target\":\"\xff\",\"datapoints\":[]}]").is_err(), "not UTF-8");
        let err = parse(b"[{\"target\":\"a\",\"datapoints\":[[1,x]]}]").unwrap_err();
        assert_eq!(err, JsonError { offset: 32, what: "expected a number" });
    }
}
