//! DHCPv4 for network boot: the wire format with the PXE and iPXE options, and proxyDHCP
//! and authoritative DHCP serving.
//!
//! [`wire`] is the message layer: a zero-copy [`wire::Packet`] view over received bytes, typed
//! decoders for the options network-boot clients send (60, 77, 93, 94, 97, 175, …), the
//! [`wire::ClientRequest`] summary of one client message, an owned [`wire::PacketBuilder`] for
//! replies, and [`wire::reply_destination`], RFC 2131 §4.1's addressing rule as a pure
//! function.
//!
//! [`proto`] holds the serving decisions as pure functions (request → policy facts → reply,
//! time as an argument); [`lease`] the address pools, reservations, bindings and their
//! crash-safe journal; [`server`] the tokio server that owns the sockets (IP_PKTINFO) and
//! asks the [`pxe_policy::Policy`]. The server is the `server` feature (on by default), the
//! one part that needs tokio and nix: with `default-features = false` the crate is the wire
//! format, the decisions and the lease store, with no runtime or socket dependency.
//!
//! What [`wire`] does not do: no sockets, no clocks, no lease or boot decisions. The wire layer
//! never panics on network input: once [`wire::Packet::new_checked`] accepts a buffer, every
//! accessor is total (and the accessors stay panic-free even on an unchecked view).
//!
//! What a PXE firmware's DISCOVER says, read by the wire layer:
//!
//! ```
//! use pxe_dhcp::wire::{ClientRequest, MessageType, PacketBuilder};
//! use pxe_policy::{Arch, MacAddr};
//!
//! let mac: MacAddr = "52:54:00:12:34:56".parse()?;
//! let mut discover = PacketBuilder::request(MessageType::Discover, 0x1234, mac);
//! discover.set_vendor_class(b"PXEClient:Arch:00007:UNDI:003016");
//! let bytes = discover.to_vec()?;
//!
//! let request = ClientRequest::parse(&bytes)?;
//! assert_eq!(request.chaddr, mac);
//! assert!(request.is_pxe_client());
//! assert_eq!(request.arch(), Some(Arch::X64_UEFI));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// No unsafe, except one ioctl in `server::neighbour` (allowed there, with SAFETY comments).
#![deny(unsafe_code)]

pub mod lease;
pub mod proto;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

mod error;

pub use error::Error;
