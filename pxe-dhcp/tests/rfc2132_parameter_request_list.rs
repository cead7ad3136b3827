//! RFC 2132 §9.8 and RFC 2131 §4.3.1: replies carry the options the client asked for in its
//! parameter request list (option 55), in its order, plus those a (PXE) reply needs whatever
//! the list says, and nothing else. Checked on the real DISCOVERs in `testdata/dhcp/`.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use pxe_dhcp::proto::{Engine, Mode, ProtoConfig, ProxyStrategy, Service};
use pxe_dhcp::wire::{ClientRequest, MessageType, OptionCode, Packet, PacketBuilder};
use pxe_policy::{BootDecision, MacAddr};
use server_lab::{arrival, capture, now, SERVER_IP as SERVER};

fn authoritative() -> Engine {
    let subnet = server_lab::lab_subnet().router(SERVER).dns_server(SERVER);
    let mut config = ProtoConfig::default();
    config.mode = Mode::Authoritative {
        subnets: vec![subnet],
        reservations: vec![],
    };
    Engine::new(config)
}

fn proxy(strategy: ProxyStrategy) -> Engine {
    let mut config = ProtoConfig::default();
    config.default_quirks.proxy_strategy = Some(strategy);
    Engine::new(config)
}

/// The reply's option codes in wire order.
fn reply_codes(engine: &mut Engine, request: &[u8], service: Service) -> Vec<u8> {
    let arrival = arrival(service);
    let accepted = engine.accept(request, &arrival, now()).expect("answered");
    let decision = accepted
        .facts()
        .map(|facts| BootDecision::chainload_for(facts.arch));
    let outcome = engine.respond(&accepted, &arrival, decision, now());
    let bytes = outcome.reply.expect("a reply").packet.to_vec().unwrap();
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    packet
        .merged_options()
        .into_iter()
        .map(|(code, _)| code.0)
        .collect()
}

/// Option 53 first, then the options of `list` the reply has, in the list's order.
fn assert_in_client_order(codes: &[u8], list: &[OptionCode]) {
    assert_eq!(codes.first(), Some(&53));
    let requested: Vec<u8> = codes[1..]
        .iter()
        .copied()
        .filter(|&c| list.contains(&OptionCode(c)))
        .collect();
    let expected: Vec<u8> = list
        .iter()
        .map(|c| c.0)
        .filter(|c| codes.contains(c) && *c != 53)
        .collect();
    assert_eq!(
        requested, expected,
        "requested options in the client's order"
    );
    let first_unrequested = codes[1..]
        .iter()
        .position(|&c| !list.contains(&OptionCode(c)))
        .map_or(codes.len(), |i| i + 1);
    assert!(
        codes[first_unrequested..]
            .iter()
            .all(|&c| !list.contains(&OptionCode(c))),
        "requested options come before the required unrequested ones: {codes:?}"
    );
}

fn sorted(mut codes: Vec<u8>) -> Vec<u8> {
    codes.sort_unstable();
    codes
}

fn list_of(bytes: &[u8]) -> Vec<OptionCode> {
    ClientRequest::parse(bytes).unwrap().parameter_request_list
}

#[test]
fn edk2_proxy_offer_keeps_what_firmware_needs() {
    let discover = capture("edk2-pxe-discover.bin");
    // EDK2 asks for 43, 54, 60, 66, 67 and 97: a proxy offer has those, and 77, the
    // chainload marker the iPXE it fetches reads back (unasked, but it breaks the loop).
    for (strategy, expected) in [
        (
            ProxyStrategy::AskBootServer,
            vec![53, 54, 60, 66, 67, 77, 97],
        ),
        (
            ProxyStrategy::UseBootFile,
            vec![43, 53, 54, 60, 66, 67, 77, 97],
        ),
    ] {
        let codes = reply_codes(&mut proxy(strategy), &discover, Service::Dhcp);
        assert_eq!(sorted(codes.clone()), expected, "{strategy:?}");
        assert_in_client_order(&codes, &list_of(&discover));
    }
}

#[test]
fn edk2_http_boot_offer_keeps_66_and_httpclient_unasked() {
    let discover = capture("edk2-httpboot-discover.bin");
    let list = list_of(&discover);
    assert!(!list.contains(&OptionCode::TFTP_SERVER_NAME));
    let codes = reply_codes(
        &mut proxy(ProxyStrategy::AskBootServer),
        &discover,
        Service::Dhcp,
    );
    assert_eq!(sorted(codes.clone()), [53, 54, 60, 66, 67, 77, 97]);
    assert_in_client_order(&codes, &list);
    assert_eq!(
        &codes[codes.len() - 2..],
        [66, 77],
        "the unrequested ones come last"
    );
}

#[test]
fn ipxe_authoritative_offer_drops_what_ipxe_did_not_ask_for() {
    let discover = capture("ipxe-bios-rom-discover.bin");
    let list = list_of(&discover);
    // iPXE asks for 1 3 6 7 12 15 17 26 43 60 66 67 119 128-135 175 203: not 28, 51, 54,
    // 58, 59 or 97.
    let codes = reply_codes(&mut authoritative(), &discover, Service::Dhcp);
    assert_eq!(
        sorted(codes.clone()),
        [1, 3, 6, 51, 53, 54, 58, 59, 60, 66, 67, 97, 175],
        "28 (broadcast address) was not asked for; lease times, 54 and 97 are required"
    );
    assert_in_client_order(&codes, &list);
}

