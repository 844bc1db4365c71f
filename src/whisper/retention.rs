//! Retention definitions (`60:1440`, `10s:6h`) and whisper's rules for a valid archive list.
//!
//! The unit words follow whisper.py's `parseRetentionDef`: any prefix of seconds, minutes, hours,
//! days, weeks, years (so `m` is minutes and `y` is 365 days; there are no months). A bare number
//! on the left is seconds; on the right it is a point count, while a duration on the right becomes
//! `duration / precision` points (floor division).

use super::error::{Result, WhisperError};

/// One archive of a whisper file as configured: its resolution and how many points it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArchiveSpec {
    /// Resolution in seconds; never 0 once validated.
    pub seconds_per_point: u32,
    /// Number of slots in the ring; never 0 once validated.
    pub points: u32,
}

impl ArchiveSpec {
    /// Seconds of history the archive covers (`seconds_per_point * points`).
    pub fn retention(&self) -> u64 {
        u64::from(self.seconds_per_point) * u64::from(self.points)
    }
}

impl std::fmt::Display for ArchiveSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seconds_per_point, self.points)
    }
}

const UNITS: [(&str, u64); 6] =
    [("seconds", 1), ("minutes", 60), ("hours", 3600), ("days", 86400), ("weeks", 86400 * 7), ("years", 86400 * 365)];

/// Seconds in one `unit`, where `unit` is any non-empty prefix of a unit word (whisper's
/// `getUnitString`: the first word in seconds..years order that starts with it).
pub fn unit_seconds(unit: &str) -> Option<u64> {
    if unit.is_empty() {
        return None;
    }
    UNITS.iter().find(|(word, _)| word.starts_with(unit)).map(|&(_, secs)| secs)
}

/// Splits `123abc` into (123, "abc") when it is digits followed by lowercase letters.
fn split_number_unit(s: &str) -> Option<(u64, &str)> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return None;
    }
    let (digits, unit) = s.split_at(digits_end);
    if !unit.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    Some((digits.parse().ok()?, unit))
}

/// Parses a duration such as `10`, `10s`, `5min`, `6h`, `1y` into seconds (whisper's rules).
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let (n, unit) = split_number_unit(s)?;
    if unit.is_empty() {
        return Some(n);
    }
    n.checked_mul(unit_seconds(unit)?)
}

/// Parses one retention definition `precision:points` as whisper.py's `parseRetentionDef`.
pub fn parse_retention_def(def: &str) -> Result<ArchiveSpec> {
    let bad = || WhisperError::InvalidRetention(def.to_string());
    let (precision, points) = def.trim().split_once(':').ok_or_else(bad)?;
    let precision_secs = parse_duration_secs(precision).ok_or_else(bad)?;
    if precision_secs == 0 {
        return Err(bad());
    }
    let n_points = match split_number_unit(points).ok_or_else(bad)? {
        (n, "") => n,
        (n, unit) => n.checked_mul(unit_seconds(unit).ok_or_else(bad)?).ok_or_else(bad)? / precision_secs,
    };
    Ok(ArchiveSpec {
        seconds_per_point: u32::try_from(precision_secs).map_err(|_| bad())?,
        points: u32::try_from(n_points).map_err(|_| bad())?,
    })
}

/// Parses a comma-separated list of retention definitions (storage-schemas.conf's `retentions`).
pub fn parse_retentions(list: &str) -> Result<Vec<ArchiveSpec>> {
    list.split(',').map(parse_retention_def).collect()
}

