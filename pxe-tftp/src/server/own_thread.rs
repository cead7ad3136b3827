//! A transfer on a blocking thread of its own: one `poll` and one `recvmsg` to sleep until
//! each ACK and one `sendmsg` per block or GSO run, the fewest system calls and wake-ups a
//! block or window can take (the event loop adds a failed `recvfrom` and an `epoll_wait` per
//! ACK, and lock-step speed is wake-up latency). Before it sleeps it may poll for a while
//! ([`PollFirst`]); a transfer that does not poll may follow its peer's datagrams to the CPU
//! they arrive on ([`FollowCpu`]). Both only when the embedder asks.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use pxe_udp::segments::{self, Segmentation};
use pxe_udp::{receive_now, wait_readable};

use super::driver::{Received, TransferPort};
use super::host_cpu::{FollowCpu, Load, PollFirst};
use crate::transfer::Transmit;

/// Transfers served at once on a blocking thread of their own; the rest run on the event
/// loop.
pub(super) const TRANSFER_THREADS: usize = 8;

/// A [`TransferPort`] of blocking calls, for a transfer on a thread of its own.
pub(super) struct OwnThreadPort<'a> {
    pub(super) sockets: TransferSockets,
    pub(super) segmentation: &'a Segmentation,
    pub(super) poll_first: PollFirst<'a>,
    /// Set when the transfer follows its peer's CPU. While it runs there it never polls
    /// (spinning on the CPU that delivers the peer's datagrams would hold up their
    /// delivery, and a wake-up there is cheap); it polls, if it may, only while it cannot
    /// follow (the CPU is not one it may run on, or another transfer has it).
    pub(super) follow_cpu: Option<FollowCpu<'a>>,
    /// The transfers in progress: with more than CPUs, the CPU has other work and the
    /// transfer does not poll.
    pub(super) load: &'a Load,
}

impl TransferPort for OwnThreadPort<'_> {
    async fn send(&mut self, batch: &[Transmit]) {
        segments::send_all(&self.sockets.peer, batch, self.segmentation);
    }

    async fn receive(&mut self, buf: &mut [u8], deadline: Instant) -> Received {
        let on_arrival_cpu = self
            .follow_cpu
            .as_ref()
            .is_some_and(FollowCpu::is_on_arrival_cpu);
        let polled = if on_arrival_cpu || self.load.is_crowded() {
            None
        } else {
            self.poll_first.receive(&self.sockets.peer, buf)
        };
        let received = match polled {
            Some(received) => received.map(Some),
            None => {
                let wait = deadline.saturating_duration_since(Instant::now());
                self.sockets.wait(buf, wait)
            }
        };
        match received {
            Ok(Some((len, from))) => {
                if let Some(follow_cpu) = &mut self.follow_cpu {
                    follow_cpu.follow(&self.sockets.peer);
                }
                Received::Datagram { from, len }
            }
            Ok(None) => Received::TimedOut,
            // ICMP errors of earlier sends surface on the connected socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Received::Woken,
            Err(error) => {
                tracing::debug!(%error, "transfer socket failed");
                Received::Closed
            }
        }
    }
}

/// A blocking transfer's sockets, both bound to the transfer's port.
///
/// `peer` is connected to the client: the kernel records which CPU a UDP socket's datagrams
/// arrive on only for connected sockets ([`FollowCpu`] needs it), and a connected socket
/// sees its peer's datagrams only. `others` is the port's first socket, left unconnected
/// (the two share the port with SO_REUSEPORT, which only the same user may join): it gets
/// every other sender's datagrams, which the transfer answers with ERROR 5 as RFC 1350
/// asks (when the ACKs come while the transfer polls, at its next sleep). Where that cannot
/// be set up, `peer` is the first socket, unconnected, and takes both.
pub(super) struct TransferSockets {
    pub(super) peer: std::net::UdpSocket,
    pub(super) others: Option<std::net::UdpSocket>,
}

impl TransferSockets {
    /// Blocking sockets for `peer`'s transfer on `socket`'s port.
    pub(super) fn new(socket: std::net::UdpSocket, peer: SocketAddr) -> io::Result<Self> {
        // Blocking, so that a full send buffer waits instead of failing a send.
        socket.set_nonblocking(false)?;
        Ok(match Self::connected_twin(&socket, peer) {
            Ok(connected) => Self {
                peer: connected,
                others: Some(socket),
            },
            Err(error) => {
                tracing::debug!(%peer, %error, "transfer socket stays unconnected");
                let _ = socket2::SockRef::from(&socket).set_reuse_port(false);
                Self {
                    peer: socket,
                    others: None,
                }
            }
        })
    }

    /// A second socket on `socket`'s port, connected to `peer`.
    fn connected_twin(
        socket: &std::net::UdpSocket,
        peer: SocketAddr,
    ) -> io::Result<std::net::UdpSocket> {
        use socket2::{Domain, Protocol, Socket, Type};
        let local = socket.local_addr()?;
        // Set only now that the port is taken: a socket that asks for any free port with
        // SO_REUSEPORT set could be given this one.
        socket2::SockRef::from(socket).set_reuse_port(true)?;
        let twin = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
        twin.set_reuse_port(true)?;
        twin.bind(&local.into())?;
        twin.connect(&peer.into())?;
        Ok(twin.into())
    }

    /// Sleeps until a datagram reaches either socket, or for `wait` at most: the datagram
    /// (the peer's first), or `None` when none came.
    pub(super) fn wait(
        &self,
        buf: &mut [u8],
        wait: Duration,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        let ready = match &self.others {
            Some(others) => wait_readable(&[self.peer.as_fd(), others.as_fd()], wait)?,
            None => wait_readable(&[self.peer.as_fd()], wait)?,
        };
        match (ready, &self.others) {
            (Some(1), Some(others)) => receive_now(others, buf),
            _ => receive_now(&self.peer, buf),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Two loopback sockets: the server's and its peer's.
    pub(in crate::server) fn socket_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (server, peer)
    }

    #[test]
    fn peer_and_strangers_reach_their_own_socket_on_one_port() {
        let (server, client) = socket_pair();
        let port = server.local_addr().unwrap();
        let peer = client.local_addr().unwrap();
        let sockets = TransferSockets::new(server, peer).unwrap();
        assert!(sockets.others.is_some(), "a connected twin on Linux");
        assert_eq!(sockets.peer.local_addr().unwrap(), port, "the same port");
        let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        let wait = Duration::from_secs(2);

        stranger.send_to(b"stranger", port).unwrap();
        let (len, from) = sockets.wait(&mut buf, wait).unwrap().unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"stranger"[..], stranger.local_addr().unwrap())
        );
        assert!(
            receive_now(&sockets.peer, &mut buf).unwrap().is_none(),
            "not on the peer's"
        );

        client.send_to(b"ack", port).unwrap();
        assert!(receive_now(sockets.others.as_ref().unwrap(), &mut buf)
            .unwrap()
            .is_none());
        let (len, from) = sockets.wait(&mut buf, wait).unwrap().unwrap();
        assert_eq!((&buf[..len], from), (&b"ack"[..], peer));
        let cpu = socket2::SockRef::from(&sockets.peer)
            .cpu_affinity()
            .unwrap();
        assert!(
            cpu < 4096,
            "the arrival CPU is recorded for the connected socket: {cpu}"
        );

        let started = Instant::now();
        assert!(sockets
            .wait(&mut buf, Duration::from_millis(20))
            .unwrap()
            .is_none());
        assert!(
            started.elapsed() >= Duration::from_millis(20),
            "waited the whole time"
        );
    }
}
