//! The tokio server: a short loop around [`Transfer`].
//!
//! The listening socket takes requests. Each accepted read request becomes a task that owns
//! a [`Transfer`] and either its own socket (a new port per transfer as RFC 1350 describes,
//! optionally drawn from a configured range for NAT and containers) or, in single-port mode,
//! the datagrams the listener routes to it by client address. A transfer on its own socket
//! moves to a blocking thread while one of a few is free (see `serve_blocking`), where it
//! may poll briefly for each ACK before it sleeps (lock-step transfers do by default; see
//! `PollFirst`) or else runs on the CPU its peer's ACKs arrive on (see `FollowCpu`).

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pxe_policy::{ClientRecords, MacAddr};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Semaphore};

use crate::error::{Error, ErrorCode};
use crate::listener::{self, ListenerAction, ReadRequest, Refused};
use crate::observe::TftpObserver;
use crate::options::{Negotiated, TransferConfig};
use crate::source::FileSource;
use crate::summary::{Refusal, Summary};
use crate::transfer::{Event, Outcome, Transfer, Transmit};

/// Which local ports transfers use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PortMode {
    /// A new ephemeral port per transfer (RFC 1350's transfer IDs).
    #[default]
    Ephemeral,
    /// A new port per transfer, from this range (for firewalls, NAT and containers).
    Range(RangeInclusive<u16>),
    /// Every transfer on the listening port, told apart by client address.
    Single,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Transfer limits and defaults.
    pub transfer: TransferConfig,
    /// Which ports transfers use.
    pub ports: PortMode,
    /// Most transfers at once, overall (default 4096). When all are taken, a new request
    /// takes the place of the oldest transfer whose client has not acknowledged anything yet
    /// (that transfer's client gets ERROR 0 "server busy"); only when every transfer has
    /// made progress is the request refused.
    pub max_transfers: usize,
    /// Most transfers at once from one client address (default 16).
    pub max_transfers_per_client: usize,
    /// How often refusals, evictions and the like are summed up in one `warn` line (default
    /// 10 s). Each request's detail is logged at `debug` only.
    pub summary_interval: Duration,
    /// Most per-transfer `info` lines ("tftp download", "tftp size probe") per
    /// [`summary_interval`](Self::summary_interval) (default 200); the summary counts the
    /// rest, so that a flood of short downloads cannot flood the log.
    pub max_info_lines_per_interval: u32,
    /// How long a lock-step transfer polls its socket for the next ACK before its thread
    /// sleeps (default zero: never; [`ServerConfig::dedicated`] polls 50 µs). Polling trades
    /// a little CPU for a faster turnaround to near peers, and stops by itself for peers
    /// slower than this. Off by default: a library does not busy-poll in its host's process
    /// unless asked.
    pub lock_step_poll: Duration,
    /// The same for windowed transfers (default zero: never). A window's ACK comes only
    /// after the client has taken the whole window, so polling for it costs more CPU per
    /// MiB than it does in lock-step; it still makes windows of 16 or fewer blocks to a
    /// near peer markedly faster (see `scripts/bench-tftp`).
    pub windowed_poll: Duration,
    /// Whether a transfer on a blocking thread that does not poll moves its thread to the
    /// CPU its peer's ACKs arrive on, one transfer per CPU (default false;
    /// [`ServerConfig::dedicated`] turns it on; see `FollowCpu`). The thread gets its old
    /// affinity back when the transfer ends. Off by default: a library does not re-pin its
    /// host's threads unless asked.
    pub follow_peer_cpu: bool,
    /// Where the MAC each client address belongs to is looked up, so that each transfer's log
    /// line names the machine (shared with the DHCP and HTTP stages; `pxe::Server` does).
    /// Default: none, and the line names only the address.
    pub client_records: Option<ClientRecords>,
    /// Told of every transfer and refusal (metrics; see [`TftpObserver`]). Default: none,
    /// and nothing is done for it.
    pub observer: Option<Arc<dyn TftpObserver>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            transfer: TransferConfig::default(),
            ports: PortMode::Ephemeral,
            max_transfers: 4096,
            max_transfers_per_client: 16,
            summary_interval: Duration::from_secs(10),
            max_info_lines_per_interval: 200,
            lock_step_poll: Duration::ZERO,
            windowed_poll: Duration::ZERO,
            follow_peer_cpu: false,
            client_records: None,
            observer: None,
        }
    }
}

impl ServerConfig {
    /// The defaults, plus what a process that serves TFTP on a machine of its own may choose
    /// (the `netboot` binary does): lock-step transfers poll 50 µs for each ACK, and transfers
    /// that do not poll follow their peer's CPU. Measured in `scripts/bench-tftp`: on an idle
    /// virtual machine a sleeping thread takes tens of microseconds to wake, most of a
    /// loopback round trip.
    pub fn dedicated() -> Self {
        Self {
            lock_step_poll: Duration::from_micros(50),
            follow_peer_cpu: true,
            ..Self::default()
        }
    }
}

/// What the listener knows of a running transfer, to pick one to evict.
#[derive(Debug)]
struct TransferHandle {
    id: u64,
    peer: SocketAddr,
    started: Instant,
    /// Set once the client has acknowledged anything: never evicted after that.
    acknowledged: AtomicBool,
    /// Set when the transfer lost its slot to a newcomer; it then ends at its next wake-up.
    evicted: AtomicBool,
    /// Wakes an event-loop transfer when it is evicted.
    wake: tokio::sync::Notify,
}

impl TransferHandle {
    /// Records that the client acknowledged something, the first time it happens.
    fn note_progress(&self, transfer: &Transfer) {
        if transfer.has_progressed() && !self.acknowledged.load(Ordering::Relaxed) {
            self.acknowledged.store(true, Ordering::Relaxed);
        }
    }

    fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Active {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// Every transfer holding a slot, by id.
    transfers: HashMap<u64, Arc<TransferHandle>>,
    next_id: u64,
    /// Single-port mode: where to hand each client's datagrams.
    routes: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// Clients whose transfer has not sent its first packet yet (it is opening the file): a
    /// repeated request from one of them is a retransmission, not a second download.
    starting: HashSet<SocketAddr>,
}

impl Active {
    /// Gives `handle`'s slot back, once: on eviction or when its task ends.
    fn release(&mut self, handle: &TransferHandle) {
        if self.transfers.remove(&handle.id).is_none() {
            return;
        }
        self.total -= 1;
        if let Some(count) = self.per_client.get_mut(&handle.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&handle.peer.ip());
            }
        }
        self.routes.remove(&handle.peer);
        self.starting.remove(&handle.peer);
    }

    /// The transfer to let go for a newcomer: the oldest whose client has acknowledged
    /// nothing (a spoofed source, a scanner, a client gone), if any.
    fn eviction_candidate(&self) -> Option<Arc<TransferHandle>> {
        self.transfers
            .values()
            .filter(|handle| !handle.acknowledged.load(Ordering::Relaxed))
            .min_by_key(|handle| handle.started)
            .cloned()
    }
}

struct Shared {
    source: Box<dyn FileSource>,
    config: ServerConfig,
    /// Refusals and evictions, summed up once per interval.
    summary: Arc<Summary>,
    active: Mutex<Active>,
    /// Cleared the first time the kernel refuses a UDP GSO send.
    gso: AtomicBool,
    /// Bounds the file opens running at once: a boot storm's thousand requests would
    /// otherwise start hundreds of blocking threads for opens that mostly hit the cache.
    opening: Semaphore,
    /// Transfers running on a blocking thread (at most [`TRANSFER_THREADS`]).
    transfer_threads: Arc<Semaphore>,
    /// Transfers polling for their next ACK right now (see [`pollers`]).
    pollers: Semaphore,
    /// The CPUs a transfer's thread is pinned to right now (see [`FollowCpu`]).
    followed_cpus: Mutex<HashSet<usize>>,
}

/// File opens at once (they take a lock in [`crate::Directory`] anyway).
const CONCURRENT_OPENS: usize = 16;

impl Shared {
    /// Tells the observer, if any, that `peer`'s request got no transfer.
    fn refused(&self, peer: SocketAddr, reason: &'static str) {
        if let Some(observer) = &self.config.observer {
            observer.request_refused(peer, reason);
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A read-only TFTP server.
pub struct Server {
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("socket", &self.socket)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Sends one datagram with a vectored write: header and shared payload, no copy.
pub(crate) async fn send(socket: &UdpSocket, transmit: &Transmit) -> io::Result<()> {
    socket
        .async_io(Interest::WRITABLE, || {
            send_vectored(socket2::SockRef::from(socket), transmit)
        })
        .await
        .map(|_| ())
}

/// The system call under [`send`], for blocking and non-blocking sockets alike.
fn send_vectored(socket: socket2::SockRef<'_>, transmit: &Transmit) -> io::Result<usize> {
    let parts = [
        IoSlice::new(transmit.header()),
        IoSlice::new(&transmit.payload),
    ];
    socket.send_to_vectored(&parts, &socket2::SockAddr::from(transmit.destination))
}

/// Most bytes of UDP payload one GSO send may carry (IPv4's 65 507, minus slack).
const GSO_MAX_BYTES: usize = 65_000;
/// Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;

/// How many transmits from the start of `batch` go out with one system call: a GSO run while
/// the kernel takes GSO sends, else one.
fn next_run(batch: &[Transmit], gso: &AtomicBool) -> usize {
    if gso.load(Ordering::Relaxed) {
        gso_run(batch)
    } else {
        1
    }
}

/// What is left of `rest` after trying to send its first `sent_len` transmits. A GSO send
/// the kernel refuses (old kernel, odd device: see [`gso_refused`]) turns GSO off for the
/// server and leaves the run to go out one datagram at a time; any other failure is the
/// peer's path (a client gone away, reported on its connected socket) and skips the run,
/// which the retransmit timer covers.
fn after_send<'b>(
    rest: &'b [Transmit],
    sent_len: usize,
    result: io::Result<()>,
    gso: &AtomicBool,
) -> &'b [Transmit] {
    match result {
        Ok(()) => &rest[sent_len..],
        Err(error) if sent_len >= 2 && gso_refused(&error) => {
            tracing::debug!(%error, "udp gso send refused; sending blocks one by one");
            gso.store(false, Ordering::Relaxed);
            rest
        }
        Err(error) => {
            tracing::debug!(peer = %rest[0].destination, %error, "send failed");
            &rest[sent_len..]
        }
    }
}

/// Whether a failed GSO send means the kernel or device cannot do UDP GSO: an unknown
/// control message or a bad segment size (EINVAL), no checksum offload (EIO), or no support
/// at all.
fn gso_refused(error: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::EIO | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT)
    )
}

/// Sends `batch` in order. Runs of DATA to one destination with equal sizes (the last may be
/// shorter) go out with one UDP GSO `sendmsg` each: an iovec for each 4-byte header and one
/// for each slice of the shared file, no copy, one system call for up to 44 full blocks.
async fn send_batch(socket: &UdpSocket, batch: &[Transmit], gso: &AtomicBool) {
    let mut rest = batch;
    while !rest.is_empty() {
        let run = &rest[..next_run(rest, gso)];
        let result = socket
            .async_io(Interest::WRITABLE, || send_run(socket.as_fd(), run))
            .await;
        rest = after_send(rest, run.len(), result, gso);
    }
}

/// [`send_batch`] on a blocking socket.
fn send_batch_blocking(socket: &std::net::UdpSocket, batch: &[Transmit], gso: &AtomicBool) {
    let mut rest = batch;
    while !rest.is_empty() {
        let run = &rest[..next_run(rest, gso)];
        let result = send_run(socket.as_fd(), run);
        rest = after_send(rest, run.len(), result, gso);
    }
}

