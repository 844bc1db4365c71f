//! A tiny JSON object writer for the report: enough for strings, integers, fixed-point numbers,
//! `null`, arrays of strings and nested objects, and no more. Keys are written in call order.

/// An object under construction; `finish` closes it.
#[derive(Debug)]
pub struct JsonObject {
    /// The text so far: `{` followed by zero or more `"key":value` pairs separated by commas.
    out: String,
    /// No pair written yet.
    empty: bool,
}

impl Default for JsonObject {
    fn default() -> JsonObject {
        JsonObject { out: String::from("{"), empty: true }
    }
}

impl JsonObject {
    /// `"key":"value"`, escaped.
    pub fn str(mut self, key: &str, value: &str) -> JsonObject {
        self.key(key);
        push_string(&mut self.out, value);
        self
    }

    /// `"key":123`.
    pub fn u64(mut self, key: &str, value: u64) -> JsonObject {
        self.key(key);
        self.out.push_str(&value.to_string());
        self
    }

    /// `"key":123`, or `"key":null` for `None`.
    pub fn u64_or_null(mut self, key: &str, value: Option<u64>) -> JsonObject {
        self.key(key);
        match value {
            Some(v) => self.out.push_str(&v.to_string()),
            None => self.out.push_str("null"),
        }
        self
    }

    /// `"key":0.25`: the shortest decimal that reads back as `value` (Rust's `Display` for
    /// `f64`, which never uses an exponent, so it is always a JSON number); `null` for NaN or
    /// infinity.
    pub fn number(mut self, key: &str, value: f64) -> JsonObject {
        self.key(key);
        if value.is_finite() {
            self.out.push_str(&value.to_string());
        } else {
            self.out.push_str("null");
        }
        self
    }

    /// `"key":1.500` with `decimals` digits after the point; `null` for `None`, NaN or infinity
    /// (which JSON cannot express).
    pub fn f64(mut self, key: &str, value: Option<f64>, decimals: usize) -> JsonObject {
        self.key(key);
        match value.filter(|v| v.is_finite()) {
            Some(v) => self.out.push_str(&format!("{v:.decimals$}")),
            None => self.out.push_str("null"),
        }
        self
    }

    /// `"key":true` or `"key":false`.
    pub fn bool(mut self, key: &str, value: bool) -> JsonObject {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// `"key":["a","b"]`.
    pub fn strs(mut self, key: &str, values: &[String]) -> JsonObject {
        self.key(key);
        self.out.push('[');
        for (idx, value) in values.iter().enumerate() {
            if idx > 0 {
                self.out.push(',');
            }
            push_string(&mut self.out, value);
        }
        self.out.push(']');
        self
    }

    /// `"key":{...}`.
    pub fn object(mut self, key: &str, value: JsonObject) -> JsonObject {
        self.key(key);
        self.out.push_str(&value.finish());
        self
    }

    /// The finished object.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_string(&mut self.out, key);
        self.out.push(':');
    }
}

/// Appends `s` as a JSON string literal.
fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let inner = JsonObject::default().u64("n", 3).f64("none", None, 1);
        let text = JsonObject::default()
            .str("s", "a\"b\\c\nd\u{1}é")
            .u64("u", u64::MAX)
            .f64("f", Some(1.0 / 3.0), 3)
            .f64("inf", Some(f64::INFINITY), 3)
            .bool("t", true)
            .u64_or_null("some", Some(7))
            .u64_or_null("none", None)
            .number("n", 0.25)
            .number("nan", f64::NAN)
            .strs("list", &["x".to_owned(), "y".to_owned()])
            .strs("empty", &[])
            .object("o", inner)
            .finish();
        let want = concat!(
            r#"{"s":"a\"b\\c\nd\u0001é","u":18446744073709551615,"f":0.333,"inf":null,"#,
            r#""t":true,"some":7,"none":null,"n":0.25,"nan":null,"list":["x","y"],"empty":[],"o":{"n":3,"none":null}}"#
        );
        assert_eq!(text, want);
        assert_eq!(JsonObject::default().finish(), "{}");
    }
}
