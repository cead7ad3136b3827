use core::fmt;

/// A DHCP option code (RFC 2132 and later): an open code space, with constants for the codes
/// this crate reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptionCode(pub u8);

macro_rules! option_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        impl OptionCode {
            $( $(#[$doc])* pub const $name: OptionCode = OptionCode($code); )*

            /// The option's name as its defining RFC gives it, for the codes with a constant.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $code => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

option_codes! {
    /// 0: Pad (RFC 2132 §3.1), a single byte with no length.
    PAD = 0, "Pad";
    /// 1: Subnet Mask.
    SUBNET_MASK = 1, "Subnet Mask";
    /// 3: Router.
    ROUTER = 3, "Router";
    /// 6: Domain Name Server.
    DOMAIN_NAME_SERVER = 6, "Domain Name Server";
    /// 12: Host Name.
    HOST_NAME = 12, "Host Name";
    /// 13: Boot File Size (512-byte blocks).
    BOOT_FILE_SIZE = 13, "Boot File Size";
    /// 15: Domain Name.
    DOMAIN_NAME = 15, "Domain Name";
    /// 17: Root Path.
    ROOT_PATH = 17, "Root Path";
    /// 28: Broadcast Address.
    BROADCAST_ADDRESS = 28, "Broadcast Address";
    /// 42: Network Time Protocol Servers.
    NTP_SERVERS = 42, "Network Time Protocol Servers";
    /// 43: Vendor Specific Information (PXE puts its sub-options here).
    VENDOR_SPECIFIC = 43, "Vendor Specific Information";
    /// 50: Requested IP Address.
    REQUESTED_IP_ADDRESS = 50, "Requested IP Address";
    /// 51: IP Address Lease Time.
    IP_ADDRESS_LEASE_TIME = 51, "IP Address Lease Time";
    /// 52: Option Overload (options continue in `file` and/or `sname`).
    OPTION_OVERLOAD = 52, "Option Overload";
    /// 53: DHCP Message Type.
    MESSAGE_TYPE = 53, "DHCP Message Type";
    /// 54: Server Identifier.
    SERVER_IDENTIFIER = 54, "Server Identifier";
    /// 55: Parameter Request List.
    PARAMETER_REQUEST_LIST = 55, "Parameter Request List";
    /// 56: Message.
    MESSAGE = 56, "Message";
    /// 57: Maximum DHCP Message Size.
    MAXIMUM_MESSAGE_SIZE = 57, "Maximum DHCP Message Size";
    /// 58: Renewal (T1) Time Value.
    RENEWAL_TIME = 58, "Renewal (T1) Time Value";
    /// 59: Rebinding (T2) Time Value.
    REBINDING_TIME = 59, "Rebinding (T2) Time Value";
    /// 60: Vendor class identifier (`PXEClient:Arch:00007:UNDI:003000`, `HTTPClient:…`).
    VENDOR_CLASS_IDENTIFIER = 60, "Vendor class identifier";
    /// 61: Client-identifier.
    CLIENT_IDENTIFIER = 61, "Client-identifier";
    /// 66: TFTP server name.
    TFTP_SERVER_NAME = 66, "TFTP server name";
    /// 67: Bootfile name.
    BOOTFILE_NAME = 67, "Bootfile name";
    /// 77: User Class (RFC 3004; iPXE sends a bare `iPXE` instead).
    USER_CLASS = 77, "User Class";
    /// 80: Rapid Commit (RFC 4039).
    RAPID_COMMIT = 80, "Rapid Commit";
    /// 81: Client FQDN (RFC 4702).
    CLIENT_FQDN = 81, "Client FQDN";
    /// 82: Relay Agent Information (RFC 3046).
    RELAY_AGENT_INFORMATION = 82, "Relay Agent Information";
    /// 93: Client System Architecture Type (RFC 4578), a list of [`Arch`](pxe_policy::Arch).
    CLIENT_SYSTEM_ARCHITECTURE = 93, "Client System Architecture Type";
    /// 94: Client Network Interface Identifier (RFC 4578).
    CLIENT_NETWORK_INTERFACE_ID = 94, "Client Network Interface Identifier";
    /// 97: Client Machine Identifier (RFC 4578): type 0 and a GUID in EFI byte order.
    CLIENT_MACHINE_ID = 97, "Client Machine Identifier";
    /// 119: Domain Search (RFC 3397).
    DOMAIN_SEARCH = 119, "Domain Search";
    /// 121: Classless Static Route (RFC 3442).
    CLASSLESS_STATIC_ROUTE = 121, "Classless Static Route";
    /// 150: TFTP server address (RFC 5859).
    TFTP_SERVER_ADDRESS = 150, "TFTP server address";
    /// 175: iPXE encapsulated options (features, version, bus id; 0xb0 no-pxedhcp in replies).
    IPXE_ENCAPSULATED = 175, "iPXE encapsulated options";
    /// 208: PXELINUX magic (RFC 5071).
    PXELINUX_MAGIC = 208, "PXELINUX Magic";
    /// 209: PXELINUX configuration file (RFC 5071).
    PXELINUX_CONFIG_FILE = 209, "Configuration File";
    /// 210: PXELINUX path prefix (RFC 5071).
    PXELINUX_PATH_PREFIX = 210, "Path Prefix";
    /// 211: PXELINUX reboot time (RFC 5071).
    PXELINUX_REBOOT_TIME = 211, "Reboot Time";
    /// 255: End (RFC 2132 §3.2), a single byte with no length.
    END = 255, "End";
}

impl OptionCode {
    /// The numeric code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// Whether this is one of the two one-byte options without a length (Pad and End).
    pub const fn is_fixed_length_marker(self) -> bool {
        matches!(self.0, 0 | 255)
    }
}

impl fmt::Display for OptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u8> for OptionCode {
    fn from(code: u8) -> Self {
        OptionCode(code)
    }
}

impl From<OptionCode> for u8 {
    fn from(code: OptionCode) -> Self {
        code.0
    }
}

/// The DHCP message type of option 53 (RFC 2132 §9.6, RFC 3203, RFC 4388).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: a client looks for servers.
    Discover,
    /// 2: a server offers.
    Offer,
    /// 3: a client requests offered parameters, or renews.
    Request,
    /// 4: a client found the offered address in use.
    Decline,
    /// 5: a server confirms.
    Ack,
    /// 6: a server refuses.
    Nak,
    /// 7: a client gives its address back.
    Release,
    /// 8: a client with an address asks for other parameters.
    Inform,
    /// 9: a server asks a client to renew (RFC 3203).
    ForceRenew,
    /// 10: lease query (RFC 4388).
    LeaseQuery,
    /// 11: lease unassigned (RFC 4388).
    LeaseUnassigned,
    /// 12: lease unknown (RFC 4388).
    LeaseUnknown,
    /// 13: lease active (RFC 4388).
    LeaseActive,
    /// Any other value.
    Unknown(u8),
}

impl MessageType {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
            Self::ForceRenew => 9,
            Self::LeaseQuery => 10,
            Self::LeaseUnassigned => 11,
            Self::LeaseUnknown => 12,
            Self::LeaseActive => 13,
            Self::Unknown(code) => code,
        }
    }

    /// The type for a wire value; values without a name become [`MessageType::Unknown`].
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            9 => Self::ForceRenew,
            10 => Self::LeaseQuery,
            11 => Self::LeaseUnassigned,
            12 => Self::LeaseUnknown,
            13 => Self::LeaseActive,
            other => Self::Unknown(other),
        }
    }

    /// The upper-case name RFC 2131 uses (`DHCPDISCOVER`), or `None` for unknown values.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Discover => "DHCPDISCOVER",
            Self::Offer => "DHCPOFFER",
            Self::Request => "DHCPREQUEST",
            Self::Decline => "DHCPDECLINE",
            Self::Ack => "DHCPACK",
            Self::Nak => "DHCPNAK",
            Self::Release => "DHCPRELEASE",
            Self::Inform => "DHCPINFORM",
            Self::ForceRenew => "DHCPFORCERENEW",
            Self::LeaseQuery => "DHCPLEASEQUERY",
            Self::LeaseUnassigned => "DHCPLEASEUNASSIGNED",
            Self::LeaseUnknown => "DHCPLEASEUNKNOWN",
            Self::LeaseActive => "DHCPLEASEACTIVE",
            Self::Unknown(_) => return None,
        })
    }
}

