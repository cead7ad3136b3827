//! The serving decisions on real firmware captures, without sockets: proxy offers as firmware
//! expects them, the BINL path on 4011, authoritative DORA with the boot fields, the
//! chainload loop broken, relays, and the quirk knobs.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use pxe_dhcp::lease::{LeaseChange, Reservation, Subnet};
use pxe_dhcp::proto::{
    Arrival, Destination, Engine, Mode, NoReply, ProtoConfig, ProxyStrategy, Quirks, Reply, Service,
};
use pxe_dhcp::wire::options::IPXE_NO_PXEDHCP;
use pxe_dhcp::wire::{
    MessageType, OptionCode, Packet, PacketBuilder, PxeVendorOptions, ReplyDestination,
};
use pxe_policy::{BootDecision, ClientKind, MacAddr};
use server_lab::{arrival, capture, now, SERVER_IP as SERVER};

fn subnet() -> Subnet {
    server_lab::lab_subnet().router(SERVER)
}

fn authoritative_config() -> ProtoConfig {
    let mut config = ProtoConfig::default();
    config.mode = Mode::Authoritative {
        subnets: vec![subnet()],
        reservations: vec![],
    };
    config
}

fn quirks(set: impl FnOnce(&mut Quirks)) -> Quirks {
    let mut quirks = Quirks::default();
    set(&mut quirks);
    quirks
}

fn boot_item(item: (u16, u16)) -> PxeVendorOptions {
    let mut options = PxeVendorOptions::default();
    options.boot_item = Some(item);
    options
}

/// What one request produced.
struct Served {
    reply: Result<Reply, NoReply>,
    lease_changes: Vec<LeaseChange>,
}

/// Runs one request through the engine with the default policy (chainload by arch) and
/// returns the outcome and, when there is a reply, its bytes.
fn serve(engine: &mut Engine, bytes: &[u8], arrival: &Arrival) -> (Served, Option<Vec<u8>>) {
    let accepted = match engine.accept(bytes, arrival, now()) {
        Ok(accepted) => accepted,
        Err(silence) => {
            let served = Served {
                reply: Err(silence),
                lease_changes: Vec::new(),
            };
            return (served, None);
        }
    };
    let decision = accepted
        .facts()
        .map(|facts| BootDecision::chainload_for(facts.arch));
    let outcome = engine.respond(&accepted, arrival, decision, now());
    let bytes = outcome
        .reply
        .as_ref()
        .ok()
        .map(|reply| reply.packet.to_vec().expect("emit"));
    let served = Served {
        reply: outcome.reply,
        lease_changes: outcome.lease_changes,
    };
    (served, bytes)
}

fn option(bytes: &[u8], code: OptionCode) -> Option<Vec<u8>> {
    Packet::new_checked(bytes)
        .unwrap()
        .option(code)
        .map(|data| data.into_owned())
}

