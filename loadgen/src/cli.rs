//! The command line: one subcommand per wire protocol, built from groups of flags (workload,
//! sending, output); `plaintext` and `statsd` share the output group and the flag names where
//! the meaning is the same (`--target`, `--prefix`, `--name-pattern`, `--seed`, `--rate`,
//! `--duration`). `render` queries a Graphite HTTP API (`--url`, `--query`) and shares the output
//! group, `--connections` and `--duration`. The carbon modes (`plaintext`, `plaintext-udp`,
//! `pickle`, `mixed`) share the workload group and the read-back checks (`--verify`,
//! `--visibility`); the UDP ones share statsd's `--senders`, `--lines-per-datagram` and
//! `--max-datagram`.
//!
//! This module only parses and converts: it opens nothing and reads no clock.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::http::{Method, RenderForm};
use crate::mixed::Shares;
use crate::name::DEFAULT_PATTERN;
use crate::pickle::{Framing, BATCH_POINTS_DEFAULT, FRAME_BYTES_DEFAULT, FRAME_BYTES_MAX};
use crate::plaintext_udp::PlaintextUdpConfig;
use crate::render::{RenderConfig, CLIENTS_MAX};
use crate::run::{RunConfig, CONNECTIONS_MAX};
use crate::sender::{SendConfig, BATCH_BYTES};
use crate::statsd::{self, Mix, StatsdSpec, DATAGRAM_BYTES_DEFAULT, DATAGRAM_BYTES_MAX};
use crate::udp::{UdpConfig, SENDERS_MAX};
use crate::verify;
use crate::visibility;
use crate::workload::{default_start_ts, ValuePattern, WorkloadSpec};

/// Lines in a statsd run given neither `--lines` nor `--duration`.
pub const STATSD_LINES_DEFAULT: u64 = 1_000_000;

/// Requests in a render run given neither `--requests` nor `--duration`.
pub const RENDER_REQUESTS_DEFAULT: u64 = 100;

/// Longest `--duration` or `--accept-timeout`: 30 days.
const SECS_MAX: f64 = 30.0 * 24.0 * 3600.0;

/// Load generator for Graphite back ends: sends a reproducible workload over the carbon wire
/// protocols and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "carbyne-loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Wire protocols.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send carbon plaintext lines (`name value timestamp`) over TCP.
    Plaintext(PlaintextArgs),
    /// Send carbon plaintext lines over UDP, several per datagram.
    PlaintextUdp(PlaintextUdpArgs),
    /// Send carbon pickle frames (lists of `(name, (timestamp, value))`) over TCP.
    Pickle(PickleArgs),
    /// Send plaintext over TCP, pickle over TCP and statsd over UDP at once.
    Mixed(MixedArgs),
    /// Send statsd lines (`key:value|type[|@rate]`) over UDP.
    Statsd(StatsdArgs),
    /// Ask a Graphite HTTP API for `/render` (as Grafana does) in a closed loop and measure
    /// the latency.
    Render(RenderArgs),
}

/// `plaintext` flags.
#[derive(Debug, Args)]
pub struct PlaintextArgs {
    /// Server to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2003")]
    pub target: String,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// Format every line before the clock starts (about 50 bytes of memory a point), so that a
    /// closed-loop run measures how fast the server reads, not how fast this process formats
    /// numbers on the same CPUs. Not with --visibility.
    #[arg(long, help_heading = "Sending", conflicts_with = "visibility")]
    pub pregenerate: bool,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `plaintext-udp` flags.
#[derive(Debug, Args)]
pub struct PlaintextUdpArgs {
    /// Server to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2003")]
    pub target: String,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub send: CarbonUdpSendArgs,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `pickle` flags.
#[derive(Debug, Args)]
pub struct PickleArgs {
    /// Server to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2004")]
    pub target: String,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub framing: FramingArgs,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// `mixed` flags.
#[derive(Debug, Args)]
pub struct MixedArgs {
    /// Where plaintext goes.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2003")]
    pub plaintext_target: String,

    /// Where pickle goes.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2004")]
    pub pickle_target: String,

    /// Where statsd goes.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8125")]
    pub statsd_target: String,

