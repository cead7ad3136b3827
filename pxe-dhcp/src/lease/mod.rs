//! Address leases for authoritative mode: pools per subnet, static reservations, and the
//! binding table, with no I/O and no clock reads (time is an argument).
//!
//! Clients are keyed on their hardware address (`chaddr`), not on option 61: EDK2 sends no
//! client identifier and the iPXE it chainloads does, and both stages of one machine must get
//! one lease. A reservation may still name a client identifier, matched when a client sends
//! one.
//!
//! The server makes its lease decisions through a [`LeaseStore`]: by default an
//! [`EmbeddedStore`], this module's [`LeaseTable`] with its [`LeaseJournal`]; an embedder may
//! give its own (`pxe-lease-postgres` keeps leases in PostgreSQL, shared by several servers).
//!
//! Every change of the table that must survive a crash comes back as a [`LeaseChange`]; the
//! embedded store appends it to the journal before the future that decided it resolves, so
//! the reply that announces it leaves after it is written: after a kill -9 and restart every
//! client keeps its address and no address is bound to two clients. Offers are held in
//! memory only: an offer lost in a crash is harmless, because the REQUEST that follows it is
//! checked against the persisted bindings.

#[cfg(feature = "server")]
mod embedded;
mod journal;
mod store;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use pxe_policy::MacAddr;

#[cfg(feature = "server")]
pub use embedded::EmbeddedStore;
pub use journal::{
    journal_text, read_journal, DropReason, DroppedRecord, JournalRead, LeaseJournal,
};
pub use store::{ask, Assignment, LeaseAnswer, LeaseQuestion, LeaseStore, StoreError, StoreFuture};

/// An IPv4 subnet served in authoritative mode: its address range and the options its clients
/// are given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subnet {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// The prefix length (24 for a /24).
    pub prefix_len: u8,
    /// First address of the dynamic pool (inclusive).
    pub pool_start: Ipv4Addr,
    /// Last address of the dynamic pool (inclusive).
    pub pool_end: Ipv4Addr,
    /// The default router (option 3), when there is one.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns_servers: Vec<Ipv4Addr>,
    /// The lease time handed to clients (option 51).
    pub lease_time: Duration,
    /// The DNS domain name (option 15), when there is one.
    pub domain_name: Option<String>,
}

impl Subnet {
    /// A subnet `network/prefix_len` whose dynamic pool is `pool_start..=pool_end`, with no
    /// router, no DNS servers and a one-hour lease time.
    pub fn new(
        network: Ipv4Addr,
        prefix_len: u8,
        pool_start: Ipv4Addr,
        pool_end: Ipv4Addr,
    ) -> Self {
        let prefix_len = prefix_len.min(32);
        Self {
            network: Ipv4Addr::from(u32::from(network) & prefix_mask(prefix_len)),
            prefix_len,
            pool_start,
            pool_end,
            router: None,
            dns_servers: Vec::new(),
            lease_time: Duration::from_secs(3600),
            domain_name: None,
        }
    }

    /// Sets the router (option 3).
    #[must_use]
    pub fn router(mut self, router: Ipv4Addr) -> Self {
        self.router = Some(router);
        self
    }

    /// Adds a DNS server (option 6).
    #[must_use]
    pub fn dns_server(mut self, server: Ipv4Addr) -> Self {
        self.dns_servers.push(server);
        self
    }

    /// Sets the lease time (option 51).
    #[must_use]
    pub fn lease_time(mut self, lease_time: Duration) -> Self {
        self.lease_time = lease_time;
        self
    }

    /// Sets the DNS domain name (option 15). Refused unless it is a DNS name: letters,
    /// digits, `-` and `.`, labels of 1 to 63 bytes, 253 bytes at most.
    pub fn domain_name(mut self, name: impl Into<String>) -> Result<Self, InvalidName> {
        self.domain_name = Some(checked_dns_name(name.into())?);
        Ok(self)
    }

    /// The subnet mask (option 1).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask(self.prefix_len))
    }

    /// The directed broadcast address (option 28).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !prefix_mask(self.prefix_len))
    }

    /// Whether `ip` lies inside this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & prefix_mask(self.prefix_len) == u32::from(self.network)
    }

    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.pool_start)..=u32::from(self.pool_end)).contains(&u32::from(ip))
    }

    fn pool_len(&self) -> u32 {
        u32::from(self.pool_end)
            .saturating_sub(u32::from(self.pool_start))
            .saturating_add(1)
    }
}

/// A host or domain name that is not a DNS name, so a client could not use it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a DNS name: {why}")]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// `name` if it is a DNS name (RFC 1035 §2.3.1, with RFC 1123's leading digits): labels of
/// letters, digits and inner hyphens, 1 to 63 bytes each, 253 bytes in all.
fn checked_dns_name(name: String) -> Result<String, InvalidName> {
    let why = if name.is_empty() || name.len() > 253 {
        Some("it must be 1 to 253 bytes long")
    } else if name.trim_end_matches('.').split('.').any(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) {
        Some("each dot-separated label must be 1 to 63 letters, digits or inner hyphens")
    } else {
        None
    };
    match why {
        Some(why) => Err(InvalidName { name, why }),
        None => Ok(name),
    }
}

