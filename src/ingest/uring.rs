//! One ingest thread on the io_uring backend: the same job as the epoll backend
//! ([`super::event_loop`]), with the same behaviour seen from outside, on a ring of its own.
//!
//! Thread per core: each thread has its ring, its buffers and its own SO_REUSEPORT sockets
//! (`Listeners`, bound by the caller). Nothing is shared between threads but `Shared`.
//!
//! **Ops.** A multishot accept per listener; per connection one multishot recv into the TCP
//! buffer group; a multishot recvmsg on the UDP socket into the UDP group, each datagram decoded
//! on its own. When the kernel ends a multishot op (a CQE without `IORING_CQE_F_MORE`: ENOBUFS
//! when its group ran dry, a full completion queue, an error) it is armed again at the end of
//! the turn; an accept or recvmsg that failed waits `RETRY_AFTER_ERROR` first so that a lasting
//! error (EMFILE) does not spin. Every op is in the op table ([`ops`]) from push to last CQE,
//! under a `user_data` of (kind, slot, generation).
//!
//! **Buffers.** Ring-mapped provided buffers ([`buf_ring`]): TCP `TCP_BUFS` × `TCP_BUF_BYTES`
//! (32 × 64 KiB), UDP `UDP_BUFS` × `UDP_BUF_BYTES` (32 × 64 KiB + 64, room for the largest
//! datagram behind the recvmsg header) per thread. A buffer is ours from the CQE that names it
//! until we give it back, right after its bytes are decoded: exactly once (asserted).
//!
//! **Flow control: how back-pressure reaches a sender.** While the sink is paused, TCP
//! completions are not decoded: their buffers are held, in arrival order per connection, and a
//! multishot recv that ends is not armed again. The kernel keeps filling buffers until the TCP
//! group is empty (at most 2 MiB per thread held), then each multishot recv ends with ENOBUFS
//! and nothing reads the sockets any more: their receive buffers fill, TCP's advertised window
//! closes, and the senders' writes block. When the pause ends, held buffers are decoded and given
//! back, and the receives armed again. UDP has its own group and is read regardless (points the
//! sink refuses are dropped and counted, as on the epoll backend).
//!
//! **Fairness.** A completion carries at most one 64 KiB buffer, and completions of all
//! connections arrive interleaved as the kernel produced them, so one fast sender cannot hold
//! the loop (the epoll backend's READ_BUDGET has no counterpart here).
//!
//! **Shutdown.** On `shared.stop`: cancel the accepts and every multishot receive, and reap
//! until none is in flight (decoding what they still deliver, held buffers included); then, per
//! connection and on the UDP socket, one-shot receives with MSG_DONTWAIT until end of stream or
//! EAGAIN, so what the kernel held at stop is read; then finish the decoders, close, flush.
//! Last, assert that the op table is empty and every buffer is back in its ring.

mod buf_ring;
mod conns;
mod driver;
mod ops;
mod probe;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::batching::TurnSize;
use conns::{Conn, Conns};
use driver::{
    is_udp_slot, Completion, Driver, Sizes, FIRST_CONN, SLOT_LINE, SLOT_PICKLE, SLOT_STATSD_TCP, SLOT_STATSD_UDP,
    SLOT_UDP,
};
use ops::{OpKind, UserData};

pub use probe::{probe, Unavailable};

use super::decode::{Decoder, DecoderKind, Limits, Output};
use super::event_loop::{admit, now_s, release, FlowControl, Listeners, Shared};
use super::filter::FilterHandle;
use super::points::{OnRefused, PointCounters};
use super::sink::PointSink;
use super::spread::Handed;
use crate::statsd::CoreStatsd;

/// TCP buffer group: the most one thread holds undecoded while paused is its whole size. 32
/// buffers: 64 did not read a closed-loop burst faster (5.0M points/s both, 3 runs each) and
/// cost 2 MiB more resident memory per thread once the kernel had cycled through them.
const TCP_BUFS: u16 = 32;
const TCP_BUF_BYTES: usize = 64 * 1024;
/// UDP buffer group: each buffer takes one datagram behind the 16-byte recvmsg header.
const UDP_BUFS: u16 = 32;
const UDP_BUF_BYTES: usize = 64 * 1024 + 64;
const _: () = assert!(TCP_BUFS.is_power_of_two() && UDP_BUFS.is_power_of_two());
// The largest UDP payload (65,535 bytes less the 8-byte UDP header) is never truncated.
const _: () = assert!(UDP_BUF_BYTES >= 16 + 65_527);

