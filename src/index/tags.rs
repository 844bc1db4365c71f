//! The tag index: every tagged series (`name;k=v;...`) by its tags, for graphite-web's TagDB
//! queries (`seriesByTag`, `/tags/findSeries`, the autocomplete endpoints).
//!
//! Owns: the series (canonical tagged names, as the writers cache and store them), an inverted
//! index tag → value → series, graphite-web's tag expression grammar and matching rules, and
//! the listings (tags, values with counts). Leaves out: persistence (`tag_log.rs`), who calls
//! it and when (the index thread alone changes it, see `mod.rs`), and canonicalising names
//! (the protocol layer does that before a name reaches a cache).
//!
//! Matching, as graphite-web's `LocalDatabaseTagDB` (its default TagDB) answers it:
//! - an expression is `tag=value`, `tag!=value`, `tag=~regex` or `tag!=~regex` (the tag is
//!   what precedes the first `!` or `=`; neither part may hold `;`);
//! - a regular expression is anchored at the start of the value (`^(` … `)` is put around it
//!   unless it starts with `^`);
//! - an expression that matches the empty value also matches series without the tag; the
//!   others select series that have the tag with a value that matches. At least one expression
//!   must not match the empty value (else the query would list every series): an error;
//! - the metric name is the tag `name`;
//! - the result is sorted by path (byte order).
//!
//! Regular expressions are Rust's `regex` dialect, which reads the common Python `re` syntax
//! but refuses look-around and back-references (a 400 rather than graphite-web's answer).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

/// The largest compiled size of one tag expression's regular expression.
const REGEX_SIZE_MAX: usize = 1 << 20;

/// Why a tag query failed: the client's doing, answered with a 400 and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagError {
    /// An expression is not `tag=v`, `tag!=v`, `tag=~re` or `tag!=~re`.
    BadExpression(String),
    /// Every expression matches the empty value.
    OnlyEmptyMatches,
    /// A regular expression does not compile (or is too big).
    BadRegex {
        /// The expression as given.
        expr: String,
        /// What the regex engine said.
        message: String,
    },
    /// More series match than the caller may take.
    TooManySeries {
        /// The limit the caller gave.
        limit: usize,
    },
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::BadExpression(e) => write!(f, "Invalid tagspec {e}"),
            TagError::OnlyEmptyMatches => write!(f, "At least one tagspec must not match the empty string"),
            TagError::BadRegex { expr, message } => write!(f, "bad regular expression in {expr}: {message}"),
            TagError::TooManySeries { limit } => write!(f, "the tag expressions match more than {limit} series"),
        }
    }
}

impl std::error::Error for TagError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Match,
    NotMatch,
}

/// One parsed tag expression.
#[derive(Debug)]
struct Expr {
    tag: String,
    op: Op,
    /// The value for `=` / `!=`.
    value: String,
    /// The anchored regex for `=~` / `!=~`.
    regex: Option<Regex>,
}

/// A regex anchored at the start of the value as graphite-web anchors it.
pub(crate) fn anchored_regex(spec: &str) -> Result<Regex, regex::Error> {
    let anchored = if spec.starts_with('^') { spec.to_string() } else { format!("^({spec})") };
    RegexBuilder::new(&anchored).size_limit(REGEX_SIZE_MAX).dfa_size_limit(REGEX_SIZE_MAX).build()
}

/// Python's `re.match`: a match that starts at the first character.
fn matches_at_start(regex: &Regex, value: &str) -> bool {
    regex.find(value).is_some_and(|m| m.start() == 0)
}

impl Expr {
    /// graphite-web's `parse_tagspec`: `^([^;!=]+)(!?=~?)([^;]*)$`.
    fn parse(text: &str) -> Result<Expr, TagError> {
        let bad = || TagError::BadExpression(text.to_string());
        let split = text.find(['!', '=', ';']).ok_or_else(bad)?;
        let (tag, rest) = text.split_at(split);
        if tag.is_empty() || rest.starts_with(';') {
            return Err(bad());
        }
        let (op, value) = if let Some(v) = rest.strip_prefix("!=~") {
            (Op::NotMatch, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix("=~") {
            (Op::Match, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Equal, v)
        } else {
            return Err(bad());
        };
        if value.contains(';') {
            return Err(bad());
        }
        let regex = match op {
            Op::Match | Op::NotMatch => Some(
                anchored_regex(value)
                    .map_err(|e| TagError::BadRegex { expr: text.to_string(), message: e.to_string() })?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Expr { tag: tag.to_string(), op, value: value.to_string(), regex })
    }

    /// Whether the expression holds for a series without the tag (value "").
    fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether the expression holds for the tag's `value` ("" when the series lacks it).
    fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Match, Some(re)) => matches_at_start(re, value),
            (Op::NotMatch, Some(re)) => !matches_at_start(re, value),
            (Op::Match | Op::NotMatch, None) => unreachable!("regex operators always carry a regex"),
        }
    }
}

