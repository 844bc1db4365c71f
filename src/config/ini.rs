//! A small INI reader with the semantics of Python 3's `configparser.ConfigParser`, as carbon
//! reads carbon.conf, storage-schemas.conf and storage-aggregation.conf with it.
//!
//! Why hand-written rather than an INI crate: every error must name the file and the line, and
//! values must be interpolated exactly as ConfigParser's `BasicInterpolation` does (`%(name)s`
//! from the same section or `[DEFAULT]`, `%%` for a literal `%`, at most 10 levels deep). No
//! crate we know does both, and the whole reader is a couple of hundred lines.
//!
//! The rules, as Python 3 applies them with carbon's (default) parser options:
//! - `[name]` starts a section; the name is everything between the first `[` and the last `]`
//!   (text after it is ignored) and is case-sensitive. `[DEFAULT]` holds keys every section sees.
//! - `key = value` or `key: value`, split at the first `=` or `:`; both sides are trimmed; keys
//!   are case-insensitive (stored lower-case, as `optionxform` does).
//! - A line whose first non-blank character is `#` or `;` is a comment. There are no inline
//!   comments: `a = b # c` has the value `b # c`.
//! - A line indented deeper than the key line above it continues that key's value (joined with
//!   a newline); blank lines inside such a value are kept, trailing ones are dropped; comment
//!   lines inside it are skipped.
//! - A section or a key defined twice in one file is an error (Python 3's `strict` mode).
//!
//! Where we differ, we refuse or accept more, never read a value differently: a leading UTF-8
//! BOM is skipped, and a line starting with `[` without a closing `]` is an error where Python
//! would try it as a key. Limits (file size, line length, interpolated size and work) keep a
//! hostile file from costing more than a bounded amount of memory and time.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Problem};

/// Largest config file we read (carbon's own files are a few KiB).
pub(crate) const MAX_FILE_BYTES: u64 = 16 << 20;
/// Longest line accepted; a longer one is an error, not a bigger buffer.
pub(crate) const MAX_LINE_BYTES: usize = 64 << 10;
/// Largest value after joining continuation lines and interpolating.
pub(crate) const MAX_VALUE_BYTES: usize = 1 << 20;
/// ConfigParser's `MAX_INTERPOLATION_DEPTH`.
pub(crate) const MAX_INTERPOLATION_DEPTH: u32 = 10;
/// References expanded for one value at most, so that nested fan-out cannot run for hours.
pub(crate) const MAX_INTERPOLATION_STEPS: u32 = 100_000;
/// The section whose keys every other section inherits.
pub(crate) const DEFAULT_SECTION: &str = "DEFAULT";

/// One `key = value` as written (value not yet interpolated).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Lower-case key (ConfigParser's `optionxform`).
    pub(crate) key: String,
    /// Raw value: continuation lines joined with `\n`, trailing blank lines dropped.
    pub(crate) raw: String,
    /// 1-based line of the key.
    pub(crate) line: u32,
}

/// A section: its entries in file order and an index by key.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) name: String,
    /// 1-based line of the header (0 for an absent `[DEFAULT]`).
    pub(crate) line: u32,
    entries: Vec<Entry>,
    /// key → index into `entries`; invariant: `entries[index[k]].key == k`.
    index: HashMap<String, usize>,
}

impl Section {
    fn new(name: &str, line: u32) -> Self {
        Section { name: name.to_string(), line, entries: Vec::new(), index: HashMap::new() }
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }
}

/// A value as carbon sees it after interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// Lower-case key.
    pub(crate) key: String,
    /// Interpolated value.
    pub(crate) value: String,
    /// 1-based line of the key.
    pub(crate) line: u32,
    /// Name of the section the key was written in (`DEFAULT` when inherited).
    pub(crate) section: String,
}

/// A parsed file.
#[derive(Debug, Clone)]
pub(crate) struct Ini {
    path: PathBuf,
    defaults: Section,
    /// Sections in file order, `[DEFAULT]` excluded.
    sections: Vec<Section>,
}

