//! The `[statsd]` section of carbon.conf: etsy statsd 0.9's options under their own names
//! (matched without regard to case, so `flushInterval` and `FLUSHINTERVAL` are one key), with
//! etsy's defaults. The graphite backend's options (`graphite: { legacyNamespace: ... }` in
//! etsy's config file) are read flat, with or without a `graphite.` prefix.
//!
//! Lists (`percentThreshold`, `calculatedTimerMetrics`) are written `90, 95, 99.9` or as a JSON
//! array; `histogram` is etsy's array of `{metric, bins}` objects, in JSON or in the JavaScript
//! form etsy's example config uses (unquoted keys, single quotes).
//!
//! The listener keys live in `[cache]` beside carbon's: ENABLE_STATSD, STATSD_INTERFACE,
//! STATSD_PORT, STATSD_ADMIN_PORT, ENABLE_STATSD_TCP (see `carbon.rs`).

use std::path::Path;

use super::error::{ConfigError, Problem};
use super::ini::Item;
use super::value::{parse_bool, parse_float, parse_int};

/// The options of the statsd server, with etsy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdOptions {
    /// flushInterval: milliseconds between flushes (default 10000).
    pub flush_interval_ms: u64,
    /// percentThreshold: the timer percentiles computed (default `[90]`; negative values give
    /// the lowest values: `lower_topP`).
    pub percent_thresholds: Vec<f64>,
    /// deleteCounters: drop counters that saw nothing in an interval instead of sending 0.
    pub delete_counters: bool,
    /// deleteTimers: likewise for timers.
    pub delete_timers: bool,
    /// deleteGauges: drop gauges idle for gaugesMaxTTL intervals instead of resending them.
    pub delete_gauges: bool,
    /// deleteSets: likewise for sets.
    pub delete_sets: bool,
    /// gaugesMaxTTL: intervals an idle gauge survives with deleteGauges (at least 1).
    pub gauges_max_ttl: u32,
    /// prefixStats: the namespace of statsd's own metrics (default `statsd`).
    pub prefix_stats: String,
    /// keyNameSanitize: clean keys as etsy does (default true).
    pub key_name_sanitize: bool,
    /// calculatedTimerMetrics: when set, only these timer fields are sent (percentile fields
    /// named `<field>_percent`, e.g. `upper_percent`).
    pub calculated_timer_metrics: Option<Vec<String>>,
    /// histogram: bins per timer, the first entry whose `metric` occurs in the key winning.
    pub histogram: Vec<HistogramRule>,
    /// healthStatus: what the admin `health` command says at start (`up`).
    pub health_up: bool,
    /// flush_counts: also send counters' counts (default true).
    pub flush_counts: bool,
    /// graphite.legacyNamespace (default true): `stats.<key>` / `stats_counts.<key>`.
    pub legacy_namespace: bool,
    /// graphite.globalPrefix (`stats`; legacyNamespace false only).
    pub global_prefix: String,
    /// graphite.prefixCounter (`counters`; legacyNamespace false only).
    pub prefix_counter: String,
    /// graphite.prefixTimer (`timers`; legacyNamespace false only).
    pub prefix_timer: String,
    /// graphite.prefixGauge (`gauges`; legacyNamespace false only).
    pub prefix_gauge: String,
    /// graphite.prefixSet (`sets`; legacyNamespace false only).
    pub prefix_set: String,
    /// graphite.globalSuffix: appended to every name (before tags) when set.
    pub global_suffix: Option<String>,
    /// Carbyne's bound on what one ingest thread holds between flushes: keys, timer samples,
    /// set members and gauge deltas together (`maxPendingSamples`, default 4 Mi). Beyond it,
    /// samples are dropped and counted (`statsd.samplesDropped` in the self-metrics).
    pub max_pending_samples: usize,
}

/// One `histogram` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramRule {
    /// A substring of the timer keys it applies to ("" matches every key).
    pub metric: String,
    /// Upper bounds (exclusive) of the bins, ascending; `inf` for the last catch-all bin.
    pub bins: Vec<f64>,
}

impl Default for StatsdOptions {
    fn default() -> Self {
        StatsdOptions {
            flush_interval_ms: 10_000,
            percent_thresholds: vec![90.0],
            delete_counters: false,
            delete_timers: false,
            delete_gauges: false,
            delete_sets: false,
            gauges_max_ttl: 1,
            prefix_stats: "statsd".into(),
            key_name_sanitize: true,
            calculated_timer_metrics: None,
            histogram: Vec::new(),
            health_up: true,
            flush_counts: true,
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: None,
            max_pending_samples: 4 << 20,
        }
    }
}