/// The tags of a canonical tagged name: (`name`, metric) then each `k=v`.
pub(crate) fn tags_of(series: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut parts = series.split(';');
    let metric = parts.next().unwrap_or_default();
    std::iter::once(("name", metric)).chain(parts.filter_map(|p| p.split_once('=')))
}

/// The value of `tag` in a canonical tagged name ("" when absent).
fn tag_value<'a>(series: &'a str, tag: &str) -> &'a str {
    tags_of(series).find(|(k, _)| *k == tag).map_or("", |(_, v)| v)
}

/// Series ids, sorted ascending, no duplicates.
type Ids = Vec<u32>;

/// Every tagged series and its inverted index. Changed by the index thread only.
#[derive(Debug, Default)]
pub(crate) struct TagData {
    /// Name of every id ever given; None once deleted (ids are not reused, so that the id
    /// lists stay sorted by appending).
    names: Vec<Option<Arc<str>>>,
    /// Id of every live series. Invariant: `ids[n] == i` iff `names[i] == Some(n)`.
    ids: hashbrown::HashMap<Arc<str>, u32>,
    /// tag → value → ids of the live series with that value. Invariant: no empty map or list
    /// (a tag is listed only while some series has it).
    tags: BTreeMap<Box<str>, BTreeMap<Box<str>, Ids>>,
}

impl TagData {
    /// Live series.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether `series` is live.
    pub(crate) fn contains(&self, series: &str) -> bool {
        self.ids.contains_key(series)
    }

