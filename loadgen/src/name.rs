//! Metric-name templates (`--name-pattern`): from a metric index to a dotted Graphite name.
//!
//! A template is literal text with template fields in braces:
//!
//! | template field | expands to |
//! |---|---|
//! | `{prefix}` | the `--prefix` text |
//! | `{i}` | the metric index `m`, `0 ..= metrics - 1` |
//! | `{h}` | `m / 100`: the branch, so no directory holds more than 100 leaves |
//! | `{m}` | `m % 100`, zero-padded to two digits (`00` ..= `99`) |
//!
//! The default `{prefix}.host{h}.cpu{m}` gives `loadgen.host0.cpu00` ... `loadgen.host99.cpu99`
//! for 10 000 metrics: 100 directories of 100 whisper files each, not one directory of 10 000.
//!
//! Every metric must get its own name, so a template must contain `{i}`, or both `{h}` and `{m}`
//! (`{m}` has a fixed width, which keeps `{h}{m}` unambiguous). Whitespace and control characters
//! are refused anywhere in the template and the prefix: they would split or end a plaintext line.
//! Nothing else is checked: names are sent as written.

use std::fmt;

use crate::decimal::{push_u64, push_u64_padded};

/// Leaves per branch: `{h}` is `m / FANOUT`, `{m}` is `m % FANOUT`.
pub const FANOUT: u64 = 100;

/// Digits of `{m}`: enough for `FANOUT - 1`, and fixed so names sort and never collide.
const LEAF_WIDTH: usize = 2;

const _: () = assert!(FANOUT == 10u64.pow(LEAF_WIDTH as u32));

/// The default `--name-pattern`.
pub const DEFAULT_PATTERN: &str = "{prefix}.host{h}.cpu{m}";

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Literal bytes, with `{prefix}` already substituted.
    Literal(Vec<u8>),
    /// `{i}`.
    Index,
    /// `{h}`.
    Branch,
    /// `{m}`.
    Leaf,
}

/// A parsed, validated name template.
#[derive(Debug, Clone)]
pub struct NamePattern {
    /// The template as given, for reports.
    pattern: String,
    /// The prefix as given, for reports.
    prefix: String,
    /// Non-empty; adjacent literals merged.
    segments: Vec<Segment>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// `{something}` that is not one of the template fields.
    UnknownPlaceholder(String),
    /// A `{` with no `}` after it.
    UnclosedBrace,
    /// A `}` with no `{` before it.
    StrayCloseBrace,
    /// Whitespace or a control character in the template or the prefix.
    BadChar(char),
    /// Neither `{i}` nor both `{h}` and `{m}`: metrics would share names.
    NotUnique,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::UnknownPlaceholder(p) => {
                write!(f, "unknown template field {{{p}}} (known: {{prefix}} {{i}} {{h}} {{m}})")
            }
            NameError::UnclosedBrace => write!(f, "'{{' without a closing '}}'"),
            NameError::StrayCloseBrace => write!(f, "'}}' without an opening '{{'"),
            NameError::BadChar(c) => write!(f, "{c:?} would break the plaintext line"),
            NameError::NotUnique => {
                write!(f, "needs {{i}} or both {{h}} and {{m}} so that every metric has its own name")
            }
        }
    }
}

impl std::error::Error for NameError {}

impl NamePattern {
    /// Parses `pattern`, substituting `prefix` for `{prefix}`.
    pub fn parse(pattern: &str, prefix: &str) -> Result<NamePattern, NameError> {
        check_chars(pattern)?;
        check_chars(prefix)?;
        let segments = parse_segments(pattern, prefix)?;
        let has = |s: Segment| segments.contains(&s);
        if !(has(Segment::Index) || (has(Segment::Branch) && has(Segment::Leaf))) {
            return Err(NameError::NotUnique);
        }
        Ok(NamePattern { pattern: pattern.to_owned(), prefix: prefix.to_owned(), segments })
    }

