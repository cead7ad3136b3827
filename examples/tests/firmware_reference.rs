//! Reference boots: every firmware case (testkit::BootCase) served by dnsmasq (DHCP + TFTP) and nginx
//! (HTTP), real firmware under QEMU (TCG) in a lab namespace, passing only when the payload's
//! marker reaches the serial console.
//!
//! These are the baseline the pxe servers are compared against: each case prints its time
//! from VM start to the marker (`boot time: case N … served by dnsmasq+nginx`) and appends it
//! to `<target>/lab-times.tsv` (testkit's `record_boot_time`). Time is reported, never
//! asserted.
//!
//! The cases run one at a time (a lock), since two TCG machines on two cores would each
//! measure the other.

use std::fs;
use std::net::SocketAddrV4;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use pxe_testkit::cases::{record_boot_time, BootCase, DhcpMode, IPXE_DIR};
use pxe_testkit::lab::{vm_prerequisites, Lab, VmConfig};
use pxe_testkit::payload::{boot_payload, PAYLOAD_TOOLS};
use pxe_testkit::reference::{Dnsmasq, Nginx, REFERENCE_TOOLS};

/// From VM start to the marker; the slowest case takes about a minute under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The dnsmasq lines that route `case`'s clients, after the common tags.
///
/// Every iPXE (firmware ROM or chained) sends option 175, which breaks the chainload loop in
/// cases 3 and 5: the EDK2 stage has no 175 and gets snponly.efi, the iPXE it loads has one
/// and gets the script. In case 2 both the ROM and undionly.kpxe are iPXE with identical
/// options; the ROM's ACK carries user class (77) `iPXE-chained`, which the chained
/// undionly.kpxe then sends itself, and that tag gets the script.
fn dnsmasq_rules(case: BootCase, server: &str) -> String {
    let script = format!("http://{server}/boot.ipxe");
    match case {
        BootCase::BiosIpxeRom | BootCase::UefiIpxeRom => format!("dhcp-boot=tag:ipxe,{script}\n"),
        BootCase::BiosChainUndionly => format!(
            "dhcp-userclass=set:chained,iPXE-chained\n\
             dhcp-option-force=tag:ipxe,tag:!chained,77,iPXE-chained\n\
             dhcp-boot=tag:ipxe,tag:!chained,undionly.kpxe,,{server}\n\
             dhcp-boot=tag:chained,{script}\n"
        ),
        BootCase::UefiPxeChainSnponly => format!(
            "dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,{server}\n\
             dhcp-boot=tag:ipxe,{script}\n"
        ),
        // UEFI HTTP Boot only takes an offer that echoes vendor class HTTPClient.
        BootCase::UefiHttpBoot => format!(
            "dhcp-option-force=tag:httpboot,60,HTTPClient\n\
             dhcp-boot=tag:httpboot,http://{server}/snponly.efi\n\
             dhcp-boot=tag:ipxe,{script}\n"
        ),
    }
}

/// The `pxe-service` lines of the ProxyDHCP reference for `case` (cases 1 and 3), after the
/// common tags: in proxy mode dnsmasq sends only its PXE menu, and with a zero-second prompt
/// the client boots the one item that matches it at once.
fn dnsmasq_proxy_rules(case: BootCase, server: &str) -> String {
    let script = format!("http://{server}/boot.ipxe");
    let rules = match case {
        BootCase::BiosIpxeRom => format!("pxe-service=tag:ipxe,x86PC,\"script\",{script}\n"),
        BootCase::UefiPxeChainSnponly => format!(
            "pxe-service=tag:!ipxe,x86-64_EFI,\"snponly\",snponly.efi\n\
             pxe-service=tag:ipxe,x86-64_EFI,\"script\",{script}\n"
        ),
        other => panic!("no proxy-mode reference for {other}"),
    };
    format!("pxe-prompt=\"reference\",0\n{rules}")
}

