//! The DHCP server on tokio: proxyDHCP (the default) or authoritative DHCP with leases, plus
//! the PXE boot server on port 4011, asking a [`Policy`] what each client boots.
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use pxe_dhcp::lease::Subnet;
//! use pxe_dhcp::server::DhcpServer;
//! use pxe_policy::{BootEveryone, LinuxBoot, SharedPolicy};
//!
//! # async fn run() -> Result<(), pxe_dhcp::Error> {
//! let policy = SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz")));
//! // Proxy mode beside the site's DHCP server, on one interface:
//! let server = DhcpServer::builder(policy.clone())
//!     .interface("eth1")
//!     .script_url("http://${next-server}/boot.ipxe")
//!     .bind()
//!     .await?;
//! # drop(server);
//! // Or the only DHCP server on its segment, leases kept in a file:
//! let subnet = Subnet::new(
//!     Ipv4Addr::new(192, 0, 2, 0), 24,
//!     Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 199),
//! );
//! let server = DhcpServer::builder(policy)
//!     .authoritative(vec![subnet])
//!     .lease_file("/var/lib/pxe/leases")
//!     .bind()
//!     .await?;
//! server.run().await
//! # }
//! ```
//!
//! Each socket's receive loop takes the requests queued on it in one batch (`recvmmsg`), and
//! for each: parse, ask the policy, ask the lease store (authoritative mode; its answer comes
//! once the change is durable: the embedded store's journal thread has written it, or a
//! database has committed it), build the reply. The replies of a batch leave together
//! (`sendmmsg`). The requests of a batch that have to wait (a slow policy, a reply-delay
//! quirk, a journal write, a database) finish together in one task, whose replies leave
//! together as they become ready. Bad input is dropped with a `debug` log and never stops the server.
//!
//! Under hostile input: a send never waits (a reply that does not fit in the socket buffer
//! is dropped), at most one reply per destination waits for the kernel to resolve that
//! destination (`resolution`), and refusals an operator must see (pool exhaustion, dropped
//! replies, dropped requests) are summarised at `warn` once per
//! [`DhcpServerBuilder::warn_interval`], with counts, beside their per-packet `debug` lines.

mod neighbour;
mod observe;
mod resolution;
mod summary;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use pxe_policy::{ClientKind, ClientRecords, MacAddr, Policy, SharedPolicy};
use tokio::task::JoinSet;

use crate::lease::{ask, EmbeddedStore, LeaseStore, LeaseTable, Reservation, StoreError, Subnet};
use crate::proto::{
    Accepted, Arrival, Destination, Engine, Mode, NoReply, ProtoConfig, ProxyStrategy, Quirks,
    Reply, Service,
};
use crate::wire::{EmitError, OptionCode, ReplyDestination};
use crate::Error;
pub use observe::{message_type_label, DhcpObserver, ObservedRequest, RequestOutcome};
use pxe_udp::pktinfo::{self, PktInfoSocket, ReceiveBatch, Route};
use resolution::{Resolution, Verdict};
use summary::{Event, Summaries};

/// How often, at most, each kind of refusal is summarised at `warn` by default.
pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The largest datagram read: larger than any DHCP message a client may send (its option 57
/// is at most 65535, and Ethernet frames are 1500), so a truncated read is always malformed.
const RECV_BUFFER: usize = 4096;

/// Configures and binds a [`DhcpServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct DhcpServerBuilder {
    policy: SharedPolicy,
    config: ProtoConfig,
    interfaces: Vec<String>,
    lease_file: Option<PathBuf>,
    sync_leases: bool,
    dhcp_port: u16,
    boot_server_port: Option<u16>,
    warn_interval: Duration,
    records: Option<ClientRecords>,
    lease_store: Option<Arc<dyn LeaseStore>>,
    observer: Option<Arc<dyn DhcpObserver>>,
}