/// Submission entries of every thread's ring (`carbyne doctor` sizes RLIMIT_MEMLOCK from these).
pub const RING_SQ_ENTRIES: u32 = 1024;
/// Completion entries of every thread's ring.
pub const RING_CQ_ENTRIES: u32 = 8192;
/// Provided-buffer groups of every thread's ring (TCP, UDP).
pub const RING_BUF_GROUPS: u32 = 2;

/// The ring and buffers of every thread (and of the probe, which checks exactly these).
const SIZES: Sizes = Sizes {
    sq_entries: RING_SQ_ENTRIES,
    cq_entries: RING_CQ_ENTRIES,
    tcp_bufs: TCP_BUFS,
    tcp_buf_bytes: TCP_BUF_BYTES,
    udp_bufs: UDP_BUFS,
    udp_buf_bytes: UDP_BUF_BYTES,
};

/// Longest wait for a completion: how often `shared.stop` and the sink's pause are looked at
/// when nothing happens.
const TURN_WAIT: Duration = Duration::from_millis(20);
/// Pause before arming again an accept or recvmsg that the kernel ended with an error.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(20);

/// One ingest thread on io_uring: runs until `shared.stop`, then drains and returns. Same
/// contract as [`super::run`]; check [`probe()`] first, this returns an error where io_uring is
/// refused.
pub fn run_uring(
    listeners: Listeners,
    limits: Limits,
    shared: Shared,
    sink: &mut dyn PointSink,
    counters: PointCounters,
    statsd: Option<CoreStatsd>,
) -> io::Result<()> {
    let mut core = Core::new(listeners, limits, shared, counters, statsd)?;
    core.arm_sockets()?;
    while !core.shared.stop.load(Ordering::Relaxed) {
        core.turn(sink)?;
    }
    core.drain(sink)?;
    if let Some(statsd) = core.statsd.take() {
        statsd.finish();
    }
    Ok(())
}

/// The listening sockets' slots: TCP listeners and UDP sockets.
const LISTENER_SLOTS: [u32; 3] = [SLOT_LINE, SLOT_PICKLE, SLOT_STATSD_TCP];
const UDP_SLOTS: [u32; 2] = [SLOT_UDP, SLOT_STATSD_UDP];

/// Everything one io_uring ingest thread owns.
struct Core {
    driver: Driver,
    /// Indexed by slot (`SLOT_LINE`, `SLOT_PICKLE`, `SLOT_STATSD_TCP`; None elsewhere).
    listeners: [Option<TcpListener>; FIRST_CONN as usize],
    /// Indexed by slot (`SLOT_UDP`, `SLOT_STATSD_UDP`; None elsewhere).
    udps: [Option<UdpSocket>; FIRST_CONN as usize],
    /// This thread's statsd partial; None when statsd is off (its sockets are then not served).
    statsd: Option<CoreStatsd>,
    conns: Conns,
    limits: Limits,
    shared: Shared,
    counters: PointCounters,
    filter: Option<FilterHandle>,
    flow: FlowControl,
    /// Decodes one datagram at a time (nothing carries over between datagrams).
    udp_decoder: Decoder,
    /// Reused each turn (no allocation in steady state).
    completions: Vec<Completion>,
    /// Connections with held buffers, each once (only while paused).
    backlog: Vec<usize>,
    /// Connections whose multishot recv must be armed again (their `rearm` is set).
    rearm: Vec<usize>,
    /// When to arm again the accept or recvmsg of a slot the kernel ended; indexed by slot.
    retry_at: [Option<Instant>; FIRST_CONN as usize],
    /// This turn: TCP data is held, not decoded.
    paused: bool,
    /// The drain has begun: no more multishot ops.
    stopping: bool,
    /// This turn's `-1` timestamp.
    now: i64,
    /// What the last turn received: after a small one, the next pauses (see `batching`).
    last_turn: TurnSize,
}

