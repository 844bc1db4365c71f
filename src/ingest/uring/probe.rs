//! Whether the io_uring backend can run here, checked the way it runs: the same ring setup, the
//! same buffer groups, and each op it uses (multishot accept, multishot recv, multishot recvmsg,
//! one-shot recv with a selected buffer and MSG_DONTWAIT, async cancel) tried once on a pair of
//! local sockets. If not, [`Unavailable`] says why in words an operator can act on, and the
//! server runs the epoll backend instead.
//!
//! Opcode probing alone is not enough: multishot is a flag of the accept, recv and recvmsg
//! opcodes, and some kernels that know the opcode ignore or refuse the flag.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use io_uring::{opcode, IoUring, Probe};

use super::driver::{new_ring, Completion, Driver, FIRST_CONN, SLOT_LINE, SLOT_UDP};
use super::ops::{OpKind, UserData};

/// Why the io_uring backend cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// io_uring_setup returned EPERM.
    #[error(
        "io_uring_setup refused (EPERM): a seccomp profile (Docker's default) or the kernel.io_uring_disabled \
         sysctl blocks io_uring"
    )]
    Refused,
    /// io_uring_setup returned ENOSYS.
    #[error("io_uring_setup failed (ENOSYS): kernel without io_uring (before 5.1, or built without CONFIG_IO_URING)")]
    NoKernelSupport,
    /// io_uring_setup failed otherwise.
    #[error("io_uring_setup failed ({0})")]
    Setup(String),
    /// A ring feature or registration the backend relies on is missing.
    #[error("{0} not supported by this kernel")]
    Feature(&'static str),
    /// An opcode the backend uses is unknown to the kernel.
    #[error("opcode {0} not supported by this kernel")]
    Opcode(&'static str),
    /// The provided-buffer ring could not be registered.
    #[error("provided buffer ring (IORING_REGISTER_PBUF_RING, kernel 5.19) refused: {0}")]
    BufferRing(String),
    /// An op was accepted but did not behave as the backend needs.
    #[error("opcode {op} not supported: {detail}")]
    Op {
        /// The op, as io-uring names it (`RecvMulti`, ...).
        op: &'static str,
        /// What went wrong, with the kernel version it needs.
        detail: String,
    },
    /// The probe could not set up its local test sockets.
    #[error("io_uring probe could not create its test sockets: {0}")]
    Sockets(String),
}

/// How long the probe waits for any one completion.
const PATIENCE: Duration = Duration::from_secs(2);

/// Checks that the io_uring backend can run on this kernel, under this process's limits and
/// seccomp profile. Cheap enough to call once at start-up (one ring, a few local sockets).
pub fn probe() -> Result<(), Unavailable> {
    let ring = new_ring(&super::SIZES).map_err(setup_error)?;
    if !ring.params().is_feature_nodrop() {
        return Err(Unavailable::Feature("IORING_FEAT_NODROP (no lost completions, kernel 5.5)"));
    }
    if !ring.params().is_feature_ext_arg() {
        return Err(Unavailable::Feature("IORING_FEAT_EXT_ARG (waiting with a timeout, kernel 5.11)"));
    }
    check_opcodes(&ring)?;
    let mut driver = Driver::with_ring(ring, &super::SIZES).map_err(|e| Unavailable::BufferRing(errno_name(&e)))?;
    check_accept(&mut driver)?;
    check_recv(&mut driver)?;
    check_recvmsg(&mut driver)?;
    assert!(driver.ops.is_empty() && driver.tcp.n_ours() == 0 && driver.udp.n_ours() == 0);
    Ok(())
}

fn setup_error(e: io::Error) -> Unavailable {
    match e.raw_os_error() {
        Some(libc::EPERM) => Unavailable::Refused,
        Some(libc::ENOSYS) => Unavailable::NoKernelSupport,
        Some(libc::ENOMEM) => Unavailable::Setup(
            "ENOMEM: the locked-memory limit (RLIMIT_MEMLOCK, `ulimit -l`) is too low for the rings; \
             kernels before 5.12 charge rings to it"
                .into(),
        ),
        Some(libc::EINVAL) => Unavailable::Setup("EINVAL: the kernel is too old for the ring setup used".into()),
        _ => Unavailable::Setup(errno_name(&e)),
    }
}

fn check_opcodes(ring: &IoUring) -> Result<(), Unavailable> {
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|_| Unavailable::Feature("IORING_REGISTER_PROBE (kernel 5.6)"))?;
    let used = [
        (opcode::AcceptMulti::CODE, "Accept"),
        (opcode::RecvMulti::CODE, "Recv"),
        (opcode::RecvMsgMulti::CODE, "RecvMsg"),
        (opcode::AsyncCancel::CODE, "AsyncCancel"),
    ];
    match used.iter().find(|(code, _)| !probe.is_supported(*code)) {
        Some((_, name)) => Err(Unavailable::Opcode(name)),
        None => Ok(()),
    }
}

