//! Sending datagrams over UDP: one thread and one connected socket per sender, each sending its
//! own lines (a [`Datagrams`] source: statsd's [`DatagramSource`], or carbon plaintext's
//! [`PlaintextDatagrams`](crate::plaintext_udp::PlaintextDatagrams)) as datagrams, flat out or
//! paced, with a progress line each second on the calling thread and every sender's counts at
//! the end.
//!
//! **Sent** means the kernel took the datagram (`send` returned its whole length). UDP has no
//! acknowledgement, so whether the server received a datagram is for the server's own counters to
//! say (etsy's `statsd.metrics_received` counts lines, `statsd.packets_received` datagrams); the
//! report gives the exact totals to compare them with.
//!
//! **Errors.** A failed `send` loses that datagram: it is counted (`send_errors`, and its lines in
//! `lines_not_sent`) and the sender goes on with the next one. On Linux the usual ones are
//! `ECONNREFUSED` (the kernel's report of an ICMP port unreachable for an earlier datagram: nobody
//! listens on the target) and `ENOBUFS`. Only `EINTR` is retried.
//!
//! **Send latency.** Every `send` the kernel takes whole is timed (one `Instant` pair around the
//! call, `EINTR` retries included) into the sender's HdrHistogram of nanoseconds, built as the TCP
//! senders build theirs ([`new_latency_histogram`]): one sample per datagram sent. A blocking
//! `send` returns once the kernel has copied the datagram, but waits while the socket's send
//! buffer is full, so this is the time a sender spends per datagram, which bounds the rate one
//! sender can offer. Failed sends are counted, not timed.
//!
//! **Pacing** (open loop): a sender's share of `--rate` is proportional to its lines; a datagram
//! leaves when its last line is due (see [`Pacer`]), so at a low rate datagrams stay full instead
//! of leaving one line at a time.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::pacer::Pacer;
use crate::progress::{Progress, Ticker};
use crate::run::collect;
use crate::sender::{new_latency_histogram, pace_sleep};
use crate::statsd::{lines_of_sender, DatagramSource, KindCounts, StatsdWorkload, DATAGRAM_BYTES_MAX};
use crate::statsd_report::{StatsdInfo, StatsdReport};

/// Most sender threads one run may start.
pub const SENDERS_MAX: usize = 1024;

/// Datagrams a sender sends between two updates of the shared progress counters, so that several
/// senders do not fight over one cache line a million times a second.
const PROGRESS_EVERY: u64 = 256;

/// How to send.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpConfig {
    /// Sender threads, each with its own socket; 1 ..= `SENDERS_MAX`.
    pub n_senders: usize,
    /// Lines in the whole run; `None` sends until the deadline (which must then be set).
    pub n_lines: Option<u64>,
    /// Lines per second for all senders together; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    /// Stop sending this long after the start; `None` sends every line.
    pub deadline: Option<Duration>,
    /// Format each sender's datagrams before the clock starts (at most
    /// [`PREGENERATED_BYTES_MAX`] in all) and send them over and over until the deadline (which
    /// must then be set, with no line count): see [`Pregenerated`].
    pub pregenerate: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// What the progress lines count: `lines`, or `statsd lines` when several runs share stderr
    /// (a mixed run).
    pub progress_unit: &'static str,
}

/// Where a sender's datagrams come from.
pub trait Datagrams {
    /// Replaces `buf` with the next datagram, adding its lines to `kinds` (statsd's counts by
    /// type; other protocols leave them); returns its line count, 0 only once every line is sent.
    fn fill(&mut self, buf: &mut Vec<u8>, kinds: &mut KindCounts) -> usize;

    /// The datagram `fill` made last was sent whole (`true`) or lost to a send error.
    fn sent(&mut self, _ok: bool) {}
}

impl Datagrams for DatagramSource<'_> {
    fn fill(&mut self, buf: &mut Vec<u8>, kinds: &mut KindCounts) -> usize {
        DatagramSource::fill(self, buf, kinds)
    }
}

/// Why a sender stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpStop {
    /// Every line of its share was sent or lost to a send error.
    AllSent,
    /// The deadline passed first.
    Deadline,
}

/// One sender's results.
#[derive(Debug)]
pub struct SenderReport {
    /// Lines in datagrams the kernel took.
    pub lines_sent: u64,
    /// `lines_sent` by kind.
    pub lines_by_kind: KindCounts,
    /// Datagrams the kernel took.
    pub datagrams_sent: u64,
    /// Bytes in those datagrams.
    pub bytes_sent: u64,
    /// Datagrams whose `send` failed.
    pub send_errors: u64,
    /// Lines in those datagrams.
    pub lines_not_sent: u64,
    /// The first send error, for the report.
    pub first_error: Option<io::Error>,
    /// Why it stopped; `None` only while running.
    pub stop: Option<UdpStop>,
    /// From the common start to the end of its last send.
    pub send_elapsed: Duration,
    /// Nanoseconds each `send` the kernel took whole lasted: one sample per datagram in
    /// `datagrams_sent`.
    pub latency_ns: Histogram<u64>,
}