    /// How the traffic divides: the carbon metrics between plaintext and pickle, statsd lines in
    /// proportion to the carbon points, and --rate among the three; 0 leaves a protocol out.
    #[arg(long, value_name = "PROTOCOL=SHARE,...", default_value = "plaintext=60,pickle=30,statsd=10", value_parser = Shares::parse)]
    pub share: Shares,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub framing: FramingArgs,

    #[command(flatten)]
    pub statsd: MixedStatsdArgs,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// The statsd part of a mixed run.
#[derive(Debug, Args)]
#[command(next_help_heading = "statsd part")]
pub struct MixedStatsdArgs {
    /// Distinct statsd keys.
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub statsd_keys: u64,

    /// Weights of the statsd types among the keys, as `statsd --mix`.
    #[arg(long, value_name = "TYPE=WEIGHT,...", default_value = "c=40,ms=30,g=20,s=10", value_parser = Mix::parse)]
    pub statsd_mix: Mix,

    /// statsd key template, as `statsd --name-pattern` ({prefix} is --prefix).
    #[arg(long, value_name = "TEMPLATE", default_value = statsd::DEFAULT_PATTERN)]
    pub statsd_name_pattern: String,

    /// statsd sender threads, each with its own UDP socket.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=SENDERS_MAX as u64)
    )]
    pub senders: usize,

    /// Most statsd lines per datagram.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub lines_per_datagram: usize,

    /// Most bytes per statsd datagram.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DATAGRAM_BYTES_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=DATAGRAM_BYTES_MAX as u64)
    )]
    pub max_datagram: usize,
}

impl MixedStatsdArgs {
    /// The statsd workload's numbers (the other statsd settings at their `statsd` defaults).
    pub fn spec(&self, seed: u64) -> StatsdSpec {
        StatsdSpec {
            n_keys: self.statsd_keys,
            mix: self.statsd_mix,
            sampled_fraction: 0.1,
            sample_rate: 0.5,
            gauge_delta_fraction: 0.25,
            n_set_members: 100,
            seed,
            lines_per_datagram: self.lines_per_datagram,
            datagram_bytes_max: self.max_datagram,
        }
    }
}

/// Pickle framing.
#[derive(Debug, Args)]
#[command(next_help_heading = "Pickle")]
pub struct FramingArgs {
    /// Most points per pickle frame.
    #[arg(long, value_name = "N", default_value_t = BATCH_POINTS_DEFAULT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub batch_points: usize,

    /// Most bytes per pickle (the length prefix's value): carbon refuses frames over its
    /// PICKLE_RECEIVER_MAX_LENGTH.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = FRAME_BYTES_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=FRAME_BYTES_MAX as u64)
    )]
    pub max_frame: usize,
}

impl FramingArgs {
    /// The framing these flags ask for.
    pub fn framing(&self) -> Framing {
        Framing { batch_points: self.batch_points, frame_bytes_max: self.max_frame }
    }
}

/// How to send carbon plaintext over UDP.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct CarbonUdpSendArgs {
    /// Sender threads, each with its own UDP socket; the metrics are split among them.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=SENDERS_MAX as u64)
    )]
    pub senders: usize,

    /// Most lines per datagram.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub lines_per_datagram: usize,

    /// Most bytes per datagram: a line that would not fit starts the next one.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DATAGRAM_BYTES_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=DATAGRAM_BYTES_MAX as u64)
    )]
    pub max_datagram: usize,

    /// Offered points per second, all senders together (open loop) [default: as fast as the
    /// senders go (closed loop)].
    #[arg(long, value_name = "POINTS_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Stop sending after this many seconds even if points remain [default: send every point].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
}

impl CarbonUdpSendArgs {
    /// The run configuration these flags ask for.
    pub fn config(&self, quiet: bool) -> PlaintextUdpConfig {
        PlaintextUdpConfig {
            n_senders: self.senders,
            lines_per_datagram: self.lines_per_datagram,
            datagram_bytes_max: self.max_datagram,
            rate_per_s: self.rate,
            deadline: self.duration,
            quiet,
            progress_unit: "points",
        }
    }
}

