//! Metric names: which names are accepted, the canonical form of a tagged name, and the path
//! (relative to `LOCAL_DATA_DIR`) a name's whisper file lives at.
//!
//! Owns: the rules that keep every file inside the data directory, and carbon's mapping from
//! names to files. Leaves out: the data directory itself, creating anything, and the
//! whitelist/blacklist (policy, applied by the caller).
//!
//! Carbon's behaviour (`util.py` `TaggedSeries`, `cache.py` `CacheFeedingProcessor`,
//! `database.py` `getFilesystemPath`), which this module follows:
//!
//! - Every name goes through `TaggedSeries.parse(name).path` before it is cached. The part
//!   before the first `;` is the metric; carbon strips its leading `~`s (`~a.b` is stored as
//!   `a.b`), and each `;key=value` segment is a tag. Tag names: not empty, none of `;!^=`; tag
//!   values: not empty, not starting with `~`. Tags live in a dict, so a repeated key keeps its
//!   last value, and a `name` tag is overwritten by the metric (`a;name=x` is plain `a`).
//! - The canonical name is the metric followed by `sorted(';k=v' ...)`: sorted by the whole
//!   `k=v` string, which is not quite sorting by key (`x;a.b=1;a=2` is canonical, because `.`
//!   sorts before `=`). Python compares code points; UTF-8 bytes sort the same way.
//! - A plain name's file is `a/b/c.wsp`. A tagged name's is
//!   `_tagged/<h[0:3]>/<h[3:6]>/<h>.wsp` where `h` is the sha256 hex of the canonical name
//!   (`TAG_HASH_FILENAMES = True`, the default), or `<canonical with '.' as '_DOT_'>.wsp` under
//!   the same two directories when it is False.
//!
//! Where carbon accepts names that would be unsafe or that it mishandles, Carbyne rejects them,
//! each kind counted under [`NameReject::as_str`]:
//!
//! - empty names, and metric parts that are empty once the `~`s are stripped;
//! - plain names with an empty node (`a..b`, `.a`, `a.`): carbon turns `.a` into `a.wsp` and
//!   `a..b` into `a//b.wsp`, so two names share one file;
//! - `/` in a plain name or in a tagged name's metric part (a path separator: `a/../../x` leaves
//!   the data directory in carbon). Tag names and values may hold `/` because the hashed file
//!   name does not contain them; with readable file names, such a name is refused when its path
//!   is asked for;
//! - control characters (C0, DEL, C1; NUL among them), invalid UTF-8 (carbon decodes lines as
//!   UTF-8 and drops the connection when that fails), and spaces in tag names (as the Graphite
//!   reference asks; carbon's own check allows them);
//! - names over [`MAX_NAME_BYTES`], nodes over [`MAX_NODE_BYTES`] (a file-system name), and last
//!   nodes over [`MAX_LEAF_BYTES`] (which leaves room for `.wsp`);
//! - tagged names that carbon's parser refuses. Carbon logs those and caches the name unchanged,
//!   so it would write them at the hash of the raw name.
//!
//! Not handled: carbon's OpenMetrics form `name{tag="value",...}` is taken as a plain name.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// The longest name accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_NAME_BYTES: usize = 4096;
/// The longest node (a directory name), in bytes (Linux's `NAME_MAX`).
pub const MAX_NODE_BYTES: usize = 255;
/// The longest last node of a plain name: its file name is the node plus `.wsp`.
pub const MAX_LEAF_BYTES: usize = MAX_NODE_BYTES - WSP.len();

const WSP: &str = ".wsp";
const TAGGED_DIR: &str = "_tagged";

/// Why a name was refused. Every variant is counted by the caller under [`NameReject::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameReject {
    /// The name, or its metric part once leading `~`s are stripped, is empty.
    Empty,
    /// Longer than [`MAX_NAME_BYTES`].
    TooLong,
    /// A node (or a readable tagged file name) is longer than a file-system name may be.
    NodeTooLong,
    /// A plain name with an empty node: `a..b`, a leading or a trailing dot.
    EmptyNode,
    /// A control character: C0 (NUL included), DEL or C1.
    ControlChar,
    /// A `/` where it would be a path separator.
    Slash,
    /// Not UTF-8.
    InvalidUtf8,
    /// A tag segment without `=`, or a tag name that is empty or holds one of `!^` or a space.
    BadTagName,
    /// A tag value that is empty or starts with `~`.
    BadTagValue,
}