/// etsy options that make no sense inside Carbyne (it has no backends to load, no graphite host
/// to send to: points go straight into the cache).
const IGNORED: &[&str] = &[
    "backends",
    "graphitehost",
    "graphiteport",
    "graphitepickleport",
    "graphiteprotocol",
    "debug",
    "dumpmessages",
    "servers",
    "automaticconfigreload",
    "log",
    "keyflush",
    "repeater",
    "repeaterprotocol",
    "address",
    "address_ipv6",
    "port",
    "mgmt_address",
    "mgmt_port",
];

/// Keys not acted on, as (key, line, known): known etsy keys Carbyne ignores, or unknown ones.
pub(crate) type NotActedOn = Vec<(String, u32, bool)>;

/// Reads the `[statsd]` items over etsy's defaults. Returns the options and the keys that were
/// ignored or unknown.
pub(crate) fn read(path: &Path, items: &[Item]) -> Result<(StatsdOptions, NotActedOn), ConfigError> {
    let mut o = StatsdOptions::default();
    let mut delete_idle = None;
    let mut explicit = [None; 4];
    let mut reported = Vec::new();
    for item in items {
        let key = item.key.to_ascii_lowercase();
        let key = key.strip_prefix("graphite.").unwrap_or(&key).to_string();
        let value = item.value.trim();
        let invalid = |expected: &'static str| {
            ConfigError::at(
                path,
                item.line,
                Problem::InvalidValue { key: item.key.clone(), value: item.value.clone(), expected },
            )
        };
        let boolean = || parse_bool(value).ok_or_else(|| invalid("true or false"));
        let text = || value.trim_matches(['"', '\'']).to_string();
        match key.as_str() {
            "flushinterval" => {
                o.flush_interval_ms = parse_int(value)
                    .and_then(|v| u64::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| invalid("milliseconds, above 0"))?;
            }
            "percentthreshold" => {
                o.percent_thresholds = list(value)
                    .iter()
                    .map(|v| parse_float(v).filter(|f| f.is_finite() && *f != 0.0 && f.abs() <= 100.0))
                    .collect::<Option<Vec<f64>>>()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid("percentages: 90, 95, 99.9 (negative for the lowest)"))?;
            }
            "deleteidlestats" => delete_idle = Some(boolean()?),
            "deletecounters" => explicit[0] = Some(boolean()?),
            "deletetimers" => explicit[1] = Some(boolean()?),
            "deletegauges" => explicit[2] = Some(boolean()?),
            "deletesets" => explicit[3] = Some(boolean()?),
            // etsy: "force conf.gaugesMaxTTL to 1 if it not a positive integer > 1".
            "gaugesmaxttl" => {
                o.gauges_max_ttl = parse_int(value).filter(|v| *v > 1).map_or(1, |v| v.min(i64::from(u32::MAX)) as u32)
            }
            "prefixstats" => o.prefix_stats = text(),
            "keynamesanitize" => o.key_name_sanitize = boolean()?,
            "calculatedtimermetrics" => o.calculated_timer_metrics = Some(list(value)),
            "histogram" => {
                o.histogram =
                    histogram(value).ok_or_else(|| invalid("[{\"metric\": \"foo\", \"bins\": [10, 100, \"inf\"]}]"))?
            }
            "healthstatus" => {
                o.health_up = match value.to_ascii_lowercase().as_str() {
                    "up" => true,
                    "down" => false,
                    _ => return Err(invalid("up or down")),
                }
            }
            "flush_counts" => o.flush_counts = boolean()?,
            "legacynamespace" => o.legacy_namespace = boolean()?,
            "globalprefix" => o.global_prefix = text(),
            "prefixcounter" => o.prefix_counter = text(),
            "prefixtimer" => o.prefix_timer = text(),
            "prefixgauge" => o.prefix_gauge = text(),
            "prefixset" => o.prefix_set = text(),
            "globalsuffix" => o.global_suffix = Some(text()),
            "maxpendingsamples" => {
                o.max_pending_samples = parse_int(value)
                    .and_then(|v| usize::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| invalid("a count above 0"))?;
            }
            other => reported.push((item.key.clone(), item.line, IGNORED.contains(&other))),
        }
    }
    // etsy: deleteIdleStats switches the four on, each still overridable on its own.
    let default = delete_idle.unwrap_or(false);
    o.delete_counters = explicit[0].unwrap_or(default);
    o.delete_timers = explicit[1].unwrap_or(default);
    o.delete_gauges = explicit[2].unwrap_or(default);
    o.delete_sets = explicit[3].unwrap_or(default);
    Ok((o, reported))
}