impl Core {
    fn new(
        listeners: Listeners,
        limits: Limits,
        shared: Shared,
        counters: PointCounters,
        statsd: Option<CoreStatsd>,
    ) -> io::Result<Core> {
        let served = statsd.is_some();
        Ok(Core {
            driver: Driver::new(&SIZES)?,
            listeners: [listeners.line, listeners.pickle, None, None, listeners.statsd_tcp.filter(|_| served)],
            udps: [None, None, listeners.udp, listeners.statsd_udp.filter(|_| served), None],
            statsd,
            conns: Conns::default(),
            filter: shared.filter.as_ref().map(super::filter::SharedFilter::handle),
            udp_decoder: Decoder::new(DecoderKind::Datagram, &limits),
            limits,
            shared,
            counters,
            flow: FlowControl::default(),
            completions: Vec::with_capacity(SIZES.cq_entries as usize),
            backlog: Vec::new(),
            rearm: Vec::new(),
            retry_at: [None; FIRST_CONN as usize],
            paused: false,
            stopping: false,
            now: now_s(),
            last_turn: TurnSize::default(),
        })
    }

    fn arm_sockets(&mut self) -> io::Result<()> {
        for slot in LISTENER_SLOTS {
            if let Some(listener) = &self.listeners[slot as usize] {
                self.driver.accept(slot, listener.as_raw_fd())?;
            }
        }
        for slot in UDP_SLOTS {
            if let Some(udp) = &self.udps[slot as usize] {
                self.driver.recvmsg_multi(slot, udp.as_raw_fd())?;
            }
        }
        Ok(())
    }

    /// One loop turn: submit, wait for completions (at most `TURN_WAIT`), handle them, arm
    /// again what the kernel ended, hand the points off.
    fn turn(&mut self, sink: &mut dyn PointSink) -> io::Result<()> {
        let last_turn = std::mem::take(&mut self.last_turn);
        if !self.stopping {
            last_turn.pause_if_small();
        }
        self.driver.submit_and_wait(TURN_WAIT)?;
        let mut completions = std::mem::take(&mut self.completions);
        self.driver.reap(&mut completions);
        for c in &completions {
            // A receive's result is its length (an accept's a descriptor, an error's negative).
            self.last_turn.add(usize::try_from(c.result).unwrap_or(0));
        }
        // Looked at after reaping: data reaped now arrived after any pause set before it.
        self.paused = self.flow.observe(&*sink, &self.shared, &self.counters) && !self.stopping;
        if let Some(f) = self.filter.as_mut() {
            f.refresh();
        }
        self.now = now_s();
        let mut result = self.adopt_mail();
        for c in completions.drain(..) {
            if result.is_ok() {
                result = self.complete(c, sink);
            }
        }
        self.completions = completions;
        result?;
        self.end_turn(sink)?;
        sink.flush();
        if let Some(statsd) = self.statsd.as_mut() {
            statsd.poll();
        }
        Ok(())
    }

    fn complete(&mut self, c: Completion, sink: &mut dyn PointSink) -> io::Result<()> {
        let Some(op) = self.driver.ops.complete(c.user_data, c.more()) else {
            self.stray(c);
            return Ok(());
        };
        match op.kind {
            OpKind::Accept => self.on_accept(op, &c),
            OpKind::RecvMulti => self.on_conn_recv(op, &c, sink),
            OpKind::RecvOnce if op.slot >= FIRST_CONN => self.on_conn_recv(op, &c, sink),
            OpKind::RecvMsgMulti | OpKind::RecvOnce => self.on_udp(op, &c, sink),
            // The target's own completions say what became of it.
            OpKind::Cancel => Ok(()),
        }
    }

    /// A completion for no op in flight: a broken invariant (caught in debug builds). Its
    /// buffer, if it names one, still goes back.
    fn stray(&mut self, c: Completion) {
        debug_assert!(false, "completion {c:?} for no op in flight");
        if let Some(op) = UserData::decode(c.user_data) {
            let group = self.driver.group(op);
            if let Some(bid) = group.claim(c.flags) {
                group.recycle(bid);
            }
        }
    }

    fn on_accept(&mut self, op: UserData, c: &Completion) -> io::Result<()> {
        if !c.more() && !self.stopping {
            let delay = if c.result < 0 { RETRY_AFTER_ERROR } else { Duration::ZERO };
            self.retry_at[op.slot as usize] = Some(Instant::now() + delay);
        }
        if c.result < 0 {
            // Out of descriptors, a connection reset before accept, or our cancel.
            return Ok(());
        }
        // SAFETY: a successful accept's result is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(c.result) };
        if !admit(&self.shared, &self.counters) {
            return Ok(()); // dropping `fd` closes it
        }
        let kind = match op.slot {
            SLOT_PICKLE => DecoderKind::Pickle,
            SLOT_STATSD_TCP => DecoderKind::StatsdLines,
            _ => DecoderKind::Lines,
        };
        match &self.shared.spread {
            Some(spread) => match spread.place(Handed { stream: TcpStream::from(fd), kind }) {
                Some(kept) => self.serve(OwnedFd::from(kept.stream), kept.kind),
                None => Ok(()),
            },
            None => self.serve(fd, kind),
        }
    }

