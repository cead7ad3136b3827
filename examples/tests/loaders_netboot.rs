//! Real firmware booting through `netboot boot --loader grub|pxelinux`: netboot's DHCP hands
//! the loader, its TFTP serves the loader's files and this client's config (rendered from the
//! policy's decision for the address the DHCP stage leased), and the kernel and initrd under
//! the paths the HTTP stage serves them at.
//!
//! - OVMF with Secure Boot enforced and Microsoft's keys → EDK2 PXE → `shimx64.efi` →
//!   `grubx64.efi` → `grub/grub.cfg` → Debian's signed kernel, which reports Secure Boot
//!   enabled and prints the command line verbatim.
//! - SeaBIOS with QEMU's iPXE ROM, taken as firmware (`--chainload-ipxe-rom`) → `pxelinux.0`
//!   → `pxelinux.cfg/01-<mac>` → kernel; the iPXE cases' syntax command line verbatim.
//! - The same Secure Boot firmware handed iPXE by a table (`loader = "ipxe"`): it downloads
//!   Debian's unsigned `snponly.efi` and refuses it, while a second machine that the same
//!   table gives `loader = "grub"` boots; netboot's log names what each MAC was handed.
//!
//! Each prints its time from VM start to the marker.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use pxe_testkit::cases::{IPXE_DIR, SYNTAX_CMDLINE};
use pxe_testkit::in_ci;
use pxe_testkit::lab::{vm_prerequisites, Firmware, Lab, LabProcess, Nic, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What GRUB can carry of the syntax line (no quotes: its `linux` escapes them) and iPXE too
/// (no `${`), for the clients that keep iPXE.
const GRUB_CMDLINE: &str = "console=ttyS0 #not-a-comment pxe.hash=#x && || ; pxe.amp=a&b \
                            pxe.pipe=a|b pxe.var=$root pxe.brace={y} pxe.if=if pxe.tail=end";

/// Debian's signed shim and network GRUB, with their packages: the Secure Boot path.
const SHIM_AND_GRUB: &[(&str, &str)] = &[
    ("/usr/lib/shim/shimx64.efi.signed", "shim-signed"),
    (
        "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
        "grub-efi-amd64-signed",
    ),
];

/// Whether the loader's files are installed: skip outside CI, fail in CI.
fn installed(test: &str, files: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = files
        .iter()
        .filter(|(path, _)| !std::path::Path::new(path).is_file())
        .map(|(path, package)| format!("{path} (Debian package {package})"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("SKIP {test}: needs {}", missing.join(", "));
    assert!(!in_ci(), "{reason}; CI must run every test");
    eprintln!("{reason}");
    false
}

/// Boots `firmware` through `netboot boot --loader LOADER` with `cmdline`; returns netboot's
/// log, the console and the time to the marker.
fn boot_through(
    label: &str,
    firmware: Firmware,
    loader: &str,
    cmdline: &str,
    extra: &[&str],
) -> (String, String, Duration) {
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new(label);
    let mut command = lab.ns().command(NETBOOT);
    command
        .arg("boot")
        .arg(&payload.kernel)
        .arg(&payload.initrd)
        .args(["--cmdline", cmdline])
        .args(["--loader", loader])
        .args(["--listen", &lab.server_addr().to_string()])
        .args(["--interface", lab.bridge()])
        .args(["--ipxe-dir", IPXE_DIR])
        .args([
            "--dhcp",
            "authoritative",
            "--pool",
            "192.0.2.100-192.0.2.199",
        ])
        .args(extra)
        .env("RUST_LOG", "debug");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");
    let mut vm = lab.vm(&VmConfig::new(firmware));
    let elapsed = payload.assert_boots(&mut vm, cmdline, BOOT_TIMEOUT, || server.log_text());
    (server.log_text(), vm.console(), elapsed)
}

#[test]
fn secure_boot_boots_through_shim_and_grub_from_netboot() {
    let test = "secure_boot_boots_through_shim_and_grub_from_netboot";
    if !vm_prerequisites(test, &[Firmware::OvmfSecureBoot], PAYLOAD_TOOLS)
        || !installed(test, SHIM_AND_GRUB)
    {
        return;
    }
    let (log, console, elapsed) =
        boot_through("nbg", Firmware::OvmfSecureBoot, "grub", GRUB_CMDLINE, &[]);
    assert!(
        console.contains("Secure boot enabled"),
        "the kernel did not report Secure Boot enabled:\n{console}"
    );
    pxe_testkit::assert_in_order(
        &log,
        &[
            "handing grub",
            "shimx64.efi",
            "grubx64.efi",
            "grub/grub.cfg",
            "/boot/0/",
            "/boot/1/",
        ],
        &"the Secure Boot path in netboot's log",
    );
    eprintln!(
        "boot time: OVMF Secure Boot → shim → GRUB → signed kernel, served by netboot: marker \
         after {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn bios_boots_through_pxelinux_from_netboot() {
    let test = "bios_boots_through_pxelinux_from_netboot";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], PAYLOAD_TOOLS)
        || !installed(
            test,
            &[
                ("/usr/lib/PXELINUX/pxelinux.0", "pxelinux"),
                (
                    "/usr/lib/syslinux/modules/bios/ldlinux.c32",
                    "syslinux-common",
                ),
            ],
        )
    {
        return;
    }
    let cmdline = format!("console=ttyS0 {SYNTAX_CMDLINE} pxe.loader=pxelinux");
    // QEMU's ROM is iPXE: taken as firmware, it is handed pxelinux.0 over TFTP.
    let (log, _, elapsed) = boot_through(
        "nbp",
        firmware,
        "pxelinux",
        &cmdline,
        &["--chainload-ipxe-rom"],
    );
    pxe_testkit::assert_in_order(
        &log,
        &[
            "handing pxelinux",
            "pxelinux.0",
            "ldlinux.c32",
            "pxelinux.cfg/01-",
            "file=\"boot/0/",
            "file=\"boot/1/",
        ],
        &"the PXELINUX path in netboot's log",
    );
    eprintln!(
        "boot time: SeaBIOS → pxelinux.0 → per-client config, served by netboot: marker after \
         {:.1} s",
        elapsed.as_secs_f64()
    );
}

/// What a loader cannot carry is refused before serving, naming the loader.
#[test]
fn cmdline_the_loader_cannot_carry_is_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"kernel").unwrap();
    let output = Command::new(NETBOOT)
        .arg("boot")
        .arg(&kernel)
        .args(["--cmdline", "pxe.quote='single'", "--loader", "grub"])
        .args(["--tftp-port", "1", "--http-port", "1", "--dhcp", "off"])
        .output()
        .expect("run netboot");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot be given to grub") && stderr.contains("backslash"),
        "unclear error: {stderr}"
    );
    // A loader's file missing: the error names the package.
    let output = Command::new(NETBOOT)
        .arg("boot")
        .arg(&kernel)
        .args(["--loader", "pxelinux", "--pxelinux-dir", "/nonexistent"])
        .args(["--tftp-port", "0", "--http-port", "0", "--dhcp", "off"])
        .args([
            "--listen",
            "127.0.0.1",
            "--ipxe-dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .expect("run netboot");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/pxelinux.0") && stderr.contains("pxelinux"),
        "unclear error: {stderr}"
    );
}

