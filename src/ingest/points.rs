//! The path of every received point, whatever the protocol: timestamp rules (`-1` is now,
//! MIN_TIMESTAMP_RESOLUTION), NaN dropped, name validated and normalised, then offered to the
//! sink with back-pressure (TCP) or a counted drop (UDP). Every outcome is counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sink::{PointSink, Refused};
use crate::telemetry::{names, CounterId, Registry, ThreadCounters};

/// What to do when the sink refuses a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefused {
    /// Keep offering it (TCP: the receiver stops reading meanwhile, so the sender is pushed
    /// back by the kernel's window), until accepted or a hard stop.
    Wait,
    /// Drop it and count an overflow (UDP: there is no one to push back on).
    Drop,
}

/// Counter names the receivers add to the registry besides carbon's: one `rejected.<reason>`
/// per reason a line, frame, entry or name can be refused for, and the connection limit.
pub fn receiver_counters() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = rejection_reasons()
            .iter()
            .map(|reason| &*Box::leak(format!("rejected.{reason}").into_boxed_str()))
            .collect();
        names.push("rejected.bad_name");
        names.push("connectionsRefused");
        names
    })
}

/// Every rejection reason (the counter is `rejected.<reason>`).
fn rejection_reasons() -> Vec<&'static str> {
    use crate::protocol::name::NameReject;
    use crate::protocol::pickle::PickleError;
    use crate::protocol::plaintext::Reject;
    let mut reasons: Vec<&'static str> = Reject::ALL.iter().map(|r| r.as_str()).collect();
    reasons.extend(NameReject::ALL.iter().map(|r| r.as_str()));
    reasons.extend(PickleError::REASONS.iter().map(|r| pickle_reason(r)));
    reasons.push(pickle_reason("bad_entry"));
    reasons.sort_unstable();
    reasons.dedup();
    reasons
}

/// The reason name of a pickle rejection (`pickle_<reason>`), made once per reason.
pub fn pickle_reason(reason: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let wanted = format!("pickle_{reason}");
    if let Some(found) = names.iter().find(|n| **n == wanted) {
        return found;
    }
    let leaked: &'static str = Box::leak(wanted.into_boxed_str());
    names.push(leaked);
    leaked
}

/// Counter ids of one receiver thread.
#[derive(Debug, Clone)]
pub struct PointCounters {
    pub(crate) thread: Arc<ThreadCounters>,
    pub(crate) received: CounterId,
    pub(crate) overflow: CounterId,
    pub(crate) nan: CounterId,
    pub(crate) bad_name: CounterId,
    pub(crate) blacklisted: CounterId,
    pub(crate) not_whitelisted: CounterId,
    /// (reason, counter) for every rejection reason.
    rejections: Vec<(&'static str, CounterId)>,
    pub(crate) registry: Arc<Registry>,
}

impl PointCounters {
    /// Ids looked up once; `label` names the thread in per-thread metrics.
    pub fn new(registry: &Arc<Registry>, label: &str) -> PointCounters {
        PointCounters {
            thread: registry.thread(label),
            received: registry.id(names::METRICS_RECEIVED),
            overflow: registry.id(names::CACHE_OVERFLOW),
            nan: registry.id("rejected.nan_value"),
            bad_name: registry.id("rejected.bad_name"),
            blacklisted: registry.id(names::BLACKLIST_MATCHES),
            not_whitelisted: registry.id(names::WHITELIST_REJECTS),
            rejections: rejection_reasons().into_iter().map(|r| (r, registry.id(&format!("rejected.{r}")))).collect(),
            registry: Arc::clone(registry),
        }
    }

    /// Counts one rejection for `reason` (one of the reasons' `as_str()`; pickle reasons through
    /// `pickle_reason`). An unknown reason is a programming error caught in debug builds and
    /// counted as a bad name otherwise.
    pub fn reject(&self, reason: &str) {
        let id = self.rejections.iter().find(|(r, _)| *r == reason).map(|(_, id)| *id);
        debug_assert!(id.is_some(), "rejection reason {reason} is not registered");
        self.thread.incr(id.unwrap_or(self.bad_name));
    }

    /// Counts one event by counter name (for the less frequent kinds: rejection reasons).
    pub fn count(&self, name: &str) {
        self.add(name, 1);
    }

