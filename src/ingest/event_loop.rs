//! One ingest thread on the readiness (epoll, through mio) backend: its own SO_REUSEPORT
//! listeners for plaintext TCP, pickle TCP, plaintext UDP, statsd UDP and statsd TCP, its
//! connections, and a loop that reads, decodes and hands points to the cache (statsd lines to
//! the thread's statsd partial).
//!
//! Flow control: while the sink is paused, TCP connections are not read; mio reports readiness
//! once per edge, so connections with data left unread stay in `ready` and are served when the
//! pause ends. Each connection is read for at most `READ_BUDGET` bytes per turn so that one fast
//! sender cannot starve the others.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener as MioListener, TcpStream, UdpSocket as MioUdp};
use mio::{Events, Interest, Poll, Token};

use super::batching::TurnSize;
use super::decode::{Decoder, DecoderKind, Limits, Output};
use super::points::{OnRefused, PointCounters};
use super::sink::PointSink;
use super::spread::Handed;
use crate::statsd::CoreStatsd;

/// Bytes read from one connection per loop turn before the others get theirs.
const READ_BUDGET: usize = 256 * 1024;
/// Size of the thread's read buffer (one read call).
const READ_CHUNK: usize = 64 * 1024;
const LINE_LISTENER: Token = Token(0);
const PICKLE_LISTENER: Token = Token(1);
const UDP_SOCKET: Token = Token(2);
const STATSD_UDP: Token = Token(3);
const STATSD_LISTENER: Token = Token(4);
const FIRST_CONN: usize = 5;

/// What one ingest thread serves.
#[derive(Debug)]
pub struct Listeners {
    /// Plaintext TCP (LINE_RECEIVER_PORT).
    pub line: Option<TcpListener>,
    /// Pickle TCP (PICKLE_RECEIVER_PORT).
    pub pickle: Option<TcpListener>,
    /// Plaintext UDP (UDP_RECEIVER_PORT, when ENABLE_UDP_LISTENER).
    pub udp: Option<UdpSocket>,
    /// Statsd UDP (STATSD_PORT, when ENABLE_STATSD).
    pub statsd_udp: Option<UdpSocket>,
    /// Statsd TCP (STATSD_PORT, when ENABLE_STATSD_TCP).
    pub statsd_tcp: Option<TcpListener>,
}

/// State shared by all ingest threads.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Set to stop: stop accepting, read what the kernel holds, hand everything off, return.
    pub stop: Arc<AtomicBool>,
    /// Set to give up waiting on a full cache (after the drain deadline).
    pub hard_stop: Arc<AtomicBool>,
    /// Open connections across threads (activeConnections).
    pub active_connections: Arc<AtomicUsize>,
    /// MAX_RECEIVER_CONNECTIONS; None is unlimited.
    pub max_connections: Option<usize>,
    /// USE_WHITELIST's lists; None when off.
    pub filter: Option<Arc<super::filter::SharedFilter>>,
    /// This thread's part in spreading TCP connections over the ingest threads; None with one
    /// thread (each thread's clone of `Shared` carries its own handle).
    pub spread: Option<super::spread::SpreadHandle>,
}

struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    /// In `ready`: may have unread data.
    queued: bool,
}

