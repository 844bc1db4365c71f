//! The statsd line protocol and the statsd workload, written from etsy statsd's description of
//! its metric types (`docs/metric_types.md`) and not from the `carbyne` crate, so that a misreading
//! in our server's parser is caught here instead of shared. Pure: no I/O, no clock.
//!
//! One metric per line, `<key>:<value>|<type>[|@<rate>]`, several lines per datagram joined by
//! `\n` (no newline after the last). The four types this generator sends:
//!
//! | type | line | value |
//! |---|---|---|
//! | counter | `key:V|c`, or `key:V|c|@R` for a sampled one | whole number 1 to 100 |
//! | timer | `key:W.FFF|ms` | milliseconds, 0.000 to 999.999 |
//! | gauge | `key:V|g`, or `key:+D|g` / `key:-D|g` for a delta | 0 to 999; deltas 1 to 10 |
//! | set | `key:mN|s` | member `m0` to `m<set_members - 1>` |
//!
//! **Which key has which type.** Every key has one type for the whole run, as in real
//! applications: key `k`'s type is entry `k mod W` of a wheel of `W` types built from the
//! `--mix` weights (reduced by their greatest common divisor) by smooth weighted round-robin, so
//! that the types are interleaved rather than in runs. With a number of keys that is a multiple
//! of `W` (the default mix has `W` = 10), the keys, and so on average the lines, follow the mix
//! exactly.
//!
//! **Line `j`** (counting from 0 over the whole run) is a pure function of the seed and `j`: a
//! SplitMix64 stream seeded with output `j` of the run's stream chooses the key (uniformly among
//! the keys), the value, whether a counter is sampled and whether a gauge line is a delta. Sender
//! `t` of `S` sends lines `t, t + S, t + 2S, ...`, so the same flags send the same lines.
//!
//! **Datagrams** carry up to `lines_per_datagram` lines and never more than `datagram_bytes_max`
//! bytes: a line that would not fit starts the next datagram. Every line fits in one datagram;
//! [`StatsdWorkload::new`] refuses a workload whose longest possible line does not.

use std::fmt;

use crate::decimal::{push_f64, push_u64, push_u64_padded};
use crate::name::NamePattern;
use crate::rng::{nth_output, unit_f64, SplitMix64};

/// Default `--max-datagram`: a 1500-byte Ethernet MTU less IPv6 (40) and UDP (8) headers and
/// some room for tunnels, as statsd clients commonly use.
pub const DATAGRAM_BYTES_DEFAULT: usize = 1432;

/// Largest UDP payload over IPv4: 65535 less the IP (20) and UDP (8) headers.
pub const DATAGRAM_BYTES_MAX: usize = 65_507;

/// Default `--name-pattern` for statsd keys: 100 keys per branch, as the plaintext default.
pub const DEFAULT_PATTERN: &str = "{prefix}.app{h}.key{m}";

/// Largest weight in `--mix`, so the wheel stays small (at most 4 x this entries).
pub const WEIGHT_MAX: u32 = 1000;

/// Counter values are 1 ..= `COUNTER_MAX`.
const COUNTER_MAX: u64 = 100;
/// Timer values are 0 ..= `TIMER_MS_MAX_MILLI` / 1000 ms, in steps of 0.001.
const TIMER_MS_MAX_MILLI: u64 = 999_999;
/// Absolute gauge values are 0 ..= `GAUGE_MAX`.
const GAUGE_MAX: u64 = 999;
/// Gauge deltas are ±1 ..= ±`GAUGE_DELTA_MAX`.
const GAUGE_DELTA_MAX: u64 = 10;

/// Bytes of the longest value and type of each kind, as written by [`StatsdWorkload::write_line`]
/// without the sample rate: `100|c`, `999.999|ms`, `+10|g` (as long as `999|g`), `m|s` plus the
/// member's digits.
const COUNTER_TAIL_MAX: usize = "100|c".len();
const TIMER_TAIL_MAX: usize = "999.999|ms".len();
const GAUGE_TAIL_MAX: usize = "999|g".len();
const SET_TAIL_MIN: usize = "m|s".len();

