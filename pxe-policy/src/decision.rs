use std::borrow::Cow;
use std::fmt;

use crate::{Arch, IscsiError, Script};

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
    /// Boot an iSCSI disk (`sanboot iscsi:…`), logging in with the initiator name given.
    Iscsi(IscsiBoot),
    /// Leave network boot and boot from local disk (the renderer picks the way that works for
    /// the firmware: `sanboot --no-describe --drive 0x80` on BIOS, `exit 1` on UEFI).
    ExitToDisk,
    /// Nothing to boot for this client: the script says so and exits.
    Ignore,
    /// Run this script, built by the policy with the injection-safe builder.
    Custom(Script),
}

impl ScriptDecision {
    /// What this decision asks, when only iPXE can do it (a disk over the network, an iPXE
    /// script): the GRUB and PXELINUX renderers refuse it with these words.
    pub(crate) fn ipxe_only(&self) -> Option<&'static str> {
        match self {
            Self::Sanboot(_) => Some("boot a disk image over the network (sanboot)"),
            Self::Iscsi(_) => Some("boot an iSCSI disk"),
            Self::Custom(_) => Some("run an iPXE script"),
            _ => None,
        }
    }
}

/// An iSCSI disk to boot from: the target's address, port and name, the LUN, and the
/// initiator name the client logs in with (which a target's ACL may require). Built only from
/// names that iPXE's root-path parser and a target read alike ([`IscsiBoot::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiBoot {
    server: String,
    port: Option<u16>,
    lun: u8,
    target: String,
    initiator: Option<String>,
}

impl IscsiBoot {
    /// Longest iSCSI name (RFC 3720 §3.2.6.1).
    const MAX_NAME: usize = 223;

    /// The disk at LUN 0 of `target` (its iSCSI name) on `server` (an IP address or a host
    /// name), port 3260, with iPXE's default initiator name.
    pub fn new(server: &str, target: &str) -> Result<Self, IscsiError> {
        check_server(server)?;
        check_name("target", target)?;
        Ok(Self {
            server: server.to_string(),
            port: None,
            lun: 0,
            target: target.to_string(),
            initiator: None,
        })
    }

    /// Sets the TCP port (default 3260; 0 means the default, as iPXE reads it).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = (port != 0).then_some(port);
        self
    }

    /// Sets the LUN (0–255: SAM's single-level peripheral form, which iPXE writes as the
    /// LUN's first 16 bits).
    #[must_use]
    pub fn lun(mut self, lun: u8) -> Self {
        self.lun = lun;
        self
    }

    /// Sets the initiator name the client logs in with (iPXE's `initiator-iqn` setting).
    pub fn initiator(mut self, iqn: &str) -> Result<Self, IscsiError> {
        check_name("initiator", iqn)?;
        self.initiator = Some(iqn.to_string());
        Ok(self)
    }

    /// The target's address.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The TCP port, if not 3260.
    pub fn tcp_port(&self) -> Option<u16> {
        self.port
    }

    /// The LUN.
    pub fn logical_unit(&self) -> u8 {
        self.lun
    }

    /// The target's iSCSI name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The initiator name, if set.
    pub fn initiator_name(&self) -> Option<&str> {
        self.initiator.as_deref()
    }

    /// iPXE's root path `iscsi:<server>:<protocol>:<port>:<lun>:<target>` (RFC 4173): the
    /// protocol left empty (TCP), the port empty for 3260, an IPv6 address in brackets, and
    /// the LUN in hexadecimal, as iPXE parses it.
    pub fn root_path(&self) -> String {
        let server = if self.server.contains(':') {
            format!("[{}]", self.server)
        } else {
            self.server.clone()
        };
        let port = self.port.map(|p| p.to_string()).unwrap_or_default();
        format!("iscsi:{server}::{port}:{:x}:{}", self.lun, self.target)
    }
}

