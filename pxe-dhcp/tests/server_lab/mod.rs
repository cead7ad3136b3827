//! Shared lab for the server's integration tests: namespaces, a server running in-process
//! inside one, and a raw DHCP client socket.
#![allow(dead_code, unreachable_pub)] // Each test file uses a different part.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use pxe_dhcp::lease::Subnet;
use pxe_dhcp::proto::{Arrival, Service};
use pxe_dhcp::server::{DhcpServer, DhcpServerBuilder};
use pxe_dhcp::wire::{MessageType, OptionCode, Packet, PacketBuilder};
use pxe_policy::{BootEveryone, LinuxBoot, MacAddr, SharedPolicy};
use pxe_testkit::NetNs;

/// The server's address on the lab segment.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The site DHCP server's address (proxy tests).
pub const SITE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The lab segment 192.0.2.0/24 with the pool 192.0.2.100–192.0.2.199: each test adds the
/// router, DNS server or lease time it needs.
pub fn lab_subnet() -> Subnet {
    Subnet::new(
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        Ipv4Addr::new(192, 0, 2, 100),
        Ipv4Addr::new(192, 0, 2, 199),
    )
}

/// A server running in-process on its own thread inside a namespace; stopped when dropped.
pub struct RunningServer {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Builds (inside the namespace, on a fresh multi-thread runtime), binds and runs the
    /// server `make` returns; returns once it is bound.
    pub fn start(
        ns: &Arc<NetNs>,
        make: impl FnOnce() -> DhcpServerBuilder + Send + 'static,
    ) -> Self {
        // RUST_LOG=pxe_dhcp=debug shows why each request was answered or dropped.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = Arc::clone(ns);
        let thread = std::thread::spawn(move || {
            ns.enter(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let server = match make().bind().await {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let result = server
                        .run_until(async {
                            let _ = shutdown_rx.await;
                        })
                        .await;
                    if let Err(e) = result {
                        panic!("server failed: {e}");
                    }
                });
            });
        });
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("server did not bind: {e}"),
            Err(e) => panic!("server did not start: {e}"),
        }
        Self {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("server thread panicked");
            }
        }
    }
}

/// A server namespace (`srv0`, 192.0.2.1/24) and a client namespace (`cli0`, no address)
/// joined by a veth pair.
pub fn server_and_client(label: &str) -> (Arc<NetNs>, Arc<NetNs>) {
    let server = Arc::new(NetNs::new(&format!("{label}-s")));
    let client = Arc::new(NetNs::new(&format!("{label}-c")));
    server.link(
        "srv0",
        Some(&format!("{SERVER_IP}/24")),
        &client,
        "cli0",
        None,
    );
    (server, client)
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A DHCP client socket on port 68 (or `port`) inside the current namespace, able to send
/// broadcasts, with a receive timeout.
pub fn client_socket(port: u16) -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).expect("bind");
    socket.set_broadcast(true).expect("broadcast");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    socket
}

/// Every DHCP reply with transaction `xid` received on `socket` within `window`.
pub fn collect_replies(socket: &UdpSocket, xid: u32, window: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + window;
    let mut replies = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let bytes = buf[..len].to_vec();
            if Packet::new_checked(&bytes[..]).is_ok_and(|p| p.xid() == xid) {
                replies.push(bytes);
            }
        }
    }
    replies
}

/// The first reply of `message_type` with transaction `xid` within `window`.
pub fn await_reply(
    socket: &UdpSocket,
    xid: u32,
    message_type: MessageType,
    window: Duration,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let bytes = buf[..len].to_vec();
            let matches = Packet::new_checked(&bytes[..])
                .is_ok_and(|p| p.xid() == xid && p.message_type() == Some(message_type));
            if matches {
                return Some(bytes);
            }
        }
    }
    None
}

/// The type and yiaddr of the next reply with transaction `xid` within `window`.
pub fn next_reply(
    socket: &UdpSocket,
    xid: u32,
    window: Duration,
) -> Option<(MessageType, Ipv4Addr)> {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            if let Ok(packet) = Packet::new_checked(&buf[..len]) {
                if packet.xid() == xid {
                    if let Some(message_type) = packet.message_type() {
                        return Some((message_type, packet.yiaddr()));
                    }
                }
            }
        }
    }
    None
}

/// A DISCOVER asking for a broadcast reply (and for `requested`, when given).
pub fn discover(xid: u32, mac: MacAddr, requested: Option<Ipv4Addr>) -> PacketBuilder {
    let mut discover = PacketBuilder::request(MessageType::Discover, xid, mac);
    discover.set_broadcast(true);
    if let Some(ip) = requested {
        discover.set_option(OptionCode::REQUESTED_IP_ADDRESS, &ip.octets());
    }
    discover
}

/// A REQUEST for `ip` asking for a broadcast reply: to `server` (SELECTING) or to none
/// (INIT-REBOOT).
pub fn request(xid: u32, mac: MacAddr, ip: Ipv4Addr, server: Option<Ipv4Addr>) -> PacketBuilder {
    let mut request = PacketBuilder::request(MessageType::Request, xid, mac);
    request
        .set_broadcast(true)
        .set_option(OptionCode::REQUESTED_IP_ADDRESS, &ip.octets());
    if let Some(server) = server {
        request.set_server_identifier(server);
    }
    request
}