impl DhcpServerBuilder {
    /// Tells `observer` the fate of every request (answered with which message, or why
    /// not): the hook `pxe::Metrics` counts through. Without one nothing is built per
    /// request for it.
    pub fn observer(mut self, observer: Arc<dyn DhcpObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// proxyDHCP (the default): answer only network-boot clients, hand out no addresses.
    pub fn proxy(mut self) -> Self {
        self.config.mode = Mode::Proxy;
        self
    }

    /// Authoritative DHCP over `subnets`: addresses, leases and the boot fields.
    pub fn authoritative(mut self, subnets: Vec<Subnet>) -> Self {
        let reservations = match self.config.mode {
            Mode::Authoritative { reservations, .. } => reservations,
            _ => Vec::new(),
        };
        self.config.mode = Mode::Authoritative {
            subnets,
            reservations,
        };
        self
    }

    /// Adds a static reservation (authoritative mode; call after [`Self::authoritative`]).
    pub fn reservation(mut self, reservation: Reservation) -> Self {
        if let Mode::Authoritative { reservations, .. } = &mut self.config.mode {
            reservations.push(reservation);
        }
        self
    }

    /// Persists leases in `path` (authoritative mode). Without it leases live in memory and
    /// are lost on restart.
    pub fn lease_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.lease_file = Some(path.into());
        self
    }

    /// Keeps leases in `store` instead of the embedded table and journal (authoritative
    /// mode): a database shared by several servers, say. [`Self::lease_file`],
    /// [`Self::sync_lease_file`] and [`Self::offer_hold`] then do not apply (the store has its
    /// own settings), and reservations given here are not consulted: the store's are.
    pub fn lease_store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.lease_store = Some(store);
        self
    }

    /// `fdatasync` the lease file after every change (survives power loss, not only a
    /// process crash; much slower).
    pub fn sync_lease_file(mut self, sync: bool) -> Self {
        self.sync_leases = sync;
        self
    }

    /// Serves only on this interface (by name). Call again for several; with none, the
    /// server listens on every interface and answers each from its own address.
    pub fn interface(mut self, name: impl Into<String>) -> Self {
        self.interfaces.push(name.into());
        self
    }

    /// The iPXE script URL (`${next-server}` becomes this server's address on the client's
    /// segment; iPXE expands its own settings such as `${mac}`).
    pub fn script_url(mut self, url: impl Into<String>) -> Self {
        self.config.boot.script_url = url.into();
        self
    }

    /// The URL prefix UEFI HTTP Boot clients fetch iPXE binaries from.
    pub fn http_boot_base(mut self, url: impl Into<String>) -> Self {
        self.config.boot.http_boot_base = url.into();
        self
    }

    /// Hand iPXE found in a NIC's ROM our iPXE binary too, instead of the script URL (see
    /// [`crate::proto::BootConfig::chainload_rom_ipxe`]).
    pub fn chainload_rom_ipxe(mut self, yes: bool) -> Self {
        self.config.boot.chainload_rom_ipxe = yes;
        self
    }

    /// The TFTP server named in replies (default: this server's address on the segment).
    pub fn tftp_server(mut self, server: Ipv4Addr) -> Self {
        self.config.boot.tftp_server = Some(server);
        self
    }

    /// Quirks for every client without its own entry.
    pub fn default_quirks(mut self, quirks: Quirks) -> Self {
        self.config.default_quirks = quirks;
        self
    }

    /// Quirks for one client.
    pub fn quirks(mut self, mac: MacAddr, quirks: Quirks) -> Self {
        self.config.quirks.insert(mac, quirks);
        self
    }

    /// The proxy strategy for every client without a per-client quirk (default: by
    /// architecture, see [`ProxyStrategy::default_for`]).
    pub fn proxy_strategy(mut self, strategy: ProxyStrategy) -> Self {
        self.config.default_quirks.proxy_strategy = Some(strategy);
        self
    }

    /// The DHCP port (default 67) and the PXE boot server port (default `Some(4011)`,
    /// `None` to not serve it). Other values are for tests.
    pub fn ports(mut self, dhcp: u16, boot_server: Option<u16>) -> Self {
        self.dhcp_port = dhcp;
        self.boot_server_port = boot_server;
        self
    }

    /// How long an offered address is held for its client (authoritative mode; default
    /// [`crate::lease::DEFAULT_OFFER_HOLD`], 10 s). A pool with no free address offers a new
    /// client the address of the oldest pending offer, and a client's repeated DISCOVER gets
    /// its own offer again, so a flood of DISCOVERs cannot lock new clients out; a longer
    /// hold only protects slow clients' offers from being reclaimed sooner.
    pub fn offer_hold(mut self, hold: Duration) -> Self {
        self.config.offer_hold = hold;
        self
    }

    /// The least time between two `warn` summaries of one kind of refusal (pool exhausted,
    /// replies dropped, requests dropped), and between two `error` summaries of failed lease
    /// file writes; default [`DEFAULT_WARN_INTERVAL`], at least 1 s. Each event is also
    /// logged at `debug`.
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        self.warn_interval = interval;
        self
    }

    /// Records in `records` the address each client is given (its DHCPACK's yiaddr), so that
    /// TFTP and HTTP requests from that address are known to be this MAC's, and which MACs
    /// were handed an iPXE binary (the chainload loop break; without this the server keeps
    /// that in a store of its own). Share the store with the other stages
    /// (`pxe::ServerBuilder` does).
    pub fn client_records(mut self, records: ClientRecords) -> Self {
        self.records = Some(records);
        self
    }

    /// Replaces the whole serving configuration.
    pub fn config(mut self, config: ProtoConfig) -> Self {
        self.config = config;
        self
    }

    /// Opens the sockets and the lease file (replaying it). Must run inside a tokio runtime.
    pub async fn bind(self) -> Result<DhcpServer, Error> {
        let store = match (&self.config.mode, self.lease_store) {
            (Mode::Proxy, _) => None,
            (_, Some(store)) => Some(store),
            (
                Mode::Authoritative {
                    subnets,
                    reservations,
                },
                None,
            ) => {
                let table = LeaseTable::new(subnets.clone(), reservations.clone())
                    .offer_hold(self.config.offer_hold);
                let store = match &self.lease_file {
                    Some(path) => open_journal(table, path, self.sync_leases)?,
                    None => EmbeddedStore::in_memory(table),
                };
                Some(Arc::new(store) as Arc<dyn LeaseStore>)
            }
        };
        let mut engine = Engine::with_lease_store(self.config);
        if let Some(records) = &self.records {
            engine = engine.with_client_records(records.clone());
        }
        let subnets = engine.subnets().to_vec();
        let mut sockets = Vec::new();
        let mut ports = vec![(self.dhcp_port, Service::Dhcp)];
        if let Some(port) = self.boot_server_port {
            ports.push((port, Service::BootServer));
        }
        let names: Vec<Option<&str>> = if self.interfaces.is_empty() {
            vec![None]
        } else {
            self.interfaces
                .iter()
                .map(|name| Some(name.as_str()))
                .collect()
        };
        for (port, service) in ports {
            for name in &names {
                let socket = PktInfoSocket::bind(port, *name).map_err(|source| Error::Bind {
                    port,
                    interface: name.map(str::to_string),
                    source,
                })?;
                sockets.push((Arc::new(socket), service));
            }
        }
        Ok(DhcpServer {
            shared: Arc::new(Shared {
                engine: Mutex::new(engine),
                subnets,
                store,
                store_down: AtomicBool::new(false),
                policy: self.policy,
                waiting: AtomicUsize::new(0),
                summaries: Summaries::new(self.warn_interval),
                resolution: Resolution::default(),
                records: self.records,
                observer: self.observer,
            }),
            sockets,
        })
    }
}

