//! Listening sockets of the receivers: one set per ingest thread on the same ports with
//! SO_REUSEPORT, so the kernel spreads connections and datagrams over the threads.
//!
//! A port of 0 (tests) is resolved once, by the first bind, and the other threads bind the port
//! the kernel chose. UDP sockets ask for a large receive buffer; the kernel grants at most
//! `net.core.rmem_max`, and the grant is reported so that the operator sees a short buffer.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of pending connections per listener (the kernel caps it at net.core.somaxconn).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Resolves carbon's `INTERFACE` / `PORT` pair (an address or a host name) to one address.
pub fn resolve(interface: &str, port: u16) -> io::Result<SocketAddr> {
    (interface, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::AddrNotAvailable, format!("{interface}:{port} resolves to no address"))
    })
}

fn new_socket(addr: SocketAddr, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A non-blocking TCP listener on `addr` that other threads may share with SO_REUSEPORT.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A non-blocking UDP socket on `addr`, sharable with SO_REUSEPORT, asking for `rcvbuf_bytes`
/// of receive buffer. Returns the socket and the buffer the kernel granted.
pub fn bind_udp(addr: SocketAddr, rcvbuf_bytes: usize) -> io::Result<(UdpSocket, usize)> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Capped by net.core.rmem_max: with CAP_NET_ADMIN, SO_RCVBUFFORCE goes past the cap. Refused
    // either way: not fatal, the grant is what it is and is reported. (The kernel reports twice
    // what it was asked for: its bookkeeping overhead.)
    let _ = socket.set_recv_buffer_size(rcvbuf_bytes);
    if socket.recv_buffer_size()? < rcvbuf_bytes {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, rcvbuf_bytes);
    }
    let granted = socket.recv_buffer_size()?;
    socket.bind(&addr.into())?;
    Ok((socket.into(), granted))
}

/// Binds `n` listeners on `addr`, resolving port 0 to the port the first one got.
pub fn bind_tcp_group(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind_tcp(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(bind_tcp(addr)?);
    }
    Ok(all)
}

/// Binds `n` UDP sockets on `addr` (port 0 resolved by the first); returns them and the
/// smallest receive buffer granted.
pub fn bind_udp_group(addr: SocketAddr, n: usize, rcvbuf_bytes: usize) -> io::Result<(Vec<UdpSocket>, usize)> {
    let (first, mut granted) = bind_udp(addr, rcvbuf_bytes)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        let (s, g) = bind_udp(addr, rcvbuf_bytes)?;
        granted = granted.min(g);
        all.push(s);
    }
    Ok((all, granted))
}

/// Datagrams the kernel dropped on these UDP sockets because their receive buffers were full,
/// read from each socket (its `SK_MEMINFO_DROPS` counter through `getsockopt(SO_MEMINFO)`: the
/// count SO_RXQ_OVFL delivers, which arrives only with a later datagram, so a burst's last drops
/// would wait for the next packet) once per reporting interval. The kernel keeps each count in
/// 32 bits; [`KernelDrops`] takes differences that survive the wrap.
///
/// SO_RXQ_OVFL was tried as well and is not used: on kernel 6.18 a UDP socket with the option on
/// delivers no counter at all (after 494 drops, the datagrams queued behind them came with no
/// control message, read with Python's `socket.recvmsg` too), while SO_MEMINFO reads the count
/// on every kernel since 4.6.
fn udp_kernel_drops(sockets: &[UdpSocket]) -> Vec<u32> {
    sockets.iter().map(socket_drops).collect()
}

/// One socket's drop counter; 0 when the kernel cannot say (before 4.6, SO_MEMINFO is missing).
fn socket_drops(socket: &UdpSocket) -> u32 {
    use std::os::fd::AsRawFd;
    // The kernel's SK_MEMINFO_VARS: nine counters up to and including DROPS (newer kernels may
    // have more; getsockopt writes no more than asked).
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a valid local of that size, and
    // stores the length it wrote in `len`; the descriptor is open for the borrow of `socket`.
    let rc = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
    };
    let wrote_drops = len as usize >= (libc::SK_MEMINFO_DROPS as usize + 1) * std::mem::size_of::<u32>();
    if rc == 0 && wrote_drops {
        info[libc::SK_MEMINFO_DROPS as usize]
    } else {
        0
    }
}

/// The drops of a group of UDP sockets since the last look.
#[derive(Debug)]
pub struct KernelDrops {
    sockets: Vec<UdpSocket>,
    seen: Vec<u32>,
}

impl KernelDrops {
    pub fn new(sockets: Vec<UdpSocket>) -> KernelDrops {
        let seen = udp_kernel_drops(&sockets);
        KernelDrops { sockets, seen }
    }

    /// Datagrams dropped since the previous call (or since `new`).
    pub fn take_new(&mut self) -> u64 {
        let now = udp_kernel_drops(&self.sockets);
        let new = now.iter().zip(&self.seen).map(|(now, seen)| u64::from(now.wrapping_sub(*seen))).sum();
        self.seen = now;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_one_ephemeral_port() {
        let tcp = bind_tcp_group(resolve("127.0.0.1", 0).unwrap(), 3).unwrap();
        let port = tcp[0].local_addr().unwrap().port();
        assert!(port != 0 && tcp.iter().all(|l| l.local_addr().unwrap().port() == port));
        let (udp, granted) = bind_udp_group(resolve("localhost", 0).unwrap(), 2, 1 << 20).unwrap();
        assert!(granted > 0);
        assert_eq!(udp[0].local_addr().unwrap().port(), udp[1].local_addr().unwrap().port());
        assert_eq!(udp_kernel_drops(&udp), [0, 0]);
    }

    #[test]
    fn drops_are_read_from_the_socket() {
        // A small buffer nobody reads: what does not fit is dropped, and every datagram sent is
        // either still queued or counted.
        let (mut group, _) = bind_udp_group(resolve("127.0.0.1", 0).unwrap(), 1, 4096).unwrap();
        let socket = group.remove(0);
        let target = socket.local_addr().unwrap();
        let mut drops = KernelDrops::new(vec![socket.try_clone().unwrap()]);
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        const SENT: u64 = 2000;
        for _ in 0..SENT {
            sender.send_to(&[b'x'; 512], target).unwrap();
        }
        socket.set_nonblocking(true).unwrap();
        let mut queued = 0;
        let mut buf = [0u8; 1024];
        while socket.recv(&mut buf).is_ok() {
            queued += 1;
        }
        let dropped = drops.take_new();
        assert!(dropped > 0, "a 4 KiB buffer cannot hold {SENT} datagrams");
        assert_eq!(queued + dropped, SENT);
        assert_eq!(drops.take_new(), 0, "counted once");
    }

    #[test]
    fn drop_counts_survive_the_kernel_counter_wrapping() {
        let (sockets, _) = bind_udp_group(resolve("127.0.0.1", 0).unwrap(), 1, 4096).unwrap();
        let mut drops = KernelDrops { sockets, seen: vec![u32::MAX - 2] };
        assert_eq!(drops.take_new(), 3, "from u32::MAX - 2 to 0 is 3 drops");
    }
}
