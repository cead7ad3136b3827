use std::net::Ipv4Addr;

use pxe_policy::{Arch, ClientGuid, IpxeFeatures, MacAddr};

use super::builder::{IP_UDP_HEADER_LEN, MIN_MAX_LEN};
use super::options::{
    self, ClientId, NetworkInterfaceId, PxeVendorOptions, RelayAgentInfo, UserClass, VendorClass,
};
use super::{DecodeError, Flags, MessageType, Op, OptionCode, Packet, RequestAddressing};

/// What a client said in one message, read in one pass and owned: the facts a DHCP server
/// and a boot policy decide on.
///
/// Options that are present but malformed are listed, with why, in
/// [`ClientRequest::malformed`] and otherwise treated as absent, so one bad option does not
/// cost the whole message (a server logs them at `debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientRequest {
    /// `op` (BOOTREQUEST for a client).
    pub op: Op,
    /// Option 53; `None` for a plain BOOTP request.
    pub message_type: Option<MessageType>,
    /// `htype`.
    pub htype: u8,
    /// `hlen`.
    pub hlen: u8,
    /// `hops`.
    pub hops: u8,
    /// `xid`.
    pub xid: u32,
    /// `secs`.
    pub secs: u16,
    /// `flags` (see [`ClientRequest::broadcast`]).
    pub flags: Flags,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `siaddr`.
    pub siaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// The first six bytes of `chaddr`: the key every boot stage of one machine agrees on
    /// (check [`ClientRequest::client_mac`] for non-Ethernet hardware).
    pub chaddr: MacAddr,
    /// The whole 16-byte `chaddr` field, as a reply copies it.
    pub chaddr_field: [u8; 16],
    /// Option 60.
    pub vendor_class: Option<VendorClass>,
    /// Option 93, most preferred first; empty when absent.
    pub client_arch: Vec<Arch>,
    /// Option 94.
    pub client_ndi: Option<NetworkInterfaceId>,
    /// Option 97.
    pub client_guid: Option<ClientGuid>,
    /// Option 77.
    pub user_class: Option<UserClass>,
    /// Option 175.
    pub ipxe_features: Option<IpxeFeatures>,
    /// Option 61 (EDK2 sends none).
    pub client_id: Option<ClientId>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 57, as sent.
    pub max_message_size: Option<u16>,
    /// Option 55, in the client's order; empty when absent.
    pub parameter_request_list: Vec<OptionCode>,
    /// Option 82, to echo.
    pub relay_agent_info: Option<RelayAgentInfo>,
    /// Option 43 as PXE sub-options (a boot server request on port 4011 carries 71).
    pub pxe_vendor_options: Option<PxeVendorOptions>,
    /// Option 12.
    pub host_name: Option<Vec<u8>>,
    /// Every option code present, in wire order, each once.
    pub option_codes: Vec<OptionCode>,
    /// Options present whose data did not decode, and why.
    pub malformed: Vec<(OptionCode, DecodeError)>,
}

