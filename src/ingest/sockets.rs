//! Listening sockets of the receivers: one set per ingest thread on the same ports with
//! SO_REUSEPORT, so the kernel spreads connections and datagrams over the threads.
//!
//! A port of 0 (tests) is resolved once, by the first bind, and the other threads bind the port
//! the kernel chose. UDP sockets ask for a large receive buffer; the kernel grants at most
//! `net.core.rmem_max`, and the grant is reported so that the operator sees a short buffer.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::MetadataExt;

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

/// Datagrams the kernel dropped on these UDP sockets because their receive buffers were full:
/// the `drops` column of /proc/net/udp and /proc/net/udp6 for the sockets' inodes. (The same
/// count SO_RXQ_OVFL would deliver per datagram, read once per reporting interval instead.)
pub fn udp_kernel_drops(sockets: &[UdpSocket]) -> u64 {
    let inodes: Vec<u64> = sockets
        .iter()
        .filter_map(|s| {
            use std::os::fd::AsFd;
            let fd = s.as_fd().try_clone_to_owned().ok()?;
            std::fs::File::from(fd).metadata().ok().map(|m| m.ino())
        })
        .collect();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|table| drops_for_inodes(&table, &inodes))
        .sum()
}

/// Sums the `drops` column (the last) of the rows of a /proc/net/udp table whose `inode`
/// column (the tenth) is one of `inodes`.
fn drops_for_inodes(table: &str, inodes: &[u64]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let drops: u64 = fields.last()?.parse().ok()?;
            inodes.contains(&inode).then_some(drops)
        })
        .sum()
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
        assert_eq!(udp_kernel_drops(&udp), 0);
    }

    #[test]
    fn parses_the_drops_column() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            1: 00000000:07D3 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
            2: 00000000:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5\n";
        assert_eq!(drops_for_inodes(table, &[4242]), 17);
        assert_eq!(drops_for_inodes(table, &[4242, 999]), 22);
        assert_eq!(drops_for_inodes(table, &[1]), 0);
    }
}