/// One table, two machines under Secure Boot: each MAC's profile names `loader = "grub"` and
/// its own command line, and each kernel prints its own.
#[test]
fn a_table_gives_two_secure_boot_machines_their_own_command_lines() {
    let test = "a_table_gives_two_secure_boot_machines_their_own_command_lines";
    if !vm_prerequisites(test, &[Firmware::OvmfSecureBoot], PAYLOAD_TOOLS)
        || !installed(test, SHIM_AND_GRUB)
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new("nbt");
    let root = lab.dir().join("root");
    payload.copy_to(&root).expect("copy the payload");
    let machines = [
        VmConfig::new(Firmware::OvmfSecureBoot),
        VmConfig::new(Firmware::OvmfSecureBoot),
    ];
    let cmdlines = [
        "console=ttyS0 pxe.profile=web pxe.hash=#x && ; pxe.var=$root".to_string(),
        "console=ttyS0 pxe.profile=db pxe.pipe=a|b {y}".to_string(),
    ];
    let mut table = String::new();
    for (i, (machine, cmdline)) in machines.iter().zip(&cmdlines).enumerate() {
        table.push_str(&format!(
            "[profiles.p{i}]\nloader = \"grub\"\nkernel = \"vmlinuz\"\ninitrds = [\"initrd.img\"]\n\
             cmdline = {cmdline:?}\n\n[[groups]]\nprofile = \"p{i}\"\nmac = [\"{}\"]\n\n",
            pxe_testkit::lab::format_mac(machine.mac)
        ));
    }
    let site = lab.dir().join("site.toml");
    std::fs::write(&site, &table).unwrap();
    let mut command = lab.netboot_serve(NETBOOT, &site);
    command.arg("--root").arg(&root).env("RUST_LOG", "debug");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");
    for (machine, cmdline) in machines.iter().zip(&cmdlines) {
        let mut vm = lab.vm(machine);
        let elapsed = payload.assert_boots(&mut vm, cmdline, BOOT_TIMEOUT, || {
            format!("{table}\n{}", server.log_text())
        });
        let console = vm.console();
        assert!(console.contains("Secure boot enabled"), "{console}");
        eprintln!(
            "boot time: OVMF Secure Boot, {} by table → shim → GRUB, served by netboot serve: \
             marker after {:.1} s",
            pxe_testkit::lab::format_mac(machine.mac),
            elapsed.as_secs_f64()
        );
    }
}