impl ClientRequest {
    /// Checks `bytes` ([`Packet::new_checked`]) and reads a client message from them.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_packet(&Packet::new_checked(bytes)?)
    }

    /// Reads a client message; a BOOTREPLY or unknown op is [`DecodeError::NotARequest`].
    pub fn from_packet<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, DecodeError> {
        match packet.op() {
            Op::BootRequest => Ok(Self::from_packet_lenient(packet)),
            op => Err(DecodeError::NotARequest { op: op.code() }),
        }
    }

    /// Reads any message as if it were a request.
    pub(crate) fn from_packet_lenient<T: AsRef<[u8]>>(packet: &Packet<T>) -> Self {
        let mut chaddr_field = [0u8; 16];
        if let Some(field) = packet.chaddr_field().get(..16) {
            chaddr_field.copy_from_slice(field);
        }
        let mut request = Self {
            op: packet.op(),
            message_type: None,
            htype: packet.htype(),
            hlen: packet.hlen(),
            hops: packet.hops(),
            xid: packet.xid(),
            secs: packet.secs(),
            flags: packet.flags(),
            ciaddr: packet.ciaddr(),
            yiaddr: packet.yiaddr(),
            siaddr: packet.siaddr(),
            giaddr: packet.giaddr(),
            chaddr: packet.chaddr_mac(),
            chaddr_field,
            vendor_class: None,
            client_arch: Vec::new(),
            client_ndi: None,
            client_guid: None,
            user_class: None,
            ipxe_features: None,
            client_id: None,
            requested_ip: None,
            server_id: None,
            max_message_size: None,
            parameter_request_list: Vec::new(),
            relay_agent_info: None,
            pxe_vendor_options: None,
            host_name: None,
            option_codes: Vec::new(),
            malformed: Vec::new(),
        };
        for (code, data) in packet.merged_options() {
            request.option_codes.push(code);
            if let Err(error) = request.read_option(code, &data) {
                request.malformed.push((code, error));
            }
        }
        request
    }

    fn read_option(&mut self, code: OptionCode, data: &[u8]) -> Result<(), DecodeError> {
        match code {
            OptionCode::MESSAGE_TYPE => {
                self.message_type = Some(options::decode_message_type(data)?);
            }
            OptionCode::VENDOR_CLASS_IDENTIFIER => {
                self.vendor_class = Some(VendorClass::decode(data)?);
            }
            OptionCode::CLIENT_SYSTEM_ARCHITECTURE => {
                self.client_arch = options::decode_client_arch(data)?;
            }
            OptionCode::CLIENT_NETWORK_INTERFACE_ID => {
                self.client_ndi = Some(NetworkInterfaceId::decode(data)?);
            }
            OptionCode::CLIENT_MACHINE_ID => {
                self.client_guid = Some(options::decode_client_guid(data)?);
            }
            OptionCode::USER_CLASS => self.user_class = Some(UserClass::decode(data)?),
            OptionCode::IPXE_ENCAPSULATED => {
                self.ipxe_features = Some(options::decode_ipxe_features(data)?);
            }
            OptionCode::CLIENT_IDENTIFIER => self.client_id = Some(ClientId::decode(data)?),
            OptionCode::REQUESTED_IP_ADDRESS => {
                self.requested_ip = Some(options::decode_ipv4(code, data)?);
            }
            OptionCode::SERVER_IDENTIFIER => {
                self.server_id = Some(options::decode_ipv4(code, data)?);
            }
            OptionCode::MAXIMUM_MESSAGE_SIZE => {
                self.max_message_size = Some(options::decode_u16(code, data)?);
            }
            OptionCode::PARAMETER_REQUEST_LIST => {
                self.parameter_request_list = options::decode_parameter_request_list(data)?;
            }
            OptionCode::RELAY_AGENT_INFORMATION => {
                self.relay_agent_info = Some(RelayAgentInfo::decode(data)?);
            }
            OptionCode::VENDOR_SPECIFIC => {
                self.pxe_vendor_options = Some(PxeVendorOptions::decode(data)?);
            }
            OptionCode::HOST_NAME => self.host_name = Some(data.to_vec()),
            _ => {}
        }
        Ok(())
    }

    /// Whether the BROADCAST flag is set.
    pub fn broadcast(&self) -> bool {
        self.flags.broadcast()
    }

    /// The client's Ethernet address: `Some` when `htype` is 1 and `hlen` is 6.
    pub fn client_mac(&self) -> Option<MacAddr> {
        (self.htype == 1 && self.hlen == 6).then_some(self.chaddr)
    }

    /// Whether option 60 starts with `PXEClient`.
    pub fn is_pxe_client(&self) -> bool {
        self.vendor_class
            .as_ref()
            .is_some_and(VendorClass::is_pxe_client)
    }

    /// Whether option 60 starts with `HTTPClient` (UEFI HTTP Boot).
    pub fn is_http_client(&self) -> bool {
        self.vendor_class
            .as_ref()
            .is_some_and(VendorClass::is_http_client)
    }

    /// Whether the client is iPXE: user class `iPXE` or an option 175. (A chainloaded iPXE
    /// and a ROM iPXE look alike; see docs/FIRMWARE.md for telling them apart.)
    pub fn is_ipxe(&self) -> bool {
        self.ipxe_features.is_some() || self.user_class.as_ref().is_some_and(UserClass::is_ipxe)
    }

    /// The client's architecture: the first of option 93, else the `Arch:` field of 60.
    pub fn arch(&self) -> Option<Arch> {
        self.client_arch
            .first()
            .copied()
            .or_else(|| self.vendor_class.as_ref()?.arch())
    }

    /// Whether option 55 asks for `code`.
    pub fn requests(&self, code: OptionCode) -> bool {
        self.parameter_request_list.contains(&code)
    }

    /// What [`reply_destination`](super::reply_destination) needs.
    pub fn addressing(&self) -> RequestAddressing {
        RequestAddressing {
            giaddr: self.giaddr,
            ciaddr: self.ciaddr,
            broadcast: self.broadcast(),
            client_mac: self.client_mac(),
        }
    }

    /// The largest reply (DHCP bytes, without IP and UDP headers) the client accepts: option
    /// 57 less 28, and never below 548 (RFC 2131 §2; RFC 2132 §9.10 makes 576 the smallest
    /// legal option 57).
    pub fn max_reply_len(&self) -> usize {
        self.max_message_size
            .map_or(MIN_MAX_LEN, |size| {
                usize::from(size).saturating_sub(IP_UDP_HEADER_LEN)
            })
            .max(MIN_MAX_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PacketBuilder;

    #[test]
    fn malformed_options_are_listed_not_fatal() {
        let mut b = PacketBuilder::request(MessageType::Discover, 9, MacAddr([2, 0, 0, 0, 0, 1]));
        b.set_option(OptionCode::CLIENT_SYSTEM_ARCHITECTURE, &[0, 7, 0])
            .set_option(OptionCode::CLIENT_MACHINE_ID, &[1; 17])
            .set_option(OptionCode::MAXIMUM_MESSAGE_SIZE, &[2, 64])
            .set_vendor_class(b"PXEClient:Arch:00009:UNDI:003016");
        let request = ClientRequest::parse(&b.to_vec().unwrap()).unwrap();
        let bad: Vec<u8> = request.malformed.iter().map(|(code, _)| code.0).collect();
        assert_eq!(bad, [93, 97]);
        assert!(matches!(
            request.malformed[0].1,
            DecodeError::BadOptionLength { len: 3, .. }
        ));
        assert!(request.client_arch.is_empty());
        // Option 93 is unusable, so the vendor class's Arch field answers.
        assert_eq!(request.arch(), Some(Arch::EBC));
        assert_eq!(request.max_message_size, Some(576));
        assert_eq!(request.max_reply_len(), MIN_MAX_LEN);
        assert_eq!(request.client_mac(), Some(MacAddr([2, 0, 0, 0, 0, 1])));
    }

    #[test]
    fn tiny_max_message_size_is_raised_to_the_legal_minimum() {
        let mut b = PacketBuilder::request(MessageType::Discover, 9, MacAddr::default());
        b.set_option(OptionCode::MAXIMUM_MESSAGE_SIZE, &[0, 10]);
        let request = ClientRequest::parse(&b.to_vec().unwrap()).unwrap();
        assert_eq!(request.max_reply_len(), MIN_MAX_LEN);
    }
}
