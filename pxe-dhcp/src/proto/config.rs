//! What the serving logic is configured with: the mode, where boot files come from, and the
//! per-client quirk knobs.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use pxe_policy::{Arch, MacAddr};

use crate::lease::{Reservation, Subnet, DEFAULT_OFFER_HOLD};

/// Whether the server hands out addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// proxyDHCP (PXE 2.1 §2.2.2): another server gives addresses; this one answers only
    /// network-boot clients, with yiaddr 0 and the boot fields. Safe beside a site server.
    Proxy,
    /// The only DHCP server on the segment: address pools, reservations and leases, plus the
    /// boot fields for network-boot clients in the same replies.
    Authoritative {
        /// The subnets served (chosen by giaddr, or by the receiving interface's address).
        subnets: Vec<Subnet>,
        /// Fixed addresses by MAC or client identifier.
        reservations: Vec<Reservation>,
    },
}

/// How a PXE firmware client is told where its boot file is, in a proxy offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyStrategy {
    /// Option 43 with sub-option 6 = 8: "use the boot file in this offer, skip discovery".
    /// What BIOS ROMs follow reliably (smee's choice for everyone).
    UseBootFile,
    /// No option 43: the firmware sends a DHCPREQUEST to this server on port 4011 (the BINL
    /// path) and gets the boot file in that ACK. What many UEFI firmwares only follow
    /// (pixiecore's and dnsmasq's choice for UEFI).
    AskBootServer,
}

impl ProxyStrategy {
    /// The default per architecture: BIOS (and unknown) clients are told to use the boot
    /// file; UEFI clients are sent to port 4011.
    pub fn default_for(arch: Option<Arch>) -> Self {
        match arch {
            Some(arch) if arch.is_uefi() => Self::AskBootServer,
            _ => Self::UseBootFile,
        }
    }
}

/// Per-client workarounds for firmware that misreads ordinary replies (docs/FIRMWARE.md, "Quirks
/// seen in the field").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Quirks {
    /// In proxy mode, also answer a DHCPREQUEST on port 67 with the boot fields (some ROMs
    /// only read the boot file from the ACK).
    pub answer_request: bool,
    /// Wait this long before replying (dnsmasq's `--dhcp-reply-delay`: some ROMs miss an
    /// instant reply).
    pub reply_delay: Option<Duration>,
    /// Never use option overload (52): some ROMs cannot read options in `file`/`sname`.
    pub no_overload: bool,
    /// Always broadcast the reply, whatever RFC 2131 §4.1 would pick.
    pub force_broadcast: bool,
    /// Override [`ProxyStrategy::default_for`].
    pub proxy_strategy: Option<ProxyStrategy>,
}

/// Where boot files live and what iPXE is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootConfig {
    /// The TFTP server for firmware PXE (siaddr and option 66). `None`: the address of the
    /// interface the request arrived on (or the relay-facing address).
    pub tftp_server: Option<Ipv4Addr>,
    /// The iPXE script URL handed to iPXE clients. `${next-server}` is replaced by the
    /// server's address on the client's segment; iPXE itself expands `${mac}`, `${uuid}`…
    pub script_url: String,
    /// Where UEFI HTTP Boot clients fetch iPXE: the binary's file name is appended
    /// (`http://${next-server}/ipxe/` + `snponly.efi`). `${next-server}` is replaced as above.
    pub http_boot_base: String,
    /// The user class planted (option 77) in replies that hand a firmware client an iPXE
    /// binary; the chainloaded iPXE reads it from the cached reply and sends it back, which
    /// tells it apart from an iPXE in ROM.
    pub chainload_marker: Vec<u8>,
    /// How long to remember that a MAC fetched an iPXE binary (the second way the chainloaded
    /// iPXE is recognised, for builds that do not echo the marker). Kept in the client's
    /// record ([`pxe_policy::ClientRecords`]), so it also ends when the record is evicted.
    pub chainload_memory: Duration,
    /// Hand an iPXE found in a NIC's option ROM our iPXE binary too, as firmware PXE gets it,
    /// instead of the script URL: ROM builds are often old or lack features, and this makes
    /// every machine run the same iPXE. Off by default (the ROM goes straight to the script,
    /// one TFTP download and one IPv6 wait fewer).
    pub chainload_rom_ipxe: bool,
}

impl Default for BootConfig {
    fn default() -> Self {
        Self {
            tftp_server: None,
            script_url: "http://${next-server}/boot.ipxe".to_string(),
            http_boot_base: "http://${next-server}/ipxe/".to_string(),
            chainload_marker: b"iPXE-chained".to_vec(),
            chainload_memory: Duration::from_secs(300),
            chainload_rom_ipxe: false,
        }
    }
}

/// Everything the pure serving logic needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtoConfig {
    /// Proxy or authoritative.
    pub mode: Mode,
    /// Boot files and URLs.
    pub boot: BootConfig,
    /// Quirks for clients without an entry in `quirks`.
    pub default_quirks: Quirks,
    /// Quirks by MAC address.
    pub quirks: HashMap<MacAddr, Quirks>,
    /// How long an offered address is held for its client (authoritative mode; default
    /// [`DEFAULT_OFFER_HOLD`], see [`crate::lease::LeaseTable::offer_hold`]).
    pub offer_hold: Duration,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Proxy,
            boot: BootConfig::default(),
            default_quirks: Quirks::default(),
            quirks: HashMap::new(),
            offer_hold: DEFAULT_OFFER_HOLD,
        }
    }
}

impl ProtoConfig {
    /// The quirks in force for `mac`.
    pub fn quirks_for(&self, mac: MacAddr) -> &Quirks {
        self.quirks.get(&mac).unwrap_or(&self.default_quirks)
    }
}

/// Replaces `${next-server}` in a configured URL with the server's address.
pub(crate) fn expand_next_server(template: &str, server: Ipv4Addr) -> String {
    template.replace("${next-server}", &server.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_defaults_per_arch() {
        assert_eq!(
            ProxyStrategy::default_for(Some(Arch::X86_BIOS)),
            ProxyStrategy::UseBootFile
        );
        assert_eq!(ProxyStrategy::default_for(None), ProxyStrategy::UseBootFile);
        assert_eq!(
            ProxyStrategy::default_for(Some(Arch::X64_UEFI)),
            ProxyStrategy::AskBootServer
        );
    }

    #[test]
    fn next_server_is_expanded() {
        assert_eq!(
            expand_next_server(
                "http://${next-server}/boot.ipxe?mac=${mac}",
                Ipv4Addr::new(192, 0, 2, 1)
            ),
            "http://192.0.2.1/boot.ipxe?mac=${mac}"
        );
    }
}