/// `a, b, c` or `["a", "b"]` or `[90, 95]`: the items, unquoted.
fn list(value: &str) -> Vec<String> {
    let inner = value.trim().trim_start_matches('[').trim_end_matches(']');
    inner.split(',').map(|s| s.trim().trim_matches(['"', '\'']).to_string()).filter(|s| !s.is_empty()).collect()
}

/// etsy's histogram array, in JSON or in JavaScript object notation.
fn histogram(value: &str) -> Option<Vec<HistogramRule>> {
    let quoted_keys = regex::Regex::new(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:").ok()?;
    let json = quoted_keys.replace_all(&value.replace('\'', "\""), "$1\"$2\":").into_owned();
    let parsed: serde_json::Value = serde_json::from_str(&json).ok()?;
    let mut rules = Vec::new();
    for entry in parsed.as_array()? {
        let metric = entry.get("metric")?.as_str()?.to_string();
        let mut bins = Vec::new();
        for bin in entry.get("bins")?.as_array()? {
            bins.push(match bin {
                serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
                serde_json::Value::Number(n) => n.as_f64()?,
                _ => return None,
            });
        }
        rules.push(HistogramRule { metric, bins });
    }
    Some(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, &str)]) -> Vec<Item> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Item {
                key: k.to_string(),
                value: v.to_string(),
                section: "statsd".into(),
                line: i as u32 + 2,
            })
            .collect()
    }

    #[test]
    fn defaults_are_etsys() {
        let (o, reported) = read(Path::new("c.conf"), &[]).unwrap();
        assert_eq!(o, StatsdOptions::default());
        assert!(reported.is_empty());
        assert_eq!(
            (o.flush_interval_ms, o.percent_thresholds.as_slice(), o.legacy_namespace),
            (10_000, &[90.0][..], true)
        );
    }

    #[test]
    fn etsy_names_in_any_case_and_lists_in_either_form() {
        let (o, reported) = read(
            Path::new("c.conf"),
            &items(&[
                ("flushinterval", "2000"),
                ("percentThreshold", "[90, 99.9, -10]"),
                ("deleteIdleStats", "true"),
                ("deleteGauges", "false"),
                ("gaugesMaxTTL", "3"),
                ("graphite.legacyNamespace", "false"),
                ("globalSuffix", "'sfx'"),
                ("calculatedTimerMetrics", "count, upper_percent"),
                ("histogram", "[ { metric: 'foo', bins: [10, 100.5, 'inf'] }, {\"metric\": \"\", \"bins\": [1]} ]"),
                ("graphiteHost", "localhost"),
                ("frobnicate", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(o.flush_interval_ms, 2000);
        assert_eq!(o.percent_thresholds, [90.0, 99.9, -10.0]);
        assert!(o.delete_counters && o.delete_timers && o.delete_sets && !o.delete_gauges);
        assert_eq!(o.gauges_max_ttl, 3);
        assert!(!o.legacy_namespace);
        assert_eq!(o.global_suffix.as_deref(), Some("sfx"));
        assert_eq!(o.calculated_timer_metrics, Some(vec!["count".to_string(), "upper_percent".to_string()]));
        assert_eq!(o.histogram[0], HistogramRule { metric: "foo".into(), bins: vec![10.0, 100.5, f64::INFINITY] });
        assert_eq!(o.histogram[1].metric, "");
        assert_eq!(reported, [("graphiteHost".to_string(), 11, true), ("frobnicate".to_string(), 12, false)]);
    }

    #[test]
    fn bad_values_name_the_line() {
        for (k, v) in
            [("flushInterval", "soon"), ("percentThreshold", "abc"), ("deleteCounters", "maybe"), ("histogram", "[{")]
        {
            let err = read(Path::new("c.conf"), &items(&[(k, v)])).unwrap_err();
            assert_eq!(err.line(), Some(2), "{k}");
        }
        let (o, _) = read(Path::new("c.conf"), &items(&[("gaugesMaxTTL", "0")])).unwrap();
        assert_eq!(o.gauges_max_ttl, 1, "etsy forces a TTL below 2 to 1");
    }
}