const _: () = assert!(COUNTER_MAX == 100 && TIMER_MS_MAX_MILLI == 999_999 && GAUGE_MAX == 999);
const _: () = assert!(GAUGE_DELTA_MAX == 10 && "+10".len() <= "999".len());
const _: () = assert!(DATAGRAM_BYTES_DEFAULT <= DATAGRAM_BYTES_MAX);

/// The four statsd metric types this generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `c`.
    Counter,
    /// `ms`.
    Timer,
    /// `g`.
    Gauge,
    /// `s`.
    Set,
}

impl Kind {
    /// Every kind, in the order of [`Kind::idx`].
    pub const ALL: [Kind; 4] = [Kind::Counter, Kind::Timer, Kind::Gauge, Kind::Set];

    /// The type as written on the wire (and in `--mix`).
    pub fn code(self) -> &'static str {
        match self {
            Kind::Counter => "c",
            Kind::Timer => "ms",
            Kind::Gauge => "g",
            Kind::Set => "s",
        }
    }

    /// Position in [`Kind::ALL`], for per-kind counts.
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// Lines per kind, indexed by [`Kind::idx`].
pub type KindCounts = [u64; 4];

/// Relative weights of the four kinds among the keys: `--mix c=40,ms=30,g=20,s=10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Indexed by [`Kind::idx`]; each at most `WEIGHT_MAX`, not all 0.
    weights: [u32; 4],
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { weights: [40, 30, 20, 10] }
    }
}

impl Mix {
    /// Parses `c=40,ms=30,g=20,s=10`; kinds left out weigh 0, at least one weight is positive.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 4];
        let mut seen = [false; 4];
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (code, weight) = item.split_once('=').ok_or_else(|| format!("{item:?} is not TYPE=WEIGHT"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|kind| kind.code() == code.trim())
                .ok_or_else(|| format!("unknown type {code:?} (known: c, ms, g, s)"))?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("weight {weight:?} is not a whole number"))?;
            if weight > WEIGHT_MAX {
                return Err(format!("weight {weight} is over {WEIGHT_MAX}"));
            }
            if std::mem::replace(&mut seen[kind.idx()], true) {
                return Err(format!("type {code:?} given twice"));
            }
            weights[kind.idx()] = weight;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("at least one type needs a positive weight".to_owned());
        }
        Ok(Mix { weights })
    }

    /// The weight of `kind`.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind.idx()]
    }

    /// The kinds of keys `0, 1, 2, ...` for one turn of the wheel: each kind as often as its
    /// weight divided by the weights' greatest common divisor, interleaved by smooth weighted
    /// round-robin (each step every kind gains its weight, the richest is picked and pays the
    /// total; ties go to the first kind).
    fn wheel(&self) -> Vec<Kind> {
        let divisor = self.weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        let weights = self.weights.map(|w| i64::from(w / divisor.max(1)));
        let total: i64 = weights.iter().sum();
        let mut credit = [0i64; 4];
        (0..total)
            .map(|_| {
                for (c, w) in credit.iter_mut().zip(weights) {
                    *c += w;
                }
                let richest = (0..4).fold(0, |best, idx| if credit[idx] > credit[best] { idx } else { best });
                credit[richest] -= total;
                Kind::ALL[richest]
            })
            .collect()
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Kind::ALL.iter().map(|k| format!("{}={}", k.code(), self.weight(*k))).collect();
        f.write_str(&parts.join(","))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The numbers that shape a statsd workload; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsdSpec {
    /// Distinct keys (cardinality), at least 1.
    pub n_keys: u64,
    /// How the keys are shared among the kinds.
    pub mix: Mix,
    /// Fraction of counter lines sent with a sample rate, in `[0, 1]`.
    pub sampled_fraction: f64,
    /// The sample rate those lines carry, in `(0, 1]`.
    pub sample_rate: f64,
    /// Fraction of gauge lines that are `+`/`-` deltas, in `[0, 1]`.
    pub gauge_delta_fraction: f64,
    /// Distinct members each set key draws from, at least 1.
    pub n_set_members: u64,
    /// Seed of the line generator.
    pub seed: u64,
    /// Most lines per datagram, at least 1.
    pub lines_per_datagram: usize,
    /// Most bytes per datagram, 1 ..= `DATAGRAM_BYTES_MAX`.
    pub datagram_bytes_max: usize,
}

/// Why a statsd workload was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum StatsdError {
    /// `n_keys` is 0.
    NoKeys,
    /// `n_set_members` is 0.
    NoSetMembers,
    /// A fraction outside `[0, 1]`.
    BadFraction(&'static str, f64),
    /// A sample rate outside `(0, 1]`.
    BadSampleRate(f64),
    /// `lines_per_datagram` is 0.
    NoLinesPerDatagram,
    /// `datagram_bytes_max` is 0 or over `DATAGRAM_BYTES_MAX`.
    BadDatagramSize(usize),
    /// The longest line this workload can produce is longer than a datagram.
    LineTooLong { line_bytes: usize, datagram_bytes: usize },
    /// A character in the name template or prefix that would break a statsd line.
    BadKeyChar(char),
}

impl fmt::Display for StatsdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsdError::NoKeys => write!(f, "at least one key is needed"),
            StatsdError::NoSetMembers => write!(f, "sets need at least one member"),
            StatsdError::BadFraction(what, v) => write!(f, "{what} must be between 0 and 1, not {v}"),
            StatsdError::BadSampleRate(v) => write!(f, "the sample rate must be more than 0 and at most 1, not {v}"),
            StatsdError::NoLinesPerDatagram => write!(f, "a datagram needs at least one line"),
            StatsdError::BadDatagramSize(n) => {
                write!(f, "a datagram must be 1 to {DATAGRAM_BYTES_MAX} bytes, not {n}")
            }
            StatsdError::LineTooLong { line_bytes, datagram_bytes } => write!(
                f,
                "a line can be {line_bytes} bytes, more than a datagram's {datagram_bytes}: \
                 shorten the names or raise the datagram size"
            ),
            StatsdError::BadKeyChar(c) => write!(f, "{c:?} in a key would break the statsd line"),
        }
    }
}