impl NameReject {
    /// Every reason, in a fixed order: for telemetry tables.
    pub const ALL: [NameReject; 9] = [
        NameReject::Empty,
        NameReject::TooLong,
        NameReject::NodeTooLong,
        NameReject::EmptyNode,
        NameReject::ControlChar,
        NameReject::Slash,
        NameReject::InvalidUtf8,
        NameReject::BadTagName,
        NameReject::BadTagValue,
    ];

    /// A name usable as a metric suffix, such as `rejected.name_empty_node`; distinct from
    /// every [`super::plaintext::Reject::as_str`].
    pub fn as_str(self) -> &'static str {
        match self {
            NameReject::Empty => "name_empty",
            NameReject::TooLong => "name_too_long",
            NameReject::NodeTooLong => "name_node_too_long",
            NameReject::EmptyNode => "name_empty_node",
            NameReject::ControlChar => "name_control_char",
            NameReject::Slash => "name_slash",
            NameReject::InvalidUtf8 => "name_invalid_utf8",
            NameReject::BadTagName => "name_bad_tag_name",
            NameReject::BadTagValue => "name_bad_tag_value",
        }
    }
}

impl fmt::Display for NameReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for NameReject {}

/// How a tagged name's file is named: carbon's `TAG_HASH_FILENAMES`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TagFileNames {
    /// `<sha256 hex>.wsp` (`TAG_HASH_FILENAMES = True`, carbon's default).
    #[default]
    Hashed,
    /// The canonical name with `.` written as `_DOT_`, plus `.wsp`.
    Readable,
}

/// A name that passed [`validate`], borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricName<'a> {
    /// A plain dotted name, already canonical (leading `~`s stripped). Each node is a directory
    /// but the last, which is the file.
    Plain(&'a str),
    /// A tagged name already in canonical form (tags sorted, each key once, no `name` tag, no
    /// leading `~`): what well-behaved clients send.
    Tagged(&'a str),
    /// A valid tagged name as received, not yet canonical: [`MetricName::canonical`] sorts it.
    TaggedUnsorted(&'a str),
}

impl<'a> MetricName<'a> {
    /// The name: canonical unless [`MetricName::TaggedUnsorted`].
    pub fn as_str(&self) -> &'a str {
        match *self {
            MetricName::Plain(name) | MetricName::Tagged(name) | MetricName::TaggedUnsorted(name) => name,
        }
    }

    /// Whether the name is stored under `_tagged/`.
    pub fn is_tagged(&self) -> bool {
        !matches!(self, MetricName::Plain(_))
    }

    /// Carbon's canonical form: the cache key and what the file path is computed from.
    /// Allocates only for [`MetricName::TaggedUnsorted`].
    pub fn canonical(&self) -> Cow<'a, str> {
        match *self {
            MetricName::Plain(name) | MetricName::Tagged(name) => Cow::Borrowed(name),
            MetricName::TaggedUnsorted(raw) => Cow::Owned(sort_tags(raw)),
        }
    }

    /// Writes the file's path relative to the data directory into `out`, reusing its buffer:
    /// `a/b/c.wsp`, or `_tagged/abc/def/<file>.wsp`. Fails only for [`TagFileNames::Readable`]
    /// when the file name would hold a `/` or be too long.
    pub fn write_relative_path(&self, files: TagFileNames, out: &mut PathBuf) -> Result<(), NameReject> {
        // Through a String to reuse the PathBuf's buffer without platform-specific OsStr calls.
        let mut path = std::mem::take(out).into_os_string().into_string().unwrap_or_default();
        path.clear();
        let written = match self {
            MetricName::Plain(name) => {
                path.extend(name.split('.').flat_map(|node| ["/", node]).skip(1));
                Ok(())
            }
            _ => push_tagged_path(&self.canonical(), files, &mut path),
        };
        if written.is_ok() {
            path.push_str(WSP);
        } else {
            path.clear();
        }
        *out = PathBuf::from(path);
        written
    }
}

