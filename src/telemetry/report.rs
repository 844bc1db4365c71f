//! Carbon's self-metrics: every CARBON_METRIC_INTERVAL, the counters' increase over the interval
//! and the current gauges become points named `<prefix>.agents.<host>-<instance>.<metric>`, the
//! names Grafana's "Graphite Carbon Metrics" dashboard reads (carbon's instrumentation.py).

use super::counters::Registry;

/// Counter names with carbon's meaning; the writer and receivers increment these.
pub mod names {
    /// Points received (all protocols), accepted into the cache.
    pub const METRICS_RECEIVED: &str = "metricsReceived";
    /// Points written to whisper.
    pub const COMMITTED_POINTS: &str = "committedPoints";
    /// update_many calls.
    pub const UPDATE_OPERATIONS: &str = "updateOperations";
    /// Microseconds spent in update_many calls (reported as avgUpdateTime in seconds).
    pub const UPDATE_MICROS: &str = "updateMicros";
    /// Files created.
    pub const CREATES: &str = "creates";
    /// Creates refused (carbon drops the points; Carbyne keeps them cached and retries).
    pub const DROPPED_CREATES: &str = "droppedCreates";
    /// Failed writes and creates.
    pub const ERRORS: &str = "errors";
    /// Points refused because the cache was full without flow control (or for UDP).
    pub const CACHE_OVERFLOW: &str = "cache.overflow";
    /// Cache queries answered (carbonlink, render overlay).
    pub const CACHE_QUERIES: &str = "cache.queries";
    /// Points refused by the blacklist.
    pub const BLACKLIST_MATCHES: &str = "blacklistMatches";
    /// Points refused for not matching the whitelist.
    pub const WHITELIST_REJECTS: &str = "whitelistRejects";
    /// Times TCP receivers stopped reading because the cache reached MAX_CACHE_SIZE.
    pub const FLOW_CONTROL_PAUSES: &str = "flowControlPauses";
    /// Times a shard queue was full when a batch was handed off.
    pub const QUEUE_FULL: &str = "queueFull";
    /// UDP datagrams the kernel dropped because the socket buffer was full (the socket's drop
    /// counter, the one SO_RXQ_OVFL would carry, read with SO_MEMINFO: see `ingest::sockets`).
    pub const UDP_KERNEL_DROPS: &str = "udpKernelDrops";
    /// Statsd datagrams the kernel dropped because the socket buffer was full.
    pub const STATSD_UDP_KERNEL_DROPS: &str = "statsd.udpKernelDrops";
    /// Statsd samples dropped at an ingest thread's maxPendingSamples bound.
    pub const STATSD_SAMPLES_DROPPED: &str = "statsd.samplesDropped";

    /// Every name above, for the registry.
    pub const ALL: [&str; 16] = [
        METRICS_RECEIVED,
        COMMITTED_POINTS,
        UPDATE_OPERATIONS,
        UPDATE_MICROS,
        CREATES,
        DROPPED_CREATES,
        ERRORS,
        CACHE_OVERFLOW,
        CACHE_QUERIES,
        BLACKLIST_MATCHES,
        WHITELIST_REJECTS,
        FLOW_CONTROL_PAUSES,
        QUEUE_FULL,
        UDP_KERNEL_DROPS,
        STATSD_UDP_KERNEL_DROPS,
        STATSD_SAMPLES_DROPPED,
    ];
}

/// `<prefix>.agents.<hostname with dots as _>-<instance>.`, as carbon names its own metrics.
pub fn agent_prefix(carbon_prefix: &str, hostname: &str, instance: &str) -> String {
    format!("{carbon_prefix}.agents.{}-{instance}.", hostname.replace('.', "_"))
}

/// The machine's host name.
pub fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Turns counters and gauges into self-metric points once per interval.
#[derive(Debug)]
pub struct Reporter {
    prefix: String,
    last_totals: Vec<u64>,
    last_per_thread: Vec<(String, Vec<u64>)>,
    cpu: CpuClock,
}

impl Reporter {
    /// A reporter for names starting with `prefix` (see [`agent_prefix`]). Its first report
    /// counts from zero, so whatever threads counted before it was made is reported too.
    pub fn new(prefix: String, registry: &Registry) -> Reporter {
        let last_totals = vec![0; registry.names().len()];
        Reporter { prefix, last_totals, last_per_thread: Vec::new(), cpu: CpuClock::start() }
    }

