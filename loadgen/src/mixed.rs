//! The mixed mode: carbon plaintext over TCP, pickle over TCP and statsd over UDP at once, as a
//! server sees them when collectors, relays and applications all report to it.
//!
//! **Shares** (`--share plaintext=60,pickle=30,statsd=10`) say how the traffic divides:
//! - the carbon workload (metrics x points) is sent whole, its metrics split into two contiguous
//!   ranges in proportion to the plaintext and pickle shares (plaintext first);
//! - statsd sends `points x statsd / (plaintext + pickle)` lines of its own workload (or, with both
//!   carbon shares 0, as many lines as the carbon workload has points);
//! - an open-loop `--rate` is the total of points and lines per second, each part getting its
//!   share of it, so the parts run side by side for the same time.
//!
//! A share of 0 leaves its part out (no connection is opened). Each part runs as its own mode
//! does, on its own threads ([`plaintext`], [`pickle`], [`udp`]), all started together; their
//! progress lines say which part they count. The report is each part's report, and the carbon
//! parts' [`Sent`] together, for `--verify`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::thread;

use crate::json::JsonObject;
use crate::pickle::{self, Framing};
use crate::plaintext;
use crate::report::Report;
use crate::run::RunConfig;
use crate::sampler::Sampler;
use crate::sent::Sent;
use crate::statsd::StatsdWorkload;
use crate::statsd_report::StatsdReport;
use crate::udp::{self, UdpConfig};
use crate::workload::Workload;

/// Largest share.
pub const SHARE_MAX: u32 = 1000;

/// How the traffic divides among the three protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    pub plaintext: u32,
    pub pickle: u32,
    pub statsd: u32,
}

impl Default for Shares {
    fn default() -> Shares {
        Shares { plaintext: 60, pickle: 30, statsd: 10 }
    }
}

impl Shares {
    /// Parses `plaintext=60,pickle=30,statsd=10`; protocols left out get 0, at least one share is
    /// positive, each at most `SHARE_MAX`.
    pub fn parse(text: &str) -> Result<Shares, String> {
        let mut shares = Shares { plaintext: 0, pickle: 0, statsd: 0 };
        let mut seen = [false; 3];
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (name, share) = item.split_once('=').ok_or_else(|| format!("{item:?} is not PROTOCOL=SHARE"))?;
            let share: u32 = share.trim().parse().map_err(|_| format!("share {share:?} is not a whole number"))?;
            if share > SHARE_MAX {
                return Err(format!("share {share} is over {SHARE_MAX}"));
            }
            let (slot, idx) = match name.trim() {
                "plaintext" => (&mut shares.plaintext, 0),
                "pickle" => (&mut shares.pickle, 1),
                "statsd" => (&mut shares.statsd, 2),
                other => return Err(format!("unknown protocol {other:?} (known: plaintext, pickle, statsd)")),
            };
            if std::mem::replace(&mut seen[idx], true) {
                return Err(format!("{name} given twice"));
            }
            *slot = share;
        }
        if shares.total() == 0 {
            return Err("at least one protocol needs a positive share".to_owned());
        }
        Ok(shares)
    }

    /// The sum of the shares.
    pub fn total(&self) -> u64 {
        u64::from(self.plaintext) + u64::from(self.pickle) + u64::from(self.statsd)
    }

    /// The shares as a JSON object.
    pub fn to_json_object(&self) -> JsonObject {
        JsonObject::default()
            .u64("plaintext", u64::from(self.plaintext))
            .u64("pickle", u64::from(self.pickle))
            .u64("statsd", u64::from(self.statsd))
    }
}

impl fmt::Display for Shares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plaintext={},pickle={},statsd={}", self.plaintext, self.pickle, self.statsd)
    }
}

/// What each part sends, from the shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub plaintext_metrics: Range<u64>,
    pub pickle_metrics: Range<u64>,
    /// 0: no statsd part.
    pub statsd_lines: u64,
    /// Each part's rate (points or lines per second); `None` in closed loop.
    pub plaintext_rate: Option<f64>,
    pub pickle_rate: Option<f64>,
    pub statsd_rate: Option<f64>,
}

