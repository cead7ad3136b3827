//! What the server reports of each request and transfer to an observer of the embedder's
//! ([`ServerConfig::observer`](crate::ServerConfig::observer)): the hook metrics are built on,
//! without a metrics library in this crate (`pxe::Metrics` implements it with Prometheus
//! counters; an embedder may plug in its own).

use std::net::SocketAddr;

use crate::transfer::Outcome;

/// Told what the server does, on its serving path (the server's thread, or a transfer's
/// blocking thread): implementations must be quick and must not block (count, do not log).
/// Every method has a default that does nothing.
pub trait TftpObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A read request was accepted, its file opened and its transfer begun.
    fn transfer_started(&self, peer: SocketAddr, file: &str) {
        let _ = (peer, file);
    }

    /// A transfer begun with [`Self::transfer_started`] ended: completed (with the bytes
    /// delivered), a size probe (EDK2 asks for `tsize` and ends with ERROR 8 before it
    /// downloads), or failed. Each started transfer ends here or in
    /// [`Self::transfer_evicted`], once.
    fn transfer_finished(&self, peer: SocketAddr, file: &str, outcome: &Outcome) {
        let _ = (peer, file, outcome);
    }

    /// A started transfer whose client had acknowledged nothing gave its slot to a newcomer
    /// when every slot was taken (its client is told "server busy").
    fn transfer_evicted(&self, peer: SocketAddr, file: &str) {
        let _ = (peer, file);
    }

    /// A request got no transfer: `reason` is one of a fixed set of snake-case names
    /// (`bad_request`, `busy`, `evicted` (before its transfer began), `not_found`,
    /// `access_denied`, `no_socket`, `error`).
    fn request_refused(&self, peer: SocketAddr, reason: &'static str) {
        let _ = (peer, reason);
    }
}
