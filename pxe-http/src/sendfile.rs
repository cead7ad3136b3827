//! File bytes sent by `sendfile(2)`: from the page cache to the socket, never copied through
//! our memory, as nginx sends static files.
//!
//! hyper owns the connection and writes only buffers, so a file body sent this way hands hyper
//! *placeholders*: chunks that point into [`PLACEHOLDER`], a static region nothing else
//! points into, each with the file range it stands for queued in the connection's
//! [`FileSends`]. The connection's stream ([`SendingFiles`]) writes real buffers as they are
//! and, where a placeholder comes up, calls `sendfile` for the file range at the front of the
//! queue instead. hyper writes a response's bytes in order and, with vectored writes on
//! (`http1::Builder::writev(true)`, its "queue" strategy), hands on the body's chunks
//! without copying them, so placeholders and queued ranges come up in the same order; a
//! placeholder whose length is not that of the range at the front of the queue is an error
//! that ends the connection, never bytes of the placeholder on the wire.
//!
//! Only the server's own threads ([`crate::serve_on_threads`]) send files this way: a
//! `sendfile` of a page not in the page cache waits for the disk on the serving thread, as
//! a read there does.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use nix::sys::socket::{MsgFlags, SockaddrStorage};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The most one placeholder chunk stands for. Larger files are several chunks (a
/// `sendfile` call each, at least), like nginx's `sendfile_max_chunk` (2 MiB): a fast client
/// on loopback cannot keep its connection's thread in one call for long.
const PLACEHOLDER_LEN: usize = 1024 * 1024;

/// What placeholder chunks point into. Never read: zeroed static memory the process never
/// touches costs no resident memory.
static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

/// A file range a placeholder chunk stands for.
#[derive(Debug)]
struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

/// The file ranges of one connection's placeholders not yet sent, in the order hyper
/// writes them. Cloning shares the queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileSends(Arc<Mutex<VecDeque<FileRange>>>);