/// Opens the lease file at `path` into an [`EmbeddedStore`] over `table`, logging the records
/// it did not trust.
fn open_journal(table: LeaseTable, path: &PathBuf, sync: bool) -> Result<EmbeddedStore, Error> {
    let (store, dropped) = EmbeddedStore::with_journal(table, path, sync, SystemTime::now())
        .map_err(|source| Error::LeaseFile {
            path: path.clone(),
            source,
        })?;
    // Each untrusted line is named (a few; a damaged file could hold thousands).
    const NAMED: usize = 10;
    for record in dropped.iter().take(NAMED) {
        tracing::warn!(
            path = %path.display(),
            line = record.line,
            reason = %record.reason,
            text = %record.text,
            "lease record not trusted; dropped"
        );
    }
    if dropped.len() > NAMED {
        tracing::warn!(
            path = %path.display(),
            dropped = dropped.len(),
            "lease records not trusted; dropped (the first {NAMED} named above)"
        );
    }
    Ok(store)
}

struct Shared {
    engine: Mutex<Engine>,
    /// The configured subnets (authoritative mode), outside the engine's lock: the store is
    /// asked about one while the engine serves other requests.
    subnets: Vec<Subnet>,
    /// Where lease decisions are made (authoritative mode).
    store: Option<Arc<dyn LeaseStore>>,
    /// The store failed with [`StoreError::Unavailable`] and has not answered since: the
    /// outage is logged once, and again when it ends.
    store_down: AtomicBool,
    policy: SharedPolicy,
    /// Requests waiting on the policy or a reply delay in their own task.
    waiting: AtomicUsize,
    summaries: Summaries,
    resolution: Resolution,
    /// Where the address each client is given is recorded, when the embedder shares one.
    records: Option<ClientRecords>,
    /// Told each request's fate ([`DhcpServerBuilder::observer`]).
    observer: Option<Arc<dyn DhcpObserver>>,
}

