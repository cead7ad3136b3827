//! Real messages from `testdata/dhcp/` (provenance in `testdata/README.md`): what QEMU's iPXE
//! ROMs, the iPXE binaries they chainload and OVMF's EDK2 sent, and what dnsmasq answered.

use std::net::Ipv4Addr;

use pxe_dhcp::wire::{
    options, ClientRequest, MessageType, Op, OptionCode, Packet, PacketBuilder, ReplyDestination,
};
use pxe_policy::{Arch, ClientGuid, IpxeBusId, IpxeFeature, IpxeVersion, MacAddr};

const IPXE_BIOS_ROM_DISCOVER: &[u8] =
    include_bytes!("../../testdata/dhcp/ipxe-bios-rom-discover.bin");
const IPXE_BIOS_ROM_REQUEST: &[u8] =
    include_bytes!("../../testdata/dhcp/ipxe-bios-rom-request.bin");
const IPXE_BIOS_CHAINED_DISCOVER: &[u8] =
    include_bytes!("../../testdata/dhcp/ipxe-bios-chained-discover.bin");
const IPXE_EFI_ROM_DISCOVER: &[u8] =
    include_bytes!("../../testdata/dhcp/ipxe-efi-rom-discover.bin");
const IPXE_EFI_SNPONLY_DISCOVER: &[u8] =
    include_bytes!("../../testdata/dhcp/ipxe-efi-snponly-discover.bin");
const EDK2_PXE_DISCOVER: &[u8] = include_bytes!("../../testdata/dhcp/edk2-pxe-discover.bin");
const EDK2_PXE_REQUEST: &[u8] = include_bytes!("../../testdata/dhcp/edk2-pxe-request.bin");
const EDK2_HTTPBOOT_DISCOVER: &[u8] =
    include_bytes!("../../testdata/dhcp/edk2-httpboot-discover.bin");
const DNSMASQ_EDK2_OFFER: &[u8] = include_bytes!("../../testdata/dhcp/dnsmasq-edk2-offer.bin");
const DNSMASQ_HTTPBOOT_OFFER: &[u8] =
    include_bytes!("../../testdata/dhcp/dnsmasq-httpboot-offer.bin");
const DNSMASQ_BIOS_CHAIN_ACK: &[u8] =
    include_bytes!("../../testdata/dhcp/dnsmasq-bios-chain-ack.bin");
const DNSMASQ_NOPXEDHCP_OFFER: &[u8] =
    include_bytes!("../../testdata/dhcp/dnsmasq-nopxedhcp-offer.bin");

const CLIENT_MESSAGES: &[&[u8]] = &[
    IPXE_BIOS_ROM_DISCOVER,
    IPXE_BIOS_ROM_REQUEST,
    IPXE_BIOS_CHAINED_DISCOVER,
    IPXE_EFI_ROM_DISCOVER,
    IPXE_EFI_SNPONLY_DISCOVER,
    EDK2_PXE_DISCOVER,
    EDK2_PXE_REQUEST,
    EDK2_HTTPBOOT_DISCOVER,
];

const SERVER_MESSAGES: &[&[u8]] = &[
    DNSMASQ_EDK2_OFFER,
    DNSMASQ_HTTPBOOT_OFFER,
    DNSMASQ_BIOS_CHAIN_ACK,
    DNSMASQ_NOPXEDHCP_OFFER,
];

fn parse(bytes: &[u8]) -> ClientRequest {
    ClientRequest::parse(bytes).expect("a real client message parses")
}

fn codes(list: &[u8]) -> Vec<OptionCode> {
    list.iter().copied().map(OptionCode).collect()
}

