//! A UDP socket that tells which interface a datagram came in on and which address it was
//! sent to (IP_PKTINFO), and sends replies out of a chosen interface from a chosen source
//! address. DHCP needs both: a broadcast DISCOVER carries no hint of which of the server's
//! addresses the client can reach, and a broadcast reply must leave by the interface the
//! request arrived on.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::libc;
use nix::sys::socket::{
    self, setsockopt, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, SockaddrIn,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The socket receive buffer asked for: about 10,000 DHCP requests.
const RECEIVE_BUFFER: usize = 4 << 20;

/// Where a datagram came from and where it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// Its length.
    pub(crate) len: usize,
    /// The sender.
    pub(crate) from: SocketAddrV4,
    /// The receiving interface's index.
    pub(crate) ifindex: u32,
    /// The local address the kernel would answer from on that interface (`ipi_spec_dst`):
    /// the server identifier for this client.
    pub(crate) local: Ipv4Addr,
    /// The datagram's destination address (`ipi_addr`): broadcast or one of ours.
    pub(crate) destination: Ipv4Addr,
}

/// A non-blocking UDP socket with IP_PKTINFO, registered with tokio.
#[derive(Debug)]
pub(crate) struct PktInfoSocket {
    inner: UdpSocket,
}

impl PktInfoSocket {
    /// Binds `0.0.0.0:port` with SO_REUSEADDR, SO_BROADCAST and IP_PKTINFO, limited to
    /// `interface` (SO_BINDTODEVICE) when given. Must be called inside a tokio runtime.
    pub(crate) fn bind(port: u16, interface: Option<&str>) -> io::Result<Self> {
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
        // them while the server is busy. Beyond net.core.rmem_max only root may go
        // (SO_RCVBUFFORCE); otherwise the kernel's cap applies.
        if setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        // The kernel reports twice the size set (its bookkeeping overhead), or the cap.
        let receive_buffer = socket::getsockopt(&fd, sockopt::RcvBuf).unwrap_or(0);
        if receive_buffer < RECEIVE_BUFFER {
            tracing::warn!(
                port,
                receive_buffer,
                "socket receive buffer capped (raise net.core.rmem_max or run with \
                 CAP_NET_ADMIN): request bursts beyond it are dropped"
            );
        } else {
            tracing::debug!(port, receive_buffer, "socket receive buffer");
        }
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
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }

    /// The bound port (useful when bound to port 0).
    #[cfg(test)]
    pub(crate) fn local_port(&self) -> io::Result<u16> {
        Ok(self.inner.local_addr()?.port())
    }

    /// Receives one datagram into `buf`. A datagram longer than `buf` is truncated (the
    /// caller's buffer is larger than any valid DHCP message, so the parser rejects it).
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<Arrival> {
        let fd = self.inner.as_raw_fd();
        self.inner
            .async_io(Interest::READABLE, || {
                let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
                let mut iov = [IoSliceMut::new(buf)];
                let msg = socket::recvmsg::<SockaddrIn>(
                    fd,
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )?;
                let mut arrival = Arrival {
                    len: msg.bytes,
                    from: msg
                        .address
                        .map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |a| {
                            SocketAddrV4::new(a.ip(), a.port())
                        }),
                    ifindex: 0,
                    local: Ipv4Addr::UNSPECIFIED,
                    destination: Ipv4Addr::UNSPECIFIED,
                };
                for control in msg.cmsgs()? {
                    if let ControlMessageOwned::Ipv4PacketInfo(info) = control {
                        arrival.ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
                        arrival.local = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                        arrival.destination = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                    }
                }
                Ok(arrival)
            })
            .await
    }

    /// Sends `datagram` to `to`, out of interface `ifindex` (0: by the routing table) from
    /// source address `source` (unspecified: the kernel's choice).
    pub(crate) async fn send(
        &self,
        datagram: &[u8],
        to: SocketAddrV4,
        ifindex: u32,
        source: Ipv4Addr,
    ) -> io::Result<()> {
        let fd = self.inner.as_raw_fd();
        let info = libc::in_pktinfo {
            ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(source).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let dest = SockaddrIn::from(to);
        self.inner
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(datagram)];
                let cmsgs = [ControlMessage::Ipv4PacketInfo(&info)];
                let cmsgs: &[ControlMessage<'_>] = if ifindex == 0 && source.is_unspecified() {
                    &[]
                } else {
                    &cmsgs
                };
                socket::sendmsg(fd, &iov, cmsgs, MsgFlags::empty(), Some(&dest))?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_reports_interface_and_destination() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = PktInfoSocket::bind(0, None).unwrap();
            let port = server.local_port().unwrap();
            let client = PktInfoSocket::bind(0, None).unwrap();
            let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            client
                .send(b"hello", to, 0, Ipv4Addr::UNSPECIFIED)
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            let arrival = server.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..arrival.len], b"hello");
            assert_eq!(arrival.destination, Ipv4Addr::LOCALHOST);
            assert_eq!(arrival.local, Ipv4Addr::LOCALHOST);
            assert_ne!(arrival.ifindex, 0);
            assert_eq!(*arrival.from.ip(), Ipv4Addr::LOCALHOST);
            // A reply with an explicit interface and source reaches the sender.
            server
                .send(b"back", arrival.from, arrival.ifindex, arrival.local)
                .await
                .unwrap();
            let arrival = client.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..arrival.len], b"back");
            assert_eq!(arrival.from.port(), port);
        });
    }
}
