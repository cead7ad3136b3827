use std::io;
use std::path::PathBuf;

/// Why the server could not start or stopped: this crate's error.
///
/// The wire layer has its own small types for bytes that do not decode
/// ([`DecodeError`](crate::wire::DecodeError)) and messages that cannot be written
/// ([`EmitError`](crate::wire::EmitError)); a request the server does not answer is not an
/// error but a [`NoReply`](crate::proto::NoReply) reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be opened or bound.
    #[error("cannot bind udp port {port}{}: {source}", interface.as_ref().map(|i| format!(" on {i}")).unwrap_or_default())]
    Bind {
        /// The port.
        port: u16,
        /// The interface, when bound to one.
        interface: Option<String>,
        /// The cause.
        source: io::Error,
    },
    /// The lease journal could not be opened or written.
    #[error("lease file {path}: {source}")]
    LeaseFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A socket failed while serving.
    #[error("socket error: {0}")]
    Socket(#[source] io::Error),
}
