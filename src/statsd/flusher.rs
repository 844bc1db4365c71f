//! The flush thread and its hand-over with the ingest threads.
//!
//! Each ingest thread owns a [`CoreStatsd`]: its [`Partial`] and a handle on the [`Hub`]. To
//! flush, the flush thread bumps the hub's epoch; every ingest thread notices at its next loop
//! turn (at most one turn wait, 20 ms, later), swaps its partial for a spare one and sends the
//! full one over a channel. The flush thread merges what it received into its [`State`], flushes
//! and hands the points to a callback (the server puts them into the cache), then sends the
//! emptied partials back as spares, so that steady state allocates no partials.
//!
//! An ingest thread held up longer than `COLLECT_WAIT` (waiting on a full cache for a TCP
//! sender) is not waited for: its partial is merged into the next flush, as a packet arriving
//! just after etsy's flush would be.
//!
//! **Architecture Invariant:** the state is only ever touched by the flush thread; ingest
//! threads touch only their own partial, and hand it over whole.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::partial::Partial;
use super::state::{Flush, State};
use crate::config::StatsdOptions;

/// How long a collection waits for every ingest thread's partial.
const COLLECT_WAIT: Duration = Duration::from_millis(250);
/// How often the flush thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(20);

/// What the ingest threads and the flush thread share.
#[derive(Debug)]
pub struct Hub {
    /// Bumped by the flush thread to ask for every partial.
    epoch: AtomicU64,
    partials: flume::Sender<(u64, Partial)>,
    spares: flume::Receiver<Partial>,
    max_held: usize,
    sanitize: bool,
}

impl Hub {
    /// A spare partial if one came back, else a new one.
    fn fresh(&self) -> Partial {
        self.spares.try_recv().unwrap_or_else(|_| Partial::new(self.max_held, self.sanitize))
    }
}

/// One ingest thread's statsd side: its partial, handed over when asked.
#[derive(Debug)]
pub struct CoreStatsd {
    hub: Arc<Hub>,
    partial: Partial,
    /// The last epoch this thread answered.
    seen: u64,
}

impl CoreStatsd {
    /// This thread's partial, to feed datagrams and lines into.
    pub fn partial(&mut self) -> &mut Partial {
        &mut self.partial
    }

    /// Once per loop turn: hands the partial over if the flush thread asked for it.
    pub fn poll(&mut self) {
        let epoch = self.hub.epoch.load(Ordering::Acquire);
        if epoch != self.seen {
            self.seen = epoch;
            self.hand_over(epoch);
        }
    }

    fn hand_over(&mut self, epoch: u64) {
        let full = std::mem::replace(&mut self.partial, self.hub.fresh());
        // The flush thread outlives the ingest threads; a send fails only on an error path
        // where the process is going down anyway.
        let _ = self.hub.partials.send((epoch, full));
    }

    /// At stop, after the drain: hands over what is left for the final flush.
    pub fn finish(mut self) {
        let epoch = self.seen;
        self.hand_over(epoch);
    }
}

/// The flush thread's side.
#[derive(Debug)]
pub struct Flusher {
    hub: Arc<Hub>,
    partials: flume::Receiver<(u64, Partial)>,
    spares: flume::Sender<Partial>,
    n_cores: usize,
    state: State,
    interval: Duration,
}

/// A flusher and one [`CoreStatsd`] per ingest thread.
pub fn channels(opts: Arc<StatsdOptions>, n_cores: usize) -> (Flusher, Vec<CoreStatsd>) {
    let (partials_tx, partials_rx) = flume::unbounded();
    let (spares_tx, spares_rx) = flume::unbounded();
    let hub = Arc::new(Hub {
        epoch: AtomicU64::new(0),
        partials: partials_tx,
        spares: spares_rx,
        max_held: opts.max_pending_samples,
        sanitize: opts.key_name_sanitize,
    });
    let cores = (0..n_cores).map(|_| CoreStatsd { hub: hub.clone(), partial: hub.fresh(), seen: 0 }).collect();
    let flusher = Flusher {
        interval: Duration::from_millis(opts.flush_interval_ms),
        state: State::new(opts, unix_ms() / 1000),
        hub,
        partials: partials_rx,
        spares: spares_tx,
        n_cores,
    };
    (flusher, cores)
}

