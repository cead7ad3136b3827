use std::net::{Ipv4Addr, SocketAddrV4};

use pxe_policy::MacAddr;

use super::{MessageType, Packet};

/// UDP port of DHCP servers and relay agents.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// UDP port of PXE boot servers (PXE 2.1 §2.2: requests to it are answered to the client's
/// source address and port, not by this module's rules).
pub const PXE_BOOT_SERVER_PORT: u16 = 4011;

/// What RFC 2131 §4.1 reads from a client's message to address the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestAddressing {
    /// The request's `giaddr` (non-zero when relayed).
    pub giaddr: Ipv4Addr,
    /// The request's `ciaddr` (non-zero when the client has an address).
    pub ciaddr: Ipv4Addr,
    /// The request's BROADCAST flag.
    pub broadcast: bool,
    /// The client's Ethernet address, when `chaddr` is one (`htype` 1, `hlen` 6).
    pub client_mac: Option<MacAddr>,
}

impl RequestAddressing {
    /// The addressing facts of a received message.
    pub fn of<T: AsRef<[u8]>>(request: &Packet<T>) -> Self {
        Self {
            giaddr: request.giaddr(),
            ciaddr: request.ciaddr(),
            broadcast: request.broadcast(),
            client_mac: request.client_mac(),
        }
    }
}

/// Where a server sends a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyDestination {
    /// To the relay agent at `giaddr`, port 67.
    Relay(SocketAddrV4),
    /// Unicast to the client's configured address `ciaddr`, port 68.
    Client(SocketAddrV4),
    /// To 255.255.255.255, port 68.
    Broadcast,
    /// Unicast to `yiaddr`, port 68, at the client's hardware address: the client has no
    /// address yet and cannot answer ARP, so the sender must add a neighbour entry for
    /// `ip` → `mac` first (as dnsmasq does) or fall back to [`ReplyDestination::Broadcast`].
    Hardware {
        /// `yiaddr`.
        ip: Ipv4Addr,
        /// `chaddr`.
        mac: MacAddr,
    },
}

impl ReplyDestination {
    /// The IP address and UDP port to send to (for [`ReplyDestination::Hardware`], `yiaddr`
    /// port 68, which needs the neighbour entry).
    pub fn socket_addr(&self) -> SocketAddrV4 {
        match *self {
            Self::Relay(addr) | Self::Client(addr) => addr,
            Self::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Self::Hardware { ip, .. } => SocketAddrV4::new(ip, CLIENT_PORT),
        }
    }

    /// Whether the reply goes to the limited broadcast address.
    pub fn is_broadcast(&self) -> bool {
        matches!(self, Self::Broadcast)
    }
}

/// Where to send a reply of type `reply` carrying `yiaddr` to a client message, by
/// RFC 2131 §4.1:
///
/// > If the 'giaddr' field in a DHCP message from a client is non-zero, the server sends any
/// > return messages to the 'DHCP server' port on the BOOTP relay agent whose address appears
/// > in 'giaddr'. If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the
/// > server unicasts DHCPOFFER and DHCPACK messages to the address in 'ciaddr'. If 'giaddr'
/// > is zero and 'ciaddr' is zero, and the broadcast bit is set, then the server broadcasts
/// > DHCPOFFER and DHCPACK messages to 0xffffffff. If the broadcast bit is not set and
/// > 'giaddr' is zero and 'ciaddr' is zero, then the server unicasts DHCPOFFER and DHCPACK
/// > messages to the client's hardware address and 'yiaddr' address. In all cases, when
/// > 'giaddr' is zero, the server broadcasts any DHCPNAK messages to 0xffffffff.
///
/// The last case needs an address and an Ethernet `chaddr`: with `yiaddr` zero (a proxy
/// offer) or another hardware type, the reply is broadcast instead. Replies other than
/// DHCPOFFER, DHCPACK and DHCPNAK follow the DHCPACK rules.
pub fn reply_destination(
    request: &RequestAddressing,
    reply: MessageType,
    yiaddr: Ipv4Addr,
) -> ReplyDestination {
    if !request.giaddr.is_unspecified() {
        return ReplyDestination::Relay(SocketAddrV4::new(request.giaddr, SERVER_PORT));
    }
    if reply == MessageType::Nak {
        return ReplyDestination::Broadcast;
    }
    if !request.ciaddr.is_unspecified() {
        return ReplyDestination::Client(SocketAddrV4::new(request.ciaddr, CLIENT_PORT));
    }
    if request.broadcast || yiaddr.is_unspecified() || yiaddr.is_broadcast() {
        return ReplyDestination::Broadcast;
    }
    match request.client_mac {
        Some(mac) => ReplyDestination::Hardware { ip: yiaddr, mac },
        None => ReplyDestination::Broadcast,
    }
}
