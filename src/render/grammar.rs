//! Target expressions, as graphite-web's grammar reads them: a path expression (`a.b.*`,
//! `a.{x,y}.c`, `a.b[0-9]`), a call `name(args…)` with positional arguments before keyword
//! ones (`name=value`), and the pipe form `a.b|scale(2)|alias("x")`, which is
//! `alias(scale(a.b, 2), "x")`.
//!
//! Arguments: integers, floats (`1.5`, `1e3`), `true`/`false`, `none`, `inf` (any case), strings
//! in single or double quotes (no escape processing: the quotes are stripped; a backslash or a
//! doubled quote does not end the string), or expressions.
//! A number is a number only when a `,` or `)` (or the end) follows it; `1.foo` is a path.
//! Path characters are every printable character except `( ) { } , . ' " \ |` and white space;
//! a backslash escapes one of those; `{a,b}` groups belong to a path element.
//!
//! Bounded: at most `MAX_TARGET_BYTES` of text and `MAX_DEPTH` nested calls; anything else is a
//! [`ParseError`] naming the position, never a panic.

use std::fmt;

/// Longest target accepted.
pub const MAX_TARGET_BYTES: usize = 64 * 1024;
/// Deepest nesting of calls accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed target expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A path expression, as written (escapes kept, so that the name shows them).
    Path(String),
    /// A function call.
    Call(Call),
    /// An integer argument.
    Int(i64),
    /// A float argument (`inf` too).
    Float(f64),
    /// A quoted string argument, quotes stripped.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `none`.
    None,
}

/// `name(args…, key=value…)`. Two calls are equal when their names and arguments are, however
/// they were spaced (`raw` aside).
#[derive(Debug, Clone)]
pub struct Call {
    /// The function name, as written.
    pub name: String,
    /// Positional arguments.
    pub args: Vec<Expr>,
    /// Keyword arguments, in the order written.
    pub kwargs: Vec<(String, Expr)>,
    /// The call's text as written, from its name to its closing parenthesis (graphite-web's
    /// `call.raw`: `seriesByTag` series carry it as their path expression).
    pub raw: String,
}

impl PartialEq for Call {
    fn eq(&self, other: &Call) -> bool {
        self.name == other.name && self.args == other.args && self.kwargs == other.kwargs
    }
}

/// Why a target does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target at byte {position}: {message}")]
pub struct ParseError {
    /// Byte offset in the target.
    pub position: usize,
    /// What was expected or found.
    pub message: String,
}

