//! TFTP packets on the wire (RFC 1350 §5, RFC 2347 OACK): [`Packet::parse`] borrows from the
//! datagram, [`Packet::emit`] appends to a buffer, and `emit` then `parse` is the identity.
//!
//! Parsing is total: any byte string either parses or yields a [`DecodeError`]; it never
//! panics. Leniencies, each because real peers need it: an ERROR message may lack its NUL,
//! a request may carry trailing NUL padding after its options, and an ACK may carry trailing
//! bytes.

use crate::error::{DecodeError, ErrorCode};

/// Opcode of a read request.
pub const OPCODE_RRQ: u16 = 1;
/// Opcode of a write request.
pub const OPCODE_WRQ: u16 = 2;
/// Opcode of a data block.
pub const OPCODE_DATA: u16 = 3;
/// Opcode of an acknowledgement.
pub const OPCODE_ACK: u16 = 4;
/// Opcode of an error.
pub const OPCODE_ERROR: u16 = 5;
/// Opcode of an option acknowledgement (RFC 2347).
pub const OPCODE_OACK: u16 = 6;

/// Size of the DATA header (opcode + block number) in front of every block.
pub const DATA_HEADER_LEN: usize = 4;

/// One option of a request or an OACK: a name and a value, both NUL-terminated on the wire.
/// Names compare case-insensitively (RFC 2347); this type keeps them as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TftpOption<'a> {
    /// The option name as sent (`blksize`, `tsize`, …).
    pub name: &'a str,
    /// The option value as sent (decimal for every option this crate knows).
    pub value: &'a str,
}

/// A read or write request (RFC 1350 §5 with RFC 2347 options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent (may use `\` and any case; sources normalise it).
    pub filename: &'a str,
    /// The transfer mode as sent (`octet`, `netascii`, in any case).
    pub mode: &'a str,
    /// The options after the mode, in the order sent.
    pub options: Vec<TftpOption<'a>>,
}

impl Request<'_> {
    /// The transfer mode, if it is one this crate knows.
    pub fn transfer_mode(&self) -> Option<Mode> {
        Mode::parse(self.mode)
    }
}

/// A transfer mode of RFC 1350 (mail is obsolete and refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// Text with CR LF line ends and CR NUL for a bare CR (RFC 764 via RFC 1350).
    Netascii,
}

impl Mode {
    /// Reads a mode name, ignoring case as RFC 1350 asks.
    pub fn parse(mode: &str) -> Option<Self> {
        if mode.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if mode.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else {
            None
        }
    }

    /// The mode's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
        }
    }
}

/// A TFTP packet, borrowing its strings and data from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request (opcode 1).
    Rrq(Request<'a>),
    /// Write request (opcode 2).
    Wrq(Request<'a>),
    /// A data block (opcode 3).
    Data {
        /// Block number (wraps at 65535).
        block: u16,
        /// The block's bytes.
        data: &'a [u8],
    },
    /// An acknowledgement (opcode 4).
    Ack {
        /// The acknowledged block number.
        block: u16,
    },
    /// An error (opcode 5).
    Error {
        /// The error code.
        code: ErrorCode,
        /// The human-readable message.
        message: &'a str,
    },
    /// An option acknowledgement (opcode 6).
    Oack {
        /// The options the server accepted, with their final values.
        options: Vec<TftpOption<'a>>,
    },
}

fn take_u16<'a>(bytes: &'a [u8], field: &'static str) -> Result<(u16, &'a [u8]), DecodeError> {
    match bytes {
        [hi, lo, rest @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => Err(DecodeError::Truncated {
            field,
            needed: 2,
            got: bytes.len(),
        }),
    }
}

fn take_str<'a>(bytes: &'a [u8], field: &'static str) -> Result<(&'a str, &'a [u8]), DecodeError> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or(DecodeError::Unterminated { field })?;
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| DecodeError::NotText { field })?;
    Ok((text, &bytes[end + 1..]))
}

