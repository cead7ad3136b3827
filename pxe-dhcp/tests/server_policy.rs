//! The server with a policy that takes its time (an inventory lookup), per-client decisions,
//! and the reply-delay quirk, over real sockets in a namespace.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use pxe_dhcp::proto::Quirks;
use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::{MessageType, Packet};
use pxe_policy::{BootDecision, ClientFacts, MacAddr, Policy, ScriptDecision, SharedPolicy};
use pxe_testkit::prerequisites;
use server_lab::{capture, client_socket, collect_replies, server_and_client, RunningServer};

/// Answers after a pause; ignores one MAC; hands another a custom file.
struct SlowInventory;

const IGNORED: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xee]);
const CUSTOM: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xcc]);
const DELAYED: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xdd]);

impl Policy for SlowInventory {
    async fn boot(&self, client: &ClientFacts) -> BootDecision {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match client.mac {
            IGNORED => BootDecision::Ignore,
            CUSTOM => BootDecision::File("custom/grubx64.efi".into()),
            _ => BootDecision::chainload_for(client.arch),
        }
    }

    fn script<'a>(
        &'a self,
        _client: &'a ClientFacts,
    ) -> impl Future<Output = ScriptDecision> + Send + 'a {
        std::future::ready(ScriptDecision::ExitToDisk)
    }
}

/// The EDK2 DISCOVER from `mac`, with transaction id `xid`.
fn discover_from(mac: MacAddr, xid: u32) -> Vec<u8> {
    let mut bytes = capture("edk2-pxe-discover.bin");
    bytes[4..8].copy_from_slice(&xid.to_be_bytes());
    bytes[28..34].copy_from_slice(&mac.octets());
    bytes
}

#[test]
fn slow_policy_decisions_and_reply_delay() {
    if !prerequisites("slow_policy_decisions_and_reply_delay", true, &["ip"]) {
        return;
    }
    let (server_ns, client_ns) = server_and_client("pol");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    let _server = RunningServer::start(&server_ns, || {
        let mut delayed = Quirks::default();
        delayed.reply_delay = Some(Duration::from_millis(400));
        DhcpServer::builder(SharedPolicy::new(SlowInventory)).quirks(DELAYED, delayed)
    });
    client_ns.enter(|| {
        let socket = client_socket(68);
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        let clients = [
            (DELAYED, 1u32),
            (MacAddr([2, 0, 0, 0, 0, 0x01]), 2),
            (IGNORED, 3),
            (CUSTOM, 4),
        ];
        for (mac, xid) in clients {
            socket.send_to(&discover_from(mac, xid), to).unwrap();
        }
        // Collect everything for a while, in arrival order.
        let mut order = Vec::new();
        let mut files = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 1500];
        while std::time::Instant::now() < deadline {
            if let Ok((len, _)) = socket.recv_from(&mut buf) {
                if let Ok(packet) = Packet::new_checked(&buf[..len]) {
                    if packet.message_type() == Some(MessageType::Offer) {
                        order.push(packet.xid());
                        files.push((packet.xid(), packet.boot_file().map(<[u8]>::to_vec)));
                    }
                }
            }
        }
        assert!(
            !order.contains(&3),
            "the ignored client got an offer: {order:?}"
        );
        assert_eq!(order.len(), 3, "{order:?}");
        assert_eq!(
            order.last(),
            Some(&1),
            "the delayed client's offer comes after the others: {order:?}"
        );
        let custom = files.iter().find(|(xid, _)| *xid == 4).unwrap();
        assert_eq!(custom.1.as_deref(), Some(&b"custom/grubx64.efi"[..]));
        let plain = files.iter().find(|(xid, _)| *xid == 2).unwrap();
        assert_eq!(plain.1.as_deref(), Some(&b"snponly.efi"[..]));
        // The server is still answering.
        socket
            .send_to(&discover_from(MacAddr([2, 0, 0, 0, 0, 0x02]), 5), to)
            .unwrap();
        assert_eq!(collect_replies(&socket, 5, Duration::from_secs(2)).len(), 1);
    });
}
