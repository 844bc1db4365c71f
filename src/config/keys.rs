//! The carbon.conf keys Carbyne recognises but does not act on, with carbon's code default
//! (`lib/carbon/conf.py`, `defaults`) and why we ignore them.
//!
//! A key here is reported once at start-up ("ignored keys"), never an error: a carbon.conf
//! written for carbon-cache must load unchanged. Keys of `[relay]` and `[aggregator]` are listed
//! too, because people copy them into `[cache]`. The keys Carbyne acts on are parsed in
//! `carbon.rs`; anything in neither place is an "unknown key", reported as well.

/// A recognised key Carbyne does not act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredKey {
    /// Upper-case carbon key.
    pub name: &'static str,
    /// carbon's code default, as Python would print it ("unset" when carbon has none).
    pub carbon_default: &'static str,
    /// Why Carbyne ignores it.
    pub reason: &'static str,
}

const AMQP: &str = "AMQP input is not supported";
const MANHOLE: &str = "the manhole debug shell is not supported";
const CERES: &str = "Carbyne stores whisper files only";
const RELAY: &str = "a carbon-relay/aggregator setting; put carbon-c-relay in front to relay";
const TAGDB: &str = "Carbyne indexes tags itself; there is no graphite-web TagDB to feed";
const UNPICKLER: &str = "the pickle receiver always uses its own safe unpickler";
const PROTOBUF: &str = "the protobuf receiver is not supported";
const NAME_CACHE: &str = "Carbyne keeps its own metric-name index";
const SENTRY: &str = "Sentry reporting is not supported";

const fn key(name: &'static str, carbon_default: &'static str, reason: &'static str) -> IgnoredKey {
    IgnoredKey { name, carbon_default, reason }
}

