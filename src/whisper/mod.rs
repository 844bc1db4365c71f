//! The whisper 1.1 storage engine: byte-compatible files, whisper.py's semantics.
//!
//! Owns the file format (header, archives, points), creation with whisper's validation rules,
//! `update`/`update_many` with propagation through all eight aggregation methods, `fetch`,
//! metadata setters and resize. It knows nothing of the network, the cache or carbon's policy
//! (which schema a metric gets, rate limits): callers decide, this module executes.
//!
//! Fidelity is defined as whisper's own readers see a file: same header bytes, same
//! (timestamp, value) in every slot class of every archive. The one deliberate difference is
//! the order of propagation inside one `update_many` (time order here, Python set order there),
//! which may rotate a lower archive's ring differently without changing any point it holds.

mod aggregate;
mod error;
mod file;
mod format;
mod io;
mod resize;
mod retention;
#[cfg(test)]
mod tests;

pub use aggregate::AggregationMethod;
pub use error::{Result, WhisperError};
pub use file::{create, info, read_header, CreateOptions, FetchResult, Point, UpdateReport, Whisper};
pub use format::{decode_point, encode_point, file_size, ArchiveInfo, Header, MAX_ARCHIVES, METADATA_SIZE, POINT_SIZE};
pub use io::{Allocation, WriteOptions};
pub use resize::{resize, ResizeOptions};
pub use retention::{
    parse_duration_secs, parse_retention_def, parse_retentions, unit_seconds, validate_archive_list, ArchiveSpec,
};
