//! Typed errors and warnings of the configuration loader.
//!
//! Every refusal names the file, the line (1-based) and what is wrong, because the reader of the
//! message is an operator with the file open in an editor. Warnings are conditions carbon also
//! tolerates (it logs them or says nothing); we collect them so the caller can print them once.

use std::fmt;
use std::path::PathBuf;

use crate::whisper::WhisperError;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file carbon requires (carbon.conf, storage-schemas.conf) does not exist.
    #[error("{}: required config file not found (carbon refuses to start without it too)", path.display())]
    MissingFile {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// A file is larger than any sane config file; reading it whole would be unbounded.
    #[error("{}: {len} bytes is larger than the {max} bytes a config file may have", path.display())]
    FileTooLarge {
        /// The file being read.
        path: PathBuf,
        /// Its size as far as it was read.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The instance name cannot be used in file names (carbon builds pid and log paths from it).
    #[error("instance name {0:?} is not usable: it must not contain '/' or NUL")]
    InvalidInstance(String),
    /// Something at a given line of a file is wrong.
    #[error("{}:{line}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u32,
        /// What is wrong there.
        problem: Problem,
    },
}

impl ConfigError {
    pub(crate) fn at(path: &std::path::Path, line: u32, problem: Problem) -> Self {
        ConfigError::Invalid { path: path.to_path_buf(), line, problem }
    }

    /// The problem, when the error is about a line of a file.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The 1-based line the error is about, when it is about a line.
    pub fn line(&self) -> Option<u32> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }
}

/// What is wrong at one line of a config file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file is not UTF-8 (Python would fail to decode it too).
    #[error("not valid UTF-8")]
    NotUtf8,
    /// A line longer than any config line should be; refused rather than buffered.
    #[error("line is {len} bytes long, more than the {max} allowed")]
    LineTooLong {
        /// Length of the line in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `key = value` line before the first `[section]`.
    #[error("`key = value` line before any [section] header")]
    MissingSectionHeader,
    /// A value made of continuation lines grows past the limit.
    #[error("value continued past {max} bytes")]
    ValueTooLong {
        /// The limit.
        max: usize,
    },
    /// A line that starts with `[` but has no closing `]`.
    #[error("section header without a closing ']'")]
    UnclosedSectionHeader,
    /// `[]`.
    #[error("empty section name")]
    EmptySectionName,
    /// A section header that appeared before in the same file (Python 3 ConfigParser refuses it).
    #[error("section [{name}] already defined at line {first_line}")]
    DuplicateSection {
        /// The section name.
        name: String,
        /// Where it was first defined.
        first_line: u32,
    },
    /// A key set twice in one section (Python 3 ConfigParser refuses it).
    #[error("key {key} set twice in section [{section}] (first at line {first_line})")]
    DuplicateKey {
        /// The section.
        section: String,
        /// The key, as written the second time.
        key: String,
        /// Where it was first set.
        first_line: u32,
    },
    /// A line that is neither a section header, a comment nor `key = value` / `key: value`.
    #[error("expected `key = value`, `key: value`, a [section] or a comment")]
    NoSeparator,
    /// `= value` with nothing before the separator.
    #[error("empty key before the separator")]
    EmptyKey,
    /// `%(name)s` names a key that exists neither in the section nor in `[DEFAULT]`.
    #[error("{key}: %({reference})s refers to a key that is neither in [{section}] nor in [DEFAULT]")]
    MissingReference {
        /// The key whose value was being interpolated.
        key: String,
        /// The section it was read from.
        section: String,
        /// The name inside `%(...)s`.
        reference: String,
    },
    /// Interpolation nested deeper than ConfigParser's limit of 10 (usually a reference loop).
    #[error("{key}: %(...)s references nest deeper than {max} levels (a reference loop?)")]
    InterpolationTooDeep {
        /// The key whose value was being interpolated.
        key: String,
        /// The limit.
        max: u32,
    },
    /// A `%` that is not `%%` or a complete `%(name)s`.
    #[error("{key}: bad interpolation at {rest:?}: '%' must be followed by '%' or '(name)s'")]
    InterpolationSyntax {
        /// The key whose value was being interpolated.
        key: String,
        /// The text from the offending `%` (truncated).
        rest: String,
    },
    /// Interpolation produced a value larger than the limit, or took too many steps.
    #[error("{key}: value grows past {max} bytes (or {max_steps} references) when interpolated")]
    InterpolationTooLarge {
        /// The key whose value was being interpolated.
        key: String,
        /// The byte limit.
        max: usize,
        /// The limit on the number of references expanded for one value.
        max_steps: u32,
    },
    /// A value carbon would read with a type (bool, int, float) that it does not have.
    #[error("{key} = {value:?}: expected {expected}")]
    InvalidValue {
        /// The carbon key, upper-case.
        key: String,
        /// The value as read (after interpolation).
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// DATABASE names a back end other than whisper.
    #[error("DATABASE = {0:?}: Carbyne stores whisper files only (ceres is not supported)")]
    UnsupportedDatabase(String),
    /// A storage-schemas/storage-aggregation pattern the `regex` crate refuses.
    #[error("[{section}] pattern {pattern:?} is not a valid or supported regular expression: {reason}")]
    InvalidPattern {
        /// The section.
        section: String,
        /// The pattern as written.
        pattern: String,
        /// What the regex engine said (look-around and back-references are not supported).
        reason: String,
    },
    /// A `retentions` list that whisper would refuse.
    #[error("[{section}] retentions {retentions:?}: {source}")]
    InvalidRetentions {
        /// The section.
        section: String,
        /// The list as written.
        retentions: String,
        /// whisper's reason.
        #[source]
        source: WhisperError,
    },
    /// An xFilesFactor that is not a number in [0, 1].
    #[error("[{section}] xFilesFactor = {value:?}: expected a number between 0 and 1")]
    InvalidXFilesFactor {
        /// The section.
        section: String,
        /// The value as written.
        value: String,
    },
    /// An aggregationMethod whisper does not know.
    #[error("[{section}] {source} (expected one of average, sum, last, max, min, avg_zero, absmax, absmin)")]
    InvalidAggregationMethod {
        /// The section.
        section: String,
        /// whisper's reason.
        #[source]
        source: WhisperError,
    },
}

/// A condition carbon tolerates but an operator should hear about once, at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub path: PathBuf,
    /// 1-based line the warning is about; 0 when it is about the whole file.
    pub line: u32,
    /// What was tolerated and what happens instead.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}
