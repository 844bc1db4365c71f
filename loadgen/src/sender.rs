//! One connection's life: write batches (paced or flat out) until every point is sent or the
//! deadline passes, then half-close and wait for the server to close.
//!
//! The protocol is not known here: a [`BatchSource`] appends whole points to a buffer, and this
//! module only moves bytes, times them and counts them.
//!
//! **Accepted.** After its last batch a connection shuts down its write side (the server reads
//! EOF after the last byte) and reads until the server closes its side. A server that closes only
//! after it has read to EOF has, at that moment, read everything this connection sent: the time of
//! that close, measured from the common start, is the connection's "accepted" time. Bytes the
//! server sends back are read and dropped.
//!
//! **Bounds.** Every write and the wait for the close are bounded by `accept_timeout`: a write
//! that makes no progress for that long ends the connection as [`SendEnd::Stalled`]. With a
//! deadline, writes are also cut off at it; a batch cut off part-way may leave a partial last line
//! at the server, and only complete points are counted.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

use crate::pacer::Pacer;
use crate::progress::Progress;

/// Target size of one write: a batch is closed as soon as it reaches this many bytes.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Largest latency the histogram tells apart (one hour, in nanoseconds); longer ones count as this.
const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;

/// Shortest write timeout: the socket refuses a zero timeout.
const WRITE_TIMEOUT_MIN: Duration = Duration::from_millis(1);

/// Shortest sleep while pacing: a paced connection writes at most about once per tick, so at a
/// rate of `r` points per second a batch carries about `r * PACE_TICK` points, instead of one
/// write per point at high rates. Points leave up to one tick late; the schedule does not drift.
const PACE_TICK: Duration = Duration::from_millis(1);

/// Longest single sleep while pacing, so deadlines and odd schedules are re-checked often.
const PACE_SLEEP_MAX: Duration = Duration::from_millis(100);

/// Where a connection's points come from: appends whole points, encoded for the wire.
pub trait BatchSource {
    /// Points this source produces in all.
    fn n_points(&self) -> u64;

    /// Appends up to `max_points` points, stopping as soon as `buf.len() >= max_bytes`; returns
    /// how many it appended, 0 only when `max_points` is 0 or the source is exhausted.
    fn fill(&mut self, buf: &mut Vec<u8>, max_points: u64, max_bytes: usize) -> u64;

    /// Complete points in `bytes`, a prefix of the batch this source filled last.
    fn complete_points(&self, bytes: &[u8]) -> u64;

    /// The whole batch this source filled last was written (the kernel took every byte). A
    /// source that reports when its points left (the visibility probe's samples) does it here.
    fn batch_written(&mut self) {}
}

/// How a connection sends.
#[derive(Debug, Clone, PartialEq)]
pub struct SendConfig {
    /// Target bytes per write.
    pub batch_bytes: usize,
    /// Points per second for all connections together; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    /// Stop sending this long after the start; `None` sends everything.
    pub deadline: Option<Duration>,
    /// Bound on waiting for the server: the close after half-close, and any one write.
    pub accept_timeout: Duration,
}

/// Why a connection stopped sending.
#[derive(Debug)]
pub enum SendEnd {
    /// Every point of the source was written.
    AllSent,
    /// The deadline passed first.
    Deadline,
    /// A write made no progress for `accept_timeout`: the server stopped reading.
    Stalled,
    /// The socket failed.
    Failed(io::Error),
}

/// What happened after the half-close.
#[derive(Debug)]
pub enum Drain {
    /// The server closed this long after the common start.
    Closed { after: Duration },
    /// The server did not close within `accept_timeout`.
    TimedOut,
    /// The socket failed (a reset means the server closed without reading everything).
    Failed(io::Error),
    /// Not attempted, because sending stalled or failed.
    Skipped,
}

/// One connection's results.
#[derive(Debug)]
pub struct ConnReport {
    /// Complete points written.
    pub points_sent: u64,
    /// Bytes written, including a partial last point if a write was cut off.
    pub bytes_sent: u64,
    /// Writes measured in `latency_ns`.
    pub batches: u64,
    /// Why sending stopped.
    pub send_end: SendEnd,
    /// From the common start to the end of the last write.
    pub send_elapsed: Duration,
    /// The half-close and the wait for the server's close.
    pub drain: Drain,
    /// Nanoseconds each complete batch write took.
    pub latency_ns: Histogram<u64>,
    /// The wall-clock time of the common start (to within the microseconds it took to read
    /// both clocks), for tools that time the run from outside.
    pub started_at: SystemTime,
}

/// An empty latency histogram: 1 ns to an hour, three significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("constant histogram bounds are valid")
}

/// Sends `source` on `stream`, then waits for the server to close. `clock` is the common start
/// of all connections; `pacer` is this connection's share of the rate.
pub fn run_connection<S: BatchSource>(
    stream: TcpStream,
    mut source: S,
    cfg: &SendConfig,
    pacer: Pacer,
    clock: Instant,
    progress: &Progress,
) -> ConnReport {
    let mut conn =
        Conn { stream, cfg, clock, progress, points: 0, bytes: 0, batches: 0, latency_ns: new_latency_histogram() };
    let started_at = SystemTime::now().checked_sub(clock.elapsed()).unwrap_or(SystemTime::UNIX_EPOCH);
    let send_end = conn.send_batches(&mut source, pacer);
    let send_elapsed = clock.elapsed();
    let drain = match send_end {
        SendEnd::AllSent | SendEnd::Deadline => conn.drain(),
        SendEnd::Stalled | SendEnd::Failed(_) => Drain::Skipped,
    };
    ConnReport {
        points_sent: conn.points,
        bytes_sent: conn.bytes,
        batches: conn.batches,
        send_end,
        send_elapsed,
        drain,
        latency_ns: conn.latency_ns,
        started_at,
    }
}