/// At most this many requests wait at once (on a slow policy, or a reply-delay quirk); more
/// are dropped, and the clients retransmit.
const MAX_WAITING: usize = 4096;

/// A bound DHCP server; [`DhcpServer::run`] serves until an unrecoverable socket error.
pub struct DhcpServer {
    shared: Arc<Shared>,
    sockets: Vec<(Arc<PktInfoSocket>, Service)>,
}

impl std::fmt::Debug for DhcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpServer")
            .field("sockets", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

impl DhcpServer {
    /// A builder for a proxy-mode server on every interface, ports 67 and 4011, asking
    /// `policy`.
    pub fn builder(policy: SharedPolicy) -> DhcpServerBuilder {
        DhcpServerBuilder {
            policy,
            config: ProtoConfig::default(),
            interfaces: Vec::new(),
            lease_file: None,
            sync_leases: false,
            dhcp_port: 67,
            boot_server_port: Some(4011),
            warn_interval: DEFAULT_WARN_INTERVAL,
            records: None,
            lease_store: None,
            observer: None,
        }
    }

    /// The lease store decisions go through (authoritative mode): the one given to
    /// [`DhcpServerBuilder::lease_store`] or the embedded one, for asking it about the pools
    /// (metrics) while the server runs.
    pub fn lease_store(&self) -> Option<Arc<dyn LeaseStore>> {
        self.shared.store.clone()
    }

    /// The subnets served (authoritative mode; empty in proxy mode).
    pub fn subnets(&self) -> &[Subnet] {
        &self.shared.subnets
    }

    /// Serves until a socket fails.
    pub async fn run(self) -> Result<(), Error> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes (or a socket fails).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut receivers = JoinSet::new();
        for (socket, service) in &self.sockets {
            receivers.spawn(receive_loop(
                Arc::clone(&self.shared),
                Arc::clone(socket),
                *service,
            ));
        }
        // Summaries of a flood that stopped are written by this tick, once per interval.
        let shared = Arc::clone(&self.shared);
        let flush = async move {
            let mut tick = tokio::time::interval(shared.summaries.interval());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                shared.summaries.flush(Instant::now());
            }
        };
        tokio::select! {
            () = shutdown => Ok(()),
            () = flush => Ok(()),
            Some(result) = receivers.join_next() => {
                match result {
                    Ok(result) => result,
                    Err(join) => Err(Error::Socket(io::Error::other(join))),
                }
            }
        }
    }
}