#[test]
fn proxy_offers_as_firmware_expects_them() {
    let mut engine = Engine::new(ProtoConfig::default());
    for (name, file, class, has_43) in [
        // iPXE in ROM: the script URL, told to use the boot file.
        (
            "ipxe-bios-rom-discover.bin",
            "http://192.0.2.1/boot.ipxe",
            "PXEClient",
            true,
        ),
        (
            "ipxe-efi-rom-discover.bin",
            "http://192.0.2.1/boot.ipxe",
            "PXEClient",
            true,
        ),
        // EDK2 PXE: snponly.efi, and by default the BINL path (no 43).
        ("edk2-pxe-discover.bin", "snponly.efi", "PXEClient", false),
        // UEFI HTTP Boot: a URL, HTTPClient echoed.
        (
            "edk2-httpboot-discover.bin",
            "http://192.0.2.1/ipxe/snponly.efi",
            "HTTPClient",
            false,
        ),
    ] {
        let discover = capture(name);
        let sent = Packet::new_checked(&discover[..]).unwrap();
        let (outcome, reply) = serve(&mut engine, &discover, &arrival(Service::Dhcp));
        let reply = reply.unwrap_or_else(|| panic!("{name}: {:?}", outcome.reply));
        let offer = Packet::new_checked(&reply[..]).unwrap();
        assert_eq!(offer.message_type(), Some(MessageType::Offer), "{name}");
        assert_eq!(offer.xid(), sent.xid(), "{name}");
        assert_eq!(
            offer.yiaddr(),
            Ipv4Addr::UNSPECIFIED,
            "{name}: proxy yiaddr 0"
        );
        assert_eq!(offer.siaddr(), SERVER, "{name}");
        assert_eq!(offer.server_identifier(), Some(SERVER), "{name}");
        assert_eq!(
            offer.boot_file(),
            Some(file.as_bytes()),
            "{name}: file field"
        );
        assert_eq!(
            option(&reply, OptionCode::BOOTFILE_NAME).as_deref(),
            Some(file.as_bytes()),
            "{name}: option 67"
        );
        assert_eq!(
            option(&reply, OptionCode::TFTP_SERVER_NAME).as_deref(),
            Some(&b"192.0.2.1"[..]),
            "{name}: option 66"
        );
        assert_eq!(
            offer.vendor_class().map(|v| v.as_bytes().to_vec()),
            Some(class.as_bytes().to_vec()),
            "{name}: 60 echoed"
        );
        assert_eq!(
            option(&reply, OptionCode::CLIENT_MACHINE_ID),
            option(&discover, OptionCode::CLIENT_MACHINE_ID),
            "{name}: 97 echoed"
        );
        let pxe = offer.pxe_vendor_options();
        assert_eq!(pxe.is_some(), has_43, "{name}: option 43");
        if let Some(pxe) = pxe {
            assert_eq!(
                pxe.discovery_control,
                Some(PxeVendorOptions::USE_BOOT_FILE),
                "{name}"
            );
        }
        assert!(outcome.lease_changes.is_empty());
        assert_eq!(
            outcome.reply.unwrap().destination,
            Destination::Dhcp(ReplyDestination::Broadcast),
            "{name}: a proxy offer has no yiaddr to unicast to"
        );
    }
}

#[test]
fn proxy_stays_silent_for_other_clients_and_requests() {
    let mut engine = Engine::new(ProtoConfig::default());
    let plain = PacketBuilder::request(MessageType::Discover, 7, MacAddr([2, 0, 0, 0, 0, 7]))
        .to_vec()
        .unwrap();
    let (outcome, reply) = serve(&mut engine, &plain, &arrival(Service::Dhcp));
    assert!(reply.is_none());
    assert_eq!(outcome.reply.unwrap_err(), NoReply::NotNetworkBoot);
    // A REQUEST on 67 belongs to the site server unless the client's quirk says otherwise.
    let request = capture("ipxe-bios-rom-request.bin");
    let (outcome, _) = serve(&mut engine, &request, &arrival(Service::Dhcp));
    assert!(matches!(
        outcome.reply.unwrap_err(),
        NoReply::NotServed { .. }
    ));
    let mac = Packet::new_checked(&request[..]).unwrap().chaddr_mac();
    let mut config = ProtoConfig::default();
    config
        .quirks
        .insert(mac, quirks(|q| q.answer_request = true));
    let mut engine = Engine::new(config);
    let (_, reply) = serve(&mut engine, &request, &arrival(Service::Dhcp));
    let ack = reply.expect("an ACK with the boot fields");
    let ack = Packet::new_checked(&ack[..]).unwrap();
    assert_eq!(ack.message_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.boot_file(), Some(&b"http://192.0.2.1/boot.ipxe"[..]));
}