    /// Adds a canonical tagged name; false when it was there already.
    pub(crate) fn insert(&mut self, series: Arc<str>) -> bool {
        if self.ids.contains_key(&series) {
            return false;
        }
        let Ok(id) = u32::try_from(self.names.len()) else { return false };
        for (tag, value) in tags_of(&series) {
            let values = self.tags.entry(Box::from(tag)).or_default();
            let ids = values.entry(Box::from(value)).or_default();
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
        self.names.push(Some(Arc::clone(&series)));
        self.ids.insert(series, id);
        true
    }

    /// Removes a series; false when it was not there.
    pub(crate) fn remove(&mut self, series: &str) -> bool {
        let Some(id) = self.ids.remove(series) else { return false };
        self.names[id as usize] = None;
        for (tag, value) in tags_of(series) {
            let Some(values) = self.tags.get_mut(tag) else { continue };
            if let Some(ids) = values.get_mut(value) {
                if let Ok(at) = ids.binary_search(&id) {
                    ids.remove(at);
                }
                if ids.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.tags.remove(tag);
            }
        }
        true
    }

    /// Every live series, in id order (for compaction).
    pub(crate) fn series(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names.iter().flatten()
    }

    /// The series matching every expression, sorted by path; at most `limit` (more is an
    /// error).
    pub(crate) fn find_series<S: AsRef<str>>(&self, exprs: &[S], limit: usize) -> Result<Vec<String>, TagError> {
        let exprs: Vec<Expr> = exprs.iter().map(|e| Expr::parse(e.as_ref())).collect::<Result<_, _>>()?;
        let (filters, selectors): (Vec<&Expr>, Vec<&Expr>) = exprs.iter().partition(|e| e.matches_empty());
        if selectors.is_empty() {
            return Err(TagError::OnlyEmptyMatches);
        }
        let mut sets: Vec<Ids> = selectors.iter().map(|e| self.selected(e)).collect();
        sets.sort_by_key(Vec::len);
        let mut ids = sets.swap_remove(0);
        for other in &sets {
            ids.retain(|id| other.binary_search(id).is_ok());
        }
        let mut out = Vec::new();
        for id in ids {
            let Some(Some(series)) = self.names.get(id as usize) else { continue };
            if filters.iter().all(|f| f.matches(tag_value(series, &f.tag))) {
                if out.len() == limit {
                    return Err(TagError::TooManySeries { limit });
                }
                out.push(series.to_string());
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Ids of the series having `e.tag` with a value `e` holds for (`e` does not match "").
    fn selected(&self, e: &Expr) -> Ids {
        let Some(values) = self.tags.get(e.tag.as_str()) else { return Ids::new() };
        if e.op == Op::Equal {
            return values.get(e.value.as_str()).cloned().unwrap_or_default();
        }
        let mut ids: Ids =
            values.iter().filter(|(v, _)| e.matches(v)).flat_map(|(_, ids)| ids.iter().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Tag names, sorted, those matching `filter` (anchored regex) only, at most `limit`.
    pub(crate) fn list_tags(&self, filter: Option<&Regex>, limit: Option<usize>) -> Vec<String> {
        self.tags
            .keys()
            .filter(|t| filter.is_none_or(|re| re.is_match(t)))
            .take(limit.unwrap_or(usize::MAX))
            .map(|t| t.to_string())
            .collect()
    }

    /// Whether some series has `tag`.
    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains_key(tag)
    }

    /// The values of `tag` with their series counts, sorted, those matching `filter` only, at
    /// most `limit`.
    pub(crate) fn list_values(&self, tag: &str, filter: Option<&Regex>, limit: Option<usize>) -> Vec<(String, usize)> {
        let Some(values) = self.tags.get(tag) else { return Vec::new() };
        values
            .iter()
            .filter(|(v, _)| filter.is_none_or(|re| re.is_match(v)))
            .take(limit.unwrap_or(usize::MAX))
            .map(|(v, ids)| (v.to_string(), ids.len()))
            .collect()
    }

    /// graphite-web's `auto_complete_tags`: with expressions, the tags (prefix-filtered) of
    /// the series they find, less the tags they name, sorted, at most `limit`.
    pub(crate) fn auto_complete_tags<S: AsRef<str>>(
        &self,
        exprs: &[S],
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError> {
        if exprs.is_empty() {
            let found = self.tags.keys().filter(|t| t.starts_with(prefix)).take(limit);
            return Ok(found.map(|t| t.to_string()).collect());
        }
        let searched: Vec<String> =
            exprs.iter().map(|e| Expr::parse(e.as_ref()).map(|e| e.tag)).collect::<Result<_, _>>()?;
        let mut found = std::collections::BTreeSet::new();
        for series in self.find_series(exprs, usize::MAX)? {
            for (tag, _) in tags_of(&series) {
                if !searched.iter().any(|s| s == tag) && tag.starts_with(prefix) {
                    found.insert(tag.to_string());
                }
            }
        }
        Ok(found.into_iter().take(limit).collect())
    }

    /// graphite-web's `auto_complete_values`: with expressions, the values (prefix-filtered)
    /// of `tag` in the series they find, sorted, at most `limit`.
    pub(crate) fn auto_complete_values<S: AsRef<str>>(
        &self,
        exprs: &[S],
        tag: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, TagError> {
        if exprs.is_empty() {
            let Some(values) = self.tags.get(tag) else { return Ok(Vec::new()) };
            let found = values.keys().filter(|v| v.starts_with(prefix)).take(limit);
            return Ok(found.map(|v| v.to_string()).collect());
        }
        let mut all: Vec<String> = exprs.iter().map(|e| e.as_ref().to_string()).collect();
        all.push(format!("{tag}!="));
        let mut found = std::collections::BTreeSet::new();
        for series in self.find_series(&all, usize::MAX)? {
            let value = tag_value(&series, tag);
            if value.starts_with(prefix) {
                found.insert(value.to_string());
            }
        }
        Ok(found.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(names: &[&str]) -> TagData {
        let mut d = TagData::default();
        for n in names {
            d.insert(Arc::from(*n));
        }
        d
    }

    const SERIES: &[&str] = &[
        "cpu.load;dc=east;host=a",
        "cpu.load;dc=west;host=b",
        "cpu.load;host=c",
        "disk.used;dc=east;host=a;mount=/",
        "mem.free;dc=east;host=b;rack=r1=x",
    ];

    fn check(exprs: &[&str], want: Result<&[&str], TagError>) {
        let got = data(SERIES).find_series(exprs, 100);
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{exprs:?}");
    }

    #[test]
    fn expressions_select_as_graphite_web() {
        check(&["name=cpu.load"], Ok(&SERIES[..3]));
        check(&["name=cpu.load", "dc=east"], Ok(&SERIES[..1]));
        // != with a value matches series without the tag too.
        check(&["name=cpu.load", "dc!=east"], Ok(&[SERIES[1], SERIES[2]]));
        // = with an empty value: series without the tag.
        check(&["name=cpu.load", "dc="], Ok(&[SERIES[2]]));
        // != with an empty value: series with the tag, whatever its value.
        check(&["dc!="], Ok(&[SERIES[0], SERIES[1], SERIES[3], SERIES[4]]));
        // Regexes are anchored at the start, not at the end.
        check(&["name=~cpu"], Ok(&SERIES[..3]));
        check(&["name=~load"], Ok(&[]));
        check(&["name=~.*load"], Ok(&SERIES[..3]));
        check(&["name=~^(disk|mem)"], Ok(&SERIES[3..]));
        // A regex that matches "" also matches series without the tag.
        // ... and, anchored at the start only, every value it matches a prefix of (the empty one).
        check(&["name=cpu.load", "dc=~(east)?"], Ok(&SERIES[..3]));
        check(&["name=cpu.load", "dc=~(east)?$"], Ok(&[SERIES[0], SERIES[2]]));
        check(&["name=cpu.load", "dc!=~e"], Ok(&[SERIES[1], SERIES[2]]));
        // !=~ with a regex matching "": series with the tag not matching.
        check(&["dc!=~w?"], Ok(&[]));
        check(&["dc!=~(w.*)?$"], Ok(&[SERIES[0], SERIES[3], SERIES[4]]));
        // A value may hold '='.
        check(&["rack=r1=x"], Ok(&[SERIES[4]]));
        check(&["host=zzz"], Ok(&[]));
        check(&["nosuchtag=x"], Ok(&[]));
    }

    #[test]
    fn bad_expressions_are_errors() {
        check(&["dc!=east"], Err(TagError::OnlyEmptyMatches));
        check(&["dc="], Err(TagError::OnlyEmptyMatches));
        check(&["name=~.*"], Err(TagError::OnlyEmptyMatches));
        for bad in ["noop", "=x", "a;b=c", "a=b;c", "!=x", "a!x"] {
            check(&[bad], Err(TagError::BadExpression(bad.into())));
        }
        let got = data(SERIES).find_series(&["name=~(a"], 10);
        assert!(matches!(got, Err(TagError::BadRegex { .. })), "{got:?}");
        let got = data(SERIES).find_series(&["name=~(?=a)"], 10);
        assert!(matches!(got, Err(TagError::BadRegex { .. })), "look-ahead is refused: {got:?}");
        assert_eq!(data(SERIES).find_series(&["dc!="], 3), Err(TagError::TooManySeries { limit: 3 }));
    }

    #[test]
    fn removal_keeps_the_listings_live() {
        let mut d = data(SERIES);
        assert_eq!(d.list_tags(None, None), ["dc", "host", "mount", "name", "rack"]);
        assert!(d.remove("disk.used;dc=east;host=a;mount=/"));
        assert!(!d.remove("disk.used;dc=east;host=a;mount=/"));
        assert_eq!(d.list_tags(None, None), ["dc", "host", "name", "rack"]);
        assert_eq!(d.list_values("dc", None, None), [("east".to_string(), 2), ("west".to_string(), 1)]);
        assert_eq!(d.len(), 4);
        assert!(d.insert(Arc::from("disk.used;dc=east;host=a;mount=/")), "a deleted series may come back");
        assert!(!d.insert(Arc::from("disk.used;dc=east;host=a;mount=/")));
        assert_eq!(d.find_series(&["mount=/"], 10).unwrap(), ["disk.used;dc=east;host=a;mount=/"]);
        assert_eq!(d.series().count(), 5);
    }

    #[test]
    fn listings_filter_and_limit() {
        let d = data(SERIES);
        let re = anchored_regex("h|m").unwrap();
        assert_eq!(d.list_tags(Some(&re), None), ["host", "mount"]);
        assert_eq!(d.list_tags(None, Some(2)), ["dc", "host"]);
        assert_eq!(d.list_values("host", Some(&anchored_regex("[ab]").unwrap()), Some(1)), [("a".to_string(), 2)]);
        assert!(d.list_values("nosuch", None, None).is_empty());
    }

    #[test]
    fn auto_complete_as_graphite_web() {
        let d = data(SERIES);
        let none: &[&str] = &[];
        assert_eq!(d.auto_complete_tags(none, "", 100).unwrap(), ["dc", "host", "mount", "name", "rack"]);
        assert_eq!(d.auto_complete_tags(none, "h", 100).unwrap(), ["host"]);
        // With expressions: the tags of the series found, less those searched.
        assert_eq!(d.auto_complete_tags(&["name=cpu.load"], "", 100).unwrap(), ["dc", "host"]);
        assert_eq!(d.auto_complete_tags(&["dc=east"], "", 2).unwrap(), ["host", "mount"]);
        assert_eq!(d.auto_complete_values(none, "dc", "", 100).unwrap(), ["east", "west"]);
        assert_eq!(d.auto_complete_values(none, "host", "b", 100).unwrap(), ["b"]);
        // With expressions: only series having the tag count.
        assert_eq!(d.auto_complete_values(&["name=cpu.load"], "dc", "", 100).unwrap(), ["east", "west"]);
        assert_eq!(d.auto_complete_values(&["name=cpu.load"], "name", "", 100).unwrap(), ["cpu.load"]);
        assert_eq!(d.auto_complete_values(&["dc=east"], "host", "", 1).unwrap(), ["a"]);
        assert!(d.auto_complete_values(&["bad"], "host", "", 1).is_err());
    }
}
