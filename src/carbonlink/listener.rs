//! The carbonlink listener: one `carbonlink` thread accepts (mio, woken for shutdown) and
//! starts a thread per connection, at most [`Settings::connections_max`] at once.
//!
//! Each connection thread runs in a slot `0..connections_max`; a slot has its own counters
//! (`carbonlink<slot>`), made the first time the slot is used, so that no two threads ever
//! count into the same slots (the telemetry invariant). A connection arriving with every slot
//! busy is accepted and closed at once, and counted (`carbonlink.connectionsRefused`).
//!
//! Shutdown: the stop flag is set and the acceptor woken; it stops accepting, shuts down every
//! open connection's socket (which ends a blocked read or write at once), and joins every
//! connection thread before its own thread ends.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::connection::{serve, Refusal};
use super::request::Handler;
use super::{rejected_counter, Settings};
use crate::protocol::unpickle::UnpickleLimits;
use crate::telemetry::{names, CounterId, Registry, ThreadCounters};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);
/// How often the acceptor looks for finished connection threads when nothing happens.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// Most objects one request may unpickle into: requests are a dict of a few strings (a bulk
/// query a list of names), far below this.
const REQUEST_OBJECTS_MAX: usize = 1 << 16;
/// Deepest nesting a request may have.
const REQUEST_DEPTH_MAX: usize = 32;
/// Refusals logged in full before logging only one in `LOG_ONE_IN`.
const LOG_FIRST: u64 = 100;
const LOG_ONE_IN: u64 = 1000;

/// Counter ids the connections use on every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    pub(crate) requests: CounterId,
    pub(crate) errors: CounterId,
    pub(crate) cache_timeouts: CounterId,
    pub(crate) cache_queries: CounterId,
    pub(crate) bulk_queries: CounterId,
    connections: CounterId,
    refused: CounterId,
}

/// What the acceptor and every connection of one listener share (read-only but for the
/// stop flag and the log count).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) handler: Handler,
    pub(crate) settings: Settings,
    pub(crate) unpickle: UnpickleLimits,
    pub(crate) ids: Ids,
    registry: Arc<Registry>,
    stop: AtomicBool,
    /// Refusals seen, for the bounded log.
    refusals: AtomicU64,
}

impl Shared {
    /// Counts and logs (at a bounded rate) a connection closed for `refusal`.
    pub(crate) fn refuse(&self, counters: &ThreadCounters, peer: SocketAddr, refusal: Refusal) {
        if self.stop.load(Ordering::Acquire) {
            // A frame cut short by our own shutdown is no fault of the peer's.
            return;
        }
        if let Some(name) = rejected_counter(refusal.reason()) {
            counters.incr(self.registry.id(name));
        }
        let n = self.refusals.fetch_add(1, Ordering::Relaxed);
        if n < LOG_FIRST || n % LOG_ONE_IN == 0 {
            let detail = match refusal {
                Refusal::Unpickle(e) => format!(": {e}"),
                _ => String::new(),
            };
            eprintln!("carbyne: carbonlink: closed the connection from {peer}: {}{detail}", refusal.reason());
        }
    }
}

/// A running carbonlink listener. Dropping it stops it (see the module documentation).
#[derive(Debug)]
pub struct Carbonlink {
    address: SocketAddr,
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    acceptor: Option<JoinHandle<()>>,
}