#[test]
fn binl_path_on_4011_and_use_boot_file_per_client() {
    let discover = capture("edk2-pxe-discover.bin");
    let mac = Packet::new_checked(&discover[..]).unwrap().chaddr_mac();
    // Per-client strategy: this UEFI client is told to use the boot file.
    let mut config = ProtoConfig::default();
    config.quirks.insert(
        mac,
        quirks(|q| q.proxy_strategy = Some(ProxyStrategy::UseBootFile)),
    );
    let mut engine = Engine::new(config);
    let (_, reply) = serve(&mut engine, &discover, &arrival(Service::Dhcp));
    let offer = reply.unwrap();
    let pxe = Packet::new_checked(&offer[..])
        .unwrap()
        .pxe_vendor_options();
    assert_eq!(pxe.unwrap().discovery_control, Some(8));

    // The BINL request on 4011: ACK to the sender's address and port, boot item echoed.
    let mut engine = Engine::new(ProtoConfig::default());
    let request = Packet::new_checked(capture("edk2-pxe-request.bin")).unwrap();
    let mut binl = PacketBuilder::from_packet(&request);
    binl.set_ciaddr(Ipv4Addr::new(192, 0, 2, 156));
    binl.set_pxe_vendor_options(&boot_item((0x8000, 0)));
    let binl = binl.to_vec().unwrap();
    let from = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 156), 4011);
    let at_4011 = Arrival::new(Service::BootServer, from, 2, SERVER);
    let (outcome, reply) = serve(&mut engine, &binl, &at_4011);
    let ack = reply.unwrap();
    let packet = Packet::new_checked(&ack[..]).unwrap();
    assert_eq!(packet.message_type(), Some(MessageType::Ack));
    assert_eq!(packet.ciaddr(), Ipv4Addr::new(192, 0, 2, 156));
    assert_eq!(packet.boot_file(), Some(&b"snponly.efi"[..]));
    assert_eq!(
        packet.pxe_vendor_options().unwrap().boot_item,
        Some((0x8000, 0))
    );
    assert_eq!(
        outcome.reply.unwrap().destination,
        Destination::Sender(from)
    );
    // iPXE's ProxyDHCPREQUEST on 4011 (no boot item): the script URL, no option 43.
    let ipxe = capture("ipxe-bios-rom-request.bin");
    let (_, reply) = serve(&mut engine, &ipxe, &at_4011);
    let ack = reply.expect("an ACK for iPXE");
    let packet = Packet::new_checked(&ack[..]).unwrap();
    assert_eq!(packet.boot_file(), Some(&b"http://192.0.2.1/boot.ipxe"[..]));
    assert_eq!(packet.pxe_vendor_options(), None);
    // A client that is not network booting gets nothing on 4011.
    let plain = PacketBuilder::request(MessageType::Request, 9, MacAddr([2, 0, 0, 0, 0, 9]))
        .to_vec()
        .unwrap();
    assert!(serve(&mut engine, &plain, &at_4011).1.is_none());
}

#[test]
fn chainload_loop_is_broken_by_memory_and_by_marker() {
    let mut engine = Engine::new(authoritative_config());
    // EDK2 PXE is handed snponly.efi, with the marker user class planted.
    let (_, reply) = serve(
        &mut engine,
        &capture("edk2-pxe-discover.bin"),
        &arrival(Service::Dhcp),
    );
    let reply = reply.unwrap();
    assert_eq!(
        Packet::new_checked(&reply[..]).unwrap().boot_file(),
        Some(&b"snponly.efi"[..])
    );
    assert_eq!(
        option(&reply, OptionCode::USER_CLASS).as_deref(),
        Some(&b"iPXE-chained"[..])
    );
    // The snponly.efi it loaded (same MAC) is recognised and gets the script, with
    // no-pxedhcp so it does not wait for proxy offers.
    let chained = capture("ipxe-efi-snponly-discover.bin");
    let accepted = engine
        .accept(&chained, &arrival(Service::Dhcp), now())
        .unwrap();
    assert_eq!(accepted.facts().unwrap().kind, ClientKind::ChainloadedIpxe);
    let (_, reply) = serve(&mut engine, &chained, &arrival(Service::Dhcp));
    let reply = reply.unwrap();
    assert_eq!(
        Packet::new_checked(&reply[..]).unwrap().boot_file(),
        Some(&b"http://192.0.2.1/boot.ipxe"[..])
    );
    let ipxe = option(&reply, OptionCode::IPXE_ENCAPSULATED).unwrap();
    assert_eq!(&ipxe[..3], &[IPXE_NO_PXEDHCP, 1, 1]);

    // undionly.kpxe that sends the marker back, on a fresh engine (no memory).
    let engine = Engine::new(ProtoConfig::default());
    let marked = capture("ipxe-bios-chained-discover.bin");
    let accepted = engine
        .accept(&marked, &arrival(Service::Dhcp), now())
        .unwrap();
    assert_eq!(accepted.facts().unwrap().kind, ClientKind::ChainloadedIpxe);
    // …and the ROM iPXE is not mistaken for it.
    let rom = capture("ipxe-bios-rom-discover.bin");
    let accepted = engine.accept(&rom, &arrival(Service::Dhcp), now()).unwrap();
    assert_eq!(accepted.facts().unwrap().kind, ClientKind::FirmwareIpxe);
}