    /// Connections other threads handed to this one (see `spread`).
    fn adopt_mail(&mut self) -> io::Result<()> {
        let Some(spread) = &self.shared.spread else { return Ok(()) };
        let handed = if self.stopping { spread.close_inbox() } else { spread.take_mail() };
        for conn in handed {
            self.serve(OwnedFd::from(conn.stream), conn.kind)?;
        }
        Ok(())
    }

    /// Serves a connection this thread accepted and kept, or that another thread handed to it.
    fn serve(&mut self, fd: OwnedFd, kind: DecoderKind) -> io::Result<()> {
        let idx = self.conns.insert(Conn::new(fd, Decoder::new(kind, &self.limits)));
        if self.stopping {
            return Ok(()); // the drain's one-shot receives read it
        }
        self.arm_recv(idx, OpKind::RecvMulti)
    }

    fn arm_recv(&mut self, idx: usize, kind: OpKind) -> io::Result<()> {
        let generation = self.conns.generation(idx);
        let Some(conn) = self.conns.get_mut(idx) else { return Ok(()) };
        assert!(conn.recv.is_none(), "two receives on connection {idx}");
        let slot = FIRST_CONN + idx as u32;
        match kind {
            OpKind::RecvMulti => self.driver.recv_multi(slot, generation, conn.fd.as_raw_fd())?,
            _ => self.driver.recv_once(slot, generation, conn.fd.as_raw_fd())?,
        }
        conn.recv = Some(kind);
        conn.rearm = false;
        Ok(())
    }

    fn on_conn_recv(&mut self, op: UserData, c: &Completion, sink: &mut dyn PointSink) -> io::Result<()> {
        let bid = self.driver.tcp.claim(c.flags);
        let idx = op.slot.wrapping_sub(FIRST_CONN) as usize;
        let Some(conn) = self.conns.get_op_mut(idx, op) else {
            // The connection this op was for is gone (its slot freed, perhaps reused): ignore
            // the completion, give its buffer back.
            if let Some(bid) = bid {
                self.driver.tcp.recycle(bid);
            }
            return Ok(());
        };
        if !c.more() {
            conn.recv = None;
        }
        match (Received::of(c.result), bid) {
            (Received::Data(len), Some(bid)) => {
                self.take_data(idx, bid, len, sink);
                if !c.more() {
                    self.continue_reading(idx, op.kind)?;
                }
            }
            (_, Some(bid)) => self.driver.tcp.recycle(bid),
            (Received::NoBuffer, None) => self.continue_reading(idx, op.kind)?,
            (Received::Empty, None) if op.kind == OpKind::RecvMulti => self.continue_reading(idx, op.kind)?,
            (Received::End | Received::Data(_), None) => conn.ended = true,
            (Received::Empty | Received::Cancelled, None) => {}
        }
        if self.conns.get_mut(idx).is_some_and(|c| c.is_done()) {
            self.close(idx, sink);
        }
        Ok(())
    }

    /// Decodes a received buffer, or holds it while paused (and behind buffers held before).
    fn take_data(&mut self, idx: usize, bid: u16, len: usize, sink: &mut dyn PointSink) {
        let Some(conn) = self.conns.get_mut(idx) else { return };
        if conn.held.is_empty() && self.paused {
            self.backlog.push(idx);
        }
        conn.held.push_back((bid, len as u32));
        if !self.paused {
            self.decode_held(idx, sink);
        }
    }

    /// Decodes the held buffers of a connection, in arrival order, and gives them back.
    fn decode_held(&mut self, idx: usize, sink: &mut dyn PointSink) {
        let Some(conn) = self.conns.get_mut(idx) else { return };
        while let Some((bid, len)) = conn.held.pop_front() {
            let bytes = self.driver.tcp.bytes(bid, len as usize);
            let filter = self.filter.as_ref().map(FilterHandle::filter);
            let mut out = output(sink, &self.counters, &self.shared, filter, self.now, OnRefused::Wait);
            out.statsd = self.statsd.as_mut().map(CoreStatsd::partial);
            conn.decoder.feed(bytes, &mut out);
            self.driver.tcp.recycle(bid);
        }
    }

