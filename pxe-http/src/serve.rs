use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

use crate::limits::{Admission, Refusal};
use crate::sendfile::{FileSends, SendingFiles};
use crate::BootService;
#[cfg(doc)]
use crate::ClientAddr;

/// Limits of a standalone server: what one client, and a flood of them, can hold.
///
/// Every connection over a limit is closed at once, and every refusal is counted: the server
/// warns once per [`ServeConfig::report_interval`] with the counts (connections over the
/// limits, clients dropped for reading too slowly or sending no request, failed accepts);
/// the single events are logged at `debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a connection may take to send a request's headers, counted from the end of
    /// the previous response on a keep-alive connection: idle connections close after it.
    /// 30 s by default.
    pub header_timeout: Duration,
    /// How long a response write may wait on a client that does not read before the
    /// connection is dropped; also the period over which [`ServeConfig::min_send_rate`] is
    /// checked. 60 s by default.
    pub write_timeout: Duration,
    /// The slowest a client may read a response, in bytes per second: each time writes have
    /// waited on the client for a total of [`ServeConfig::write_timeout`], it must have
    /// taken at least this rate times that timeout since the previous check, or it is
    /// dropped. Only the time spent waiting on the client counts (not the server's own disk
    /// reads or policy calls). 0 checks only for progress. 16 KiB/s by default.
    pub min_send_rate: u64,
    /// The most connections the server holds at once; a connection accepted over it is
    /// closed at once. Each connection may hold one open file while it sends it, so keep this
    /// below half the process's file descriptor limit (`ulimit -n`), less the 128 files the
    /// file cache may keep open on [`serve_on_threads`]. 512 by default.
    pub max_connections: usize,
    /// The most connections one client address holds at once; more are closed at once. 64
    /// by default (a booting machine uses one or two).
    pub max_connections_per_client: usize,
    /// How often, at most, each kind of refusal is reported at `warn` (with its count).
    /// 10 s by default.
    pub report_interval: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            min_send_rate: 16 * 1024,
            max_connections: 512,
            max_connections_per_client: 64,
            report_interval: Duration::from_secs(10),
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

    /// Sets [`ServeConfig::min_send_rate`] (bytes per second).
    #[must_use]
    pub fn min_send_rate(mut self, bytes_per_second: u64) -> Self {
        self.min_send_rate = bytes_per_second;
        self
    }

    /// Sets [`ServeConfig::max_connections`].
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets [`ServeConfig::max_connections_per_client`].
    #[must_use]
    pub fn max_connections_per_client(mut self, max: usize) -> Self {
        self.max_connections_per_client = max;
        self
    }

    /// Sets [`ServeConfig::report_interval`].
    #[must_use]
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = interval;
        self
    }

    fn admission(&self) -> Arc<Admission> {
        Arc::new(Admission::new(
            self.max_connections,
            self.max_connections_per_client,
            self.report_interval,
        ))
    }
}

/// The most a connection's response may have queued in hyper before the body is read
/// further (hyper's `max_buf_size`, which also bounds a request head: 431 once a head is
/// incomplete with this much read). With the body's own
/// chunk it bounds what one connection holds: hyper's default (about 400 KiB) let a client
/// that stopped reading hold two 256 KiB chunks.
const CONNECTION_BUFFER: usize = 64 * 1024;

/// How long the accept loop pauses after `accept` failed for want of resources (file
/// descriptors, memory): retrying at once would spin, since the connection is still pending.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `service` on `listener` over HTTP/1.1 with keep-alive, one task per connection,
/// until the returned future is dropped, within the limits of `config`. The service learns
/// each request's client address as [`BootService::handle`] would from a [`ClientAddr`]
/// extension.
pub async fn serve(listener: TcpListener, service: BootService, config: ServeConfig) {
    serve_admitting(listener, service, config, config.admission()).await;
}