    /// Appends the name of metric `metric_idx`.
    pub fn write(&self, buf: &mut Vec<u8>, metric_idx: u64) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(bytes) => buf.extend_from_slice(bytes),
                Segment::Index => push_u64(buf, metric_idx),
                Segment::Branch => push_u64(buf, metric_idx / FANOUT),
                Segment::Leaf => push_u64_padded(buf, metric_idx % FANOUT, LEAF_WIDTH),
            }
        }
    }

    /// The name of metric `metric_idx` as a `String`.
    pub fn render(&self, metric_idx: u64) -> String {
        let mut buf = Vec::new();
        self.write(&mut buf, metric_idx);
        // Template and prefix are `str`s and digits are ASCII, so this never replaces anything.
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The template as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The prefix as given.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

fn check_chars(text: &str) -> Result<(), NameError> {
    match text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

fn parse_segments(pattern: &str, prefix: &str) -> Result<Vec<Segment>, NameError> {
    let mut segments = Vec::new();
    let mut literal = Vec::new();
    let mut rest = pattern;
    while let Some(brace) = rest.find(['{', '}']) {
        literal.extend_from_slice(&rest.as_bytes()[..brace]);
        if rest.as_bytes()[brace] == b'}' {
            return Err(NameError::StrayCloseBrace);
        }
        let inside = &rest[brace + 1..];
        let close = inside.find('}').ok_or(NameError::UnclosedBrace)?;
        let segment = match &inside[..close] {
            "prefix" => None,
            "i" => Some(Segment::Index),
            "h" => Some(Segment::Branch),
            "m" => Some(Segment::Leaf),
            other => return Err(NameError::UnknownPlaceholder(other.to_owned())),
        };
        match segment {
            None => literal.extend_from_slice(prefix.as_bytes()),
            Some(segment) => {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(segment);
            }
        }
        rest = &inside[close + 1..];
    }
    literal.extend_from_slice(rest.as_bytes());
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn names(pattern: &str, prefix: &str, indexes: &[u64]) -> Vec<String> {
        let p = NamePattern::parse(pattern, prefix).unwrap();
        indexes.iter().map(|&m| p.render(m)).collect()
    }

    #[test]
    fn default_pattern_splits_the_index_into_a_tree() {
        assert_eq!(
            names(DEFAULT_PATTERN, "loadgen", &[0, 7, 99, 100, 123, 9_999, 123_456]),
            [
                "loadgen.host0.cpu00",
                "loadgen.host0.cpu07",
                "loadgen.host0.cpu99",
                "loadgen.host1.cpu00",
                "loadgen.host1.cpu23",
                "loadgen.host99.cpu99",
                "loadgen.host1234.cpu56",
            ]
        );
    }

    #[test]
    fn other_template_fields() {
        assert_eq!(names("{i}", "x", &[0, 42]), ["0", "42"]);
        assert_eq!(names("a.{prefix}.{prefix}.m{i}", "p.q", &[5]), ["a.p.q.p.q.m5"]);
        assert_eq!(names("{m}{h}", "", &[123]), ["231"]);
    }

    #[test]
    fn names_are_unique() {
        for pattern in [DEFAULT_PATTERN, "{h}{m}", "{m}{h}", "x{i}"] {
            let p = NamePattern::parse(pattern, "lg").unwrap();
            let all: HashSet<String> = (0..20_000).map(|m| p.render(m)).collect();
            assert_eq!(all.len(), 20_000, "{pattern}");
        }
    }

    #[test]
    fn refused_templates() {
        let cases: &[(&str, &str, NameError)] = &[
            ("{prefix}.{x}", "p", NameError::UnknownPlaceholder("x".into())),
            ("{prefix}.{i", "p", NameError::UnclosedBrace),
            ("{prefix}.i}", "p", NameError::StrayCloseBrace),
            ("{prefix} {i}", "p", NameError::BadChar(' ')),
            ("{prefix}.{i}", "a\nb", NameError::BadChar('\n')),
            ("{prefix}.{i}\t", "p", NameError::BadChar('\t')),
            ("{prefix}.{h}", "p", NameError::NotUnique),
            ("{prefix}.{m}", "p", NameError::NotUnique),
            ("{prefix}", "p", NameError::NotUnique),
        ];
        for (pattern, prefix, want) in cases {
            let got = NamePattern::parse(pattern, prefix).err();
            assert_eq!(got.as_ref(), Some(want), "{pattern:?} {prefix:?}");
        }
    }
}
