//! `netboot boot --metrics`: a UEFI VM (OVMF's own PXE, case 3) boots through netboot in the
//! lab, and the Prometheus endpoint, scraped with curl inside the lab's namespace, counts
//! what that boot did: EDK2's and iPXE's DISCOVER/REQUEST answered with OFFER/ACK, one client
//! seen as firmware PXE and as chainloaded iPXE, one lease in use, exactly one TFTP download
//! of snponly.efi (its size in bytes), the script and the kernel and initrd over HTTP with
//! 200 (their sizes in bytes), and the policy's decisions timed. Leases are journaled, so each
//! ACK waits for its journal write (the path a site runs): it is counted once it has left.

use std::net::SocketAddr;
use std::time::Duration;

use pxe_testkit::cases::{BootCase, IPXE_DIR};
use pxe_testkit::lab::{vm_prerequisites, Lab, LabProcess, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const METRICS_PORT: u16 = 9420;

/// The metrics text, fetched with curl inside the lab's namespace.
fn scrape(lab: &Lab, addr: SocketAddr) -> String {
    let output = lab
        .ns()
        .command("curl")
        .args(["-sS", "--fail", "--max-time", "10"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl http://{addr}/metrics failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the metrics are text")
}

/// The value of the sample `series` (its name and labels as rendered); 0 when the series is
/// absent (a counter that never moved).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{series}: not a number: {value}"))
        })
        .unwrap_or(0.0)
}

fn file_size(path: impl AsRef<std::path::Path>) -> f64 {
    std::fs::metadata(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
        .len() as f64
}

#[test]
fn metrics_count_what_one_uefi_pxe_boot_did() {
    let case = BootCase::UefiPxeChainSnponly;
    let firmware = case.firmware();
    let mut tools = PAYLOAD_TOOLS.to_vec();
    tools.push("curl");
    if !vm_prerequisites(
        "metrics_count_what_one_uefi_pxe_boot_did",
        &[firmware],
        &tools,
    ) {
        return;
    }
    let payload = boot_payload();
    let lab = Lab::new("mt");
    let metrics = SocketAddr::new(lab.server_addr().into(), METRICS_PORT);
    let cmdline = format!(
        "console=ttyS0 pxe.case={} pxe.server=metrics",
        case.number()
    );
    let mut command = lab.ns().command(NETBOOT);
    command
        .arg("boot")
        .arg(&payload.kernel)
        .arg(&payload.initrd)
        .args(["--cmdline", &cmdline])
        .args(["--listen", &lab.server_addr().to_string()])
        .args(["--interface", lab.bridge()])
        .arg("--ipv6-ra")
        .args(["--ipxe-dir", IPXE_DIR])
        .args([
            "--dhcp",
            "authoritative",
            "--pool",
            "192.0.2.100-192.0.2.199",
        ])
        .args(["--metrics", &metrics.to_string()])
        .env("RUST_LOG", "debug");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");

    // Before any client: the endpoint answers, nothing is counted, the whole pool is free.
    let before = scrape(&lab, metrics);
    // (A labelled family shows no lines until its first sample.)
    assert!(
        before.contains("# TYPE pxe_tftp_transfers_started_total counter"),
        "{before}"
    );
    assert_eq!(value(&before, "pxe_tftp_transfers_started_total"), 0.0);
    let subnet = r#"{subnet="192.0.2.0/24"}"#;
    assert_eq!(
        value(&before, &format!("pxe_dhcp_leases_free{subnet}")),
        100.0,
        "{before}"
    );

    let mut vm = lab.vm(&VmConfig::new(firmware).uuid(&case.uuid()));
    payload.assert_boots(&mut vm, &cmdline, BOOT_TIMEOUT, || server.log_text());

    let text = scrape(&lab, metrics);
    // The scrape, for the record (`--nocapture`), without the histogram's buckets.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
    {
        println!("metrics after the boot: {line}");
    }
    let at = |series: &str| value(&text, series);
    let context = || {
        format!(
            "--- metrics ---\n{text}\n--- netboot ---\n{}",
            server.log_text()
        )
    };

    // DHCP: EDK2, then the iPXE it was given, each DISCOVER → OFFER and REQUEST → ACK (more
    // when a client retransmits), and nothing NAKed.
    let dhcp = |t: &str, o: &str| {
        at(&format!(
            r#"pxe_dhcp_requests_total{{type="{t}",outcome="{o}"}}"#
        ))
    };
    assert!(dhcp("discover", "offer") >= 2.0, "{}", context());
    assert!(dhcp("request", "ack") >= 2.0, "{}", context());
    assert_eq!(dhcp("request", "nak"), 0.0, "{}", context());
    // One machine, seen at two boot stages.
    assert_eq!(
        at(r#"pxe_clients_seen_total{kind="firmware-pxe"}"#),
        1.0,
        "{}",
        context()
    );
    assert_eq!(
        at(r#"pxe_clients_seen_total{kind="chainloaded-ipxe"}"#),
        1.0,
        "{}",
        context()
    );
    assert_eq!(at(r#"pxe_clients_seen_total{kind="firmware-ipxe"}"#), 0.0);
    // Both stages share one lease (keyed on the MAC).
    assert_eq!(
        at(&format!("pxe_dhcp_leases_in_use{subnet}")),
        1.0,
        "{}",
        context()
    );
    assert_eq!(
        at(&format!("pxe_dhcp_leases_free{subnet}")),
        99.0,
        "{}",
        context()
    );

    // TFTP: EDK2 probes snponly.efi's size, then downloads it once.
    let completed = at(r#"pxe_tftp_transfers_finished_total{outcome="completed"}"#);
    let probes = at(r#"pxe_tftp_transfers_finished_total{outcome="size_probe"}"#);
    let failed = at(r#"pxe_tftp_transfers_finished_total{outcome="failed"}"#);
    assert_eq!(completed, 1.0, "{}", context());
    assert_eq!(
        at("pxe_tftp_transfers_started_total"),
        completed + probes + failed,
        "{}",
        context()
    );
    assert_eq!(
        at("pxe_tftp_sent_bytes_total"),
        file_size(format!("{IPXE_DIR}/snponly.efi")),
        "{}",
        context()
    );

    // HTTP: the script (the bootstrap, then the one for this client), and the kernel and
    // initrd once each, whole.
    assert!(at(r#"pxe_http_requests_total{route="script",status="200"}"#) >= 1.0);
    assert_eq!(
        at(r#"pxe_http_requests_total{route="file",status="200"}"#),
        2.0,
        "{}",
        context()
    );
    assert_eq!(
        at(r#"pxe_http_sent_bytes_total{route="file"}"#),
        file_size(&payload.kernel) + file_size(&payload.initrd),
        "{}",
        context()
    );
    assert!(at(r#"pxe_http_sent_bytes_total{route="script"}"#) > 0.0);

    // The policy was asked at both stages, and each answer was timed.
    assert!(at(r#"pxe_policy_decision_duration_seconds_count{stage="boot"}"#) >= 2.0);
    assert!(at(r#"pxe_policy_decision_duration_seconds_count{stage="script"}"#) >= 1.0);
}