impl Plan {
    /// The plan for `shares` of a carbon workload of `n_metrics` x `n_points` at a total `rate`.
    pub fn new(shares: Shares, n_metrics: u64, n_points: u64, rate: Option<f64>) -> Plan {
        let carbon = u128::from(shares.plaintext) + u128::from(shares.pickle);
        // At most n_metrics: the quotient fits a u64.
        let split = (u128::from(n_metrics) * u128::from(shares.plaintext)).checked_div(carbon).unwrap_or(0) as u64;
        let (plaintext_metrics, pickle_metrics) = if carbon == 0 { (0..0, 0..0) } else { (0..split, split..n_metrics) };
        let n_total = u128::from(n_metrics) * u128::from(n_points);
        let statsd_lines = match (shares.statsd, carbon) {
            (0, _) => 0,
            (_, 0) => n_total,
            (statsd, carbon) => (n_total * u128::from(statsd)).div_ceil(carbon),
        };
        let part = |share: u32| rate.map(|rate| rate * f64::from(share) / shares.total() as f64);
        Plan {
            plaintext_metrics,
            pickle_metrics,
            statsd_lines: u64::try_from(statsd_lines).unwrap_or(u64::MAX),
            plaintext_rate: part(shares.plaintext),
            pickle_rate: part(shares.pickle),
            statsd_rate: part(shares.statsd),
        }
    }
}

/// Where each part sends; `None` for a part with a share of 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub plaintext: Option<SocketAddr>,
    pub pickle: Option<SocketAddr>,
    pub statsd: Option<SocketAddr>,
}

/// How to run the parts.
#[derive(Debug, Clone)]
pub struct MixedConfig {
    pub shares: Shares,
    /// Connections, deadline, accept timeout and total rate; each TCP part opens this many
    /// connections.
    pub run: RunConfig,
    pub framing: Framing,
    /// statsd sender sockets.
    pub n_senders: usize,
}

/// A part that could not start.
#[derive(Debug)]
pub struct MixedError {
    /// `plaintext`, `pickle` or `statsd`.
    pub part: &'static str,
    pub target: SocketAddr,
    pub error: io::Error,
}

impl fmt::Display for MixedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} part: cannot open its sockets to {}: {}", self.part, self.target, self.error)
    }
}

impl std::error::Error for MixedError {}

/// The three parts' reports.
#[derive(Debug)]
pub struct MixedReport {
    pub shares: Shares,
    pub plan: Plan,
    pub plaintext: Option<Report>,
    pub pickle: Option<Report>,
    pub statsd: Option<StatsdReport>,
}

/// Runs the parts of `cfg.shares` at once: `workload` over plaintext and pickle, `statsd` over
/// UDP; the carbon parts tell `sampler` when their points leave. Returns the reports and what
/// the carbon parts sent.
pub fn run(
    targets: Targets,
    workload: &Workload,
    statsd: &StatsdWorkload,
    cfg: &MixedConfig,
    sampler: Option<Sampler>,
) -> Result<(MixedReport, Sent), MixedError> {
    let spec = workload.spec();
    let plan = Plan::new(cfg.shares, spec.n_metrics, spec.n_points, cfg.run.send.rate_per_s);
    let tcp_config = |rate: Option<f64>, unit: &'static str| {
        let mut run = cfg.run.clone();
        run.send.rate_per_s = rate;
        run.progress_unit = unit;
        run
    };
    let plaintext_cfg = tcp_config(plan.plaintext_rate, "plaintext points");
    let pickle_cfg = tcp_config(plan.pickle_rate, "pickle points");
    let udp_cfg = UdpConfig {
        n_senders: cfg.n_senders,
        n_lines: Some(plan.statsd_lines),
        rate_per_s: plan.statsd_rate,
        deadline: cfg.run.send.deadline,
        pregenerate: false,
        quiet: cfg.run.quiet,
        progress_unit: "statsd lines",
    };
    let fail = |part: &'static str, target: SocketAddr| move |error| MixedError { part, target, error };
    let (plaintext, pickle, statsd_report) = thread::scope(|scope| {
        let plaintext = targets.plaintext.filter(|_| !plan.plaintext_metrics.is_empty()).map(|target| {
            let (range, sampler, cfg) = (plan.plaintext_metrics.clone(), sampler.clone(), &plaintext_cfg);
            scope.spawn(move || {
                plaintext::run_range(target, workload, range, cfg, plaintext::Lines::Sampled(sampler))
                    .map_err(fail("plaintext", target))
            })
        });
        let pickle = targets.pickle.filter(|_| !plan.pickle_metrics.is_empty()).map(|target| {
            let (range, sampler, run, framing) =
                (plan.pickle_metrics.clone(), sampler.clone(), &pickle_cfg, cfg.framing);
            scope.spawn(move || {
                pickle::run_range(target, workload, range, framing, run, sampler).map_err(fail("pickle", target))
            })
        });
        drop(sampler);
        let statsd_report = targets.statsd.filter(|_| plan.statsd_lines > 0).map(|target| {
            let cfg = &udp_cfg;
            scope.spawn(move || udp::run(target, statsd, cfg).map_err(fail("statsd", target)))
        });
        (plaintext.map(join), pickle.map(join), statsd_report.map(join))
    });
    let mut sent = Sent::default();
    let plaintext = plaintext.transpose()?.map(|(report, part)| {
        sent.extend(part);
        report
    });
    let pickle = pickle.transpose()?.map(|(report, part)| {
        sent.extend(part);
        report
    });
    let statsd = statsd_report.transpose()?;
    Ok((MixedReport { shares: cfg.shares, plan, plaintext, pickle, statsd }, sent))
}