/// QEMU `-uuid 9e0c1ab0-0000-4000-8000-00000000000N`.
fn qemu_guid(n: u8) -> ClientGuid {
    format!("9e0c1ab0-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

#[test]
fn ipxe_bios_rom_discover() {
    let r = parse(IPXE_BIOS_ROM_DISCOVER);
    assert_eq!(r.op, Op::BootRequest);
    assert_eq!(r.message_type, Some(MessageType::Discover));
    assert_eq!(r.xid, 0x3031_6f01);
    assert_eq!(r.secs, 4);
    assert!(!r.broadcast());
    assert_eq!(r.chaddr, MacAddr([0x52, 0x54, 0x00, 0x9e, 0x01, 0x01]));
    assert_eq!(r.client_mac(), Some(r.chaddr));
    assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.giaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        r.option_codes,
        codes(&[53, 57, 93, 94, 60, 77, 55, 175, 61, 97])
    );
    assert!(r.malformed.is_empty());
    assert_eq!(r.max_message_size, Some(1472));
    assert_eq!(r.max_reply_len(), 1444);

    assert_eq!(r.client_arch, [Arch::X86_BIOS]);
    assert_eq!(r.arch(), Some(Arch::X86_BIOS));
    let ndi = r.client_ndi.unwrap();
    assert_eq!((ndi.interface_type, ndi.major, ndi.minor), (1, 2, 1));
    assert!(ndi.is_undi());

    let class = r.vendor_class.as_ref().unwrap();
    assert_eq!(class.as_bytes(), b"PXEClient:Arch:00000:UNDI:002001");
    assert_eq!(class.prefix(), b"PXEClient");
    assert!(r.is_pxe_client() && !r.is_http_client());
    assert_eq!(class.arch(), Some(Arch::X86_BIOS));
    assert_eq!(class.undi(), Some((2, 1)));

    let user = r.user_class.as_ref().unwrap();
    assert_eq!(user.as_bytes(), b"iPXE");
    assert_eq!(user.rfc3004_classes(), None, "iPXE sends a bare string");
    assert!(user.is_ipxe() && r.is_ipxe());

    let guid = r.client_guid.unwrap();
    assert_eq!(guid, qemu_guid(1));
    assert_eq!(guid.to_string(), "9e0c1ab0-0000-4000-8000-000000000001");
    assert_eq!(
        guid.to_wire(),
        [0xb0, 0x1a, 0x0c, 0x9e, 0, 0, 0, 0x40, 0x80, 0, 0, 0, 0, 0, 0, 1]
    );

    let id = r.client_id.as_ref().unwrap();
    assert_eq!(id.id_type(), 1);
    assert_eq!(id.mac(), Some(r.chaddr));

    let features = r.ipxe_features.unwrap();
    assert_eq!(
        features.bus_id,
        Some(IpxeBusId {
            bus_type: IpxeBusId::PCI,
            vendor: 0x1af4,
            device: 0x1000
        })
    );
    assert_eq!(
        features.version,
        Some(IpxeVersion {
            major: 1,
            minor: 0,
            patch: 0
        })
    );
    let bios_features = [
        IpxeFeature::PXE_EXT,
        IpxeFeature::ISCSI,
        IpxeFeature::AOE,
        IpxeFeature::HTTP,
        IpxeFeature::TFTP,
        IpxeFeature::DNS,
        IpxeFeature::BZIMAGE,
        IpxeFeature::MULTIBOOT,
        IpxeFeature::PXE,
        IpxeFeature::ELF,
        IpxeFeature::MENU,
        IpxeFeature::NFS,
    ];
    assert_eq!(features.iter().collect::<Vec<_>>(), bios_features);
    assert!(
        !features.has_https(),
        "no Debian iPXE build advertises HTTPS"
    );
    assert!(!features.is_efi());

    assert_eq!(
        r.parameter_request_list,
        codes(&[
            1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134,
            135, 175, 203
        ])
    );
    assert!(r.requests(OptionCode::IPXE_ENCAPSULATED));
    assert_eq!((r.requested_ip, r.server_id), (None, None));
    assert_eq!(r.relay_agent_info, None);

    // The view agrees with the one-pass summary.
    let p = Packet::new_checked(IPXE_BIOS_ROM_DISCOVER).unwrap();
    assert_eq!(p.client_arch(), Some(r.client_arch.clone()));
    assert_eq!(p.client_guid(), r.client_guid);
    assert_eq!(p.ipxe_features(), r.ipxe_features);
    assert_eq!(p.vendor_class(), r.vendor_class);
    assert_eq!(p.user_class(), r.user_class);
    assert_eq!(p.client_ndi(), r.client_ndi);
    assert_eq!(p.client_identifier(), r.client_id);
    assert_eq!(p.max_message_size(), Some(1472));
    assert_eq!(p.overload(), None);
    assert_eq!((p.server_name(), p.boot_file()), (None, None));
}

#[test]
fn ipxe_bios_rom_request_names_server_and_address() {
    let r = parse(IPXE_BIOS_ROM_REQUEST);
    assert_eq!(r.message_type, Some(MessageType::Request));
    assert_eq!(r.server_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 0, 2, 157)));
    assert_eq!(r.xid, parse(IPXE_BIOS_ROM_DISCOVER).xid);
}

