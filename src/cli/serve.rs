//! `carbyne serve` (and `carbyne` with no arguments): run the appliance until SIGTERM/SIGINT.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use carbyne::config::Config;
use carbyne::server::{Overrides, Server};
use clap::Args;

/// Arguments of `serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    source: super::check_config::ConfigArgs,
    /// Receiver threads (INGEST_THREADS; default: one per core).
    #[arg(long)]
    ingest_threads: Option<usize>,
    /// Writer threads (WRITER_THREADS; default: one per two cores).
    #[arg(long)]
    writer_threads: Option<usize>,
    /// Listen on ports the kernel picks instead of the configured ones (printed at start-up).
    #[arg(long)]
    ephemeral_ports: bool,
    /// Seconds to wait for the writers at shutdown before giving up (points still cached are
    /// then reported).
    #[arg(long, default_value_t = 600)]
    shutdown_timeout: u64,
}

/// Runs the server until a stop signal.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> Result<()> {
    // Before anything can be sent to us: a stop signal that arrived between "listening" and
    // the handlers would kill the process with points still in the cache.
    let signals = Signals::install()?;
    let config = args.source.load()?;
    report_config(&config, out)?;
    let data_dir = config.cache.local_data_dir.clone();
    let overrides = Overrides {
        ingest_threads: args.ingest_threads,
        writer_threads: args.writer_threads,
        ephemeral_ports: args.ephemeral_ports,
    };
    let server = Server::start(config, &overrides)?;
    let show = |a: Option<std::net::SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    let (ingest, writers, shards) = server.threads;
    writeln!(out, "carbyne: storing whisper files under {}", data_dir.display())?;
    writeln!(
        out,
        "carbyne: listening plaintext-tcp={} pickle-tcp={} plaintext-udp={} statsd-udp={} statsd-tcp={} statsd-admin={} http={} carbonlink={}",
        show(server.addresses.line),
        show(server.addresses.pickle),
        show(server.addresses.udp),
        show(server.addresses.statsd_udp),
        show(server.addresses.statsd_tcp),
        show(server.addresses.statsd_admin),
        show(server.addresses.http),
        show(server.addresses.carbonlink),
    )?;
    if server.addresses.udp.is_some() {
        writeln!(out, "carbyne: UDP receive buffer granted: {} bytes per socket", server.udp_buffer_granted)?;
    }
    let backend = server.backend.name();
    writeln!(out, "carbyne: {ingest} ingest threads ({backend} backend), {writers} writers, {shards} cache shards")?;
    out.flush()?;
    let mut last_reload = Instant::now();
    let mut last_lists = Instant::now();
    while !signals.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let hup = signals.hup.swap(0, Ordering::Relaxed) > 0;
        if hup || last_reload.elapsed() >= Duration::from_secs(60) {
            // As carbon: re-read the storage rules on SIGHUP and every 60 s.
            if let Err(e) = server.reload_storage_rules() {
                eprintln!("carbyne: storage rules not reloaded, keeping the current ones: {e}");
            }
            last_reload = Instant::now();
        }
        if last_lists.elapsed() >= Duration::from_secs(10) {
            for problem in server.reload_lists() {
                eprintln!("carbyne: {problem}");
            }
            last_lists = Instant::now();
        }
    }
    writeln!(out, "carbyne: stopping: draining receivers and writing every cached point")?;
    out.flush()?;
    server.shutdown(Duration::from_secs(args.shutdown_timeout));
    writeln!(out, "carbyne: stopped")?;
    Ok(())
}

fn report_config(config: &Config, out: &mut dyn Write) -> Result<()> {
    match &config.carbon_conf {
        Some(p) => writeln!(out, "carbyne: configuration {} (instance {})", p.display(), config.cache.instance)?,
        None => writeln!(out, "carbyne: no carbon.conf: embedded defaults")?,
    }
    for key in &config.ignored_keys {
        writeln!(out, "carbyne: ignored: {key}")?;
    }
    for key in &config.unknown_keys {
        writeln!(out, "carbyne: unknown key: {key}")?;
    }
    for warning in &config.warnings {
        writeln!(out, "carbyne: warning: {warning}")?;
    }
    Ok(())
}

struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGTERM, Arc::clone(&stop))?;
        signal_hook::flag::register(SIGINT, Arc::clone(&stop))?;
        let hup = Arc::new(AtomicUsize::new(0));
        signal_hook::flag::register_usize(SIGHUP, Arc::clone(&hup), 1)?;
        Ok(Signals { stop, hup })
    }
}

impl ServeArgs {
    /// The arguments `carbyne` runs with when given none.
    pub fn default_args() -> ServeArgs {
        ServeArgs { shutdown_timeout: 600, ..ServeArgs::default() }
    }
}