/// Multishot accept: a connection comes in and the op stays armed.
fn check_accept(driver: &mut Driver) -> Result<(), Unavailable> {
    use std::os::linux::net::SocketAddrExt;
    static N: AtomicU64 = AtomicU64::new(0);
    let sockets = |e: io::Error| Unavailable::Sockets(e.to_string());
    let name = format!("carbyne-uring-probe-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(sockets)?;
    let listener = UnixListener::bind_addr(&addr).map_err(sockets)?;
    let op = UserData::new(OpKind::Accept, SLOT_LINE, 0);
    driver.accept(SLOT_LINE, listener.as_raw_fd()).map_err(|e| op_failed("AcceptMulti", &e))?;
    let _client = UnixStream::connect_addr(&addr).map_err(sockets)?;
    let c = first_of(driver, "AcceptMulti", op, "kernel 5.19")?;
    // SAFETY: a successful accept's result is a new descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(c.result) });
    driver.cancel(op).map_err(|e| op_failed("AsyncCancel", &e))?;
    until_idle(driver, "AsyncCancel")
}

/// Multishot recv into the TCP group, then the drain's one-shot recv (a selected buffer, then
/// EAGAIN on the empty socket rather than a wait).
fn check_recv(driver: &mut Driver) -> Result<(), Unavailable> {
    let (ours, mut peer) = UnixStream::pair().map_err(|e| Unavailable::Sockets(e.to_string()))?;
    let op = UserData::new(OpKind::RecvMulti, FIRST_CONN, 0);
    driver.recv_multi(op.slot, 0, ours.as_raw_fd()).map_err(|e| op_failed("RecvMulti", &e))?;
    peer.write_all(b"probe").map_err(|e| Unavailable::Sockets(e.to_string()))?;
    let c = first_of(driver, "RecvMulti", op, "kernel 6.0")?;
    expect_payload(driver, op, &c, "RecvMulti", |bytes| bytes == b"probe")?;
    // The peer's end of stream ends the multishot recv with a last, empty completion.
    drop(peer);
    until_idle(driver, "RecvMulti")?;

    let (ours, mut peer) = UnixStream::pair().map_err(|e| Unavailable::Sockets(e.to_string()))?;
    peer.write_all(b"x").map_err(|e| Unavailable::Sockets(e.to_string()))?;
    let op = UserData::new(OpKind::RecvOnce, FIRST_CONN, 1);
    for expected in [1, -libc::EAGAIN] {
        driver.recv_once(op.slot, op.generation, ours.as_raw_fd()).map_err(|e| op_failed("Recv", &e))?;
        let c = next_of(driver, op).map_err(|detail| Unavailable::Op { op: "Recv", detail })?;
        if c.result != expected {
            return Err(Unavailable::Op { op: "Recv", detail: format!("MSG_DONTWAIT recv answered {}", c.result) });
        }
        expect_payload(driver, op, &c, "Recv", |bytes| bytes == b"x")?;
    }
    Ok(())
}

/// Multishot recvmsg into the UDP group: one datagram, parsed behind its header.
fn check_recvmsg(driver: &mut Driver) -> Result<(), Unavailable> {
    let (ours, peer) = UnixDatagram::pair().map_err(|e| Unavailable::Sockets(e.to_string()))?;
    let op = UserData::new(OpKind::RecvMsgMulti, SLOT_UDP, 0);
    driver.recvmsg_multi(SLOT_UDP, ours.as_raw_fd()).map_err(|e| op_failed("RecvMsgMulti", &e))?;
    peer.send(b"probe").map_err(|e| Unavailable::Sockets(e.to_string()))?;
    let c = first_of(driver, "RecvMsgMulti", op, "kernel 6.0")?;
    let msghdr = *driver.msghdr();
    let parsed_ok =
        |bytes: &[u8]| io_uring::types::RecvMsgOut::parse(bytes, &msghdr).is_ok_and(|m| m.payload_data() == b"probe");
    expect_payload(driver, op, &c, "RecvMsgMulti", parsed_ok)?;
    driver.cancel(op).map_err(|e| op_failed("AsyncCancel", &e))?;
    until_idle(driver, "AsyncCancel")
}

/// The first completion of a multishot `op`: it must succeed and leave the op armed.
fn first_of(driver: &mut Driver, name: &'static str, op: UserData, needs: &str) -> Result<Completion, Unavailable> {
    let c = next_of(driver, op).map_err(|detail| Unavailable::Op { op: name, detail })?;
    if c.result < 0 {
        let e = io::Error::from_raw_os_error(-c.result);
        return Err(Unavailable::Op {
            op: name,
            detail: format!("the kernel answered {}; needs {needs}", errno_name(&e)),
        });
    }
    if !c.more() {
        let detail = format!("the kernel ended it after one completion (no multishot); needs {needs}");
        return Err(Unavailable::Op { op: name, detail });
    }
    Ok(c)
}

/// Claims the buffer of `c` (if any), checks its bytes and gives it back.
fn expect_payload(
    driver: &mut Driver,
    op: UserData,
    c: &Completion,
    name: &'static str,
    ok: impl Fn(&[u8]) -> bool,
) -> Result<(), Unavailable> {
    let group = driver.group(op);
    let Some(bid) = group.claim(c.flags) else {
        return match c.result {
            n if n < 0 => Ok(()),
            _ => Err(Unavailable::Op { op: name, detail: "data came without a selected buffer".into() }),
        };
    };
    let good = ok(group.bytes(bid, usize::try_from(c.result).unwrap_or(0)));
    group.recycle(bid);
    match good {
        true => Ok(()),
        false => Err(Unavailable::Op { op: name, detail: "the received bytes are not the bytes sent".into() }),
    }
}

/// The next completion of `op`.
fn next_of(driver: &mut Driver, op: UserData) -> Result<Completion, String> {
    pump(driver, Some(op))?.ok_or_else(|| "no completion".to_string())
}

/// Reaps until no op is in flight.
fn until_idle(driver: &mut Driver, name: &'static str) -> Result<(), Unavailable> {
    pump(driver, None).map(drop).map_err(|detail| Unavailable::Op { op: name, detail })
}

/// Reaps completions until one of `want` comes (returned, its buffer still to claim) or, with
/// no `want`, until no op is in flight. The buffers of the others are given back.
fn pump(driver: &mut Driver, want: Option<UserData>) -> Result<Option<Completion>, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        while let Some(c) = driver.reap_one() {
            let known = driver.ops.complete(c.user_data, c.more());
            if want.is_some_and(|w| w.encode() == c.user_data) {
                return Ok(Some(c));
            }
            if let Some(other) = known {
                let group = driver.group(other);
                if let Some(bid) = group.claim(c.flags) {
                    group.recycle(bid);
                }
            }
        }
        if want.is_none() && driver.ops.is_empty() {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(format!("no completion within {} s", PATIENCE.as_secs()));
        }
        driver.submit_and_wait(Duration::from_millis(10)).map_err(|e| errno_name(&e))?;
    }
}

