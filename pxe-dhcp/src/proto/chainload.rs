//! Telling the stages of one machine apart, so the iPXE chainload loop is broken: firmware is
//! given iPXE, and the iPXE it was given must get the script, not iPXE again. Which MACs were
//! recently handed a binary is kept in the client's record
//! ([`pxe_policy::ClientRecords::record_ipxe_handed`]), one bounded store for every stage.

use pxe_policy::ClientKind;

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
}
