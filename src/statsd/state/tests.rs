use super::*;
use crate::config::HistogramRule;

const START: i64 = 1_700_000_000;

fn state_with(opts: StatsdOptions, datagrams: &[&str]) -> State {
    let mut state = State::new(Arc::new(opts), START);
    feed(&mut state, datagrams);
    state
}

fn feed(state: &mut State, datagrams: &[&str]) {
    let mut p = Partial::new(usize::MAX, state.options().key_name_sanitize);
    for d in datagrams {
        p.datagram(d.as_bytes(), START + 5);
    }
    state.merge(&mut [&mut p]);
}

fn value(flush: &Flush, name: &str) -> Option<f64> {
    flush.points.iter().find(|(n, _)| n == name).map(|p| p.1)
}

fn names(flush: &Flush) -> Vec<&str> {
    flush.points.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn legacy_names_and_values_are_etsys() {
    let mut s = state_with(
        StatsdOptions::default(),
        &[
            "hits:3|c\nhits:1|c|@0.5",
            "lat:10|ms\nlat:20|ms\nlat:30|ms|@0.5",
            "temp:5|g\ntemp:-2|g",
            "u:a|s\nu:b|s\nu:a|s",
        ],
    );
    let f = s.flush((START + 10) * 1000);
    assert_eq!(f.timestamp, START + 10);
    assert_eq!(value(&f, "stats.hits"), Some(5.0 / 10.0));
    assert_eq!(value(&f, "stats_counts.hits"), Some(5.0));
    assert_eq!(value(&f, "stats.timers.lat.count"), Some(4.0));
    assert_eq!(value(&f, "stats.timers.lat.count_ps"), Some(0.4));
    assert_eq!(value(&f, "stats.timers.lat.mean"), Some(20.0));
    assert_eq!(value(&f, "stats.timers.lat.median"), Some(20.0));
    assert_eq!(value(&f, "stats.timers.lat.upper_90"), Some(30.0));
    assert_eq!(value(&f, "stats.timers.lat.sum_squares"), Some(1400.0));
    assert_eq!(value(&f, "stats.timers.lat.std"), Some((200.0f64 / 3.0).sqrt()));
    assert_eq!(value(&f, "stats.gauges.temp"), Some(3.0));
    assert_eq!(value(&f, "stats.sets.u.count"), Some(2.0));
    assert_eq!(value(&f, "statsd.numStats"), Some(4.0 + 3.0), "three statsd counters count too");
    assert_eq!(value(&f, "stats_counts.statsd.packets_received"), Some(4.0));
    assert_eq!(value(&f, "stats_counts.statsd.metrics_received"), Some(10.0));
    assert!(names(&f).contains(&"stats.statsd.processing_time"));
    assert!(names(&f).contains(&"stats.statsd.graphiteStats.last_flush"));
    assert!(value(&f, "stats.gauges.statsd.timestamp_lag").is_none(), "no lag before a second flush");

    // The clear: counters to 0, timers to no samples, sets emptied, gauges kept.
    let f = s.flush((START + 20) * 1000);
    assert_eq!(value(&f, "stats_counts.hits"), Some(0.0));
    assert_eq!(value(&f, "stats.timers.lat.count"), Some(0.0));
    assert!(value(&f, "stats.timers.lat.mean").is_none());
    assert_eq!(value(&f, "stats.sets.u.count"), Some(0.0));
    assert_eq!(value(&f, "stats.gauges.temp"), Some(3.0));
    assert_eq!(value(&f, "stats.gauges.statsd.timestamp_lag"), Some(0.0));
}

#[test]
fn namespaces_prefixes_suffix_and_tags() {
    let opts = StatsdOptions {
        legacy_namespace: false,
        global_prefix: "app".into(),
        prefix_counter: "".into(),
        global_suffix: Some("sfx".into()),
        ..StatsdOptions::default()
    };
    let mut s = state_with(opts, &["req:1|c|#env:prod", "lat:1|ms", "g:1|g", "u:x|s"]);
    let f = s.flush((START + 10) * 1000);
    let n = names(&f);
    for want in [
        "app.req.rate.sfx;env=prod",
        "app.req.count.sfx;env=prod",
        "app.timers.lat.upper.sfx",
        "app.gauges.g.sfx",
        "app.sets.u.count.sfx",
        "app.statsd.numStats.sfx",
        "app.statsd.graphiteStats.calculationtime.sfx",
        "app.statsd.processing_time.sfx",
        "app.statsd.graphiteStats.flush_length.sfx",
        "app.statsd.packets_received.rate.sfx",
    ] {
        assert!(n.contains(&want), "{want} in {n:?}");
    }
}

#[test]
fn percentiles_follow_etsy_including_negative_and_fractional_ones() {
    let opts = StatsdOptions { percent_thresholds: vec![50.0, 99.9, -25.0], ..StatsdOptions::default() };
    let mut s = state_with(opts, &["t:4|ms\nt:1|ms\nt:3|ms\nt:2|ms"]);
    let f = s.flush((START + 10) * 1000);
    assert_eq!(value(&f, "stats.timers.t.upper_50"), Some(2.0));
    assert_eq!(value(&f, "stats.timers.t.count_50"), Some(2.0));
    assert_eq!(value(&f, "stats.timers.t.sum_50"), Some(3.0));
    assert_eq!(value(&f, "stats.timers.t.mean_99_9"), Some(2.5));
    assert_eq!(value(&f, "stats.timers.t.lower_top25"), Some(4.0));
    assert_eq!(value(&f, "stats.timers.t.sum_top25"), Some(4.0));
    assert_eq!(value(&f, "stats.timers.t.sum_squares_top25"), Some(16.0));
}

#[test]
fn a_single_sample_timer_reports_it_for_every_threshold() {
    let opts = StatsdOptions { percent_thresholds: vec![90.0, -10.0], ..StatsdOptions::default() };
    let mut s = state_with(opts, &["t:7|ms"]);
    let f = s.flush((START + 10) * 1000);
    for name in ["upper_90", "mean_90", "lower_top10", "sum_top10", "median", "std"] {
        let want = if name == "std" { 0.0 } else { 7.0 };
        assert_eq!(value(&f, &format!("stats.timers.t.{name}")), Some(want), "{name}");
    }
}

#[test]
fn histogram_bins_and_calculated_timer_metrics() {
    let opts = StatsdOptions {
        histogram: vec![
            HistogramRule { metric: "api".into(), bins: vec![10.0, 0.5, f64::INFINITY] },
            HistogramRule { metric: "".into(), bins: vec![100.0] },
        ],
        calculated_timer_metrics: Some(vec!["count".into(), "upper_percent".into(), "histogram".into()]),
        ..StatsdOptions::default()
    };
    let mut s = state_with(opts, &["api.get:5|ms\napi.get:50|ms\napi.get:500|ms", "other:150|ms"]);
    let f = s.flush((START + 10) * 1000);
    let timer_names: Vec<&str> = names(&f).into_iter().filter(|n| n.starts_with("stats.timers.api")).collect();
    assert_eq!(
        timer_names,
        [
            "stats.timers.api.get.upper_90",
            "stats.timers.api.get.count",
            "stats.timers.api.get.histogram.bin_10",
            "stats.timers.api.get.histogram.bin_0_5",
            "stats.timers.api.get.histogram.bin_inf",
        ]
    );
    // Bins are consumed in order over sorted values: [5] < 10, none < 0.5, the rest for inf.
    assert_eq!(value(&f, "stats.timers.api.get.histogram.bin_10"), Some(1.0));
    assert_eq!(value(&f, "stats.timers.api.get.histogram.bin_0_5"), Some(0.0));
    assert_eq!(value(&f, "stats.timers.api.get.histogram.bin_inf"), Some(2.0));
    assert_eq!(value(&f, "stats.timers.other.histogram.bin_100"), Some(0.0), "over the last bound: not counted");
}

#[test]
fn delete_idle_stats_drops_what_saw_nothing() {
    let opts = StatsdOptions {
        delete_counters: true,
        delete_timers: true,
        delete_gauges: true,
        delete_sets: true,
        gauges_max_ttl: 2,
        ..StatsdOptions::default()
    };
    let mut s = state_with(opts, &["c:1|c\nt:1|ms\ng:1|g\nu:x|s"]);
    let f = s.flush((START + 10) * 1000);
    assert_eq!(value(&f, "stats.gauges.g"), Some(1.0));
    let f = s.flush((START + 20) * 1000);
    assert!(value(&f, "stats_counts.c").is_none() && value(&f, "stats.timers.t.count").is_none());
    assert!(value(&f, "stats.sets.u.count").is_none());
    assert_eq!(value(&f, "stats.gauges.g"), Some(1.0), "a gauge lives gaugesMaxTTL flushes");
    assert_eq!(value(&f, "stats_counts.statsd.packets_received"), Some(0.0), "statsd's own counters stay");
    let f = s.flush((START + 30) * 1000);
    assert!(value(&f, "stats.gauges.g").is_none());
}

#[test]
fn gauge_deltas_from_several_threads_all_count() {
    let mut s = State::new(Arc::new(StatsdOptions::default()), START);
    feed(&mut s, &["g:10|g"]);
    let mut a = Partial::new(100, true);
    let mut b = Partial::new(100, true);
    a.datagram(b"g:+1|g", START);
    b.datagram(b"g:5|g\ng:+2|g", START);
    s.merge(&mut [&mut a, &mut b]);
    let f = s.flush((START + 10) * 1000);
    assert_eq!(value(&f, "stats.gauges.g"), Some(8.0), "b's absolute (then its delta), then a's delta");
}

#[test]
fn admin_deletes_by_name_and_folder() {
    let mut s = state_with(StatsdOptions::default(), &["a.x:1|c\na.y:1|c\nb:1|c\nt:1|ms"]);
    assert_eq!(s.delete(Kind::Counters, &["b", "nope"]), "deleted: b\nmetric nope not found\nEND\n\n");
    assert_eq!(s.delete(Kind::Counters, &["a.*"]), "deleted: a.x\ndeleted: a.y\nEND\n\n");
    assert_eq!(s.delete(Kind::Timers, &["t"]), "deleted: t\nEND\n\n");
    let f = s.flush((START + 10) * 1000);
    assert!(value(&f, "stats_counts.a.x").is_none() && value(&f, "stats.timers.t.count").is_none());
    s.delete(Kind::Counters, &["statsd.packets_received"]);
    feed(&mut s, &["z:1|c"]);
    let f = s.flush((START + 20) * 1000);
    assert!(value(&f, "stats_counts.statsd.packets_received").unwrap().is_nan(), "etsy's undefined++");
}

#[test]
fn keys_left_unsanitised_are_sanitised_at_flush_except_tags() {
    let opts = StatsdOptions { key_name_sanitize: false, ..StatsdOptions::default() };
    let mut s = state_with(opts, &["a b/c:1|c|#k:v w"]);
    let f = s.flush((START + 10) * 1000);
    assert_eq!(value(&f, "stats_counts.a_b-c;k=v w"), Some(1.0));
}

#[test]
fn percent_classes_follow_etsys_regex() {
    for (field, class) in [
        ("count_90", "count_percent"),
        ("upper_99_9", "upper_99_percent"),
        ("lower_top10", "lower_percent"),
        ("sum_squares_90", "sum_squares_percent"),
        ("count_ps", "count_ps"),
        ("histogram", "histogram"),
        ("x90", "x90"),
    ] {
        assert_eq!(percent_class(field), class, "{field}");
    }
}
