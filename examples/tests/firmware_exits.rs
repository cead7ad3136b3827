//! A decision that leaves the network, booted in the firmware lab through `netboot serve` and
//! a table: exit to the local disk on SeaBIOS (iPXE boots drive 0x80). The disk is a
//! 512-byte boot sector written here that prints a marker of its own through COM1's data
//! port and halts, so the console tells which way the machine went; the server's log must
//! show the script it served first, so a machine that skipped the network fails.
//!
//! Not here yet: exit to disk on OVMF (after iPXE's `exit`, OVMF's boot manager went to its
//! setup menu, not to a `fat:` disk given boot index 2) and `sanboot` of a disk image over
//! HTTP on SeaBIOS (iPXE read the image with Range requests, then the boot sector's marker
//! never came).

use std::path::Path;
use std::time::Duration;

use pxe_testkit::cases::IPXE_DIR;
use pxe_testkit::lab::{vm_prerequisites, Firmware, Lab, LabProcess, Nic, VmConfig};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const DISK_MARKER: &str = "PXE-LAB-DISK-BOOTED";

/// A BIOS boot sector: `cli; cld; ds = 0; si = message; dx = 0x3f8`, then each byte of the
/// NUL-terminated message out to COM1's data port, then `hlt` forever. The message starts at
/// offset 23 (0x7c17 once loaded at 0x7c00).
fn bios_boot_sector() -> Vec<u8> {
    let mut sector = vec![
        0xfa, // cli
        0xfc, // cld
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0x17, 0x7c, // mov si, 0x7c17
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xac, // next: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz halt
        0xee, // out dx, al
        0xeb, 0xf8, // jmp next
        0xf4, // halt: hlt
        0xeb, 0xfd, // jmp halt
    ];
    assert_eq!(sector.len(), 23, "the message offset above");
    sector.extend_from_slice(format!("{DISK_MARKER}\r\n\0").as_bytes());
    sector.resize(510, 0);
    sector.extend_from_slice(&[0x55, 0xaa]);
    sector
}

/// A 1 MiB disk image whose first sector is [`bios_boot_sector`].
fn bios_disk(path: &Path) {
    let mut image = bios_boot_sector();
    image.resize(1 << 20, 0);
    std::fs::write(path, image).unwrap();
}

#[test]
fn exit_to_disk_on_seabios_boots_the_local_disk() {
    let test = "exit_to_disk_on_seabios_boots_the_local_disk";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], &[]) {
        return;
    }
    let lab = Lab::new("nbexit");
    let table = lab.dir().join("site.toml");
    std::fs::write(
        &table,
        "[profiles.disk]\naction = \"exit\"\n\n[[groups]]\nname = \"all\"\nprofile = \"disk\"\n",
    )
    .unwrap();
    let mut command = lab.ns().command(NETBOOT);
    command
        .arg("serve")
        .arg("--config")
        .arg(&table)
        .args(["--listen", &lab.server_addr().to_string()])
        .args(["--interface", lab.bridge()])
        .args(["--ipxe-dir", IPXE_DIR])
        .args([
            "--dhcp",
            "authoritative",
            "--pool",
            "192.0.2.100-192.0.2.199",
        ])
        .env("RUST_LOG", "info");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");

    let image = lab.dir().join("disk.img");
    bios_disk(&image);
    let mut config = VmConfig::new(firmware);
    // The NIC first, then the disk: a machine that boots its disk without asking the network
    // never fetches the script, and fails below.
    config.extra_args.extend(
        [
            "-global",
            "e1000.bootindex=1",
            "-drive",
            &format!("file={},format=raw,if=none,id=disk0", image.display()),
            "-device",
            "virtio-blk-pci,drive=disk0,bootindex=2",
        ]
        .map(String::from),
    );
    let mut vm = lab.vm(&config);
    let seen = vm
        .wait_for_marker(DISK_MARKER, BOOT_TIMEOUT)
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
    eprintln!(
        "{test}: {firmware}: disk marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}
