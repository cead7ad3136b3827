//! The whole network-boot flow as a library: DHCP (proxy or authoritative), TFTP for the iPXE
//! binaries and HTTP for iPXE scripts and boot files, composed around one [`Policy`] that
//! decides what each client boots.
//!
//! A provisioning tool links this crate and starts a [`Server`] from a [`ServerBuilder`]; the
//! `netboot` binary is a command line over the same builder. The protocol crates are
//! re-exported ([`policy`], [`dhcp`], [`tftp`], [`http`]) for what the builder does not cover.
//!
//! ```no_run
//! use pxe::policy::{BootEveryone, LinuxBoot};
//! use pxe::{DhcpMode, Server};
//!
//! # async fn example() -> Result<(), pxe::Error> {
//! let linux = LinuxBoot::new("/vmlinuz").cmdline("console=ttyS0");
//! let server = Server::builder(BootEveryone(linux))
//!     .listen("192.0.2.1".parse().unwrap())
//!     .interface("eth1")
//!     .dhcp(DhcpMode::Proxy)
//!     .http_root("/srv/boot")
//!     .start()
//!     .await?;
//! let stop = server.shutdown_handle();
//! // …later, from anywhere: stop.shutdown();
//! server.run().await
//! # }
//! ```
//!
//! The conventions the parts share live here, in one place: the script URL iPXE is sent to
//! ([`SCRIPT_PATH`]), where UEFI HTTP Boot finds the iPXE binaries ([`IPXE_PREFIX`]), and the
//! one record per client ([`policy::ClientRecords`]) that every stage adds to and the policy
//! reads at every stage.
//!
//! # Threads an embedder inherits
//! [`Server::run`] runs on the caller's tokio runtime, except TFTP, which runs on one thread
//! of its own (lock-step TFTP is wakeup latency; see `pxe_tftp::Server::run_on_own_thread`).
//! ARCHITECTURE.md lists every thread, blocking-pool use and CPU option, and how to turn each
//! off.

#[cfg(feature = "axum")]
pub mod axum;
// The Router Solicitation parser is public only to its fuzz target (cargo-fuzz sets
// `--cfg fuzzing`); embedders use RouterAnnouncer.
pub mod loaders;
pub mod metrics;
#[cfg(fuzzing)]
pub mod ndp;
#[cfg(not(fuzzing))]
#[allow(unreachable_pub, dead_code)]
mod ndp;
mod ra;
mod server;

pub use pxe_dhcp as dhcp;
pub use pxe_http as http;
pub use pxe_policy as policy;
pub use pxe_tftp as tftp;

pub use loaders::{LoaderFiles, PxelinuxFiles, ShimGrubFiles};
pub use metrics::Metrics;
pub use pxe_policy::Policy;
pub use ra::RouterAnnouncer;
pub use server::{
    DhcpMode, Error, Server, ServerBuilder, ShutdownHandle, IPXE_PREFIX, SCRIPT_PATH,
};
