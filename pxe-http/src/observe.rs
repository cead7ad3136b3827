//! What the HTTP service reports of each request to an observer of the embedder's
//! ([`BootServiceBuilder::observer`](crate::BootServiceBuilder::observer)): the hook metrics are
//! built on, without a metrics library in this crate (`pxe::Metrics` implements it with
//! Prometheus counters; an embedder may plug in its own).

/// Told of every request the service answers and of the body bytes it hands to the
/// connection, on the serving path: implementations must be quick and must not block (count,
/// do not log). Every method has a default that does nothing.
pub trait HttpObserver: Send + Sync + std::fmt::Debug + 'static {
    /// A request on `route` was answered with `status` (its body follows, if any).
    fn response(&self, route: Route, status: u16) {
        let _ = (route, status);
    }

    /// `bytes` more of a response body on `route` were handed to the connection (called per
    /// chunk as the client reads; a download cut short reports only what went).
    fn body_sent(&self, route: Route, bytes: u64) {
        let _ = (route, bytes);
    }
}

/// Which part of the service answered a request: a fixed set, so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// The iPXE script path (the bootstrap script, or the policy's script for a client).
    Script,
    /// A PXELINUX config rendered for a client ([`crate::BootServiceBuilder::pxelinux_configs`]).
    PxelinuxConfig,
    /// A boot file (from the root, a mounted directory or a single mounted file).
    File,
    /// Anything else: a method other than GET and HEAD.
    Other,
}

impl Route {
    /// A short stable name in snake case: `script`, `pxelinux_config`, `file`, `other`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Script => "script",
            Self::PxelinuxConfig => "pxelinux_config",
            Self::File => "file",
            Self::Other => "other",
        }
    }
}
