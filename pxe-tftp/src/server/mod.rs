//! The tokio server: the listening port, and one thin driver loop per [`Transfer`](crate::Transfer).
//!
//! - This module: the listening socket. It carries out what [`listener::on_datagram`]
//!   decides for each datagram, and admits a read request if the limits allow.
//! - [`admission`]: the limits (transfers in all and per client) and eviction.
//! - [`start`]: from an admitted request to a running transfer: the file opened, a port
//!   taken (a new one per transfer as RFC 1350 describes, optionally from a configured range
//!   for NAT and containers, or the listening port in single-port mode), and where it runs.
//! - [`driver`]: the one loop that drives every transfer, over a [`driver::TransferPort`]:
//!   [`event_loop`] (a tokio socket, or the datagrams the listener routes in single-port
//!   mode) or [`own_thread`] (blocking calls on a thread of its own, while one of a few is
//!   free and the transfers do not outnumber the CPUs), which may poll briefly before it
//!   sleeps or follow its peer's CPU ([`host_cpu`]; both only when the embedder asks).
//! - [`story`]: each transfer's log line and observer calls.
//!
//! The UDP system calls themselves (GSO sends, a receive that never waits, buffer sizes) are
//! `pxe_udp`'s, shared with pxe-dhcp.

mod admission;
mod driver;
mod event_loop;
mod host_cpu;
mod own_thread;
mod start;
mod story;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pxe_policy::ClientRecords;
use pxe_udp::segments::{self, Segmentation};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::listener::{self, ListenerAction, ReadRequest, Refused};
use crate::observe::TftpObserver;
use crate::options::TransferConfig;
use crate::source::FileSource;
use crate::summary::{Refusal, Summary};
use admission::{Active, Admission, Slot};

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
    /// slower than this and while more transfers are in progress than there are CPUs (a
    /// boot storm: the CPU has other work then). Off by default: a library does not
    /// busy-poll in its host's process unless asked.
    pub lock_step_poll: Duration,
    /// The same for windowed transfers (default zero: never, [`ServerConfig::dedicated`]
    /// too). A window's ACK comes only after the client has taken the whole window, so
    /// polling for it costs more CPU per MiB than in lock-step: measured with
    /// `scripts/bench-tftp` on an idle machine, windows of 16 were somewhat faster with it
    /// when the client ran on another CPU, at 1.4–1.9× the CPU per MiB, and already faster
    /// than every peer without it. With [`follow_peer_cpu`](Self::follow_peer_cpu) a
    /// windowed transfer polls only while it cannot follow its peer's CPU.
    pub windowed_poll: Duration,
    /// Whether a transfer on a blocking thread moves its thread to the CPU its peer's ACKs
    /// arrive on, one transfer per CPU (default false, [`ServerConfig::dedicated`] too; see
    /// `FollowCpu`): windowed transfers, and lock-step ones that do not poll (a lock-step
    /// peer answers at once, and on one CPU the two would take turns). The thread gets its
    /// old affinity back when the transfer ends. It lowers the CPU per MiB of long windowed
    /// transfers to a near client, but slowed EDK2's short windowsize-4 fetch
    /// (`scripts/bench-tftp`). Off by default: a library does not re-pin its host's threads
    /// unless asked.
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
    /// (the `netboot` binary does): lock-step transfers poll 50 µs for each ACK. Measured in
    /// `scripts/bench-tftp`: on an idle virtual machine a sleeping thread takes tens of
    /// microseconds to wake, most of a loopback round trip, so a lock-step transfer that
    /// polls ran at 1.8× the fastest peer where one that sleeps ran level with them.
    /// Windowed transfers neither poll nor follow their peer's CPU: they were 1.3–1.9× the
    /// fastest peer without either, and each costs CPU ([`ServerConfig::windowed_poll`],
    /// [`ServerConfig::follow_peer_cpu`]).
    pub fn dedicated() -> Self {
        Self {
            lock_step_poll: Duration::from_micros(50),
            ..Self::default()
        }
    }
}

struct Shared {
    source: Box<dyn FileSource>,
    config: ServerConfig,
    /// Refusals and evictions, summed up once per interval.
    summary: Arc<Summary>,
    active: Mutex<Active>,
    /// Whether the kernel takes UDP GSO sends (off after its first refusal).
    segmentation: Segmentation,
    /// Bounds the file opens running at once: a boot storm's thousand requests would
    /// otherwise start hundreds of blocking threads for opens that mostly hit the cache.
    opening: Semaphore,
    /// Transfers running on a blocking thread (at most [`own_thread::TRANSFER_THREADS`]).
    transfer_threads: Arc<Semaphore>,
    /// Transfers polling for their next ACK right now (see [`host_cpu::pollers`]).
    pollers: Semaphore,
    /// Transfers in progress, against the CPUs (see [`host_cpu::Load`]).
    load: host_cpu::Load,
    /// The CPUs a transfer's thread is pinned to right now (see [`host_cpu::FollowCpu`]).
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

const LISTENER_RECV_BUFFER: usize = 4 << 20;

fn bind_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps the size at net.core.rmem_max unless we may force it.
    pxe_udp::ask_buffer_size(&socket, pxe_udp::Buffer::Receive, LISTENER_RECV_BUFFER);
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
                segmentation: Segmentation::default(),
                opening: Semaphore::new(CONCURRENT_OPENS),
                transfer_threads: Arc::new(Semaphore::new(own_thread::TRANSFER_THREADS)),
                pollers: host_cpu::pollers(),
                load: host_cpu::Load::new(),
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
                Ok((len, from)) if len > driver::MAX_DATAGRAM => (driver::MAX_DATAGRAM + 1, from),
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
                let kept = datagram.len().min(driver::MAX_DATAGRAM);
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
        if let Err(error) = segments::send_one_async(&self.socket, &reply).await {
            tracing::debug!(%from, %error, "cannot send error reply");
        }
    }

    fn accept(&self, from: SocketAddr, request: ReadRequest) {
        let config = &self.shared.config;
        let limits = admission::Limits {
            total: config.max_transfers,
            per_client: config.max_transfers_per_client,
            single_port: config.ports == PortMode::Single,
        };
        let admission = self.shared.active().admit(from, limits, Instant::now());
        let (handle, inbox) = match admission {
            Admission::Admitted {
                handle,
                inbox,
                evicted,
            } => {
                if let Some(victim) = evicted {
                    tracing::debug!(%from, evicted = %victim.peer, "all transfer slots taken; the oldest unacknowledged transfer makes room");
                    self.shared.summary.record(Refusal::Evicted);
                }
                (handle, inbox)
            }
            Admission::Repeated => {
                tracing::debug!(%from, "repeated request ignored; its transfer is starting");
                return;
            }
            Admission::Refused(refusal) => {
                tracing::debug!(%from, ?refusal, "transfer limit reached; request refused");
                self.shared.refused(from, "busy");
                self.shared.summary.record(refusal);
                let socket = self.socket.clone();
                tokio::spawn(async move {
                    let _ = segments::send_one_async(&socket, &start::server_busy(from)).await;
                });
                return;
            }
        };
        let slot = Slot::new(self.shared.clone(), handle);
        let listener = self.socket.clone();
        tokio::spawn(async move {
            start::serve_transfer(slot, listener, request, inbox).await;
        });
    }
}
