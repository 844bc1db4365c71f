//! Loading whole configurations from files: instances, paths, key reports, rule files, reloads
//! and the embedded defaults.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::carbon::{apply, Outcome};
use super::paths::DirKeys;
use super::*;
use crate::whisper::{AggregationMethod, Allocation, ArchiveSpec, WriteOptions};

const SCHEMAS: &str =
    "[carbon]\npattern = ^carbon\\.\nretentions = 60:90d\n\n[default]\npattern = .*\nretentions = 60s:1d,5m:30d\n";

/// A graphite root in a temp dir with `conf/carbon.conf` and, when given, the rule files.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(carbon_conf: &str, schemas: Option<&str>, aggregation: Option<&str>) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("conf");
        fs::create_dir(&conf).expect("mkdir conf");
        fs::write(conf.join("carbon.conf"), carbon_conf).expect("write carbon.conf");
        if let Some(text) = schemas {
            fs::write(conf.join(STORAGE_SCHEMAS_FILE), text).expect("write schemas");
        }
        if let Some(text) = aggregation {
            fs::write(conf.join(STORAGE_AGGREGATION_FILE), text).expect("write aggregation");
        }
        Setup { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn conf(&self) -> PathBuf {
        self.root().join("conf").join("carbon.conf")
    }

    fn load(&self, instance: &str) -> Result<Config, ConfigError> {
        Config::load_with_env(&self.conf(), instance, &Environment::default())
    }
}

/// Loads `carbon_conf` (with valid rule files) for `instance` and compares the named entries.
fn check(carbon_conf: &str, instance: &str, expected: &[(&str, &str)]) {
    let setup = Setup::new(carbon_conf, Some(SCHEMAS), None);
    let config = setup.load(instance).unwrap_or_else(|e| panic!("{carbon_conf:?}: {e}"));
    let entries: BTreeMap<&str, String> = config.cache.entries().into_iter().collect();
    for (key, value) in expected {
        assert_eq!(entries.get(key).map(String::as_str), Some(*value), "{key} in {carbon_conf:?}");
    }
}

/// Loads `carbon_conf` and expects an error at `line` of carbon.conf containing `fragment`.
fn check_err(carbon_conf: &str, line: u32, fragment: &str) {
    let setup = Setup::new(carbon_conf, Some(SCHEMAS), None);
    let err = setup.load(DEFAULT_INSTANCE).expect_err(carbon_conf);
    let msg = err.to_string();
    assert_eq!(err.line(), Some(line), "{msg}");
    assert!(msg.starts_with(&format!("{}:{line}: ", setup.conf().display())), "{msg}");
    assert!(msg.contains(fragment), "{msg:?} should contain {fragment:?}");
}