/// Reading the run back through the render API.
#[derive(Debug, Args)]
#[command(next_help_heading = "Checks")]
pub struct CheckArgs {
    /// After the run, read every series sent back from this Graphite HTTP API (http:// only; a
    /// path is a prefix) and count points found, missing and wrong.
    #[arg(long, value_name = "URL")]
    pub verify: Option<String>,

    /// Concurrent render requests while verifying.
    #[arg(
        long,
        value_name = "N",
        default_value_t = verify::CONNECTIONS_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=verify::CONNECTIONS_MAX as u64)
    )]
    pub verify_connections: usize,

    /// Most series names per render request.
    #[arg(long, value_name = "N", default_value_t = verify::BATCH_NAMES_DEFAULT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub verify_batch: usize,

    /// Longest one render request may take.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub verify_timeout: Duration,

    /// Ask again for missing points until this long after the verification started (points may
    /// still be on their way: UDP buffers, a server's queues).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs_or_zero)]
    pub verify_wait: Duration,

    /// Relative difference between the value sent and the value read still counted as found
    /// (float formatting).
    #[arg(long, value_name = "FRACTION", default_value_t = 1e-9, value_parser = parse_fraction)]
    pub verify_tolerance: f64,

    /// Follow about N points and time how long each takes to show through the render API
    /// (polled while the run goes on, at the --verify URL).
    #[arg(long, value_name = "N", requires = "verify", value_parser = clap::value_parser!(u64).range(1..=visibility::SAMPLES_MAX))]
    pub visibility: Option<u64>,

    /// How long a followed point may take to show before it counts as not visible.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub visibility_timeout: Duration,
}

/// What to send.
#[derive(Debug, Args)]
#[command(next_help_heading = "Workload")]
pub struct WorkloadArgs {
    /// Distinct metrics (cardinality).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics: u64,

    /// Points per metric.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub points: u64,

    /// Text substituted for {prefix} in --name-pattern.
    #[arg(long, default_value = "loadgen")]
    pub prefix: String,

    /// Metric name template: {prefix}, {i} = metric index, {h} = index / 100, {m} = index % 100
    /// as two digits, {d} = index / 10000. Must contain {i}, or {h} and {m}. Tags after a ';':
    /// '{prefix}.cpu{m};host=h{h};dc=dc{d}'.
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_PATTERN)]
    pub name_pattern: String,

    /// Timestamp of each metric's first point, Unix seconds [default: now - points x interval,
    /// rounded down to a multiple of the interval].
    #[arg(long, value_name = "TS")]
    pub start: Option<u64>,

    /// Seconds between a metric's consecutive timestamps.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,

    /// Seed of the value generator (SplitMix64): the same seed sends the same values.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Values: random (seeded, 0 to 1000), constant:V (V; constant alone: 1), sequence (the
    /// point index), sine:N (a wave of N points between 0 and 1000; sine alone: 60).
    #[arg(long, value_name = "PATTERN", default_value = "random", value_parser = ValuePattern::parse)]
    pub values: ValuePattern,
}

impl WorkloadArgs {
    /// The workload's numbers, the default start taken relative to `now_ts`.
    pub fn spec(&self, now_ts: u64) -> WorkloadSpec {
        WorkloadSpec {
            n_metrics: self.metrics,
            n_points: self.points,
            start_ts: self.start.unwrap_or_else(|| default_start_ts(now_ts, self.points, self.interval)),
            interval_s: self.interval,
            seed: self.seed,
            values: self.values,
        }
    }
}

/// How to send.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct SendArgs {
    /// TCP connections, one thread each; the metrics are split among them.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=CONNECTIONS_MAX as u64)
    )]
    pub connections: usize,

    /// Offered points per second, all connections together (open loop) [default: as fast as the
    /// server reads (closed loop)].
    #[arg(long, value_name = "POINTS_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Stop sending after this many seconds even if points remain [default: send every point].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Seconds to wait for the server: to close after our half-close, and for any one write to
    /// make progress.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub accept_timeout: Duration,
}