impl Default for SenderReport {
    /// Nothing sent yet, with an empty latency histogram.
    fn default() -> SenderReport {
        SenderReport {
            lines_sent: 0,
            lines_by_kind: KindCounts::default(),
            datagrams_sent: 0,
            bytes_sent: 0,
            send_errors: 0,
            lines_not_sent: 0,
            first_error: None,
            stop: None,
            send_elapsed: Duration::ZERO,
            latency_ns: new_latency_histogram(),
        }
    }
}

/// Opens `n` UDP sockets on an ephemeral port of the target's address family, each connected
/// to `target` (so `send` needs no address, and the kernel reports refusals).
pub fn bind_all(target: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    (0..n)
        .map(|_| {
            let socket = UdpSocket::bind(any)?;
            socket.connect(target)?;
            Ok(socket)
        })
        .collect()
}

/// Sends `workload` to `target` from `cfg.n_senders` threads. Fails only if a socket cannot be
/// opened; send errors are counted in the report.
pub fn run(target: SocketAddr, workload: &StatsdWorkload, cfg: &UdpConfig) -> io::Result<StatsdReport> {
    assert!((1..=SENDERS_MAX).contains(&cfg.n_senders), "{} senders", cfg.n_senders);
    assert!(cfg.n_lines.is_some() || cfg.deadline.is_some(), "a run needs a line count or a deadline");
    assert!(!cfg.pregenerate || (cfg.n_lines.is_none() && cfg.deadline.is_some()), "pregenerated runs are timed");
    let sockets = bind_all(target, cfg.n_senders)?;
    let n_senders = cfg.n_senders as u64;
    let sources = (0..n_senders).map(|idx| {
        let source = DatagramSource::new(workload, idx, n_senders, cfg.n_lines);
        let share = cfg.rate_per_s.map(|rate| match (lines_of_sender(idx, n_senders, cfg.n_lines), cfg.n_lines) {
            (Some(mine), Some(all)) if all > 0 => rate * mine as f64 / all as f64,
            _ => rate / n_senders as f64,
        });
        (source, share)
    });
    let (senders, cycle_lines) = if cfg.pregenerate {
        let budget = PREGENERATED_BYTES_MAX / cfg.n_senders;
        let sources: Vec<_> = sources.map(|(source, share)| (Pregenerated::new(source, budget), share)).collect();
        let cycle_lines = sources.iter().map(|(p, _)| p.cycle_lines()).sum();
        let senders = run_datagrams(sockets, sources, cfg.deadline, cfg.quiet, cfg.progress_unit);
        (senders.into_iter().map(|(report, _)| report).collect(), Some(cycle_lines))
    } else {
        let senders = run_datagrams(sockets, sources.collect(), cfg.deadline, cfg.quiet, cfg.progress_unit);
        (senders.into_iter().map(|(report, _)| report).collect(), None)
    };
    Ok(StatsdReport::new(StatsdInfo::new(target, workload, cfg, cycle_lines), senders))
}

/// Most bytes of datagrams all senders of a `pregenerate` run format ahead together.
pub const PREGENERATED_BYTES_MAX: usize = 128 << 20;

/// One sender's datagrams, formatted before the clock starts and then sent over and over, so that
/// a flat-out sender spends its time in `send` and not in formatting numbers on the CPUs it
/// shares with the server (at 20 lines per datagram, formatting was a quarter of a flat-out
/// sender's time). The first lap sends the same datagrams the source would; later laps repeat
/// them, so the lines are the source's first `cycle_lines` over and over.
#[derive(Debug)]
pub struct Pregenerated {
    bytes: Vec<u8>,
    /// Per datagram: where it ends in `bytes`, its line count and its lines by kind.
    datagrams: Vec<(usize, usize, KindCounts)>,
    next: usize,
}

impl Pregenerated {
    /// The datagrams of `source` that fit in `max_bytes` (at least one).
    pub fn new(mut source: DatagramSource<'_>, max_bytes: usize) -> Pregenerated {
        let (mut bytes, mut datagrams, mut buf) = (Vec::new(), Vec::new(), Vec::with_capacity(DATAGRAM_BYTES_MAX));
        loop {
            let mut kinds = KindCounts::default();
            let n_lines = source.fill(&mut buf, &mut kinds);
            if n_lines == 0 || (!datagrams.is_empty() && bytes.len() + buf.len() > max_bytes) {
                break;
            }
            bytes.extend_from_slice(&buf);
            datagrams.push((bytes.len(), n_lines, kinds));
        }
        Pregenerated { bytes, datagrams, next: 0 }
    }

