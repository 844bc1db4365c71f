//! The integration test binary: one binary, one module per area.
#![allow(clippy::unwrap_used)]

mod carbonlink;
mod cli;
mod cluster;
mod http;
mod loadgen_verify;
mod reference_cli;
mod reference_cluster;
mod reference_relay;
mod reference_render;
mod reference_statsd;
mod reference_whisper;
mod rng;
mod server;
mod tags;
mod whisper_model;