impl std::error::Error for StatsdError {}

/// A validated statsd workload: every line it produces fits in one datagram.
#[derive(Debug, Clone)]
pub struct StatsdWorkload {
    names: NamePattern,
    spec: StatsdSpec,
    /// The kinds of keys `0 .. wheel.len()`, repeating; not empty.
    wheel: Vec<Kind>,
    /// `|@<rate>` as written after a sampled counter.
    rate_suffix: Vec<u8>,
    /// Bytes of the longest line; at most `spec.datagram_bytes_max`.
    line_bytes_max: usize,
    /// Every key's name rendered once, when they fit in [`NAME_CACHE_BYTES_MAX`]: a line then
    /// copies its key instead of rendering it again, which was about a tenth of a flat-out
    /// sender's time. The bytes sent are the same either way.
    name_cache: Option<NameCache>,
}

/// Most bytes of key names [`StatsdWorkload`] renders ahead (about 2M keys of 30 bytes).
const NAME_CACHE_BYTES_MAX: usize = 64 << 20;

/// Key names rendered back to back: key `i` is `bytes[ends[i - 1] .. ends[i]]`.
#[derive(Debug, Clone)]
struct NameCache {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl NameCache {
    /// Every name of `names` for keys `0 .. n_keys`, or None when they would take more than
    /// `max_bytes` (names only grow with the index, so the last one bounds them all).
    fn new(names: &NamePattern, n_keys: u64, max_bytes: usize) -> Option<NameCache> {
        let longest = names.render(n_keys.checked_sub(1)?).len();
        let n = usize::try_from(n_keys).ok()?;
        if longest.checked_mul(n)? > max_bytes {
            return None;
        }
        let (mut bytes, mut ends) = (Vec::with_capacity(longest * n), Vec::with_capacity(n));
        for key_idx in 0..n_keys {
            names.write(&mut bytes, key_idx);
            ends.push(bytes.len());
        }
        Some(NameCache { bytes, ends })
    }

