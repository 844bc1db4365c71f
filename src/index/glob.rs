//! graphite-web's glob grammar for metric paths, compiled once per query.
//!
//! A pattern is split at every `.` into elements, and each element is matched against one node
//! name, so no wildcard ever crosses a `.`. Within an element (graphite-web's
//! `finders/__init__.py` `expand_braces` and Python's `fnmatch`, which `finders/standard.py`
//! applies per directory entry):
//!
//! - `{a,b,c}` are alternatives, nested groups included (`{a,{b,c}d}` is `a`, `bd`, `cd`). A
//!   brace without a partner is a literal character, paired as graphite-web's innermost-first
//!   rewriting pairs them (`{a,{b,c}` is the two literals `{a,b` and `{a,c`), and a `,` outside
//!   any group is literal. Every element is expanded into its distinct alternatives;
//! - `*` matches any run of characters (none included), `?` exactly one character (a Unicode
//!   scalar value, as Python's `str`);
//! - `[abc]`, `[a-z0-9]` match one character of the set; `-` first or last is literal, a `]`
//!   right after `[` (or `[!`) is a member, an inverted range (`[z-a]`) matches nothing, `[!x]`
//!   is the negation, and `^` is an ordinary member (`[^a]` matches `^` or `a`). A `[` with no
//!   closing `]` is literal;
//! - an alternative that is exactly `**` matches any number of levels: zero or more in the
//!   middle of a pattern (`a.**.c` matches `a.c` and `a.x.y.c`), one or more at its end (`a.**`
//!   is everything below `a`, graphite-web's "terminal globstar" rewritten to `**.*`);
//! - matching is case-sensitive.
//!
//! One deliberate difference: a backslash escapes the character after it (`\*` is a literal
//! `*`, `\{` a literal brace, `\,` a literal comma), and a trailing lone backslash is dropped.
//! graphite-web instead deletes every backslash before matching, so `b\*` there matches `bar`
//! too and reports it under the name `b*`; here it matches only a node literally named `b*`,
//! which is what the escape is for. An empty element (`a..b`) matches nothing.
//!
//! Costs are bounded before any work is done (see the constants): a pattern is at most
//! [`MAX_PATTERN_BYTES`], its elements expand to at most [`MAX_ALTERNATIVES`] alternatives of at
//! most [`MAX_EXPANDED_CHARS`] characters in all, and braces nest at most [`MAX_BRACE_DEPTH`]
//! deep; the counts are computed from the parsed braces, so `{a,b}{a,b}...` is refused before it
//! is expanded. Matching a compiled glob against a name is the classic single-backtrack
//! wildcard algorithm: O(name × glob) at worst, no regex, no allocation.

use std::fmt;

/// The longest pattern accepted, in bytes (the longest metric name, `PATH_MAX`).
pub const MAX_PATTERN_BYTES: usize = 4096;
/// The most brace alternatives a whole pattern may expand to (the sum over its elements).
pub const MAX_ALTERNATIVES: usize = 10_000;
/// The most characters the expanded alternatives of a pattern may hold, all together.
pub const MAX_EXPANDED_CHARS: usize = 1 << 20;
/// The deepest nesting of brace groups.
pub const MAX_BRACE_DEPTH: usize = 16;

