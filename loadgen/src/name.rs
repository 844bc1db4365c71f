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
//! | `{d}` | `m / 10000` (`{h} / 100`): a third level above `{h}`, e.g. a data centre |
//!
//! The default `{prefix}.host{h}.cpu{m}` gives `loadgen.host0.cpu00` ... `loadgen.host99.cpu99`
//! for 10 000 metrics: 100 directories of 100 whisper files each, not one directory of 10 000.
//!
//! Every metric must get its own name, so a template must contain `{i}`, or both `{h}` and `{m}`
//! (`{m}` has a fixed width, which keeps `{h}{m}` unambiguous). Whitespace and control characters
//! are refused anywhere in the template and the prefix: they would split or end a plaintext line.
//!
//! **Tagged names.** A `;` starts Graphite tags (carbon 1.1's `name;tag=value;...`):
//! `{prefix}.cpu{m};host=h{h};dc=dc{d}` names metric 12345 `loadgen.cpu45;host=h123;dc=dc1`.
//! The tags are checked as carbon checks them, once, on the template: every `;`-separated
//! segment after the first must be `key=value` (split at the first `=`) with a key that is not
//! empty and holds no `!` or `^`, and a value that is not empty and does not start with `~`; the key `name` and a key
//! given twice are refused too, so that the server's canonical form of a name ([`canonical`]:
//! the tags sorted) names the same series. Template fields expand to digits only, so what holds
//! for one metric's name holds for every metric's. Nothing else is checked: names are sent as
//! written, tags in the template's order.

use std::fmt;

use crate::decimal::{push_u64, push_u64_padded};

/// Leaves per branch: `{h}` is `m / FANOUT`, `{m}` is `m % FANOUT`.
pub const FANOUT: u64 = 100;

/// `{d}` is `m / GROUP`.
pub const GROUP: u64 = FANOUT * FANOUT;

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
    /// `{d}`.
    Group,
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
    /// A tag segment (after a `;`) that carbon would refuse or that would not name one series;
    /// the segment as it reads for metric 0, and why.
    BadTag(String, &'static str),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::UnknownPlaceholder(p) => {
                write!(f, "unknown template field {{{p}}} (known: {{prefix}} {{i}} {{h}} {{m}} {{d}})")
            }
            NameError::UnclosedBrace => write!(f, "'{{' without a closing '}}'"),
            NameError::StrayCloseBrace => write!(f, "'}}' without an opening '{{'"),
            NameError::BadChar(c) => write!(f, "{c:?} would break the plaintext line"),
            NameError::NotUnique => {
                write!(f, "needs {{i}} or both {{h}} and {{m}} so that every metric has its own name")
            }
            NameError::BadTag(segment, why) => write!(f, "tag {segment:?}: {why}"),
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
        let names = NamePattern { pattern: pattern.to_owned(), prefix: prefix.to_owned(), segments };
        check_tags(&names.render(0))?;
        Ok(names)
    }

    /// Whether the names carry tags (a `;`).
    pub fn is_tagged(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Literal(bytes) if bytes.contains(&b';')))
    }

    /// Appends the name of metric `metric_idx`.
    pub fn write(&self, buf: &mut Vec<u8>, metric_idx: u64) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(bytes) => buf.extend_from_slice(bytes),
                Segment::Index => push_u64(buf, metric_idx),
                Segment::Branch => push_u64(buf, metric_idx / FANOUT),
                Segment::Leaf => push_u64_padded(buf, metric_idx % FANOUT, LEAF_WIDTH),
                Segment::Group => push_u64(buf, metric_idx / GROUP),
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

/// Checks the tags of `name` (one metric's name) as the module documentation says.
fn check_tags(name: &str) -> Result<(), NameError> {
    let Some((metric, tags)) = name.split_once(';') else { return Ok(()) };
    if metric.is_empty() {
        return Err(NameError::BadTag(name.to_owned(), "the name before the first ';' is empty"));
    }
    let mut keys: Vec<&str> = Vec::new();
    for segment in tags.split(';') {
        let bad = |why| Err(NameError::BadTag(segment.to_owned(), why));
        let Some((key, value)) = segment.split_once('=') else { return bad("not key=value") };
        if key.is_empty() || key.contains(['!', '^']) {
            return bad("a key must not be empty or hold '!' or '^'");
        }
        if value.is_empty() || value.starts_with('~') {
            return bad("a value must not be empty or start with '~'");
        }
        if key == "name" {
            return bad("the name tag is the part before the first ';'");
        }
        if keys.contains(&key) {
            return bad("a key given twice");
        }
        keys.push(key);
    }
    Ok(())
}

