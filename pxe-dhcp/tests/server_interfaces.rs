//! Several interfaces: each client hears the server's address on its own segment (IP_PKTINFO
//! gives the receiving interface and its address), and a server limited to one interface by
//! name stays silent on the others. Also the authoritative mode's subnet per interface.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use pxe_dhcp::lease::Subnet;
use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::{MessageType, Packet, PacketBuilder};
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::{prerequisites, NetNs};
use server_lab::{await_reply, capture, client_socket, RunningServer};

const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A server namespace with two segments, `srva` (192.0.2.1/24) and `srvb` (198.18.0.1/15),
/// each with an unaddressed client namespace.
fn two_segments() -> (Arc<NetNs>, Arc<NetNs>, Arc<NetNs>) {
    let server = Arc::new(NetNs::new("ifs"));
    let client_a = Arc::new(NetNs::new("ifa"));
    let client_b = Arc::new(NetNs::new("ifb"));
    server.link("srva", Some(&format!("{A}/24")), &client_a, "cli0", None);
    server.link("srvb", Some(&format!("{B}/15")), &client_b, "cli0", None);
    for client in [&client_a, &client_b] {
        client.ip(&["route", "add", "default", "dev", "cli0"]);
    }
    (server, client_a, client_b)
}

/// Sends a DISCOVER from `client` and returns the reply, if one comes.
fn discover(client: &NetNs, bytes: Vec<u8>) -> Option<Vec<u8>> {
    client.enter(move || {
        let socket = client_socket(68);
        let xid = Packet::new_checked(&bytes[..]).unwrap().xid();
        socket
            .send_to(&bytes, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
            .unwrap();
        await_reply(&socket, xid, MessageType::Offer, Duration::from_secs(2))
    })
}

fn policy() -> SharedPolicy {
    SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz")))
}

#[test]
fn each_interface_answers_with_its_own_address() {
    if !prerequisites("each_interface_answers_with_its_own_address", true, &["ip"]) {
        return;
    }
    let (server, client_a, client_b) = two_segments();
    let _server = RunningServer::start(&server, || DhcpServer::builder(policy()));
    for (client, address) in [(&client_a, A), (&client_b, B)] {
        let offer = discover(client, capture("ipxe-bios-rom-discover.bin")).expect("an offer");
        let offer = Packet::new_checked(&offer[..]).unwrap();
        assert_eq!(offer.server_identifier(), Some(address));
        assert_eq!(offer.siaddr(), address);
        let url = format!("http://{address}/boot.ipxe");
        assert_eq!(offer.boot_file(), Some(url.as_bytes()));
    }
}

#[test]
fn one_interface_by_name() {
    if !prerequisites("one_interface_by_name", true, &["ip"]) {
        return;
    }
    let (server, client_a, client_b) = two_segments();
    let _server = RunningServer::start(&server, || DhcpServer::builder(policy()).interface("srvb"));
    assert!(discover(&client_a, capture("ipxe-bios-rom-discover.bin")).is_none());
    let offer = discover(&client_b, capture("ipxe-bios-rom-discover.bin")).expect("an offer");
    assert_eq!(
        Packet::new_checked(&offer[..]).unwrap().server_identifier(),
        Some(B)
    );
}

#[test]
fn authoritative_subnet_follows_the_interface() {
    if !prerequisites("authoritative_subnet_follows_the_interface", true, &["ip"]) {
        return;
    }
    let (server, client_a, client_b) = two_segments();
    let _server = RunningServer::start(&server, || {
        DhcpServer::builder(policy()).authoritative(vec![
            server_lab::lab_subnet(),
            Subnet::new(
                Ipv4Addr::new(198, 18, 0, 0),
                15,
                Ipv4Addr::new(198, 18, 1, 0),
                Ipv4Addr::new(198, 18, 1, 255),
            ),
        ])
    });
    for (client, n, server_ip, low, high) in [
        (&client_a, 1u8, A, [192, 0, 2, 100], [192, 0, 2, 199]),
        (&client_b, 2u8, B, [198, 18, 1, 0], [198, 18, 1, 255]),
    ] {
        let mut request = PacketBuilder::request(
            MessageType::Discover,
            0x5151_0000 + u32::from(n),
            MacAddr([2, 0, 0, 0, 0x51, n]),
        );
        request.set_broadcast(true);
        let offer = discover(client, request.to_vec().unwrap()).expect("an offer");
        let offer = Packet::new_checked(&offer[..]).unwrap();
        assert_eq!(offer.server_identifier(), Some(server_ip));
        let yiaddr = offer.yiaddr();
        assert!(
            Ipv4Addr::from(low) <= yiaddr && yiaddr <= Ipv4Addr::from(high),
            "{yiaddr} outside the pool of {server_ip}'s segment"
        );
    }
}
