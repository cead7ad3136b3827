//! The serving decisions, as pure functions of a request, the configuration, the lease table
//! and the time: request → (ask the policy) → reply. No sockets, no clock reads.
//!
//! A request goes through two steps, because the policy is asked in between and may be
//! asynchronous:
//!
//! 1. [`Engine::accept`] checks the message, decides whether this server answers it at all
//!    (proxy mode stays silent for clients that are not network booting), and gathers the
//!    [`ClientFacts`] the policy is asked about.
//! 2. [`Engine::respond`] takes the policy's [`BootDecision`] and produces the reply (with its
//!    destination) and the lease changes to persist before the reply is sent.
//!
//! What goes into the replies, and why, follows `docs/FIRMWARE.md`: proxy offers carry
//! yiaddr 0, option 60 echoed, server identifier 54, 97 echoed, and siaddr, sname/66 and
//! file/67 together; UEFI HTTP Boot gets `HTTPClient` echoed and a URL; iPXE gets the script
//! URL, and in authoritative mode option 175.0xb0 = 1 so it does not wait for proxy offers.

mod chainload;
mod config;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use pxe_policy::{BootDecision, ClientFacts, ClientKind, ClientRecords, MacAddr, RelayInfo};

use crate::lease::{LeaseAnswer, LeaseChange, LeaseClient, LeaseQuestion, LeaseTable, Subnet};
use crate::wire::options::{encode_encapsulated, IPXE_NO_PXEDHCP};
use crate::wire::{
    reply_destination, ClientRequest, DecodeError, MessageType, OptionCode, PacketBuilder,
    PxeVendorOptions, ReplyDestination,
};

use chainload::{client_kind, StageSignals};
pub(crate) use config::expand_next_server;
pub use config::{BootConfig, Mode, ProtoConfig, ProxyStrategy, Quirks};

/// Which service a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// DHCP, port 67.
    Dhcp,
    /// The PXE boot server, port 4011 (PXE 2.1 §2.2: the BINL path).
    BootServer,
}

/// How a request arrived: the facts a socket with IP_PKTINFO reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Arrival {
    /// The service (port) it reached.
    pub service: Service,
    /// The sender's address and port (a relay's, or the client's).
    pub from: SocketAddrV4,
    /// The receiving interface's index (0 when unknown).
    pub ifindex: u32,
    /// This server's address on the receiving interface (or the one the relay sent to): the
    /// server identifier, and the default TFTP/HTTP server address.
    pub local: Ipv4Addr,
}

impl Arrival {
    /// A request to `service` from `from`, received on interface `ifindex` whose address is
    /// `local`.
    pub fn new(service: Service, from: SocketAddrV4, ifindex: u32, local: Ipv4Addr) -> Self {
        Self {
            service,
            from,
            ifindex,
            local,
        }
    }
}

/// Why a request gets no reply: the engine's verdict when it stays silent. Every case is the
/// peer's doing or a deliberate choice (proxy mode ignores clients that do not network-boot,
/// a RELEASE needs no answer), so the server logs it at `debug` and keeps serving.
///
/// Not an error type: staying silent is correct DHCP behaviour, and nothing here is a failure
/// of this server (those are [`crate::Error`]). It is the `Err` side of the engine's results
/// only because "a reply, or why none" reads naturally as a `Result`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoReply {
    /// The bytes are not a DHCP client message (truncated, bad cookie, hlen > 16, an
    /// option past the end, a BOOTREPLY…).
    Malformed(DecodeError),
    /// No option 53: plain BOOTP, which this server does not serve.
    NoMessageType,
    /// Not an Ethernet client: leases and boot decisions are keyed on a 6-byte MAC.
    NotEthernet {
        /// `htype`.
        htype: u8,
        /// `hlen`.
        hlen: u8,
    },
    /// A message type this service does not answer.
    NotServed {
        /// The message type.
        message_type: MessageType,
    },
    /// Proxy mode and 4011 answer only network-boot clients.
    NotNetworkBoot,
    /// The policy chose silence for this client.
    PolicyIgnores,
    /// The DHCPREQUEST names another server: the client chose its offer.
    OtherServer {
        /// Option 54 of the request.
        server: Ipv4Addr,
    },
    /// No configured subnet contains the relay's or interface's address.
    NoSubnet {
        /// giaddr, or the receiving interface's address.
        address: Ipv4Addr,
    },
    /// Every address of the pool is bound (or declined, or reserved): a new client gets no
    /// offer. The server reports these at `warn`, once per interval, with counts.
    PoolExhausted {
        /// The network address of the pool's subnet.
        network: Ipv4Addr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// A DHCPREQUEST that names no address.
    NoAddress,
    /// A message handled without a reply (DHCPRELEASE, DHCPDECLINE).
    NotNeeded {
        /// The message type.
        message_type: MessageType,
    },
}

