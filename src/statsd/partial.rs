//! What one ingest thread has aggregated since it last handed over: its partial counters,
//! timer samples, gauge operations and set members. Owned by that thread alone (no lock on the
//! ingest path); at each flush the thread swaps it for an empty one and sends it to the flush
//! thread, which merges every thread's partial into the [`State`](super::State).
//!
//! The merge rule, which makes the result exactly etsy's for the stream of any single sender
//! (one sender's datagrams reach one socket of the SO_REUSEPORT group, hence one thread, in
//! order):
//! - counters and timer counts are sums that etsy restarts from 0 at every flush, so a partial
//!   summed from 0 in arrival order is etsy's sum; partials of several threads are added;
//! - timer samples are concatenated (etsy sorts them before computing anything);
//! - set members are unioned;
//! - gauges: a thread's operations since its first absolute value fold into that value with
//!   etsy's rule (a `+`/`-` delta adds to a gauge that is set and not 0, and sets it otherwise);
//!   deltas before any absolute value are kept in order and applied to the merged gauge. Across
//!   threads, absolute values are applied first, then deltas: for different senders no order
//!   exists to keep, and this way no sender's delta is lost.
//!
//! Bounded: keys, timer samples, set members and kept gauge deltas count against
//! `maxPendingSamples`; past it, samples are dropped and counted (`dropped`).

use hashbrown::{DefaultHashBuilder, HashMap};
use indexmap::{IndexMap, IndexSet};

pub(crate) use super::arrival_map::ArrivalMap as PartialMap;
use super::parse::{parse_line, parse_plain, parse_plain_prefix, Sample};

/// An insertion-ordered map with a fast hash (key order shows in the admin dumps).
pub(crate) type Map<V> = IndexMap<Box<str>, V, DefaultHashBuilder>;
/// A partial's key: up to 24 bytes held in the map's entry itself (statsd keys mostly are), so
/// that a lookup's key compare does not follow a pointer.
pub(crate) type Key = compact_str::CompactString;
/// The members of one set.
pub(crate) type Members = IndexSet<Box<str>, DefaultHashBuilder>;
/// The members of one set in a partial: inline, and found with one probe (an `IndexSet` took
/// two dependent loads, 6 % of a flat-out ingest thread for a tenth of its lines); the order they
/// arrived in, which the admin `sets` dump shows, is restored at the merge.
pub(crate) type PartialMembers = PartialMap<()>;

/// A timer's samples and count (the sum of `1 / rate`) since the last hand-over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimerPartial {
    /// Sample values in arrival order.
    pub samples: Vec<f64>,
    /// Σ 1/rate.
    pub count: f64,
}

/// A gauge's operations since the last hand-over.
#[derive(Debug, Clone, PartialEq)]
pub enum GaugePartial {
    /// An absolute value arrived; later deltas are folded in.
    Absolute(f64),
    /// Only deltas so far, in arrival order.
    Deltas(Vec<f64>),
}

/// etsy's gauge delta: added to a gauge that is set and truthy (not 0, not NaN), else the
/// delta becomes the value.
pub(crate) fn apply_delta(current: Option<f64>, delta: f64) -> f64 {
    match current {
        Some(v) if v != 0.0 && !v.is_nan() => v + delta,
        _ => delta,
    }
}

/// The bound on what a partial holds.
#[derive(Debug)]
struct Budget {
    /// Entries held: keys + timer samples + set members + kept gauge deltas. `held ≤ max`.
    held: usize,
    max: usize,
    /// Samples refused at the bound.
    dropped: u64,
}

impl Budget {
    /// Room for `n` more entries? Counts a drop when not.
    fn take(&mut self, n: usize) -> bool {
        if self.held + n > self.max {
            self.dropped += 1;
            return false;
        }
        self.held += n;
        debug_assert!(self.held <= self.max);
        true
    }
}

/// One ingest thread's aggregates since its last hand-over.
#[derive(Debug)]
pub struct Partial {
    pub(crate) counters: PartialMap<f64>,
    pub(crate) timers: PartialMap<TimerPartial>,
    pub(crate) gauges: PartialMap<GaugePartial>,
    pub(crate) sets: PartialMap<PartialMembers>,
    /// Datagrams (or TCP reads with whole lines) received.
    pub packets: u64,
    /// Non-empty lines received (etsy's metrics_received).
    pub lines: u64,
    /// Bad `value|type` parts (etsy's bad_lines_seen).
    pub bad_lines: u64,
    /// Unix seconds of the last packet (etsy's last_msg_seen); 0 when none.
    pub last_msg_seen: i64,
    budget: Budget,
    sanitize: bool,
    key: String,
    /// Sample vectors of the timers of the interval before, emptied, by key: a timer seen again
    /// gets its vector back with the capacity it needed, instead of growing a new one sample by
    /// sample on the ingest thread (copies and page faults). Holds only the last interval's
    /// vectors: one not taken back by the next [`Partial::clear`] is freed.
    spare_samples: HashMap<Key, Vec<f64>, DefaultHashBuilder>,
}

