//! Configuration: carbon.conf, storage-schemas.conf and storage-aggregation.conf, read as
//! carbon-cache 1.1 reads them, and the only place Carbyne's defaults live.
//!
//! Owns: the INI dialect of Python's ConfigParser (sections, `%(name)s` interpolation,
//! continuation lines; `ini.rs`), the `[cache]` / `[cache:<instance>]` keys with carbon's code
//! defaults and types (`carbon.rs`, `value.rs`), the directory layout carbon derives from
//! `GRAPHITE_ROOT` and friends (`paths.rs`), the recognised-but-ignored keys (`keys.rs`), the
//! storage rules with their first-match order and fallbacks (`storage.rs`), the built-in
//! defaults used when there is no carbon.conf at all, and a readable dump (`describe.rs`).
//!
//! Leaves out: everything that acts on the values (listeners, writer, logging), command-line
//! parsing (main.rs; it passes a path and an instance), whitelist.conf / blacklist.conf, and the
//! `[relay]` / `[aggregator]` sections, which are parsed for syntax only. The only I/O is reading
//! the three files and the three `GRAPHITE_*` variables plus `HOME`.
//!
//! Nothing is dropped silently: carbon keys Carbyne does not act on land in
//! [`Config::ignored_keys`], keys nobody knows in [`Config::unknown_keys`], tolerated oddities in
//! [`Config::warnings`], each with file and line, for the caller to print once at start-up. Our
//! own future knobs will be read from `[cache]` too, through the same key table.

mod carbon;
mod describe;
mod error;
mod ini;
mod keys;
mod paths;
mod statsd;
mod storage;
mod value;

use std::path::{Path, PathBuf};

pub use carbon::{CacheSettings, IoBackend, ReportedKey, ThreadPriority, Tuning, WriteStrategy};
pub use error::{ConfigError, ConfigWarning, Problem};
pub use keys::{IgnoredKey, IGNORED_KEYS, IGNORED_PREFIXES};
pub use paths::Environment;
pub use statsd::{HistogramRule, StatsdOptions};
pub use storage::{AggregationRule, AggregationRules, RulesSource, Schema, StorageSchemas};

use crate::whisper::CreateOptions;
use ini::Ini;
use paths::DirKeys;

/// carbon's default instance (`--instance a`).
pub const DEFAULT_INSTANCE: &str = "a";
/// File name of the schemas, in CONF_DIR.
pub const STORAGE_SCHEMAS_FILE: &str = "storage-schemas.conf";
/// File name of the aggregation rules, in CONF_DIR.
pub const STORAGE_AGGREGATION_FILE: &str = "storage-aggregation.conf";

/// The whole configuration of one Carbyne instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// The carbon.conf read; None when running on embedded defaults.
    pub carbon_conf: Option<PathBuf>,
    /// The `[cache]` settings in effect.
    pub cache: CacheSettings,
    /// The `[statsd]` section (etsy statsd's options).
    pub statsd: StatsdOptions,
    /// storage-schemas.conf.
    pub schemas: StorageSchemas,
    /// storage-aggregation.conf.
    pub aggregation: AggregationRules,
    /// Recognised carbon keys Carbyne does not act on (the instance's value wins over `[cache]`).
    pub ignored_keys: Vec<ReportedKey>,
    /// Keys that are no carbon key at all (typos, other software's keys).
    pub unknown_keys: Vec<ReportedKey>,
    /// Tolerated oddities: skipped rule sections, unused rule keys, a missing `[cache]`.
    pub warnings: Vec<ConfigWarning>,
    /// Sections of carbon.conf other than the ones read (`relay`, `aggregator`, other instances).
    pub other_sections: Vec<String>,
}

/// `[statsd]` over etsy's defaults; its ignored and unknown keys reported with carbon's.
fn read_statsd_section(ini: &Ini, conf: &mut carbon::CarbonConf) -> Result<StatsdOptions, ConfigError> {
    let Some(section) = ini.section("statsd") else { return Ok(StatsdOptions::default()) };
    let items = ini.items(section)?;
    let (options, reported) = statsd::read(ini.path(), &items)?;
    conf.other_sections.retain(|s| s != "statsd");
    for (key, line, known) in reported {
        let value = items.iter().find(|i| i.line == line).map(|i| i.value.clone()).unwrap_or_default();
        let report = ReportedKey {
            key,
            value,
            section: "statsd".into(),
            path: ini.path().to_path_buf(),
            line,
            reason: if known { "an etsy statsd option with no meaning inside Carbyne" } else { "" },
        };
        if known {
            conf.ignored_keys.push(report);
        } else {
            conf.unknown_keys.push(report);
        }
    }
    Ok(options)
}

/// What a new whisper file for one metric gets, and which rules decided it.
#[derive(Debug, Clone)]
pub struct CreatePlan<'c> {
    /// The storage schema that matched (its archives are the file's).
    pub schema: &'c Schema,
    /// The aggregation rule that matched.
    pub aggregation: &'c AggregationRule,
    /// Everything `whisper::create` needs besides the archives.
    pub options: CreateOptions,
}

