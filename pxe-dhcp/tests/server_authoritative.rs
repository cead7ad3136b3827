//! Authoritative mode against real clients (ISC dhclient, busybox udhcpc) inside network
//! namespaces: a lease with the boot file, renewal across a server restart, and release.

// Drives the tokio server: built only with the `server` feature.
#![cfg(feature = "server")]

mod server_lab;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use std::time::Duration;

use pxe_dhcp::server::{DhcpServer, DhcpServerBuilder};
use pxe_policy::{BootEveryone, LinuxBoot, SharedPolicy};
use pxe_testkit::{prerequisites, ChildGuard, NetNs};
use server_lab::{journal_binds, server_and_client, wait_for, RunningServer, SERVER_IP};

const PXE_BIOS_CLASS: &str = "PXEClient:Arch:00000:UNDI:002001";

fn authoritative(lease_file: &Path, lease_secs: u64) -> impl FnOnce() -> DhcpServerBuilder {
    let lease_file = lease_file.to_path_buf();
    move || {
        let subnet = server_lab::lab_subnet()
            .router(SERVER_IP)
            .lease_time(Duration::from_secs(lease_secs));
        DhcpServer::builder(SharedPolicy::new(BootEveryone(LinuxBoot::new("vmlinuz"))))
            .authoritative(vec![subnet])
            .lease_file(lease_file)
    }
}

/// A client hook script that records each event's environment and applies the address.
fn write_hook(dir: &Path, ip_var: &str, mask_var: &str) -> std::path::PathBuf {
    let path = dir.join("hook.sh");
    let script = format!(
        "#!/bin/sh\n\
         env | sort > \"{dir}/event.$$\"\n\
         mv \"{dir}/event.$$\" \"{dir}/event-$(date +%s%N)-${{reason:-$1}}\"\n\
         case \"${{reason:-$1}}\" in\n\
           BOUND|RENEW|REBIND|REBOOT|bound|renew)\n\
             ip addr flush dev \"$interface\"\n\
             ip addr add \"{ip_var}/{mask_var}\" dev \"$interface\" ;;\n\
           RELEASE|EXPIRE|STOP|deconfig)\n\
             ip addr flush dev \"$interface\" ;;\n\
         esac\n\
         exit 0\n",
        dir = dir.display(),
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The environments the hook recorded for events named `reason`, oldest first.
fn events(dir: &Path, reason: &str) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("event-") && name.ends_with(&format!("-{reason}")))
        .collect();
    names.sort();
    names
        .iter()
        .map(|name| std::fs::read_to_string(dir.join(name)).unwrap())
        .collect()
}

fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('\'').to_string())
}

