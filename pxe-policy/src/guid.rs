use core::fmt;
use core::str::FromStr;

use crate::ParseError;

/// A machine's SMBIOS system UUID, as PXE firmware sends it in DHCP option 97 (after the type
/// byte 0) and iPXE expands as `${uuid}`.
///
/// Held in canonical (RFC 9562 text) byte order. On the wire, PXE and UEFI use the EFI GUID
/// layout, whose first three fields are little-endian: QEMU's `-uuid
/// 9e0c1ab0-0000-4000-8000-000000000001` travels as `b0 1a 0c 9e 00 00 00 40 80 00 …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientGuid([u8; 16]);

/// A GUID that vendors ship unprogrammed on many boards ("03000200-0400-0500-0006-
/// 000700080009", AMI BIOS defaults): as useless for identifying a machine as all zeros.
const AMI_DEFAULT: [u8; 16] = [
    0x03, 0x00, 0x02, 0x00, 0x04, 0x00, 0x05, 0x00, 0x00, 0x06, 0x00, 0x07, 0x00, 0x08, 0x00, 0x09,
];

impl ClientGuid {
    /// From bytes in canonical (text) order.
    pub const fn from_canonical(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// From bytes in EFI wire order (the 16 bytes after option 97's type byte).
    pub const fn from_wire(wire: [u8; 16]) -> Self {
        Self(swap_efi_fields(wire))
    }

    /// The bytes in canonical (text) order.
    pub const fn canonical(&self) -> [u8; 16] {
        self.0
    }

    /// The bytes in EFI wire order, as option 97 carries them.
    pub const fn to_wire(&self) -> [u8; 16] {
        swap_efi_fields(self.0)
    }

    /// Whether this is a value firmware reports when the vendor never programmed one: all
    /// 0x00, all 0xFF (seen on MSI boards) or AMI's counting default. Such a GUID must not be
    /// used to tell machines apart.
    pub fn is_placeholder(&self) -> bool {
        self.0 == [0; 16] || self.0 == [0xff; 16] || self.0 == AMI_DEFAULT
    }

    /// `Some(self)` unless this is a placeholder: the GUID worth matching a client on.
    pub fn meaningful(self) -> Option<Self> {
        (!self.is_placeholder()).then_some(self)
    }
}

/// Swaps the byte order of the first three fields (4, 2 and 2 bytes); it is its own inverse.
const fn swap_efi_fields(b: [u8; 16]) -> [u8; 16] {
    [
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
        b[14], b[15],
    ]
}

impl fmt::Display for ClientGuid {
    /// Lower-case canonical text, `9e0c1ab0-0000-4000-8000-000000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for ClientGuid {
    type Err = ParseError;

    /// Accepts the canonical hyphenated text in any case, with or without braces, or 32 bare
    /// hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "guid";
        let trimmed = s
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or(s);
        let digits = hex_digits(trimmed, KIND, |c| c == '-')?;
        if digits.len() != 32 {
            return Err(ParseError::Length {
                kind: KIND,
                expected: 32,
                got: digits.len(),
            });
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            bytes[i] = (pair[0] << 4) | pair[1];
        }
        Ok(Self(bytes))
    }
}

/// The nibble values of the hex digits in `s`, skipping characters `is_separator` allows.
pub(crate) fn hex_digits(
    s: &str,
    kind: &'static str,
    is_separator: impl Fn(char) -> bool,
) -> Result<Vec<u8>, ParseError> {
    let mut digits = Vec::with_capacity(s.len());
    for (offset, c) in s.char_indices() {
        if let Some(value) = c.to_digit(16) {
            digits.push(value as u8);
        } else if !is_separator(c) {
            return Err(ParseError::Character {
                kind,
                found: c,
                offset,
            });
        }
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn qemu_uuid_wire_order() {
        // docs/FIRMWARE.md: QEMU -uuid 9e0c1ab0-0000-4000-8000-000000000001 on the wire.
        let wire = [
            0xb0, 0x1a, 0x0c, 0x9e, 0x00, 0x00, 0x00, 0x40, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01,
        ];
        let guid = ClientGuid::from_wire(wire);
        assert_eq!(guid.to_string(), "9e0c1ab0-0000-4000-8000-000000000001");
        assert_eq!(guid.to_wire(), wire);
        assert_eq!(
            "{9E0C1AB0-0000-4000-8000-000000000001}".parse::<ClientGuid>(),
            Ok(guid)
        );
    }

    #[test]
    fn placeholders() {
        assert!(ClientGuid::from_canonical([0; 16]).is_placeholder());
        assert!(ClientGuid::from_canonical([0xff; 16]).is_placeholder());
        assert!("03000200-0400-0500-0006-000700080009"
            .parse::<ClientGuid>()
            .unwrap()
            .is_placeholder());
        assert_eq!(ClientGuid::from_canonical([0; 16]).meaningful(), None);
        let real = ClientGuid::from_canonical([7; 16]);
        assert_eq!(real.meaningful(), Some(real));
    }

    #[test]
    fn bad_text() {
        assert!(matches!(
            "9e0c1ab0-0000".parse::<ClientGuid>(),
            Err(ParseError::Length { .. })
        ));
        assert!(matches!(
            "9e0c1ab0-0000-4000-8000-00000000000z".parse::<ClientGuid>(),
            Err(ParseError::Character { found: 'z', .. })
        ));
    }

    proptest! {
        #[test]
        fn wire_and_text_round_trip(bytes in any::<[u8; 16]>()) {
            let guid = ClientGuid::from_wire(bytes);
            prop_assert_eq!(guid.to_wire(), bytes);
            prop_assert_eq!(guid.to_string().parse::<ClientGuid>(), Ok(guid));
        }
    }
}
