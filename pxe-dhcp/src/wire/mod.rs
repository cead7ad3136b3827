//! The DHCPv4 message format (RFC 2131, RFC 2132) with the options network boot uses.
//!
//! - [`Packet`]: a zero-copy view of a received message, RFC-named field accessors, an
//!   option iterator that follows option overload (52) and joins split options (RFC 3396),
//!   and typed accessors for the PXE and iPXE options.
//! - [`options`]: the typed decoders (and encoders) of single options: 60 [`VendorClass`],
//!   77 [`UserClass`], 93 [`Arch`](pxe_policy::Arch) list, 94 [`NetworkInterfaceId`],
//!   97 [`ClientGuid`](pxe_policy::ClientGuid), 175 [`IpxeFeatures`](pxe_policy::IpxeFeatures),
//!   43 [`PxeVendorOptions`], 61 [`ClientId`], 82 [`RelayAgentInfo`].
//! - [`ClientRequest`]: one client message read in one pass into owned facts.
//! - [`PacketBuilder`]: an owned message to send, with [`PacketBuilder::reply_to`] filling
//!   the fields RFC 2131 fixes, and `buffer_len`/`emit`.
//! - [`reply_destination`]: RFC 2131 §4.1's choice of relay, unicast or broadcast.
//!
//! ```
//! use pxe_dhcp::wire::{ClientRequest, MessageType, PacketBuilder, Packet, reply_destination};
//! use pxe_policy::MacAddr;
//! use std::net::Ipv4Addr;
//!
//! // A client's DISCOVER, as bytes.
//! let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
//! let mut discover = PacketBuilder::request(MessageType::Discover, 0x1234, mac);
//! discover.set_vendor_class(b"PXEClient:Arch:00007:UNDI:003016").set_broadcast(true);
//! let bytes = discover.to_vec().unwrap();
//!
//! // The server's side.
//! let request = ClientRequest::parse(&bytes).unwrap();
//! assert!(request.is_pxe_client());
//! let mut offer = PacketBuilder::reply_to(&request, MessageType::Offer);
//! offer
//!     .set_server_identifier(Ipv4Addr::new(192, 0, 2, 1))
//!     .set_vendor_class(b"PXEClient")
//!     .set_bootfile_name(b"snponly.efi");
//! let mut buf = vec![0; offer.buffer_len()];
//! let len = offer.emit(&mut buf).unwrap();
//! let reply = Packet::new_checked(&buf[..len]).unwrap();
//! assert_eq!(reply.xid(), 0x1234);
//! assert_eq!(reply.message_type(), Some(MessageType::Offer));
//! let to = reply_destination(&request.addressing(), MessageType::Offer, reply.yiaddr());
//! assert!(to.is_broadcast());
//! ```

mod addressing;
mod builder;
mod code;
mod error;
pub mod options;
mod packet;
mod request;

pub use addressing::{
    reply_destination, ReplyDestination, RequestAddressing, CLIENT_PORT, PXE_BOOT_SERVER_PORT,
    SERVER_PORT,
};
pub use builder::{PacketBuilder, BOOTP_MIN_LEN, IP_UDP_HEADER_LEN, MIN_MAX_LEN};
pub use code::{Flags, MessageType, Op, OptionCode, Overload};
pub use error::{DecodeError, EmitError};
pub use options::{
    ClientId, NetworkInterfaceId, PxeVendorOptions, RelayAgentInfo, UserClass, VendorClass,
};
pub use packet::{field, DhcpOption, Options, Packet, HEADER_LEN, MAGIC_COOKIE};
pub use request::ClientRequest;
