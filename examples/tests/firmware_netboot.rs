//! Real firmware booting through `netboot boot` end to end: every firmware case (testkit::BootCase) in
//! authoritative mode, and cases 1 and 3 in proxy mode beside a site DHCP server (dnsmasq
//! with no PXE options). QEMU (TCG) in a lab namespace; a case passes only when the payload's
//! marker reaches the serial console and the kernel command line it prints is the one given,
//! verbatim, although it holds what iPXE's parser treats as syntax.
//!
//! Each case prints its time from VM start to the marker (`record_boot_time`), beside the
//! dnsmasq + nginx reference boots of `firmware_reference.rs`. Time is never asserted.
//! netboot runs with `--ipv6-ra`, as a user who wants the fastest boot on a segment without
//! an IPv6 router would.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use pxe_testkit::cases::{record_boot_time, BootCase, DhcpMode, IPXE_DIR, SYNTAX_CMDLINE};
use pxe_testkit::lab::{vm_prerequisites, Lab, LabProcess, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};
use pxe_testkit::reference::Dnsmasq;

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The command line each case boots with: the console, the case, and testkit's
/// [`SYNTAX_CMDLINE`], full of what iPXE's parser would take as syntax.
fn hostile_cmdline(case: BootCase) -> String {
    format!(
        "console=ttyS0 pxe.case={} pxe.server=netboot {SYNTAX_CMDLINE}",
        case.number()
    )
}

/// Starts netboot inside the lab (its log in the lab's directory) and waits for its start line.
fn start_netboot(command: Command, lab: &Lab) -> LabProcess {
    LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving")
}

fn netboot_boot(case: BootCase, mode: DhcpMode) {
    let test = format!("netboot_case_{}_{mode}", case.number());
    let firmware = case.firmware();
    let mut tools = PAYLOAD_TOOLS.to_vec();
    if mode == DhcpMode::Proxy {
        tools.push("dnsmasq");
    }
    if !vm_prerequisites(&test, &[firmware], &tools) {
        return;
    }
    let _one_at_a_time = ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let payload = boot_payload();
    let mut lab = Lab::new(&format!("nb{}", case.number()));
    let cmdline = hostile_cmdline(case);

    let site = (mode == DhcpMode::Proxy)
        .then(|| Dnsmasq::start_site(&mut lab, &format!("nb{}", case.number())));

    let mut command = lab.ns().command(NETBOOT);
    command
        .arg("boot")
        .arg(&payload.kernel)
        .arg(&payload.initrd)
        .args(["--cmdline", &cmdline])
        .args(["--listen", &lab.server_addr().to_string()])
        .args(["--interface", lab.bridge()])
        // A router-lifetime-0 RA ends iPXE's ~13 s wait for an IPv6 router on every `dhcp`.
        .arg("--ipv6-ra")
        .args(["--ipxe-dir", IPXE_DIR])
        .env("RUST_LOG", "debug");
    if case == BootCase::BiosChainUndionly {
        // Case 2: the ROM iPXE is replaced by undionly.kpxe (the loop must still be broken).
        command.arg("--chainload-ipxe-rom");
    }
    match mode {
        DhcpMode::Authoritative => {
            command.args([
                "--dhcp",
                "authoritative",
                "--pool",
                "192.0.2.100-192.0.2.199",
            ]);
        }
        DhcpMode::Proxy => {
            command.args(["--dhcp", "proxy"]);
        }
    }
    let server = start_netboot(command, &lab);

    let mut vm = lab.vm(&VmConfig::new(firmware).uuid(&case.uuid()));
    let elapsed = payload.assert_boots(&mut vm, &cmdline, BOOT_TIMEOUT, || {
        format!(
            "{case} ({firmware}, {mode})\n{}\n--- site dnsmasq ---\n{}",
            server.log_text(),
            site.as_ref().map(Dnsmasq::log).unwrap_or_default(),
        )
    });
    // The path taken: the iPXE binary over TFTP where the case chains over TFTP (EDK2 probes
    // its size first), and the script, kernel and initrd over HTTP, in order.
    let log = server.log_text();
    if let Some(binary) = case.chained_ipxe() {
        let over = if case.chains_over_tftp() {
            "tftp download"
        } else {
            "http"
        };
        assert!(
            log.lines().any(|l| l.contains(over) && l.contains(binary)),
            "{case}: no {over} of {binary} in netboot's log:\n{log}"
        );
    }
    // The script (its line names the MAC), then kernel and initrd.
    pxe_testkit::assert_in_order(&log, &["http script", "/boot/0/", "/boot/1/"], &case);
    // The script stage knows which iPXE asks: the NIC's ROM, or the build netboot chained.
    let ipxe = if case.chained_ipxe().is_some() {
        "client=chainloaded-ipxe"
    } else {
        "client=firmware-ipxe"
    };
    let script_line = log
        .lines()
        .find(|line| line.contains("http script"))
        .expect("a script line");
    assert!(
        script_line.contains(ipxe),
        "{case}: not {ipxe}: {script_line}"
    );
    // One grep follows the machine: the kernel's HTTP line, and the TFTP download of its iPXE
    // (whose address the DHCP stage recorded), name its MAC.
    let mac = format!("mac={}", pxe_testkit::lab::format_mac(vm.mac()));
    for (what, needle) in [
        ("kernel download", "/boot/0/"),
        ("tftp download", "tftp download"),
    ] {
        if needle == "tftp download" && !case.chains_over_tftp() {
            continue;
        }
        let line = log
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("{case}: no {what} line in netboot's log:\n{log}"));
        assert!(
            line.contains(&mac),
            "{case}: the {what} line does not name {mac}: {line}"
        );
    }
    if let Some(site) = &site {
        // The address came from the site server, the boot from the proxy.
        site.assert_leased_to(vm.mac(), &case);
    }
    record_boot_time("netboot", case, mode, elapsed);
}

