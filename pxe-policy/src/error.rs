use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Why a text form (MAC address, GUID, …) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text has the wrong number of characters or groups for the type.
    #[error("invalid {kind} length: expected {expected}, got {got}")]
    Length {
        /// What was being parsed (`"mac address"`, `"guid"`).
        kind: &'static str,
        /// The expected count (characters or groups).
        expected: usize,
        /// The count found.
        got: usize,
    },
    /// A character that is not a hexadecimal digit or an allowed separator.
    #[error("invalid character {found:?} at offset {offset} in {kind}")]
    Character {
        /// What was being parsed.
        kind: &'static str,
        /// The offending character.
        found: char,
        /// Its byte offset in the input.
        offset: usize,
    },
}

/// Everything else that can go wrong in `pxe-policy`: a script that iPXE could not read as
/// written, a table file that cannot be used, a delegate that did not answer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A script value holds a NUL byte: iPXE strings end there.
    #[error("{value:?} contains a NUL byte, which an iPXE string cannot hold")]
    Nul {
        /// The value.
        value: String,
    },
    /// A script value holds `${` (or forms it with the text next to it): iPXE would expand it.
    #[error("{value:?} contains `${{`, which iPXE always expands; it cannot be passed verbatim")]
    Expansion {
        /// The value (or the word it forms).
        value: String,
    },
    /// A label, setting name or menu key is not of the restricted form iPXE needs.
    #[error("invalid {kind} {name:?}: use ASCII letters, digits, `-`, `_` and `.`")]
    Name {
        /// What the name is for (`"label"`, `"setting name"`).
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A URL part that iPXE would alter on the way to the server.
    #[error("{value:?} cannot be sent in a url {part}: {reason}")]
    Url {
        /// `"path segment"`, `"query key"` or `"query value"`.
        part: &'static str,
        /// The value.
        value: String,
        /// Why iPXE cannot carry it.
        reason: &'static str,
    },
    /// An `https://` URL for an iPXE whose option 175 does not list HTTPS (no Debian build
    /// does): it could not fetch it.
    #[error("{url:?} is https, and this client's iPXE has no HTTPS support (option 175)")]
    HttpsUnsupported {
        /// The URL.
        url: String,
    },
    /// A table file could not be read.
    #[error("{path}: {source}")]
    TableIo {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A table is not valid TOML, does not have the expected shape, or a value is wrong.
    #[error("{path}:{line}: {field}: {message}")]
    TableInvalid {
        /// The file (or the name given when parsed from memory).
        path: PathBuf,
        /// The 1-based line of the offending value (0 when unknown).
        line: usize,
        /// The field in dotted form (`groups[2].mac`, `profiles.debian`), or `-`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The delegate service did not answer in time.
    #[error("delegate did not answer within {after:?}")]
    DelegateTimeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The exchange with the delegate failed (bad URL, connection refused, HTTP error status…).
    #[error("delegate exchange with {target} failed: {reason}")]
    DelegateExchange {
        /// The service (URL or host), as configured.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The delegate's answer is not the expected JSON.
    #[error("delegate answer is not valid: {reason}")]
    DelegateAnswer {
        /// What is wrong with it.
        reason: String,
    },
}
