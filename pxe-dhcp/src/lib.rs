//! DHCPv4 for network boot: the wire format with the PXE and iPXE options, and (to come)
//! proxyDHCP and authoritative DHCP serving.
//!
//! [`wire`] is the message layer: a zero-copy [`wire::Packet`] view over received bytes, typed
//! decoders for the options network-boot clients send (60, 77, 93, 94, 97, 175, …), the
//! [`wire::ClientRequest`] summary of one client message, an owned [`wire::PacketBuilder`] for
//! replies, and [`wire::reply_destination`], RFC 2131 §4.1's addressing rule as a pure
//! function.
//!
//! What it does not do: no sockets, no clocks, no lease or boot decisions. The wire layer
//! never panics on network input: once [`wire::Packet::new_checked`] accepts a buffer, every
//! accessor is total (and the accessors stay panic-free even on an unchecked view).
#![forbid(unsafe_code)]

pub mod wire;
