//! A table-driven boot in the firmware lab: two VMs in one run through `netboot serve`, one
//! selected by its MAC, the other by its SMBIOS serial (`-smbios type=1,serial=…`, which only
//! iPXE's script request tells). The table has no catch-all group: the serial VM matches no
//! group at DHCP and is chainloaded to iPXE there because the serial group may take it, and
//! the script stage picks its profile. Each VM must boot its own profile's command line.

use std::time::Duration;

use pxe_testkit::cases::BootCase;
use pxe_testkit::lab::{format_mac, vm_prerequisites, Lab, LabProcess, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};

const NETBOOT: &str = env!("CARGO_BIN_EXE_netboot");
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
const SERIAL: &str = "PXE-LAB-SN-0042";

#[test]
fn two_vms_boot_their_own_profiles_by_mac_and_by_serial() {
    let test = "two_vms_boot_their_own_profiles_by_mac_and_by_serial";
    let case = BootCase::BiosIpxeRom;
    if !vm_prerequisites(test, &[case.firmware()], PAYLOAD_TOOLS) {
        return;
    }
    let payload = boot_payload();
    let lab = Lab::new("nbtable");
    let root = lab.dir().join("root");
    payload.copy_to(&root).unwrap();

    let by_mac = VmConfig::new(case.firmware());
    let mut by_serial = VmConfig::new(case.firmware());
    by_serial
        .extra_args
        .extend(["-smbios".to_string(), format!("type=1,serial={SERIAL}")]);
    let mac_cmdline = "console=ttyS0 pxe.table=by-mac";
    let serial_cmdline = "console=ttyS0 pxe.table=by-serial";
    let table = lab.dir().join("site.toml");
    std::fs::write(
        &table,
        format!(
            r#"
[profiles.by-mac]
kernel = "vmlinuz"
initrds = ["initrd.img"]
cmdline = "{mac_cmdline}"

[profiles.by-serial]
kernel = "vmlinuz"
initrds = ["initrd.img"]
cmdline = "{serial_cmdline}"

[[groups]]
name = "mac"
profile = "by-mac"
mac = ["{}"]

[[groups]]
name = "serial"
profile = "by-serial"
serial = ["{SERIAL}"]
"#,
            format_mac(by_mac.mac)
        ),
    )
    .unwrap();

    let mut command = lab.netboot_serve(NETBOOT, &table);
    command
        .arg("--root")
        .arg(&root)
        .arg("--ipv6-ra")
        .env("RUST_LOG", "info");
    let server = LabProcess::spawn_ready(command, lab.dir().join("netboot.log"), "netboot serving");

    // Both at once: one run, one segment.
    let mut vms = [
        (lab.vm(&by_mac), mac_cmdline),
        (lab.vm(&by_serial), serial_cmdline),
    ];
    for (vm, cmdline) in &mut vms {
        payload.assert_boots(vm, cmdline, BOOT_TIMEOUT, || server.log_text());
    }
}