fn broadcast(socket: &UdpSocket, packet: &PacketBuilder) {
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let _ = socket.send_to(&packet.to_vec().expect("emit"), to);
}

/// One DISCOVER, then a REQUEST of the offer to `server`, 500 ms for each answer: the address
/// acknowledged.
pub fn lease_once(
    socket: &UdpSocket,
    xid: u32,
    mac: MacAddr,
    server: Ipv4Addr,
) -> Option<Ipv4Addr> {
    broadcast(socket, &discover(xid, mac, None));
    let (MessageType::Offer, offered) = next_reply(socket, xid, Duration::from_millis(500))? else {
        return None;
    };
    broadcast(socket, &request(xid, mac, offered, Some(server)));
    match next_reply(socket, xid, Duration::from_millis(500))? {
        (MessageType::Ack, ip) => Some(ip),
        _ => None,
    }
}

/// INIT-REBOOT: a REQUEST for `ip`, sent up to `tries` times 500 ms apart: the first answer.
pub fn init_reboot(
    socket: &UdpSocket,
    xid: u32,
    mac: MacAddr,
    ip: Ipv4Addr,
    tries: usize,
) -> Option<(MessageType, Ipv4Addr)> {
    let packet = request(xid, mac, ip, None);
    (0..tries).find_map(|_| {
        broadcast(socket, &packet);
        next_reply(socket, xid, Duration::from_millis(500))
    })
}

/// The `bind` lines of a lease journal.
pub fn journal_binds(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with("bind "))
        .map(str::to_string)
        .collect()
}

/// A fixed time for the engine tests (the engine never reads the clock).
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A request reaching `service` from a client without an address, on interface 2 whose
/// address is [`SERVER_IP`]: what the engine tests feed it.
pub fn arrival(service: Service) -> Arrival {
    Arrival::new(
        service,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        2,
        SERVER_IP,
    )
}

/// A real capture from `testdata/dhcp/`.
pub fn capture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/dhcp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Not a test: the server process that the crash and perfdhcp tests start by re-executing
/// their own test binary (`scripts/bench-dhcp` runs the shipped `netboot dhcp` instead).
/// Configured by environment: `PXE_DHCP_LAB_MODE` (`authoritative` or `proxy`),
/// `PXE_DHCP_LAB_LEASES` (lease file), `PXE_DHCP_LAB_READY` (a file created once bound),
/// `PXE_DHCP_LAB_INTERFACE` (optional), `PXE_DHCP_LAB_SYNC` (`1`: fdatasync each change).
/// Authoritative mode serves 198.18.0.0/15 with the pool 198.18.1.0–198.19.255.254 and a
/// relay-facing subnet 192.0.2.0/24.
#[test]
#[ignore = "not a test: the server process the lab tests start"]
fn lab_server_process() {
    let Some(ready) = std::env::var_os("PXE_DHCP_LAB_READY") else {
        return;
    };
    let mode = std::env::var("PXE_DHCP_LAB_MODE").unwrap_or_else(|_| "authoritative".into());
    // One thread: the lab machine has two cores, and perfdhcp needs one of them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let policy = SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz")));
        let mut builder = DhcpServer::builder(policy);
        if mode == "authoritative" {
            builder = builder.authoritative(vec![
                Subnet::new(
                    Ipv4Addr::new(198, 18, 0, 0),
                    15,
                    Ipv4Addr::new(198, 18, 1, 0),
                    Ipv4Addr::new(198, 19, 255, 254),
                )
                .lease_time(Duration::from_secs(3600)),
                Subnet::new(
                    Ipv4Addr::new(192, 0, 2, 0),
                    24,
                    Ipv4Addr::new(192, 0, 2, 100),
                    Ipv4Addr::new(192, 0, 2, 250),
                ),
            ]);
            if let Some(leases) = std::env::var_os("PXE_DHCP_LAB_LEASES") {
                builder = builder.lease_file(leases);
            }
            builder =
                builder.sync_lease_file(std::env::var("PXE_DHCP_LAB_SYNC").as_deref() == Ok("1"));
        }
        if let Ok(interface) = std::env::var("PXE_DHCP_LAB_INTERFACE") {
            builder = builder.interface(interface);
        }
        let server = builder.bind().await.expect("bind");
        std::fs::write(&ready, b"ready").expect("ready file");
        server.run().await.expect("serve");
    });
}

/// Starts this test binary again inside `ns` as the lab server process (authoritative, lease
/// file `dir/leases`), and waits until it is bound. Killed (SIGKILL) when dropped.
pub fn start_server_process(ns: &NetNs, dir: &Path) -> pxe_testkit::ChildGuard {
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let child = pxe_testkit::ChildGuard::spawn(
        ns.command(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "server_lab::lab_server_process",
                "--nocapture",
            ])
            .env("PXE_DHCP_LAB_READY", &ready)
            .env("PXE_DHCP_LAB_LEASES", dir.join("leases"))
            .env("PXE_DHCP_LAB_MODE", "authoritative")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    wait_for("the server process", Duration::from_secs(20), || {
        ready.exists().then_some(())
    });
    child
}
