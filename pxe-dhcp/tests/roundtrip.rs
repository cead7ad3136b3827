//! Property tests: emit then parse is the identity for arbitrary messages, and arbitrary
//! bytes through `new_checked` and every accessor never panic.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use pxe_dhcp::wire::{
    reply_destination, ClientRequest, Flags, MessageType, Op, OptionCode, Packet, PacketBuilder,
    ReplyDestination, RequestAddressing, HEADER_LEN, MAGIC_COOKIE,
};
use pxe_policy::MacAddr;

fn option_code() -> impl Strategy<Value = u8> {
    // Mostly the codes this crate decodes, so typed paths get exercised; any code sometimes.
    prop_oneof![
        prop::sample::select(vec![
            1u8, 3, 12, 43, 50, 51, 53, 54, 55, 57, 60, 61, 66, 67, 77, 82, 93, 94, 97, 175
        ]),
        any::<u8>(),
    ]
}

fn option_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..24),
        1 => prop::collection::vec(any::<u8>(), 200..700),
    ]
}

prop_compose! {
    fn arb_builder()(
        op in any::<u8>(),
        htype in any::<u8>(),
        chaddr in prop::collection::vec(any::<u8>(), 0..=16),
        hops in any::<u8>(),
        xid in any::<u32>(),
        secs in any::<u16>(),
        flags in any::<u16>(),
        addrs in any::<[u32; 4]>(),
        sname in prop::collection::vec(1u8..=255, 0..64),
        file in prop::collection::vec(1u8..=255, 0..128),
        options in prop::collection::vec((option_code(), option_data()), 0..12),
        max_len in 548usize..2000,
        overload in any::<bool>(),
    ) -> PacketBuilder {
        let mut b = PacketBuilder::new(Op::from_code(op));
        b.set_htype(htype)
            .set_hops(hops)
            .set_xid(xid)
            .set_secs(secs)
            .set_flags(Flags(flags))
            .set_ciaddr(Ipv4Addr::from(addrs[0]))
            .set_yiaddr(Ipv4Addr::from(addrs[1]))
            .set_siaddr(Ipv4Addr::from(addrs[2]))
            .set_giaddr(Ipv4Addr::from(addrs[3]))
            .set_max_len(max_len)
            .set_overload_allowed(overload);
        b.set_chaddr(&chaddr).unwrap();
        b.set_sname(&sname).unwrap();
        b.set_file(&file).unwrap();
        for (code, data) in options {
            b.set_option(OptionCode(code), &data);
        }
        b
    }
}

/// A syntactically valid header and cookie followed by arbitrary option bytes: gets past
/// `new_checked`'s first checks far more often than random bytes do.
fn dhcp_shaped_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), HEADER_LEN - 4),
        prop::collection::vec(any::<u8>(), 0..600),
        0u8..=16,
    )
        .prop_map(|(mut header, options, hlen)| {
            header[2] = hlen;
            header.extend_from_slice(&MAGIC_COOKIE);
            header.extend_from_slice(&options);
            header
        })
}

