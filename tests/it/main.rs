//! The integration test binary: one binary, one module per area.
#![allow(clippy::unwrap_used)]

mod cli;
mod http;
mod reference_cli;
mod reference_render;
mod reference_statsd;
mod reference_whisper;
mod rng;
mod server;
mod whisper_model;