impl NoReply {
    /// A short stable name of the reason, in snake case, for metric labels
    /// (`pxe_dhcp_requests_total{outcome=…}`); the fields are left out, so the set of names
    /// is fixed.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::NoMessageType => "no_message_type",
            Self::NotEthernet { .. } => "not_ethernet",
            Self::NotServed { .. } => "not_served",
            Self::NotNetworkBoot => "not_network_boot",
            Self::PolicyIgnores => "policy_ignores",
            Self::OtherServer { .. } => "other_server",
            Self::NoSubnet { .. } => "no_subnet",
            Self::PoolExhausted { .. } => "pool_exhausted",
            Self::NoAddress => "no_address",
            Self::NotNeeded { .. } => "not_needed",
        }
    }
}

impl From<DecodeError> for NoReply {
    fn from(error: DecodeError) -> Self {
        Self::Malformed(error)
    }
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(error) => write!(f, "malformed message: {error}"),
            Self::NoMessageType => f.write_str("no dhcp message type (bootp is not served)"),
            Self::NotEthernet { htype, hlen } => {
                write!(f, "hardware type {htype} length {hlen} is not ethernet")
            }
            Self::NotServed { message_type } => {
                write!(f, "{message_type} is not answered on this service")
            }
            Self::NotNetworkBoot => f.write_str("not a network-boot client"),
            Self::PolicyIgnores => f.write_str("the policy ignores this client"),
            Self::OtherServer { server } => write!(f, "request for another server {server}"),
            Self::NoSubnet { address } => write!(f, "no subnet for {address}"),
            Self::PoolExhausted {
                network,
                prefix_len,
            } => write!(f, "address pool of {network}/{prefix_len} exhausted"),
            Self::NoAddress => f.write_str("request names no address"),
            Self::NotNeeded { message_type } => write!(f, "{message_type} needs no reply"),
        }
    }
}

/// A request this server will answer (or act on), with the facts gathered from it.
#[derive(Debug, Clone)]
pub struct Accepted {
    request: ClientRequest,
    message_type: MessageType,
    mac: MacAddr,
    kind: Option<ClientKind>,
    facts: Option<ClientFacts>,
}

impl Accepted {
    /// The facts to ask the policy about, when the reply carries boot fields; `None` when the
    /// request needs no boot decision (a non-network-boot client in authoritative mode, a
    /// RELEASE or DECLINE).
    pub fn facts(&self) -> Option<&ClientFacts> {
        self.facts.as_ref()
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The client's MAC.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Which boot stage is asking, when the client network-boots.
    pub fn kind(&self) -> Option<ClientKind> {
        self.kind
    }

    /// Who asks for a lease: the MAC, and option 61 when sent.
    pub fn lease_client(&self) -> LeaseClient<'_> {
        LeaseClient {
            mac: self.mac,
            client_id: self.request.client_id.as_ref().map(|id| id.as_bytes()),
        }
    }
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The message.
    pub packet: PacketBuilder,
    /// Where it goes (for [`ReplyDestination::Hardware`] a sender without ARP injection
    /// broadcasts instead).
    pub destination: Destination,
    /// Wait this long before sending (a quirk).
    pub delay: Option<Duration>,
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// RFC 2131 §4.1's choice for a reply on port 67.
    Dhcp(ReplyDestination),
    /// Straight back to the sender's address and port (the PXE boot server on 4011).
    Sender(SocketAddrV4),
}

/// The outcome of a request: maybe a reply, and the lease changes to persist before it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The reply, or why there is none.
    pub reply: Result<Reply, NoReply>,
    /// Bindings to persist before sending (authoritative mode).
    pub lease_changes: Vec<LeaseChange>,
}

