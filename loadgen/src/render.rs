//! Running render requests: closed loop over keep-alive HTTP/1.1 connections, one thread and one
//! connection at a time per client, a progress line each second on the calling thread, and every
//! client's counts and latencies at the end.
//!
//! **Closed loop.** Each client sends the next request as soon as the previous response is
//! complete, so `n_connections` requests are in flight at any time, and the request rate is
//! whatever the server sustains at that concurrency. The run ends when the request budget is
//! spent (a shared ticket counter: every attempt, failed or not, takes one) or when the duration
//! has passed: no request starts after it, and those in flight complete.
//!
//! **Latency** is from the first byte of a request written (or, when the client had no open
//! connection, from the start of its `connect`) to the last byte of the response parsed: what a
//! client waiting on the answer sees. Servers that close the connection after every response
//! (gunicorn's sync workers do) therefore pay a TCP connect per request, as their clients do.
//!
//! **Failures.** A request fails when it cannot connect or write, when reading fails, when the
//! response is malformed, or when it takes longer than `timeout`; the connection is then dropped
//! and the next request opens a new one. A keep-alive connection the server had closed while
//! idle (the write fails, or the read sees the close before any response byte) is reopened and
//! the request sent again once, as HTTP clients do, without counting a failure. After
//! `CONSECUTIVE_FAILURES_MAX` failures in a row a client gives up.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::http::{Response, ResponseParser, HEAD_BYTES_MAX};
use crate::http_client::FetchError;
use crate::progress::{Progress, Ticker};
use crate::run::collect;
use crate::sender::new_latency_histogram;

/// Most clients (threads, connections) one run may have.
pub const CLIENTS_MAX: usize = 1024;

/// Failures in a row after which a client stops.
pub const CONSECUTIVE_FAILURES_MAX: u32 = 10;

/// A client's read buffer: twice the longest head, so that after moving unparsed bytes to the
/// front there is always room to read, and the parser always makes progress or fails.
pub(crate) const READ_BUF_BYTES: usize = 2 * HEAD_BYTES_MAX;

/// How to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderConfig {
    /// Clients, each with its own thread and connection; 1 ..= `CLIENTS_MAX`.
    pub n_connections: usize,
    /// Requests in all; `None`: until the deadline (which must then be set).
    pub n_requests: Option<u64>,
    /// No request starts this long after the start.
    pub deadline: Option<Duration>,
    /// Longest one request may take, connect included.
    pub timeout: Duration,
    /// No progress lines on stderr.
    pub quiet: bool,
}

/// Why a client stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStop {
    /// The request budget was spent.
    Budget,
    /// The duration passed.
    Deadline,
    /// `CONSECUTIVE_FAILURES_MAX` failures in a row.
    GaveUp,
}

/// One client's results.
#[derive(Debug)]
pub struct ClientReport {
    /// Complete responses, whatever their status.
    pub responses: u64,
    /// Complete responses by status code.
    pub status_counts: BTreeMap<u16, u64>,
    /// Requests that failed (no complete response).
    pub failures: u64,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    /// Body bytes of the complete responses (without chunked framing).
    pub body_bytes: u64,
    /// Bytes the complete responses took on the wire, heads included.
    pub wire_bytes: u64,
    /// TCP connections opened.
    pub connects: u64,
    /// Nanoseconds from request to complete response, for status 200 only.
    pub latency_ns: Histogram<u64>,
    pub stop: ClientStop,
    /// From the common start to the end of its last request.
    pub elapsed: Duration,
}

/// Sends `request` (the complete bytes of one HTTP request) to `addr` from `cfg.n_connections`
/// clients in a closed loop and returns their reports in client order.
pub fn run(addr: SocketAddr, request: &[u8], cfg: &RenderConfig) -> Vec<ClientReport> {
    assert!((1..=CLIENTS_MAX).contains(&cfg.n_connections), "{} clients", cfg.n_connections);
    assert!(cfg.n_requests.is_some() || cfg.deadline.is_some(), "a run needs a request count or a deadline");
    let budget = Budget { taken: AtomicU64::new(0), limit: cfg.n_requests };
    let progress = Progress::default();
    let clock = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for client_idx in 0..cfg.n_connections {
            let (tx, budget, progress) = (tx.clone(), &budget, &progress);
            scope.spawn(move || {
                let mut client = Client::new(addr, cfg.timeout);
                let report = client.run(request, cfg.deadline, budget, clock, progress);
                // The receiver outlives every client inside this scope.
                let _ = tx.send((client_idx, report));
            });
        }
        drop(tx);
        collect(&rx, cfg.n_connections, &progress, clock, cfg.quiet, Ticker::new("requests"))
    })
}

/// The shared request budget.
struct Budget {
    /// Tickets handed out; may pass `limit` by up to one per client (refused takes).
    taken: AtomicU64,
    limit: Option<u64>,
}

impl Budget {
    /// One more request may start.
    fn take(&self) -> bool {
        match self.limit {
            None => true,
            Some(limit) => self.taken.fetch_add(1, Ordering::Relaxed) < limit,
        }
    }
}

