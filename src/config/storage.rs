//! storage-schemas.conf and storage-aggregation.conf: which retentions, aggregation method and
//! xFilesFactor a new whisper file gets.
//!
//! Both files are read with the same INI rules as carbon.conf (interpolation included). Sections
//! are tried in file order and the first whose `pattern` matches the metric name anywhere
//! (Python's `re.search`, here `Regex::is_match`) wins; when none matches, carbon's built-in
//! fallback applies: `60:10080` (one minute for seven days) and whisper's average / 0.5.
//!
//! Differences from carbon, all on the side of saying more:
//! - A pattern the `regex` crate cannot compile (look-around, back-references) or an invalid
//!   `retentions` list is an error naming the file and line; carbon logs the latter and skips
//!   the section, which silently gives new files the wrong retention forever.
//! - A section without both `pattern` and `retentions` (or, for aggregation, without `pattern`)
//!   is skipped as carbon skips it, and reported as a warning; so are keys no rule uses.
//! - carbon 1.1's tag-matching schema sections and `match-all` are not supported: such a
//!   section has no `pattern`, so it is skipped with a warning.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::error::{ConfigError, ConfigWarning, Problem};
use super::ini::{Ini, Item, Section};
use crate::whisper::{parse_retentions, validate_archive_list, AggregationMethod, ArchiveSpec};

/// Where a set of rules came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesSource {
    /// Built into Carbyne (running without carbon.conf).
    Embedded,
    /// Read from this file.
    File(PathBuf),
    /// This file does not exist; only the fallback applies (storage-aggregation.conf only).
    Missing(PathBuf),
}

/// One storage-schemas.conf section.
#[derive(Debug, Clone)]
pub struct Schema {
    /// The section name.
    pub name: String,
    /// The pattern as written; empty for the built-in fallback, which matches every name.
    pub pattern: String,
    /// The retentions as written (`10s:6h,1m:7d`).
    pub retentions: String,
    /// The archives, validated and sorted by precision as whisper stores them.
    pub archives: Vec<ArchiveSpec>,
    /// 1-based line of the section header; 0 for the built-in fallback.
    pub line: u32,
    /// None for the fallback.
    regex: Option<Regex>,
}

impl Schema {
    /// Whether the rule applies to `metric` (an unanchored search, as Python's `re.search`).
    pub fn matches(&self, metric: &str) -> bool {
        self.regex.as_ref().is_none_or(|r| r.is_match(metric))
    }
}

/// The rules of storage-schemas.conf in file order, and the fallback.
#[derive(Debug, Clone)]
pub struct StorageSchemas {
    /// Where the rules came from.
    pub source: RulesSource,
    rules: Vec<Schema>,
    fallback: Schema,
}

impl StorageSchemas {
    /// The first rule matching `metric`, else the fallback (`60:10080`).
    pub fn match_metric(&self, metric: &str) -> &Schema {
        self.rules.iter().find(|s| s.matches(metric)).unwrap_or(&self.fallback)
    }

    /// The rules in file order (the fallback excluded).
    pub fn rules(&self) -> &[Schema] {
        &self.rules
    }

    /// carbon's built-in fallback: `default`, one minute for seven days.
    pub fn fallback(&self) -> &Schema {
        &self.fallback
    }

    /// Reads `path`; a missing file is an error, as carbon refuses to start without it.
    pub(crate) fn load(path: &Path) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let ini = Ini::read(path)?.ok_or_else(|| ConfigError::MissingFile { path: path.to_path_buf() })?;
        let (rules, warnings) = parse_schemas(&ini)?;
        Ok((
            StorageSchemas { source: RulesSource::File(path.to_path_buf()), rules, fallback: fallback_schema() },
            warnings,
        ))
    }

    /// Rules parsed from text (the embedded defaults); `path` names them in errors.
    pub(crate) fn from_text(path: &Path, text: &str, source: RulesSource) -> Result<Self, ConfigError> {
        let (rules, _) = parse_schemas(&Ini::parse(path, text.as_bytes())?)?;
        Ok(StorageSchemas { source, rules, fallback: fallback_schema() })
    }
}

fn fallback_schema() -> Schema {
    Schema {
        name: "default".into(),
        pattern: String::new(),
        retentions: "60:10080".into(),
        archives: vec![ArchiveSpec { seconds_per_point: 60, points: 10080 }],
        line: 0,
        regex: None,
    }
}