#[test]
fn rom_ipxe_gets_the_script_or_our_binary_when_asked() {
    let rom = capture("ipxe-bios-rom-discover.bin");
    let boot_file = |reply: &[u8]| {
        Packet::new_checked(reply)
            .unwrap()
            .boot_file()
            .map(<[u8]>::to_vec)
    };
    // By default the ROM iPXE runs the script at once.
    let mut engine = Engine::new(authoritative_config());
    let reply = serve(&mut engine, &rom, &arrival(Service::Dhcp)).1.unwrap();
    assert_eq!(
        boot_file(&reply).as_deref(),
        Some(&b"http://192.0.2.1/boot.ipxe"[..])
    );
    assert_eq!(option(&reply, OptionCode::USER_CLASS), None);

    // Asked to replace ROM builds, the server hands it undionly.kpxe with the marker…
    let mut config = authoritative_config();
    config.boot.chainload_rom_ipxe = true;
    let mut engine = Engine::new(config);
    let reply = serve(&mut engine, &rom, &arrival(Service::Dhcp)).1.unwrap();
    assert_eq!(boot_file(&reply).as_deref(), Some(&b"undionly.kpxe"[..]));
    assert_eq!(
        option(&reply, OptionCode::USER_CLASS).as_deref(),
        Some(&b"iPXE-chained"[..])
    );
    // The ROM's REQUEST in the same exchange is still the ROM's: it too gets the binary
    // (a bug once gave it the script, because its MAC had just been handed the binary).
    let rom_request = capture("ipxe-bios-rom-request.bin");
    let reply = serve(&mut engine, &rom_request, &arrival(Service::Dhcp))
        .1
        .unwrap();
    assert_eq!(boot_file(&reply).as_deref(), Some(&b"undionly.kpxe"[..]));
    // …and the undionly.kpxe that sends the marker back gets the script: no loop.
    let chained = capture("ipxe-bios-chained-discover.bin");
    let reply = serve(&mut engine, &chained, &arrival(Service::Dhcp))
        .1
        .unwrap();
    assert_eq!(
        boot_file(&reply).as_deref(),
        Some(&b"http://192.0.2.1/boot.ipxe"[..])
    );
}

