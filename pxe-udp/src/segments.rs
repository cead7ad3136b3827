//! Sending datagrams made of a header and a payload slice without copying, and a run of
//! equal-size datagrams to one peer with one UDP GSO `sendmsg`.
//!
//! The kernel cuts a GSO send into datagrams of the given segment size (the last may be
//! shorter), so a run of up to [`MAX_SEGMENTS`] goes out with one system call: an iovec for
//! each header and one for each payload, all pointing into the caller's buffers. Where the
//! kernel or device cannot do UDP GSO, the first refused send turns it off for that
//! [`Segmentation`] and everything goes out one datagram at a time.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most bytes of UDP payload one GSO send may carry (IPv4's 65 507, minus slack).
pub const MAX_BYTES: usize = 65_000;
/// Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS).
pub const MAX_SEGMENTS: usize = 64;

/// A datagram to send: a header and a payload, each borrowed from wherever it lives (a
/// payload is typically a slice of a shared file), sent as two iovecs.
pub trait Datagram {
    /// Where it goes.
    fn destination(&self) -> SocketAddr;
    /// Its first bytes (may be empty).
    fn header(&self) -> &[u8];
    /// The rest.
    fn payload(&self) -> &[u8];
    /// Its whole length.
    fn len(&self) -> usize {
        self.header().len() + self.payload().len()
    }
    /// Whether it has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the kernel takes UDP GSO sends on a server's sockets: on until it first refuses
/// one (an old kernel, an odd device), then off for good.
#[derive(Debug)]
pub struct Segmentation {
    enabled: AtomicBool,
}

impl Default for Segmentation {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(true),
        }
    }
}

impl Segmentation {
    /// Whether runs still go out as GSO sends.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// How many datagrams from the start of `batch` go out with one system call: a GSO run
    /// while the kernel takes GSO sends, else one.
    fn next_run<D: Datagram>(&self, batch: &[D]) -> usize {
        if self.is_enabled() {
            gso_run(batch)
        } else {
            1
        }
    }

    /// What is left of `rest` after trying to send its first `sent_len` datagrams. A GSO
    /// send the kernel refuses (see [`gso_refused`]) turns GSO off and leaves the run to go
    /// out one datagram at a time; any other failure is the peer's path (a client gone away,
    /// reported on a connected socket) and skips the run, which the caller's retransmission
    /// covers.
    fn after_send<'b, D: Datagram>(
        &self,
        rest: &'b [D],
        sent_len: usize,
        result: io::Result<()>,
    ) -> &'b [D] {
        match result {
            Ok(()) => &rest[sent_len..],
            Err(error) if sent_len >= 2 && gso_refused(&error) => {
                tracing::debug!(%error, "udp gso send refused; sending datagrams one by one");
                self.enabled.store(false, Ordering::Relaxed);
                rest
            }
            Err(error) => {
                tracing::debug!(peer = %rest[0].destination(), %error, "send failed");
                &rest[sent_len..]
            }
        }
    }
}

/// Whether a failed GSO send means the kernel or device cannot do UDP GSO: an unknown
/// control message or a bad segment size (EINVAL), no checksum offload (EIO), or no support
/// at all.
fn gso_refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::EIO | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT)
    )
}

/// How many datagrams from the start of `batch` one GSO send can carry: those to the first
/// one's destination with its length, and then one shorter (only the last segment may be).
fn gso_run<D: Datagram>(batch: &[D]) -> usize {
    let first = &batch[0];
    let segment = first.len();
    let max = MAX_SEGMENTS.min(MAX_BYTES / segment.max(1));
    let mut run = 1;
    while run < batch.len() && run < max {
        let next = &batch[run];
        if next.destination() != first.destination() || next.len() > segment || next.is_empty() {
            break;
        }
        run += 1;
        if next.len() < segment {
            break;
        }
    }
    run
}

/// Sends one datagram with a vectored `sendmsg`: header and payload, no copy. Waits for
/// buffer space only if the socket is blocking.
pub fn send_one(socket: &impl AsFd, datagram: &impl Datagram) -> io::Result<()> {
    let parts = [
        IoSlice::new(datagram.header()),
        IoSlice::new(datagram.payload()),
    ];
    socket2::SockRef::from(socket)
        .send_to_vectored(&parts, &socket2::SockAddr::from(datagram.destination()))
        .map(|_| ())
}

