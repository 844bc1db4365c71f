//! The ring of one ingest thread and every byte the kernel may touch through it: the two
//! provided-buffer groups (TCP and UDP), the `msghdr` of the UDP multishot recvmsg, and the op
//! table that says which ops are in flight.
//!
//! Every SQE is pushed here, each through a function that writes down why the memory it names
//! stays valid until its last CQE. The rule that makes those comments true: the buffers and the
//! `msghdr` live in this struct, are allocated once, never move, and are freed only when the op
//! table is empty; if the driver is dropped with ops in flight (an error path), they are leaked
//! instead.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::buf_ring::BufRing;
use super::ops::{OpKind, OpTable, UserData};

/// The slot of the plaintext listener in `user_data`.
pub(super) const SLOT_LINE: u32 = 0;
/// The slot of the pickle listener.
pub(super) const SLOT_PICKLE: u32 = 1;
/// The slot of the UDP socket.
pub(super) const SLOT_UDP: u32 = 2;
/// The slot of the statsd UDP socket.
pub(super) const SLOT_STATSD_UDP: u32 = 3;
/// The slot of the statsd TCP listener.
pub(super) const SLOT_STATSD_TCP: u32 = 4;
/// Connection `i` is slot `FIRST_CONN + i`.
pub(super) const FIRST_CONN: u32 = 5;

/// Whether `slot` is a UDP socket's (its receives use the UDP group).
pub(super) fn is_udp_slot(slot: u32) -> bool {
    slot == SLOT_UDP || slot == SLOT_STATSD_UDP
}

const TCP_BGID: u16 = 0;
const UDP_BGID: u16 = 1;

/// How big the ring and the buffer groups are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub tcp_bufs: u16,
    pub tcp_buf_bytes: usize,
    pub udp_bufs: u16,
    pub udp_buf_bytes: usize,
}

/// One CQE, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// More CQEs will follow for the same op (multishot still armed).
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
}

/// The ring, its buffer groups and its op table.
pub(super) struct Driver {
    ring: IoUring,
    pub ops: OpTable,
    /// Group of the TCP receives (multishot and the drain's one-shot ones).
    pub tcp: BufRing,
    /// Group of the UDP receives.
    pub udp: BufRing,
    /// The `msghdr` of every multishot recvmsg: only `msg_namelen` and `msg_controllen` matter,
    /// both 0 (we need neither the sender's address nor control messages), so each buffer holds
    /// the 16-byte `io_uring_recvmsg_out` header and then the datagram. Written once, here;
    /// freed with the driver only when no op is in flight.
    msghdr: NonNull<libc::msghdr>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("ops", &self.ops).field("tcp", &self.tcp).field("udp", &self.udp).finish()
    }
}

/// A ring set up the way both the probe and the receivers use it, by the thread that will use
/// it (one thread submits to and reaps each ring).
///
/// Asks for deferred task work (kernel 6.1+): the kernel's part of each receive (copying the
/// datagram or segment into a provided buffer) then runs when this thread next waits for
/// completions, in a batch, instead of interrupting it once per packet; falls back to
/// cooperative task work (5.19+), then to a plain ring.
pub(super) fn new_ring(sizes: &Sizes) -> io::Result<IoUring> {
    let plain = || {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(sizes.cq_entries);
        builder
    };
    plain()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(sizes.sq_entries)
        .or_else(|_| plain().setup_coop_taskrun().build(sizes.sq_entries))
        .or_else(|_| plain().build(sizes.sq_entries))
}

impl Driver {
    pub fn new(sizes: &Sizes) -> io::Result<Driver> {
        Driver::with_ring(new_ring(sizes)?, sizes)
    }

    /// A driver around `ring`, which has no op in flight.
    pub fn with_ring(ring: IoUring, sizes: &Sizes) -> io::Result<Driver> {
        let tcp = BufRing::new(&ring, TCP_BGID, sizes.tcp_bufs, sizes.tcp_buf_bytes)?;
        let udp = BufRing::new(&ring, UDP_BGID, sizes.udp_bufs, sizes.udp_buf_bytes)?;
        // SAFETY: msghdr is a plain C struct for which all zeroes is a valid value (null
        // pointers, zero lengths).
        let msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
        let msghdr = NonNull::from(Box::leak(Box::new(msghdr)));
        Ok(Driver { ring, ops: OpTable::with_capacity(1024), tcp, udp, msghdr })
    }

    pub fn msghdr(&self) -> &libc::msghdr {
        // SAFETY: allocated in `new` and freed only in Drop; never written after `new` (the
        // kernel only reads it), so a shared reference is sound.
        unsafe { self.msghdr.as_ref() }
    }

    /// The group the buffers of `op` come from.
    pub fn group(&mut self, op: UserData) -> &mut BufRing {
        match op.kind {
            OpKind::RecvMsgMulti => &mut self.udp,
            OpKind::RecvOnce if is_udp_slot(op.slot) => &mut self.udp,
            _ => &mut self.tcp,
        }
    }