/// How many transmits from the start of `batch` one GSO send can carry.
fn gso_run(batch: &[Transmit]) -> usize {
    let first = &batch[0];
    if first.header().is_empty() {
        return 1;
    }
    let segment = first.len();
    let max = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / segment.max(1));
    let mut run = 1;
    while run < batch.len() && run < max {
        let next = &batch[run];
        if next.header().is_empty() || next.destination != first.destination || next.len() > segment
        {
            break;
        }
        run += 1;
        if next.len() < segment {
            break; // only the last segment may be shorter
        }
    }
    run
}

/// One system call for `run`: a plain vectored send for one transmit, a UDP GSO `sendmsg`
/// for more (all to one destination, sized as [`gso_run`] checks).
fn send_run(fd: BorrowedFd<'_>, run: &[Transmit]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
    if let [transmit] = run {
        return send_vectored(socket2::SockRef::from(&fd), transmit).map(|_| ());
    }
    let segment =
        u16::try_from(run[0].len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let destination = SockaddrStorage::from(run[0].destination);
    // On the stack: a header and a payload slice per segment.
    let mut iov = [IoSlice::new(&[]); 2 * GSO_MAX_SEGMENTS];
    for (slots, transmit) in iov.chunks_exact_mut(2).zip(run) {
        slots[0] = IoSlice::new(transmit.header());
        slots[1] = IoSlice::new(&transmit.payload);
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

/// Receive buffer asked for on the listening socket: a boot storm's requests arrive at once,
/// and the default (about 200 KiB, some 270 requests) drops the rest into a client timeout.
const LISTENER_RECV_BUFFER: usize = 4 << 20;

fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps the size at net.core.rmem_max unless we may force it.
    let _ = socket.set_recv_buffer_size(LISTENER_RECV_BUFFER);
    if socket.recv_buffer_size().unwrap_or(0) < LISTENER_RECV_BUFFER {
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::RcvBufForce,
            &LISTENER_RECV_BUFFER,
        );
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(
        addr: SocketAddr,
        source: impl FileSource,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        let socket = bind_listener(addr).map_err(|source| Error::Io {
            action: "binding the listening socket",
            source,
        })?;
        Ok(Self {
            socket: Arc::new(socket),
            shared: Arc::new(Shared {
                source: Box::new(source),
                summary: Arc::new(Summary::new(
                    config.summary_interval,
                    config.max_info_lines_per_interval,
                )),
                config,
                active: Mutex::new(Active::default()),
                gso: AtomicBool::new(true),
                opening: Semaphore::new(CONCURRENT_OPENS),
                transfer_threads: Arc::new(Semaphore::new(TRANSFER_THREADS)),
                pollers: pollers(),
                followed_cpus: Mutex::default(),
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has a local address")
    }

    /// Serves until the task is dropped; only a failing listening socket ends it. Lock-step
    /// transfers already on a blocking thread then finish, or time out, on their own.
    pub async fn run(self) -> Result<(), Error> {
        let mut buf = vec![0u8; 65536];
        loop {
            let (len, from) = match self.socket.recv_from(&mut buf).await {
                // Longer than any request or ACK; the tail would only be dropped.
                Ok((len, from)) if len > MAX_DATAGRAM => (MAX_DATAGRAM + 1, from),
                Ok(received) => received,
                // ICMP errors of earlier sends surface here on some systems: not ours to end on.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(source) => {
                    return Err(Error::Io {
                        action: "receiving on the listening socket",
                        source,
                    })
                }
            };
            self.handle(from, &buf[..len]).await;
        }
    }

    /// Serves like [`run`](Self::run), on a new OS thread with its own single-threaded tokio
    /// runtime; ends when the returned future is dropped (the thread then stops too).
    ///
    /// Lock-step TFTP is a ping-pong of one small datagram each way, so its speed is the
    /// latency of a wakeup: on one thread the task that answers an ACK is woken where the
    /// ACK arrived. On tokio's multi-thread runtime the same transfers ran 1.5–3× slower and
    /// far less steadily in `scripts/bench-tftp` (a 2-core machine); use this unless the
    /// caller's runtime is single-threaded already.
    pub async fn run_on_own_thread(self) -> Result<(), Error> {
        let io_error = |action| move |source| Error::Io { action, source };
        let Server { socket, shared } = self;
        let socket = Arc::try_unwrap(socket)
            .map_err(|_| io::Error::other("the listening socket is shared"))
            .and_then(UdpSocket::into_std)
            .map_err(io_error("moving the listening socket to the server thread"))?;
        let (done, finished) = tokio::sync::oneshot::channel();
        // Dropped with the caller's future: the server thread sees it and stops.
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("pxe-tftp".to_string())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(io_error("starting the server thread's runtime"))
                    .and_then(|runtime| {
                        let served = runtime.block_on(async move {
                            let socket = UdpSocket::from_std(socket)
                                .map_err(io_error("registering the listening socket"))?;
                            let server = Server {
                                socket: Arc::new(socket),
                                shared,
                            };
                            tokio::select! {
                                served = server.run() => served,
                                _ = stopped => Ok(()),
                            }
                        });
                        // Transfers on blocking threads end on their own; do not wait for them.
                        runtime.shutdown_background();
                        served
                    });
                let _ = done.send(served);
            })
            .map_err(io_error("starting the server thread"))?;
        finished.await.unwrap_or_else(|_| {
            Err(Error::Io {
                action: "serving on the server thread",
                source: io::Error::other("the server thread panicked"),
            })
        })
    }

    async fn handle(&self, from: SocketAddr, datagram: &[u8]) {
        if self.shared.config.ports == PortMode::Single {
            let route = self.shared.active().routes.get(&from).cloned();
            if let Some(route) = route {
                // A full inbox means the task is behind; UDP may drop, so do we. What a
                // transfer reads of a datagram is bounded like its own socket's buffer.
                let kept = datagram.len().min(MAX_DATAGRAM);
                let _ = route.try_send(Bytes::copy_from_slice(&datagram[..kept]));
                return;
            }
        }
        let (reply, why) = match listener::on_datagram(from, datagram, &self.shared.config.transfer)
        {
            ListenerAction::Start(request) => return self.accept(from, request),
            ListenerAction::Refuse { reply, why } => (reply, why),
            ListenerAction::Ignore => return,
        };
        tracing::debug!(%from, reason = %why, "request refused");
        self.shared.refused(from, "bad_request");
        if let Refused::Oversized { .. } = why {
            self.shared.summary.record(Refusal::Oversized);
        }
        if let Err(error) = send(&self.socket, &reply).await {
            tracing::debug!(%from, %error, "cannot send error reply");
        }
    }

    fn accept(&self, from: SocketAddr, request: ReadRequest) {
        let config = &self.shared.config;
        let mut active = self.shared.active();
        if active.starting.contains(&from) {
            tracing::debug!(%from, "repeated request ignored; its transfer is starting");
            return;
        }
        let for_client = active.per_client.get(&from.ip()).copied().unwrap_or(0);
        let refused = if for_client >= config.max_transfers_per_client {
            Some(Refusal::BusyPerClient)
        } else if active.total >= config.max_transfers {
            match active.eviction_candidate() {
                Some(victim) => {
                    tracing::debug!(%from, evicted = %victim.peer, "all transfer slots taken; the oldest unacknowledged transfer makes room");
                    active.release(&victim);
                    victim.evicted.store(true, Ordering::Relaxed);
                    victim.wake.notify_one();
                    self.shared.summary.record(Refusal::Evicted);
                    None
                }
                None => Some(Refusal::BusyOverall),
            }
        } else {
            None
        };
        if let Some(refusal) = refused {
            drop(active);
            tracing::debug!(%from, ?refusal, "transfer limit reached; request refused");
            self.shared.refused(from, "busy");
            self.shared.summary.record(refusal);
            let socket = self.socket.clone();
            tokio::spawn(async move {
                let _ = send(&socket, &server_busy(from)).await;
            });
            return;
        }
        active.total += 1;
        *active.per_client.entry(from.ip()).or_default() += 1;
        active.starting.insert(from);
        let id = active.next_id;
        active.next_id += 1;
        let handle = Arc::new(TransferHandle {
            id,
            peer: from,
            started: Instant::now(),
            acknowledged: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        });
        active.transfers.insert(id, handle.clone());
        let inbox = if config.ports == PortMode::Single {
            let (sender, receiver) = mpsc::channel(INBOX_DATAGRAMS);
            active.routes.insert(from, sender);
            Some(receiver)
        } else {
            None
        };
        drop(active);
        let slot = Slot {
            shared: self.shared.clone(),
            peer: from,
            handle,
        };
        let listener = self.socket.clone();
        tokio::spawn(async move {
            serve_transfer(slot, listener, request, inbox).await;
        });
    }
}

/// The [`TftpObserver::request_refused`] reason for a file that could not be served.
fn refusal_label(error: &Error) -> &'static str {
    match error.code() {
        ErrorCode::FILE_NOT_FOUND => "not_found",
        ErrorCode::ACCESS_VIOLATION => "access_denied",
        _ => "error",
    }
}

/// Longest datagram a transfer reads (an ACK is 4 bytes, an ERROR a few hundred).
const MAX_DATAGRAM: usize = 2048;

/// Datagrams queued for one transfer in single-port mode; a client sends one ACK per window,
/// so more would only be a flood's.
const INBOX_DATAGRAMS: usize = 16;

/// ERROR 0 "server busy": a refused request, or an evicted transfer's last word.
fn server_busy(peer: SocketAddr) -> Transmit {
    Transmit::error(peer, ErrorCode::NOT_DEFINED, "server busy, try again")
}

/// One transfer's place in the limits; given back when the task ends, however it ends (or
/// earlier, when it is evicted).
struct Slot {
    shared: Arc<Shared>,
    peer: SocketAddr,
    handle: Arc<TransferHandle>,
}

impl Slot {
    /// The transfer has answered: a request from its client is no longer a retransmission.
    fn started(&self) {
        self.shared.active().starting.remove(&self.peer);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.active().release(&self.handle);
    }
}

async fn bind_transfer_socket(
    local: IpAddr,
    ports: &PortMode,
    peer: SocketAddr,
) -> io::Result<UdpSocket> {
    let PortMode::Range(range) = ports else {
        return UdpSocket::bind(SocketAddr::new(local, 0)).await;
    };
    let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
    let span = end.saturating_sub(start) + 1;
    // Start at a spot that differs per client so that concurrent transfers rarely collide.
    let offset = u32::from(peer.port()) % span;
    for i in 0..span {
        let port = start + (offset + i) % span;
        if let Ok(socket) = UdpSocket::bind(SocketAddr::new(local, port as u16)).await {
            return Ok(socket);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port in the transfer range",
    ))
}

async fn refuse(socket: &UdpSocket, peer: SocketAddr, error: &Error) {
    tracing::debug!(%peer, %error, "request refused");
    send_quietly(
        socket,
        &Transmit::error(peer, error.code(), error.wire_message()),
    )
    .await;
}

/// Sends a reply whose loss only the peer notices.
async fn send_quietly(socket: &UdpSocket, reply: &Transmit) {
    if let Err(error) = send(socket, reply).await {
        tracing::debug!(peer = %reply.destination, %error, "cannot send error reply");
    }
}

async fn serve_transfer(
    slot: Slot,
    listener: Arc<UdpSocket>,
    request: ReadRequest,
    mut inbox: Option<mpsc::Receiver<Bytes>>,
) {
    let peer = slot.peer;
    let shared = slot.shared.clone();
    let ReadRequest {
        filename,
        mode,
        negotiated,
        ..
    } = &request;
    let opened = {
        // Never closed, so acquiring only waits.
        let _permit = slot.shared.opening.acquire().await;
        let shared = shared.clone();
        let filename = filename.clone();
        tokio::task::spawn_blocking(move || shared.source.open(&filename, peer)).await
    };
    let content = match opened {
        Ok(Ok(content)) => content,
        Ok(Err(error)) => {
            shared.refused(peer, refusal_label(&error));
            return refuse(&listener, peer, &error).await;
        }
        Err(join) => {
            tracing::warn!(%peer, file = filename, error = %join, "file source panicked");
            shared.refused(peer, "error");
            let error = Error::Io {
                action: "opening a file",
                source: io::Error::other("file source failed"),
            };
            return refuse(&listener, peer, &error).await;
        }
    };
    if slot.handle.is_evicted() {
        shared.refused(peer, "evicted");
        return send_quietly(&listener, &server_busy(peer)).await;
    }
    let mut own_socket = match inbox {
        Some(_) => None,
        None => {
            let local = listener.local_addr().map(|a| a.ip());
            let bound = match local {
                Ok(ip) => bind_transfer_socket(ip, &shared.config.ports, peer).await,
                Err(e) => Err(e),
            };
            match bound {
                Ok(socket) => Some(socket),
                Err(source) => {
                    tracing::debug!(%peer, error = %source, "cannot open a transfer socket");
                    shared.summary.record(Refusal::NoSocket);
                    shared.refused(peer, "no_socket");
                    let error = Error::Io {
                        action: "opening a transfer socket",
                        source,
                    };
                    return refuse(&listener, peer, &error).await;
                }
            }
        }
    };
    let socket: &UdpSocket = own_socket.as_ref().unwrap_or(&listener);
    let started = Instant::now();
    let mut transfer = Transfer::with_mode(
        peer,
        content,
        *mode,
        &request.wire_options(),
        negotiated,
        &shared.config.transfer,
    );
    tracing::debug!(%peer, file = filename, ?negotiated, "transfer started");
    if let Some(observer) = &shared.config.observer {
        observer.transfer_started(peer, filename);
    }
    let story = BootStory {
        summary: shared.summary.clone(),
        mac: match (&shared.config.client_records, peer.ip()) {
            (Some(records), std::net::IpAddr::V4(ip)) => records.mac_of(ip),
            _ => None,
        },
        peer,
        file: filename.clone(),
        options: negotiated.clone(),
        started,
        observer: shared.config.observer.clone(),
    };
    if own_socket.is_some() {
        if let Ok(thread) = shared.transfer_threads.clone().try_acquire_owned() {
            let sockets = own_socket
                .take()
                .map(UdpSocket::into_std)
                .map(|socket| TransferSockets::new(socket?, peer));
            let Some(Ok(sockets)) = sockets else {
                tracing::debug!(%peer, "cannot move the transfer socket to a thread");
                return;
            };
            slot.started();
            let poll_budget = if negotiated.windowsize <= 1 {
                shared.config.lock_step_poll
            } else {
                shared.config.windowed_poll
            };
            let shared = shared.clone();
            let served = tokio::task::spawn_blocking(move || {
                let _thread = thread;
                serve_blocking(
                    &sockets,
                    &mut transfer,
                    &slot.handle,
                    &shared.gso,
                    poll_budget,
                    &shared.pollers,
                    shared
                        .config
                        .follow_peer_cpu
                        .then_some(&shared.followed_cpus),
                    |outcome| story.log(outcome),
                );
                if !transfer.is_finished() && slot.handle.is_evicted() {
                    story.evicted();
                }
            });
            let _ = served.await;
            return;
        }
    }
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut batch = Vec::new();
    let mut answered = false;
    // One timer for the whole transfer, moved rather than rebuilt at each step.
    let timer = tokio::time::sleep(IDLE);
    tokio::pin!(timer);
    loop {
        let now = Instant::now();
        batch.extend(std::iter::from_fn(|| transfer.poll_transmit(now)));
        send_batch(socket, &batch, &shared.gso).await;
        batch.clear();
        if !answered {
            answered = true;
            slot.started();
        }
        while let Some(Event::Finished(outcome)) = transfer.poll_event() {
            story.log(&outcome);
        }
        if transfer.is_finished() {
            return;
        }
        if slot.handle.is_evicted() {
            story.evicted();
            return send_quietly(socket, &server_busy(peer)).await;
        }
        let deadline = transfer.poll_timeout().unwrap_or(now + IDLE);
        let deadline = tokio::time::Instant::from_std(deadline);
        // Every block moves the deadline a little later; re-arming the timer each time costs
        // a timer-wheel update per block. Only an earlier deadline re-arms it now; a timer
        // that fires early finds nothing due and is re-armed then.
        if deadline < timer.deadline() || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            biased;
            received = receive(peer, own_socket.as_ref(), inbox.as_mut(), &mut buf) => match received {
                Some((from, datagram)) => {
                    transfer.handle_datagram(Instant::now(), from, datagram);
                    slot.handle.note_progress(&transfer);
                }
                None => return,
            },
            () = &mut timer => transfer.handle_timeout(Instant::now()),
            // Checked at the top of the loop.
            () = slot.handle.wake.notified() => {}
        }
    }
}

/// Transfers served at once on a blocking thread of their own; the rest run on the event
/// loop.
const TRANSFER_THREADS: usize = 8;

/// Drives a transfer with blocking calls on its own port: one `poll` and one `recvmsg` to
/// sleep until each ACK and one `sendmsg` per block or GSO run, the fewest system calls and
/// wakeups a block or window can take (the event loop adds a failed `recvfrom` and an
/// `epoll_wait` per ACK, and lock-step speed is wakeup latency). Before it sleeps it may
/// poll for up to `poll_budget` (see [`PollFirst`]); a transfer that does not poll follows
/// its peer's datagrams to the CPU they arrive on (see [`FollowCpu`]).
#[allow(clippy::too_many_arguments)]
fn serve_blocking(
    sockets: &TransferSockets,
    transfer: &mut Transfer,
    handle: &TransferHandle,
    gso: &AtomicBool,
    poll_budget: Duration,
    pollers: &Semaphore,
    followed_cpus: Option<&Mutex<HashSet<usize>>>,
    mut on_finished: impl FnMut(&Outcome),
) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut batch = Vec::new();
    let mut poll_first = PollFirst::new(poll_budget, pollers);
    // A transfer that polls stays where the scheduler puts it: spinning on the CPU that
    // delivers its peer's datagrams would hold up their delivery.
    let mut follow_cpu = followed_cpus
        .filter(|_| poll_budget.is_zero())
        .map(FollowCpu::new);
    loop {
        let now = Instant::now();
        batch.extend(std::iter::from_fn(|| transfer.poll_transmit(now)));
        send_batch_blocking(&sockets.peer, &batch, gso);
        batch.clear();
        while let Some(Event::Finished(outcome)) = transfer.poll_event() {
            on_finished(&outcome);
        }
        if transfer.is_finished() {
            return;
        }
        if handle.is_evicted() {
            let _ = send_vectored(
                socket2::SockRef::from(&sockets.peer),
                &server_busy(handle.peer),
            );
            return;
        }
        let deadline = transfer.poll_timeout().unwrap_or(now + IDLE);
        let received = match poll_first.receive(&sockets.peer, &mut buf) {
            Some(received) => received.map(Some),
            None => sockets.wait(&mut buf, deadline.saturating_duration_since(now)),
        };
        match received {
            Ok(Some((len, from))) => {
                transfer.handle_datagram(Instant::now(), from, &buf[..len]);
                handle.note_progress(transfer);
                if let Some(follow_cpu) = &mut follow_cpu {
                    follow_cpu.follow(&sockets.peer);
                }
            }
            Ok(None) => transfer.handle_timeout(Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(error) => {
                tracing::debug!(%error, "transfer socket failed");
                return;
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
struct TransferSockets {
    peer: std::net::UdpSocket,
    others: Option<std::net::UdpSocket>,
}

impl TransferSockets {
    /// Blocking sockets for `peer`'s transfer on `socket`'s port.
    fn new(socket: std::net::UdpSocket, peer: SocketAddr) -> io::Result<Self> {
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
    fn wait(&self, buf: &mut [u8], wait: Duration) -> io::Result<Option<(usize, SocketAddr)>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        // Whole milliseconds, rounded up: waking early would only cost a loop, but a
        // deadline less than a millisecond away must not become a poll that does not wait.
        let millis = wait.as_nanos().div_ceil(1_000_000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [
            PollFd::new(self.peer.as_fd(), PollFlags::POLLIN),
            PollFd::new(
                self.others.as_ref().unwrap_or(&self.peer).as_fd(),
                PollFlags::POLLIN,
            ),
        ];
        let watched = if self.others.is_some() { 2 } else { 1 };
        match poll(&mut fds[..watched], timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
        let peer_ready = fds[0].any().unwrap_or(true);
        if let (false, Some(others)) = (peer_ready, &self.others) {
            return receive_now(others, buf);
        }
        receive_now(&self.peer, buf)
    }
}

/// Runs a transfer's thread on the CPU that its peer's datagrams arrive on, while no other
/// transfer runs there.
///
/// The kernel delivers each ACK on one CPU (a NIC queue's interrupt, or the sender's CPU on
/// loopback) and then wakes the transfer's thread. Asleep on another CPU, the thread costs
/// that CPU a wake-up too: an interprocessor interrupt and, on a virtual machine whose CPU
/// went idle, tens of microseconds before it runs. On the CPU that took the ACK, the wake-up
/// is a local one, and the ACK's data is still in that CPU's cache. One transfer per CPU, so
/// a NIC with a single queue never gets every transfer piled on its CPU; the thread gets its
/// old affinity back when the transfer ends.
struct FollowCpu<'c> {
    claims: &'c Mutex<HashSet<usize>>,
    /// The thread's affinity before the transfer; `None` if unknown, and then it never pins.
    allowed: Option<nix::sched::CpuSet>,
    pinned: Option<usize>,
}

impl<'c> FollowCpu<'c> {
    fn new(claims: &'c Mutex<HashSet<usize>>) -> Self {
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok();
        Self {
            claims,
            allowed,
            pinned: None,
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashSet<usize>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the thread to the CPU that the last datagram on `socket` (connected to the
    /// peer) arrived on, if no other transfer runs there; else lets it run anywhere again.
    fn follow(&mut self, socket: &std::net::UdpSocket) {
        let Some(allowed) = self.allowed else {
            return;
        };
        // -1 (as usize, out of range) until the socket has received a datagram.
        let Ok(cpu) = socket2::SockRef::from(socket).cpu_affinity() else {
            return;
        };
        if self.pinned == Some(cpu) || !allowed.is_set(cpu).unwrap_or(false) {
            return;
        }
        self.unpin();
        if !self.claims().insert(cpu) {
            return;
        }
        let mut only = nix::sched::CpuSet::new();
        if only.set(cpu).is_ok() && set_thread_affinity(&only).is_ok() {
            self.pinned = Some(cpu);
        } else {
            self.claims().remove(&cpu);
        }
    }

    /// Gives the thread its old affinity back and the CPU to other transfers.
    fn unpin(&mut self) {
        let (Some(allowed), Some(cpu)) = (self.allowed, self.pinned.take()) else {
            return;
        };
        if let Err(error) = set_thread_affinity(&allowed) {
            tracing::debug!(%error, "cannot restore a transfer thread's CPU affinity");
        }
        self.claims().remove(&cpu);
    }
}

impl Drop for FollowCpu<'_> {
    fn drop(&mut self) {
        self.unpin();
    }
}

/// Sets the calling thread's CPU affinity.
fn set_thread_affinity(cpus: &nix::sched::CpuSet) -> nix::Result<()> {
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
}

/// How many transfers may poll at once: one per two CPUs (none on a single CPU, where a
/// polling thread would only keep its peer from running), so polling never takes the CPUs
/// the event loop and the other transfers need.
fn pollers() -> Semaphore {
    Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from) / 2)
}

/// Polls a transfer's socket for a short while before its thread sleeps in `poll`
/// ([`ServerConfig::lock_step_poll`], [`ServerConfig::windowed_poll`]).
///
/// A sleeping thread is woken by the next datagram through an interrupt and the scheduler;
/// on a virtual CPU that went idle this costs tens of microseconds per block, more than
/// the whole round trip to a near peer (a VM on the same host, firmware on a fast LAN),
/// which then gets its next block that much sooner. It adapts: after
/// [`Self::MISSES`] polls in a row that the peer did not answer in time, the transfer
/// sleeps straight away for its next [`Self::BACKOFF`] blocks, then tries one poll; each
/// further miss doubles the back-off (up to [`Self::MAX_BACKOFF`]) and a hit resets it. So
/// a slow peer, or a machine too busy for polling to pay, costs almost no CPU; and no more
/// than [`pollers`] transfers poll at once.
struct PollFirst<'p> {
    budget: Duration,
    pollers: &'p Semaphore,
    misses: u32,
    sleep_straight: u32,
    backoff: u32,
}

impl<'p> PollFirst<'p> {
    /// Polls in a row that miss before the transfer stops polling for a while.
    const MISSES: u32 = 3;
    /// How many waits sleep straight away after the first run of misses.
    const BACKOFF: u32 = 64;
    /// The longest back-off.
    const MAX_BACKOFF: u32 = 4096;

    fn new(budget: Duration, pollers: &'p Semaphore) -> Self {
        Self {
            budget,
            pollers,
            misses: 0,
            sleep_straight: 0,
            backoff: Self::BACKOFF,
        }
    }

    fn hit(&mut self) {
        self.misses = 0;
        self.backoff = Self::BACKOFF;
    }

    fn miss(&mut self) {
        self.misses += 1;
        if self.misses >= Self::MISSES {
            // After a back-off, one more miss is enough to back off again, for longer.
            self.misses = Self::MISSES - 1;
            self.sleep_straight = self.backoff;
            self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
        }
    }

    /// The datagram (or error) that arrived while polling; `None` when the caller should
    /// sleep (see [`TransferSockets::wait`]).
    fn receive(
        &mut self,
        socket: &std::net::UdpSocket,
        buf: &mut [u8],
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        if self.budget.is_zero() {
            return None;
        }
        if self.sleep_straight > 0 {
            self.sleep_straight -= 1;
            return None;
        }
        let _turn = self.pollers.try_acquire().ok()?;
        let started = Instant::now();
        loop {
            match receive_now(socket, buf) {
                Ok(Some(received)) => {
                    self.hit();
                    return Some(Ok(received));
                }
                Ok(None) => {}
                Err(error) => return Some(Err(error)),
            }
            if started.elapsed() >= self.budget {
                self.miss();
                return None;
            }
            // Not `yield_now`: a peer polling on the same CPU (firmware in a VM pinned
            // beside this server) would then keep the CPU until its time slice ends.
            std::hint::spin_loop();
        }
    }
}

/// One `recvmsg` that does not wait: the datagram waiting on `socket`, if any.
fn receive_now(
    socket: &std::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<Option<(usize, SocketAddr)>> {
    use nix::errno::Errno;
    use nix::sys::socket::{recvmsg, MsgFlags, SockaddrStorage};
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
            Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
        } else {
            address
                .as_sockaddr_in6()
                .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
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

/// The timer's setting while the transfer waits for nothing (it always has a deadline while
/// it runs; this only keeps the timer valid).
const IDLE: Duration = Duration::from_secs(3600);

/// The next datagram for a transfer, from its own socket or its route from the listener.
async fn receive<'b>(
    peer: SocketAddr,
    socket: Option<&UdpSocket>,
    inbox: Option<&mut mpsc::Receiver<Bytes>>,
    buf: &'b mut [u8],
) -> Option<(SocketAddr, &'b [u8])> {
    match (socket, inbox) {
        (Some(socket), _) => loop {
            match socket.recv_from(buf).await {
                Ok((len, from)) => return Some((from, &buf[..len])),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(error) => {
                    tracing::debug!(%error, "transfer socket failed");
                    return None;
                }
            }
        },
        (None, Some(inbox)) => {
            let datagram = inbox.recv().await?;
            let len = datagram.len().min(buf.len());
            buf[..len].copy_from_slice(&datagram[..len]);
            // The listener routes by address: the sender is the peer by construction.
            Some((peer, &buf[..len]))
        }
        (None, None) => None,
    }
}

/// The TFTP chapter of a client's boot story: one `info` line per download or size probe
/// (EDK2 probes before every download), with the options in force, up to the summary's
/// budget per interval. A failure is the peer's doing, so it stays at `debug`; one for lack
/// of progress is counted in the summary.
struct BootStory {
    summary: Arc<Summary>,
    /// The MAC the peer's address belongs to, from the client records.
    mac: Option<MacAddr>,
    peer: SocketAddr,
    file: String,
    options: Negotiated,
    started: Instant,
    observer: Option<Arc<dyn TftpObserver>>,
}

impl BootStory {
    /// The transfer gave its slot to a newcomer before its client acknowledged anything.
    fn evicted(&self) {
        if let Some(observer) = &self.observer {
            observer.transfer_evicted(self.peer, &self.file);
        }
    }

    fn log(&self, outcome: &Outcome) {
        let Self {
            summary,
            mac,
            peer,
            file,
            options,
            started,
            observer,
        } = self;
        if let Some(observer) = observer {
            observer.transfer_finished(*peer, file, outcome);
        }
        let mac = mac.map_or_else(|| "-".to_string(), |mac| mac.to_string());
        let file = file.as_str();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (blksize, windowsize) = (options.blksize, options.windowsize);
        if matches!(outcome, Outcome::Failed(Error::TimedOut { .. })) {
            summary.record(Refusal::NoProgress);
        }
        let informs = !matches!(outcome, Outcome::Failed(_));
        if informs && !summary.allow_info() {
            return;
        }
        match outcome {
            Outcome::Completed {
                bytes,
                retransmitted,
            } => {
                tracing::info!(%mac, client = %peer.ip(), %peer, file, bytes, blksize, windowsize, retransmitted, elapsed_ms, "tftp download");
            }
            Outcome::SizeProbe => {
                tracing::info!(%mac, client = %peer.ip(), %peer, file, "tftp size probe (the client asked for the size and ended the transfer, as EDK2 does)");
            }
            Outcome::Failed(error) => {
                tracing::debug!(%mac, client = %peer.ip(), %peer, file, %error, "tftp transfer failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_poller() -> Semaphore {
        Semaphore::new(1)
    }

    fn socket_pair() -> (std::net::UdpSocket, std::net::UdpSocket) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (server, peer)
    }

    #[test]
    fn polling_returns_a_datagram_already_waiting_with_its_source() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let mut poll = PollFirst::new(Duration::from_millis(200), &pollers);
        peer.send_to(b"\x00\x04\x00\x01", server.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = poll.receive(&server, &mut buf).unwrap().unwrap();
        assert_eq!(&buf[..len], b"\x00\x04\x00\x01");
        assert_eq!(from, peer.local_addr().unwrap());
        assert_eq!(pollers.available_permits(), 1, "the turn is given back");
    }

    #[test]
    fn misses_back_off_doubling_and_a_hit_resets_the_back_off() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let mut poll = PollFirst::new(Duration::from_micros(20), &pollers);
        let mut buf = [0u8; 64];
        let mut backoffs = Vec::new();
        for _ in 0..PollFirst::MISSES {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        backoffs.push(poll.sleep_straight);
        // Backing off: the next waits go straight to sleep, whatever is waiting.
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        for left in (0..PollFirst::BACKOFF).rev() {
            assert!(poll.receive(&server, &mut buf).is_none());
            assert_eq!(poll.sleep_straight, left);
        }
        assert!(
            poll.receive(&server, &mut buf).is_some(),
            "one probe, a hit"
        );
        assert_eq!(
            poll.backoff,
            PollFirst::BACKOFF,
            "a hit resets the back-off"
        );
        for _ in 0..PollFirst::MISSES {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        for _ in 0..8 {
            while poll.sleep_straight > 0 {
                assert!(poll.receive(&server, &mut buf).is_none());
            }
            assert!(
                poll.receive(&server, &mut buf).is_none(),
                "one probe, missed"
            );
            backoffs.push(poll.sleep_straight);
        }
        assert_eq!(
            backoffs,
            [64, 128, 256, 512, 1024, 2048, 4096, 4096, 4096],
            "doubling up to the cap"
        );
        while poll.sleep_straight > 0 {
            assert!(poll.receive(&server, &mut buf).is_none());
        }
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        assert!(poll.receive(&server, &mut buf).is_some());
        assert_eq!((poll.misses, poll.backoff), (0, PollFirst::BACKOFF));
    }

    #[test]
    fn no_more_transfers_poll_than_the_bound_and_none_without_a_budget() {
        let (server, peer) = socket_pair();
        let pollers = one_poller();
        let busy = pollers.try_acquire().expect("a first turn");
        let mut poll = PollFirst::new(Duration::from_millis(200), &pollers);
        peer.send_to(b"ack", server.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        assert!(poll.receive(&server, &mut buf).is_none(), "no turn left");
        drop(busy);
        let mut off = PollFirst::new(Duration::ZERO, &pollers);
        assert!(off.receive(&server, &mut buf).is_none(), "zero budget");
        assert!(poll.receive(&server, &mut buf).is_some());
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

    #[test]
    fn a_transfer_runs_on_its_peers_cpu_alone_and_gets_its_affinity_back() {
        // On a thread of its own: the test pins the thread it runs on.
        std::thread::spawn(|| {
            let this_thread = || nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0));
            let before = this_thread().unwrap();
            let (server, client) = socket_pair();
            let sockets = TransferSockets::new(server, client.local_addr().unwrap()).unwrap();
            client
                .send_to(b"ack", sockets.peer.local_addr().unwrap())
                .unwrap();
            let mut buf = [0u8; 64];
            sockets
                .wait(&mut buf, Duration::from_secs(2))
                .unwrap()
                .unwrap();
            let cpu = socket2::SockRef::from(&sockets.peer)
                .cpu_affinity()
                .unwrap();

            let claims = Mutex::default();
            let mut follow = FollowCpu::new(&claims);
            follow.follow(&sockets.peer);
            assert_eq!(follow.pinned, Some(cpu));
            let now = this_thread().unwrap();
            assert!(now.is_set(cpu).unwrap(), "pinned to the arrival CPU {cpu}");
            let allowed_now = (0..nix::sched::CpuSet::count())
                .filter(|&c| now.is_set(c).unwrap())
                .count();
            assert_eq!(allowed_now, 1, "and only to it");

            // A second transfer whose datagrams arrive there too stays where it was.
            let mut second = FollowCpu::new(&claims);
            second.follow(&sockets.peer);
            assert_eq!(second.pinned, None, "one transfer per CPU");

            drop(follow);
            assert_eq!(this_thread().unwrap(), before, "the old affinity is back");
            assert!(claims.lock().unwrap().is_empty(), "the CPU is free again");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn only_a_refused_gso_send_turns_gso_off_and_other_failures_skip_the_run() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let run: Vec<Transmit> = (1..=3)
            .map(|block| Transmit::data(peer, block, Bytes::from_static(&[0u8; 512])))
            .collect();
        let gso = AtomicBool::new(true);
        let gone = io::Error::from_raw_os_error(nix::errno::Errno::ECONNREFUSED as i32);
        assert!(
            after_send(&run, 3, Err(gone), &gso).is_empty(),
            "the run is skipped"
        );
        assert!(gso.load(Ordering::Relaxed), "a peer gone away keeps GSO on");

        let refused = io::Error::from_raw_os_error(nix::errno::Errno::EIO as i32);
        assert_eq!(
            after_send(&run, 3, Err(refused), &gso).len(),
            3,
            "sent again one by one"
        );
        assert!(!gso.load(Ordering::Relaxed));
    }
}