    fn name(&self, key_idx: u64) -> &[u8] {
        let i = key_idx as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

impl StatsdWorkload {
    /// Validates `spec` and pairs it with its key names.
    pub fn new(names: NamePattern, spec: StatsdSpec) -> Result<StatsdWorkload, StatsdError> {
        check_spec(&spec)?;
        if let Some(c) = names.pattern().chars().chain(names.prefix().chars()).find(|c| matches!(c, ':' | '|')) {
            return Err(StatsdError::BadKeyChar(c));
        }
        let mut rate_suffix = b"|@".to_vec();
        push_f64(&mut rate_suffix, spec.sample_rate);
        let line_bytes_max = line_bytes_max(&names, &spec, rate_suffix.len());
        if line_bytes_max > spec.datagram_bytes_max {
            return Err(StatsdError::LineTooLong {
                line_bytes: line_bytes_max,
                datagram_bytes: spec.datagram_bytes_max,
            });
        }
        let name_cache = NameCache::new(&names, spec.n_keys, NAME_CACHE_BYTES_MAX);
        Ok(StatsdWorkload { wheel: spec.mix.wheel(), names, spec, rate_suffix, line_bytes_max, name_cache })
    }

    /// The key template.
    pub fn names(&self) -> &NamePattern {
        &self.names
    }

    /// The numbers this workload was built from.
    pub fn spec(&self) -> &StatsdSpec {
        &self.spec
    }

    /// Bytes of the longest line this workload can produce.
    pub fn line_bytes_max(&self) -> usize {
        self.line_bytes_max
    }

    /// The kind of key `key_idx`.
    pub fn kind_of(&self, key_idx: u64) -> Kind {
        self.wheel[(key_idx % self.wheel.len() as u64) as usize]
    }

    /// Appends line `line_idx` of the run (no newline) and returns its kind.
    pub fn write_line(&self, buf: &mut Vec<u8>, line_idx: u64) -> Kind {
        let spec = &self.spec;
        let mut rng = SplitMix64::new(nth_output(spec.seed, line_idx));
        let key_idx = below(rng.next_u64(), spec.n_keys);
        let kind = self.kind_of(key_idx);
        let (value, choice) = (rng.next_u64(), unit_f64(rng.next_u64()));
        match &self.name_cache {
            Some(cache) => buf.extend_from_slice(cache.name(key_idx)),
            None => self.names.write(buf, key_idx),
        }
        buf.push(b':');
        match kind {
            Kind::Counter => {
                push_u64(buf, 1 + below(value, COUNTER_MAX));
                buf.extend_from_slice(b"|c");
                if choice < spec.sampled_fraction {
                    buf.extend_from_slice(&self.rate_suffix);
                }
            }
            Kind::Timer => {
                let milli = below(value, TIMER_MS_MAX_MILLI + 1);
                push_u64(buf, milli / 1000);
                buf.push(b'.');
                push_u64_padded(buf, milli % 1000, 3);
                buf.extend_from_slice(b"|ms");
            }
            Kind::Gauge if choice < spec.gauge_delta_fraction => {
                buf.push(if value & 1 == 0 { b'+' } else { b'-' });
                push_u64(buf, 1 + below(value >> 1, GAUGE_DELTA_MAX));
                buf.extend_from_slice(b"|g");
            }
            Kind::Gauge => {
                push_u64(buf, below(value, GAUGE_MAX + 1));
                buf.extend_from_slice(b"|g");
            }
            Kind::Set => {
                buf.push(b'm');
                push_u64(buf, below(value, spec.n_set_members));
                buf.extend_from_slice(b"|s");
            }
        }
        kind
    }
}

fn check_spec(spec: &StatsdSpec) -> Result<(), StatsdError> {
    if spec.n_keys == 0 {
        return Err(StatsdError::NoKeys);
    }
    if spec.n_set_members == 0 {
        return Err(StatsdError::NoSetMembers);
    }
    for (what, v) in
        [("the sampled fraction", spec.sampled_fraction), ("the gauge delta fraction", spec.gauge_delta_fraction)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(StatsdError::BadFraction(what, v));
        }
    }
    if !(spec.sample_rate > 0.0 && spec.sample_rate <= 1.0) {
        return Err(StatsdError::BadSampleRate(spec.sample_rate));
    }
    if spec.lines_per_datagram == 0 {
        return Err(StatsdError::NoLinesPerDatagram);
    }
    if spec.datagram_bytes_max == 0 || spec.datagram_bytes_max > DATAGRAM_BYTES_MAX {
        return Err(StatsdError::BadDatagramSize(spec.datagram_bytes_max));
    }
    Ok(())
}

/// The longest line `names` and `spec` can produce. Names grow with the key index (`{i}` and
/// `{h}` gain digits, `{m}` has a fixed width), so the last key has the longest name; the tail
/// is the longest of the kinds the mix sends.
fn line_bytes_max(names: &NamePattern, spec: &StatsdSpec, rate_suffix_bytes: usize) -> usize {
    let name_bytes = names.render(spec.n_keys - 1).len();
    let mut digits = Vec::new();
    push_u64(&mut digits, spec.n_set_members - 1);
    let tail = |kind: Kind| match kind {
        Kind::Counter => COUNTER_TAIL_MAX + if spec.sampled_fraction > 0.0 { rate_suffix_bytes } else { 0 },
        Kind::Timer => TIMER_TAIL_MAX,
        Kind::Gauge => GAUGE_TAIL_MAX,
        Kind::Set => SET_TAIL_MIN + digits.len(),
    };
    let tail_max = Kind::ALL.into_iter().filter(|k| spec.mix.weight(*k) > 0).map(tail).max().unwrap_or(0);
    name_bytes + ":".len() + tail_max
}

/// `x` scaled to `0 .. n` (Lemire's multiply-shift: unbiased enough for load, no division).
fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

/// Lines `first, first + step, ...` below `end` in a run of `n_lines` lines (`None`: unbounded).
pub fn lines_of_sender(sender_idx: u64, n_senders: u64, n_lines: Option<u64>) -> Option<u64> {
    n_lines.map(|n| if sender_idx >= n { 0 } else { (n - sender_idx).div_ceil(n_senders) })
}

/// One sender's datagrams: lines `sender_idx, sender_idx + n_senders, ...` of the run, packed.
#[derive(Debug, Clone)]
pub struct DatagramSource<'w> {
    workload: &'w StatsdWorkload,
    /// Global index of the next line to send; `next_line % step` is the sender's index.
    next_line: u64,
    /// Senders in the run, at least 1.
    step: u64,
    /// Lines at or past this global index are not sent (`u64::MAX`: unbounded).
    end: u64,
}

impl<'w> DatagramSource<'w> {
    /// Sender `sender_idx` of `n_senders`, in a run of `n_lines` lines (`None`: unbounded).
    pub fn new(
        workload: &'w StatsdWorkload,
        sender_idx: u64,
        n_senders: u64,
        n_lines: Option<u64>,
    ) -> DatagramSource<'w> {
        assert!(sender_idx < n_senders, "sender {sender_idx} of {n_senders}");
        DatagramSource { workload, next_line: sender_idx, step: n_senders, end: n_lines.unwrap_or(u64::MAX) }
    }

