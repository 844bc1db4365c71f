//! The command line: argument definitions (clap) and the subcommands that are not the server.

pub mod check_config;
pub mod doctor;
pub mod serve;
pub mod whisper;

use clap::{Parser, Subcommand};

/// Carbyne: carbon-cache, statsd and the Graphite render API in one binary.
#[derive(Debug, Parser)]
#[command(name = "carbyne", version, about)]
pub struct Cli {
    /// What to do (default: serve with the embedded defaults or the carbon.conf the
    /// GRAPHITE_* environment names).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and write whisper files (the whisper-* tools).
    #[command(subcommand)]
    Whisper(whisper::WhisperCommand),
    /// Run the appliance: receivers, cache and writers, until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Load carbon.conf and the storage rules as the server would and print them.
    CheckConfig(check_config::CheckConfigArgs),
    /// Check this host against what the configuration needs and tuning/ recommends (io_uring,
    /// locked memory, socket buffers, accept queues, file limits, dirty pages, disk, cores).
    Doctor(doctor::DoctorArgs),
}