    /// The points of one interval: each counter's increase, carbon's derived values
    /// (pointsPerUpdate, avgUpdateTime), cpuUsage and memUsage, per-thread received points, and
    /// the given gauges (cache.size, cache.queues, activeConnections, ...).
    pub fn collect(&mut self, registry: &Registry, gauges: &[(&str, f64)]) -> Vec<(String, f64)> {
        let (totals, per_thread) = registry.snapshot();
        let names = registry.names();
        let delta = |i: usize| totals[i].saturating_sub(*self.last_totals.get(i).unwrap_or(&0)) as f64;
        let by_name = |name: &str| names.iter().position(|n| *n == name).map_or(0.0, delta);
        let mut out: Vec<(String, f64)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if *name != names::UPDATE_MICROS {
                out.push((format!("{}{name}", self.prefix), delta(i)));
            }
        }
        let (updates, committed) = (by_name(names::UPDATE_OPERATIONS), by_name(names::COMMITTED_POINTS));
        if updates > 0.0 {
            out.push((format!("{}pointsPerUpdate", self.prefix), committed / updates));
            out.push((format!("{}avgUpdateTime", self.prefix), by_name(names::UPDATE_MICROS) / updates / 1e6));
        }
        if let Some(received) = names.iter().position(|n| *n == names::METRICS_RECEIVED) {
            for (label, values) in &per_thread {
                let before = self.last_per_thread.iter().find(|(l, _)| l == label).map_or(0, |(_, v)| v[received]);
                let d = values[received].saturating_sub(before) as f64;
                if label.starts_with("ingest") {
                    out.push((format!("{}{label}.metricsReceived", self.prefix), d));
                }
            }
        }
        out.push((format!("{}cpuUsage", self.prefix), self.cpu.percent_since_last()));
        if let Some(rss) = rss_bytes() {
            out.push((format!("{}memUsage", self.prefix), rss as f64));
        }
        out.extend(gauges.iter().map(|(name, v)| (format!("{}{name}", self.prefix), *v)));
        self.last_totals = totals;
        self.last_per_thread = per_thread;
        out
    }
}

/// Process CPU time against wall time, as carbon's cpuUsage: percent of one core.
#[derive(Debug)]
struct CpuClock {
    last_cpu_s: f64,
    last_wall: std::time::Instant,
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock { last_cpu_s: process_cpu_seconds().unwrap_or(0.0), last_wall: std::time::Instant::now() }
    }

    fn percent_since_last(&mut self) -> f64 {
        let cpu = process_cpu_seconds().unwrap_or(self.last_cpu_s);
        let now = std::time::Instant::now();
        let wall = now.duration_since(self.last_wall).as_secs_f64().max(1e-6);
        let percent = (cpu - self.last_cpu_s) / wall * 100.0;
        (self.last_cpu_s, self.last_wall) = (cpu, now);
        percent
    }
}

/// User + system CPU seconds of this process, from /proc/self/stat (fields 14 and 15).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// Resident set size in bytes, from /proc/self/statm (as carbon's memUsage).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_carbon() {
        assert_eq!(agent_prefix("carbon", "web1.example.com", "a"), "carbon.agents.web1_example_com-a.");
    }

    #[test]
    fn reports_interval_deltas_and_derived_values() {
        let reg = Registry::new(&names::ALL);
        let ingest = reg.thread("ingest0");
        let writer = reg.thread("writer0");
        let mut r = Reporter::new("carbon.agents.h-a.".into(), &reg);
        ingest.add(reg.id(names::METRICS_RECEIVED), 7);
        ingest.add(reg.id(names::METRICS_RECEIVED), 93);
        writer.add(reg.id(names::COMMITTED_POINTS), 90);
        writer.add(reg.id(names::UPDATE_OPERATIONS), 3);
        writer.add(reg.id(names::UPDATE_MICROS), 600);
        let points = r.collect(&reg, &[("cache.size", 10.0)]);
        let get = |name: &str| points.iter().find(|(n, _)| n == &format!("carbon.agents.h-a.{name}")).map(|p| p.1);
        assert_eq!(get("metricsReceived"), Some(100.0), "the increase over the interval, not the total");
        assert_eq!(get("ingest0.metricsReceived"), Some(100.0));
        assert_eq!(get("pointsPerUpdate"), Some(30.0));
        assert_eq!(get("avgUpdateTime"), Some(0.0002));
        assert_eq!(get("cache.size"), Some(10.0));
        assert_eq!(get("updateMicros"), None);
        assert!(get("memUsage").is_some_and(|m| m > 0.0));
        assert!(get("cpuUsage").is_some_and(|c| c >= 0.0));
        let again = r.collect(&reg, &[]);
        assert!(again.iter().any(|(n, v)| n.ends_with(".metricsReceived") && *v == 0.0));
        assert!(!again.iter().any(|(n, _)| n.ends_with("pointsPerUpdate")), "no updates, no ratio");
    }
}
