//! The shared vocabulary of the `pxe` crates: who a network-boot client is, and what it boots.
//!
//! This crate holds plain data types that every protocol crate (`pxe-dhcp`, `pxe-tftp`,
//! `pxe-http`) and every application speaks:
//!
//! - [`MacAddr`]: a client's hardware address, the key a client is known by across stages.
//! - [`Arch`]: the IANA "Processor Architecture Type" (DHCP option 93) as an open code space.
//! - [`ClientGuid`]: the SMBIOS/UEFI machine GUID of DHCP option 97, with its EFI wire order,
//!   its canonical text form and placeholder detection.
//! - [`IpxeFeatures`]: what an iPXE build says it can do, from DHCP option 175.
//! - [`ClientKind`]: which boot stage is asking (firmware PXE, iPXE, UEFI HTTP Boot).
//! - [`ClientFacts`]: everything known about a client when the policy is asked.
//! - [`Policy`]: the one trait an application implements. [`Policy::boot`] answers the DHCP
//!   stage with a [`BootDecision`]; [`Policy::script`] answers the HTTP stage with a
//!   [`ScriptDecision`]. [`SharedPolicy`] is its type-erased, clonable form; [`BootEveryone`]
//!   is the simplest ready policy; [`table::TablePolicy`] reads groups and profiles from TOML;
//!   [`delegate::DelegatePolicy`] asks an external service, with a fallback.
//! - [`ClientRecords`]: one record per client across stages (DHCP, TFTP, HTTP), merged by MAC,
//!   with the address each MAC was last seen with; [`Recording`] records every question and
//!   hands the policy the facts completed from the record.
//! - [`Script`]: an iPXE script builder in which data can never become syntax, so that a
//!   policy can answer with a custom script ([`ScriptDecision::Custom`]).
//! - [`Loader`]: iPXE, shim + GRUB (Secure Boot) or PXELINUX, chosen per client at the DHCP
//!   stage ([`BootDecision::for_loader`]); [`grub::render`] and [`pxelinux::render`] write the
//!   same [`ScriptDecision`] as those loaders' configs, exactly or not at all ([`ConfigError`]).
//!
//! What it does not do: no sockets, no clocks, no wire parsing of DHCP packets (that is
//! `pxe-dhcp`'s job). Everything here is pure and cheap to clone.
//!
//! A table policy, and which group a client falls into:
//!
//! ```
//! use pxe_policy::table::TablePolicy;
//! use pxe_policy::{ClientFacts, ClientKind, MacAddr};
//!
//! let table = TablePolicy::parse(
//!     r#"
//!     [profiles.install]
//!     kernel = "debian/vmlinuz"
//!     cmdline = "console=ttyS0 auto=true"
//!     [profiles.disk]
//!     action = "exit"
//!     [[groups]]
//!     name = "new racks"
//!     profile = "install"
//!     mac = ["52:54:00:12:34:56"]
//!     [[groups]]
//!     name = "everyone else"
//!     profile = "disk"
//!     "#,
//!     "site.toml",
//! )?;
//! let mac: MacAddr = "52:54:00:12:34:56".parse()?;
//! let client = ClientFacts::new(mac, ClientKind::ChainloadedIpxe);
//! assert_eq!(table.group_of(&client), Some("new racks"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod arch;
mod decision;
pub mod delegate;
mod error;
mod facts;
pub mod grub;
mod guid;
mod ipxe_features;
mod ipxe_script;
mod kind;
mod mac;
mod policy;
pub mod pxelinux;
mod records;
pub mod table;

pub use arch::Arch;
pub use decision::{BootDecision, IpxeBinary, IscsiBoot, LinuxBoot, Loader, ScriptDecision};
pub use error::{ConfigError, DelegateError, IscsiError, ParseError, ScriptError, TableError};
pub use facts::{ClientFacts, RelayInfo};
pub use guid::ClientGuid;
pub use ipxe_features::{IpxeBusId, IpxeFeature, IpxeFeatures, IpxeVersion};
pub use ipxe_script::{Chain, Command, Label, Script, Setting, SettingType, Url, Word};
pub use kind::ClientKind;
pub use mac::MacAddr;
pub use policy::{BootEveryone, BoxFuture, DynPolicy, Policy, SharedPolicy};
pub use records::{ClientRecords, Recording};

/// Runs a future that never waits: the ready policies' futures, in tests.
#[cfg(test)]
fn block_on_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a future that should be ready waited"),
    }
}
