use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::{Arch, ClientGuid, ClientKind, IpxeFeatures, MacAddr};

/// Everything known about a client when the policy is asked, gathered from whichever stage is
/// asking (DHCP options, or the query of iPXE's script request). A policy never sees wire
/// types; fields a stage cannot know are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientFacts {
    /// The hardware address: the one key every stage of a machine agrees on.
    pub mac: MacAddr,
    /// Which boot stage is asking.
    pub kind: ClientKind,
    /// The machine's architecture as its PXE code ([`Arch::machine`]): the first entry of
    /// option 93, or the `Arch:` field of option 60, or iPXE's `${buildarch}`/`${platform}`
    /// mapped to a code. UEFI HTTP Boot's 16 is 7 here, as iPXE on the same machine reports
    /// it later: one machine, one architecture at every stage. Whether the client boots over
    /// HTTP is its [`kind`](Self::kind).
    pub arch: Option<Arch>,
    /// The machine GUID, with placeholder values (all 0x00, all 0xFF…) already dropped.
    pub guid: Option<ClientGuid>,
    /// SMBIOS serial number, as iPXE's `${serial}` reports it.
    pub serial: Option<String>,
    /// SMBIOS asset tag (`${asset}`).
    pub asset: Option<String>,
    /// SMBIOS manufacturer (`${manufacturer}`).
    pub manufacturer: Option<String>,
    /// SMBIOS product name (`${product}`).
    pub product: Option<String>,
    /// The host name the client reports (DHCP option 12, or `${hostname}`).
    pub hostname: Option<String>,
    /// The client's IPv4 address when known (ciaddr, a lease, or the HTTP peer).
    pub ip: Option<Ipv4Addr>,
    /// What the iPXE build said about itself in option 175, when the client is iPXE.
    pub ipxe: Option<IpxeFeatures>,
    /// Relay agent data when the request came through a relay.
    pub relay: Option<RelayInfo>,
    /// The vendor class the client sent (DHCP option 60, as text), e.g.
    /// `PXEClient:Arch:00007:UNDI:003016`.
    pub vendor_class: Option<String>,
    /// The user class the client sent (DHCP option 77, as text), e.g. `iPXE`.
    pub user_class: Option<String>,
    /// Other `name=value` facts (unknown query parameters, labels), sorted by name.
    pub extra: BTreeMap<String, String>,
}

impl ClientFacts {
    /// Facts with only the MAC and the stage known.
    pub fn new(mac: MacAddr, kind: ClientKind) -> Self {
        Self {
            mac,
            kind,
            arch: None,
            guid: None,
            serial: None,
            asset: None,
            manufacturer: None,
            product: None,
            hostname: None,
            ip: None,
            ipxe: None,
            relay: None,
            vendor_class: None,
            user_class: None,
            extra: BTreeMap::new(),
        }
    }

    /// Whether the client can fetch `https://` URLs. Only an iPXE whose option 175 lists
    /// HTTPS can; firmware stages and iPXE builds without it must be given `http://`.
    pub fn supports_https(&self) -> bool {
        self.ipxe.is_some_and(|features| features.has_https())
    }

    /// Whether the client boots through UEFI, when its architecture is known.
    pub fn is_uefi(&self) -> Option<bool> {
        self.arch.map(Arch::is_uefi)
    }
}

/// What a DHCP relay told us (giaddr and option 82).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayInfo {
    /// The relay's address (giaddr).
    pub giaddr: Ipv4Addr,
    /// Option 82 sub-option 1, the circuit id, raw.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 sub-option 2, the remote id, raw.
    pub remote_id: Option<Vec<u8>>,
}

impl RelayInfo {
    /// A relay known only by its address.
    pub fn new(giaddr: Ipv4Addr) -> Self {
        Self {
            giaddr,
            circuit_id: None,
            remote_id: None,
        }
    }
}