/// The canonical form of a tagged name, as carbon stores and graphite-web names it: the tag
/// segments sorted (as carbon sorts its `;key=value` strings). A name without tags, or one whose
/// tags are already sorted, comes back borrowed.
pub fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    let Some((metric, tags)) = name.split_once(';') else { return name.into() };
    let mut segments: Vec<&str> = tags.split(';').collect();
    if segments.windows(2).all(|w| w[0] <= w[1]) {
        return name.into();
    }
    segments.sort_unstable();
    let mut out = String::with_capacity(name.len());
    out.push_str(metric);
    for segment in segments {
        out.push(';');
        out.push_str(segment);
    }
    out.into()
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
            "d" => Some(Segment::Group),
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
    fn third_level_and_tags() {
        let pattern = "{prefix}.cpu{m};host=h{h};dc=dc{d}";
        assert_eq!(
            names(pattern, "lg", &[0, 12_345, 1_000_000]),
            ["lg.cpu00;host=h0;dc=dc0", "lg.cpu45;host=h123;dc=dc1", "lg.cpu00;host=h10000;dc=dc100"]
        );
        assert!(NamePattern::parse(pattern, "lg").unwrap().is_tagged());
        assert!(!NamePattern::parse(DEFAULT_PATTERN, "lg").unwrap().is_tagged());
        assert!(NamePattern::parse("{prefix}{i}", "a;k=v").unwrap().is_tagged(), "tags may come from the prefix");
        // Values may hold '=' (carbon splits at the first one), keys and values any other byte.
        assert_eq!(names("m{i};k=a=b;x.y=-_", "", &[3]), ["m3;k=a=b;x.y=-_"]);
    }

    #[test]
    fn canonical_sorts_tags_as_carbon() {
        assert_eq!(canonical("a.b"), "a.b");
        assert_eq!(canonical("a.b;k=v"), "a.b;k=v");
        assert!(matches!(canonical("a.b;a=1;b=2"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(canonical("lg.cpu45;host=h123;dc=dc1"), "lg.cpu45;dc=dc1;host=h123");
        // Sorted as `key=value` strings: '-' (0x2d) sorts before '=' (0x3d).
        assert_eq!(canonical("m;a=1;a-b=2"), "m;a-b=2;a=1");
    }

    #[test]
    fn names_are_unique() {
        for pattern in [DEFAULT_PATTERN, "{h}{m}", "{m}{h}", "x{i}", "c{m};h=h{h};d=d{d}"] {
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
            ("{prefix}.{i};", "p", NameError::BadTag("".into(), "not key=value")),
            ("{prefix}.{i};k", "p", NameError::BadTag("k".into(), "not key=value")),
            ("{prefix}.{i};=v", "p", NameError::BadTag("=v".into(), "a key must not be empty or hold '!' or '^'")),
            ("{i};a!b=v", "p", NameError::BadTag("a!b=v".into(), "a key must not be empty or hold '!' or '^'")),
            ("{i};k=", "p", NameError::BadTag("k=".into(), "a value must not be empty or start with '~'")),
            ("{i};k=~x", "p", NameError::BadTag("k=~x".into(), "a value must not be empty or start with '~'")),
            ("{i};name=x", "p", NameError::BadTag("name=x".into(), "the name tag is the part before the first ';'")),
            ("{i};k=1;k=2", "p", NameError::BadTag("k=2".into(), "a key given twice")),
            (";k=v{i}", "", NameError::BadTag(";k=v0".into(), "the name before the first ';' is empty")),
            // A tag's checks see the prefix substituted.
            ("{prefix}.{i}", "a;b", NameError::BadTag("b.0".into(), "not key=value")),
        ];
        for (pattern, prefix, want) in cases {
            let got = NamePattern::parse(pattern, prefix).err();
            assert_eq!(got.as_ref(), Some(want), "{pattern:?} {prefix:?}");
        }
    }
}