async fn receive_loop(
    shared: Arc<Shared>,
    socket: Arc<PktInfoSocket>,
    service: Service,
) -> Result<(), Error> {
    let mut batch = ReceiveBatch::new(RECV_BUFFER);
    let mut replies: Vec<Prepared> = Vec::with_capacity(pktinfo::BATCH);
    // Reply buffers come back here once sent, for the next batch.
    let mut spare_buffers: Vec<Vec<u8>> = Vec::with_capacity(pktinfo::BATCH);
    loop {
        match socket.recv_batch(&mut batch).await {
            Ok(_) => {}
            // ICMP errors from earlier sends surface here on Linux; they are not ours to fix.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(Error::Socket(e)),
        }
        // The batch's requests that wait (see `finish_waiting`).
        let mut waiting = Vec::new();
        for (datagram, arrival) in batch.iter() {
            let arrival = Arrival::new(service, arrival.from, arrival.ifindex, arrival.local);
            let accepted = {
                let engine = lock(&shared.engine);
                engine.accept(datagram, &arrival, SystemTime::now())
            };
            let accepted = match accepted {
                Ok(accepted) => accepted,
                Err(reason) => {
                    tracing::debug!(from = %arrival.from, %reason, "request dropped");
                    if let Some(observer) = &shared.observer {
                        let message_type = crate::wire::Packet::new_checked(datagram)
                            .ok()
                            .and_then(|packet| packet.message_type());
                        observer.request(&ObservedRequest {
                            message_type,
                            kind: None,
                            mac: None,
                            outcome: RequestOutcome::NoReply(&reason),
                        });
                    }
                    if matches!(reason, NoReply::Malformed(_)) {
                        shared
                            .summaries
                            .record(Event::RequestDropped, "malformed", Instant::now());
                    }
                    continue;
                }
            };
            let seen = (accepted.message_type(), accepted.kind(), accepted.mac());
            let task_shared = Arc::clone(&shared);
            let task_socket = Arc::clone(&socket);
            let buffer = spare_buffers.pop().unwrap_or_default();
            let mut task = Box::pin(async move {
                prepare(&task_shared, &task_socket, accepted, arrival, buffer).await
            });
            // Most requests complete in one poll (the policy answers at once): their replies
            // join the batch. Those that wait (a slow policy, a reply delay, the lease store)
            // finish in one task per batch, so the receive loop never waits on them. That
            // task polls every one of them again before it waits, so this first poll needs
            // no waker: and a lease store that defers its work to the second poll (the
            // embedded journal, one write per batch) sees the whole batch queued by then.
            let polled = task
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()));
            match polled {
                Poll::Ready(Some(reply)) => replies.push(reply),
                Poll::Ready(None) => {}
                Poll::Pending => {
                    // A slow policy must not let a flood of requests pile up without bound.
                    if shared.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
                        tracing::debug!(from = %arrival.from, "too many requests waiting; dropped");
                        if let Some(observer) = &shared.observer {
                            observer.request(&ObservedRequest {
                                message_type: Some(seen.0),
                                kind: seen.1,
                                mac: Some(seen.2),
                                outcome: RequestOutcome::Overloaded,
                            });
                        }
                        shared.summaries.record(
                            Event::RequestDropped,
                            "too many waiting on the policy",
                            Instant::now(),
                        );
                        continue;
                    }
                    shared.waiting.fetch_add(1, Ordering::Relaxed);
                    waiting.push(task);
                }
            }
        }
        send_replies(&shared, &socket, &replies);
        spare_buffers.extend(replies.drain(..).map(|reply| reply.datagram));
        if !waiting.is_empty() {
            tokio::spawn(finish_waiting(
                Arc::clone(&shared),
                Arc::clone(&socket),
                std::mem::take(&mut waiting),
            ));
        }
    }
}

/// Drives the requests of one received batch that did not finish in their first poll (a
/// slow policy, a reply delay, a lease store writing its journal or asking its database),
/// in one task: whatever has finished when the task wakes leaves together (one `sendmmsg`),
/// and a slow request does not hold back the others. One task per batch rather than per
/// request keeps a flood of REQUESTs, each waiting for the journal, at one wake-up and one
/// send per journal write.
async fn finish_waiting<F>(
    shared: Arc<Shared>,
    socket: Arc<PktInfoSocket>,
    mut tasks: Vec<Pin<Box<F>>>,
) where
    F: Future<Output = Option<Prepared>>,
{
    let mut ready = Vec::with_capacity(tasks.len());
    while !tasks.is_empty() {
        let finished = std::future::poll_fn(|cx| {
            let before = tasks.len();
            tasks.retain_mut(|task| match task.as_mut().poll(cx) {
                Poll::Ready(reply) => {
                    ready.extend(reply);
                    false
                }
                Poll::Pending => true,
            });
            match before - tasks.len() {
                0 => Poll::Pending,
                finished => Poll::Ready(finished),
            }
        })
        .await;
        shared.waiting.fetch_sub(finished, Ordering::Relaxed);
        send_replies(&shared, &socket, &ready);
        ready.clear();
    }
}

/// A reply ready to leave: the datagram, where it goes, and its story line.
struct Prepared {
    datagram: Vec<u8>,
    route: Route,
    /// Unicast to a client's new address at its hardware address: if that send fails, the
    /// reply is broadcast instead.
    broadcast_on_failure: bool,
    story: Option<Story>,
    /// The observer and what it is told once the reply has left (or could not).
    observed: Option<Observed>,
}

