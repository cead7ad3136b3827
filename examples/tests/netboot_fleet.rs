//! Two `netboot dhcp` servers on one segment, both authoritative for one pool, sharing one
//! PostgreSQL (`--lease-store`, a real cluster this test starts): every client gets exactly
//! one address; a lease one server granted is renewed by the other once the first is killed
//! (kill -9); perfdhcp load through both at once never binds one address to two clients (by
//! perfdhcp's uniqueness check and by the database), and a server killed under load leaves
//! the other serving; PostgreSQL stopped for a while: the servers stay up and silent, say so
//! once, and serve again when it is back; a server started while it is down waits for it.
//!
//! The segment is a bridge in a namespace of its own; each server and each client is a
//! namespace with a veth on it. Needs root, `ip`, `busybox`, `perfdhcp` and PostgreSQL's
//! server programs; skips without them outside CI.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pxe_testkit::lab::LabProcess;
use pxe_testkit::perfdhcp::Perfdhcp;
use pxe_testkit::{prerequisites, ChildGuard, NetNs, Postgres};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
/// 5120 addresses: more than the bounded perfdhcp runs use, so that every exchange is a
/// new client (perfdhcp's uniqueness check counts a client's second lease as a repeat).
const POOL: &str = "198.18.1.0-198.18.20.255/16";

/// One segment: a bridge, and namespaces attached to it.
struct Segment {
    bridge: NetNs,
    links: usize,
}

impl Segment {
    fn new() -> Self {
        let bridge = NetNs::new("fl-seg");
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&["link", "set", "br0", "up"]);
        Self { bridge, links: 0 }
    }

    /// A namespace `label` with interface `eth0` on the segment (address `cidr`, if any, and
    /// MAC `mac`, if any).
    fn attach(&mut self, label: &str, cidr: Option<&str>, mac: Option<&str>) -> NetNs {
        let ns = NetNs::new(label);
        self.links += 1;
        let port = format!("p{}", self.links);
        self.bridge.link(&port, None, &ns, "eth0", cidr);
        self.bridge.ip(&["link", "set", &port, "master", "br0"]);
        if let Some(mac) = mac {
            ns.ip(&["link", "set", "eth0", "address", mac]);
        }
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
}

/// Starts `netboot dhcp` in `ns`, authoritative for [`POOL`] with leases in `db`, and waits
/// for `ready` in its log.
fn start_server(ns: &NetNs, db: &Postgres, log: &Path, ready: &str) -> LabProcess {
    let mut command = ns.command(NETBOOT);
    command
        .args(["dhcp", "--dhcp", "authoritative", "--interface", "eth0"])
        .args(["--pool", POOL, "--lease-time", "3600"])
        .args(["--lease-store", &db.url()])
        .env("RUST_LOG", "info");
    LabProcess::spawn_ready(command, log.to_path_buf(), ready)
}

/// Runs busybox `udhcpc` once on `eth0` in `ns` (asking for `requested`, if given) and
/// returns the address it was given, or `None` when no server answered within `tries`
/// rounds of one second.
fn udhcpc(ns: &NetNs, dir: &Path, requested: Option<Ipv4Addr>, tries: u32) -> Option<Ipv4Addr> {
    let script = dir.join("script");
    let bound = dir.join("bound.env");
    let _ = std::fs::remove_file(&bound);
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv > '{}'/\"$1\".env\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = ns.command("busybox");
    command
        .args([
            "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-T", "1", "-A", "1",
        ])
        .args(["-t", &tries.to_string(), "-s"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ip) = requested {
        command.args(["-r", &ip.to_string()]);
    }
    let mut client = ChildGuard::spawn(&mut command);
    let status = client.wait_timeout(Duration::from_secs(u64::from(tries) * 3 + 10));
    if !status.is_some_and(|s| s.success()) {
        return None;
    }
    let text = std::fs::read_to_string(&bound).ok()?;
    let env: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    env.get("ip")?.parse().ok()
}

/// Which server (`a` or `b`, by its recorded name) granted `mac`'s lease, and the address.
fn lease_in_db(db: &Postgres, mac: &str) -> Option<(String, Ipv4Addr)> {
    let row = db.psql(&format!(
        "SELECT host(ip), server FROM pxe_leases WHERE mac = '{mac}'"
    ));
    let (ip, server) = row.trim().split_once('|')?;
    Some((server.to_string(), ip.parse().ok()?))
}

/// Every bound address has one holder and every holder one address (the schema enforces
/// it; this checks what the servers left).
fn assert_unique_in_db(db: &Postgres) -> usize {
    let counts =
        db.psql("SELECT count(*), count(DISTINCT mac), count(DISTINCT ip) FROM pxe_leases");
    let numbers: Vec<usize> = counts
        .trim()
        .split('|')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        numbers[0], numbers[1],
        "a client holds two addresses: {counts}"
    );
    assert_eq!(
        numbers[0], numbers[2],
        "an address has two holders: {counts}"
    );
    numbers[0]
}

