//! RFC 2131 §4.1 (where replies go) and §4.3.1 table 3 (which fields a reply copies).

use std::net::{Ipv4Addr, SocketAddrV4};

use pxe_dhcp::wire::{
    reply_destination, ClientRequest, Flags, MessageType, Packet, PacketBuilder, ReplyDestination,
    RequestAddressing, CLIENT_PORT, SERVER_PORT,
};
use pxe_policy::MacAddr;

const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]);
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const OFFERED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 60);

fn facts(giaddr: Ipv4Addr, ciaddr: Ipv4Addr, broadcast: bool) -> RequestAddressing {
    RequestAddressing {
        giaddr,
        ciaddr,
        broadcast,
        client_mac: Some(MAC),
    }
}

const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// "If the 'giaddr' field in a DHCP message from a client is non-zero, the server sends any
/// return messages to the 'DHCP server' port on the BOOTP relay agent whose address appears
/// in 'giaddr'."
#[test]
fn relayed_requests_go_back_to_the_relay_on_port_67() {
    for reply in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        for (ciaddr, broadcast) in [(ZERO, false), (ZERO, true), (CLIENT, false)] {
            let to = reply_destination(&facts(RELAY, ciaddr, broadcast), reply, OFFERED);
            assert_eq!(
                to,
                ReplyDestination::Relay(SocketAddrV4::new(RELAY, SERVER_PORT))
            );
        }
    }
}

/// "If the 'giaddr' field is zero and the 'ciaddr' field is nonzero, then the server unicasts
/// DHCPOFFER and DHCPACK messages to the address in 'ciaddr'."
#[test]
fn configured_clients_get_unicast_to_ciaddr() {
    for reply in [MessageType::Offer, MessageType::Ack] {
        for broadcast in [false, true] {
            let to = reply_destination(&facts(ZERO, CLIENT, broadcast), reply, OFFERED);
            assert_eq!(
                to,
                ReplyDestination::Client(SocketAddrV4::new(CLIENT, CLIENT_PORT))
            );
        }
    }
}

/// "If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit is set, then the server
/// broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff."
#[test]
fn broadcast_bit_means_broadcast() {
    for reply in [MessageType::Offer, MessageType::Ack] {
        let to = reply_destination(&facts(ZERO, ZERO, true), reply, OFFERED);
        assert_eq!(to, ReplyDestination::Broadcast);
        assert_eq!(
            to.socket_addr(),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        );
    }
}

/// "If the broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is zero, then the
/// server unicasts DHCPOFFER and DHCPACK messages to the client's hardware address and
/// 'yiaddr' address."
#[test]
fn unicast_to_hardware_address_and_yiaddr() {
    let to = reply_destination(&facts(ZERO, ZERO, false), MessageType::Offer, OFFERED);
    assert_eq!(
        to,
        ReplyDestination::Hardware {
            ip: OFFERED,
            mac: MAC
        }
    );
    assert_eq!(to.socket_addr(), SocketAddrV4::new(OFFERED, CLIENT_PORT));
}

/// Without an address to give (a proxy offer) or an Ethernet chaddr to reach, unicast to the
/// hardware address is impossible: broadcast.
#[test]
fn proxy_offers_and_unknown_hardware_fall_back_to_broadcast() {
    let to = reply_destination(&facts(ZERO, ZERO, false), MessageType::Offer, ZERO);
    assert_eq!(to, ReplyDestination::Broadcast);
    let mut no_mac = facts(ZERO, ZERO, false);
    no_mac.client_mac = None;
    let to = reply_destination(&no_mac, MessageType::Ack, OFFERED);
    assert_eq!(to, ReplyDestination::Broadcast);
}

/// "In all cases, when 'giaddr' is zero, the server broadcasts any DHCPNAK messages to
/// 0xffffffff."
#[test]
fn naks_are_broadcast_unless_relayed() {
    for (ciaddr, broadcast) in [(ZERO, false), (ZERO, true), (CLIENT, false)] {
        let to = reply_destination(&facts(ZERO, ciaddr, broadcast), MessageType::Nak, OFFERED);
        assert_eq!(to, ReplyDestination::Broadcast);
    }
}