impl From<u8> for MessageType {
    fn from(code: u8) -> Self {
        Self::from_code(code)
    }
}

impl From<MessageType> for u8 {
    fn from(kind: MessageType) -> Self {
        kind.code()
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "message type {}", self.code()),
        }
    }
}

/// The BOOTP `op` field (RFC 951).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// 1: client to server.
    BootRequest,
    /// 2: server to client.
    BootReply,
    /// Any other value.
    Unknown(u8),
}

impl Op {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::BootRequest => 1,
            Self::BootReply => 2,
            Self::Unknown(code) => code,
        }
    }

    /// The op for a wire value.
    pub const fn from_code(code: u8) -> Self {
        match code {
            1 => Self::BootRequest,
            2 => Self::BootReply,
            other => Self::Unknown(other),
        }
    }
}

impl From<u8> for Op {
    fn from(code: u8) -> Self {
        Self::from_code(code)
    }
}

impl From<Op> for u8 {
    fn from(op: Op) -> Self {
        op.code()
    }
}

/// The BOOTP `flags` field (RFC 2131 §2, figure 2): only the top bit, BROADCAST, is defined;
/// the others must be zero but are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// The BROADCAST bit: the client cannot receive unicast IP before it is configured.
    pub const BROADCAST: Flags = Flags(0x8000);

    /// Whether the BROADCAST bit is set.
    pub const fn broadcast(self) -> bool {
        self.0 & 0x8000 != 0
    }

    /// These flags with the BROADCAST bit set or cleared.
    #[must_use]
    pub const fn with_broadcast(self, broadcast: bool) -> Self {
        if broadcast {
            Flags(self.0 | 0x8000)
        } else {
            Flags(self.0 & !0x8000)
        }
    }
}

