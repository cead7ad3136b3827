use core::fmt;

/// A client system architecture: the IANA "Processor Architecture Types" registry used by
/// DHCP option 93 (RFC 4578) and by the `Arch:` field of option 60.
///
/// An open code space: any `u16` is representable, and the registered codes 0–41 have
/// constants and names. Per IANA, 7 is x64 UEFI and 9 is EBC; RFC 4578 printed them swapped,
/// and some old firmware sends 9 for x64, which [`Arch::is_x64`] accepts for that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch(pub u16);

macro_rules! arches {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        impl Arch {
            $( $(#[$doc])* pub const $name: Arch = Arch($code); )*

            /// The registry's description of this code, or `None` for an unassigned one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $code => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

arches! {
    /// x86 BIOS (legacy PC).
    X86_BIOS = 0, "x86 BIOS";
    /// NEC/PC98 (deprecated).
    NEC_PC98 = 1, "NEC/PC98";
    /// Itanium.
    ITANIUM = 2, "Itanium";
    /// DEC Alpha (deprecated).
    DEC_ALPHA = 3, "DEC Alpha";
    /// Arc x86 (deprecated).
    ARC_X86 = 4, "Arc x86";
    /// Intel Lean Client (deprecated).
    INTEL_LEAN_CLIENT = 5, "Intel Lean Client";
    /// x86 (32-bit) UEFI.
    X86_UEFI = 6, "x86 UEFI";
    /// x64 UEFI.
    X64_UEFI = 7, "x64 UEFI";
    /// XScale (deprecated).
    XSCALE = 8, "Xscale";
    /// EFI Byte Code; sent for x64 by firmware that followed RFC 4578's swapped table.
    EBC = 9, "EBC";
    /// ARM 32-bit UEFI.
    ARM32_UEFI = 10, "ARM 32-bit UEFI";
    /// ARM 64-bit UEFI.
    ARM64_UEFI = 11, "ARM 64-bit UEFI";
    /// PowerPC Open Firmware.
    PPC_OPEN_FIRMWARE = 12, "PowerPC Open Firmware";
    /// PowerPC ePAPR.
    PPC_EPAPR = 13, "PowerPC ePAPR";
    /// POWER OPAL v3.
    POWER_OPAL_V3 = 14, "POWER OPAL v3";
    /// x86 UEFI HTTP Boot.
    X86_UEFI_HTTP = 15, "x86 UEFI boot from HTTP";
    /// x64 UEFI HTTP Boot.
    X64_UEFI_HTTP = 16, "x64 UEFI boot from HTTP";
    /// EBC HTTP Boot.
    EBC_HTTP = 17, "EBC boot from HTTP";
    /// ARM 32-bit UEFI HTTP Boot.
    ARM32_UEFI_HTTP = 18, "ARM 32-bit UEFI boot from HTTP";
    /// ARM 64-bit UEFI HTTP Boot.
    ARM64_UEFI_HTTP = 19, "ARM 64-bit UEFI boot from HTTP";
    /// PC/AT BIOS HTTP Boot.
    X86_BIOS_HTTP = 20, "PC/AT BIOS boot from HTTP";
    /// ARM 32-bit U-Boot.
    ARM32_UBOOT = 21, "ARM 32-bit U-Boot";
    /// ARM 64-bit U-Boot.
    ARM64_UBOOT = 22, "ARM 64-bit U-Boot";
    /// ARM 32-bit U-Boot HTTP Boot.
    ARM32_UBOOT_HTTP = 23, "ARM 32-bit U-Boot boot from HTTP";
    /// ARM 64-bit U-Boot HTTP Boot.
    ARM64_UBOOT_HTTP = 24, "ARM 64-bit U-Boot boot from HTTP";
    /// RISC-V 32-bit UEFI.
    RISCV32_UEFI = 25, "RISC-V 32-bit UEFI";
    /// RISC-V 32-bit UEFI HTTP Boot.
    RISCV32_UEFI_HTTP = 26, "RISC-V 32-bit UEFI boot from HTTP";
    /// RISC-V 64-bit UEFI.
    RISCV64_UEFI = 27, "RISC-V 64-bit UEFI";
    /// RISC-V 64-bit UEFI HTTP Boot.
    RISCV64_UEFI_HTTP = 28, "RISC-V 64-bit UEFI boot from HTTP";
    /// RISC-V 128-bit UEFI.
    RISCV128_UEFI = 29, "RISC-V 128-bit UEFI";
    /// RISC-V 128-bit UEFI HTTP Boot.
    RISCV128_UEFI_HTTP = 30, "RISC-V 128-bit UEFI boot from HTTP";
    /// s390 Basic.
    S390_BASIC = 31, "s390 Basic";
    /// s390 Extended.
    S390_EXTENDED = 32, "s390 Extended";
    /// MIPS 32-bit UEFI.
    MIPS32_UEFI = 33, "MIPS 32-bit UEFI";
    /// MIPS 64-bit UEFI.
    MIPS64_UEFI = 34, "MIPS 64-bit UEFI";
    /// Sunway 32-bit UEFI.
    SUNWAY32_UEFI = 35, "Sunway 32-bit UEFI";
    /// Sunway 64-bit UEFI.
    SUNWAY64_UEFI = 36, "Sunway 64-bit UEFI";
    /// LoongArch 32-bit UEFI.
    LOONGARCH32_UEFI = 37, "LoongArch 32-bit UEFI";
    /// LoongArch 32-bit UEFI HTTP Boot.
    LOONGARCH32_UEFI_HTTP = 38, "LoongArch 32-bit UEFI boot from HTTP";
    /// LoongArch 64-bit UEFI.
    LOONGARCH64_UEFI = 39, "LoongArch 64-bit UEFI";
    /// LoongArch 64-bit UEFI HTTP Boot.
    LOONGARCH64_UEFI_HTTP = 40, "LoongArch 64-bit UEFI boot from HTTP";
    /// ARM rpiboot (Raspberry Pi network boot).
    ARM_RPIBOOT = 41, "ARM rpiboot";
}

impl Arch {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// Whether the client boots through UEFI (PXE or HTTP Boot).
    pub const fn is_uefi(self) -> bool {
        matches!(
            self.0,
            6 | 7 | 9 | 10 | 11 | 15..=19 | 25..=30 | 33..=40
        )
    }

    /// Whether the code is one of the "boot from HTTP" variants (UEFI HTTP Boot, BIOS or
    /// U-Boot HTTP).
    pub const fn is_http_boot(self) -> bool {
        matches!(self.0, 15..=20 | 23 | 24 | 26 | 28 | 30 | 38 | 40)
    }

    /// Whether this is a legacy x86 PC BIOS (PXE or HTTP).
    pub const fn is_bios(self) -> bool {
        matches!(self.0, 0 | 20)
    }

    /// Whether the client runs x86-64 UEFI code: 7 and 16, and 9 and 17 because firmware that
    /// followed RFC 4578's swapped table sends EBC codes for x64 (dnsmasq and iPXE treat 9 so).
    pub const fn is_x64(self) -> bool {
        matches!(self.0, 7 | 9 | 16 | 17)
    }

    /// Whether the client is a 64-bit ARM machine (UEFI or U-Boot, PXE or HTTP).
    pub const fn is_arm64(self) -> bool {
        matches!(self.0, 11 | 19 | 22 | 24)
    }

    /// The processor word size in bits, where the code says it: 16/32/64/128.
    ///
    /// x86 BIOS is reported as 32 (the PXE stack runs in 16-bit real mode, but the iPXE it
    /// loads and the OS it boots are 32- or 64-bit; the code does not tell which).
    pub const fn word_size(self) -> Option<u8> {
        match self.0 {
            0 | 1 | 4 | 5 | 6 | 8 | 10 | 15 | 18 | 20 | 21 | 23 | 25 | 26 | 33 | 35 | 37 | 38 => {
                Some(32)
            }
            2 | 3 | 7 | 9 | 11 | 14 | 16 | 17 | 19 | 22 | 24 | 27 | 28 | 32 | 34 | 36 | 39 | 40 => {
                Some(64)
            }
            29 | 30 => Some(128),
            _ => None,
        }
    }

    /// The machine's architecture as its PXE code: an HTTP Boot code becomes its PXE twin
    /// (16 → 7, 19 → 11, …); every other code is itself. Facts carry this, so that one
    /// machine has one architecture at every stage (iPXE reports 7 for the x64 UEFI machine
    /// whose firmware asked DHCP with 16); how it boots is the [`ClientKind`](crate::ClientKind).
    pub const fn machine(self) -> Arch {
        match (self.is_http_boot(), self.http_twin()) {
            (true, Some(twin)) => twin,
            _ => self,
        }
    }

    /// The same machine's code for the other boot method: a UEFI PXE code maps to its
    /// HTTP Boot code and back (7 ↔ 16, 11 ↔ 19, …); codes without a twin map to `None`.
    pub const fn http_twin(self) -> Option<Arch> {
        let twin = match self.0 {
            0 => 20,
            20 => 0,
            6 => 15,
            15 => 6,
            7 => 16,
            16 => 7,
            9 => 17,
            17 => 9,
            10 => 18,
            18 => 10,
            11 => 19,
            19 => 11,
            21 => 23,
            23 => 21,
            22 => 24,
            24 => 22,
            25 => 26,
            26 => 25,
            27 => 28,
            28 => 27,
            29 => 30,
            30 => 29,
            37 => 38,
            38 => 37,
            39 => 40,
            40 => 39,
            _ => return None,
        };
        Some(Arch(twin))
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unassigned arch {}", self.0),
        }
    }
}

impl From<u16> for Arch {
    fn from(code: u16) -> Self {
        Arch(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_and_named() {
        for code in 0..=41u16 {
            assert!(Arch(code).name().is_some(), "code {code} has no name");
        }
        assert_eq!(Arch(42).name(), None);
        assert_eq!(Arch::X64_UEFI.name(), Some("x64 UEFI"));
        assert_eq!(Arch::EBC.name(), Some("EBC"));
        assert_eq!(Arch(16).name(), Some("x64 UEFI boot from HTTP"));
        assert_eq!(Arch(19).name(), Some("ARM 64-bit UEFI boot from HTTP"));
        assert_eq!(Arch(7).to_string(), "x64 UEFI (7)");
    }

    #[test]
    fn classification() {
        assert!(!Arch::X86_BIOS.is_uefi());
        assert!(Arch::X86_BIOS.is_bios());
        assert!(Arch::X64_UEFI.is_uefi() && !Arch::X64_UEFI.is_http_boot());
        assert!(Arch::X64_UEFI_HTTP.is_uefi() && Arch::X64_UEFI_HTTP.is_http_boot());
        assert!(Arch::ARM64_UEFI_HTTP.is_http_boot() && Arch::ARM64_UEFI_HTTP.is_arm64());
        assert!(Arch::EBC.is_x64());
        assert!(!Arch::ARM64_UBOOT.is_uefi());
        assert_eq!(Arch::X64_UEFI.word_size(), Some(64));
        assert_eq!(Arch::X86_UEFI.word_size(), Some(32));
        assert_eq!(Arch(500).word_size(), None);
    }

    #[test]
    fn http_twins_are_symmetric_and_http() {
        for code in 0..=41u16 {
            if let Some(twin) = Arch(code).http_twin() {
                assert_eq!(twin.http_twin(), Some(Arch(code)));
                assert_ne!(twin.is_http_boot(), Arch(code).is_http_boot());
            }
        }
    }
}