/// [`serve`] with the limits' state given: the threads of [`serve_on_threads`] share one.
async fn serve_admitting(
    listener: TcpListener,
    service: BootService,
    config: ServeConfig,
    admission: Arc<Admission>,
) {
    // Reports the counts of a flood that has stopped (the ones during it report themselves).
    // (A zero interval would panic here; it means "report every refusal" to the tallies.)
    let mut reports = tokio::time::interval(config.report_interval.max(Duration::from_millis(100)));
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = reports.tick() => {
                admission.report_due();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_peer_error(&error) => {
                debug!(%error, "accept failed: the connection went away first");
                continue;
            }
            Err(error) => {
                // Out of descriptors or memory: the connection waits in the backlog, and
                // accepting again at once would spin. Connections that end free descriptors.
                debug!(%error, "accept failed");
                admission.refused(Refusal::AcceptFailed, None, Some(&error));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                debug!(%peer, ?refusal, "connection refused: over a limit");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let admission = Arc::clone(&admission);
        tokio::spawn(async move {
            let _slot = slot;
            // Whether a request arrived: a header timeout before the first one is a client
            // that connected and said nothing (a slowloris), after it an idle keep-alive.
            let requested = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&requested);
            let sends = FileSends::default();
            let io = TokioIo::new(SendWatch::new(
                SendingFiles::new(stream, sends.clone()),
                config.write_timeout,
                config.min_send_rate,
            ));
            let handler = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                seen.store(true, Ordering::Relaxed);
                let service = service.clone();
                let sends = sends.clone();
                async move {
                    let mut response = service.answer(request, Some(peer)).await;
                    response.body_mut().send_by_reference(&sends);
                    Ok::<_, Infallible>(response)
                }
            });
            let result = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_timeout)
                .keep_alive(true)
                .max_buf_size(CONNECTION_BUFFER)
                // Body chunks handed on as they are, never copied into one buffer: a file's
                // placeholder chunks must reach `SendingFiles` (see `crate::sendfile`).
                .writev(true)
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
                if let Some(slow) = too_slow(&error) {
                    admission.refused(Refusal::SlowReader, Some(peer.ip()), Some(slow));
                } else if error.is_timeout() && !requested.load(Ordering::Relaxed) {
                    admission.refused(Refusal::SlowRequest, Some(peer.ip()), None);
                }
            }
        });
    }
}

/// Whether `accept` failed because of the connection itself (gone before it was accepted)
/// rather than for want of resources.
fn is_peer_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The [`TooSlow`] behind a connection's error, if the send watch dropped it.
fn too_slow(error: &hyper::Error) -> Option<&TooSlow> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(slow) = cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<TooSlow>())
        {
            return Some(slow);
        }
        source = cause.source();
    }
    None
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
/// single-threaded tokio runtime that accepts from the one listening socket and serves the
/// connections it accepted from start to end: the shape of nginx's worker processes. The
/// limits of `config` hold for the server as a whole.
///
/// Compared with [`serve`] on a multi-threaded runtime, a connection's requests never move
/// between threads, and each thread waits for its own sockets' events: on a busy machine
/// every thread runs whenever it has work, where a work-stealing runtime mostly leaves one
/// thread polling for all connections and wakes the others only now and then. The threads
/// share one socket (each its own descriptor of it) rather than one socket each with
/// `SO_REUSEPORT`, which would let any other process of the same user join the port and
/// take a share of the clients: here a port in use is an `AddrInUse` error, returned before
/// any thread starts. A new connection wakes every idle thread and one accepts it; with a
/// thread per CPU that costs a few wake-ups per connection, not per request.
///
/// Since these threads are the server's own, each opens, `stat`s and reads files itself, as
/// nginx's workers do, instead of handing every call to tokio's blocking pool and back: with
/// the files in the page cache, those two hand-offs cost a small file request more than the
/// calls themselves. A read that waits on a slow disk stalls only the connections of its own
/// thread. For the same reason file bodies above 16 KiB go from the page cache to the socket
/// by `sendfile`, never read into memory, as nginx sends them. ([`serve`], on a runtime that
/// may be the embedder's, keeps file calls on the blocking pool.)
pub fn serve_on_threads(
    addr: SocketAddr,
    service: BootService,
    config: ServeConfig,
    threads: NonZeroUsize,
) -> io::Result<ServerThreads> {
    let mut runtimes = Vec::with_capacity(threads.get());
    let started = start_threads(addr, service, config, threads, &mut runtimes);
    if started.is_err() {
        // Dropping a runtime blocks, which panics in an async caller: let them go instead.
        for runtime in runtimes {
            runtime.shutdown_background();
        }
    }
    started
}

