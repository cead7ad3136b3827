//! Option negotiation (RFC 2347, 2348, 2349, 7440), as a pure function of the request.
//!
//! RFC 2347: "the server ... MUST NOT include in the OACK any options that were not requested
//! by the client". [`negotiate`] answers only the options it knows and the client asked for;
//! unknown options are ignored; a known option with a malformed or out-of-range value, or
//! sent twice, is refused (ERROR 8).

use std::time::Duration;

use crate::error::Error;
use crate::wire::TftpOption;

/// The smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The largest block size RFC 2348 allows.
pub const MAX_BLKSIZE: u16 = 65464;
/// The block size of RFC 1350, used when the client asks for none.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The largest block that fits a 1500-byte MTU (1500 − 20 IP − 8 UDP − 4 TFTP).
pub const MTU_1500_BLKSIZE: u16 = 1468;

/// What block numbers do after 65535 (RFC 1350 leaves it open; peers differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rollover {
    /// 65535 is followed by 0 (tftp-hpa, curl, iPXE, EDK2 expect this).
    #[default]
    ToZero,
    /// 65535 is followed by 1.
    ToOne,
}

impl Rollover {
    /// The wire number of absolute block `n` (counting from 1; 0 is the OACK's ACK).
    pub fn wire_block(self, n: u64) -> u16 {
        match self {
            Rollover::ToZero => (n % 65536) as u16,
            Rollover::ToOne if n == 0 => 0,
            Rollover::ToOne => ((n - 1) % 65535 + 1) as u16,
        }
    }

    /// How many blocks forward of absolute block `from` the wire number `block` is, the
    /// smallest such distance (0 when it names `from` itself).
    pub fn distance(self, from: u64, block: u16) -> u64 {
        let here = self.wire_block(from);
        match self {
            Rollover::ToZero => u64::from(block.wrapping_sub(here)),
            Rollover::ToOne => {
                // Block 0 is never sent after the OACK: it can only mean `from` == 0.
                if block == 0 || here == 0 {
                    return if block == here {
                        0
                    } else if here == 0 {
                        u64::from(block)
                    } else {
                        u64::MAX
                    };
                }
                (u64::from(block) + 65535 - u64::from(here)) % 65535
            }
        }
    }
}

/// Limits and defaults of one side's transfers.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Largest block size granted; larger requests are clamped (default 1468).
    pub max_blksize: u16,
    /// Largest window granted; larger requests are clamped (default 64).
    pub max_windowsize: u16,
    /// Retransmission timeout when the client negotiates none (default 1 s, doubled per retry
    /// up to 8×).
    pub timeout: Duration,
    /// Retransmissions before a silent peer's transfer is dropped (default 5).
    pub max_retries: u32,
    /// Largest `timeout` option (RFC 2349) accepted from a client (default 5 s). A larger
    /// one is left out of the OACK, which RFC 2347 allows for any option, and the transfer
    /// keeps [`timeout`](Self::timeout): RFC 2349 has the server echo the value exactly or
    /// not at all, and a client's 255 s times the retries would hold a transfer slot for
    /// over twenty minutes.
    pub max_negotiated_timeout: Duration,
    /// How long a transfer may wait for its client's first ACK (of the OACK or of DATA block
    /// 1), retransmissions included, before it is dropped (default 10 s). A client that
    /// never answers (a spoofed source, a scanner) holds its slot no longer than this.
    pub first_ack_limit: Duration,
    /// How long a transfer may go without progress (an ACK that moves it forward) before it
    /// is dropped, whatever the retransmission timer says (default 30 s).
    pub stall_limit: Duration,
    /// Block number after 65535.
    pub rollover: Rollover,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            max_blksize: MTU_1500_BLKSIZE,
            max_windowsize: 64,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            max_negotiated_timeout: Duration::from_secs(5),
            first_ack_limit: Duration::from_secs(10),
            stall_limit: Duration::from_secs(30),
            rollover: Rollover::ToZero,
        }
    }
}