/// One ingest thread: runs until `shared.stop`, then drains and returns.
pub fn run(
    listeners: Listeners,
    limits: Limits,
    shared: Shared,
    sink: &mut dyn PointSink,
    counters: PointCounters,
    statsd: Option<CoreStatsd>,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut line = listeners.line.map(MioListener::from_std);
    let mut pickle = listeners.pickle.map(MioListener::from_std);
    let mut udp = listeners.udp.map(MioUdp::from_std);
    if let Some(l) = line.as_mut() {
        poll.registry().register(l, LINE_LISTENER, Interest::READABLE)?;
    }
    if let Some(l) = pickle.as_mut() {
        poll.registry().register(l, PICKLE_LISTENER, Interest::READABLE)?;
    }
    if let Some(u) = udp.as_mut() {
        poll.registry().register(u, UDP_SOCKET, Interest::READABLE)?;
    }
    // Without a statsd partial there is nowhere to put statsd lines: the sockets are not served.
    let (mut statsd_udp, mut statsd_tcp) = match statsd {
        Some(_) => (listeners.statsd_udp.map(MioUdp::from_std), listeners.statsd_tcp.map(MioListener::from_std)),
        None => (None, None),
    };
    if let Some(u) = statsd_udp.as_mut() {
        poll.registry().register(u, STATSD_UDP, Interest::READABLE)?;
    }
    if let Some(l) = statsd_tcp.as_mut() {
        poll.registry().register(l, STATSD_LISTENER, Interest::READABLE)?;
    }
    let mut state = State {
        conns: slab_new(),
        ready: VecDeque::new(),
        buf: vec![0; READ_CHUNK],
        limits,
        counters,
        flow: FlowControl::default(),
        filter: shared.filter.as_ref().map(super::filter::SharedFilter::handle),
        udp_decoder: Decoder::new(DecoderKind::Datagram, &limits),
        statsd,
        turn: TurnSize::default(),
    };
    let mut events = Events::with_capacity(1024);
    while !shared.stop.load(Ordering::Relaxed) {
        std::mem::take(&mut state.turn).pause_if_small();
        let timeout = if state.ready.is_empty() || sink.paused() { Duration::from_millis(20) } else { Duration::ZERO };
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            match ev.token() {
                LINE_LISTENER => state.accept(&poll, line.as_ref(), DecoderKind::Lines, &shared)?,
                PICKLE_LISTENER => state.accept(&poll, pickle.as_ref(), DecoderKind::Pickle, &shared)?,
                UDP_SOCKET => state.read_udp(udp.as_ref(), sink, &shared),
                STATSD_UDP => state.read_statsd_udp(statsd_udp.as_ref()),
                STATSD_LISTENER => state.accept(&poll, statsd_tcp.as_ref(), DecoderKind::StatsdLines, &shared)?,
                Token(t) => state.mark_ready(t),
            }
        }
        if let Some(spread) = &shared.spread {
            for handed in spread.take_mail() {
                state.adopt(&poll, handed)?;
            }
        }
        if let Some(statsd) = state.statsd.as_mut() {
            statsd.poll();
        }
        if let Some(f) = state.filter.as_mut() {
            f.refresh();
        }
        state.serve_ready(&poll, sink, &shared, READ_BUDGET);
        sink.flush();
    }
    drain(&mut state, &poll, udp.as_ref(), sink, &shared);
    state.read_statsd_udp(statsd_udp.as_ref());
    if let Some(statsd) = state.statsd.take() {
        statsd.finish();
    }
    Ok(())
}

/// At stop: no more accepts (the listeners are dropped with the thread), read everything the
/// kernel already holds on every connection and the UDP socket, hand it all off.
fn drain(state: &mut State, poll: &Poll, udp: Option<&MioUdp>, sink: &mut dyn PointSink, shared: &Shared) {
    if let Some(spread) = &shared.spread {
        for handed in spread.close_inbox() {
            if let Err(e) = state.adopt(poll, handed) {
                // As an accept that cannot be registered in the loop, which ends the thread.
                eprintln!("carbyne: a connection handed over at stop could not be served: {e}");
            }
        }
    }
    let tokens: Vec<usize> = state.conns.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(t, _)| t).collect();
    for t in tokens {
        state.mark_ready(t + FIRST_CONN);
    }
    state.serve_ready(poll, sink, shared, usize::MAX);
    state.read_udp(udp, sink, shared);
    let tokens: Vec<usize> = state.conns.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(t, _)| t).collect();
    for t in tokens {
        state.close(poll, t, sink, shared);
    }
    sink.flush();
}

fn slab_new() -> Vec<Option<Conn>> {
    Vec::new()
}

