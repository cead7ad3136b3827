//! A decision that leaves the network, booted in the firmware lab through `netboot serve` and
//! a table: exit to the local disk on SeaBIOS (iPXE boots drive 0x80) and on OVMF (iPXE
//! leaves with a failure status, so EDK2's boot manager goes on to its next boot option, the
//! disk). Each disk (testkit's `marker_disk`, a boot sector, and `efi_marker_disk`, a GPT with
//! an EFI System Partition whose GRUB echoes the marker) prints a marker of its own on the
//! serial console, so the console tells which way the machine went; the server's log must
//! show the script it served first, so a machine that skipped the network fails.
//!
//! And `sanboot` of that BIOS disk image, over netboot's HTTP (iPXE's INT 13 emulation reads
//! it with Range requests) and over iSCSI from a tgtd the test starts in the lab, on SeaBIOS. (The image must hold at
//! least one cylinder of the 255 × 63 geometry iPXE guesses: with none, iPXE refuses its own
//! read of the boot sector.)

use std::path::Path;
use std::time::Duration;

use pxe_policy::{Arch, ClientFacts, ClientKind, IscsiBoot, MacAddr, ScriptDecision};
use pxe_testkit::reference::{Dnsmasq, Nginx, REFERENCE_TOOLS};

use pxe_testkit::cases::IPXE_DIR;
use pxe_testkit::lab::{
    efi_marker_disk, marker_disk, vm_prerequisites, Firmware, IscsiTarget, Lab, LabProcess,
    MarkerSeen, Nic, VmConfig, DISK_MARKER, EFI_DISK_LOADER, EFI_DISK_TOOLS, ISCSI_TOOLS,
};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// OVMF walks the NIC's four boot options before the disk: 120–240 s alone under TCG.
const OVMF_EXIT_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn exit_to_disk_on_seabios_boots_the_local_disk() {
    let test = "exit_to_disk_on_seabios_boots_the_local_disk";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], &[]) {
        return;
    }
    let lab = Lab::new("nbexit");
    let server = serve_exit_to_disk(&lab);
    let image = lab.dir().join("disk.img");
    std::fs::write(&image, marker_disk()).unwrap();
    let seen = boot_nic_then_disk(&lab, firmware, "e1000", &image, BOOT_TIMEOUT, &server);
    eprintln!(
        "{test}: {firmware}: disk marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}

/// `netboot serve` in the lab with a table that sends every client to its local disk.
fn serve_exit_to_disk(lab: &Lab) -> LabProcess {
    serve_profile(lab, "action = \"exit\"", None)
}

/// `netboot serve` in the lab with a table whose one profile (`profile`, TOML lines) every
/// client gets, and `root` as its HTTP file root if given.
fn serve_profile(lab: &Lab, profile: &str, root: Option<&std::path::Path>) -> LabProcess {
    let table = lab.dir().join("site.toml");
    std::fs::write(
        &table,
        format!("[profiles.p]\n{profile}\n\n[[groups]]\nname = \"all\"\nprofile = \"p\"\n"),
    )
    .unwrap();
    let mut command = lab.netboot_serve(NETBOOT, &table);
    if let Some(root) = root {
        command.arg("--root").arg(root);
    }
    command.env("RUST_LOG", "info");
    LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving")
}

/// Boots `firmware` with its NIC (`nic`, a QEMU device name) first and `image` as a disk
/// second, as a machine that boots from the network by default, and waits for the disk's
/// marker; netboot's log (`server`) must show the exit script it served first, so a machine
/// that booted its disk without asking the network fails.
fn boot_nic_then_disk(
    lab: &Lab,
    firmware: Firmware,
    nic: &str,
    image: &Path,
    timeout: Duration,
    server: &LabProcess,
) -> MarkerSeen {
    let mut config = VmConfig::new(firmware);
    config.extra_args.extend(
        [
            "-global",
            &format!("{nic}.bootindex=1"),
            "-drive",
            &format!("file={},format=raw,if=none,id=disk0", image.display()),
            "-device",
            "virtio-blk-pci,drive=disk0,bootindex=2",
        ]
        .map(String::from),
    );
    let mut vm = lab.vm(&config);
    let seen = vm
        .wait_for_marker(DISK_MARKER, timeout)
        .unwrap_or_else(|missing| {
            panic!(
                "{firmware}: the disk did not boot: {missing}\n--- server ---\n{}",
                server.log_text()
            )
        });
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("script") && line.contains("decision=\"exit to disk\"")),
        "{firmware}: the disk booted, but netboot served no exit script first:\n{log}"
    );
    seen
}

