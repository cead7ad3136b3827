//! What a hostile host on the segment gets: the server keeps serving legitimate clients.
//!
//! - Requests whose replies go to a host that is not there (a DHCPINFORM naming an absent
//!   ciaddr, a relayed request answered with a DHCPNAK to an absent giaddr) do not stop the
//!   server: those replies wait for ARP in the kernel, and must not hold up the others.
//! - A flood of DISCOVERs from random MACs does not lock new clients out of a small pool.
//! - A DISCOVER from a client with a binding does not shorten or drop that binding.
//!
//! Each runs a real server in a namespace and raw clients in another.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use pxe_dhcp::lease::Subnet;
use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::{MessageType, PacketBuilder};
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::prerequisites;
use server_lab::{
    client_socket, discover, init_reboot, lease_once, next_reply, request, server_and_client,
    RunningServer, SERVER_IP,
};

const BROADCAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);

fn policy() -> SharedPolicy {
    SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz")))
}

/// The lab segment with a pool of `size` addresses from 192.0.2.100.
fn pool_of(size: u8) -> Subnet {
    Subnet::new(
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        Ipv4Addr::new(192, 0, 2, 100),
        Ipv4Addr::new(192, 0, 2, 99 + size),
    )
}

fn mac(tag: u8, n: u32) -> MacAddr {
    let [_, a, b, c] = n.to_be_bytes();
    MacAddr([2, tag, 0, a, b, c])
}

fn send(socket: &UdpSocket, packet: &PacketBuilder, to: SocketAddrV4) {
    let _ = socket.send_to(&packet.to_vec().expect("emit"), to);
}

/// DISCOVER–OFFER–REQUEST–ACK for `mac`, retried for at most `window`: the address
/// acknowledged, and how long it took.
fn dora(
    socket: &UdpSocket,
    xid: u32,
    mac: MacAddr,
    window: Duration,
) -> Option<(Ipv4Addr, Duration)> {
    let start = Instant::now();
    while start.elapsed() < window {
        if let Some(ip) = lease_once(socket, xid, mac, SERVER_IP) {
            return Some((ip, start.elapsed()));
        }
    }
    None
}