/// The serving state: configuration, lease table, and the client records where each MAC's
/// handed iPXE binary is remembered (the chainload loop break).
///
/// Cloning an engine shares its client records (they are one store for every stage).
#[derive(Debug, Clone)]
pub struct Engine {
    config: ProtoConfig,
    /// The engine's own lease table, for [`Engine::respond`]; `None` in proxy mode and when
    /// leases live in a [`crate::lease::LeaseStore`] ([`Engine::with_lease_store`]).
    leases: Option<LeaseTable>,
    records: ClientRecords,
}

/// The lease decision an authoritative request needs ([`Engine::lease_question`]): ask the
/// lease store `question` about `client` in `subnet`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseAsk {
    /// The index of the request's subnet in the configuration ([`Mode::Authoritative`]).
    pub subnet: usize,
    /// The question.
    pub question: LeaseQuestion,
}

/// Default lease-time fractions for T1 and T2 (RFC 2131 §4.4.5: 0.5 and 0.875).
fn renewal_times(lease: Duration) -> (u32, u32) {
    let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX);
    (secs / 2, (u64::from(secs) * 7 / 8) as u32)
}

impl Engine {
    /// An engine for `config`. In authoritative mode, the lease table starts empty: replay the
    /// journal into [`Engine::leases_mut`] before serving.
    pub fn new(config: ProtoConfig) -> Self {
        let leases = match &config.mode {
            Mode::Proxy => None,
            Mode::Authoritative {
                subnets,
                reservations,
            } => Some(
                LeaseTable::new(subnets.clone(), reservations.clone())
                    .offer_hold(config.offer_hold),
            ),
        };
        Self {
            config,
            leases,
            records: ClientRecords::default(),
        }
    }

    /// Remembers the iPXE binaries it hands out in `records` (the store TFTP, HTTP and the
    /// policy share, so one bounded record per MAC holds what every stage learned) instead of
    /// a store of its own.
    pub fn with_client_records(mut self, records: ClientRecords) -> Self {
        self.records = records;
        self
    }

    /// The client records this engine remembers handed iPXE binaries in.
    pub fn client_records(&self) -> &ClientRecords {
        &self.records
    }

    /// An engine for `config` whose lease decisions are made elsewhere, by a
    /// [`crate::lease::LeaseStore`]: per request, [`Engine::lease_question`] says what to ask
    /// it and [`Engine::respond_with_lease`] takes its answer. The engine holds no table.
    pub fn with_lease_store(config: ProtoConfig) -> Self {
        Self {
            config,
            leases: None,
            records: ClientRecords::default(),
        }
    }

    fn authoritative(&self) -> bool {
        matches!(self.config.mode, Mode::Authoritative { .. })
    }