#[test]
fn ipxe_rom_boots_through_lpxelinux_over_http_from_netboot() {
    let test = "ipxe_rom_boots_through_lpxelinux_over_http_from_netboot";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], PAYLOAD_TOOLS)
        || !installed(
            test,
            &[
                ("/usr/lib/PXELINUX/lpxelinux.0", "pxelinux"),
                (
                    "/usr/lib/syslinux/modules/bios/ldlinux.c32",
                    "syslinux-common",
                ),
            ],
        )
    {
        return;
    }
    let cmdline = format!("console=ttyS0 {SYNTAX_CMDLINE} pxe.loader=lpxelinux");
    // QEMU's ROM is iPXE: it is chained to lpxelinux.0 over HTTP.
    let (log, _, elapsed) = boot_through("nbl", firmware, "pxelinux", &cmdline, &[]);
    pxe_testkit::assert_in_order(
        &log,
        &[
            "handing pxelinux",
            "path=\"/pxelinux/lpxelinux.0\"",
            "path=\"/pxelinux/ldlinux.c32\"",
            "pxelinux config rendered",
            "path=\"/boot/0/",
            "path=\"/boot/1/",
        ],
        &"the lpxelinux path in netboot's log",
    );
    eprintln!(
        "boot time: SeaBIOS iPXE ROM → lpxelinux.0 (HTTP) → per-client config over HTTP, \
         served by netboot: marker after {:.1} s",
        elapsed.as_secs_f64()
    );
}