fn touch_everything<T: AsRef<[u8]>>(p: &Packet<T>) {
    let _ = (
        p.op(),
        p.htype(),
        p.hlen(),
        p.hops(),
        p.xid(),
        p.secs(),
        p.flags(),
    );
    let _ = (
        p.broadcast(),
        p.ciaddr(),
        p.yiaddr(),
        p.siaddr(),
        p.giaddr(),
    );
    let _ = (p.chaddr(), p.chaddr_field(), p.chaddr_mac(), p.client_mac());
    let _ = (
        p.sname(),
        p.file(),
        p.server_name(),
        p.boot_file(),
        p.magic_cookie(),
    );
    let _ = (
        p.options_field(),
        p.overload(),
        p.message_type(),
        p.vendor_class(),
    );
    let _ = (
        p.server_identifier(),
        p.requested_ip_address(),
        p.max_message_size(),
    );
    let _ = (
        p.parameter_request_list(),
        p.client_identifier(),
        p.user_class(),
    );
    let _ = (
        p.client_arch(),
        p.client_ndi(),
        p.client_guid(),
        p.ipxe_features(),
    );
    let _ = (p.pxe_vendor_options(), p.relay_agent_information());
    let _ = (p.options().count(), p.merged_options());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// emit → new_checked → from_packet gives back the builder, and emit writes exactly
    /// buffer_len bytes, never more than the limit.
    #[test]
    fn emit_then_parse_is_identity(b in arb_builder()) {
        match b.to_vec() {
            Ok(bytes) => {
                prop_assert_eq!(bytes.len(), b.buffer_len());
                prop_assert!(bytes.len() <= b.max_len());
                let packet = Packet::new_checked(&bytes[..]).unwrap();
                let mut back = PacketBuilder::from_packet(&packet);
                back.set_max_len(b.max_len()).set_overload_allowed(b.overload_allowed());
                prop_assert_eq!(&back, &b);
                // And the same bytes again.
                prop_assert_eq!(back.to_vec().unwrap(), bytes);
            }
            Err(pxe_dhcp::wire::EmitError::TooLong { needed, max }) => {
                prop_assert!(needed > max);
                prop_assert_eq!(max, b.max_len());
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// A buffer one byte short is refused, not overrun.
    #[test]
    fn short_buffer_is_refused(b in arb_builder()) {
        let len = b.buffer_len();
        let mut buf = vec![0; len - 1];
        prop_assert!(b.emit(&mut buf).is_err());
    }

    /// Random bytes: every accessor is total on the unchecked view and on the checked one.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        touch_everything(&Packet::new_unchecked(&bytes[..]));
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            touch_everything(&packet);
            let _ = ClientRequest::from_packet(&packet);
        }
    }

    /// DHCP-shaped bytes with random options: same, and a checked packet survives a rebuild
    /// with its options intact.
    #[test]
    fn dhcp_shaped_bytes_never_panic(bytes in dhcp_shaped_bytes()) {
        touch_everything(&Packet::new_unchecked(&bytes[..]));
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            touch_everything(&packet);
            if let Ok(request) = ClientRequest::from_packet(&packet) {
                let _ = (request.arch(), request.is_ipxe(), request.max_reply_len());
                for kind in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
                    let reply = PacketBuilder::reply_to(&request, kind);
                    if let Ok(bytes) = reply.to_vec() {
                        prop_assert!(Packet::new_checked(&bytes[..]).is_ok());
                    }
                }
            }
            let mut rebuilt = PacketBuilder::from_packet(&packet);
            rebuilt.set_max_len(usize::MAX);
            let bytes = rebuilt.to_vec().unwrap();
            let again = Packet::new_checked(&bytes[..]).unwrap();
            let mut before: Vec<_> = packet
                .merged_options()
                .into_iter()
                .filter(|(code, _)| *code != OptionCode::OPTION_OVERLOAD)
                .collect();
            before.sort_by_key(|(code, _)| *code);
            let mut after = again.merged_options();
            after.sort_by_key(|(code, _)| *code);
            prop_assert_eq!(after, before);
        }
    }

    /// §4.1 as properties: a relay always gets the reply; without one, a NAK is always
    /// broadcast; a reply is unicast to the hardware address only with no ciaddr, no
    /// broadcast bit, an Ethernet chaddr and a yiaddr.
    #[test]
    fn reply_destination_properties(
        giaddr in any::<u32>(), ciaddr in any::<u32>(), broadcast in any::<bool>(),
        mac in prop::option::of(any::<[u8; 6]>()), yiaddr in any::<u32>(), kind in 1u8..=8,
    ) {
        let facts = RequestAddressing {
            giaddr: Ipv4Addr::from(giaddr),
            ciaddr: Ipv4Addr::from(ciaddr),
            broadcast,
            client_mac: mac.map(MacAddr),
        };
        let kind = MessageType::from_code(kind);
        let to = reply_destination(&facts, kind, Ipv4Addr::from(yiaddr));
        if giaddr != 0 {
            prop_assert!(matches!(to, ReplyDestination::Relay(a) if a.port() == 67));
        } else if kind == MessageType::Nak {
            prop_assert_eq!(to, ReplyDestination::Broadcast);
        }
        if let ReplyDestination::Hardware { ip, mac: to_mac } = to {
            prop_assert!(giaddr == 0 && ciaddr == 0 && !broadcast);
            prop_assert_eq!(ip, Ipv4Addr::from(yiaddr));
            prop_assert_eq!(Some(to_mac), mac.map(MacAddr));
        }
    }
}