/// carbon's code defaults (`lib/carbon/conf.py`), as the reference table lists them.
const CARBON_CODE_DEFAULTS: &[(&str, &str)] = &[
    ("instance", "a"),
    ("DATABASE", "whisper"),
    ("USER", ""),
    ("ENABLE_LOGROTATION", "True"),
    ("MAX_CACHE_SIZE", "inf"),
    ("USE_FLOW_CONTROL", "True"),
    ("MAX_UPDATES_PER_SECOND", "500"),
    ("MAX_UPDATES_PER_SECOND_ON_SHUTDOWN", "None"),
    ("MAX_CREATES_PER_MINUTE", "inf"),
    ("MIN_TIMESTAMP_RESOLUTION", "0"),
    ("MIN_TIMESTAMP_LAG", "0"),
    ("CACHE_WRITE_STRATEGY", "sorted"),
    ("LINE_RECEIVER_INTERFACE", "0.0.0.0"),
    ("LINE_RECEIVER_PORT", "2003"),
    ("ENABLE_UDP_LISTENER", "False"),
    ("UDP_RECEIVER_INTERFACE", "0.0.0.0"),
    ("UDP_RECEIVER_PORT", "2003"),
    ("PICKLE_RECEIVER_INTERFACE", "0.0.0.0"),
    ("PICKLE_RECEIVER_PORT", "2004"),
    ("PICKLE_RECEIVER_MAX_LENGTH", "1048576"),
    ("MAX_RECEIVER_CONNECTIONS", "inf"),
    ("METRIC_CLIENT_IDLE_TIMEOUT", "None"),
    ("CACHE_QUERY_INTERFACE", "0.0.0.0"),
    ("CACHE_QUERY_PORT", "7002"),
    ("WHISPER_AUTOFLUSH", "False"),
    ("WHISPER_SPARSE_CREATE", "False"),
    ("WHISPER_FALLOCATE_CREATE", "False"),
    ("WHISPER_LOCK_WRITES", "False"),
    ("WHISPER_FADVISE_RANDOM", "False"),
    ("USE_WHITELIST", "False"),
    ("CARBON_METRIC_PREFIX", "carbon"),
    ("CARBON_METRIC_INTERVAL", "60"),
    ("ENABLE_TAGS", "True"),
    ("TAG_HASH_FILENAMES", "True"),
    ("LOG_UPDATES", "True"),
    ("LOG_CREATES", "True"),
    ("LOG_CACHE_HITS", "True"),
    ("LOG_CACHE_QUEUE_SORTS", "True"),
    ("LOG_LISTENER_CONN_SUCCESS", "True"),
    ("LOG_LISTENER_CONN_LOST", "False"),
    ("GRAPHITE_ROOT", "/opt/graphite"),
    ("CONF_DIR", "/opt/graphite/conf"),
    ("STORAGE_DIR", "/opt/graphite/storage"),
    ("LOCAL_DATA_DIR", "/opt/graphite/storage/whisper"),
    ("WHITELISTS_DIR", "/opt/graphite/storage/lists"),
    ("PID_DIR", "/opt/graphite/storage"),
    ("pidfile", "/opt/graphite/storage/carbon-cache-a.pid"),
    ("LOG_DIR", "/opt/graphite/storage/log/carbon-cache/carbon-cache-a"),
];

#[test]
fn every_default_is_carbons_code_default() {
    let got = CacheSettings::default().entries();
    let got_keys: Vec<&str> = got.iter().map(|(k, _)| *k).collect();
    for (key, _) in CARBON_CODE_DEFAULTS {
        assert!(got_keys.contains(key), "{key} missing from entries()");
    }
    // Carbyne's own keys (not carbon's) and their defaults.
    let ours = [
        ("INGEST_THREADS", "0"),
        ("WRITER_THREADS", "0"),
        ("CACHE_SHARDS", "0"),
        ("CACHE_QUEUE_DEPTH", "16"),
        ("WRITER_OPEN_FILES", "1024"),
        ("WRITER_MMAP", "False"),
        ("UDP_RECEIVE_BUFFER", "134217728"),
        ("MAX_LINE_LENGTH", "16384"),
        ("IO_BACKEND", "auto"),
        ("ENABLE_STATSD", "True"),
        ("ENABLE_STATSD_TCP", "False"),
        ("STATSD_INTERFACE", "0.0.0.0"),
        ("STATSD_PORT", "8125"),
        ("STATSD_ADMIN_PORT", "8126"),
        ("HTTP_INTERFACE", "0.0.0.0"),
        ("HTTP_PORT", "8080"),
        ("HTTP_HTPASSWD_FILE", "None"),
        ("HTTP_THREADS", "2"),
        ("HTTP_PRIORITY", "adaptive"),
        ("HTTP_MAX_REQUESTS", "64"),
        ("HTTP_TIMEOUT", "30"),
    ];
    for (key, value) in &got {
        let expected = CARBON_CODE_DEFAULTS.iter().chain(ours.iter()).find(|(k, _)| k == key).map(|(_, v)| *v);
        assert_eq!(Some(value.as_str()), expected, "{key}");
    }
}

