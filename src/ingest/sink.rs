//! What a receiver needs from the cache: a place to put points and a flow-control signal.
//! Kept as a trait so that receivers can be tested without the cache and the cache without
//! sockets.

/// Why the sink did not accept a point. Nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The cache is at MAX_CACHE_SIZE: the caller retries later (TCP) or drops and counts it
    /// (UDP, as carbon does).
    Full,
    /// A shard queue is full: its writer is behind for a moment. Every receiver waits (UDP too:
    /// meanwhile the kernel's receive buffer holds the burst, and what overflows it is counted
    /// as udpKernelDrops).
    Busy,
    /// The cache can never take it (a name over its length limit): count it, never retry.
    Invalid,
}

/// Where a receiver puts points.
pub trait PointSink {
    /// Offers one point (`name` already validated and normalised).
    fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> Result<(), Refused>;
    /// Hands partly filled batches over to the writers (end of each loop turn).
    fn flush(&mut self);
    /// Whether TCP receivers should stop reading (the cache is at MAX_CACHE_SIZE with flow
    /// control, until it drains below the low-water mark).
    fn paused(&self) -> bool;
}

/// A sink that keeps every point in memory, for tests of receivers.
#[derive(Debug, Default)]
pub struct VecSink {
    /// Points pushed, in order.
    pub points: Vec<(Vec<u8>, i64, f64)>,
    /// Refuse pushes after this many points (to test back-pressure); None: never refuse.
    pub refuse_after: Option<usize>,
    /// Number of flush calls.
    pub flushes: usize,
    /// Answer this many pushes with `Busy` first (a writer behind for a moment).
    pub busy_pushes: usize,
}

impl PointSink for VecSink {
    fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> Result<(), Refused> {
        if self.busy_pushes > 0 {
            self.busy_pushes -= 1;
            return Err(Refused::Busy);
        }
        if self.refuse_after.is_some_and(|n| self.points.len() >= n) {
            return Err(Refused::Full);
        }
        self.points.push((name.to_vec(), timestamp, value));
        Ok(())
    }

    fn flush(&mut self) {
        self.flushes += 1;
    }

    fn paused(&self) -> bool {
        false
    }
}

/// The cache as a sink: an ingest thread's `Producer` and the global flow-control state.
#[derive(Debug)]
pub struct CacheSink {
    producer: crate::cache::Producer,
    /// Where to count refusals for a full shard queue (queueFull).
    queue_full: Option<(std::sync::Arc<crate::telemetry::ThreadCounters>, crate::telemetry::CounterId)>,
}

impl CacheSink {
    /// A sink feeding `producer`.
    pub fn new(producer: crate::cache::Producer) -> CacheSink {
        CacheSink { producer, queue_full: None }
    }

    /// Counts every refusal for a full shard queue in `counter` of `thread`.
    pub fn count_queue_full(
        mut self,
        thread: std::sync::Arc<crate::telemetry::ThreadCounters>,
        counter: crate::telemetry::CounterId,
    ) -> CacheSink {
        self.queue_full = Some((thread, counter));
        self
    }

    /// Hands off everything still held, retrying while the writers make room, for at most
    /// `patience`; returns whether everything was handed off (the rest is counted as dropped by
    /// the producer when it is dropped).
    pub fn flush_fully(&mut self, patience: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if self.producer.flush().is_ok() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl PointSink for CacheSink {
    fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> Result<(), Refused> {
        use crate::cache::Refused as CacheRefused;
        match self.producer.push(name, timestamp, value) {
            Ok(()) => Ok(()),
            Err(CacheRefused::NameTooLong) => Err(Refused::Invalid),
            Err(CacheRefused::QueueFull) => {
                if let Some((thread, id)) = &self.queue_full {
                    thread.incr(*id);
                }
                Err(Refused::Busy)
            }
            Err(CacheRefused::CacheFull) => Err(Refused::Full),
        }
    }

    fn flush(&mut self) {
        // A full shard queue keeps the points here, accepted; the next flush tries again.
        let _ = self.producer.flush();
    }

    fn paused(&self) -> bool {
        self.producer.handoff().size().is_paused()
    }
}