/// perfdhcp's counters (summed over its exchange types).
/// perfdhcp at a low rate (this is about correctness on a shared machine;
/// `scripts/bench-dhcp` measures): 2000 clients with MACs from `base`, direct on `eth0`
/// (both servers answer, each offering the same address, so perfdhcp's uniqueness check
/// would count the second offer: the servers' own ACK lines are checked instead).
fn direct_load(seconds: u32, base: &str) -> Perfdhcp {
    Perfdhcp::direct("eth0")
        .rate(30)
        .clients(2000)
        .seconds(seconds)
        .base_mac(base)
}

/// As [`direct_load`], relayed from `relay` (giaddr) to one `server`, whose uniqueness
/// perfdhcp checks.
fn relayed_load(seconds: u32, base: &str, relay: &str, server: &str) -> Perfdhcp {
    Perfdhcp::relayed(relay, server)
        .rate(30)
        .clients(2000)
        .seconds(seconds)
        .base_mac(base)
        .unique()
}

/// Every DHCPACK the servers logged (their `dhcp` story lines): no address acknowledged to
/// two clients. Nothing is released in this test and every lease outlives it, so a second
/// holder would be a duplicate. Returns how many ACKs there were.
fn assert_acks_unique(logs: &[String]) -> usize {
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut acks = 0;
    for log in logs {
        for line in log.lines().filter(|l| l.contains("reply=DHCPACK")) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(str::to_string)
            };
            let (Some(mac), Some(ip)) = (field("mac="), field("address=")) else {
                continue;
            };
            acks += 1;
            if let Some(other) = holder.insert(ip.clone(), mac.clone()) {
                assert_eq!(other, mac, "{ip} acknowledged to {other} and {mac}");
            }
        }
    }
    acks
}