#[test]
fn every_reference_key_is_recognised() {
    // Section 1.2 of the reference, with a value of the right type for each.
    let keys: &[(&str, &str)] = &[
        ("STORAGE_DIR", "/s"),
        ("LOCAL_DATA_DIR", "/s/w"),
        ("CONF_DIR", "/c"),
        ("LOG_DIR", "/l"),
        ("PID_DIR", "/p"),
        ("WHITELISTS_DIR", "/w"),
        ("DATABASE", "whisper"),
        ("USER", "carbon"),
        ("ENABLE_LOGROTATION", "True"),
        ("MAX_CACHE_SIZE", "inf"),
        ("MAX_UPDATES_PER_SECOND", "500"),
        ("MAX_UPDATES_PER_SECOND_ON_SHUTDOWN", "1000"),
        ("MAX_CREATES_PER_MINUTE", "50"),
        ("MIN_TIMESTAMP_RESOLUTION", "1"),
        ("MIN_TIMESTAMP_LAG", "0"),
        ("LINE_RECEIVER_INTERFACE", "0.0.0.0"),
        ("LINE_RECEIVER_PORT", "2003"),
        ("ENABLE_UDP_LISTENER", "False"),
        ("UDP_RECEIVER_INTERFACE", "0.0.0.0"),
        ("UDP_RECEIVER_PORT", "2003"),
        ("PICKLE_RECEIVER_INTERFACE", "0.0.0.0"),
        ("PICKLE_RECEIVER_PORT", "2004"),
        ("PICKLE_RECEIVER_MAX_LENGTH", "1048576"),
        ("PROTOBUF_RECEIVER_INTERFACE", "0.0.0.0"),
        ("PROTOBUF_RECEIVER_PORT", "2005"),
        ("MAX_RECEIVER_CONNECTIONS", "inf"),
        ("USE_INSECURE_UNPICKLER", "False"),
        ("CACHE_QUERY_INTERFACE", "0.0.0.0"),
        ("CACHE_QUERY_PORT", "7002"),
        ("USE_FLOW_CONTROL", "True"),
        ("METRIC_CLIENT_IDLE_TIMEOUT", "None"),
        ("LOG_UPDATES", "False"),
        ("LOG_CREATES", "False"),
        ("LOG_CACHE_HITS", "False"),
        ("LOG_CACHE_QUEUE_SORTS", "False"),
        ("LOG_LISTENER_CONN_SUCCESS", "True"),
        ("LOG_LISTENER_CONN_LOST", "False"),
        ("CACHE_WRITE_STRATEGY", "sorted"),
        ("WHISPER_AUTOFLUSH", "False"),
        ("WHISPER_SPARSE_CREATE", "False"),
        ("WHISPER_FALLOCATE_CREATE", "True"),
        ("WHISPER_LOCK_WRITES", "False"),
        ("WHISPER_FADVISE_RANDOM", "False"),
        ("CERES_MAX_SLICE_GAP", "80"),
        ("CERES_NODE_CACHING_BEHAVIOR", "all"),
        ("CERES_SLICE_CACHING_BEHAVIOR", "latest"),
        ("CERES_LOCK_WRITES", "False"),
        ("USE_WHITELIST", "False"),
        ("CARBON_METRIC_PREFIX", "carbon"),
        ("CARBON_METRIC_INTERVAL", "60"),
        ("RELAY_CACHE_METRICS", "False"),
        ("RELAY_METHOD", "rules"),
        ("REPLICATION_FACTOR", "1"),
        ("DESTINATIONS", "127.0.0.1:2004"),
        ("DESTINATION_PROTOCOL", "pickle"),
        ("ENABLE_AMQP", "False"),
        ("AMQP_HOST", "localhost"),
        ("AMQP_VERBOSE", "False"),
        ("BIND_PATTERNS", "#"),
        ("ENABLE_MANHOLE", "False"),
        ("MANHOLE_PORT", "7222"),
        ("GRAPHITE_URL", "http://127.0.0.1:80"),
        ("ENABLE_TAGS", "True"),
        ("SKIP_TAGS_FOR_NONTAGGED", "True"),
        ("TAG_UPDATE_INTERVAL", "100"),
        ("TAG_BATCH_SIZE", "100"),
        ("TAG_QUEUE_SIZE", "10000"),
        ("TAG_HASH_FILENAMES", "True"),
        ("CACHE_METRIC_NAMES_MAX", "0"),
        ("CACHE_METRIC_NAMES_TTL", "0"),
        ("RAVEN_DSN", "None"),
    ];
    let mut settings = CacheSettings::default();
    let mut dirs = DirKeys::default();
    for (key, value) in keys {
        let outcome = apply(&mut settings, &mut dirs, key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_ne!(outcome, Outcome::Unknown, "{key}");
    }
    assert_eq!(apply(&mut settings, &mut dirs, "LINE_RECIEVER_PORT", "1").ok(), Some(Outcome::Unknown));
}

#[test]
fn displayed_values_read_back_to_the_same_settings() {
    let changed = CacheSettings {
        max_cache_size: Some(2_000_000),
        max_updates_per_second: 0.5,
        max_updates_per_second_on_shutdown: Some(1000.0),
        metric_client_idle_timeout: Some(Duration::from_millis(2500)),
        cache_write_strategy: WriteStrategy::TimeSorted,
        user: "graphite".into(),
        ..CacheSettings::default()
    };
    for original in [CacheSettings::default(), changed] {
        // Start from values the defaults do not have, so that every key must be read back.
        let mut read = CacheSettings {
            max_cache_size: Some(1),
            metric_client_idle_timeout: Some(Duration::from_secs(9)),
            ..CacheSettings::default()
        };
        let mut dirs = DirKeys::default();
        for (key, value) in original.entries() {
            if key.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                apply(&mut read, &mut dirs, key, &value).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            }
        }
        let without_dirs = |s: &CacheSettings| {
            let mut s = s.clone();
            s.set_dirs_for_test(&CacheSettings::default());
            s
        };
        assert_eq!(without_dirs(&read), without_dirs(&original));
    }
}