/// Reads a whole file, at most [`MAX_FILE_BYTES`]; `Ok(None)` when it does not exist.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let io_err = |source| ConfigError::Io { path: path.to_path_buf(), source };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::FileTooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    Ok(Some(bytes))
}

/// Splits on `\n`, `\r\n` and `\r` (Python's universal newlines), without the terminators.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\n', '\r']) {
            None => {
                rest = None;
                (!s.is_empty()).then_some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

/// Where the parser is: which section receives keys, and which key receives continuations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Nothing,
    Defaults,
    Section(usize),
}

struct Parser<'p> {
    path: &'p Path,
    ini: Ini,
    target: Target,
    /// Index of the entry that continuation lines extend, in `target`'s section.
    option: Option<usize>,
    /// Indentation of the last section or key line (ConfigParser's `indent_level`).
    indent: usize,
}

impl Ini {
    /// Parses `bytes` read from `path` (the path is only used in errors).
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Ini, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            ConfigError::at(path, line_u32(line), Problem::NotUtf8)
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = Parser {
            path,
            ini: Ini { path: path.to_path_buf(), defaults: Section::new(DEFAULT_SECTION, 0), sections: Vec::new() },
            target: Target::Nothing,
            option: None,
            indent: 0,
        };
        for (i, line) in split_lines(text).enumerate() {
            parser.line(line_u32(i + 1), line)?;
        }
        Ok(parser.finish())
    }

    /// Reads and parses `path`; `Ok(None)` when the file does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Ini>, ConfigError> {
        match read_bounded(path)? {
            None => Ok(None),
            Some(bytes) => Ini::parse(path, &bytes).map(Some),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The sections in file order, `[DEFAULT]` excluded.
    pub(crate) fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Every key `section` sees (its own and `[DEFAULT]`'s, the section's winning), interpolated,
    /// in ConfigParser's `items()` order: inherited keys first, then the section's own.
    pub(crate) fn items(&self, section: &Section) -> Result<Vec<Item>, ConfigError> {
        let mut chosen: Vec<(&Entry, &str)> = Vec::new();
        for d in &self.defaults.entries {
            match section.get(&d.key) {
                Some(own) => chosen.push((own, &section.name)),
                None => chosen.push((d, DEFAULT_SECTION)),
            }
        }
        for e in &section.entries {
            if self.defaults.get(&e.key).is_none() {
                chosen.push((e, &section.name));
            }
        }
        chosen
            .into_iter()
            .map(|(entry, from)| {
                let value = self.interpolate(section, entry)?;
                Ok(Item { key: entry.key.clone(), value, line: entry.line, section: from.to_string() })
            })
            .collect()
    }

    /// One key of `section` (or inherited from `[DEFAULT]`), interpolated.
    #[cfg(test)]
    pub(crate) fn get(&self, section: &Section, key: &str) -> Result<Option<Item>, ConfigError> {
        let (entry, from) = match (section.get(key), self.defaults.get(key)) {
            (Some(e), _) => (e, section.name.as_str()),
            (None, Some(d)) => (d, DEFAULT_SECTION),
            (None, None) => return Ok(None),
        };
        let value = self.interpolate(section, entry)?;
        Ok(Some(Item { key: entry.key.clone(), value, line: entry.line, section: from.to_string() }))
    }

    fn interpolate(&self, section: &Section, entry: &Entry) -> Result<String, ConfigError> {
        let mut expander = Expander { ini: self, section, key: &entry.key, line: entry.line, steps: 0 };
        let mut out = String::new();
        expander
            .expand(&entry.raw, entry.line, 1, &mut out)
            .map_err(|(line, problem)| ConfigError::at(&self.path, line, problem))?;
        Ok(out)
    }
}