fn request_bytes(giaddr: Ipv4Addr, ciaddr: Ipv4Addr, broadcast: bool) -> Vec<u8> {
    let mut request = PacketBuilder::request(MessageType::Request, 0xdead_beef, MAC);
    request
        .set_giaddr(giaddr)
        .set_ciaddr(ciaddr)
        .set_broadcast(broadcast)
        .set_secs(9)
        .set_hops(1)
        .set_option(
            pxe_dhcp::wire::OptionCode::RELAY_AGENT_INFORMATION,
            &[1, 2, 3, 4],
        );
    request.to_vec().unwrap()
}

/// Table 3: op BOOTREPLY, hops 0, xid/flags/giaddr/chaddr copied, secs 0, ciaddr only in a
/// DHCPACK, yiaddr/siaddr zero until the server sets them.
#[test]
fn reply_fields_follow_table_3() {
    let bytes = request_bytes(RELAY, CLIENT, false);
    let request = ClientRequest::parse(&bytes).unwrap();
    for kind in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        let reply = PacketBuilder::reply_to(&request, kind).to_vec().unwrap();
        let reply = Packet::new_checked(&reply[..]).unwrap();
        assert_eq!(reply.op(), pxe_dhcp::wire::Op::BootReply);
        assert_eq!(reply.hops(), 0);
        assert_eq!(reply.secs(), 0);
        assert_eq!(reply.xid(), 0xdead_beef);
        assert_eq!(reply.giaddr(), RELAY);
        assert_eq!(reply.client_mac(), Some(MAC));
        assert_eq!(reply.yiaddr(), ZERO);
        assert_eq!(reply.siaddr(), ZERO);
        assert_eq!(reply.message_type(), Some(kind));
        let expected_ciaddr = if kind == MessageType::Ack {
            CLIENT
        } else {
            ZERO
        };
        assert_eq!(reply.ciaddr(), expected_ciaddr, "{kind}");
        // RFC 3046 §2.2: the relay agent information comes back verbatim, last.
        let last = reply.options().last().unwrap();
        assert_eq!(
            last.code,
            pxe_dhcp::wire::OptionCode::RELAY_AGENT_INFORMATION
        );
        assert_eq!(last.data, &[1, 2, 3, 4]);
        // The first option is the message type.
        assert_eq!(
            reply.options().next().unwrap().code,
            pxe_dhcp::wire::OptionCode::MESSAGE_TYPE
        );
    }
}

/// §4.3.2: "If 'giaddr' is set in the DHCPREQUEST message, the client is on a different
/// subnet. The server MUST set the broadcast bit in the DHCPNAK".
#[test]
fn relayed_nak_sets_the_broadcast_bit() {
    let relayed = ClientRequest::parse(&request_bytes(RELAY, ZERO, false)).unwrap();
    let nak = PacketBuilder::reply_to(&relayed, MessageType::Nak);
    assert!(nak.flags().broadcast());
    let offer = PacketBuilder::reply_to(&relayed, MessageType::Offer);
    assert!(!offer.flags().broadcast());
    let local = ClientRequest::parse(&request_bytes(ZERO, ZERO, false)).unwrap();
    assert_eq!(
        PacketBuilder::reply_to(&local, MessageType::Nak).flags(),
        Flags(0)
    );
}

/// The facts read from a packet and from a parsed request agree.
#[test]
fn addressing_from_packet_and_request_agree() {
    for (giaddr, ciaddr, broadcast) in [
        (ZERO, ZERO, false),
        (ZERO, ZERO, true),
        (RELAY, ZERO, false),
        (ZERO, CLIENT, true),
    ] {
        let bytes = request_bytes(giaddr, ciaddr, broadcast);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let request = ClientRequest::from_packet(&packet).unwrap();
        assert_eq!(RequestAddressing::of(&packet), request.addressing());
        assert_eq!(request.addressing(), facts(giaddr, ciaddr, broadcast));
    }
}