impl CacheSettings {
    /// Copies the directory fields of `other` (they are derived, not read back one by one).
    fn set_dirs_for_test(&mut self, other: &CacheSettings) {
        self.graphite_root.clone_from(&other.graphite_root);
        self.conf_dir.clone_from(&other.conf_dir);
        self.storage_dir.clone_from(&other.storage_dir);
        self.local_data_dir.clone_from(&other.local_data_dir);
        self.whitelists_dir.clone_from(&other.whitelists_dir);
        self.pid_dir.clone_from(&other.pid_dir);
        self.pid_file.clone_from(&other.pid_file);
        self.log_dir.clone_from(&other.log_dir);
    }
}

#[test]
fn values_booleans_and_inf() {
    let conf = "[cache]\nMAX_CACHE_SIZE = inf\nMAX_CREATES_PER_MINUTE = 50\nENABLE_UDP_LISTENER = yes\nUSE_FLOW_CONTROL = off\nLOG_UPDATES = 0\nWHISPER_LOCK_WRITES = TRUE\nMAX_UPDATES_PER_SECOND = Infinity\nMIN_TIMESTAMP_RESOLUTION = 1\nmax_receiver_connections: 1e4\nCACHE_WRITE_STRATEGY = bucketmax\nMETRIC_CLIENT_IDLE_TIMEOUT = 30\nUSER =\n";
    check(
        conf,
        "a",
        &[
            ("MAX_CACHE_SIZE", "inf"),
            ("MAX_CREATES_PER_MINUTE", "50"),
            ("ENABLE_UDP_LISTENER", "True"),
            ("USE_FLOW_CONTROL", "False"),
            ("LOG_UPDATES", "False"),
            ("WHISPER_LOCK_WRITES", "True"),
            ("MAX_UPDATES_PER_SECOND", "inf"),
            ("MIN_TIMESTAMP_RESOLUTION", "1"),
            ("MAX_RECEIVER_CONNECTIONS", "10000"),
            ("CACHE_WRITE_STRATEGY", "bucketmax"),
            ("METRIC_CLIENT_IDLE_TIMEOUT", "30"),
            ("USER", ""),
        ],
    );
    let setup = Setup::new("[cache]\nMAX_CACHE_SIZE = 5e6\nPICKLE_RECEIVER_MAX_LENGTH = inf\n", Some(SCHEMAS), None);
    let cache = setup.load("a").expect("loads").cache;
    assert_eq!(cache.max_cache_size, Some(5_000_000));
    assert_eq!(cache.pickle_receiver_max_length, u32::MAX);
}

