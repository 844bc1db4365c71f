//! The writer pool: drains the cache shards it owns into whisper files.
//!
//! Owns: open files (a bounded LRU per writer), the create and update rate limits, file
//! creation with the storage rules. Leaves out: receiving points (ingest), holding them (cache),
//! the file format (whisper). A writer never blocks on a reader: queries reach it by message.

mod files;
mod pool;
mod throttle;

pub use files::OpenFiles;
pub use pool::{run, WriterSetup, WRITER_COUNTERS};
pub use throttle::TokenBucket;