    /// The configured subnets (authoritative mode; empty in proxy mode).
    pub fn subnets(&self) -> &[Subnet] {
        match &self.config.mode {
            Mode::Authoritative { subnets, .. } => subnets,
            _ => &[],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProtoConfig {
        &self.config
    }

    /// The lease table (authoritative mode).
    pub fn leases(&self) -> Option<&LeaseTable> {
        self.leases.as_ref()
    }

    /// The lease table, to replay persisted bindings into (authoritative mode).
    pub fn leases_mut(&mut self) -> Option<&mut LeaseTable> {
        self.leases.as_mut()
    }

    /// Step 1: checks `bytes` and decides whether this server answers; gathers the facts for
    /// the policy.
    pub fn accept(
        &self,
        bytes: &[u8],
        arrival: &Arrival,
        now: SystemTime,
    ) -> Result<Accepted, NoReply> {
        let request = ClientRequest::parse(bytes)?;
        let message_type = request.message_type.ok_or(NoReply::NoMessageType)?;
        let (htype, hlen) = (request.htype, request.hlen);
        let mac = request
            .client_mac()
            .ok_or(NoReply::NotEthernet { htype, hlen })?;
        let marker = &self.config.boot.chainload_marker;
        let signals = StageSignals {
            pxe_client: request.is_pxe_client(),
            http_client: request.is_http_client(),
            ipxe: request.is_ipxe(),
            chainload_marker: !marker.is_empty()
                && request
                    .user_class
                    .as_ref()
                    .is_some_and(|u| u.contains(marker)),
            recently_handed: self.records.ipxe_recently_handed(mac, request.xid, now),
        };
        let kind = client_kind(signals);

        let authoritative = self.authoritative();
        use MessageType::{Decline, Discover, Inform, Release, Request};
        let served = match arrival.service {
            Service::BootServer => matches!(message_type, Request | Inform),
            Service::Dhcp if authoritative => {
                matches!(
                    message_type,
                    Discover | Request | Decline | Release | Inform
                )
            }
            Service::Dhcp => match message_type {
                Discover => true,
                Request => self.config.quirks_for(mac).answer_request,
                _ => false,
            },
        };
        if !served {
            return Err(NoReply::NotServed { message_type });
        }
        let needs_boot_client = !authoritative || arrival.service == Service::BootServer;
        if needs_boot_client && kind.is_none() {
            return Err(NoReply::NotNetworkBoot);
        }
        if arrival.service == Service::Dhcp && authoritative && message_type == Request {
            if let Some(server) = request.server_id {
                if server != arrival.local {
                    return Err(NoReply::OtherServer { server });
                }
            }
        }

        let wants_boot = matches!(message_type, Discover | Request | Inform);
        let facts = kind
            .filter(|_| wants_boot)
            .map(|kind| client_facts(&request, mac, kind));
        Ok(Accepted {
            request,
            message_type,
            mac,
            kind,
            facts,
        })
    }

    /// The lease decision an accepted request needs: `Ok(None)` when it needs none (proxy
    /// mode, the boot server port), the [`LeaseAsk`] otherwise, or the reason there is no
    /// reply (no subnet for its segment, a DHCPREQUEST naming no address).
    pub fn lease_question(
        &self,
        request: &Accepted,
        arrival: &Arrival,
    ) -> Result<Option<LeaseAsk>, NoReply> {
        if !self.authoritative() || arrival.service != Service::Dhcp {
            return Ok(None);
        }
        let packet = &request.request;
        let giaddr = packet.giaddr;
        let segment = if giaddr.is_unspecified() {
            arrival.local
        } else {
            giaddr
        };
        let subnet = self
            .subnets()
            .iter()
            .position(|s| s.contains(segment))
            .ok_or(NoReply::NoSubnet { address: segment })?;
        let ciaddr = (!packet.ciaddr.is_unspecified()).then_some(packet.ciaddr);
        let question = match request.message_type {
            MessageType::Discover => LeaseQuestion::Offer {
                requested: packet.requested_ip,
            },
            MessageType::Request => LeaseQuestion::Request {
                ip: packet.requested_ip.or(ciaddr).ok_or(NoReply::NoAddress)?,
            },
            MessageType::Release => LeaseQuestion::Release { ip: packet.ciaddr },
            MessageType::Decline => match packet.requested_ip {
                Some(ip) => LeaseQuestion::Decline { ip },
                None => {
                    return Err(NoReply::NotNeeded {
                        message_type: request.message_type,
                    })
                }
            },
            _ => LeaseQuestion::Inform,
        };
        Ok(Some(LeaseAsk { subnet, question }))
    }

    /// Step 2: the reply to an accepted request, given the policy's decision (`None` when
    /// [`Accepted::facts`] was `None` and the policy was not asked). Lease decisions are made
    /// on the engine's own table; the changes to persist come back in the [`Outcome`].
    pub fn respond(
        &mut self,
        request: &Accepted,
        arrival: &Arrival,
        decision: Option<BootDecision>,
        now: SystemTime,
    ) -> Outcome {
        let ask = match self.lease_question(request, arrival) {
            Ok(ask) => ask,
            Err(reason) => return silent(reason),
        };
        let mut lease_changes = Vec::new();
        let answer = match (ask, self.leases.as_mut()) {
            (Some(ask), Some(table)) => {
                let client = request.lease_client();
                let (answer, changes) = table.answer(ask.subnet, client, ask.question, now);
                lease_changes = changes;
                Some((ask.subnet, answer))
            }
            _ => None,
        };
        let mut outcome = self.respond_with_lease(request, arrival, decision, answer, now);
        outcome.lease_changes = lease_changes;
        outcome
    }

    /// Step 2 with the lease decision made by a [`crate::lease::LeaseStore`]: `lease` is the
    /// subnet index of [`Engine::lease_question`]'s [`LeaseAsk`] and the store's answer
    /// (`None` when no question was asked). The store has already persisted its changes, so
    /// the [`Outcome`] carries none.
    pub fn respond_with_lease(
        &mut self,
        request: &Accepted,
        arrival: &Arrival,
        decision: Option<BootDecision>,
        lease: Option<(usize, LeaseAnswer)>,
        now: SystemTime,
    ) -> Outcome {
        let boot = match (request.kind, decision) {
            (Some(kind), Some(BootDecision::Ipxe(binary))) => Some((kind, BootFile::Ipxe(binary))),
            (Some(kind), Some(BootDecision::File(file))) => Some((kind, BootFile::Custom(file))),
            _ => None,
        };
        if boot.is_none() && (!self.authoritative() || arrival.service == Service::BootServer) {
            return silent(NoReply::PolicyIgnores);
        }
        match (self.authoritative(), arrival.service) {
            (true, Service::Dhcp) => match lease {
                Some((subnet, answer)) => {
                    self.respond_authoritative(request, arrival, boot, subnet, answer, now)
                }
                None => silent(NoReply::NotServed {
                    message_type: request.message_type,
                }),
            },
            _ => {
                let Some(boot) = boot else {
                    return silent(NoReply::PolicyIgnores);
                };
                let message_type = match (arrival.service, request.message_type) {
                    (Service::Dhcp, MessageType::Discover) => MessageType::Offer,
                    _ => MessageType::Ack,
                };
                let mut reply = PacketBuilder::reply_to(&request.request, message_type);
                reply.set_server_identifier(arrival.local);
                self.add_boot_fields(&mut reply, request, arrival, &boot, true, now);
                let destination = match arrival.service {
                    Service::BootServer => Destination::Sender(arrival.from),
                    Service::Dhcp => Destination::Dhcp(reply_destination(
                        &request.request.addressing(),
                        message_type,
                        Ipv4Addr::UNSPECIFIED,
                    )),
                };
                Outcome {
                    reply: Ok(self.finish(reply, destination, request)),
                    lease_changes: Vec::new(),
                }
            }
        }
    }

    fn respond_authoritative(
        &mut self,
        request: &Accepted,
        arrival: &Arrival,
        boot: Option<(ClientKind, BootFile)>,
        subnet: usize,
        answer: LeaseAnswer,
        now: SystemTime,
    ) -> Outcome {
        let Some(subnet_def) = self.subnets().get(subnet) else {
            return silent(NoReply::NotServed {
                message_type: request.message_type,
            });
        };
        let packet = &request.request;
        let (message_type, yiaddr, host_name) = match answer {
            LeaseAnswer::Offer(Some(offer)) => {
                (MessageType::Offer, offer.lease.ip, offer.host_name)
            }
            LeaseAnswer::Offer(None) => {
                return silent(NoReply::PoolExhausted {
                    network: subnet_def.network,
                    prefix_len: subnet_def.prefix_len,
                });
            }
            LeaseAnswer::Request(Ok(grant)) => (MessageType::Ack, grant.lease.ip, grant.host_name),
            LeaseAnswer::Request(Err(refusal)) => {
                tracing::debug!(mac = %request.mac, requested = ?packet.requested_ip, ciaddr = %packet.ciaddr, ?refusal, "nak");
                (MessageType::Nak, Ipv4Addr::UNSPECIFIED, None)
            }
            LeaseAnswer::Done => {
                return silent(NoReply::NotNeeded {
                    message_type: request.message_type,
                });
            }
            // DHCPINFORM: parameters only, no address (RFC 2131 §4.3.5).
            LeaseAnswer::Inform { host_name } => {
                (MessageType::Ack, Ipv4Addr::UNSPECIFIED, host_name)
            }
        };
        let mut reply = PacketBuilder::reply_to(packet, message_type);
        reply.set_server_identifier(arrival.local);
        if message_type != MessageType::Nak {
            reply.set_yiaddr(yiaddr);
            reply.set_subnet_mask(subnet_def.mask());
            reply.set_option(
                OptionCode::BROADCAST_ADDRESS,
                &subnet_def.broadcast().octets(),
            );
            if let Some(router) = subnet_def.router {
                reply.set_routers(&[router]);
            }
            if !subnet_def.dns_servers.is_empty() {
                reply.set_domain_name_servers(&subnet_def.dns_servers);
            }
            if let Some(domain) = &subnet_def.domain_name {
                reply.set_option(OptionCode::DOMAIN_NAME, domain.as_bytes());
            }
            if let Some(host_name) = host_name {
                reply.set_option(OptionCode::HOST_NAME, host_name.as_bytes());
            }
            if request.message_type != MessageType::Inform {
                let (t1, t2) = renewal_times(subnet_def.lease_time);
                let secs = u32::try_from(subnet_def.lease_time.as_secs()).unwrap_or(u32::MAX);
                reply.set_lease_time(secs);
                reply.set_renewal_time(t1);
                reply.set_rebinding_time(t2);
            }
            if let Some((kind, file)) = &boot {
                let boot = (*kind, file.clone());
                self.add_boot_fields(&mut reply, request, arrival, &boot, false, now);
            }
        }
        let destination = Destination::Dhcp(reply_destination(
            &packet.addressing(),
            message_type,
            yiaddr,
        ));
        Outcome {
            reply: Ok(self.finish(reply, destination, request)),
            lease_changes: Vec::new(),
        }
    }

    /// siaddr, sname/66, file/67, 60 echoed, 97 echoed, 43 and 175 as the stage needs them.
    fn add_boot_fields(
        &mut self,
        reply: &mut PacketBuilder,
        request: &Accepted,
        arrival: &Arrival,
        (kind, file): &(ClientKind, BootFile),
        proxy: bool,
        now: SystemTime,
    ) {
        let boot = &self.config.boot;
        let server = boot.tftp_server.unwrap_or(arrival.local);
        let packet = &request.request;
        // iPXE runs the script, except a ROM iPXE that is to be replaced by our build.
        let runs_script = *kind == ClientKind::ChainloadedIpxe
            || (*kind == ClientKind::FirmwareIpxe && !boot.chainload_rom_ipxe);
        let file_name = match (file, kind) {
            (BootFile::Ipxe(_), _) if runs_script => {
                expand_next_server(&boot.script_url, arrival.local)
            }
            (BootFile::Ipxe(binary), ClientKind::UefiHttpBoot) => {
                expand_next_server(&boot.http_boot_base, arrival.local) + binary.file_name()
            }
            (BootFile::Ipxe(binary), _) => binary.file_name().to_string(),
            (BootFile::Custom(file), _) => file.clone(),
        };
        let hands_binary = matches!(file, BootFile::Ipxe(_)) && !runs_script;
        reply.set_siaddr(server);
        let server_text = server.to_string();
        // The 64-byte sname and 128-byte file fields cannot hold long names; options 66/67
        // always carry them, the fixed fields only when they fit.
        let _ = reply.set_sname(server_text.as_bytes());
        reply.set_tftp_server_name(server_text.as_bytes());
        if reply.set_file(file_name.as_bytes()).is_err() {
            let _ = reply.set_file(b"");
        }
        reply.set_bootfile_name(file_name.as_bytes());
        let class: &[u8] = if *kind == ClientKind::UefiHttpBoot {
            b"HTTPClient"
        } else {
            b"PXEClient"
        };
        reply.set_vendor_class(class);
        if let Some(guid) = packet.client_guid {
            reply.set_client_guid(guid);
        }
        let strategy = self
            .config
            .quirks_for(request.mac)
            .proxy_strategy
            .unwrap_or_else(|| {
                ProxyStrategy::default_for(request.facts.as_ref().and_then(|f| f.arch))
            });
        if arrival.service == Service::BootServer {
            // Echo the boot item the client asked for (PXE 2.1 §2.2.5); iPXE sends none.
            if let Some(item) = packet.pxe_vendor_options.as_ref().and_then(|o| o.boot_item) {
                let options = PxeVendorOptions {
                    boot_item: Some(item),
                    ..PxeVendorOptions::default()
                };
                reply.set_pxe_vendor_options(&options);
            }
        } else if *kind == ClientKind::FirmwarePxe
            && (!proxy || strategy == ProxyStrategy::UseBootFile)
            || (proxy && kind.is_ipxe())
        {
            let options = PxeVendorOptions {
                discovery_control: Some(PxeVendorOptions::USE_BOOT_FILE),
                ..PxeVendorOptions::default()
            };
            reply.set_pxe_vendor_options(&options);
        }
        if !proxy && kind.is_ipxe() {
            reply.set_option(
                OptionCode::IPXE_ENCAPSULATED,
                &encode_encapsulated([(IPXE_NO_PXEDHCP, &[1u8][..])]),
            );
        }
        if hands_binary {
            if !boot.chainload_marker.is_empty() {
                reply.set_user_class(&boot.chainload_marker);
            }
            let until = now + boot.chainload_memory;
            self.records
                .record_ipxe_handed(request.mac, request.request.xid, until);
        }
    }

    fn finish(
        &self,
        mut reply: PacketBuilder,
        destination: Destination,
        request: &Accepted,
    ) -> Reply {
        let quirks = self.config.quirks_for(request.mac);
        reply.set_overload_allowed(!quirks.no_overload);
        // A client without a parameter request list has not narrowed what it wants: it gets
        // everything this server has for it.
        let requested = &request.request.parameter_request_list;
        if !requested.is_empty() {
            reply.retain_requested(requested, always_sent);
        }
        let destination = match destination {
            Destination::Dhcp(ReplyDestination::Relay(_)) | Destination::Sender(_) => destination,
            Destination::Dhcp(_) if quirks.force_broadcast => {
                Destination::Dhcp(ReplyDestination::Broadcast)
            }
            other => other,
        };
        Reply {
            packet: reply,
            destination,
            delay: quirks.reply_delay,
        }
    }
}

/// The options a reply carries whatever the client's parameter request list says (only those
/// the reply has: the engine sets each where it applies).
///
/// - 53, 54, 51, 58, 59: RFC 2131 §4.3.1 table 3 (message type, server identifier and lease
///   time MUST be in an offer or ack; T1/T2 go with the lease time).
/// - 1: the mask belongs to the address; a client without it guesses a classful one. iPXE,
///   EDK2, dhclient and udhcpc all ask for it anyway.
/// - 82: echoed to the relay (RFC 3046 §2.2), which strips it.
/// - 60, 43, 97, 66, 67: what docs/FIRMWARE.md's proxy offers need (iPXE accepts a proxy offer
///   only with 60 `PXEClient`; UEFI HTTP Boot ignores one without 60 `HTTPClient`; EDK2 HTTP
///   Boot does not ask for 66, and different firmware read 66 or sname, 67 or file).
/// - 175: no-pxedhcp to iPXE (iPXE asks for it; kept regardless so it never waits ~3 s).
/// - 77: the chainload marker undionly reads back from the cached ACK (iPXE does not ask for
///   77), which is how the loop is broken.
fn always_sent(code: OptionCode) -> bool {
    matches!(
        code,
        OptionCode::MESSAGE_TYPE
            | OptionCode::SERVER_IDENTIFIER
            | OptionCode::IP_ADDRESS_LEASE_TIME
            | OptionCode::RENEWAL_TIME
            | OptionCode::REBINDING_TIME
            | OptionCode::SUBNET_MASK
            | OptionCode::RELAY_AGENT_INFORMATION
            | OptionCode::VENDOR_CLASS_IDENTIFIER
            | OptionCode::VENDOR_SPECIFIC
            | OptionCode::CLIENT_MACHINE_ID
            | OptionCode::TFTP_SERVER_NAME
            | OptionCode::BOOTFILE_NAME
            | OptionCode::IPXE_ENCAPSULATED
            | OptionCode::USER_CLASS
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BootFile {
    Ipxe(pxe_policy::IpxeBinary),
    Custom(String),
}

/// What the policy is told about the client sending `request`.
fn client_facts(request: &ClientRequest, mac: MacAddr, kind: ClientKind) -> ClientFacts {
    let mut facts = ClientFacts::new(mac, kind);
    // The machine's architecture: HTTP Boot's code becomes its PXE twin, as iPXE on the same
    // machine reports it at the script stage; the kind says it boots over HTTP.
    facts.arch = request.arch().map(pxe_policy::Arch::machine);
    facts.guid = request.client_guid.and_then(|guid| guid.meaningful());
    facts.ipxe = request.ipxe_features;
    facts.ip = (!request.ciaddr.is_unspecified()).then_some(request.ciaddr);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    facts.vendor_class = request.vendor_class.as_ref().map(|c| text(c.as_bytes()));
    facts.user_class = request.user_class.as_ref().map(|c| text(c.as_bytes()));
    facts.hostname = request
        .host_name
        .as_ref()
        .and_then(|name| String::from_utf8(name.clone()).ok());
    if !request.giaddr.is_unspecified() {
        let mut relay = RelayInfo::new(request.giaddr);
        if let Some(info) = &request.relay_agent_info {
            relay.circuit_id = info.circuit_id().map(<[u8]>::to_vec);
            relay.remote_id = info.remote_id().map(<[u8]>::to_vec);
        }
        facts.relay = Some(relay);
    }
    facts
}

fn silent(reason: NoReply) -> Outcome {
    Outcome {
        reply: Err(reason),
        lease_changes: Vec::new(),
    }
}