/// A part's result; a part that panicked panics here too.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl MixedReport {
    /// Every part ran clean (as each mode defines it).
    pub fn is_clean(&self) -> bool {
        self.plaintext.as_ref().is_none_or(Report::is_clean)
            && self.pickle.as_ref().is_none_or(Report::is_clean)
            && self.statsd.as_ref().is_none_or(StatsdReport::is_clean)
    }

    /// Every part's problems, each prefixed with its part.
    pub fn problems(&self) -> Vec<String> {
        let tcp = |part: &str, report: &Option<Report>| {
            report.iter().flat_map(|r| r.problems.iter().map(|p| format!("{part}: {p}"))).collect::<Vec<_>>()
        };
        let mut problems = tcp("plaintext", &self.plaintext);
        problems.extend(tcp("pickle", &self.pickle));
        problems.extend(self.statsd.iter().flat_map(|r| r.problems.iter().map(|p| format!("statsd: {p}"))));
        problems
    }

    /// The report as a JSON object: the shares, and each part that ran as its own mode reports it
    /// (keys described in the crate README).
    pub fn to_json_object(&self) -> JsonObject {
        let mut json = JsonObject::default().str("protocol", "mixed").object("shares", self.shares.to_json_object());
        if let Some(report) = &self.plaintext {
            json = json.object("plaintext", report.to_json_object());
        }
        if let Some(report) = &self.pickle {
            json = json.object("pickle", report.to_json_object());
        }
        if let Some(report) = &self.statsd {
            json = json.object("statsd", report.to_json_object());
        }
        json.strs("problems", &self.problems())
    }
}

impl fmt::Display for MixedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = &self.plan;
        writeln!(f, "mixed           shares {}", self.shares)?;
        writeln!(
            f,
            "                plaintext metrics {}..{}, pickle metrics {}..{}, statsd {} lines",
            plan.plaintext_metrics.start,
            plan.plaintext_metrics.end,
            plan.pickle_metrics.start,
            plan.pickle_metrics.end,
            plan.statsd_lines
        )?;
        for report in [&self.plaintext, &self.pickle].into_iter().flatten() {
            writeln!(f)?;
            write!(f, "{report}")?;
        }
        if let Some(report) = &self.statsd {
            writeln!(f)?;
            write!(f, "{report}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse() {
        assert_eq!(Shares::parse("plaintext=60,pickle=30,statsd=10").unwrap(), Shares::default());
        assert_eq!(Shares::parse(" pickle = 1 ").unwrap(), Shares { plaintext: 0, pickle: 1, statsd: 0 });
        assert_eq!(Shares::default().to_string(), "plaintext=60,pickle=30,statsd=10");
        for bad in ["", "plaintext=0", "x=1", "plaintext", "plaintext=-1", "plaintext=1001", "pickle=1,pickle=2"] {
            assert!(Shares::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_divide_metrics_lines_and_rate() {
        let plan = Plan::new(Shares::default(), 1_000, 10, Some(5_000.0));
        assert_eq!((plan.plaintext_metrics.clone(), plan.pickle_metrics.clone()), (0..666, 666..1_000));
        assert_eq!(plan.statsd_lines, 1_112, "10 000 points x 10 / 90, rounded up");
        assert_eq!(
            (plan.plaintext_rate, plan.pickle_rate, plan.statsd_rate),
            (Some(3_000.0), Some(1_500.0), Some(500.0))
        );
        let only_statsd = Plan::new(Shares { plaintext: 0, pickle: 0, statsd: 1 }, 7, 3, None);
        assert_eq!(
            (only_statsd.plaintext_metrics, only_statsd.pickle_metrics, only_statsd.statsd_lines),
            (0..0, 0..0, 21)
        );
        assert_eq!(only_statsd.statsd_rate, None);
        let no_statsd = Plan::new(Shares { plaintext: 1, pickle: 1, statsd: 0 }, 5, 3, None);
        assert_eq!((no_statsd.plaintext_metrics, no_statsd.pickle_metrics, no_statsd.statsd_lines), (0..2, 2..5, 0));
        let only_pickle = Plan::new(Shares { plaintext: 0, pickle: 1, statsd: 0 }, 5, 3, None);
        assert_eq!((only_pickle.plaintext_metrics, only_pickle.pickle_metrics), (0..0, 0..5));
    }
}
