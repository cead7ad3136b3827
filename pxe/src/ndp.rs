//! The IPv6 Neighbour Discovery messages of `netboot --ipv6-ra` (RFC 4861): the Router
//! Advertisement it sends and the Router Solicitations it answers. Pure: no sockets, so that
//! the parser of what arrives from the network can be tested and fuzzed on its own.

use std::fmt;

use pxe_policy::MacAddr;

/// ICMPv6 type of a Router Solicitation (RFC 4861 §4.1).
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement (RFC 4861 §4.2).
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// NDP option: source link-layer address (RFC 4861 §4.6.1).
const OPTION_SOURCE_LINK_LAYER: u8 = 1;
/// The fixed part of a Router Solicitation: type, code, checksum, 4 reserved bytes.
const SOLICITATION_HEADER_LEN: usize = 8;

/// The Router Advertisement this server sends (RFC 4861 §4.2), as the ICMPv6 message a raw
/// socket takes: current hop limit unspecified (0), no managed/other flags (M=O=0, so no
/// DHCPv6 either), router lifetime 0 (not a default router), reachable time and retransmit
/// timer unspecified, no options. The checksum is left 0 for the kernel to fill in.
pub const fn router_advertisement() -> [u8; 16] {
    let mut message = [0u8; 16];
    message[0] = ROUTER_ADVERTISEMENT;
    // Bytes 1 (code), 2–3 (checksum), 4 (cur hop limit), 5 (flags), 6–7 (router lifetime),
    // 8–11 (reachable time) and 12–15 (retransmit timer) are all zero.
    message
}

/// A Router Solicitation that passed the checks of RFC 4861 §6.1.1 that a raw socket can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSolicitation {
    /// The sender's link-layer address from its source link-layer address option, when it
    /// carried one of Ethernet's size (iPXE does): the MAC that ties the log line to a client.
    pub mac: Option<MacAddr>,
}

/// Why an ICMPv6 message is not a Router Solicitation to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSolicitation {
    /// Shorter than the fixed 8-byte header.
    TooShort {
        /// The message length.
        len: usize,
    },
    /// Another ICMPv6 type: the raw socket sees every ICMPv6 message on the interface.
    OtherType {
        /// Its ICMPv6 type.
        icmp_type: u8,
    },
    /// Code is not 0.
    BadCode {
        /// The code given.
        code: u8,
    },
    /// An option header is cut off, has length 0, or runs past the end.
    BadOption {
        /// Offset of the option in the message.
        offset: usize,
    },
}

impl fmt::Display for NotSolicitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "icmpv6 message of {len} bytes is too short"),
            Self::OtherType { icmp_type } => {
                write!(f, "icmpv6 type {icmp_type}, not a solicitation")
            }
            Self::BadCode { code } => write!(f, "router solicitation with code {code}, not 0"),
            Self::BadOption { offset } => {
                write!(
                    f,
                    "router solicitation with a malformed option at byte {offset}"
                )
            }
        }
    }
}

/// Parses an ICMPv6 message (as a raw ICMPv6 socket delivers it, without the IPv6 header) as a
/// Router Solicitation. Never panics: any byte string gives a value or an error.
///
/// Not checked here: the IPv6 hop limit of 255 (it is not in the message; answering an
/// off-link solicitation only sends this harmless RA) and the checksum (the kernel drops
/// ICMPv6 messages whose checksum is wrong before a raw socket sees them).
pub fn parse_router_solicitation(message: &[u8]) -> Result<RouterSolicitation, NotSolicitation> {
    let (&icmp_type, &code) = match message {
        [icmp_type, code, ..] if message.len() >= SOLICITATION_HEADER_LEN => (icmp_type, code),
        _ => return Err(NotSolicitation::TooShort { len: message.len() }),
    };
    if icmp_type != ROUTER_SOLICITATION {
        return Err(NotSolicitation::OtherType { icmp_type });
    }
    if code != 0 {
        return Err(NotSolicitation::BadCode { code });
    }
    let mut mac = None;
    let mut offset = SOLICITATION_HEADER_LEN;
    while offset < message.len() {
        let rest = &message[offset..];
        // Option length is in units of 8 bytes, and 0 is invalid (RFC 4861 §4.6).
        let len = match rest {
            [_, units, ..] if *units > 0 => usize::from(*units) * 8,
            _ => return Err(NotSolicitation::BadOption { offset }),
        };
        let option = rest
            .get(..len)
            .ok_or(NotSolicitation::BadOption { offset })?;
        if option[0] == OPTION_SOURCE_LINK_LAYER && len == 8 {
            mac = MacAddr::from_slice(&option[2..8]);
        }
        offset += len;
    }
    Ok(RouterSolicitation { mac })
}

impl std::error::Error for NotSolicitation {}