/// Every recognised key Carbyne ignores.
pub const IGNORED_KEYS: &[IgnoredKey] = &[
    key("PROTOBUF_RECEIVER_INTERFACE", "unset", PROTOBUF),
    key("PROTOBUF_RECEIVER_PORT", "unset", PROTOBUF),
    key("USE_INSECURE_UNPICKLER", "False", UNPICKLER),
    key("CERES_MAX_SLICE_GAP", "80", CERES),
    key("CERES_NODE_CACHING_BEHAVIOR", "all", CERES),
    key("CERES_SLICE_CACHING_BEHAVIOR", "latest", CERES),
    key("CERES_LOCK_WRITES", "False", CERES),
    key("ENABLE_AMQP", "False", AMQP),
    key("AMQP_VERBOSE", "False", AMQP),
    key("AMQP_HOST", "unset", AMQP),
    key("AMQP_PORT", "unset", AMQP),
    key("AMQP_VHOST", "unset", AMQP),
    key("AMQP_USER", "unset", AMQP),
    key("AMQP_PASSWORD", "unset", AMQP),
    key("AMQP_EXCHANGE", "unset", AMQP),
    key("AMQP_METRIC_NAME_IN_BODY", "False", AMQP),
    key("AMQP_SPEC", "None", AMQP),
    key("BIND_PATTERNS", "#", AMQP),
    key("ENABLE_MANHOLE", "False", MANHOLE),
    key("MANHOLE_INTERFACE", "127.0.0.1", MANHOLE),
    key("MANHOLE_PORT", "7222", MANHOLE),
    key("MANHOLE_USER", "", MANHOLE),
    key("MANHOLE_PUBLIC_KEY", "", MANHOLE),
    key("MANHOLE_HOST_KEY_DIR", "", MANHOLE),
    key("GRAPHITE_URL", "http://127.0.0.1:80", TAGDB),
    key("SKIP_TAGS_FOR_NONTAGGED", "True", TAGDB),
    key("TAG_UPDATE_INTERVAL", "100", TAGDB),
    key("TAG_BATCH_SIZE", "100", TAGDB),
    key("TAG_QUEUE_SIZE", "10000", TAGDB),
    key("TAG_RELAY_NORMALIZED", "False", RELAY),
    key("CACHE_METRIC_NAMES_MAX", "0", NAME_CACHE),
    key("CACHE_METRIC_NAMES_TTL", "0", NAME_CACHE),
    key("RAVEN_DSN", "None", SENTRY),
    key("RELAY_METHOD", "rules", RELAY),
    key("RELAY_CACHE_METRICS", "False", RELAY),
    key("REPLICATION_FACTOR", "1", RELAY),
    key("DIVERSE_REPLICAS", "True", RELAY),
    key("DESTINATIONS", "", RELAY),
    key("DESTINATION_PROTOCOL", "pickle", RELAY),
    key("DESTINATION_TRANSPORT", "none", RELAY),
    key("DESTINATION_SSL_CA", "None", RELAY),
    key("DESTINATION_POOL_REPLICAS", "False", RELAY),
    key("DYNAMIC_ROUTER", "False", RELAY),
    key("DYNAMIC_ROUTER_MAX_RETRIES", "5", RELAY),
    key("ROUTER_HASH_TYPE", "None", RELAY),
    key("MAX_DATAPOINTS_PER_MESSAGE", "500", RELAY),
    key("MAX_AGGREGATION_INTERVALS", "5", RELAY),
    key("FORWARD_ALL", "True", RELAY),
    key("MAX_QUEUE_SIZE", "1000", RELAY),
    key("QUEUE_LOW_WATERMARK_PCT", "0.8", RELAY),
    key("TIME_TO_DEFER_SENDING", "0.0001", RELAY),
    key("WRITE_BACK_FREQUENCY", "None", RELAY),
    key("USE_RATIO_RESET", "False", RELAY),
    key("MIN_RESET_STAT_FLOW", "1000", RELAY),
    key("MIN_RESET_RATIO", "0.9", RELAY),
    key("MIN_RESET_INTERVAL", "121", RELAY),
    key("TCP_KEEPALIVE", "True", RELAY),
    key("TCP_KEEPIDLE", "10", RELAY),
    key("TCP_KEEPINTVL", "30", RELAY),
    key("TCP_KEEPCNT", "2", RELAY),
    key("LOG_AGGREGATOR_MISSES", "True", RELAY),
    key("AGGREGATION_RULES", "aggregation-rules.conf", RELAY),
    key("REWRITE_RULES", "rewrite-rules.conf", RELAY),
    key("RELAY_RULES", "relay-rules.conf", RELAY),
];

/// Families of keys recognised by prefix, for keys of those features that the table above does
/// not list (other carbon versions add some): (prefix, reason).
pub const IGNORED_PREFIXES: &[(&str, &str)] =
    &[("AMQP_", AMQP), ("MANHOLE_", MANHOLE), ("CERES_", CERES), ("RELAY_", RELAY), ("DESTINATION_", RELAY)];

/// Why the key `name` (upper-case) is ignored, if it is a recognised key Carbyne ignores.
pub(crate) fn ignored(name: &str) -> Option<&'static str> {
    if let Some(k) = IGNORED_KEYS.iter().find(|k| k.name == name) {
        return Some(k.reason);
    }
    IGNORED_PREFIXES.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|&(_, reason)| reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_upper_case() {
        for (i, k) in IGNORED_KEYS.iter().enumerate() {
            assert_eq!(k.name, k.name.to_uppercase());
            assert!(IGNORED_KEYS[..i].iter().all(|o| o.name != k.name), "{} listed twice", k.name);
        }
        assert_eq!(ignored("AMQP_HOST"), Some(AMQP));
        assert_eq!(ignored("AMQP_SSL"), Some(AMQP), "by prefix");
        assert_eq!(ignored("RELAY_SOMETHING_NEW"), Some(RELAY), "by prefix");
        assert_eq!(ignored("amqp_host"), None);
        assert_eq!(ignored("LINE_RECIEVER_PORT"), None);
    }
}