/// OVMF: EDK2's PXE → `snponly.efi` → the script `exit 1` → EDK2 boots its next option, a
/// GPT disk whose ESP holds `\EFI\BOOT\BOOTX64.EFI`.
#[test]
fn exit_to_disk_on_ovmf_boots_the_efi_system_partition() {
    let test = "exit_to_disk_on_ovmf_boots_the_efi_system_partition";
    let firmware = Firmware::OvmfPxe;
    if !vm_prerequisites(test, &[firmware], EFI_DISK_TOOLS) {
        return;
    }
    if !std::path::Path::new(EFI_DISK_LOADER).is_file() {
        let reason = format!("SKIP {test}: needs {EFI_DISK_LOADER} (grub-efi-amd64-signed)");
        assert!(!pxe_testkit::in_ci(), "{reason}; CI must run every test");
        eprintln!("{reason}");
        return;
    }
    let lab = Lab::new("nbexe");
    let server = serve_exit_to_disk(&lab);
    let image = lab.dir().join("disk.img");
    efi_marker_disk(&image);
    let seen = boot_nic_then_disk(
        &lab,
        firmware,
        "virtio-net-pci",
        &image,
        OVMF_EXIT_TIMEOUT,
        &server,
    );
    // iPXE ran from the network option and failed it on purpose; the boot manager went on
    // down its list (the NIC's other options first) to the disk.
    pxe_testkit::assert_in_order(
        &seen.console,
        &[
            "UEFI PXEv4",
            "iPXE",
            "BdsDxe: failed to start Boot",
            "BdsDxe: starting Boot",
            "\"UEFI Misc Device\"",
            DISK_MARKER,
        ],
        &"EDK2's boot manager after iPXE's exit",
    );
    // What EDK2's boot manager did, in its own words (which options it tried, how each ended).
    let bds: Vec<&str> = seen
        .console
        .lines()
        .filter(|line| line.contains("BdsDxe") || line.contains("iPXE") || line.contains("exit"))
        .collect();
    for line in bds {
        eprintln!("{}", line.chars().take(160).collect::<String>());
    }
    eprintln!(
        "{test}: {firmware}: disk marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}

/// SeaBIOS with QEMU's iPXE ROM: the script `sanboot http://…/disk.img`; iPXE reads the image
/// from netboot's HTTP with Range requests through its INT 13 emulation and starts its boot
/// sector, which prints the marker.
#[test]
fn sanboot_over_http_on_seabios_boots_the_image() {
    let test = "sanboot_over_http_on_seabios_boots_the_image";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], &[]) {
        return;
    }
    let lab = Lab::new("nbsan");
    let root = lab.dir().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("disk.img"), marker_disk()).unwrap();
    let url = format!("http://{}/disk.img", lab.server_addr());
    let server = serve_profile(&lab, &format!("sanboot = {url:?}"), Some(&root));
    let mut vm = lab.vm(&VmConfig::new(firmware));
    let seen = vm
        .wait_for_marker(DISK_MARKER, BOOT_TIMEOUT)
        .unwrap_or_else(|missing| {
            panic!(
                "{firmware}: the SAN disk did not boot: {missing}\n--- server ---\n{}",
                server.log_text()
            )
        });
    // The script, iPXE's size probe, then block reads as ranges (206): the ISO 9660 probe,
    // the partition table for the geometry, the boot sector through INT 13.
    pxe_testkit::assert_in_order(
        &server.log_text(),
        &[
            "decision=\"sanboot\"",
            "method=HEAD path=\"/disk.img\" status=200",
            "method=GET path=\"/disk.img\" status=206",
            "method=GET path=\"/disk.img\" status=206 bytes=\"512\"",
            "method=GET path=\"/disk.img\" status=206 bytes=\"512\"",
        ],
        &"netboot's log of the SAN boot",
    );
    eprintln!(
        "{test}: {firmware}: SAN disk marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}

/// SeaBIOS with QEMU's iPXE ROM: a table's iSCSI profile (target, LUN 1, initiator name) →
/// the script `set initiator-iqn …` + `sanboot iscsi:…` → tgtd, started by the test in the
/// lab, whose target admits that initiator name only → the image's boot sector prints the
/// marker. tgtd lists the initiator logged in under the name the decision carried.
#[test]
fn sanboot_over_iscsi_on_seabios_boots_the_target_disk() {
    let test = "sanboot_over_iscsi_on_seabios_boots_the_target_disk";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], ISCSI_TOOLS) {
        return;
    }
    const TARGET: &str = "iqn.2026-12.test.pxe.lab:disk";
    const INITIATOR: &str = "iqn.2026-12.test.pxe.lab:client";
    let lab = Lab::new("nbisc");
    let image = lab.dir().join("disk.img");
    std::fs::write(&image, marker_disk()).unwrap();
    let target = IscsiTarget::start(&lab, TARGET, 1, &image, INITIATOR);
    let server = serve_profile(
        &lab,
        &format!(
            "iscsi = {{ server = \"{}\", target = \"{TARGET}\", lun = 1, initiator = \"{INITIATOR}\" }}",
            lab.server_addr()
        ),
        None,
    );
    let mut vm = lab.vm(&VmConfig::new(firmware));
    let seen = vm
        .wait_for_marker(DISK_MARKER, BOOT_TIMEOUT)
        .unwrap_or_else(|missing| {
            panic!(
                "{firmware}: the iSCSI disk did not boot: {missing}\n--- server ---\n{}\n\
                 --- tgtd ---\n{}\n{}",
                server.log_text(),
                target.show(),
                target.log_text()
            )
        });
    let log = server.log_text();
    assert!(
        log.contains("decision=\"sanboot iscsi\""),
        "netboot served no iSCSI script:\n{log}"
    );
    let show = target.show();
    assert!(
        show.contains(&format!("Initiator: {INITIATOR}")),
        "tgtd lists no session of {INITIATOR}:\n{show}"
    );
    eprintln!(
        "{test}: {firmware}: iSCSI disk marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}

/// The reference for the cases above: dnsmasq (DHCP, and TFTP for firmware PXE: `snponly.efi`)
/// and nginx (HTTP, Range included) serve the same files, the script being `decision` as
/// netboot renders it for an iPXE of `arch`. `files` are put in the served root. Boots a VM
/// with `config` and returns the time to the disk's marker and nginx's access log.
fn reference_boot(
    lab: &Lab,
    config: &VmConfig,
    arch: Arch,
    decision: &ScriptDecision,
    files: &[(&str, Vec<u8>)],
) -> (Duration, String) {
    let root = lab.dir().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut facts = ClientFacts::new(MacAddr(config.mac), ClientKind::FirmwareIpxe);
    facts.arch = Some(arch);
    let script = pxe_http::render_decision(decision, &facts).expect("renders");
    std::fs::write(root.join("boot.ipxe"), &script).unwrap();
    for (name, content) in files {
        std::fs::write(root.join(name), content).unwrap();
    }
    let server = lab.server_addr();
    let nginx = Nginx::start(
        lab.ns(),
        lab.dir(),
        &root,
        std::net::SocketAddrV4::new(server, 80),
    );
    let dir = lab.dir().join("dnsmasq");
    let mut dhcp = Dnsmasq::site_config(
        &dir,
        lab.bridge(),
        "192.0.2.100".parse().unwrap(),
        "192.0.2.199".parse().unwrap(),
    );
    // Firmware PXE gets snponly.efi over TFTP; iPXE (option 175) the script over HTTP.
    dhcp.push_str(&format!(
        "enable-tftp\ntftp-root={}\ndhcp-match=set:ipxe,175\n\
         dhcp-boot=tag:!ipxe,snponly.efi,,{server}\ndhcp-boot=tag:ipxe,http://{server}/boot.ipxe\n",
        root.display()
    ));
    let dnsmasq = Dnsmasq::start(lab.ns(), &dir, &dhcp);
    let mut vm = lab.vm(config);
    let seen = vm
        .wait_for_marker(
            DISK_MARKER,
            if config.firmware.is_uefi() {
                OVMF_EXIT_TIMEOUT
            } else {
                BOOT_TIMEOUT
            },
        )
        .unwrap_or_else(|missing| {
            panic!(
                "reference: the disk did not boot: {missing}\n--- script ---\n{script}\n\
                 --- dnsmasq ---\n{}\n--- nginx ---\n{}",
                dnsmasq.log(),
                nginx.access_log()
            )
        });
    // The boot manager's walk (UEFI), for comparing where the time went.
    for line in seen.console.lines().filter(|l| l.contains("BdsDxe")) {
        eprintln!("{}", line.chars().take(160).collect::<String>());
    }
    (seen.elapsed, nginx.access_log())
}

fn reference_prerequisites(test: &str, firmware: Firmware, tools: &[&str]) -> bool {
    let mut all = REFERENCE_TOOLS.to_vec();
    all.extend_from_slice(tools);
    vm_prerequisites(test, &[firmware], &all)
}

#[test]
fn sanboot_over_http_on_seabios_reference_dnsmasq_nginx() {
    let test = "sanboot_over_http_on_seabios_reference_dnsmasq_nginx";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !reference_prerequisites(test, firmware, &[]) {
        return;
    }
    let lab = Lab::new("rfsan");
    let decision = ScriptDecision::Sanboot(format!("http://{}/disk.img", lab.server_addr()));
    let (elapsed, access) = reference_boot(
        &lab,
        &VmConfig::new(firmware),
        Arch::X86_BIOS,
        &decision,
        &[("disk.img", marker_disk())],
    );
    assert!(access.contains("GET /disk.img HTTP/1.1\" 206"), "{access}");
    eprintln!(
        "{test}: {firmware}: SAN disk marker after {:.1} s (dnsmasq + nginx)",
        elapsed.as_secs_f64()
    );
}

#[test]
fn sanboot_over_iscsi_on_seabios_reference_dnsmasq_nginx() {
    let test = "sanboot_over_iscsi_on_seabios_reference_dnsmasq_nginx";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !reference_prerequisites(test, firmware, ISCSI_TOOLS) {
        return;
    }
    const TARGET: &str = "iqn.2026-12.test.pxe.lab:disk";
    const INITIATOR: &str = "iqn.2026-12.test.pxe.lab:client";
    let lab = Lab::new("rfisc");
    let image = lab.dir().join("disk.img");
    std::fs::write(&image, marker_disk()).unwrap();
    let target = IscsiTarget::start(&lab, TARGET, 1, &image, INITIATOR);
    let disk = IscsiBoot::new(&lab.server_addr().to_string(), TARGET)
        .unwrap()
        .lun(1)
        .initiator(INITIATOR)
        .unwrap();
    let (elapsed, _) = reference_boot(
        &lab,
        &VmConfig::new(firmware),
        Arch::X86_BIOS,
        &ScriptDecision::Iscsi(disk),
        &[],
    );
    assert!(target.show().contains(&format!("Initiator: {INITIATOR}")));
    eprintln!(
        "{test}: {firmware}: iSCSI disk marker after {:.1} s (dnsmasq + nginx)",
        elapsed.as_secs_f64()
    );
}

#[test]
fn exit_to_disk_on_ovmf_reference_dnsmasq_nginx() {
    let test = "exit_to_disk_on_ovmf_reference_dnsmasq_nginx";
    let firmware = Firmware::OvmfPxe;
    if !reference_prerequisites(test, firmware, EFI_DISK_TOOLS) {
        return;
    }
    if !Path::new(EFI_DISK_LOADER).is_file() {
        let reason = format!("SKIP {test}: needs {EFI_DISK_LOADER} (grub-efi-amd64-signed)");
        assert!(!pxe_testkit::in_ci(), "{reason}; CI must run every test");
        eprintln!("{reason}");
        return;
    }
    let lab = Lab::new("rfexe");
    let image = lab.dir().join("disk.img");
    efi_marker_disk(&image);
    let mut config = VmConfig::new(firmware);
    config.extra_args.extend(
        [
            "-global",
            "virtio-net-pci.bootindex=1",
            "-drive",
            &format!("file={},format=raw,if=none,id=disk0", image.display()),
            "-device",
            "virtio-blk-pci,drive=disk0,bootindex=2",
        ]
        .map(String::from),
    );
    let snponly = std::fs::read(format!("{IPXE_DIR}/snponly.efi")).expect("Debian ipxe");
    let (elapsed, access) = reference_boot(
        &lab,
        &config,
        Arch::X64_UEFI,
        &ScriptDecision::ExitToDisk,
        &[("snponly.efi", snponly)],
    );
    assert!(access.contains("GET /boot.ipxe"), "{access}");
    eprintln!(
        "{test}: {firmware}: disk marker after {:.1} s (dnsmasq + nginx)",
        elapsed.as_secs_f64()
    );
}