impl Config {
    /// Reads `carbon_conf` for `instance` (carbon's default is [`DEFAULT_INSTANCE`]; "" reads
    /// `[cache]` only), then the storage rules from its CONF_DIR. The environment is this
    /// process's.
    pub fn load(carbon_conf: &Path, instance: &str) -> Result<Config, ConfigError> {
        Config::load_with_env(carbon_conf, instance, &Environment::from_process())
    }

    /// [`Config::load`] with the environment given explicitly.
    pub fn load_with_env(carbon_conf: &Path, instance: &str, env: &Environment) -> Result<Config, ConfigError> {
        if instance.contains(['/', '\0']) {
            return Err(ConfigError::InvalidInstance(instance.to_string()));
        }
        let ini =
            Ini::read(carbon_conf)?.ok_or_else(|| ConfigError::MissingFile { path: carbon_conf.to_path_buf() })?;
        let mut conf = carbon::read_cache_sections(&ini, instance, env)?;
        let statsd = read_statsd_section(&ini, &mut conf)?;
        let mut warnings = Vec::new();
        if ini.section("cache").is_none() {
            warnings.push(ConfigWarning {
                path: carbon_conf.to_path_buf(),
                line: 0,
                message: "no [cache] section: carbon's defaults apply".into(),
            });
        }
        let (schemas, more) = StorageSchemas::load(&conf.settings.conf_dir.join(STORAGE_SCHEMAS_FILE))?;
        warnings.extend(more);
        let (aggregation, more) = AggregationRules::load(&conf.settings.conf_dir.join(STORAGE_AGGREGATION_FILE))?;
        warnings.extend(more);
        Ok(Config {
            carbon_conf: Some(carbon_conf.to_path_buf()),
            cache: conf.settings,
            statsd,
            schemas,
            aggregation,
            ignored_keys: conf.ignored_keys,
            unknown_keys: conf.unknown_keys,
            warnings,
            other_sections: conf.other_sections,
        })
    }

    /// The configuration for running with no config file at all: carbon's code defaults
    /// (ports 2003, 2004, 7002, ...), whisper files directly in `data_dir` (the rest of carbon's
    /// layout under it: `data_dir/lists`, `data_dir/log/...`), and built-in storage rules:
    /// `[carbon] ^carbon\. 60:90d` and `[default] .* 10s:6h,1m:7d,10m:5y` (10-second points
    /// because statsd flushes every 10 s), aggregation as etsy statsd's documentation
    /// recommends. See `EMBEDDED_SCHEMAS` and `EMBEDDED_AGGREGATION` in storage.rs.
    pub fn embedded(data_dir: PathBuf) -> Config {
        let env = Environment::default();
        let dirs = DirKeys {
            graphite_root: data_dir.clone(),
            conf_dir: data_dir.clone(),
            storage_dir: data_dir.clone(),
            local_data_dir: Some(data_dir),
            ..DirKeys::default()
        };
        let cache = CacheSettings::with_dirs(DEFAULT_INSTANCE, dirs.finish(DEFAULT_INSTANCE, &env));
        let schemas = StorageSchemas::from_text(
            Path::new("<built-in storage-schemas.conf>"),
            storage::EMBEDDED_SCHEMAS,
            RulesSource::Embedded,
        )
        .expect("built-in storage schemas are valid (tested)");
        let aggregation = AggregationRules::from_text(
            Path::new("<built-in storage-aggregation.conf>"),
            storage::EMBEDDED_AGGREGATION,
            RulesSource::Embedded,
        )
        .expect("built-in aggregation rules are valid (tested)");
        Config {
            carbon_conf: None,
            cache,
            statsd: StatsdOptions::default(),
            schemas,
            aggregation,
            ignored_keys: Vec::new(),
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
            other_sections: Vec::new(),
        }
    }

    /// Re-reads storage-schemas.conf and storage-aggregation.conf (on SIGHUP). On error nothing
    /// changes, as carbon keeps its old rules when a reload fails. A no-op on embedded defaults.
    pub fn reload_storage_rules(&mut self) -> Result<(), ConfigError> {
        if self.carbon_conf.is_none() {
            return Ok(());
        }
        let schemas_path = self.cache.conf_dir.join(STORAGE_SCHEMAS_FILE);
        let aggregation_path = self.cache.conf_dir.join(STORAGE_AGGREGATION_FILE);
        let (schemas, schema_warnings) = StorageSchemas::load(&schemas_path)?;
        let (aggregation, aggregation_warnings) = AggregationRules::load(&aggregation_path)?;
        self.warnings.retain(|w| w.path != schemas_path && w.path != aggregation_path);
        self.warnings.extend(schema_warnings);
        self.warnings.extend(aggregation_warnings);
        self.schemas = schemas;
        self.aggregation = aggregation;
        Ok(())
    }

    /// The rules and whisper options for a new file holding `metric`.
    pub fn create_plan(&self, metric: &str) -> CreatePlan<'_> {
        let schema = self.schemas.match_metric(metric);
        let aggregation = self.aggregation.match_metric(metric);
        let options = CreateOptions {
            aggregation: aggregation.method,
            x_files_factor: aggregation.x_files_factor,
            allocation: self.cache.whisper_allocation(),
            write: self.cache.whisper_write_options(),
        };
        CreatePlan { schema, aggregation, options }
    }
}

#[cfg(test)]
mod tests;