    /// Lines in one lap of the datagrams.
    pub fn cycle_lines(&self) -> u64 {
        self.datagrams.iter().map(|(_, n, _)| *n as u64).sum()
    }
}

impl Datagrams for Pregenerated {
    fn fill(&mut self, buf: &mut Vec<u8>, kinds: &mut KindCounts) -> usize {
        let Some(&(end, n_lines, counts)) = self.datagrams.get(self.next) else { return 0 };
        let start = if self.next == 0 { 0 } else { self.datagrams[self.next - 1].0 };
        buf.clear();
        buf.extend_from_slice(&self.bytes[start..end]);
        for (total, n) in kinds.iter_mut().zip(counts) {
            *total += n;
        }
        self.next = (self.next + 1) % self.datagrams.len();
        n_lines
    }
}

/// Sends each source's datagrams on its socket (`sockets[i]` carries `sources[i]`, paced at its
/// rate share, `None` flat out), each on its own thread, until every source is exhausted or the
/// deadline passes; prints progress in `unit`s unless `quiet`. Returns each sender's report and
/// its source, in order.
pub fn run_datagrams<S: Datagrams + Send>(
    sockets: Vec<UdpSocket>,
    sources: Vec<(S, Option<f64>)>,
    deadline: Option<Duration>,
    quiet: bool,
    unit: &'static str,
) -> Vec<(SenderReport, S)> {
    assert_eq!(sockets.len(), sources.len(), "one source per socket");
    let n_senders = sockets.len();
    let progress = Progress::default();
    let clock = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for (sender_idx, (socket, (source, share))) in sockets.into_iter().zip(sources).enumerate() {
            let (tx, progress) = (tx.clone(), &progress);
            let sending = Sending { socket, pacer: Pacer::new(share), deadline, clock, progress };
            scope.spawn(move || {
                let done = sending.run(source);
                // The receiver outlives every sender inside this scope.
                let _ = tx.send((sender_idx, done));
            });
        }
        drop(tx);
        collect(&rx, n_senders, &progress, clock, quiet, Ticker::new(unit))
    })
}

/// One sender's socket and schedule.
struct Sending<'a> {
    socket: UdpSocket,
    pacer: Pacer,
    deadline: Option<Duration>,
    /// The common start of all senders.
    clock: Instant,
    progress: &'a Progress,
}

impl Sending<'_> {
    /// Sends every datagram of `source`, or until the deadline; gives the source back.
    fn run<S: Datagrams>(self, mut source: S) -> (SenderReport, S) {
        let mut report = SenderReport::default();
        let mut buf = Vec::with_capacity(DATAGRAM_BYTES_MAX);
        // Lines sent or lost to errors: the schedule counts both.
        let mut n_attempted = 0u64;
        let (mut unpublished_lines, mut unpublished_bytes) = (0u64, 0u64);
        let stop = loop {
            let mut kinds = KindCounts::default();
            let n_lines = source.fill(&mut buf, &mut kinds) as u64;
            if n_lines == 0 {
                break UdpStop::AllSent;
            }
            if !self.wait_until_due(n_attempted + n_lines) {
                break UdpStop::Deadline;
            }
            n_attempted += n_lines;
            let started = Instant::now();
            let result = send(&self.socket, &buf);
            let send_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            source.sent(result.is_ok());
            match result {
                Ok(()) => {
                    report.latency_ns.saturating_record(send_ns);
                    report.lines_sent += n_lines;
                    report.datagrams_sent += 1;
                    report.bytes_sent += buf.len() as u64;
                    for (total, n) in report.lines_by_kind.iter_mut().zip(kinds) {
                        *total += n;
                    }
                    unpublished_lines += n_lines;
                    unpublished_bytes += buf.len() as u64;
                }
                Err(err) => {
                    report.send_errors += 1;
                    report.lines_not_sent += n_lines;
                    report.first_error.get_or_insert(err);
                }
            }
            if (report.datagrams_sent + report.send_errors) % PROGRESS_EVERY == 0 {
                self.progress.add(std::mem::take(&mut unpublished_lines), std::mem::take(&mut unpublished_bytes));
            }
        };
        self.progress.add(unpublished_lines, unpublished_bytes);
        report.stop = Some(stop);
        report.send_elapsed = self.clock.elapsed();
        (report, source)
    }

    /// Waits until the first `n_due` lines are due; false if the deadline comes first.
    fn wait_until_due(&self, n_due: u64) -> bool {
        loop {
            let elapsed = self.clock.elapsed();
            if self.deadline.is_some_and(|deadline| elapsed >= deadline) {
                return false;
            }
            let n_before = n_due.saturating_sub(1);
            if self.pacer.allowance(elapsed, n_before) > 0 {
                return true;
            }
            pace_sleep(self.pacer, n_before, elapsed, self.deadline);
        }
    }
}

