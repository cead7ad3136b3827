//! The lease store: where the server's lease decisions are made and kept. [`LeaseStore`] is
//! the interface (async, so a store may live in a database); [`EmbeddedStore`] is the default,
//! a [`LeaseTable`] in memory with an optional [`LeaseJournal`] written by a thread of its own.
//!
//! The server asks a store one [`LeaseQuestion`] per request (through [`ask`]) and builds its
//! reply from the [`LeaseAnswer`]; an `Err` means the store cannot decide (a lease file that
//! cannot be written, a database that is down) and the server then stays silent rather than
//! guess an address.
//!
//! A store's futures resolve only once a change is durable: the reply that announces a
//! binding must never leave before the binding would survive a crash.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use pxe_policy::MacAddr;

use super::{Lease, LeaseClient, Refusal, Reservation, Subnet};

/// What a [`LeaseStore`] method returns: a boxed future, so that stores can be used as
/// `dyn LeaseStore` (one allocation per request, small beside a database round trip).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store could not decide. The server does not answer the request (clients retransmit)
/// and logs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The lease file could not be written: the change is not durable.
    #[error("lease file {}: {source}", path.display())]
    Journal {
        /// The lease file.
        path: PathBuf,
        /// What the write returned.
        #[source]
        source: io::Error,
    },
    /// The store's backing service cannot be reached (a database that is down, a lost
    /// connection). Requests are not answered until it is back.
    #[error("lease store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store is up but saturated: the request waited too long for it (a database
    /// connection, say) and is dropped before any work is done, so that the requests the
    /// store does serve are answered while their clients still wait. Not an outage.
    #[error("lease store busy: {0}")]
    Busy(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An address given to a client: the binding (for an offer, held until `lease.expires`) and
/// the host name its reservation names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assignment {
    /// The client, its address and until when.
    pub lease: Lease,
    /// Option 12 from the client's reservation.
    pub host_name: Option<String>,
}

impl Assignment {
    /// `lease`, with the reservation's host name when there is one.
    pub fn new(lease: Lease, host_name: Option<String>) -> Self {
        Self { lease, host_name }
    }
}

/// What the server asks the store about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseQuestion {
    /// DHCPDISCOVER: pick and hold an address (the client's option 50 as a hint).
    Offer {
        /// Option 50, when sent.
        requested: Option<Ipv4Addr>,
    },
    /// DHCPREQUEST (selecting, init-reboot, renewing or rebinding): bind `ip`.
    Request {
        /// Option 50, or ciaddr.
        ip: Ipv4Addr,
    },
    /// DHCPRELEASE of `ip`.
    Release {
        /// ciaddr.
        ip: Ipv4Addr,
    },
    /// DHCPDECLINE of `ip`.
    Decline {
        /// Option 50.
        ip: Ipv4Addr,
    },
    /// DHCPINFORM: no address; only the reservation's host name.
    Inform,
}

/// The store's answer to a [`LeaseQuestion`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseAnswer {
    /// To an offer question: the address to offer, or `None` when the pool is exhausted.
    Offer(Option<Assignment>),
    /// To a request question: the binding (ACK) or why not (NAK).
    Request(Result<Assignment, Refusal>),
    /// A release or decline was recorded (or did not apply).
    Done,
    /// To an inform question.
    Inform {
        /// Option 12 from the client's reservation.
        host_name: Option<String>,
    },
}

/// Where leases are decided and kept. The server calls it for every authoritative request;
/// each future resolves once the change it made is durable (or fails, and the server stays
/// silent). Implementations must be safe to call concurrently, from one server or, for a
/// shared store, from several: an address must never be bound to two clients.
///
/// `subnet` is the configured subnet the request came from (its pool, lease time), so a
/// store needs no copy of the server's configuration; `now` is the server's clock.
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// Picks an address for `client` and holds it briefly. In order of preference: its
    /// reservation, its current or last address, `requested`, a free pool address. A bound
    /// client's lease is not shortened. `None` when the pool has nothing to offer.
    fn offer<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Assignment>>;

    /// Binds (allocates or renews) `ip` to `client` for the subnet's lease time, or refuses.
    fn request<'a>(
        &'a self,
        subnet: &'a Subnet,
        client: LeaseClient<'a>,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> StoreFuture<'a, Result<Assignment, Refusal>>;

    /// Frees `ip` if `mac` holds it (DHCPRELEASE).
    fn release(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()>;

    /// Takes `ip` out of use for a while and drops `mac`'s binding of it (DHCPDECLINE).
    fn decline(&self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, ()>;

    /// The unexpired binding of `mac`.
    fn lease_by_mac(&self, mac: MacAddr, now: SystemTime) -> StoreFuture<'_, Option<Lease>>;

    /// The unexpired binding of the client that asked with option 61 `client_id`.
    fn lease_by_client_id<'a>(
        &'a self,
        client_id: &'a [u8],
        now: SystemTime,
    ) -> StoreFuture<'a, Option<Lease>>;

    /// The unexpired binding of `ip`.
    fn lease_by_address(&self, ip: Ipv4Addr, now: SystemTime) -> StoreFuture<'_, Option<Lease>>;

    /// The reservation that applies to `client` (a client-id match wins over a MAC one).
    fn reservation<'a>(&'a self, client: LeaseClient<'a>) -> StoreFuture<'a, Option<Reservation>>;

    /// How `subnet`'s addresses are used at `now`: bound, and free to offer. Asked when
    /// metrics are scraped (`pxe_dhcp_leases_in_use`, `pxe_dhcp_leases_free`), never while
    /// serving a request. The default answers `None` (the store does not say), so a store
    /// written before this method still compiles; the metric is then left out.
    fn pool_usage<'a>(
        &'a self,
        subnet: &'a Subnet,
        now: SystemTime,
    ) -> StoreFuture<'a, Option<super::PoolUsage>> {
        let _ = (subnet, now);
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// Asks `store` `question` about `client` in `subnet`: the one call the server makes per
/// authoritative request.
pub async fn ask(
    store: &dyn LeaseStore,
    subnet: &Subnet,
    client: LeaseClient<'_>,
    question: LeaseQuestion,
    now: SystemTime,
) -> Result<LeaseAnswer, StoreError> {
    Ok(match question {
        LeaseQuestion::Offer { requested } => {
            LeaseAnswer::Offer(store.offer(subnet, client, requested, now).await?)
        }
        LeaseQuestion::Request { ip } => {
            LeaseAnswer::Request(store.request(subnet, client, ip, now).await?)
        }
        LeaseQuestion::Release { ip } => {
            store.release(client.mac, ip, now).await?;
            LeaseAnswer::Done
        }
        LeaseQuestion::Decline { ip } => {
            store.decline(client.mac, ip, now).await?;
            LeaseAnswer::Done
        }
        LeaseQuestion::Inform => LeaseAnswer::Inform {
            host_name: store
                .reservation(client)
                .await?
                .and_then(|reservation| reservation.host_name),
        },
    })
}