impl SendArgs {
    /// The run configuration these flags ask for.
    pub fn run_config(&self, quiet: bool) -> RunConfig {
        RunConfig {
            n_connections: self.connections,
            send: SendConfig {
                batch_bytes: BATCH_BYTES,
                rate_per_s: self.rate,
                deadline: self.duration,
                accept_timeout: self.accept_timeout,
            },
            quiet,
            progress_unit: "points",
        }
    }
}

/// What to print.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `statsd` flags.
#[derive(Debug, Args)]
pub struct StatsdArgs {
    /// Server to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8125")]
    pub target: String,

    #[command(flatten)]
    pub workload: StatsdWorkloadArgs,

    #[command(flatten)]
    pub send: StatsdSendArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// What to send over statsd.
#[derive(Debug, Args)]
#[command(next_help_heading = "Workload")]
pub struct StatsdWorkloadArgs {
    /// Distinct keys (cardinality); each key keeps one type.
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,

    /// Weights of the types among the keys: c (counter), ms (timer), g (gauge), s (set).
    #[arg(long, value_name = "TYPE=WEIGHT,...", default_value = "c=40,ms=30,g=20,s=10", value_parser = Mix::parse)]
    pub mix: Mix,

    /// Fraction of counter lines sent with a sample rate (`|@RATE`).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1, value_parser = parse_fraction)]
    pub sampled: f64,

    /// The sample rate of those lines, more than 0 and at most 1.
    #[arg(long, value_name = "RATE", default_value_t = 0.5, value_parser = parse_sample_rate)]
    pub sample_rate: f64,

    /// Fraction of gauge lines that are +/- deltas.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.25, value_parser = parse_fraction)]
    pub gauge_deltas: f64,

    /// Distinct members each set key draws from.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub set_members: u64,

    /// Text substituted for {prefix} in --name-pattern.
    #[arg(long, default_value = "loadgen")]
    pub prefix: String,

    /// Key template: {prefix}, {i} = key index, {h} = index / 100, {m} = index % 100 as two
    /// digits. Must contain {i}, or {h} and {m}; no ':' or '|'.
    #[arg(long, value_name = "TEMPLATE", default_value = statsd::DEFAULT_PATTERN)]
    pub name_pattern: String,

    /// Seed of the line generator (SplitMix64): the same seed sends the same lines.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Most lines per datagram.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub lines_per_datagram: usize,

    /// Most bytes per datagram: a line that would not fit starts the next one.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DATAGRAM_BYTES_DEFAULT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=DATAGRAM_BYTES_MAX as u64)
    )]
    pub max_datagram: usize,
}

impl StatsdWorkloadArgs {
    /// The workload's numbers.
    pub fn spec(&self) -> StatsdSpec {
        StatsdSpec {
            n_keys: self.keys,
            mix: self.mix,
            sampled_fraction: self.sampled,
            sample_rate: self.sample_rate,
            gauge_delta_fraction: self.gauge_deltas,
            n_set_members: self.set_members,
            seed: self.seed,
            lines_per_datagram: self.lines_per_datagram,
            datagram_bytes_max: self.max_datagram,
        }
    }
}

/// How to send statsd.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct StatsdSendArgs {
    /// Sender threads, each with its own UDP socket; lines are dealt out in turn.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=SENDERS_MAX as u64)
    )]
    pub senders: usize,

    /// Lines to send in all [default: 1000000, or unbounded with --duration].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub lines: Option<u64>,

    /// Offered lines per second, all senders together (open loop) [default: as fast as the
    /// senders go (closed loop)].
    #[arg(long, value_name = "LINES_PER_SEC", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Stop sending after this many seconds even if lines remain.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Format the datagrams before the clock starts (128 MiB of them in all) and send them over
    /// and over until --duration ends, so that a flat-out run measures the server, not this
    /// process formatting numbers on the same CPUs.
    #[arg(long, requires = "duration", conflicts_with = "lines")]
    pub pregenerate: bool,
}

impl StatsdSendArgs {
    /// The run configuration these flags ask for.
    pub fn udp_config(&self, quiet: bool) -> UdpConfig {
        let default_lines = self.duration.is_none().then_some(STATSD_LINES_DEFAULT);
        UdpConfig {
            n_senders: self.senders,
            n_lines: self.lines.or(default_lines),
            rate_per_s: self.rate,
            deadline: self.duration,
            pregenerate: self.pregenerate,
            quiet,
            progress_unit: "lines",
        }
    }
}