/// One storage-aggregation.conf section.
#[derive(Debug, Clone)]
pub struct AggregationRule {
    /// The section name.
    pub name: String,
    /// The pattern as written; empty for the built-in fallback, which matches every name.
    pub pattern: String,
    /// aggregationMethod (average when the section leaves it out, as whisper does).
    pub method: AggregationMethod,
    /// xFilesFactor (0.5 when the section leaves it out, as whisper does).
    pub x_files_factor: f64,
    /// 1-based line of the section header; 0 for the built-in fallback.
    pub line: u32,
    /// None for the fallback.
    regex: Option<Regex>,
}

impl AggregationRule {
    /// Whether the rule applies to `metric` (an unanchored search).
    pub fn matches(&self, metric: &str) -> bool {
        self.regex.as_ref().is_none_or(|r| r.is_match(metric))
    }
}

/// The rules of storage-aggregation.conf in file order, and the fallback.
#[derive(Debug, Clone)]
pub struct AggregationRules {
    /// Where the rules came from.
    pub source: RulesSource,
    rules: Vec<AggregationRule>,
    fallback: AggregationRule,
}

impl AggregationRules {
    /// The first rule matching `metric`, else the fallback (average, 0.5).
    pub fn match_metric(&self, metric: &str) -> &AggregationRule {
        self.rules.iter().find(|r| r.matches(metric)).unwrap_or(&self.fallback)
    }

    /// The rules in file order (the fallback excluded).
    pub fn rules(&self) -> &[AggregationRule] {
        &self.rules
    }

    /// whisper's defaults: average, xFilesFactor 0.5.
    pub fn fallback(&self) -> &AggregationRule {
        &self.fallback
    }

    /// Reads `path`; a missing file leaves only the fallback, as in carbon.
    pub(crate) fn load(path: &Path) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let Some(ini) = Ini::read(path)? else {
            let rules = AggregationRules {
                source: RulesSource::Missing(path.to_path_buf()),
                rules: Vec::new(),
                fallback: fallback_aggregation(),
            };
            return Ok((rules, Vec::new()));
        };
        let (rules, warnings) = parse_aggregation(&ini)?;
        let source = RulesSource::File(path.to_path_buf());
        Ok((AggregationRules { source, rules, fallback: fallback_aggregation() }, warnings))
    }

    /// Rules parsed from text (the embedded defaults); `path` names them in errors.
    pub(crate) fn from_text(path: &Path, text: &str, source: RulesSource) -> Result<Self, ConfigError> {
        let (rules, _) = parse_aggregation(&Ini::parse(path, text.as_bytes())?)?;
        Ok(AggregationRules { source, rules, fallback: fallback_aggregation() })
    }
}

fn fallback_aggregation() -> AggregationRule {
    AggregationRule {
        name: "default".into(),
        pattern: String::new(),
        method: AggregationMethod::Average,
        x_files_factor: 0.5,
        line: 0,
        regex: None,
    }
}

/// The section's items, with warnings for keys written in it that no rule reads.
fn section_items(
    ini: &Ini,
    section: &Section,
    used: &[&str],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<Item>, ConfigError> {
    let items = ini.items(section)?;
    for item in items.iter().filter(|i| i.section == section.name && !used.contains(&i.key.as_str())) {
        warnings.push(ConfigWarning {
            path: ini.path().to_path_buf(),
            line: item.line,
            message: format!("[{}] key '{}' is not used (only {} are)", section.name, item.key, used.join(", ")),
        });
    }
    Ok(items)
}

fn find<'i>(items: &'i [Item], key: &str) -> Option<&'i Item> {
    items.iter().find(|i| i.key == key)
}

fn skipped(ini: &Ini, section: &Section, what: &str) -> ConfigWarning {
    ConfigWarning {
        path: ini.path().to_path_buf(),
        line: section.line,
        message: format!("[{}] has no {what}: section skipped, as carbon skips it", section.name),
    }
}

