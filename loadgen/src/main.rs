//! `carbyne-loadgen` entry point: parse flags, build the workload, run it, print the report.
//! Errors become `anyhow` errors here and nowhere else; a run that the server did not fully
//! accept (TCP), whose datagrams the kernel did not all take (UDP), that had failed requests or
//! responses other than 200 (render), or whose read-back found points missing or wrong
//! (`--verify`, `--visibility`) prints its report and then exits with an error.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;

use carbyne_loadgen::checks::{CheckReports, Checks};
use carbyne_loadgen::cli::{
    CheckArgs, Cli, Command, MixedArgs, OutputArgs, PickleArgs, PlaintextArgs, PlaintextUdpArgs, RenderArgs,
    StatsdArgs, WorkloadArgs,
};
use carbyne_loadgen::http::{build_request, BaseUrl};
use carbyne_loadgen::json::JsonObject;
use carbyne_loadgen::mixed::{self, MixedConfig, Targets};
use carbyne_loadgen::render_report::RenderInfo;
use carbyne_loadgen::{pickle, plaintext, plaintext_udp, render, udp, verify};
use carbyne_loadgen::{NamePattern, RenderReport, StatsdWorkload, VerifyConfig, VisibilityConfig, Workload};

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Plaintext(args) => run_plaintext(&args),
        Command::PlaintextUdp(args) => run_plaintext_udp(&args),
        Command::Pickle(args) => run_pickle(&args),
        Command::Mixed(args) => run_mixed(&args),
        Command::Statsd(args) => run_statsd(&args),
        Command::Render(args) => run_render(&args),
    }
}

fn run_plaintext(args: &PlaintextArgs) -> Result<()> {
    let target = resolve(&args.target, "--target")?;
    let workload = carbon_workload(&args.workload, &args.check)?;
    let cfg = args.send.run_config(args.output.quiet);
    let checks = start_checks(&args.check, &workload, workload.n_total_points(), args.output.quiet)?;
    let all = 0..workload.spec().n_metrics;
    let lines = if args.pregenerate { plaintext::Lines::Recorded } else { plaintext::Lines::Sampled(checks.sampler()) };
    let (report, sent) = plaintext::run_range(target, &workload, all, &cfg, lines)
        .with_context(|| format!("cannot open {} connections to {target}", cfg.n_connections))?;
    let checked = checks.finish(&workload, &sent);
    print(&args.output, report.to_json_object(), &report, &checked);
    let failure = (!report.is_clean())
        .then(|| format!("{} problem(s): the server did not accept everything sent", report.problems.len()));
    finish(failure, &checked)
}

fn run_plaintext_udp(args: &PlaintextUdpArgs) -> Result<()> {
    let target = resolve(&args.target, "--target")?;
    let workload = carbon_workload(&args.workload, &args.check)?;
    let cfg = args.send.config(args.output.quiet);
    let checks = start_checks(&args.check, &workload, workload.n_total_points(), args.output.quiet)?;
    let all = 0..workload.spec().n_metrics;
    let (report, sent) = plaintext_udp::run_range(target, &workload, all, &cfg, checks.sampler())
        .with_context(|| format!("cannot open {} UDP sockets to {target}", cfg.n_senders))?;
    let checked = checks.finish(&workload, &sent);
    print(&args.output, report.to_json_object(), &report, &checked);
    let failure = (!report.is_clean()).then(|| format!("{} datagram(s) could not be sent", report.send_errors));
    finish(failure, &checked)
}

fn run_pickle(args: &PickleArgs) -> Result<()> {
    let target = resolve(&args.target, "--target")?;
    let workload = carbon_workload(&args.workload, &args.check)?;
    let framing = args.framing.framing();
    framing.check(&workload).context("invalid --batch-points or --max-frame")?;
    let cfg = args.send.run_config(args.output.quiet);
    let checks = start_checks(&args.check, &workload, workload.n_total_points(), args.output.quiet)?;
    let all = 0..workload.spec().n_metrics;
    let (report, sent) = pickle::run_range(target, &workload, all, framing, &cfg, checks.sampler())
        .with_context(|| format!("cannot open {} connections to {target}", cfg.n_connections))?;
    let checked = checks.finish(&workload, &sent);
    print(&args.output, report.to_json_object(), &report, &checked);
    let failure = (!report.is_clean())
        .then(|| format!("{} problem(s): the server did not accept everything sent", report.problems.len()));
    finish(failure, &checked)
}

