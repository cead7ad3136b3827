//! A UDP socket that tells which interface a datagram came in on and which address it was
//! sent to (IP_PKTINFO), and sends replies out of a chosen interface from a chosen source
//! address. DHCP needs both: a broadcast DISCOVER carries no hint of which of the server's
//! addresses the client can reach, and a broadcast reply must leave by the interface the
//! request arrived on.
//!
//! Under load datagrams queue, and one system call per datagram each way is most of a
//! server's time: once datagrams are found queued, [`PktInfoSocket::recv_batch`] takes up to
//! [`BATCH`] with one `recvmmsg`, and [`PktInfoSocket::send_batch`] sends replies with one
//! `sendmmsg`. Neither waits to fill a batch, and while the queue is empty a lone datagram
//! takes the plain `recvmsg` path, costing what it did before batching.
//!
//! Sends never wait: a reply that does not fit in the socket's send buffer at once fails with
//! [`io::ErrorKind::WouldBlock`] and the caller drops it (the client retransmits). A receive
//! loop that waited for buffer space would stop answering everyone while the buffer is held
//! by replies the kernel cannot deliver yet.
//!
//! [`receive_queued`] and [`send_queued`] are the same batched calls on any socket, for a
//! load generator that drives its own socket without tokio.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::libc;
use nix::sys::socket::{
    self, setsockopt, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    MultiHeaders, RecvMsg, SockFlag, SockType, SockaddrIn,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::{ask_buffer_size, Buffer};

/// The socket receive buffer asked for: about 10,000 DHCP requests.
const RECEIVE_BUFFER: usize = 4 << 20;

/// The socket send buffer asked for: room for a reply waiting on each of the kernel's
/// default 1024 neighbour entries (at most one each, see `resolution`) and still some
/// thousand replies on their way out.
const SEND_BUFFER: usize = 4 << 20;

/// The most datagrams one `recvmmsg` or `sendmmsg` moves. Past a few dozen the system-call
/// cost is amortised and a larger batch only delays the first reply of the batch.
pub const BATCH: usize = 32;

/// Where a datagram came from and where it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its length.
    pub len: usize,
    /// The sender.
    pub from: SocketAddrV4,
    /// The receiving interface's index.
    pub ifindex: u32,
    /// The local address the kernel would answer from on that interface (`ipi_spec_dst`):
    /// the server identifier for this client.
    pub local: Ipv4Addr,
    /// The datagram's destination address (`ipi_addr`): broadcast or one of ours.
    pub destination: Ipv4Addr,
}

/// Where a datagram goes: to `to`, out of interface `ifindex` (0: by the routing table) from
/// source address `source` (unspecified: the kernel's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination.
    pub to: SocketAddrV4,
    /// The outgoing interface's index, or 0.
    pub ifindex: u32,
    /// The source address, or unspecified.
    pub source: Ipv4Addr,
}

impl Route {
    /// The IP_PKTINFO control message this route needs, if any.
    fn packet_info(&self) -> Option<libc::in_pktinfo> {
        if self.ifindex == 0 && self.source.is_unspecified() {
            return None;
        }
        Some(libc::in_pktinfo {
            ipi_ifindex: i32::try_from(self.ifindex).unwrap_or(0),
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(self.source).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        })
    }

    /// Whether one `sendmmsg` can carry datagrams on both routes (it takes one set of control
    /// messages for all of them; destinations may differ).
    fn shares_packet_info(&self, other: &Route) -> bool {
        self.ifindex == other.ifindex && self.source == other.source
    }
}

/// Buffers for a batch of received datagrams, and where each came from.
#[derive(Debug)]
pub struct ReceiveBatch {
    buffers: Vec<Vec<u8>>,
    arrivals: Vec<Arrival>,
    /// The last receive found datagrams already queued (load): the next one tries `recvmmsg`.
    queued: bool,
}

impl ReceiveBatch {
    /// Room for [`BATCH`] datagrams of up to `datagram_len` bytes each (longer ones are
    /// truncated).
    pub fn new(datagram_len: usize) -> Self {
        Self::with_count(BATCH, datagram_len)
    }

    /// Room for `count` datagrams (at least one) of up to `datagram_len` bytes each.
    pub fn with_count(count: usize, datagram_len: usize) -> Self {
        let count = count.max(1);
        Self {
            buffers: vec![vec![0; datagram_len]; count],
            arrivals: Vec::with_capacity(count),
            queued: false,
        }
    }