#[test]
fn chainloaded_undionly_sets_broadcast_and_echoes_user_class() {
    let r = parse(IPXE_BIOS_CHAINED_DISCOVER);
    assert!(r.broadcast(), "undionly.kpxe sets the BROADCAST flag");
    assert_eq!(r.flags.0, 0x8000);
    assert_eq!(r.user_class.as_ref().unwrap().as_bytes(), b"iPXE-chained");
    assert!(!r.user_class.as_ref().unwrap().is_ipxe());
    assert!(r.is_ipxe(), "option 175 still says iPXE");
    assert_eq!(
        r.ipxe_features.unwrap().bus_id,
        Some(IpxeBusId {
            bus_type: 1,
            vendor: 0x8086,
            device: 0x100e
        })
    );
    assert_eq!(r.chaddr.to_string(), "52:54:00:9e:02:02");
    assert_eq!(r.client_guid, Some(qemu_guid(2)));
}

#[test]
fn ipxe_efi_builds() {
    for bytes in [IPXE_EFI_ROM_DISCOVER, IPXE_EFI_SNPONLY_DISCOVER] {
        let r = parse(bytes);
        assert!(!r.broadcast());
        assert_eq!(r.client_arch, [Arch::X64_UEFI]);
        let ndi = r.client_ndi.unwrap();
        assert_eq!((ndi.major, ndi.minor), (3, 10));
        let class = r.vendor_class.as_ref().unwrap();
        assert_eq!(class.as_bytes(), b"PXEClient:Arch:00007:UNDI:003010");
        assert_eq!(class.undi(), Some((3, 10)));
        let features = r.ipxe_features.unwrap();
        assert!(features.is_efi() && features.has_http() && !features.has_https());
        for absent in [
            IpxeFeature::ELF,
            IpxeFeature::MULTIBOOT,
            IpxeFeature::PXE,
            IpxeFeature::PXE_EXT,
            IpxeFeature::BZIMAGE,
        ] {
            assert!(!features.contains(absent), "{absent:?} in an EFI build");
        }
        assert_eq!(features.bus_id.unwrap().vendor, 0x1af4);
        assert!(r.client_id.is_some());
    }
    assert_eq!(parse(IPXE_EFI_ROM_DISCOVER).client_guid, Some(qemu_guid(4)));
    assert_eq!(
        parse(IPXE_EFI_SNPONLY_DISCOVER).client_guid,
        Some(qemu_guid(3))
    );
}

#[test]
fn edk2_pxe_discover() {
    let r = parse(EDK2_PXE_DISCOVER);
    assert_eq!(r.message_type, Some(MessageType::Discover));
    assert!(r.broadcast());
    assert_eq!(r.option_codes, codes(&[53, 57, 55, 97, 94, 93, 60]));
    assert_eq!(r.client_id, None, "EDK2 sends no client identifier");
    assert_eq!(r.user_class, None);
    assert_eq!(r.ipxe_features, None);
    assert!(!r.is_ipxe());
    assert_eq!(r.max_message_size, Some(1472));
    assert_eq!(r.client_arch, [Arch::X64_UEFI]);
    let ndi = r.client_ndi.unwrap();
    assert_eq!((ndi.interface_type, ndi.major, ndi.minor), (1, 3, 0));
    let class = r.vendor_class.as_ref().unwrap();
    assert_eq!(class.as_bytes(), b"PXEClient:Arch:00007:UNDI:003000");
    assert_eq!(
        (class.arch(), class.undi()),
        (Some(Arch::X64_UEFI), Some((3, 0)))
    );
    assert_eq!(r.client_guid, Some(qemu_guid(3)));
    for code in 128..=135 {
        assert!(r.requests(OptionCode(code)));
    }
    assert!(r.requests(OptionCode::TFTP_SERVER_NAME));
    // The same machine's snponly.efi stage agrees on chaddr, not on client-id.
    assert_eq!(r.chaddr, parse(IPXE_EFI_SNPONLY_DISCOVER).chaddr);
}

#[test]
fn edk2_pxe_request_raises_max_message_size() {
    let r = parse(EDK2_PXE_REQUEST);
    assert_eq!(r.message_type, Some(MessageType::Request));
    assert_eq!(r.max_message_size, Some(65280));
    assert_eq!(r.max_reply_len(), 65280 - 28);
    assert_eq!(r.server_id, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 0, 2, 156)));
    assert_eq!(r.client_id, None);
}

#[test]
fn edk2_http_boot_discover() {
    let r = parse(EDK2_HTTPBOOT_DISCOVER);
    assert!(r.broadcast());
    assert!(r.is_http_client() && !r.is_pxe_client());
    assert_eq!(r.client_arch, [Arch::X64_UEFI_HTTP]);
    assert!(r.arch().unwrap().is_http_boot());
    assert_eq!(
        r.vendor_class.as_ref().unwrap().as_bytes(),
        b"HTTPClient:Arch:00016:UNDI:003000"
    );
    assert!(r.requests(OptionCode(235)));
    assert!(!r.requests(OptionCode::TFTP_SERVER_NAME));
    assert!(!(128..=135).any(|code| r.requests(OptionCode(code))));
    assert_eq!(r.client_id, None);
    assert_eq!(r.client_guid, Some(qemu_guid(5)));
}