/// A connection being driven, with its running totals.
struct Conn<'a> {
    stream: TcpStream,
    cfg: &'a SendConfig,
    /// The common start of all connections.
    clock: Instant,
    progress: &'a Progress,
    /// Complete points written; never more than the source's `n_points`.
    points: u64,
    /// Bytes the kernel took.
    bytes: u64,
    /// Complete batch writes, each recorded once in `latency_ns`.
    batches: u64,
    latency_ns: Histogram<u64>,
}

impl Conn<'_> {
    fn send_batches<S: BatchSource>(&mut self, source: &mut S, pacer: Pacer) -> SendEnd {
        if let Err(err) = self.stream.set_write_timeout(Some(self.cfg.accept_timeout)) {
            return SendEnd::Failed(err);
        }
        let mut buf = Vec::with_capacity(self.cfg.batch_bytes + 1024);
        loop {
            if self.points >= source.n_points() {
                return SendEnd::AllSent;
            }
            let elapsed = self.clock.elapsed();
            if self.cfg.deadline.is_some_and(|deadline| elapsed >= deadline) {
                return SendEnd::Deadline;
            }
            let allowance = pacer.allowance(elapsed, self.points);
            if allowance == 0 {
                pace_sleep(pacer, self.points, elapsed, self.cfg.deadline);
                continue;
            }
            buf.clear();
            let n_points = source.fill(&mut buf, allowance, self.cfg.batch_bytes);
            if n_points == 0 {
                return SendEnd::AllSent;
            }
            if let Err(end) = self.flush(&buf, n_points, source) {
                return end;
            }
        }
    }

    /// Writes one batch of `n_points` and counts it. On a cut-off write, counts what got through
    /// and says why sending ends.
    fn flush<S: BatchSource>(&mut self, buf: &[u8], n_points: u64, source: &mut S) -> Result<(), SendEnd> {
        let started = Instant::now();
        let result = self.write_batch(buf);
        let (written, points) = match &result {
            Ok(()) => {
                self.latency_ns.saturating_record(started.elapsed().as_nanos() as u64);
                self.batches += 1;
                source.batch_written();
                (buf.len(), n_points)
            }
            Err((written, _)) => (*written, source.complete_points(&buf[..*written])),
        };
        self.points += points;
        self.bytes += written as u64;
        self.progress.add(points, written as u64);
        result.map_err(|(_, err)| classify_write_error(err, self.cfg.deadline, self.clock))
    }

    /// Writes all of `buf`, tracking short writes so that a cut-off write still reports how many
    /// bytes the kernel took. The error carries that count.
    // Write::write on purpose: every short write is handled and counted here.
    #[allow(clippy::disallowed_methods)]
    fn write_batch(&mut self, buf: &[u8]) -> Result<(), (usize, io::Error)> {
        let mut written = 0;
        while written < buf.len() {
            if let Some(deadline) = self.cfg.deadline {
                let left = deadline.saturating_sub(self.clock.elapsed());
                let timeout = self.cfg.accept_timeout.min(left).max(WRITE_TIMEOUT_MIN);
                self.stream.set_write_timeout(Some(timeout)).map_err(|err| (written, err))?;
            }
            match self.stream.write(&buf[written..]) {
                Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err((written, err)),
            }
        }
        Ok(())
    }

    /// Half-closes and reads until the server closes, at most `accept_timeout`.
    fn drain(&mut self) -> Drain {
        if let Err(err) = self.stream.shutdown(Shutdown::Write) {
            return Drain::Failed(err);
        }
        let started = Instant::now();
        let mut sink = [0u8; 4096];
        loop {
            let left = self.cfg.accept_timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Drain::TimedOut;
            }
            if let Err(err) = self.stream.set_read_timeout(Some(left)) {
                return Drain::Failed(err);
            }
            match self.stream.read(&mut sink) {
                Ok(0) => return Drain::Closed { after: self.clock.elapsed() },
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_timeout(&err) => return Drain::TimedOut,
                Err(err) => return Drain::Failed(err),
            }
        }
    }
}

/// Sleeps until the next point is due but at least `PACE_TICK`, and at most until the deadline
/// or for `PACE_SLEEP_MAX`.
pub(crate) fn pace_sleep(pacer: Pacer, sent: u64, elapsed: Duration, deadline: Option<Duration>) {
    let due = pacer.next_due(sent).unwrap_or(elapsed).max(elapsed + PACE_TICK);
    let wake = deadline.map_or(due, |deadline| due.min(deadline));
    thread::sleep(wake.saturating_sub(elapsed).min(PACE_SLEEP_MAX));
}

/// A socket timeout reads as `WouldBlock` on Unix and `TimedOut` on Windows.
fn is_timeout(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A timed-out write past the deadline is the deadline; before it, a stalled server.
fn classify_write_error(err: io::Error, deadline: Option<Duration>, clock: Instant) -> SendEnd {
    if !is_timeout(&err) {
        SendEnd::Failed(err)
    } else if deadline.is_some_and(|deadline| clock.elapsed() >= deadline) {
        SendEnd::Deadline
    } else {
        SendEnd::Stalled
    }
}
