use core::fmt;
use core::str::FromStr;

use crate::ParseError;

/// A 48-bit Ethernet hardware address (DHCP `chaddr` with `htype` 1 and `hlen` 6).
///
/// Firmware stages of one machine may disagree on client identifiers (EDK2 sends no option 61,
/// iPXE does), so this is the key every stage agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Wraps six octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Reads the first six bytes of `bytes`, or `None` if there are fewer.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let octets: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Self(octets))
    }

    /// Hyphen-separated lower-case form (`52-54-00-12-34-56`), as PXELINUX and many file trees
    /// name per-client files.
    pub fn to_hyphenated(&self) -> String {
        let [a, b, c, d, e, f] = self.0;
        format!("{a:02x}-{b:02x}-{c:02x}-{d:02x}-{e:02x}-{f:02x}")
    }
}

impl fmt::Display for MacAddr {
    /// Colon-separated lower case, as iPXE's `${mac}` expands.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` and bare `aabbccddeeff`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "mac address";
        let digits = crate::guid::hex_digits(s, KIND, |c| c == ':' || c == '-')?;
        if digits.len() != 12 {
            return Err(ParseError::Length {
                kind: KIND,
                expected: 12,
                got: digits.len(),
            });
        }
        let mut octets = [0u8; 6];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            octets[i] = (pair[0] << 4) | pair[1];
        }
        Ok(Self(octets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        let mac = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(mac.to_hyphenated(), "52-54-00-ab-cd-ef");
        assert_eq!("52:54:00:AB:CD:EF".parse::<MacAddr>(), Ok(mac));
        assert_eq!("52-54-00-ab-cd-ef".parse::<MacAddr>(), Ok(mac));
        assert_eq!("525400abcdef".parse::<MacAddr>(), Ok(mac));
    }

    #[test]
    fn bad_text_is_an_error() {
        assert!(matches!(
            "52:54:00:ab:cd".parse::<MacAddr>(),
            Err(ParseError::Length { got: 10, .. })
        ));
        assert!(matches!(
            "52:54:00:ab:cd:eg".parse::<MacAddr>(),
            Err(ParseError::Character { found: 'g', .. })
        ));
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }
}