    /// The datagrams of the last [`PktInfoSocket::recv_batch`], in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Arrival)> {
        self.buffers
            .iter()
            .zip(&self.arrivals)
            .map(|(buffer, arrival)| (&buffer[..arrival.len.min(buffer.len())], arrival))
    }
}

/// The sender and IP_PKTINFO of one received message.
fn arrival_of(message: &RecvMsg<'_, '_, SockaddrIn>) -> io::Result<Arrival> {
    let mut arrival = Arrival {
        len: message.bytes,
        from: message
            .address
            .map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |a| {
                SocketAddrV4::new(a.ip(), a.port())
            }),
        ifindex: 0,
        local: Ipv4Addr::UNSPECIFIED,
        destination: Ipv4Addr::UNSPECIFIED,
    };
    for control in message.cmsgs()? {
        if let ControlMessageOwned::Ipv4PacketInfo(info) = control {
            arrival.ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
            arrival.local = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
            arrival.destination = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
        }
    }
    Ok(arrival)
}

/// One `recvmsg` into the batch's first buffer.
fn receive_one(fd: RawFd, batch: &mut ReceiveBatch) -> io::Result<usize> {
    batch.arrivals.clear();
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let mut iov = [IoSliceMut::new(&mut batch.buffers[0])];
    let message = socket::recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    batch.arrivals.push(arrival_of(&message)?);
    Ok(1)
}

/// One `recvmmsg` that does not wait, whatever the socket's blocking mode, into all of
/// `batch`'s buffers: how many datagrams were queued ([`io::ErrorKind::WouldBlock`] if none).
/// A socket without IP_PKTINFO gets unspecified addresses and interface 0 in its arrivals.
pub fn receive_queued(fd: BorrowedFd<'_>, batch: &mut ReceiveBatch) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    batch.arrivals.clear();
    // Allocated per call: the headers hold raw pointers, so they cannot live in the (Send)
    // receive task across an await; a few small allocations per batch.
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(
        batch.buffers.len(),
        Some(nix::cmsg_space!(libc::in_pktinfo)),
    );
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = batch
        .buffers
        .iter_mut()
        .map(|buffer| [IoSliceMut::new(buffer)])
        .collect();
    let messages = socket::recvmmsg(fd, &mut headers, &mut slices, MsgFlags::MSG_DONTWAIT, None)?;
    for message in messages {
        batch.arrivals.push(arrival_of(&message)?);
    }
    Ok(batch.arrivals.len())
}