#[test]
fn replies_to_absent_hosts_do_not_hold_up_the_others() {
    if !prerequisites(
        "replies_to_absent_hosts_do_not_hold_up_the_others",
        true,
        &["ip"],
    ) {
        return;
    }
    const BURST: u32 = 1000;
    let client_ip = Ipv4Addr::new(192, 0, 2, 50);
    let absent_client = Ipv4Addr::new(192, 0, 2, 77);
    let absent_relay = Ipv4Addr::new(192, 0, 2, 78);
    let (server_ns, client_ns) = server_and_client("hua");
    client_ns.ip(&["addr", "add", &format!("{client_ip}/24"), "dev", "cli0"]);
    client_ns.ip(&["route", "add", "255.255.255.255/32", "dev", "cli0"]);
    let _server = RunningServer::start(&server_ns, || {
        DhcpServer::builder(policy()).authoritative(vec![pool_of(100)])
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        let relay = UdpSocket::bind(SocketAddrV4::new(client_ip, 67)).expect("bind 67");
        let to_server = SocketAddrV4::new(SERVER_IP, 67);
        // The burst: DHCPINFORMs naming an absent ciaddr (each reply is unicast there), and
        // relayed REQUESTs for an address outside the pool (each NAK goes to an absent giaddr).
        let burst_start = Instant::now();
        for n in 0..BURST {
            let mut packet = if n % 2 == 0 {
                let mut inform = PacketBuilder::request(MessageType::Inform, n, mac(0xee, n));
                inform.set_ciaddr(absent_client);
                inform
            } else {
                let mut nak = request(n, mac(0xee, n), Ipv4Addr::new(198, 18, 0, 9), None);
                nak.set_giaddr(absent_relay).set_hops(1);
                nak
            };
            packet.set_broadcast(false);
            let _ = relay.send_to(&packet.to_vec().unwrap(), to_server);
        }
        let burst_sent = burst_start.elapsed();
        // A legitimate client right after the burst gets its lease at once…
        let (ip, took) = dora(&socket, 0x600d_0001, mac(1, 1), Duration::from_secs(30))
            .expect("a legitimate client got no lease within 30 s of the burst");
        eprintln!(
            "burst of {BURST} sent in {burst_sent:?}; a new client's lease {ip} took {took:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "a legitimate client waited {took:?} for its lease after the burst"
        );
        // …and so does a legitimate DHCPINFORM from a host that is there.
        let mut inform = PacketBuilder::request(MessageType::Inform, 0x600d_0002, mac(1, 2));
        inform.set_ciaddr(client_ip);
        let start = Instant::now();
        let answer = loop {
            send(&socket, &inform, to_server);
            let answer = next_reply(&socket, 0x600d_0002, Duration::from_millis(500));
            if answer.is_some() || start.elapsed() > Duration::from_secs(5) {
                break answer;
            }
        };
        assert_eq!(answer.map(|(t, _)| t), Some(MessageType::Ack));
        eprintln!(
            "a legitimate DHCPINFORM answered after {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn a_discover_flood_does_not_lock_new_clients_out_of_the_pool() {
    if !prerequisites(
        "a_discover_flood_does_not_lock_new_clients_out",
        true,
        &["ip"],
    ) {
        return;
    }
    let (server_ns, client_ns) = server_and_client("hdf");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    let _server = RunningServer::start(&server_ns, || {
        DhcpServer::builder(policy()).authoritative(vec![pool_of(50)])
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        // 60 DISCOVERs from random MACs that never come back: more than the pool.
        for n in 0..60 {
            send(
                &socket,
                &discover(0xf100_0000 + n, mac(0xf1, n), None),
                BROADCAST,
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut leased = HashSet::new();
        for n in 0..5 {
            let (ip, took) = dora(&socket, 0x600d_1000 + n, mac(2, n), Duration::from_secs(5))
                .unwrap_or_else(|| panic!("new client {n} locked out after the flood"));
            assert!(
                took < Duration::from_secs(2),
                "new client {n} waited {took:?}"
            );
            assert!(leased.insert(ip), "{ip} leased twice");
        }
        // A trickle of 3.4 DISCOVERs a second from random MACs, while new clients arrive.
        let start = Instant::now();
        let mut next_flood = 0u32;
        for n in 5..25u32 {
            let due = (start.elapsed().as_secs_f64() * 3.4) as u32 + 1;
            while next_flood < due {
                let xid = 0xf200_0000 + next_flood;
                send(
                    &socket,
                    &discover(xid, mac(0xf2, next_flood), None),
                    BROADCAST,
                );
                next_flood += 1;
            }
            let (ip, _) = dora(&socket, 0x600d_1000 + n, mac(2, n), Duration::from_secs(5))
                .unwrap_or_else(|| panic!("new client {n} failed during the trickle"));
            assert!(leased.insert(ip), "{ip} leased twice");
            std::thread::sleep(Duration::from_millis(150));
        }
        assert_eq!(leased.len(), 25);
        assert!(next_flood > 5, "the trickle ran ({next_flood} DISCOVERs)");
    });
}

#[test]
fn a_discover_from_a_bound_client_keeps_its_lease() {
    if !prerequisites(
        "a_discover_from_a_bound_client_keeps_its_lease",
        true,
        &["ip"],
    ) {
        return;
    }
    let (server_ns, client_ns) = server_and_client("hkb");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    // A short hold, so the test outlasts it.
    let _server = RunningServer::start(&server_ns, || {
        DhcpServer::builder(policy())
            .authoritative(vec![pool_of(50)])
            .offer_hold(Duration::from_secs(1))
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        let owner = mac(3, 1);
        let (ip, _) = dora(&socket, 0x600d_2001, owner, Duration::from_secs(5)).expect("lease");
        // The owner DISCOVERs and never completes: offered its own address.
        send(&socket, &discover(0x600d_2002, owner, None), BROADCAST);
        assert_eq!(
            next_reply(&socket, 0x600d_2002, Duration::from_secs(2)),
            Some((MessageType::Offer, ip))
        );
        std::thread::sleep(Duration::from_millis(1500));
        // Past the offer hold a stranger asking for that address is offered another, and its
        // REQUEST for it is refused.
        let stranger = mac(3, 2);
        send(
            &socket,
            &discover(0x600d_2003, stranger, Some(ip)),
            BROADCAST,
        );
        let offered = next_reply(&socket, 0x600d_2003, Duration::from_secs(2));
        assert!(
            matches!(offered, Some((MessageType::Offer, other)) if other != ip),
            "{offered:?}"
        );
        send(
            &socket,
            &request(0x600d_2004, stranger, ip, None),
            BROADCAST,
        );
        assert_eq!(
            next_reply(&socket, 0x600d_2004, Duration::from_secs(2)).map(|(t, _)| t),
            Some(MessageType::Nak)
        );
        // The owner's INIT-REBOOT still gets its address.
        assert_eq!(
            init_reboot(&socket, 0x600d_2005, owner, ip, 3),
            Some((MessageType::Ack, ip))
        );
    });
}

#[test]
fn an_exhausted_pool_is_named_in_the_refusal() {
    use pxe_dhcp::proto::{Engine, Mode, NoReply, ProtoConfig, Service};
    let mut config = ProtoConfig::default();
    config.mode = Mode::Authoritative {
        subnets: vec![pool_of(1)],
        reservations: vec![],
    };
    let mut engine = Engine::new(config);
    let arrival = server_lab::arrival(Service::Dhcp);
    let now = server_lab::now();
    let mut exchange = |packet: PacketBuilder| {
        let accepted = engine
            .accept(&packet.to_vec().unwrap(), &arrival, now)
            .expect("accepted");
        engine.respond(&accepted, &arrival, None, now).reply
    };
    let ip = Ipv4Addr::new(192, 0, 2, 100);
    assert!(exchange(discover(1, mac(4, 1), None)).is_ok());
    assert!(exchange(request(1, mac(4, 1), ip, Some(SERVER_IP))).is_ok());
    // The only address is bound: a new client is refused, and the refusal names the pool.
    let refusal = exchange(discover(2, mac(4, 2), None)).expect_err("no address left");
    assert_eq!(
        refusal,
        NoReply::PoolExhausted {
            network: Ipv4Addr::new(192, 0, 2, 0),
            prefix_len: 24
        }
    );
    assert_eq!(
        refusal.to_string(),
        "address pool of 192.0.2.0/24 exhausted"
    );
}