/// Asks the policy about an accepted request, decides, persists lease changes and emits the
/// reply into `buffer`; `None` when there is no reply (logged at `debug`, or `error` for the
/// lease file).
async fn prepare(
    shared: &Shared,
    socket: &PktInfoSocket,
    accepted: Accepted,
    arrival: Arrival,
    buffer: Vec<u8>,
) -> Option<Prepared> {
    let decision = match accepted.facts() {
        Some(facts) => Some(shared.policy.boot(facts).await),
        None => None,
    };
    let lease_ask = lock(&shared.engine).lease_question(&accepted, &arrival);
    let lease = match (lease_ask, &shared.store) {
        (Err(reason), _) => return no_reply(shared, &accepted, reason),
        (Ok(Some(lease_ask)), Some(store)) => {
            let client = accepted.lease_client();
            let subnet = &shared.subnets[lease_ask.subnet];
            let asked = ask(
                store.as_ref(),
                subnet,
                client,
                lease_ask.question,
                SystemTime::now(),
            )
            .await;
            match asked {
                Ok(answer) => {
                    shared.store_answered();
                    Some((lease_ask.subnet, answer))
                }
                Err(e) => {
                    shared.store_failed(&accepted, &e);
                    return None;
                }
            }
        }
        (Ok(_), _) => None,
    };
    let outcome = lock(&shared.engine).respond_with_lease(
        &accepted,
        &arrival,
        decision,
        lease,
        SystemTime::now(),
    );
    let reply = match outcome.reply {
        Ok(reply) => reply,
        Err(reason) => return no_reply(shared, &accepted, reason),
    };
    if let Some(records) = &shared.records {
        let yiaddr = reply.packet.yiaddr();
        if reply.packet.message_type() == Some(crate::wire::MessageType::Ack)
            && !yiaddr.is_unspecified()
        {
            // The address given: TFTP and HTTP requests from it are this MAC's.
            records.record_address(accepted.mac(), yiaddr);
        }
    }
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let datagram = match emit(&reply.packet, buffer) {
        Ok(datagram) => datagram,
        Err(e) => {
            tracing::debug!(mac = %accepted.mac(), error = %e, "reply cannot be emitted");
            observe(shared, &accepted, RequestOutcome::NotEmitted);
            return None;
        }
    };
    let on_arrival_interface = |to| Route {
        to,
        ifindex: arrival.ifindex,
        source: arrival.local,
    };
    let by_routing_table = |to| Route {
        to,
        ifindex: 0,
        source: arrival.local,
    };
    let mut broadcast_on_failure = false;
    let route = match reply.destination {
        Destination::Sender(to) | Destination::Dhcp(ReplyDestination::Relay(to)) => {
            by_routing_table(to)
        }
        Destination::Dhcp(ReplyDestination::Client(to)) => on_arrival_interface(to),
        // The client has no address and cannot answer ARP: a neighbour entry first, so the
        // kernel can unicast to yiaddr at chaddr. Without one (no CAP_NET_ADMIN, say) the
        // reply is broadcast, which RFC 2131 §4.1 allows.
        Destination::Dhcp(ReplyDestination::Hardware { ip, mac }) => {
            match neighbour::add_neighbour(socket.fd(), arrival.ifindex, ip, mac) {
                Ok(()) => {
                    broadcast_on_failure = true;
                    on_arrival_interface(SocketAddrV4::new(ip, crate::wire::CLIENT_PORT))
                }
                Err(e) => {
                    tracing::debug!(%mac, %ip, error = %e, "no neighbour entry; broadcasting");
                    on_arrival_interface(BROADCAST)
                }
            }
        }
        Destination::Dhcp(_) => on_arrival_interface(BROADCAST),
    };
    // A unicast to an address this server did not seed waits in the kernel while ARP
    // resolves it; at most one per destination may (see `resolution`).
    let ifindex = if route.ifindex == 0 {
        arrival.ifindex
    } else {
        route.ifindex
    };
    let needs_resolution = !broadcast_on_failure && route.to != BROADCAST && ifindex != 0;
    if needs_resolution
        && shared
            .resolution
            .admit(socket.fd(), ifindex, *route.to.ip(), Instant::now())
            == Verdict::Unresolved
    {
        tracing::debug!(
            mac = %accepted.mac(),
            to = %route.to,
            "reply dropped: an earlier reply to this address still waits for its ARP entry"
        );
        observe(shared, &accepted, RequestOutcome::ArpPending);
        shared.summaries.record(
            Event::ReplyDropped,
            "destination does not answer ARP",
            Instant::now(),
        );
        return None;
    }
    Some(Prepared {
        datagram,
        route,
        broadcast_on_failure,
        story: Story::of(&accepted, &reply, arrival.service),
        observed: Observed::of(shared, &accepted, &reply),
    })
}