/// `render` flags.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Base URL of the server's HTTP API (http:// only; a path is a prefix, as graphite-web's
    /// URL_PREFIX).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    #[command(flatten)]
    pub request: RenderRequestArgs,

    #[command(flatten)]
    pub send: RenderSendArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// What to ask for.
#[derive(Debug, Args)]
#[command(next_help_heading = "Request")]
pub struct RenderRequestArgs {
    /// A render target expression (graphite's `target=`), e.g. 'sumSeries(a.*.cpu)'; repeat for
    /// several targets in one request, as a Grafana panel with several queries sends them.
    #[arg(long = "query", value_name = "EXPR", required = true)]
    pub queries: Vec<String>,

    /// `from` parameter (graphite's time language: -24h, epoch seconds, ...).
    #[arg(long, value_name = "TIME", default_value = "-24h")]
    pub from: String,

    /// `until` parameter.
    #[arg(long, value_name = "TIME", default_value = "now")]
    pub until: String,

    /// `format` parameter.
    #[arg(long, value_name = "FORMAT", default_value = "json")]
    pub format: String,

    /// `maxDataPoints` parameter (Grafana sends the panel's width in pixels) [default: not sent].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_data_points: Option<u64>,

    /// POST (the parameters as a form body, as Grafana sends them) or GET (in the query string).
    #[arg(long, value_name = "METHOD", default_value = "post", value_parser = parse_method)]
    pub method: Method,

    /// Path of the render endpoint, under the URL's path.
    #[arg(long, value_name = "PATH", default_value = "/render", value_parser = parse_path)]
    pub path: String,
}

impl RenderRequestArgs {
    /// The request's parameters.
    pub fn form(&self) -> RenderForm {
        RenderForm {
            targets: self.queries.clone(),
            from: Some(self.from.clone()),
            until: Some(self.until.clone()),
            format: Some(self.format.clone()),
            max_data_points: self.max_data_points,
        }
    }
}

/// How to send render requests.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sending")]
pub struct RenderSendArgs {
    /// Concurrent clients, each with one keep-alive connection and one request in flight.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=CLIENTS_MAX as u64)
    )]
    pub connections: usize,

    /// Requests in all [default: 100, or unbounded with --duration].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Start no request after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,

    /// Longest one request may take, connect included; a slower one counts as failed.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout: Duration,
}

impl RenderSendArgs {
    /// The run configuration these flags ask for.
    pub fn render_config(&self, quiet: bool) -> RenderConfig {
        let default_requests = self.duration.is_none().then_some(RENDER_REQUESTS_DEFAULT);
        RenderConfig {
            n_connections: self.connections,
            n_requests: self.requests.or(default_requests),
            deadline: self.duration,
            timeout: self.timeout,
            quiet,
        }
    }
}

fn parse_method(text: &str) -> Result<Method, String> {
    match text.to_ascii_lowercase().as_str() {
        "get" => Ok(Method::Get),
        "post" => Ok(Method::Post),
        _ => Err("must be get or post".to_owned()),
    }
}

fn parse_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') && !text.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        Ok(text.to_owned())
    } else {
        Err("must start with / and contain no whitespace, ? or #".to_owned())
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

fn parse_sample_rate(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err("must be more than 0 and at most 1".to_owned())
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err("the rate must be a positive number of points per second".to_owned())
    }
}

