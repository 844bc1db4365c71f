//! The human-readable dump behind `carbyne check-config`: every effective value with carbon's
//! key names, the rules in the order they are tried, and what was ignored or not understood.

use std::fmt::Write as _;

use super::carbon::{CacheSettings, ReportedKey};
use super::error::ConfigWarning;
use super::storage::{AggregationRules, RulesSource, StorageSchemas};
use super::value::{format_bool, format_number};
use super::Config;
use crate::whisper::ArchiveSpec;

impl CacheSettings {
    /// Every setting as (carbon key, value as carbon.conf would spell it), paths first.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let path = |p: &std::path::Path| p.display().to_string();
        let flag = |b: bool| format_bool(b).to_string();
        let limit = |l: Option<u64>| l.map_or_else(|| "inf".to_string(), |n| n.to_string());
        let optional = |v: Option<String>| v.unwrap_or_else(|| "None".to_string());
        vec![
            ("GRAPHITE_ROOT", path(&self.graphite_root)),
            ("CONF_DIR", path(&self.conf_dir)),
            ("STORAGE_DIR", path(&self.storage_dir)),
            ("LOCAL_DATA_DIR", path(&self.local_data_dir)),
            ("WHITELISTS_DIR", path(&self.whitelists_dir)),
            ("PID_DIR", path(&self.pid_dir)),
            ("pidfile", path(&self.pid_file)),
            ("LOG_DIR", path(&self.log_dir)),
            ("instance", self.instance.clone()),
            ("DATABASE", "whisper".to_string()),
            ("USER", self.user.clone()),
            ("ENABLE_LOGROTATION", flag(self.enable_logrotation)),
            ("MAX_CACHE_SIZE", limit(self.max_cache_size)),
            ("USE_FLOW_CONTROL", flag(self.use_flow_control)),
            ("MAX_UPDATES_PER_SECOND", format_number(self.max_updates_per_second)),
            (
                "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN",
                optional(self.max_updates_per_second_on_shutdown.map(format_number)),
            ),
            ("MAX_CREATES_PER_MINUTE", format_number(self.max_creates_per_minute)),
            ("MIN_TIMESTAMP_RESOLUTION", self.min_timestamp_resolution.to_string()),
            ("MIN_TIMESTAMP_LAG", self.min_timestamp_lag.to_string()),
            ("CACHE_WRITE_STRATEGY", self.cache_write_strategy.to_string()),
            ("LINE_RECEIVER_INTERFACE", self.line_receiver_interface.clone()),
            ("LINE_RECEIVER_PORT", self.line_receiver_port.to_string()),
            ("ENABLE_UDP_LISTENER", flag(self.enable_udp_listener)),
            ("UDP_RECEIVER_INTERFACE", self.udp_receiver_interface.clone()),
            ("UDP_RECEIVER_PORT", self.udp_receiver_port.to_string()),
            ("ENABLE_STATSD", flag(self.enable_statsd)),
            ("ENABLE_STATSD_TCP", flag(self.enable_statsd_tcp)),
            ("STATSD_INTERFACE", self.statsd_interface.clone()),
            ("STATSD_PORT", self.statsd_port.to_string()),
            ("STATSD_ADMIN_PORT", self.statsd_admin_port.to_string()),
            ("PICKLE_RECEIVER_INTERFACE", self.pickle_receiver_interface.clone()),
            ("PICKLE_RECEIVER_PORT", self.pickle_receiver_port.to_string()),
            ("PICKLE_RECEIVER_MAX_LENGTH", self.pickle_receiver_max_length.to_string()),
            ("MAX_RECEIVER_CONNECTIONS", limit(self.max_receiver_connections)),
            (
                "METRIC_CLIENT_IDLE_TIMEOUT",
                optional(self.metric_client_idle_timeout.map(|d| format_number(d.as_secs_f64()))),
            ),
            ("CACHE_QUERY_INTERFACE", self.cache_query_interface.clone()),
            ("CACHE_QUERY_PORT", self.cache_query_port.to_string()),
            ("HTTP_INTERFACE", self.http_interface.clone()),
            ("HTTP_PORT", self.http_port.to_string()),
            ("HTTP_HTPASSWD_FILE", self.http_htpasswd_file.as_ref().map_or("None".into(), |p| p.display().to_string())),
            ("HTTP_THREADS", self.http_threads.to_string()),
            ("HTTP_PRIORITY", self.http_priority.to_string()),
            ("HTTP_MAX_REQUESTS", self.http_max_requests.to_string()),
            ("HTTP_TIMEOUT", self.http_timeout.as_secs().to_string()),
            ("WHISPER_AUTOFLUSH", flag(self.whisper_autoflush)),
            ("WHISPER_SPARSE_CREATE", flag(self.whisper_sparse_create)),
            ("WHISPER_FALLOCATE_CREATE", flag(self.whisper_fallocate_create)),
            ("WHISPER_LOCK_WRITES", flag(self.whisper_lock_writes)),
            ("WHISPER_FADVISE_RANDOM", flag(self.whisper_fadvise_random)),
            ("USE_WHITELIST", flag(self.use_whitelist)),
            ("CARBON_METRIC_PREFIX", self.carbon_metric_prefix.clone()),
            ("CARBON_METRIC_INTERVAL", self.carbon_metric_interval.to_string()),
            ("ENABLE_TAGS", flag(self.enable_tags)),
            ("TAG_HASH_FILENAMES", flag(self.tag_hash_filenames)),
            ("LOG_UPDATES", flag(self.log_updates)),
            ("LOG_CREATES", flag(self.log_creates)),
            ("LOG_CACHE_HITS", flag(self.log_cache_hits)),
            ("LOG_CACHE_QUEUE_SORTS", flag(self.log_cache_queue_sorts)),
            ("LOG_LISTENER_CONN_SUCCESS", flag(self.log_listener_conn_success)),
            ("LOG_LISTENER_CONN_LOST", flag(self.log_listener_conn_lost)),
            // 0 means "from the number of cores" for these three.
            ("INGEST_THREADS", self.tuning.ingest_threads.to_string()),
            ("WRITER_THREADS", self.tuning.writer_threads.to_string()),
            ("CACHE_SHARDS", self.tuning.cache_shards.to_string()),
            ("CACHE_QUEUE_DEPTH", self.tuning.cache_queue_depth.to_string()),
            ("WRITER_OPEN_FILES", self.tuning.writer_open_files.to_string()),
            ("WRITER_MMAP", flag(self.tuning.writer_mmap)),
            ("UDP_RECEIVE_BUFFER", self.tuning.udp_receive_buffer.to_string()),
            ("MAX_LINE_LENGTH", self.tuning.max_line_length.to_string()),
            ("IO_BACKEND", self.tuning.io_backend.name().to_string()),
        ]
    }
}

