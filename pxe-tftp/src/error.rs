//! The crate's error types: [`DecodeError`] for bytes that are not a TFTP packet, [`Error`]
//! for everything else, and the wire error codes ([`ErrorCode`]) each maps to.

use std::fmt;

/// A TFTP error code (RFC 1350 §5, RFC 2347): an open code space, so a newtype with consts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 0: not defined, see the error message.
    pub const NOT_DEFINED: Self = Self(0);
    /// 1: file not found.
    pub const FILE_NOT_FOUND: Self = Self(1);
    /// 2: access violation.
    pub const ACCESS_VIOLATION: Self = Self(2);
    /// 3: disk full or allocation exceeded.
    pub const DISK_FULL: Self = Self(3);
    /// 4: illegal TFTP operation.
    pub const ILLEGAL_OPERATION: Self = Self(4);
    /// 5: unknown transfer ID.
    pub const UNKNOWN_TRANSFER_ID: Self = Self(5);
    /// 6: file already exists.
    pub const FILE_EXISTS: Self = Self(6);
    /// 7: no such user.
    pub const NO_SUCH_USER: Self = Self(7);
    /// 8: option negotiation refused (RFC 2347).
    pub const OPTION_NEGOTIATION: Self = Self(8);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a datagram is not a well-formed TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The datagram ends before a fixed-size field does.
    #[error("truncated packet: {field} needs {needed} bytes, got {got}")]
    Truncated {
        /// The field that is cut short.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        got: usize,
    },
    /// A string field has no terminating NUL.
    #[error("unterminated {field}: no NUL byte before the end of the packet")]
    Unterminated {
        /// The string field.
        field: &'static str,
    },
    /// A string field is not valid UTF-8 (netascii is a subset of it).
    #[error("{field} is not valid netascii/UTF-8")]
    NotText {
        /// The string field.
        field: &'static str,
    },
    /// The opcode is none of RRQ, WRQ, DATA, ACK, ERROR, OACK.
    #[error("unknown opcode {opcode}")]
    UnknownOpcode {
        /// The opcode received.
        opcode: u16,
    },
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A datagram is not a TFTP packet.
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    /// A request option is malformed or out of range (answered with ERROR 8).
    #[error("option {name:?}={value:?} refused: {reason}")]
    BadOption {
        /// The option name as sent.
        name: String,
        /// The option value as sent.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The transfer mode is not netascii or octet.
    #[error("unsupported transfer mode {mode:?}")]
    UnsupportedMode {
        /// The mode as sent.
        mode: String,
    },
    /// The requested file does not exist (or is not a regular file).
    #[error("file not found: {path:?}")]
    NotFound {
        /// The path as requested.
        path: String,
    },
    /// The requested path is refused: it leaves the root or is not a plain relative path.
    #[error("access denied to {path:?}: {reason}")]
    AccessDenied {
        /// The path as requested.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An I/O error of the host (file system or socket).
    #[error("i/o error while {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer ended the transfer with an ERROR packet.
    #[error("peer sent error {code}: {message:?}")]
    Peer {
        /// The error code it sent.
        code: ErrorCode,
        /// The message it sent.
        message: String,
    },
    /// The peer broke the protocol (wrong packet at this point, bad OACK).
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What the peer did wrong.
        reason: &'static str,
    },
    /// The peer stopped answering; every retransmission went unanswered.
    #[error("transfer timed out after {retries} retransmissions")]
    TimedOut {
        /// Retransmissions sent before giving up.
        retries: u32,
    },
}

impl Error {
    /// The TFTP error code that reports this error to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Decode(_) | Error::UnsupportedMode { .. } | Error::Protocol { .. } => {
                ErrorCode::ILLEGAL_OPERATION
            }
            Error::BadOption { .. } => ErrorCode::OPTION_NEGOTIATION,
            Error::NotFound { .. } => ErrorCode::FILE_NOT_FOUND,
            Error::AccessDenied { .. } => ErrorCode::ACCESS_VIOLATION,
            Error::Io { .. } | Error::TimedOut { .. } => ErrorCode::NOT_DEFINED,
            Error::Peer { code, .. } => *code,
        }
    }

    /// The message put in the ERROR packet: short, and never a host path or OS detail.
    pub fn wire_message(&self) -> &'static str {
        match self {
            Error::Decode(_) => "malformed packet",
            Error::BadOption { .. } => "option refused",
            Error::UnsupportedMode { .. } => "unsupported transfer mode",
            Error::NotFound { .. } => "file not found",
            Error::AccessDenied { .. } => "access violation",
            Error::Io { .. } => "cannot read file",
            Error::Peer { .. } => "transfer aborted",
            Error::Protocol { reason } => reason,
            Error::TimedOut { .. } => "timed out",
        }
    }
}