    /// Replaces `buf` with the next datagram, adding its lines to `kinds`; returns its line
    /// count, 0 only once every line is sent.
    pub fn fill(&mut self, buf: &mut Vec<u8>, kinds: &mut KindCounts) -> usize {
        let spec = self.workload.spec();
        buf.clear();
        let mut n_lines = 0;
        while n_lines < spec.lines_per_datagram && self.next_line < self.end {
            let mark = buf.len();
            if n_lines > 0 {
                buf.push(b'\n');
            }
            let kind = self.workload.write_line(buf, self.next_line);
            if buf.len() > spec.datagram_bytes_max {
                // Only a second or later line can overflow: every line fits on its own.
                debug_assert!(n_lines > 0);
                buf.truncate(mark);
                break;
            }
            kinds[kind.idx()] += 1;
            n_lines += 1;
            self.next_line = self.next_line.saturating_add(self.step);
        }
        n_lines
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> StatsdSpec {
        StatsdSpec {
            n_keys: 1_000,
            mix: Mix::default(),
            sampled_fraction: 0.1,
            sample_rate: 0.5,
            gauge_delta_fraction: 0.25,
            n_set_members: 100,
            seed: 1,
            lines_per_datagram: 1,
            datagram_bytes_max: DATAGRAM_BYTES_DEFAULT,
        }
    }

    fn workload(spec: StatsdSpec) -> StatsdWorkload {
        StatsdWorkload::new(NamePattern::parse(DEFAULT_PATTERN, "lg").unwrap(), spec).unwrap()
    }

    fn line(w: &StatsdWorkload, line_idx: u64) -> (String, Kind) {
        let mut buf = Vec::new();
        let kind = w.write_line(&mut buf, line_idx);
        (String::from_utf8(buf).unwrap(), kind)
    }

    /// Every datagram of a whole run of `n_lines`, in order, for each of `n_senders`.
    fn datagrams(w: &StatsdWorkload, n_senders: u64, n_lines: u64) -> Vec<Vec<(Vec<u8>, usize)>> {
        (0..n_senders)
            .map(|s| {
                let mut source = DatagramSource::new(w, s, n_senders, Some(n_lines));
                let mut out = Vec::new();
                let mut kinds = KindCounts::default();
                loop {
                    let mut buf = Vec::new();
                    let n = source.fill(&mut buf, &mut kinds);
                    if n == 0 {
                        break;
                    }
                    out.push((buf, n));
                }
                out
            })
            .collect()
    }

    /// An independent reading of a line: `key:value|type[|@rate]` with the value valid for the
    /// type, and the key made of the template's characters only. Returns (key, type).
    fn check_line(line: &str, sample_rate: &str) -> (String, String) {
        let (key, rest) = line.split_once(':').unwrap_or_else(|| panic!("no ':' in {line:?}"));
        assert!(!key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'), "{line:?}");
        let fields: Vec<&str> = rest.split('|').collect();
        let (value, kind) = (fields[0], fields[1]);
        let number = |v: &str| v.parse::<f64>().unwrap_or_else(|_| panic!("{v:?} in {line:?}"));
        match (kind, fields.len()) {
            ("c", 2) => assert!((1.0..=100.0).contains(&number(value)) && !value.contains('.'), "{line:?}"),
            ("c", 3) => assert_eq!(fields[2], format!("@{sample_rate}"), "{line:?}"),
            ("ms", 2) => {
                let (whole, frac) = value.split_once('.').unwrap();
                assert!(whole.len() <= 3 && frac.len() == 3 && number(value) >= 0.0, "{line:?}");
            }
            ("g", 2) => {
                let v = number(value);
                if value.starts_with(['+', '-']) {
                    assert!((1.0..=10.0).contains(&v.abs()), "{line:?}");
                } else {
                    assert!((0.0..=999.0).contains(&v), "{line:?}");
                }
            }
            ("s", 2) => assert!(value.starts_with('m') && value[1..].parse::<u64>().unwrap() < 100, "{line:?}"),
            _ => panic!("bad line {line:?}"),
        }
        (key.to_owned(), kind.to_owned())
    }

    #[test]
    fn lines_are_valid_statsd() {
        let w = workload(spec());
        let mut kind_of_key = std::collections::HashMap::new();
        let mut seen = [0u64; 4];
        for j in 0..20_000 {
            let (text, kind) = line(&w, j);
            assert!(text.len() <= w.line_bytes_max(), "{text:?}");
            let (key, code) = check_line(&text, "0.5");
            assert_eq!(code, kind.code());
            assert_eq!(*kind_of_key.entry(key).or_insert(code.clone()), code, "a key keeps its type");
            seen[kind.idx()] += 1;
        }
        assert!(kind_of_key.len() <= 1_000);
        // 1000 keys are 100 turns of the 10-entry wheel: the mix holds for keys exactly, and
        // for 20 000 uniformly drawn lines within a few percent.
        for (kind, n) in Kind::ALL.iter().zip(seen) {
            let want = f64::from(Mix::default().weight(*kind)) / 100.0 * 20_000.0;
            assert!((n as f64 - want).abs() < want * 0.1 + 100.0, "{kind:?}: {n} lines, want about {want}");
        }
    }

    #[test]
    fn cached_names_make_the_same_lines_as_rendered_ones() {
        let cached = workload(spec());
        assert!(cached.name_cache.is_some(), "1000 names are cached");
        let rendered = StatsdWorkload { name_cache: None, ..cached.clone() };
        for j in 0..5_000 {
            assert_eq!(line(&cached, j), line(&rendered, j), "line {j}");
        }
        let names = cached.names();
        let cache = NameCache::new(names, 1_000, usize::MAX).unwrap();
        for key_idx in [0, 1, 9, 10, 99, 100, 999] {
            assert_eq!(cache.name(key_idx), names.render(key_idx).as_bytes(), "key {key_idx}");
        }
        let last = names.render(999).len();
        assert!(NameCache::new(names, 1_000, last * 1_000).is_some(), "exactly at the bound");
        assert!(NameCache::new(names, 1_000, last * 1_000 - 1).is_none(), "over the bound: rendered per line");
    }

    #[test]
    fn every_variant_appears() {
        let w = workload(spec());
        let lines: Vec<String> = (0..5_000).map(|j| line(&w, j).0).collect();
        for needle in ["|c|@0.5", ":+", ":-", "|ms", "|s"] {
            assert!(lines.iter().any(|l| l.contains(needle)), "{needle}");
        }
        assert!(lines.iter().any(|l| l.ends_with("|c")));
        assert!(lines.iter().any(|l| l.ends_with("|g") && !l.contains(":+") && !l.contains(":-")));
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = workload(spec());
        let b = workload(spec());
        let other = workload(StatsdSpec { seed: 2, ..spec() });
        let first: Vec<String> = (0..100).map(|j| line(&a, j).0).collect();
        assert_eq!(first, (0..100).map(|j| line(&b, j).0).collect::<Vec<_>>());
        assert_ne!(first, (0..100).map(|j| line(&other, j).0).collect::<Vec<_>>());
        // The whole run's lines are the same whichever way they are shared among senders.
        let packed = workload(StatsdSpec { lines_per_datagram: 7, ..spec() });
        let mut all: Vec<String> = Vec::new();
        for (s, sender) in datagrams(&packed, 3, 1_000).into_iter().enumerate() {
            let lines: Vec<String> = sender
                .iter()
                .flat_map(|(d, _)| {
                    String::from_utf8(d.clone()).unwrap().split('\n').map(str::to_owned).collect::<Vec<_>>()
                })
                .collect();
            let want: Vec<String> = (0..1_000).skip(s).step_by(3).map(|j| line(&a, j).0).collect();
            assert_eq!(lines, want, "sender {s}");
            all.extend(lines);
        }
        assert_eq!(all.len(), 1_000);
    }

    #[test]
    fn datagrams_respect_both_bounds() {
        for (per_datagram, bytes_max) in
            [(1, DATAGRAM_BYTES_DEFAULT), (20, DATAGRAM_BYTES_DEFAULT), (20, 200), (1000, 512), (3, 40)]
        {
            let w = workload(StatsdSpec { lines_per_datagram: per_datagram, datagram_bytes_max: bytes_max, ..spec() });
            let senders = datagrams(&w, 2, 3_001);
            let mut n_total = 0;
            for (bytes, n) in senders.iter().flatten() {
                assert!(bytes.len() <= bytes_max, "{} bytes > {bytes_max}", bytes.len());
                assert!((1..=per_datagram).contains(n));
                assert!(!bytes.ends_with(b"\n") && !bytes.starts_with(b"\n"));
                let text = std::str::from_utf8(bytes).unwrap();
                assert_eq!(text.split('\n').count(), *n);
                text.split('\n').for_each(|l| drop(check_line(l, "0.5")));
                n_total += n;
            }
            assert_eq!(n_total, 3_001);
            // A datagram is cut short only when the next line would not have fitted.
            for sender in &senders {
                for pair in sender.windows(2) {
                    let ((first, n), (next, _)) = (&pair[0], &pair[1]);
                    let next_line = next.split(|&b| b == b'\n').next().unwrap();
                    assert!(*n == per_datagram || first.len() + 1 + next_line.len() > bytes_max);
                }
            }
        }
    }

    #[test]
    fn line_counts_per_sender_and_kind() {
        assert_eq!(lines_of_sender(0, 3, Some(10)), Some(4));
        assert_eq!(lines_of_sender(2, 3, Some(10)), Some(3));
        assert_eq!(lines_of_sender(4, 5, Some(3)), Some(0));
        assert_eq!(lines_of_sender(0, 1, None), None);
        let w = workload(StatsdSpec { lines_per_datagram: 5, ..spec() });
        let mut source = DatagramSource::new(&w, 1, 3, Some(100));
        let (mut kinds, mut buf, mut n) = (KindCounts::default(), Vec::new(), 0);
        while source.fill(&mut buf, &mut kinds) > 0 {
            n += 1;
        }
        assert_eq!(kinds.iter().sum::<u64>(), 33);
        assert_eq!(n, 7);
        let want: KindCounts = (1..100).step_by(3).fold([0; 4], |mut k, j| {
            k[line(&w, j).1.idx()] += 1;
            k
        });
        assert_eq!(kinds, want);
    }

    #[test]
    fn mix_parses_and_interleaves() {
        assert_eq!(Mix::parse("c=40,ms=30,g=20,s=10").unwrap(), Mix::default());
        assert_eq!(Mix::default().to_string(), "c=40,ms=30,g=20,s=10");
        assert_eq!(Mix::parse(" ms = 1 ").unwrap().to_string(), "c=0,ms=1,g=0,s=0");
        for bad in ["", "c=0", "x=1", "c", "c=-1", "c=1.5", "c=1,c=2", "c=1001"] {
            assert!(Mix::parse(bad).is_err(), "{bad:?}");
        }
        let codes = |m: &str| Mix::parse(m).unwrap().wheel().iter().map(|k| k.code()).collect::<Vec<_>>().join(" ");
        assert_eq!(codes("c=40,ms=30,g=20,s=10"), "c ms g c ms s c g ms c");
        assert_eq!(codes("c=5,s=5"), "c s");
        assert_eq!(codes("g=7"), "g");
    }

    #[test]
    fn refused_workloads() {
        let names = || NamePattern::parse(DEFAULT_PATTERN, "lg").unwrap();
        let refuse = |s: StatsdSpec| StatsdWorkload::new(names(), s).err().unwrap();
        assert_eq!(refuse(StatsdSpec { n_keys: 0, ..spec() }), StatsdError::NoKeys);
        assert_eq!(refuse(StatsdSpec { n_set_members: 0, ..spec() }), StatsdError::NoSetMembers);
        assert!(matches!(refuse(StatsdSpec { sampled_fraction: 1.5, ..spec() }), StatsdError::BadFraction(..)));
        assert!(matches!(refuse(StatsdSpec { gauge_delta_fraction: -0.1, ..spec() }), StatsdError::BadFraction(..)));
        for rate in [0.0, 1.5, f64::NAN] {
            assert!(matches!(refuse(StatsdSpec { sample_rate: rate, ..spec() }), StatsdError::BadSampleRate(_)));
        }
        assert_eq!(refuse(StatsdSpec { lines_per_datagram: 0, ..spec() }), StatsdError::NoLinesPerDatagram);
        assert_eq!(refuse(StatsdSpec { datagram_bytes_max: 0, ..spec() }), StatsdError::BadDatagramSize(0));
        assert_eq!(refuse(StatsdSpec { datagram_bytes_max: 65_508, ..spec() }), StatsdError::BadDatagramSize(65_508));
        // "lg.app9.key99:" is 14 bytes, and the longest tail is a timer's "999.999|ms" (10).
        assert_eq!(
            refuse(StatsdSpec { datagram_bytes_max: 23, ..spec() }),
            StatsdError::LineTooLong { line_bytes: 24, datagram_bytes: 23 }
        );
        assert_eq!(workload(StatsdSpec { datagram_bytes_max: 24, ..spec() }).line_bytes_max(), 24);
        let colon = NamePattern::parse("a:{i}", "p").unwrap();
        assert_eq!(StatsdWorkload::new(colon, spec()).err(), Some(StatsdError::BadKeyChar(':')));
    }

    #[test]
    fn the_longest_line_is_bounded_for_every_kind() {
        for mix in ["c=1", "ms=1", "g=1", "s=1"] {
            let s =
                StatsdSpec { mix: Mix::parse(mix).unwrap(), sampled_fraction: 1.0, n_set_members: 12_345, ..spec() };
            let w = workload(s);
            let longest = (0..5_000).map(|j| line(&w, j).0.len()).max().unwrap();
            assert!(longest <= w.line_bytes_max(), "{mix}: {longest} > {}", w.line_bytes_max());
            assert!(longest + 2 >= w.line_bytes_max(), "{mix}: the bound {} is loose ({longest})", w.line_bytes_max());
        }
    }
}