fn line_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Parser<'_> {
    fn err(&self, line: u32, problem: Problem) -> ConfigError {
        ConfigError::at(self.path, line, problem)
    }

    fn line(&mut self, n: u32, line: &str) -> Result<(), ConfigError> {
        if line.len() > MAX_LINE_BYTES {
            return Err(self.err(n, Problem::LineTooLong { len: line.len(), max: MAX_LINE_BYTES }));
        }
        let stripped = line.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            return Ok(());
        }
        if stripped.is_empty() {
            // Kept inside a multi-line value; dropped at the end if nothing follows.
            if let Some(entry) = self.current_entry() {
                entry.raw.push('\n');
            }
            return Ok(());
        }
        let indent = line.chars().take_while(|c| c.is_whitespace()).count();
        if self.option.is_some() && indent > self.indent {
            return self.continuation(n, stripped);
        }
        self.indent = indent;
        if stripped.starts_with('[') {
            self.header(n, stripped)
        } else {
            self.key_value(n, stripped)
        }
    }

    fn current_entry(&mut self) -> Option<&mut Entry> {
        let idx = self.option?;
        let section = match self.target {
            Target::Nothing => return None,
            Target::Defaults => &mut self.ini.defaults,
            Target::Section(s) => &mut self.ini.sections[s],
        };
        section.entries.get_mut(idx)
    }

    fn continuation(&mut self, n: u32, stripped: &str) -> Result<(), ConfigError> {
        let path = self.path;
        let Some(entry) = self.current_entry() else { return Ok(()) };
        if entry.raw.len() + 1 + stripped.len() > MAX_VALUE_BYTES {
            return Err(ConfigError::at(path, n, Problem::ValueTooLong { max: MAX_VALUE_BYTES }));
        }
        entry.raw.push('\n');
        entry.raw.push_str(stripped);
        Ok(())
    }

    fn header(&mut self, n: u32, stripped: &str) -> Result<(), ConfigError> {
        let close = stripped.rfind(']').ok_or_else(|| self.err(n, Problem::UnclosedSectionHeader))?;
        let name = &stripped[1..close];
        if name.is_empty() {
            return Err(self.err(n, Problem::EmptySectionName));
        }
        self.option = None;
        if name == DEFAULT_SECTION {
            self.target = Target::Defaults;
            return Ok(());
        }
        if let Some(first) = self.ini.section(name) {
            let problem = Problem::DuplicateSection { name: name.to_string(), first_line: first.line };
            return Err(self.err(n, problem));
        }
        self.ini.sections.push(Section::new(name, n));
        self.target = Target::Section(self.ini.sections.len() - 1);
        Ok(())
    }

    fn key_value(&mut self, n: u32, stripped: &str) -> Result<(), ConfigError> {
        let section = match self.target {
            Target::Nothing => return Err(self.err(n, Problem::MissingSectionHeader)),
            Target::Defaults => &mut self.ini.defaults,
            Target::Section(s) => &mut self.ini.sections[s],
        };
        let Some(sep) = stripped.find(['=', ':']) else {
            return Err(ConfigError::at(self.path, n, Problem::NoSeparator));
        };
        let written = stripped[..sep].trim_end();
        if written.is_empty() {
            return Err(ConfigError::at(self.path, n, Problem::EmptyKey));
        }
        let key = written.to_lowercase();
        if let Some(first) = section.get(&key) {
            let problem = Problem::DuplicateKey {
                section: section.name.clone(),
                key: written.to_string(),
                first_line: first.line,
            };
            return Err(ConfigError::at(self.path, n, problem));
        }
        let raw = stripped[sep + 1..].trim().to_string();
        section.index.insert(key.clone(), section.entries.len());
        section.entries.push(Entry { key, raw, line: n });
        self.option = Some(section.entries.len() - 1);
        Ok(())
    }

    fn finish(mut self) -> Ini {
        let all = std::iter::once(&mut self.ini.defaults).chain(self.ini.sections.iter_mut());
        for section in all {
            for entry in &mut section.entries {
                let kept = entry.raw.trim_end().len();
                entry.raw.truncate(kept);
            }
        }
        self.ini
    }
}