fn prefix_mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

/// A fixed address for one client, by MAC address or by client identifier (option 61).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reservation {
    /// The reserved address; it may lie inside or outside the dynamic pool.
    pub ip: Ipv4Addr,
    /// Matches a client by its hardware address.
    pub mac: Option<MacAddr>,
    /// Matches a client that sends this option 61 value (type byte included).
    pub client_id: Option<Vec<u8>>,
    /// The host name the client is given (option 12), when there is one.
    pub host_name: Option<String>,
}

impl Reservation {
    /// Reserves `ip` for the client with hardware address `mac`.
    pub fn by_mac(mac: MacAddr, ip: Ipv4Addr) -> Self {
        Self {
            ip,
            mac: Some(mac),
            client_id: None,
            host_name: None,
        }
    }

    /// Reserves `ip` for the client that sends option 61 `client_id` (type byte included).
    pub fn by_client_id(client_id: impl Into<Vec<u8>>, ip: Ipv4Addr) -> Self {
        Self {
            ip,
            mac: None,
            client_id: Some(client_id.into()),
            host_name: None,
        }
    }

    /// Gives the client this host name (option 12). Refused unless it is a DNS name (see
    /// [`Subnet::domain_name`]).
    pub fn host_name(mut self, name: impl Into<String>) -> Result<Self, InvalidName> {
        self.host_name = Some(checked_dns_name(name.into())?);
        Ok(self)
    }

    fn matches(&self, client: LeaseClient<'_>) -> bool {
        self.mac == Some(client.mac)
            || (self.client_id.is_some() && self.client_id.as_deref() == client.client_id)
    }
}

/// Who is asking for a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClient<'a> {
    /// The hardware address: the lease key.
    pub mac: MacAddr,
    /// Option 61 when sent: consulted only to match reservations.
    pub client_id: Option<&'a [u8]>,
}

/// A binding of an address to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The client's hardware address.
    pub mac: MacAddr,
    /// The bound address.
    pub ip: Ipv4Addr,
    /// When the binding ends (a released lease ends when it was released).
    pub expires: SystemTime,
}

/// A change to the bindings that must be persisted before the client hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseChange {
    /// `mac` holds `ip` until `expires` (DHCPACK to a REQUEST).
    Bind(Lease),
    /// The client gave its address back (DHCPRELEASE), or the address was handed to another
    /// client after the lease expired.
    Free {
        /// The client that held the address.
        mac: MacAddr,
        /// The address.
        ip: Ipv4Addr,
    },
    /// A client reported the address in use by someone else (DHCPDECLINE): do not hand it
    /// out before `until`.
    Decline {
        /// The address.
        ip: Ipv4Addr,
        /// When it may be offered again.
        until: SystemTime,
    },
}

/// Why a DHCPREQUEST for an address cannot be granted: the server answers DHCPNAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The address is not in the client's subnet, or is not ours to give.
    WrongSubnet,
    /// Another client holds the address (or it is reserved for one, or declined).
    InUse,
    /// The client's reservation names a different address.
    Reserved,
}

/// How a subnet's addresses are used right now ([`LeaseStore::pool_usage`]): what an
/// operator graphs to see a pool fill up before it is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolUsage {
    /// Addresses of the subnet bound to a client (an unexpired lease; reserved addresses
    /// included).
    pub in_use: u64,
    /// Addresses of the dynamic pool a new client could be offered now: not bound, not held
    /// by a pending offer, not declined, not reserved.
    pub free: u64,
}

impl PoolUsage {
    /// `in_use` bound addresses and `free` offerable ones.
    pub fn new(in_use: u64, free: u64) -> Self {
        Self { in_use, free }
    }
}

/// How long an offered address is held for the client by default (see
/// [`LeaseTable::offer_hold`]): longer than a PXE ROM's first four-second round of collecting
/// offers, short enough that offers to clients that never come back free the pool soon.
pub const DEFAULT_OFFER_HOLD: Duration = Duration::from_secs(10);
/// How long a declined address stays out of use (RFC 2131 §3.1 leaves it to the server).
const DECLINE_HOLD: Duration = Duration::from_secs(600);

/// What an address is checked for: an offer respects every pending offer to another
/// client; a request may claim an address that is only offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Offer,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Offered,
    Bound,
    Free,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: Ipv4Addr,
    expires: SystemTime,
    state: State,
}