fn compile(path: &Path, section: &Section, pattern: &Item) -> Result<Regex, ConfigError> {
    Regex::new(&pattern.value).map_err(|e| {
        let text = e.to_string();
        // The regex crate's message spans lines (pattern, caret, reason); keep the reason.
        let reason = match text.rfind("error: ") {
            Some(i) => text[i + "error: ".len()..].trim().to_string(),
            None => text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        let problem = Problem::InvalidPattern { section: section.name.clone(), pattern: pattern.value.clone(), reason };
        ConfigError::at(path, pattern.line, problem)
    })
}

fn parse_schemas(ini: &Ini) -> Result<(Vec<Schema>, Vec<ConfigWarning>), ConfigError> {
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    for section in ini.sections() {
        let items = section_items(ini, section, &["pattern", "retentions"], &mut warnings)?;
        let pattern = find(&items, "pattern").filter(|p| !p.value.is_empty());
        let (Some(pattern), Some(retentions)) = (pattern, find(&items, "retentions")) else {
            warnings.push(skipped(ini, section, "pattern and retentions"));
            continue;
        };
        let regex = compile(ini.path(), section, pattern)?;
        let invalid = |source| {
            let problem = Problem::InvalidRetentions {
                section: section.name.clone(),
                retentions: retentions.value.clone(),
                source,
            };
            ConfigError::at(ini.path(), retentions.line, problem)
        };
        let mut archives = parse_retentions(&retentions.value).map_err(invalid)?;
        validate_archive_list(&mut archives).map_err(invalid)?;
        rules.push(Schema {
            name: section.name.clone(),
            pattern: pattern.value.clone(),
            retentions: retentions.value.clone(),
            archives,
            line: section.line,
            regex: Some(regex),
        });
    }
    Ok((rules, warnings))
}

fn parse_aggregation(ini: &Ini) -> Result<(Vec<AggregationRule>, Vec<ConfigWarning>), ConfigError> {
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    let used = ["pattern", "xfilesfactor", "aggregationmethod"];
    for section in ini.sections() {
        let items = section_items(ini, section, &used, &mut warnings)?;
        let Some(pattern) = find(&items, "pattern").filter(|p| !p.value.is_empty()) else {
            warnings.push(skipped(ini, section, "pattern"));
            continue;
        };
        let regex = compile(ini.path(), section, pattern)?;
        let mut rule = fallback_aggregation();
        if let Some(xff) = find(&items, "xfilesfactor") {
            rule.x_files_factor =
                super::value::parse_float(&xff.value).filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| {
                    let problem =
                        Problem::InvalidXFilesFactor { section: section.name.clone(), value: xff.value.clone() };
                    ConfigError::at(ini.path(), xff.line, problem)
                })?;
        }
        if let Some(method) = find(&items, "aggregationmethod") {
            rule.method = method.value.parse().map_err(|source| {
                let problem = Problem::InvalidAggregationMethod { section: section.name.clone(), source };
                ConfigError::at(ini.path(), method.line, problem)
            })?;
        }
        rule.name = section.name.clone();
        rule.pattern = pattern.value.clone();
        rule.line = section.line;
        rule.regex = Some(regex);
        rules.push(rule);
    }
    Ok((rules, warnings))
}

/// The schemas Carbyne uses without carbon.conf. `^carbon\.` keeps the self-metrics as carbon's
/// example does (one minute for 90 days); everything else gets 10-second points for six hours,
/// one-minute for a week and ten-minute for five years: statsd flushes every 10 s, which is what
/// Grafana-style dashboards mostly read, and the file stays about 3.3 MB.
pub(crate) const EMBEDDED_SCHEMAS: &str = r"
[carbon]
pattern = ^carbon\.
retentions = 60:90d

[default]
pattern = .*
retentions = 10s:6h,1m:7d,10m:5y
";

/// The aggregation rules Carbyne uses without carbon.conf: the ones etsy statsd's documentation
/// recommends for its metrics (which the built-in statsd server sends), with carbon's example
/// rules for `.min` / `.max`: lowest and highest values keep their extremes; sums, counts and
/// `stats_counts.*` add up (every count counts: xFilesFactor 0); the rest averages.
pub(crate) const EMBEDDED_AGGREGATION: &str = r"
[min]
pattern = \.(min|lower(_top\d+)?)$
xFilesFactor = 0.1
aggregationMethod = min

[max]
pattern = \.(max|upper(_\d+)?)$
xFilesFactor = 0.1
aggregationMethod = max

[sum]
pattern = \.(sum|count)$
xFilesFactor = 0
aggregationMethod = sum

[count_legacy]
pattern = ^stats_counts\.
xFilesFactor = 0
aggregationMethod = sum

