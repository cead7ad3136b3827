//! Telling the stages of one machine apart, so the iPXE chainload loop is broken: firmware is
//! given iPXE, and the iPXE it was given must get the script, not iPXE again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use pxe_policy::{ClientKind, MacAddr};

/// Which MACs were recently handed an iPXE binary, and in which DHCP exchange (xid). Pure:
/// time is an argument.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainloadMemory {
    /// MAC → (remembered until, the xid of the exchange that handed the binary).
    handed_binary: HashMap<MacAddr, (SystemTime, u32)>,
    /// The size at which the next sweep of expired entries runs: twice the size after the
    /// last one, so sweeping costs O(1) per insert amortised.
    next_sweep: usize,
}

/// Beyond this many remembered MACs, expired entries are swept on insert (bounded memory
/// under a flood of forged MACs).
const SWEEP_ABOVE: usize = 4096;
/// Hard cap: when even unexpired entries exceed it, the memory is cleared; the marker user
/// class still identifies chainloaded iPXE builds that echo it.
const CAPACITY: usize = 65_536;

impl ChainloadMemory {
    /// Records that `mac` was handed an iPXE binary at `now`, in the exchange `xid`.
    pub(crate) fn remember(&mut self, mac: MacAddr, xid: u32, now: SystemTime, ttl: Duration) {
        if self.handed_binary.len() >= self.next_sweep.max(SWEEP_ABOVE) {
            self.handed_binary.retain(|_, (until, _)| *until > now);
            if self.handed_binary.len() >= CAPACITY {
                self.handed_binary.clear();
            }
            self.next_sweep = 2 * self.handed_binary.len();
        }
        self.handed_binary.insert(mac, (now + ttl, xid));
    }

    /// Whether `mac` was handed an iPXE binary within the memory's time, in an exchange other
    /// than `xid`. The chained iPXE starts a new exchange; the REQUEST that completes the very
    /// exchange which handed out the binary still comes from the stage that asked (an iPXE
    /// ROM being replaced sends the same options as the build it is given).
    pub(crate) fn recently_handed(&self, mac: MacAddr, xid: u32, now: SystemTime) -> bool {
        self.handed_binary
            .get(&mac)
            .is_some_and(|(until, handed_in)| *until > now && *handed_in != xid)
    }
}

/// What a request says about the stage sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StageSignals {
    /// Option 60 starts with `PXEClient`.
    pub(crate) pxe_client: bool,
    /// Option 60 starts with `HTTPClient`.
    pub(crate) http_client: bool,
    /// Option 77 says `iPXE`, or option 175 is present.
    pub(crate) ipxe: bool,
    /// Option 77 carries the chainload marker this server planted.
    pub(crate) chainload_marker: bool,
    /// This MAC was recently handed an iPXE binary.
    pub(crate) recently_handed: bool,
}

/// The stage, or `None` for a client that is not network booting (no `PXEClient` or
/// `HTTPClient` vendor class, and not iPXE).
pub(crate) fn client_kind(signals: StageSignals) -> Option<ClientKind> {
    if signals.http_client {
        return Some(ClientKind::UefiHttpBoot);
    }
    if signals.chainload_marker {
        return Some(ClientKind::ChainloadedIpxe);
    }
    if signals.ipxe {
        return Some(if signals.recently_handed {
            ClientKind::ChainloadedIpxe
        } else {
            ClientKind::FirmwareIpxe
        });
    }
    signals.pxe_client.then_some(ClientKind::FirmwarePxe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_told_apart() {
        let pxe = StageSignals {
            pxe_client: true,
            ..StageSignals::default()
        };
        assert_eq!(client_kind(pxe), Some(ClientKind::FirmwarePxe));
        let rom_ipxe = StageSignals { ipxe: true, ..pxe };
        assert_eq!(client_kind(rom_ipxe), Some(ClientKind::FirmwareIpxe));
        let remembered = StageSignals {
            recently_handed: true,
            ..rom_ipxe
        };
        assert_eq!(client_kind(remembered), Some(ClientKind::ChainloadedIpxe));
        let marked = StageSignals {
            chainload_marker: true,
            ..rom_ipxe
        };
        assert_eq!(client_kind(marked), Some(ClientKind::ChainloadedIpxe));
        let http = StageSignals {
            http_client: true,
            ..StageSignals::default()
        };
        assert_eq!(client_kind(http), Some(ClientKind::UefiHttpBoot));
        assert_eq!(client_kind(StageSignals::default()), None);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut memory = ChainloadMemory::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for n in 0..200_000u32 {
            let [_, a, b, c] = n.to_be_bytes();
            memory.remember(MacAddr([2, 0, 0, a, b, c]), n, t0, Duration::from_secs(300));
            assert!(memory.handed_binary.len() <= CAPACITY);
        }
        let recent = MacAddr([2, 0, 0, 0x03, 0x0d, 0x3f]); // the last one, 199_999
        assert!(memory.recently_handed(recent, 7, t0));
    }

    #[test]
    fn memory_expires() {
        let mut memory = ChainloadMemory::default();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        memory.remember(mac, 1, t0, Duration::from_secs(300));
        assert!(memory.recently_handed(mac, 2, t0 + Duration::from_secs(299)));
        assert!(!memory.recently_handed(mac, 2, t0 + Duration::from_secs(300)));
        assert!(!memory.recently_handed(MacAddr([2, 0, 0, 0, 0, 2]), 2, t0));
        // The exchange that handed out the binary is still the asking stage's.
        assert!(!memory.recently_handed(mac, 1, t0 + Duration::from_secs(1)));
    }
}
