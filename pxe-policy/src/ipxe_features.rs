use core::fmt;

/// One iPXE feature code: a sub-option tag in the 0x10–0x7f range of DHCP option 175 that an
/// iPXE build sets (with a one-byte version) for each protocol or image format compiled in.
///
/// An open code space; the constants are those iPXE defines (`include/ipxe/features.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpxeFeature(pub u8);

impl IpxeFeature {
    /// PXE API extensions.
    pub const PXE_EXT: Self = Self(0x10);
    /// iSCSI.
    pub const ISCSI: Self = Self(0x11);
    /// ATA over Ethernet.
    pub const AOE: Self = Self(0x12);
    /// HTTP downloads.
    pub const HTTP: Self = Self(0x13);
    /// HTTPS downloads. No Debian iPXE build advertises it: never hand `https://` to a client
    /// without it.
    pub const HTTPS: Self = Self(0x14);
    /// TFTP downloads.
    pub const TFTP: Self = Self(0x15);
    /// FTP downloads.
    pub const FTP: Self = Self(0x16);
    /// DNS name resolution.
    pub const DNS: Self = Self(0x17);
    /// Linux bzImage format.
    pub const BZIMAGE: Self = Self(0x18);
    /// Multiboot format.
    pub const MULTIBOOT: Self = Self(0x19);
    /// SLAM multicast protocol.
    pub const SLAM: Self = Self(0x1a);
    /// SCSI RDMA protocol.
    pub const SRP: Self = Self(0x1b);
    /// NBI image format.
    pub const NBI: Self = Self(0x20);
    /// PXE image format.
    pub const PXE: Self = Self(0x21);
    /// ELF image format.
    pub const ELF: Self = Self(0x22);
    /// COMBOOT image format.
    pub const COMBOOT: Self = Self(0x23);
    /// EFI image format.
    pub const EFI: Self = Self(0x24);
    /// Fibre Channel over Ethernet.
    pub const FCOE: Self = Self(0x25);
    /// VLAN support.
    pub const VLAN: Self = Self(0x26);
    /// Menu support.
    pub const MENU: Self = Self(0x27);
    /// SDI image support.
    pub const SDI: Self = Self(0x28);
    /// NFS downloads.
    pub const NFS: Self = Self(0x29);

    /// Whether `tag` lies in the range iPXE reserves for feature codes (0x10–0x7f).
    pub const fn is_feature_tag(tag: u8) -> bool {
        matches!(tag, 0x10..=0x7f)
    }

    /// iPXE's name for a known feature.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x10 => "PXEXT",
            0x11 => "iSCSI",
            0x12 => "AoE",
            0x13 => "HTTP",
            0x14 => "HTTPS",
            0x15 => "TFTP",
            0x16 => "FTP",
            0x17 => "DNS",
            0x18 => "bzImage",
            0x19 => "Multiboot",
            0x1a => "SLAM",
            0x1b => "SRP",
            0x20 => "NBI",
            0x21 => "PXE",
            0x22 => "ELF",
            0x23 => "COMBOOT",
            0x24 => "EFI",
            0x25 => "FCoE",
            0x26 => "VLAN",
            0x27 => "Menu",
            0x28 => "SDI",
            0x29 => "NFS",
            _ => return None,
        })
    }
}

/// The iPXE version from sub-option 0xeb of option 175.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpxeVersion {
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Patch level.
    pub patch: u8,
}

impl fmt::Display for IpxeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The network device iPXE runs on, from sub-option 0xb1 of option 175.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpxeBusId {
    /// Bus type (1 = PCI, 2 = ISAPnP, 3 = EISA, 4 = MCA, 5 = ISA, 6 = TAP, 7 = EFI, 8 = Xen,
    /// 9 = Hyper-V, 10 = USB).
    pub bus_type: u8,
    /// Vendor id (PCI vendor for PCI).
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

impl IpxeBusId {
    /// iPXE's PCI bus type.
    pub const PCI: u8 = 1;
}

/// What an iPXE build told us about itself in DHCP option 175: the features compiled in, its
/// version and its network device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IpxeFeatures {
    /// One bit per feature tag 0x00–0x7f (tags outside iPXE's feature range stay clear).
    bits: u128,
    /// Sub-option 0xeb, when sent.
    pub version: Option<IpxeVersion>,
    /// Sub-option 0xb1, when sent.
    pub bus_id: Option<IpxeBusId>,
}

impl IpxeFeatures {
    /// No features, no version, no device.
    pub const fn new() -> Self {
        Self {
            bits: 0,
            version: None,
            bus_id: None,
        }
    }

    /// Records a feature; tags outside 0x10–0x7f are not features and are ignored.
    pub fn insert(&mut self, feature: IpxeFeature) {
        if IpxeFeature::is_feature_tag(feature.0) {
            self.bits |= 1u128 << feature.0;
        }
    }

    /// Builder form of [`IpxeFeatures::insert`].
    #[must_use]
    pub fn with(mut self, feature: IpxeFeature) -> Self {
        self.insert(feature);
        self
    }

    /// Whether the build advertises `feature`.
    pub const fn contains(&self, feature: IpxeFeature) -> bool {
        IpxeFeature::is_feature_tag(feature.0) && self.bits & (1u128 << feature.0) != 0
    }

    /// Whether it can fetch `https://` URLs.
    pub const fn has_https(&self) -> bool {
        self.contains(IpxeFeature::HTTPS)
    }

    /// Whether it can fetch `http://` URLs.
    pub const fn has_http(&self) -> bool {
        self.contains(IpxeFeature::HTTP)
    }

    /// Whether it is an EFI build.
    pub const fn is_efi(&self) -> bool {
        self.contains(IpxeFeature::EFI)
    }

    /// The advertised features in ascending tag order.
    pub fn iter(&self) -> impl Iterator<Item = IpxeFeature> + '_ {
        (0x10u8..=0x7f)
            .map(IpxeFeature)
            .filter(move |feature| self.contains(*feature))
    }

    /// Whether no feature is recorded.
    pub const fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_set() {
        let features = IpxeFeatures::new()
            .with(IpxeFeature::HTTP)
            .with(IpxeFeature::EFI)
            .with(IpxeFeature(0xeb));
        assert!(features.has_http() && features.is_efi() && !features.has_https());
        assert_eq!(
            features.iter().collect::<Vec<_>>(),
            [IpxeFeature::HTTP, IpxeFeature::EFI]
        );
        assert!(IpxeFeatures::new().is_empty());
        assert!(!features.contains(IpxeFeature(0xeb)));
        assert_eq!(IpxeFeature::MENU.name(), Some("Menu"));
    }
}
