use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use crate::BootService;
#[cfg(doc)]
use crate::ClientAddr;

/// Limits of a standalone server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a connection may take to send a request's headers, counted from the end of
    /// the previous response on a keep-alive connection: idle connections close after it.
    pub header_timeout: Duration,
    /// How long a response write may make no progress before the connection is dropped
    /// (a client that stopped reading).
    pub write_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
        }
    }
}

impl ServeConfig {
    /// Sets [`ServeConfig::header_timeout`].
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets [`ServeConfig::write_timeout`].
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }
}

/// Serves `service` on `listener` over HTTP/1.1 with keep-alive, one task per connection,
/// until the returned future is dropped. The service learns each request's client address
/// as [`BootService::handle`] would from a [`ClientAddr`] extension.
pub async fn serve(listener: TcpListener, service: BootService, config: ServeConfig) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or a connection reset before accept: wait, go on.
                debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(WriteTimeout::new(stream, config.write_timeout));
            let handler = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.answer(request, Some(peer)).await) }
            });
            let result = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .keep_alive(true)
                // A request body is never read, so a client that shuts down its sending side
                // after the request still gets its answer. It also spares a read (and a new
                // read buffer) per request that only looked for that shutdown while the
                // response was being made; a client that goes away entirely is noticed by
                // the failing write, and one that stops reading by the write timeout.
                .half_close(true)
                .serve_connection(io, handler)
                .await;
            if let Err(error) = result {
                debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// A standalone server on threads of its own, from [`serve_on_threads`]. Dropping it stops
/// the server: it stops accepting, drops every connection, and waits for its threads.
#[derive(Debug)]
pub struct ServerThreads {
    local_addr: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl ServerThreads {
    /// The address the server listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Blocks until the server's threads end, which they do only when one panics.
    pub fn join(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerThreads {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Serves `service` on `addr` like [`serve`], on `threads` threads of its own, each a
/// single-threaded tokio runtime with its own listening socket on the same address
/// (`SO_REUSEPORT`: the kernel spreads new connections over them), serving the connections
/// it accepted from start to end: the shape of nginx's worker processes.
///
/// Compared with [`serve`] on a multi-threaded runtime, a connection's requests never move
/// between threads, and each thread waits for its own sockets' events: on a busy machine
/// every thread runs whenever it has work, where a work-stealing runtime mostly leaves one
/// thread polling for all connections and wakes the others only now and then. Other
/// processes of the same user can join the port's socket group (that is what
/// `SO_REUSEPORT` allows); the sockets are bound before this returns, so a port that is in
/// use is an error here.
pub fn serve_on_threads(
    addr: SocketAddr,
    service: BootService,
    config: ServeConfig,
    threads: NonZeroUsize,
) -> io::Result<ServerThreads> {
    let (stop, stopped) = watch::channel(false);
    let mut server = ServerThreads {
        local_addr: addr,
        threads: Vec::with_capacity(threads.get()),
        stop,
    };
    for n in 0..threads.get() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The first socket learns the port (the system picks one for port 0); the others
        // join it.
        let socket = reuse_port_socket(server.local_addr)?;
        if n == 0 {
            server.local_addr = socket.local_addr()?;
        }
        // Registered with the reactor of the runtime that will serve it.
        let listener = {
            let _entered = runtime.enter();
            socket.listen(LISTEN_BACKLOG)?
        };
        let service = service.clone();
        let mut stopped = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pxe-http-{n}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = serve(listener, service, config) => {}
                        _ = stopped.wait_for(|stop| *stop) => {}
                    }
                });
            })?;
        server.threads.push(thread);
    }
    Ok(server)
}

/// Pending connections each listening socket holds (tokio's own `bind` uses the same).
const LISTEN_BACKLOG: u32 = 1024;

fn reuse_port_socket(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// A stream whose writes fail when they make no progress for `timeout`.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.armed {
                    self.armed = true;
                    self.deadline.as_mut().reset(Instant::now() + self.timeout);
                }
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// One keep-alive GET on `stream`, returning the body.
    fn get(stream: &mut TcpStream, path: &str) -> String {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_string();
                }
            }
        }
    }

    #[test]
    fn threads_share_the_port_and_stop_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "served").unwrap();
        let service = BootService::builder().root(dir.path()).build().unwrap();
        let threads = NonZeroUsize::new(3).unwrap();
        let server = serve_on_threads(
            "127.0.0.1:0".parse().unwrap(),
            service,
            ServeConfig::default(),
            threads,
        )
        .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        // Enough connections that each thread gets some; two requests on each.
        let mut streams: Vec<TcpStream> =
            (0..12).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for _ in 0..2 {
            for stream in &mut streams {
                assert_eq!(get(stream, "/a.txt"), "served");
            }
        }
        drop(server);
        // Every thread has stopped: connections are closed and nothing listens.
        let mut buf = [0u8; 1];
        assert_eq!(streams[0].read(&mut buf).unwrap_or(0), 0);
        assert!(TcpStream::connect(addr).is_err());
    }
}