#[test]
fn edk2_authoritative_offer_carries_what_edk2_asked_for() {
    let discover = capture("edk2-pxe-discover.bin");
    let codes = reply_codes(&mut authoritative(), &discover, Service::Dhcp);
    // EDK2 asks for 28 too; 43 = use the boot file for firmware PXE in authoritative mode.
    assert_eq!(
        sorted(codes.clone()),
        [1, 3, 6, 28, 43, 51, 53, 54, 58, 59, 60, 66, 67, 77, 97]
    );
    assert_in_client_order(&codes, &list_of(&discover));
}

#[test]
fn boot_server_ack_on_4011_follows_the_list() {
    let request = capture("edk2-pxe-request.bin");
    let codes = reply_codes(
        &mut proxy(ProxyStrategy::AskBootServer),
        &request,
        Service::BootServer,
    );
    assert_eq!(sorted(codes.clone()), [53, 54, 60, 66, 67, 77, 97]);
    assert_in_client_order(&codes, &list_of(&request));
}

#[test]
fn plain_clients_get_what_they_asked_for_or_everything_without_a_list() {
    let mac = MacAddr([2, 0, 0, 0, 0, 0x55]);
    let mut engine = authoritative();
    // A short list, in an unusual order.
    let mut discover = PacketBuilder::request(MessageType::Discover, 1, mac);
    discover.set_option(OptionCode::PARAMETER_REQUEST_LIST, &[6, 1]);
    let codes = reply_codes(&mut engine, &discover.to_vec().unwrap(), Service::Dhcp);
    assert_eq!(codes, [53, 6, 1, 54, 51, 58, 59]);
    // No list: every option this server has for the client.
    let discover = PacketBuilder::request(MessageType::Discover, 2, mac);
    let codes = reply_codes(&mut engine, &discover.to_vec().unwrap(), Service::Dhcp);
    assert_eq!(sorted(codes), [1, 3, 6, 28, 51, 53, 54, 58, 59]);
}

#[test]
fn host_name_of_a_reservation_and_the_domain_go_to_clients_that_ask() {
    use pxe_dhcp::lease::Reservation;
    let mac = MacAddr([2, 0, 0, 0, 0, 0x12]);
    let reserved_ip = std::net::Ipv4Addr::new(192, 0, 2, 12);
    let subnet = server_lab::lab_subnet().domain_name("lab.example").unwrap();
    let reservation = Reservation::by_mac(mac, reserved_ip)
        .host_name("node-12")
        .unwrap();
    let mut config = ProtoConfig::default();
    config.mode = Mode::Authoritative {
        subnets: vec![subnet],
        reservations: vec![reservation],
    };
    let mut engine = Engine::new(config);
    let answer = |engine: &mut Engine, mac: MacAddr| {
        let mut discover = PacketBuilder::request(MessageType::Discover, 7, mac);
        discover.set_option(OptionCode::PARAMETER_REQUEST_LIST, &[1, 12, 15]);
        let bytes = discover.to_vec().unwrap();
        let arrival = arrival(Service::Dhcp);
        let accepted = engine.accept(&bytes, &arrival, now()).expect("answered");
        let outcome = engine.respond(&accepted, &arrival, None, now());
        let reply = outcome.reply.expect("a reply").packet.to_vec().unwrap();
        let packet = Packet::new_checked(&reply[..]).unwrap();
        let options = packet.merged_options();
        let get = |code: OptionCode| {
            options
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, v)| v.to_vec())
        };
        (
            packet.yiaddr(),
            get(OptionCode::HOST_NAME),
            get(OptionCode::DOMAIN_NAME),
        )
    };
    let (ip, host, domain) = answer(&mut engine, mac);
    assert_eq!(ip, reserved_ip);
    assert_eq!(host.as_deref(), Some(&b"node-12"[..]));
    assert_eq!(domain.as_deref(), Some(&b"lab.example"[..]));
    // Another client gets the domain but no host name.
    let (_, host, domain) = answer(&mut engine, MacAddr([2, 0, 0, 0, 0, 0x13]));
    assert_eq!(host, None);
    assert_eq!(domain.as_deref(), Some(&b"lab.example"[..]));
}

#[test]
fn names_that_are_not_dns_names_are_refused() {
    use pxe_dhcp::lease::Reservation;
    let mac = MacAddr([2, 0, 0, 0, 0, 0x12]);
    let ip = std::net::Ipv4Addr::new(192, 0, 2, 12);
    for bad in ["", "a b", "-x", "x-", "a..b", "x;reboot", &"a".repeat(64)] {
        assert!(
            Reservation::by_mac(mac, ip).host_name(bad).is_err(),
            "{bad:?}"
        );
        assert!(
            server_lab::lab_subnet().domain_name(bad).is_err(),
            "{bad:?}"
        );
    }
    assert!(Reservation::by_mac(mac, ip)
        .host_name("rack1-node02")
        .is_ok());
    assert!(server_lab::lab_subnet()
        .domain_name("boot.lab.example.")
        .is_ok());
}