#[test]
fn netboot_case_1_bios_ipxe_rom_http() {
    netboot_boot(BootCase::BiosIpxeRom, DhcpMode::Authoritative);
}

#[test]
fn netboot_case_2_bios_tftp_undionly_then_http() {
    netboot_boot(BootCase::BiosChainUndionly, DhcpMode::Authoritative);
}

#[test]
fn netboot_case_3_uefi_pxe_tftp_snponly_then_http() {
    netboot_boot(BootCase::UefiPxeChainSnponly, DhcpMode::Authoritative);
}

#[test]
fn netboot_case_4_uefi_ipxe_rom_http() {
    netboot_boot(BootCase::UefiIpxeRom, DhcpMode::Authoritative);
}

#[test]
fn netboot_case_5_uefi_http_boot_snponly() {
    netboot_boot(BootCase::UefiHttpBoot, DhcpMode::Authoritative);
}

#[test]
fn netboot_case_1_proxy_beside_site_dhcp() {
    netboot_boot(BootCase::BiosIpxeRom, DhcpMode::Proxy);
}

#[test]
fn netboot_case_3_proxy_beside_site_dhcp() {
    netboot_boot(BootCase::UefiPxeChainSnponly, DhcpMode::Proxy);
}

/// Runs `netboot boot KERNEL ARGS…` with a stand-in kernel, DHCP off and ports nobody may use
/// (so that a failure to refuse shows as a different error); it must fail. Its stderr.
fn netboot_boot_refuses(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"kernel").unwrap();
    let output = Command::new(NETBOOT)
        .arg("boot")
        .arg(&kernel)
        .args(args)
        .args(["--tftp-port", "1", "--http-port", "1", "--dhcp", "off"])
        .output()
        .expect("run netboot");
    assert!(!output.status.success(), "netboot accepted {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `${…}` sequence is expanded by iPXE wherever it appears, so no script can carry it to
/// the kernel: `netboot boot` refuses it with a clear error before serving anything.
#[test]
fn cmdline_ipxe_cannot_carry_is_refused_before_serving() {
    let stderr = netboot_boot_refuses(&["--cmdline", "console=ttyS0 root=${root}"]);
    assert!(
        stderr.contains("cannot be given to iPXE") && stderr.contains("${root}"),
        "unclear error: {stderr}"
    );
}

/// `--ipv6-ra` announces on one interface, so it needs `--interface`: refused without it,
/// before anything is served.
#[test]
fn ipv6_ra_without_interface_is_refused() {
    let stderr = netboot_boot_refuses(&["--cmdline", "console=ttyS0", "--ipv6-ra"]);
    assert!(stderr.contains("--interface"), "unclear error: {stderr}");
}

/// QEMU's iPXE ROM says in its DHCP request (option 175) that it has no HTTPS, and its script
/// request over HTTP cannot say so. A policy that names an `https://` kernel must still never
/// reach it: netboot carries the DHCP stage's features to the script request and refuses to
/// render the script, naming the client.
#[test]
fn https_kernel_is_refused_to_an_ipxe_without_https() {
    let test = "https_kernel_is_refused_to_an_ipxe_without_https";
    let case = BootCase::BiosIpxeRom;
    if !vm_prerequisites(test, &[case.firmware()], &[]) {
        return;
    }
    let _one_at_a_time = ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let lab = Lab::new("nbhttps");
    let table = lab.dir().join("site.toml");
    std::fs::write(
        &table,
        "[profiles.secure]\nkernel = \"https://192.0.2.1/vmlinuz\"\ncmdline = \"console=ttyS0\"\n\n\
         [[groups]]\nprofile = \"secure\"\n",
    )
    .unwrap();
    let mut command = lab.netboot_serve(NETBOOT, &table);
    command.arg("--ipv6-ra").env("RUST_LOG", "info");
    let mut server = start_netboot(command, &lab);
    let vm = lab.vm(&VmConfig::new(case.firmware()).uuid(&case.uuid()));
    const REFUSAL: &str = "cannot render the policy's script";
    let log = server
        .wait_for_log(REFUSAL, BOOT_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "no refusal in netboot's log:\n{}\n--- console ---\n{}",
                server.log_text(),
                vm.console()
            )
        });
    let refused = log
        .lines()
        .find(|line| line.contains(REFUSAL))
        .unwrap_or("");
    let mac = pxe_testkit::lab::format_mac(vm.mac());
    assert!(
        refused.contains("no HTTPS support") && refused.contains(&mac),
        "the refusal does not name the reason and the client ({mac}): {refused}"
    );
    // iPXE was answered with an error, not with a script.
    pxe_testkit::assert_in_order(&log, &[REFUSAL, "status=500"], &case);
}
