//! `netboot dhcp` as the only DHCP server of a segment, configured from the command line the
//! way the README shows: a real client (busybox `udhcpc`) with a reserved MAC gets the
//! reserved address, its host name (option 12), the domain (15), DNS servers (6), the router
//! of its subnet (3) and the lease time; a client without a reservation gets a pool address
//! and no host name.
//!
//! Needs root, `ip` and `busybox`; skips without them outside CI.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pxe_testkit::lab::LabProcess;
use pxe_testkit::{prerequisites, ChildGuard, NetNs};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");

/// Starts `netboot dhcp ARGS` in `ns` (its log in `dir`) and returns once it logged that it
/// serves.
fn start_netboot(ns: &NetNs, dir: &Path, args: &[&str]) -> LabProcess {
    let mut command = ns.command(NETBOOT);
    command.arg("dhcp").args(args).env("RUST_LOG", "info");
    LabProcess::spawn_ready(command, dir.join("netboot.log"), "netboot dhcp serving")
}

/// Runs `udhcpc` once on `interface` in `ns` and returns what it told its script on `bound`.
fn udhcpc_lease(ns: &NetNs, interface: &str, dir: &Path) -> HashMap<String, String> {
    let script = dir.join("script");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv > '{}'/\"$1\".env\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = ns.command("busybox");
    command
        .args([
            "udhcpc", "-i", interface, "-f", "-q", "-n", "-t", "8", "-T", "1",
        ])
        .args(["-A", "1", "-s"])
        .arg(&script)
        .args(["-O", "12", "-O", "15"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut udhcpc = ChildGuard::spawn(&mut command);
    let status = udhcpc.wait_timeout(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "udhcpc on {interface} got no lease ({status:?})"
    );
    let text = std::fs::read_to_string(dir.join("bound.env")).expect("a `bound` event");
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn reservations_host_names_and_site_options_reach_a_real_client() {
    if !prerequisites(
        "reservations_host_names_and_site_options_reach_a_real_client",
        true,
        &["ip", "busybox"],
    ) {
        return;
    }
    let server = NetNs::new("nd-srv");
    let reserved = NetNs::new("nd-res");
    let other = NetNs::new("nd-oth");
    server.ip(&["link", "add", "br0", "type", "bridge"]);
    server.ip(&["addr", "add", "192.0.2.1/24", "dev", "br0"]);
    server.ip(&["link", "set", "br0", "up"]);
    for (client, server_end, client_end, mac) in [
        (&reserved, "ndr0", "ndrc0", "02:00:5e:00:53:10"),
        (&other, "ndo0", "ndoc0", "02:00:5e:00:53:11"),
    ] {
        server.link(server_end, None, client, client_end, None);
        server.ip(&["link", "set", server_end, "master", "br0"]);
        client.ip(&["link", "set", client_end, "address", mac]);
    }
    let logs = tempfile::tempdir().unwrap();
    let _netboot = start_netboot(
        &server,
        logs.path(),
        &[
            "--dhcp",
            "authoritative",
            "--interface",
            "br0",
            "--pool",
            "192.0.2.100-192.0.2.199",
            "--pool",
            "198.18.7.10-198.18.7.20/24",
            "--router",
            "198.18.7.1",
            "--router",
            "192.0.2.254",
            "--dns",
            "192.0.2.53",
            "--dns",
            "192.0.2.54",
            "--domain",
            "lab.example",
            "--lease-time",
            "900",
            "--reserve",
            "02:00:5e:00:53:10=192.0.2.10,node-10",
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let lease = udhcpc_lease(&reserved, "ndrc0", dir.path());
    let get = |lease: &HashMap<String, String>, key: &str| lease.get(key).cloned();
    assert_eq!(
        get(&lease, "ip").as_deref(),
        Some("192.0.2.10"),
        "{lease:?}"
    );
    assert_eq!(
        get(&lease, "hostname").as_deref(),
        Some("node-10"),
        "{lease:?}"
    );
    assert_eq!(
        get(&lease, "domain").as_deref(),
        Some("lab.example"),
        "{lease:?}"
    );
    assert_eq!(
        get(&lease, "dns").map(|d| d.trim().to_string()).as_deref(),
        Some("192.0.2.53 192.0.2.54"),
        "{lease:?}"
    );
    assert_eq!(
        get(&lease, "router").as_deref(),
        Some("192.0.2.254"),
        "{lease:?}"
    );
    assert_eq!(get(&lease, "lease").as_deref(), Some("900"), "{lease:?}");

    let dir = tempfile::tempdir().unwrap();
    let lease = udhcpc_lease(&other, "ndoc0", dir.path());
    let ip: std::net::Ipv4Addr = get(&lease, "ip").unwrap().parse().unwrap();
    assert!(
        (100..=199).contains(&ip.octets()[3]) && ip.octets()[..3] == [192, 0, 2],
        "{lease:?}"
    );
    assert_eq!(get(&lease, "hostname"), None, "{lease:?}");
    assert_eq!(get(&lease, "domain").as_deref(), Some("lab.example"));
}

#[test]
fn configuration_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    let run = |args: &[&str]| {
        let output = Command::new(NETBOOT).args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("netboot: error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    // A relative kernel path with no --root fails at start, not as a 404 at boot.
    std::fs::write(
        &site,
        "[profiles.a]\nkernel = \"vmlinuz\"\n[[groups]]\nprofile = \"a\"\n",
    )
    .unwrap();
    let error = run(&["check", "--config", site.to_str().unwrap()]);
    assert!(error.contains("--root"), "{error}");
    // A bad setting in [server] names the file and line.
    std::fs::write(
        &site,
        "[server]\ndhcp = \"authoritative\"\npool = [\"192.0.2.9\"]\n",
    )
    .unwrap();
    let error = run(&["check", "--config", site.to_str().unwrap()]);
    assert!(error.contains("site.toml:3:"), "{error}");
    // Settings that only mean something together are checked together.
    let error = run(&[
        "dhcp",
        "--dhcp",
        "authoritative",
        "--pool",
        "192.0.2.100-192.0.2.199",
        "--router",
        "198.18.0.1",
    ]);
    assert!(
        error.contains("--router 198.18.0.1 is in no --pool's subnet"),
        "{error}"
    );
    let error = run(&[
        "dhcp",
        "--dhcp",
        "proxy",
        "--reserve",
        "02:00:00:00:00:01=192.0.2.5",
    ]);
    assert!(
        error.contains("only used with --dhcp authoritative"),
        "{error}"
    );
}

#[test]
fn the_sample_site_file_checks_clean() {
    let ipxe = tempfile::tempdir().unwrap();
    for binary in ["undionly.kpxe", "snponly.efi"] {
        std::fs::write(ipxe.path().join(binary), b"ipxe").unwrap();
    }
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("site.toml");
    let output = Command::new(NETBOOT)
        .arg("check")
        .arg("--config")
        .arg(&sample)
        .arg("--ipxe-dir")
        .arg(ipxe.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("table"), "{stdout}");
    assert!(
        stdout.contains("subnet 198.18.1.0/24: pool 198.18.1.100-198.18.1.199, router 198.18.1.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reserve 52:54:00:12:34:56 = 192.0.2.10 (web-01)"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: netboot serve would start"), "{stdout}");
}