/// ConfigParser's `BasicInterpolation` for one value, with a budget.
struct Expander<'a> {
    ini: &'a Ini,
    section: &'a Section,
    /// The key being read, for messages.
    key: &'a str,
    /// Its line: where size and depth errors are reported.
    line: u32,
    /// References expanded so far; at most [`MAX_INTERPOLATION_STEPS`].
    steps: u32,
}

impl Expander<'_> {
    /// Appends `text` (from `line`) to `out`, resolving `%%` and `%(name)s`.
    fn expand(&mut self, text: &str, line: u32, depth: u32, out: &mut String) -> Result<(), (u32, Problem)> {
        if depth > MAX_INTERPOLATION_DEPTH {
            let problem = Problem::InterpolationTooDeep { key: self.key.to_uppercase(), max: MAX_INTERPOLATION_DEPTH };
            return Err((self.line, problem));
        }
        let mut rest = text;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
            } else if let Some((name, after)) = reference(rest) {
                self.reference(name, line, depth, out)?;
                rest = after;
            } else {
                let shown: String = rest.chars().take(40).collect();
                return Err((line, Problem::InterpolationSyntax { key: self.key.to_uppercase(), rest: shown }));
            }
            self.check_size(out)?;
        }
        out.push_str(rest);
        self.check_size(out)
    }

    fn reference(&mut self, name: &str, line: u32, depth: u32, out: &mut String) -> Result<(), (u32, Problem)> {
        self.steps += 1;
        self.check_size(out)?;
        let name = name.to_lowercase();
        let target = self.section.get(&name).or_else(|| self.ini.defaults.get(&name));
        let Some(target) = target else {
            let problem = Problem::MissingReference {
                key: self.key.to_uppercase(),
                section: self.section.name.clone(),
                reference: name,
            };
            return Err((line, problem));
        };
        if target.raw.contains('%') {
            self.expand(&target.raw, target.line, depth + 1, out)
        } else {
            out.push_str(&target.raw);
            Ok(())
        }
    }

    fn check_size(&self, out: &str) -> Result<(), (u32, Problem)> {
        if out.len() > MAX_VALUE_BYTES || self.steps > MAX_INTERPOLATION_STEPS {
            let problem = Problem::InterpolationTooLarge {
                key: self.key.to_uppercase(),
                max: MAX_VALUE_BYTES,
                max_steps: MAX_INTERPOLATION_STEPS,
            };
            return Err((self.line, problem));
        }
        Ok(())
    }
}