/// One system call for `run`: [`send_one`] for one datagram, a UDP GSO `sendmsg` for more
/// (all to one destination, sized as [`gso_run`] checks).
fn send_run<D: Datagram>(fd: BorrowedFd<'_>, run: &[D]) -> io::Result<()> {
    if let [datagram] = run {
        return send_one(&fd, datagram);
    }
    let segment =
        u16::try_from(run[0].len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let destination = SockaddrStorage::from(run[0].destination());
    // On the stack: a header and a payload slice per segment.
    let mut iov = [IoSlice::new(&[]); 2 * MAX_SEGMENTS];
    for (slots, datagram) in iov.chunks_exact_mut(2).zip(run) {
        slots[0] = IoSlice::new(datagram.header());
        slots[1] = IoSlice::new(datagram.payload());
    }
    let iov = &iov[..2 * run.len()];
    let cmsgs = [ControlMessage::UdpGsoSegments(&segment)];
    sendmsg(
        fd.as_raw_fd(),
        iov,
        &cmsgs,
        MsgFlags::empty(),
        Some(&destination),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// Sends `batch` in order on a socket driven by blocking calls, a GSO run per system call
/// (see the module's docs). A failed send is logged at `debug` and skipped.
pub fn send_all<D: Datagram>(socket: &impl AsFd, batch: &[D], segmentation: &Segmentation) {
    let mut rest = batch;
    while !rest.is_empty() {
        let run = &rest[..segmentation.next_run(rest)];
        let result = send_run(socket.as_fd(), run);
        rest = segmentation.after_send(rest, run.len(), result);
    }
}

/// [`send_all`] on a tokio socket: waits for buffer space without blocking the thread.
pub async fn send_all_async<D: Datagram>(
    socket: &UdpSocket,
    batch: &[D],
    segmentation: &Segmentation,
) {
    let mut rest = batch;
    while !rest.is_empty() {
        let run = &rest[..segmentation.next_run(rest)];
        let result = socket
            .async_io(Interest::WRITABLE, || send_run(socket.as_fd(), run))
            .await;
        rest = segmentation.after_send(rest, run.len(), result);
    }
}

/// [`send_one`] on a tokio socket: waits for buffer space without blocking the thread.
pub async fn send_one_async(socket: &UdpSocket, datagram: &impl Datagram) -> io::Result<()> {
    socket
        .async_io(Interest::WRITABLE, || send_one(socket, datagram))
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Block {
        to: SocketAddr,
        header: [u8; 2],
        payload: Vec<u8>,
    }

    impl Datagram for Block {
        fn destination(&self) -> SocketAddr {
            self.to
        }
        fn header(&self) -> &[u8] {
            &self.header
        }
        fn payload(&self) -> &[u8] {
            &self.payload
        }
    }

    fn block(to: SocketAddr, n: u8, len: usize) -> Block {
        Block {
            to,
            header: [0xbe, n],
            payload: vec![n; len],
        }
    }

    #[test]
    fn runs_are_equal_sizes_to_one_peer_ending_at_a_shorter_one() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let batch = [
            block(a, 0, 100),
            block(a, 1, 100),
            block(a, 2, 50),
            block(a, 3, 50),
        ];
        assert_eq!(gso_run(&batch), 3, "the shorter block ends the run");
        assert_eq!(gso_run(&batch[3..]), 1);
        let batch = [block(a, 0, 100), block(b, 1, 100)];
        assert_eq!(gso_run(&batch), 1, "another peer starts another run");
        let batch = [block(a, 0, 100), block(a, 1, 200)];
        assert_eq!(gso_run(&batch), 1, "a longer block starts another run");
        let many: Vec<Block> = (0..200).map(|n| block(a, n as u8, 10)).collect();
        assert_eq!(gso_run(&many), MAX_SEGMENTS);
        let big: Vec<Block> = (0..200).map(|n| block(a, n as u8, 8000)).collect();
        assert_eq!(gso_run(&big), MAX_BYTES / 8002);
    }

    #[test]
    fn only_a_refused_gso_send_turns_gso_off_and_other_failures_skip_the_run() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let run = [block(to, 0, 8), block(to, 1, 8), block(to, 2, 8)];
        let segmentation = Segmentation::default();
        let gone = io::Error::from_raw_os_error(Errno::ECONNREFUSED as i32);
        assert!(segmentation.after_send(&run, 3, Err(gone)).is_empty());
        assert!(segmentation.is_enabled(), "a peer gone away keeps GSO on");
        let refused = io::Error::from_raw_os_error(Errno::EIO as i32);
        assert_eq!(segmentation.after_send(&run, 3, Err(refused)).len(), 3);
        assert!(!segmentation.is_enabled());
        assert_eq!(segmentation.next_run(&run), 1);
    }

    #[test]
    fn a_batch_arrives_in_order_as_separate_datagrams() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let batch: Vec<Block> = (0..10)
            .map(|n| block(to, n, if n == 9 { 300 } else { 1000 }))
            .collect();
        let segmentation = Segmentation::default();
        send_all(&sender, &batch, &segmentation);
        let mut buf = [0u8; 2000];
        for expected in &batch {
            let len = receiver.recv(&mut buf).unwrap();
            assert_eq!(len, expected.len());
            assert_eq!(&buf[..2], expected.header());
            assert_eq!(&buf[2..len], &expected.payload[..]);
        }
    }
}