impl Flusher {
    /// Runs until `stop` (set once every ingest thread has finished), flushing every
    /// flushInterval, aligned to start-up as etsy aligns them, and between flushes handing each
    /// `queries` request to `answer` with the state (the admin interface; the ingest threads'
    /// partials are collected first, so that answers see everything received).
    /// `emit` gets each flush and the samples dropped at the ingest threads' bound since the
    /// previous one; it returns false when the hand-over failed (counted as etsy's
    /// last_exception). A last flush happens at stop.
    pub fn run<Q>(
        mut self,
        stop: &AtomicBool,
        queries: Option<flume::Receiver<Q>>,
        mut answer: impl FnMut(Q, &mut State),
        mut emit: impl FnMut(&Flush, u64) -> bool,
    ) {
        let started = Instant::now();
        let mut k = 1u32;
        let mut dropped_reported = 0;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let due = started + self.interval * k;
            if stopping || Instant::now() >= due {
                if stopping {
                    self.merge_pending();
                } else {
                    self.collect();
                }
                let flush = self.state.flush(unix_ms());
                let dropped = self.state.samples_dropped - dropped_reported;
                dropped_reported = self.state.samples_dropped;
                let handing = Instant::now();
                let ok = emit(&flush, dropped);
                let now_s = unix_ms() / 1000;
                self.state.record_handover(&flush, handing.elapsed().as_millis() as i64, now_s);
                if !ok {
                    self.state.backend.last_exception = now_s;
                }
                if stopping {
                    return;
                }
                // Flushes missed (a stalled machine) are not made up for: the next is due at the
                // next multiple of the interval.
                while started + self.interval * k <= Instant::now() {
                    k += 1;
                }
                continue;
            }
            let wait = due.saturating_duration_since(Instant::now()).min(TICK);
            match queries.as_ref().map(|rx| rx.recv_timeout(wait)) {
                Some(Ok(query)) => {
                    self.collect();
                    answer(query, &mut self.state);
                }
                Some(Err(_)) | None => std::thread::sleep(wait.min(TICK)),
            }
        }
    }

    /// Asks every ingest thread for its partial and merges what comes within `COLLECT_WAIT`.
    fn collect(&mut self) {
        let epoch = self.hub.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + COLLECT_WAIT;
        let mut got = Vec::new();
        let mut current = 0;
        while current < self.n_cores {
            match self.partials.recv_deadline(deadline) {
                Ok((e, p)) => {
                    current += usize::from(e == epoch);
                    got.push(p);
                }
                Err(_) => break,
            }
        }
        got.extend(self.partials.try_iter().map(|(_, p)| p));
        self.merge(got);
    }

    /// Merges whatever partials are waiting (the final hand-overs at stop).
    fn merge_pending(&mut self) {
        let got: Vec<Partial> = self.partials.try_iter().map(|(_, p)| p).collect();
        self.merge(got);
    }

    fn merge(&mut self, mut got: Vec<Partial>) {
        let mut refs: Vec<&mut Partial> = got.iter_mut().collect();
        self.state.merge(&mut refs);
        for p in got {
            let _ = self.spares.send(p);
        }
    }
}

/// Unix milliseconds now.
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_of_every_core_reach_the_final_flush() {
        let opts = Arc::new(StatsdOptions { flush_interval_ms: 3_600_000, ..StatsdOptions::default() });
        let (flusher, mut cores) = channels(opts, 2);
        cores[0].partial().datagram(b"a:1|c", 1);
        cores[1].partial().datagram(b"a:2|c\nt:5|ms", 1);
        for core in cores {
            core.finish();
        }
        let stop = AtomicBool::new(true);
        let mut flushes = Vec::new();
        flusher.run(
            &stop,
            None::<flume::Receiver<()>>,
            |_, _| {},
            |f, dropped| {
                flushes.push((f.clone(), dropped));
                true
            },
        );
        assert_eq!(flushes.len(), 1);
        let value = |name: &str| flushes[0].0.points.iter().find(|(n, _)| n == name).map(|p| p.1);
        assert_eq!(value("stats_counts.a"), Some(3.0));
        assert_eq!(value("stats.timers.t.upper"), Some(5.0));
        assert_eq!(value("stats_counts.statsd.packets_received"), Some(2.0));
    }

    #[test]
    fn a_flush_collects_from_threads_that_keep_running() {
        let opts = Arc::new(StatsdOptions { flush_interval_ms: 50, ..StatsdOptions::default() });
        let (flusher, cores) = channels(opts, 2);
        let stop = Arc::new(AtomicBool::new(false));
        let cores_stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = cores
            .into_iter()
            .map(|mut core| {
                let cores_stop = cores_stop.clone();
                std::thread::spawn(move || {
                    let mut sent = 0u32;
                    while !cores_stop.load(Ordering::Acquire) {
                        if sent < 100 {
                            core.partial().datagram(b"n:1|c", 1);
                            sent += 1;
                        }
                        core.poll();
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    core.finish();
                })
            })
            .collect();
        let total = Arc::new(std::sync::Mutex::new((0.0, 0usize)));
        let flusher_thread = {
            let (stop, total) = (stop.clone(), total.clone());
            std::thread::spawn(move || {
                flusher.run(
                    &stop,
                    None::<flume::Receiver<()>>,
                    |_, _| {},
                    |f, _| {
                        let mut t = total.lock().unwrap();
                        t.0 += f.points.iter().find(|(n, _)| n == "stats_counts.n").map_or(0.0, |p| p.1);
                        t.1 += 1;
                        true
                    },
                )
            })
        };
        // Every point is counted exactly once, across however many flushes happen meanwhile.
        while total.lock().unwrap().1 < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        cores_stop.store(true, Ordering::Release);
        threads.into_iter().for_each(|t| t.join().unwrap());
        stop.store(true, Ordering::Release);
        flusher_thread.join().unwrap();
        assert_eq!(total.lock().unwrap().0, 200.0);
    }
}
