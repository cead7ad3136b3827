//! Receiving on a socket driven by blocking calls, without tokio.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, MsgFlags, SockaddrStorage};

/// One `recvmsg` that does not wait, whatever the socket's blocking mode: the length and
/// source of the datagram waiting on `socket`, if any. A datagram longer than `buf` is
/// truncated to it.
pub fn receive_now(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<Option<(usize, SocketAddr)>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let message = match recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        None,
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(message) => message,
        Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
        Err(errno) => return Err(io::Error::from(errno)),
    };
    let from = message.address.and_then(|address| {
        if let Some(v4) = address.as_sockaddr_in() {
            Some(SocketAddr::from(SocketAddrV4::from(*v4)))
        } else {
            address
                .as_sockaddr_in6()
                .map(|v6| SocketAddr::from(SocketAddrV6::from(*v6)))
        }
    });
    match from {
        Some(from) => Ok(Some((message.bytes, from))),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a datagram without a source address",
        )),
    }
}

/// Sleeps until one of `sockets` has a datagram to read, or for `wait` at most: the index of
/// the first one that has, or `None` when none had one in time (or a signal came first).
///
/// `wait` is rounded up to whole milliseconds (`poll`'s unit): waking early would only
/// cost the caller a loop, but a deadline less than a millisecond away must not become a
/// poll that does not wait.
pub fn wait_readable(sockets: &[BorrowedFd<'_>], wait: Duration) -> io::Result<Option<usize>> {
    let millis = wait.as_nanos().div_ceil(1_000_000);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    let mut fds: Vec<PollFd<'_>> = sockets
        .iter()
        .map(|socket| PollFd::new(*socket, PollFlags::POLLIN))
        .collect();
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(errno) => return Err(io::Error::from(errno)),
    }
    // Errors and hang-ups count as readable: the read that follows reports them.
    Ok(fds.iter().position(|fd| fd.any().unwrap_or(true)))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::time::Instant;

    use super::*;

    fn socket_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    #[test]
    fn receive_now_returns_a_waiting_datagram_with_its_source_and_never_waits() {
        let (a, b) = socket_pair();
        let mut buf = [0u8; 8];
        assert!(receive_now(&a, &mut buf).unwrap().is_none());
        b.send_to(b"0123456789", a.local_addr().unwrap()).unwrap();
        assert_eq!(
            wait_readable(&[a.as_fd()], Duration::from_secs(5)).unwrap(),
            Some(0)
        );
        let (len, from) = receive_now(&a, &mut buf).unwrap().unwrap();
        assert_eq!(
            (len, &buf[..]),
            (8, &b"01234567"[..]),
            "truncated to the buffer"
        );
        assert_eq!(from, b.local_addr().unwrap());
    }

    #[test]
    fn wait_readable_names_the_socket_that_has_a_datagram_and_times_out_otherwise() {
        let (a, b) = socket_pair();
        let started = Instant::now();
        let ready = wait_readable(&[a.as_fd(), b.as_fd()], Duration::from_micros(10)).unwrap();
        assert_eq!(ready, None);
        assert!(
            started.elapsed() >= Duration::from_millis(1),
            "rounded up to 1 ms"
        );
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let ready = wait_readable(&[a.as_fd(), b.as_fd()], Duration::from_secs(5)).unwrap();
        assert_eq!(ready, Some(1));
    }
}