/// Checks `name` against every rule in the module docs and says what kind of name it is.
/// Allocates nothing.
pub fn validate(name: &[u8]) -> Result<MetricName<'_>, NameReject> {
    if name.is_empty() {
        return Err(NameReject::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameReject::TooLong);
    }
    if is_simple_plain(name) {
        // SAFETY: `is_simple_plain` accepts only bytes 0x20 to 0x7e (see `BYTE_CLASS`), so
        // `name` is ASCII and therefore UTF-8.
        return Ok(MetricName::Plain(unsafe { std::str::from_utf8_unchecked(name) }));
    }
    let text = std::str::from_utf8(name).map_err(|_| NameReject::InvalidUtf8)?;
    validate_general(text)
}

/// Every rule, one after the other, for names the fast path did not take.
fn validate_general(text: &str) -> Result<MetricName<'_>, NameReject> {
    check_control(text)?;
    match text.split_once(';') {
        None => {
            let metric = text.trim_start_matches('~');
            check_plain(metric)?;
            Ok(MetricName::Plain(metric))
        }
        Some((metric, tags)) => validate_tagged(text, metric, tags),
    }
}

/// [`validate`], then the canonical form as an owned string (carbon's
/// `TaggedSeries.parse(name).path`); plain names come back as they are, less leading `~`s.
pub fn normalize_tagged(name: &[u8]) -> Result<String, NameReject> {
    Ok(validate(name)?.canonical().into_owned())
}

/// [`validate`], then [`MetricName::write_relative_path`] into a new `PathBuf`.
pub fn relative_path(name: &[u8], files: TagFileNames) -> Result<PathBuf, NameReject> {
    let mut path = PathBuf::new();
    validate(name)?.write_relative_path(files, &mut path)?;
    Ok(path)
}

