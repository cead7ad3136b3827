//! The configs `pxe_policy::grub` and `pxe_policy::pxelinux` write, read by the real loaders on
//! real firmware: dnsmasq (DHCP + TFTP, the lab's reference server) serves Debian's loaders
//! and a rendered config, and the kernel must print the decision's command line verbatim.
//!
//! - PXELINUX: SeaBIOS with QEMU's iPXE ROM as the PXE stack → `pxelinux.0` over TFTP →
//!   `pxelinux.cfg/01-<mac>` (a `default` with another command line beside it) → kernel and
//!   initrd over TFTP. The command line is the iPXE cases' syntax line, quotes and all.
//! - lpxelinux: SeaBIOS with QEMU's iPXE ROM → `lpxelinux.0` over HTTP (nginx) →
//!   `ldlinux.c32` and `pxelinux.cfg/01-<mac>` over HTTP → kernel and initrd by the `http://`
//!   URLs the renderer wrote.
//! - Exit to disk: PXELINUX given `LOCALBOOT 0` hands the machine back to SeaBIOS, which boots
//!   the next device, a disk whose boot sector prints a marker on the serial port.
//! - The same firmware given Debian's unsigned iPXE (`snponly.efi`) downloads it and refuses
//!   to start it ("Access Denied"): Secure Boot is enforced.
//! - shim + GRUB: OVMF with Secure Boot enforced and Microsoft's keys → EDK2 PXE → shim →
//!   GRUB → `grub/grub.cfg` → Debian's signed kernel, which reports Secure Boot enabled. The
//!   command line is as hostile as GRUB can carry (GRUB's `linux` escapes quotes).
//!
//! Serving these loaders per client from netboot is not part of this version; these tests
//! prove the renderers. Each prints its time from VM start to the marker.

use std::fs;
use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use pxe_policy::pxelinux::Files;
use pxe_policy::{grub, pxelinux, LinuxBoot, ScriptDecision};
use pxe_testkit::cases::IPXE_DIR;
use pxe_testkit::lab::{marker_disk, vm_prerequisites, Firmware, Lab, Nic, VmConfig, DISK_MARKER};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};
use pxe_testkit::reference::{Dnsmasq, Nginx};
use pxe_testkit::{in_ci, SYNTAX_CMDLINE};

const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Debian's `pxelinux` and `syslinux-common`.
const PXELINUX: &str = "/usr/lib/PXELINUX/pxelinux.0";
const LPXELINUX: &str = "/usr/lib/PXELINUX/lpxelinux.0";
const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
/// Debian's `shim-signed` and `grub-efi-amd64-signed`.
const SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
const GRUB_NET: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";