fn check_server(server: &str) -> Result<(), IscsiError> {
    let host_name = !server.is_empty()
        && server.len() <= 253
        && server.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if host_name || server.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(IscsiError::Server(server.to_string()))
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), IscsiError> {
    let refuse = |reason| {
        Err(IscsiError::Name {
            what,
            value: name.to_string(),
            reason,
        })
    };
    if name.len() > IscsiBoot::MAX_NAME {
        return refuse("longer than 223 bytes");
    }
    // Names are compared byte for byte after stringprep, which lower-cases: upper case would
    // be a different name to the target than the one written.
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':'))
    {
        return refuse("only lower-case ASCII letters, digits, `-`, `.` and `:` are allowed");
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        // iqn.YYYY-MM.reversed.domain[:anything]
        let date = rest.get(..7).unwrap_or("");
        let date_ok = date.len() == 7
            && date.bytes().enumerate().all(|(i, b)| match i {
                4 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        let authority = rest.get(8..).unwrap_or("");
        if !date_ok || rest.as_bytes().get(7) != Some(&b'.') {
            return refuse("`iqn.` must be followed by a date `YYYY-MM.`");
        }
        let domain = authority.split(':').next().unwrap_or("");
        if domain.is_empty() || domain.split('.').any(str::is_empty) {
            return refuse("`iqn.YYYY-MM.` must be followed by a reversed domain name");
        }
        Ok(())
    } else if let Some(hex) = name.strip_prefix("eui.") {
        if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            refuse("`eui.` must be followed by 16 hexadecimal digits")
        }
    } else {
        refuse("it must start with `iqn.` or `eui.`")
    }
}

#[cfg(test)]
mod iscsi_tests {
    use super::*;

    #[test]
    fn root_path_as_ipxe_parses_it() {
        let disk = IscsiBoot::new("192.0.2.1", "iqn.2026-12.test.pxe:disk").unwrap();
        assert_eq!(
            disk.root_path(),
            "iscsi:192.0.2.1:::0:iqn.2026-12.test.pxe:disk"
        );
        let disk = disk.port(3261).lun(17);
        assert_eq!(
            disk.root_path(),
            "iscsi:192.0.2.1::3261:11:iqn.2026-12.test.pxe:disk"
        );
        let v6 = IscsiBoot::new("2001:db8::1", "eui.02004567a425678d").unwrap();
        assert_eq!(
            v6.root_path(),
            "iscsi:[2001:db8::1]:::0:eui.02004567a425678d"
        );
        assert_eq!(
            IscsiBoot::new("san.example", "iqn.2001-04.com.example")
                .unwrap()
                .server(),
            "san.example"
        );
    }

    #[test]
    fn names_that_would_be_read_differently_are_refused() {
        for bad in [
            "",
            "iqn.2026-12.Test.pxe",
            "iqn.2026-12.test pxe",
            "iqn.26-12.test.pxe",
            "iqn.2026-12",
            "iqn.2026-12.:x",
            "iqn.2026-12.a..b",
            "eui.0123",
            "naa.0123456789abcdef",
            "iqn.2026-12.test.pxe:${x}",
            "iqn.2026-12.test.pxe\n",
        ] {
            assert!(
                matches!(
                    IscsiBoot::new("192.0.2.1", bad),
                    Err(IscsiError::Name { what: "target", .. })
                ),
                "{bad:?}"
            );
        }
        let long = format!("iqn.2026-12.test.pxe:{}", "a".repeat(210));
        assert!(IscsiBoot::new("192.0.2.1", &long).is_err());
        for server in ["", "a b", "-x.example", "192.0.2.1:3260", "x..y", "[::1]"] {
            assert_eq!(
                IscsiBoot::new(server, "iqn.2026-12.test.pxe").unwrap_err(),
                IscsiError::Server(server.to_string())
            );
        }
        let disk = IscsiBoot::new("192.0.2.1", "iqn.2026-12.test.pxe").unwrap();
        assert!(disk.clone().initiator("Client").is_err());
        let disk = disk.initiator("iqn.2026-12.test.pxe:client").unwrap();
        assert_eq!(disk.initiator_name(), Some("iqn.2026-12.test.pxe:client"));
    }
}