#[test]
fn authoritative_dora_keys_one_machine_on_chaddr() {
    let mut engine = Engine::new(authoritative_config());
    // EDK2 (no client-id) takes an address…
    let (outcome, reply) = serve(
        &mut engine,
        &capture("edk2-pxe-discover.bin"),
        &arrival(Service::Dhcp),
    );
    let offer = reply.unwrap();
    let offered = Packet::new_checked(&offer[..]).unwrap().yiaddr();
    assert!(subnet().contains(offered));
    assert!(outcome.lease_changes.is_empty(), "offers are not persisted");
    assert_eq!(
        option(&offer, OptionCode::IP_ADDRESS_LEASE_TIME).as_deref(),
        Some(&3600u32.to_be_bytes()[..])
    );
    assert_eq!(
        option(&offer, OptionCode::SUBNET_MASK).as_deref(),
        Some(&[255, 255, 255, 0][..])
    );
    let mut request = PacketBuilder::from_packet(&Packet::new_checked(&offer[..]).unwrap());
    request
        .set_op(pxe_dhcp::wire::Op::BootRequest)
        .set_message_type(MessageType::Request)
        .set_yiaddr(Ipv4Addr::UNSPECIFIED)
        .set_option(OptionCode::REQUESTED_IP_ADDRESS, &offered.octets())
        .set_option(
            OptionCode::VENDOR_CLASS_IDENTIFIER,
            b"PXEClient:Arch:00007:UNDI:003000",
        );
    let (outcome, reply) = serve(
        &mut engine,
        &request.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    let ack = reply.unwrap();
    assert_eq!(
        Packet::new_checked(&ack[..]).unwrap().message_type(),
        Some(MessageType::Ack)
    );
    assert_eq!(outcome.lease_changes.len(), 1);
    // …and the iPXE it chainloads (same MAC, now with a client-id) gets the same address.
    let (_, reply) = serve(
        &mut engine,
        &capture("ipxe-efi-snponly-discover.bin"),
        &arrival(Service::Dhcp),
    );
    let offer = reply.unwrap();
    assert_eq!(Packet::new_checked(&offer[..]).unwrap().yiaddr(), offered);

    // A REQUEST for an address held by another client is refused with a broadcast NAK.
    let other = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let mut steal = PacketBuilder::request(MessageType::Request, 42, other);
    steal.set_option(OptionCode::REQUESTED_IP_ADDRESS, &offered.octets());
    let (outcome, reply) = serve(
        &mut engine,
        &steal.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    let nak = reply.unwrap();
    assert_eq!(
        Packet::new_checked(&nak[..]).unwrap().message_type(),
        Some(MessageType::Nak)
    );
    assert_eq!(
        outcome.reply.unwrap().destination,
        Destination::Dhcp(ReplyDestination::Broadcast)
    );
    // A REQUEST naming another server is that server's business.
    let mut elsewhere = PacketBuilder::request(MessageType::Request, 43, other);
    elsewhere
        .set_server_identifier(Ipv4Addr::new(192, 0, 2, 2))
        .set_option(OptionCode::REQUESTED_IP_ADDRESS, &[192, 0, 2, 150]);
    let (outcome, _) = serve(
        &mut engine,
        &elsewhere.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    assert!(matches!(
        outcome.reply.unwrap_err(),
        NoReply::OtherServer { .. }
    ));
}

#[test]
fn authoritative_plain_clients_get_addresses_without_boot_fields() {
    let mac = MacAddr([2, 0, 0, 0, 0, 0x10]);
    let reserved = Ipv4Addr::new(192, 0, 2, 10);
    let mut config = authoritative_config();
    config.mode = Mode::Authoritative {
        subnets: vec![subnet()],
        reservations: vec![Reservation::by_mac(mac, reserved)],
    };
    let mut engine = Engine::new(config);
    let discover = PacketBuilder::request(MessageType::Discover, 1, mac)
        .to_vec()
        .unwrap();
    let (outcome, reply) = serve(&mut engine, &discover, &arrival(Service::Dhcp));
    let offer = reply.unwrap();
    let packet = Packet::new_checked(&offer[..]).unwrap();
    assert_eq!(packet.yiaddr(), reserved, "the reservation wins");
    assert_eq!(packet.boot_file(), None);
    assert_eq!(option(&offer, OptionCode::BOOTFILE_NAME), None);
    assert_eq!(
        outcome.reply.unwrap().destination,
        Destination::Dhcp(ReplyDestination::Hardware { ip: reserved, mac }),
        "no broadcast flag, no ciaddr: unicast to yiaddr at chaddr"
    );
    // DHCPINFORM: parameters, no address, no lease time, sent to ciaddr.
    let mut inform = PacketBuilder::request(MessageType::Inform, 2, mac);
    inform.set_ciaddr(Ipv4Addr::new(192, 0, 2, 77));
    let (outcome, reply) = serve(
        &mut engine,
        &inform.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    let ack = reply.unwrap();
    assert_eq!(
        Packet::new_checked(&ack[..]).unwrap().yiaddr(),
        Ipv4Addr::UNSPECIFIED
    );
    assert_eq!(option(&ack, OptionCode::IP_ADDRESS_LEASE_TIME), None);
    assert_eq!(
        outcome.reply.unwrap().destination,
        Destination::Dhcp(ReplyDestination::Client(SocketAddrV4::new(
            Ipv4Addr::new(192, 0, 2, 77),
            68
        )))
    );
}

#[test]
fn relayed_requests_use_giaddr_subnet_and_echo_option_82() {
    let relay_subnet = Subnet::new(
        Ipv4Addr::new(198, 18, 0, 0),
        16,
        Ipv4Addr::new(198, 18, 1, 0),
        Ipv4Addr::new(198, 18, 1, 255),
    );
    let mut config = authoritative_config();
    config.mode = Mode::Authoritative {
        subnets: vec![subnet(), relay_subnet],
        reservations: vec![],
    };
    let mut engine = Engine::new(config);
    let giaddr = Ipv4Addr::new(198, 18, 0, 1);
    let agent_info = [1u8, 3, b'p', b'o', b'1', 2, 2, b'r', b'x'];
    let mut discover = PacketBuilder::from_packet(
        &Packet::new_checked(capture("ipxe-bios-rom-discover.bin")).unwrap(),
    );
    discover
        .set_giaddr(giaddr)
        .set_hops(1)
        .set_option(OptionCode::RELAY_AGENT_INFORMATION, &agent_info);
    let from_relay = Arrival::new(Service::Dhcp, SocketAddrV4::new(giaddr, 67), 2, SERVER);
    let bytes = discover.to_vec().unwrap();
    let accepted = engine.accept(&bytes, &from_relay, now()).unwrap();
    let relay = accepted.facts().unwrap().relay.clone().unwrap();
    assert_eq!(relay.giaddr, giaddr);
    assert_eq!(relay.circuit_id.as_deref(), Some(&b"po1"[..]));
    let (outcome, reply) = serve(&mut engine, &bytes, &from_relay);
    let offer = reply.unwrap();
    let packet = Packet::new_checked(&offer[..]).unwrap();
    assert!(Ipv4Addr::new(198, 18, 1, 0) <= packet.yiaddr());
    assert_eq!(packet.giaddr(), giaddr);
    assert_eq!(
        option(&offer, OptionCode::RELAY_AGENT_INFORMATION).as_deref(),
        Some(&agent_info[..])
    );
    assert_eq!(
        outcome.reply.unwrap().destination,
        Destination::Dhcp(ReplyDestination::Relay(SocketAddrV4::new(giaddr, 67)))
    );
    // A relay from a subnet we do not serve gets nothing.
    discover.set_giaddr(Ipv4Addr::new(198, 51, 100, 1));
    let (outcome, _) = serve(&mut engine, &discover.to_vec().unwrap(), &from_relay);
    assert!(matches!(
        outcome.reply.unwrap_err(),
        NoReply::NoSubnet { .. }
    ));
}

#[test]
fn quirk_knobs() {
    let discover = capture("edk2-httpboot-discover.bin");
    let mac = Packet::new_checked(&discover[..]).unwrap().chaddr_mac();
    let mut config = authoritative_config();
    config.quirks.insert(
        mac,
        quirks(|q| {
            q.force_broadcast = true;
            q.reply_delay = Some(Duration::from_millis(300));
            q.no_overload = true;
        }),
    );
    let mut engine = Engine::new(config);
    let mut unicast = PacketBuilder::from_packet(&Packet::new_checked(&discover[..]).unwrap());
    unicast.set_broadcast(false);
    let (outcome, reply) = serve(
        &mut engine,
        &unicast.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    let reply_bytes = reply.unwrap();
    let reply = outcome.reply.unwrap();
    assert_eq!(
        reply.destination,
        Destination::Dhcp(ReplyDestination::Broadcast)
    );
    assert_eq!(reply.delay, Some(Duration::from_millis(300)));
    assert!(!reply.packet.overload_allowed());
    assert_eq!(
        Packet::new_checked(&reply_bytes[..]).unwrap().overload(),
        None
    );
    assert_eq!(
        option(&reply_bytes, OptionCode::VENDOR_CLASS_IDENTIFIER).as_deref(),
        Some(&b"HTTPClient"[..])
    );
}

#[test]
fn policy_ignore_means_silence_in_proxy_mode() {
    let mut engine = Engine::new(ProtoConfig::default());
    let discover = capture("edk2-pxe-discover.bin");
    let accepted = engine
        .accept(&discover, &arrival(Service::Dhcp), now())
        .unwrap();
    let outcome = engine.respond(
        &accepted,
        &arrival(Service::Dhcp),
        Some(BootDecision::Ignore),
        now(),
    );
    assert_eq!(outcome.reply.unwrap_err(), NoReply::PolicyIgnores);
    // A custom file bypasses iPXE.
    let outcome = engine.respond(
        &accepted,
        &arrival(Service::Dhcp),
        Some(BootDecision::File("grubx64.efi".into())),
        now(),
    );
    let bytes = outcome.reply.unwrap().packet.to_vec().unwrap();
    assert_eq!(
        Packet::new_checked(&bytes[..]).unwrap().boot_file(),
        Some(&b"grubx64.efi"[..])
    );
}

#[test]
fn decline_and_release_change_the_table_without_a_reply() {
    let mut engine = Engine::new(authoritative_config());
    let mac = MacAddr([2, 0, 0, 0, 0, 0x44]);
    let discover = PacketBuilder::request(MessageType::Discover, 1, mac)
        .to_vec()
        .unwrap();
    let offer = serve(&mut engine, &discover, &arrival(Service::Dhcp))
        .1
        .unwrap();
    let ip = Packet::new_checked(&offer[..]).unwrap().yiaddr();
    let mut request = PacketBuilder::request(MessageType::Request, 2, mac);
    request.set_option(OptionCode::REQUESTED_IP_ADDRESS, &ip.octets());
    let (served, _) = serve(
        &mut engine,
        &request.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    assert!(served.reply.is_ok());
    // The client finds the address in use (ARP) and declines it.
    let mut decline = PacketBuilder::request(MessageType::Decline, 3, mac);
    decline
        .set_server_identifier(SERVER)
        .set_option(OptionCode::REQUESTED_IP_ADDRESS, &ip.octets());
    let (served, reply) = serve(
        &mut engine,
        &decline.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    assert!(reply.is_none());
    assert!(matches!(
        served.lease_changes.as_slice(),
        [LeaseChange::Decline { ip: declined, .. }] if *declined == ip
    ));
    // Its next DISCOVER gets another address.
    let offer = serve(&mut engine, &discover, &arrival(Service::Dhcp))
        .1
        .unwrap();
    let second = Packet::new_checked(&offer[..]).unwrap().yiaddr();
    assert_ne!(second, ip);
    // Bound to it, then released: the release is persisted, no reply.
    let mut request = PacketBuilder::request(MessageType::Request, 4, mac);
    request.set_option(OptionCode::REQUESTED_IP_ADDRESS, &second.octets());
    serve(
        &mut engine,
        &request.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    let mut release = PacketBuilder::request(MessageType::Release, 5, mac);
    release.set_ciaddr(second).set_server_identifier(SERVER);
    let (served, reply) = serve(
        &mut engine,
        &release.to_vec().unwrap(),
        &arrival(Service::Dhcp),
    );
    assert!(reply.is_none());
    assert_eq!(
        served.lease_changes,
        vec![LeaseChange::Free { mac, ip: second }]
    );
    assert_eq!(engine.leases().unwrap().lease_of(mac, now()), None);
}
