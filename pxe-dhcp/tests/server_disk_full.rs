//! The lease file on a disk that fills up and then has room again: the clients whose binding
//! could not be written get no DHCPACK, the ones acknowledged keep their addresses across a
//! restart, and no address is ever acknowledged to two clients. The journal sits on a small
//! tmpfs that the test fills.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

use pxe_dhcp::lease::read_journal;
use pxe_dhcp::server::DhcpServer;
use pxe_dhcp::wire::MessageType;
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::{prerequisites, run_checked};
use server_lab::{
    client_socket, init_reboot, lab_subnet, lease_once, server_and_client, RunningServer, SERVER_IP,
};

/// A tmpfs of `size` mounted on a fresh directory, unmounted (lazily: the server may still
/// hold the journal open) when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_str().expect("utf-8 path");
        run_checked(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path],
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every byte left with a file `filler`, and returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let page = [0u8; 4096];
        while file.write(&page).is_ok_and(|n| n > 0) {}
        while file.write(&page[..1]).is_ok_and(|n| n > 0) {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mac(n: u32) -> MacAddr {
    let [_, a, b, c] = n.to_be_bytes();
    MacAddr([2, 0x44, 0, a, b, c])
}

/// One exchange for client `n` (its `attempt`th): the address acknowledged.
fn lease(socket: &UdpSocket, n: u32, attempt: u32) -> Option<Ipv4Addr> {
    lease_once(socket, (attempt << 24) | n, mac(n), SERVER_IP)
}

#[test]
fn a_full_disk_never_costs_a_lease_or_duplicates_one() {
    if !prerequisites(
        "a_full_disk_never_costs_a_lease_or_duplicates_one",
        true,
        &["ip", "mount", "umount"],
    ) {
        return;
    }
    let disk = SmallDisk::mount("64k");
    let leases = disk.path().join("leases");
    let (server_ns, client_ns) = server_and_client("dfl");
    client_ns.ip(&["route", "add", "default", "dev", "cli0"]);
    let start_server = || {
        let leases = leases.clone();
        RunningServer::start(&server_ns, move || {
            DhcpServer::builder(SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz"))))
                .authoritative(vec![lab_subnet()])
                .lease_file(leases)
        })
    };
    let server = start_server();
    // Client number → the addresses it was acknowledged.
    let mut acked: HashMap<u32, Vec<Ipv4Addr>> = HashMap::new();
    let mut refused = Vec::new();
    client_ns.enter(|| {
        let socket = client_socket(68);
        for n in 0..5 {
            let ip = lease(&socket, n, 1).expect("a lease before the disk fills");
            acked.entry(n).or_default().push(ip);
        }
        // The disk fills: new clients get leases until the journal's page is full, then none.
        let filler = disk.fill();
        let mut n = 5;
        while refused.len() < 3 && n < 95 {
            match lease(&socket, n, 1) {
                Some(ip) => acked.entry(n).or_default().push(ip),
                None => refused.push(n),
            }
            n += 1;
        }
        assert_eq!(refused.len(), 3, "the journal never hit the full disk");
        // Room again: the refused clients retry and get leases, and so do new ones.
        std::fs::remove_file(filler).unwrap();
        for &r in refused.iter().chain(&[n, n + 1, n + 2]) {
            let ip = (2..6)
                .find_map(|attempt| lease(&socket, r, attempt))
                .unwrap_or_else(|| panic!("client {r} got no lease once the disk had room"));
            acked.entry(r).or_default().push(ip);
        }
    });
    // Every record in the journal is whole: the torn tail was cut before the next append.
    let read = read_journal(&std::fs::read(&leases).unwrap());
    assert!(
        read.dropped.is_empty(),
        "untrusted records: {:?}",
        read.dropped
    );
    drop(server);

    let _server = start_server();
    let mut holder: HashMap<Ipv4Addr, u32> = HashMap::new();
    for (n, ips) in &acked {
        assert!(ips.iter().all(|ip| *ip == ips[0]), "client {n} got {ips:?}");
        if let Some(other) = holder.insert(ips[0], *n) {
            panic!("{} acknowledged to clients {other} and {n}", ips[0]);
        }
    }
    client_ns.enter(|| {
        let socket = client_socket(68);
        for (n, ips) in &acked {
            assert_eq!(
                init_reboot(&socket, 0x7f00_0000 | n, mac(*n), ips[0], 3),
                Some((MessageType::Ack, ips[0])),
                "client {n} after the restart"
            );
        }
        // New clients after the restart get none of those addresses.
        for n in 500..510 {
            let ip = lease(&socket, n, 1).expect("a new client's lease after the restart");
            assert!(
                !holder.contains_key(&ip),
                "{ip} handed out again to client {n}"
            );
        }
    });
}
