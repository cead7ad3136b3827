use core::fmt;

/// Which boot stage of a machine is asking. One machine usually shows up as several kinds in
/// turn (firmware PXE, then the iPXE it was given), and each must be answered differently or
/// the boot loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientKind {
    /// The firmware's own PXE stack (BIOS option ROM or UEFI's EDK2 PXE): it needs an iPXE
    /// binary over TFTP.
    FirmwarePxe,
    /// iPXE that came with the machine (a NIC or QEMU option ROM), not one we handed out.
    FirmwareIpxe,
    /// An iPXE binary this server chainloaded: it needs the HTTP script URL.
    ChainloadedIpxe,
    /// UEFI HTTP Boot (vendor class `HTTPClient`): it needs an `http://` URL of an EFI binary.
    UefiHttpBoot,
}

impl ClientKind {
    /// Whether this stage is running iPXE (and so understands iPXE scripts).
    pub const fn is_ipxe(self) -> bool {
        matches!(self, Self::FirmwareIpxe | Self::ChainloadedIpxe)
    }

    /// A short stable name for logs and configuration files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FirmwarePxe => "firmware-pxe",
            Self::FirmwareIpxe => "firmware-ipxe",
            Self::ChainloadedIpxe => "chainloaded-ipxe",
            Self::UefiHttpBoot => "uefi-http-boot",
        }
    }
}

impl fmt::Display for ClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