#[test]
fn invalid_values_name_file_line_and_expectation() {
    check_err("[cache]\n\nLINE_RECEIVER_PORT = abc\n", 3, "LINE_RECEIVER_PORT = \"abc\": expected a port number");
    check_err("[cache]\nPICKLE_RECEIVER_PORT = 70000\n", 2, "port number");
    check_err("[cache]\nENABLE_UDP_LISTENER = maybe\n", 2, "expected a boolean");
    check_err(
        "[cache]\nCACHE_WRITE_STRATEGY = random\n",
        2,
        "expected one of sorted, max, naive, timesorted, bucketmax",
    );
    check_err("[cache]\nCACHE_WRITE_STRATEGY = Sorted\n", 2, "expected one of");
    check_err("[cache]\nDATABASE = ceres\n", 2, "whisper files only");
    check_err("[cache]\nMAX_CACHE_SIZE = -1\n", 2, "whole number >= 0, or inf");
    check_err("[cache]\nMAX_UPDATES_PER_SECOND = fast\n", 2, "a number >= 0");
    check_err("[cache]\nCARBON_METRIC_INTERVAL = 1.5\n", 2, "whole number of seconds");
    check_err("[cache]\nk = 1\n[cache:a]\nLINE_RECEIVER_PORT = %(nope)s\n", 4, "%(nope)s");
    // A broken key in a section carbon-cache does not read is not an error.
    let setup =
        Setup::new("[relay]\nLINE_RECEIVER_PORT = %(nope)s\n[cache:b]\nLINE_RECEIVER_PORT = x\n", Some(SCHEMAS), None);
    let config = setup.load("a").expect("other sections are not interpolated");
    assert_eq!(config.other_sections, ["relay", "cache:b"]);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].to_string().ends_with("carbon.conf: no [cache] section: carbon's defaults apply"));
}

#[test]
fn instance_section_overrides_cache() {
    let conf =
        "[cache]\nLINE_RECEIVER_PORT = 2003\nPICKLE_RECEIVER_PORT = 2004\n\n[cache:b]\nLINE_RECEIVER_PORT = 2103\n";
    check(conf, "a", &[("LINE_RECEIVER_PORT", "2003"), ("PICKLE_RECEIVER_PORT", "2004")]);
    check(conf, "b", &[("LINE_RECEIVER_PORT", "2103"), ("PICKLE_RECEIVER_PORT", "2004"), ("instance", "b")]);
    check(conf, "", &[("LINE_RECEIVER_PORT", "2003"), ("instance", "")]);
    // carbon's quirk: every read of a section includes [DEFAULT], so with an instance section
    // present a [DEFAULT] key overrides the [cache] value.
    let conf = "[DEFAULT]\nCACHE_QUERY_PORT = 7999\n[cache]\nCACHE_QUERY_PORT = 7002\n[cache:b]\n";
    check(conf, "a", &[("CACHE_QUERY_PORT", "7002")]);
    check(conf, "b", &[("CACHE_QUERY_PORT", "7999")]);
}

#[test]
fn paths_follow_carbon() {
    let setup = Setup::new("[cache]\n", Some(SCHEMAS), None);
    let root = setup.root().to_path_buf();
    let cache = setup.load("b").expect("loads").cache;
    assert_eq!(cache.graphite_root, root);
    assert_eq!(cache.conf_dir, root.join("conf"));
    assert_eq!(cache.local_data_dir, root.join("storage/whisper"));
    assert_eq!(cache.log_dir, root.join("storage/log/carbon-cache/carbon-cache-b"));
    assert_eq!(cache.pid_file, root.join("storage/carbon-cache-b.pid"));

    let conf = "[cache]\nSTORAGE_DIR = /var/lib/graphite/\nLOCAL_DATA_DIR = %(STORAGE_DIR)s/whisper/\nLOG_DIR = ~/log\n[cache:b]\nSTORAGE_DIR = /elsewhere\n";
    let setup = Setup::new(conf, Some(SCHEMAS), None);
    let env = Environment { home: Some("/home/g".into()), ..Environment::default() };
    let cache = Config::load_with_env(&setup.conf(), "b", &env).expect("loads").cache;
    assert_eq!(cache.storage_dir, PathBuf::from("/elsewhere"));
    assert_eq!(cache.local_data_dir, PathBuf::from("/var/lib/graphite/whisper"));
    assert_eq!(cache.whitelists_dir, PathBuf::from("/var/lib/graphite/lists"), "derived before [cache:b]");
    assert_eq!(cache.log_dir, PathBuf::from("/home/g/log/carbon-cache-b"));

    let env = Environment { graphite_storage_dir: Some("/data".into()), ..Environment::default() };
    let setup = Setup::new("[cache]\n", Some(SCHEMAS), None);
    let cache = Config::load_with_env(&setup.conf(), "a", &env).expect("loads").cache;
    assert_eq!(cache.local_data_dir, PathBuf::from("/data/whisper"));
}

