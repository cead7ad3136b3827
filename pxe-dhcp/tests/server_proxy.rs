//! Proxy mode beside a site DHCP server (dnsmasq, no PXE options) on one bridged segment:
//! network-boot clients get their address from the site server and their boot file from
//! ours; other clients get nothing from ours. The DISCOVERs are real firmware captures.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::{MessageType, OptionCode, Packet, PacketBuilder, PxeVendorOptions};
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::{prerequisites, ChildGuard, NetNs};
use server_lab::{
    await_reply, capture, client_socket, collect_replies, RunningServer, SERVER_IP, SITE_IP,
};

/// Three namespaces on one bridge: ours, the site server's, and the client's.
struct Segment {
    _lan: NetNs,
    server: Arc<NetNs>,
    site: NetNs,
    client: Arc<NetNs>,
}

fn segment() -> Segment {
    let lan = NetNs::new("pxl");
    lan.ip(&["link", "add", "br0", "type", "bridge"]);
    lan.ip(&["link", "set", "br0", "up"]);
    let server = Arc::new(NetNs::new("pxs"));
    let site = NetNs::new("pxd");
    let client = Arc::new(NetNs::new("pxc"));
    lan.link(
        "l-srv",
        None,
        &server,
        "srv0",
        Some(&format!("{SERVER_IP}/24")),
    );
    lan.link(
        "l-site",
        None,
        &site,
        "site0",
        Some(&format!("{SITE_IP}/24")),
    );
    lan.link("l-cli", None, &client, "cli0", None);
    for port in ["l-srv", "l-site", "l-cli"] {
        lan.ip(&["link", "set", port, "master", "br0"]);
    }
    // The unaddressed client sends to 255.255.255.255 from a plain UDP socket: give that a
    // route (raw-socket clients such as dhclient need none).
    client.ip(&["route", "add", "default", "dev", "cli0"]);
    Segment {
        _lan: lan,
        server,
        site,
        client,
    }
}

struct Offer {
    server_id: Option<Ipv4Addr>,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    vendor_class: Option<Vec<u8>>,
    boot_file: Option<Vec<u8>>,
    guid: Option<Vec<u8>>,
    pxe_options: Option<Vec<u8>>,
}

fn read_offer(bytes: &[u8]) -> Offer {
    let packet = Packet::new_checked(bytes).expect("a valid reply");
    Offer {
        server_id: packet.server_identifier(),
        yiaddr: packet.yiaddr(),
        siaddr: packet.siaddr(),
        vendor_class: packet.vendor_class().map(|v| v.as_bytes().to_vec()),
        boot_file: packet
            .option(OptionCode::BOOTFILE_NAME)
            .map(|f| f.into_owned()),
        guid: packet
            .option(OptionCode::CLIENT_MACHINE_ID)
            .map(|g| g.into_owned()),
        pxe_options: packet
            .option(OptionCode::VENDOR_SPECIFIC)
            .map(|o| o.into_owned()),
    }
}

/// `bytes` with the BROADCAST flag set: the site server then broadcasts its offer too, so the
/// test socket hears it whatever MAC the capture carries.
fn with_broadcast_flag(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[10] |= 0x80;
    bytes
}

