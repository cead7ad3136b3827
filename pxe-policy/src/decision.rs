use std::borrow::Cow;
use std::fmt;

use crate::{Arch, Script};

/// An iPXE binary to hand to firmware, by file name relative to the iPXE directory (Debian's
/// `ipxe` package installs them in `/usr/lib/ipxe`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpxeBinary(Cow<'static, str>);

impl IpxeBinary {
    /// iPXE on the BIOS PXE stack's UNDI driver: works with every BIOS NIC.
    pub const UNDIONLY: Self = Self(Cow::Borrowed("undionly.kpxe"));
    /// iPXE for BIOS with its own NIC drivers.
    pub const IPXE_PXE: Self = Self(Cow::Borrowed("ipxe.pxe"));
    /// iPXE for x64 UEFI with its own NIC drivers.
    pub const IPXE_EFI: Self = Self(Cow::Borrowed("ipxe.efi"));
    /// iPXE for x64 UEFI on the firmware's SNP driver: works with every UEFI NIC.
    pub const SNPONLY_EFI: Self = Self(Cow::Borrowed("snponly.efi"));
    /// iPXE for 32-bit x86 UEFI on the firmware's SNP driver.
    pub const SNPONLY_EFI_I386: Self = Self(Cow::Borrowed("i386-efi/snponly.efi"));
    /// iPXE for ARM64 UEFI on the firmware's SNP driver.
    pub const SNPONLY_EFI_ARM64: Self = Self(Cow::Borrowed("arm64-efi/snponly.efi"));

    /// A binary by any file name (a custom build).
    pub fn named(file_name: impl Into<Cow<'static, str>>) -> Self {
        Self(file_name.into())
    }

    /// The file name, relative to the iPXE directory.
    pub fn file_name(&self) -> &str {
        &self.0
    }

    /// The default binary for an architecture: `undionly.kpxe` for BIOS, `snponly.efi` for
    /// the UEFI flavours (PXE or HTTP Boot) of x64, x86 and ARM64; `None` where iPXE has no
    /// build to offer.
    pub fn for_arch(arch: Arch) -> Option<Self> {
        match arch.0 {
            0 => Some(Self::UNDIONLY),
            7 | 9 | 16 | 17 => Some(Self::SNPONLY_EFI),
            6 | 15 => Some(Self::SNPONLY_EFI_I386),
            11 | 19 => Some(Self::SNPONLY_EFI_ARM64),
            _ => None,
        }
    }
}

impl fmt::Display for IpxeBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DHCP stage's answer: what this client boots next, or silence.
///
/// The server turns it into the stage's reply: firmware PXE gets the binary's name over TFTP,
/// UEFI HTTP Boot gets its `http://` URL, and an iPXE client gets the script URL (so the
/// chainload loop is broken by the server, not by every policy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootDecision {
    /// Do not answer this client at all (another server, or nobody, boots it).
    Ignore,
    /// Chainload iPXE: firmware gets this binary, iPXE gets the script URL.
    Ipxe(IpxeBinary),
    /// Hand the firmware this file directly (a custom boot loader), bypassing iPXE. A name
    /// for TFTP, or an absolute `http://` URL for UEFI HTTP Boot.
    File(String),
}

impl BootDecision {
    /// The default: chainload the iPXE build for the client's architecture, or stay silent
    /// when the architecture is unknown to iPXE (answering with a binary the client cannot run
    /// would only make it fail later and louder).
    pub fn chainload_for(arch: Option<Arch>) -> Self {
        match IpxeBinary::for_arch(arch.unwrap_or(Arch::X86_BIOS)) {
            Some(binary) => Self::Ipxe(binary),
            None => Self::Ignore,
        }
    }
}

/// A Linux boot: kernel, initrds and command line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinuxBoot {
    /// The kernel's URL: absolute (`http://…`) or relative to the script's URL (iPXE resolves
    /// it against the script it is running).
    pub kernel: String,
    /// Initrd URLs, in load order.
    pub initrds: Vec<String>,
    /// The kernel command line, exactly as the kernel must see it.
    pub cmdline: String,
}

impl LinuxBoot {
    /// A boot of `kernel` with no initrd and an empty command line.
    pub fn new(kernel: impl Into<String>) -> Self {
        Self {
            kernel: kernel.into(),
            initrds: Vec::new(),
            cmdline: String::new(),
        }
    }

    /// Adds an initrd.
    #[must_use]
    pub fn initrd(mut self, url: impl Into<String>) -> Self {
        self.initrds.push(url.into());
        self
    }

    /// Sets the command line.
    #[must_use]
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }
}

/// The HTTP stage's answer: what the iPXE script for this client does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptDecision {
    /// Boot a Linux kernel.
    Linux(LinuxBoot),
    /// Chain to another script or image by URL.
    Chain(String),
    /// Boot a disk image over HTTP (`sanboot`, read with Range requests).
    Sanboot(String),
    /// Leave network boot and boot from local disk (the renderer picks the way that works for
    /// the firmware: `sanboot --no-describe --drive 0x80` on BIOS, `exit` on UEFI).
    ExitToDisk,
    /// Nothing to boot for this client: the script says so and exits.
    Ignore,
    /// Run this script, built by the policy with the injection-safe builder.
    Custom(Script),
}