/// Parses one target.
pub fn parse(target: &str) -> Result<Expr, ParseError> {
    if target.len() > MAX_TARGET_BYTES {
        return Err(ParseError {
            position: MAX_TARGET_BYTES,
            message: format!("a target may have at most {MAX_TARGET_BYTES} bytes"),
        });
    }
    let mut p = Parser { s: target.as_bytes(), text: target, pos: 0, depth: 0 };
    p.skip_space();
    let expr = p.expression()?;
    p.skip_space();
    if p.pos != p.s.len() {
        return Err(p.error(&format!("unexpected {:?}", p.rest_preview())));
    }
    Ok(expr)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    /// Next byte to read; `pos ≤ s.len()`.
    pos: usize,
    /// Calls open around `pos`; `depth ≤ MAX_DEPTH`.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: &str) -> ParseError {
        ParseError { position: self.pos, message: message.to_string() }
    }

    fn rest_preview(&self) -> String {
        self.text[self.pos..].chars().take(20).collect()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// expression := term ('|' call)*
    fn expression(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.term()?;
        loop {
            self.skip_space();
            if self.peek() != Some(b'|') {
                return Ok(expr);
            }
            self.pos += 1;
            self.skip_space();
            let start = self.pos;
            let Some(Expr::Call(mut call)) = self.call_if_any()? else {
                self.pos = start;
                return Err(self.error("a function call must follow '|'"));
            };
            call.args.insert(0, expr);
            expr = Expr::Call(call);
        }
    }

    /// term := call | path
    fn term(&mut self) -> Result<Expr, ParseError> {
        if let Some(call) = self.call_if_any()? {
            return Ok(call);
        }
        let path = self.path()?;
        if path.is_empty() {
            return Err(self.error(if self.pos == self.s.len() {
                "a target is missing"
            } else {
                "expected a metric path or a function call"
            }));
        }
        Ok(Expr::Path(path))
    }

    /// A call if an identifier followed by '(' is next; None (position unchanged) otherwise.
    fn call_if_any(&mut self) -> Result<Option<Expr>, ParseError> {
        let start = self.pos;
        let ident = self.identifier();
        if ident.is_empty() || self.peek() != Some(b'(') {
            self.pos = start;
            return Ok(None);
        }
        if self.depth == MAX_DEPTH {
            return Err(self.error(&format!("calls nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        self.pos += 1;
        let mut call = Call { name: ident.to_string(), args: Vec::new(), kwargs: Vec::new(), raw: String::new() };
        self.skip_space();
        if self.peek() == Some(b')') {
            self.pos += 1;
            self.depth -= 1;
            call.raw = self.text[start..self.pos].to_string();
            return Ok(Some(Expr::Call(call)));
        }
        loop {
            self.skip_space();
            if let Some((key, value)) = self.keyword_argument()? {
                call.kwargs.push((key, value));
            } else if !call.kwargs.is_empty() {
                return Err(self.error("positional argument after a keyword argument"));
            } else {
                call.args.push(self.argument()?);
            }
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    self.depth -= 1;
                    call.raw = self.text[start..self.pos].to_string();
                    return Ok(Some(Expr::Call(call)));
                }
                Some(_) => return Err(self.error(&format!("expected ',' or ')', found {:?}", self.rest_preview()))),
                None => return Err(self.error(&format!("unclosed call to {}(", call.name))),
            }
        }
    }

    fn identifier(&mut self) -> &'a str {
        let start = self.pos;
        if self.peek().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_') {
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                self.pos += 1;
            }
        }
        &self.text[start..self.pos]
    }

    /// `name=value` if next (position unchanged otherwise). `==` is not a keyword.
    fn keyword_argument(&mut self) -> Result<Option<(String, Expr)>, ParseError> {
        let start = self.pos;
        let key = self.identifier().to_string();
        self.skip_space();
        if key.is_empty() || self.peek() != Some(b'=') || self.s.get(self.pos + 1) == Some(&b'=') {
            self.pos = start;
            return Ok(None);
        }
        self.pos += 1;
        self.skip_space();
        Ok(Some((key, self.argument()?)))
    }

    fn argument(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => return self.string(q),
            None => return Err(self.error("an argument is missing")),
            _ => {}
        }
        if let Some(literal) = self.literal() {
            return Ok(literal);
        }
        self.expression()
    }

    /// A quoted string as pyparsing's `quotedString` reads it: a backslash and the character
    /// after it, or the quote doubled, do not end it, and stay in the text as written
    /// (`'it\'s'` is `it\'s`: graphite-web strips the quotes and processes no escape).
    fn string(&mut self, quote: u8) -> Result<Expr, ParseError> {
        let start = self.pos;
        let mut end = start + 1;
        loop {
            match self.s.get(end) {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                Some(b'\\') => end += 2,
                Some(c) if *c == quote && self.s.get(end + 1) == Some(&quote) => end += 2,
                Some(c) if *c == quote => break,
                Some(_) => end += 1,
            }
        }
        // `end` is at an ASCII quote, so a char boundary.
        let text = self.text[start + 1..end].to_string();
        self.pos = end + 1;
        Ok(Expr::Str(text))
    }

    /// A number, boolean, `none` or `inf` that ends where an argument ends (`,` `)` or the end,
    /// white space allowed before them); None (position unchanged) otherwise.
    fn literal(&mut self) -> Option<Expr> {
        let start = self.pos;
        let len = self.s[start..]
            .iter()
            .position(|c| matches!(c, b',' | b')' | b'|') || c.is_ascii_whitespace())
            .unwrap_or(self.s.len() - start);
        let word = &self.text[start..start + len];
        let mut after = start + len;
        while self.s.get(after).is_some_and(|c| c.is_ascii_whitespace()) {
            after += 1;
        }
        if !matches!(self.s.get(after), None | Some(b',' | b')')) {
            return None;
        }
        let expr = match word.to_ascii_lowercase().as_str() {
            "true" => Expr::Bool(true),
            "false" => Expr::Bool(false),
            "none" => Expr::None,
            "inf" | "+inf" => Expr::Float(f64::INFINITY),
            "-inf" => Expr::Float(f64::NEG_INFINITY),
            _ => number(word)?,
        };
        self.pos = start + len;
        Some(expr)
    }

    /// A path expression: path characters, backslash escapes and `{…}` groups.
    fn path(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let mut braces = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'\\' => {
                    if self.s.len() == self.pos + 1 {
                        return Err(self.error("a backslash must escape a character"));
                    }
                    self.pos += 2;
                }
                b'{' => {
                    braces += 1;
                    self.pos += 1;
                }
                b'}' if braces > 0 => {
                    braces -= 1;
                    self.pos += 1;
                }
                b',' if braces > 0 => self.pos += 1,
                b'.' => self.pos += 1,
                b'(' | b')' | b'}' | b',' | b'\'' | b'"' | b'|' => break,
                c if c.is_ascii_whitespace() || c.is_ascii_control() => break,
                _ => {
                    // Any other character, multi-byte UTF-8 included.
                    let ch_len = self.text[self.pos..].chars().next().map_or(1, char::len_utf8);
                    self.pos += ch_len;
                }
            }
        }
        if braces > 0 {
            return Err(self.error("unclosed '{' in a path"));
        }
        Ok(self.text[start..self.pos].to_string())
    }
}

