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

/// Why a value cannot go into an iPXE script (or a URL iPXE fetches) exactly as given: the
/// script builder refuses rather than alters it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScriptError {
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
}

/// Why a decision cannot be written as a loader's config (GRUB, PXELINUX) exactly: the
/// renderer refuses rather than hand the kernel something else.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value the loader's config language (or the loader on its way to the kernel) would
    /// change or cut.
    #[error("{loader}: the {what} {value:?} cannot be carried exactly: {reason}")]
    Value {
        /// `"grub"` or `"pxelinux"`.
        loader: &'static str,
        /// What the value is (`"command line"`, `"kernel"`, `"initrd"`, `"chain target"`).
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A decision this loader has no way to carry out (`sanboot` from GRUB, an iPXE script).
    #[error("{loader} cannot {decision}")]
    Unsupported {
        /// `"grub"` or `"pxelinux"`.
        loader: &'static str,
        /// What was asked (`"run an iPXE script"`).
        decision: &'static str,
    },
}

/// Why an iSCSI boot ([`crate::IscsiBoot`]) cannot be built from the names given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IscsiError {
    /// Not an iSCSI name iPXE and targets read alike: `iqn.YYYY-MM.reversed.domain[:any]` or
    /// `eui.` + 16 hex digits, in lower-case ASCII letters, digits, `-`, `.` and `:`, at most
    /// 223 bytes (RFC 3720 §3.2.6, RFC 3722).
    #[error("the {what} {value:?} is not an iSCSI name: {reason}")]
    Name {
        /// `"target"` or `"initiator"`.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// The server is neither an IP address nor a host name.
    #[error("the iSCSI server {0:?} is not an IP address or a host name")]
    Server(String),
}

/// Why a table file cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TableError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The table is not valid TOML, does not have the expected shape, or a value is wrong.
    #[error("{}:{line}: {field}: {message}", path.display())]
    Invalid {
        /// The file (or the name given when parsed from memory).
        path: PathBuf,
        /// The 1-based line of the offending value (0 when unknown).
        line: usize,
        /// The field in dotted form (`groups[2].mac`, `profiles.debian`), or `-`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Why asking the delegate service failed (the policy then uses its fallback).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DelegateError {
    /// The service is not one the transport can reach (a URL it cannot use).
    #[error("delegate {target:?}: {reason}")]
    Target {
        /// The service as configured.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The service did not answer in time.
    #[error("delegate did not answer within {after:?}")]
    Timeout {
        /// The deadline that passed.
        after: Duration,
    },
    /// The exchange failed: connection refused, an HTTP error status, a broken body.
    #[error("delegate exchange with {target} failed")]
    Exchange {
        /// The service (URL), as configured.
        target: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The question could not be encoded, or the answer is not the expected JSON.
    #[error("delegate answer is not valid: {reason}")]
    Answer {
        /// What is wrong with it.
        reason: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<serde_json::Error>,
    },
}
