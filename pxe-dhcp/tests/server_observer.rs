//! The server tells its observer the fate of every request, once: a DORA's OFFER and ACK, a
//! PXE ROM's DISCOVER with its boot stage, a REQUEST for another server's offer, a
//! malformed datagram. Over real sockets in namespaces.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pxe_dhcp::server::{message_type_label, DhcpObserver, DhcpServer, ObservedRequest};
use pxe_dhcp::wire::MessageType;
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::prerequisites;
use server_lab::{
    await_reply, capture, client_socket, lab_subnet, lease_once, request, server_and_client,
    wait_for, RunningServer, SERVER_IP,
};

/// What the observer heard: (message type, outcome, boot stage) per request.
#[derive(Debug, Default)]
struct Heard(Mutex<Vec<(String, String, String)>>);

impl DhcpObserver for Heard {
    fn request(&self, request: &ObservedRequest<'_>) {
        self.0.lock().unwrap().push((
            request
                .message_type
                .map_or("unknown", message_type_label)
                .to_string(),
            request.outcome.label().to_string(),
            request.kind.map_or("-", |kind| kind.as_str()).to_string(),
        ));
    }
}

impl Heard {
    fn count(&self, message_type: &str, outcome: &str, kind: &str) -> usize {
        let heard = self.0.lock().unwrap();
        heard
            .iter()
            .filter(|(t, o, k)| t == message_type && o == outcome && k == kind)
            .count()
    }
}

#[test]
fn every_request_is_told_once_with_its_outcome() {
    if !prerequisites("every_request_is_told_once_with_its_outcome", true, &["ip"]) {
        return;
    }
    let (server_ns, client_ns) = server_and_client("obs");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    let heard = Arc::new(Heard::default());
    let observer = Arc::clone(&heard);
    let _server = RunningServer::start(&server_ns, move || {
        DhcpServer::builder(SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz"))))
            .authoritative(vec![lab_subnet()])
            .observer(observer)
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        // A plain DHCP client: DISCOVER → OFFER, REQUEST → ACK.
        let plain = MacAddr([2, 0, 0, 0, 0, 1]);
        let ip = lease_once(&socket, 0x0b5e_0001, plain, SERVER_IP).expect("a lease");
        // A REQUEST that chose another server's offer: no reply.
        let other = request(0x0b5e_0002, plain, ip, Some(Ipv4Addr::new(192, 0, 2, 99)));
        socket.send_to(&other.to_vec().unwrap(), to).unwrap();
        // A PXE ROM (iPXE in the NIC's ROM): its DISCOVER is offered, at its boot stage.
        let mut rom = capture("ipxe-bios-rom-discover.bin");
        rom[4..8].copy_from_slice(&0x0b5e_0003u32.to_be_bytes());
        // The broadcast flag: this client socket has no address to be unicast to.
        rom[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
        socket.send_to(&rom, to).unwrap();
        await_reply(
            &socket,
            0x0b5e_0003,
            MessageType::Offer,
            Duration::from_secs(3),
        )
        .expect("the ROM's offer");
        // Not DHCP at all.
        socket.send_to(&[1, 2, 3], to).unwrap();
    });
    wait_for("five requests told", Duration::from_secs(5), || {
        (heard.0.lock().unwrap().len() >= 5).then_some(())
    });
    // Nothing is told twice, however long one waits.
    std::thread::sleep(Duration::from_millis(300));
    let all = heard.0.lock().unwrap().clone();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(heard.count("discover", "offer", "-"), 1, "{all:?}");
    assert_eq!(heard.count("request", "ack", "-"), 1, "{all:?}");
    assert_eq!(heard.count("request", "other_server", "-"), 1, "{all:?}");
    assert_eq!(
        heard.count("discover", "offer", "firmware-ipxe"),
        1,
        "{all:?}"
    );
    assert_eq!(heard.count("unknown", "malformed", "-"), 1, "{all:?}");
}