/// `seconds` in the largest whole unit: `90d`, `6h`, `10s`.
fn human_secs(seconds: u64) -> String {
    const UNITS: [(u64, &str); 5] = [(365 * 86400, "y"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    for (size, unit) in UNITS {
        if seconds >= size && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

fn archives(list: &[ArchiveSpec]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|a| {
            format!(
                "{}:{} ({} per point for {})",
                a.seconds_per_point,
                a.points,
                human_secs(a.seconds_per_point.into()),
                human_secs(a.retention())
            )
        })
        .collect();
    parts.join(", ")
}

fn source(out: &mut String, what: &str, source: &RulesSource) {
    let _ = match source {
        RulesSource::Embedded => writeln!(out, "{what} (built in), first match wins:"),
        RulesSource::File(p) => writeln!(out, "{what} ({}), first match wins:", p.display()),
        RulesSource::Missing(p) => {
            writeln!(out, "{what} ({} not found: the fallback applies to every metric):", p.display())
        }
    };
}

fn schemas(out: &mut String, s: &StorageSchemas) {
    source(out, "storage schemas", &s.source);
    for r in s.rules() {
        let _ = writeln!(out, "  [{}] line {}: pattern {} -> {}", r.name, r.line, r.pattern, archives(&r.archives));
    }
    let f = s.fallback();
    let _ = writeln!(out, "  [{}] built-in fallback for everything else -> {}", f.name, archives(&f.archives));
}

fn aggregation(out: &mut String, a: &AggregationRules) {
    source(out, "storage aggregation", &a.source);
    for r in a.rules() {
        let xff = format_number(r.x_files_factor);
        let _ =
            writeln!(out, "  [{}] line {}: pattern {} -> {}, xFilesFactor {xff}", r.name, r.line, r.pattern, r.method);
    }
    let f = a.fallback();
    let xff = format_number(f.x_files_factor);
    let _ = writeln!(out, "  [{}] built-in fallback for everything else -> {}, xFilesFactor {xff}", f.name, f.method);
}

fn list<T: std::fmt::Display>(out: &mut String, title: &str, items: &[T]) {
    if items.is_empty() {
        let _ = writeln!(out, "{title}: none");
        return;
    }
    let _ = writeln!(out, "{title}:");
    for item in items {
        let _ = writeln!(out, "  {item}");
    }
}

impl Config {
    /// A human-readable dump of the effective configuration, for `carbyne check-config`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = match &self.carbon_conf {
            Some(p) => writeln!(out, "carbon.conf: {} (instance {:?})", p.display(), self.cache.instance),
            None => writeln!(out, "carbon.conf: none (embedded defaults)"),
        };
        if !self.other_sections.is_empty() {
            let _ = writeln!(out, "other sections (read, not used): {}", self.other_sections.join(", "));
        }
        let _ = writeln!(out, "\n[cache] settings in effect:");
        for (key, value) in self.cache.entries() {
            let _ = writeln!(out, "  {key} = {value}");
        }
        out.push('\n');
        schemas(&mut out, &self.schemas);
        out.push('\n');
        aggregation(&mut out, &self.aggregation);
        out.push('\n');
        list::<ReportedKey>(&mut out, "ignored keys (carbon keys Carbyne does not act on)", &self.ignored_keys);
        list::<ReportedKey>(&mut out, "unknown keys (no carbon key of that name)", &self.unknown_keys);
        list::<ConfigWarning>(&mut out, "warnings", &self.warnings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        let cases = [
            (10, "10s"),
            (60, "1m"),
            (90, "90s"),
            (21600, "6h"),
            (604_800, "7d"),
            (7_776_000, "90d"),
            (157_680_000, "5y"),
            (0, "0s"),
        ];
        for (secs, expected) in cases {
            assert_eq!(human_secs(secs), expected, "{secs}");
        }
    }
}