fn reference_boot(case: BootCase, mode: DhcpMode) {
    let test = format!("reference_case_{}_{mode}", case.number());
    let firmware = case.firmware();
    let mut tools = REFERENCE_TOOLS.to_vec();
    tools.extend_from_slice(PAYLOAD_TOOLS);
    if !vm_prerequisites(&test, &[firmware], &tools) {
        return;
    }
    let _one_at_a_time = ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let payload = boot_payload();
    let mut lab = Lab::new(&format!("ref{}", case.number()));
    let server = lab.server_addr().to_string();

    // HTTP root: the script, the payload, and snponly.efi for UEFI HTTP Boot.
    let http_root = lab.dir().join("http");
    payload.copy_to(&http_root).expect("copy the payload");
    let cmdline = format!(
        "console=ttyS0 pxe.case={} pxe.server=reference",
        case.number()
    );
    // iPXE on EFI hands the kernel its initrd only when the command line names it.
    let script = format!(
        "#!ipxe\n\
         kernel http://{server}/vmlinuz initrd=initrd.img {cmdline}\n\
         initrd http://{server}/initrd.img\n\
         boot\n"
    );
    fs::write(http_root.join("boot.ipxe"), script).expect("write boot.ipxe");
    let tftp_root = lab.dir().join("tftp");
    fs::create_dir_all(&tftp_root).expect("create the TFTP root");
    for binary in ["undionly.kpxe", "snponly.efi"] {
        let from = Path::new(IPXE_DIR).join(binary);
        fs::copy(&from, tftp_root.join(binary))
            .unwrap_or_else(|e| panic!("copy {} (Debian package ipxe): {e}", from.display()));
    }
    fs::copy(tftp_root.join("snponly.efi"), http_root.join("snponly.efi"))
        .expect("copy snponly.efi");

    let nginx = Nginx::start(
        lab.ns(),
        lab.dir(),
        &http_root,
        SocketAddrV4::new(lab.server_addr(), 80),
    );
    let dnsmasq_dir = lab.dir().join("dnsmasq");
    let mut config = match mode {
        DhcpMode::Authoritative => Dnsmasq::site_config(
            &dnsmasq_dir,
            lab.bridge(),
            "192.0.2.100".parse().unwrap(),
            "192.0.2.199".parse().unwrap(),
        ),
        DhcpMode::Proxy => Dnsmasq::proxy_config(&dnsmasq_dir, lab.bridge(), lab.server_addr()),
    };
    config.push_str(&format!(
        "enable-tftp\n\
         tftp-root={}\n\
         dhcp-match=set:ipxe,175\n\
         dhcp-match=set:efi64,option:client-arch,7\n\
         dhcp-match=set:efi64,option:client-arch,9\n\
         dhcp-vendorclass=set:httpboot,HTTPClient\n",
        tftp_root.display()
    ));
    config.push_str(&match mode {
        DhcpMode::Authoritative => dnsmasq_rules(case, &server),
        DhcpMode::Proxy => dnsmasq_proxy_rules(case, &server),
    });
    let site = (mode == DhcpMode::Proxy)
        .then(|| Dnsmasq::start_site(&mut lab, &format!("ref{}", case.number())));
    let dnsmasq = Dnsmasq::start(lab.ns(), &dnsmasq_dir, &config);

    let mut vm = lab.vm(&VmConfig::new(firmware).uuid(&case.uuid()));
    // The end marker follows the command line; the marker itself is a few lines earlier.
    let seen = vm
        .wait_for_marker(&payload.end_marker(), BOOT_TIMEOUT)
        .unwrap_or_else(|missing| {
            panic!(
                "{case} ({firmware}, {mode}) did not boot: {missing}\n--- dnsmasq ---\n{}\n--- site dnsmasq ---\n{}\n--- nginx access ---\n{}\n--- nginx ---\n{}",
                dnsmasq.log(),
                site.as_ref().map(Dnsmasq::log).unwrap_or_default(),
                nginx.access_log(),
                nginx.log()
            )
        });
    let printed = payload
        .printed_cmdline(&seen.console)
        .expect("the payload prints its command line after the marker");
    assert!(
        printed.contains(&cmdline),
        "case {}: kernel command line {printed:?} lacks {cmdline:?}",
        case.number()
    );

    // The path taken: TFTP files as dnsmasq logged them, HTTP requests as nginx did.
    let dnsmasq_log = dnsmasq.log();
    let access = nginx.access_log();
    match case.chained_ipxe().filter(|_| case.chains_over_tftp()) {
        Some(file) => assert!(
            dnsmasq_log.contains(&format!("sent {}", tftp_root.join(file).display())),
            "case {}: no TFTP transfer of {file}:\n{dnsmasq_log}",
            case.number()
        ),
        None => assert!(
            !dnsmasq_log.contains(&format!("sent {}", tftp_root.display())),
            "case {}: unexpected TFTP:\n{dnsmasq_log}",
            case.number()
        ),
    }
    // In order: the chained iPXE over HTTP (case 5), the script, the kernel, the initrd.
    let mut requests = Vec::new();
    if let Some(file) = case.chained_ipxe().filter(|_| !case.chains_over_tftp()) {
        requests.push(format!("GET /{file}"));
    }
    requests.extend(["GET /boot.ipxe", "GET /vmlinuz", "GET /initrd.img"].map(String::from));
    let requests: Vec<&str> = requests.iter().map(String::as_str).collect();
    pxe_testkit::assert_in_order(&access, &requests, &case);
    if let Some(site) = &site {
        // The address came from the site server, the boot from the proxy.
        site.assert_leased_to(vm.mac(), &case);
    }
    record_boot_time("dnsmasq+nginx", case, mode, seen.elapsed);
}

#[test]
fn reference_case_1_bios_ipxe_rom_http() {
    reference_boot(BootCase::BiosIpxeRom, DhcpMode::Authoritative);
}

#[test]
fn reference_case_2_bios_tftp_undionly_then_http() {
    reference_boot(BootCase::BiosChainUndionly, DhcpMode::Authoritative);
}

#[test]
fn reference_case_3_uefi_pxe_tftp_snponly_then_http() {
    reference_boot(BootCase::UefiPxeChainSnponly, DhcpMode::Authoritative);
}

#[test]
fn reference_case_4_uefi_ipxe_rom_http() {
    reference_boot(BootCase::UefiIpxeRom, DhcpMode::Authoritative);
}

#[test]
fn reference_case_5_uefi_http_boot_snponly() {
    reference_boot(BootCase::UefiHttpBoot, DhcpMode::Authoritative);
}

#[test]
fn reference_case_1_proxy_beside_site_dhcp() {
    reference_boot(BootCase::BiosIpxeRom, DhcpMode::Proxy);
}

#[test]
fn reference_case_3_proxy_beside_site_dhcp() {
    reference_boot(BootCase::UefiPxeChainSnponly, DhcpMode::Proxy);
}