impl Partial {
    /// An empty partial holding at most `max_held` entries; `sanitize` is keyNameSanitize.
    pub fn new(max_held: usize, sanitize: bool) -> Partial {
        Partial {
            counters: PartialMap::default(),
            timers: PartialMap::default(),
            gauges: PartialMap::default(),
            sets: PartialMap::default(),
            packets: 0,
            lines: 0,
            bad_lines: 0,
            last_msg_seen: 0,
            budget: Budget { held: 0, max: max_held, dropped: 0 },
            sanitize,
            key: String::new(),
            spare_samples: HashMap::default(),
        }
    }

    /// One UDP datagram: lines split on `\n`, each parsed; empty lines skipped.
    pub fn datagram(&mut self, bytes: &[u8], now_s: i64) {
        self.packets += 1;
        self.last_msg_seen = now_s;
        // etsy decodes the packet as UTF-8 with replacement characters. A line boundary is never
        // inside a character, so a valid packet is valid line by line, and an invalid one can be
        // decoded line by line.
        let Ok(mut text) = std::str::from_utf8(bytes) else {
            for line in bytes.split(|&b| b == b'\n') {
                self.line(line);
            }
            return;
        };
        loop {
            // The common line is read in one pass that also finds its end; any other line is
            // cut at its `\n` first.
            let len = match parse_plain_prefix(text) {
                Some((key, sample, len)) => {
                    self.lines += 1;
                    self.add(key, sample);
                    len
                }
                None => {
                    let len = memchr::memchr(b'\n', text.as_bytes()).unwrap_or(text.len());
                    self.text_line(&text[..len]);
                    len
                }
            };
            match text.get(len + 1..) {
                Some(rest) => text = rest,
                None => return,
            }
        }
    }

    /// One line (no `\n`); empty lines are not counted, as in etsy.
    pub fn line(&mut self, line: &[u8]) {
        match std::str::from_utf8(line) {
            Ok(text) => self.text_line(text),
            Err(_) => self.text_line(&String::from_utf8_lossy(line)),
        }
    }

    fn text_line(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.lines += 1;
        // A key the fast path takes is one keyNameSanitize keeps, so `sanitize` does not matter.
        if let Some((key, sample)) = parse_plain(text) {
            self.add(key, sample);
            return;
        }
        let mut key = std::mem::take(&mut self.key);
        let bad = parse_line(text, self.sanitize, &mut key, |k, sample| self.add(k, sample));
        self.key = key;
        self.bad_lines += u64::from(bad);
    }

    /// Whether nothing at all was received since the last hand-over.
    pub fn is_empty(&self) -> bool {
        self.packets == 0 && self.lines == 0 && self.counters.is_empty() && self.timers.is_empty()
    }

    /// Entries held against the bound.
    pub fn held(&self) -> usize {
        self.budget.held
    }

    /// Samples dropped at the bound since the last hand-over.
    pub fn dropped(&self) -> u64 {
        self.budget.dropped
    }

    fn add(&mut self, key: &str, sample: Sample<'_>) {
        match sample {
            Sample::Counter(v) => {
                if let Some(c) = self.counters.get_mut(key) {
                    *c = if c.is_nan() { 0.0 } else { *c } + v;
                } else if self.budget.take(1) {
                    self.counters.insert_new(key, 0.0 + v);
                }
            }
            Sample::Timer { value, count } => {
                if let Some(t) = self.timers.get_mut(key) {
                    if self.budget.take(1) {
                        t.samples.push(value);
                        t.count += count;
                    }
                } else if self.budget.take(2) {
                    let mut samples = self.spare_samples.remove(key).unwrap_or_default();
                    samples.push(value);
                    self.timers.insert_new(key, TimerPartial { samples, count: 0.0 + count });
                }
            }
            Sample::Gauge { value, delta } => self.gauge(key, value, delta),
            Sample::Set(member) => match self.sets.get_mut(key) {
                Some(members) if members.contains(member) => {}
                Some(members) => {
                    if self.budget.take(1) {
                        members.insert_new(member, ());
                    }
                }
                None => {
                    if self.budget.take(2) {
                        let mut members = PartialMembers::default();
                        members.insert_new(member, ());
                        self.sets.insert_new(key, members);
                    }
                }
            },
        }
    }

