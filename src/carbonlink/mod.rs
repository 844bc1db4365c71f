//! Carbonlink: carbon-cache's cache-query protocol on TCP CACHE_QUERY_INTERFACE:CACHE_QUERY_PORT
//! (0.0.0.0:7002 by default; port 0 turns it off), what graphite-web's CARBONLINK_HOSTS asks
//! for the points a carbon-cache holds but has not written yet.
//!
//! Owns: the listener and its connection threads (`listener.rs`), the framing and the refusal
//! of bad frames (`connection.rs`), and the meaning of each request (`request.rs`). Leaves
//! out: unpickling (the general restricted unpickler in `protocol::unpickle`), pickling the
//! replies (`render::format::pickle`, protocol 2), the caches (the writers own them and answer
//! `CacheQuery` messages), and the files (the whisper engine).
//!
//! Protocol: in both directions, a 4-byte big-endian length and a pickle. Requests are dicts
//! pickled with any protocol 0 to 5; replies are dicts pickled with protocol 2, one per
//! request, in order, on the same connection (see `request.rs` for each request type).
//!
//! Bounds, each documented on [`Settings`]: a frame is at most 1 MiB (carbon allows 1 GiB; a
//! request is a few names, and a bulk query of 10 000 long names still fits); at most 128
//! connections at once, each on its own thread; a frame must arrive whole within 10 s of its
//! first byte; a connection idle for 15 minutes is closed (graphite-web opens a new one on its
//! next query, which then misses the cache once); a reply the peer does not read within 10 s
//! ends the connection. Worst case memory is about 128 × (1 MiB frame + a few MiB of unpickled
//! objects), reached only by a peer sending maximal frames on every connection.
//!
//! Counters (in `carbon.agents.<host>-<instance>.*`): carbon's `cache.queries` and
//! `cache.bulk_queries`, and [`COUNTERS`]: connections accepted and refused, requests, error
//! replies, writers not answering in time, and every reason a connection was closed for a bad
//! frame (`carbonlink.rejected.<reason>`).

mod connection;
mod listener;
mod request;

use std::time::Duration;

pub use listener::Carbonlink;
pub use request::{Answer, CacheUnanswered, CachedPoints, Handler, Kind, NotADict, WriterCache, CACHE_TIMEOUT};

/// Default [`Settings::frame_bytes_max`]: 1 MiB.
pub const FRAME_BYTES_MAX: usize = 1 << 20;
/// Default [`Settings::connections_max`].
pub const CONNECTIONS_MAX: usize = 128;
/// Default [`Settings::idle_timeout`]: 15 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default [`Settings::frame_timeout`] and [`Settings::write_timeout`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The longest request frame read; a longer length prefix closes the connection unread.
    pub frame_bytes_max: usize,
    /// Connections served at once; more are accepted and closed at once.
    pub connections_max: usize,
    /// How long a connection may wait between requests.
    pub idle_timeout: Duration,
    /// How long a frame may take to arrive, from its first byte.
    pub frame_timeout: Duration,
    /// How long writing one reply may block.
    pub write_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            frame_bytes_max: FRAME_BYTES_MAX,
            connections_max: CONNECTIONS_MAX,
            idle_timeout: IDLE_TIMEOUT,
            frame_timeout: IO_TIMEOUT,
            write_timeout: IO_TIMEOUT,
        }
    }
}

/// Every counter carbonlink adds to the registry (besides carbon's `cache.queries`, which is
/// in `telemetry::names::ALL`).
pub const COUNTERS: [&str; 25] = [
    "cache.bulk_queries",
    "carbonlink.connections",
    "carbonlink.connectionsRefused",
    "carbonlink.requests",
    "carbonlink.errors",
    "carbonlink.cacheTimeouts",
    "carbonlink.rejected.too_large",
    "carbonlink.rejected.read_timeout",
    "carbonlink.rejected.incomplete_frame",
    "carbonlink.rejected.not_a_dict",
    "carbonlink.rejected.truncated",
    "carbonlink.rejected.forbidden_opcode",
    "carbonlink.rejected.unsupported_opcode",
    "carbonlink.rejected.unsupported_protocol",
    "carbonlink.rejected.too_many_objects",
    "carbonlink.rejected.too_many_values",
    "carbonlink.rejected.too_deep",
    "carbonlink.rejected.stack_underflow",
    "carbonlink.rejected.bad_memo",
    "carbonlink.rejected.bad_number",
    "carbonlink.rejected.int_out_of_range",
    "carbonlink.rejected.bad_string",
    "carbonlink.rejected.bad_append",
    "carbonlink.rejected.bad_setitem",
    "carbonlink.rejected.unhashable_key",
];

/// The counter of connections closed for `reason` (`carbonlink.rejected.<reason>`); every
/// reason has one (tested).
fn rejected_counter(reason: &str) -> Option<&'static str> {
    COUNTERS.iter().find(|c| c.strip_prefix("carbonlink.rejected.") == Some(reason)).copied()
}

#[cfg(test)]
mod tests;
