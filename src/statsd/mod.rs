//! The statsd server: etsy statsd 0.9's line protocol, aggregation, flush and graphite naming,
//! running inside Carbyne so that flushed points go straight into the cache.
//!
//! Owns: the line parser (`parse.rs`) with JavaScript's number rules (`number.rs`), the
//! per-ingest-thread partial aggregates (`partial.rs`, in `arrival_map.rs`'s maps), the merged
//! state and its flush (`state.rs`), the flush thread that collects partials and hands points to
//! the cache (`flusher.rs`), and the admin interface on STATSD_ADMIN_PORT (`admin.rs`,
//! `inspect.rs`).
//!
//! Leaves out: sockets and event loops (the ingest backends feed [`Partial`]s), the cache and
//! metric-name validation (flushed names go through the same path as carbon points).

pub mod admin;
mod arrival_map;
pub mod flusher;
pub mod inspect;
pub mod number;
pub mod parse;
pub mod partial;
pub mod state;

pub use admin::{AdminRequest, Reply};
pub use flusher::{channels, CoreStatsd, Flusher};
pub use parse::{parse_line, Sample};
pub use partial::{GaugePartial, Partial, TimerPartial};
pub use state::{BackendStats, Flush, Kind, State};