/// An integer or float literal as graphite-web's grammar reads it.
fn number(word: &str) -> Option<Expr> {
    let body = word.strip_prefix(['-', '+']).unwrap_or(word);
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if body.bytes().all(|c| c.is_ascii_digit()) {
        return word.parse::<i64>().ok().map(Expr::Int).or_else(|| word.parse::<f64>().ok().map(Expr::Float));
    }
    let valid = body.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !valid {
        return None;
    }
    word.parse::<f64>().ok().filter(|v| v.is_finite()).map(Expr::Float)
}

impl fmt::Display for Expr {
    /// The expression written back as graphite-web would name it: paths as written, strings in
    /// double quotes, numbers as Python prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Path(p) => f.write_str(p),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Float(v) => f.write_str(&crate::pyfmt::py_repr(*v)),
            Expr::Str(s) => write!(f, "\"{s}\""),
            Expr::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Expr::None => f.write_str("None"),
            Expr::Call(c) => {
                write!(f, "{}(", c.name)?;
                let mut first = true;
                for a in &c.args {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{a}")?;
                }
                for (k, v) in &c.kwargs {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{k}={v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call(Call { name: name.into(), args, kwargs: Vec::new(), raw: String::new() })
    }

    fn path(p: &str) -> Expr {
        Expr::Path(p.into())
    }

    fn check(target: &str, want: Expr) {
        assert_eq!(parse(target), Ok(want), "{target}");
    }

    #[test]
    fn paths_calls_and_literals() {
        check("a.b.c", path("a.b.c"));
        check("a.{b,c}.d*", path("a.{b,c}.d*"));
        check("a.b[0-9]?.x", path("a.b[0-9]?.x"));
        check("servers.web-01:8080.cpu;env=prod", path("servers.web-01:8080.cpu;env=prod"));
        check("sumSeries(a.*, b)", call("sumSeries", vec![path("a.*"), path("b")]));
        check(
            "scale(a, 2, 1.5, -3, 1e3, true, None, inf)",
            call(
                "scale",
                vec![
                    path("a"),
                    Expr::Int(2),
                    Expr::Float(1.5),
                    Expr::Int(-3),
                    Expr::Float(1000.0),
                    Expr::Bool(true),
                    Expr::None,
                    Expr::Float(f64::INFINITY),
                ],
            ),
        );
        check("alias(a, 'x \"y\"')", call("alias", vec![path("a"), Expr::Str("x \"y\"".into())]));
        check("constantLine(100)", call("constantLine", vec![Expr::Int(100)]));
        check("f()", call("f", vec![]));
        check("a.1.b", path("a.1.b"));
        check("f(1.b)", call("f", vec![path("1.b")]));
        check("f( a , 2 )", call("f", vec![path("a"), Expr::Int(2)]));
    }

    #[test]
    fn an_escaped_or_doubled_quote_does_not_end_a_string() {
        // As pyparsing's quotedString: kept as written (graphite-web names `alias(a,'it\'s')`
        // `it\'s`); once a 400 here.
        let s = |text: &str| Expr::Str(text.into());
        check(r"alias(a, 'it\'s')", call("alias", vec![path("a"), s(r"it\'s")]));
        check(r#"f("a\"b", 'it''s', '', '\\')"#, call("f", vec![s(r#"a\"b"#), s("it''s"), s(""), s(r"\\")]));
        check(r"aliasSub(a, '(\d+)', '\1')", call("aliasSub", vec![path("a"), s(r"(\d+)"), s(r"\1")]));
        assert!(parse(r"alias(a, 'x\')").is_err(), "the backslash takes the closing quote");
    }

    #[test]
    fn keyword_arguments_and_pipes() {
        let want = Expr::Call(Call {
            name: "movingAverage".into(),
            args: vec![path("a.b"), Expr::Str("5min".into())],
            kwargs: vec![("xFilesFactor".into(), Expr::Float(0.5))],
            raw: String::new(),
        });
        check("movingAverage(a.b, '5min', xFilesFactor=0.5)", want);
        check(
            "a.b|scale(2)|alias('x')",
            call("alias", vec![call("scale", vec![path("a.b"), Expr::Int(2)]), Expr::Str("x".into())]),
        );
        check(
            "aliasSub(sumSeries(a.*), '(^.*$)', '\\1 A')",
            call(
                "aliasSub",
                vec![call("sumSeries", vec![path("a.*")]), Expr::Str("(^.*$)".into()), Expr::Str("\\1 A".into())],
            ),
        );
    }

    #[test]
    fn calls_keep_their_text_as_written() {
        let raw = |e: &Expr| match e {
            Expr::Call(c) => c.raw.clone(),
            other => panic!("{other:?}"),
        };
        let target = "sumSeries( seriesByTag('name=a', \"dc=x\") )";
        let Ok(Expr::Call(outer)) = parse(target) else { panic!() };
        assert_eq!(outer.raw, target);
        assert_eq!(raw(&outer.args[0]), "seriesByTag('name=a', \"dc=x\")");
        assert_eq!(raw(&parse("a|f()").unwrap()), "f()");
    }

    #[test]
    fn bad_targets_are_errors_with_positions() {
        for bad in ["", "f(", "f(a", "f(a,)", "f(x=1, a)", "a.{b", "'x", "f(a) junk", "|scale(2)", "a|b", "f(a))"] {
            assert!(parse(bad).is_err(), "{bad:?} must not parse");
        }
        let deep = format!("{}a{}", "f(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        let ok_deep = format!("{}a{}", "f(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok_deep).is_ok());
        assert!(parse(&"a".repeat(MAX_TARGET_BYTES + 1)).is_err());
    }

    #[test]
    fn expressions_print_back_as_graphite_names_them() {
        let e = parse("scale(a.b, 2.0, 'x', true)").unwrap();
        assert_eq!(e.to_string(), "scale(a.b,2.0,\"x\",True)");
    }
}