    /// After a receive ended with the stream still open: one-shot receives (the drain) go on
    /// at once; a multishot one is armed again at the end of the turn (not while stopping: the
    /// drain reads the rest).
    fn continue_reading(&mut self, idx: usize, kind: OpKind) -> io::Result<()> {
        if kind == OpKind::RecvOnce {
            return self.arm_recv(idx, OpKind::RecvOnce);
        }
        if self.stopping {
            return Ok(());
        }
        if let Some(conn) = self.conns.get_mut(idx) {
            if !conn.rearm && !conn.ended {
                conn.rearm = true;
                self.rearm.push(idx);
            }
        }
        Ok(())
    }

    fn on_udp(&mut self, op: UserData, c: &Completion, sink: &mut dyn PointSink) -> io::Result<()> {
        if let Some(bid) = self.driver.udp.claim(c.flags) {
            if let Ok(len @ 1..) = usize::try_from(c.result) {
                self.take_datagram(op, bid, len, sink);
            }
            self.driver.udp.recycle(bid);
        }
        match op.kind {
            OpKind::RecvMsgMulti if !c.more() && !self.stopping => {
                let failed = c.result < 0 && c.result != -libc::ENOBUFS;
                let delay = if failed { RETRY_AFTER_ERROR } else { Duration::ZERO };
                self.retry_at[op.slot as usize] = Some(Instant::now() + delay);
            }
            // The drain: until EAGAIN (a result of 0 is an empty datagram, not an end).
            OpKind::RecvOnce if c.result >= 0 || c.result == -libc::ENOBUFS => {
                if let Some(udp) = &self.udps[op.slot as usize] {
                    self.driver.recv_once(op.slot, 0, udp.as_raw_fd())?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Decodes one datagram on its own: its last line needs no newline, nothing carries over.
    fn take_datagram(&mut self, op: UserData, bid: u16, len: usize, sink: &mut dyn PointSink) {
        let bytes = self.driver.udp.bytes(bid, len);
        let msg;
        let payload = match op.kind {
            OpKind::RecvMsgMulti => {
                let Ok(parsed) = io_uring::types::RecvMsgOut::parse(bytes, self.driver.msghdr()) else { return };
                msg = parsed;
                msg.payload_data()
            }
            _ => bytes,
        };
        if op.slot == SLOT_STATSD_UDP {
            if let Some(statsd) = self.statsd.as_mut() {
                statsd.partial().datagram(payload, self.now);
            }
            return;
        }
        let filter = self.filter.as_ref().map(FilterHandle::filter);
        let mut out = output(sink, &self.counters, &self.shared, filter, self.now, OnRefused::Drop);
        self.udp_decoder.feed(payload, &mut out);
        self.udp_decoder.finish_datagram(&mut out);
    }

    /// Closes a connection once everything it sent was read: a sender that half-closed sees our
    /// close as "all accepted".
    fn close(&mut self, idx: usize, sink: &mut dyn PointSink) {
        let mut conn = self.conns.remove(idx);
        debug_assert!(conn.held.is_empty());
        conn.decoder.finish(&self.counters);
        sink.flush();
        drop(conn);
        release(&self.shared);
        if let Some(spread) = &self.shared.spread {
            spread.ended();
        }
    }

    /// End of a turn: decode what was held if the pause is over, arm again what the kernel
    /// ended.
    fn end_turn(&mut self, sink: &mut dyn PointSink) -> io::Result<()> {
        if !self.paused {
            let mut backlog = std::mem::take(&mut self.backlog);
            for idx in backlog.drain(..) {
                self.decode_held(idx, sink);
                if self.conns.get_mut(idx).is_some_and(|c| c.is_done()) {
                    self.close(idx, sink);
                }
            }
            self.backlog = backlog;
        }
        if self.stopping {
            return Ok(());
        }
        // Not while paused (that is the back-pressure), nor while the group is empty (arming
        // would only earn another ENOBUFS).
        if !self.paused && self.driver.tcp.kernel_has_buffers() {
            let mut rearm = std::mem::take(&mut self.rearm);
            for idx in rearm.drain(..) {
                if self.conns.get_mut(idx).is_some_and(|c| c.rearm) {
                    self.arm_recv(idx, OpKind::RecvMulti)?;
                }
            }
            self.rearm = rearm;
        }
        self.rearm_sockets()
    }

    fn rearm_sockets(&mut self) -> io::Result<()> {
        let now = Instant::now();
        for slot in [SLOT_LINE, SLOT_PICKLE, SLOT_UDP, SLOT_STATSD_UDP, SLOT_STATSD_TCP] {
            if self.retry_at[slot as usize].is_none_or(|at| at > now) {
                continue;
            }
            self.retry_at[slot as usize] = None;
            if is_udp_slot(slot) {
                if let Some(udp) = &self.udps[slot as usize] {
                    self.driver.recvmsg_multi(slot, udp.as_raw_fd())?;
                }
            } else if let Some(listener) = &self.listeners[slot as usize] {
                self.driver.accept(slot, listener.as_raw_fd())?;
            }
        }
        Ok(())
    }

    /// The shutdown drain (see the module documentation).
    fn drain(&mut self, sink: &mut dyn PointSink) -> io::Result<()> {
        self.stopping = true;
        self.paused = false;
        self.cancel_multishots()?;
        self.end_turn(sink)?;
        self.run_until_idle(sink)?;
        // No more connections from the other threads: serve the last ones handed here.
        self.adopt_mail()?;
        for idx in self.conns.open() {
            if self.conns.get_mut(idx).is_some_and(|c| !c.ended && c.recv.is_none()) {
                self.arm_recv(idx, OpKind::RecvOnce)?;
            }
        }
        for slot in UDP_SLOTS {
            if let Some(udp) = &self.udps[slot as usize] {
                self.driver.recv_once(slot, 0, udp.as_raw_fd())?;
            }
        }
        self.run_until_idle(sink)?;
        for idx in self.conns.open() {
            self.close(idx, sink);
        }
        sink.flush();
        assert!(self.driver.ops.is_empty(), "{} ops still in flight after the drain", self.driver.ops.len());
        let buffers_out = (self.driver.tcp.n_ours(), self.driver.udp.n_ours());
        assert_eq!(buffers_out, (0, 0), "buffers (TCP, UDP) not given back after the drain");
        Ok(())
    }

    /// No more accepts, no more multishot receives: cancel them all.
    fn cancel_multishots(&mut self) -> io::Result<()> {
        let mut targets: Vec<UserData> = LISTENER_SLOTS.iter().map(|&s| UserData::new(OpKind::Accept, s, 0)).collect();
        targets.extend(UDP_SLOTS.iter().map(|&s| UserData::new(OpKind::RecvMsgMulti, s, 0)));
        for idx in self.conns.open() {
            targets.push(UserData::new(OpKind::RecvMulti, FIRST_CONN + idx as u32, self.conns.generation(idx)));
        }
        for op in targets {
            if self.driver.ops.contains(op) {
                self.driver.cancel(op)?;
            }
        }
        Ok(())
    }

    fn run_until_idle(&mut self, sink: &mut dyn PointSink) -> io::Result<()> {
        while !self.driver.ops.is_empty() {
            self.turn(sink)?;
        }
        Ok(())
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // An error path may leave connections open: they close with `self`, so their count goes.
        for _ in 0..self.conns.len() {
            release(&self.shared);
        }
    }
}

/// What a receive's result means for the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    /// This many bytes.
    Data(usize),
    /// End of stream, or an error that ends it (a reset): close once everything is decoded.
    End,
    /// EAGAIN: nothing left in the socket (the drain's MSG_DONTWAIT receives).
    Empty,
    /// ENOBUFS: the buffer group was empty.
    NoBuffer,
    /// ECANCELED: our cancel (the drain).
    Cancelled,
}

impl Received {
    fn of(result: i32) -> Received {
        match result {
            n if n > 0 => Received::Data(n as usize),
            e if e == -libc::EAGAIN => Received::Empty,
            e if e == -libc::ENOBUFS => Received::NoBuffer,
            e if e == -libc::ECANCELED => Received::Cancelled,
            _ => Received::End,
        }
    }
}

fn output<'a>(
    sink: &'a mut dyn PointSink,
    counters: &'a PointCounters,
    shared: &'a Shared,
    filter: Option<&'a super::filter::MetricFilter>,
    now: i64,
    on_refused: OnRefused,
) -> Output<'a> {
    Output { sink, counters, on_refused, hard_stop: &shared.hard_stop, now, filter, statsd: None }
}
