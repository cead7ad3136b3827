//! DHCPv4 for network boot: the wire format with the PXE and iPXE options, and (to come)
//! proxyDHCP and authoritative DHCP serving.
#![forbid(unsafe_code)]

pub mod lease;
pub mod server;