fn discover_round(socket: &UdpSocket, discover: &[u8]) -> Vec<Offer> {
    let xid = Packet::new_checked(discover).unwrap().xid();
    socket
        .send_to(discover, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
        .unwrap();
    collect_replies(socket, xid, Duration::from_secs(3))
        .iter()
        .map(|bytes| read_offer(bytes))
        .filter(|offer| {
            // Only offers: the test looks at what each server proposes.
            offer.server_id.is_some()
        })
        .collect()
}

#[test]
fn proxy_beside_dnsmasq_answers_only_network_boot_clients() {
    if !prerequisites("proxy_beside_dnsmasq", true, &["ip", "dnsmasq"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = segment();
    let _dnsmasq = ChildGuard::spawn(
        net.site
            .command("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--interface=site0",
                "--bind-interfaces",
                "--dhcp-range=192.0.2.100,192.0.2.150,255.255.255.0,1h",
                "--dhcp-authoritative",
                // An offer without the ping check comes at once, inside the test's window.
                "--no-ping",
            ])
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.path().join("dnsmasq.leases").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("dnsmasq.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let _server = RunningServer::start(&net.server, || {
        DhcpServer::builder(SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz"))))
            .interface("srv0")
    });

    net.client.enter(|| {
        let socket = client_socket(68);
        // dnsmasq needs a moment to open its socket.
        std::thread::sleep(Duration::from_millis(500));

        for (name, expected_file, expected_class) in [
            (
                "ipxe-bios-rom-discover.bin",
                "http://192.0.2.1/boot.ipxe",
                "PXEClient",
            ),
            ("edk2-pxe-discover.bin", "snponly.efi", "PXEClient"),
            (
                "edk2-httpboot-discover.bin",
                "http://192.0.2.1/ipxe/snponly.efi",
                "HTTPClient",
            ),
        ] {
            let discover = with_broadcast_flag(capture(name));
            let sent_guid = Packet::new_checked(&discover[..])
                .unwrap()
                .option(OptionCode::CLIENT_MACHINE_ID)
                .map(|g| g.into_owned());
            let offers = discover_round(&socket, &discover);
            let site: Vec<_> = offers
                .iter()
                .filter(|o| o.server_id == Some(SITE_IP))
                .collect();
            let ours: Vec<_> = offers
                .iter()
                .filter(|o| o.server_id == Some(SERVER_IP))
                .collect();
            assert_eq!(site.len(), 1, "{name}: one offer from the site server");
            let address = u32::from(site[0].yiaddr);
            assert!(
                (u32::from(Ipv4Addr::new(192, 0, 2, 100))
                    ..=u32::from(Ipv4Addr::new(192, 0, 2, 150)))
                    .contains(&address),
                "{name}: the site server gives the address"
            );
            assert_eq!(
                site[0].boot_file, None,
                "{name}: the site server has no boot file"
            );
            assert_eq!(ours.len(), 1, "{name}: one proxy offer from us");
            let proxy = ours[0];
            assert_eq!(
                proxy.yiaddr,
                Ipv4Addr::UNSPECIFIED,
                "{name}: proxy yiaddr 0"
            );
            assert_eq!(proxy.siaddr, SERVER_IP, "{name}");
            assert_eq!(
                proxy.boot_file.as_deref(),
                Some(expected_file.as_bytes()),
                "{name}"
            );
            assert_eq!(
                proxy.vendor_class.as_deref(),
                Some(expected_class.as_bytes()),
                "{name}"
            );
            assert_eq!(proxy.guid, sent_guid, "{name}: option 97 echoed");
        }

        // BIOS firmware PXE is told to use the boot file (43.6 = 8); the UEFI one (no 43)
        // asks on 4011.
        let edk2 = with_broadcast_flag(capture("edk2-pxe-discover.bin"));
        let ours: Vec<_> = discover_round(&socket, &edk2)
            .into_iter()
            .filter(|o| o.server_id == Some(SERVER_IP))
            .collect();
        assert_eq!(ours[0].pxe_options, None, "uefi is sent to 4011");

        // A client that is not network booting gets nothing from us.
        let mut plain = PacketBuilder::request(
            MessageType::Discover,
            0x1234_5678,
            MacAddr([2, 0, 0, 0, 0, 0x42]),
        );
        plain.set_broadcast(true);
        let offers = discover_round(&socket, &plain.to_vec().unwrap());
        assert_eq!(offers.len(), 1, "only the site server answers");
        assert_eq!(offers[0].server_id, Some(SITE_IP));
    });

    // The UEFI client, now holding the site server's address, asks our boot server on 4011.
    net.client
        .ip(&["addr", "add", "192.0.2.140/24", "dev", "cli0"]);
    net.client.enter(|| {
        let request_capture = capture("edk2-pxe-request.bin");
        let request = Packet::new_checked(&request_capture[..]).unwrap();
        let mut binl = PacketBuilder::from_packet(&request);
        binl.set_ciaddr(Ipv4Addr::new(192, 0, 2, 140));
        binl.remove_option(OptionCode::SERVER_IDENTIFIER);
        binl.remove_option(OptionCode::REQUESTED_IP_ADDRESS);
        // EDK2 names the boot item it wants (type 0x8000 layer 0) in 43.71.
        let mut item = PxeVendorOptions::default();
        item.boot_item = Some((0x8000, 0));
        binl.set_pxe_vendor_options(&item);
        let socket = UdpSocket::bind("192.0.2.140:4011").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket
            .send_to(&binl.to_vec().unwrap(), SocketAddrV4::new(SERVER_IP, 4011))
            .unwrap();
        let ack = await_reply(
            &socket,
            request.xid(),
            MessageType::Ack,
            Duration::from_secs(3),
        )
        .expect("an ACK from the boot server");
        let ack = read_offer(&ack);
        assert_eq!(ack.boot_file.as_deref(), Some(&b"snponly.efi"[..]));
        assert_eq!(ack.vendor_class.as_deref(), Some(&b"PXEClient"[..]));
        assert_eq!(ack.server_id, Some(SERVER_IP));
        let echoed = PxeVendorOptions::decode(&ack.pxe_options.expect("43 in the ACK")).unwrap();
        assert_eq!(
            echoed.boot_item,
            Some((0x8000, 0)),
            "the boot item is echoed"
        );
    });
}