#[test]
fn two_servers_one_database() {
    if !prerequisites(
        "two_servers_one_database",
        true,
        &["ip", "busybox", "perfdhcp"],
    ) {
        return;
    }
    let Some(db) = Postgres::start("two_servers_one_database") else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let mut segment = Segment::new();
    let ns_a = segment.attach("fl-a", Some("198.18.0.1/16"), None);
    let ns_b = segment.attach("fl-b", Some("198.18.0.2/16"), None);
    let clients: Vec<(NetNs, String)> = (0..3)
        .map(|n| {
            let mac = format!("02:00:5e:00:54:{n:02x}");
            (segment.attach(&format!("fl-c{n}"), None, Some(&mac)), mac)
        })
        .collect();
    // perfdhcp needs an address on its interface (outside the pool).
    let load = segment.attach("fl-load", Some("198.18.0.9/16"), None);
    let serving = "netboot dhcp serving";
    let server_a = start_server(&ns_a, &db, &logs.path().join("a.log"), serving);
    let server_b = start_server(&ns_b, &db, &logs.path().join("b.log"), serving);

    // Every client gets exactly one address, and the database agrees.
    let mut given = HashMap::new();
    for (ns, mac) in &clients {
        let dir = tempfile::tempdir().unwrap();
        let ip = udhcpc(ns, dir.path(), None, 8).unwrap_or_else(|| panic!("{mac}: no lease"));
        assert_eq!(lease_in_db(&db, mac).map(|(_, ip)| ip), Some(ip), "{mac}");
        given.insert(mac.clone(), ip);
    }
    let mut addresses: Vec<_> = given.values().collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), clients.len(), "{given:?}");
    assert_eq!(assert_unique_in_db(&db), clients.len());

    // Load through both servers at once, direct (every client hears both) and relayed (a
    // relay per server, as a router with two helper addresses would be, each its own clients).
    let direct = direct_load(3, "00:0c:01:00:00:00").run(&load);
    assert!(direct.received > 0, "{direct:?}");
    load.ip(&["addr", "add", "198.18.0.10/16", "dev", "eth0"]);
    let (relayed_a, relayed_b) = std::thread::scope(|scope| {
        let b = scope
            .spawn(|| relayed_load(3, "00:0d:01:00:00:00", "198.18.0.10", "198.18.0.2").run(&load));
        let a = relayed_load(3, "00:0e:01:00:00:00", "198.18.0.9", "198.18.0.1").run(&load);
        (a, b.join().expect("perfdhcp thread"))
    });
    for report in [&relayed_a, &relayed_b] {
        assert!(report.received > 0, "{report:?}");
        assert_eq!(report.non_unique, 0, "{report:?}");
    }
    assert_acks_unique(&[server_a.log_text(), server_b.log_text()]);
    assert_unique_in_db(&db);

    // Kill -9 the server that granted client 0's lease while load runs; the other keeps
    // serving, renews that lease (same address) and serves the load.
    let (granter, ip0) = lease_in_db(&db, &clients[0].1).unwrap();
    let mut background = ChildGuard::spawn(
        load.command("perfdhcp")
            .args(direct_load(4, "00:0f:01:00:00:00").args())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(1500));
    // Servers record themselves as HOST/ADDRESS.
    let killed_log = if granter.ends_with("/198.18.0.1") {
        server_a.log_text()
    } else {
        server_b.log_text()
    };
    let (survivor_name, mut survivor) = if granter.ends_with("/198.18.0.1") {
        drop(server_a);
        ("b", server_b)
    } else {
        assert!(granter.ends_with("/198.18.0.2"), "{granter}");
        drop(server_b);
        ("a", server_a)
    };
    let _ = background.wait_timeout(Duration::from_secs(15));
    let dir = tempfile::tempdir().unwrap();
    let renewed = udhcpc(&clients[0].0, dir.path(), Some(ip0), 8);
    assert_eq!(
        renewed,
        Some(ip0),
        "the surviving server ({survivor_name}) did not renew"
    );
    let survivor_ip = if survivor_name == "a" {
        "198.18.0.1"
    } else {
        "198.18.0.2"
    };
    let after = relayed_load(2, "00:0c:02:00:00:00", "198.18.0.9", survivor_ip).run(&load);
    assert!(
        after.received > 0,
        "the surviving server serves no load: {after:?}"
    );
    assert_eq!(after.non_unique, 0, "{after:?}");
    assert_acks_unique(&[killed_log.clone(), survivor.log_text()]);
    assert_unique_in_db(&db);
    // Nothing the killed server granted is lost: each client it acknowledged still holds
    // that address in the database.
    let leases: HashMap<String, String> = db
        .psql("SELECT mac, host(ip) FROM pxe_leases")
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(mac, ip)| (mac.to_string(), ip.to_string()))
        .collect();
    let mut granted = 0;
    for line in killed_log.lines().filter(|l| l.contains("reply=DHCPACK")) {
        let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name));
        if let (Some(mac), Some(ip)) = (field("mac="), field("address=")) {
            granted += 1;
            assert_eq!(
                leases.get(mac).map(String::as_str),
                Some(ip),
                "{mac}'s lease"
            );
        }
    }
    assert!(granted > 0, "the killed server granted nothing");

    // PostgreSQL stops: no answer (no guessed address), one clear line; back: served again.
    db.stop();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(udhcpc(&clients[1].0, dir.path(), None, 3), None);
    assert_eq!(udhcpc(&clients[2].0, dir.path(), None, 2), None);
    let log = survivor.log_text();
    assert_eq!(
        log.matches("go unanswered until it is back").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    // A server started now waits for the database, saying so.
    let ns_c = segment.attach("fl-d", Some("198.18.0.3/16"), None);
    let mut late = start_server(
        &ns_c,
        &db,
        &logs.path().join("c.log"),
        "waiting for the lease database",
    );
    assert!(!late.log_text().contains(serving));
    db.start_again();
    assert!(
        late.wait_for_log(serving, Duration::from_secs(30))
            .is_some(),
        "the late server did not start once the database was back:\n{}",
        late.log_text()
    );
    let ip1 = udhcpc(&clients[1].0, dir.path(), None, 8);
    assert_eq!(
        ip1,
        Some(given[&clients[1].1]),
        "served again, with its address"
    );
    assert!(
        survivor
            .wait_for_log("lease store reachable again", Duration::from_secs(5))
            .is_some()
            || late.log_text().contains("dhcp"),
        "{}",
        survivor.log_text()
    );
    assert!(
        assert_acks_unique(&[killed_log, survivor.log_text(), late.log_text()]) > clients.len()
    );
    assert!(assert_unique_in_db(&db) >= clients.len());
}