fn interface_address(ns: &NetNs) -> Option<String> {
    let out = ns.ip(&["-4", "-o", "addr", "show", "dev", "cli0"]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(|cidr| cidr.split('/').next().unwrap_or_default().to_string())
}

/// Waits until the server's journal records a release.
fn wait_for_release(lease_file: &Path) {
    wait_for(
        "the release in the lease file",
        Duration::from_secs(10),
        || {
            let journal = std::fs::read_to_string(lease_file).unwrap_or_default();
            journal
                .lines()
                .any(|line| line.starts_with("free "))
                .then_some(())
        },
    );
}

#[test]
fn dhclient_lease_with_boot_file_renew_across_restart_and_release() {
    if !prerequisites("dhclient_lease", true, &["ip", "dhclient"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("server-leases");
    let (server_ns, client_ns) = server_and_client("dhcl");
    let hook = write_hook(dir.path(), "$new_ip_address", "$new_subnet_mask");
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        format!(
            "send vendor-class-identifier \"{PXE_BIOS_CLASS}\";\n\
             request subnet-mask, broadcast-address, routers;\n\
             timeout 30; retry 1; initial-interval 1;\n"
        ),
    )
    .unwrap();
    let client_leases = dir.path().join("dhclient.leases");
    let dhclient_args = |extra: &[&str]| {
        let mut command = client_ns.command("dhclient");
        command
            .args(extra)
            .arg("-cf")
            .arg(&conf)
            .arg("-lf")
            .arg(&client_leases)
            .arg("-pf")
            .arg(dir.path().join("dhclient.pid"))
            .arg("-sf")
            .arg(&hook)
            .arg("cli0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };

    let server = RunningServer::start(&server_ns, authoritative(&lease_file, 8));
    let _dhclient = ChildGuard::spawn(&mut dhclient_args(&["-d", "-v", "-4"]));
    let ip = wait_for("dhclient's lease", Duration::from_secs(30), || {
        interface_address(&client_ns)
    });
    let bound = events(dir.path(), "BOUND");
    let env = bound.first().expect("a BOUND event");
    assert_eq!(
        env_value(env, "new_ip_address").as_deref(),
        Some(ip.as_str())
    );
    assert_eq!(
        env_value(env, "new_filename").as_deref(),
        Some("undionly.kpxe")
    );
    assert_eq!(
        env_value(env, "new_dhcp_server_identifier").as_deref(),
        Some("192.0.2.1")
    );
    assert!(ip.starts_with("192.0.2."), "{ip}");
    assert_eq!(journal_binds(&lease_file).len(), 1);

    // Restart the server: the renewal (T1 = 4 s) is answered from the replayed lease file.
    drop(server);
    let _server = RunningServer::start(&server_ns, authoritative(&lease_file, 8));
    let renew = wait_for("a renewal", Duration::from_secs(20), || {
        events(dir.path(), "RENEW").into_iter().next()
    });
    assert_eq!(
        env_value(&renew, "new_ip_address").as_deref(),
        Some(ip.as_str())
    );
    let binds = journal_binds(&lease_file);
    assert!(binds.len() >= 2, "{binds:?}");
    assert!(binds.iter().all(|line| line.contains(&format!(" {ip} "))));

    // Release: the server records the address as free.
    drop(_dhclient);
    let status = dhclient_args(&["-r", "-v", "-4"]).status().unwrap();
    assert!(status.success());
    wait_for_release(&lease_file);
}

/// Starts udhcpc on `cli0` with `extra` arguments and the recording `hook`, and waits for
/// the address it applies.
fn udhcpc_lease(client_ns: &NetNs, hook: &Path, extra: &[&str]) -> (ChildGuard, String) {
    let udhcpc = ChildGuard::spawn(
        client_ns
            .command("udhcpc")
            .args(["-f", "-i", "cli0", "-t", "10", "-T", "1"])
            .args(extra)
            .arg("-s")
            .arg(hook)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let ip = wait_for("udhcpc's lease", Duration::from_secs(30), || {
        interface_address(client_ns)
    });
    (udhcpc, ip)
}

#[test]
fn udhcpc_lease_with_boot_file_renew_and_release() {
    if !prerequisites("udhcpc_lease", true, &["ip", "udhcpc"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("server-leases");
    let (server_ns, client_ns) = server_and_client("udhc");
    let hook = write_hook(dir.path(), "$ip", "$mask");
    let _server = RunningServer::start(&server_ns, authoritative(&lease_file, 3600));
    let (udhcpc, ip) = udhcpc_lease(&client_ns, &hook, &["-V", PXE_BIOS_CLASS]);
    let bound = events(dir.path(), "bound");
    let env = bound.first().expect("a bound event");
    assert_eq!(
        env_value(env, "boot_file").as_deref(),
        Some("undionly.kpxe")
    );
    assert_eq!(env_value(env, "siaddr").as_deref(), Some("192.0.2.1"));
    assert_eq!(env_value(env, "serverid").as_deref(), Some("192.0.2.1"));
    assert_eq!(env_value(env, "ip").as_deref(), Some(ip.as_str()));

    // SIGUSR1: renew now (a unicast REQUEST from the bound address).
    let pid = udhcpc.0.id().to_string();
    Command::new("kill").args(["-USR1", &pid]).status().unwrap();
    let renew = wait_for("a renewal", Duration::from_secs(15), || {
        events(dir.path(), "renew").into_iter().next()
    });
    assert_eq!(env_value(&renew, "ip").as_deref(), Some(ip.as_str()));
    assert!(journal_binds(&lease_file).len() >= 2);

    // SIGUSR2: release.
    Command::new("kill").args(["-USR2", &pid]).status().unwrap();
    wait_for_release(&lease_file);
    drop(udhcpc);
}

/// The reply packets udhcpc's namespace received, counted in its `prerouting` hook (before
/// any address is configured): `(to 255.255.255.255, to any other address)`.
fn dhcp_reply_counters(client_ns: &NetNs) -> (u64, u64) {
    let out = client_ns.run_checked("nft", &["list", "table", "ip", "dhcpdst"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |rule: &str| -> u64 {
        text.lines()
            .find(|line| line.contains(rule))
            .and_then(|line| line.split("packets ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter for `{rule}` in:\n{text}"))
    };
    (
        count("ip daddr 255.255.255.255 udp"),
        count("ip daddr != 255.255.255.255 udp"),
    )
}

/// RFC 2131 §4.1: no broadcast bit, no ciaddr, no giaddr: "the server unicasts DHCPOFFER and
/// DHCPACK messages to the client's hardware address and 'yiaddr' address". udhcpc clears
/// the bit unless given `-B`; the server adds the neighbour entry the client cannot answer
/// ARP for, and the client's namespace sees only unicast replies.
#[test]
fn udhcpc_without_broadcast_flag_gets_unicast_offer_and_ack() {
    if !prerequisites("udhcpc_unicast", true, &["ip", "udhcpc", "nft"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lease_file = dir.path().join("server-leases");
    let (server_ns, client_ns) = server_and_client("udun");
    client_ns.run_checked("nft", &["add", "table", "ip", "dhcpdst"]);
    let chain = "{ type filter hook prerouting priority -300 ; }";
    client_ns.run_checked("nft", &["add", "chain", "ip", "dhcpdst", "pre", chain]);
    for destination in ["255.255.255.255", "!= 255.255.255.255"] {
        let rule = format!("ip daddr {destination} udp dport 68 counter");
        client_ns.run_checked("nft", &["add", "rule", "ip", "dhcpdst", "pre", &rule]);
    }
    let hook = write_hook(dir.path(), "$ip", "$mask");
    let _server = RunningServer::start(&server_ns, authoritative(&lease_file, 3600));
    let (_udhcpc, ip) = udhcpc_lease(&client_ns, &hook, &[]);
    assert!(ip.starts_with("192.0.2."), "{ip}");
    let (broadcast, unicast) = dhcp_reply_counters(&client_ns);
    assert_eq!(broadcast, 0, "no reply was broadcast");
    assert!(
        unicast >= 2,
        "the OFFER and the ACK were unicast: {unicast}"
    );
}
