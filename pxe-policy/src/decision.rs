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

/// The boot loader a client is handed at the DHCP stage; the config it then asks for is
/// rendered from the same [`ScriptDecision`] whichever loader it is.
///
/// Each loader runs on some firmware only: [`Loader::runs_on`] says which, and
/// [`BootDecision::for_loader`] keeps iPXE for a client whose firmware cannot run the loader
/// chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Loader {
    /// iPXE: every firmware iPXE has a build for; fetches its script over HTTP.
    #[default]
    Ipxe,
    /// shim, then GRUB (both signed by Debian, shim by Microsoft's UEFI CA): x64 UEFI only,
    /// the way to boot with Secure Boot enforced. GRUB reads `grub/grub.cfg` over TFTP.
    Grub,
    /// PXELINUX: BIOS only. Firmware PXE gets `pxelinux.0` over TFTP, an iPXE client is
    /// chained to `lpxelinux.0` over HTTP; either reads `pxelinux.cfg/…`.
    Pxelinux,
}

impl Loader {
    /// Every loader, in the order they are documented.
    pub const ALL: [Self; 3] = [Self::Ipxe, Self::Grub, Self::Pxelinux];

    /// The loader's name as tables and flags spell it: `ipxe`, `grub`, `pxelinux`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipxe => "ipxe",
            Self::Grub => "grub",
            Self::Pxelinux => "pxelinux",
        }
    }

    /// Whether firmware of this architecture can run the loader. An unknown architecture
    /// (no option 93) is taken as BIOS, as [`BootDecision::chainload_for`] does.
    pub fn runs_on(self, arch: Option<Arch>) -> bool {
        let arch = arch.unwrap_or(Arch::X86_BIOS);
        match self {
            Self::Ipxe => IpxeBinary::for_arch(arch).is_some(),
            // x64 UEFI PXE (7, and 9 as some firmware sends it). Not HTTP Boot (16): Debian's
            // signed GRUB has no HTTP, so it could not fetch its config.
            Self::Grub => matches!(arch.0, 7 | 9),
            Self::Pxelinux => arch.0 == 0,
        }
    }
}

impl fmt::Display for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Loader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|loader| loader.name() == text)
            .ok_or_else(|| format!("unknown loader {text:?}: use ipxe, grub or pxelinux"))
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
    /// [`Loader::Grub`]: shim, which loads GRUB from the same directory, which reads its
    /// config from the TFTP server (the server names the files; x64 UEFI clients only).
    ShimGrub,
    /// [`Loader::Pxelinux`]: `pxelinux.0` over TFTP for firmware PXE, `lpxelinux.0` over
    /// HTTP for an iPXE client (the server names the files; BIOS clients only).
    Pxelinux,
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

    /// The decision that hands the client `loader`, when its firmware can run it
    /// ([`Loader::runs_on`]); otherwise the client keeps iPXE ([`Self::chainload_for`]) and
    /// the loader wanted comes back as the error, for the caller to log.
    pub fn for_loader(loader: Loader, arch: Option<Arch>) -> Result<Self, (Self, Loader)> {
        if !loader.runs_on(arch) {
            return Err((Self::chainload_for(arch), loader));
        }
        Ok(match loader {
            Loader::Ipxe => Self::chainload_for(arch),
            Loader::Grub => Self::ShimGrub,
            Loader::Pxelinux => Self::Pxelinux,
        })
    }

    /// The loader this decision hands out, if any.
    pub fn loader(&self) -> Option<Loader> {
        match self {
            Self::Ipxe(_) => Some(Loader::Ipxe),
            Self::ShimGrub => Some(Loader::Grub),
            Self::Pxelinux => Some(Loader::Pxelinux),
            Self::Ignore | Self::File(_) => None,
        }
    }
}

/// A Linux boot: kernel, initrds and command line, for whichever loader renders it.
///
/// File references are URLs: absolute (`http://…`), or relative to the server's file root
/// (where the iPXE script lives). iPXE and `lpxelinux.0` fetch either; GRUB and `pxelinux.0`
/// read relative ones from their TFTP server (see [`crate::grub`], [`crate::pxelinux`]).
///
/// Every loader adds words of its own around the command line (`BOOT_IMAGE=…` from GRUB and
/// PXELINUX, `initrd=…` for the initrds where needed); the command line itself reaches the
/// kernel as one contiguous piece, exactly, or the renderer refuses it.
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

/// The config stage's answer: what the client's loader does next. The same decision is
/// rendered as an iPXE script, a GRUB config ([`crate::grub`]) or a PXELINUX config
/// ([`crate::pxelinux`]), by which loader asks.
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