    /// Adds `n` to the counter `name`.
    pub fn add(&self, name: &str, n: u64) {
        self.thread.add(self.registry.id(name), n);
    }
}

/// Carbon's timestamp rules: `-1` (after truncation to an integer) means now, and a positive
/// MIN_TIMESTAMP_RESOLUTION truncates to a multiple of it.
pub fn normalize_timestamp(ts: i64, now: i64, resolution: u64) -> i64 {
    let ts = if ts == -1 { now } else { ts };
    match i64::try_from(resolution) {
        Ok(r) if r > 0 => ts - ts.rem_euclid(r),
        _ => ts,
    }
}

/// Offers one point to the sink, waiting or dropping as told. Returns whether it was accepted.
pub fn offer(
    sink: &mut dyn PointSink,
    counters: &PointCounters,
    name: &[u8],
    ts: i64,
    value: f64,
    on_refused: OnRefused,
    hard_stop: &AtomicBool,
) -> bool {
    if value.is_nan() {
        counters.thread.incr(counters.nan);
        return false;
    }
    loop {
        match sink.push(name, ts, value) {
            Ok(()) => {
                counters.thread.incr(counters.received);
                return true;
            }
            Err(Refused::Invalid) => {
                counters.reject(crate::protocol::name::NameReject::TooLong.as_str());
                return false;
            }
            Err(refused @ (Refused::Full | Refused::Busy))
                if (refused == Refused::Busy || on_refused == OnRefused::Wait)
                    && !hard_stop.load(Ordering::Relaxed) =>
            {
                // Hand what we hold to the writers and give them a moment; not reading meanwhile
                // is the back-pressure.
                sink.flush();
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Refused::Full | Refused::Busy) => {
                counters.thread.incr(counters.overflow);
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sink::VecSink;

    fn counters() -> (Arc<Registry>, PointCounters) {
        let mut all: Vec<&'static str> = names::ALL.to_vec();
        all.extend(receiver_counters());
        let reg = Arc::new(Registry::new(&all));
        let c = PointCounters::new(&reg, "ingest0");
        (reg, c)
    }

    #[test]
    fn timestamps_follow_carbon() {
        assert_eq!(normalize_timestamp(-1, 1000, 0), 1000);
        assert_eq!(normalize_timestamp(1234, 1000, 0), 1234);
        assert_eq!(normalize_timestamp(1234, 1000, 10), 1230);
        assert_eq!(normalize_timestamp(-1, 1005, 10), 1000);
    }

    #[test]
    fn nan_is_dropped_and_counted_and_refusals_drop_or_wait() {
        let (reg, c) = counters();
        let stop = AtomicBool::new(false);
        let mut sink = VecSink { refuse_after: Some(1), ..VecSink::default() };
        assert!(!offer(&mut sink, &c, b"a", 1, f64::NAN, OnRefused::Drop, &stop));
        assert!(offer(&mut sink, &c, b"a", 1, 1.0, OnRefused::Drop, &stop));
        assert!(!offer(&mut sink, &c, b"a", 2, 2.0, OnRefused::Drop, &stop));
        stop.store(true, Ordering::Relaxed);
        assert!(!offer(&mut sink, &c, b"a", 3, 3.0, OnRefused::Wait, &stop), "a hard stop ends the wait");
        let (totals, _) = reg.snapshot();
        let get = |n: &str| totals[usize::from(reg.names().iter().position(|x| *x == n).unwrap() as u16)];
        assert_eq!((get("rejected.nan_value"), get(names::METRICS_RECEIVED), get(names::CACHE_OVERFLOW)), (1, 1, 2));
    }

    #[test]
    fn a_busy_writer_makes_udp_wait_not_drop() {
        let (reg, c) = counters();
        let stop = AtomicBool::new(false);
        let mut sink = VecSink { busy_pushes: 3, ..VecSink::default() };
        assert!(offer(&mut sink, &c, b"a", 1, 1.0, OnRefused::Drop, &stop));
        assert_eq!(sink.points.len(), 1);
        assert_eq!(sink.flushes, 3, "each wait hands the held batches over first");
        sink.busy_pushes = 1;
        stop.store(true, Ordering::Relaxed);
        assert!(!offer(&mut sink, &c, b"a", 2, 2.0, OnRefused::Drop, &stop), "a hard stop ends the wait");
        let (totals, _) = reg.snapshot();
        let get = |n: &str| totals[usize::from(reg.names().iter().position(|x| *x == n).unwrap() as u16)];
        assert_eq!((get(names::METRICS_RECEIVED), get(names::CACHE_OVERFLOW)), (1, 1));
    }
}