#[test]
fn conf_dir_from_carbon_conf_locates_the_rules() {
    let setup = Setup::new("", None, None);
    let other = setup.root().join("etc");
    fs::create_dir(&other).expect("mkdir");
    fs::write(other.join(STORAGE_SCHEMAS_FILE), "[x]\npattern = .\nretentions = 1h:1d\n").expect("write");
    let conf = format!("[cache]\nCONF_DIR = {}\n", other.display());
    fs::write(setup.conf(), conf).expect("write");
    let config = setup.load("a").expect("loads");
    assert_eq!(config.schemas.match_metric("a").name, "x");
    assert_eq!(config.aggregation.source, RulesSource::Missing(other.join(STORAGE_AGGREGATION_FILE)));
}

#[test]
fn reported_keys_carry_file_and_line() {
    let conf = "[DEFAULT]\nhelper = /x\n[cache]\nUSE_INSECURE_UNPICKLER = True\nLINE_RECIEVER_PORT = 2003\nAMQP_HOST = mq\n[cache:a]\nAMQP_HOST = mq2\n";
    let setup = Setup::new(conf, Some(SCHEMAS), None);
    let config = setup.load("a").expect("loads");
    let ignored: Vec<(&str, &str, u32, &str)> =
        config.ignored_keys.iter().map(|k| (k.key.as_str(), k.value.as_str(), k.line, k.section.as_str())).collect();
    assert_eq!(ignored, [("USE_INSECURE_UNPICKLER", "True", 4, "cache"), ("AMQP_HOST", "mq2", 8, "cache:a")]);
    let unknown: Vec<(&str, u32, &str)> =
        config.unknown_keys.iter().map(|k| (k.key.as_str(), k.line, k.section.as_str())).collect();
    assert_eq!(unknown, [("HELPER", 2, "DEFAULT"), ("LINE_RECIEVER_PORT", 5, "cache")]);
    let shown = config.unknown_keys[1].to_string();
    assert_eq!(shown, format!("{}:5: [cache] LINE_RECIEVER_PORT = 2003", setup.conf().display()));
    assert!(config.ignored_keys[0].to_string().ends_with("(the pickle receiver always uses its own safe unpickler)"));
}

#[test]
fn missing_files() {
    let setup = Setup::new("[cache]\n", None, None);
    let err = setup.load("a").expect_err("no schemas");
    assert!(matches!(&err, ConfigError::MissingFile { path } if path.ends_with("conf/storage-schemas.conf")), "{err}");
    assert!(err.to_string().contains("required config file not found"));

    let err = Config::load_with_env(&setup.root().join("nope.conf"), "a", &Environment::default()).expect_err("none");
    assert!(matches!(err, ConfigError::MissingFile { .. }));

    let setup = Setup::new("[cache]\n", Some(SCHEMAS), None);
    let config = setup.load("a").expect("aggregation file is optional");
    assert!(matches!(config.aggregation.source, RulesSource::Missing(_)));
    let rule = config.aggregation.match_metric("x.count");
    assert_eq!((rule.method, rule.x_files_factor), (AggregationMethod::Average, 0.5));

    let err = setup.load("x/../../etc").expect_err("instance with a slash");
    assert!(matches!(err, ConfigError::InvalidInstance(_)));
}

