//! Typed errors of the whisper engine. Each variant is a condition an operator or a caller can act
//! on; none of them is a panic, whatever the file contains.

use std::path::PathBuf;

/// Everything the whisper engine can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// The file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What the operating system said (shown in the message, so not chained as a source).
        cause: std::io::Error,
    },
    /// The header or the archive table is not a valid whisper 1.1 header.
    #[error("{path}: corrupt whisper file: {reason}")]
    Corrupt {
        /// The file that was read.
        path: PathBuf,
        /// Which rule the header broke, with the numbers involved.
        reason: String,
    },
    /// The archive list breaks one of whisper's rules (`validateArchiveList`).
    #[error("invalid archive configuration: {0}")]
    InvalidConfiguration(String),
    /// `create` was asked to make a file that already exists.
    #[error("{0}: file already exists")]
    AlreadyExists(PathBuf),
    /// An aggregation method name or code whisper does not know.
    #[error("unrecognized aggregation method: {0}")]
    InvalidAggregationMethod(String),
    /// An xFilesFactor outside [0, 1] (or not a number).
    #[error("invalid xFilesFactor {0}, not between 0 and 1")]
    InvalidXFilesFactor(f64),
    /// A retention definition such as `10s:6h` that cannot be parsed.
    #[error("invalid retention definition '{0}'")]
    InvalidRetention(String),
    /// `fetch` with from > until.
    #[error("invalid time interval: from time '{from}' is after until time '{until}'")]
    InvalidTimeInterval {
        /// Requested start.
        from: i64,
        /// Requested end.
        until: i64,
    },
    /// `update` with a timestamp in the future or older than the file's retention.
    #[error("timestamp {timestamp} not covered by any archives in this database (now {now})")]
    TimestampNotCovered {
        /// The rejected timestamp.
        timestamp: i64,
        /// The `now` the check used.
        now: i64,
    },
    /// A point that would be written has a timestamp that does not fit the u32 on disk.
    #[error("timestamp {0} cannot be stored in a whisper file (0 ..= 4294967295)")]
    TimestampOutOfRange(i64),
    /// `fetch` with an archive granularity the file does not have.
    #[error("invalid granularity: {0}")]
    InvalidGranularity(String),
}

impl WhisperError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        WhisperError::Io { path: path.to_path_buf(), cause: source }
    }

    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Self {
        WhisperError::Corrupt { path: path.to_path_buf(), reason: reason.into() }
    }
}

/// Result alias of the whisper engine.
pub type Result<T, E = WhisperError> = std::result::Result<T, E>;