struct State {
    /// Connections by token - FIRST_CONN; None for free slots.
    conns: Vec<Option<Conn>>,
    /// Connections that may have unread data, in arrival order.
    ready: VecDeque<usize>,
    buf: Vec<u8>,
    limits: Limits,
    counters: PointCounters,
    flow: FlowControl,
    filter: Option<super::filter::FilterHandle>,
    /// Decodes datagrams one at a time; nothing carries over between them (see `read_udp`).
    udp_decoder: Decoder,
    /// This thread's statsd partial; None when statsd is off.
    statsd: Option<CoreStatsd>,
    /// What this loop turn read: after a small turn the next one pauses (see `batching`).
    turn: TurnSize,
}

impl State {
    fn accept(
        &mut self,
        poll: &Poll,
        listener: Option<&MioListener>,
        kind: DecoderKind,
        shared: &Shared,
    ) -> io::Result<()> {
        let Some(listener) = listener else { return Ok(()) };
        loop {
            let (stream, _) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors or a connection reset before accept: this connection only.
                Err(_) => return Ok(()),
            };
            if !admit(shared, &self.counters) {
                drop(stream);
                continue;
            }
            match &shared.spread {
                Some(spread) => {
                    let handed = Handed { stream: std::net::TcpStream::from(OwnedFd::from(stream)), kind };
                    if let Some(kept) = spread.place(handed) {
                        self.adopt(poll, kept)?;
                    }
                }
                None => self.serve(poll, stream, kind)?,
            }
        }
    }

    /// Serves a connection this thread accepted and kept, or that another thread handed to it.
    fn adopt(&mut self, poll: &Poll, handed: Handed) -> io::Result<()> {
        handed.stream.set_nonblocking(true)?;
        self.serve(poll, TcpStream::from_std(handed.stream), handed.kind)
    }

    fn serve(&mut self, poll: &Poll, mut stream: TcpStream, kind: DecoderKind) -> io::Result<()> {
        let slot = self.conns.iter().position(Option::is_none).unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        poll.registry().register(&mut stream, Token(slot + FIRST_CONN), Interest::READABLE)?;
        self.conns[slot] = Some(Conn { stream, decoder: Decoder::new(kind, &self.limits), queued: false });
        // Data may already be waiting (sent with the handshake).
        self.mark_ready(slot + FIRST_CONN);
        Ok(())
    }

    fn mark_ready(&mut self, token: usize) {
        let Some(Some(conn)) = self.conns.get_mut(token.wrapping_sub(FIRST_CONN)) else { return };
        if !conn.queued {
            conn.queued = true;
            self.ready.push_back(token - FIRST_CONN);
        }
    }

    fn serve_ready(&mut self, poll: &Poll, sink: &mut dyn PointSink, shared: &Shared, budget: usize) {
        if self.flow.observe(&*sink, shared, &self.counters) {
            return;
        }
        for _ in 0..self.ready.len() {
            let Some(slot) = self.ready.pop_front() else { break };
            match self.read_conn(slot, sink, shared, budget) {
                ReadOutcome::Drained => {
                    if let Some(Some(c)) = self.conns.get_mut(slot) {
                        c.queued = false;
                    }
                }
                ReadOutcome::More => self.ready.push_back(slot),
                ReadOutcome::Closed => self.close(poll, slot, sink, shared),
            }
        }
    }

    fn read_conn(&mut self, slot: usize, sink: &mut dyn PointSink, shared: &Shared, budget: usize) -> ReadOutcome {
        let Some(Some(conn)) = self.conns.get_mut(slot) else { return ReadOutcome::Drained };
        let mut read = 0;
        let now = now_s();
        while read < budget {
            match conn.stream.read(&mut self.buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    read += n;
                    self.turn.add(n);
                    let mut out = Output {
                        sink: &mut *sink,
                        counters: &self.counters,
                        on_refused: OnRefused::Wait,
                        hard_stop: &shared.hard_stop,
                        now,
                        filter: self.filter.as_ref().map(super::filter::FilterHandle::filter),
                        statsd: self.statsd.as_mut().map(CoreStatsd::partial),
                    };
                    conn.decoder.feed(&self.buf[..n], &mut out);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
        ReadOutcome::More
    }

    /// Closes a connection once everything it sent was read: a sender that half-closed sees our
    /// close as "all accepted".
    fn close(&mut self, poll: &Poll, slot: usize, sink: &mut dyn PointSink, shared: &Shared) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else { return };
        conn.decoder.finish(&self.counters);
        sink.flush();
        let _ = poll.registry().deregister(&mut conn.stream);
        release(shared);
        if let Some(spread) = &shared.spread {
            spread.ended();
        }
        self.ready.retain(|s| *s != slot);
    }

    fn read_udp(&mut self, udp: Option<&MioUdp>, sink: &mut dyn PointSink, shared: &Shared) {
        let Some(udp) = udp else { return };
        let now = now_s();
        loop {
            match udp.recv_from(&mut self.buf) {
                Ok((n, _)) => {
                    self.turn.add(n);
                    // Each datagram stands alone: lines never carry over between datagrams.
                    let mut out = Output {
                        sink: &mut *sink,
                        counters: &self.counters,
                        on_refused: OnRefused::Drop,
                        hard_stop: &shared.hard_stop,
                        now,
                        filter: self.filter.as_ref().map(super::filter::FilterHandle::filter),
                        statsd: None,
                    };
                    self.udp_decoder.feed(&self.buf[..n], &mut out);
                    self.udp_decoder.finish_datagram(&mut out);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

impl State {
    /// Every datagram waiting on the statsd socket, each into the partial.
    fn read_statsd_udp(&mut self, udp: Option<&MioUdp>) {
        let (Some(udp), Some(statsd)) = (udp, self.statsd.as_mut()) else { return };
        let now = now_s();
        loop {
            match udp.recv_from(&mut self.buf) {
                Ok((n, _)) => {
                    self.turn.add(n);
                    statsd.partial().datagram(&self.buf[..n], now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

enum ReadOutcome {
    /// Read until the kernel had nothing more.
    Drained,
    /// The budget ran out first.
    More,
    /// End of stream or error: close.
    Closed,
}

/// Counts a new connection in `shared.active_connections`, or refuses it when
/// MAX_RECEIVER_CONNECTIONS are already open (counted as `connectionsRefused`; the caller closes
/// it). Every admitted connection is [`release`]d when it closes. Shared by both backends.
pub(super) fn admit(shared: &Shared, counters: &PointCounters) -> bool {
    let active = shared.active_connections.fetch_add(1, Ordering::Relaxed) + 1;
    if shared.max_connections.is_some_and(|max| active > max) {
        shared.active_connections.fetch_sub(1, Ordering::Relaxed);
        counters.count("connectionsRefused");
        return false;
    }
    true
}

/// The end of a connection [`admit`] let in.
pub(super) fn release(shared: &Shared) {
    shared.active_connections.fetch_sub(1, Ordering::Relaxed);
}

/// The flow-control state of one ingest thread, shared by both backends: whether TCP is read
/// this turn, with each pause that begins counted as `flowControlPauses`.
#[derive(Debug, Default)]
pub(super) struct FlowControl {
    /// The answer of the previous turn (to count edges, not turns).
    was_paused: bool,
}

impl FlowControl {
    /// Whether TCP connections must not be read this turn: the sink asks for a pause and we are
    /// not stopping (at stop, everything the kernel holds is read regardless).
    pub(super) fn observe(&mut self, sink: &dyn PointSink, shared: &Shared, counters: &PointCounters) -> bool {
        let paused = sink.paused() && !shared.stop.load(Ordering::Relaxed);
        if paused && !self.was_paused {
            counters.count(crate::telemetry::names::FLOW_CONTROL_PAUSES);
        }
        self.was_paused = paused;
        paused
    }
}

/// The time `-1` timestamps stand for, in seconds since the epoch.
pub(super) fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
