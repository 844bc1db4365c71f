//! `carbyne-loadgen` entry point: parse flags, build the workload, run it, print the report.
//! Errors become `anyhow` errors here and nowhere else; a run that the server did not fully
//! accept (plaintext), whose datagrams the kernel did not all take (statsd), or that had failed
//! requests or responses other than 200 (render), prints its report and then exits with an error.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;

use carbyne_loadgen::cli::{Cli, Command, PlaintextArgs, RenderArgs, StatsdArgs};
use carbyne_loadgen::http::{build_request, BaseUrl};
use carbyne_loadgen::render_report::RenderInfo;
use carbyne_loadgen::{plaintext, render, udp, NamePattern, RenderReport, StatsdWorkload, Workload};

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Plaintext(args) => run_plaintext(&args),
        Command::Statsd(args) => run_statsd(&args),
        Command::Render(args) => run_render(&args),
    }
}

fn run_plaintext(args: &PlaintextArgs) -> Result<()> {
    let target = resolve(&args.target, "--target")?;
    let names = NamePattern::parse(&args.workload.name_pattern, &args.workload.prefix)
        .context("invalid --name-pattern or --prefix")?;
    let workload = Workload::new(names, args.workload.spec(unix_now()?)).context("invalid workload")?;
    let cfg = args.send.run_config(args.output.quiet);
    let report = plaintext::run(target, &workload, &cfg)
        .with_context(|| format!("cannot open {} connections to {target}", cfg.n_connections))?;
    if args.output.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if !report.is_clean() {
        bail!("{} problem(s): the server did not accept everything sent", report.problems.len());
    }
    Ok(())
}

fn run_statsd(args: &StatsdArgs) -> Result<()> {
    let target = resolve(&args.target, "--target")?;
    let w = &args.workload;
    let names = NamePattern::parse(&w.name_pattern, &w.prefix).context("invalid --name-pattern or --prefix")?;
    let workload = StatsdWorkload::new(names, w.spec()).context("invalid statsd workload")?;
    let cfg = args.send.udp_config(args.output.quiet);
    let report = udp::run(target, &workload, &cfg)
        .with_context(|| format!("cannot open {} UDP sockets to {target}", cfg.n_senders))?;
    if args.output.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if !report.is_clean() {
        bail!("{} datagram(s) could not be sent", report.send_errors);
    }
    Ok(())
}

fn run_render(args: &RenderArgs) -> Result<()> {
    let url = BaseUrl::parse(&args.url).with_context(|| format!("invalid --url {:?}", args.url))?;
    let target = resolve(&url.socket_addr, "--url")?;
    let form = args.request.form();
    let request = build_request(args.request.method, &url, &args.request.path, &form.encode());
    let cfg = args.send.render_config(args.output.quiet);
    let path = format!("{}{}", url.path_prefix, args.request.path);
    let info = RenderInfo::new(&args.url, target, args.request.method, path, form, &cfg);
    let report = RenderReport::new(info, render::run(target, &request, &cfg));
    if args.output.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if !report.is_clean() {
        bail!("{} failed request(s), {} response(s) other than 200", report.failures, report.non_200());
    }
    Ok(())
}

fn resolve(target: &str, flag: &str) -> Result<SocketAddr> {
    target
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {target:?} of {flag} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("{target:?} of {flag} resolves to no address"))
}

fn unix_now() -> Result<u64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?;
    Ok(now.as_secs())
}
