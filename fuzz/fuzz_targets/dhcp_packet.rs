//! Arbitrary bytes through the DHCP view: every accessor on an unchecked view, then
//! `new_checked`, and on success every accessor, the one-pass `ClientRequest`, and a rebuild
//! through `PacketBuilder::from_packet` that must parse back to the same options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pxe_dhcp::wire::{
    options, reply_destination, ClientRequest, MessageType, OptionCode, Packet, PacketBuilder,
    RequestAddressing,
};

fn touch_everything<T: AsRef<[u8]>>(p: &Packet<T>) {
    let _ = (p.op(), p.htype(), p.hlen(), p.hops(), p.xid(), p.secs(), p.flags());
    let _ = (p.broadcast(), p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr());
    let _ = (p.chaddr(), p.chaddr_field(), p.chaddr_mac(), p.client_mac());
    let _ = (p.sname(), p.file(), p.server_name(), p.boot_file(), p.magic_cookie());
    let _ = (p.options_field(), p.overload(), p.message_type());
    let _ = (p.server_identifier(), p.requested_ip_address(), p.max_message_size());
    let _ = (p.parameter_request_list(), p.client_identifier(), p.user_class());
    let _ = (p.client_arch(), p.client_ndi(), p.client_guid(), p.ipxe_features());
    let _ = (p.pxe_vendor_options(), p.relay_agent_information());
    if let Some(class) = p.vendor_class() {
        let _ = (class.prefix(), class.arch(), class.undi(), class.is_pxe_client());
    }
    if let Some(class) = p.user_class() {
        let _ = (class.classes(), class.is_ipxe());
    }
    for option in p.options() {
        // Every option's data also goes through every decoder.
        let data = option.data;
        let _ = options::decode_message_type(data);
        let _ = options::decode_ipv4(option.code, data);
        let _ = options::decode_ipv4_list(option.code, data);
        let _ = options::decode_u16(option.code, data);
        let _ = options::decode_u32(option.code, data);
        let _ = options::decode_parameter_request_list(data);
        let _ = options::decode_client_arch(data);
        let _ = options::decode_client_guid(data);
        let _ = options::decode_ipxe_features(data);
        let _ = options::PxeVendorOptions::decode(data);
        let _ = options::NetworkInterfaceId::decode(data);
        let _ = options::ClientId::decode(data).map(|id| id.mac());
        if let Ok(info) = options::RelayAgentInfo::decode(data) {
            let _ = (info.circuit_id(), info.remote_id());
        }
        let _ = options::SubOptions::new(data).count();
        let _ = options::SubOptions::without_pad_and_end(data).count();
    }
    let _ = p.merged_options();
    let _ = p.option(OptionCode::BOOTFILE_NAME);
}

fuzz_target!(|data: &[u8]| {
    touch_everything(&Packet::new_unchecked(data));
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    touch_everything(&packet);

    let request = ClientRequest::from_packet(&packet);
    if let Ok(request) = &request {
        let _ = (request.arch(), request.is_ipxe(), request.max_reply_len());
        assert_eq!(request.addressing(), RequestAddressing::of(&packet));
        for kind in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
            let _ = reply_destination(&request.addressing(), kind, packet.yiaddr());
            let reply = PacketBuilder::reply_to(request, kind);
            if let Ok(bytes) = reply.to_vec() {
                assert_eq!(bytes.len(), reply.buffer_len());
                let reply = Packet::new_checked(&bytes[..]).expect("a built reply parses");
                assert_eq!(reply.xid(), packet.xid());
            }
        }
    }

    // Rebuild with no size limit: the options must come back the same.
    let mut rebuilt = PacketBuilder::from_packet(&packet);
    rebuilt.set_max_len(usize::MAX);
    let bytes = rebuilt.to_vec().expect("no limit, no error");
    assert_eq!(bytes.len(), rebuilt.buffer_len());
    let again = Packet::new_checked(&bytes[..]).expect("a rebuilt message parses");
    // The builder moves 53 first and 82 last; compare by code.
    let mut original: Vec<_> = packet
        .merged_options()
        .into_iter()
        .filter(|(code, _)| *code != OptionCode::OPTION_OVERLOAD)
        .collect();
    original.sort_by_key(|(code, _)| *code);
    let mut rebuilt_options = again.merged_options();
    rebuilt_options.sort_by_key(|(code, _)| *code);
    assert_eq!(rebuilt_options, original);
    assert_eq!(again.xid(), packet.xid());
    assert_eq!(again.chaddr(), packet.chaddr());
});
