//! Socket buffer sizes.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};

/// Which of a socket's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// Datagrams received and not yet read (SO_RCVBUF).
    Receive,
    /// Datagrams sent and not yet on the wire (SO_SNDBUF).
    Send,
}

/// Asks for a socket buffer of `size` bytes and returns the size the kernel reports.
///
/// Beyond the sysctl cap (`net.core.rmem_max` / `wmem_max`) only a process with
/// CAP_NET_ADMIN may go, with SO_RCVBUFFORCE / SO_SNDBUFFORCE; otherwise the cap applies. The
/// kernel reports twice the size set (its bookkeeping overhead), or the cap: a result below
/// `size` means the cap won, which callers report to the operator.
pub fn ask_buffer_size(fd: &impl AsFd, buffer: Buffer, size: usize) -> usize {
    match buffer {
        Buffer::Receive => {
            if setsockopt(fd, sockopt::RcvBufForce, &size).is_err() {
                let _ = setsockopt(fd, sockopt::RcvBuf, &size);
            }
            getsockopt(fd, sockopt::RcvBuf).unwrap_or(0)
        }
        Buffer::Send => {
            if setsockopt(fd, sockopt::SndBufForce, &size).is_err() {
                let _ = setsockopt(fd, sockopt::SndBuf, &size);
            }
            getsockopt(fd, sockopt::SndBuf).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_at_least_what_was_asked_or_the_cap() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for buffer in [Buffer::Receive, Buffer::Send] {
            let before = ask_buffer_size(&socket, buffer, 4096);
            assert!(before >= 4096, "{buffer:?}: {before}");
            let after = ask_buffer_size(&socket, buffer, 1 << 20);
            assert!(after >= before, "{buffer:?}: {after} < {before}");
        }
    }
}
