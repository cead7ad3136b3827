use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in `pxe-http`: setting a server up, or a request it refuses.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The boot-file root cannot be used.
    #[error("cannot use {path} as the boot-file root: {source}")]
    Root {
        /// The configured root.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A script query is malformed.
    #[error("bad script query: {reason}")]
    Query {
        /// What is wrong with it.
        reason: QueryError,
    },
    /// A request path that cannot name a file under the root.
    #[error("bad request path: {reason}")]
    Path {
        /// What is wrong with it.
        reason: PathError,
    },
}

/// Why a script query cannot be turned into client facts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query has no `mac`, which every stage keys clients on.
    #[error("missing mac parameter")]
    MissingMac,
    /// A parameter that must have a form (mac, uuid, ip…) does not.
    #[error("invalid {name} {value:?}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// Its decoded value.
        value: String,
    },
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding at byte {offset}")]
    Encoding {
        /// Offset in the raw query.
        offset: usize,
    },
}

/// Why a request path cannot name a file under the root.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-encoding at byte {offset}")]
    Encoding {
        /// Offset in the raw path.
        offset: usize,
    },
    /// A `..` segment (in any spelling): it would leave the root.
    #[error("parent directory segment")]
    Parent,
    /// A NUL byte, a backslash or invalid UTF-8: no file under the root is named so.
    #[error("forbidden character in path")]
    Character,
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
}