/// The outcome of negotiation: the parameters of the transfer and the OACK's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Block size in bytes.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK.
    pub windowsize: u16,
    /// The timeout the client asked for, in seconds (RFC 2349), if any was asked for and
    /// granted (at most [`TransferConfig::max_negotiated_timeout`]).
    pub timeout_secs: Option<u8>,
    /// Whether the client asked for the transfer size (RFC 2349).
    pub tsize: bool,
}

impl Negotiated {
    /// Whether an OACK is due: the client asked for at least one option granted here.
    pub fn has_options(&self, requested: &[TftpOption<'_>]) -> bool {
        !self.oack_options(requested, Some(0)).is_empty()
    }

    /// The OACK's options in the client's order, with the file's transfer size `tsize`;
    /// `None` leaves tsize out (netascii, whose size on the wire is known only once sent:
    /// RFC 2347 lets a server leave out any option it does not grant).
    pub fn oack_options(
        &self,
        requested: &[TftpOption<'_>],
        tsize: Option<u64>,
    ) -> Vec<(&'static str, String)> {
        requested
            .iter()
            .filter_map(|option| match known(option.name)? {
                Known::Blksize => Some(("blksize", self.blksize.to_string())),
                Known::Windowsize => Some(("windowsize", self.windowsize.to_string())),
                Known::Timeout => Some(("timeout", self.timeout_secs?.to_string())),
                Known::Tsize => Some(("tsize", tsize?.to_string())),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Blksize,
    Windowsize,
    Timeout,
    Tsize,
}

fn known(name: &str) -> Option<Known> {
    [
        ("blksize", Known::Blksize),
        ("windowsize", Known::Windowsize),
        ("timeout", Known::Timeout),
        ("tsize", Known::Tsize),
    ]
    .into_iter()
    .find(|(known, _)| name.eq_ignore_ascii_case(known))
    .map(|(_, k)| k)
}

fn bad(option: &TftpOption<'_>, reason: &'static str) -> Error {
    Error::BadOption {
        name: option.name.to_string(),
        value: option.value.to_string(),
        reason,
    }
}

/// Parses a decimal option value: ASCII digits only (no sign, no spaces), at most 10 digits.
pub fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Negotiates a read request's options against `config`.
pub fn negotiate(
    requested: &[TftpOption<'_>],
    config: &TransferConfig,
) -> Result<Negotiated, Error> {
    let mut negotiated = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout_secs: None,
        tsize: false,
    };
    let mut seen = Vec::with_capacity(4);
    for option in requested {
        let Some(kind) = known(option.name) else {
            continue;
        };
        if seen.contains(&kind) {
            return Err(bad(option, "option sent twice"));
        }
        seen.push(kind);
        let value =
            parse_decimal(option.value).ok_or_else(|| bad(option, "not a decimal number"))?;
        match kind {
            Known::Blksize => {
                // RFC 2348: "Valid values range between "8" and "65464" octets, inclusive."
                if value < u64::from(MIN_BLKSIZE) {
                    return Err(bad(option, "blksize below 8"));
                }
                let max = config.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
                negotiated.blksize = value.min(u64::from(max)) as u16;
            }
            Known::Windowsize => {
                // RFC 7440: "Valid values range between "1" and "65535" blocks, inclusive."
                if !(1..=65535).contains(&value) {
                    return Err(bad(option, "windowsize outside 1-65535"));
                }
                negotiated.windowsize = value.min(u64::from(config.max_windowsize.max(1))) as u16;
            }
            Known::Timeout => {
                // RFC 2349: "Valid values range between "1" and "255" seconds, inclusive."
                if !(1..=255).contains(&value) {
                    return Err(bad(option, "timeout outside 1-255"));
                }
                // "The specified timeout value must match the value specified by the
                // client": one above the server's bound is not granted at all.
                if value <= config.max_negotiated_timeout.as_secs() {
                    negotiated.timeout_secs = Some(value as u8);
                }
            }
            // In a read request tsize is 0; the server answers with the size whatever it is.
            Known::Tsize => negotiated.tsize = true,
        }
    }
    Ok(negotiated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<TftpOption<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| TftpOption { name, value })
            .collect()
    }

    #[test]
    fn clamps_and_keeps_the_clients_order() {
        let requested = opts(&[
            ("TSIZE", "0"),
            ("multicast", ""),
            ("blksize", "9000"),
            ("windowsize", "200"),
        ]);
        let n = negotiate(&requested, &TransferConfig::default()).unwrap();
        assert_eq!((n.blksize, n.windowsize, n.tsize), (1468, 64, true));
        assert_eq!(
            n.oack_options(&requested, Some(7)),
            vec![
                ("tsize", "7".to_string()),
                ("blksize", "1468".to_string()),
                ("windowsize", "64".to_string())
            ]
        );
    }

    #[test]
    fn a_timeout_above_the_bound_is_not_granted_and_tsize_may_be_left_out() {
        let requested = opts(&[("timeout", "255"), ("tsize", "0")]);
        let n = negotiate(&requested, &TransferConfig::default()).unwrap();
        assert_eq!(n.timeout_secs, None);
        assert_eq!(
            n.oack_options(&requested, Some(3)),
            vec![("tsize", "3".to_string())]
        );
        assert!(n.oack_options(&requested, None).is_empty());
        let requested = opts(&[("timeout", "5")]);
        let n = negotiate(&requested, &TransferConfig::default()).unwrap();
        assert_eq!(n.timeout_secs, Some(5), "the bound itself is granted");
        assert_eq!(
            n.oack_options(&requested, None),
            vec![("timeout", "5".to_string())]
        );
    }

    #[test]
    fn no_known_options_means_no_oack() {
        let requested = opts(&[("foo", "bar")]);
        let n = negotiate(&requested, &TransferConfig::default()).unwrap();
        assert!(!n.has_options(&requested));
        assert_eq!((n.blksize, n.windowsize), (512, 1));
    }

    #[test]
    fn refuses_malformed_out_of_range_and_repeated_values() {
        for pairs in [
            &[("blksize", "7")][..],
            &[("blksize", "abc")],
            &[("blksize", "-1")],
            &[("blksize", "")],
            &[("blksize", " 512")],
            &[("windowsize", "0")],
            &[("windowsize", "65536")],
            &[("timeout", "0")],
            &[("timeout", "256")],
            &[("tsize", "x")],
            &[("blksize", "512"), ("BlkSize", "512")],
            &[("blksize", "99999999999999999999")],
        ] {
            let err = negotiate(&opts(pairs), &TransferConfig::default()).unwrap_err();
            assert_eq!(
                err.code(),
                crate::ErrorCode::OPTION_NEGOTIATION,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn rollover_numbers_and_distances() {
        let zero = Rollover::ToZero;
        assert_eq!(zero.wire_block(65535), 65535);
        assert_eq!(zero.wire_block(65536), 0);
        assert_eq!(zero.wire_block(65537), 1);
        assert_eq!(zero.distance(65535, 0), 1);
        assert_eq!(zero.distance(65534, 1), 3);
        let one = Rollover::ToOne;
        assert_eq!(one.wire_block(0), 0);
        assert_eq!(one.wire_block(65535), 65535);
        assert_eq!(one.wire_block(65536), 1);
        assert_eq!(one.distance(65535, 1), 1);
        assert_eq!(one.distance(0, 3), 3);
        assert_eq!(one.distance(65536, 1), 0);
        for from in [0u64, 1, 65534, 65535, 65536, 200_000] {
            for step in 0..70 {
                for rollover in [zero, one] {
                    let block = rollover.wire_block(from + step);
                    assert_eq!(
                        rollover.distance(from, block),
                        step,
                        "{rollover:?} {from} {step}"
                    );
                }
            }
        }
    }
}