/// The value of option 52 (RFC 2132 §9.3): which header fields carry options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overload {
    /// 1: the `file` field holds options.
    File,
    /// 2: the `sname` field holds options.
    Sname,
    /// 3: both fields hold options.
    Both,
}

impl Overload {
    /// The wire value.
    pub const fn code(self) -> u8 {
        match self {
            Self::File => 1,
            Self::Sname => 2,
            Self::Both => 3,
        }
    }

    /// The overload for a wire value; `None` for anything but 1, 2 and 3.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::File),
            2 => Some(Self::Sname),
            3 => Some(Self::Both),
            _ => None,
        }
    }

    /// Whether `file` holds options.
    pub const fn file(self) -> bool {
        matches!(self, Self::File | Self::Both)
    }

    /// Whether `sname` holds options.
    pub const fn sname(self) -> bool {
        matches!(self, Self::Sname | Self::Both)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips_every_byte() {
        for code in 0..=255u8 {
            assert_eq!(MessageType::from_code(code).code(), code);
            assert_eq!(Op::from_code(code).code(), code);
        }
        assert_eq!(MessageType::Discover.to_string(), "DHCPDISCOVER");
        assert_eq!(MessageType::Unknown(77).to_string(), "message type 77");
    }

    #[test]
    fn flags_and_names() {
        assert!(Flags(0x8000).broadcast());
        assert!(!Flags(0x7fff).broadcast());
        assert_eq!(Flags(1).with_broadcast(true), Flags(0x8001));
        assert_eq!(Flags(0x8001).with_broadcast(false), Flags(1));
        assert_eq!(
            OptionCode::CLIENT_MACHINE_ID.name(),
            Some("Client Machine Identifier")
        );
        assert_eq!(OptionCode(200).name(), None);
        assert_eq!(Overload::from_code(3), Some(Overload::Both));
        assert_eq!(Overload::from_code(4), None);
    }
}
