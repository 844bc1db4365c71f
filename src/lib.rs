//! Carbyne: a Graphite back end (carbon-cache, statsd and the render API) in one process.
//!
//! This library holds every module; `main.rs` is the command line around it. See
//! ARCHITECTURE.md for the code map and the invariant each module keeps.

pub mod cache;
pub mod carbonlink;
pub mod config;
pub mod http;
pub mod index;
pub mod ingest;
pub mod protocol;
pub mod pyfmt;
pub mod render;
pub mod server;
pub mod statsd;
pub mod telemetry;
pub mod whisper;
pub mod writer;