/// What a byte can be in a name, for [`is_simple_plain`]: 0 is an ordinary byte, 1 a dot,
/// 2 anything that needs the general path (control, `/`, `;`, `~`, non-ASCII).
const BYTE_CLASS: [u8; 256] = {
    let mut class = [2u8; 256];
    let mut b = 0x20;
    while b < 0x7f {
        class[b] = match b as u8 {
            b'.' => 1,
            b'/' | b';' | b'~' => 2,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// The fast path of [`validate`]: an ASCII plain name that breaks no rule, checked in one pass.
/// `false` sends the name to the general path, which also finds the reason for a refusal.
fn is_simple_plain(name: &[u8]) -> bool {
    let mut node_bytes = 0usize;
    for &b in name {
        match BYTE_CLASS[usize::from(b)] {
            0 => node_bytes += 1,
            1 if node_bytes > 0 && node_bytes <= MAX_NODE_BYTES => node_bytes = 0,
            _ => return false,
        }
    }
    node_bytes > 0 && node_bytes <= MAX_LEAF_BYTES
}

/// Control characters anywhere: ASCII C0 and DEL on the fast path, C1 when non-ASCII.
fn check_control(text: &str) -> Result<(), NameReject> {
    let ascii_control = text.bytes().any(|b| b < 0x20 || b == 0x7f);
    if ascii_control || (!text.is_ascii() && text.chars().any(char::is_control)) {
        return Err(NameReject::ControlChar);
    }
    Ok(())
}

/// A plain name's nodes: not empty, no `/`, each short enough to be a file-system name.
fn check_plain(metric: &str) -> Result<(), NameReject> {
    if metric.is_empty() {
        return Err(NameReject::Empty);
    }
    if metric.contains('/') {
        return Err(NameReject::Slash);
    }
    let mut nodes = metric.split('.').peekable();
    while let Some(node) = nodes.next() {
        let limit = if nodes.peek().is_some() { MAX_NODE_BYTES } else { MAX_LEAF_BYTES };
        if node.is_empty() {
            return Err(NameReject::EmptyNode);
        }
        if node.len() > limit {
            return Err(NameReject::NodeTooLong);
        }
    }
    Ok(())
}

/// The tagged branch of [`validate`]: `text` is the whole name, `metric` what precedes the
/// first `;` and `tags` what follows it.
fn validate_tagged<'a>(text: &'a str, metric: &'a str, tags: &'a str) -> Result<MetricName<'a>, NameReject> {
    let stripped = metric.trim_start_matches('~');
    if stripped.is_empty() {
        return Err(NameReject::Empty);
    }
    if stripped.contains('/') {
        return Err(NameReject::Slash);
    }
    let mut canonical = true;
    let mut n_tags = 0usize;
    let mut previous: Option<&str> = None;
    for segment in tags.split(';') {
        let key = check_tag(segment)?;
        if key == "name" {
            canonical = false;
            continue;
        }
        n_tags += 1;
        // Segments with one key are adjacent once sorted (keys hold no '='), so a repeated key
        // shows up as two neighbours with the same key.
        if previous.is_some_and(|p| p >= segment || tag_key(p) == key) {
            canonical = false;
        }
        previous = Some(segment);
    }
    if n_tags == 0 {
        // Only `name` tags: the metric overwrites them, and what is left is a plain name.
        check_plain(stripped)?;
        return Ok(MetricName::Plain(stripped));
    }
    let without_tildes = &text[metric.len() - stripped.len()..];
    Ok(if canonical { MetricName::Tagged(without_tildes) } else { MetricName::TaggedUnsorted(text) })
}

/// Checks one `key=value` segment against carbon's rules and returns the key.
fn check_tag(segment: &str) -> Result<&str, NameReject> {
    let (key, value) = segment.split_once('=').ok_or(NameReject::BadTagName)?;
    if key.is_empty() || key.contains(['!', '^', ' ']) {
        return Err(NameReject::BadTagName);
    }
    if value.is_empty() || value.starts_with('~') {
        return Err(NameReject::BadTagValue);
    }
    Ok(key)
}

fn tag_key(segment: &str) -> &str {
    segment.split_once('=').map_or(segment, |(key, _)| key)
}

/// The canonical form of a valid tagged name: metric without `~`s, then its tags without any
/// `name` tag, the last value of each key, sorted as carbon sorts `';k=v'` strings.
fn sort_tags(raw: &str) -> String {
    let (metric, tags) = raw.split_once(';').unwrap_or((raw, ""));
    let mut segments: Vec<&str> = tags.split(';').filter(|s| tag_key(s) != "name").collect();
    // Stable sort by key, then reverse, so that the last value of a key comes first in its run
    // and survives `dedup_by`, which keeps the first.
    segments.sort_by_key(|s| tag_key(s));
    segments.reverse();
    segments.dedup_by(|later, kept| tag_key(later) == tag_key(kept));
    segments.sort_unstable();
    let mut out = String::with_capacity(raw.len());
    out.push_str(metric.trim_start_matches('~'));
    for segment in segments {
        out.push(';');
        out.push_str(segment);
    }
    out
}

/// `_tagged/<h[0:3]>/<h[3:6]>/<file>` for a canonical tagged name.
fn push_tagged_path(canonical: &str, files: TagFileNames, path: &mut String) -> Result<(), NameReject> {
    let hex = sha256_hex(canonical.as_bytes());
    let hex_char = |b: &u8| char::from(*b);
    path.push_str(TAGGED_DIR);
    path.push('/');
    path.extend(hex[0..3].iter().map(hex_char));
    path.push('/');
    path.extend(hex[3..6].iter().map(hex_char));
    path.push('/');
    match files {
        TagFileNames::Hashed => path.extend(hex.iter().map(hex_char)),
        TagFileNames::Readable => {
            let file = canonical.replace('.', "_DOT_");
            if file.contains('/') {
                return Err(NameReject::Slash);
            }
            if file.len() > MAX_LEAF_BYTES {
                return Err(NameReject::NodeTooLong);
            }
            path.push_str(&file);
        }
    }
    Ok(())
}

/// Lower-case hex of the sha256 of `data`, as Python's `hexdigest()` writes it.
fn sha256_hex(data: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(data);
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    hex
}

#[cfg(test)]
mod tests {
    use std::path::{Component, Path};

    use super::*;

    /// What [`validate`] should say: the kind, the canonical name and the hashed path.
    #[derive(Debug, PartialEq)]
    enum Kind {
        Plain,
        Tagged,
        Unsorted,
    }

    /// Validates `input` and checks the kind, the canonical form and the (hashed) path; then
    /// checks that the canonical form is itself valid, canonical and gives the same path.
    fn check(input: &[u8], expected: Result<(Kind, &str, &str), NameReject>) {
        let got = validate(input).map(|name| {
            let kind = match name {
                MetricName::Plain(_) => Kind::Plain,
                MetricName::Tagged(_) => Kind::Tagged,
                MetricName::TaggedUnsorted(_) => Kind::Unsorted,
            };
            let mut path = PathBuf::from("left over");
            name.write_relative_path(TagFileNames::Hashed, &mut path).expect("hashed paths always fit");
            (kind, name.canonical().into_owned(), path)
        });
        let expected = expected.map(|(kind, canonical, path)| (kind, canonical.to_owned(), PathBuf::from(path)));
        assert_eq!(got, expected, "name {:?}", String::from_utf8_lossy(input));
        if let Ok((_, canonical, path)) = got {
            let again = validate(canonical.as_bytes()).expect("canonical names are valid");
            assert!(!matches!(again, MetricName::TaggedUnsorted(_)), "{canonical} is canonical");
            assert_eq!(again.as_str(), canonical);
            assert_eq!(relative_path(canonical.as_bytes(), TagFileNames::Hashed), Ok(path.clone()));
            assert_eq!(normalize_tagged(input).as_deref(), Ok(canonical.as_str()));
            assert_safe(&path);
        }
    }

    /// A path that stays inside the directory it is joined to.
    fn assert_safe(path: &Path) {
        assert!(path.is_relative(), "{path:?}");
        let text = path.to_str().expect("UTF-8");
        assert!(!text.contains('\0'), "{path:?}");
        assert!(text.ends_with(".wsp"), "{path:?}");
        for component in path.components() {
            assert!(matches!(component, Component::Normal(_)), "{path:?} has {component:?}");
            assert!(component.as_os_str().len() <= MAX_NODE_BYTES, "{path:?}");
        }
    }

    #[test]
    fn plain_names() {
        check(b"a", Ok((Kind::Plain, "a", "a.wsp")));
        check(b"servers.web01.cpu", Ok((Kind::Plain, "servers.web01.cpu", "servers/web01/cpu.wsp")));
        check(b"~~a.b", Ok((Kind::Plain, "a.b", "a/b.wsp")));
        check(b"a~.b=c!d^e f", Ok((Kind::Plain, "a~.b=c!d^e f", "a~/b=c!d^e f.wsp")));
        check("é.ü".as_bytes(), Ok((Kind::Plain, "é.ü", "é/ü.wsp")));
        check(b"_tagged.abc", Ok((Kind::Plain, "_tagged.abc", "_tagged/abc.wsp")));
        check(b"a{b=\"c\"}", Ok((Kind::Plain, "a{b=\"c\"}", "a{b=\"c\"}.wsp")));
    }

    #[test]
    fn plain_rejections() {
        check(b"", Err(NameReject::Empty));
        check(b"~", Err(NameReject::Empty));
        check(b"~~~", Err(NameReject::Empty));
        check(b"a..b", Err(NameReject::EmptyNode));
        check(b".a", Err(NameReject::EmptyNode));
        check(b"a.", Err(NameReject::EmptyNode));
        check(b".", Err(NameReject::EmptyNode));
        check(b"..", Err(NameReject::EmptyNode));
        check(b"~.a", Err(NameReject::EmptyNode));
        check(b"a/b", Err(NameReject::Slash));
        check(b"/etc/passwd", Err(NameReject::Slash));
        check(b"..%2f..", Err(NameReject::EmptyNode));
        check(b"a.../x", Err(NameReject::Slash));
        check(b"a\0b", Err(NameReject::ControlChar));
        check(b"a\nb", Err(NameReject::ControlChar));
        check(b"a\x7fb", Err(NameReject::ControlChar));
        check("a\u{85}b".as_bytes(), Err(NameReject::ControlChar));
        check(b"a\xffb", Err(NameReject::InvalidUtf8));
        check(b"a\xc3", Err(NameReject::InvalidUtf8));
    }

    #[test]
    fn length_limits() {
        let node = |n: usize| "x".repeat(n);
        let ok = |name: &str| validate(name.as_bytes()).map(|n| n.as_str().len());
        assert_eq!(ok(&node(MAX_LEAF_BYTES)), Ok(MAX_LEAF_BYTES));
        assert_eq!(ok(&node(MAX_LEAF_BYTES + 1)), Err(NameReject::NodeTooLong));
        let dir_then_leaf = format!("{}.x", node(MAX_NODE_BYTES));
        assert_eq!(ok(&dir_then_leaf), Ok(MAX_NODE_BYTES + 2));
        assert_eq!(ok(&format!("{}.x", node(MAX_NODE_BYTES + 1))), Err(NameReject::NodeTooLong));
        let long = vec!["abcdefg"; MAX_NAME_BYTES / 8].join(".");
        assert_eq!(long.len(), MAX_NAME_BYTES - 1);
        assert_eq!(ok(&long), Ok(MAX_NAME_BYTES - 1));
        assert_eq!(ok(&format!("{long}x")), Ok(MAX_NAME_BYTES));
        assert_eq!(ok(&format!("{long}xy")), Err(NameReject::TooLong));
        // A tagged name's hashed path does not depend on its length.
        let tagged = format!("a;t={}", node(MAX_NAME_BYTES - 4));
        assert_eq!(relative_path(tagged.as_bytes(), TagFileNames::Hashed).map(|p| p.as_os_str().len()), Ok(84));
        assert_eq!(relative_path(tagged.as_bytes(), TagFileNames::Readable), Err(NameReject::NodeTooLong));
    }

    /// Hashes from Python: `hashlib.sha256(canonical.encode()).hexdigest()`, with the canonical
    /// form from carbon's `TaggedSeries.parse(name).path` logic (util.py) run on the same input.
    #[test]
    fn tagged_names_are_normalised_as_carbon_does() {
        check(
            b"disk.used;rack=a1;datacenter=dc1;server=web01",
            Ok((
                Kind::Unsorted,
                "disk.used;datacenter=dc1;rack=a1;server=web01",
                "_tagged/e9a/90f/e9a90f9ab08ad206ecfb30c241e0285a7c36479ca423d74260b2614cb98c1eec.wsp",
            )),
        );
        check(
            b"disk.used;datacenter=dc1;rack=a1;server=web01",
            Ok((
                Kind::Tagged,
                "disk.used;datacenter=dc1;rack=a1;server=web01",
                "_tagged/e9a/90f/e9a90f9ab08ad206ecfb30c241e0285a7c36479ca423d74260b2614cb98c1eec.wsp",
            )),
        );
        check(
            b"~~a.b;z=1;a=2",
            Ok((
                Kind::Unsorted,
                "a.b;a=2;z=1",
                "_tagged/963/a41/963a41ebffef4c7bdaedc14a1c36dd4c2ad805f010fdcd956462ecee1d0d4563.wsp",
            )),
        );
        check(
            b"~a;b=c",
            Ok((
                Kind::Tagged,
                "a;b=c",
                "_tagged/81e/2f5/81e2f530462430f177b8713d2a3507d3b0cd2df5ec039aef399b7c3242a56dc3.wsp",
            )),
        );
        // A repeated key keeps its last value (a Python dict).
        check(
            b"a;t=1;t=2;s=0",
            Ok((
                Kind::Unsorted,
                "a;s=0;t=2",
                "_tagged/1c3/39a/1c339a617aa0df3b7e9e44fd45aa985739651b4f007b545b0566b8ddc88f2822.wsp",
            )),
        );
        check(
            b"a;b=1;a=2;b=3",
            Ok((
                Kind::Unsorted,
                "a;a=2;b=3",
                "_tagged/67d/376/67d37630f04fb9edd1678965e1f22f5b201082994d7612452693bb7c291faf44.wsp",
            )),
        );
        // Sorted as ';k=v' strings: '.' (0x2e) sorts before '=' (0x3d).
        check(
            b"x;a=2;a.b=1",
            Ok((
                Kind::Unsorted,
                "x;a.b=1;a=2",
                "_tagged/c65/fdb/c65fdb8aec55aec4ae11d676d7299b14c877f74a7bdbe1e73a49950d28d75833.wsp",
            )),
        );
        // The metric overwrites a `name` tag.
        check(
            b"a;name=x;b=1",
            Ok((
                Kind::Unsorted,
                "a;b=1",
                "_tagged/145/033/14503323d527672ea6fa01836b6c7d154895e5a9cb8168e6eb423b6b1818f65d.wsp",
            )),
        );
        check(b"a.b;name=x", Ok((Kind::Plain, "a.b", "a/b.wsp")));
        check(b"a..b;name=x", Err(NameReject::EmptyNode));
        // A '/' in a tag is harmless in a hashed file name.
        check(
            b"a;b=/etc/passwd",
            Ok((
                Kind::Tagged,
                "a;b=/etc/passwd",
                "_tagged/172/d05/172d058bce46ff112220789da09d012847dd770984a8a4f2e33b190d5f0889aa.wsp",
            )),
        );
    }

    #[test]
    fn readable_tagged_file_names() {
        let readable = |name: &str| relative_path(name.as_bytes(), TagFileNames::Readable);
        assert_eq!(
            readable("disk.used;rack=a1;datacenter=dc1;server=web01"),
            Ok(PathBuf::from("_tagged/e9a/90f/disk_DOT_used;datacenter=dc1;rack=a1;server=web01.wsp"))
        );
        assert_eq!(readable("a;b=/etc/passwd"), Err(NameReject::Slash));
        assert_eq!(readable("a;b/c=d"), Err(NameReject::Slash));
        assert_eq!(readable("a.b"), Ok(PathBuf::from("a/b.wsp")));
        let mut reused = PathBuf::from("stale/contents.wsp");
        let name = validate(b"a;b=/x").expect("valid");
        assert_eq!(name.write_relative_path(TagFileNames::Readable, &mut reused), Err(NameReject::Slash));
        assert_eq!(reused, PathBuf::new(), "a failed write leaves no stale path");
    }

    #[test]
    fn tagged_rejections() {
        check(b";a=b", Err(NameReject::Empty));
        check(b"~~;a=b", Err(NameReject::Empty));
        check(b"a/b;c=d", Err(NameReject::Slash));
        check(b"a;", Err(NameReject::BadTagName));
        check(b"a;;b=c", Err(NameReject::BadTagName));
        check(b"a;b", Err(NameReject::BadTagName));
        check(b"a;=b", Err(NameReject::BadTagName));
        check(b"a;b!=c", Err(NameReject::BadTagName));
        check(b"a;b^=c", Err(NameReject::BadTagName));
        check(b"a;b c=d", Err(NameReject::BadTagName));
        check(b"a;b=", Err(NameReject::BadTagValue));
        check(b"a;b=~c", Err(NameReject::BadTagValue));
        // Checked even when a later value for the key would win, as carbon checks every segment.
        check(b"a;b=~c;b=d", Err(NameReject::BadTagValue));
        check(b"a;b=c\0", Err(NameReject::ControlChar));
        check(b"a;b=c\xff", Err(NameReject::InvalidUtf8));
        // '=' and '~' inside a value, '!' and '^' in a value, are all fine.
        check(
            b"a;b=c=d~!^",
            Ok((
                Kind::Tagged,
                "a;b=c=d~!^",
                "_tagged/270/edd/270edd42cbd15dc4f5676d08f0e37360745d0c1ca141dee828faf588e5063475.wsp",
            )),
        );
    }

    #[test]
    fn reject_names_are_distinct_from_line_rejects() {
        let mut names: Vec<&str> = NameReject::ALL.iter().map(|r| r.as_str()).collect();
        names.extend(crate::protocol::plaintext::Reject::ALL.iter().map(|r| r.as_str()));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    proptest::proptest! {
        /// No accepted name, however hostile, gives a path that is absolute, has a `..` or `.`
        /// component, holds a NUL, or has a component too long for a file system.
        #[test]
        fn accepted_names_stay_inside(
            name in proptest::collection::vec(
                proptest::sample::select(b"ab.~/;=!^ \0\\\xc3\xa9\xff_".to_vec()), 0..40),
        ) {
            if let Ok(valid) = validate(&name) {
                if let MetricName::Tagged(text) = valid {
                    let raw = std::str::from_utf8(&name).expect("validated");
                    proptest::prop_assert_eq!(sort_tags(raw), text, "already canonical means what sorting gives");
                }
                let canonical = valid.canonical();
                let again = validate(canonical.as_bytes());
                proptest::prop_assert!(matches!(again, Ok(MetricName::Plain(_) | MetricName::Tagged(_))));
                for files in [TagFileNames::Hashed, TagFileNames::Readable] {
                    let mut path = PathBuf::new();
                    if valid.write_relative_path(files, &mut path).is_ok() {
                        assert_safe(&path);
                    }
                }
            }
        }

        /// The fast path takes only names the general path accepts as they are.
        #[test]
        fn fast_path_agrees(name in proptest::collection::vec(proptest::sample::select(b"ab.~/; \x01\x7f\xc3".to_vec()), 1..300)) {
            if is_simple_plain(&name) {
                let text = std::str::from_utf8(&name).expect("ASCII");
                proptest::prop_assert_eq!(validate_general(text), Ok(MetricName::Plain(text)));
            }
        }

        /// For names of plain nodes, the fast path says yes exactly when the rules do.
        #[test]
        fn fast_path_knows_node_limits(nodes in proptest::collection::vec(0usize..260, 1..4)) {
            let name = nodes.iter().map(|&n| "a".repeat(n)).collect::<Vec<_>>().join(".");
            proptest::prop_assert_eq!(is_simple_plain(name.as_bytes()), validate_general(&name).is_ok());
        }

        /// Normalising equals carbon's algorithm written plainly: a dict of tags (last value
        /// wins, `name` overwritten), then `sorted(';k=v' ...)`.
        #[test]
        fn normalising_equals_a_dict_model(
            tildes in 0usize..3,
            tags in proptest::collection::vec(("(name|[ab.]{1,2})", "[ab=]{1,2}"), 1..6),
        ) {
            let raw = format!("{}m;{}", "~".repeat(tildes), tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"));
            let mut dict = std::collections::HashMap::new();
            for (k, v) in &tags {
                dict.insert(k.as_str(), v.as_str());
            }
            dict.remove("name");
            let mut segments: Vec<String> = dict.iter().map(|(k, v)| format!(";{k}={v}")).collect();
            segments.sort();
            let expected = format!("m{}", segments.concat());
            proptest::prop_assert_eq!(normalize_tagged(raw.as_bytes()), Ok(expected.clone()));
            let name = validate(raw.as_bytes()).expect("valid");
            proptest::prop_assert_eq!(name.is_tagged(), !segments.is_empty());
        }

        /// Normalising is insensitive to the order of distinct tags.
        #[test]
        fn tag_order_does_not_matter(tags in proptest::collection::btree_map("[a-c.]{1,3}", "[a-c.=]{1,3}", 1..5)) {
            let forward: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let backward: Vec<String> = forward.iter().rev().cloned().collect();
            let a = normalize_tagged(format!("m;{}", forward.join(";")).as_bytes());
            let b = normalize_tagged(format!("m;{}", backward.join(";")).as_bytes());
            proptest::prop_assert!(a.is_ok());
            proptest::prop_assert_eq!(a, b);
        }
    }
}