    /// Pushes one SQE, submitting what is queued first if the submission queue is full.
    ///
    /// # Safety
    ///
    /// Every address `entry` carries (buffers, `msghdr`) must stay valid and unmoved until the
    /// op's last CQE has been reaped, and the descriptor it names must stay open until then.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's contract, forwarded.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Arms a multishot accept on listener `slot`.
    pub fn accept(&mut self, slot: u32, fd: RawFd) -> io::Result<()> {
        let user_data = self.ops.start(UserData::new(OpKind::Accept, slot, 0));
        let entry = opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(user_data);
        // SAFETY: a multishot accept carries no address of ours (no sockaddr is asked for);
        // the listener stays open until the end of `run_uring`, after the drain saw the op's
        // last CQE.
        unsafe { self.push(&entry) }
    }

    /// Arms a multishot recv on connection `slot`, into the TCP group.
    pub fn recv_multi(&mut self, slot: u32, generation: u32, fd: RawFd) -> io::Result<()> {
        let user_data = self.ops.start(UserData::new(OpKind::RecvMulti, slot, generation));
        let entry = opcode::RecvMulti::new(types::Fd(fd), TCP_BGID).build().user_data(user_data);
        // SAFETY: the buffers are picked by the kernel from the TCP group, which `self` owns
        // and frees only once the op table is empty; the connection's descriptor is closed only
        // after its recv op has ended (`Conn::recv` is None).
        unsafe { self.push(&entry) }
    }

    /// Arms one recv with MSG_DONTWAIT (the drain), on a connection or the UDP socket: its
    /// result is data, 0 at end of stream, or -EAGAIN once the socket is empty.
    pub fn recv_once(&mut self, slot: u32, generation: u32, fd: RawFd) -> io::Result<()> {
        let op = UserData::new(OpKind::RecvOnce, slot, generation);
        let (bgid, len) =
            if is_udp_slot(slot) { (UDP_BGID, self.udp.buf_size()) } else { (TCP_BGID, self.tcp.buf_size()) };
        let user_data = self.ops.start(op);
        let entry = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), len as u32)
            .buf_group(bgid)
            .flags(libc::MSG_DONTWAIT)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(user_data);
        // SAFETY: no address of ours: with BUFFER_SELECT the kernel picks a buffer of `bgid`
        // (owned by `self` until the op table is empty) and `len` is that group's buffer size;
        // the descriptor outlives the op as for `recv_multi`.
        unsafe { self.push(&entry) }
    }

    /// Arms a multishot recvmsg on the UDP socket of `slot`, into the UDP group.
    pub fn recvmsg_multi(&mut self, slot: u32, fd: RawFd) -> io::Result<()> {
        debug_assert!(is_udp_slot(slot));
        let user_data = self.ops.start(UserData::new(OpKind::RecvMsgMulti, slot, 0));
        let entry =
            opcode::RecvMsgMulti::new(types::Fd(fd), self.msghdr.as_ptr(), UDP_BGID).build().user_data(user_data);
        // SAFETY: the entry points at `self.msghdr`, which is never moved or written and freed
        // only when the op table is empty (or leaked); buffers come from the UDP group, owned the
        // same way; the UDP sockets stay open until the end of `run_uring`.
        unsafe { self.push(&entry) }
    }

    /// Asks the kernel to cancel `target`; its own last CQE still comes (usually -ECANCELED).
    pub fn cancel(&mut self, target: UserData) -> io::Result<()> {
        let user_data = self.ops.start(target.cancel());
        let entry = opcode::AsyncCancel::new(target.encode()).build().user_data(user_data);
        // SAFETY: a cancel carries only the target's user_data, no address or descriptor.
        unsafe { self.push(&entry) }
    }

    /// Submits what is queued and waits for one completion, at most `timeout`.
    pub fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            // Timed out, interrupted, or completions waiting in the overflow list: reap anyway.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The next completion waiting in the queue, if any.
    pub fn reap_one(&mut self) -> Option<Completion> {
        self.ring.completion().next().map(|c| Completion {
            user_data: c.user_data(),
            result: c.result(),
            flags: c.flags(),
        })
    }

    /// Moves every completion waiting in the queue into `out`.
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        out.extend(self.ring.completion().map(|c| Completion {
            user_data: c.user_data(),
            result: c.result(),
            flags: c.flags(),
        }));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.ops.is_empty() {
            self.tcp.unregister(&self.ring);
            self.udp.unregister(&self.ring);
            // SAFETY: allocated by Box in `new`, freed once, here; no op is in flight, so the
            // kernel holds no pointer to it.
            drop(unsafe { Box::from_raw(self.msghdr.as_ptr()) });
        } else {
            // An error path left ops in flight: the kernel may still write into the buffers or
            // read the msghdr after the ring is closed, so that memory is never freed.
            self.tcp.leak();
            self.udp.leak();
        }
    }
}