impl Carbonlink {
    /// Serves carbonlink on `listener` with `handler`, counting into `registry` (which must
    /// hold [`super::COUNTERS`] and carbon's `cache.queries`).
    pub fn start(
        listener: std::net::TcpListener,
        handler: Handler,
        registry: Arc<Registry>,
        settings: Settings,
    ) -> std::io::Result<Carbonlink> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let ids = Ids {
            requests: registry.id("carbonlink.requests"),
            errors: registry.id("carbonlink.errors"),
            cache_timeouts: registry.id("carbonlink.cacheTimeouts"),
            cache_queries: registry.id(names::CACHE_QUERIES),
            bulk_queries: registry.id("cache.bulk_queries"),
            connections: registry.id("carbonlink.connections"),
            refused: registry.id("carbonlink.connectionsRefused"),
        };
        let unpickle = UnpickleLimits {
            objects_max: REQUEST_OBJECTS_MAX,
            values_max: REQUEST_OBJECTS_MAX,
            depth_max: REQUEST_DEPTH_MAX,
            ..UnpickleLimits::new(settings.frame_bytes_max)
        };
        let counters = registry.thread("carbonlink");
        let shared = Arc::new(Shared {
            handler,
            settings,
            unpickle,
            ids,
            registry,
            stop: AtomicBool::new(false),
            refusals: AtomicU64::new(0),
        });
        let slots_max = settings.connections_max.max(1);
        let acceptor = Acceptor {
            listener,
            poll,
            shared: Arc::clone(&shared),
            counters,
            slot_counters: vec![None; slots_max],
            free: (0..slots_max).rev().collect(),
            running: Vec::new(),
        };
        let thread = std::thread::Builder::new().name("carbonlink".into()).spawn(move || acceptor.run())?;
        Ok(Carbonlink { address, shared, waker, acceptor: Some(thread) })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, closes every connection and joins every thread.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Carbonlink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.acceptor.take() {
            // A failed wake-up only delays the stop to the next reaping tick.
            let _ = self.waker.wake();
            let _ = thread.join();
        }
    }
}

/// A connection thread and what the acceptor needs to end it.
struct Running {
    slot: usize,
    /// A handle on the same socket, to shut it down at stop.
    stream: TcpStream,
    thread: JoinHandle<()>,
}

struct Acceptor {
    listener: TcpListener,
    poll: Poll,
    shared: Arc<Shared>,
    /// The acceptor's own counters.
    counters: Arc<ThreadCounters>,
    /// Each slot's counters, made on first use. Invariant: slot `i`'s are used by at most one
    /// connection thread at a time (`i` is in `free` or in exactly one `Running`).
    slot_counters: Vec<Option<Arc<ThreadCounters>>>,
    free: Vec<usize>,
    running: Vec<Running>,
}

impl Acceptor {
    fn run(mut self) {
        let mut events = Events::with_capacity(16);
        loop {
            self.reap();
            if self.shared.stop.load(Ordering::Acquire) {
                break;
            }
            self.accept_all();
            // Level of detail is not needed: every wake-up tries to accept until none is left.
            if let Err(e) = self.poll.poll(&mut events, Some(REAP_EVERY)) {
                if e.kind() != ErrorKind::Interrupted {
                    eprintln!("carbyne: carbonlink: poll failed: {e}");
                    std::thread::sleep(REAP_EVERY);
                }
            }
        }
        for r in &self.running {
            let _ = r.stream.shutdown(Shutdown::Both);
        }
        for r in self.running.drain(..) {
            let _ = r.thread.join();
        }
    }

    /// Joins finished connection threads and frees their slots.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].thread.is_finished() {
                let r = self.running.swap_remove(i);
                let _ = r.thread.join();
                self.free.push(r.slot);
            } else {
                i += 1;
            }
        }
    }

    /// Accepts until the kernel has no connection left for us (the poll is edge-triggered).
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.start(TcpStream::from(stream), peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: the
                    // next tick tries again.
                    eprintln!("carbyne: carbonlink: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn start(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.free.is_empty() {
            self.reap();
        }
        let Some(slot) = self.free.pop() else {
            self.counters.incr(self.shared.ids.refused);
            return;
        };
        let spawned = stream.set_nonblocking(false).and_then(|()| stream.try_clone()).and_then(|handle| {
            let counters = Arc::clone(
                self.slot_counters[slot]
                    .get_or_insert_with(|| self.shared.registry.thread(format!("carbonlink{slot}"))),
            );
            let shared = Arc::clone(&self.shared);
            let thread = std::thread::Builder::new()
                .name(format!("carbonlink{slot}"))
                .spawn(move || serve(stream, peer, &shared, &counters))?;
            Ok(Running { slot, stream: handle, thread })
        });
        match spawned {
            Ok(running) => {
                self.counters.incr(self.shared.ids.connections);
                self.running.push(running);
            }
            Err(e) => {
                self.free.push(slot);
                self.counters.incr(self.shared.ids.refused);
                eprintln!("carbyne: carbonlink: could not serve {peer}: {e}");
            }
        }
    }
}