/// A Router Solicitation as iPXE sends it (the lab's captures): the 8-byte header and a source
/// link-layer address option carrying MAC 52:54:00:12:34:56. For tests.
pub const IPXE_SOLICITATION: [u8; 16] = [
    133, 0, 0x12, 0x34, 0, 0, 0, 0, // type, code, checksum, reserved
    1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // source link-layer address
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_has_router_lifetime_zero_no_flags_no_options() {
        let ra = router_advertisement();
        assert_eq!(ra.len(), 16, "the fixed RA header and nothing else");
        assert_eq!(ra[0], 134, "type: router advertisement");
        assert_eq!(ra[1], 0, "code");
        assert_eq!(&ra[2..4], [0, 0], "checksum left to the kernel");
        assert_eq!(ra[5] & 0xc0, 0, "no managed/other configuration flags");
        assert_eq!(u16::from_be_bytes([ra[6], ra[7]]), 0, "router lifetime");
    }

    #[test]
    fn solicitation_with_source_link_layer_address_gives_the_mac() {
        let parsed = parse_router_solicitation(&IPXE_SOLICITATION).unwrap();
        assert_eq!(
            parsed.mac,
            Some(MacAddr::new([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]))
        );
        let bare = parse_router_solicitation(&IPXE_SOLICITATION[..8]).unwrap();
        assert_eq!(bare.mac, None);
    }

    #[test]
    fn unknown_options_are_skipped() {
        let mut message = IPXE_SOLICITATION[..8].to_vec();
        message.extend_from_slice(&[200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        message.extend_from_slice(&IPXE_SOLICITATION[8..]);
        let parsed = parse_router_solicitation(&message).unwrap();
        assert_eq!(
            parsed.mac,
            Some(MacAddr::new([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]))
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_the_reason() {
        assert_eq!(
            parse_router_solicitation(&[]),
            Err(NotSolicitation::TooShort { len: 0 })
        );
        assert_eq!(
            parse_router_solicitation(&IPXE_SOLICITATION[..7]),
            Err(NotSolicitation::TooShort { len: 7 })
        );
        assert_eq!(
            parse_router_solicitation(&router_advertisement()),
            Err(NotSolicitation::OtherType { icmp_type: 134 })
        );
        // (byte, value, error): the code, a zero-length option, an option past the end.
        for (index, value, error) in [
            (1, 1, NotSolicitation::BadCode { code: 1 }),
            (9, 0, NotSolicitation::BadOption { offset: 8 }),
            (9, 2, NotSolicitation::BadOption { offset: 8 }),
        ] {
            let mut message = IPXE_SOLICITATION;
            message[index] = value;
            assert_eq!(parse_router_solicitation(&message), Err(error));
        }
        // A lone option type byte with no length.
        assert_eq!(
            parse_router_solicitation(&IPXE_SOLICITATION[..9]),
            Err(NotSolicitation::BadOption { offset: 8 })
        );
        for (text, error) in [
            ("too short", NotSolicitation::TooShort { len: 3 }),
            ("type 1", NotSolicitation::OtherType { icmp_type: 1 }),
            ("code 9", NotSolicitation::BadCode { code: 9 }),
            ("byte 16", NotSolicitation::BadOption { offset: 16 }),
        ] {
            assert!(error.to_string().contains(text), "{error}");
        }
    }

    /// Every prefix of a valid solicitation, and a million bytes of pseudo-random messages of
    /// every length up to 64 (with the type byte forced to a solicitation half the time), parse
    /// to a value or an error: the parser never panics.
    #[test]
    fn parser_never_panics_on_arbitrary_input() {
        for len in 0..=IPXE_SOLICITATION.len() {
            let _ = parse_router_solicitation(&IPXE_SOLICITATION[..len]);
        }
        // xorshift64: deterministic, so a failure reproduces.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for round in 0..20_000 {
            let len = (next() % 65) as usize;
            let mut message: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                if let Some(first) = message.first_mut() {
                    *first = ROUTER_SOLICITATION;
                }
                if let Some(code) = message.get_mut(1) {
                    *code = 0;
                }
            }
            if let Ok(parsed) = parse_router_solicitation(&message) {
                accepted += 1;
                assert_eq!(message[0], ROUTER_SOLICITATION);
                assert!(parsed.mac.is_none() || message.len() >= 16);
            }
        }
        assert!(accepted > 0, "the generator reached the option parser");
    }

    proptest::proptest! {
        /// A solicitation built from any MAC (or none) and any unknown options, in any order
        /// around the source link-layer address option, parses back to that MAC.
        #[test]
        fn built_solicitations_parse_back(
            mac in proptest::option::of(proptest::array::uniform6(proptest::num::u8::ANY)),
            before in proptest::collection::vec((2u8..=255, 1u8..=4, proptest::num::u8::ANY), 0..4),
            after in proptest::collection::vec((2u8..=255, 1u8..=4, proptest::num::u8::ANY), 0..4),
        ) {
            let unknown = |options: &[(u8, u8, u8)], message: &mut Vec<u8>| {
                for &(kind, units, fill) in options {
                    message.extend_from_slice(&[kind, units]);
                    message.resize(message.len() + usize::from(units) * 8 - 2, fill);
                }
            };
            let mut message = vec![ROUTER_SOLICITATION, 0, 0xab, 0xcd, 0, 0, 0, 0];
            unknown(&before, &mut message);
            if let Some(mac) = mac {
                message.extend_from_slice(&[OPTION_SOURCE_LINK_LAYER, 1]);
                message.extend_from_slice(&mac);
            }
            unknown(&after, &mut message);
            let parsed = parse_router_solicitation(&message).unwrap();
            proptest::prop_assert_eq!(parsed.mac, mac.map(MacAddr::new));
        }
    }
}