/// Why a pattern was refused. The caller answers a request with it as a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// The pattern is empty.
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_BYTES`].
    TooLong {
        /// Its length in bytes.
        len_bytes: usize,
    },
    /// Its braces expand to more than [`MAX_ALTERNATIVES`] alternatives.
    TooManyAlternatives,
    /// Its expanded alternatives hold more than [`MAX_EXPANDED_CHARS`] characters.
    ExpansionTooLong,
    /// Brace groups nest deeper than [`MAX_BRACE_DEPTH`].
    BracesTooDeep,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::Empty => f.write_str("empty pattern"),
            GlobError::TooLong { len_bytes } => {
                write!(f, "pattern of {len_bytes} bytes, longer than {MAX_PATTERN_BYTES}")
            }
            GlobError::TooManyAlternatives => {
                write!(f, "pattern expands to more than {MAX_ALTERNATIVES} brace alternatives")
            }
            GlobError::ExpansionTooLong => {
                write!(f, "pattern's brace alternatives hold more than {MAX_EXPANDED_CHARS} characters")
            }
            GlobError::BracesTooDeep => write!(f, "braces nested deeper than {MAX_BRACE_DEPTH}"),
        }
    }
}

impl std::error::Error for GlobError {}

/// A compiled pattern: one compiled element per dot-separated part.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Never empty; consecutive elements that are only `**` are merged into one.
    elements: Vec<Element>,
    /// Whether one tree node can be reached in the same element by several routes: two
    /// globstars, or a globstar element with other alternatives. Only then does a search need
    /// to remember where it has been.
    revisits: bool,
}

impl Pattern {
    /// Compiles `pattern`.
    pub fn parse(pattern: &str) -> Result<Pattern, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(GlobError::TooLong { len_bytes: pattern.len() });
        }
        let mut budget = Budget { alternatives: MAX_ALTERNATIVES, chars: MAX_EXPANDED_CHARS };
        let mut elements: Vec<Element> = Vec::new();
        for text in pattern.split('.') {
            let element = Element::parse(text, &mut budget)?;
            // `**.**` means what `**` means, in the middle and at the end.
            let repeated_globstar =
                element.is_only_globstar() && elements.last().is_some_and(Element::is_only_globstar);
            if !repeated_globstar {
                elements.push(element);
            }
        }
        let n_globstars = elements.iter().filter(|e| e.globstar).count();
        let revisits = n_globstars >= 2 || elements.iter().any(|e| e.globstar && e.has_alternatives());
        Ok(Pattern { elements, revisits })
    }

    /// The elements, in order; never empty.
    pub(crate) fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// Whether a search must remember the (node, element) states it has visited.
    pub(crate) fn revisits(&self) -> bool {
        self.revisits
    }

    /// Whether the whole dotted `name` matches, with the meaning find gives the pattern: a path
    /// the pattern reaches, leaf or branch. A small NFA over elements.
    pub fn matches(&self, name: &str) -> bool {
        let n = self.elements.len();
        let mut current = vec![false; n + 1];
        current[0] = true;
        self.follow_globstars(&mut current);
        for part in name.split('.') {
            let mut next = vec![false; n + 1];
            for (i, element) in self.elements.iter().enumerate() {
                if !current[i] {
                    continue;
                }
                if element.matches(part) {
                    next[i + 1] = true;
                }
                if element.globstar {
                    // One more level inside the globstar; at the end that level may be the last.
                    next[i] = true;
                    if i + 1 == n {
                        next[n] = true;
                    }
                }
            }
            self.follow_globstars(&mut next);
            current = next;
        }
        current[n]
    }

    /// Lets every state at a globstar in the middle go on without consuming a level.
    fn follow_globstars(&self, states: &mut [bool]) {
        let n = self.elements.len();
        for i in 0..n {
            if states[i] && self.elements[i].globstar && i + 1 < n {
                states[i + 1] = true;
            }
        }
    }
}

/// What is left of a pattern's expansion budget.
struct Budget {
    alternatives: usize,
    chars: usize,
}

/// One element of a pattern, compiled: the union of its brace alternatives.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// One alternative is exactly `**`.
    pub(crate) globstar: bool,
    /// One alternative matches every name (`*`).
    pub(crate) any: bool,
    /// The alternatives without wildcards, unescaped; sorted, distinct.
    pub(crate) literals: Vec<Box<str>>,
    /// The other alternatives.
    globs: Vec<Glob>,
}

impl Element {
    fn parse(text: &str, budget: &mut Budget) -> Result<Element, GlobError> {
        let units = unescape(text);
        let alternatives = expand_braces(&units, budget)?;
        let mut element = Element { globstar: false, any: false, literals: Vec::new(), globs: Vec::new() };
        for alternative in &alternatives {
            if alternative.as_slice() == [Unit::plain('*'), Unit::plain('*')] {
                element.globstar = true;
                continue;
            }
            let tokens = tokenize(alternative);
            match tokens.as_slice() {
                [] => element.literals.push(Box::from("")),
                [Token::Literal(text)] => element.literals.push(text.clone()),
                [Token::Star] => element.any = true,
                _ => element.globs.push(Glob { tokens: tokens.into_boxed_slice() }),
            }
        }
        element.literals.sort_unstable();
        element.literals.dedup();
        Ok(element)
    }

    /// Whether this element is `**` and nothing else.
    fn is_only_globstar(&self) -> bool {
        self.globstar && !self.has_alternatives()
    }

    /// Whether it has alternatives other than `**`.
    fn has_alternatives(&self) -> bool {
        self.any || !self.literals.is_empty() || !self.globs.is_empty()
    }

    /// Whether only exact names can match (so a search looks them up instead of scanning).
    pub(crate) fn is_literal_only(&self) -> bool {
        !self.any && self.globs.is_empty()
    }

    /// Whether one node name matches one of the alternatives other than `**`.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.any
            || self.literals.binary_search_by(|literal| (**literal).cmp(name)).is_ok()
            || self.globs.iter().any(|glob| glob.matches(name))
    }
}

/// One character of an element after backslash processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Unit {
    c: char,
    /// Written with a backslash: never special.
    escaped: bool,
}

impl Unit {
    const fn plain(c: char) -> Unit {
        Unit { c, escaped: false }
    }

    fn is(self, c: char) -> bool {
        !self.escaped && self.c == c
    }
}

/// An element's characters with `\x` turned into an escaped `x` and a trailing `\` dropped.
fn unescape(text: &str) -> Vec<Unit> {
    let mut units = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                units.push(Unit { c: next, escaped: true });
            }
        } else {
            units.push(Unit::plain(c));
        }
    }
    units
}

/// A parsed element: literal runs and brace groups.
#[derive(Debug)]
enum Piece {
    Literal(Vec<Unit>),
    /// The alternatives of one `{...}`, each a sequence again.
    Group(Vec<Vec<Piece>>),
}

/// The distinct alternatives of an element, after checking them against the budget.
fn expand_braces(units: &[Unit], budget: &mut Budget) -> Result<Vec<Vec<Unit>>, GlobError> {
    let partners = pair_braces(units);
    let pieces = parse_pieces(units, &partners, (0, units.len()), 0)?;
    let (count, chars) = measure(&pieces);
    if count > budget.alternatives as u64 {
        return Err(GlobError::TooManyAlternatives);
    }
    if chars > budget.chars as u64 {
        return Err(GlobError::ExpansionTooLong);
    }
    budget.alternatives -= count as usize;
    budget.chars -= chars as usize;
    let mut alternatives = expand(&pieces);
    alternatives.sort_unstable();
    alternatives.dedup();
    Ok(alternatives)
}

/// For every `{` that has a partner, the index of its `}`; `usize::MAX` elsewhere. Pairs are
/// what a stack gives, which is what graphite-web's repeated rewriting of the leftmost
/// innermost `{...}` gives too.
fn pair_braces(units: &[Unit]) -> Vec<usize> {
    let mut partners = vec![usize::MAX; units.len()];
    let mut open = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        if unit.is('{') {
            open.push(i);
        } else if unit.is('}') {
            if let Some(start) = open.pop() {
                partners[start] = i;
            }
        }
    }
    partners
}

/// Parses `units[start..end]` (a whole element, or one alternative inside a group) into
/// pieces; `partners` is [`pair_braces`] of the whole element.
fn parse_pieces(
    units: &[Unit],
    partners: &[usize],
    (start, end): (usize, usize),
    depth: usize,
) -> Result<Vec<Piece>, GlobError> {
    let mut pieces = Vec::new();
    let mut literal = Vec::new();
    let mut i = start;
    while i < end {
        let close = partners[i];
        if close == usize::MAX {
            literal.push(units[i]);
            i += 1;
            continue;
        }
        if depth == MAX_BRACE_DEPTH {
            return Err(GlobError::BracesTooDeep);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        // The group's own commas split it; those of groups inside it do not.
        let mut alternatives = Vec::new();
        let mut from = i + 1;
        let mut j = from;
        while j < close {
            if partners[j] != usize::MAX {
                j = partners[j] + 1;
            } else if units[j].is(',') {
                alternatives.push(parse_pieces(units, partners, (from, j), depth + 1)?);
                j += 1;
                from = j;
            } else {
                j += 1;
            }
        }
        alternatives.push(parse_pieces(units, partners, (from, close), depth + 1)?);
        pieces.push(Piece::Group(alternatives));
        i = close + 1;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// How many alternatives a sequence expands to, and how many characters they hold in all
/// (saturating: only compared with the budget).
fn measure(pieces: &[Piece]) -> (u64, u64) {
    // A product of sequences: counts multiply, and each side's characters repeat once per
    // alternative of the other side.
    let mut count: u64 = 1;
    let mut chars: u64 = 0;
    for piece in pieces {
        let (piece_count, piece_chars) = match piece {
            Piece::Literal(units) => (1, units.len() as u64),
            Piece::Group(alternatives) => alternatives
                .iter()
                .map(|seq| measure(seq))
                .fold((0u64, 0u64), |a, b| (a.0.saturating_add(b.0), a.1.saturating_add(b.1))),
        };
        chars = chars.saturating_mul(piece_count).saturating_add(piece_chars.saturating_mul(count));
        count = count.saturating_mul(piece_count);
    }
    (count, chars)
}

/// Every alternative of a sequence, in order. Only called within the budget `measure` checked.
fn expand(pieces: &[Piece]) -> Vec<Vec<Unit>> {
    let parts: Vec<Vec<Vec<Unit>>> = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Literal(units) => vec![units.clone()],
            Piece::Group(alternatives) => alternatives.iter().flat_map(|seq| expand(seq)).collect(),
        })
        .collect();
    let total: usize = parts.iter().map(Vec::len).product();
    let mut out = Vec::with_capacity(total);
    // Walks every combination as a mixed-radix counter, the last part turning fastest.
    let mut digits = vec![0usize; parts.len()];
    for _ in 0..total {
        let mut alternative = Vec::new();
        for (part, &k) in parts.iter().zip(&digits) {
            alternative.extend_from_slice(&part[k]);
        }
        out.push(alternative);
        for (digit, part) in digits.iter_mut().zip(&parts).rev() {
            *digit += 1;
            if *digit < part.len() {
                break;
            }
            *digit = 0;
        }
    }
    out
}

/// One compiled glob (an alternative with at least one wildcard).
#[derive(Debug, Clone)]
struct Glob {
    /// No two `Star`s in a row, no two `Literal`s in a row.
    tokens: Box<[Token]>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// These characters exactly.
    Literal(Box<str>),
    /// `?`: one character.
    One,
    /// `*`: any run of characters.
    Star,
    /// `[...]`: one character of a set.
    Class(Class),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    /// `[!...]`.
    negated: bool,
    /// Inclusive ranges; a single character is a range of one, an inverted one is empty.
    ranges: Box<[(char, char)]>,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(low, high)| low <= c && c <= high) != self.negated
    }
}

/// The tokens of one alternative (brace-free).
fn tokenize(units: &[Unit]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let flush = |literal: &mut String, tokens: &mut Vec<Token>| {
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(literal).into_boxed_str()));
        }
    };
    let mut i = 0;
    while i < units.len() {
        let unit = units[i];
        i += 1;
        if unit.escaped {
            literal.push(unit.c);
            continue;
        }
        match unit.c {
            '*' => {
                flush(&mut literal, &mut tokens);
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
            }
            '?' => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::One);
            }
            '[' => match parse_class(&units[i..]) {
                Some((class, used)) => {
                    flush(&mut literal, &mut tokens);
                    tokens.push(Token::Class(class));
                    i += used;
                }
                None => literal.push('['),
            },
            c => literal.push(c),
        }
    }
    flush(&mut literal, &mut tokens);
    tokens
}

/// A set after its `[`: the class and how many units it used (its `]` included), or None when
/// there is no closing `]` (the `[` is then a literal, as in `fnmatch`).
fn parse_class(units: &[Unit]) -> Option<(Class, usize)> {
    let mut j = 0;
    let negated = units.first().is_some_and(|u| u.is('!'));
    if negated {
        j += 1;
    }
    let members_start = j;
    // A `]` first is a member, not the end.
    if units.get(j).is_some_and(|u| u.c == ']') {
        j += 1;
    }
    while j < units.len() && !units[j].is(']') {
        j += 1;
    }
    if j == units.len() {
        return None;
    }
    let members = &units[members_start..j];
    let mut ranges = Vec::with_capacity(members.len());
    let mut p = 0;
    while p < members.len() {
        if p + 2 < members.len() && members[p + 1].is('-') {
            ranges.push((members[p].c, members[p + 2].c));
            p += 3;
        } else {
            ranges.push((members[p].c, members[p].c));
            p += 1;
        }
    }
    Some((Class { negated, ranges: ranges.into_boxed_slice() }, j + 1))
}

impl Glob {
    /// Whether `name` matches. The single-backtrack algorithm: on a mismatch, go back to the
    /// last `*` and let it take one more character. It is exact here because every other token
    /// matches a fixed number of characters.
    fn matches(&self, name: &str) -> bool {
        let tokens = &self.tokens;
        let (mut t, mut n) = (0usize, 0usize);
        // (token after the last `*`, where in `name` that `*`'s match ends).
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if t < tokens.len() {
                let step = match &tokens[t] {
                    Token::Star => {
                        backtrack = Some((t + 1, n));
                        t += 1;
                        continue;
                    }
                    Token::Literal(text) => name[n..].starts_with(&**text).then_some(text.len()),
                    Token::One => name[n..].chars().next().map(char::len_utf8),
                    Token::Class(class) => name[n..].chars().next().filter(|&c| class.contains(c)).map(char::len_utf8),
                };
                if let Some(len) = step {
                    t += 1;
                    n += len;
                    continue;
                }
            } else if n == name.len() {
                return true;
            }
            match backtrack {
                Some((after_star, end)) => match name[end..].chars().next() {
                    Some(c) => {
                        let end = end + c.len_utf8();
                        backtrack = Some((after_star, end));
                        t = after_star;
                        n = end;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Whether `pattern` matches the whole dotted `name` as `expected` says; also checks that the
    /// pattern compiles.
    fn check(pattern: &str, name: &str, expected: bool) {
        let compiled = Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern:?} refused: {e}"));
        assert_eq!(compiled.matches(name), expected, "pattern {pattern:?} against {name:?}");
    }

    #[test]
    fn literals_and_case() {
        check("a.b.c", "a.b.c", true);
        check("a.b.c", "a.b", false);
        check("a.b", "a.b.c", false);
        check("a.b.c", "a.B.c", false);
        check("CPU", "cpu", false);
        check("é.ü", "é.ü", true);
        check("a..b", "a..b", true);
        check("a..b", "a.b", false);
    }

    #[test]
    fn star_and_question_mark() {
        check("*", "anything", true);
        check("*", "a.b", false);
        check("a.*", "a.b", true);
        check("a.*", "a", false);
        check("a.*.c", "a.xyz.c", true);
        check("*.*", "a.b", true);
        check("cpu*", "cpu", true);
        check("cpu*", "cpu0", true);
        check("*cpu", "xcpu", true);
        check("*cpu*", "xcpux", true);
        check("c*u", "cu", true);
        check("c*u", "cpuu", true);
        check("c*u", "cpux", false);
        check("a*b*c", "aXbYbZc", true);
        check("a*b*c", "aXbYbZ", false);
        check("***", "x", true);
        check("?", "a", true);
        check("?", "é", true);
        check("?", "", false);
        check("?", "ab", false);
        check("a?c", "abc", true);
        check("a?c", "ac", false);
        check("??*", "ab", true);
        check("??*", "a", false);
        check("*?", "", false);
        check("*", "", true);
    }

    #[test]
    fn classes() {
        check("[abc]", "b", true);
        check("[abc]", "d", false);
        check("[a-c]x", "bx", true);
        check("[a-c]x", "dx", false);
        check("[a-z0-9]", "7", true);
        check("[a-z0-9]", "_", false);
        check("[-a]", "-", true);
        check("[a-]", "-", true);
        check("[a-]", "b", false);
        check("[a-c-e]", "-", true);
        check("[a-c-e]", "d", false);
        check("[a-c-e]", "e", true);
        check("[--z]", "a", true);
        check("[z-a]", "m", false);
        check("[!z-a]", "m", true);
        check("[!x]", "y", true);
        check("[!x]", "x", false);
        check("[!x]", "", false);
        check("[!a-c]", "b", false);
        check("[^a]", "^", true);
        check("[^a]", "a", true);
        check("[^a]", "b", false);
        check("[]]", "]", true);
        check("[]a]", "a", true);
        check("[!]a]", "]", false);
        check("[!]a]", "b", true);
        check("[[]", "[", true);
        check("[é-ü]", "ö", true);
    }

    #[test]
    fn unclosed_brackets_are_literal() {
        check("a[", "a[", true);
        check("[a", "[a", true);
        check("[]", "[]", true);
        check("[!]", "[!]", true);
        check("[!", "[!", true);
        check("[a*", "[abc", true);
    }

    #[test]
    fn braces() {
        check("{a,b}", "a", true);
        check("{a,b}", "b", true);
        check("{a,b}", "c", false);
        check("x{a,b}y", "xby", true);
        check("{a,b}{c,d}", "bc", true);
        check("{a,{b,c}d}", "cd", true);
        check("{a,{b,c}d}", "a", true);
        check("{a,{b,c}d}", "ad", false);
        check("{,a}b", "b", true);
        check("{,a}b", "ab", true);
        check("{a*,b?}", "bx", true);
        check("{a*,b?}", "bxx", false);
        check("{a}", "a", true);
        check("{}", "", true);
        check("{}", "{}", false);
        check("srv.{web,db}[0-9].cpu", "srv.db7.cpu", true);
        check("srv.{web,db}[0-9].cpu", "srv.dbx.cpu", false);
    }

    #[test]
    fn unpaired_braces_and_commas_are_literal() {
        check("{a,b", "{a,b", true);
        check("a,b", "a,b", true);
        check("a}b", "a}b", true);
        check("{a,b}}", "a}", true);
        // graphite-web rewrites the innermost `{b,c}` first; the outer `{` has no partner.
        check("{a,{b,c}", "{a,b", true);
        check("{a,{b,c}", "{a,c", true);
        check("{a,{b,c}", "a", false);
        check("{a{,b}", "{ab", true);
        check("{a{,b}", "{a", true);
        // Found by proptest (a group nested right inside another): `{{}}` is one empty name.
        check("a}{{}}", "a}", true);
        check("a}{{}}", "a}{}", false);
        // Braces never span a `.`: each element stands alone.
        check("{a.b,c}", "{a.b,c}", true);
        check("{a.b,c}", "a", false);
    }

    #[test]
    fn escapes() {
        check(r"a\*", "a*", true);
        check(r"a\*", "ab", false);
        check(r"\?", "?", true);
        check(r"\?", "x", false);
        check(r"\[ab]", "[ab]", true);
        check(r"\[ab]", "a", false);
        check(r"\{a,b\}", "{a,b}", true);
        check(r"{a\,b,c}", "a,b", true);
        check(r"{a\,b,c}", "c", true);
        check(r"{a\,b,c}", "a", false);
        check(r"[\]]", "]", true);
        check(r"[a\-c]", "b", false);
        check(r"[a\-c]", "-", true);
        check(r"[\!a]", "!", true);
        check(r"\a\b", "ab", true);
        check(r"ab\", "ab", true);
        check(r"\\", r"\", true);
        check(r"\*\*", "**", true);
        check(r"\*\*", "a", false);
        check(r"a.\*\*.b", "a.x.b", false);
    }

    #[test]
    fn globstar() {
        check("**", "a", true);
        check("**", "a.b.c", true);
        check("a.**", "a", false);
        check("a.**", "a.b", true);
        check("a.**", "a.b.c", true);
        check("a.**", "b.c", false);
        check("a.**.c", "a.c", true);
        check("a.**.c", "a.b.c", true);
        check("a.**.c", "a.b.b.c", true);
        check("a.**.c", "a.b.b.d", false);
        check("**.c", "c", true);
        check("**.c", "x.y.c", true);
        check("**.c", "x.y.c.d", false);
        check("**.**", "a", true);
        check("a.**.**", "a", false);
        check("a.**.**", "a.b", true);
        check("**.b.**", "b.c", true);
        check("**.b.**", "a.b", false);
        check("a.{**,x}.c", "a.c", true);
        check("a.{**,x}.c", "a.x.c", true);
        check("a.{**,x}.c", "a.y.z.c", true);
        check("a.{**}", "a.b.c", true);
        // Only a whole alternative `**` spans levels: inside a glob it is one `*`.
        check("a**.b", "axy.b", true);
        check("a**", "a.b", false);
        check("x.**b", "x.y.b", false);
    }

    #[test]
    fn refusals() {
        assert_eq!(Pattern::parse("").map(|_| ()), Err(GlobError::Empty));
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(Pattern::parse(&long).map(|_| ()), Err(GlobError::TooLong { len_bytes: MAX_PATTERN_BYTES + 1 }));
        assert!(Pattern::parse(&"a".repeat(MAX_PATTERN_BYTES)).is_ok());
        // 2^14 alternatives: refused from the counts, before anything is expanded.
        let doubling = "{a,b}".repeat(14);
        assert_eq!(Pattern::parse(&doubling).map(|_| ()), Err(GlobError::TooManyAlternatives));
        // 2^13 = 8192 alternatives is within the limit...
        assert!(Pattern::parse(&"{a,b}".repeat(13)).is_ok());
        // ...but not twice in one pattern, and not with a long tail on each.
        let twice = format!("{0}.{0}", "{a,b}".repeat(13));
        assert_eq!(Pattern::parse(&twice).map(|_| ()), Err(GlobError::TooManyAlternatives));
        let heavy = format!("{}{}", "{a,b}".repeat(13), "x".repeat(200));
        assert_eq!(Pattern::parse(&heavy).map(|_| ()), Err(GlobError::ExpansionTooLong));
        // A huge product refused without overflow.
        let huge = "{a,b,c,d,e,f,g,h}".repeat(200);
        assert_eq!(Pattern::parse(&huge).map(|_| ()), Err(GlobError::TooManyAlternatives));
        let deep = format!("{}a{}", "{".repeat(MAX_BRACE_DEPTH + 1), "}".repeat(MAX_BRACE_DEPTH + 1));
        assert_eq!(Pattern::parse(&deep).map(|_| ()), Err(GlobError::BracesTooDeep));
        let deep_ok = format!("{}a{}", "{".repeat(MAX_BRACE_DEPTH), "}".repeat(MAX_BRACE_DEPTH));
        check(&deep_ok, "a", true);
        // Unpaired braces, however many, are cheap literals.
        let unpaired = "{".repeat(MAX_PATTERN_BYTES);
        check(&unpaired, &unpaired, true);
    }

    #[test]
    fn expansion_is_distinct() {
        let pattern = Pattern::parse("{a,a,{a,b}}").expect("valid");
        assert_eq!(pattern.elements()[0].literals, vec![Box::from("a"), Box::from("b")]);
        assert!(pattern.elements()[0].is_literal_only());
        assert!(!Pattern::parse("{a,b*}").expect("valid").elements()[0].is_literal_only());
        assert!(Pattern::parse("{a,*}").expect("valid").elements()[0].any);
    }

    #[test]
    fn consecutive_globstars_merge() {
        assert_eq!(Pattern::parse("a.**.**.**.b").expect("valid").elements().len(), 3);
        assert!(!Pattern::parse("a.**.**.b").expect("valid").revisits());
        assert!(Pattern::parse("**.a.**").expect("valid").revisits());
        assert!(Pattern::parse("{**,a}.b").expect("valid").revisits());
        assert!(!Pattern::parse("a.*.b").expect("valid").revisits());
    }

    /// A backtracking reference matcher for globs of `a`, `b`, `*`, `?` and `[ab]`, written
    /// plainly (exponential, fine for short inputs).
    fn reference(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|k| reference(rest, &name[k..])),
            Some(('?', rest)) => !name.is_empty() && reference(rest, &name[1..]),
            Some(('[', rest)) => {
                let (set, rest) = (&rest[..2], &rest[3..]);
                !name.is_empty() && set.contains(&name[0]) && reference(rest, &name[1..])
            }
            Some((&c, rest)) => name.first() == Some(&c) && reference(rest, &name[1..]),
        }
    }

    /// graphite-web's `expand_braces`, ported as written: rewrite the leftmost `{...}` that
    /// holds no brace, once per alternative, until none is left; distinct results.
    fn graphite_expand(s: &str) -> BTreeSet<String> {
        let bytes = s.as_bytes();
        let innermost = (0..bytes.len()).filter(|&i| bytes[i] == b'{').find_map(|open| {
            let close = open + 1 + bytes[open + 1..].iter().position(|&b| b == b'{' || b == b'}')?;
            (bytes[close] == b'}').then_some((open, close))
        });
        match innermost {
            None => BTreeSet::from([s.to_owned()]),
            Some((open, close)) => s[open + 1..close]
                .split(',')
                .flat_map(|alternative| graphite_expand(&format!("{}{alternative}{}", &s[..open], &s[close + 1..])))
                .collect(),
        }
    }

    proptest::proptest! {
        /// Brace expansion gives graphite-web's alternatives (patterns without backslashes).
        #[test]
        fn braces_expand_as_graphite_web(pattern in "[ab{},]{0,14}") {
            let units = unescape(&pattern);
            let mut budget = Budget { alternatives: MAX_ALTERNATIVES, chars: MAX_EXPANDED_CHARS };
            let ours: BTreeSet<String> = expand_braces(&units, &mut budget)
                .expect("within the limits")
                .iter()
                .map(|alternative| alternative.iter().map(|u| u.c).collect())
                .collect();
            proptest::prop_assert_eq!(ours, graphite_expand(&pattern), "pattern {}", pattern);
        }

        /// The single-backtrack matcher agrees with plain backtracking.
        #[test]
        fn matcher_agrees_with_backtracking(
            pattern in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "*", "?", "[ab]"]), 0..8),
            name in "[ab]{0,8}",
        ) {
            let pattern: String = pattern.concat();
            let chars: Vec<char> = pattern.chars().collect();
            let name_chars: Vec<char> = name.chars().collect();
            let compiled = Pattern::parse(&pattern);
            if pattern.is_empty() {
                proptest::prop_assert_eq!(compiled.map(|_| ()), Err(GlobError::Empty));
            } else {
                let compiled = compiled.expect("valid");
                let expected = reference(&chars, &name_chars);
                proptest::prop_assert_eq!(compiled.matches(&name), expected, "{} {}", pattern, name);
            }
        }

        /// No pattern, however hostile, panics or escapes the limits.
        #[test]
        fn hostile_patterns_do_not_panic(pattern in "[ab{},.*?\\[\\]!\\-\\\\é]{0,64}", name in "[ab.{},é]{0,12}") {
            if let Ok(compiled) = Pattern::parse(&pattern) {
                let _ = compiled.matches(&name);
            }
        }
    }
}
