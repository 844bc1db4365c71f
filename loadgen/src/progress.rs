//! Counters shared by the connection threads, and the once-a-second progress line on stderr.
//!
//! Each connection adds its points and bytes after every batch write (relaxed atomics: the numbers
//! are for people, and the exact totals come from the per-connection reports at the end).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Points and bytes written so far, by all connections together.
#[derive(Debug, Default)]
pub struct Progress {
    points: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    /// Counts a written batch.
    pub fn add(&self, points: u64, bytes: u64) {
        self.points.fetch_add(points, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Points written so far.
    pub fn points(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Prints a progress line each whole second after the start.
#[derive(Debug)]
pub struct Ticker {
    /// What is counted: `points` (carbon) or `lines` (statsd).
    unit: &'static str,
    /// What happened to them: `sent`, `checked`.
    verb: &'static str,
    /// Elapsed time at which the next line is due; a whole number of seconds, at least 1.
    next_tick: Duration,
    /// Points counted at the previous line (0 before the first).
    last_points: u64,
    /// Elapsed time of the previous line (zero before the first).
    last_at: Duration,
}

impl Default for Ticker {
    fn default() -> Ticker {
        Ticker::new("points")
    }
}

impl Ticker {
    /// A ticker that calls what it counts `unit`, sent.
    pub fn new(unit: &'static str) -> Ticker {
        Ticker::with_verb(unit, "sent")
    }

    /// A ticker of `unit`s that are `verb` (`checked`, ...).
    pub fn with_verb(unit: &'static str, verb: &'static str) -> Ticker {
        Ticker { unit, verb, next_tick: Duration::from_secs(1), last_points: 0, last_at: Duration::ZERO }
    }

    /// Time left until the next line is due.
    pub fn until_next(&self, clock: Instant) -> Duration {
        self.next_tick.saturating_sub(clock.elapsed())
    }

    /// Prints a line to `out` if one is due, with the rate since the previous line.
    pub fn tick(&mut self, progress: &Progress, clock: Instant, out: &mut impl Write) {
        let now = clock.elapsed();
        if now < self.next_tick {
            return;
        }
        let (points, unit, verb) = (progress.points(), self.unit, self.verb);
        let window_s = (now - self.last_at).as_secs_f64();
        let rate = points.saturating_sub(self.last_points) as f64 / window_s.max(1e-9);
        // Progress is best-effort: a closed stderr must not stop the run.
        let _ = writeln!(
            out,
            "carbyne-loadgen: {:>5.1} s  {points} {unit} {verb}  {rate:.0} {unit}/s  {:.1} MiB",
            now.as_secs_f64(),
            progress.bytes() as f64 / (1024.0 * 1024.0),
        );
        self.last_points = points;
        self.last_at = now;
        while self.next_tick <= now {
            self.next_tick += Duration::from_secs(1);
        }
    }
}