[default_average]
pattern = .*
xFilesFactor = 0.5
aggregationMethod = average
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::Problem;

    const PATH: &str = "/etc/carbon/storage-schemas.conf";

    fn spec(seconds_per_point: u32, points: u32) -> ArchiveSpec {
        ArchiveSpec { seconds_per_point, points }
    }

    fn schemas(text: &str) -> Result<(Vec<Schema>, Vec<ConfigWarning>), ConfigError> {
        parse_schemas(&Ini::parse(Path::new(PATH), text.as_bytes())?)
    }

    fn aggregation(text: &str) -> Result<(Vec<AggregationRule>, Vec<ConfigWarning>), ConfigError> {
        parse_aggregation(&Ini::parse(Path::new(PATH), text.as_bytes())?)
    }

    /// Loads `text` as storage-schemas.conf and checks which section each metric gets.
    fn check(text: &str, cases: &[(&str, &str, &[ArchiveSpec])]) {
        let (rules, _) = schemas(text).unwrap_or_else(|e| panic!("{e}"));
        let set = StorageSchemas { source: RulesSource::Embedded, rules, fallback: fallback_schema() };
        for (metric, name, archives) in cases {
            let got = set.match_metric(metric);
            assert_eq!((got.name.as_str(), got.archives.as_slice()), (*name, *archives), "{metric}");
        }
    }

    fn check_err(result: Result<impl std::fmt::Debug, ConfigError>, line: u32, fragment: &str) {
        let err = result.expect_err(fragment);
        let msg = err.to_string();
        assert_eq!(err.line(), Some(line), "{msg}");
        assert!(msg.starts_with(&format!("{PATH}:{line}: ")), "{msg}");
        assert!(msg.contains(fragment), "{msg:?} should contain {fragment:?}");
    }

    #[test]
    fn first_match_wins_in_file_order() {
        let text = "[carbon]\npattern = ^carbon\\.\nretentions = 60:90d\n\n[stats]\npattern = stats\nretentions = 10s:6h,1m:7d\n\n[all]\npattern = .*\nretentions = 60:1440\n";
        check(
            text,
            &[
                ("carbon.agents.x.cpu", "carbon", &[spec(60, 129_600)]),
                ("stats.timers.x", "stats", &[spec(10, 2160), spec(60, 10080)]),
                ("app.stats.x", "stats", &[spec(10, 2160), spec(60, 10080)]),
                ("other", "all", &[spec(60, 1440)]),
            ],
        );
        check("[only]\npattern = ^a\\.\nretentions = 1h:1y\n", &[("b.c", "default", &[spec(60, 10080)])]);
    }

    #[test]
    fn both_retention_syntaxes_sorted_by_precision() {
        let text = "[s]\npattern = x\nretentions = 1m:7d, 10:360 ,\n  1h:5y\n";
        check(text, &[("x", "s", &[spec(10, 360), spec(60, 10080), spec(3600, 43800)])]);
    }

    #[test]
    fn invalid_regex_names_file_and_line() {
        check_err(schemas("[s]\nretentions = 60:1\npattern = (unclosed\n"), 3, "[s] pattern \"(unclosed\"");
        check_err(schemas("[s]\npattern = (?<=a)b\nretentions = 60:1\n"), 2, "look-around");
        check_err(aggregation("[s]\npattern = a(?!b)\n"), 2, "not a valid or supported regular expression");
    }

    #[test]
    fn invalid_retentions_carry_whispers_reason() {
        let err = schemas("[s]\npattern = x\nretentions = 60:1d,60:2d\n").expect_err("same precision");
        assert!(matches!(err.problem(), Some(Problem::InvalidRetentions { .. })));
        check_err(Err::<(), _>(err), 3, "two archives with the same precision");
        check_err(schemas("[s]\npattern = x\nretentions = 60:10,90:100\n"), 3, "evenly divide");
        check_err(schemas("[s]\npattern = x\nretentions = 1q:1d\n"), 3, "invalid retention definition '1q:1d'");
        check_err(schemas("[s]\npattern = x\nretentions = 60:1d,\n"), 3, "invalid retention definition");
        check_err(schemas("[s]\npattern = x\nretentions =\n"), 3, "invalid retention");
    }

    #[test]
    fn incomplete_sections_skipped_with_warning() {
        let text = "[no_pattern]\nretentions = 60:1\n[empty_pattern]\npattern =\nretentions = 60:1\n[no_ret]\npattern = x\n[ok]\npattern = x\nretentions = 60:1\npriority = 1\n";
        let (rules, warnings) = schemas(text).expect("loads");
        assert_eq!(rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["ok"]);
        let got: Vec<(u32, bool)> = warnings.iter().map(|w| (w.line, w.message.contains("skipped"))).collect();
        assert_eq!(got, [(1, true), (3, true), (6, true), (11, false)]);
        assert!(warnings[3].to_string().starts_with(&format!("{PATH}:11: [ok] key 'priority' is not used")));
    }

    #[test]
    fn defaults_section_and_interpolation_apply() {
        let text = "[DEFAULT]\nretentions = 60:1d\n[a]\npattern = ^a\n[b]\npattern = ^%(prefix)s\nprefix = b\nretentions = 1h:%(span)s\nspan = 30d\n";
        check(text, &[("a.x", "a", &[spec(60, 1440)]), ("b.x", "b", &[spec(3600, 720)])]);
    }

    #[test]
    fn aggregation_rules_and_bounds() {
        let (rules, warnings) =
            aggregation("[a]\npattern = \\.count$\naggregationMethod = sum\n[b]\npattern = x\nxFilesFactor = 0\n[c]\n")
                .expect("loads");
        let set = AggregationRules { source: RulesSource::Embedded, rules, fallback: fallback_aggregation() };
        let cases: &[(&str, &str, AggregationMethod, f64)] = &[
            ("a.count", "a", AggregationMethod::Sum, 0.5),
            ("x.y", "b", AggregationMethod::Average, 0.0),
            ("other", "default", AggregationMethod::Average, 0.5),
        ];
        for (metric, name, method, xff) in cases {
            let r = set.match_metric(metric);
            assert_eq!((r.name.as_str(), r.method, r.x_files_factor), (*name, *method, *xff), "{metric}");
        }
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 7);
        for good in ["0", "1", "0.25", "1e-1"] {
            assert!(aggregation(&format!("[s]\npattern = x\nxFilesFactor = {good}\n")).is_ok(), "{good}");
        }
        for bad in ["-0.1", "1.01", "nan", "inf", "half", ""] {
            check_err(aggregation(&format!("[s]\npattern = x\nxFilesFactor = {bad}\n")), 3, "between 0 and 1");
        }
        check_err(aggregation("[s]\npattern = x\naggregationMethod = median\n"), 3, "unrecognized aggregation method");
        check_err(aggregation("[s]\npattern = x\naggregationMethod = Sum\n"), 3, "expected one of average");
    }

    #[test]
    fn embedded_rules_load() {
        let s = StorageSchemas::from_text(Path::new("<embedded>"), EMBEDDED_SCHEMAS, RulesSource::Embedded)
            .expect("embedded schemas are valid");
        assert_eq!(s.match_metric("carbon.agents.h-a.cpuUsage").name, "carbon");
        let d = s.match_metric("stats.gauges.x");
        assert_eq!(
            (d.name.as_str(), d.archives.as_slice()),
            ("default", &[spec(10, 2160), spec(60, 10080), spec(600, 262_800)][..])
        );
        let a = AggregationRules::from_text(Path::new("<embedded>"), EMBEDDED_AGGREGATION, RulesSource::Embedded)
            .expect("embedded aggregation is valid");
        let cases: &[(&str, AggregationMethod, f64)] = &[
            ("stats.timers.x.min", AggregationMethod::Min, 0.1),
            ("stats.timers.x.lower", AggregationMethod::Min, 0.1),
            ("stats.timers.x.lower_top10", AggregationMethod::Min, 0.1),
            ("stats.timers.x.max", AggregationMethod::Max, 0.1),
            ("stats.timers.x.upper_90", AggregationMethod::Max, 0.1),
            ("stats.x.count", AggregationMethod::Sum, 0.0),
            ("stats.timers.x.sum", AggregationMethod::Sum, 0.0),
            ("stats_counts.x", AggregationMethod::Sum, 0.0),
            ("stats.x", AggregationMethod::Average, 0.5),
            ("stats.gauges.x", AggregationMethod::Average, 0.5),
        ];
        for (metric, method, xff) in cases {
            let r = a.match_metric(metric);
            assert_eq!((r.method, r.x_files_factor), (*method, *xff), "{metric}");
        }
    }
}