/// [`serve_on_threads`], leaving in `runtimes` those it made but did not hand to a thread.
fn start_threads(
    addr: SocketAddr,
    service: BootService,
    config: ServeConfig,
    threads: NonZeroUsize,
    runtimes: &mut Vec<tokio::runtime::Runtime>,
) -> io::Result<ServerThreads> {
    for _ in 0..threads.get() {
        runtimes.push(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        );
    }
    let listener = listening_socket(&runtimes[0], addr)?;
    let (stop, stopped) = watch::channel(false);
    let mut server = ServerThreads {
        local_addr: listener.local_addr()?,
        threads: Vec::with_capacity(threads.get()),
        stop,
    };
    let admission = config.admission();
    for n in 0..threads.get() {
        // Registered with the reactor of the runtime that will serve it.
        let listener = {
            let _entered = runtimes[0].enter();
            TcpListener::from_std(listener.try_clone()?)?
        };
        let runtime = runtimes.remove(0);
        let service = service.on_own_thread();
        let admission = Arc::clone(&admission);
        let mut stopped = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pxe-http-{n}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = serve_admitting(listener, service, config, admission) => {}
                        _ = stopped.wait_for(|stop| *stop) => {}
                    }
                });
            })?;
        server.threads.push(thread);
    }
    Ok(server)
}

/// Pending connections the listening socket holds (tokio's own `bind` uses the same).
const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `addr`, without `SO_REUSEPORT`: a port another socket listens on
/// is `AddrInUse`. (`SO_REUSEADDR` only lets it bind over connections of an earlier server
/// still in TIME_WAIT.) Made in `runtime` (tokio listens only there) and handed back
/// unregistered, non-blocking, for each thread to register a descriptor of its own.
fn listening_socket(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
) -> io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let _entered = runtime.enter();
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Why a send watch dropped a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TooSlow {
    /// No byte taken for a whole write timeout.
    Stopped,
    /// Fewer bytes than the minimum send rate asks for over a write timeout spent waiting.
    BelowMinimumRate,
}

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TooSlow::Stopped => "client stopped reading",
            TooSlow::BelowMinimumRate => "client reads below the minimum send rate",
        })
    }
}

impl std::error::Error for TooSlow {}

/// A stream whose writes fail when the client holds them up: when a write waits a whole
/// `timeout` without progress, or when, over each `timeout` spent waiting on the client in
/// total, it took fewer than `min_rate` bytes per second. The clock is read only while a
/// write waits, never on writes the socket takes at once.
struct SendWatch<S> {
    inner: S,
    timeout: Duration,
    /// Bytes the client must take per `timeout` spent waiting (at least 1: progress).
    min_bytes: u64,
    deadline: Pin<Box<Sleep>>,
    /// When the current write started waiting on the client.
    waiting_since: Option<Instant>,
    /// Time spent waiting on the client since the last check, not counting the current wait.
    waited: Duration,
    /// Bytes written since the last check.
    sent: u64,
}