/// Secure Boot is enforced, shown through netboot: one table gives one machine iPXE and the
/// other shim + GRUB. The firmware downloads the unsigned `snponly.efi` netboot hands the
/// first and refuses to start it (no iPXE banner, no request after the binary), while the
/// second, same firmware and same table, boots Debian's signed kernel. netboot's log names
/// the file each MAC was handed.
#[test]
fn secure_boot_refuses_the_ipxe_a_table_hands_and_boots_grub_beside_it() {
    let test = "secure_boot_refuses_the_ipxe_a_table_hands_and_boots_grub_beside_it";
    if !vm_prerequisites(test, &[Firmware::OvmfSecureBoot], PAYLOAD_TOOLS)
        || !installed(
            test,
            &[
                SHIM_AND_GRUB,
                &[(&format!("{IPXE_DIR}/snponly.efi"), "ipxe")],
            ]
            .concat(),
        )
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new("nbsr");
    let root = lab.dir().join("root");
    payload.copy_to(&root).expect("copy the payload");
    let refused = VmConfig::new(Firmware::OvmfSecureBoot);
    let signed = VmConfig::new(Firmware::OvmfSecureBoot);
    let cmdline = "console=ttyS0 pxe.profile=signed";
    let mut table = String::new();
    for (name, loader, machine) in [("unsigned", "ipxe", &refused), ("signed", "grub", &signed)] {
        table.push_str(&format!(
            "[profiles.{name}]\nloader = \"{loader}\"\nkernel = \"vmlinuz\"\n\
             initrds = [\"initrd.img\"]\ncmdline = \"console=ttyS0 pxe.profile={name}\"\n\n\
             [[groups]]\nprofile = \"{name}\"\nmac = [\"{}\"]\n\n",
            pxe_testkit::lab::format_mac(machine.mac)
        ));
    }
    let site = lab.dir().join("site.toml");
    std::fs::write(&site, &table).unwrap();
    let mut command = lab.netboot_serve(NETBOOT, &site);
    command.arg("--root").arg(&root).env("RUST_LOG", "debug");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");

    let mut vm = lab.vm(&refused);
    let seen = vm
        .wait_for_marker("Access Denied", BOOT_TIMEOUT)
        .unwrap_or_else(|missing| panic!("{missing}\n--- netboot ---\n{}", server.log_text()));
    pxe_testkit::assert_in_order(
        &seen.console,
        &[
            "NBP filename is snponly.efi",
            "NBP file downloaded successfully",
            "BdsDxe: failed to load Boot0001",
            "Access Denied",
        ],
        &"the firmware's refusal",
    );
    assert!(
        !seen.console.contains("iPXE"),
        "iPXE ran under Secure Boot:\n{}",
        seen.console
    );
    let refused_at = seen.elapsed;
    // Had iPXE started, it would have asked DHCP again and fetched its script within seconds.
    std::thread::sleep(Duration::from_secs(5));
    drop(vm);
    let mac = pxe_testkit::lab::format_mac(refused.mac);
    let log = server.log_text();
    let address = log
        .lines()
        .filter(|line| line.contains(&mac) && line.contains("reply=DHCPACK"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("address="))
        })
        .unwrap_or_else(|| panic!("no DHCPACK to {mac}:\n{log}"));
    // Its lines by MAC (DHCP, TFTP) or by the address it was leased (any request).
    let by_address = format!("client={address} ");
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(&mac) || line.contains(&by_address))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" dhcp") && l.contains("boot_file=snponly.efi")),
        "netboot's log does not say {mac} was handed snponly.efi:\n{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("tftp download") && l.contains("file=\"snponly.efi\"")),
        "no TFTP download of snponly.efi by {mac}:\n{log}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| !l.contains(" dhcp ") && !l.contains("file=\"snponly.efi\"")),
        "{mac} asked for more than the iPXE binary:\n{log}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("handing")),
        "{mac} was handed another loader:\n{log}"
    );
    eprintln!("netboot's log for {mac}:\n{}", lines.join("\n"));

    let mut vm = lab.vm(&signed);
    let elapsed = payload.assert_boots(&mut vm, cmdline, BOOT_TIMEOUT, || {
        format!("{table}\n{}", server.log_text())
    });
    let console = vm.console();
    assert!(console.contains("Secure boot enabled"), "{console}");
    let signed_mac = pxe_testkit::lab::format_mac(signed.mac);
    assert!(
        server
            .log_text()
            .lines()
            .any(|l| l.contains(&signed_mac) && l.contains("handing grub")),
        "no shim + GRUB for {signed_mac}"
    );
    eprintln!(
        "boot time: OVMF Secure Boot given snponly.efi by a netboot table: refused {:.1} s after \
         start; the same firmware given shim + GRUB by the same table: marker after {:.1} s",
        refused_at.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}