#[test]
fn hostile_carbon_conf_is_an_error() {
    let mut garbage: Vec<u8> = (0..=255u8).rev().cycle().take(10_000).collect();
    garbage.extend_from_slice(b"\n[cache\n");
    let setup = Setup::new("", Some(SCHEMAS), None);
    fs::write(setup.conf(), &garbage).expect("write");
    assert!(setup.load("a").is_err());
    for text in
        ["[cache\nk = v\n", "[cache]\nk = %(\n", "x", "[cache]\n\u{0}\n", "[cache]\nLINE_RECEIVER_PORT = \u{0}\n"]
    {
        fs::write(setup.conf(), text).expect("write");
        assert!(setup.load("a").is_err(), "{text:?}");
    }
    let long = format!("[cache]\nk = {}\n", "v".repeat(1 << 20));
    fs::write(setup.conf(), long).expect("write");
    assert_eq!(setup.load("a").expect_err("long line").line(), Some(2));
}

#[test]
fn rules_and_whisper_options_for_a_new_file() {
    let aggregation = "[count]\npattern = \\.count$\nxFilesFactor = 0\naggregationMethod = sum\n";
    let conf = "[cache]\nWHISPER_SPARSE_CREATE = True\nWHISPER_LOCK_WRITES = True\nWHISPER_AUTOFLUSH = on\n";
    let setup = Setup::new(conf, Some(SCHEMAS), Some(aggregation));
    let config = setup.load("a").expect("loads");
    let plan = config.create_plan("carbon.agents.h-a.count");
    assert_eq!(plan.schema.name, "carbon");
    assert_eq!(plan.aggregation.name, "count");
    assert_eq!(plan.options.aggregation, AggregationMethod::Sum);
    assert_eq!(plan.options.x_files_factor, 0.0);
    assert_eq!(plan.options.allocation, Allocation::Sparse);
    assert_eq!(
        plan.options.write,
        WriteOptions { lock_writes: true, autoflush: true, fadvise_random: false, mmap: false }
    );
    let plan = config.create_plan("app.latency");
    assert_eq!(
        plan.schema.archives,
        [ArchiveSpec { seconds_per_point: 60, points: 1440 }, ArchiveSpec { seconds_per_point: 300, points: 8640 }]
    );

    let mut cache = CacheSettings::default();
    assert_eq!(cache.whisper_allocation(), Allocation::Zeroed);
    cache.whisper_sparse_create = true;
    cache.whisper_fallocate_create = true;
    assert_eq!(cache.whisper_allocation(), Allocation::Fallocate, "fallocate wins, as in whisper");
    // carbon's WHISPER_* flags and WRITER_MMAP (ours) are off by default.
    assert_eq!(CacheSettings::default().whisper_write_options(), WriteOptions::default());
    let on = Setup::new("[cache]\nWRITER_MMAP = on\n", Some(SCHEMAS), None).load("a").expect("loads");
    assert!(on.cache.whisper_write_options().mmap);
}