fn run_mixed(args: &MixedArgs) -> Result<()> {
    let shares = args.share;
    let target = |share: u32, text: &str, flag: &str| (share > 0).then(|| resolve(text, flag)).transpose();
    let targets = Targets {
        plaintext: target(shares.plaintext, &args.plaintext_target, "--plaintext-target")?,
        pickle: target(shares.pickle, &args.pickle_target, "--pickle-target")?,
        statsd: target(shares.statsd, &args.statsd_target, "--statsd-target")?,
    };
    let workload = carbon_workload(&args.workload, &args.check)?;
    let framing = args.framing.framing();
    if shares.pickle > 0 {
        framing.check(&workload).context("invalid --batch-points or --max-frame")?;
    }
    let statsd_names = NamePattern::parse(&args.statsd.statsd_name_pattern, &args.workload.prefix)
        .context("invalid --statsd-name-pattern or --prefix")?;
    let statsd =
        StatsdWorkload::new(statsd_names, args.statsd.spec(args.workload.seed)).context("invalid statsd workload")?;
    let cfg =
        MixedConfig { shares, run: args.send.run_config(args.output.quiet), framing, n_senders: args.statsd.senders };
    let carbon_points = if shares.plaintext + shares.pickle > 0 { workload.n_total_points() } else { 0 };
    let checks = start_checks(&args.check, &workload, carbon_points, args.output.quiet)?;
    let (report, sent) = mixed::run(targets, &workload, &statsd, &cfg, checks.sampler())?;
    let checked = checks.finish(&workload, &sent);
    print(&args.output, report.to_json_object(), &report, &checked);
    let failure = (!report.is_clean()).then(|| format!("{} problem(s) in the parts' runs", report.problems().len()));
    finish(failure, &checked)
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

/// The carbon workload the flags describe; with `--verify`, only names a render target can name.
fn carbon_workload(args: &WorkloadArgs, check: &CheckArgs) -> Result<Workload> {
    let names = NamePattern::parse(&args.name_pattern, &args.prefix).context("invalid --name-pattern or --prefix")?;
    if check.verify.is_some() {
        verify::check_names(&names).map_err(anyhow::Error::msg).context("--verify cannot read these names back")?;
    }
    Workload::new(names, args.spec(unix_now()?)).context("invalid workload")
}

/// Starts the visibility probe when asked for, and prepares the verification.
fn start_checks(args: &CheckArgs, workload: &Workload, n_total: u64, quiet: bool) -> Result<Checks> {
    let Some(url) = &args.verify else { return Ok(Checks::start(workload, n_total, None, None)) };
    let base = BaseUrl::parse(url).with_context(|| format!("invalid --verify {url:?}"))?;
    let addr = resolve(&base.socket_addr, "--verify")?;
    let verify = VerifyConfig {
        url: url.clone(),
        base: base.clone(),
        addr,
        n_connections: args.verify_connections,
        batch_names: args.verify_batch,
        timeout: args.verify_timeout,
        wait: args.verify_wait,
        tolerance: args.verify_tolerance,
        quiet,
    };
    let visibility = args.visibility.map(|n_samples| VisibilityConfig {
        base,
        addr,
        n_samples,
        timeout: args.visibility_timeout,
        batch_names: args.verify_batch,
        request_timeout: args.verify_timeout,
    });
    Ok(Checks::start(workload, n_total, Some(verify), visibility))
}

/// Prints a carbon run's report and its checks, as text or as one JSON object.
fn print(output: &OutputArgs, json: JsonObject, text: &dyn std::fmt::Display, checked: &CheckReports) {
    if output.json {
        println!("{}", checked.add_to(json).finish());
    } else {
        print!("{text}{checked}");
    }
}

/// The exit status of a carbon run: the run's own `failure`, then the checks'.
fn finish(failure: Option<String>, checked: &CheckReports) -> Result<()> {
    match (failure, checked.failure()) {
        (None, None) => Ok(()),
        (Some(run), None) => bail!("{run}"),
        (None, Some(checks)) => bail!("{checks}"),
        (Some(run), Some(checks)) => bail!("{run}; {checks}"),
    }
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