/// Logs why a request gets no reply (`debug`), and counts the kinds an operator must see for
/// the `warn` summary.
fn no_reply(shared: &Shared, accepted: &Accepted, reason: NoReply) -> Option<Prepared> {
    tracing::debug!(mac = %accepted.mac(), %reason, "no reply");
    observe(shared, accepted, RequestOutcome::NoReply(&reason));
    match reason {
        NoReply::PoolExhausted {
            network,
            prefix_len,
        } => {
            let pool = format!("{network}/{prefix_len}");
            shared
                .summaries
                .record(Event::PoolExhausted, pool, Instant::now());
        }
        NoReply::NoSubnet { address } => {
            shared
                .summaries
                .record(Event::NoSubnet, address, Instant::now());
        }
        _ => {}
    }
    None
}

impl Shared {
    /// The store decided: if it had been unavailable, say it is back.
    fn store_answered(&self) {
        if self.store_down.load(Ordering::Relaxed) && self.store_down.swap(false, Ordering::Relaxed)
        {
            tracing::warn!("lease store reachable again: answering authoritative requests");
        }
    }

    /// The store could not decide: the request goes unanswered (no address is guessed). A
    /// failed lease file write joins the `error` summary; an unavailable store is logged
    /// once when it goes away (and each request at `debug`).
    fn store_failed(&self, accepted: &Accepted, error: &StoreError) {
        tracing::debug!(mac = %accepted.mac(), %error, "lease store failed; no reply");
        match error {
            StoreError::Busy(_) => observe(self, accepted, RequestOutcome::StoreBusy),
            _ => observe(self, accepted, RequestOutcome::StoreFailed),
        }
        match error {
            StoreError::Journal { path, source } => self.summaries.record(
                Event::LeaseFileFailed,
                format!("{}: {source}", path.display()),
                Instant::now(),
            ),
            // Saturation, not an outage: counted with the other dropped requests (during an
            // outage, requests queued behind the failing connections time out too: the
            // outage's one error line covers them).
            StoreError::Busy(_) => {
                if !self.store_down.load(Ordering::Relaxed) {
                    self.summaries.record(
                        Event::RequestDropped,
                        "lease store saturated",
                        Instant::now(),
                    );
                }
            }
            _ => {
                if !self.store_down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        %error,
                        "lease store unreachable: authoritative requests go unanswered until it is back"
                    );
                }
            }
        }
    }
}

/// The first size tried for a reply buffer: an Ethernet frame's worth, which almost every
/// reply fits.
const REPLY_BUFFER: usize = 1500;

/// Emits `packet` into `buffer` (reused from an earlier reply), growing it only for a reply
/// larger than any before.
fn emit(packet: &crate::wire::PacketBuilder, mut buffer: Vec<u8>) -> Result<Vec<u8>, EmitError> {
    buffer.resize(buffer.capacity().max(REPLY_BUFFER), 0);
    let len = match packet.emit(&mut buffer) {
        Err(EmitError::BufferTooSmall { needed, .. }) => {
            buffer.resize(needed, 0);
            packet.emit(&mut buffer)?
        }
        result => result?,
    };
    buffer.truncate(len);
    Ok(buffer)
}

/// Replies to clients without an address go to the limited broadcast address.
const BROADCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, crate::wire::CLIENT_PORT);

/// Sends `replies` in as few `sendmmsg` calls as their routes allow (a lone reply with one
/// `sendmsg`), without waiting: a reply that cannot leave at once is dropped, logged at
/// `debug` and counted in the `warn` summary (a unicast to a new address is retried as a
/// broadcast first), and the rest still go.
fn send_replies(shared: &Shared, socket: &PktInfoSocket, replies: &[Prepared]) {
    if let [reply] = replies {
        match socket.send(&reply.datagram, reply.route) {
            Ok(()) => reply.sent(),
            Err(e) => reply.not_sent(shared, socket, e),
        }
        return;
    }
    let datagrams: Vec<(&[u8], Route)> = replies
        .iter()
        .map(|reply| (&reply.datagram[..], reply.route))
        .collect();
    let mut next = 0;
    while next < replies.len() {
        match socket.send_batch(&datagrams[next..]) {
            Ok(sent) => {
                replies[next..next + sent].iter().for_each(Prepared::sent);
                next += sent;
            }
            Err(e) => {
                replies[next].not_sent(shared, socket, e);
                next += 1;
            }
        }
    }
}

impl Prepared {
    /// The reply has left: its story line.
    fn sent(&self) {
        if let Some(observed) = &self.observed {
            observed.tell(RequestOutcome::Replied(observed.reply));
        }
        if let Some(story) = &self.story {
            story.log();
        }
    }