fn op_failed(name: &'static str, e: &io::Error) -> Unavailable {
    Unavailable::Op { op: name, detail: format!("submitting it failed: {}", errno_name(e)) }
}

/// `EINVAL`, `EPERM`, ... for the errors a probe meets; the system's text otherwise.
fn errno_name(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EBADF) => "EBADF",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::ECANCELED) => "ECANCELED",
        _ => return e.to_string(),
    };
    format!("{name} ({e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_refusals_name_their_cause() {
        let refused = setup_error(io::Error::from_raw_os_error(libc::EPERM)).to_string();
        assert!(refused.contains("EPERM") && refused.contains("seccomp"), "{refused}");
        let missing = setup_error(io::Error::from_raw_os_error(libc::ENOSYS)).to_string();
        assert!(missing.contains("ENOSYS") && missing.contains("kernel without io_uring"), "{missing}");
        let memlock = setup_error(io::Error::from_raw_os_error(libc::ENOMEM)).to_string();
        assert!(memlock.contains("RLIMIT_MEMLOCK"), "{memlock}");
        assert_eq!(Unavailable::Opcode("Recv").to_string(), "opcode Recv not supported by this kernel");
        let op = Unavailable::Op { op: "RecvMulti", detail: "needs kernel 6.0".into() };
        assert_eq!(op.to_string(), "opcode RecvMulti not supported: needs kernel 6.0");
    }
}