/// Whether the loaders' files are installed: skip outside CI, fail in CI.
fn loader_files(test: &str, files: &[(&str, &str)]) -> bool {
    let missing: Vec<String> = files
        .iter()
        .filter(|(path, _)| !Path::new(path).is_file())
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

fn copy(from: &str, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
}

/// dnsmasq as the lab's DHCP server handing `boot_file` from its TFTP root.
fn dnsmasq(lab: &Lab, tftp_root: &Path, boot_file: &str) -> Dnsmasq {
    let dir = lab.dir().join("dnsmasq");
    let mut config = Dnsmasq::site_config(
        &dir,
        lab.bridge(),
        "192.0.2.100".parse().unwrap(),
        "192.0.2.199".parse().unwrap(),
    );
    config.push_str(&format!(
        "enable-tftp\ntftp-root={}\ndhcp-boot={boot_file},,{}\n",
        tftp_root.display(),
        lab.server_addr()
    ));
    Dnsmasq::start(lab.ns(), &dir, &config)
}

#[test]
fn pxelinux_over_tftp_reads_the_rendered_config() {
    let test = "pxelinux_over_tftp_reads_the_rendered_config";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    let mut tools = vec!["dnsmasq"];
    tools.extend_from_slice(PAYLOAD_TOOLS);
    if !vm_prerequisites(test, &[firmware], &tools)
        || !loader_files(
            test,
            &[(PXELINUX, "pxelinux"), (LDLINUX, "syslinux-common")],
        )
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new("pxl");
    let tftp = lab.dir().join("tftp");
    payload.copy_to(&tftp).expect("copy the payload");
    copy(PXELINUX, &tftp.join("pxelinux.0"));
    copy(LDLINUX, &tftp.join("ldlinux.c32"));

    let config = VmConfig::new(firmware);
    let cmdline = format!("console=ttyS0 {SYNTAX_CMDLINE} pxe.loader=pxelinux");
    let render = |cmdline: &str| {
        let linux = LinuxBoot::new("vmlinuz")
            .initrd("initrd.img")
            .cmdline(cmdline);
        pxelinux::render(&ScriptDecision::Linux(linux), &Files::Tftp).expect("renders")
    };
    let mac = config.mac.map(|b| format!("{b:02x}")).join("-");
    let configs = tftp.join("pxelinux.cfg");
    fs::create_dir_all(&configs).unwrap();
    fs::write(configs.join(format!("01-{mac}")), render(&cmdline)).unwrap();
    fs::write(
        configs.join("default"),
        render("console=ttyS0 pxe.loader=pxelinux-default"),
    )
    .unwrap();

    let server = dnsmasq(&lab, &tftp, "pxelinux.0");
    let mut vm = lab.vm(&config);
    let elapsed = payload.assert_boots(&mut vm, &cmdline, BOOT_TIMEOUT, || server.log());
    let log = server.log();
    // The first name PXELINUX looks for is this client's: `default` is never asked for.
    assert!(!log.contains("pxelinux.cfg/default"), "{log}");
    pxe_testkit::assert_in_order(
        &log,
        &[
            "pxelinux.0",
            "ldlinux.c32",
            &format!("pxelinux.cfg/01-{mac}"),
            "vmlinuz",
            "initrd.img",
        ],
        &"the PXELINUX boot's TFTP transfers",
    );
    eprintln!(
        "boot time: SeaBIOS → pxelinux.0 (TFTP) → rendered config, served by dnsmasq: marker \
         after {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn shim_and_grub_under_secure_boot_read_the_rendered_config() {
    let test = "shim_and_grub_under_secure_boot_read_the_rendered_config";
    let firmware = Firmware::OvmfSecureBoot;
    let mut tools = vec!["dnsmasq"];
    tools.extend_from_slice(PAYLOAD_TOOLS);
    if !vm_prerequisites(test, &[firmware], &tools)
        || !loader_files(
            test,
            &[(SHIM, "shim-signed"), (GRUB_NET, "grub-efi-amd64-signed")],
        )
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new("sbg");
    let tftp = lab.dir().join("tftp");
    payload.copy_to(&tftp).expect("copy the payload");
    copy(SHIM, &tftp.join("shimx64.efi"));
    copy(GRUB_NET, &tftp.join("grubx64.efi"));
    // Everything GRUB reads as syntax, a variable or a comment, and no quotes (GRUB's `linux`
    // would put backslashes before them: the renderer refuses those).
    let cmdline = "console=ttyS0 #not-a-comment pxe.hash=#x && || ; pxe.amp=a&b pxe.pipe=a|b \
                   pxe.var=$root pxe.brace=${x}{y} pxe.if=if pxe.tail=end";
    let linux = LinuxBoot::new("vmlinuz")
        .initrd("initrd.img")
        .cmdline(cmdline);
    let config = grub::render(&ScriptDecision::Linux(linux)).expect("renders");
    fs::create_dir_all(tftp.join("grub")).unwrap();
    fs::write(tftp.join("grub/grub.cfg"), config).unwrap();

    let server = dnsmasq(&lab, &tftp, "shimx64.efi");
    let mut vm = lab.vm(&VmConfig::new(firmware));
    let elapsed = payload.assert_boots(&mut vm, cmdline, BOOT_TIMEOUT, || server.log());
    let console = vm.console();
    assert!(
        console.contains("Secure boot enabled"),
        "the kernel did not report Secure Boot enabled:\n{console}"
    );
    pxe_testkit::assert_in_order(
        &server.log(),
        &[
            "shimx64.efi",
            "grubx64.efi",
            "grub/grub.cfg",
            "vmlinuz",
            "initrd.img",
        ],
        &"the Secure Boot path's TFTP transfers",
    );
    eprintln!(
        "boot time: OVMF Secure Boot → shim → GRUB → signed kernel, served by dnsmasq: marker \
         after {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn secure_boot_refuses_the_unsigned_ipxe() {
    let test = "secure_boot_refuses_the_unsigned_ipxe";
    let firmware = Firmware::OvmfSecureBoot;
    let snponly = format!("{IPXE_DIR}/snponly.efi");
    if !vm_prerequisites(test, &[firmware], &["dnsmasq"])
        || !loader_files(test, &[(snponly.as_str(), "ipxe")])
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new("sbi");
    let tftp = lab.dir().join("tftp");
    copy(&snponly, &tftp.join("snponly.efi"));
    let server = dnsmasq(&lab, &tftp, "snponly.efi");
    let mut vm = lab.vm(&VmConfig::new(firmware));
    // EDK2 downloads the image, verifies it against db, and refuses to start it.
    let seen = vm
        .wait_for_marker("Access Denied", BOOT_TIMEOUT)
        .unwrap_or_else(|missing| panic!("{missing}\n--- dnsmasq ---\n{}", server.log()));
    let console = seen.console;
    pxe_testkit::assert_in_order(
        &console,
        &[
            "NBP filename is snponly.efi",
            "NBP file downloaded successfully",
            "BdsDxe: failed to load Boot0001",
            "Access Denied",
        ],
        &"the Secure Boot refusal",
    );
    assert!(!console.contains("iPXE"), "iPXE ran:\n{console}");
    let log = server.log();
    pxe_testkit::assert_in_order(
        &log,
        &["bootfile-name  snponly.efi", "sent ", "snponly.efi"],
        &"the loader given",
    );
    eprintln!(
        "boot time: OVMF Secure Boot refuses Debian's unsigned snponly.efi {:.1} s after start",
        seen.elapsed.as_secs_f64()
    );
}

#[test]
fn lpxelinux_over_http_reads_the_rendered_config() {
    let test = "lpxelinux_over_http_reads_the_rendered_config";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    let mut tools = vec!["dnsmasq", "nginx"];
    tools.extend_from_slice(PAYLOAD_TOOLS);
    if !vm_prerequisites(test, &[firmware], &tools)
        || !loader_files(
            test,
            &[(LPXELINUX, "pxelinux"), (LDLINUX, "syslinux-common")],
        )
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let payload = boot_payload();
    let lab = Lab::new("lpx");
    let server = lab.server_addr();
    let http = lab.dir().join("http");
    payload.copy_to(&http).expect("copy the payload");
    copy(LPXELINUX, &http.join("lpxelinux.0"));
    copy(LDLINUX, &http.join("ldlinux.c32"));

    let config = VmConfig::new(firmware);
    let cmdline = format!("console=ttyS0 {SYNTAX_CMDLINE} pxe.loader=lpxelinux");
    let linux = LinuxBoot::new("vmlinuz")
        .initrd("initrd.img")
        .cmdline(&cmdline);
    let files = Files::Http {
        base: format!("http://{server}"),
    };
    let rendered = pxelinux::render(&ScriptDecision::Linux(linux), &files).expect("renders");
    let mac = config.mac.map(|b| format!("{b:02x}")).join("-");
    fs::create_dir_all(http.join("pxelinux.cfg")).unwrap();
    fs::write(http.join(format!("pxelinux.cfg/01-{mac}")), rendered).unwrap();

    let nginx = Nginx::start(lab.ns(), lab.dir(), &http, SocketAddrV4::new(server, 80));
    let dir = lab.dir().join("dnsmasq");
    let mut dhcp = Dnsmasq::site_config(
        &dir,
        lab.bridge(),
        "192.0.2.100".parse().unwrap(),
        "192.0.2.199".parse().unwrap(),
    );
    // The ROM is iPXE (option 175): it chains lpxelinux.0 over HTTP.
    dhcp.push_str(&format!(
        "dhcp-match=set:ipxe,175\ndhcp-boot=tag:ipxe,http://{server}/lpxelinux.0\n"
    ));
    let dnsmasq = Dnsmasq::start(lab.ns(), &dir, &dhcp);
    let mut vm = lab.vm(&config);
    let elapsed = payload.assert_boots(&mut vm, &cmdline, BOOT_TIMEOUT, || {
        format!("{}\n--- nginx ---\n{}", dnsmasq.log(), nginx.access_log())
    });
    pxe_testkit::assert_in_order(
        &nginx.access_log(),
        &[
            "GET /lpxelinux.0",
            "GET /ldlinux.c32",
            &format!("GET /pxelinux.cfg/01-{mac}"),
            "GET /vmlinuz",
            "GET /initrd.img",
        ],
        &"the lpxelinux boot's HTTP requests",
    );
    eprintln!(
        "boot time: SeaBIOS iPXE ROM → lpxelinux.0 (HTTP) → rendered config, served by \
         dnsmasq + nginx: marker after {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn pxelinux_exit_to_disk_boots_the_local_disk() {
    let test = "pxelinux_exit_to_disk_boots_the_local_disk";
    let firmware = Firmware::SeaBiosIpxe(Nic::E1000);
    if !vm_prerequisites(test, &[firmware], &["dnsmasq"])
        || !loader_files(
            test,
            &[(PXELINUX, "pxelinux"), (LDLINUX, "syslinux-common")],
        )
    {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new("pxd");
    let tftp = lab.dir().join("tftp");
    copy(PXELINUX, &tftp.join("pxelinux.0"));
    copy(LDLINUX, &tftp.join("ldlinux.c32"));
    let rendered = pxelinux::render(&ScriptDecision::ExitToDisk, &Files::Tftp).expect("renders");
    fs::create_dir_all(tftp.join("pxelinux.cfg")).unwrap();
    fs::write(tftp.join("pxelinux.cfg/default"), rendered).unwrap();
    let disk = lab.dir().join("disk.img");
    fs::write(&disk, marker_disk()).unwrap();

    let server = dnsmasq(&lab, &tftp, "pxelinux.0");
    let mut config = VmConfig::new(firmware);
    // Network first, then the disk: only PXELINUX's LOCALBOOT can get the machine there.
    config.extra_args.extend([
        "-boot".to_string(),
        "order=nc".to_string(),
        "-drive".to_string(),
        format!("file={},format=raw,if=ide,index=0", disk.display()),
    ]);
    let mut vm = lab.vm(&config);
    let seen = vm
        .wait_for_marker(DISK_MARKER, BOOT_TIMEOUT)
        .unwrap_or_else(|missing| panic!("{missing}\n--- dnsmasq ---\n{}", server.log()));
    // Only PXELINUX asks for ldlinux.c32 and its config: it ran, then left for the disk.
    pxe_testkit::assert_in_order(
        &server.log(),
        &["pxelinux.0", "ldlinux.c32", "pxelinux.cfg/default"],
        &"the PXELINUX boot's TFTP transfers",
    );
    eprintln!(
        "boot time: SeaBIOS → pxelinux.0 → LOCALBOOT 0 → the disk's boot sector, served by \
         dnsmasq: marker after {:.1} s",
        seen.elapsed.as_secs_f64()
    );
}