impl<S> SendWatch<S> {
    fn new(inner: S, timeout: Duration, min_rate: u64) -> Self {
        let min_bytes = u64::try_from(u128::from(min_rate) * timeout.as_millis() / 1000)
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            inner,
            timeout,
            min_bytes,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            waiting_since: None,
            waited: Duration::ZERO,
            sent: 0,
        }
    }

    /// Closes the period that ends `now` if a whole timeout was spent waiting in it: the
    /// client must have taken enough bytes, and a new period starts.
    fn check_period(&mut self, now: Instant) -> Result<(), TooSlow> {
        let waited = self.waited + self.waiting_since.map_or(Duration::ZERO, |s| now - s);
        if waited < self.timeout {
            return Ok(());
        }
        if self.sent < self.min_bytes {
            return Err(if self.sent == 0 {
                TooSlow::Stopped
            } else {
                TooSlow::BelowMinimumRate
            });
        }
        self.waited = Duration::ZERO;
        self.sent = 0;
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
        Ok(())
    }

    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(written)) => {
                self.sent = self.sent.saturating_add(written as u64);
                if let Some(since) = self.waiting_since.take() {
                    let now = Instant::now();
                    self.waited += now - since;
                    if let Err(slow) = self.check_period(now) {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, slow)));
                    }
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => loop {
                let now = Instant::now();
                if self.waiting_since.is_none() {
                    self.waiting_since = Some(now);
                }
                if let Err(slow) = self.check_period(now) {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, slow)));
                }
                // Wake when this period would be complete.
                let since = self.waiting_since.unwrap_or(now);
                let end = since + self.timeout.saturating_sub(self.waited);
                if self.deadline.deadline() != end {
                    self.deadline.as_mut().reset(end);
                }
                if self.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendWatch<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendWatch<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx).map_ok(|()| 0);
        this.watch(cx, poll).map_ok(|_| ())
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

    #[test]
    fn a_second_server_on_the_same_port_fails_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let service = BootService::builder().root(dir.path()).build().unwrap();
        let threads = NonZeroUsize::new(2).unwrap();
        let config = ServeConfig::default();
        let first = serve_on_threads(
            "127.0.0.1:0".parse().unwrap(),
            service.clone(),
            config,
            threads,
        )
        .unwrap();
        let second = serve_on_threads(first.local_addr(), service, config, threads);
        assert_eq!(
            second.unwrap_err().kind(),
            io::ErrorKind::AddrInUse,
            "a second server joined the port"
        );
    }

    /// Writes `total` bytes through a send watch into a 4 KiB pipe whose other end reads
    /// `per_read` bytes every `every` (nothing with `per_read` 0); the send watch's error
    /// that ended the writes, if any.
    async fn watched_writes(
        min_rate: u64,
        timeout: Duration,
        per_read: usize,
        every: Duration,
        total: usize,
    ) -> Option<TooSlow> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (writer, mut reader) = tokio::io::duplex(4096);
        let mut watched = SendWatch::new(writer, timeout, min_rate);
        let reading = tokio::spawn(async move {
            let mut buf = vec![0u8; per_read.max(1)];
            loop {
                tokio::time::sleep(every).await;
                if per_read > 0 && matches!(reader.read(&mut buf).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        });
        let data = vec![7u8; total];
        let written = tokio::time::timeout(Duration::from_secs(20), watched.write_all(&data))
            .await
            .expect("the writes ended within 20 s");
        reading.abort();
        written.err().map(|error| {
            *error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TooSlow>())
                .unwrap_or_else(|| panic!("not a send watch error: {error}"))
        })
    }

    #[tokio::test]
    async fn send_watch_drops_stalled_and_slow_readers_and_keeps_fast_ones() {
        let timeout = Duration::from_millis(300);
        // Reads nothing: no progress for a whole timeout.
        let stopped = watched_writes(1000, timeout, 0, Duration::from_millis(10), 1 << 20).await;
        assert_eq!(stopped, Some(TooSlow::Stopped));
        // About 2 KB/s where 100 KB/s is asked.
        let slow = watched_writes(100_000, timeout, 100, Duration::from_millis(50), 1 << 20).await;
        assert_eq!(slow, Some(TooSlow::BelowMinimumRate));
        // About 4 MB/s where 100 KB/s is asked: the whole megabyte arrives.
        let fast = watched_writes(100_000, timeout, 4096, Duration::from_millis(1), 1 << 20).await;
        assert_eq!(fast, None);
    }
}
