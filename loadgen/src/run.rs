//! Running a workload over TCP: open the connections, one thread per connection, a progress line
//! each second on the calling thread, and every connection's report at the end.
//!
//! Threads: the caller's thread connects, starts the clock, spawns `n_connections` scoped threads
//! (each owns one socket and one [`BatchSource`], and shares only the [`Progress`] counters), then
//! waits on a channel for their reports, printing progress while it waits. Nothing else is
//! shared, so each metric's points leave in order on exactly one socket.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Instant;

use crate::pacer::Pacer;
use crate::progress::{Progress, Ticker};
use crate::sender::{run_connection, BatchSource, ConnReport, SendConfig};

/// Most connections one run may open (one thread each).
pub const CONNECTIONS_MAX: usize = 4096;

/// How to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Connections (and sending threads); 1 ..= `CONNECTIONS_MAX`.
    pub n_connections: usize,
    /// How each connection sends.
    pub send: SendConfig,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// What the progress lines count: `points`, or `pickle points` when several runs share
    /// stderr (a mixed run).
    pub progress_unit: &'static str,
}

/// Opens `n` connections to `target`, with Nagle's algorithm off so that small paced batches
/// leave at once.
pub fn connect_all(target: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    (0..n)
        .map(|_| {
            let stream = TcpStream::connect(target)?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
        .collect()
}

/// Sends `sources[i]` on `streams[i]`, each on its own thread, and returns the reports in the
/// same order. The rate in `cfg` is shared out in proportion to each source's points.
pub fn run_tcp<S: BatchSource + Send>(streams: Vec<TcpStream>, sources: Vec<S>, cfg: &RunConfig) -> Vec<ConnReport> {
    assert_eq!(streams.len(), sources.len(), "one source per connection");
    let n_conns = streams.len();
    let n_total: u64 = sources.iter().map(BatchSource::n_points).sum();
    let progress = Progress::default();
    let clock = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for (conn_idx, (stream, source)) in streams.into_iter().zip(sources).enumerate() {
            let pacer = Pacer::new(rate_share(cfg.send.rate_per_s, source.n_points(), n_total));
            let (tx, send, progress) = (tx.clone(), &cfg.send, &progress);
            scope.spawn(move || {
                let report = run_connection(stream, source, send, pacer, clock, progress);
                // The receiver outlives every sender inside this scope.
                let _ = tx.send((conn_idx, report));
            });
        }
        drop(tx);
        collect(&rx, n_conns, &progress, clock, cfg.quiet, Ticker::new(cfg.progress_unit))
    })
}

/// This source's part of the total rate.
fn rate_share(rate_per_s: Option<f64>, n_points: u64, n_total: u64) -> Option<f64> {
    rate_per_s.map(|rate| if n_total == 0 { rate } else { rate * n_points as f64 / n_total as f64 })
}

/// Receives every thread's report (`(thread index, report)`), printing progress with `ticker`
/// while waiting, and returns them in thread order. If a thread panicked its report is missing; the
/// scope re-raises the panic when it ends.
pub(crate) fn collect<R>(
    rx: &mpsc::Receiver<(usize, R)>,
    n_conns: usize,
    progress: &Progress,
    clock: Instant,
    quiet: bool,
    mut ticker: Ticker,
) -> Vec<R> {
    let mut slots: Vec<Option<R>> = (0..n_conns).map(|_| None).collect();
    let mut n_received = 0;
    while n_received < n_conns {
        let next =
            if quiet { rx.recv().map_err(RecvTimeoutError::from) } else { rx.recv_timeout(ticker.until_next(clock)) };
        match next {
            Ok((conn_idx, report)) => {
                slots[conn_idx] = Some(report);
                n_received += 1;
            }
            Err(RecvTimeoutError::Timeout) => ticker.tick(progress, clock, &mut io::stderr()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    slots.into_iter().flatten().collect()
}