/// Matches `%(name)s` at the start of `s` (ConfigParser's `%\(([^)]+)\)s`): (name, rest).
fn reference(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix("%(")?;
    let close = inner.find(')')?;
    if close == 0 {
        return None;
    }
    let rest = inner[close + 1..].strip_prefix('s')?;
    Some((&inner[..close], rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/carbon/carbon.conf";

    fn parse(text: &str) -> Result<Ini, ConfigError> {
        Ini::parse(Path::new(PATH), text.as_bytes())
    }

    /// Parses `text` and compares `items()` of `section` with `expected` (key, value, line).
    fn check(text: &str, section: &str, expected: &[(&str, &str, u32)]) {
        let ini = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let s = ini.section(section).unwrap_or_else(|| panic!("no [{section}] in {text:?}"));
        let items = ini.items(s).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let got: Vec<(&str, &str, u32)> = items.iter().map(|i| (i.key.as_str(), i.value.as_str(), i.line)).collect();
        assert_eq!(got, expected, "{text:?}");
    }

    /// Parses `text`, reads every section's items, and expects an error at `line` containing `fragment`.
    fn check_err(text: &str, line: u32, fragment: &str) {
        let result = parse(text).and_then(|ini| {
            for s in ini.sections() {
                ini.items(s)?;
            }
            Ok(())
        });
        let err = result.expect_err(text);
        let msg = err.to_string();
        assert_eq!(err.line(), Some(line), "{text:?}: {msg}");
        assert!(msg.contains(fragment), "{text:?}: {msg:?} should contain {fragment:?}");
        assert!(msg.starts_with(&format!("{PATH}:{line}: ")), "{msg}");
    }

    #[test]
    fn separators_comments_and_case() {
        check("[cache]\nA = 1\nb: 2\n", "cache", &[("a", "1", 2), ("b", "2", 3)]);
        check("[cache]\n  C =3\n", "cache", &[("c", "3", 2)]);
        check(
            "[cache]\n# c\n; c\n   # indented comment\nkey = v # not a comment\n",
            "cache",
            &[("key", "v # not a comment", 5)],
        );
        check("[cache]\nurl = http://x:80/a=b\nk:v=w\n", "cache", &[("url", "http://x:80/a=b", 2), ("k", "v=w", 3)]);
        check("[cache]\nempty =\nspaced key = x\n", "cache", &[("empty", "", 2), ("spaced key", "x", 3)]);
        check("\u{feff}[cache] trailing text\r\nk = v\r\n", "cache", &[("k", "v", 2)]);
        check("[cache]\rk = v\r", "cache", &[("k", "v", 2)]);
        check("[Cache]\nk = 1\n[cache]\nk = 2\n", "cache", &[("k", "2", 4)]);
    }

    #[test]
    fn continuation_lines() {
        check("[s]\nk = a\n  b\n\tc\nnext = 1\n", "s", &[("k", "a\nb\nc", 2), ("next", "1", 5)]);
        check("[s]\nk = a\n\n  b\n\n\nn = 1\n", "s", &[("k", "a\n\nb", 2), ("n", "1", 7)]);
        check("[s]\nk = a\n# comment inside\n  b\n", "s", &[("k", "a\nb", 2)]);
        check("[s]\n  k = a\n  j = b\n", "s", &[("k", "a", 2), ("j", "b", 3)]);
        check("[s]\n  k = a\n    j = b\n", "s", &[("k", "a\nj = b", 2)]);
        check("[s]\nk =\n  a,\n  b\n", "s", &[("k", "\na,\nb", 2)]);
    }

    #[test]
    fn interpolation() {
        check("[s]\nroot = /opt\ndir = %(root)s/x\n", "s", &[("root", "/opt", 2), ("dir", "/opt/x", 3)]);
        check("[s]\ndir = %(ROOT)s/x\nRoot = /opt\n", "s", &[("dir", "/opt/x", 2), ("root", "/opt", 3)]);
        check("[DEFAULT]\nroot = /d\n[s]\ndir = %(root)s/w\n", "s", &[("root", "/d", 2), ("dir", "/d/w", 4)]);
        check(
            "[DEFAULT]\nroot = /d\nsub = %(root)s/sub\n[s]\nroot = /own\n",
            "s",
            &[("root", "/own", 5), ("sub", "/own/sub", 3)],
        );
        check("[s]\np = 50%%\nq = %%(x)s\n", "s", &[("p", "50%", 2), ("q", "%(x)s", 3)]);
        check(
            "[s]\na = %(b)s\nb = %(c)s!\nc = 100%%\n",
            "s",
            &[("a", "100%!", 2), ("b", "100%!", 3), ("c", "100%", 4)],
        );
    }

    #[test]
    fn interpolation_errors() {
        check_err("[s]\nok = 1\ndir = %(nope)s/x\n", 3, "%(nope)s refers to a key");
        check_err("[DEFAULT]\nd = %(missing)s\n[s]\n", 2, "DEFAULT");
        check_err("[s]\na = %(a)s\n", 2, "deeper than 10");
        check_err("[s]\na = %(b)s\nb = %(a)s\n", 2, "deeper than 10");
        check_err("[s]\na = 50%\n", 2, "bad interpolation");
        check_err("[s]\na = %(unterminated\n", 2, "bad interpolation");
        check_err("[s]\na = %(x)\nx = 1\n", 2, "bad interpolation");
        check_err("[s]\na = %()s\n", 2, "bad interpolation");
        check_err("[s]\na = %x\n", 2, "bad interpolation");
    }

    #[test]
    fn ten_levels_pass_eleven_fail() {
        // ConfigParser starts at depth 1 and refuses depth 11: a chain of 9 nested values with
        // references in them resolves, one more does not.
        let chain = |n: usize| {
            let mut text = String::from("[s]\n");
            for i in 0..n {
                text.push_str(&format!("k{i} = %(k{})s\n", i + 1));
            }
            text.push_str(&format!("k{n} = end\n"));
            text
        };
        let ini = parse(&chain(10)).expect("parses");
        let s = &ini.sections()[0];
        assert_eq!(ini.get(s, "k0").expect("resolves").map(|i| i.value), Some("end".to_string()));
        let ini = parse(&chain(11)).expect("parses");
        let s = &ini.sections()[0];
        assert!(ini.get(s, "k0").is_err());
    }

    #[test]
    fn interpolation_blowup_is_bounded() {
        let mut text = String::from("[s]\n");
        for i in 0..9 {
            text.push_str(&format!("k{i} = {}\n", format!("%(k{})s", i + 1).repeat(50)));
        }
        text.push_str("k9 = x\n");
        check_err(&text, 2, "when interpolated");
        let mut text = String::from("[s]\n");
        for i in 0..9 {
            text.push_str(&format!("k{i} = {}\n", format!("%(k{})s", i + 1).repeat(50)));
        }
        text.push_str("k9 = %%\n");
        check_err(&text, 2, "when interpolated");
    }

    #[test]
    fn structure_errors() {
        check_err("k = v\n", 1, "before any [section]");
        check_err("[cache\nk = v\n", 1, "without a closing ']'");
        check_err("[cache:a\n", 1, "closing");
        check_err("[]\n", 1, "empty section name");
        check_err("[s]\njust words\n", 2, "expected `key = value`");
        check_err("[s]\n= v\n", 2, "empty key");
        check_err("[s]\nk = 1\n[t]\n[s]\n", 4, "already defined at line 1");
        check_err("[s]\nKey = 1\nkey = 2\n", 3, "set twice in section [s] (first at line 2)");
        check_err("[DEFAULT]\na = 1\n[DEFAULT]\nA = 2\n", 4, "set twice");
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        let mut garbage = vec![0xffu8, 0xfe, 0x00, b'\n'];
        garbage.extend((0u8..=255).cycle().take(4096));
        let err = Ini::parse(Path::new(PATH), &garbage).expect_err("binary");
        assert_eq!(err.line(), Some(1));
        assert!(err.to_string().contains("UTF-8"));

        let mut text = String::from("[s]\n");
        text.push_str(&"x".repeat(1 << 20));
        check_err(&text, 2, "more than the 65536 allowed");

        let mut text = String::from("[s]\nk = v\n");
        for _ in 0..40 {
            text.push_str(&format!("  {}\n", "y".repeat(MAX_LINE_BYTES - 10)));
        }
        check_err(&text, 2 + 17, "continued past 1048576 bytes");

        // Every prefix of a tricky file parses or fails cleanly.
        let tricky = "[DEFAULT]\na = %(b)s%%\nb = x\n[s:1]\n  k = %(a)s\n    more\n[t]\nz: %(\n";
        for end in 0..=tricky.len() {
            if let Some(prefix) = tricky.get(..end) {
                if let Ok(ini) = parse(prefix) {
                    for s in ini.sections() {
                        let _ = ini.items(s);
                    }
                }
            }
        }
    }

    #[test]
    fn sections_in_file_order_and_missing_file() {
        let ini = parse("[b]\n[a]\n[DEFAULT]\n[c]\n").expect("parses");
        let names: Vec<&str> = ini.sections().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Ini::read(&dir.path().join("absent.conf")).expect("absent is fine").is_none());
        let big = dir.path().join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).expect("write");
        let err = Ini::read(&big).expect_err("too large");
        assert!(matches!(err, ConfigError::FileTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("16777216 bytes a config file may have"), "{err}");
    }
}