fn parse_options(mut bytes: &[u8]) -> Result<Vec<TftpOption<'_>>, DecodeError> {
    let mut options = Vec::new();
    // Some PXE ROMs pad requests with NULs: padding after the last option is not an option.
    while bytes.iter().any(|&b| b != 0) {
        let (name, rest) = take_str(bytes, "option name")?;
        let (value, rest) = take_str(rest, "option value")?;
        options.push(TftpOption { name, value });
        bytes = rest;
    }
    Ok(options)
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (opcode, rest) = take_u16(bytes, "opcode")?;
        match opcode {
            OPCODE_RRQ | OPCODE_WRQ => {
                let (filename, rest) = take_str(rest, "filename")?;
                let (mode, rest) = take_str(rest, "mode")?;
                let request = Request {
                    filename,
                    mode,
                    options: parse_options(rest)?,
                };
                Ok(if opcode == OPCODE_RRQ {
                    Packet::Rrq(request)
                } else {
                    Packet::Wrq(request)
                })
            }
            OPCODE_DATA => {
                let (block, data) = take_u16(rest, "block number")?;
                Ok(Packet::Data { block, data })
            }
            OPCODE_ACK => {
                let (block, _) = take_u16(rest, "block number")?;
                Ok(Packet::Ack { block })
            }
            OPCODE_ERROR => {
                let (code, rest) = take_u16(rest, "error code")?;
                // Lenient: the message may lack its NUL, and only its text prefix is kept.
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                let raw = &rest[..end];
                let message = match std::str::from_utf8(raw) {
                    Ok(text) => text,
                    Err(e) => std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or_default(),
                };
                Ok(Packet::Error {
                    code: ErrorCode(code),
                    message,
                })
            }
            OPCODE_OACK => Ok(Packet::Oack {
                options: parse_options(rest)?,
            }),
            opcode => Err(DecodeError::UnknownOpcode { opcode }),
        }
    }

    /// The number of bytes [`emit`](Self::emit) appends.
    pub fn buffer_len(&self) -> usize {
        let options_len = |options: &[TftpOption<'_>]| -> usize {
            options
                .iter()
                .map(|o| o.name.len() + o.value.len() + 2)
                .sum()
        };
        2 + match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                r.filename.len() + r.mode.len() + 2 + options_len(&r.options)
            }
            Packet::Data { data, .. } => 2 + data.len(),
            Packet::Ack { .. } => 2,
            Packet::Error { message, .. } => 2 + message.len() + 1,
            Packet::Oack { options } => options_len(options),
        }
    }

    /// Appends the packet's wire form to `buf`.
    ///
    /// Strings must not contain NUL (they could not be parsed back); this is the caller's
    /// contract, as every string this crate emits is its own.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        fn put_str(buf: &mut Vec<u8>, s: &str) {
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        fn put_options(buf: &mut Vec<u8>, options: &[TftpOption<'_>]) {
            for option in options {
                put_str(buf, option.name);
                put_str(buf, option.value);
            }
        }
        buf.reserve(self.buffer_len());
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let opcode = if matches!(self, Packet::Rrq(_)) {
                    OPCODE_RRQ
                } else {
                    OPCODE_WRQ
                };
                buf.extend_from_slice(&opcode.to_be_bytes());
                put_str(buf, r.filename);
                put_str(buf, r.mode);
                put_options(buf, &r.options);
            }
            Packet::Data { block, data } => {
                buf.extend_from_slice(&data_header(*block));
                buf.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                buf.extend_from_slice(&OPCODE_ACK.to_be_bytes());
                buf.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                buf.extend_from_slice(&OPCODE_ERROR.to_be_bytes());
                buf.extend_from_slice(&code.0.to_be_bytes());
                put_str(buf, message);
            }
            Packet::Oack { options } => {
                buf.extend_from_slice(&OPCODE_OACK.to_be_bytes());
                put_options(buf, options);
            }
        }
    }

    /// The packet's wire form in a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.buffer_len());
        self.emit(&mut buf);
        buf
    }
}

/// The 4-byte header of DATA block `block`: what goes in front of each slice of a file.
pub fn data_header(block: u16) -> [u8; DATA_HEADER_LEN] {
    let [o1, o2] = OPCODE_DATA.to_be_bytes();
    let [b1, b2] = block.to_be_bytes();
    [o1, o2, b1, b2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_an_edk2_size_probe() {
        let bytes =
            b"\x00\x01snponly.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";
        let Packet::Rrq(request) = Packet::parse(bytes).unwrap() else {
            panic!("not an RRQ")
        };
        assert_eq!(request.filename, "snponly.efi");
        assert_eq!(request.transfer_mode(), Some(Mode::Octet));
        let names: Vec<_> = request.options.iter().map(|o| (o.name, o.value)).collect();
        assert_eq!(
            names,
            [("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")]
        );
    }

    #[test]
    fn tolerates_nul_padding_and_unterminated_error_messages() {
        let padded = b"\x00\x01a\x00octet\x00\x00\x00\x00";
        assert!(matches!(Packet::parse(padded), Ok(Packet::Rrq(r)) if r.options.is_empty()));
        let error = b"\x00\x05\x00\x08User aborted";
        assert_eq!(
            Packet::parse(error).unwrap(),
            Packet::Error {
                code: ErrorCode::OPTION_NEGOTIATION,
                message: "User aborted"
            }
        );
    }

    #[test]
    fn rejects_truncated_and_unknown_packets() {
        assert!(matches!(
            Packet::parse(b"\x00"),
            Err(DecodeError::Truncated {
                field: "opcode",
                ..
            })
        ));
        assert!(matches!(
            Packet::parse(b"\x00\x03\x01"),
            Err(DecodeError::Truncated {
                field: "block number",
                needed: 2,
                got: 1
            })
        ));
        assert!(matches!(
            Packet::parse(b"\x00\x01file"),
            Err(DecodeError::Unterminated { field: "filename" })
        ));
        assert!(matches!(
            Packet::parse(b"\x00\x01file\x00octet\x00blksize\x00"),
            Err(DecodeError::Unterminated {
                field: "option value"
            })
        ));
        assert!(matches!(
            Packet::parse(b"\x00\x09"),
            Err(DecodeError::UnknownOpcode { opcode: 9 })
        ));
        assert!(matches!(
            Packet::parse(b"\x00\x01\xff\x00octet\x00"),
            Err(DecodeError::NotText { field: "filename" })
        ));
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\u{0}]{0,20}"
    }

    fn options() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(("[^\u{0}]{1,12}", text()), 0..5)
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(
            kind in 0u8..6,
            block: u16,
            code: u16,
            data in prop::collection::vec(any::<u8>(), 0..600),
            filename in text(),
            mode in text(),
            opts in options(),
        ) {
            let options: Vec<TftpOption<'_>> = opts
                .iter()
                .map(|(name, value)| TftpOption { name, value })
                .collect();
            let request = Request { filename: &filename, mode: &mode, options: options.clone() };
            let packet = match kind {
                0 => Packet::Rrq(request),
                1 => Packet::Wrq(request),
                2 => Packet::Data { block, data: &data },
                3 => Packet::Ack { block },
                4 => Packet::Error { code: ErrorCode(code), message: &filename },
                _ => Packet::Oack { options },
            };
            let bytes = packet.to_vec();
            prop_assert_eq!(bytes.len(), packet.buffer_len());
            prop_assert_eq!(Packet::parse(&bytes).unwrap(), packet);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = Packet::parse(&bytes);
        }
    }
}