#[test]
fn reload_replaces_rules_or_keeps_the_old_ones() {
    let setup = Setup::new("[cache]\n", Some(SCHEMAS), None);
    let mut config = setup.load("a").expect("loads");
    let schemas_path = setup.root().join("conf").join(STORAGE_SCHEMAS_FILE);
    fs::write(&schemas_path, "[all]\npattern = .\nretentions = 10s:1d\n[skip]\npattern = x\n").expect("write");
    config.reload_storage_rules().expect("reloads");
    assert_eq!(config.schemas.match_metric("carbon.x").name, "all");
    assert_eq!(config.warnings.len(), 1);

    fs::write(&schemas_path, "[bad]\npattern = (\nretentions = 10s:1d\n").expect("write");
    let err = config.reload_storage_rules().expect_err("bad pattern");
    assert_eq!(err.line(), Some(2));
    assert_eq!(config.schemas.match_metric("carbon.x").name, "all", "old rules kept");

    fs::write(&schemas_path, SCHEMAS).expect("write");
    config.reload_storage_rules().expect("reloads");
    assert_eq!(config.schemas.match_metric("carbon.x").name, "carbon");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn embedded_defaults() {
    let mut config = Config::embedded(PathBuf::from("/var/lib/carbyne"));
    let c = &config.cache;
    assert_eq!(c.local_data_dir, PathBuf::from("/var/lib/carbyne"));
    assert_eq!(c.whitelists_dir, PathBuf::from("/var/lib/carbyne/lists"));
    assert_eq!((c.line_receiver_port, c.pickle_receiver_port, c.cache_query_port), (2003, 2004, 7002));
    let carbon = config.schemas.match_metric("carbon.agents.h-a.cpuUsage");
    assert_eq!(
        (carbon.name.as_str(), carbon.archives.as_slice()),
        ("carbon", &[ArchiveSpec { seconds_per_point: 60, points: 129_600 }][..])
    );
    let stats = config.schemas.match_metric("stats.counters.x.count");
    assert_eq!(stats.retentions, "10s:6h,1m:7d,10m:5y");
    assert_eq!(config.aggregation.match_metric("stats.counters.x.count").method, AggregationMethod::Sum);
    config.reload_storage_rules().expect("no-op without files");
    assert_eq!(config.schemas.rules().len(), 2);
}

#[test]
fn describe_lists_everything() {
    let conf = "[cache]\nLINE_RECEIVER_PORT = 2103\nAMQP_HOST = mq\nTYPO_KEY = 1\n[relay]\n";
    let aggregation = "[min]\npattern = \\.min$\naggregationMethod = min\n[nopattern]\n";
    let setup = Setup::new(conf, Some(SCHEMAS), Some(aggregation));
    let text = setup.load("a").expect("loads").describe();
    for fragment in [
        "carbon.conf: ",
        "(instance \"a\")",
        "other sections (read, not used): relay",
        "  LINE_RECEIVER_PORT = 2103\n",
        "  MAX_CACHE_SIZE = inf\n",
        "  WHISPER_FALLOCATE_CREATE = False\n",
        "  [carbon] line 1: pattern ^carbon\\. -> 60:129600 (1m per point for 90d)",
        "  [default] line 5: pattern .* -> 60:1440 (1m per point for 1d), 300:8640 (5m per point for 30d)",
        "  [default] built-in fallback for everything else -> 60:10080 (1m per point for 7d)",
        "  [min] line 1: pattern \\.min$ -> min, xFilesFactor 0.5",
        "built-in fallback for everything else -> average, xFilesFactor 0.5",
        ":3: [cache] AMQP_HOST = mq (AMQP input is not supported)",
        ":4: [cache] TYPO_KEY = 1\n",
        "storage-aggregation.conf:4: [nopattern] has no pattern: section skipped",
    ] {
        assert!(text.contains(fragment), "{fragment:?} not in:\n{text}");
    }
    let embedded = Config::embedded(PathBuf::from("/d")).describe();
    assert!(embedded.contains("carbon.conf: none (embedded defaults)"), "{embedded}");
    assert!(embedded.contains("storage schemas (built in)"), "{embedded}");
    assert!(embedded.contains("ignored keys (carbon keys Carbyne does not act on): none"), "{embedded}");
}

#[test]
fn carbyne_tuning_keys_are_read_from_cache_sections() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("carbon.conf");
    std::fs::write(
        &conf,
        "[cache]\nINGEST_THREADS = 3\nWRITER_THREADS = 2\nCACHE_QUEUE_DEPTH = 8\nMAX_LINE_LENGTH = 1024\nIO_BACKEND = auto\n\n[cache:b]\nWRITER_THREADS = 1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("storage-schemas.conf"), "[all]\npattern = .*\nretentions = 60:10\n").unwrap();
    let c = Config::load(&conf, "b").unwrap();
    let t = &c.cache.tuning;
    assert_eq!((t.ingest_threads, t.writer_threads, t.cache_queue_depth, t.max_line_length), (3, 1, 8, 1024));
    assert!(c.unknown_keys.is_empty() && c.ignored_keys.is_empty(), "our keys are known: {:?}", c.unknown_keys);
    assert_eq!(t.resolve_threads(4), (3, 1, 8));
    assert_eq!(Tuning::default().resolve_threads(2), (2, 1, 8));
    std::fs::write(&conf, "[cache]\nIO_BACKEND = kqueue\n").unwrap();
    let err = Config::load(&conf, "a").unwrap_err().to_string();
    assert!(err.contains("IO_BACKEND") && err.contains(":2"), "{err}");
}
