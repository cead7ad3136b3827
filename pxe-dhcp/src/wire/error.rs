use thiserror::Error;

use super::OptionCode;

/// Why bytes could not be read as a DHCP message or as one of its options.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before a fixed-size part of the message.
    #[error("truncated {field}: needed {needed} bytes, got {got}")]
    Truncated {
        /// The part that does not fit (`"bootp header"`, `"magic cookie"`, …).
        field: &'static str,
        /// The bytes that part needs.
        needed: usize,
        /// The bytes there are.
        got: usize,
    },
    /// The four bytes after the BOOTP header are not 99.130.83.99 (RFC 2131 §3): a plain
    /// BOOTP message or not DHCP at all.
    #[error("bad magic cookie {found:02x?}")]
    BadMagicCookie {
        /// The bytes found.
        found: [u8; 4],
    },
    /// `hlen` is larger than the 16-byte `chaddr` field.
    #[error("hardware address length {hlen} exceeds the 16-byte chaddr field")]
    BadHardwareLength {
        /// The `hlen` value.
        hlen: u8,
    },
    /// An option's length byte runs past the end of the field that holds it.
    #[error("option {code} in {field} at offset {offset} claims {len} bytes, {available} left")]
    OptionOverrun {
        /// The option code.
        code: OptionCode,
        /// The field it sits in (`"options"`, `"file"`, `"sname"`).
        field: &'static str,
        /// Its offset within that field.
        offset: usize,
        /// The length it claims.
        len: usize,
        /// The bytes left in the field after its length byte.
        available: usize,
    },
    /// An option's data has a length its definition does not allow.
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength {
        /// The option code.
        code: OptionCode,
        /// The length found.
        len: usize,
        /// What the definition allows, in words (`"4"`, `"a multiple of 2, at least 2"`).
        expected: &'static str,
    },
    /// An option's data has the right length but a value its definition does not allow.
    #[error("option {code} has a bad value: {reason}")]
    BadOptionValue {
        /// The option code.
        code: OptionCode,
        /// What is wrong, in lower-case words.
        reason: &'static str,
    },
    /// The message is a BOOTREPLY (or an unknown op) where a client request was expected.
    #[error("not a client request: op {op}")]
    NotARequest {
        /// The `op` byte.
        op: u8,
    },
}

/// Why a [`PacketBuilder`](super::PacketBuilder) could not write its message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The output buffer is shorter than [`buffer_len`](super::PacketBuilder::buffer_len).
    #[error("buffer too small: needed {needed} bytes, got {got}")]
    BufferTooSmall {
        /// The bytes the message needs.
        needed: usize,
        /// The bytes the buffer has.
        got: usize,
    },
    /// The options do not fit in the message size the client accepts, even after using the
    /// `file` and `sname` fields when overload is allowed.
    #[error("message needs {needed} bytes but the client accepts at most {max}")]
    TooLong {
        /// The bytes needed without overload.
        needed: usize,
        /// The size limit in force.
        max: usize,
    },
    /// A fixed-size header field was given more bytes than it holds.
    #[error("{field} is {len} bytes, at most {max} fit")]
    FieldTooLong {
        /// The field (`"chaddr"`, `"sname"`, `"file"`).
        field: &'static str,
        /// The length given.
        len: usize,
        /// The most the field takes.
        max: usize,
    },
}