/// One client: its connection (when open), read buffer and parser.
struct Client {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`; `start <= end <= buf.len()`.
    start: usize,
    end: usize,
    parser: ResponseParser,
    /// Connections opened.
    connects: u64,
}

impl Client {
    fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            stream: None,
            buf: vec![0; READ_BUF_BYTES],
            start: 0,
            end: 0,
            parser: ResponseParser::default(),
            connects: 0,
        }
    }

    /// Sends `request` over and over until the budget or the deadline says stop.
    fn run(
        &mut self,
        request: &[u8],
        deadline: Option<Duration>,
        budget: &Budget,
        clock: Instant,
        progress: &Progress,
    ) -> ClientReport {
        let mut report = ClientReport {
            responses: 0,
            status_counts: BTreeMap::new(),
            failures: 0,
            first_failure: None,
            body_bytes: 0,
            wire_bytes: 0,
            connects: 0,
            latency_ns: new_latency_histogram(),
            stop: ClientStop::Budget,
            elapsed: Duration::ZERO,
        };
        let mut n_failed_in_a_row = 0;
        report.stop = loop {
            if deadline.is_some_and(|deadline| clock.elapsed() >= deadline) {
                break ClientStop::Deadline;
            }
            if !budget.take() {
                break ClientStop::Budget;
            }
            let started = Instant::now();
            match self.exchange(request) {
                Ok(response) => {
                    let took = started.elapsed();
                    n_failed_in_a_row = 0;
                    report.responses += 1;
                    *report.status_counts.entry(response.status).or_default() += 1;
                    report.body_bytes += response.body_bytes;
                    report.wire_bytes += response.wire_bytes;
                    if response.status == 200 {
                        report.latency_ns.saturating_record(took.as_nanos().try_into().unwrap_or(u64::MAX));
                    }
                    progress.add(1, response.body_bytes);
                }
                Err(failure) => {
                    n_failed_in_a_row += 1;
                    report.failures += 1;
                    report.first_failure.get_or_insert_with(|| failure.to_string());
                    if n_failed_in_a_row >= CONSECUTIVE_FAILURES_MAX {
                        break ClientStop::GaveUp;
                    }
                }
            }
        };
        report.connects = self.connects;
        report.elapsed = clock.elapsed();
        report
    }

    /// One request and its response, on the open connection or a new one; a stale keep-alive
    /// connection is replaced and the request sent once more.
    fn exchange(&mut self, request: &[u8]) -> Result<Response, FetchError> {
        let started = Instant::now();
        let reused = self.stream.is_some();
        match self.try_exchange(request, started) {
            Err((failure, got_bytes)) if reused && failure.is_stale_connection(got_bytes) => {
                self.close();
                self.try_exchange(request, started).map_err(|(failure, _)| failure)
            }
            result => result.map_err(|(failure, _)| failure),
        }
    }

    /// One attempt; on failure also says whether any response byte had arrived. The connection
    /// is closed after a failure and after a response that ends it.
    fn try_exchange(&mut self, request: &[u8], started: Instant) -> Result<Response, (FetchError, bool)> {
        let result = self.send_and_read(request, started);
        match &result {
            Ok(response) if !response.close && self.start == self.end => {}
            // A closing response, bytes after the response (we never pipeline), or a failure:
            // this connection carries nothing more.
            _ => self.close(),
        }
        result
    }

    fn send_and_read(&mut self, request: &[u8], started: Instant) -> Result<Response, (FetchError, bool)> {
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.connect().map_err(|err| (FetchError::Connect(err), false))?,
        };
        let stream = self.stream.insert(stream);
        stream.write_all(request).map_err(|err| (FetchError::Write(err), false))?;
        self.parser.reset();
        let mut got_bytes = false;
        loop {
            let used = self
                .parser
                .feed(&self.buf[self.start..self.end], |_| {})
                .map_err(|err| (FetchError::Protocol(err), true))?;
            self.start += used;
            if let Some(response) = self.parser.response() {
                return Ok(response);
            }
            if started.elapsed() >= self.timeout {
                return Err((FetchError::Timeout(self.timeout), got_bytes));
            }
            make_room(&mut self.buf, &mut self.start, &mut self.end);
            let n = match stream.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err((FetchError::Timeout(self.timeout), got_bytes));
                }
                Err(err) => return Err((FetchError::Read(err), got_bytes)),
            };
            if n == 0 {
                return self.parser.eof().map_err(|err| (FetchError::Protocol(err), got_bytes));
            }
            got_bytes = true;
            self.end += n;
        }
    }

    fn connect(&mut self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        self.connects += 1;
        stream.set_nodelay(true)?;
        // Each read and write is bounded by the timeout; the whole request is checked against it
        // after every read, so a request ends within about twice the timeout at worst.
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        (self.start, self.end) = (0, 0);
        Ok(stream)
    }

    fn close(&mut self) {
        self.stream = None;
        (self.start, self.end) = (0, 0);
    }
}

/// Moves the unparsed bytes `buf[start..end]` to the front of `buf` when the free space behind
/// them is smaller than a head, so that a read always has room.
pub(crate) fn make_room(buf: &mut [u8], start: &mut usize, end: &mut usize) {
    if *start == *end {
        (*start, *end) = (0, 0);
    } else if buf.len() - *end < HEAD_BYTES_MAX {
        buf.copy_within(*start..*end, 0);
        (*start, *end) = (0, *end - *start);
    }
    // The parser consumes or refuses any element of a head's length or more, so fewer than
    // HEAD_BYTES_MAX bytes stay unparsed and at least half the buffer is free.
    assert!(buf.len() - *end >= HEAD_BYTES_MAX, "unparsed bytes {start}..{end}");
}
