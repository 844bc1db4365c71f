//! Per-thread counters: each thread increments its own cache-padded atomics (relaxed, never
//! contended); the reporter sums them across threads once per interval.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Index of a counter in the registry's name table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId(u16);

/// One thread's counters. Invariant: `slots.len()` equals the registry's number of names.
#[derive(Debug)]
pub struct ThreadCounters {
    /// A label naming the thread in per-thread metrics (`ingest0`, `writer1`).
    pub label: String,
    slots: Box<[crossbeam_utils::CachePadded<AtomicU64>]>,
}

impl ThreadCounters {
    /// Adds `n` to counter `id`.
    pub fn add(&self, id: CounterId, n: u64) {
        self.slots[usize::from(id.0)].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to counter `id`.
    pub fn incr(&self, id: CounterId) {
        self.add(id, 1);
    }

    /// Current value of counter `id`.
    pub fn get(&self, id: CounterId) -> u64 {
        self.slots[usize::from(id.0)].load(Ordering::Relaxed)
    }
}

/// The set of counter names, fixed before threads start, and the threads' counters.
#[derive(Debug)]
pub struct Registry {
    names: Vec<&'static str>,
    threads: Mutex<Vec<Arc<ThreadCounters>>>,
}

impl Registry {
    /// A registry of these counter names (duplicates are merged).
    pub fn new(names: &[&'static str]) -> Registry {
        let mut unique: Vec<&'static str> = Vec::with_capacity(names.len());
        for name in names {
            if !unique.contains(name) {
                unique.push(name);
            }
        }
        assert!(unique.len() <= usize::from(u16::MAX), "too many counters");
        Registry { names: unique, threads: Mutex::new(Vec::new()) }
    }

    /// The id of counter `name`. Panics on a name not registered: a programming error, found by
    /// the first test that starts the component.
    pub fn id(&self, name: &str) -> CounterId {
        let idx = self.names.iter().position(|n| *n == name);
        CounterId(idx.unwrap_or_else(|| panic!("counter {name} is not registered")) as u16)
    }

    /// Counters for a new thread.
    pub fn thread(&self, label: impl Into<String>) -> Arc<ThreadCounters> {
        let slots = self.names.iter().map(|_| crossbeam_utils::CachePadded::new(AtomicU64::new(0))).collect();
        let counters = Arc::new(ThreadCounters { label: label.into(), slots });
        self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Arc::clone(&counters));
        counters
    }

    /// The counter names, in id order.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Sum of every counter over all threads, in id order, and per thread (label, values).
    pub fn snapshot(&self) -> (Vec<u64>, Vec<(String, Vec<u64>)>) {
        let threads = self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut totals = vec![0u64; self.names.len()];
        let mut per_thread = Vec::with_capacity(threads.len());
        for t in threads.iter() {
            let values: Vec<u64> = t.slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
            for (total, v) in totals.iter_mut().zip(&values) {
                *total += v;
            }
            per_thread.push((t.label.clone(), values));
        }
        (totals, per_thread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_count_apart_and_sum_together() {
        let reg = Registry::new(&["a", "b", "a"]);
        assert_eq!(reg.names(), ["a", "b"]);
        let (a, b) = (reg.id("a"), reg.id("b"));
        let t1 = reg.thread("ingest0");
        let t2 = reg.thread("ingest1");
        std::thread::scope(|s| {
            s.spawn(|| (0..1000).for_each(|_| t1.incr(a)));
            s.spawn(|| (0..500).for_each(|_| t2.add(b, 2)));
        });
        let (totals, per_thread) = reg.snapshot();
        assert_eq!(totals, vec![1000, 1000]);
        assert_eq!(per_thread[1], ("ingest1".to_string(), vec![0, 1000]));
    }

    #[test]
    #[should_panic(expected = "not registered")]
    fn unknown_names_are_programming_errors() {
        Registry::new(&["a"]).id("zzz");
    }
}