    /// Sending failed with `error`: a unicast to the client's new address is retried as a
    /// broadcast; anything else is dropped (`debug`, and counted for the summary).
    fn not_sent(&self, shared: &Shared, socket: &PktInfoSocket, error: io::Error) {
        let mut route = self.route;
        let mut error = error;
        if self.broadcast_on_failure && error.kind() != io::ErrorKind::WouldBlock {
            tracing::debug!(to = %route.to, %error, "unicast to the new address failed; broadcasting");
            route.to = BROADCAST;
            match socket.send(&self.datagram, route) {
                Ok(()) => return self.sent(),
                Err(e) => error = e,
            }
        }
        tracing::debug!(to = %route.to, %error, "reply not sent");
        if let Some(observed) = &self.observed {
            observed.tell(RequestOutcome::NotSent);
        }
        let reason = match error.kind() {
            io::ErrorKind::WouldBlock => "socket send buffer full".to_string(),
            _ => format!("send failed: {error}"),
        };
        shared
            .summaries
            .record(Event::ReplyDropped, reason, Instant::now());
    }
}

/// Tells the observer, if there is one, `outcome` of `accepted`.
fn observe(shared: &Shared, accepted: &Accepted, outcome: RequestOutcome<'_>) {
    if let Some(observer) = &shared.observer {
        observer.request(&ObservedRequest {
            message_type: Some(accepted.message_type()),
            kind: accepted.kind(),
            mac: Some(accepted.mac()),
            outcome,
        });
    }
}

/// What a prepared reply tells the observer once it has left or failed to.
struct Observed {
    observer: Arc<dyn DhcpObserver>,
    message_type: crate::wire::MessageType,
    kind: Option<ClientKind>,
    mac: MacAddr,
    reply: crate::wire::MessageType,
}

impl Observed {
    fn of(shared: &Shared, accepted: &Accepted, reply: &Reply) -> Option<Self> {
        let observer = shared.observer.as_ref()?;
        Some(Self {
            observer: Arc::clone(observer),
            message_type: accepted.message_type(),
            kind: accepted.kind(),
            mac: accepted.mac(),
            reply: reply
                .packet
                .message_type()
                .unwrap_or(crate::wire::MessageType::Unknown(0)),
        })
    }

    fn tell(&self, outcome: RequestOutcome<'_>) {
        self.observer.request(&ObservedRequest {
            message_type: Some(self.message_type),
            kind: self.kind,
            mac: Some(self.mac),
            outcome,
        });
    }
}

/// One line per answered request at `info`, keyed by MAC: the DHCP chapter of a client's boot
/// story (the TFTP and HTTP servers log theirs with the same fields). Logged once the reply
/// has left.
struct Story {
    mac: MacAddr,
    client: &'static str,
    request: crate::wire::MessageType,
    reply: String,
    port: u16,
    address: String,
    boot_file: String,
}

impl Story {
    /// The story line of `reply`, when `info` lines are written at all (its fields cost a
    /// few strings per reply).
    fn of(accepted: &Accepted, reply: &Reply, service: Service) -> Option<Self> {
        if !tracing::enabled!(tracing::Level::INFO) {
            return None;
        }
        let packet = &reply.packet;
        let boot_file = packet
            .option(OptionCode::BOOTFILE_NAME)
            .unwrap_or_else(|| packet.file());
        let boot_file = String::from_utf8_lossy(boot_file.split(|&b| b == 0).next().unwrap_or(&[]));
        let yiaddr = packet.yiaddr();
        Some(Self {
            mac: accepted.mac(),
            client: accepted
                .kind()
                .map_or("not network boot", ClientKind::as_str),
            request: accepted.message_type(),
            reply: packet
                .message_type()
                .map_or_else(|| "BOOTP".to_string(), |t| t.to_string()),
            port: match service {
                Service::Dhcp => 67,
                Service::BootServer => 4011,
            },
            address: if yiaddr.is_unspecified() {
                "-".to_string()
            } else {
                yiaddr.to_string()
            },
            boot_file: if boot_file.is_empty() {
                "-".to_string()
            } else {
                boot_file.into_owned()
            },
        })
    }

    fn log(&self) {
        tracing::info!(
            mac = %self.mac,
            client = self.client,
            request = %self.request,
            reply = %self.reply,
            port = self.port,
            address = %self.address,
            boot_file = %self.boot_file,
            "dhcp"
        );
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the state
/// consistent before anything that could panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