fn parse_secs_or_zero(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if (0.0..=SECS_MAX).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("must be from 0 to {SECS_MAX} seconds"))
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs > 0.0 && secs <= SECS_MAX {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("must be more than 0 and at most {SECS_MAX} seconds"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<PlaintextArgs, clap::Error> {
        let argv = ["carbyne-loadgen", "plaintext"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Plaintext(args) => args,
            _ => unreachable!("parsed as plaintext"),
        })
    }

    fn parse_statsd(args: &[&str]) -> Result<StatsdArgs, clap::Error> {
        let argv = ["carbyne-loadgen", "statsd"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Statsd(args) => args,
            _ => unreachable!("parsed as statsd"),
        })
    }

    fn parse_render(args: &[&str]) -> Result<RenderArgs, clap::Error> {
        let argv = ["carbyne-loadgen", "render"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Render(args) => args,
            _ => unreachable!("parsed as render"),
        })
    }

    #[test]
    fn render_defaults() {
        let args = parse_render(&["--query=a.b"]).unwrap();
        assert_eq!(args.url, "http://127.0.0.1:8080");
        let want = RenderForm {
            targets: vec!["a.b".to_owned()],
            from: Some("-24h".to_owned()),
            until: Some("now".to_owned()),
            format: Some("json".to_owned()),
            max_data_points: None,
        };
        assert_eq!(args.request.form(), want);
        assert_eq!((args.request.method, args.request.path.as_str()), (Method::Post, "/render"));
        let want = RenderConfig {
            n_connections: 1,
            n_requests: Some(100),
            deadline: None,
            timeout: Duration::from_secs(60),
            quiet: false,
        };
        assert_eq!(args.send.render_config(false), want);
        // A duration alone runs until it ends; with --requests too, whichever comes first.
        assert_eq!(parse_render(&["--query=a", "--duration=2"]).unwrap().send.render_config(true).n_requests, None);
        let both = parse_render(&["--query=a", "--duration=2", "--requests=5"]).unwrap();
        assert_eq!(both.send.render_config(true).n_requests, Some(5));
    }

    #[test]
    fn render_flags() {
        let args = parse_render(&[
            "--url=http://g:81/graphite",
            "--query=sumSeries(a.*)",
            "--query",
            "b",
            "--from=1700000000",
            "--until=-1min",
            "--format=csv",
            "--max-data-points=1000",
            "--method=GET",
            "--path=/render/",
            "--connections=4",
            "--requests=10",
            "--duration=1.5",
            "--timeout=0.5",
            "--json",
            "--quiet",
        ])
        .unwrap();
        let form = args.request.form();
        assert_eq!(form.targets, ["sumSeries(a.*)", "b"]);
        assert_eq!(
            (form.from.as_deref(), form.until.as_deref(), form.format.as_deref()),
            (Some("1700000000"), Some("-1min"), Some("csv"))
        );
        assert_eq!(form.max_data_points, Some(1000));
        assert_eq!((args.request.method, args.request.path.as_str()), (Method::Get, "/render/"));
        let want = RenderConfig {
            n_connections: 4,
            n_requests: Some(10),
            deadline: Some(Duration::from_millis(1_500)),
            timeout: Duration::from_millis(500),
            quiet: true,
        };
        assert_eq!(args.send.render_config(args.output.quiet), want);
        assert!(args.output.json);
    }

    #[test]
    fn render_refused_flags() {
        assert!(parse_render(&[]).is_err(), "--query is required");
        for bad in [
            "--max-data-points=0",
            "--method=put",
            "--path=render",
            "--path=/render?x=1",
            "--connections=0",
            "--connections=100000",
            "--requests=0",
            "--duration=0",
            "--timeout=0",
        ] {
            assert!(parse_render(&["--query=a", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn statsd_defaults() {
        let args = parse_statsd(&[]).unwrap();
        assert_eq!(args.target, "127.0.0.1:8125");
        let spec = args.workload.spec();
        let want = StatsdSpec {
            n_keys: 1_000,
            mix: Mix::default(),
            sampled_fraction: 0.1,
            sample_rate: 0.5,
            gauge_delta_fraction: 0.25,
            n_set_members: 100,
            seed: 1,
            lines_per_datagram: 1,
            datagram_bytes_max: 1432,
        };
        assert_eq!(spec, want);
        let w = &args.workload;
        assert_eq!((w.prefix.as_str(), w.name_pattern.as_str()), ("loadgen", statsd::DEFAULT_PATTERN));
        let want = UdpConfig {
            n_senders: 1,
            n_lines: Some(1_000_000),
            rate_per_s: None,
            deadline: None,
            pregenerate: false,
            quiet: false,
            progress_unit: "lines",
        };
        assert_eq!(args.send.udp_config(false), want);
        // A duration alone sends until it ends; with --lines too, whichever comes first.
        assert_eq!(parse_statsd(&["--duration=2"]).unwrap().send.udp_config(true).n_lines, None);
        assert_eq!(parse_statsd(&["--duration=2", "--lines=5"]).unwrap().send.udp_config(true).n_lines, Some(5));
    }

    #[test]
    fn statsd_flags() {
        let args = parse_statsd(&[
            "--target=127.0.0.1:9",
            "--keys=10",
            "--mix=c=1,s=1",
            "--sampled=0",
            "--sample-rate=0.1",
            "--gauge-deltas=1",
            "--set-members=7",
            "--seed=3",
            "--lines-per-datagram=20",
            "--max-datagram=65507",
            "--senders=3",
            "--lines=100",
            "--rate=1000",
            "--duration=1.5",
            "--json",
            "--quiet",
        ])
        .unwrap();
        let s = args.workload.spec();
        assert_eq!((s.n_keys, s.mix.to_string(), s.seed), (10, "c=1,ms=0,g=0,s=1".to_owned(), 3));
        assert_eq!((s.sampled_fraction, s.sample_rate, s.gauge_delta_fraction, s.n_set_members), (0.0, 0.1, 1.0, 7));
        assert_eq!((s.lines_per_datagram, s.datagram_bytes_max), (20, 65_507));
        let cfg = args.send.udp_config(args.output.quiet);
        let want = UdpConfig {
            n_senders: 3,
            n_lines: Some(100),
            rate_per_s: Some(1000.0),
            deadline: Some(Duration::from_millis(1_500)),
            pregenerate: false,
            quiet: true,
            progress_unit: "lines",
        };
        assert_eq!(cfg, want);
        assert!(args.output.json);
        let cfg = parse_statsd(&["--duration=2", "--pregenerate"]).unwrap().send.udp_config(true);
        assert!(cfg.pregenerate && cfg.n_lines.is_none());
    }

    #[test]
    fn statsd_refused_flags() {
        for bad in [
            "--keys=0",
            "--mix=x=1",
            "--mix=c=0",
            "--sampled=1.5",
            "--sample-rate=0",
            "--sample-rate=2",
            "--gauge-deltas=-1",
            "--set-members=0",
            "--lines-per-datagram=0",
            "--max-datagram=0",
            "--max-datagram=65508",
            "--senders=0",
            "--senders=100000",
            "--lines=0",
            "--rate=0",
            "--duration=0",
        ] {
            assert!(parse_statsd(&[bad]).is_err(), "{bad}");
        }
        // Pregenerated datagrams repeat: only a timed run, not one counted in lines.
        assert!(parse_statsd(&["--pregenerate"]).is_err());
        assert!(parse_statsd(&["--pregenerate", "--duration=1", "--lines=5"]).is_err());
    }

    fn parse_cmd(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(["carbyne-loadgen"].iter().chain(args)).map(|cli| cli.command)
    }

    #[test]
    fn carbon_modes_and_checks() {
        let Command::PlaintextUdp(args) = parse_cmd(&["plaintext-udp", "--values=sine:5"]).unwrap() else {
            panic!("parsed as plaintext-udp")
        };
        assert_eq!(args.target, "127.0.0.1:2003");
        assert_eq!(args.workload.spec(0).values, ValuePattern::Sine { period_points: 5 });
        let want = PlaintextUdpConfig {
            n_senders: 1,
            lines_per_datagram: 1,
            datagram_bytes_max: 1432,
            rate_per_s: None,
            deadline: None,
            quiet: true,
            progress_unit: "points",
        };
        assert_eq!(args.send.config(true), want);
        assert!(args.check.verify.is_none() && args.check.visibility.is_none());
        let Command::Pickle(args) = parse_cmd(&[
            "pickle",
            "--batch-points=7",
            "--max-frame=4096",
            "--verify=http://h:81",
            "--verify-connections=2",
            "--verify-batch=9",
            "--verify-timeout=3",
            "--verify-wait=0",
            "--verify-tolerance=0",
            "--visibility=40",
            "--visibility-timeout=2.5",
        ])
        .unwrap() else {
            panic!("parsed as pickle")
        };
        assert_eq!(args.target, "127.0.0.1:2004");
        assert_eq!(args.framing.framing(), Framing { batch_points: 7, frame_bytes_max: 4096 });
        let c = &args.check;
        assert_eq!((c.verify.as_deref(), c.verify_connections, c.verify_batch), (Some("http://h:81"), 2, 9));
        assert_eq!(
            (c.verify_timeout, c.verify_wait, c.verify_tolerance),
            (Duration::from_secs(3), Duration::ZERO, 0.0)
        );
        assert_eq!((c.visibility, c.visibility_timeout), (Some(40), Duration::from_millis(2_500)));
        let Command::Mixed(args) = parse_cmd(&["mixed", "--share=pickle=1,statsd=3", "--senders=2"]).unwrap() else {
            panic!("parsed as mixed")
        };
        assert_eq!(args.share, Shares { plaintext: 0, pickle: 1, statsd: 3 });
        assert_eq!((args.statsd.senders, args.statsd.statsd_keys, args.send.connections), (2, 1_000, 4));
        assert_eq!(args.statsd.spec(9).seed, 9);
        let Command::Mixed(args) = parse_cmd(&["mixed"]).unwrap() else { panic!("parsed as mixed") };
        assert_eq!(args.share, Shares::default());
        for bad in [
            &["plaintext", "--visibility=5"][..],
            &["plaintext", "--values=walk"],
            &["plaintext-udp", "--senders=0"],
            &["plaintext-udp", "--max-datagram=70000"],
            &["pickle", "--batch-points=0"],
            &["pickle", "--max-frame=0"],
            &["pickle", "--verify=x", "--verify-connections=0"],
            &["pickle", "--verify=x", "--verify-tolerance=2"],
            &["mixed", "--share=plaintext=0"],
            &["mixed", "--statsd-mix=x=1"],
        ] {
            assert!(parse_cmd(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.target, "127.0.0.1:2003");
        let spec = args.workload.spec(1_700_000_003);
        let want = WorkloadSpec {
            n_metrics: 10_000,
            n_points: 100,
            start_ts: 1_699_999_000,
            interval_s: 10,
            seed: 1,
            values: ValuePattern::Random,
        };
        assert_eq!(spec, want);
        assert_eq!((args.workload.prefix.as_str(), args.workload.name_pattern.as_str()), ("loadgen", DEFAULT_PATTERN));
        let cfg = args.send.run_config(args.output.quiet);
        assert_eq!(cfg.n_connections, 4);
        assert_eq!(cfg.send.rate_per_s, None);
        assert_eq!(cfg.send.deadline, None);
        assert_eq!(cfg.send.accept_timeout, Duration::from_secs(60));
        assert!(!args.output.json && !args.output.quiet);
    }

    #[test]
    fn flags() {
        let args = parse(&[
            "--target=127.0.0.1:9",
            "--metrics=5",
            "--points=2",
            "--start=100",
            "--interval=60",
            "--seed=7",
            "--connections=2",
            "--rate=250.5",
            "--duration=1.5",
            "--accept-timeout=0.25",
            "--json",
            "--quiet",
        ])
        .unwrap();
        let spec = args.workload.spec(0);
        assert_eq!((spec.n_metrics, spec.n_points, spec.start_ts, spec.interval_s, spec.seed), (5, 2, 100, 60, 7));
        let cfg = args.send.run_config(args.output.quiet);
        assert_eq!(cfg.n_connections, 2);
        assert_eq!(cfg.send.rate_per_s, Some(250.5));
        assert_eq!(cfg.send.deadline, Some(Duration::from_millis(1_500)));
        assert_eq!(cfg.send.accept_timeout, Duration::from_millis(250));
        assert!(cfg.quiet && args.output.json);
    }

    #[test]
    fn refused_flags() {
        for bad in [
            "--metrics=0",
            "--points=0",
            "--interval=0",
            "--connections=0",
            "--connections=100000",
            "--rate=0",
            "--rate=-5",
            "--rate=inf",
            "--rate=NaN",
            "--duration=0",
            "--duration=x",
            "--accept-timeout=-1",
            "--accept-timeout=1e12",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }
}
