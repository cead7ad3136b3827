//! Crash safety of the lease file: a server process killed with SIGKILL while clients are
//! getting leases, then restarted, never hands one address to two clients, and every client
//! keeps the address it was acknowledged.
//!
//! The server runs as a separate process (this test binary, re-executed to run
//! `server_lab::lab_server_process`), so it can really be killed.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pxe_dhcp::wire::{MessageType, OptionCode, Packet, PacketBuilder};
use pxe_policy::MacAddr;
use pxe_testkit::{prerequisites, NetNs};
use server_lab::wait_for;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn mac(n: usize) -> MacAddr {
    let [_, _, hi, lo] = (n as u32).to_be_bytes();
    MacAddr([2, 0x11, 0, 0, hi, lo])
}

/// Every ACK seen: client number → the addresses it was acknowledged.
type Acks = Arc<Mutex<HashMap<usize, Vec<Ipv4Addr>>>>;

/// One round for `clients`: DISCOVER all, REQUEST every offer, record the ACKs. Returns the
/// clients still without an ACK.
fn dora_round(socket: &UdpSocket, clients: &[usize], round: u32, acks: &Acks) -> Vec<usize> {
    let xid = |n: usize| (round << 20) | n as u32;
    let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    for &n in clients {
        let mut discover = PacketBuilder::request(MessageType::Discover, xid(n), mac(n));
        discover.set_broadcast(true);
        let _ = socket.send_to(&discover.to_vec().unwrap(), broadcast);
    }
    let mut pending: HashMap<u32, usize> = clients.iter().map(|&n| (xid(n), n)).collect();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut buf = [0u8; 1500];
    while !pending.is_empty() && Instant::now() < deadline {
        let Ok((len, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(reply) = Packet::new_checked(&buf[..len]) else {
            continue;
        };
        let Some(&n) = pending.get(&reply.xid()) else {
            continue;
        };
        match reply.message_type() {
            Some(MessageType::Offer) => {
                let mut request = PacketBuilder::request(MessageType::Request, xid(n), mac(n));
                request
                    .set_broadcast(true)
                    .set_server_identifier(SERVER_IP)
                    .set_option(OptionCode::REQUESTED_IP_ADDRESS, &reply.yiaddr().octets());
                let _ = socket.send_to(&request.to_vec().unwrap(), broadcast);
            }
            Some(MessageType::Ack) => {
                acks.lock()
                    .unwrap()
                    .entry(n)
                    .or_default()
                    .push(reply.yiaddr());
                pending.remove(&reply.xid());
            }
            _ => {}
        }
    }
    let mut left: Vec<usize> = pending.into_values().collect();
    left.sort_unstable();
    left
}

/// INIT-REBOOT: the client asks for the address it has; the ACK (or NAK) is recorded.
fn reboot_request(socket: &UdpSocket, n: usize, ip: Ipv4Addr) -> Option<(MessageType, Ipv4Addr)> {
    server_lab::init_reboot(socket, 0x7000_0000 | n as u32, mac(n), ip, 5)
}

#[test]
fn kill_9_under_load_keeps_every_lease_and_never_duplicates() {
    if !prerequisites("kill_9_under_load", true, &["ip"]) {
        return;
    }
    const CLIENTS: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let server_ns = NetNs::new("crs");
    let client_ns = Arc::new(NetNs::new("crc"));
    server_ns.link("srv0", Some("198.18.0.1/15"), &client_ns, "cli0", None);
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);

    let server = server_lab::start_server_process(&server_ns, dir.path());
    let acks: Acks = Arc::default();
    let acked = Arc::new(AtomicUsize::new(0));
    let load = {
        let client_ns = Arc::clone(&client_ns);
        let acks = Arc::clone(&acks);
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            client_ns.enter(|| {
                let socket = server_lab::client_socket(68);
                socket
                    .set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                let mut left: Vec<usize> = (0..CLIENTS).collect();
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut round = 1;
                while !left.is_empty() && Instant::now() < deadline {
                    // Small batches, so the kill lands in the middle of exchanges.
                    let batch: Vec<usize> = left.iter().copied().take(20).collect();
                    let still = dora_round(&socket, &batch, round, &acks);
                    round += 1;
                    left.retain(|n| !batch.contains(n) || still.contains(n));
                    acked.store(CLIENTS - left.len(), Ordering::Relaxed);
                    // Paced, so the kill lands while most clients are still to come.
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(left.is_empty(), "clients without a lease: {left:?}");
            });
        })
    };

    // Kill the server hard once a quarter of the clients have leases, and restart it.
    wait_for("a quarter of the leases", Duration::from_secs(30), || {
        (acked.load(Ordering::Relaxed) >= CLIENTS / 4).then_some(())
    });
    drop(server); // SIGKILL, then reap.
    let acked_before_kill = acks.lock().unwrap().clone();
    assert!(
        acked_before_kill.len() < CLIENTS,
        "the kill must land under load"
    );
    eprintln!(
        "killed with {} of {CLIENTS} clients leased",
        acked_before_kill.len()
    );
    let _server = server_lab::start_server_process(&server_ns, dir.path());
    load.join().expect("load thread");

    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.len(), CLIENTS);
    // Every client was always acknowledged the same address…
    let mut holder: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (n, ips) in &acks {
        assert!(ips.iter().all(|ip| ip == &ips[0]), "client {n} got {ips:?}");
        // …and no address was acknowledged to two clients.
        if let Some(other) = holder.insert(ips[0], *n) {
            panic!("{} acknowledged to clients {other} and {n}", ips[0]);
        }
    }
    // After the restart, every client that had a lease before the kill keeps it.
    client_ns.enter(|| {
        let socket = server_lab::client_socket(68);
        for (n, ips) in &acked_before_kill {
            let answer = reboot_request(&socket, *n, ips[0]);
            assert_eq!(
                answer,
                Some((MessageType::Ack, ips[0])),
                "client {n} after the restart"
            );
        }
    });
}
