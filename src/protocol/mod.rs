//! Pure parsers of what arrives from the network: carbon plaintext lines, pickle frames, and
//! metric names (validation, tag normalisation, the path a name is stored at).
//!
//! Owns: turning bytes into points or a counted rejection. Leaves out: sockets, buffers owned by
//! the kernel, the cache. Does no I/O, never panics, never allocates per line.

pub mod lines;
pub mod name;
mod opcodes;
pub mod pickle;
pub mod plaintext;
pub mod unpickle;

pub use lines::{find_newline, split_datagram, IncompleteLine, LineSplitter, LineTooLong};
pub use name::{
    normalize_tagged, relative_path, validate, MetricName, NameReject, TagFileNames, MAX_LEAF_BYTES, MAX_NAME_BYTES,
    MAX_NODE_BYTES,
};
pub use plaintext::{parse_float, parse_line, Point, Reject};