/// The binding table: which client holds which address, for every subnet served.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    subnets: Vec<Subnet>,
    reservations: Vec<Reservation>,
    by_mac: HashMap<MacAddr, Entry>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    declined: HashMap<Ipv4Addr, SystemTime>,
    /// The MAC that last asked with each client identifier (option 61), for look-ups by
    /// client identifier. Memory only: the journal keys leases on the MAC.
    by_client_id: HashMap<Vec<u8>, MacAddr>,
    /// The other way round: each MAC's identifier in `by_client_id`, so that replacing it
    /// costs one look-up, not a scan of every client (that scan, on every REQUEST, had
    /// doubled the server's CPU per exchange with a few thousand clients).
    client_id_of: HashMap<MacAddr, Vec<u8>>,
    /// Per subnet, where the search for a never-used address resumes.
    cursors: Vec<u32>,
    offer_hold: Duration,
}

impl LeaseTable {
    /// An empty table over `subnets`, honouring `reservations`.
    pub fn new(subnets: Vec<Subnet>, reservations: Vec<Reservation>) -> Self {
        let cursors = vec![0; subnets.len()];
        Self {
            subnets,
            reservations,
            by_mac: HashMap::new(),
            by_ip: HashMap::new(),
            declined: HashMap::new(),
            by_client_id: HashMap::new(),
            client_id_of: HashMap::new(),
            cursors,
            offer_hold: DEFAULT_OFFER_HOLD,
        }
    }

    /// Holds each offered address for `hold` (default [`DEFAULT_OFFER_HOLD`]) before it may
    /// be offered to another client. Even within the hold, an offer is not a promise: when a
    /// pool has no free address, a new client is offered the address of the oldest pending
    /// offer, and a DHCPREQUEST may claim an address that is only offered to another client.
    #[must_use]
    pub fn offer_hold(mut self, hold: Duration) -> Self {
        self.offer_hold = hold;
        self
    }

    /// The subnets served.
    pub fn subnets(&self) -> &[Subnet] {
        &self.subnets
    }

