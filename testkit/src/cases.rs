//! The five firmware paths the lab proves end to end, shared by the reference boots (dnsmasq +
//! nginx) and the pxe servers' boots so that both measure the same thing, and the record of
//! their times.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use crate::lab::{Firmware, Nic};
use crate::payload::target_dir;

/// Debian's iPXE builds (package `ipxe`): `undionly.kpxe`, `snponly.efi`, `ipxe.efi`.
pub const IPXE_DIR: &str = "/usr/lib/ipxe";

/// Kernel command-line arguments that iPXE's script parser treats as syntax, which a boot
/// must carry verbatim: an argument starting with `#` (a comment to iPXE), bare
/// `&&`, `||` and `;` (command chaining), quotes, and a quoted value holding spaces that the
/// kernel keeps as one argument. It holds no `${…}`: iPXE always expands that, so a server
/// must refuse it rather than serve it.
pub const SYNTAX_CMDLINE: &str = r#"#not-a-comment pxe.hash=#x && || ; pxe.quote='single' "pxe.note=two words" pxe.amp=a&b pxe.pipe=a|b pxe.tail=end"#;

/// One way a client reaches the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootCase {
    /// 1. SeaBIOS with QEMU's iPXE ROM → HTTP script → kernel.
    BiosIpxeRom,
    /// 2. SeaBIOS ROM → TFTP undionly.kpxe → the chained iPXE → HTTP script (the loop broken).
    BiosChainUndionly,
    /// 3. OVMF with the ROM disabled: EDK2's PXE → TFTP snponly.efi → iPXE → HTTP → kernel.
    UefiPxeChainSnponly,
    /// 4. OVMF with QEMU's iPXE EFI ROM → HTTP script → kernel.
    UefiIpxeRom,
    /// 5. OVMF UEFI HTTP Boot → snponly.efi over HTTP → iPXE → HTTP script → kernel.
    UefiHttpBoot,
}

impl BootCase {
    /// Every case, in issue order.
    pub const ALL: [Self; 5] = [
        Self::BiosIpxeRom,
        Self::BiosChainUndionly,
        Self::UefiPxeChainSnponly,
        Self::UefiIpxeRom,
        Self::UefiHttpBoot,
    ];

    /// The case's number (1–5), as the boot-time records name it.
    pub fn number(self) -> u8 {
        match self {
            Self::BiosIpxeRom => 1,
            Self::BiosChainUndionly => 2,
            Self::UefiPxeChainSnponly => 3,
            Self::UefiIpxeRom => 4,
            Self::UefiHttpBoot => 5,
        }
    }

    /// The firmware that starts it (BIOS cases on e1000, UEFI ones on virtio).
    pub fn firmware(self) -> Firmware {
        match self {
            Self::BiosIpxeRom | Self::BiosChainUndionly => Firmware::SeaBiosIpxe(Nic::E1000),
            Self::UefiPxeChainSnponly => Firmware::OvmfPxe,
            Self::UefiIpxeRom => Firmware::OvmfIpxe,
            Self::UefiHttpBoot => Firmware::OvmfHttpBoot,
        }
    }

    /// The iPXE binary the firmware loads first (from [`IPXE_DIR`]), if it is not already
    /// iPXE: `undionly.kpxe` over TFTP (case 2), `snponly.efi` over TFTP (case 3) or HTTP
    /// (case 5).
    pub fn chained_ipxe(self) -> Option<&'static str> {
        match self {
            Self::BiosIpxeRom | Self::UefiIpxeRom => None,
            Self::BiosChainUndionly => Some("undionly.kpxe"),
            Self::UefiPxeChainSnponly | Self::UefiHttpBoot => Some("snponly.efi"),
        }
    }

    /// Whether the chained iPXE binary travels over TFTP (else HTTP, or there is none).
    pub fn chains_over_tftp(self) -> bool {
        matches!(self, Self::BiosChainUndionly | Self::UefiPxeChainSnponly)
    }

    /// A deterministic SMBIOS UUID per case (sent as option 97), so logs tell cases apart.
    pub fn uuid(self) -> String {
        format!("9e0c1ab0-0000-4000-8000-0000000000{:02x}", self.number())
    }
}

impl fmt::Display for BootCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = match self {
            Self::BiosIpxeRom => "SeaBIOS iPXE ROM → HTTP",
            Self::BiosChainUndionly => "SeaBIOS ROM → TFTP undionly.kpxe → HTTP",
            Self::UefiPxeChainSnponly => "OVMF EDK2 PXE → TFTP snponly.efi → HTTP",
            Self::UefiIpxeRom => "OVMF iPXE EFI ROM → HTTP",
            Self::UefiHttpBoot => "OVMF UEFI HTTP Boot → snponly.efi → HTTP",
        };
        write!(f, "case {} ({path})", self.number())
    }
}

/// Who hands out addresses in a boot test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhcpMode {
    /// The boot server leases addresses and says what to boot.
    Authoritative,
    /// A site DHCP server on a second host ([`crate::Lab::add_host`]) leases addresses with
    /// no PXE options; the boot server answers as ProxyDHCP.
    Proxy,
}

impl fmt::Display for DhcpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authoritative => "authoritative",
            Self::Proxy => "proxy",
        })
    }
}

/// Reports a boot's time from VM start to the marker: printed to stderr past the test
/// harness's capture (so it shows in CI logs), and appended to `<target>/lab-times.tsv` as
/// `server  case  mode  seconds` for the note that compares servers. Never asserted.
pub fn record_boot_time(server: &str, case: BootCase, mode: DhcpMode, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let line =
        format!("boot time: {case} served by {server} ({mode}): marker after {seconds:.1} s\n");
    // Not eprintln!: libtest captures that, and these lines are the point of the run.
    let _ = std::io::stderr().write_all(line.as_bytes());
    let path = target_dir().join("lab-times.tsv");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{server}\t{}\t{mode}\t{seconds:.1}", case.number());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_numbered_in_issue_order_with_distinct_uuids() {
        let numbers: Vec<u8> = BootCase::ALL.iter().map(|c| c.number()).collect();
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        assert_eq!(
            BootCase::UefiPxeChainSnponly.uuid(),
            "9e0c1ab0-0000-4000-8000-000000000003"
        );
        assert!(BootCase::ALL
            .iter()
            .all(|c| c.firmware().is_uefi() == (c.number() >= 3)));
        assert_eq!(BootCase::UefiHttpBoot.chained_ipxe(), Some("snponly.efi"));
        assert!(!BootCase::UefiHttpBoot.chains_over_tftp());
        assert!(BootCase::BiosChainUndionly.chains_over_tftp());
    }
}