    fn gauge(&mut self, key: &str, value: f64, delta: bool) {
        let Some(g) = self.gauges.get_mut(key) else {
            let first = if delta { GaugePartial::Deltas(vec![value]) } else { GaugePartial::Absolute(value) };
            if self.budget.take(1 + usize::from(delta)) {
                self.gauges.insert_new(key, first);
            }
            return;
        };
        match g {
            GaugePartial::Absolute(v) if delta => *v = apply_delta(Some(*v), value),
            GaugePartial::Absolute(v) => *v = value,
            GaugePartial::Deltas(ds) if delta => {
                if self.budget.take(1) {
                    ds.push(value);
                }
            }
            GaugePartial::Deltas(ds) => {
                // Deltas before an absolute value no longer matter; their room is given back.
                self.budget.held -= ds.len();
                *g = GaugePartial::Absolute(value);
            }
        }
    }

    /// Empties the partial, keeping the maps' capacity and the timers' sample vectors for the
    /// next interval.
    pub fn clear(&mut self) {
        self.counters.clear();
        self.spare_samples.clear();
        for (key, timer) in self.timers.drain() {
            let mut samples = timer.samples;
            samples.clear();
            self.spare_samples.insert(key, samples);
        }
        self.gauges.clear();
        self.sets.clear();
        self.packets = 0;
        self.lines = 0;
        self.bad_lines = 0;
        self.last_msg_seen = 0;
        self.budget.held = 0;
        self.budget.dropped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(lines: &[&str]) -> Partial {
        let mut p = Partial::new(1000, true);
        p.datagram(lines.join("\n").as_bytes(), 7);
        p
    }

    #[test]
    fn counters_timers_and_sets_accumulate() {
        let p = partial(&["a:1|c", "a:2|c|@0.5", "t:3|ms", "t:1|ms|@0.5", "u:x|s", "u:y|s", "u:x|s", "", "bad"]);
        assert_eq!(p.counters.get("a"), Some(&5.0));
        assert_eq!(p.timers.get("t"), Some(&TimerPartial { samples: vec![3.0, 1.0], count: 3.0 }));
        assert_eq!(p.sets.get("u").map(|s| s.len()), Some(2));
        assert_eq!((p.packets, p.lines, p.bad_lines, p.last_msg_seen), (1, 8, 1, 7));
    }

    #[test]
    fn a_datagram_aggregates_as_its_lines_one_by_one() {
        let datagrams: [&[u8]; 7] = [
            b"a:1|c\nt:2|ms|@0.5\n\ng:+3|g\nu:x|s\n",
            b"a:1|c|@0.1\nbad\na:2|c:3|ms\nk:1|c|#env:prod\na b:4|c\n\n",
            b"t:1.5|ms\nt:-1|ms\ng:5|g\ng:-2|g\nc:1|c|@\nc:1|c\r\nc:2|x\n:1|c",
            b"\n",
            b"",
            b"x:1|c\xff\ny:2|c\nz:\xc3\xa9|s",
            b"long.key.name.with.many.nodes.beyond.sixteen:7|c\nlong.key.name.with.many.nodes.beyond.sixteen:1|ms",
        ];
        for d in datagrams {
            let mut whole = Partial::new(1000, true);
            whole.datagram(d, 5);
            let mut by_line = Partial::new(1000, true);
            by_line.packets = 1;
            by_line.last_msg_seen = 5;
            for line in d.split(|&b| b == b'\n') {
                by_line.line(line);
            }
            let dump = |p: &mut Partial| {
                let counters: Vec<_> =
                    p.counters.in_order_mut().into_iter().map(|(k, v)| (k.to_string(), *v)).collect();
                let timers: Vec<_> =
                    p.timers.in_order_mut().into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                let gauges: Vec<_> =
                    p.gauges.in_order_mut().into_iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                let sets: Vec<_> = p
                    .sets
                    .in_order_mut()
                    .into_iter()
                    .map(|(k, v)| {
                        (k.to_string(), v.in_order_mut().into_iter().map(|(m, _)| m.to_string()).collect::<Vec<_>>())
                    })
                    .collect();
                format!("{counters:?} {timers:?} {gauges:?} {sets:?} {} {} {}", p.packets, p.lines, p.bad_lines)
            };
            assert_eq!(dump(&mut whole), dump(&mut by_line), "{:?}", String::from_utf8_lossy(d));
        }
    }

    #[test]
    fn gauges_fold_after_an_absolute_and_keep_earlier_deltas() {
        let p = partial(&["g:+1|g", "g:-3|g", "h:+1|g", "h:5|g", "h:-2|g", "z:0|g", "z:+4|g"]);
        assert_eq!(p.gauges.get("g"), Some(&GaugePartial::Deltas(vec![1.0, -3.0])));
        assert_eq!(p.gauges.get("h"), Some(&GaugePartial::Absolute(3.0)));
        assert_eq!(p.gauges.get("z"), Some(&GaugePartial::Absolute(4.0)), "a delta on 0 sets the gauge");
        assert_eq!(p.held(), 3 + 2, "three keys and two kept deltas");
    }

    #[test]
    fn the_bound_drops_and_counts() {
        let mut p = Partial::new(3, true);
        p.datagram(b"t:1|ms\nt:2|ms\nt:3|ms\nc:1|c\nu:a|s", 1);
        assert_eq!(p.timers.get("t").map(|t| t.samples.len()), Some(2));
        assert!(p.counters.is_empty() && p.sets.is_empty());
        assert_eq!(p.dropped(), 3);
        p.clear();
        assert_eq!((p.held(), p.dropped()), (0, 0));
        p.datagram(b"c:1|c", 1);
        assert_eq!(p.counters.get("c"), Some(&1.0));
    }

    #[test]
    fn a_timer_gets_its_sample_vector_back_for_one_interval() {
        let mut p = Partial::new(1000, true);
        p.datagram(b"t:1|ms\nt:2|ms\nt:3|ms\nu:1|ms", 1);
        let capacity = p.timers.get("t").map(|t| t.samples.capacity());
        p.clear();
        assert!(p.timers.is_empty() && p.is_empty());
        p.datagram(b"t:9|ms", 2);
        let t = p.timers.get("t").expect("t again");
        assert_eq!((t.samples.as_slice(), Some(t.samples.capacity())), (&[9.0][..], capacity));
        assert_eq!(p.spare_samples.len(), 1, "u's vector waits one interval");
        p.clear();
        assert_eq!(p.spare_samples.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["t"], "u's is freed");
        p.clear();
        assert!(p.spare_samples.is_empty());
    }

    #[test]
    fn the_merge_moves_samples_and_trades_vectors_with_the_state() {
        let mut state = super::super::State::new(std::sync::Arc::default(), 1);
        let mut p = Partial::new(1000, true);
        p.datagram(b"t:1|ms\nt:2|ms\nt:3|ms\nt:4|ms\nt:5|ms", 1);
        let first = p.timers.get("t").map(|t| (t.samples.as_ptr(), t.samples.capacity())).unwrap();
        state.merge(&mut [&mut p]);
        let merged = state.timers.get("t").expect("merged");
        assert_eq!((merged.len(), merged.as_ptr()), (5, first.0), "moved, not copied");
        assert!(p.is_empty());
        let _ = state.flush(3_000);
        // The partial now grows the state's old vector; at the next merge they trade again and
        // the partial gets the first one back, emptied, with its capacity.
        p.datagram(b"t:9|ms", 2);
        let second = p.timers.get("t").map(|t| t.samples.as_ptr()).unwrap();
        assert_ne!(second, first.0);
        state.merge(&mut [&mut p]);
        assert_eq!(state.timers.get("t").map(|v| v.as_ptr()), Some(second));
        p.datagram(b"t:7|ms", 3);
        let t = p.timers.get("t").unwrap();
        assert_eq!((t.samples.as_slice(), t.samples.as_ptr(), t.samples.capacity()), (&[7.0][..], first.0, first.1));
        // A timer two threads had: the second thread's samples are copied after the first's.
        let mut q = Partial::new(1000, true);
        q.datagram(b"t:8|ms", 3);
        let _ = state.flush(5_000);
        state.merge(&mut [&mut p, &mut q]);
        assert_eq!(state.timers.get("t").map(Vec::as_slice), Some(&[7.0, 8.0][..]));
    }

    #[test]
    fn set_members_reach_the_state_in_arrival_order() {
        let mut state = super::super::State::new(std::sync::Arc::default(), 1);
        let mut p = Partial::new(100_000, true);
        let members: Vec<String> = (0..300).map(|i| format!("m{}", (i * 7919) % 1000)).collect();
        let lines: Vec<String> = members.iter().chain(&members[..10]).map(|m| format!("u:{m}|s")).collect();
        p.datagram(lines.join("\n").as_bytes(), 1);
        state.merge(&mut [&mut p]);
        let got: Vec<&str> = state.sets.get("u").expect("merged").iter().map(|m| &**m).collect();
        assert_eq!(got, members, "each member once, where it first arrived");
    }

    #[test]
    fn a_nan_counter_restarts_from_zero_as_in_etsy() {
        let p = partial(&["a:Infinity|c", "a:-Infinity|c", "a:2|c"]);
        assert_eq!(p.counters.get("a"), Some(&2.0));
    }
}