    /// The subnet that contains `ip` (the relay's giaddr, or the receiving interface's
    /// address).
    pub fn subnet_for(&self, ip: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|subnet| subnet.contains(ip))
    }

    /// The current binding of `mac`, if it holds an unexpired one.
    pub fn lease_of(&self, mac: MacAddr, now: SystemTime) -> Option<Lease> {
        let entry = self.by_mac.get(&mac)?;
        (entry.state == State::Bound && entry.expires > now).then_some(Lease {
            mac,
            ip: entry.ip,
            expires: entry.expires,
        })
    }

    /// The unexpired binding of the client that last asked with client identifier `id`
    /// (option 61, type byte included) since start-up.
    pub fn lease_of_client_id(&self, id: &[u8], now: SystemTime) -> Option<Lease> {
        self.lease_of(*self.by_client_id.get(id)?, now)
    }

    /// The unexpired binding of `ip`, whoever holds it.
    pub fn lease_of_address(&self, ip: Ipv4Addr, now: SystemTime) -> Option<Lease> {
        self.lease_of(*self.by_ip.get(&ip)?, now)
            .filter(|lease| lease.ip == ip)
    }

    /// The index of `subnet` among [`Self::subnets`] (matched by network and prefix).
    pub fn subnet_index(&self, subnet: &Subnet) -> Option<usize> {
        self.subnets
            .iter()
            .position(|s| s.network == subnet.network && s.prefix_len == subnet.prefix_len)
    }

    /// Answers a [`LeaseQuestion`] about `client` in `subnet` (an index into
    /// [`Self::subnets`]): the sans-IO form of [`ask`], with the changes to persist before
    /// the reply that announces them is sent.
    pub fn answer(
        &mut self,
        subnet: usize,
        client: LeaseClient<'_>,
        question: LeaseQuestion,
        now: SystemTime,
    ) -> (LeaseAnswer, Vec<LeaseChange>) {
        let host_name = |table: &Self| table.reservation(client).and_then(|r| r.host_name.clone());
        match question {
            LeaseQuestion::Offer { requested } => {
                let offered = self
                    .offer(subnet, client, requested, now)
                    .map(|ip| Assignment {
                        lease: Lease {
                            mac: client.mac,
                            ip,
                            expires: now + self.offer_hold,
                        },
                        host_name: host_name(self),
                    });
                (LeaseAnswer::Offer(offered), Vec::new())
            }
            LeaseQuestion::Request { ip } => match self.request(subnet, client, ip, now) {
                Ok((lease, changes)) => {
                    let assignment = Assignment {
                        lease,
                        host_name: host_name(self),
                    };
                    (LeaseAnswer::Request(Ok(assignment)), changes)
                }
                Err(refusal) => (LeaseAnswer::Request(Err(refusal)), Vec::new()),
            },
            LeaseQuestion::Release { ip } => (
                LeaseAnswer::Done,
                self.release(client.mac, ip, now).into_iter().collect(),
            ),
            LeaseQuestion::Decline { ip } => (
                LeaseAnswer::Done,
                self.decline(client.mac, ip, now).into_iter().collect(),
            ),
            LeaseQuestion::Inform => (
                LeaseAnswer::Inform {
                    host_name: host_name(self),
                },
                Vec::new(),
            ),
        }
    }

    /// Every unexpired binding, in no particular order.
    pub fn leases(&self, now: SystemTime) -> impl Iterator<Item = Lease> + '_ {
        self.by_mac.iter().filter_map(move |(mac, entry)| {
            (entry.state == State::Bound && entry.expires > now).then_some(Lease {
                mac: *mac,
                ip: entry.ip,
                expires: entry.expires,
            })
        })
    }

    /// Picks an address to offer `client` in `subnet` (an index into [`Self::subnets`]) and
    /// holds it briefly. In order of preference: the client's reservation, its current or
    /// last address, the address it asked for (option 50), a free pool address, then the
    /// address of the oldest pending offer to another client. `None` when every pool address
    /// is bound (or declined, or reserved).
    ///
    /// A client that holds a binding is offered its bound address and the binding stays as it
    /// is: a DISCOVER never shortens or drops a lease.
    pub fn offer(
        &mut self,
        subnet: usize,
        client: LeaseClient<'_>,
        requested: Option<Ipv4Addr>,
        now: SystemTime,
    ) -> Option<Ipv4Addr> {
        let subnet_def = self.subnets.get(subnet)?;
        if let Some(reserved) = self.reservation_for(client) {
            return subnet_def.contains(reserved).then_some(reserved);
        }
        if let Some(lease) = self.lease_of(client.mac, now) {
            if self.is_available(subnet, lease.ip, client.mac, now, Claim::Offer) {
                return Some(lease.ip);
            }
        }
        let ip = self
            .by_mac
            .get(&client.mac)
            .map(|entry| entry.ip)
            .filter(|ip| self.is_available(subnet, *ip, client.mac, now, Claim::Offer))
            .or_else(|| {
                requested.filter(|ip| self.is_available(subnet, *ip, client.mac, now, Claim::Offer))
            })
            .or_else(|| self.find_free(subnet, client.mac, now))
            .or_else(|| self.oldest_offer(subnet, client.mac, now))?;
        self.hold(client.mac, ip, now + self.offer_hold, State::Offered);
        Some(ip)
    }

    /// How `subnet`'s addresses (an index into [`Self::subnets`]) are used at `now`; zero for
    /// an index that names no subnet. Costs one pass over the table (bounded by the pools).
    pub fn pool_usage(&self, subnet: usize, now: SystemTime) -> PoolUsage {
        let Some(def) = self.subnets.get(subnet) else {
            return PoolUsage::default();
        };
        let offerable =
            |ip: Ipv4Addr| def.in_pool(ip) && ip != def.network && ip != def.broadcast();
        let mut taken = std::collections::HashSet::new();
        let mut in_use = 0;
        for entry in self.by_mac.values() {
            if entry.state == State::Free || entry.expires <= now {
                continue;
            }
            if entry.state == State::Bound && def.contains(entry.ip) {
                in_use += 1;
            }
            if offerable(entry.ip) {
                taken.insert(entry.ip);
            }
        }
        let declined = self.declined.iter().filter(|(_, until)| **until > now);
        taken.extend(declined.map(|(ip, _)| *ip).filter(|ip| offerable(*ip)));
        taken.extend(
            self.reservations
                .iter()
                .map(|r| r.ip)
                .filter(|ip| offerable(*ip)),
        );
        // The network and broadcast addresses are never offered, even inside the range.
        let unusable = [def.network, def.broadcast()]
            .into_iter()
            .filter(|ip| def.in_pool(*ip))
            .count() as u64;
        let offerable_len = u64::from(def.pool_len()).saturating_sub(unusable);
        PoolUsage {
            in_use,
            free: offerable_len.saturating_sub(taken.len() as u64),
        }
    }

    /// How many addresses the dynamic pool of `subnet` has.
    pub fn pool_size(&self, subnet: usize) -> u32 {
        self.subnets.get(subnet).map_or(0, Subnet::pool_len)
    }

    /// Grants (or refuses) `ip` to `client` for the subnet's lease time: a DHCPREQUEST in the
    /// SELECTING, INIT-REBOOT, RENEWING or REBINDING state. On success the returned changes
    /// must be persisted before the DHCPACK is sent.
    pub fn request(
        &mut self,
        subnet: usize,
        client: LeaseClient<'_>,
        ip: Ipv4Addr,
        now: SystemTime,
    ) -> Result<(Lease, Vec<LeaseChange>), Refusal> {
        let subnet_def = self.subnets.get(subnet).ok_or(Refusal::WrongSubnet)?;
        if !subnet_def.contains(ip) {
            return Err(Refusal::WrongSubnet);
        }
        let lease_time = subnet_def.lease_time;
        match self.reservation_for(client) {
            Some(reserved) if reserved != ip => return Err(Refusal::Reserved),
            Some(_) => {}
            None if !self.is_available(subnet, ip, client.mac, now, Claim::Request) => {
                return Err(if self.subnets[subnet].in_pool(ip) {
                    Refusal::InUse
                } else {
                    Refusal::WrongSubnet
                });
            }
            None => {}
        }
        if self.reserved_for_other(ip, client) {
            return Err(Refusal::InUse);
        }
        let mut changes = Vec::with_capacity(2);
        // A previous holder whose lease expired loses the address now; persist that, so a
        // replay never sees two holders.
        if let Some(&holder) = self.by_ip.get(&ip) {
            if holder != client.mac {
                changes.push(LeaseChange::Free { mac: holder, ip });
                self.forget(holder);
            }
        }
        let lease = Lease {
            mac: client.mac,
            ip,
            expires: now + lease_time,
        };
        changes.push(LeaseChange::Bind(lease));
        self.hold(client.mac, ip, lease.expires, State::Bound);
        if let Some(id) = client.client_id {
            // Bounded by the bindings: one identifier per MAC is kept.
            if self.by_client_id.get(id) != Some(&client.mac) {
                if let Some(previous) = self.client_id_of.insert(client.mac, id.to_vec()) {
                    if self.by_client_id.get(&previous) == Some(&client.mac) {
                        self.by_client_id.remove(&previous);
                    }
                }
                if let Some(other) = self.by_client_id.insert(id.to_vec(), client.mac) {
                    // The identifier moved to this MAC: the other MAC no longer has one.
                    if self.client_id_of.get(&other).is_some_and(|kept| kept == id) {
                        self.client_id_of.remove(&other);
                    }
                }
            }
        }
        Ok((lease, changes))
    }

    /// A DHCPRELEASE: frees `ip` if `mac` holds it. The address stays remembered as the
    /// client's last one, so it gets it back if nobody else took it.
    pub fn release(&mut self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> Option<LeaseChange> {
        let entry = self.by_mac.get_mut(&mac)?;
        if entry.ip != ip || entry.state != State::Bound {
            return None;
        }
        entry.state = State::Free;
        entry.expires = now;
        Some(LeaseChange::Free { mac, ip })
    }

    /// A DHCPDECLINE: `mac` found `ip` in use by another host. The address is taken out of
    /// use for a while and the client's binding is dropped.
    pub fn decline(&mut self, mac: MacAddr, ip: Ipv4Addr, now: SystemTime) -> Option<LeaseChange> {
        let entry = self.by_mac.get(&mac)?;
        if entry.ip != ip {
            return None;
        }
        self.forget(mac);
        self.by_ip.remove(&ip);
        let until = now + DECLINE_HOLD;
        self.declined.insert(ip, until);
        Some(LeaseChange::Decline { ip, until })
    }

    /// Replays a persisted change (at start-up, from the journal).
    pub fn apply(&mut self, change: LeaseChange) {
        match change {
            LeaseChange::Bind(lease) => {
                if let Some(&holder) = self.by_ip.get(&lease.ip) {
                    if holder != lease.mac {
                        self.forget(holder);
                    }
                }
                self.hold(lease.mac, lease.ip, lease.expires, State::Bound);
            }
            LeaseChange::Free { mac, ip } => {
                if let Some(entry) = self.by_mac.get_mut(&mac) {
                    if entry.ip == ip {
                        entry.state = State::Free;
                    }
                }
            }
            LeaseChange::Decline { ip, until } => {
                if let Some(holder) = self.by_ip.remove(&ip) {
                    self.forget(holder);
                }
                self.declined.insert(ip, until);
            }
        }
    }

    /// The changes that rebuild the persistent state of this table (for compacting the
    /// journal): every binding and every declined address still in force at `now`.
    pub fn snapshot(&self, now: SystemTime) -> Vec<LeaseChange> {
        let mut changes: Vec<LeaseChange> = self.leases(now).map(LeaseChange::Bind).collect();
        changes.extend(self.declined.iter().filter(|(_, until)| **until > now).map(
            |(ip, until)| LeaseChange::Decline {
                ip: *ip,
                until: *until,
            },
        ));
        changes
    }

    fn reservation_for(&self, client: LeaseClient<'_>) -> Option<Ipv4Addr> {
        self.reservation(client).map(|r| r.ip)
    }

    /// The reservation that applies to `client`, if any.
    pub fn reservation(&self, client: LeaseClient<'_>) -> Option<&Reservation> {
        // A client-id reservation wins over a MAC one: it is the more specific identity.
        self.reservations
            .iter()
            .find(|r| r.client_id.is_some() && r.client_id.as_deref() == client.client_id)
            .or_else(|| self.reservations.iter().find(|r| r.matches(client)))
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, client: LeaseClient<'_>) -> bool {
        self.reservations
            .iter()
            .any(|r| r.ip == ip && !r.matches(client))
    }

    /// Whether `ip` may be given to `mac`: inside the pool, not reserved for another client,
    /// not declined, and either unheld or held by `mac` or by a lapsed holder (or, for a
    /// request, only offered to another client).
    fn is_available(
        &self,
        subnet: usize,
        ip: Ipv4Addr,
        mac: MacAddr,
        now: SystemTime,
        claim: Claim,
    ) -> bool {
        let subnet_def = &self.subnets[subnet];
        if !subnet_def.in_pool(ip) || ip == subnet_def.network || ip == subnet_def.broadcast() {
            return false;
        }
        if self.declined.get(&ip).is_some_and(|until| *until > now) {
            return false;
        }
        if self
            .reservations
            .iter()
            .any(|r| r.ip == ip && r.mac != Some(mac))
        {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(holder) if *holder == mac => true,
            Some(holder) => self.by_mac.get(holder).is_none_or(|entry| {
                entry.ip != ip
                    || entry.state == State::Free
                    || entry.expires <= now
                    || (claim == Claim::Request && entry.state == State::Offered)
            }),
        }
    }

    /// A free pool address: first one never used (from the subnet's cursor), then the one
    /// whose holder lapsed longest ago.
    fn find_free(&mut self, subnet: usize, mac: MacAddr, now: SystemTime) -> Option<Ipv4Addr> {
        let subnet_def = &self.subnets[subnet];
        let start = u32::from(subnet_def.pool_start);
        let len = subnet_def.pool_len();
        let cursor = self.cursors[subnet];
        for step in 0..len {
            let offset = cursor.wrapping_add(step) % len;
            let ip = Ipv4Addr::from(start.wrapping_add(offset));
            if !self.by_ip.contains_key(&ip)
                && self.is_available(subnet, ip, mac, now, Claim::Offer)
            {
                self.cursors[subnet] = offset.wrapping_add(1) % len;
                return Some(ip);
            }
        }
        // Every address has been used once: reuse the one that lapsed first.
        self.by_ip
            .keys()
            .copied()
            .filter(|ip| self.subnets[subnet].in_pool(*ip))
            .filter(|ip| self.is_available(subnet, *ip, mac, now, Claim::Offer))
            .min_by_key(|ip| {
                self.by_ip
                    .get(ip)
                    .and_then(|holder| self.by_mac.get(holder))
                    .map(|entry| entry.expires)
            })
    }

    /// The pool address of the oldest offer still pending for another client: an offer is
    /// not a promise, and a pool full of offers to clients that never come back (a flood of
    /// DISCOVERs from random MACs) must not turn new clients away.
    fn oldest_offer(&self, subnet: usize, mac: MacAddr, now: SystemTime) -> Option<Ipv4Addr> {
        self.by_mac
            .iter()
            .filter(|(holder, entry)| {
                **holder != mac
                    && entry.state == State::Offered
                    && self.by_ip.get(&entry.ip) == Some(*holder)
                    && self.is_available(subnet, entry.ip, mac, now, Claim::Request)
            })
            .min_by_key(|(_, entry)| entry.expires)
            .map(|(_, entry)| entry.ip)
    }

    /// Drops `mac`'s entry (its address went to another client, or was declined) and its
    /// client identifier with it, so that neither index outgrows the pools, however many
    /// clients come and go.
    fn forget(&mut self, mac: MacAddr) {
        self.by_mac.remove(&mac);
        if let Some(id) = self.client_id_of.remove(&mac) {
            if self.by_client_id.get(&id) == Some(&mac) {
                self.by_client_id.remove(&id);
            }
        }
    }

    fn hold(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: SystemTime, state: State) {
        if let Some(&holder) = self.by_ip.get(&ip) {
            if holder != mac {
                self.forget(holder);
            }
        }
        if let Some(previous) = self.by_mac.insert(mac, Entry { ip, expires, state }) {
            if previous.ip != ip && self.by_ip.get(&previous.ip) == Some(&mac) {
                self.by_ip.remove(&previous.ip);
            }
        }
        self.by_ip.insert(ip, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Subnet {
        Subnet::new(
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(192, 0, 2, 102),
        )
    }

    fn client(n: u8) -> LeaseClient<'static> {
        LeaseClient {
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            client_id: None,
        }
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// A stream of new clients, each with its own option 61, through a pool of three whose
    /// leases lapse: every address changes hands many times, and the indexes stay as small
    /// as the pool (a flood of identifiers must not grow the table's memory).
    #[test]
    fn client_identifiers_are_forgotten_with_their_clients() {
        let mut table = LeaseTable::new(vec![subnet()], vec![]);
        let lease_time = subnet().lease_time.as_secs();
        for n in 0..3000u32 {
            let id = n.to_be_bytes();
            let mac = MacAddr([2, 1, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
            let client = LeaseClient {
                mac,
                client_id: Some(&id),
            };
            // Three clients per lease time: each finds the pool's oldest lease lapsed.
            let now = t(u64::from(n) * (lease_time / 3 + 1));
            let ip = table.offer(0, client, None, now).expect("a lapsed address");
            table.request(0, client, ip, now).expect("bound");
            assert_eq!(table.lease_of_client_id(&id, now).map(|l| l.ip), Some(ip));
        }
        assert!(table.by_mac.len() <= 3, "{} MACs kept", table.by_mac.len());
        assert!(
            table.by_client_id.len() <= 3,
            "{} identifiers kept",
            table.by_client_id.len()
        );
        assert!(
            table.client_id_of.len() <= 3,
            "{} identifiers kept",
            table.client_id_of.len()
        );
    }

    #[test]
    fn pool_usage_counts_bound_addresses_and_what_a_new_client_could_get() {
        // A pool of ten, one of them reserved for client 9.
        let pool = Subnet::new(
            Ipv4Addr::new(192, 0, 2, 0),
            24,
            Ipv4Addr::new(192, 0, 2, 100),
            Ipv4Addr::new(192, 0, 2, 109),
        );
        let reserved = Reservation::by_mac(client(9).mac, Ipv4Addr::new(192, 0, 2, 109));
        let mut table = LeaseTable::new(vec![pool], vec![reserved]);
        assert_eq!(table.pool_usage(0, t(0)), PoolUsage::new(0, 9));
        let a = table.offer(0, client(1), None, t(0)).unwrap();
        // Under offer: not bound, not free either; free again once the offer lapses.
        assert_eq!(table.pool_usage(0, t(1)), PoolUsage::new(0, 8));
        assert_eq!(table.pool_usage(0, t(60)), PoolUsage::new(0, 9));
        let (lease, _) = table.request(0, client(1), a, t(2)).unwrap();
        assert_eq!(table.pool_usage(0, t(3)), PoolUsage::new(1, 8));
        let b = table.offer(0, client(2), None, t(3)).unwrap();
        table.request(0, client(2), b, t(3)).unwrap();
        table.decline(client(2).mac, b, t(4));
        // Declined: out of use for a while, neither bound nor free.
        assert_eq!(table.pool_usage(0, t(5)), PoolUsage::new(1, 7));
        // The reserved client's binding is in use (its address was never free).
        table
            .request(0, client(9), Ipv4Addr::new(192, 0, 2, 109), t(6))
            .unwrap();
        assert_eq!(table.pool_usage(0, t(7)), PoolUsage::new(2, 7));
        // Leases end by time.
        let after = lease.expires + Duration::from_secs(10);
        assert_eq!(table.pool_usage(0, after).in_use, 0);
        assert_eq!(table.pool_usage(5, t(0)), PoolUsage::default());
    }

    #[test]
    fn offer_request_and_renew_keep_one_address() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        let ip = store.offer(0, client(1), None, t(0)).unwrap();
        assert_eq!(ip, Ipv4Addr::new(192, 0, 2, 100));
        // A second client is not offered the held address.
        assert_eq!(
            store.offer(0, client(2), None, t(1)),
            Some(Ipv4Addr::new(192, 0, 2, 101))
        );
        let (lease, changes) = store.request(0, client(1), ip, t(2)).unwrap();
        assert_eq!(changes, vec![LeaseChange::Bind(lease)]);
        assert_eq!(store.lease_of(client(1).mac, t(3)), Some(lease));
        // Renewal, and a new DISCOVER, give the same address.
        assert_eq!(store.offer(0, client(1), None, t(100)), Some(ip));
        assert!(store.request(0, client(1), ip, t(100)).is_ok());
        // Another client asking for it is refused.
        assert_eq!(store.request(0, client(2), ip, t(101)), Err(Refusal::InUse));
    }

    #[test]
    fn pool_exhaustion_and_expiry_reuse() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        for n in 1..=3 {
            let ip = store.offer(0, client(n), None, t(0)).unwrap();
            store.request(0, client(n), ip, t(0)).unwrap();
        }
        assert_eq!(store.offer(0, client(4), None, t(10)), None);
        // After the leases lapse, a lapsed address is reused; its old holder is gone.
        let ip = store.offer(0, client(4), None, t(4000)).unwrap();
        let (lease, changes) = store.request(0, client(4), ip, t(4000)).unwrap();
        assert_eq!(changes.last(), Some(&LeaseChange::Bind(lease)));
        assert_eq!(store.leases(t(4001)).collect::<Vec<_>>(), vec![lease]);
        assert!(store
            .by_ip
            .values()
            .all(|mac| store.by_mac[mac].ip != ip || *mac == lease.mac));
    }

    #[test]
    fn a_discover_keeps_the_binding_as_it_is() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        let ip = store.offer(0, client(1), None, t(0)).unwrap();
        let (lease, _) = store.request(0, client(1), ip, t(0)).unwrap();
        // The bound client DISCOVERs (and asks for another address) and never completes.
        let other = Ipv4Addr::new(192, 0, 2, 102);
        assert_eq!(store.offer(0, client(1), Some(other), t(10)), Some(ip));
        assert_eq!(store.lease_of(client(1).mac, t(11)), Some(lease));
        // Long after any offer hold, the address is still the client's, not a stranger's.
        let later = t(10) + DEFAULT_OFFER_HOLD * 10;
        assert_eq!(store.lease_of(client(1).mac, later), Some(lease));
        assert_ne!(store.offer(0, client(2), Some(ip), later), Some(ip));
        assert_eq!(store.request(0, client(2), ip, later), Err(Refusal::InUse));
    }

    #[test]
    fn offers_are_held_briefly_and_reused_by_their_client() {
        let hold = Duration::from_secs(5);
        let mut store = LeaseTable::new(vec![subnet()], vec![]).offer_hold(hold);
        let first = store.offer(0, client(1), None, t(0)).unwrap();
        // A repeated DISCOVER gets the same offer, not a second address.
        assert_eq!(store.offer(0, client(1), None, t(1)), Some(first));
        assert_eq!(
            store.offer(0, client(2), None, t(1)),
            Some(Ipv4Addr::new(192, 0, 2, 101))
        );
        // Once the hold is over, the address goes to whoever asks for it.
        let later = t(1) + hold;
        assert_eq!(store.offer(0, client(3), Some(first), later), Some(first));
    }

    #[test]
    fn a_pool_full_of_offers_still_serves_new_clients() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        // Three clients that never come back hold every address of the pool…
        for n in 1..=3 {
            assert!(store.offer(0, client(n), None, t(u64::from(n))).is_some());
        }
        // …a new client is offered the oldest pending offer's address…
        let reclaimed = store.offer(0, client(10), None, t(4)).unwrap();
        assert_eq!(reclaimed, Ipv4Addr::new(192, 0, 2, 100));
        store.request(0, client(10), reclaimed, t(4)).unwrap();
        // …and a REQUEST may claim an address only offered to someone else.
        let offered = Ipv4Addr::new(192, 0, 2, 101);
        assert!(store.request(0, client(11), offered, t(5)).is_ok());
        // Bound addresses are never reclaimed: with every address bound, no offer.
        let last = store.offer(0, client(12), None, t(6)).unwrap();
        store.request(0, client(12), last, t(6)).unwrap();
        assert_eq!(store.offer(0, client(13), None, t(7)), None);
        assert_eq!(store.leases(t(7)).count(), 3);
    }

    #[test]
    fn reservations_by_mac_and_client_id() {
        let fixed = Ipv4Addr::new(192, 0, 2, 50);
        let by_id = Ipv4Addr::new(192, 0, 2, 51);
        let mut store = LeaseTable::new(
            vec![subnet()],
            vec![
                Reservation::by_mac(client(1).mac, fixed),
                Reservation::by_client_id(vec![0, b'x'], by_id),
            ],
        );
        assert_eq!(store.offer(0, client(1), None, t(0)), Some(fixed));
        assert!(store.request(0, client(1), fixed, t(0)).is_ok());
        assert_eq!(
            store.request(0, client(1), Ipv4Addr::new(192, 0, 2, 100), t(0)),
            Err(Refusal::Reserved)
        );
        let with_id = LeaseClient {
            mac: client(9).mac,
            client_id: Some(&[0, b'x']),
        };
        assert_eq!(store.offer(0, with_id, None, t(0)), Some(by_id));
        assert_eq!(
            store.request(0, client(2), fixed, t(0)),
            Err(Refusal::WrongSubnet)
        );
    }

    #[test]
    fn release_and_decline() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        let ip = store.offer(0, client(1), None, t(0)).unwrap();
        store.request(0, client(1), ip, t(0)).unwrap();
        assert_eq!(
            store.release(client(1).mac, ip, t(5)),
            Some(LeaseChange::Free {
                mac: client(1).mac,
                ip
            })
        );
        assert_eq!(store.lease_of(client(1).mac, t(6)), None);
        // The client gets its old address back.
        assert_eq!(store.offer(0, client(1), None, t(7)), Some(ip));
        store.request(0, client(1), ip, t(7)).unwrap();
        assert!(store.decline(client(1).mac, ip, t(8)).is_some());
        assert_ne!(store.offer(0, client(1), None, t(9)), Some(ip));
    }

    #[test]
    fn replay_rebuilds_the_table() {
        let mut store = LeaseTable::new(vec![subnet()], vec![]);
        let mut journal = Vec::new();
        for n in 1..=3 {
            let ip = store.offer(0, client(n), None, t(0)).unwrap();
            journal.extend(store.request(0, client(n), ip, t(0)).unwrap().1);
        }
        journal.extend(store.release(client(2).mac, Ipv4Addr::new(192, 0, 2, 101), t(1)));
        let mut replayed = LeaseTable::new(vec![subnet()], vec![]);
        for change in journal {
            replayed.apply(change);
        }
        let mut a: Vec<_> = store.leases(t(2)).collect();
        let mut b: Vec<_> = replayed.leases(t(2)).collect();
        a.sort_by_key(|l| l.ip);
        b.sort_by_key(|l| l.ip);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }
}