/// Sends one datagram, retrying only on `EINTR`. A datagram goes whole or not at all; a short
/// count would be a kernel bug, reported as an error all the same.
fn send(socket: &UdpSocket, datagram: &[u8]) -> io::Result<()> {
    loop {
        match socket.send(datagram) {
            Ok(n) if n == datagram.len() => return Ok(()),
            Ok(n) => return Err(io::Error::other(format!("short UDP send: {n} of {} bytes", datagram.len()))),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `left` more datagrams of one line each.
    struct Fixed {
        left: usize,
    }

    impl Datagrams for Fixed {
        fn fill(&mut self, buf: &mut Vec<u8>, _kinds: &mut KindCounts) -> usize {
            if self.left == 0 {
                return 0;
            }
            self.left -= 1;
            buf.clear();
            buf.extend_from_slice(b"lg.a 1 1700000000\n");
            1
        }
    }

    #[test]
    fn every_datagram_sent_is_timed_once() {
        // Nobody reads the sink: datagrams its buffer cannot hold are dropped by the kernel, but
        // every send still succeeds.
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sockets = bind_all(sink.local_addr().unwrap(), 2).unwrap();
        let sources = vec![(Fixed { left: 300 }, None), (Fixed { left: 200 }, Some(1e6))];
        let senders = run_datagrams(sockets, sources, None, true, "lines");
        for ((report, source), want) in senders.iter().zip([300u64, 200]) {
            assert_eq!((report.datagrams_sent, report.send_errors, source.left), (want, 0, 0));
            assert_eq!(report.latency_ns.len(), want, "one sample per datagram sent");
            assert!(report.latency_ns.max() > 0, "a send takes some time");
        }
    }

    #[test]
    fn pregenerated_datagrams_are_the_sources_first_ones_over_and_over() {
        use crate::name::NamePattern;
        use crate::statsd::{Mix, StatsdSpec, DATAGRAM_BYTES_DEFAULT, DEFAULT_PATTERN};
        let spec = StatsdSpec {
            n_keys: 50,
            mix: Mix::default(),
            sampled_fraction: 0.1,
            sample_rate: 0.5,
            gauge_delta_fraction: 0.25,
            n_set_members: 10,
            seed: 9,
            lines_per_datagram: 20,
            datagram_bytes_max: DATAGRAM_BYTES_DEFAULT,
        };
        let w = StatsdWorkload::new(NamePattern::parse(DEFAULT_PATTERN, "lg").unwrap(), spec).unwrap();
        let next = |source: &mut dyn Datagrams| {
            let (mut buf, mut kinds) = (Vec::new(), KindCounts::default());
            let n = source.fill(&mut buf, &mut kinds);
            (buf, n, kinds)
        };
        let mut plain = DatagramSource::new(&w, 0, 1, None);
        let first: Vec<_> = (0..10).map(|_| next(&mut plain)).collect();
        // Room for 10 datagrams: the pregenerated source holds exactly the source's first 10.
        let room: usize = first.iter().map(|(b, _, _)| b.len()).sum();
        let mut pre = Pregenerated::new(DatagramSource::new(&w, 0, 1, None), room);
        assert_eq!(pre.cycle_lines(), first.iter().map(|(_, n, _)| *n as u64).sum::<u64>());
        for lap in 0..3 {
            for (i, want) in first.iter().enumerate() {
                assert_eq!(&next(&mut pre), want, "lap {lap} datagram {i}");
            }
        }
        // Even a budget below one datagram holds one.
        assert_eq!(Pregenerated::new(DatagramSource::new(&w, 0, 1, None), 1).cycle_lines(), first[0].1 as u64);
    }

    #[test]
    fn failed_sends_are_counted_not_timed() {
        // A closed port: the kernel answers the first datagram with a port unreachable, which a
        // later send on the connected socket reports as ECONNREFUSED.
        let target = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let sockets = bind_all(target, 1).unwrap();
        let senders = run_datagrams(sockets, vec![(Fixed { left: 200 }, None)], None, true, "lines");
        let (report, _) = &senders[0];
        assert_eq!(report.datagrams_sent + report.send_errors, 200);
        assert!(report.send_errors > 0, "{report:?}");
        assert_eq!(report.latency_ns.len(), report.datagrams_sent);
    }

    #[test]
    fn a_default_report_has_an_empty_histogram_of_the_common_bounds() {
        let mut report = SenderReport::default();
        assert!(report.latency_ns.is_empty());
        // The bounds are new_latency_histogram's: an hour in nanoseconds is still told apart.
        report.latency_ns.saturating_record(3_600 * 1_000_000_000);
        let mut merged = new_latency_histogram();
        merged.add(&report.latency_ns).unwrap();
        assert_eq!(merged.len(), 1);
    }
}