#[test]
fn dnsmasq_replies() {
    let offer = Packet::new_checked(DNSMASQ_EDK2_OFFER).unwrap();
    assert_eq!(offer.op(), Op::BootReply);
    assert_eq!(offer.message_type(), Some(MessageType::Offer));
    assert!(offer.broadcast(), "the client's flags are echoed");
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(192, 0, 2, 156));
    assert_eq!(offer.siaddr(), Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(offer.server_identifier(), Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(
        offer.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&b"snponly.efi\0"[..])
    );
    assert_eq!(
        offer.option(OptionCode::TFTP_SERVER_NAME).as_deref(),
        Some(&b"pxelab\0"[..])
    );
    assert_eq!(
        ClientRequest::parse(DNSMASQ_EDK2_OFFER),
        Err(pxe_dhcp::wire::DecodeError::NotARequest { op: 2 })
    );

    let http = Packet::new_checked(DNSMASQ_HTTPBOOT_OFFER).unwrap();
    assert!(http.vendor_class().unwrap().is_http_client());
    assert_eq!(
        http.option(OptionCode::BOOTFILE_NAME).as_deref(),
        Some(&b"http://192.0.2.1/snponly.efi\0"[..])
    );

    let ack = Packet::new_checked(DNSMASQ_BIOS_CHAIN_ACK).unwrap();
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.user_class().unwrap().as_bytes(), b"iPXE-chained");

    let nopxedhcp = Packet::new_checked(DNSMASQ_NOPXEDHCP_OFFER).unwrap();
    assert_eq!(
        nopxedhcp.option(OptionCode::IPXE_ENCAPSULATED).as_deref(),
        Some(&[0xb0, 1, 1, 0xff][..])
    );
    // The encoder writes exactly what dnsmasq wrote for no-pxedhcp = 1.
    assert_eq!(
        options::encode_encapsulated([(options::IPXE_NO_PXEDHCP, &[1u8][..])]),
        [0xb0, 1, 1, 0xff]
    );
}

/// The builder reproduces dnsmasq's replies byte for byte from their parts.
#[test]
fn builder_reproduces_dnsmasq_offer() {
    for reply in SERVER_MESSAGES {
        let packet = Packet::new_checked(*reply).unwrap();
        let rebuilt = PacketBuilder::from_packet(&packet).to_vec().unwrap();
        assert_eq!(&rebuilt[..], *reply);
    }
}

/// A reply built for each real request with `reply_to` carries what RFC 2131 table 3 fixes
/// and goes where §4.1 says.
#[test]
fn replies_to_real_requests() {
    let server = Ipv4Addr::new(192, 0, 2, 1);
    for bytes in CLIENT_MESSAGES {
        let request = parse(bytes);
        let mut offer = PacketBuilder::reply_to(&request, MessageType::Offer);
        offer
            .set_server_identifier(server)
            .set_siaddr(server)
            .set_bootfile_name(b"snponly.efi");
        if let Some(guid) = request.client_guid {
            offer.set_client_guid(guid);
        }
        if request.is_http_client() {
            offer.set_vendor_class(b"HTTPClient");
        } else {
            offer.set_vendor_class(b"PXEClient");
        }
        let wire = offer.to_vec().unwrap();
        assert!(wire.len() <= request.max_reply_len());
        let reply = Packet::new_checked(&wire[..]).unwrap();
        assert_eq!(reply.op(), Op::BootReply);
        assert_eq!(reply.xid(), request.xid);
        assert_eq!(reply.flags(), request.flags);
        assert_eq!(reply.chaddr_field(), &request.chaddr_field);
        assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.client_guid(), request.client_guid);
        let to = pxe_dhcp::wire::reply_destination(
            &request.addressing(),
            MessageType::Offer,
            reply.yiaddr(),
        );
        // A proxy offer (yiaddr 0) can only be broadcast.
        assert_eq!(to, ReplyDestination::Broadcast);
    }
}

#[test]
fn every_message_survives_every_accessor() {
    for bytes in CLIENT_MESSAGES.iter().chain(SERVER_MESSAGES) {
        let packet = Packet::new_checked(*bytes).unwrap();
        assert_eq!(packet.options().count(), packet.merged_options().len());
        let rebuilt = PacketBuilder::from_packet(&packet);
        let again = rebuilt.to_vec().unwrap();
        let reparsed = Packet::new_checked(&again[..]).unwrap();
        assert_eq!(reparsed.merged_options(), packet.merged_options());
    }
}