/// Sorts `archives` by precision and checks whisper's rules (`validateArchiveList`), plus the
/// ones whisper forgets and that would break slot arithmetic: every archive has at least one
/// point, and the file fits the u32 offsets of the header.
pub fn validate_archive_list(archives: &mut [ArchiveSpec]) -> Result<()> {
    if archives.is_empty() {
        return Err(WhisperError::InvalidConfiguration("you must specify at least one archive configuration".into()));
    }
    archives.sort_by_key(|a| a.seconds_per_point);
    for (i, a) in archives.iter().enumerate() {
        if a.points == 0 || a.seconds_per_point == 0 {
            return Err(WhisperError::InvalidConfiguration(format!(
                "archive{i} ({a}) must have a positive precision and at least one point"
            )));
        }
    }
    for (i, pair) in archives.windows(2).enumerate() {
        let (cur, next) = (pair[0], pair[1]);
        let j = i + 1;
        if cur.seconds_per_point == next.seconds_per_point {
            return Err(WhisperError::InvalidConfiguration(format!(
                "a whisper database may not have two archives with the same precision \
                 (archive{i}: {cur}, archive{j}: {next})"
            )));
        }
        if next.seconds_per_point % cur.seconds_per_point != 0 {
            return Err(WhisperError::InvalidConfiguration(format!(
                "higher precision archives' precision must evenly divide all lower precision \
                 archives' precision (archive{i}: {}, archive{j}: {})",
                cur.seconds_per_point, next.seconds_per_point
            )));
        }
        if next.retention() <= cur.retention() {
            return Err(WhisperError::InvalidConfiguration(format!(
                "lower precision archives must cover larger time intervals than higher precision \
                 archives (archive{i}: {} seconds, archive{j}: {} seconds)",
                cur.retention(),
                next.retention()
            )));
        }
        let per_consolidation = next.seconds_per_point / cur.seconds_per_point;
        if cur.points < per_consolidation {
            return Err(WhisperError::InvalidConfiguration(format!(
                "each archive must have at least enough points to consolidate to the next archive \
                 (archive{j} consolidates {per_consolidation} of archive{i}'s points but it has \
                 only {} total points)",
                cur.points
            )));
        }
    }
    let max_retention = archives.iter().map(ArchiveSpec::retention).max().unwrap_or(0);
    let total_points: u64 = archives.iter().map(|a| u64::from(a.points)).sum();
    let file_bytes = super::format::file_size(archives.len() as u64, total_points);
    if max_retention > u64::from(u32::MAX) || file_bytes > u64::from(u32::MAX) {
        return Err(WhisperError::InvalidConfiguration(format!(
            "archives too large for whisper's 32-bit header: retention {max_retention} s, \
             file {file_bytes} bytes (both must stay below 4294967296)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seconds_per_point: u32, points: u32) -> ArchiveSpec {
        ArchiveSpec { seconds_per_point, points }
    }

    #[test]
    fn parses_both_syntaxes() {
        let cases: &[(&str, ArchiveSpec)] = &[
            ("60:1440", spec(60, 1440)),
            ("10s:6h", spec(10, 2160)),
            ("1m:7d", spec(60, 10080)),
            ("15m:8", spec(900, 8)),
            ("1h:7d", spec(3600, 168)),
            ("12h:2y", spec(43200, 1460)),
            ("1min:1hours", spec(60, 60)),
            (" 5sec:1w ", spec(5, 120960)),
            ("7s:1m", spec(7, 8)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_retention_def(input).unwrap(), *expected, "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for input in ["", "60", "60:", ":10", "1x:10", "1M:10", "s:10", "-1:10", "0:10", "1h:5q", "10:1.5"] {
            assert!(parse_retention_def(input).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn validation_rules_in_whisper_order() {
        let check = |mut list: Vec<ArchiveSpec>, fragment: &str| {
            let err = validate_archive_list(&mut list).unwrap_err().to_string();
            assert!(err.contains(fragment), "{err} should mention {fragment}");
        };
        check(vec![], "at least one");
        check(vec![spec(60, 10), spec(60, 20)], "same precision");
        check(vec![spec(60, 100), spec(90, 100)], "evenly divide");
        check(vec![spec(60, 100), spec(120, 50)], "larger time intervals");
        check(vec![spec(60, 4), spec(600, 10)], "enough points");
        check(vec![spec(60, 0)], "at least one point");
        check(vec![spec(1, u32::MAX)], "32-bit");
        let mut ok = vec![spec(300, 10), spec(60, 10)];
        validate_archive_list(&mut ok).unwrap();
        assert_eq!(ok, vec![spec(60, 10), spec(300, 10)], "sorted by precision");
    }
}