/// Sends a leading run of `datagrams` with one `sendmmsg`: those whose routes share the
/// first one's interface and source address. Returns how many were sent (at least one),
/// or the error of the first, which was not sent ([`io::ErrorKind::WouldBlock`] when the
/// socket buffer is full: this never waits, whatever the socket's blocking mode).
pub fn send_queued(fd: BorrowedFd<'_>, datagrams: &[(&[u8], Route)]) -> io::Result<usize> {
    let Some((_, first)) = datagrams.first() else {
        return Ok(0);
    };
    let run = datagrams
        .iter()
        .take(BATCH)
        .take_while(|(_, route)| route.shares_packet_info(first))
        .count();
    let info = first.packet_info();
    let fd = fd.as_raw_fd();
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams[..run]
        .iter()
        .map(|(datagram, _)| [IoSlice::new(datagram)])
        .collect();
    let addresses: Vec<Option<SockaddrIn>> = datagrams[..run]
        .iter()
        .map(|(_, route)| Some(SockaddrIn::from(route.to)))
        .collect();
    // Without control messages the headers must carry no control buffer at all:
    // the kernel rejects a zeroed one.
    let sent = match &info {
        Some(info) => {
            let mut headers = MultiHeaders::<SockaddrIn>::preallocate(
                run,
                Some(nix::cmsg_space!(libc::in_pktinfo)),
            );
            let cmsgs = [ControlMessage::Ipv4PacketInfo(info)];
            socket::sendmmsg(
                fd,
                &mut headers,
                &slices,
                &addresses,
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )?
            .count()
        }
        None => {
            let mut headers = MultiHeaders::<SockaddrIn>::preallocate(run, None);
            socket::sendmmsg(
                fd,
                &mut headers,
                &slices,
                &addresses,
                [] as [ControlMessage<'_>; 0],
                MsgFlags::MSG_DONTWAIT,
            )?
            .count()
        }
    };
    Ok(sent)
}

/// Asks for `wanted` bytes of `buffer` on `fd` and warns when the system gives less, since
/// datagrams beyond it are dropped.
fn size_buffer(fd: &impl AsFd, port: u16, buffer: Buffer, wanted: usize) {
    let got = ask_buffer_size(fd, buffer, wanted);
    let (sysctl, dropped) = match buffer {
        Buffer::Receive => ("net.core.rmem_max", "request bursts"),
        Buffer::Send => ("net.core.wmem_max", "replies"),
    };
    if got < wanted {
        tracing::warn!(
            port,
            ?buffer,
            size = got,
            "socket buffer capped (raise {sysctl} or run with CAP_NET_ADMIN): {dropped} \
             beyond it are dropped"
        );
    } else {
        tracing::debug!(port, ?buffer, size = got, "socket buffer");
    }
}

/// A non-blocking UDP socket with IP_PKTINFO, registered with tokio.
#[derive(Debug)]
pub struct PktInfoSocket {
    inner: UdpSocket,
}

impl PktInfoSocket {
    /// Binds `0.0.0.0:port` with SO_REUSEADDR, SO_BROADCAST and IP_PKTINFO, limited to
    /// `interface` (SO_BINDTODEVICE) when given. Must be called inside a tokio runtime.
    pub fn bind(port: u16, interface: Option<&str>) -> io::Result<Self> {
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        setsockopt(&fd, sockopt::Broadcast, &true)?;
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        // A boot storm (a rack powering on) arrives in bursts: queue them rather than drop
        // them while the server is busy.
        size_buffer(&fd, port, Buffer::Receive, RECEIVE_BUFFER);
        size_buffer(&fd, port, Buffer::Send, SEND_BUFFER);
        if let Some(name) = interface {
            setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(name))?;
        }
        let addr = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        socket::bind(fd.as_raw_fd(), &addr)?;
        let std_socket = std::net::UdpSocket::from(fd);
        Ok(Self {
            inner: UdpSocket::from_std(std_socket)?,
        })
    }

    /// The socket's descriptor (for ioctls on it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }

    /// The bound port (useful when bound to port 0).
    #[cfg(test)]
    pub fn local_port(&self) -> io::Result<u16> {
        Ok(self.inner.local_addr()?.port())
    }

    /// Receives into `batch` the datagrams queued on the socket, at most [`BATCH`], waiting
    /// only while none is queued. Returns how many arrived (at least one).
    ///
    /// A datagram found queued without waiting means load: the next call takes everything
    /// queued with one `recvmmsg`. Once the queue runs dry the socket waits and takes the
    /// datagram that wakes it with one `recvmsg`, so a lone client costs two `recvmsg` (one
    /// finding nothing) per request as before, and no extra latency.
    pub async fn recv_batch(&self, batch: &mut ReceiveBatch) -> io::Result<usize> {
        let fd = self.inner.as_raw_fd();
        let found = if batch.queued {
            self.inner.try_io(Interest::READABLE, || {
                receive_queued(self.inner.as_fd(), batch)
            })
        } else {
            self.inner
                .try_io(Interest::READABLE, || receive_one(fd, batch))
        };
        match found {
            Ok(count) => {
                batch.queued = true;
                return Ok(count);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => batch.queued = false,
            Err(e) => return Err(e),
        }
        self.inner
            .async_io(Interest::READABLE, || receive_one(fd, batch))
            .await
    }

    /// Sends a leading run of `datagrams` with one `sendmmsg`: those whose routes share the
    /// first one's interface and source address. Returns how many were sent (at least one),
    /// or the error of the first, which was not sent ([`io::ErrorKind::WouldBlock`] when the
    /// socket buffer is full: this never waits).
    pub fn send_batch(&self, datagrams: &[(&[u8], Route)]) -> io::Result<usize> {
        // The socket is non-blocking: a full buffer is EAGAIN, never a wait. Tokio's readiness
        // is not consulted (nothing here waits for it).
        send_queued(self.inner.as_fd(), datagrams)
    }

    /// Sends one datagram (`sendmsg`); never waits (see [`Self::send_batch`]).
    pub fn send(&self, datagram: &[u8], route: Route) -> io::Result<()> {
        let fd = self.inner.as_raw_fd();
        let info = route.packet_info();
        let dest = SockaddrIn::from(route.to);
        let iov = [IoSlice::new(datagram)];
        let with_info;
        let cmsgs: &[ControlMessage<'_>] = match &info {
            Some(info) => {
                with_info = [ControlMessage::Ipv4PacketInfo(info)];
                &with_info
            }
            None => &[],
        };
        socket::sendmsg(fd, &iov, cmsgs, MsgFlags::MSG_DONTWAIT, Some(&dest))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A server socket, its loopback address, and a client socket.
    fn server_and_client() -> (PktInfoSocket, SocketAddrV4, PktInfoSocket) {
        let server = PktInfoSocket::bind(0, None).unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.local_port().unwrap());
        (server, to, PktInfoSocket::bind(0, None).unwrap())
    }

    fn by_routing_table(to: SocketAddrV4) -> Route {
        Route {
            to,
            ifindex: 0,
            source: Ipv4Addr::UNSPECIFIED,
        }
    }

    #[test]
    fn loopback_reports_interface_and_destination() {
        runtime().block_on(async {
            let (server, to, client) = server_and_client();
            client.send(b"hello", by_routing_table(to)).unwrap();
            let mut batch = ReceiveBatch::new(64);
            assert_eq!(server.recv_batch(&mut batch).await.unwrap(), 1);
            let (datagram, arrival) = batch.iter().next().unwrap();
            assert_eq!(datagram, b"hello");
            assert_eq!(arrival.destination, Ipv4Addr::LOCALHOST);
            assert_eq!(arrival.local, Ipv4Addr::LOCALHOST);
            assert_ne!(arrival.ifindex, 0);
            assert_eq!(*arrival.from.ip(), Ipv4Addr::LOCALHOST);
            // A reply with an explicit interface and source reaches the sender.
            let route = Route {
                to: arrival.from,
                ifindex: arrival.ifindex,
                source: arrival.local,
            };
            server.send(b"back", route).unwrap();
            client.recv_batch(&mut batch).await.unwrap();
            let (datagram, arrival) = batch.iter().next().unwrap();
            assert_eq!(datagram, b"back");
            assert_eq!(arrival.from.port(), to.port());
        });
    }

    #[test]
    fn batches_take_what_is_queued_and_keep_each_datagram_apart() {
        runtime().block_on(async {
            let (server, to, client) = server_and_client();
            let client_port = client.local_port().unwrap();
            // More than a batch, alternating two routes (one with IP_PKTINFO, one without),
            // so send_batch splits runs and recv_batch needs two calls.
            let payloads: Vec<Vec<u8>> = (0..BATCH + 5)
                .map(|n| format!("datagram {n}").into_bytes())
                .collect();
            let routes = [
                by_routing_table(to),
                Route {
                    to,
                    ifindex: 0,
                    source: Ipv4Addr::LOCALHOST,
                },
            ];
            let datagrams: Vec<(&[u8], Route)> = payloads
                .iter()
                .enumerate()
                .map(|(n, payload)| (&payload[..], routes[n / 3 % 2]))
                .collect();
            let mut next = 0;
            while next < datagrams.len() {
                let sent = client.send_batch(&datagrams[next..]).unwrap();
                assert!((1..=3).contains(&sent), "one run per route change: {sent}");
                next += sent;
            }
            let mut batch = ReceiveBatch::new(64);
            let mut received = Vec::new();
            let mut counts = Vec::new();
            while received.len() < payloads.len() {
                let count = server.recv_batch(&mut batch).await.unwrap();
                assert!((1..=BATCH).contains(&count));
                counts.push(count);
                for (datagram, arrival) in batch.iter() {
                    assert_eq!(arrival.from.port(), client_port);
                    assert_eq!(arrival.destination, Ipv4Addr::LOCALHOST);
                    received.push(datagram.to_vec());
                }
            }
            assert_eq!(received, payloads);
            // The first datagram was found queued (one recvmsg); the rest came in batches.
            assert_eq!(counts[0], 1);
            assert!(counts[1..].iter().any(|&count| count > 1), "{counts:?}");
        });
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_truncated() {
        runtime().block_on(async {
            let (server, to, client) = server_and_client();
            client.send(&[7; 100], by_routing_table(to)).unwrap();
            let mut batch = ReceiveBatch::new(16);
            server.recv_batch(&mut batch).await.unwrap();
            let (datagram, _) = batch.iter().next().unwrap();
            assert_eq!(datagram, &[7; 16]);
        });
    }
}