impl FileSends {
    /// Queues up to [`PLACEHOLDER_LEN`] bytes of `file` from `offset` and returns the
    /// placeholder chunk that stands for them (`len` bytes at most; 0 for `len` 0).
    pub(crate) fn placeholder(&self, file: &Arc<File>, offset: u64, len: u64) -> Bytes {
        let len = usize::try_from(len).map_or(PLACEHOLDER_LEN, |len| len.min(PLACEHOLDER_LEN));
        if len > 0 {
            self.lock().push_back(FileRange {
                file: Arc::clone(file),
                offset,
                len,
            });
        }
        Bytes::from_static(&PLACEHOLDER[..len])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FileRange>> {
        // Nothing panics while holding the lock, so a poisoned queue is still in order.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `buf` is (the rest of) a placeholder chunk.
fn is_placeholder(buf: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let at = buf.as_ptr() as usize;
    !buf.is_empty() && at >= start && at < start + PLACEHOLDER_LEN
}

/// A connection's TCP stream that sends placeholder chunks' file ranges by `sendfile`.
#[derive(Debug)]
pub(crate) struct SendingFiles {
    stream: TcpStream,
    sends: FileSends,
}

impl SendingFiles {
    pub(crate) fn new(stream: TcpStream, sends: FileSends) -> Self {
        Self { stream, sends }
    }

    /// Sends up to `len` bytes (the rest of the placeholder at the front of the write) of
    /// the file range at the front of the queue.
    fn poll_send_file(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let mut queue = self.sends.lock();
            let Some(range) = queue.front_mut() else {
                return Poll::Ready(Err(out_of_step("no file range queued")));
            };
            if range.len != len {
                return Poll::Ready(Err(out_of_step("placeholder and file range differ")));
            }
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                let mut offset = i64::try_from(range.offset)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                nix::sys::sendfile::sendfile64(
                    self.stream.as_fd(),
                    range.file.as_fd(),
                    Some(&mut offset),
                    range.len,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while it was served",
                    )))
                }
                Ok(sent) => {
                    range.offset += sent as u64;
                    range.len -= sent;
                    if range.len == 0 {
                        queue.pop_front();
                    }
                    return Poll::Ready(Ok(sent));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Writes `bufs` (no placeholder among them), telling the kernel that more follows
    /// (`MSG_MORE`): a response's head then leaves in one packet with the file's first bytes
    /// instead of a small one of its own.
    fn poll_write_before_file(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let written = self.stream.try_io(Interest::WRITABLE, || {
                // nix 0.29 has no name for MSG_MORE.
                nix::sys::socket::sendmsg::<SockaddrStorage>(
                    std::os::fd::AsRawFd::as_raw_fd(&self.stream),
                    bufs,
                    &[],
                    MsgFlags::from_bits_retain(libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            });
            match written {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }
}

/// The error that ends a connection whose placeholders and file ranges no longer match.
fn out_of_step(what: &str) -> io::Error {
    io::Error::other(format!("sending a file by reference: {what}"))
}

impl AsyncRead for SendingFiles {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendingFiles {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if is_placeholder(buf) {
            return this.poll_send_file(cx, buf.len());
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match bufs.iter().position(|buf| is_placeholder(buf)) {
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
            Some(first) if bufs[..first].iter().all(|buf| buf.is_empty()) => {
                this.poll_send_file(cx, bufs[first].len())
            }
            Some(first) => this.poll_write_before_file(cx, &bufs[..first]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn connected(sends: FileSends) -> (SendingFiles, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (
            SendingFiles::new(accepted.unwrap().0, sends),
            client.unwrap(),
        )
    }

    #[test]
    fn only_placeholder_memory_is_a_placeholder() {
        let sends = FileSends::default();
        let file = Arc::new(tempfile::tempfile().unwrap());
        let chunk = sends.placeholder(&file, 0, 3 * PLACEHOLDER_LEN as u64);
        assert_eq!(
            chunk.len(),
            PLACEHOLDER_LEN,
            "one chunk stands for 1 MiB at most"
        );
        assert!(is_placeholder(&chunk));
        assert!(is_placeholder(&chunk[PLACEHOLDER_LEN - 1..]));
        assert!(!is_placeholder(&chunk[PLACEHOLDER_LEN..]), "empty");
        assert!(!is_placeholder(&[0u8; 16]));
        assert!(sends.placeholder(&file, 0, 0).is_empty());
        assert_eq!(sends.lock().len(), 1, "nothing queued for an empty range");
    }

    #[tokio::test]
    async fn head_and_file_range_arrive_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, b"0123456789").unwrap();
        let sends = FileSends::default();
        let (mut server, mut client) = connected(sends.clone()).await;
        let chunk = sends.placeholder(&Arc::new(file), 2, 5);
        let mut bufs = [IoSlice::new(b"head:"), IoSlice::new(&chunk)];
        let mut bufs = &mut bufs[..];
        let mut left = 5 + chunk.len();
        while left > 0 {
            let n = server.write_vectored(bufs).await.unwrap();
            IoSlice::advance_slices(&mut bufs, n);
            left -= n;
        }
        server.shutdown().await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, b"head:23456");
    }

    #[tokio::test]
    async fn a_placeholder_out_of_step_with_the_queue_is_an_error() {
        let sends = FileSends::default();
        let (mut server, _client) = connected(sends.clone()).await;
        let error = server.write(&PLACEHOLDER[..4]).await.unwrap_err();
        assert!(
            error.to_string().contains("no file range queued"),
            "{error}"
        );
        let file = Arc::new(tempfile::tempfile().unwrap());
        let chunk = sends.placeholder(&file, 0, 8);
        let error = server.write(&chunk[..4]).await.unwrap_err();
        assert!(error.to_string().contains("differ"), "{error}");
    }
}
