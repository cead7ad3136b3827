//! A decision that leaves the network, booted in the firmware lab through `netboot serve` and
//! a table: exit to the local disk on SeaBIOS (iPXE boots drive 0x80). The disk's boot
//! sector (testkit's `marker_disk`) prints a marker of its own on COM1, so the console tells
//! which way the machine went; the server's log must show the script it served first, so a
//! machine that skipped the network fails.
//!
//! Not here yet: exit to disk on OVMF (after iPXE's `exit`, OVMF's boot manager went to its
//! setup menu, not to a `fat:` disk given boot index 2) and `sanboot` of a disk image over
//! HTTP on SeaBIOS (iPXE read the image with Range requests, then the boot sector's marker
//! never came).

use std::time::Duration;

use pxe_testkit::cases::IPXE_DIR;
use pxe_testkit::lab::{
    marker_disk, vm_prerequisites, Firmware, Lab, LabProcess, Nic, VmConfig, DISK_MARKER,
};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

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
    std::fs::write(&image, marker_disk()).unwrap();
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
