//! Any bytes as statsd datagrams: cut into datagrams at every `0x00` byte, dealt in turn to two
//! ingest threads' `Partial`s held to 64 entries, merged into a `State` whose options the first
//! byte chooses, flushed, fed again and flushed again. Nothing panics, a partial never holds more
//! than its bound, every non-empty line is counted once, and statsd's own counters flushed with
//! the default names say exactly what was received. Every line the one-pass reader takes reads
//! the same through the full parser.
#![no_main]

use std::sync::Arc;

use carbyne::config::{HistogramRule, StatsdOptions};
use carbyne::statsd::parse::{parse_line, parse_plain};
use carbyne::statsd::{Flush, Partial, State};
use libfuzzer_sys::fuzz_target;

/// A small bound, so that the fuzzer reaches the drop path quickly.
const MAX_HELD: usize = 64;
const NOW_S: i64 = 1_700_000_000;

/// Options with the etsy flags the first byte sets: each bit turns one behaviour away from its
/// default, so every flush and clear path is reachable.
fn options(flags: u8) -> StatsdOptions {
    let bit = |n: u8| flags & (1 << n) != 0;
    let mut o = StatsdOptions::default();
    o.delete_counters = bit(0);
    o.delete_timers = bit(1);
    o.delete_gauges = bit(2);
    o.delete_sets = bit(3);
    o.key_name_sanitize = !bit(4);
    o.legacy_namespace = !bit(5);
    if bit(6) {
        o.percent_thresholds = vec![90.0, -10.0, 50.5, 100.0];
        o.histogram = vec![HistogramRule { metric: String::new(), bins: vec![0.5, 10.0, f64::INFINITY] }];
    }
    if bit(7) {
        o.calculated_timer_metrics = Some(vec!["count".into(), "upper_percent".into(), "histogram".into()]);
        o.global_suffix = Some("sfx".into());
    }
    o
}

/// Feeds each datagram of `input` to the partials in turn; returns the non-empty lines.
fn feed(partials: &mut [Partial; 2], input: &[u8]) -> u64 {
    let mut n_lines = 0;
    for (idx, datagram) in input.split(|&b| b == 0).enumerate() {
        let p = &mut partials[idx % 2];
        p.datagram(datagram, NOW_S);
        assert!(p.held() <= MAX_HELD, "{} entries held", p.held());
        n_lines += datagram.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    }
    n_lines
}

fn is_subsequence(needle: &[u8], haystack: &[u8]) -> bool {
    let mut rest = needle;
    for b in haystack {
        match rest.split_first() {
            Some((first, tail)) if first == b => rest = tail,
            Some(_) => {}
            None => break,
        }
    }
    rest.is_empty()
}

/// The one-pass reader of the common line gives, wherever it answers, exactly what the full
/// parser gives (with keyNameSanitize on or off: the keys it takes need no sanitising).
fn check_fast_path(input: &[u8]) {
    for line in input.split(|&b| b == 0 || b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let Some((key, sample)) = parse_plain(line) else { continue };
        for sanitize in [true, false] {
            let mut buf = String::new();
            let mut full = Vec::new();
            let bad = parse_line(line, sanitize, &mut buf, |k, s| full.push((k.to_string(), s)));
            assert_eq!((full, bad), (vec![(key.to_string(), sample)], 0), "{line:?}");
        }
    }
}

fn value(flush: &Flush, name: &str) -> Option<f64> {
    flush.points.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else { return };
    let opts = options(flags);
    let sanitize = opts.key_name_sanitize;
    let default_names = opts.legacy_namespace && opts.flush_counts && opts.global_suffix.is_none();
    // A fuzzed key may be statsd's own (`statsd.metrics_received:1|c`) and add to it, so the
    // counts are checked only for input that cannot name them: keys lose characters to
    // sanitising but never gain letters, so such a key needs `statsd` as a subsequence.
    let own_keys = is_subsequence(b"statsd", input);
    check_fast_path(input);
    let mut state = State::new(Arc::new(opts), NOW_S);
    let mut partials = [Partial::new(MAX_HELD, sanitize), Partial::new(MAX_HELD, sanitize)];
    for round in 1..=2 {
        let n_lines = feed(&mut partials, input);
        assert_eq!(partials.iter().map(|p| p.lines).sum::<u64>(), n_lines);
        let n_packets = input.split(|&b| b == 0).count() as u64;
        let [a, b] = &mut partials;
        state.merge(&mut [a, b]);
        assert!(partials.iter().all(|p| p.held() == 0 && p.lines == 0), "merge empties the partials");
        let flush = state.flush((NOW_S + 10 * round) * 1000);
        assert_eq!(flush.timestamp, NOW_S + 10 * round);
        if default_names && !own_keys {
            assert_eq!(value(&flush, "stats_counts.statsd.metrics_received"), Some(n_lines as f64));
            assert_eq!(value(&flush, "stats_counts.statsd.packets_received"), Some(n_packets as f64));
        }
        for (name, _) in &flush.points {
            assert!(!name.is_empty() && !name.contains('\n'), "{name:?}");
        }
    }
});
